"""The DIMSE listener's TLS: client certificates required and verified, TLS 1.2 at least."""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# BCP 195 for TLS 1.2: forward-secret AEAD suites only (TLS 1.3 suites are always AEAD).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_context(
    cert: Path, key: Path, client_ca: Path, *, minimum: str = "1.2"
) -> ssl.SSLContext:
    """A server context that refuses any client without a certificate chaining to ``client_ca``.

    Revocation is not OpenSSL's CRL check (which refuses every client once the CRL is past its
    next update): the listener asks :class:`Revocations` after the handshake.
    """
    if minimum not in TLS_VERSIONS:
        raise ValueError(f"TLS minimum must be one of {', '.join(TLS_VERSIONS)}, not {minimum!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[minimum]
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(client_ca))
    return context


@dataclass(frozen=True)
class Revocations:
    """The client CA's CRL, its signature checked once: which certificates it revokes.

    An out-of-date CRL still revokes what it lists (and the gateway warns that it is out of
    date) instead of refusing every client the way OpenSSL's CRL check does: publish a new one
    before its next update, and the deployment refuses an expired one.
    """

    issuer: x509.Name
    serials: frozenset[int]
    next_update: datetime | None

    @classmethod
    def load(cls, crl: Path, client_ca: Path) -> Revocations:
        data = crl.read_bytes()
        parsed = (
            x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
        )
        issuers = [
            c for c in x509.load_pem_x509_certificates(client_ca.read_bytes())
            if c.subject == parsed.issuer
        ]  # fmt: skip
        if not any(parsed.is_signature_valid(c.public_key()) for c in issuers):  # type: ignore[arg-type]
            raise ValueError(f"the CRL {crl} is not signed by a CA of the client CA bundle")
        return cls(
            issuer=parsed.issuer,
            serials=frozenset(r.serial_number for r in parsed),
            next_update=parsed.next_update_utc,
        )

    def revokes(self, der: bytes) -> bool:
        certificate = x509.load_der_x509_certificate(der)
        return certificate.issuer == self.issuer and certificate.serial_number in self.serials

    def out_of_date(self, now: datetime | None = None) -> bool:
        moment = now or datetime.now(UTC)
        return self.next_update is not None and self.next_update < moment


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def subject_text(peer: dict[str, Any]) -> str:
    """RFC 4514-like text of ``SSLSocket.getpeercert()['subject']``."""
    return ",".join(f"{name}={value}" for rdn in peer.get("subject", ()) for name, value in rdn)
