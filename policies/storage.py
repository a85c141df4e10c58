"""Storage: every S3 bucket private, encrypted with a customer key, TLS-only, versioned and logged;
the archive under Object Lock in compliance mode, replicated with Replication Time Control."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    SCOPING_CONDITION_KEYS,
    STRING_LIST,
    DocumentError,
    Finding,
    Meta,
    ResourceLike,
    Setting,
    Stack,
    Statement,
    anonymous_allow_messages,
    covers,
    customer_key,
    denials,
    denies_insecure_transport,
    document,
    get,
    items,
    label,
    messages,
    parse_arn,
    pins,
    resource_policy,
    sole_condition,
    stack_policy,
    statements,
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
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
BUCKET_ACLS = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"

KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")

ARCHIVE_PURPOSES = Setting(
    "archivePurposes",
    "Values of the `purpose` tag that mark a bucket as an archive kept under Object Lock: "
    "archived images, their replica, and the audit trail",
    ["archive", "archive-replica", "audit-trail"],
    STRING_LIST,
)
# Partitions by region prefix (a plan's bucket has no ARN yet: it is derived from its name).
_PARTITIONS = (
    ("us-gov-", "aws-us-gov"),
    ("cn-", "aws-cn"),
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
    ("eusc-", "aws-eusc"),
)


def _for_bucket(stack: Stack, bucket: Any, child_type: str) -> list[Any]:
    return stack.attached(bucket, child_type, "bucket", "bucket")


def _bucket_label(bucket: ResourceLike) -> str:
    return label(bucket, "bucket", "bucket")


def _bucket_arns(bucket: ResourceLike) -> list[str]:
    """The ARNs a TLS deny must cover: the bucket and every object in it (none when a plan's
    bucket has neither ARN nor name, e.g. auto-named: its resource patterns cannot be checked)."""
    arn = bucket.props.get("arn")
    if not (isinstance(arn, str) and arn.startswith("arn:")):
        name = bucket.props.get("bucket")
        if not (isinstance(name, str) and name):
            return []
        region = str(bucket.props.get("region") or "")
        partition = next((p for prefix, p in _PARTITIONS if region.startswith(prefix)), "aws")
        arn = f"arn:{partition}:s3:::{name}"
    return [arn, f"{arn}/*"]


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
        # Each block is applied to the bucket (the last one written wins): every one must comply.
        for block in blocks:
            off = [f for f in flags if not truthy(block.props.get(f))]
            if off:
                yield (
                    bucket,
                    f"{_bucket_label(bucket)}: public access block {block.name} must set "
                    f"{', '.join(off)}",
                )


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
                STRING_LIST,
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
        # Every encryption configuration of the bucket is applied (the last one written wins).
        rules = [r for conf in configs for r in items(conf.props.get("rules"))]
        for rule in rules:
            default = get(rule, "applyServerSideEncryptionByDefault", default={})
            if not isinstance(default, Mapping):
                default = {}
            algorithm = default.get("sseAlgorithm")
            if algorithm in KMS_ALGORITHMS:
                if not customer_key(default.get("kmsMasterKeyId"), "s3"):
                    yield bucket, f"{title} must name a customer-managed KMS key (kmsMasterKeyId)"
            elif not (algorithm == "AES256" and sse_s3_allowed):
                yield bucket, f"{title} encrypts with {algorithm!r}; it must use aws:kms"


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


# Operator -> least value that denies TLS 1.0 and 1.1 (versions are 1.0, 1.1, 1.2, 1.3).
_OLD_TLS_OPERATORS = {
    "NumericLessThan": 1.2,
    "NumericLessThanIfExists": 1.2,
    "NumericLessThanEquals": 1.1,
    "NumericLessThanEqualsIfExists": 1.1,
}


def _denies_old_tls(policy: Any, resources: list[str]) -> bool:
    """Whether a bucket policy denies everyone s3:* over TLS older than 1.2, on ``resources``.

    The deny counts only when its one condition is s3:TlsVersion under NumericLessThan (a value
    of 1.2 or more; a list, a number or a string): another condition beside it narrows the deny.
    """
    for s in denials(policy, "s3"):
        condition = sole_condition(s)
        if condition is None or not all(covers(s.resources, arn) for arn in resources):
            continue
        operator, key, values = condition
        floor = _OLD_TLS_OPERATORS.get(operator)
        if key != "s3:tlsversion" or floor is None:
            continue
        if any(n is not None and n >= floor for n in map(_number, values)):
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
        "Principal '*' and Action 's3:*' with Resource the bucket's ARN and '<ARN>/*', each with "
        "that single condition: Bool aws:SecureTransport 'false', and NumericLessThan "
        "s3:TlsVersion '1.2'. Every policy of the bucket (each BucketPolicy and the bucket's own "
        "policy argument) must hold both.",
        subjects=(BUCKET,),
    )
)
def require_tls_only(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for bucket in stack.of_type(BUCKET):
        title = _bucket_label(bucket)
        policies = stack.policies_of(bucket, BUCKET_POLICY, "bucket", "bucket")
        if not policies:
            yield bucket, f"{title} must have a bucket policy that denies non-TLS requests"
            continue
        arns = _bucket_arns(bucket)
        # A bucket has one policy: whichever of them is written last is in force.
        for policy in policies:
            try:
                plain = denies_insecure_transport(policy, "s3", resources=arns)
                old = _denies_old_tls(policy, arns)
            except DocumentError as exc:
                yield bucket, f"{title}: a policy of the bucket is not a policy document ({exc})"
                continue
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
        description="Every S3 bucket keeps every version of every object (every versioning "
        "configuration of the bucket Enabled).",
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
        if not status or any(s != "Enabled" for s in status):
            yield bucket, f"{_bucket_label(bucket)} must have versioning status Enabled"


@stack_policy(
    Meta(
        id="aws-s3-bucket-require-object-lock",
        description="Archive buckets (archived images, their replica, the audit trail) are under "
        "S3 Object Lock in compliance mode for at least the minimum retention.",
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
                c.SIX_YEARS_DAYS,
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
            yield bucket, f"{title} is an archive: it must be created with Object Lock"
            continue
        locks = _for_bucket(stack, bucket, OBJECT_LOCK)
        if not locks:
            yield bucket, f"{title} must have an Object Lock configuration with default retention"
            continue
        # Every lock configuration of the bucket is applied (the last one written wins).
        for lock in locks:
            retention = get(lock.props, "rule", "defaultRetention", default={})
            if not isinstance(retention, Mapping):
                retention = {}
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
                        f"{title}: default retention is {days:.0f} days, must be at least "
                        f"{minimum}",
                    ),
                )
            )
        # A lifecycle expiration puts a delete marker on every current version: the images stay
        # locked but vanish from every reader until someone restores them version by version.
        for lifecycle in _for_bucket(stack, bucket, LIFECYCLE):
            for rule in items(lifecycle.props.get("rules")):
                if not isinstance(rule, Mapping) or rule.get("status") != "Enabled":
                    continue
                expiration = rule.get("expiration")
                if not isinstance(expiration, Mapping):
                    continue
                expires = expiration.get("days")
                if expiration.get("date") or (expires and float(expires) < minimum):
                    yield (
                        bucket,
                        (
                            f"{title}: lifecycle rule {rule.get('id', '?')} expires current "
                            f"versions before {minimum} days"
                        ),
                    )


@stack_policy(
    Meta(
        id="aws-s3-bucket-require-replication-rtc",
        description="The archive replicates every object to another bucket of the stack with S3 "
        "Replication Time Control (15 minutes) and its metrics.",
        practice=c.BACKUP_AND_DR,
        safeguard=c.DISASTER_RECOVERY,
        severity=Severity.HIGH,
        remediation="Declare aws.s3.BucketReplicationConfig on the archive bucket with an enabled "
        "rule for all objects (an empty filter: no prefix, tag or and), replicating SSE-KMS "
        "objects, whose destination bucket is the ARN of the stack's replica bucket, with "
        "replication_time status 'Enabled' with 15 minutes and metrics status 'Enabled'. Every "
        "replication configuration of the bucket must hold this.",
        subjects=(BUCKET,),
        settings=(
            Setting(
                "sourcePurposes",
                "Values of the `purpose` tag of buckets that must replicate",
                ["archive"],
                STRING_LIST,
            ),
        ),
    )
)
def require_replication_rtc(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    names = {str(b.props.get("bucket")) for b in stack.of_type(BUCKET) if b.props.get("bucket")}
    for bucket in stack.of_type(BUCKET):
        if tag(bucket, "purpose") not in set(config["sourcePurposes"]):
            continue
        title = _bucket_label(bucket)
        replications = _for_bucket(stack, bucket, REPLICATION)
        if not replications:
            yield bucket, f"{title} must replicate to the DR region (BucketReplicationConfig)"
            continue
        # Every replication configuration of the bucket is applied (the last one written wins).
        for replication in replications:
            yield from ((bucket, m) for m in _replication_problems(title, replication, names))
            yield from ((bucket, m) for m in _same_region(stack, bucket, title, replication))


def _bucket_region(stack: Stack, bucket: Any) -> str | None:
    """A bucket's region: its ``region`` (outputs), else its default KMS key's region (SSE-KMS
    keys must be in the bucket's region)."""
    region = bucket.props.get("region")
    if isinstance(region, str) and region:
        return region
    for config in _for_bucket(stack, bucket, ENCRYPTION):
        for rule in items(config.props.get("rules")):
            key = parse_arn(get(rule, "applyServerSideEncryptionByDefault", "kmsMasterKeyId"))
            if key and key.region:
                return key.region
    return None


def _same_region(stack: Stack, source: Any, title: str, replication: Any) -> Iterator[str]:
    """A replica in the source's region is no disaster-recovery copy."""
    here = _bucket_region(stack, source)
    for rule in items(replication.props.get("rules")):
        if not isinstance(rule, Mapping) or rule.get("status") != "Enabled":
            continue
        destination: Mapping[str, Any] = (
            rule["destination"] if isinstance(rule.get("destination"), Mapping) else {}
        )
        target = parse_arn(destination.get("bucket"))
        buckets = [
            b for b in stack.of_type(BUCKET) if target and b.props.get("bucket") == target.resource
        ]
        there = _bucket_region(stack, buckets[0]) if buckets else None
        replica_key = parse_arn(get(destination, "encryptionConfiguration", "replicaKmsKeyId"))
        there = there or (replica_key.region if replica_key else None)
        if here and there and here == there:
            yield (
                f"{title}: replication rule {rule.get('id', '?')} replicates within {here}; the "
                "disaster-recovery copy must be in another region"
            )


def _empty(value: Any) -> bool:
    """Whether a property selects nothing: unset, "", or only empty members (a provider's outputs
    fill an unset filter with empty fields)."""
    if value is None or value == "":
        return True
    if isinstance(value, Mapping):
        return all(_empty(v) for v in value.values())
    if isinstance(value, Sequence) and not isinstance(value, str):
        return all(_empty(v) for v in value)
    return False


def _replication_problems(title: str, replication: Any, names: set[str]) -> Iterator[str]:
    rules = [
        r
        for r in items(replication.props.get("rules"))
        if isinstance(r, Mapping) and r.get("status") == "Enabled"
    ]
    if not rules:
        yield f"{title}: replication must have an enabled rule"
        return
    for rule in rules:
        destination = rule.get("destination")
        if not isinstance(destination, Mapping):
            destination = {}
        rule_id = rule.get("id", "?")
        target = parse_arn(destination.get("bucket"))
        target_name = target.resource if target and target.service == "s3" else None
        yield from messages(
            (
                target_name in names,
                f"{title}: replication rule {rule_id} must replicate to a bucket of the stack "
                f"(destination bucket {destination.get('bucket')!r})",
            ),
            (
                get(destination, "replicationTime", "status") == "Enabled"
                and float(get(destination, "replicationTime", "time", "minutes") or 0) == 15,
                f"{title}: replication rule {rule_id} must enable Replication Time Control "
                "(15 minutes)",
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
                _empty(rule.get("prefix")) and _empty(rule.get("filter")),
                f"{title}: replication rule {rule_id} must cover every object (an empty filter: "
                "no prefix, tag or and)",
            ),
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
        # Every ownership control of the bucket is applied (the last one written wins).
        if not owners or any(
            get(o.props, "rule", "objectOwnership") != "BucketOwnerEnforced" for o in owners
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
        safeguard=c.INTEGRITY,
        severity=Severity.HIGH,
        remediation="Remove force_destroy (or set it False): a bucket holding PHI is emptied by "
        "its lifecycle and retention, never by `pulumi destroy`.",
        subjects=(BUCKET,),
    )
)
def no_force_destroy(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if truthy(resource.props.get("forceDestroy")):
        yield "forceDestroy must be false"


_LOG_PATH = re.compile(r"/AWSLogs/\d{12}/")


def _log_delivery_path_only(statement: Statement) -> bool:
    """Log delivery (ELB's service principal takes no source condition) that may only write
    below ``AWSLogs/<account>/``: the path names the account whose load balancers' logs land."""
    return (
        [a.lower() for a in statement.actions] == ["s3:putobject"]
        and bool(statement.resources)
        and all(_LOG_PATH.search(r) for r in statement.resources)
    )


@resource_policy(
    Meta(
        id="aws-s3-bucket-policy-no-public-allow",
        description="No bucket policy (an aws.s3.BucketPolicy or the bucket's own policy "
        "argument) allows an anonymous principal without tying it to this account, or allows "
        "everyone but a NotPrincipal.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.CRITICAL,
        remediation="In the policy argument of the aws.s3.BucketPolicy (or of the aws.s3.Bucket), "
        "name the principals (account roles or service principals) in Allow statements, or "
        "condition a '*' principal on aws:SourceAccount, aws:SourceArn, aws:PrincipalAccount, "
        "aws:PrincipalOrgID or aws:SourceVpce; never Allow with NotPrincipal.",
        subjects=(BUCKET_POLICY, BUCKET),
    )
)
def no_public_allow(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    # The messages are reported on the BucketPolicy or Bucket resource they name.
    policy = resource.props.get("policy")
    if resource.resource_type == BUCKET and not policy:
        return  # no policy argument: its BucketPolicy is examined on its own
    try:
        problems = anonymous_allow_messages(policy)
        raw = items(document(policy).get("Statement"))
    except DocumentError as exc:
        yield f"policy is not a policy document ({exc})"
        return
    yield from problems
    for statement in raw:
        if (
            isinstance(statement, Mapping)
            and statement.get("Effect") == "Allow"
            and "NotPrincipal" in statement
        ):
            yield (
                f"statement {statement.get('Sid') or '(no Sid)'} allows everyone but its "
                "NotPrincipal; name the principals"
            )
    for s in statements(policy):
        if not s.allows:
            continue
        sid = s.sid or "(no Sid)"
        # A service principal acts for any account's resources (any CloudFront distribution, any
        # account's log delivery) unless the statement names the source (confused deputy).
        if (
            s.service_principals()
            and not pins(s, SCOPING_CONDITION_KEYS)
            and not _log_delivery_path_only(s)
        ):
            yield (
                f"statement {sid} allows {', '.join(s.service_principals())} without "
                "aws:SourceAccount or aws:SourceArn pinned to this account's resources"
            )
        if isinstance(s.principal, Mapping) and "CanonicalUser" in s.principal:
            yield f"statement {sid} allows a CanonicalUser (ACL-era identity): name IAM principals"


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
