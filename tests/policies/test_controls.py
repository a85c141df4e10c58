"""`pacs-kit controls`: the reviewer's control matrix, and docs/controls.md kept current."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pacs_kit.cli import main
from policies.controls import PRACTICES
from policies.pack import POLICIES
from tests.conftest import REPO

CONTROLS_MD = REPO / "docs" / "controls.md"


@pytest.fixture(scope="module")
def matrix() -> dict[str, Any]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["controls", "--format", "json"]) == 0
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


def _entries(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        entry
        for practice in matrix["practices"]
        for safeguard in practice["safeguards"]
        for entry in safeguard["policies"]
    ]


def test_every_policy_appears_once_under_its_practice_and_safeguard(matrix: dict[str, Any]) -> None:
    assert sorted(e["id"] for e in _entries(matrix)) == sorted(p.meta.id for p in POLICIES)
    for practice in matrix["practices"]:
        for safeguard in practice["safeguards"]:
            for entry in safeguard["policies"]:
                meta = next(p.meta for p in POLICIES if p.meta.id == entry["id"])
                assert meta.practice.id == practice["id"]
                assert meta.safeguard.ref == safeguard["ref"]


def test_every_practice_is_enforced_and_every_policy_satisfied_by_the_stack(
    matrix: dict[str, Any],
) -> None:
    enforced = {p["id"] for p in matrix["practices"] if p["safeguards"]}
    assert enforced == {p.id for p in PRACTICES}
    for entry in _entries(matrix):
        assert entry["satisfiedBy"], f"{entry['id']}: no resource of the stack satisfies it"
        assert entry["violations"] == [], entry["id"]


def test_docs_controls_md_is_the_current_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["controls", "--format", "md"]) == 0
    generated = capsys.readouterr().out
    assert CONTROLS_MD.read_text(encoding="utf-8") == generated, (
        "docs/controls.md is stale: run `pacs-kit controls --format md > docs/controls.md`"
    )
