"""Fixtures of the policy tests: the default stack as a plan snapshot, and how to judge one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pacs_kit.cli import plan_document
from pacs_kit.program import ProgramRun
from policies.evaluate import PackConfig, Report, evaluate, load_snapshot
from policies.framework import PacsPolicy
from policies.pack import POLICIES
from tests.policies.mutations import Snapshot

Judge = Callable[..., Report]


@pytest.fixture(scope="session")
def plan_json(plan: ProgramRun) -> dict[str, Any]:
    """The default stack exactly as ``pacs-kit plan --json`` prints it."""
    return plan_document(plan)


@pytest.fixture(scope="session")
def plan_json_with_dependencies(plan: ProgramRun) -> dict[str, Any]:
    """The default stack as ``pacs-kit plan --json --dependencies`` prints it."""
    return plan_document(plan, dependencies=True)


@pytest.fixture
def snapshot(plan_json: dict[str, Any]) -> Snapshot:
    """A fresh, mutable copy of the default stack's snapshot."""
    return Snapshot(plan_json)


def policy(policy_id: str) -> PacsPolicy:
    found = [p for p in POLICIES if p.meta.id == policy_id]
    assert found, f"no policy {policy_id!r} in the pack"
    return found[0]


@pytest.fixture(scope="session")
def judge() -> Judge:
    """``judge(document, "policy-id", config={...})``: evaluate policies (default all)."""

    def run(
        document: dict[str, Any] | Snapshot,
        *policy_ids: str,
        config: dict[str, Any] | None = None,
    ) -> Report:
        doc = document.document if isinstance(document, Snapshot) else document
        chosen = [policy(i) for i in policy_ids] if policy_ids else list(POLICIES)
        return evaluate(load_snapshot(doc), chosen, PackConfig(chosen, config))

    return run
