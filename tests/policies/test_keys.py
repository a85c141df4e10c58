"""Key policies: what each refuses, and the variants of the stack that weaken the KMS keys."""

from __future__ import annotations

import json
from typing import Any

from tests.policies.conftest import Judge
from tests.policies.mutations import Mutation, Snapshot, statement

KEY = "aws:kms/key:Key"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"
ACCOUNT = "123456789012"
FOREIGN = "210987654321"


def _names(report: Any) -> set[str]:
    return {f.urn.rsplit("::", 1)[-1] for f in report.findings}


def _add_statement(s: Snapshot, key: str, stmt: dict[str, Any]) -> None:
    with s.policy(KEY, key) as doc:
        doc["Statement"].append(stmt)


# --- mutations ---------------------------------------------------------------------------------


def _rotation_off(s: Snapshot) -> None:
    s.props(KEY, "keys-archive")["enableKeyRotation"] = False


def _rotation_two_years(s: Snapshot) -> None:
    s.props(KEY, "keys-logs")["rotationPeriodInDays"] = 730.0


def _public_decrypt(s: Snapshot) -> None:
    _add_statement(
        s,
        "keys-backup",
        {
            "Sid": "AnyoneDecrypts",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "kms:Decrypt",
            "Resource": "*",
        },
    )


def _foreign_account(s: Snapshot) -> None:
    _add_statement(
        s,
        "keys-archive",
        {
            "Sid": "PartnerDecrypts",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{FOREIGN}:root"},
            "Action": ["kms:Decrypt", "kms:DescribeKey"],
            "Resource": "*",
        },
    )


def _unscoped_service(s: Snapshot) -> None:
    with s.policy(KEY, "keys-logs") as doc:
        del statement(doc, "CloudTrailEncryptsOwnTrails")["Condition"]


def _wildcard_admin(s: Snapshot) -> None:
    with s.policy(KEY, "keys-edge") as doc:
        statement(doc, "KeyAdministrationWithoutUse")["Action"] = "kms:*"


def _default_policy(s: Snapshot) -> None:
    del s.props(KEY, "keys-signing")["policy"]


def _short_deletion_window(s: Snapshot) -> None:
    s.props(KEY, "keys-pseudonym")["deletionWindowInDays"] = 7.0


def _archive_key_disabled(s: Snapshot) -> None:
    s.props(KEY, "keys-archive")["isEnabled"] = False


def _free_grant(s: Snapshot) -> None:
    with s.policy("aws:kms/key:Key", "keys-archive") as doc:
        doc["Statement"].append(
            {
                "Sid": "IngestMayGrant",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:role/pacs-dev-ingest"},
                "Action": "kms:CreateGrant",
                "Resource": "*",
            }
        )


MUTATIONS = [
    Mutation(
        "kms-archive-rotation-off",
        "aws-kms-key-require-rotation",
        "archive key no longer rotates",
        _rotation_off,
    ),
    Mutation(
        "kms-logs-rotation-two-years",
        "aws-kms-key-require-rotation",
        "logs key rotates every two years",
        _rotation_two_years,
    ),
    Mutation(
        "kms-backup-public-decrypt",
        "aws-kms-key-no-open-principal",
        "backup key policy lets anyone decrypt",
        _public_decrypt,
    ),
    Mutation(
        "kms-archive-foreign-account",
        "aws-kms-key-no-open-principal",
        "archive key policy lets another account decrypt",
        _foreign_account,
    ),
    Mutation(
        "kms-logs-cloudtrail-any-account",
        "aws-kms-key-no-open-principal",
        "any account's CloudTrail may encrypt with the logs key",
        _unscoped_service,
    ),
    Mutation(
        "kms-edge-wildcard-admin",
        "aws-kms-key-policy-no-wildcard-actions",
        "edge key administrators get kms:* (decrypt included)",
        _wildcard_admin,
    ),
    Mutation(
        "kms-signing-default-policy",
        "aws-kms-key-require-explicit-policy",
        "signing key left with AWS's default policy",
        _default_policy,
    ),
    Mutation(
        "kms-pseudonym-7-day-deletion",
        "aws-kms-key-require-deletion-window",
        "pseudonym key deletable after 7 days",
        _short_deletion_window,
    ),
    Mutation(
        "kms-archive-key-disabled",
        "aws-kms-key-require-enabled",
        "archive key disabled: every archived image becomes unreadable",
        _archive_key_disabled,
    ),
    Mutation(
        "kms-archive-free-grants",
        "aws-kms-key-grants-only-for-aws-resources",
        "the ingest role may grant the archive key to anyone",
        _free_grant,
    ),
]


# --- focused tests -----------------------------------------------------------------------------


def test_asymmetric_and_hmac_keys_are_exempt_from_rotation(
    snapshot: Snapshot, judge: Judge
) -> None:
    # The default stack's signing (ECC) and HMAC keys do not rotate: AWS cannot rotate them.
    assert not snapshot.props(KEY, "keys-signing")["enableKeyRotation"]
    assert not judge(snapshot, "aws-kms-key-require-rotation").findings
    # A key that omits spec and usage is a symmetric encryption key: it must rotate.
    props = snapshot.props(KEY, "keys-edge")
    for prop in ("customerMasterKeySpec", "keyUsage", "enableKeyRotation", "rotationPeriodInDays"):
        del props[prop]
    report = judge(snapshot, "aws-kms-key-require-rotation")
    assert _names(report) == {"keys-edge"}
    assert "enableKeyRotation" in report.findings[0].message


def test_rotation_period_may_only_tighten(plan_json: dict[str, Any], judge: Judge) -> None:
    config = {"aws-kms-key-require-rotation": {"maximumRotationPeriodDays": 180}}
    report = judge(plan_json, "aws-kms-key-require-rotation", config=config)
    assert _names(report) == {
        "keys-archive",
        "keys-backup",
        "keys-edge",
        "keys-logs",
        "dr-keys-backup",
    }


def test_trusted_accounts_setting_admits_a_named_account(snapshot: Snapshot, judge: Judge) -> None:
    _foreign_account(snapshot)
    config = {"aws-kms-key-no-open-principal": {"trustedAccounts": [FOREIGN]}}
    assert not judge(snapshot, "aws-kms-key-no-open-principal", config=config).findings
    # A trusted account may use the key, never administer it.
    with snapshot.policy(KEY, "keys-archive") as doc:
        statement(doc, "PartnerDecrypts")["Action"] = ["kms:PutKeyPolicy"]
    report = judge(snapshot, "aws-kms-key-no-open-principal", config=config)
    assert _names(report) == {"keys-archive"}
    assert "may change the key policy" in report.findings[0].message


def test_foreign_account_in_a_condition_is_refused(snapshot: Snapshot, judge: Judge) -> None:
    with snapshot.policy(KEY, "keys-archive") as doc:
        statement(doc, "S3EncryptsEventNotificationsOfThisAccount")["Condition"]["StringEquals"][
            "aws:SourceAccount"
        ] = FOREIGN
    report = judge(snapshot, "aws-kms-key-no-open-principal")
    assert _names(report) == {"keys-archive"}
    assert FOREIGN in report.findings[0].message


def test_principal_star_scoped_to_the_account_passes(snapshot: Snapshot, judge: Judge) -> None:
    # AWS's documented "through the service, for principals of this account" statement.
    _add_statement(
        snapshot,
        "keys-archive",
        {
            "Sid": "AccountUsesThroughDynamoDb",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Decrypt", "kms:Encrypt"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:CallerAccount": ACCOUNT,
                    "kms:ViaService": "dynamodb.us-east-1.amazonaws.com",
                }
            },
        },
    )
    assert not judge(snapshot, "aws-kms-key-no-open-principal").findings


def test_bypassing_the_lockout_check_is_refused(snapshot: Snapshot, judge: Judge) -> None:
    snapshot.props(KEY, "keys-archive")["bypassPolicyLockoutSafetyCheck"] = True
    report = judge(snapshot, "aws-kms-key-no-open-principal")
    assert _names(report) == {"keys-archive"}


def test_not_action_allow_is_a_wildcard(snapshot: Snapshot, judge: Judge) -> None:
    with snapshot.policy(KEY, "keys-backup") as doc:
        admin = statement(doc, "KeyAdministrationWithoutUse")
        admin["NotAction"] = ["kms:Decrypt"]
        del admin["Action"]
    report = judge(snapshot, "aws-kms-key-policy-no-wildcard-actions")
    assert _names(report) == {"keys-backup"}


def test_key_policy_resource_is_checked_and_declares_the_policy(
    snapshot: Snapshot, judge: Judge
) -> None:
    props = snapshot.props(KEY, "keys-signing")
    policy = props.pop("policy")
    snapshot.add(KEY_POLICY, "keys-signing-policy", {"keyId": "signing-key-id", "policy": policy})
    # Offline, the KeyPolicy names its key by id, which the plan does not hold: follow it by
    # dependency, as `pacs-kit plan --json --dependencies` and the engine give.
    snapshot.entry(KEY_POLICY, "keys-signing-policy")["propertyDependencies"] = {
        "keyId": [snapshot.entry(KEY, "keys-signing")["urn"]]
    }
    assert not judge(snapshot, "aws-kms-key-require-explicit-policy").findings
    with snapshot.policy(KEY_POLICY, "keys-signing-policy") as doc:
        doc["Statement"][0]["Action"] = "kms:*"
    report = judge(snapshot, "aws-kms-key-policy-no-wildcard-actions")
    assert _names(report) == {"keys-signing-policy"}


def test_aws_default_policy_in_outputs_is_refused(snapshot: Snapshot, judge: Judge) -> None:
    # What a stack check sees after an update of a key declared without a policy.
    snapshot.props(KEY, "keys-signing")["policy"] = json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
    )
    report = judge(snapshot, "aws-kms-key-require-explicit-policy")
    assert _names(report) == {"keys-signing"}


def test_deletion_window_default_and_setting(snapshot: Snapshot, judge: Judge) -> None:
    del snapshot.props(KEY, "keys-archive")["deletionWindowInDays"]  # AWS waits 30 days
    assert not judge(snapshot, "aws-kms-key-require-deletion-window").findings
    _short_deletion_window(snapshot)
    config = {"aws-kms-key-require-deletion-window": {"minimumDeletionWindowDays": 7}}
    assert not judge(snapshot, "aws-kms-key-require-deletion-window", config=config).findings


def test_enabled_unset_or_true_passes_and_replica_keys_are_read(
    snapshot: Snapshot, judge: Judge
) -> None:
    # The default stack leaves isEnabled unset (AWS enables a key); true, as outputs say, passes.
    snapshot.props(KEY, "keys-archive")["isEnabled"] = True
    assert not judge(snapshot, "aws-kms-key-require-enabled").findings
    snapshot.add(
        "aws:kms/replicaKey:ReplicaKey",
        "keys-archive-replica",
        {"primaryKeyArn": "arn:aws:kms:us-east-1:123456789012:key/mrk-1", "enabled": "false"},
    )
    report = judge(snapshot, "aws-kms-key-require-enabled")
    assert _names(report) == {"keys-archive-replica"}
    assert "enabled must be true" in report.findings[0].message
