"""Durable landing of received instances in the inbox bucket.

Keys are random (``incoming/<date>/<uuid>.dcm``): an inbox key is logged by the ingest pipeline,
so it must never carry patient data. Metadata records who sent the object and how.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PREFIX = "incoming/"


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

    def put(self, data: bytes, sender: Sender, *, now: datetime | None = None) -> Landed:
        """Store ``data``; returns only once S3 has acknowledged it (raises otherwise)."""
        received = now or datetime.now(UTC)
        key = f"{PREFIX}{received:%Y/%m/%d}/{uuid.uuid4()}.dcm"
        digest = hashlib.sha256(data).digest()
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
            Body=data,
            ContentType="application/dicom",
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(digest).decode(),
            Metadata={k: v for k, v in metadata.items() if v},
            **encryption,
        )
        return Landed(key, response.get("VersionId"), digest.hex(), len(data))
