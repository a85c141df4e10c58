"""Audit: a multi-region, validated, KMS-encrypted trail that records management events and every
PHI object read and write; every log group encrypted, kept six years, protected and shipped to the
SIEM stream; the SIEM stream encrypted with a customer key and never losing a record; alarms that
page through encrypted, TLS-only topics."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    STRING_LIST,
    Finding,
    Meta,
    ResourceLike,
    Setting,
    Stack,
    anonymous_allow_messages,
    customer_key,
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

TRAIL = "aws:cloudtrail/trail:Trail"
BUCKET = "aws:s3/bucket:Bucket"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SUBSCRIPTION = "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"

READ_AND_WRITE = frozenset({"read", "write"})

# Firehose destination -> the argument holding its configuration.
FIREHOSE_DESTINATIONS = {
    "extended_s3": "extendedS3Configuration",
    "http_endpoint": "httpEndpointConfiguration",
    "splunk": "splunkConfiguration",
    "opensearch": "opensearchConfiguration",
    "opensearchserverless": "opensearchserverlessConfiguration",
    "elasticsearch": "elasticsearchConfiguration",
    "redshift": "redshiftConfiguration",
    "snowflake": "snowflakeConfiguration",
    "iceberg": "icebergConfiguration",
}
# s3BackupMode values with which a destination keeps no copy of the records it failed to deliver.
NO_BACKUP_MODES = ("Disabled",)


def _trail_label(trail: ResourceLike) -> str:
    return label(trail, "trail", "name")


def _group_label(group: ResourceLike) -> str:
    return label(group, "log group", "name", "namePrefix")


# --- CloudTrail event selectors ---------------------------------------------------------------


def _fields(selector: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The field selectors of an advanced event selector, by field name."""
    found: dict[str, Mapping[str, Any]] = {}
    for f in items(selector.get("fieldSelectors")):
        if isinstance(f, Mapping) and f.get("field"):
            found[str(f["field"])] = f
    return found


def _values(field: Mapping[str, Any] | None, operator: str) -> list[str]:
    return [str(v) for v in items(field.get(operator))] if field else []


def _read_write(field: Mapping[str, Any] | None) -> frozenset[str]:
    """What a readOnly field selector (or its absence) lets through: reads, writes or both."""
    if field is None:
        return READ_AND_WRITE
    kinds: set[str] = set()
    equals = [v.lower() for v in _values(field, "equals")]
    not_equals = [v.lower() for v in _values(field, "notEquals")]
    if equals:
        kinds.update("read" if v == "true" else "write" for v in equals if v in ("true", "false"))
    elif not_equals:
        kinds.update(READ_AND_WRITE - {"read" if v == "true" else "write" for v in not_equals})
    else:
        kinds.update(READ_AND_WRITE)
    return frozenset(kinds)


def _legacy_read_write(selector: Mapping[str, Any]) -> frozenset[str]:
    kind = selector.get("readWriteType") or "All"
    return {"All": READ_AND_WRITE, "ReadOnly": frozenset({"read"})}.get(
        str(kind), frozenset({"write"})
    )


def _management_coverage(trail: ResourceLike) -> frozenset[str]:
    """Which management events (reads, writes) the trail records, every event source included."""
    advanced = items(trail.props.get("advancedEventSelectors"))
    legacy = items(trail.props.get("eventSelectors"))
    if not advanced and not legacy:
        return READ_AND_WRITE  # CloudTrail's default: every management event
    covered: set[str] = set()
    for selector in advanced:
        fields = _fields(selector)
        if "Management" not in _values(fields.get("eventCategory"), "equals"):
            continue
        # Any other field (eventSource notEquals kms.amazonaws.com, ...) drops some events.
        if set(fields) - {"eventCategory", "readOnly"}:
            continue
        covered |= _read_write(fields.get("readOnly"))
    for selector in legacy:
        if not truthy(selector.get("includeManagementEvents", True)):
            continue
        if items(selector.get("excludeManagementEventSources")):
            continue
        covered |= _legacy_read_write(selector)
    return frozenset(covered)


def _object_prefix(bucket_name: str, pattern: str) -> str:
    """The ARN prefix of the bucket's objects, in the partition the pattern is written for."""
    match = re.match(r"arn:([^:]*):", pattern)
    return f"arn:{match.group(1) if match else 'aws'}:s3:::{bucket_name}/"


def _s3_data_coverage(trail: ResourceLike, bucket_name: str | None) -> frozenset[str]:
    """Which object events (reads, writes) of every object of the bucket the trail records."""
    covered: set[str] = set()
    for selector in items(trail.props.get("advancedEventSelectors")):
        fields = _fields(selector)
        if "Data" not in _values(fields.get("eventCategory"), "equals"):
            continue
        if "AWS::S3::Object" not in _values(fields.get("resources.type"), "equals"):
            continue
        source = fields.get("eventSource")
        # Any other field (eventName, userIdentity.arn, ...) records only some of the events.
        if (
            set(fields)
            - {"eventCategory", "resources.type", "resources.ARN", "readOnly"}
            - ({"eventSource"} if _values(source, "equals") == ["s3.amazonaws.com"] else set())
        ):
            continue
        arn = fields.get("resources.ARN")
        if arn is not None and not _arn_field_covers(arn, bucket_name):
            continue
        covered |= _read_write(fields.get("readOnly"))
    for selector in items(trail.props.get("eventSelectors")):
        for resource in items(selector.get("dataResources")):
            if get(resource, "type") != "AWS::S3::Object":
                continue
            values = [str(v) for v in items(get(resource, "values"))]
            # "arn:aws:s3" (every bucket) or "arn:aws:s3:::bucket/" (every object of the bucket).
            if bucket_name and any(_object_prefix(bucket_name, v).startswith(v) for v in values):
                covered |= _legacy_read_write(selector)
    return frozenset(covered)


def _arn_field_covers(field: Mapping[str, Any], bucket_name: str | None) -> bool:
    """Whether a resources.ARN field selector lets every object of the bucket through."""
    if not bucket_name:
        return False
    if _values(field, "endsWiths") or _values(field, "notEndsWiths"):
        return False  # only (or all but) objects of some suffix
    for pattern in (*_values(field, "notStartsWiths"), *_values(field, "notEquals")):
        prefix = _object_prefix(bucket_name, pattern)
        if prefix.startswith(pattern) or pattern.startswith(prefix):
            return False  # some or all of the bucket's objects are excluded
    starts = _values(field, "startsWiths")
    if not starts:
        # equals names single objects: never a whole bucket. Only exclusions: all the rest.
        return not _values(field, "equals")
    return any(_object_prefix(bucket_name, p).startswith(p) for p in starts)


# --- CloudTrail --------------------------------------------------------------------------------


@resource_policy(
    Meta(
        id="aws-cloudtrail-trail-require-multi-region",
        description="The trail is logging and records every region and the global services.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.AUDIT_CONTROLS,
        severity=Severity.HIGH,
        remediation="Set is_multi_region_trail=True, include_global_service_events=True and "
        "enable_logging=True on the aws.cloudtrail.Trail: activity in a region nobody watches is "
        "still activity on the account.",
        subjects=(TRAIL,),
    )
)
def trail_multi_region(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    title = _trail_label(resource)
    yield from messages(
        (truthy(props.get("isMultiRegionTrail")), f"{title} must be multi-region"),
        (
            truthy(props.get("includeGlobalServiceEvents", True)),
            f"{title} must include global service events (IAM, STS, CloudFront)",
        ),
        (truthy(props.get("enableLogging", True)), f"{title} must be logging (enableLogging)"),
    )


@resource_policy(
    Meta(
        id="aws-cloudtrail-trail-require-management-events",
        description="The trail records every read and write management event of every service.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.AUDIT_CONTROLS,
        severity=Severity.HIGH,
        remediation="Give the aws.cloudtrail.Trail an advanced event selector whose only field "
        "selector is eventCategory equals ['Management'] (no readOnly or eventSource filter), or "
        "leave the event selectors out (CloudTrail's default records every management event).",
        subjects=(TRAIL,),
    )
)
def trail_management_events(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    missing = READ_AND_WRITE - _management_coverage(resource)
    if missing:
        kinds = " and ".join(sorted(missing))
        yield (
            f"{_trail_label(resource)} must record every management event: {kinds} events "
            "(of some or all services) are not recorded"
        )


@resource_policy(
    Meta(
        id="aws-cloudtrail-trail-require-log-validation",
        description="The trail signs digests of its log files so tampering can be detected.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.INTEGRITY,
        severity=Severity.HIGH,
        remediation="Set enable_log_file_validation=True on the aws.cloudtrail.Trail.",
        subjects=(TRAIL,),
    )
)
def trail_log_validation(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not truthy(resource.props.get("enableLogFileValidation")):
        yield f"{_trail_label(resource)} must enable log file validation"


@resource_policy(
    Meta(
        id="aws-cloudtrail-trail-require-kms",
        description="The trail encrypts its log files with a customer-managed KMS key.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.HIGH,
        remediation="Set kms_key_id on the aws.cloudtrail.Trail to the stack's logs key ARN (its "
        "key policy must let cloudtrail.amazonaws.com encrypt for this trail).",
        subjects=(TRAIL,),
    )
)
def trail_kms(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not resource.props.get("kmsKeyId"):
        yield f"{_trail_label(resource)} must encrypt its logs with a KMS key (kmsKeyId)"


@resource_policy(
    Meta(
        id="aws-cloudtrail-trail-require-cloudwatch-logs",
        description="The trail delivers its events to a CloudWatch log group, where the security "
        "alarms and the SIEM subscription see them.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.ACTIVITY_REVIEW,
        severity=Severity.MEDIUM,
        remediation="Set cloud_watch_logs_group_arn (the log group's ARN with ':*') and "
        "cloud_watch_logs_role_arn (a role cloudtrail.amazonaws.com assumes to write to it) on "
        "the aws.cloudtrail.Trail.",
        subjects=(TRAIL,),
    )
)
def trail_cloudwatch_logs(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    title = _trail_label(resource)
    yield from messages(
        (
            bool(resource.props.get("cloudWatchLogsGroupArn")),
            f"{title} must deliver to a CloudWatch log group (cloudWatchLogsGroupArn)",
        ),
        (
            bool(resource.props.get("cloudWatchLogsRoleArn")),
            f"{title} must name the role that writes to its log group (cloudWatchLogsRoleArn)",
        ),
    )


@stack_policy(
    Meta(
        id="aws-cloudtrail-trail-require-phi-data-events",
        description="A logging trail records every object read and write of every bucket "
        "classified PHI.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.AUDIT_CONTROLS,
        severity=Severity.HIGH,
        remediation="Add an advanced event selector to the aws.cloudtrail.Trail with eventCategory "
        "equals ['Data'], resources.type equals ['AWS::S3::Object'] and resources.ARN startsWith "
        "'arn:aws:s3:::<bucket>/' for every bucket tagged data-classification=phi (the DR "
        "replica included: a multi-region trail records every region), without readOnly, "
        "eventName or userIdentity filters.",
        subjects=(BUCKET,),
    )
)
def trail_phi_data_events(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    trails = [t for t in stack.of_type(TRAIL) if truthy(t.props.get("enableLogging", True))]
    for bucket in stack.of_type(BUCKET):
        if tag(bucket, "data-classification") != "phi":
            continue
        name = bucket.props.get("bucket")
        covered: set[str] = set()
        for trail in trails:
            covered |= _s3_data_coverage(trail, str(name) if name else None)
        missing = READ_AND_WRITE - covered
        if missing:
            yield (
                bucket,
                f"{label(bucket, 'bucket', 'bucket')} holds PHI: a trail must record its object "
                f"{' and '.join(sorted(missing))} data events (AWS::S3::Object)",
            )


@stack_policy(
    Meta(
        id="aws-cloudtrail-trail-require-locked-bucket",
        description="The trail delivers its log files to a bucket of the stack with Object Lock "
        "enabled.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.INTEGRITY,
        severity=Severity.HIGH,
        remediation="Set s3_bucket_name on the aws.cloudtrail.Trail to the name of the stack's "
        "audit-trail aws.s3.Bucket, declared with object_lock_enabled=True (the kit's "
        "SecureBucket with object_lock does), so the delivered log files cannot be deleted or "
        "overwritten before their retention ends.",
        subjects=(TRAIL,),
    )
)
def trail_locked_bucket(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    buckets = stack.of_type(BUCKET)
    for trail in stack.of_type(TRAIL):
        title = _trail_label(trail)
        name = trail.props.get("s3BucketName")
        targets = [b for b in buckets if stack.refers(trail, "s3BucketName", b, "bucket")]
        if not targets:
            yield (
                trail,
                f"{title} delivers to {name or 'no bucket'}: s3BucketName must name a bucket of "
                "the stack with Object Lock enabled",
            )
        elif not any(truthy(b.props.get("objectLockEnabled")) for b in targets):
            yield (
                trail,
                f"{title} delivers to {label(targets[0], 'bucket', 'bucket')}, which must have "
                "Object Lock enabled (objectLockEnabled)",
            )


# --- CloudWatch Logs ---------------------------------------------------------------------------


@resource_policy(
    Meta(
        id="aws-cloudwatch-log-group-require-kms",
        description="Every CloudWatch log group is encrypted with a customer-managed KMS key.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.HIGH,
        remediation="Set kms_key_id on the aws.cloudwatch.LogGroup to the stack's logs key ARN "
        "(the kit's encrypted_log_group does).",
        subjects=(LOG_GROUP,),
    )
)
def log_group_kms(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not resource.props.get("kmsKeyId"):
        yield f"{_group_label(resource)} must be encrypted with a KMS key (kmsKeyId)"


@resource_policy(
    Meta(
        id="aws-cloudwatch-log-group-require-retention",
        description="Every CloudWatch log group keeps its events at least six years.",
        practice=c.AUDIT_TO_SIEM,
        # The audit records themselves are the 164.312(b) control. Six years is the default
        # because 164.316(b)(2)(i) keeps the Security Rule's documentation six years, and the
        # records of information system activity review (164.308(a)(1)(ii)(D)) are such
        # documentation: the logs they rest on are kept as long.
        safeguard=c.AUDIT_CONTROLS,
        severity=Severity.MEDIUM,
        remediation="Set retention_in_days on the aws.cloudwatch.LogGroup to at least "
        "minimumRetentionDays (2192, six years, by default; stack config logRetentionDays), or "
        "leave it unset (never expire).",
        subjects=(LOG_GROUP,),
        settings=(
            Setting(
                "minimumRetentionDays",
                "Least retention of a log group, in days (six years by default)",
                c.SIX_YEARS_DAYS,
                {"type": "integer", "minimum": 1},
            ),
        ),
    )
)
def log_group_retention(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    minimum = int(config["minimumRetentionDays"])
    days = float(resource.props.get("retentionInDays") or 0)  # absent or 0: never expire
    if 0 < days < minimum:
        yield (
            f"{_group_label(resource)} keeps events {days:.0f} days: retentionInDays must be at "
            f"least {minimum} (or unset)"
        )


# The only log groups Firehose error logging may be exempted for: the ones Firehose's console and
# documentation name for a stream's errors. Any other group a stream names (the trail's) is shipped.
FIREHOSE_ERROR_GROUP_PREFIX = "/aws/kinesisfirehose/"


def _firehose_error_groups(stack: Stack) -> set[str]:
    """Names of the log groups the stack's Firehose streams write their own delivery errors to
    (under /aws/kinesisfirehose/ only)."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, child in value.items():
                if key == "cloudwatchLoggingOptions" and isinstance(child, Mapping):
                    if truthy(child.get("enabled")) and child.get("logGroupName"):
                        names.add(str(child["logGroupName"]))
                else:
                    walk(child)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            for child in value:
                walk(child)

    for stream in stack.of_type(FIREHOSE):
        walk(stream.props)
    return {n for n in names if n.startswith(FIREHOSE_ERROR_GROUP_PREFIX)}


@stack_policy(
    Meta(
        id="aws-cloudwatch-log-group-require-siem-subscription",
        description="Every CloudWatch log group is shipped to the SIEM through a subscription "
        "filter to the stack's Firehose stream.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.ACTIVITY_REVIEW,
        severity=Severity.HIGH,
        remediation="Declare an aws.cloudwatch.LogSubscriptionFilter for the log group with an "
        "empty filter_pattern and destination_arn the stack's aws.kinesis.FirehoseDeliveryStream "
        "ARN (or one of siemDestinationArns); every other subscription filter of the group must "
        "deliver to the SIEM too. Only the stream's own error log group (named "
        "/aws/kinesisfirehose/...) is exempt.",
        subjects=(LOG_GROUP,),
        settings=(
            Setting(
                "siemDestinationArns",
                "Other subscription destinations that deliver to the SIEM (Firehose streams, "
                "Kinesis streams or CloudWatch Logs destinations outside the stack)",
                [],
                STRING_LIST,
            ),
        ),
    )
)
def log_group_siem_subscription(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    others = {str(a) for a in config["siemDestinationArns"]}
    streams = stack.of_type(FIREHOSE)
    # Firehose writes its delivery errors to this group: shipping it through the same stream
    # would loop (a failing stream feeding itself its own failures). It is watched by an alarm.
    error_groups = _firehose_error_groups(stack)
    for group in stack.of_type(LOG_GROUP):
        if group.props.get("name") in error_groups:
            continue
        title = _group_label(group)
        filters = stack.attached(group, SUBSCRIPTION, "logGroup", "name")
        if not filters:
            yield group, f"{title} must be shipped to the SIEM (LogSubscriptionFilter)"
            continue
        elsewhere = [
            f
            for f in filters
            if str(f.props.get("destinationArn")) not in others
            and not any(stack.refers(f, "destinationArn", s, "name", "arn") for s in streams)
        ]
        for f in elsewhere:
            yield (
                group,
                f"{title}: its subscription filter {f.props.get('name') or f.name} delivers to "
                f"{f.props.get('destinationArn')}: every subscription filter of the group must "
                "deliver to the SIEM Firehose stream (or siemDestinationArns)",
            )
        if elsewhere:
            continue
        if not any(not f.props.get("filterPattern") for f in filters):
            yield group, f"{title}: a SIEM subscription must forward every event (empty pattern)"


@resource_policy(
    Meta(
        id="aws-cloudwatch-log-group-require-deletion-protection",
        description="No CloudWatch log group can be deleted with its events.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.AUDIT_CONTROLS,
        severity=Severity.MEDIUM,
        remediation="Set deletion_protection_enabled=True on the aws.cloudwatch.LogGroup (the "
        "kit's encrypted_log_group does); audit records expire by retention, never by deletion.",
        subjects=(LOG_GROUP,),
    )
)
def log_group_deletion_protection(
    resource: ResourceLike, config: Mapping[str, Any]
) -> Iterator[str]:
    if not truthy(resource.props.get("deletionProtectionEnabled")):
        yield f"{_group_label(resource)} must enable deletion protection"


# --- Firehose ----------------------------------------------------------------------------------


def _destination(stream: ResourceLike) -> tuple[str, Mapping[str, Any]]:
    kind = str(stream.props.get("destination") or "")
    block = stream.props.get(FIREHOSE_DESTINATIONS.get(kind, ""))
    return kind, block if isinstance(block, Mapping) else {}


def _s3_blocks(kind: str, block: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The S3 writes of a stream's destination: (where, configuration)."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    if kind == "extended_s3":
        found.append(("destination bucket", block))
    for key in ("s3Configuration", "s3BackupConfiguration"):
        sub = block.get(key)
        if isinstance(sub, Mapping):
            found.append(("backup bucket", sub))
    return found


@resource_policy(
    Meta(
        id="aws-kinesis-firehose-require-encryption",
        description="The SIEM delivery stream encrypts records at rest with a customer-managed "
        "key, and every bucket it writes with KMS.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.HIGH,
        remediation="Set server_side_encryption on the aws.kinesis.FirehoseDeliveryStream to "
        "enabled=True, key_type='CUSTOMER_MANAGED_CMK', key_arn the logs key; set kms_key_arn on "
        "extended_s3_configuration and on its s3_backup_configuration / s3_configuration.",
        subjects=(FIREHOSE,),
    )
)
def firehose_encryption(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    title = label(resource, "delivery stream", "name")
    # Firehose refuses server-side encryption on a stream reading a Kinesis data stream (AWS
    # forces it): its records at rest are the source stream's, encrypted by that stream.
    if not props.get("kinesisSourceConfiguration"):
        sse = props.get("serverSideEncryption") or {}
        yield from messages(
            (
                truthy(get(sse, "enabled"))
                and get(sse, "keyType") == "CUSTOMER_MANAGED_CMK"
                and bool(get(sse, "keyArn")),
                f"{title} must enable server-side encryption with a customer-managed key "
                "(keyType CUSTOMER_MANAGED_CMK, keyArn)",
            ),
        )
    kind, block = _destination(resource)
    for where, s3 in _s3_blocks(kind, block):
        if not s3.get("kmsKeyArn"):
            yield f"{title}: its {where} objects must be encrypted with a KMS key (kmsKeyArn)"


@resource_policy(
    Meta(
        id="aws-kinesis-firehose-require-delivery-backup",
        description="The SIEM delivery stream keeps every record it fails to deliver in a backup "
        "bucket and logs its delivery errors.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.AUDIT_CONTROLS,
        severity=Severity.MEDIUM,
        remediation="On the aws.kinesis.FirehoseDeliveryStream's destination configuration set "
        "s3_configuration with s3_backup_mode 'FailedDataOnly' or 'AllData' (http_endpoint, "
        "iceberg), 'FailedEventsOnly' or 'AllEvents' (splunk), 'FailedDocumentsOnly' or "
        "'AllDocuments' (opensearch, elasticsearch); for extended_s3 (and redshift) set "
        "s3_backup_mode='Enabled' with s3_backup_configuration; and set "
        "cloudwatch_logging_options enabled with a log group.",
        subjects=(FIREHOSE,),
    )
)
def firehose_delivery_backup(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    title = label(resource, "delivery stream", "name")
    kind, block = _destination(resource)
    if not block:
        yield f"{title} must configure its destination ({kind or 'none'})"
        return
    if kind == "extended_s3":
        # S3 itself is the destination: a record Firehose cannot write there within 24 hours is
        # dropped, unless every source record is also copied to the backup bucket.
        backed_up = block.get("s3BackupMode") == "Enabled" and bool(
            get(block, "s3BackupConfiguration", "bucketArn")
        )
    else:
        backed_up = block.get("s3BackupMode") not in NO_BACKUP_MODES and bool(
            get(block, "s3Configuration", "bucketArn")
        )
    logging = get(block, "cloudwatchLoggingOptions", default={})
    yield from messages(
        (backed_up, f"{title} must back up the records it fails to deliver to an S3 bucket"),
        (
            truthy(get(logging, "enabled")) and bool(get(logging, "logGroupName")),
            f"{title} must log its delivery errors (cloudwatchLoggingOptions)",
        ),
    )


# --- SNS and alarms ----------------------------------------------------------------------------


def _topic_label(topic: ResourceLike) -> str:
    return label(topic, "topic", "name", "namePrefix")


@resource_policy(
    Meta(
        id="aws-sns-topic-require-kms",
        description="Every SNS topic is encrypted with a customer-managed KMS key.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.MEDIUM,
        remediation="Set kms_master_key_id on the aws.sns.Topic to the stack's logs key ARN (not "
        "alias/aws/sns: CloudWatch alarms and EventBridge cannot use the AWS-managed key, and "
        "its policy cannot be reviewed).",
        subjects=(TOPIC,),
    )
)
def topic_kms(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not customer_key(resource.props.get("kmsMasterKeyId"), "sns"):
        yield f"{_topic_label(resource)} must be encrypted with a customer-managed key"


@stack_policy(
    Meta(
        id="aws-sns-topic-require-tls-only-policy",
        description="Every SNS topic's policy refuses publishing without TLS.",
        practice=c.MUTUAL_TLS_ONLY,
        safeguard=c.TRANSMISSION_ENCRYPTION,
        severity=Severity.MEDIUM,
        remediation="Give the topic an aws.sns.TopicPolicy with a Deny statement for Principal "
        "'*', Action 'sns:Publish' (or 'sns:*') on the topic, Bool aws:SecureTransport 'false'.",
        subjects=(TOPIC,),
    )
)
def topic_tls_only(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for topic in stack.of_type(TOPIC):
        if not any(
            denies_insecure_transport(p, "sns", ["sns:Publish"])
            for p in stack.policies_of(topic, TOPIC_POLICY, "arn", "name")
        ):
            yield (
                topic,
                f"{_topic_label(topic)}: its policy must deny sns:Publish when "
                "aws:SecureTransport is false",
            )


@resource_policy(
    Meta(
        id="aws-sns-topic-policy-no-public-allow",
        description="No SNS topic policy allows an anonymous principal without tying it to this "
        "account.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.HIGH,
        remediation="Name the principals (service principals such as cloudwatch.amazonaws.com, "
        "or account roles) in the aws.sns.TopicPolicy's Allow statements and condition service "
        "principals on aws:SourceAccount/aws:SourceArn; never Principal '*' unconditionally.",
        subjects=(TOPIC_POLICY, TOPIC),
    )
)
def topic_no_public_allow(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    policy = resource.props.get("policy")
    if not policy:
        return
    yield from anonymous_allow_messages(policy)


@resource_policy(
    Meta(
        id="aws-cloudwatch-metric-alarm-require-action",
        description="Every CloudWatch alarm notifies an SNS topic when it fires.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.INCIDENT_RESPONSE,
        severity=Severity.MEDIUM,
        remediation="Set alarm_actions on the aws.cloudwatch.MetricAlarm to the stack's security "
        "or operations topic ARN (someone is subscribed to it), and leave actions_enabled True.",
        subjects=(METRIC_ALARM,),
    )
)
def alarm_action(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    title = label(resource, "alarm", "name")
    actions = [str(a) for a in items(resource.props.get("alarmActions"))]
    yield from messages(
        (
            any(":sns:" in a for a in actions),
            f"{title} must notify an SNS topic when it fires (alarmActions)",
        ),
        (
            truthy(resource.props.get("actionsEnabled", True)),
            f"{title} must have its actions enabled (actionsEnabled)",
        ),
    )


# The CIS AWS Foundations Benchmark monitoring signals the trail's log group is watched for (the
# kit's infra/components/audit.py SECURITY_ALARMS): each is a metric filter whose pattern contains
# every token (compared without spaces or double quotes, case-insensitive, and not continued by
# another name character: `$.eventName = StopLoggingX` is not StopLogging), and an alarm on its
# metric. The kit's break-glass filter is required by aws-iam-break-glass-role-alarmed; its DLQ and
# SIEM-delivery alarms watch the stack's own pipeline, not the account's security.
def _event_names(*names: str) -> list[str]:
    return [f"$.eventName = {n}" for n in names]


SECURITY_SIGNALS: list[dict[str, Any]] = [
    {"name": "root-account-use", "tokens": ['$.userIdentity.type = "Root"']},
    {
        "name": "unauthorized-api-calls",
        "tokens": ['$.errorCode = "*UnauthorizedOperation"', '$.errorCode = "AccessDenied*"'],
    },
    {
        "name": "iam-policy-changes",
        "tokens": [
            "$.eventSource = iam.amazonaws.com",
            *_event_names(
                "DeleteGroupPolicy",
                "DeleteRolePolicy",
                "DeleteUserPolicy",
                "PutGroupPolicy",
                "PutRolePolicy",
                "PutUserPolicy",
                "CreatePolicy",
                "DeletePolicy",
                "CreatePolicyVersion",
                "DeletePolicyVersion",
                "SetDefaultPolicyVersion",
                "AttachRolePolicy",
                "DetachRolePolicy",
                "AttachUserPolicy",
                "DetachUserPolicy",
                "AttachGroupPolicy",
                "DetachGroupPolicy",
                "PutRolePermissionsBoundary",
                "DeleteRolePermissionsBoundary",
                "UpdateAssumeRolePolicy",
            ),
        ],
    },
    {
        "name": "kms-key-disable-or-deletion",
        "tokens": [
            "$.eventSource = kms.amazonaws.com",
            *_event_names("DisableKey", "ScheduleKeyDeletion"),
        ],
    },
    {
        "name": "cloudtrail-changes",
        "tokens": _event_names(
            "CreateTrail",
            "UpdateTrail",
            "DeleteTrail",
            "StartLogging",
            "StopLogging",
            "PutEventSelectors",
        ),
    },
    {
        "name": "s3-policy-or-object-lock-changes",
        "tokens": [
            "$.eventSource = s3.amazonaws.com",
            *_event_names(
                "PutBucketAcl",
                "PutBucketPolicy",
                "DeleteBucketPolicy",
                "PutBucketPublicAccessBlock",
                "DeleteBucketPublicAccessBlock",
                "PutBucketVersioning",
                "PutObjectLockConfiguration",
                "PutObjectRetention",
                "PutObjectLegalHold",
            ),
        ],
    },
    {
        "name": "console-login-without-mfa",
        "tokens": ["$.eventName = ConsoleLogin", '$.additionalEventData.MFAUsed != "Yes"'],
    },
]


def _normalized(text: str) -> str:
    return re.sub(r'[\s"]', "", text).lower()


def _tests(pattern: str, token: str) -> bool:
    """Whether a metric filter pattern contains a token (see SECURITY_SIGNALS)."""
    return (
        re.search(re.escape(_normalized(token)) + r"(?![a-z0-9_*.-])", _normalized(pattern))
        is not None
    )


def _metrics(metric_filter: Any) -> set[tuple[Any, Any]]:
    return {
        (get(t, "namespace"), get(t, "name"))
        for t in items(metric_filter.props.get("metricTransformation"))
    }


def _notifies(stack: Stack, alarm: Any, metrics: set[tuple[Any, Any]]) -> bool:
    """Whether an enabled alarm watches one of the metrics and notifies a topic of the stack."""
    watched = {(alarm.props.get("namespace"), alarm.props.get("metricName"))}
    watched |= {
        (get(q, "metric", "namespace"), get(q, "metric", "metricName"))
        for q in items(alarm.props.get("metricQueries"))
    }
    enabled = alarm.props.get("actionsEnabled")
    return (
        bool(metrics & watched)
        and (enabled is None or truthy(enabled))
        and any(stack.refers(alarm, "alarmActions", t, "arn", "name") for t in stack.of_type(TOPIC))
    )


@stack_policy(
    Meta(
        id="aws-cloudwatch-require-security-alarms",
        description="The trail's log group has a metric filter and an alarm notifying a topic of "
        "the stack for each CIS security signal (root use, refused calls, IAM policy, KMS key, "
        "trail and bucket protection changes, console sign-in without MFA).",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.ACTIVITY_REVIEW,
        severity=Severity.HIGH,
        remediation="For each signal of securitySignals, declare an aws.cloudwatch.LogMetricFilter "
        "on the log group of the trail's cloud_watch_logs_group_arn whose pattern contains each "
        "of the signal's tokens (the kit's SECURITY_ALARMS patterns do), and an "
        "aws.cloudwatch.MetricAlarm with the same namespace and metric_name, alarm_actions the "
        "stack's security aws.sns.Topic ARN, and actions_enabled left True.",
        subjects=(TRAIL,),
        settings=(
            Setting(
                "securitySignals",
                "Signals the trail's log group must be alarmed on: a name and the tokens a "
                "metric filter pattern must contain",
                SECURITY_SIGNALS,
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "tokens": STRING_LIST,
                        },
                        "required": ["name", "tokens"],
                    },
                },
            ),
        ),
    )
)
def require_security_alarms(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    signals = [s for s in items(config["securitySignals"]) if isinstance(s, Mapping)]
    groups = stack.of_type(LOG_GROUP)
    filters = stack.of_type(METRIC_FILTER)
    alarms = stack.of_type(METRIC_ALARM)
    for trail in stack.of_type(TRAIL):
        if not truthy(trail.props.get("enableLogging", True)):
            continue  # aws-cloudtrail-trail-require-multi-region refuses it
        title = _trail_label(trail)
        watched = [g for g in groups if stack.refers(trail, "cloudWatchLogsGroupArn", g, "name")]
        if not watched:
            yield (
                trail,
                f"{title} must deliver to a log group of the stack (cloudWatchLogsGroupArn) "
                "where the security alarms watch its events",
            )
            continue
        on_group = [
            f for f in filters if any(stack.refers(f, "logGroupName", g, "name") for g in watched)
        ]
        for signal in signals:
            name = str(signal.get("name"))
            tokens = [str(t) for t in items(signal.get("tokens"))]
            matching = [
                f
                for f in on_group
                if all(_tests(str(f.props.get("pattern") or ""), t) for t in tokens)
            ]
            if not matching:
                yield (
                    trail,
                    f"{title}: no metric filter on its log group tests {name} (its pattern must "
                    f"contain {', '.join(tokens)})",
                )
            elif not any(_notifies(stack, a, _metrics(f)) for f in matching for a in alarms):
                yield (
                    trail,
                    f"{title}: the {name} metric filter's metric must have an alarm with actions "
                    "enabled notifying an SNS topic of the stack",
                )


POLICIES = (
    trail_multi_region,
    trail_management_events,
    trail_log_validation,
    trail_kms,
    trail_cloudwatch_logs,
    trail_phi_data_events,
    trail_locked_bucket,
    log_group_kms,
    log_group_retention,
    log_group_siem_subscription,
    log_group_deletion_protection,
    firehose_encryption,
    firehose_delivery_backup,
    topic_kms,
    topic_tls_only,
    topic_no_public_allow,
    alarm_action,
    require_security_alarms,
)
