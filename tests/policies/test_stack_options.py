"""Insecure stack options: the program allows them with a warning; the pack refuses them unless
the pack's own configuration allows them too (two explicit decisions, by different owners)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pacs_kit.program import ProgramRun, plan_document
from tests.conftest import EXPORTS_PACK_CONFIG
from tests.policies.conftest import Judge
from tests.policies.mutations import SCORE

# (stack config overrides, the policy that must refuse the resulting plan)
INSECURE_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"archiveRetentionMode": "GOVERNANCE"}, "aws-s3-bucket-require-object-lock"),
    ({"archiveRetentionDays": 365}, "aws-s3-bucket-require-object-lock"),
    ({"logRetentionDays": 365}, "aws-cloudwatch-log-group-require-retention"),
    ({"edgeInternetFacing": True}, "aws-lb-load-balancer-internal"),
    ({"emulatorEndpoint": "http://127.0.0.1:5000"}, "aws-provider-no-endpoint-override"),
]


def _id(option: tuple[dict[str, Any], str]) -> str:
    return ",".join(f"{k}={v}" for k, v in option[0].items())


@pytest.mark.parametrize("option", INSECURE_OPTIONS, ids=_id)
def test_an_insecure_stack_option_warns_and_the_pack_refuses_it(
    option: tuple[dict[str, Any], str], plan_with: Callable[..., ProgramRun], judge: Judge
) -> None:
    overrides, policy = option
    run = plan_with(**overrides)
    assert run.warnings, f"{overrides}: the program must warn about an insecure option"
    report = judge(plan_document(run))
    SCORE[f"config:{_id(option)}"] = bool(report.blocking)
    assert policy in {f.policy for f in report.blocking}, [f.policy for f in report.blocking]


def test_the_pack_configuration_can_allow_an_internet_facing_edge(
    plan_with: Callable[..., ProgramRun], judge: Judge
) -> None:
    document = plan_document(plan_with(edgeInternetFacing=True))
    config = {"aws-lb-load-balancer-internal": {"allowInternetFacing": True}}
    report = judge(document, "aws-lb-load-balancer-internal", config=config)
    assert report.findings == []


def test_the_pack_configuration_can_allow_the_sandbox_emulator(
    plan_with: Callable[..., ProgramRun], judge: Judge
) -> None:
    document = plan_document(plan_with(emulatorEndpoint="http://127.0.0.1:5000"))
    policy = "aws-provider-no-endpoint-override"
    refused = judge(document, policy).findings
    assert {f.urn.rsplit("::", 1)[-1] for f in refused} == {"primary", "dr"}
    config = {policy: {"allowLoopbackEndpoints": True}}
    assert judge(document, policy, config=config).findings == []


def test_research_copies_with_linkage_pass_the_pack(
    research_plan: ProgramRun, judge: Judge
) -> None:
    # researchProjects and researchLinkage are not insecure options: the whole pack admits them.
    report = judge(plan_document(research_plan))
    assert report.findings == [], [(f.policy, f.urn) for f in report.findings]


def test_exports_pass_the_pack_only_with_the_public_url_allowance(
    exports_plan: ProgramRun, judge: Judge
) -> None:
    # exportsEnabled warns (a public endpoint): the pack's owner must allow the link function too.
    assert any("exportsEnabled" in w for w in exports_plan.warnings)
    document = plan_document(exports_plan)
    refused = {f.policy for f in judge(document).blocking}
    SCORE["config:exportsEnabled=True"] = bool(refused)
    assert refused == {"aws-lambda-permission-require-source"}
    report = judge(document, config=EXPORTS_PACK_CONFIG)
    assert report.findings == [], [(f.policy, f.urn) for f in report.findings]
