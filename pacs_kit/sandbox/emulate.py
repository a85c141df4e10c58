"""What a sandbox resource handler receives and returns: the contract of the type -> boto3 table.

A handler creates one Pulumi resource in the emulator through boto3 and returns its id and the
outputs AWS would give it (ids, ARNs, names, URLs), so dependent resources wire up with the
emulator's real values. Inputs arrive as the Pulumi mock runtime hands them: camelCase keys,
numbers as floats, secrets unwrapped, outputs of earlier resources already resolved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

# The emulator answers at once; a failure is a bug to show, not a throttle to retry.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2})


class NotEmulated(Exception):
    """The emulator cannot represent this resource; ``reason`` says why (shown in the report)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Clients:
    """boto3 clients against the emulator, one per (service, region), shared by every handler."""

    endpoint: str
    access_key_id: str = "sandbox"
    secret_access_key: str = "sandbox"
    session_token: str | None = None
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _session: boto3.session.Session | None = None

    def client(self, service: str, region: str) -> Any:
        with self._lock:
            key = (service, region)
            if key not in self._cache:
                # One session: service models load once (a session per client costs ~0.1 s).
                if self._session is None:
                    self._session = boto3.session.Session(
                        aws_access_key_id=self.access_key_id,
                        aws_secret_access_key=self.secret_access_key,
                        aws_session_token=self.session_token,
                    )
                self._cache[key] = self._session.client(  # type: ignore[call-overload]
                    service, region_name=region, endpoint_url=self.endpoint, config=_CLIENT_CONFIG
                )
            return self._cache[key]


@dataclass
class Context:
    """One resource being created: where, under which Pulumi name, and the emulator's clients."""

    clients: Clients
    account_id: str
    region: str  # the region of the resource's provider (primary or DR)
    name: str  # the Pulumi resource name, e.g. "imaging-archive-versioning"
    type: str  # the Pulumi type token, e.g. "aws:s3/bucketVersioning:BucketVersioning"
    notes: list[str] = field(default_factory=list)

    def client(self, service: str, region: str | None = None) -> Any:
        return self.clients.client(service, region or self.region)

    def note(self, text: str) -> None:
        """A limit of the emulation worth reporting for a created resource (a dropped field)."""
        if text not in self.notes:
            self.notes.append(text)


# (id, outputs): the Pulumi id of the resource (pulumi-aws's convention for the type) and the
# outputs to add to its inputs (only what AWS derives; inputs are echoed back by the caller).
Created = tuple[str, dict[str, Any]]
Handler = Callable[[Context, dict[str, Any]], Created]
