"""A throwaway PKI for the signature tests, and dcmtk's dcmsign."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest

from tests.certificates import Identity, identity, write


@dataclass(frozen=True)
class Pki:
    """A trusted CA with an RSA-2048 and an EC P-256 signer, and a CA nobody trusts."""

    ca: Identity
    rsa: Identity
    ec: Identity
    other_ca: Identity

    def signer(self, kind: str) -> Identity:
        return {"rsa": self.rsa, "ec": self.ec}[kind]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = write(identity("Test CA", ca=True), directory)
    return Pki(
        ca=ca,
        rsa=write(identity("RSA Signer", issuer=ca, algorithm="rsa"), directory),
        ec=write(identity("EC Signer", issuer=ca), directory),
        other_ca=write(identity("Other CA", ca=True), directory),
    )


@pytest.fixture(scope="session")
def dcmsign() -> str:
    path = shutil.which("dcmsign")
    if path is None:
        pytest.fail("dcmsign not found: `make tools` installs dcmtk (apt package)")
    return path
