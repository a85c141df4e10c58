"""docs/audit-events.md says what lambdas/audit_events.py says, table by table."""

from __future__ import annotations

import logging

import pytest

from lambdas.audit_events import EMITTERS, GATEWAY, TYPES, leaves, problems
from tests.audit_events.markdown import expected, sections, table
from tests.conftest import REPO

DOCUMENT = REPO / "docs" / "audit-events.md"


@pytest.fixture(scope="module")
def document() -> dict[tuple[str, str], list[list[tuple[str, ...]]]]:
    return {key: section.tables for key, section in sections(DOCUMENT.read_text()).items()}


def test_every_table_of_the_schema_is_in_the_document_as_the_schema_says(
    document: dict[tuple[str, str], list[list[tuple[str, ...]]]],
) -> None:
    for key, tables in expected().items():
        assert key in document, f"docs/audit-events.md has no section {key}"
        want = [table(rows[0], rows[1:]) for rows in tables]
        got = [table(rows[0], rows[1:]) for rows in document[key]]
        assert got == want, f"docs/audit-events.md {key} must read:\n" + "\n\n".join(want)


def test_the_document_lists_no_event_or_section_the_schema_lacks(
    document: dict[tuple[str, str], list[list[tuple[str, ...]]]],
) -> None:
    extra = {key for key, tables in document.items() if tables or key[0] in EMITTERS}
    assert extra <= set(expected()), f"not in the schema: {sorted(extra - set(expected()))}"


def test_no_table_cell_of_the_schema_holds_a_pipe() -> None:
    # A '|' would split a Markdown cell: the document could not say what the schema says.
    for key, tables in expected().items():
        for rows in tables:
            assert all("|" not in cell for row in rows for cell in row), key


def test_field_names_never_collide_with_the_envelope_or_the_log_record() -> None:
    # stdlib logging refuses `extra` keys that are LogRecord attributes; an event field named
    # like an envelope key would be overwritten by (or overwrite) the envelope.
    record = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
    for emitter in EMITTERS.values():
        envelope = {f.name for f in emitter.envelope}
        for event in emitter.events:
            tops = {f.name.split(".")[0].split("[")[0] for f in event.fields}
            assert not tops & (envelope | record), f"{emitter.name} {event.message!r}: {tops}"


def test_events_and_their_fields_are_listed_once() -> None:
    for emitter in EMITTERS.values():
        messages = [e.message for e in emitter.events]
        assert len(messages) == len(set(messages)), emitter.name
        for event in emitter.events:
            names = [f.name for f in event.fields]
            assert len(names) == len(set(names)), f"{emitter.name} {event.message!r}"
            assert event.level in ("INFO", "WARNING", "ERROR")


def test_the_checker_walks_nested_fields_as_the_schema_names_them() -> None:
    record = {"source": {"bucket": "b"}, "reasons": [{"code": "x"}], "problems": ["p", "q"]}
    assert sorted(p for p, _ in leaves(record)) == [
        "problems[]",
        "problems[]",
        "reasons[].code",
        "source.bucket",
    ]
    assert "uid" in TYPES and TYPES["uid"].check("(not a valid UID)")
    assert not TYPES["uid"].check("Doe^John") and not TYPES["uid"].check("1.02.3")


def test_the_checker_names_what_breaks_the_schema() -> None:
    assert problems(GATEWAY, {"level": "INFO", "message": "no such event"}) == [
        "gateway: undocumented event 'no such event'"
    ]
    found = problems(
        GATEWAY,
        {"level": "ERROR", "message": "stored", "channel": "fax", "size": "12", "patient": "x"},
    )
    assert "gateway 'stored': level 'ERROR', documented INFO" in found
    assert "gateway 'stored': channel='fax' not one of ('dimse', 'stow')" in found
    assert "gateway 'stored': size='12' is not of type integer" in found
    assert "gateway 'stored': undocumented field 'patient'" in found
    assert any(
        p.startswith("gateway 'stored': required fields missing: client_fingerprint") for p in found
    )
