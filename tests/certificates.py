"""Throwaway X.509 keys and certificates for the tests: one builder for every test PKI."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Algorithm = Literal["ec", "rsa"]
# signer: digitalSignature + nonRepudiation; recipient: digitalSignature + keyEncipherment (RSA
# key transport); tls-*: digitalSignature + the extended key usage; any: no keyUsage at all.
Usage = Literal["signer", "recipient", "tls-client", "tls-server", "any"]
_PURPOSES = {
    "tls-client": ExtendedKeyUsageOID.CLIENT_AUTH,
    "tls-server": ExtendedKeyUsageOID.SERVER_AUTH,
}


@dataclass(frozen=True)
class Identity:
    """A certificate and its key; after :func:`write`, also where their PEM files are."""

    certificate: x509.Certificate
    key: PrivateKey
    key_path: Path | None = None
    cert_path: Path | None = None

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _key_usage(usage: Usage, *, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=usage == "signer" and not ca,
        key_encipherment=usage == "recipient" and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def identity(
    subject: str,
    *,
    issuer: Identity | None = None,
    ca: bool = False,
    algorithm: Algorithm = "ec",
    usage: Usage = "signer",
    days: int = 365,
    not_before: datetime.datetime | None = None,
    expired: bool = False,
    rsa_bits: int = 2048,
) -> Identity:
    """A fresh key (EC P-256 or RSA of ``rsa_bits``) and a certificate ``CN=subject`` for it.

    Self-signed unless ``issuer`` is given. Valid from ``not_before`` (default a day ago) for
    ``days`` days from now; ``expired`` makes it valid from 30 days ago until yesterday. A CA's
    keyUsage is keyCertSign + cRLSign (none with ``usage="any"``); SKI always, AKI when issued.
    """
    key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        if algorithm == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    start, end = (NOW - 30 * DAY, NOW - DAY) if expired else (NOW - DAY, NOW + days * DAY)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if usage != "any":
        builder = builder.add_extension(_key_usage(usage, ca=ca), critical=True)
    if usage in _PURPOSES and not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([_PURPOSES[usage]]), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    certificate = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Identity(certificate, key)


def write(identity: Identity, directory: Path, name: str | None = None) -> Identity:
    """Write ``<name>.key`` (PKCS#8 PEM, mode 0600) and ``<name>.pem`` into ``directory``.

    ``name`` defaults to the subject's common name with spaces as underscores. Returns the
    identity with its paths.
    """
    if name is None:
        common_name = identity.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        name = str(common_name[0].value).replace(" ", "_")
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.pem"
    # Created 0600, never readable by others even for a moment, as a real key file would be.
    with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(identity.key_pem)
    cert_path.write_bytes(identity.pem)
    return replace(identity, key_path=key_path, cert_path=cert_path)
