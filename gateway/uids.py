"""DICOM UIDs as the gateway checks them, without pydicom (the CLI loads this module)."""

from __future__ import annotations

import re

# PS3.5 9.1: dot-separated decimal components without leading zeros, at most 64 characters.
_UID_RE = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
UID_MAX_LENGTH = 64


def is_uid(text: str) -> bool:
    return len(text) <= UID_MAX_LENGTH and _UID_RE.fullmatch(text) is not None


def loggable(text: str) -> str:
    """A sender-supplied UID for a log line, only if it is one: anything else could be PHI."""
    return text if is_uid(text) else "(not a valid UID)"
