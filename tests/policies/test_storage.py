"""Storage policies: what each refuses, and the variants of the stack that weaken storage."""

from __future__ import annotations

from typing import Any

from tests.policies.conftest import Judge
from tests.policies.mutations import Mutation, Snapshot, drop_statement, statement

BUCKET = "aws:s3/bucket:Bucket"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"


def _public_access_off(s: Snapshot) -> None:
    s.props(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "imaging-archive-public-access"
    )["blockPublicPolicy"] = False


def _no_public_access_block(s: Snapshot) -> None:
    s.remove(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "imaging-inbox-public-access"
    )


def _sse_s3_on_archive(s: Snapshot) -> None:
    s.props(ENCRYPTION, "imaging-archive-encryption")["rules"][0][
        "applyServerSideEncryptionByDefault"
    ] = {"sseAlgorithm": "AES256"}


def _aws_managed_key(s: Snapshot) -> None:
    s.props(ENCRYPTION, "imaging-derived-encryption")["rules"][0][
        "applyServerSideEncryptionByDefault"
    ]["kmsMasterKeyId"] = "alias/aws/s3"


def _no_tls_deny(s: Snapshot) -> None:
    with s.policy(POLICY, "imaging-quarantine-policy") as doc:
        drop_statement(doc, "DenyInsecureTransport")


def _old_tls_allowed(s: Snapshot) -> None:
    with s.policy(POLICY, "audit-siem-policy") as doc:
        statement(doc, "DenyTlsOlderThan12")["Condition"]["NumericLessThan"]["s3:TlsVersion"] = (
            "1.0"
        )


def _versioning_suspended(s: Snapshot) -> None:
    s.props("aws:s3/bucketVersioning:BucketVersioning", "dr-replica-versioning")[
        "versioningConfiguration"
    ]["status"] = "Suspended"


def _governance_lock(s: Snapshot) -> None:
    s.props(LOCK, "imaging-archive-object-lock")["rule"]["defaultRetention"]["mode"] = "GOVERNANCE"


def _short_retention(s: Snapshot) -> None:
    s.props(LOCK, "dr-replica-object-lock")["rule"]["defaultRetention"]["days"] = 30.0


def _archive_without_lock(s: Snapshot) -> None:
    s.props(BUCKET, "imaging-archive")["objectLockEnabled"] = False


def _no_rtc(s: Snapshot) -> None:
    rule = s.props(REPLICATION, "dr-replication")["rules"][0]
    rule["destination"]["replicationTime"]["status"] = "Disabled"


def _no_replication(s: Snapshot) -> None:
    s.remove(REPLICATION, "dr-replication")


def _delete_markers_replicated(s: Snapshot) -> None:
    s.props(REPLICATION, "dr-replication")["rules"][0]["deleteMarkerReplication"]["status"] = (
        "Enabled"
    )


def _acls_enabled(s: Snapshot) -> None:
    s.props("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "imaging-inbox-ownership")[
        "rule"
    ]["objectOwnership"] = "ObjectWriter"


def _public_read_acl(s: Snapshot) -> None:
    s.add(
        "aws:s3/bucketAcl:BucketAcl",
        "derived-public-read",
        {"bucket": "pacs-dev-123456789012-us-east-1-derived", "acl": "public-read"},
    )


def _no_access_logging(s: Snapshot) -> None:
    s.remove("aws:s3/bucketLogging:BucketLogging", "imaging-archive-access-logging")


def _force_destroy(s: Snapshot) -> None:
    s.props(BUCKET, "imaging-archive")["forceDestroy"] = True


def _public_read_policy(s: Snapshot) -> None:
    with s.policy(POLICY, "imaging-derived-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::pacs-dev-123456789012-us-east-1-derived/*",
            }
        )


MUTATIONS = [
    Mutation(
        "s3-public-policy-unblocked",
        "aws-s3-bucket-require-public-access-block",
        "archive public access block lets public policies through",
        _public_access_off,
    ),
    Mutation(
        "s3-no-public-access-block",
        "aws-s3-bucket-require-public-access-block",
        "inbox without a public access block",
        _no_public_access_block,
    ),
    Mutation(
        "s3-archive-sse-s3",
        "aws-s3-bucket-require-kms-encryption",
        "archive encrypted with SSE-S3 instead of the customer key",
        _sse_s3_on_archive,
    ),
    Mutation(
        "s3-aws-managed-key",
        "aws-s3-bucket-require-kms-encryption",
        "derived bucket encrypted with the AWS-managed aws/s3 key",
        _aws_managed_key,
    ),
    Mutation(
        "s3-plaintext-allowed",
        "aws-s3-bucket-require-tls-only-policy",
        "quarantine policy no longer denies requests without TLS",
        _no_tls_deny,
    ),
    Mutation(
        "s3-tls10-allowed",
        "aws-s3-bucket-require-tls-only-policy",
        "SIEM bucket accepts TLS 1.0 and 1.1",
        _old_tls_allowed,
    ),
    Mutation(
        "s3-versioning-suspended",
        "aws-s3-bucket-require-versioning",
        "DR replica versioning suspended",
        _versioning_suspended,
    ),
    Mutation(
        "s3-archive-governance-mode",
        "aws-s3-bucket-require-object-lock",
        "archive Object Lock in GOVERNANCE mode (bypassable)",
        _governance_lock,
    ),
    Mutation(
        "s3-replica-30-day-retention",
        "aws-s3-bucket-require-object-lock",
        "DR replica retention cut to 30 days",
        _short_retention,
    ),
    Mutation(
        "s3-archive-without-object-lock",
        "aws-s3-bucket-require-object-lock",
        "archive created without Object Lock",
        _archive_without_lock,
    ),
    Mutation(
        "s3-replication-without-rtc",
        "aws-s3-bucket-require-replication-rtc",
        "archive replication without Replication Time Control",
        _no_rtc,
    ),
    Mutation(
        "s3-archive-not-replicated",
        "aws-s3-bucket-require-replication-rtc",
        "archive replication removed",
        _no_replication,
    ),
    Mutation(
        "s3-delete-markers-replicated",
        "aws-s3-bucket-replication-no-delete-markers",
        "deletions replicate to the DR copy",
        _delete_markers_replicated,
    ),
    Mutation(
        "s3-acls-enabled",
        "aws-s3-bucket-require-owner-enforced",
        "inbox object ownership ObjectWriter (ACLs on)",
        _acls_enabled,
    ),
    Mutation(
        "s3-public-read-acl",
        "aws-s3-no-acl-grants",
        "public-read ACL on the derived bucket",
        _public_read_acl,
    ),
    Mutation(
        "s3-archive-not-logged",
        "aws-s3-bucket-require-access-logging",
        "archive server access logging removed",
        _no_access_logging,
    ),
    Mutation(
        "s3-archive-force-destroy",
        "aws-s3-bucket-no-force-destroy",
        "archive destroyable with its objects",
        _force_destroy,
    ),
    Mutation(
        "s3-public-read-policy",
        "aws-s3-bucket-policy-no-public-allow",
        "derived bucket policy lets anyone read",
        _public_read_policy,
    ),
]


def test_log_targets_may_use_sse_s3_but_phi_buckets_never(snapshot: Snapshot, judge: Judge) -> None:
    # The access-log bucket is a log-delivery target: SSE-S3 is what S3 log delivery accepts.
    assert not judge(snapshot, "aws-s3-bucket-require-kms-encryption").findings
    # The same exemption never covers a bucket classified PHI.
    snapshot.props(BUCKET, "imaging-access-logs")["tags"]["data-classification"] = "phi"
    report = judge(snapshot, "aws-s3-bucket-require-kms-encryption")
    assert [f.urn.rsplit("::", 1)[-1] for f in report.findings] == ["imaging-access-logs"]


def test_minimum_retention_is_configurable(plan_json: dict[str, Any], judge: Judge) -> None:
    # The default stack keeps archived images 7 years; a 10-year minimum refuses it.
    config = {"aws-s3-bucket-require-object-lock": {"minimumRetentionDays": 3653}}
    report = judge(plan_json, "aws-s3-bucket-require-object-lock", config=config)
    assert {f.urn.rsplit("::", 1)[-1] for f in report.findings} == {"imaging-archive", "dr-replica"}
    assert all("must be at least 3653" in f.message for f in report.findings)


def test_advisory_violation_does_not_block(snapshot: Snapshot, judge: Judge) -> None:
    _force_destroy(snapshot)
    config = {"aws-s3-bucket-no-force-destroy": "advisory"}
    report = judge(snapshot, "aws-s3-bucket-no-force-destroy", config=config)
    assert report.findings and not report.blocking
