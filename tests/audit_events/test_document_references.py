"""The prose of docs/audit-events.md names the files that really hold what it describes."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOCUMENT = REPO / "docs" / "audit-events.md"


def test_every_file_the_document_names_exists() -> None:
    paths = set(re.findall(r"`((?:infra|lambdas|gateway)/[\w/]+\.py)`", DOCUMENT.read_text()))
    assert paths, "the document names no source file"
    missing = sorted(p for p in paths if not (REPO / p).is_file())
    assert not missing, f"docs/audit-events.md names missing files: {missing}"


def test_the_dlq_alarm_is_where_the_document_says() -> None:
    text = " ".join(DOCUMENT.read_text().split())
    found = re.search(r"The DLQ alarm \([^)]*`(infra/[\w/]+\.py)`\)", text)
    assert found, "docs/audit-events.md no longer says where the DLQ alarm lives"
    source = (REPO / found.group(1)).read_text()
    # The ingest component declares the dead-letter queue's "<prefix>-dlq-not-empty" alarm.
    assert '("dlq", self.dead_letter_queue' in source and "-not-empty" in source, found.group(1)
