"""Storage: every S3 bucket private, encrypted with a customer key, TLS-only, versioned and logged;
the archive under Object Lock in compliance mode, replicated with Replication Time Control."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    Finding,
    Meta,
    ResourceLike,
    Setting,
    Stack,
    anonymous_allow_messages,
    customer_key,
    denials,
    denies_insecure_transport,
    get,
    items,
    label,
    messages,
    resource_policy,
    stack_policy,
    tag,
    truthy,
)

BUCKET = "aws:s3/bucket:Bucket"
ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
OBJECT_LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
BUCKET_ACLS = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"

KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
SIX_YEARS_DAYS = 2192  # 45 CFR 164.316(b)(2)(i): six years, leap days included

ARCHIVE_PURPOSES = Setting(
    "archivePurposes",
    "Values of the `purpose` tag that mark a bucket as holding archived images",
    ["archive", "archive-replica"],
    {"type": "array", "items": {"type": "string"}},
)


def _for_bucket(stack: Stack, bucket: Any, child_type: str) -> list[Any]:
    return stack.attached(bucket, child_type, "bucket", "bucket")


def _bucket_label(bucket: ResourceLike) -> str:
    return label(bucket, "bucket", "bucket")


def _is_archive(bucket: ResourceLike, config: Mapping[str, Any]) -> bool:
    return tag(bucket, "purpose") in set(config["archivePurposes"])


def _log_targets(stack: Stack) -> set[str]:
    """Names of the buckets S3 server access logs or load balancer logs are delivered to."""
    names = {str(r.props.get("targetBucket")) for r in stack.of_type(LOGGING)}
    for lb in stack.of_type(LOAD_BALANCER):
        for kind in ("accessLogs", "connectionLogs"):
            if truthy(get(lb.props, kind, "enabled")):
                names.add(str(get(lb.props, kind, "bucket")))
    return names


@stack_policy(
    Meta(
        id="aws-s3-bucket-require-public-access-block",
        description="Every S3 bucket has a public access block with all four settings on.",
        practice=c.PRIVATE_NETWORK,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.CRITICAL,
        remediation="Declare aws.s3.BucketPublicAccessBlock for the bucket with block_public_acls, "
        "ignore_public_acls, block_public_policy and restrict_public_buckets all True (the kit's "
        "SecureBucket component does).",
        subjects=(BUCKET,),
    )
)
def require_public_access_block(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    flags = ("blockPublicAcls", "ignorePublicAcls", "blockPublicPolicy", "restrictPublicBuckets")
    for bucket in stack.of_type(BUCKET):
        blocks = _for_bucket(stack, bucket, ACCESS_BLOCK)
        if not blocks:
            yield bucket, f"{_bucket_label(bucket)} must have a BucketPublicAccessBlock"
            continue
        off = [f for f in flags if not any(truthy(b.props.get(f)) for b in blocks)]
        if off:
            yield bucket, f"{_bucket_label(bucket)}: public access block must set {', '.join(off)}"


@stack_policy(
    Meta(
        id="aws-s3-bucket-require-kms-encryption",
        description="Every S3 bucket encrypts by default with a customer-managed KMS key.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.HIGH,
        remediation="Declare aws.s3.BucketServerSideEncryptionConfiguration with "
        "sse_algorithm 'aws:kms' and kms_master_key_id set to the stack's key (bucket keys on). "
        "Only log-delivery targets (S3 server access logs and load balancer logs accept SSE-S3 "
        "only) and buckets of the classifications in sseS3Classifications may use AES256.",
        subjects=(BUCKET,),
        settings=(
            Setting(
                "sseS3Classifications",
                "data-classification tags of buckets allowed SSE-S3 (public material only)",
                ["public-certificates"],
                {"type": "array", "items": {"type": "string"}},
            ),
        ),
    )
)
def require_kms_encryption(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    log_targets = _log_targets(stack)
    for bucket in stack.of_type(BUCKET):
        title = _bucket_label(bucket)
        configs = _for_bucket(stack, bucket, ENCRYPTION)
        if not configs:
            yield bucket, f"{title} must have default encryption (SSE-KMS with the stack's key)"
            continue
        sse_s3_allowed = tag(bucket, "data-classification") != "phi" and (
            bucket.props.get("bucket") in log_targets
            or tag(bucket, "data-classification") in set(config["sseS3Classifications"])
        )
        for rule in items(configs[0].props.get("rules")):
            default = get(rule, "applyServerSideEncryptionByDefault", default={})
            algorithm = default.get("sseAlgorithm")
            if algorithm in KMS_ALGORITHMS:
                if not customer_key(default.get("kmsMasterKeyId"), "s3"):
                    yield bucket, f"{title} must name a customer-managed KMS key (kmsMasterKeyId)"
            elif not (algorithm == "AES256" and sse_s3_allowed):
                yield bucket, f"{title} encrypts with {algorithm!r}; it must use aws:kms"


def _denies_old_tls(policy: Any) -> bool:
    """Whether a bucket policy denies everyone s3:* over TLS older than 1.2."""
    for s in denials(policy, "s3"):
        tls = get(s.condition, "NumericLessThan", "s3:TlsVersion")
        if tls is not None and float(str(tls)) >= 1.2:
            return True
    return False


@stack_policy(
    Meta(
        id="aws-s3-bucket-require-tls-only-policy",
        description="Every S3 bucket's policy denies requests made without TLS 1.2 or newer.",
        practice=c.MUTUAL_TLS_ONLY,
        safeguard=c.TRANSMISSION_ENCRYPTION,
        severity=Severity.HIGH,
        remediation="Give the bucket an aws.s3.BucketPolicy with two Deny statements for "
        "Principal '*' and Action 's3:*' on the bucket and its objects: Bool aws:SecureTransport "
        "'false', and NumericLessThan s3:TlsVersion '1.2'.",
        subjects=(BUCKET,),
    )
)
def require_tls_only(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for bucket in stack.of_type(BUCKET):
        title = _bucket_label(bucket)
        policies = _for_bucket(stack, bucket, BUCKET_POLICY)
        if not policies:
            yield bucket, f"{title} must have a bucket policy that denies non-TLS requests"
            continue
        policy = policies[0].props.get("policy")
        plain, old = denies_insecure_transport(policy, "s3"), _denies_old_tls(policy)
        yield from (
            (bucket, m)
            for m in messages(
                (plain, f"{title}: policy must deny s3:* when aws:SecureTransport is false"),
                (old, f"{title}: policy must deny s3:* when s3:TlsVersion is below 1.2"),
            )
        )


@stack_policy(
    Meta(
        id="aws-s3-bucket-require-versioning",
        description="Every S3 bucket keeps every version of every object.",
        practice=c.IMMUTABLE_ARCHIVE,
        safeguard=c.INTEGRITY,
        severity=Severity.HIGH,
        remediation="Declare aws.s3.BucketVersioning for the bucket with status 'Enabled'.",
        subjects=(BUCKET,),
    )
)
def require_versioning(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for bucket in stack.of_type(BUCKET):
        versions = _for_bucket(stack, bucket, VERSIONING)
        status = [get(v.props, "versioningConfiguration", "status") for v in versions]
        if "Enabled" not in status:
            yield bucket, f"{_bucket_label(bucket)} must have versioning status Enabled"


@stack_policy(
    Meta(
        id="aws-s3-bucket-require-object-lock",
        description="Buckets that hold archived images are under S3 Object Lock in compliance mode "
        "for at least the minimum retention.",
        practice=c.IMMUTABLE_ARCHIVE,
        safeguard=c.INTEGRITY,
        severity=Severity.CRITICAL,
        remediation="Create the bucket with object_lock_enabled=True and declare "
        "aws.s3.BucketObjectLockConfiguration with default retention mode 'COMPLIANCE' and days "
        "(or years) of at least minimumRetentionDays (stack config archiveRetentionYears).",
        subjects=(BUCKET,),
        settings=(
            ARCHIVE_PURPOSES,
            Setting(
                "minimumRetentionDays",
                "Least default retention of archived images, in days (six years by default)",
                SIX_YEARS_DAYS,
                {"type": "integer", "minimum": 1},
            ),
        ),
    )
)
def require_object_lock(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    minimum = int(config["minimumRetentionDays"])
    for bucket in stack.of_type(BUCKET):
        if not _is_archive(bucket, config):
            continue
        title = _bucket_label(bucket)
        if not truthy(bucket.props.get("objectLockEnabled")):
            yield bucket, f"{title} holds archived images: it must be created with Object Lock"
            continue
        locks = _for_bucket(stack, bucket, OBJECT_LOCK)
        if not locks:
            yield bucket, f"{title} must have an Object Lock configuration with default retention"
            continue
        retention = get(locks[0].props, "rule", "defaultRetention", default={})
        mode = retention.get("mode")
        days = float(retention.get("days") or 0) or float(retention.get("years") or 0) * 365.25
        yield from (
            (bucket, m)
            for m in messages(
                (
                    mode == "COMPLIANCE",
                    f"{title}: Object Lock mode is {mode!r}, must be COMPLIANCE",
                ),
                (
                    days >= minimum,
                    f"{title}: default retention is {days:.0f} days, must be at least {minimum}",
                ),
            )
        )


@stack_policy(
    Meta(
        id="aws-s3-bucket-require-replication-rtc",
        description="The archive replicates every object to another bucket with S3 Replication "
        "Time Control (15 minutes) and its metrics.",
        practice=c.BACKUP_AND_DR,
        safeguard=c.DISASTER_RECOVERY,
        severity=Severity.HIGH,
        remediation="Declare aws.s3.BucketReplicationConfig on the archive bucket with an enabled "
        "rule for all objects (empty filter), replicating SSE-KMS objects, destination "
        "replication_time status 'Enabled' with 15 minutes and metrics status 'Enabled'.",
        subjects=(BUCKET,),
        settings=(
            Setting(
                "sourcePurposes",
                "Values of the `purpose` tag of buckets that must replicate",
                ["archive"],
                {"type": "array", "items": {"type": "string"}},
            ),
        ),
    )
)
def require_replication_rtc(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for bucket in stack.of_type(BUCKET):
        if tag(bucket, "purpose") not in set(config["sourcePurposes"]):
            continue
        title = _bucket_label(bucket)
        replications = _for_bucket(stack, bucket, REPLICATION)
        if not replications:
            yield bucket, f"{title} must replicate to the DR region (BucketReplicationConfig)"
            continue
        rules = [
            r for r in items(replications[0].props.get("rules")) if r.get("status") == "Enabled"
        ]
        if not rules:
            yield bucket, f"{title}: replication must have an enabled rule"
            continue
        for rule in rules:
            destination = rule.get("destination") or {}
            rule_id = rule.get("id", "?")
            yield from (
                (bucket, m)
                for m in messages(
                    (
                        get(destination, "replicationTime", "status") == "Enabled"
                        and float(get(destination, "replicationTime", "time", "minutes") or 0)
                        == 15,
                        f"{title}: replication rule {rule_id} must enable Replication Time "
                        "Control (15 minutes)",
                    ),
                    (
                        get(destination, "metrics", "status") == "Enabled",
                        f"{title}: replication rule {rule_id} must enable replication metrics",
                    ),
                    (
                        get(rule, "sourceSelectionCriteria", "sseKmsEncryptedObjects", "status")
                        == "Enabled"
                        and bool(get(destination, "encryptionConfiguration", "replicaKmsKeyId")),
                        f"{title}: replication rule {rule_id} must replicate SSE-KMS objects and "
                        "encrypt replicas with a KMS key of the DR region",
                    ),
                    (
                        not rule.get("prefix") and not get(rule, "filter", "prefix"),
                        f"{title}: replication rule {rule_id} must cover every object (no prefix)",
                    ),
                )
            )


@resource_policy(
    Meta(
        id="aws-s3-bucket-replication-no-delete-markers",
        description="Replication never carries deletions to the disaster-recovery copy.",
        practice=c.BACKUP_AND_DR,
        safeguard=c.DATA_BACKUP_PLAN,
        severity=Severity.HIGH,
        remediation="Set delete_marker_replication status 'Disabled' on every replication rule "
        "(and leave ReplicateDelete out of the replication role).",
        subjects=(REPLICATION,),
    )
)
def no_delete_marker_replication(
    resource: ResourceLike, config: Mapping[str, Any]
) -> Iterator[str]:
    for rule in items(resource.props.get("rules")):
        if get(rule, "deleteMarkerReplication", "status") == "Enabled":
            yield (
                f"replication rule {rule.get('id', '?')} replicates delete markers: "
                "deleteMarkerReplication status must be Disabled"
            )


@stack_policy(
    Meta(
        id="aws-s3-bucket-require-owner-enforced",
        description="Every S3 bucket disables ACLs (object ownership BucketOwnerEnforced).",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.MEDIUM,
        remediation="Declare aws.s3.BucketOwnershipControls with object_ownership "
        "'BucketOwnerEnforced'; grant access with policies, never ACLs.",
        subjects=(BUCKET,),
    )
)
def require_owner_enforced(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for bucket in stack.of_type(BUCKET):
        owners = _for_bucket(stack, bucket, OWNERSHIP)
        if not any(
            get(o.props, "rule", "objectOwnership") == "BucketOwnerEnforced" for o in owners
        ):
            yield bucket, f"{_bucket_label(bucket)} must set object ownership BucketOwnerEnforced"


@resource_policy(
    Meta(
        id="aws-s3-no-acl-grants",
        description="No S3 ACL grants access: no bucket ACL resources and no canned ACL other than "
        "private.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.HIGH,
        remediation="Remove aws.s3.BucketAcl resources and the bucket's acl/grants arguments; "
        "grant access through the bucket policy or IAM.",
        subjects=(BUCKET, *BUCKET_ACLS),
    )
)
def no_acl_grants(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    if resource.resource_type == BUCKET:
        acl = props.get("acl")
        yield from messages(
            (acl in (None, "", "private"), f"canned ACL {acl!r} must be removed (or 'private')"),
            (not items(props.get("grants")), "ACL grants must be removed from the bucket"),
        )
        return
    acl = props.get("acl")
    grants = items(get(props, "accessControlPolicy", "grants"))
    if acl not in (None, "", "private") or grants:
        yield "bucket ACL grants access: remove the BucketAcl resource (ACLs are disabled)"


@stack_policy(
    Meta(
        id="aws-s3-bucket-require-access-logging",
        description="Every S3 bucket logs server access to a log bucket of the stack.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.AUDIT_CONTROLS,
        severity=Severity.MEDIUM,
        remediation="Declare aws.s3.BucketLogging for the bucket with target_bucket the stack's "
        "access-log bucket (the log bucket itself is exempt).",
        subjects=(BUCKET,),
    )
)
def require_access_logging(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    targets = {str(r.props.get("targetBucket")) for r in stack.of_type(LOGGING)}
    names = {str(b.props.get("bucket")) for b in stack.of_type(BUCKET)}
    for bucket in stack.of_type(BUCKET):
        if bucket.props.get("bucket") in targets:
            continue  # a log target does not log into itself
        logging = _for_bucket(stack, bucket, LOGGING)
        if not logging:
            yield bucket, f"{_bucket_label(bucket)} must log server access (BucketLogging)"
        elif not any(str(r.props.get("targetBucket")) in names for r in logging):
            yield bucket, f"{_bucket_label(bucket)} must log to an access-log bucket of the stack"


@resource_policy(
    Meta(
        id="aws-s3-bucket-no-force-destroy",
        description="No S3 bucket can be destroyed with its objects.",
        practice=c.IMMUTABLE_ARCHIVE,
        safeguard=c.MEDIA_DISPOSAL,
        severity=Severity.HIGH,
        remediation="Remove force_destroy (or set it False): a bucket holding PHI is emptied by "
        "its lifecycle and retention, never by `pulumi destroy`.",
        subjects=(BUCKET,),
    )
)
def no_force_destroy(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if truthy(resource.props.get("forceDestroy")):
        yield "forceDestroy must be false"


@resource_policy(
    Meta(
        id="aws-s3-bucket-policy-no-public-allow",
        description="No bucket policy allows an anonymous principal without tying it to this "
        "account.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.CRITICAL,
        remediation="Name the principals (account roles or service principals) in Allow "
        "statements, or condition a '*' principal on aws:SourceAccount, aws:SourceArn, "
        "aws:PrincipalAccount, aws:PrincipalOrgID or aws:SourceVpce.",
        subjects=(BUCKET_POLICY,),
    )
)
def no_public_allow(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    yield from anonymous_allow_messages(resource.props.get("policy"))


POLICIES = (
    require_public_access_block,
    require_kms_encryption,
    require_tls_only,
    require_versioning,
    require_object_lock,
    require_replication_rtc,
    no_delete_marker_replication,
    require_owner_enforced,
    no_acl_grants,
    require_access_logging,
    no_force_destroy,
    no_public_allow,
)
