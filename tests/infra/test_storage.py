"""ImagingArchive and every SecureBucket: encryption, WORM, TLS, no public access, logging."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun, Registration
from tests.conftest import one, policy_of, statement

BUCKETS = {
    # logical name -> (physical suffix, KMS key logical name or None for SSE-S3)
    "imaging-inbox": ("us-east-1-inbox", "keys-archive"),
    "imaging-archive": ("us-east-1-archive", "keys-archive"),
    "imaging-quarantine": ("us-east-1-quarantine", "keys-archive"),
    "imaging-derived": ("us-east-1-derived", "keys-archive"),
    "imaging-access-logs": ("us-east-1-access-logs", None),
    # The edge's client CA bundle: public certificates that ELB reads (see test_edge.py).
    "edge-trust": ("us-east-1-edge-trust", None),
    "dr-replica": ("us-west-2-replica", "dr-keys-backup"),
    "dr-access-logs": ("us-west-2-access-logs", None),
    # Audit: the trail (Object Lock), Firehose's backup and the SIEM's pull bucket (test_audit.py).
    "audit-audit-trail": ("us-east-1-audit-trail", "keys-logs"),
    "audit-siem-backup": ("us-east-1-siem-backup", "keys-logs"),
    "audit-siem": ("us-east-1-siem", "keys-logs"),
}
DATA = sorted(n for n, (_, key) in BUCKETS.items() if key)


def child(plan: ProgramRun, bucket: str, kind: str) -> Registration:
    found = [
        r
        for r in plan.resources
        if r.type.startswith(f"aws:s3/{kind}:") and r.parent.endswith(f"::{bucket}")
    ]
    assert len(found) == 1, f"bucket {bucket}: expected one {kind}, found {len(found)}"
    return found[0]


def key_arn(plan: ProgramRun, name: str) -> str:
    key = one(plan, "aws:kms/key:Key", name)
    region = "us-west-2" if name.startswith("dr-") else "us-east-1"
    return f"arn:aws:kms:{region}:{MOCK_ACCOUNT_ID}:key/{key.id}"


def test_the_stack_has_exactly_these_buckets(plan: ProgramRun) -> None:
    names = {b.name: b.inputs["bucket"] for b in plan.of_type("aws:s3/bucket:Bucket")}
    assert set(names) == set(BUCKETS)
    for logical, (suffix, _) in BUCKETS.items():
        assert names[logical] == f"pacs-dev-{MOCK_ACCOUNT_ID}-{suffix}"


@pytest.mark.parametrize("bucket", sorted(BUCKETS))
def test_versioning_ownership_and_public_access(plan: ProgramRun, bucket: str) -> None:
    versioning = child(plan, bucket, "bucketVersioning")
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled", bucket
    ownership = child(plan, bucket, "bucketOwnershipControls")
    assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced", bucket
    pab = child(plan, bucket, "bucketPublicAccessBlock")
    for setting in (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ):
        assert pab.inputs[setting] is True, f"{bucket}: {setting}"
    assert one(plan, "aws:s3/bucket:Bucket", bucket).inputs.get("forceDestroy") is False


@pytest.mark.parametrize("bucket", sorted(BUCKETS))
def test_default_encryption(plan: ProgramRun, bucket: str) -> None:
    (rule,) = child(plan, bucket, "bucketServerSideEncryptionConfiguration").inputs["rules"]
    default = rule["applyServerSideEncryptionByDefault"]
    assert rule["blockedEncryptionTypes"] == ["SSE-C"], bucket
    key = BUCKETS[bucket][1]
    if key is None:
        assert default["sseAlgorithm"] == "AES256", f"{bucket}: log targets need SSE-S3"
    else:
        assert default["sseAlgorithm"] == "aws:kms", bucket
        assert default["kmsMasterKeyId"] == key_arn(plan, key), f"{bucket}: wrong key"
        assert rule["bucketKeyEnabled"] is True, bucket


@pytest.mark.parametrize("bucket", sorted(BUCKETS))
def test_policy_refuses_plain_http_and_old_tls(plan: ProgramRun, bucket: str) -> None:
    document = policy_of(child(plan, bucket, "bucketPolicy"))
    physical = one(plan, "aws:s3/bucket:Bucket", bucket).inputs["bucket"]
    arn = f"arn:aws:s3:::{physical}"
    insecure = statement(document, "DenyInsecureTransport")
    assert insecure["Effect"] == "Deny" and insecure["Principal"] == "*"
    assert insecure["Resource"] == [arn, f"{arn}/*"]
    assert insecure["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    old = statement(document, "DenyTlsOlderThan12")
    assert old["Condition"] == {"NumericLessThan": {"s3:TlsVersion": 1.2}}


@pytest.mark.parametrize("bucket", DATA)
def test_data_buckets_refuse_any_encryption_but_their_key(plan: ProgramRun, bucket: str) -> None:
    document = policy_of(child(plan, bucket, "bucketPolicy"))
    other = statement(document, "DenyEncryptionOtherThanKms")
    assert other["Action"] == "s3:PutObject"
    assert other["Condition"]["StringNotEquals"] == {"s3:x-amz-server-side-encryption": "aws:kms"}
    wrong_key = statement(document, "DenyKmsKeysOtherThanTheBucketKey")
    assert wrong_key["Condition"]["StringNotEquals"] == {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn(plan, BUCKETS[bucket][1] or "")
    }
    sse_c = statement(document, "DenyCustomerProvidedKeys")
    assert sse_c["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}
    }


@pytest.mark.parametrize("bucket", DATA)
def test_data_buckets_log_access_to_their_regions_log_bucket(plan: ProgramRun, bucket: str) -> None:
    logging = child(plan, bucket, "bucketLogging")
    region_logs = "dr-access-logs" if bucket.startswith("dr-") else "imaging-access-logs"
    target = one(plan, "aws:s3/bucket:Bucket", region_logs).inputs["bucket"]
    physical = one(plan, "aws:s3/bucket:Bucket", bucket).inputs["bucket"]
    assert logging.inputs["targetBucket"] == target
    assert logging.inputs["targetPrefix"] == f"{physical}/"


def test_log_bucket_accepts_delivery_only_from_the_stacks_buckets(plan: ProgramRun) -> None:
    document = policy_of(child(plan, "imaging-access-logs", "bucketPolicy"))
    delivery = statement(document, "AllowServerAccessLogDeliveryFromStackBuckets")
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    sources = delivery["Condition"]["ArnLike"]["aws:SourceArn"]
    assert sources == sorted(
        f"arn:aws:s3:::pacs-dev-{MOCK_ACCOUNT_ID}-us-east-1-{p}"
        for p in (
            "archive",
            "audit-trail",
            "derived",
            "edge-trust",
            "inbox",
            "quarantine",
            "siem",
            "siem-backup",
        )
    )
    assert delivery["Condition"]["StringEquals"]["aws:SourceAccount"] == MOCK_ACCOUNT_ID


@pytest.mark.parametrize(
    ("bucket", "mode", "days"),
    [
        ("imaging-archive", "COMPLIANCE", 2555),
        ("dr-replica", "COMPLIANCE", 2555),
        ("imaging-quarantine", "GOVERNANCE", 365),
    ],
)
def test_object_lock_defaults(plan: ProgramRun, bucket: str, mode: str, days: int) -> None:
    assert one(plan, "aws:s3/bucket:Bucket", bucket).inputs["objectLockEnabled"] is True
    lock = child(plan, bucket, "bucketObjectLockConfiguration")
    assert lock.inputs["objectLockEnabled"] == "Enabled"
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": mode, "days": days}, bucket


@pytest.mark.parametrize("bucket", ["imaging-inbox", "imaging-derived", "imaging-access-logs"])
def test_buckets_without_worm_have_no_lock(plan: ProgramRun, bucket: str) -> None:
    assert one(plan, "aws:s3/bucket:Bucket", bucket).inputs["objectLockEnabled"] is False
    assert not [
        r
        for r in plan.resources
        if r.type.endswith("BucketObjectLockConfiguration") and r.parent.endswith(f"::{bucket}")
    ]


def test_archive_retention_follows_config(plan_with: Callable[..., ProgramRun]) -> None:
    run = plan_with(archiveRetentionDays=3650, archiveRetentionMode="GOVERNANCE")
    lock = child(run, "imaging-archive", "bucketObjectLockConfiguration")
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "GOVERNANCE", "days": 3650}
    replica = child(run, "dr-replica", "bucketObjectLockConfiguration")
    assert replica.inputs["rule"]["defaultRetention"] == {"mode": "GOVERNANCE", "days": 3650}


@pytest.mark.parametrize("bucket", ["imaging-archive", "dr-replica"])
def test_archived_versions_cannot_be_deleted_even_after_retention(
    plan: ProgramRun, bucket: str
) -> None:
    deny = statement(policy_of(child(plan, bucket, "bucketPolicy")), "DenyDeletingArchivedVersions")
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert set(deny["Action"]) == {"s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"}


def lifecycle(plan: ProgramRun, bucket: str) -> dict[str, object]:
    (rule,) = child(plan, bucket, "bucketLifecycleConfiguration").inputs["rules"]
    assert rule["status"] == "Enabled"
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}, bucket
    result: dict[str, object] = rule
    return result


@pytest.mark.parametrize(
    "bucket", ["imaging-archive", "imaging-derived", "imaging-quarantine", "dr-replica"]
)
def test_kept_data_moves_to_instant_retrieval_and_never_expires(
    plan: ProgramRun, bucket: str
) -> None:
    rule = lifecycle(plan, bucket)
    assert rule["transitions"] == [{"days": 90, "storageClass": "GLACIER_IR"}], bucket
    assert "expiration" not in rule and "noncurrentVersionExpiration" not in rule, bucket


def test_inbox_expires_long_after_processing(plan_with: Callable[..., ProgramRun]) -> None:
    run = plan_with(inboxExpirationDays=45)
    rule = lifecycle(run, "imaging-inbox")
    assert rule["expiration"] == {"days": 45}
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 45}


@pytest.mark.parametrize("bucket", ["imaging-access-logs", "dr-access-logs"])
def test_access_logs_are_kept_for_the_log_retention(plan: ProgramRun, bucket: str) -> None:
    rule = lifecycle(plan, bucket)
    assert rule["expiration"] == {"days": 2192}
    assert rule["transitions"] == [{"days": 90, "storageClass": "GLACIER_IR"}]


def test_short_log_retention_skips_the_cold_transition(
    plan_with: Callable[..., ProgramRun],
) -> None:
    rule = lifecycle(plan_with(logRetentionDays=90), "imaging-access-logs")
    assert rule["expiration"] == {"days": 90}
    assert "transitions" not in rule, "objects would expire before their Glacier minimum"
