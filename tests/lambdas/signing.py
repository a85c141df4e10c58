"""A throwaway CA and signer (``cryptography``) and signed instances for the ingest tests."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache

from cryptography.hazmat.primitives import hashes

from lambdas.dicom_signature import LocalSigner, sign_bytes
from tests.certificates import identity

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


def make_authority(label: str = "") -> Authority:
    """A fresh CA (P-256) and a signer certificate it issued."""
    ca = identity(f"{CA_NAME} {label}".strip(), ca=True, days=30)
    signer = identity(SIGNER_NAME, issuer=ca, days=30)
    return Authority(ca.pem.decode("ascii"), LocalSigner(signer.key, signer.certificate))


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


def repeated_patient_name(data: bytes) -> bytes:
    """``data`` (explicit VR LE) with a second Patient Name inserted before the first."""
    marker = b"\x10\x00\x10\x00PN"
    at = data.index(marker)
    forged = b"EVIL^MALLORY"
    return data[:at] + marker + struct.pack("<H", len(forged)) + forged + data[at:]


def with_large_text(data: bytes) -> bytes:
    """``data`` (explicit VR LE, no (0020,4000)) with a 300 KB UT Image Comments whose bytes
    are not valid UTF-8 under ISO_IR 192: pydicom's re-encoding of it differs from the stored
    bytes (the review's deferred.py case)."""
    import io

    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageComments = "short"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    base = buffer.getvalue()
    marker = b"\x20\x00\x00\x40LT"
    at = base.index(marker)
    (length,) = struct.unpack("<H", base[at + 6 : at + 8])
    value = ("\u00e9" * 150000).encode() + b"\xff\xfeab"
    element = b"\x20\x00\x00\x40UT\x00\x00" + struct.pack("<L", len(value)) + value
    return base[:at] + element + base[at + 8 + length :]
