"""Captured log lines judged against lambdas/audit_events.py."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from lambdas.audit_events import Emitter, problems
from tests.lambdas.factory import PHI_STRINGS


def parse(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Every captured line, each of which must be one JSON object."""
    found = []
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            raise AssertionError(f"a log line is not a JSON event: {line!r}") from None
        assert isinstance(doc, dict), f"a log line is not a JSON object: {line!r}"
        found.append(doc)
    return found


def assert_conform(emitter: Emitter, events: list[dict[str, Any]]) -> None:
    found = [p for event in events for p in problems(emitter, event)]
    assert not found, "events that break docs/audit-events.md:\n" + "\n".join(sorted(set(found)))


def assert_all_emitted(emitter: Emitter, events: list[dict[str, Any]]) -> None:
    logged = {e.get("message") for e in events}
    dead = [e.message for e in emitter.events if e.message not in logged and not e.untriggered]
    assert not dead, f"{emitter.name}: documented events no scenario logged: {dead}"
    triggered = [e.message for e in emitter.events if e.untriggered and e.message in logged]
    assert not triggered, f"{emitter.name}: logged, yet marked untriggered: {triggered}"


def assert_no_phi(lines: Iterable[str]) -> None:
    for line in lines:
        for phi in PHI_STRINGS:
            assert phi not in line, f"a log line carries {phi!r}: {line}"
