"""Keys, certificates and inputs for the export package tests (made once per session)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pydicom.data import get_testdata_file

from pacs_kit.cli import main

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Party:
    """A key and certificate, and where their PEM files are."""

    key: Key
    cert: x509.Certificate
    key_pem: Path
    cert_pem: Path


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


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _party(
    directory: Path, label: str, key: Key, issuer: Party | None, *, ca: bool = False
) -> Party:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"test {label}"))
        .issuer_name(issuer.cert.subject if issuer else _name(f"test {label}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    else:
        usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
    builder = builder.add_extension(usage, critical=True)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    key_pem, cert_pem = directory / f"{label}.key", directory / f"{label}.pem"
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Party(key, cert, key_pem, cert_pem)


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with an RSA recipient and RSA/EC signers; another CA with its own signer."""
    d = tmp_path_factory.mktemp("pki")
    ca = _party(d, "ca", _ec(), None, ca=True)
    other_ca = _party(d, "other-ca", _ec(), None, ca=True)
    return Pki(
        ca=ca,
        other_ca=other_ca,
        recipient=_party(d, "recipient", _rsa(), ca),
        other_recipient=_party(d, "other-recipient", _rsa(), ca),
        ec_recipient=_party(d, "ec-recipient", _ec(), ca),
        rsa_signer=_party(d, "rsa-signer", _rsa(), ca),
        ec_signer=_party(d, "ec-signer", _ec(), ca),
        untrusted_signer=_party(d, "untrusted-signer", _ec(), other_ca),
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
