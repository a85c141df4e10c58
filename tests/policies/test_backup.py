"""Backup policies: what each refuses, and the variants of the stack that weaken backups and the
DynamoDB tables' data protection."""

from __future__ import annotations

from typing import Any

from tests.policies.conftest import Judge
from tests.policies.mutations import Mutation, Snapshot

VAULT = "aws:backup/vault:Vault"
LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
PLAN = "aws:backup/plan:Plan"
SELECTION = "aws:backup/selection:Selection"
TABLE = "aws:dynamodb/table:Table"
DR_VAULT_ARN = "arn:aws:backup:us-west-2:123456789012:backup-vault:pacs-dev-dr-vault"


def _names(report: Any) -> set[str]:
    return {f.urn.rsplit("::", 1)[-1] for f in report.findings}


def _rule(s: Snapshot) -> dict[str, Any]:
    rule: dict[str, Any] = s.props(PLAN, "dr-plan")["rules"][0]
    return rule


# --- mutations ---------------------------------------------------------------------------------


def _vault_unlocked(s: Snapshot) -> None:
    s.remove(LOCK, "dr-vault-lock")


def _governance_lock(s: Snapshot) -> None:
    del s.props(LOCK, "dr-dr-vault-lock")["changeableForDays"]


def _lock_shorter_than_plan(s: Snapshot) -> None:
    s.props(LOCK, "dr-dr-vault-lock")["minRetentionDays"] = 7.0


def _one_day_lock(s: Snapshot) -> None:
    s.props(LOCK, "dr-vault-lock")["minRetentionDays"] = 1.0


def _vault_default_key(s: Snapshot) -> None:
    del s.props(VAULT, "dr-vault")["kmsKeyArn"]


def _vault_force_destroy(s: Snapshot) -> None:
    s.props(VAULT, "dr-dr-vault")["forceDestroy"] = True


def _copy_same_region(s: Snapshot) -> None:
    _rule(s)["copyActions"][0]["destinationVaultArn"] = DR_VAULT_ARN.replace(
        "us-west-2", "us-east-1"
    )


def _no_copy(s: Snapshot) -> None:
    del _rule(s)["copyActions"]


def _short_copy_retention(s: Snapshot) -> None:
    _rule(s)["copyActions"][0]["lifecycle"]["deleteAfter"] = 7.0


def _short_retention(s: Snapshot) -> None:
    _rule(s)["lifecycle"]["deleteAfter"] = 7.0


def _no_retention(s: Snapshot) -> None:
    del _rule(s)["lifecycle"]


def _pitr_off(s: Snapshot) -> None:
    s.props(TABLE, "ingest-index-table")["pointInTimeRecovery"]["enabled"] = False


def _aws_owned_table_key(s: Snapshot) -> None:
    s.props(TABLE, "ingest-index-table")["serverSideEncryption"] = {"enabled": False}


def _aws_managed_table_key(s: Snapshot) -> None:
    del s.props(TABLE, "ingest-idempotency-table")["serverSideEncryption"]["kmsKeyArn"]


def _selection_misses_tag(s: Snapshot) -> None:
    s.props(SELECTION, "dr-selection")["conditions"][0]["stringEquals"][0]["value"] = "other"


def _index_untagged(s: Snapshot) -> None:
    del s.props(TABLE, "ingest-index-table")["tags"]["backup-plan"]


def _copy_to_unknown_vault(s: Snapshot) -> None:
    _rule(s)["copyActions"][0]["destinationVaultArn"] = DR_VAULT_ARN.replace(
        "pacs-dev-dr-vault", "unlocked-vault"
    )


def _index_deletable(s: Snapshot) -> None:
    s.props(TABLE, "ingest-index-table")["deletionProtectionEnabled"] = False


def _idempotency_deletable(s: Snapshot) -> None:
    del s.props(TABLE, "ingest-idempotency-table")["deletionProtectionEnabled"]


def _lock_caps_retention(s: Snapshot) -> None:
    s.props("aws:backup/vaultLockConfiguration:VaultLockConfiguration", "dr-vault-lock")[
        "maxRetentionDays"
    ] = 1.0


MUTATIONS = [
    Mutation(
        "backup-vault-unlocked",
        "aws-backup-vault-require-lock",
        "primary backup vault without a vault lock",
        _vault_unlocked,
    ),
    Mutation(
        "backup-vault-governance-lock",
        "aws-backup-vault-require-lock",
        "DR vault lock in governance mode (removable)",
        _governance_lock,
    ),
    Mutation(
        "backup-vault-lock-shorter-than-plan",
        "aws-backup-vault-require-lock",
        "DR vault lock protects copies for 7 of their 35 days",
        _lock_shorter_than_plan,
    ),
    Mutation(
        "backup-vault-lock-1-day",
        "aws-backup-vault-require-lock",
        "vault lock enforces a 1-day minimum retention",
        _one_day_lock,
    ),
    Mutation(
        "backup-vault-default-key",
        "aws-backup-vault-require-kms",
        "primary vault encrypted with the AWS-managed backup key",
        _vault_default_key,
    ),
    Mutation(
        "backup-vault-force-destroy",
        "aws-backup-vault-no-force-destroy",
        "DR vault destroyable with its recovery points",
        _vault_force_destroy,
    ),
    Mutation(
        "backup-copy-same-region",
        "aws-backup-plan-require-cross-region-copy",
        "backup copies land in the primary region",
        _copy_same_region,
    ),
    Mutation(
        "backup-no-copy",
        "aws-backup-plan-require-cross-region-copy",
        "backup rule without a copy to the DR region",
        _no_copy,
    ),
    Mutation(
        "backup-copy-7-days",
        "aws-backup-plan-require-cross-region-copy",
        "DR copies kept 7 days",
        _short_copy_retention,
    ),
    Mutation(
        "backup-retention-7-days",
        "aws-backup-plan-require-retention",
        "recovery points kept 7 days",
        _short_retention,
    ),
    Mutation(
        "backup-no-retention",
        "aws-backup-plan-require-retention",
        "backup rule without a retention",
        _no_retention,
    ),
    Mutation(
        "dynamodb-index-pitr-off",
        "aws-dynamodb-table-require-pitr",
        "index table without point-in-time recovery",
        _pitr_off,
    ),
    Mutation(
        "dynamodb-index-aws-owned-key",
        "aws-dynamodb-table-require-kms",
        "index table encrypted with an AWS-owned key",
        _aws_owned_table_key,
    ),
    Mutation(
        "dynamodb-idempotency-aws-managed-key",
        "aws-dynamodb-table-require-kms",
        "idempotency table encrypted with the AWS-managed aws/dynamodb key",
        _aws_managed_table_key,
    ),
    Mutation(
        "backup-selection-misses-index",
        "aws-backup-selection-covers-tables",
        "backup selection's tag condition matches no table",
        _selection_misses_tag,
    ),
    Mutation(
        "dynamodb-index-not-backed-up",
        "aws-backup-selection-covers-tables",
        "index table (PHI) loses its backup-plan tag",
        _index_untagged,
    ),
    Mutation(
        "backup-copy-to-unknown-vault",
        "aws-backup-plan-require-cross-region-copy",
        "DR copies go to a vault the stack does not declare (nor lock)",
        _copy_to_unknown_vault,
    ),
    Mutation(
        "dynamodb-index-deletion-unprotected",
        "aws-dynamodb-table-require-deletion-protection",
        "index table deletion protection turned off",
        _index_deletable,
    ),
    Mutation(
        "dynamodb-idempotency-deletion-unprotected",
        "aws-dynamodb-table-require-deletion-protection",
        "idempotency table without deletion protection",
        _idempotency_deletable,
    ),
    Mutation(
        "backup-vault-lock-max-one-day",
        "aws-backup-vault-require-lock",
        "vault lock refuses recovery points kept longer than a day",
        _lock_caps_retention,
    ),
]


# --- focused tests -----------------------------------------------------------------------------


def test_transient_phi_table_is_exempt_only_while_it_expires(
    snapshot: Snapshot, judge: Judge
) -> None:
    # The idempotency table holds PHI but expires its records: it needs no backup plan.
    assert not judge(snapshot, "aws-backup-selection-covers-tables").findings
    snapshot.props(TABLE, "ingest-idempotency-table")["ttl"]["enabled"] = False
    report = judge(snapshot, "aws-backup-selection-covers-tables")
    assert _names(report) == {"ingest-idempotency-table"}
    assert "holds PHI" in report.findings[0].message


def test_transient_purposes_is_a_setting(plan_json: dict[str, Any], judge: Judge) -> None:
    config = {"aws-backup-selection-covers-tables": {"transientPurposes": []}}
    report = judge(plan_json, "aws-backup-selection-covers-tables", config=config)
    assert _names(report) == {"ingest-idempotency-table"}


def test_selection_by_arn_and_exclusions(snapshot: Snapshot, judge: Judge) -> None:
    selection = snapshot.props(SELECTION, "dr-selection")
    # Select by table ARN instead of by tag: covered.
    selection["conditions"] = []
    selection["resources"] = ["arn:aws:dynamodb:us-east-1:123456789012:table/pacs-dev-index"]
    assert not judge(snapshot, "aws-backup-selection-covers-tables").findings
    # Excluding it again is refused.
    selection["resources"] = ["*"]
    selection["notResources"] = ["arn:aws:dynamodb:*:*:table/pacs-dev-index"]
    report = judge(snapshot, "aws-backup-selection-covers-tables")
    assert _names(report) == {"ingest-index-table"}
    # Legacy selection tags (OR with resources) cover it too.
    selection["resources"] = []
    selection["notResources"] = []
    selection["selectionTags"] = [
        {"type": "STRINGEQUALS", "key": "backup-plan", "value": "pacs-dev-index"}
    ]
    assert not judge(snapshot, "aws-backup-selection-covers-tables").findings


def test_table_asking_for_a_plan_must_be_covered(snapshot: Snapshot, judge: Judge) -> None:
    tags = snapshot.props(TABLE, "ingest-idempotency-table")["tags"]
    tags["data-classification"] = "internal"
    tags["backup-plan"] = "some-other-plan"
    report = judge(snapshot, "aws-backup-selection-covers-tables")
    assert _names(report) == {"ingest-idempotency-table"}
    assert "asks for a backup plan" in report.findings[0].message


def test_copy_region_comes_from_the_vault_region_argument(snapshot: Snapshot, judge: Judge) -> None:
    # pulumi-aws 7 per-resource region: a primary vault placed in us-west-2 by its `region`
    # argument makes the us-west-2 copy a same-region copy.
    snapshot.props(VAULT, "dr-vault")["region"] = "us-west-2"
    report = judge(snapshot, "aws-backup-plan-require-cross-region-copy")
    assert _names(report) == {"dr-plan"}
    assert "copies only within us-west-2" in report.findings[0].message


def test_copy_to_a_vault_outside_the_stack_needs_a_known_source_region(
    snapshot: Snapshot, judge: Judge
) -> None:
    _rule(snapshot)["targetVaultName"] = "vault-of-another-stack"
    report = judge(snapshot, "aws-backup-plan-require-cross-region-copy")
    assert "region of target vault vault-of-another-stack is unknown" in report.findings[0].message
    # A plan placed by its region argument can be checked.
    snapshot.props(PLAN, "dr-plan")["region"] = "us-east-1"
    assert not judge(snapshot, "aws-backup-plan-require-cross-region-copy").findings


def test_retention_minimum_is_configurable(plan_json: dict[str, Any], judge: Judge) -> None:
    # The default stack keeps recovery points 35 days; a 90-day minimum refuses the plan and copy.
    for policy_id in (
        "aws-backup-plan-require-retention",
        "aws-backup-plan-require-cross-region-copy",
    ):
        config = {policy_id: {"minimumRetentionDays": 90}}
        report = judge(plan_json, policy_id, config=config)
        assert _names(report) == {"dr-plan"}
        assert all("at least 90" in f.message for f in report.findings)


def test_pitr_recovery_period_and_replicas(snapshot: Snapshot, judge: Judge) -> None:
    table = snapshot.props(TABLE, "ingest-index-table")
    table["pointInTimeRecovery"]["recoveryPeriodInDays"] = 7.0
    report = judge(snapshot, "aws-dynamodb-table-require-pitr")
    assert _names(report) == {"ingest-index-table"}
    table["pointInTimeRecovery"]["recoveryPeriodInDays"] = 35.0
    table["replicas"] = [{"regionName": "us-west-2", "pointInTimeRecovery": False}]
    assert len(judge(snapshot, "aws-dynamodb-table-require-pitr").findings) == 1
    # The same replica without its own key is refused by the encryption policy.
    report = judge(snapshot, "aws-dynamodb-table-require-kms")
    assert "replica in us-west-2" in report.findings[0].message


def test_lock_minimum_retention_is_configurable(plan_json: dict[str, Any], judge: Judge) -> None:
    # The stack locks both vaults for the plan's 35 days; a 60-day floor refuses them.
    config = {"aws-backup-vault-require-lock": {"minimumLockRetentionDays": 60}}
    report = judge(plan_json, "aws-backup-vault-require-lock", config=config)
    assert _names(report) == {"dr-vault", "dr-dr-vault"}


def test_copy_to_an_undeclared_vault_names_it(snapshot: Snapshot, judge: Judge) -> None:
    _copy_to_unknown_vault(snapshot)
    report = judge(snapshot, "aws-backup-plan-require-cross-region-copy")
    assert _names(report) == {"dr-plan"}
    assert "unlocked-vault, which is not a vault of the stack" in report.findings[0].message
