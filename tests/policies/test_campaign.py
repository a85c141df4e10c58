"""Every policy passes the default stack and refuses at least one mutation of it; the mutation
campaign (every insecure variant of the stack caught by the pack) reports its score."""

from __future__ import annotations

from typing import Any

import pytest

from policies.pack import DOMAINS, POLICIES
from tests.policies.conftest import Judge
from tests.policies.mutations import DOMAIN_TESTS, SCORE, Mutation, Snapshot, all_mutations

MINIMUM_POLICIES = 40
MINIMUM_MUTATIONS = 30


MUTATIONS = all_mutations()


def test_the_pack_has_at_least_40_policies_with_unique_ids() -> None:
    ids = [p.meta.id for p in POLICIES]
    assert len(ids) >= MINIMUM_POLICIES, f"{len(ids)} policies"
    assert len(set(ids)) == len(ids), "duplicate policy ids"


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.meta.id)
@pytest.mark.parametrize("dependencies", [False, True], ids=["plan", "plan-with-dependencies"])
def test_default_stack_satisfies_the_policy(
    policy: Any,
    dependencies: bool,
    plan_json: dict[str, Any],
    plan_json_with_dependencies: dict[str, Any],
    judge: Judge,
) -> None:
    report = judge(plan_json_with_dependencies if dependencies else plan_json, policy.meta.id)
    assert report.findings == [], [f.message for f in report.findings]
    # The compliant fixture is only a fixture if the policy examined something in it.
    assert report.satisfied[policy.meta.id], f"{policy.meta.id}: no resource of the stack examined"


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.meta.id)
def test_every_policy_has_a_mutation(policy: Any) -> None:
    assert any(m.policy == policy.meta.id for m in MUTATIONS), (
        f"{policy.meta.id}: no mutation in tests/policies/test_*.py MUTATIONS names it"
    )


def test_every_domain_contributes_mutations() -> None:
    assert set(DOMAIN_TESTS) == set(DOMAINS), "tests/policies/mutations.py DOMAIN_TESTS"


def test_mutation_ids_are_unique_and_enough() -> None:
    ids = [m.id for m in MUTATIONS]
    assert len(set(ids)) == len(ids), "duplicate mutation ids"
    assert len(ids) >= MINIMUM_MUTATIONS, f"{len(ids)} mutations"


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.id)
def test_the_named_policy_refuses_the_mutation(
    mutation: Mutation, snapshot: Snapshot, judge: Judge
) -> None:
    mutation.apply(snapshot)
    report = judge(snapshot, mutation.policy)
    assert report.blocking, f"{mutation.policy} did not refuse: {mutation.description}"


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.id)
def test_the_pack_refuses_every_mutation(
    mutation: Mutation, snapshot: Snapshot, judge: Judge
) -> None:
    mutation.apply(snapshot)
    report = judge(snapshot)
    SCORE[mutation.id] = bool(report.blocking)
    assert report.blocking, f"no policy refused: {mutation.description}"
