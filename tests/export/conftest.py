"""Keys, certificates and inputs for the export package tests (made once per session)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from pydicom.data import get_testdata_file

from pacs_kit.cli import main
from tests.certificates import Algorithm, Identity, PrivateKey, Usage, identity, write


@dataclass(frozen=True)
class Party:
    """An identity under the names these tests use: its key, ``cert``, and PEM files' paths."""

    identity: Identity

    @property
    def key(self) -> PrivateKey:
        return self.identity.key

    @property
    def cert(self) -> x509.Certificate:
        return self.identity.certificate

    @property
    def key_pem(self) -> Path:
        assert self.identity.key_path is not None
        return self.identity.key_path

    @property
    def cert_pem(self) -> Path:
        assert self.identity.cert_path is not None
        return self.identity.cert_path


@dataclass(frozen=True)
class Pki:
    ca: Party
    other_ca: Party
    recipient: Party
    other_recipient: Party
    ec_recipient: Party
    rsa_signer: Party
    ec_signer: Party
    untrusted_signer: Party


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with an RSA recipient and RSA/EC signers; another CA with its own signer."""
    d = tmp_path_factory.mktemp("pki")

    def party(
        label: str, issuer: Party | None, *, algorithm: Algorithm = "ec", usage: Usage = "signer"
    ) -> Party:
        made = identity(
            f"test {label}",
            issuer=issuer.identity if issuer else None,
            ca=issuer is None,
            algorithm=algorithm,
            usage=usage,
            days=30,
        )
        return Party(write(made, d, label))

    ca = party("ca", None)
    other_ca = party("other-ca", None)
    return Pki(
        ca=ca,
        other_ca=other_ca,
        recipient=party("recipient", ca, algorithm="rsa", usage="recipient"),
        other_recipient=party("other-recipient", ca, algorithm="rsa", usage="recipient"),
        ec_recipient=party("ec-recipient", ca, usage="recipient"),
        rsa_signer=party("rsa-signer", ca, algorithm="rsa"),
        ec_signer=party("ec-signer", ca),
        untrusted_signer=party("untrusted-signer", other_ca),
    )


@pytest.fixture
def inputs(tmp_path: Path) -> list[Path]:
    """CT_small and MR_small copied into their own directory."""
    d = tmp_path / "in"
    d.mkdir()
    paths = []
    for name in ("CT_small.dcm", "MR_small.dcm"):
        source = get_testdata_file(name)
        assert source is not None, name
        paths.append(Path(shutil.copyfile(source, d / name)))
    return paths


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "deid.key"
    path.write_bytes(bytes(range(32)))
    return path


def openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``openssl`` (fails the test, not skips it, when it is not installed)."""
    exe = shutil.which("openssl")
    if exe is None:
        pytest.fail("openssl not found: install the apt package openssl")
    return subprocess.run([exe, *map(str, args)], capture_output=True, check=False, timeout=60)


def export(
    pki: Pki,
    out: Path,
    files: list[Path],
    *extra: str | Path,
    recipient: Party | None = None,
    signer: Party | None = None,
) -> int:
    """``pacs-kit export`` to ``recipient`` (default the RSA recipient), signed by ``signer``."""
    argv = ["export", "--recipient", str((recipient or pki.recipient).cert_pem)]
    if signer is not None:
        argv += ["--sign-key", str(signer.key_pem), "--sign-cert", str(signer.cert_pem)]
    argv += [str(e) for e in extra]
    argv += ["--out", str(out), *map(str, files)]
    return main(argv)


def open_package(package: Path, key: Path, out: Path, *, ca: Path | None = None) -> int:
    argv = ["open", str(package), "--key", str(key), "--out", str(out)]
    if ca is not None:
        argv += ["--ca", str(ca)]
    return main(argv)


def usage_error(argv: list[str]) -> int:
    """The exit code of a command line argparse itself may reject (SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        assert isinstance(exc.code, int)
        return exc.code
