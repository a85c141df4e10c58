"""Identity: the permissions boundary on every role, the human roles per duty, Access Analyzer."""

from __future__ import annotations

import json
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
    DUTIES,
    HUMAN_SESSION_SECONDS,
    SAML_MFA_ASSURANCE,
    SAML_SIGNIN_AUDIENCE,
)
from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun, Registration
from tests.conftest import one, policy_of, statement

PREFIX = "pacs-dev"
BOUNDARY_ARN = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:policy/{PREFIX}-permissions-boundary"
SAML_PROVIDER = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:saml-provider/CorporateIdP"
DERIVED = f"arn:aws:s3:::{PREFIX}-{MOCK_ACCOUNT_ID}-us-east-1-derived"


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
    """action -> resources it is denied on, whatever the request's context."""
    denied: dict[str, set[str]] = {}
    for s in document["Statement"]:
        if s["Effect"] == "Deny" and "Condition" not in s:
            for action in _as_list(s["Action"]):
                denied.setdefault(action, set()).update(_as_list(s["Resource"]))
    return denied


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
        ("object-lock bypass", ["s3:BypassGovernanceRetention", "s3:PutObjectRetention"]),
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
        ("flow logs", ["ec2:DeleteFlowLogs"]),
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
    denied = unconditional_denies(boundary(plan))
    for action in actions:
        assert denied.get(action) == {"*"}, f"boundary does not deny {action} ({category})"


def test_the_boundary_denies_edits_of_itself_and_of_the_stacks_roles(plan: ProgramRun) -> None:
    denied = unconditional_denies(boundary(plan))
    for action in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"):
        assert BOUNDARY_ARN in denied[action], action
    for action in ("iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole"):
        assert f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{PREFIX}-*" in denied[action], action


def test_new_principals_must_carry_the_same_boundary(plan: ProgramRun) -> None:
    s = statement(boundary(plan), "NewPrincipalsCarryThisBoundary")
    assert s["Effect"] == "Deny"
    assert set(s["Action"]) == {"iam:CreateRole", "iam:CreateUser"}
    assert s["Condition"] == {"ArnNotEquals": {"iam:PermissionsBoundary": BOUNDARY_ARN}}


def test_the_ceiling_allows_everything_but_exactly_what_is_denied(plan: ProgramRun) -> None:
    document = boundary(plan)
    (ceiling,) = [s for s in document["Statement"] if s["Effect"] == "Allow"]
    assert "Action" not in ceiling, "the ceiling names what it excludes, never a wildcard action"
    assert ceiling["Resource"] == "*"
    assert set(ceiling["NotAction"]) == set(unconditional_denies(document))


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


def test_trusted_principals_must_have_used_mfa_within_the_hour(plan: ProgramRun) -> None:
    for duty in DUTIES:
        trust = policy_of(one(plan, "aws:iam/role:Role", f"identity-{duty}"), "assumeRolePolicy")
        (s,) = trust["Statement"]
        assert s["Principal"] == {"AWS": [f"arn:aws:iam::{MOCK_ACCOUNT_ID}:root"]}
        assert "sts:AssumeRole" in s["Action"]
        assert s["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}, duty
        assert s["Condition"]["NumericLessThan"] == {"aws:MultiFactorAuthAge": "3600"}, duty


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
    assert run.of_type("aws:accessanalyzer/analyzer:Analyzer"), "the analyzer exists regardless"
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


def test_the_auditor_reads_no_object(plan: ProgramRun) -> None:
    document = human_policy(plan, "security-auditor")
    for s in document["Statement"]:
        for resource in _as_list(s["Resource"]):
            assert not (resource.startswith("arn:aws:s3:::") and "/" in resource), s["Sid"]
    assert not {"s3:GetObject", "kms:Decrypt"} & allowed_actions(document)


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


def test_access_analyzer_covers_the_account(plan: ProgramRun) -> None:
    analyzer = one(plan, "aws:accessanalyzer/analyzer:Analyzer", "identity-analyzer")
    assert analyzer.inputs["type"] == "ACCOUNT"
    assert analyzer.inputs["analyzerName"] == f"{PREFIX}-account"
    assert plan.outputs["identity"]["accessAnalyzerArn"] == analyzer.outputs["arn"]


# ------------------------------------------------------------------------------------- config


def parse(**raw: object) -> Any:
    return parse_settings(raw, region="us-east-1", stack="test")


def test_default_is_no_federation_source() -> None:
    identity = parse().identity
    assert identity.saml_provider_arn is None
    assert identity.trusted_principal_arns == ()
    assert not identity.federated


def test_either_source_is_accepted() -> None:
    assert parse(identitySamlProviderArn=SAML_PROVIDER).identity.federated
    principals = (
        '["arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_X_0123"]'
    )
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
            "role, user or account-root ARNs",
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
