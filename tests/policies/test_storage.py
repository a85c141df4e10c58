"""Storage policies: what each refuses, and the variants of the stack that weaken storage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.controls import INTEGRITY
from tests.policies.conftest import Judge, policy
from tests.policies.mutations import Mutation, Snapshot, drop_statement, statement

BUCKET = "aws:s3/bucket:Bucket"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ARCHIVE = "pacs-dev-123456789012-us-east-1-archive"
DERIVED_ARN = "arn:aws:s3:::pacs-dev-123456789012-us-east-1-derived"


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


def _old_tls_as_list(s: Snapshot) -> None:
    with s.policy(POLICY, "imaging-inbox-policy") as doc:
        statement(doc, "DenyTlsOlderThan12")["Condition"]["NumericLessThan"]["s3:TlsVersion"] = [
            "1.0"
        ]


def _second_encryption_sse_s3(s: Snapshot) -> None:
    s.add(
        ENCRYPTION,
        "imaging-archive-encryption-sse-s3",
        {
            "bucket": ARCHIVE,
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
        },
    )


def _second_versioning_suspended(s: Snapshot) -> None:
    s.add(
        VERSIONING,
        "imaging-archive-versioning-suspended",
        {"bucket": ARCHIVE, "versioningConfiguration": {"status": "Suspended"}},
    )


def _second_access_block_off(s: Snapshot) -> None:
    s.add(
        ACCESS_BLOCK,
        "imaging-archive-public-access-off",
        {
            "bucket": ARCHIVE,
            "blockPublicAcls": False,
            "ignorePublicAcls": False,
            "blockPublicPolicy": False,
            "restrictPublicBuckets": False,
        },
    )


def _second_ownership_object_writer(s: Snapshot) -> None:
    s.add(
        OWNERSHIP,
        "imaging-archive-ownership-writer",
        {"bucket": ARCHIVE, "rule": {"objectOwnership": "ObjectWriter"}},
    )


def _second_lock_governance(s: Snapshot) -> None:
    s.add(
        LOCK,
        "imaging-archive-object-lock-governance",
        {
            "bucket": ARCHIVE,
            "objectLockEnabled": "Enabled",
            "rule": {"defaultRetention": {"mode": "GOVERNANCE", "days": 1.0}},
        },
    )


def _tls_deny_only_from_vpce(s: Snapshot) -> None:
    with s.policy(POLICY, "imaging-derived-policy") as doc:
        statement(doc, "DenyInsecureTransport")["Condition"]["StringEquals"] = {
            "aws:SourceVpce": "vpce-0123456789abcdef0"
        }


def _tls_deny_voided_by_null(s: Snapshot) -> None:
    with s.policy(POLICY, "imaging-archive-policy") as doc:
        statement(doc, "DenyInsecureTransport")["Condition"]["Null"] = {
            "aws:SecureTransport": "true"
        }


def _tls_deny_bucket_arn_only(s: Snapshot) -> None:
    with s.policy(POLICY, "imaging-derived-policy") as doc:
        statement(doc, "DenyInsecureTransport")["Resource"] = DERIVED_ARN


def _old_tls_deny_narrowed(s: Snapshot) -> None:
    with s.policy(POLICY, "imaging-inbox-policy") as doc:
        statement(doc, "DenyTlsOlderThan12")["Condition"]["StringEquals"] = {
            "aws:SourceVpce": "vpce-0123456789abcdef0"
        }


def _public_inline_bucket_policy(s: Snapshot) -> None:
    s.props(BUCKET, "imaging-derived")["policy"] = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"{DERIVED_ARN}/*",
                }
            ],
        }
    )


def _not_principal_allow(s: Snapshot) -> None:
    with s.policy(POLICY, "imaging-derived-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "EveryoneButOne",
                "Effect": "Allow",
                "NotPrincipal": {"AWS": "arn:aws:iam::123456789012:role/nobody"},
                "Action": "s3:GetObject",
                "Resource": f"{DERIVED_ARN}/*",
            }
        )


def _replicate_tagged_subset(s: Snapshot) -> None:
    s.props(REPLICATION, "dr-replication")["rules"][0]["filter"] = {
        "tag": {"key": "replicate", "value": "yes"}
    }


def _replicate_and_subset(s: Snapshot) -> None:
    s.props(REPLICATION, "dr-replication")["rules"][0]["filter"] = {
        "and": {"prefix": "", "tags": {"replicate": "yes"}}
    }


def _replicate_outside_the_stack(s: Snapshot) -> None:
    s.props(REPLICATION, "dr-replication")["rules"][0]["destination"]["bucket"] = (
        "arn:aws:s3:::somebody-elses-bucket"
    )


def _audit_trail_unlocked(s: Snapshot) -> None:
    s.props(BUCKET, "audit-audit-trail")["objectLockEnabled"] = False
    s.remove(LOCK, "audit-audit-trail-object-lock")


def _audit_trail_short_retention(s: Snapshot) -> None:
    s.props(LOCK, "audit-audit-trail-object-lock")["rule"]["defaultRetention"]["days"] = 30.0


def _cloudfront_reads_archive(s: Snapshot) -> None:
    with s.policy(POLICY, "imaging-archive-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "AnyDistributionReads",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::pacs-dev-123456789012-us-east-1-archive/*",
            }
        )


def _canonical_user_reads(s: Snapshot) -> None:
    with s.policy(POLICY, "imaging-derived-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "LegacyReader",
                "Effect": "Allow",
                "Principal": {
                    "CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d52"
                },
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::pacs-dev-123456789012-us-east-1-derived/*",
            }
        )


def _replica_in_the_same_region(s: Snapshot) -> None:
    rule = s.props(REPLICATION, "dr-replication")["rules"][0]
    rule["destination"]["bucket"] = "arn:aws:s3:::pacs-dev-123456789012-us-east-1-derived"


def _archive_expires_in_a_day(s: Snapshot) -> None:
    lifecycle = s.props(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "imaging-archive-lifecycle",
    )
    lifecycle["rules"][0]["expiration"] = {"days": 1.0}


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
    Mutation(
        "s3-tls10-allowed-as-list",
        "aws-s3-bucket-require-tls-only-policy",
        "inbox TLS-version deny written as a one-element list ['1.0']",
        _old_tls_as_list,
    ),
    Mutation(
        "s3-archive-second-encryption-sse-s3",
        "aws-s3-bucket-require-kms-encryption",
        "a second encryption configuration sets SSE-S3 on the archive",
        _second_encryption_sse_s3,
    ),
    Mutation(
        "s3-archive-second-versioning-suspended",
        "aws-s3-bucket-require-versioning",
        "a second versioning resource suspends versioning of the archive",
        _second_versioning_suspended,
    ),
    Mutation(
        "s3-archive-second-public-access-block-off",
        "aws-s3-bucket-require-public-access-block",
        "a second public access block turns every setting off on the archive",
        _second_access_block_off,
    ),
    Mutation(
        "s3-archive-second-ownership-object-writer",
        "aws-s3-bucket-require-owner-enforced",
        "a second ownership control turns ACLs back on for the archive",
        _second_ownership_object_writer,
    ),
    Mutation(
        "s3-archive-second-lock-governance",
        "aws-s3-bucket-require-object-lock",
        "a second Object Lock configuration puts the archive in 1-day GOVERNANCE mode",
        _second_lock_governance,
    ),
    Mutation(
        "s3-tls-deny-only-from-vpce",
        "aws-s3-bucket-require-tls-only-policy",
        "derived TLS deny applies only to requests through one VPC endpoint",
        _tls_deny_only_from_vpce,
    ),
    Mutation(
        "s3-tls-deny-voided-by-null",
        "aws-s3-bucket-require-tls-only-policy",
        "archive TLS deny also requires aws:SecureTransport to be absent (never applies)",
        _tls_deny_voided_by_null,
    ),
    Mutation(
        "s3-tls-deny-bucket-arn-only",
        "aws-s3-bucket-require-tls-only-policy",
        "derived TLS deny covers the bucket but not its objects",
        _tls_deny_bucket_arn_only,
    ),
    Mutation(
        "s3-old-tls-deny-narrowed",
        "aws-s3-bucket-require-tls-only-policy",
        "inbox TLS-version deny applies only to requests through one VPC endpoint",
        _old_tls_deny_narrowed,
    ),
    Mutation(
        "s3-public-inline-bucket-policy",
        "aws-s3-bucket-policy-no-public-allow",
        "derived bucket's own policy argument lets anyone read",
        _public_inline_bucket_policy,
    ),
    Mutation(
        "s3-not-principal-allow",
        "aws-s3-bucket-policy-no-public-allow",
        "derived bucket policy allows everyone but a NotPrincipal",
        _not_principal_allow,
    ),
    Mutation(
        "s3-replication-tag-filter",
        "aws-s3-bucket-require-replication-rtc",
        "archive replicates only objects with a tag",
        _replicate_tagged_subset,
    ),
    Mutation(
        "s3-replication-and-filter",
        "aws-s3-bucket-require-replication-rtc",
        "archive replicates only objects matching an and-filter",
        _replicate_and_subset,
    ),
    Mutation(
        "s3-replication-outside-the-stack",
        "aws-s3-bucket-require-replication-rtc",
        "archive replicates to a bucket the stack does not declare",
        _replicate_outside_the_stack,
    ),
    Mutation(
        "s3-audit-trail-unlocked",
        "aws-s3-bucket-require-object-lock",
        "audit-trail bucket loses its Object Lock",
        _audit_trail_unlocked,
    ),
    Mutation(
        "s3-audit-trail-30-day-retention",
        "aws-s3-bucket-require-object-lock",
        "audit-trail retention cut to 30 days",
        _audit_trail_short_retention,
    ),
    Mutation(
        "s3-archive-readable-by-any-distribution",
        "aws-s3-bucket-policy-no-public-allow",
        "any account's CloudFront distribution may read the archive",
        _cloudfront_reads_archive,
    ),
    Mutation(
        "s3-canonical-user-reads",
        "aws-s3-bucket-policy-no-public-allow",
        "a CanonicalUser reads the derived bucket",
        _canonical_user_reads,
    ),
    Mutation(
        "s3-replica-in-the-same-region",
        "aws-s3-bucket-require-replication-rtc",
        "the archive replicates into a bucket of its own region",
        _replica_in_the_same_region,
    ),
    Mutation(
        "s3-archive-expires-in-a-day",
        "aws-s3-bucket-require-object-lock",
        "archive lifecycle puts delete markers on every image after a day",
        _archive_expires_in_a_day,
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
    # The default stack keeps archived images 7 years and the audit trail 6; a 10-year minimum
    # refuses both.
    config = {"aws-s3-bucket-require-object-lock": {"minimumRetentionDays": 3653}}
    report = judge(plan_json, "aws-s3-bucket-require-object-lock", config=config)
    assert {f.urn.rsplit("::", 1)[-1] for f in report.findings} == {
        "imaging-archive",
        "dr-replica",
        "audit-audit-trail",
    }
    assert all("3653" in f.message for f in report.findings)
    # The audit trail's lifecycle expires its logs after six years: before a ten-year minimum.
    assert any(
        "lifecycle rule kit-lifecycle expires current versions before 3653 days" in f.message
        for f in report.findings
    )


def test_advisory_violation_does_not_block(snapshot: Snapshot, judge: Judge) -> None:
    _force_destroy(snapshot)
    config = {"aws-s3-bucket-no-force-destroy": "advisory"}
    report = judge(snapshot, "aws-s3-bucket-no-force-destroy", config=config)
    assert report.findings and not report.blocking


@pytest.mark.parametrize("value", [["1.2"], "1.2", 1.2, ["1.0", "1.2"], [1.3]])
def test_tls_version_deny_reads_lists_numbers_and_strings(
    snapshot: Snapshot, judge: Judge, value: Any
) -> None:
    with snapshot.policy(POLICY, "imaging-inbox-policy") as doc:
        deny = statement(doc, "DenyTlsOlderThan12")
        deny["Condition"]["NumericLessThan"]["s3:TlsVersion"] = value
    assert not judge(snapshot, "aws-s3-bucket-require-tls-only-policy").findings


def test_unreadable_tls_version_is_refused_not_raised(snapshot: Snapshot, judge: Judge) -> None:
    with snapshot.policy(POLICY, "imaging-inbox-policy") as doc:
        statement(doc, "DenyTlsOlderThan12")["Condition"]["NumericLessThan"]["s3:TlsVersion"] = (
            "one point two"
        )
    report = judge(snapshot, "aws-s3-bucket-require-tls-only-policy")
    assert [f.urn.rsplit("::", 1)[-1] for f in report.findings] == ["imaging-inbox"]


def test_tls_deny_on_every_resource_passes(snapshot: Snapshot, judge: Judge) -> None:
    with snapshot.policy(POLICY, "imaging-derived-policy") as doc:
        statement(doc, "DenyInsecureTransport")["Resource"] = "*"
        statement(doc, "DenyTlsOlderThan12")["Resource"] = f"{DERIVED_ARN}*"
    assert not judge(snapshot, "aws-s3-bucket-require-tls-only-policy").findings


def test_a_compliant_inline_bucket_policy_passes(snapshot: Snapshot, judge: Judge) -> None:
    inline = snapshot.props(POLICY, "imaging-derived-policy")["policy"]
    snapshot.props(BUCKET, "imaging-derived")["policy"] = inline
    assert not judge(snapshot, "aws-s3-bucket-policy-no-public-allow").findings
    assert not judge(snapshot, "aws-s3-bucket-require-tls-only-policy").findings


def test_replication_filter_as_the_provider_outputs_it_passes(
    snapshot: Snapshot, judge: Judge
) -> None:
    rule = snapshot.props(REPLICATION, "dr-replication")["rules"][0]
    rule["filter"] = {"prefix": "", "tag": None, "and": None}
    rule["prefix"] = ""
    assert not judge(snapshot, "aws-s3-bucket-require-replication-rtc").findings


def test_force_destroy_cites_integrity() -> None:
    assert policy("aws-s3-bucket-no-force-destroy").meta.safeguard == INTEGRITY
