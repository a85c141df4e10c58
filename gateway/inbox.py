"""Durable landing of received instances in the inbox bucket.

Keys are random (``incoming/<date>/<uuid>.dcm``): an inbox key is logged by the ingest pipeline,
so it must never carry patient data. Metadata records who sent the object and how.
"""

from __future__ import annotations

import base64
import hashlib
import io
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

PREFIX = "incoming/"
# One PutObject request carries at most 5 GiB; the ingest pipeline's default cap is 4 GiB.
MAX_SINGLE_PUT_BYTES = 5 * 1024**3
_CHUNK = 1024 * 1024


class TooLarge(ValueError):
    """An instance larger than one PutObject request can carry."""


@dataclass(frozen=True)
class Sender:
    """Who delivered an instance: the verified client certificate and, for DIMSE, the AE title."""

    channel: str  # dimse | stow
    subject: str
    fingerprint: str  # SHA-256 of the client certificate (DER), hex
    serial: str = ""
    calling_ae: str = ""


@dataclass(frozen=True)
class Landed:
    key: str
    version_id: str | None
    sha256: str
    size: int


class InboxWriter:
    """Writes one instance per object with SSE-KMS and a SHA-256 checksum S3 verifies."""

    def __init__(self, s3: Any, bucket: str, *, kms_key_id: str | None = None) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.kms_key_id = kms_key_id

    def put(
        self, body: bytes | IO[bytes], sender: Sender, *, now: datetime | None = None
    ) -> Landed:
        """Store ``body`` (bytes, or a seekable binary file read from its start); returns only
        once S3 has acknowledged it, and raises otherwise. Files are streamed, never loaded."""
        received = now or datetime.now(UTC)
        key = f"{PREFIX}{received:%Y/%m/%d}/{uuid.uuid4()}.dcm"
        stream = io.BytesIO(body) if isinstance(body, bytes) else body
        digest, size = _sha256(stream)
        if size > MAX_SINGLE_PUT_BYTES:
            raise TooLarge(f"{size} bytes: one PutObject carries at most {MAX_SINGLE_PUT_BYTES}")
        metadata = {
            "channel": sender.channel,
            # S3 user metadata is ASCII: certificate subjects may not be.
            "client-subject": urllib.parse.quote(sender.subject, safe=" =,+-.@/:"),
            "client-fingerprint": sender.fingerprint,
            "client-serial": sender.serial,
            "received-at": received.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "sha256": digest.hex(),
        }
        if sender.calling_ae:
            metadata["calling-ae"] = urllib.parse.quote(sender.calling_ae, safe=" -_.")
        encryption: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
        if self.kms_key_id:
            encryption["SSEKMSKeyId"] = self.kms_key_id
        response = self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=stream,
            ContentLength=size,
            ContentType="application/dicom",
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(digest).decode(),
            Metadata={k: v for k, v in metadata.items() if v},
            **encryption,
        )
        return Landed(key, response.get("VersionId"), digest.hex(), size)


def _sha256(stream: IO[bytes]) -> tuple[bytes, int]:
    """SHA-256 and length of ``stream`` from its start; leaves it rewound for the upload."""
    stream.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return digest.digest(), size
