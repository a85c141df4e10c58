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
        f"alias/pacs-dev/{p}" for p in ("archive", "logs", "backup", "signing", "pseudonym")
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


def test_archive_key_used_only_by_named_roles_through_s3(plan: ProgramRun) -> None:
    use = statement(policy_of(one(plan, KEY, "keys-archive")), "KeyUseByStackRoles")
    condition = use["Condition"]
    assert condition["ArnEquals"]["aws:PrincipalArn"] == [
        f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/pacs-dev-replication"
    ]
    assert condition["StringEquals"]["kms:ViaService"] == ["s3.us-east-1.amazonaws.com"]
    assert condition["StringEquals"]["kms:CallerAccount"] == MOCK_ACCOUNT_ID


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


@pytest.mark.parametrize("name", ["keys-signing", "keys-pseudonym"])
def test_keys_without_users_grant_no_use_yet(plan: ProgramRun, name: str) -> None:
    sids = {s["Sid"] for s in policy_of(one(plan, KEY, name))["Statement"]}
    assert sids == {"KeyAdministrationWithoutUse"}, f"{name} grants use to {sids}"
