"""docs/audit-events.md's tables as the schema (lambdas/audit_events.py) says they must read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lambdas.audit_events import EMITTERS, TYPES, Emitter, Field

FIELD_HEADER = ("field", "type", "required", "meaning")
EVENT_HEADER = ("event (`message`)", "level", "when")
TYPE_HEADER = ("type", "meaning")
TYPES_SECTION = "Field types"
ENVELOPE = "Envelope"

_EMITTER_HEADING = re.compile(r"^## .*\(`([a-z]+)`\)$")


def meaning(f: Field) -> str:
    if len(f.values) == 1:
        return f"{f.meaning}; always `{f.values[0]}`"
    if f.values:
        return f"{f.meaning}; one of " + ", ".join(f"`{v}`" for v in f.values)
    return f.meaning


def field_rows(fields: tuple[Field, ...]) -> list[tuple[str, ...]]:
    return [
        (f"`{f.name}`", f"`{f.type}`", "yes" if f.required else "no", meaning(f)) for f in fields
    ]


def event_rows(emitter: Emitter) -> list[tuple[str, ...]]:
    return [(f"`{e.message}`", e.level, e.when) for e in emitter.events]


def type_rows() -> list[tuple[str, ...]]:
    return [(f"`{t.name}`", t.meaning) for t in TYPES.values()]


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = [header, tuple("---" for _ in header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


@dataclass
class Section:
    """The tables under one heading of the document."""

    tables: list[list[tuple[str, ...]]] = field(default_factory=list)


def sections(text: str) -> dict[tuple[str, str], Section]:
    """Tables by (section, sub-heading): section is an emitter's name or a `## ` title;
    sub-heading is the `### ` title ("" before the first one)."""
    found: dict[tuple[str, str], Section] = {}
    part, sub = "", ""
    rows: list[tuple[str, ...]] | None = None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = tuple(c.strip() for c in line.strip().strip("|").split("|"))
            if rows is None:
                rows = []
                found.setdefault((part, sub), Section()).tables.append(rows)
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                rows.append(cells)
            continue
        rows = None
        if line.startswith("## "):
            match = _EMITTER_HEADING.match(line)
            part, sub = (match.group(1) if match else line[3:].strip()), ""
        elif line.startswith("### "):
            sub = line[4:].strip()
            found.setdefault((part, sub), Section())
    return found


def expected() -> dict[tuple[str, str], list[list[tuple[str, ...]]]]:
    """Every table the document must hold, as rows (header first)."""
    tables: dict[tuple[str, str], list[list[tuple[str, ...]]]] = {
        (TYPES_SECTION, ""): [[TYPE_HEADER, *type_rows()]]
    }
    for emitter in EMITTERS.values():
        tables[(emitter.name, "")] = [[EVENT_HEADER, *event_rows(emitter)]]
        tables[(emitter.name, ENVELOPE)] = [[FIELD_HEADER, *field_rows(emitter.envelope)]]
        for event in emitter.events:
            rows = [[FIELD_HEADER, *field_rows(event.fields)]] if event.fields else []
            tables[(emitter.name, f"`{event.message}`")] = rows
    return tables
