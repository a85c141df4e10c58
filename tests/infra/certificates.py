"""Small CA certificates and CRLs on disk, for the edge's trust configuration."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.certificates import DAY, NOW, identity
from tests.certificates import Identity as Authority

__all__ = ["DAY", "NOW", "Authority", "authority", "crl", "write"]


def authority(name: str, *, ca: bool = True, expired: bool = False) -> Authority:
    """A self-signed P-256 certificate named ``name`` (a CA unless ``ca=False``)."""
    # No keyUsage extension, so what the edge's bundle checks see is basicConstraints alone.
    return identity(name, ca=ca, expired=expired, usage="any")


def crl(
    issuer: Authority,
    revoked_serials: tuple[int, ...] = (4711,),
    *,
    next_update: datetime.datetime = NOW + 30 * DAY,
) -> bytes:
    """A PEM CRL signed by ``issuer`` revoking the given serial numbers."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(min(NOW - DAY, next_update - DAY))
        .next_update(next_update)
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - DAY)
            .build()
        )
    revocations = builder.sign(issuer.key, hashes.SHA256())
    return revocations.public_bytes(serialization.Encoding.PEM)


def write(path: Path, *parts: bytes) -> str:
    """Write the parts to ``path``; return the path as config would name it."""
    path.write_bytes(b"".join(parts))
    return str(path)
