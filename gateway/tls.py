"""The DIMSE listener's TLS: client certificates required and verified, TLS 1.2 at least."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import Any

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# BCP 195 for TLS 1.2: forward-secret AEAD suites only (TLS 1.3 suites are always AEAD).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_context(
    cert: Path, key: Path, client_ca: Path, *, minimum: str = "1.2", crl: Path | None = None
) -> ssl.SSLContext:
    """A server context that refuses any client without a certificate chaining to ``client_ca``."""
    if minimum not in TLS_VERSIONS:
        raise ValueError(f"TLS minimum must be one of {', '.join(TLS_VERSIONS)}, not {minimum!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[minimum]
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(client_ca))
    if crl is not None:
        context.load_verify_locations(cafile=str(crl))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def subject_text(peer: dict[str, Any]) -> str:
    """RFC 4514-like text of ``SSLSocket.getpeercert()['subject']``."""
    return ",".join(f"{name}={value}" for rdn in peer.get("subject", ()) for name, value in rdn)
