"""Every policy document of the planned stack, linted by parliament (an independent IAM linter).

parliament models identity policies. Resource, key, trust and endpoint policies legitimately differ
from that model in a few ways; each accepted finding is listed with why. Anything else fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import parliament
import pytest

from infra.iam_documents import SiemDeliveryResources, siem_delivery_role_policy
from pacs_kit.program import ProgramRun, Registration

# (resource type, policy property) -> {finding: (text its detail must contain, why it is right)}
ACCEPTED: dict[tuple[str, str], dict[str, tuple[str, str]]] = {
    ("aws:kms/key:Key", "policy"): {
        "RESOURCE_STAR": ("", 'in a key policy "*" means this key and nothing else'),
        "UNKNOWN_CONDITION_FOR_ACTION": (
            "kms:EncryptionContext:aws:logs:arn",
            "CloudWatch Logs' documented statement conditions DescribeKey on the context too",
        ),
        "MISMATCHED_TYPE": (
            "ArnLike",
            "AWS documents ArnLike for kms:EncryptionContext:aws:logs:arn",
        ),
    },
    ("aws:ec2/vpcEndpoint:VpcEndpoint", "policy"): {
        "RESOURCE_STAR": ("", "an endpoint policy is a ceiling bounded by account conditions"),
    },
    ("aws:iam/role:Role", "assumeRolePolicy"): {
        "MALFORMED": ("neither Resource", "a trust policy has no Resource element by definition"),
    },
    ("aws:s3/bucketPolicy:BucketPolicy", "policy"): {
        "MISMATCHED_TYPE_BUT_USABLE": (
            "StringNotEquals",
            "AWS documents StringNotEquals for s3:x-amz-server-side-encryption-aws-kms-key-id",
        ),
        "MISMATCHED_TYPE": (
            "s3:TlsVersion",
            "parliament's Numeric type takes integers only; AWS documents s3:TlsVersion 1.2",
        ),
        "UNKNOWN_CONDITION_FOR_ACTION": (
            "s3:TlsVersion",
            "the TLS-version Deny over s3:* skips actions without the key; "
            "DenyInsecureTransport still covers them",
        ),
    },
    ("aws:iam/rolePolicy:RolePolicy", "policy"): {},
    # The permissions boundary: its Deny statements take power away on every resource, which is
    # the point of a cap; its one Allow is a NotAction ceiling (parliament expands it, no finding).
    ("aws:iam/policy:Policy", "policy"): {
        "RESOURCE_STAR": ("", 'a Deny on "*" denies everywhere: a boundary caps every resource'),
    },
    ("aws:sqs/queuePolicy:QueuePolicy", "policy"): {},
    ("aws:sns/topicPolicy:TopicPolicy", "policy"): {},
}
# "policy" properties that are not IAM documents, and what they are instead.
NOT_IAM: dict[tuple[str, str], str] = {
    ("aws:ecr/lifecyclePolicy:LifecyclePolicy", "policy"): "image expiry rules of a repository",
}


def for_parliament(document: str) -> str:
    """parliament crashes on JSON numbers in conditions; IAM reads them as strings anyway."""

    def stringify(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: stringify(v) for k, v in value.items()}
        if isinstance(value, list):
            return [stringify(v) for v in value]
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )

    return json.dumps(stringify(json.loads(document)))


def documents(plan: ProgramRun) -> list[tuple[Registration, str]]:
    found = []
    for r in plan.resources:
        for prop in ("policy", "assumeRolePolicy"):
            if isinstance(r.inputs.get(prop), str) and (r.type, prop) not in NOT_IAM:
                found.append((r, prop))
    return found


def test_every_policy_kind_is_known(plan: ProgramRun) -> None:
    kinds = {(r.type, prop) for r, prop in documents(plan)}
    assert kinds == set(ACCEPTED), "a new kind of policy document needs an ACCEPTED entry"


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        (
            "ingest",
            {
                "ingest-ingest-role",
                "ingest-ingest-policy",
                "ingest-verify-role",
                "ingest-verify-policy",
                "ingest-queue-policy",
                "ingest-dlq-policy",
                "ingest-verify-failures-policy",
                "ingest-operations-policy",
            },
        ),
        (
            "edge",
            {
                "edge-task-role",
                "edge-task-policy",
                "edge-execution-role",
                "edge-execution-policy",
                "edge-trust-policy",
                "imaging-access-logs-policy",
                "keys-edge",
            },
        ),
        (
            "identity",
            {
                "permissions-boundary-policy",
                "identity-imaging-viewer",
                "identity-imaging-viewer-policy",
                "identity-imaging-operator",
                "identity-imaging-operator-policy",
                "identity-security-auditor",
                "identity-security-auditor-policy",
                "identity-integration-partner",
                "identity-integration-partner-policy",
                "identity-break-glass",
                "identity-break-glass-policy",
            },
        ),
        (
            "audit",
            {
                "audit-trail-role",
                "audit-trail-role-policy",
                "audit-siem-delivery-role",
                "audit-siem-delivery-policy",
                "audit-log-shipping-role",
                "audit-log-shipping-policy",
                "audit-security-policy",
                "audit-siem-objects-policy",
                "audit-audit-trail-policy",
                "audit-siem-backup-policy",
                "keys-logs",
            },
        ),
    ],
)
def test_the_components_documents_are_linted(
    plan: ProgramRun, component: str, expected: set[str]
) -> None:
    linted = {r.name for r, _ in documents(plan)}
    assert expected <= linted, f"{component}: not linted: {sorted(expected - linted)}"


def unexplained_findings(found: Iterable[tuple[Registration, str]]) -> list[str]:
    """Parliament's findings on these documents that ACCEPTED does not explain."""
    problems: list[str] = []
    for resource, prop in found:
        accepted = ACCEPTED[(resource.type, prop)]
        analysed: Any = parliament.analyze_policy_string(for_parliament(resource.inputs[prop]))
        for finding in analysed.findings:
            must_mention, _why = accepted.get(finding.issue, ("\0", ""))
            if must_mention not in str(finding.detail):
                problems.append(f"{resource.name}.{prop}: {finding.issue} {finding.detail}")
    return problems


def test_policies_have_no_unexplained_findings(plan: ProgramRun) -> None:
    problems = unexplained_findings(documents(plan))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kind", sorted(k for k, v in ACCEPTED.items() if not v))
def test_identity_policies_are_clean(plan: ProgramRun, kind: tuple[str, str]) -> None:
    for resource, prop in documents(plan):
        if (resource.type, prop) == kind:
            analysed: Any = parliament.analyze_policy_string(for_parliament(resource.inputs[prop]))
            assert not analysed.findings, f"{resource.name}: {analysed.findings}"


RESEARCH_DOCUMENTS = {
    "research-research-role",
    "research-research-policy",
    "research-reidentification",
    "research-reidentification-policy",
    "research-queue-policy",
    "research-dlq-policy",
    "keys-linkage",
    "keys-archive",
    "keys-pseudonym",
}


def test_the_research_documents_have_no_unexplained_findings(research_plan: ProgramRun) -> None:
    # Research copies with linkage exist only with researchProjects: linted on that stack.
    found = [(r, prop) for r, prop in documents(research_plan) if r.name in RESEARCH_DOCUMENTS]
    assert {r.name for r, _ in found} == RESEARCH_DOCUMENTS
    problems = unexplained_findings(found)
    assert not problems, "\n".join(problems)


EXPORT_DOCUMENTS = {
    "exports-export-role",
    "exports-export-policy",
    "exports-export-link-role",
    "exports-export-link-policy",
    "exports-failures-policy",
    "exports-bucket-policy",
    "identity-imaging-operator-policy",
    "imaging-access-logs-policy",
    "keys-archive",
    "keys-signing",
}


def test_the_export_documents_have_no_unexplained_findings(exports_plan: ProgramRun) -> None:
    # The export and link functions exist only with exportsEnabled: linted on that stack.
    found = [(r, prop) for r, prop in documents(exports_plan) if r.name in EXPORT_DOCUMENTS]
    assert {r.name for r, _ in found} == EXPORT_DOCUMENTS
    problems = unexplained_findings(found)
    assert not problems, "\n".join(problems)


def test_siem_delivery_role_with_a_push_destination_is_clean() -> None:
    # The dev stack ships to a pull bucket; an http or splunk stream also reads its secret.
    document = siem_delivery_role_policy(
        SiemDeliveryResources(
            bucket_names=("pacs-prod-123456789012-us-east-1-siem-backup",),
            logs_key_arn="arn:aws:kms:us-east-1:123456789012:key/0000-1111",
            error_log_group_arn=(
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/kinesisfirehose/pacs-prod-siem"
            ),
            s3_service_endpoint="s3.us-east-1.amazonaws.com",
            secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:pacs-prod/siem/k-AbCdEf",
            secretsmanager_service_endpoint="secretsmanager.us-east-1.amazonaws.com",
        )
    )
    analysed: Any = parliament.analyze_policy_string(json.dumps(document))
    assert not analysed.findings, analysed.findings
