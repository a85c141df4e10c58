"""DisasterRecovery: RTC replication without deletes, locked vaults, the backup plan."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infra.components.dr import backup_schedule
from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun
from tests.conftest import one, policy_of, statement

ARCHIVE = f"arn:aws:s3:::pacs-dev-{MOCK_ACCOUNT_ID}-us-east-1-archive"
REPLICA = f"arn:aws:s3:::pacs-dev-{MOCK_ACCOUNT_ID}-us-west-2-replica"


def replication_rule(plan: ProgramRun) -> dict[str, object]:
    config = one(plan, "aws:s3/bucketReplicationConfig:BucketReplicationConfig", "dr-replication")
    assert config.inputs["bucket"] == ARCHIVE.removeprefix("arn:aws:s3:::")
    assert config.inputs["role"] == f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/pacs-dev-replication"
    (rule,) = config.inputs["rules"]
    result: dict[str, object] = rule
    return result


def test_whole_archive_replicates_with_rtc_and_metrics(plan: ProgramRun) -> None:
    rule = replication_rule(plan)
    assert rule["status"] == "Enabled"
    assert rule["filter"] == {}, "sidecars and instances must replicate together"
    destination = rule["destination"]
    assert isinstance(destination, dict)
    assert destination["bucket"] == REPLICA
    assert destination["replicationTime"] == {"status": "Enabled", "time": {"minutes": 15}}
    assert destination["metrics"] == {"status": "Enabled", "eventThreshold": {"minutes": 15}}


def test_replicas_are_encrypted_with_the_dr_key(plan: ProgramRun) -> None:
    rule = replication_rule(plan)
    dr_key = one(plan, "aws:kms/key:Key", "dr-keys-backup")
    destination = rule["destination"]
    assert isinstance(destination, dict)
    assert destination["encryptionConfiguration"]["replicaKmsKeyId"] == (
        f"arn:aws:kms:us-west-2:{MOCK_ACCOUNT_ID}:key/{dr_key.id}"
    )
    assert rule["sourceSelectionCriteria"] == {"sseKmsEncryptedObjects": {"status": "Enabled"}}


def test_deletes_never_replicate(plan: ProgramRun) -> None:
    assert replication_rule(plan)["deleteMarkerReplication"] == {"status": "Disabled"}
    document = policy_of(one(plan, "aws:iam/rolePolicy:RolePolicy", "dr-replication-policy"))
    actions = [a for s in document["Statement"] for a in s["Action"]]
    assert not [a for a in actions if "Delete" in a or "*" in a], actions


def test_replication_role_is_scoped_to_the_two_buckets_and_keys(plan: ProgramRun) -> None:
    document = policy_of(one(plan, "aws:iam/rolePolicy:RolePolicy", "dr-replication-policy"))
    read = statement(document, "ReadSourceVersionsWithRetention")
    assert read["Resource"] == f"{ARCHIVE}/*"
    assert {"s3:GetObjectRetention", "s3:GetObjectLegalHold"} <= set(read["Action"])
    write = statement(document, "WriteReplicasNeverDeletes")
    assert write["Resource"] == f"{REPLICA}/*"
    decrypt = statement(document, "DecryptSourceThroughS3")
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    encrypt = statement(document, "EncryptReplicasThroughS3")
    assert encrypt["Condition"]["StringEquals"]["kms:ViaService"] == "s3.us-west-2.amazonaws.com"
    trust = policy_of(one(plan, "aws:iam/role:Role", "dr-replication-role"), "assumeRolePolicy")
    (assume,) = trust["Statement"]
    assert assume["Principal"] == {"Service": "s3.amazonaws.com"}
    assert assume["Condition"]["ArnLike"]["aws:SourceArn"] == ARCHIVE


@pytest.mark.parametrize(
    ("vault", "key"), [("dr-vault", "keys-backup"), ("dr-dr-vault", "dr-keys-backup")]
)
def test_backup_vaults_use_backup_keys_and_compliance_locks(
    plan: ProgramRun, vault: str, key: str
) -> None:
    registered = one(plan, "aws:backup/vault:Vault", vault)
    assert registered.inputs["kmsKeyArn"].endswith(one(plan, "aws:kms/key:Key", key).id or "?")
    assert registered.inputs["forceDestroy"] is False
    lock = one(plan, "aws:backup/vaultLockConfiguration:VaultLockConfiguration", f"{vault}-lock")
    assert lock.inputs["backupVaultName"] == registered.inputs["name"]
    # A grace period is what turns a vault lock into compliance mode.
    assert lock.inputs["changeableForDays"] == 3
    # As long as the plan keeps recovery points (backupRetentionDays): none deletable early.
    assert lock.inputs["minRetentionDays"] == 35


def test_backup_plan_runs_at_the_rpo_and_copies_to_the_dr_vault(plan: ProgramRun) -> None:
    backup_plan = one(plan, "aws:backup/plan:Plan", "dr-plan")
    (rule,) = backup_plan.inputs["rules"]
    assert rule["schedule"] == "cron(0 0/1 * * ? *)"
    assert rule["targetVaultName"] == "pacs-dev-vault"
    assert rule["lifecycle"] == {"deleteAfter": 35}
    (copy,) = rule["copyActions"]
    assert copy["destinationVaultArn"] == (
        f"arn:aws:backup:us-west-2:{MOCK_ACCOUNT_ID}:backup-vault:pacs-dev-dr-vault"
    )
    assert copy["lifecycle"] == {"deleteAfter": 35}


def test_backup_frequency_is_derived_from_rpo(plan_with: Callable[..., ProgramRun]) -> None:
    (rule,) = one(plan_with(rpoMinutes=240), "aws:backup/plan:Plan", "dr-plan").inputs["rules"]
    assert rule["schedule"] == "cron(0 0/4 * * ? *)"


def test_backup_schedule_expressions() -> None:
    assert backup_schedule(1) == "cron(0 0/1 * * ? *)"
    assert backup_schedule(6) == "cron(0 0/6 * * ? *)"
    assert backup_schedule(24) == "cron(0 0 * * ? *)"


def test_tables_join_the_plan_by_tag(plan: ProgramRun) -> None:
    selection = one(plan, "aws:backup/selection:Selection", "dr-selection")
    assert selection.inputs["resources"] == [
        f"arn:aws:dynamodb:us-east-1:{MOCK_ACCOUNT_ID}:table/*"
    ]
    (condition,) = selection.inputs["conditions"]
    assert condition["stringEquals"] == [
        {"key": "aws:ResourceTag/backup-plan", "value": "pacs-dev-index"}
    ]
    assert plan.outputs["backupSelectionTag"] == {"backup-plan": "pacs-dev-index"}
    role = one(plan, "aws:iam/role:Role", "dr-backup-role")
    assert (
        selection.inputs["iamRoleArn"]
        == f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{role.inputs['name']}"
    )
