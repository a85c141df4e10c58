"""Identity: the permissions boundary on every role, the human roles per duty, Access Analyzer."""

from __future__ import annotations

import fnmatch
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import parliament
import pytest

from infra.config import ConfigError, parse_settings
from infra.iam_documents import (
    ARCHIVE_KEY_DUTIES,
    BOUNDARY_DENIES,
    CEILING_EXCLUSIONS,
    DUTIES,
    HUMAN_SESSION_SECONDS,
    MANAGED_POLICY_MAX_CHARS,
    ROLE_INLINE_POLICIES_MAX_CHARS,
    SAML_MFA_ASSURANCE,
    SAML_SIGNIN_AUDIENCE,
    TRUST_POLICY_MAX_CHARS,
    Account,
    human_trust_policy,
    minified_length,
    permissions_boundary_policy,
)
from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun, Registration
from tests.conftest import one, policy_of, statement

PREFIX = "pacs-dev"
BOUNDARY_ARN = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:policy/{PREFIX}-permissions-boundary"
SAML_PROVIDER = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:saml-provider/CorporateIdP"
DERIVED = f"arn:aws:s3:::{PREFIX}-{MOCK_ACCOUNT_ID}-us-east-1-derived"
# The example stack's placeholder: an IAM Identity Center permission-set role (Pulumi.dev.yaml).
IDENTITY_CENTER_ROLE = (
    f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/aws-reserved/sso.amazonaws.com/"
    "AWSReservedSSO_PacsImaging_0123456789abcdef"
)
IDENTITY_ACCOUNT = "111122223333"
IDENTITY_CENTER_ROLE_EU = (
    f"arn:aws:iam::{IDENTITY_ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-2/"
    "AWSReservedSSO_PacsAudit_abcdef0123456789"
)
IAM_USER = f"arn:aws:iam::{IDENTITY_ACCOUNT}:user/alice"
# The longest environment config/_ENVIRONMENT_RE admits (16 characters): the longest prefix.
LONGEST_ENVIRONMENT = "abcdefghijklmnop"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@cache
def _services() -> list[dict[str, Any]]:
    """parliament's copy of AWS's Service Authorization Reference (actions, resources, levels)."""
    path = Path(parliament.__file__).parent / "iam_definition.json"
    services: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return services


@cache
def _iam_definition() -> dict[str, list[str]]:
    """action (lower case) -> its resource types."""
    services = _services()
    return {
        f"{s['prefix']}:{p['privilege']}".lower(): [r["resource_type"] for r in p["resource_types"]]
        for s in services
        for p in s["privileges"]
    }


@cache
def _access_levels() -> dict[str, str]:
    """action (lower case) -> its access level (Read, List, Write, ...)."""
    services = _services()
    return {
        f"{s['prefix']}:{p['privilege']}".lower(): p["access_level"]
        for s in services
        for p in s["privileges"]
    }


def documents(run: ProgramRun) -> Iterator[tuple[Registration, str, dict[str, Any]]]:
    """Every IAM-style policy document of the plan (identity, managed, trust, resource, key)."""
    for r in run.resources:
        for prop in ("policy", "assumeRolePolicy"):
            value = r.inputs.get(prop)
            if isinstance(value, str) and value.lstrip().startswith("{"):
                document = json.loads(value)
                if "Statement" in document:
                    yield r, prop, document


def roles(run: ProgramRun) -> list[Registration]:
    return run.of_type("aws:iam/role:Role")


def boundary(run: ProgramRun) -> dict[str, Any]:
    return policy_of(one(run, "aws:iam/policy:Policy", "permissions-boundary-policy"))


def unconditional_denies(document: dict[str, Any]) -> dict[str, set[str]]:
    """action or action pattern (``logs:Delete*``) -> resources it is denied on, in any context."""
    denied: dict[str, set[str]] = {}
    for s in document["Statement"]:
        if s["Effect"] == "Deny" and "Condition" not in s:
            for action in _as_list(s["Action"]):
                denied.setdefault(action, set()).update(_as_list(s["Resource"]))
    return denied


def denied_on(document: dict[str, Any], action: str) -> set[str]:
    """The resources an exact action is unconditionally denied on, wildcard Deny patterns included.

    IAM matches actions case-insensitively, ``*`` and ``?`` as wildcards.
    """
    return {
        resource
        for pattern, resources in unconditional_denies(document).items()
        if fnmatch.fnmatchcase(action.lower(), pattern.lower())
        for resource in resources
    }


def known_actions() -> list[str]:
    return sorted(_iam_definition())


def human_policy(run: ProgramRun, duty: str) -> dict[str, Any]:
    return policy_of(one(run, "aws:iam/rolePolicy:RolePolicy", f"identity-{duty}-policy"))


def allowed_actions(document: dict[str, Any]) -> set[str]:
    return {
        a for s in document["Statement"] if s["Effect"] == "Allow" for a in _as_list(s["Action"])
    }


# ------------------------------------------------------------------------------ the boundary


def test_the_boundary_is_a_managed_policy_with_the_documented_name(plan: ProgramRun) -> None:
    policy = one(plan, "aws:iam/policy:Policy", "permissions-boundary-policy")
    assert policy.inputs["name"] == f"{PREFIX}-permissions-boundary"
    assert policy.outputs["arn"] == BOUNDARY_ARN
    assert plan.outputs["identity"]["permissionsBoundaryArn"] == BOUNDARY_ARN


def test_every_role_of_the_plan_carries_the_boundary(plan: ProgramRun) -> None:
    # Generic on purpose: any role a component adds is covered without naming it here.
    assert len(roles(plan)) >= 10
    for role in roles(plan):
        assert role.inputs.get("permissionsBoundary") == BOUNDARY_ARN, (
            f"{role.name}: no permissions boundary"
        )


def test_every_role_carries_the_boundary_in_the_other_shapes_of_the_stack(
    plan_with: Callable[..., ProgramRun],
) -> None:
    # No edge, SAML federation: other roles exist; each still carries the boundary.
    run = plan_with(
        edgeClientCaBundle="",
        edgeCertificateArn="",
        identityTrustedPrincipalArns=[],
        identitySamlProviderArn=SAML_PROVIDER,
    )
    for role in roles(run):
        assert role.inputs.get("permissionsBoundary") == BOUNDARY_ARN, f"{role.name}: no boundary"


@pytest.mark.parametrize(
    ("category", "actions"),
    [
        (
            "object-lock bypass",
            ["s3:BypassGovernanceRetention", "s3:PutObjectRetention", "s3:PutObjectLegalHold"],
        ),
        ("object-lock configuration", ["s3:PutBucketObjectLockConfiguration"]),
        (
            "archive destruction",
            ["s3:DeleteBucket", "s3:DeleteObjectVersion", "s3:PutLifecycleConfiguration"],
        ),
        ("archive exposure", ["s3:PutBucketPolicy", "s3:DeleteBucketPolicy"]),
        ("key disable/deletion", ["kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:PutKeyPolicy"]),
        (
            "cloudtrail",
            ["cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "cloudtrail:UpdateTrail"],
        ),
        ("log groups", ["logs:DeleteLogGroup", "logs:PutRetentionPolicy"]),
        (
            "log subscriptions and metric filters",
            [
                "logs:PutSubscriptionFilter",
                "logs:DeleteSubscriptionFilter",
                "logs:PutMetricFilter",
                "logs:DeleteMetricFilter",
            ],
        ),
        ("flow logs", ["ec2:DeleteFlowLogs"]),
        ("access logs and notifications", ["s3:PutBucketLogging", "s3:PutBucketNotification"]),
        (
            "alarms",
            [
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:DisableAlarmActions",
            ],
        ),
        (
            "eventbridge rules",
            [
                "events:PutRule",
                "events:PutTargets",
                "events:RemoveTargets",
                "events:DisableRule",
                "events:DeleteRule",
            ],
        ),
        (
            "security topic",
            [
                "sns:DeleteTopic",
                "sns:SetTopicAttributes",
                "sns:Unsubscribe",
                "sns:RemovePermission",
            ],
        ),
        (
            "finding suppression",
            [
                "guardduty:CreateIPSet",
                "guardduty:UpdateIPSet",
                "guardduty:ArchiveFindings",
                "guardduty:CreateFilter",
                "guardduty:UpdateFilter",
                "securityhub:BatchUpdateFindings",
                "securityhub:CreateAutomationRule",
                "securityhub:BatchUpdateAutomationRules",
                "access-analyzer:UpdateFindings",
                "access-analyzer:CreateArchiveRule",
                "access-analyzer:UpdateArchiveRule",
            ],
        ),
        ("archive index", ["dynamodb:DeleteTable", "dynamodb:UpdateContinuousBackups"]),
        (
            "boundary removal",
            ["iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary"],
        ),
        ("detectors", ["access-analyzer:DeleteAnalyzer", "guardduty:DeleteDetector"]),
        ("backups", ["backup:DeleteRecoveryPoint", "backup:DeleteBackupVaultLockConfiguration"]),
    ],
)
def test_the_boundary_denies_everywhere(
    plan: ProgramRun, category: str, actions: list[str]
) -> None:
    document = boundary(plan)
    for action in actions:
        assert action.lower() in _iam_definition(), f"{action} is not an IAM action"
        assert "*" in denied_on(document, action), f"boundary does not deny {action} ({category})"


def test_the_boundary_denies_edits_of_itself_and_of_the_stacks_roles(plan: ProgramRun) -> None:
    document = boundary(plan)
    for action in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"):
        assert BOUNDARY_ARN in denied_on(document, action), action
    for action in (
        "iam:PutRolePolicy",
        "iam:UpdateAssumeRolePolicy",
        "iam:DeleteRole",
        "iam:UpdateRole",
        "iam:UntagRole",
    ):
        stack_roles = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{PREFIX}-*"
        assert stack_roles in denied_on(document, action), action


def test_new_principals_must_carry_the_same_boundary(plan: ProgramRun) -> None:
    s = statement(boundary(plan), "NewPrincipalsCarryThisBoundary")
    assert s["Effect"] == "Deny"
    assert set(s["Action"]) == {"iam:CreateRole", "iam:CreateUser"}
    assert s["Condition"] == {"ArnNotEquals": {"iam:PermissionsBoundary": BOUNDARY_ARN}}


def test_the_ceiling_is_a_short_notaction_list_of_actions_also_denied(plan: ProgramRun) -> None:
    # The explicit Deny statements are the control; the ceiling only keeps the gravest actions
    # out of reach too, without a wildcard action and without repeating every denial (B1: the
    # repeated list pushed the policy past IAM's 6,144 characters).
    document = boundary(plan)
    (ceiling,) = [s for s in document["Statement"] if s["Effect"] == "Allow"]
    assert "Action" not in ceiling, "the ceiling names what it excludes, never a wildcard action"
    assert ceiling["Resource"] == "*"
    assert ceiling["NotAction"] == list(CEILING_EXCLUSIONS)
    assert len(CEILING_EXCLUSIONS) <= 12
    for action in CEILING_EXCLUSIONS:
        assert "*" not in action and action.lower() in _iam_definition(), action
        assert "*" in denied_on(document, action), f"{action} is left out but never denied"


def test_every_wildcard_of_the_boundary_denies_real_actions_only_in_deny_statements(
    plan: ProgramRun,
) -> None:
    actions = known_actions()
    for s in boundary(plan)["Statement"]:
        for pattern in _as_list(s.get("Action", s.get("NotAction"))):
            if "*" not in pattern:
                continue
            assert s["Effect"] == "Deny", f"{s['Sid']}: wildcard {pattern} outside a Deny"
            matched = fnmatch.filter(actions, pattern.lower())
            assert matched, f"{s['Sid']}: {pattern} matches no IAM action (a typo denies nothing)"


def test_no_role_of_the_plan_is_granted_what_the_boundary_denies(
    plan: ProgramRun,
) -> None:
    # A grant the boundary denies would fail only in AWS; every inline policy, human or workload.
    document = boundary(plan)
    conflicts = [
        f"{r.name} {s.get('Sid')}: {action}"
        for r in plan.of_type("aws:iam/rolePolicy:RolePolicy")
        for s in policy_of(r)["Statement"]
        if s["Effect"] == "Allow"
        for action in _as_list(s["Action"])
        if denied_on(document, action)
    ]
    assert not conflicts, "\n".join(conflicts)


def test_the_conflict_check_would_see_a_denied_grant() -> None:
    # The control for the test above: a grant of a wildcard-denied action is found.
    document = permissions_boundary_policy(Account("123456789012", "aws", "us-east-1"), PREFIX)
    for action in ("logs:DeleteLogGroup", "backup:DeleteRecoveryPoint", "s3:PutBucketPolicy"):
        assert denied_on(document, action) == {"*"}, action
    assert not denied_on(document, "s3:DeleteObject"), "the ingest may delete inbox objects"
    assert not denied_on(document, "dynamodb:DeleteItem"), "idempotency records are deleted"


def test_every_boundary_statement_says_why(plan: ProgramRun) -> None:
    sids = [s.get("Sid", "") for s in boundary(plan)["Statement"]]
    assert all(sids) and len(set(sids)) == len(sids), sids
    assert set(BOUNDARY_DENIES) <= set(sids)


# ------------------------------------------------------------------- every document of the plan


def test_no_allow_statement_in_the_plan_has_a_wildcard_action(plan: ProgramRun) -> None:
    # Every document: roles, managed policies, bucket/key/queue/topic policies, endpoints.
    for r, prop, document in documents(plan):
        for s in document["Statement"]:
            if s["Effect"] != "Allow":
                continue
            listed = _as_list(s.get("Action", s.get("NotAction")))
            assert not [a for a in listed if "*" in a], f"{r.name}.{prop}: {s.get('Sid')}"


def quota_problems(run: ProgramRun) -> list[str]:
    """Every IAM size quota the plan's documents could exceed (characters without whitespace)."""
    problems = []
    for r in run.of_type("aws:iam/policy:Policy"):
        size = minified_length(policy_of(r))
        if size > MANAGED_POLICY_MAX_CHARS:
            problems.append(f"{r.name}: managed policy {size} > {MANAGED_POLICY_MAX_CHARS}")
    inline: dict[str, int] = defaultdict(int)
    for r in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        inline[str(r.inputs["role"])] += minified_length(policy_of(r))
    for role, size in inline.items():
        if size > ROLE_INLINE_POLICIES_MAX_CHARS:
            problems.append(f"{role}: inline policies {size} > {ROLE_INLINE_POLICIES_MAX_CHARS}")
    for r in roles(run):
        size = minified_length(policy_of(r, "assumeRolePolicy"))
        if size > TRUST_POLICY_MAX_CHARS:
            problems.append(f"{r.name}: trust policy {size} > {TRUST_POLICY_MAX_CHARS}")
    return problems


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="example-stack"),
        pytest.param({"environment": LONGEST_ENVIRONMENT}, id="longest-prefix"),
        pytest.param(
            {
                "environment": LONGEST_ENVIRONMENT,
                "identityTrustedPrincipalArns": [],
                "identitySamlProviderArn": SAML_PROVIDER,
                "enableAccessAnalyzer": True,
                "enableGuardDuty": True,
                "enableSecurityHub": True,
            },
            id="longest-prefix-saml-detectors",
        ),
        pytest.param(
            {
                "environment": LONGEST_ENVIRONMENT,
                "identityTrustedPrincipalArns": [
                    IDENTITY_CENTER_ROLE,
                    IDENTITY_CENTER_ROLE_EU,
                    IAM_USER,
                    f"arn:aws:iam::{IDENTITY_ACCOUNT}:root",
                ],
            },
            id="longest-prefix-every-principal-kind",
        ),
    ],
)
def test_every_document_fits_iam_size_quotas(
    plan_with: Callable[..., ProgramRun], overrides: dict[str, Any]
) -> None:
    # IAM refuses (CreatePolicy, PutRolePolicy, CreateRole) a document over its quota: the whole
    # stack would fail to deploy. The boundary grows with the prefix, so the longest one counts.
    run = plan_with(**overrides)
    assert run.of_type("aws:iam/policy:Policy")
    assert not quota_problems(run), "\n".join(quota_problems(run))


def test_the_boundary_leaves_a_margin_under_the_managed_policy_quota() -> None:
    account = Account("123456789012", "aws-us-gov", "us-gov-west-1")
    size = minified_length(permissions_boundary_policy(account, f"pacs-{LONGEST_ENVIRONMENT}"))
    assert size <= 0.8 * MANAGED_POLICY_MAX_CHARS, f"{size}: room for a few more denials only"


def test_every_action_in_the_plan_exists(plan: ProgramRun) -> None:
    known = _iam_definition()
    unknown = [
        f"{r.name}.{prop}: {action}"
        for r, prop, document in documents(plan)
        for s in document["Statement"]
        for action in _as_list(s.get("Action", s.get("NotAction")))
        if "*" not in action and action.lower() not in known
    ]
    assert not unknown, unknown


def test_star_resources_only_where_aws_has_no_resource_level_permission(
    plan: ProgramRun,
) -> None:
    known = _iam_definition()
    problems = []
    for r in plan.of_type("aws:iam/rolePolicy:RolePolicy"):
        for s in policy_of(r)["Statement"]:
            if s["Effect"] == "Allow" and s["Resource"] == "*":
                scoped = [a for a in _as_list(s["Action"]) if any(known[a.lower()])]
                if scoped:
                    problems.append(f"{r.name} {s.get('Sid')}: {scoped} take resource ARNs")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------- human roles


def test_one_role_per_duty_tagged_with_its_duty(plan: ProgramRun) -> None:
    for duty in DUTIES:
        role = one(plan, "aws:iam/role:Role", f"identity-{duty}")
        assert role.inputs["name"] == f"{PREFIX}-{duty}"
        assert role.inputs["tags"] == {"duty": duty}
        arn = plan.outputs["identity"]["roleArns"][duty]
        assert arn == f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{PREFIX}-{duty}"


def test_human_sessions_end_within_an_hour(plan: ProgramRun) -> None:
    for duty in DUTIES:
        role = one(plan, "aws:iam/role:Role", f"identity-{duty}")
        assert role.inputs["maxSessionDuration"] <= HUMAN_SESSION_SECONDS == 3600, duty


def trust_of(run: ProgramRun, duty: str) -> dict[str, Any]:
    return policy_of(one(run, "aws:iam/role:Role", f"identity-{duty}"), "assumeRolePolicy")


def test_identity_center_roles_are_pinned_by_arn_without_an_unsatisfiable_mfa_key(
    plan: ProgramRun,
) -> None:
    # Identity Center sessions come from SAML and never carry aws:MultiFactorAuthPresent (nor do
    # sessions chained from them): a Bool on it would lock every user out (B2). Identity Center
    # enforces MFA at sign-in; the trust admits only that permission set's role, under any suffix.
    pattern = IDENTITY_CENTER_ROLE[:-16] + "?" * 16
    for duty in DUTIES:
        (s,) = trust_of(plan, duty)["Statement"]
        assert s["Principal"] == {"AWS": [f"arn:aws:iam::{MOCK_ACCOUNT_ID}:root"]}, duty
        assert "sts:AssumeRole" in s["Action"]
        assert s["Condition"] == {"ArnLike": {"aws:PrincipalArn": [pattern]}}, duty
        assert "aws:MultiFactorAuthPresent" not in json.dumps(s), duty


def test_the_identity_center_pattern_admits_the_recreated_role_and_nothing_else() -> None:
    (s,) = human_trust_policy(trusted_principal_arns=[IDENTITY_CENTER_ROLE_EU])["Statement"]
    (pattern,) = s["Condition"]["ArnLike"]["aws:PrincipalArn"]
    base = IDENTITY_CENTER_ROLE_EU[:-16]
    assert fnmatch.fnmatchcase(IDENTITY_CENTER_ROLE_EU, pattern)
    assert fnmatch.fnmatchcase(base + "fedcba9876543210", pattern), "a re-created role"
    assert not fnmatch.fnmatchcase(base.replace("PacsAudit", "PacsAdmin") + "0" * 16, pattern)
    assert not fnmatch.fnmatchcase(base + "0" * 17, pattern)
    assert s["Principal"] == {"AWS": [f"arn:aws:iam::{IDENTITY_ACCOUNT}:root"]}


def test_iam_users_and_account_roots_must_have_used_mfa_within_the_hour(
    plan_with: Callable[..., ProgramRun],
) -> None:
    root = f"arn:aws:iam::{IDENTITY_ACCOUNT}:root"
    run = plan_with(identityTrustedPrincipalArns=[IAM_USER, root, IDENTITY_CENTER_ROLE])
    for duty in DUTIES:
        users, identity_center = trust_of(run, duty)["Statement"]
        assert users["Principal"] == {"AWS": sorted([IAM_USER, root])}
        assert users["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}, duty
        assert users["Condition"]["NumericLessThan"] == {"aws:MultiFactorAuthAge": "3600"}, duty
        assert "ArnLike" in identity_center["Condition"], duty
        analysed: Any = parliament.analyze_policy_string(json.dumps(trust_of(run, duty)))
        findings = [f for f in analysed.findings if f.issue != "MALFORMED"]
        assert not findings, f"{duty}: {findings}"


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:iam::{IDENTITY_ACCOUNT}:role/Admin",
        f"arn:aws:iam::{IDENTITY_ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_X",
        f"arn:aws:iam::{IDENTITY_ACCOUNT}:saml-provider/IdP",
    ],
)
def test_the_trust_refuses_principals_that_cannot_prove_mfa(arn: str) -> None:
    with pytest.raises(ValueError, match="cannot prove MFA"):
        human_trust_policy(trusted_principal_arns=[arn])


def test_saml_federation_requires_the_sign_in_audience_and_an_mfa_assertion(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(identityTrustedPrincipalArns=[], identitySamlProviderArn=SAML_PROVIDER)
    for duty in DUTIES:
        trust = policy_of(one(run, "aws:iam/role:Role", f"identity-{duty}"), "assumeRolePolicy")
        (s,) = trust["Statement"]
        assert s["Principal"] == {"Federated": SAML_PROVIDER}
        assert set(s["Action"]) == {
            "sts:AssumeRoleWithSAML",
            "sts:SetSourceIdentity",
            "sts:TagSession",
        }
        assert s["Condition"]["StringEquals"] == {"SAML:aud": SAML_SIGNIN_AUDIENCE}
        # STS has no MFA context for AssumeRoleWithSAML (aws:MultiFactorAuthPresent is absent, so
        # a Bool on it would refuse every sign-in): the IdP asserts MFA instead.
        assert s["Condition"]["ForAnyValue:StringEquals"] == {
            "SAML:edupersonassurance": SAML_MFA_ASSURANCE
        }
        analysed: Any = parliament.analyze_policy_string(json.dumps(trust))
        findings = [f for f in analysed.findings if f.issue != "MALFORMED"]
        assert not findings, f"{duty}: {findings}"


def test_no_federation_source_means_no_human_roles(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(identityTrustedPrincipalArns=[])
    assert not [r for r in roles(run) if r.name.startswith("identity-")]
    assert run.outputs["identity"]["roleArns"] == {}
    key_use = statement(
        policy_of(one(run, "aws:kms/key:Key", "keys-archive")), "KeyUseByStackRoles"
    )
    principals = key_use["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    assert not [p for p in principals if p.endswith(tuple(DUTIES))]


def test_the_archive_key_names_exactly_the_human_readers(plan: ProgramRun) -> None:
    key_use = statement(
        policy_of(one(plan, "aws:kms/key:Key", "keys-archive")), "KeyUseByStackRoles"
    )
    principals = set(key_use["Condition"]["ArnEquals"]["aws:PrincipalArn"])
    human = {p.rsplit("/", 1)[1].removeprefix(f"{PREFIX}-") for p in principals}
    assert human & set(DUTIES) == set(ARCHIVE_KEY_DUTIES)
    assert "security-auditor" not in human


@pytest.mark.parametrize("duty", ["imaging-viewer", "integration-partner", "break-glass"])
def test_readers_decrypt_only_through_s3(plan: ProgramRun, duty: str) -> None:
    document = human_policy(plan, duty)
    (kms,) = [s for s in document["Statement"] if "kms:Decrypt" in s["Action"]]
    assert kms["Action"] == ["kms:Decrypt"]
    assert kms["Resource"] == one(plan, "aws:kms/key:Key", "keys-archive").outputs["arn"]
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}


@pytest.mark.parametrize(
    "duty", ["imaging-viewer", "security-auditor", "integration-partner", "break-glass"]
)
def test_readers_hold_no_write_permission(plan: ProgramRun, duty: str) -> None:
    levels = _access_levels()
    # AWS files kms:Decrypt under Write; here it only opens objects the role may read, through S3.
    writes = sorted(
        a
        for a in allowed_actions(human_policy(plan, duty)) - {"kms:Decrypt"}
        if levels[a.lower()] not in ("Read", "List")
    )
    assert not writes, f"{duty} may {writes}"


def test_the_operator_writes_only_to_the_two_ingest_queues(plan: ProgramRun) -> None:
    levels = _access_levels()
    document = human_policy(plan, "imaging-operator")
    queues = {
        one(plan, "aws:sqs/queue:Queue", "ingest-queue").outputs["arn"],
        one(plan, "aws:sqs/queue:Queue", "ingest-dlq").outputs["arn"],
    }
    for s in document["Statement"]:
        writes = [a for a in _as_list(s["Action"]) if levels[a.lower()] not in ("Read", "List")]
        if writes and not all(a.startswith("kms:") for a in writes):
            assert set(_as_list(s["Resource"])) <= queues, s["Sid"]
    assert not [a for a in allowed_actions(document) if a.startswith("s3:")], "no object access"


def test_the_auditor_reads_no_imaging_object_only_the_trails_files(plan: ProgramRun) -> None:
    document = human_policy(plan, "security-auditor")
    trail = one(plan, "aws:s3/bucket:Bucket", "audit-audit-trail").inputs["bucket"]
    imaging = {
        str(one(plan, "aws:s3/bucket:Bucket", f"imaging-{p}").inputs["bucket"])
        for p in ("inbox", "archive", "quarantine", "derived")
    }
    object_reads = []
    for s in document["Statement"]:
        for resource in _as_list(s["Resource"]):
            if resource.startswith("arn:aws:s3:::") and "/" in resource:
                object_reads.append(resource)
                assert resource.split(":::")[1].split("/")[0] not in imaging, s["Sid"]
    assert object_reads == [f"arn:aws:s3:::{trail}/AWSLogs/{MOCK_ACCOUNT_ID}/*"]
    decrypt = statement(document, "DecryptTheTrailsFilesThroughS3Only")
    logs_key = one(plan, "aws:kms/key:Key", "keys-logs").outputs["arn"]
    assert decrypt["Resource"] == logs_key, "the archive key never: only the logs key"
    assert "kms:EncryptionContext:aws:cloudtrail:arn" in decrypt["Condition"]["Null"]


def test_the_partner_reads_only_the_deidentified_prefix(plan: ProgramRun) -> None:
    document = human_policy(plan, "integration-partner")
    reads = statement(document, "ReadDeidentifiedObjectsOnly")
    assert reads["Resource"] == [f"{DERIVED}/derived/*"]
    listing = statement(document, "ListTheDeidentifiedPrefixOnly")
    assert listing["Resource"] == DERIVED
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "derived/*"}}


def test_break_glass_reads_every_imaging_bucket(plan: ProgramRun) -> None:
    reads = statement(human_policy(plan, "break-glass"), "EmergencyReadOfEveryImagingObject")
    buckets = {r.rsplit("-", 1)[1].removesuffix("/*") for r in reads["Resource"]}
    assert buckets == {"inbox", "archive", "quarantine", "derived"}


def test_every_human_statement_says_why(plan: ProgramRun) -> None:
    for duty in DUTIES:
        sids = [s.get("Sid") for s in human_policy(plan, duty)["Statement"]]
        assert all(sids) and len(set(sids)) == len(sids), f"{duty}: {sids}"


def test_no_access_analyzer_by_default_and_the_auditor_reads_the_accounts_own(
    plan: ProgramRun,
) -> None:
    # One ACCOUNT analyzer per account and region (B3): a dev and a prod stack in one account, or
    # an organization's analyzer, would make a second one fail. Off unless enableAccessAnalyzer.
    assert not plan.of_type("aws:accessanalyzer/analyzer:Analyzer")
    assert plan.outputs["identity"]["accessAnalyzerArn"] is None
    reads = statement(human_policy(plan, "security-auditor"), "ReadAccessAnalyzerFindings")
    assert reads["Resource"] == f"arn:aws:access-analyzer:us-east-1:{MOCK_ACCOUNT_ID}:analyzer/*"


def test_enable_access_analyzer_creates_the_account_analyzer_the_auditor_reads(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(enableAccessAnalyzer=True)
    analyzer = one(run, "aws:accessanalyzer/analyzer:Analyzer", "identity-analyzer")
    assert analyzer.inputs["type"] == "ACCOUNT"
    assert analyzer.inputs["analyzerName"] == f"{PREFIX}-account"
    assert run.outputs["identity"]["accessAnalyzerArn"] == analyzer.outputs["arn"]
    reads = statement(human_policy(run, "security-auditor"), "ReadAccessAnalyzerFindings")
    assert reads["Resource"] == analyzer.outputs["arn"]


# ------------------------------------------------------------------------------------- config


def parse(**raw: object) -> Any:
    return parse_settings(raw, region="us-east-1", stack="test")


def test_default_is_no_federation_source_and_no_analyzer() -> None:
    identity = parse().identity
    assert identity.saml_provider_arn is None
    assert identity.trusted_principal_arns == ()
    assert not identity.federated
    assert not identity.enable_access_analyzer


def test_enable_access_analyzer_is_a_boolean() -> None:
    assert parse(enableAccessAnalyzer="true").identity.enable_access_analyzer
    with pytest.raises(ConfigError) as error:
        parse(enableAccessAnalyzer="yes")
    assert error.value.key == "cloud-pacs:enableAccessAnalyzer"
    assert "true or false" in error.value.allowed


def test_every_principal_kind_that_can_prove_mfa_is_accepted() -> None:
    settings = parse(identityTrustedPrincipalArns=json.dumps([IDENTITY_CENTER_ROLE_EU, IAM_USER]))
    assert settings.identity.trusted_principal_arns == tuple(
        sorted([IDENTITY_CENTER_ROLE_EU, IAM_USER])
    )
    assert not [w for w in settings.warnings if "identityTrustedPrincipalArns" in w]


def test_an_account_root_is_accepted_with_a_warning_naming_the_key() -> None:
    root = f"arn:aws:iam::{IDENTITY_ACCOUNT}:root"
    settings = parse(identityTrustedPrincipalArns=json.dumps([root]))
    (warning,) = [w for w in settings.warnings if "identityTrustedPrincipalArns" in w]
    assert warning.startswith("cloud-pacs:identityTrustedPrincipalArns names " + root)


def test_a_plain_role_is_refused_because_its_sessions_cannot_prove_mfa() -> None:
    role = f"arn:aws:iam::{IDENTITY_ACCOUNT}:role/IdentityAccountAdmins"
    with pytest.raises(ConfigError) as error:
        parse(identityTrustedPrincipalArns=json.dumps([role]))
    assert error.value.key == "cloud-pacs:identityTrustedPrincipalArns"
    assert "Other roles cannot prove MFA" in error.value.allowed
    assert role in str(error.value)


def test_principals_that_would_overflow_the_trust_quota_are_refused() -> None:
    many = [
        f"arn:aws:iam::{IDENTITY_ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-2/"
        f"AWSReservedSSO_PacsDuty{i:02d}_0123456789abcdef"
        for i in range(20)
    ]
    with pytest.raises(ConfigError) as error:
        parse(identityTrustedPrincipalArns=json.dumps(many))
    assert error.value.key == "cloud-pacs:identityTrustedPrincipalArns"
    assert f"{TRUST_POLICY_MAX_CHARS} characters" in error.value.allowed


def test_either_source_is_accepted() -> None:
    assert parse(identitySamlProviderArn=SAML_PROVIDER).identity.federated
    principals = json.dumps([IDENTITY_CENTER_ROLE])
    assert parse(identityTrustedPrincipalArns=principals).identity.federated


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        (
            {
                "identitySamlProviderArn": SAML_PROVIDER,
                "identityTrustedPrincipalArns": '["arn:aws:iam::111122223333:root"]',
            },
            "identityTrustedPrincipalArns",
            "exactly one federation source",
        ),
        (
            {"identitySamlProviderArn": "arn:aws:iam::111122223333:role/Idp"},
            "identitySamlProviderArn",
            "IAM SAML provider",
        ),
        (
            {"identityTrustedPrincipalArns": '["*"]'},
            "identityTrustedPrincipalArns",
            "IAM user ARNs, account-root ARNs",
        ),
        (
            {"identityTrustedPrincipalArns": "arn:aws:iam::111122223333:root"},
            "identityTrustedPrincipalArns",
            "list of strings",
        ),
        (
            {
                "identityTrustedPrincipalArns": (
                    '["arn:aws:iam::111122223333:root","arn:aws:iam::111122223333:root"]'
                )
            },
            "identityTrustedPrincipalArns",
            "must not repeat",
        ),
    ],
)
def test_bad_identity_value_names_key_value_and_allowed(
    raw: dict[str, object], key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse(**raw)
    assert error.value.key == f"cloud-pacs:{key}"
    assert fragment in error.value.allowed
    assert str(error.value).startswith(f"invalid config cloud-pacs:{key} = ")
