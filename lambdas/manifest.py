"""Archive layout and the signed manifest that travels next to every archived instance.

The manifest is canonical JSON (sorted keys, no whitespace, ASCII): the exact bytes signed with
KMS ``Sign`` (``MessageType=RAW``, ECDSA_SHA_256), stored verbatim in the sidecar so anyone can
verify it with the public key and ``openssl dgst -sha256 -verify`` — no re-serialisation involved.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from lambdas.settings import ARCHIVE_PREFIX

MANIFEST_FORMAT = "cloud-pacs/archive-manifest/1"
SIDECAR_FORMAT = "cloud-pacs/signed-manifest/1"
SIGNING_ALGORITHM = "ECDSA_SHA_256"
SIDECAR_SUFFIX = ".manifest.json"
# KMS Sign accepts at most 4096 bytes of RAW message.
KMS_RAW_MESSAGE_LIMIT = 4096


class ManifestError(ValueError):
    """A manifest or sidecar is malformed (never carries object content)."""


def archive_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    """Where an accepted instance lives in the archive bucket (UIDs are validated beforehand)."""
    return f"{ARCHIVE_PREFIX}{study_uid}/series/{series_uid}/instances/{sop_uid}.dcm"


def sidecar_key(instance_key: str) -> str:
    return instance_key + SIDECAR_SUFFIX


@dataclass(frozen=True)
class Manifest:
    """What the archive asserts about one instance; every field is non-PHI."""

    bucket: str
    key: str
    version_id: str
    sha256: str  # hex
    size: int
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_key: str  # keyed pseudonym of PatientID, never the ID itself
    archived_at: str  # ISO 8601 UTC
    signing_key_id: str
    signing_algorithm: str = SIGNING_ALGORITHM

    def canonical(self) -> bytes:
        """The exact bytes that are signed."""
        body = {"format": MANIFEST_FORMAT, **self.__dict__}
        data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        if len(data) > KMS_RAW_MESSAGE_LIMIT:
            raise ManifestError(
                f"manifest is {len(data)} bytes; KMS signs at most {KMS_RAW_MESSAGE_LIMIT} raw"
            )
        return data

    @classmethod
    def from_canonical(cls, data: bytes) -> Manifest:
        try:
            body: dict[str, Any] = json.loads(data)
        except ValueError:
            raise ManifestError("manifest is not JSON") from None
        if not isinstance(body, dict) or body.pop("format", None) != MANIFEST_FORMAT:
            raise ManifestError(f"manifest format is not {MANIFEST_FORMAT}")
        try:
            manifest = cls(**body)
        except TypeError:
            raise ManifestError("manifest fields do not match the format") from None
        if manifest.canonical() != data:
            raise ManifestError("manifest is not in canonical form")
        return manifest


def sidecar_document(manifest_bytes: bytes, signature: bytes, key_id: str) -> bytes:
    """The sidecar object: the signed bytes verbatim plus the DER signature, both base64."""
    return json.dumps(
        {
            "format": SIDECAR_FORMAT,
            "manifest": base64.b64encode(manifest_bytes).decode(),
            "signature": base64.b64encode(signature).decode(),
            "signing_key_id": key_id,
            "signing_algorithm": SIGNING_ALGORITHM,
        },
        sort_keys=True,
        indent=2,
    ).encode()


@dataclass(frozen=True)
class Sidecar:
    manifest_bytes: bytes
    signature: bytes
    signing_key_id: str
    signing_algorithm: str

    @property
    def manifest(self) -> Manifest:
        return Manifest.from_canonical(self.manifest_bytes)


def parse_sidecar(data: bytes) -> Sidecar:
    try:
        doc = json.loads(data)
        if doc["format"] != SIDECAR_FORMAT:
            raise ManifestError(f"sidecar format is not {SIDECAR_FORMAT}")
        return Sidecar(
            manifest_bytes=base64.b64decode(doc["manifest"], validate=True),
            signature=base64.b64decode(doc["signature"], validate=True),
            signing_key_id=str(doc["signing_key_id"]),
            signing_algorithm=str(doc["signing_algorithm"]),
        )
    except ManifestError:
        raise
    except (ValueError, KeyError, TypeError):
        raise ManifestError("sidecar is malformed") from None
