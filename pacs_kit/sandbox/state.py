"""``.sandbox/state.json``: what ``pacs-kit sandbox up`` deployed, for the commands that follow.

Every resource by URN with its type, id, outputs and what became of it in the emulator, the stack
outputs, the emulator's endpoint and the credentials of the sandbox's administrator (an IAM user
of the emulator, needed once IAM enforcement is on). Nothing here is a secret outside the sandbox.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pacs_kit.sandbox.emulate import Clients

STATE_DIR = Path(".sandbox")
STATE_FILE = "state.json"


class StateError(RuntimeError):
    """No sandbox is up here, or its state file cannot be read."""


@dataclass
class ResourceState:
    """One resource of the stack as the emulator holds it."""

    urn: str
    type: str
    name: str
    status: str  # created | not-emulated | component | provider
    id: str
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SandboxState:
    """The deployed sandbox."""

    stack: str
    region: str
    account_id: str
    endpoint: str
    siem_url: str
    admin_access_key_id: str
    admin_secret_access_key: str
    outputs: dict[str, Any]
    resources: list[ResourceState]
    config: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[ResourceState]:
        return [r for r in self.resources if r.type == type_token]

    def created(self, type_token: str) -> list[ResourceState]:
        return [r for r in self.of_type(type_token) if r.status == "created"]

    def admin(self) -> Clients:
        """Clients as the sandbox's administrator (allowed everything, like a deployer)."""
        return Clients(
            endpoint=self.endpoint,
            access_key_id=self.admin_access_key_id,
            secret_access_key=self.admin_secret_access_key,
        )

    def save(self, directory: Path = STATE_DIR) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / STATE_FILE
        partial = path.with_suffix(".tmp")
        partial.touch(mode=0o600)  # the administrator's keys (valid in this emulator only)
        partial.write_text(json.dumps(asdict(self), indent=1, sort_keys=True, default=str))
        partial.replace(path)
        return path

    @classmethod
    def load(cls, directory: Path = STATE_DIR) -> SandboxState:
        path = directory / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StateError(
                f"no sandbox is up ({path} is missing): run `pacs-kit sandbox up`"
            ) from None
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read {path}: {exc}") from exc
        data["resources"] = [ResourceState(**r) for r in data.get("resources", [])]
        return cls(**data)
