"""A throwaway PKI for the signature tests, and dcmtk's dcmsign."""

from __future__ import annotations

import datetime
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
NOW = datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Identity:
    """A key and its certificate, also written as PEM files (the key unencrypted)."""

    key: PrivateKey
    certificate: x509.Certificate
    key_path: Path
    cert_path: Path


@dataclass(frozen=True)
class Pki:
    """A trusted CA with an RSA-2048 and an EC P-256 signer, and a CA nobody trusts."""

    ca: Identity
    rsa: Identity
    ec: Identity
    other_ca: Identity

    def signer(self, kind: str) -> Identity:
        return {"rsa": self.rsa, "ec": self.ec}[kind]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: PrivateKey, issuer: Identity | None, *, ca: bool
) -> x509.Certificate:
    issuer_name = issuer.certificate.subject if issuer else _name(subject)
    issuer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _identity(
    directory: Path, name: str, key: PrivateKey, issuer: Identity | None, *, ca: bool = False
) -> Identity:
    certificate = _certificate(name, key, issuer, ca=ca)
    key_path = directory / f"{name.replace(' ', '_')}.key"
    cert_path = directory / f"{name.replace(' ', '_')}.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Identity(key, certificate, key_path, cert_path)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = _identity(directory, "Test CA", ec.generate_private_key(ec.SECP256R1()), None, ca=True)
    other = _identity(directory, "Other CA", ec.generate_private_key(ec.SECP256R1()), None, ca=True)
    return Pki(
        ca=ca,
        rsa=_identity(directory, "RSA Signer", rsa.generate_private_key(65537, 2048), ca),
        ec=_identity(directory, "EC Signer", ec.generate_private_key(ec.SECP256R1()), ca),
        other_ca=other,
    )


@pytest.fixture(scope="session")
def dcmsign() -> str:
    path = shutil.which("dcmsign")
    if path is None:
        pytest.fail("dcmsign not found: `make tools` installs dcmtk (apt package)")
    return path
