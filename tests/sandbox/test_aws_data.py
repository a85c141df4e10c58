"""The data-plane handlers against an in-process moto server: what lands is what the inputs say."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pacs_kit.sandbox.aws_data import HANDLERS
from pacs_kit.sandbox.emulate import Clients, Context, Created, NotEmulated
from pacs_kit.sandbox.shims import bucket_policies_are_stored_not_evaluated
from tests.sandbox.conftest import tls_only_policy

ACCOUNT = "123456789012"


def create(
    clients: Clients, typ: str, name: str, inputs: dict[str, Any], region: str = "us-east-1"
) -> tuple[Created, list[str]]:
    """Run the handler of a type token like the sandbox does; return (id, outputs) and notes."""
    ctx = Context(clients, ACCOUNT, region, name, typ)
    return HANDLERS[typ](ctx, inputs), ctx.notes


def bucket(clients: Clients, name: str, region: str = "us-east-1", lock: bool = False) -> str:
    (bucket_id, outputs), _ = create(
        clients,
        "aws:s3/bucket:Bucket",
        name,
        {
            "bucket": name,
            "objectLockEnabled": lock,
            "tags": {"purpose": "t"},
            "forceDestroy": False,
        },
        region,
    )
    assert bucket_id == name and outputs["arn"] == f"arn:aws:s3:::{name}"
    assert outputs["region"] == region
    return name


def test_dr_bucket_gets_its_region_and_object_lock_default_retention(clients: Clients) -> None:
    name = bucket(clients, "t-replica", "us-west-2", lock=True)
    s3 = clients.client("s3", "us-west-2")
    create(
        clients,
        "aws:s3/bucketVersioning:BucketVersioning",
        "v",
        {"bucket": name, "versioningConfiguration": {"status": "Enabled"}},
        "us-west-2",
    )
    create(
        clients,
        "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
        "l",
        {
            "bucket": name,
            "objectLockEnabled": "Enabled",
            "rule": {"defaultRetention": {"mode": "COMPLIANCE", "days": 2555.0}},
        },
        "us-west-2",
    )
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "us-west-2"
    lock = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    retention = lock["Rule"]["DefaultRetention"]  # moto also answers "Years": 0
    assert (retention["Mode"], retention["Days"]) == ("COMPLIANCE", 2555)
    assert s3.get_bucket_tagging(Bucket=name)["TagSet"] == [{"Key": "purpose", "Value": "t"}]


def test_encryption_lifecycle_and_public_access_block_read_back(clients: Clients) -> None:
    name = bucket(clients, "t-archive")
    s3 = clients.client("s3", "us-east-1")
    key_arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    _, notes = create(
        clients,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "e",
        {
            "bucket": name,
            "rules": [
                {
                    "blockedEncryptionTypes": ["SSE-C"],
                    "applyServerSideEncryptionByDefault": {
                        "kmsMasterKeyId": key_arn,
                        "sseAlgorithm": "aws:kms",
                    },
                    "bucketKeyEnabled": True,
                }
            ],
        },
    )
    assert any("blockedEncryptionTypes" in n for n in notes)
    rule = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": key_arn,
    }
    assert rule["BucketKeyEnabled"] is True
    create(
        clients,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "lc",
        {
            "bucket": name,
            "rules": [
                {
                    "filter": {},
                    "transitions": [{"storageClass": "GLACIER_IR", "days": 90.0}],
                    "noncurrentVersionExpiration": {"noncurrentDays": 30.0},
                    "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7.0},
                    "id": "kit-lifecycle",
                    "expiration": {"days": 2192.0},
                    "status": "Enabled",
                }
            ],
        },
    )
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert rule["ID"] == "kit-lifecycle" and rule["Status"] == "Enabled"
    assert rule["Expiration"]["Days"] == 2192
    assert rule["Transitions"] == [{"Days": 90, "StorageClass": "GLACIER_IR"}]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    create(
        clients,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "p",
        {
            "bucket": name,
            "blockPublicAcls": True,
            "ignorePublicAcls": True,
            "blockPublicPolicy": True,
            "restrictPublicBuckets": True,
        },
    )
    block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4


def test_logging_lands_before_the_targets_policy_and_leaves_the_target_untouched(
    clients: Clients,
) -> None:
    source, target = bucket(clients, "t-logged"), bucket(clients, "t-logs")
    s3 = clients.client("s3", "us-east-1")
    create(
        clients,
        "aws:s3/bucketLogging:BucketLogging",
        "lg",
        {"bucket": source, "targetBucket": target, "targetPrefix": f"{source}/"},
    )
    enabled = s3.get_bucket_logging(Bucket=source)["LoggingEnabled"]
    assert enabled["TargetBucket"] == target and enabled["TargetPrefix"] == f"{source}/"
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=target)


def test_an_object_lands_in_a_tls_only_bucket_with_the_emulators_policy_shim(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the shim moto refuses the put: it reads the conditional Deny as matching.
    bucket_policies_are_stored_not_evaluated(monkeypatch.setattr)
    name = bucket(clients, "t-trust")
    policy = tls_only_policy(name)
    create(clients, "aws:s3/bucketPolicy:BucketPolicy", "bp", {"bucket": name, "policy": policy})
    (key, outputs), notes = create(
        clients,
        "aws:s3/bucketObjectv2:BucketObjectv2",
        "o",
        {
            "bucket": name,
            "key": "ca.pem",
            "content": "PEM",
            "contentType": "application/x-pem-file",
        },
    )
    assert key == "ca.pem" and outputs["etag"]
    assert not notes
    s3 = clients.client("s3", "us-east-1")
    assert s3.get_bucket_policy(Bucket=name)["Policy"] == policy


def test_replication_destination_kms_and_rtc(clients: Clients) -> None:
    name = bucket(clients, "t-source")
    s3 = clients.client("s3", "us-east-1")
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    replica_key = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/5b2ac8cb-565c-6a1d-d161-462dce41854d"
    create(
        clients,
        "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
        "r",
        {
            "bucket": name,
            "role": f"arn:aws:iam::{ACCOUNT}:role/replication",
            "rules": [
                {
                    "id": "archive-to-dr",
                    "status": "Enabled",
                    "priority": 1.0,
                    "filter": {},
                    "deleteMarkerReplication": {"status": "Disabled"},
                    "sourceSelectionCriteria": {"sseKmsEncryptedObjects": {"status": "Enabled"}},
                    "destination": {
                        "bucket": "arn:aws:s3:::t-replica",
                        "storageClass": "STANDARD",
                        "encryptionConfiguration": {"replicaKmsKeyId": replica_key},
                        "replicationTime": {"status": "Enabled", "time": {"minutes": 15.0}},
                        "metrics": {"status": "Enabled", "eventThreshold": {"minutes": 15.0}},
                    },
                }
            ],
        },
    )
    config = s3.get_bucket_replication(Bucket=name)["ReplicationConfiguration"]
    (rule,) = config["Rules"]
    assert rule["ID"] == "archive-to-dr" and rule["Priority"] == 1
    assert rule["Destination"]["EncryptionConfiguration"]["ReplicaKmsKeyID"] == replica_key
    assert rule["Destination"]["ReplicationTime"]["Time"]["Minutes"] == 15


def test_kms_keys_rotation_spec_and_alias(clients: Clients) -> None:
    (key_id, outputs), _ = create(
        clients,
        "aws:kms/key:Key",
        "k",
        {
            "enableKeyRotation": True,
            "rotationPeriodInDays": 365.0,
            "customerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "keyUsage": "ENCRYPT_DECRYPT",
            "policy": json.dumps({"Version": "2012-10-17", "Statement": []}),
            "tags": {"purpose": "archive"},
            "description": "d",
        },
    )
    kms = clients.client("kms", "us-east-1")
    assert outputs["keyId"] == key_id and outputs["arn"].endswith(f":key/{key_id}")
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    (hmac_id, _), _ = create(
        clients,
        "aws:kms/key:Key",
        "h",
        {"customerMasterKeySpec": "HMAC_256", "keyUsage": "GENERATE_VERIFY_MAC"},
    )
    meta = kms.describe_key(KeyId=hmac_id)["KeyMetadata"]
    assert meta["KeySpec"] == "HMAC_256" and meta["KeyUsage"] == "GENERATE_VERIFY_MAC"
    (alias, alias_out), _ = create(
        clients, "aws:kms/alias:Alias", "a", {"name": "alias/t/archive", "targetKeyId": key_id}
    )
    assert alias == "alias/t/archive" and alias_out["targetKeyArn"] == outputs["arn"]
    aliases = kms.list_aliases(KeyId=key_id)["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/t/archive"]


def test_role_trust_boundary_session_and_policies_land(clients: Clients) -> None:
    (boundary, _), _ = create(
        clients,
        "aws:iam/policy:Policy",
        "pb",
        {
            "name": "t-boundary",
            "policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        },
    )
    assert boundary == f"arn:aws:iam::{ACCOUNT}:policy/t-boundary"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    (role, outputs), _ = create(
        clients,
        "aws:iam/role:Role",
        "r",
        {
            "name": "t-ingest",
            "assumeRolePolicy": json.dumps(trust),
            "permissionsBoundary": boundary,
            "maxSessionDuration": 7200.0,
            "tags": {"purpose": "ingest"},
            "managedPolicyArns": [boundary],
        },
    )
    assert role == "t-ingest" and outputs["arn"] == f"arn:aws:iam::{ACCOUNT}:role/t-ingest"
    inline = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    (policy_id, _), _ = create(
        clients,
        "aws:iam/rolePolicy:RolePolicy",
        "rp",
        {"role": role, "name": "read", "policy": json.dumps(inline)},
    )
    assert policy_id == "t-ingest:read"
    iam = clients.client("iam", "us-east-1")
    got = iam.get_role(RoleName=role)["Role"]
    assert got["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    assert got["MaxSessionDuration"] == 7200
    assert got["AssumeRolePolicyDocument"] == trust
    assert iam.get_role_policy(RoleName=role, PolicyName="read")["PolicyDocument"] == inline
    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [boundary]


def test_queues_redrive_kms_and_retention(clients: Clients) -> None:
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/d05df36e-d570-aad9-2114-16f571370cfe"
    (dlq_url, dlq), _ = create(
        clients,
        "aws:sqs/queue:Queue",
        "d",
        {"name": "t-dlq", "kmsMasterKeyId": key, "messageRetentionSeconds": 1209600.0},
    )
    redrive = json.dumps({"deadLetterTargetArn": dlq["arn"], "maxReceiveCount": 5})
    (url, queue), _ = create(
        clients,
        "aws:sqs/queue:Queue",
        "q",
        {
            "name": "t-ingest",
            "kmsMasterKeyId": key,
            "kmsDataKeyReusePeriodSeconds": 900.0,
            "visibilityTimeoutSeconds": 5405.0,
            "redrivePolicy": redrive,
        },
    )
    assert url == queue["url"] and queue["arn"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:t-ingest"
    allow = json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [queue["arn"]]})
    # moto 5.2.5 drops RedriveAllowPolicy: reported not emulated, never counted as created.
    with pytest.raises(NotEmulated, match="RedriveAllowPolicy"):
        create(
            clients,
            "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy",
            "ra",
            {"queueUrl": dlq_url, "redriveAllowPolicy": allow},
        )
    sqs = clients.client("sqs", "us-east-1")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"]) == json.loads(redrive)
    assert attrs["KmsMasterKeyId"] == key and attrs["VisibilityTimeout"] == "5405"
    assert attrs["KmsDataKeyReusePeriodSeconds"] == "900"
    dlq_attrs = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    assert dlq_attrs["MessageRetentionPeriod"] == "1209600"
    assert "RedriveAllowPolicy" not in dlq_attrs


def test_table_keys_sse_pitr_ttl_and_deletion_protection(clients: Clients) -> None:
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/d05df36e-d570-aad9-2114-16f571370cfe"
    (name, outputs), _ = create(
        clients,
        "aws:dynamodb/table:Table",
        "t",
        {
            "name": "t-idempotency",
            "hashKey": "id",
            "attributes": [{"type": "S", "name": "id"}],
            "billingMode": "PAY_PER_REQUEST",
            "pointInTimeRecovery": {"enabled": True},
            "deletionProtectionEnabled": True,
            "ttl": {"enabled": True, "attributeName": "expiration"},
            "serverSideEncryption": {"enabled": True, "kmsKeyArn": key},
            "tags": {"purpose": "idempotency"},
        },
    )
    ddb = clients.client("dynamodb", "us-east-1")
    table = ddb.describe_table(TableName=name)["Table"]
    assert outputs["arn"] == table["TableArn"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["KMSMasterKeyArn"] == key
    assert table["DeletionProtectionEnabled"] is True
    backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiration"}


def test_backup_vault_lock_and_plan_selection_not_emulated(clients: Clients) -> None:
    (vault, outputs), _ = create(clients, "aws:backup/vault:Vault", "v", {"name": "t-vault"})
    assert vault == "t-vault" and outputs["arn"].endswith(":backup-vault:t-vault")
    create(
        clients,
        "aws:backup/vaultLockConfiguration:VaultLockConfiguration",
        "vl",
        {"backupVaultName": vault, "minRetentionDays": 35.0, "changeableForDays": 3.0},
    )
    backup = clients.client("backup", "us-east-1")
    described = backup.describe_backup_vault(BackupVaultName=vault)
    assert described["Locked"] is True and described["MinRetentionDays"] == 35
    (plan_id, _plan), _ = create(
        clients,
        "aws:backup/plan:Plan",
        "p",
        {
            "name": "t-plan",
            "rules": [
                {
                    "ruleName": "every-1h",
                    "targetVaultName": vault,
                    "schedule": "cron(0 0/1 * * ? *)",
                    "startWindow": 60.0,
                    "completionWindow": 180.0,
                    "lifecycle": {"deleteAfter": 35.0},
                    "copyActions": [
                        {"destinationVaultArn": outputs["arn"], "lifecycle": {"deleteAfter": 35.0}}
                    ],
                }
            ],
        },
    )
    (rule,) = backup.get_backup_plan(BackupPlanId=plan_id)["BackupPlan"]["Rules"]
    assert rule["Lifecycle"] == {"DeleteAfterDays": 35} and rule["StartWindowMinutes"] == 60
    assert rule["CopyActions"][0]["DestinationBackupVaultArn"] == outputs["arn"]
    with pytest.raises(NotEmulated, match="CreateBackupSelection"):
        create(clients, "aws:backup/selection:Selection", "s", {"planId": plan_id})


def test_optional_detectors(clients: Clients) -> None:
    (detector, _), _ = create(
        clients,
        "aws:guardduty/detector:Detector",
        "g",
        {"enable": True, "findingPublishingFrequency": "FIFTEEN_MINUTES"},
    )
    create(
        clients,
        "aws:guardduty/detectorFeature:DetectorFeature",
        "gf",
        {"detectorId": detector, "name": "S3_DATA_EVENTS", "status": "ENABLED"},
    )
    got = clients.client("guardduty", "us-east-1").get_detector(DetectorId=detector)
    assert got["FindingPublishingFrequency"] == "FIFTEEN_MINUTES"
    assert {"Name": "S3_DATA_EVENTS", "Status": "ENABLED"} in got["Features"]
    (account, hub), _ = create(
        clients,
        "aws:securityhub/account:Account",
        "h",
        {"enableDefaultStandards": False, "controlFindingGenerator": "SECURITY_CONTROL"},
    )
    assert account == ACCOUNT and hub["arn"].endswith(":hub/default")
    with pytest.raises(NotEmulated, match="BatchEnableStandards"):
        create(clients, "aws:securityhub/standardsSubscription:StandardsSubscription", "s", {})
    with pytest.raises(NotEmulated, match="Access Analyzer"):
        create(clients, "aws:accessanalyzer/analyzer:Analyzer", "a", {"analyzerName": "x"})
