"""A throwaway CA and signer (``cryptography``) and signed instances for the ingest tests."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lambdas.dicom_signature import LocalSigner, sign_bytes

# Names that must never reach a log line (the audit events name signers by fingerprint only).
SIGNER_NAME = "Dr Signing Radiologist"
CA_NAME = "Test Signature Root CA"


@dataclass(frozen=True)
class Authority:
    """A CA certificate (PEM) and a signer whose certificate it issued."""

    ca_pem: str
    signer: LocalSigner

    @property
    def signer_sha256(self) -> str:
        return self.signer.certificate.fingerprint(hashes.SHA256()).hex()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    issuer: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
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
    )
    return builder.sign(issuer_key, hashes.SHA256())


def make_authority(label: str = "") -> Authority:
    """A fresh CA (P-256) and a signer certificate it issued."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = f"{CA_NAME} {label}".strip()
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = _certificate(SIGNER_NAME, ca_name, signer_key.public_key(), ca_key, ca=False)
    pem = ca.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return Authority(ca_pem=pem, signer=LocalSigner(signer_key, signer))


@cache
def trusted_authority() -> Authority:
    return make_authority("trusted")


@cache
def other_authority() -> Authority:
    return make_authority("other")


def signed(data: bytes, authority: Authority | None = None) -> bytes:
    """``data`` (a Part 10 file) with one digital signature of ``authority``'s signer."""
    return sign_bytes(data, (authority or trusted_authority()).signer)


def tampered(data: bytes) -> bytes:
    """A signed file with one byte of a signed value changed (the Study Description's first)."""
    marker = b"\x08\x00\x30\x10LO"  # (0008,1030) Study Description, explicit VR LE
    at = data.index(marker) + len(marker) + 2
    flipped = bytes([data[at] ^ 0x01])
    return data[:at] + flipped + data[at + 1 :]
