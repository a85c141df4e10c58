"""The pack as the Pulumi engine runs it: policies/__main__.py serving the analyzer gRPC protocol.

`pulumi preview --policy-pack policies` starts policies/__main__.py, reads the port it prints and
calls GetAnalyzerInfo, Analyze (per resource) and AnalyzeStack. These tests play the engine's part
with the real protocol, and require the answers to agree with `pacs-kit check` (policies/evaluate)
on the default stack and on mutated ones.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from policies.pack import PACK_NAME, POLICIES
from tests.conftest import REPO
from tests.policies.conftest import Judge
from tests.policies.mutations import Snapshot, all_mutations


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """policies/__main__.py started as the Pulumi CLI starts a policy pack."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "policies" / "__main__.py")],
        cwd=REPO / "policies",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        assert line.isdigit(), f"the pack printed {line!r}, not its port: {process.stderr!r}"
        channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(props, struct_pb2.Struct())


def _stack_request(document: dict[str, Any]) -> analyzer_pb2.AnalyzeStackRequest:
    resources = []
    for r in document["resources"]:
        resource = analyzer_pb2.AnalyzerResource(
            type=r["type"], urn=r["urn"], name=r["name"], properties=_struct(r["props"])
        )
        for key, urns in r.get("propertyDependencies", {}).items():
            resource.propertyDependencies[key].urns.extend(urns)
        resources.append(resource)
    return analyzer_pb2.AnalyzeStackRequest(resources=resources)


def _engine_findings(
    stub: analyzer_pb2_grpc.AnalyzerStub, document: dict[str, Any], resources: list[dict[str, Any]]
) -> set[tuple[str, str]]:
    """(policy, urn) of every diagnostic the engine would receive for a stack."""
    found = {(d.policyName, d.urn) for d in stub.AnalyzeStack(_stack_request(document)).diagnostics}
    for r in resources:
        request = analyzer_pb2.AnalyzeRequest(
            type=r["type"], urn=r["urn"], name=r["name"], properties=_struct(r["props"])
        )
        found |= {(d.policyName, d.urn or r["urn"]) for d in stub.Analyze(request).diagnostics}
    return found


def test_the_engine_sees_every_policy_with_its_metadata(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == PACK_NAME
    assert [p.name for p in info.policies] == [p.meta.id for p in POLICIES]
    for policy in info.policies:
        assert policy.enforcementLevel == analyzer_pb2.MANDATORY, policy.name
        assert policy.framework.name == "HIPAA Security Rule", policy.name
        assert policy.framework.reference.startswith("164.3"), policy.name
        assert policy.remediation_steps and policy.description, policy.name
        assert policy.severity != analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED, policy.name


def test_the_engine_finds_nothing_in_the_default_stack(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, plan_json_with_dependencies: dict[str, Any]
) -> None:
    document = plan_json_with_dependencies
    assert _engine_findings(analyzer, document, document["resources"]) == set()


@pytest.mark.parametrize("mutation", all_mutations(), ids=lambda m: m.id)
def test_the_engine_and_pacs_kit_check_agree_on_a_mutation(
    mutation: Any,
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
    plan_json: dict[str, Any],
    judge: Judge,
) -> None:
    snapshot = Snapshot(plan_json)
    mutation.apply(snapshot)
    before = {r["urn"]: r for r in plan_json["resources"]}
    changed = [r for r in snapshot.resources if before.get(r["urn"]) != r]
    offline = {(f.policy, f.urn) for f in judge(snapshot).findings}
    assert offline
    assert _engine_findings(analyzer, snapshot.document, changed) == offline


def test_an_unknown_value_is_not_evaluated_in_both(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, snapshot: Snapshot, judge: Judge
) -> None:
    # During a preview the archive's Object Lock mode may not be known yet.
    lock = snapshot.props(
        "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
        "imaging-archive-object-lock",
    )
    lock["rule"]["defaultRetention"]["mode"] = UNKNOWN_STRING_VALUE
    offline = judge(snapshot, "aws-s3-bucket-require-object-lock").findings
    assert [f.kind for f in offline] == ["not-evaluated"]
    assert not any(f.blocking for f in offline)
    diagnostics = analyzer.AnalyzeStack(_stack_request(snapshot.document)).diagnostics
    mine = [d for d in diagnostics if d.policyName == "aws-s3-bucket-require-object-lock"]
    assert len(mine) == 1
    assert "during preview" in mine[0].message
    assert mine[0].enforcementLevel == analyzer_pb2.ADVISORY
