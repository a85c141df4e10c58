"""The functions' environment contract: variable names, defaults and parsing.

``infra/components/ingest.py`` sets these variables and the handlers read them, so both import the
names from here. This module imports nothing heavier than the standard library (``infra`` may
import it; it must never pull in pydicom).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# --- ingest -----------------------------------------------------------------------------------
ARCHIVE_BUCKET = "PACS_ARCHIVE_BUCKET"
QUARANTINE_BUCKET = "PACS_QUARANTINE_BUCKET"
DATA_KEY_ARN = "PACS_DATA_KEY_ARN"  # SSE-KMS key of archive and quarantine writes
SIGNING_KEY_ARN = "PACS_SIGNING_KEY_ARN"
PSEUDONYM_KEY_ARN = "PACS_PSEUDONYM_KEY_ARN"
INDEX_TABLE = "PACS_INDEX_TABLE"
IDEMPOTENCY_TABLE = "PACS_IDEMPOTENCY_TABLE"
MAX_OBJECT_BYTES = "PACS_MAX_OBJECT_BYTES"
MAX_INFLATED_BYTES = "PACS_MAX_INFLATED_BYTES"
# Comma-separated UIDs; empty means the built-in defaults of lambdas/dicom_checks.py. Lambda
# environments are limited to 4 KB, so the full storage SOP class list cannot travel here.
TRANSFER_SYNTAXES = "PACS_TRANSFER_SYNTAXES"
SOP_CLASSES = "PACS_SOP_CLASSES"
# --- verify -----------------------------------------------------------------------------------
VERIFY_SAMPLE_SIZE = "PACS_VERIFY_SAMPLE_SIZE"

DEFAULT_MAX_OBJECT_BYTES = 4 * 1024**3  # CopyObject copies at most 5 GiB in one request
DEFAULT_MAX_INFLATED_BYTES = 256 * 1024**2
DEFAULT_VERIFY_SAMPLE_SIZE = 100

# Where archived objects live; the ingest role may write only under this prefix of the archive.
ARCHIVE_PREFIX = "studies/"


class SettingsError(ValueError):
    """A function's environment is missing or malformed (a deployment bug, never data)."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} must be a positive integer") from None
    if value <= 0:
        raise SettingsError(f"environment variable {name} must be a positive integer")
    return value


def _uid_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in env.get(name, "").split(",") if u.strip())


@dataclass(frozen=True)
class IngestSettings:
    """Everything the ingest function needs to know about its stack."""

    archive_bucket: str
    quarantine_bucket: str
    data_key_arn: str
    signing_key_arn: str
    pseudonym_key_arn: str
    index_table: str
    idempotency_table: str
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES
    transfer_syntaxes: tuple[str, ...] = ()
    sop_classes: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        env = os.environ if env is None else env
        return cls(
            archive_bucket=_required(env, ARCHIVE_BUCKET),
            quarantine_bucket=_required(env, QUARANTINE_BUCKET),
            data_key_arn=_required(env, DATA_KEY_ARN),
            signing_key_arn=_required(env, SIGNING_KEY_ARN),
            pseudonym_key_arn=_required(env, PSEUDONYM_KEY_ARN),
            index_table=_required(env, INDEX_TABLE),
            idempotency_table=_required(env, IDEMPOTENCY_TABLE),
            max_object_bytes=_positive_int(env, MAX_OBJECT_BYTES, DEFAULT_MAX_OBJECT_BYTES),
            max_inflated_bytes=_positive_int(env, MAX_INFLATED_BYTES, DEFAULT_MAX_INFLATED_BYTES),
            transfer_syntaxes=_uid_list(env, TRANSFER_SYNTAXES),
            sop_classes=_uid_list(env, SOP_CLASSES),
        )


@dataclass(frozen=True)
class VerifySettings:
    """Everything the verify function needs to know about its stack."""

    archive_bucket: str
    signing_key_arn: str
    index_table: str
    sample_size: int = DEFAULT_VERIFY_SAMPLE_SIZE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VerifySettings:
        env = os.environ if env is None else env
        return cls(
            archive_bucket=_required(env, ARCHIVE_BUCKET),
            signing_key_arn=_required(env, SIGNING_KEY_ARN),
            index_table=_required(env, INDEX_TABLE),
            sample_size=_positive_int(env, VERIFY_SAMPLE_SIZE, DEFAULT_VERIFY_SAMPLE_SIZE),
        )
