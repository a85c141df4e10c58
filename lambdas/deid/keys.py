"""The secret behind every pseudonym: a keyed MAC (HMAC-SHA256), local or in KMS.

Without the key nobody can recompute a pseudonym from the original value (unlike unkeyed hashes),
and with the same key the same value always maps to the same pseudonym (longitudinal linkage).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any, Protocol

MIN_KEY_BYTES = 32


class Keyer(Protocol):
    """A keyed MAC: deterministic for one key, unpredictable without it."""

    def mac(self, data: bytes) -> bytes:
        """The MAC of ``data`` (32 bytes for HMAC-SHA256)."""
        ...


class LocalKeyer:
    """HMAC-SHA256 with a local key of at least 32 bytes (the CLI's ``--key-file``)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the key must have at least {MIN_KEY_BYTES} bytes, not {len(key)}")
        self._key = bytes(key)

    @classmethod
    def from_file(cls, path: str | Path) -> LocalKeyer:
        """The key is the file's raw bytes (e.g. ``head -c 32 /dev/urandom > key``)."""
        return cls(Path(path).read_bytes())

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data``."""
        return hmac.digest(self._key, data, hashlib.sha256)

    def __repr__(self) -> str:  # never print the key
        return "LocalKeyer(<secret>)"


class KmsKeyer:
    """The stack's HMAC KMS key (``GenerateMac`` with HMAC_SHA_256); the key never leaves KMS.

    Results are cached per value for the object's lifetime (create one per invocation), so a
    study's thousand instances cost one KMS call per distinct UID, not one per occurrence.
    """

    def __init__(self, kms_client: Any, key_id: str) -> None:
        self._kms = kms_client
        self._key_id = key_id
        self._cache: dict[bytes, bytes] = {}

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` computed by KMS (cached)."""
        cached = self._cache.get(data)
        if cached is None:
            response = self._kms.generate_mac(
                KeyId=self._key_id, MacAlgorithm="HMAC_SHA_256", Message=data
            )
            cached = self._cache[data] = bytes(response["Mac"])
        return cached
