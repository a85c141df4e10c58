"""SecureBucket: the one place every S3 bucket of the stack gets its controls.

Fixed, not knobs: versioning, all four Block Public Access settings, bucket-owner-enforced ownership
(no ACLs), default encryption (SSE-KMS with S3 Bucket Keys, SSE-C blocked), a TLS-1.2-only policy,
server access logging and lifecycle hygiene. What differs between buckets is data, not security.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.config import ObjectLock
from infra.iam_documents import (
    Account,
    Document,
    LoadBalancerLogDelivery,
    Statement,
    bucket_policy,
)

COLD_STORAGE_CLASS = "GLACIER_IR"  # millisecond retrieval: a radiologist can still open a prior
ABORT_MULTIPART_DAYS = 7
# Glacier Instant Retrieval bills 90 days minimum: moving logs there only pays when kept longer.
_LOG_TRANSITION_DAYS = 90


@dataclass(frozen=True)
class Lifecycle:
    """Lifecycle of the whole bucket; ``None`` leaves that step out."""

    transition_days: int | None = None
    expiration_days: int | None = None
    noncurrent_expiration_days: int | None = None
    abort_multipart_days: int = ABORT_MULTIPART_DAYS


@dataclass(frozen=True)
class SecureBucketArgs:
    """What differs between the stack's buckets."""

    account: Account
    bucket_name: str
    purpose: str
    # None marks the server-access-log target, which S3 log delivery only allows with SSE-S3.
    kms_key: aws.kms.Key | None
    object_lock: ObjectLock | None = None
    access_log_bucket: pulumi.Input[str] | None = None
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    deny_version_deletion: bool = False
    protect: bool = False
    log_delivery_source_buckets: tuple[str, ...] = ()
    # Access and connection logs of the stack's load balancers (log buckets only: SSE-S3).
    load_balancer_logs: LoadBalancerLogDelivery | None = None
    # None: "phi" for KMS buckets, "audit" for log targets.
    classification: str | None = None
    # Grants to AWS services that deliver into the bucket (CloudTrail, for one), after the denies.
    service_statements: tuple[Statement, ...] = ()


class SecureBucket(pulumi.ComponentResource):
    """An S3 bucket with the kit's fixed security controls."""

    bucket: aws.s3.Bucket
    name: str
    arn: pulumi.Output[str]
    # Whatever writes through the policy (log delivery, for one) must wait for it.
    policy: aws.s3.BucketPolicy

    def __init__(
        self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:storage:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.name = args.bucket_name

        self.bucket = aws.s3.Bucket(
            name,
            bucket=args.bucket_name,
            # Object Lock can only be switched on when the bucket is created.
            object_lock_enabled=args.object_lock is not None,
            force_destroy=False,
            tags={"purpose": args.purpose, "data-classification": _classification(args)},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.arn = self.bucket.arn
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        by_default = (
            aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
        )
        default_encryption = by_default(
            sse_algorithm="aws:kms" if args.kms_key is not None else "AES256",
            kms_master_key_id=args.kms_key.arn if args.kms_key is not None else None,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=default_encryption,
                    # Bucket Keys cut KMS requests (and cost) by orders of magnitude for many
                    # small DICOM instances, without changing who can decrypt.
                    bucket_key_enabled=args.kms_key is not None,
                    blocked_encryption_types=["SSE-C"],
                )
            ],
            opts=child,
        )
        if args.object_lock is not None:
            aws.s3.BucketObjectLockConfiguration(
                f"{name}-object-lock",
                bucket=self.bucket.id,
                object_lock_enabled="Enabled",
                rule={
                    "default_retention": {
                        "mode": args.object_lock.mode,
                        "days": args.object_lock.days,
                    }
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
            )
        key_arn: pulumi.Input[str | None] = args.kms_key.arn if args.kms_key is not None else None
        policy = pulumi.Output.from_input(key_arn).apply(
            lambda arn: json.dumps(
                _with_statements(
                    bucket_policy(
                        args.account,
                        args.bucket_name,
                        kms_key_arn=arn,
                        deny_version_deletion=args.deny_version_deletion,
                        log_delivery_source_buckets=args.log_delivery_source_buckets,
                        load_balancer_logs=args.load_balancer_logs,
                    ),
                    args.service_statements,
                )
            )
        )
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=policy,
            # Ordering only: PutBucketPolicy races PutPublicAccessBlock on a new bucket otherwise.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        if args.access_log_bucket is not None:
            aws.s3.BucketLogging(
                f"{name}-access-logging",
                bucket=self.bucket.id,
                target_bucket=args.access_log_bucket,
                target_prefix=f"{args.bucket_name}/",
                opts=child,
            )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[_lifecycle_rule(args.lifecycle)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        self.register_outputs({"bucket": self.bucket.bucket, "arn": self.bucket.arn})


def access_log_bucket(
    name: str,
    account: Account,
    bucket_name: str,
    *,
    retention_days: int,
    source_buckets: tuple[str, ...],
    opts: pulumi.ResourceOptions,
    load_balancer_logs: LoadBalancerLogDelivery | None = None,
) -> SecureBucket:
    """The server-access-log target of one region: delivery only from ``source_buckets``.

    With ``load_balancer_logs``, the region's load balancers also write their access and
    connection logs here (ELB, too, delivers to SSE-S3 buckets only).
    """
    transition = _LOG_TRANSITION_DAYS if retention_days > 2 * _LOG_TRANSITION_DAYS else None
    return SecureBucket(
        name,
        SecureBucketArgs(
            account=account,
            bucket_name=bucket_name,
            purpose="access-logs",
            # S3 server access logging delivers only to SSE-S3 targets, and refuses targets with a
            # default Object Lock retention; the bucket is still versioned and TLS-only.
            kms_key=None,
            lifecycle=Lifecycle(
                transition_days=transition,
                expiration_days=retention_days,
                noncurrent_expiration_days=30,
            ),
            log_delivery_source_buckets=source_buckets,
            load_balancer_logs=load_balancer_logs,
        ),
        opts=opts,
    )


def _with_statements(policy: Document, statements: tuple[Statement, ...]) -> Document:
    return {**policy, "Statement": [*policy["Statement"], *statements]}


def _classification(args: SecureBucketArgs) -> str:
    if args.classification is not None:
        return args.classification
    return "audit" if args.kms_key is None else "phi"


def _lifecycle_rule(lifecycle: Lifecycle) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    s3 = aws.s3
    return s3.BucketLifecycleConfigurationRuleArgs(
        id="kit-lifecycle",
        status="Enabled",
        filter=s3.BucketLifecycleConfigurationRuleFilterArgs(),
        abort_incomplete_multipart_upload=(
            s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=lifecycle.abort_multipart_days
            )
        ),
        transitions=None
        if lifecycle.transition_days is None
        else [
            s3.BucketLifecycleConfigurationRuleTransitionArgs(
                days=lifecycle.transition_days, storage_class=COLD_STORAGE_CLASS
            )
        ],
        expiration=None
        if lifecycle.expiration_days is None
        else s3.BucketLifecycleConfigurationRuleExpirationArgs(days=lifecycle.expiration_days),
        noncurrent_version_expiration=None
        if lifecycle.noncurrent_expiration_days is None
        else s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
            noncurrent_days=lifecycle.noncurrent_expiration_days
        ),
    )
