"""KeyRing: one customer-managed key per purpose, admin separated from use."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infra.iam_documents import KEY_ADMIN_ACTIONS, KEY_USE_ACTIONS
from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun
from tests.conftest import one, policy_of, statement

KEY = "aws:kms/key:Key"
ROOT = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:root"
CRYPTO = {a for actions in KEY_USE_ACTIONS.values() for a in actions} - {"kms:DescribeKey"}

EXPECTED = {
    "keys-archive": ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
    "keys-logs": ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
    "keys-backup": ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
    "keys-signing": ("ECC_NIST_P256", "SIGN_VERIFY"),
    "keys-pseudonym": ("HMAC_256", "GENERATE_VERIFY_MAC"),
    "keys-edge": ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
    "dr-keys-backup": ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
}


@pytest.mark.parametrize(("name", "spec"), sorted(EXPECTED.items()))
def test_key_spec_rotation_and_deletion_window(
    plan: ProgramRun, name: str, spec: tuple[str, str]
) -> None:
    key = one(plan, KEY, name)
    assert (key.inputs["customerMasterKeySpec"], key.inputs["keyUsage"]) == spec, name
    assert key.inputs["deletionWindowInDays"] == 30, name
    symmetric = spec[0] == "SYMMETRIC_DEFAULT"
    assert key.inputs.get("enableKeyRotation", False) is symmetric, f"{name}: rotation"


def test_exactly_the_purpose_keys_exist(plan: ProgramRun) -> None:
    assert {k.name for k in plan.of_type(KEY)} == set(EXPECTED)


def test_every_key_has_an_alias_by_purpose(plan: ProgramRun) -> None:
    aliases = {a.inputs["name"] for a in plan.of_type("aws:kms/alias:Alias")}
    assert aliases == {
        f"alias/pacs-dev/{p}" for p in ("archive", "logs", "backup", "signing", "pseudonym", "edge")
    }, "the DR backup key shares its alias name in its own region"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_administrators_cannot_use_keys(plan: ProgramRun, name: str) -> None:
    document = policy_of(one(plan, KEY, name))
    admin = statement(document, "KeyAdministrationWithoutUse")
    assert set(admin["Action"]) == set(KEY_ADMIN_ACTIONS)
    assert not set(admin["Action"]) & CRYPTO, f"{name}: administrators can use the key"
    assert admin["Principal"] == {"AWS": [ROOT]}
    for stmt in document["Statement"]:
        assert "*" not in str(stmt["Action"]), f"{name}: wildcard action in {stmt['Sid']}"


def test_configured_key_admins_replace_the_account_root(
    plan_with: Callable[..., ProgramRun],
) -> None:
    admin = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/KeyAdmins"
    run = plan_with(keyAdminArns=[admin])
    document = policy_of(one(run, KEY, "keys-archive"))
    assert statement(document, "KeyAdministrationWithoutUse")["Principal"] == {"AWS": [admin]}


def role(name: str) -> str:
    return f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{name}"


def test_archive_key_used_only_by_named_roles_through_its_data_services(plan: ProgramRun) -> None:
    use = statement(policy_of(one(plan, KEY, "keys-archive")), "KeyUseByStackRoles")
    condition = use["Condition"]
    # The workloads, and the human roles that read imaging data (the example stack federates).
    assert condition["ArnEquals"]["aws:PrincipalArn"] == [
        role("pacs-dev-break-glass"),
        role("pacs-dev-gateway-task"),
        role("pacs-dev-imaging-operator"),
        role("pacs-dev-imaging-viewer"),
        role("pacs-dev-ingest"),
        role("pacs-dev-integration-partner"),
        role("pacs-dev-replication"),
        role("pacs-dev-verify"),
    ]
    # Objects (S3), the ingest queues (SQS) and the index tables (DynamoDB); never directly.
    assert condition["StringEquals"]["kms:ViaService"] == [
        "dynamodb.us-east-1.amazonaws.com",
        "s3.us-east-1.amazonaws.com",
        "sqs.us-east-1.amazonaws.com",
    ]
    assert condition["StringEquals"]["kms:CallerAccount"] == MOCK_ACCOUNT_ID


def test_archive_key_lets_s3_encrypt_this_accounts_event_notifications(plan: ProgramRun) -> None:
    s3 = statement(
        policy_of(one(plan, KEY, "keys-archive")), "S3EncryptsEventNotificationsOfThisAccount"
    )
    assert s3["Principal"] == {"Service": "s3.amazonaws.com"}
    assert sorted(s3["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert s3["Condition"] == {"StringEquals": {"aws:SourceAccount": MOCK_ACCOUNT_ID}}


def test_administrators_deploy_archive_encrypted_resources_only_through_services(
    plan: ProgramRun,
) -> None:
    document = policy_of(one(plan, KEY, "keys-archive"))
    deploy = statement(document, "KeyAdministratorsDeployEncryptedResourcesThroughServices")
    assert deploy["Principal"] == {"AWS": [ROOT]}
    assert deploy["Condition"]["StringEquals"]["kms:ViaService"] == [
        "dynamodb.us-east-1.amazonaws.com",
        "lambda.us-east-1.amazonaws.com",
    ], "administrators must not reach the archive key through S3 or directly"
    assert deploy["Condition"]["StringEquals"]["kms:CallerAccount"] == MOCK_ACCOUNT_ID
    # The edge and logs keys' own deployment statements are checked in test_edge.py and
    # test_audit.py.
    for name in sorted(set(EXPECTED) - {"keys-archive", "keys-edge", "keys-logs"}):
        sids = {s["Sid"] for s in policy_of(one(plan, KEY, name))["Statement"]}
        assert deploy["Sid"] not in sids, f"{name}: administrators deploy through services"


@pytest.mark.parametrize(
    ("name", "roles", "actions"),
    [
        ("keys-signing", ["pacs-dev-ingest", "pacs-dev-verify"], KEY_USE_ACTIONS["SIGN_VERIFY"]),
        ("keys-pseudonym", ["pacs-dev-ingest"], KEY_USE_ACTIONS["GENERATE_VERIFY_MAC"]),
    ],
)
def test_signing_and_pseudonym_keys_are_used_directly_by_the_pipeline_roles(
    plan: ProgramRun, name: str, roles: list[str], actions: tuple[str, ...]
) -> None:
    use = statement(policy_of(one(plan, KEY, name)), "KeyUseByStackRoles")
    assert use["Condition"]["ArnEquals"]["aws:PrincipalArn"] == [role(r) for r in roles], name
    assert "kms:ViaService" not in use["Condition"]["StringEquals"], f"{name} is called directly"
    assert use["Action"] == list(actions), name


def test_logs_key_lets_this_accounts_alarms_publish_to_encrypted_topics(
    plan: ProgramRun,
) -> None:
    alarms = statement(
        policy_of(one(plan, KEY, "keys-logs")), "CloudWatchAlarmsPublishToEncryptedTopics"
    )
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert sorted(alarms["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert alarms["Condition"]["StringEquals"] == {"aws:SourceAccount": MOCK_ACCOUNT_ID}
    assert alarms["Condition"]["ArnLike"]["aws:SourceArn"] == (
        f"arn:aws:cloudwatch:us-east-1:{MOCK_ACCOUNT_ID}:alarm:*"
    )


def test_dr_key_is_used_through_services_of_the_dr_region(plan: ProgramRun) -> None:
    use = statement(policy_of(one(plan, KEY, "dr-keys-backup")), "KeyUseByStackRoles")
    assert use["Condition"]["StringEquals"]["kms:ViaService"] == [
        "backup.us-west-2.amazonaws.com",
        "s3.us-west-2.amazonaws.com",
    ]
    grants = statement(policy_of(one(plan, KEY, "dr-keys-backup")), "GrantsOnlyForAwsResources")
    assert grants["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}


def test_logs_key_serves_only_this_accounts_log_groups_and_trails(plan: ProgramRun) -> None:
    document = policy_of(one(plan, KEY, "keys-logs"))
    logs = statement(document, "CloudWatchLogsEncryptsOwnLogGroups")
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == (
        f"arn:aws:logs:us-east-1:{MOCK_ACCOUNT_ID}:log-group:*"
    )
    trail = statement(document, "CloudTrailEncryptsOwnTrails")
    assert trail["Condition"]["StringEquals"]["aws:SourceAccount"] == MOCK_ACCOUNT_ID
