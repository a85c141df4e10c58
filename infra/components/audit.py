"""Audit: CloudTrail, SIEM shipping of every security log group, and the security alarms.

Fixed, not knobs: a multi-region trail with global events, log file validation, the logs key, data
events of the imaging buckets and the stack's functions, delivered to an Object Lock (COMPLIANCE)
bucket and to CloudWatch Logs; every security log group subscribed to one KMS-encrypted Firehose
stream whose failed deliveries always land in a backup bucket; CIS-style metric-filter alarms and a
break-glass rule on a KMS-encrypted SNS topic. Knobs: where the SIEM is (``siemDestination``,
``siemEndpointUrl``), which of its roles read the audit buckets and queue (``siemReaderArns``),
and whether the stack turns on the account-wide GuardDuty and Security Hub.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.archive import bucket_name
from infra.components.bucket import Lifecycle, SecureBucket, SecureBucketArgs
from infra.components.logs import encrypted_log_group
from infra.config import AuditSettings, ObjectLock, SiemDestination
from infra.iam_documents import (
    Account,
    SiemDeliveryResources,
    Statement,
    cloudtrail_bucket_statements,
    cloudtrail_logs_role_policy,
    logs_to_firehose_role_policy,
    security_topic_policy,
    service_trust_policy,
    siem_delivery_role_policy,
    siem_queue_policy,
    siem_reader_bucket_statements,
)

# Buckets of the audit component (purpose -> what it holds); "siem" exists for the s3 destination.
TRAIL_BUCKET_PURPOSE = "audit-trail"
BACKUP_BUCKET_PURPOSE = "siem-backup"
PULL_BUCKET_PURPOSE = "siem"

# Firehose: deliver within a minute (SIEMs correlate in near real time), in small batches.
SIEM_BUFFER_SECONDS = 60
SIEM_BUFFER_MIB = 1
# The longest Firehose retries an HTTP endpoint or Splunk before the backup bucket takes the data.
SIEM_RETRY_SECONDS = 7200
# Longest Firehose waits for Splunk's indexer acknowledgement.
SPLUNK_ACK_TIMEOUT_SECONDS = 600
SIEM_ENDPOINT_NAME = "SIEM"
# Object prefixes: what the SIEM pulls, and what failed (or, for s3, every source record).
PULL_PREFIX = "logs/"
BACKUP_PREFIX = "backup/"
# CloudWatch Logs sends subscription data gzip-compressed already: Firehose stores it as is.
COMPRESSION = "UNCOMPRESSED"
# Pushed destinations get plain text: Firehose gunzips each CloudWatch Logs record (the stream
# takes subscription data only, as AWS requires of a decompressing stream). Splunk also needs the
# log messages extracted from the envelope to parse them (AWS: "Message extraction"); the generic
# HTTP endpoint keeps the envelope, whose logGroup tells the SIEM which of the groups sent it.
DECOMPRESSION_FORMAT = "GZIP"
EXTRACT_MESSAGES: dict[SiemDestination, bool] = {"http": False, "splunk": True, "s3": False}
# Log streams of the stream's own error log group (Firehose's documented names).
DELIVERY_LOG_STREAM = "DestinationDelivery"
BACKUP_LOG_STREAM = "BackupDelivery"
# An empty pattern forwards every event of the group.
SUBSCRIBE_EVERYTHING = ""
# Objects the SIEM is told about (S3 → SQS): longest SQS keeps a message.
SIEM_QUEUE_RETENTION_SECONDS = 14 * 24 * 3600
ALARM_PERIOD_SECONDS = 300
# GuardDuty severities 7.0-8.9 are High, 9.0+ Critical: these page; the rest stay in the console.
GUARDDUTY_PAGING_SEVERITY = 7
SECURITY_HUB_STANDARD = "aws-foundational-security-best-practices/v/1.0.0"


@dataclass(frozen=True)
class SecurityAlarm:
    """A CloudWatch Logs metric filter on the trail's log group and the alarm on its metric."""

    description: str
    pattern: str


# CIS AWS Foundations Benchmark (section "Monitoring") patterns, extended where the kit needs more:
# permissions boundaries, Object Lock, retention changes.
SECURITY_ALARMS: dict[str, SecurityAlarm] = {
    "root-account-use": SecurityAlarm(
        "the account's root user made a request",
        '{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS '
        '&& $.eventType != "AwsServiceEvent" }',
    ),
    "unauthorized-api-calls": SecurityAlarm(
        "an API call was refused for lack of permission",
        '{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }',
    ),
    "iam-policy-changes": SecurityAlarm(
        "an IAM policy or permissions boundary changed",
        "{ ($.eventSource = iam.amazonaws.com) && (($.eventName = DeleteGroupPolicy) || "
        "($.eventName = DeleteRolePolicy) || ($.eventName = DeleteUserPolicy) || "
        "($.eventName = PutGroupPolicy) || ($.eventName = PutRolePolicy) || "
        "($.eventName = PutUserPolicy) || ($.eventName = CreatePolicy) || "
        "($.eventName = DeletePolicy) || ($.eventName = CreatePolicyVersion) || "
        "($.eventName = DeletePolicyVersion) || ($.eventName = SetDefaultPolicyVersion) || "
        "($.eventName = AttachRolePolicy) || ($.eventName = DetachRolePolicy) || "
        "($.eventName = AttachUserPolicy) || ($.eventName = DetachUserPolicy) || "
        "($.eventName = AttachGroupPolicy) || ($.eventName = DetachGroupPolicy) || "
        "($.eventName = PutRolePermissionsBoundary) || "
        "($.eventName = DeleteRolePermissionsBoundary) || "
        "($.eventName = UpdateAssumeRolePolicy)) }",
    ),
    "kms-key-disable-or-deletion": SecurityAlarm(
        "a KMS key was disabled or scheduled for deletion",
        "{ ($.eventSource = kms.amazonaws.com) && "
        "(($.eventName = DisableKey) || ($.eventName = ScheduleKeyDeletion)) }",
    ),
    "cloudtrail-changes": SecurityAlarm(
        "a trail was created, changed, stopped or deleted",
        "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || "
        "($.eventName = DeleteTrail) || ($.eventName = StartLogging) || "
        "($.eventName = StopLogging) || ($.eventName = PutEventSelectors) }",
    ),
    "s3-policy-or-object-lock-changes": SecurityAlarm(
        "a bucket policy, ACL, public access block, versioning or Object Lock setting changed",
        "{ ($.eventSource = s3.amazonaws.com) && (($.eventName = PutBucketAcl) || "
        "($.eventName = PutBucketPolicy) || ($.eventName = DeleteBucketPolicy) || "
        "($.eventName = PutBucketPublicAccessBlock) || "
        "($.eventName = DeleteBucketPublicAccessBlock) || "
        "($.eventName = PutBucketVersioning) || ($.eventName = PutObjectLockConfiguration) || "
        "($.eventName = PutObjectRetention) || ($.eventName = PutObjectLegalHold)) }",
    ),
    "console-login-without-mfa": SecurityAlarm(
        "an IAM user signed in to the console without MFA",
        '{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") && '
        '($.userIdentity.type = "IAMUser") && ($.responseElements.ConsoleLogin = "Success") }',
    ),
}
# The break-glass alarm also watches the trail's log group: the multi-region trail sees
# AssumeRole calls made through every regional STS endpoint, the EventBridge rule only its own.
BREAK_GLASS_ALARM = "break-glass-assumed"
ASSUME_ROLE_EVENTS: tuple[str, ...] = (
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
)


# Nobody but the operator's redrive touches the ingest dead-letter queue's messages: a person
# deleting them (instead of redriving) destroys the evidence of failed ingests. The trail records
# the DLQ's SQS data events (and only that queue's) so this alarm can see them.
DLQ_DELETED_ALARM = "dlq-messages-deleted-by-a-person"
DLQ_DELETE_EVENTS: tuple[str, ...] = ("DeleteMessage", "DeleteMessageBatch", "PurgeQueue")


def dlq_deleted_filter(queue_name: str) -> str:
    """Metric filter: a human (an assumed role's session, not an AWS service) deleted DLQ messages.

    Every IAM role session is ``AssumedRole``; SQS moving messages for a redrive is a service, not
    a session. The queue is matched by the end of its URL (CloudTrail's ``queueUrl``).
    """
    names = " || ".join(f"($.eventName = {e})" for e in DLQ_DELETE_EVENTS)
    return (
        f'{{ ($.eventSource = "sqs.amazonaws.com") && ({names}) && '
        f'($.userIdentity.type = "AssumedRole") && '
        f'($.requestParameters.queueUrl = "*/{queue_name}") }}'
    )


def trail_name(name_prefix: str) -> str:
    """The trail's name; its ARN is known before it exists (the bucket policy names it)."""
    return f"{name_prefix}-trail"


def trail_arn(account: Account, name_prefix: str) -> str:
    return account.arn("cloudtrail", f"trail/{trail_name(name_prefix)}")


def siem_delivery_role_name(name_prefix: str) -> str:
    """Firehose's role; the logs key policy grants it by name before it exists."""
    return f"{name_prefix}-siem-delivery"


def audit_bucket_names(account: Account, name_prefix: str, destination: str) -> dict[str, str]:
    """The audit component's buckets (purpose -> name), for the access-log bucket's policy too."""
    purposes = [TRAIL_BUCKET_PURPOSE, BACKUP_BUCKET_PURPOSE]
    if destination == "s3":
        purposes.append(PULL_BUCKET_PURPOSE)
    return {p: bucket_name(account, name_prefix, p, account.region) for p in purposes}


def break_glass_pattern(role_arn: str) -> dict[str, Any]:
    """EventBridge pattern: CloudTrail recorded an STS call that assumed the break-glass role."""
    return {
        "source": ["aws.sts"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["sts.amazonaws.com"],
            "eventName": list(ASSUME_ROLE_EVENTS),
            "requestParameters": {"roleArn": [role_arn]},
        },
    }


def break_glass_filter(role_arn: str) -> str:
    """Metric filter pattern of the same event, for the trail's log group."""
    names = " || ".join(f"($.eventName = {e})" for e in ASSUME_ROLE_EVENTS)
    return (
        f'{{ ($.eventSource = "sts.amazonaws.com") && ({names}) && '
        f'($.requestParameters.roleArn = "{role_arn}") }}'
    )


# --------------------------------------------------------------------------------- SIEM delivery


@dataclass(frozen=True)
class SiemStream:
    """Everything the SIEM delivery stream is made of; ARNs are plain strings or Pulumi outputs."""

    name: str
    destination: SiemDestination
    role_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    backup_bucket_arn: pulumi.Input[str]
    error_log_group: pulumi.Input[str]
    endpoint_url: str | None = None
    secret_arn: pulumi.Input[str] | None = None
    pull_bucket_arn: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class Processor:
    """One of Firehose's built-in record processors, with its (name, value) parameters."""

    type: str
    parameters: tuple[tuple[str, str], ...]


def processors(destination: SiemDestination) -> list[Processor]:
    """What Firehose does to each record before pushing it (none for the s3 pull bucket)."""
    if destination == "s3":
        return []
    steps = [Processor("Decompression", (("CompressionFormat", DECOMPRESSION_FORMAT),))]
    if EXTRACT_MESSAGES[destination]:
        steps.append(Processor("CloudWatchLogProcessing", (("DataMessageExtraction", "true"),)))
    return steps


def firehose_request(s: SiemStream) -> dict[str, Any]:
    """The stream as Firehose's CreateDeliveryStream request (what moto and boto3 take).

    :func:`firehose_resource_args` declares the same stream for Pulumi; both read the same
    :class:`SiemStream` and constants, and ``tests/infra/test_audit.py`` checks they agree.
    """

    def logging(stream: str) -> dict[str, Any]:
        return {"Enabled": True, "LogGroupName": s.error_log_group, "LogStreamName": stream}

    buffering = {"SizeInMBs": SIEM_BUFFER_MIB, "IntervalInSeconds": SIEM_BUFFER_SECONDS}
    backup = {
        "RoleARN": s.role_arn,
        "BucketARN": s.backup_bucket_arn,
        "Prefix": BACKUP_PREFIX,
        "BufferingHints": buffering,
        "CompressionFormat": COMPRESSION,
        "EncryptionConfiguration": {"KMSEncryptionConfig": {"AWSKMSKeyARN": s.key_arn}},
        "CloudWatchLoggingOptions": logging(BACKUP_LOG_STREAM),
    }
    secret = {"Enabled": True, "SecretARN": s.secret_arn, "RoleARN": s.role_arn}
    processing = {
        "Enabled": True,
        "Processors": [
            {
                "Type": p.type,
                "Parameters": [{"ParameterName": k, "ParameterValue": v} for k, v in p.parameters],
            }
            for p in processors(s.destination)
        ],
    }
    request: dict[str, Any] = {
        "DeliveryStreamName": s.name,
        "DeliveryStreamType": "DirectPut",
        "DeliveryStreamEncryptionConfigurationInput": {
            "KeyType": "CUSTOMER_MANAGED_CMK",
            "KeyARN": s.key_arn,
        },
    }
    if s.destination == "http":
        request["HttpEndpointDestinationConfiguration"] = {
            "EndpointConfiguration": {"Url": s.endpoint_url, "Name": SIEM_ENDPOINT_NAME},
            "BufferingHints": buffering,
            "CloudWatchLoggingOptions": logging(DELIVERY_LOG_STREAM),
            "RetryOptions": {"DurationInSeconds": SIEM_RETRY_SECONDS},
            "RoleARN": s.role_arn,
            "S3BackupMode": "FailedDataOnly",
            "S3Configuration": backup,
            "SecretsManagerConfiguration": secret,
            "ProcessingConfiguration": processing,
        }
    elif s.destination == "splunk":
        request["SplunkDestinationConfiguration"] = {
            "HECEndpoint": s.endpoint_url,
            "HECEndpointType": "Raw",
            "HECAcknowledgmentTimeoutInSeconds": SPLUNK_ACK_TIMEOUT_SECONDS,
            "BufferingHints": buffering,
            "CloudWatchLoggingOptions": logging(DELIVERY_LOG_STREAM),
            "RetryOptions": {"DurationInSeconds": SIEM_RETRY_SECONDS},
            "S3BackupMode": "FailedEventsOnly",
            "S3Configuration": backup,
            "SecretsManagerConfiguration": secret,
            "ProcessingConfiguration": processing,
        }
    else:
        request["ExtendedS3DestinationConfiguration"] = {
            "RoleARN": s.role_arn,
            "BucketARN": s.pull_bucket_arn,
            "Prefix": PULL_PREFIX,
            "BufferingHints": buffering,
            "CompressionFormat": COMPRESSION,
            "EncryptionConfiguration": {"KMSEncryptionConfig": {"AWSKMSKeyARN": s.key_arn}},
            "CloudWatchLoggingOptions": logging(DELIVERY_LOG_STREAM),
            # S3 has no "failed data" backup: every source record is copied to the backup bucket,
            # so records Firehose could not write to the pull bucket are still kept.
            "S3BackupMode": "Enabled",
            "S3BackupConfiguration": backup,
        }
    return request


def firehose_resource_args(s: SiemStream) -> dict[str, Any]:
    """The same stream as keyword arguments of ``aws.kinesis.FirehoseDeliveryStream``."""

    def logging(stream: str) -> dict[str, Any]:
        return {"enabled": True, "log_group_name": s.error_log_group, "log_stream_name": stream}

    buffering = {"buffering_size": SIEM_BUFFER_MIB, "buffering_interval": SIEM_BUFFER_SECONDS}
    backup = {
        "role_arn": s.role_arn,
        "bucket_arn": s.backup_bucket_arn,
        "prefix": BACKUP_PREFIX,
        **buffering,
        "compression_format": COMPRESSION,
        "kms_key_arn": s.key_arn,
        "cloudwatch_logging_options": logging(BACKUP_LOG_STREAM),
    }
    secret = {"enabled": True, "secret_arn": s.secret_arn, "role_arn": s.role_arn}
    processing = {
        "enabled": True,
        "processors": [
            {
                "type": p.type,
                "parameters": [
                    {"parameter_name": k, "parameter_value": v} for k, v in p.parameters
                ],
            }
            for p in processors(s.destination)
        ],
    }
    args: dict[str, Any] = {
        "name": s.name,
        "server_side_encryption": {
            "enabled": True,
            "key_type": "CUSTOMER_MANAGED_CMK",
            "key_arn": s.key_arn,
        },
    }
    if s.destination == "http":
        args["destination"] = "http_endpoint"
        args["http_endpoint_configuration"] = {
            "url": s.endpoint_url,
            "name": SIEM_ENDPOINT_NAME,
            **buffering,
            "cloudwatch_logging_options": logging(DELIVERY_LOG_STREAM),
            "retry_duration": SIEM_RETRY_SECONDS,
            "role_arn": s.role_arn,
            "s3_backup_mode": "FailedDataOnly",
            "s3_configuration": backup,
            "secrets_manager_configuration": secret,
            "processing_configuration": processing,
        }
    elif s.destination == "splunk":
        args["destination"] = "splunk"
        args["splunk_configuration"] = {
            "hec_endpoint": s.endpoint_url,
            "hec_endpoint_type": "Raw",
            "hec_acknowledgment_timeout": SPLUNK_ACK_TIMEOUT_SECONDS,
            **buffering,
            "cloudwatch_logging_options": logging(DELIVERY_LOG_STREAM),
            "retry_duration": SIEM_RETRY_SECONDS,
            "s3_backup_mode": "FailedEventsOnly",
            "s3_configuration": backup,
            "secrets_manager_configuration": secret,
            "processing_configuration": processing,
        }
    else:
        args["destination"] = "extended_s3"
        args["extended_s3_configuration"] = {
            "role_arn": s.role_arn,
            "bucket_arn": s.pull_bucket_arn,
            "prefix": PULL_PREFIX,
            **buffering,
            "compression_format": COMPRESSION,
            "kms_key_arn": s.key_arn,
            "cloudwatch_logging_options": logging(DELIVERY_LOG_STREAM),
            "s3_backup_mode": "Enabled",
            "s3_backup_configuration": backup,
        }
    return args


# ------------------------------------------------------------------------------------- component


@dataclass(frozen=True)
class AuditArgs:
    """What the audit watches and where it ships: buckets, functions, log groups, the SIEM."""

    account: Account
    name_prefix: str
    settings: AuditSettings
    logs_key: aws.kms.Key
    log_retention_days: int
    # Imaging buckets (purpose -> name) whose object reads and writes the trail records.
    data_buckets: Mapping[str, str]
    # The stack's functions, whose invocations the trail records.
    function_arns: Sequence[pulumi.Input[str]]
    # Every security log group of the other components (logical name -> group), shipped to the SIEM.
    log_groups: Mapping[str, aws.cloudwatch.LogGroup]
    # The server-access-log bucket of the region (its policy admits the audit buckets).
    access_log_bucket: pulumi.Input[str]
    break_glass_role_arn: str
    # The ingest dead-letter queue: the trail records its SQS data events (deletions alarm).
    dead_letter_queue_arn: pulumi.Input[str]
    dead_letter_queue_name: str
    # The stack's permissions boundary, attached to every role created here.
    permissions_boundary: pulumi.Input[str]


class Audit(pulumi.ComponentResource):
    """The trail, the SIEM delivery stream and its subscriptions, the security alarms."""

    trail: aws.cloudtrail.Trail
    trail_bucket: SecureBucket
    backup_bucket: SecureBucket
    pull_bucket: SecureBucket | None
    trail_log_group: aws.cloudwatch.LogGroup
    stream: aws.kinesis.FirehoseDeliveryStream
    siem_secret: aws.secretsmanager.Secret | None
    siem_queue: aws.sqs.Queue
    security_topic: aws.sns.Topic
    roles: dict[str, aws.iam.Role]
    # Every log group shipped to the SIEM, the trail's included.
    shipped_log_groups: dict[str, aws.cloudwatch.LogGroup]
    guardduty_detector: aws.guardduty.Detector | None

    def __init__(
        self, name: str, args: AuditArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:audit:Audit", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = args.account
        prefix = args.name_prefix
        destination = args.settings.siem_destination
        names = audit_bucket_names(account, prefix, destination)
        this_trail = trail_arn(account, prefix)
        # The SIEM's roles: they read what the queue announces (trail and pull bucket objects).
        readers = args.settings.siem_reader_arns
        self.roles = {}

        # --- buckets ----------------------------------------------------------------------------
        def audit_bucket(
            purpose: str, *, lock: bool, statements: tuple[Statement, ...] = ()
        ) -> SecureBucket:
            return SecureBucket(
                f"{name}-{purpose}",
                SecureBucketArgs(
                    account=account,
                    bucket_name=names[purpose],
                    purpose=purpose,
                    kms_key=args.logs_key,
                    # The trail is evidence: nobody, root included, may shorten or delete it.
                    object_lock=ObjectLock("COMPLIANCE", args.log_retention_days) if lock else None,
                    access_log_bucket=args.access_log_bucket,
                    lifecycle=Lifecycle(expiration_days=args.log_retention_days),
                    # Firehose's buckets get no default retention (that Firehose delivers into
                    # locked buckets could not be verified offline); like the trail bucket, their
                    # policy refuses deleting any version.
                    deny_version_deletion=True,
                    protect=lock,
                    classification="audit",
                    service_statements=statements,
                ),
                opts=child,
            )

        self.trail_bucket = audit_bucket(
            TRAIL_BUCKET_PURPOSE,
            lock=True,
            statements=(
                *cloudtrail_bucket_statements(account, names[TRAIL_BUCKET_PURPOSE], this_trail),
                *siem_reader_bucket_statements(account, names[TRAIL_BUCKET_PURPOSE], readers),
            ),
        )
        self.backup_bucket = audit_bucket(BACKUP_BUCKET_PURPOSE, lock=False)
        self.pull_bucket = (
            audit_bucket(
                PULL_BUCKET_PURPOSE,
                lock=False,
                statements=tuple(
                    siem_reader_bucket_statements(account, names[PULL_BUCKET_PURPOSE], readers)
                ),
            )
            if destination == "s3"
            else None
        )

        # --- the SIEM hears of every new trail (and pull) object: S3 → SQS ----------------------
        notifying = {TRAIL_BUCKET_PURPOSE: self.trail_bucket}
        if self.pull_bucket is not None:
            notifying[PULL_BUCKET_PURPOSE] = self.pull_bucket
        self.siem_queue = aws.sqs.Queue(
            f"{name}-siem-objects",
            name=f"{prefix}-siem-objects",
            kms_master_key_id=args.logs_key.arn,
            message_retention_seconds=SIEM_QUEUE_RETENTION_SECONDS,
            opts=child,
        )
        queue_access = aws.sqs.QueuePolicy(
            f"{name}-siem-objects-policy",
            queue_url=self.siem_queue.id,
            policy=self.siem_queue.arn.apply(
                lambda arn: json.dumps(
                    siem_queue_policy(
                        account,
                        arn,
                        notifying_buckets=tuple(b.name for b in notifying.values()),
                        reader_arns=readers,
                    )
                )
            ),
            opts=child,
        )
        for purpose, bucket in notifying.items():
            aws.s3.BucketNotification(
                f"{name}-{purpose}-notification",
                bucket=bucket.bucket.id,
                queues=[{"queue_arn": self.siem_queue.arn, "events": ["s3:ObjectCreated:*"]}],
                # S3 sends a test message at creation: the queue must already admit it.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[queue_access]),
            )

        # --- CloudTrail -------------------------------------------------------------------------
        self.trail_log_group = encrypted_log_group(
            f"{name}-trail-logs",
            group_name=f"/{prefix}/cloudtrail",
            logs_key=args.logs_key,
            retention_days=args.log_retention_days,
            opts=child,
        )
        trail_role = self._role(
            f"{name}-trail-role",
            f"{prefix}-cloudtrail-logs",
            "CloudTrail delivering the trail's events to its log group",
            service_trust_policy("cloudtrail.amazonaws.com", account, source_arn_like=this_trail),
            args,
        )
        trail_role_policy = aws.iam.RolePolicy(
            f"{name}-trail-role-policy",
            role=trail_role.id,
            policy=self.trail_log_group.arn.apply(
                lambda arn: json.dumps(cloudtrail_logs_role_policy(arn))
            ),
            opts=child,
        )
        self.trail = aws.cloudtrail.Trail(
            f"{name}-trail",
            name=trail_name(prefix),
            s3_bucket_name=self.trail_bucket.bucket.id,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            enable_logging=True,
            kms_key_id=args.logs_key.arn,
            # CloudTrail wants the group's ARN with its streams' wildcard.
            cloud_watch_logs_group_arn=self.trail_log_group.arn.apply(lambda arn: f"{arn}:*"),
            cloud_watch_logs_role_arn=trail_role.arn,
            advanced_event_selectors=_event_selectors(args),
            # CloudTrail checks the bucket policy and the role when the trail is created.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.trail_bucket.policy, trail_role_policy]
            ),
        )

        # --- SIEM delivery: log groups → subscription filters → Firehose → SIEM -----------------
        self.siem_secret = None
        if destination != "s3":
            # Created empty: an operator puts the SIEM's key (see the README). Until then
            # deliveries fail and every record lands in the backup bucket: nothing is lost.
            self.siem_secret = aws.secretsmanager.Secret(
                f"{name}-siem-secret",
                name=f"{prefix}/siem/{'hec-token' if destination == 'splunk' else 'access-key'}",
                description=f"Credential Firehose presents to the SIEM ({destination})",
                kms_key_id=args.logs_key.arn,
                recovery_window_in_days=30,
                opts=child,
            )
        stream_name = f"{prefix}-siem"
        error_log_group = encrypted_log_group(
            f"{name}-siem-errors",
            group_name=f"/aws/kinesisfirehose/{stream_name}",
            logs_key=args.logs_key,
            retention_days=args.log_retention_days,
            opts=child,
        )
        error_streams = [
            aws.cloudwatch.LogStream(
                f"{name}-siem-errors-{stream.lower()}",
                name=stream,
                log_group_name=error_log_group.name,
                opts=child,
            )
            for stream in (DELIVERY_LOG_STREAM, BACKUP_LOG_STREAM)
        ]
        delivery_role = self._role(
            f"{name}-siem-delivery-role",
            siem_delivery_role_name(prefix),
            "Firehose delivering security logs to the SIEM and failures to the backup bucket",
            service_trust_policy("firehose.amazonaws.com", account),
            args,
        )
        secret_arn: pulumi.Input[str | None] = (
            self.siem_secret.arn if self.siem_secret is not None else None
        )
        delivery_policy = aws.iam.RolePolicy(
            f"{name}-siem-delivery-policy",
            role=delivery_role.id,
            policy=pulumi.Output.all(
                key=args.logs_key.arn, group=error_log_group.arn, secret=secret_arn
            ).apply(
                lambda a: json.dumps(
                    siem_delivery_role_policy(
                        SiemDeliveryResources(
                            bucket_names=tuple(
                                names[p] for p in names if p != TRAIL_BUCKET_PURPOSE
                            ),
                            logs_key_arn=a["key"],
                            error_log_group_arn=a["group"],
                            s3_service_endpoint=account.service_endpoint("s3"),
                            secret_arn=a["secret"],
                            secretsmanager_service_endpoint=(
                                account.service_endpoint("secretsmanager") if a["secret"] else None
                            ),
                        )
                    )
                )
            ),
            opts=child,
        )
        spec = SiemStream(
            name=stream_name,
            destination=destination,
            role_arn=delivery_role.arn,
            key_arn=args.logs_key.arn,
            backup_bucket_arn=self.backup_bucket.arn,
            error_log_group=error_log_group.name,
            endpoint_url=args.settings.siem_endpoint_url,
            secret_arn=self.siem_secret.arn if self.siem_secret is not None else None,
            pull_bucket_arn=self.pull_bucket.arn if self.pull_bucket is not None else None,
        )
        self.stream = aws.kinesis.FirehoseDeliveryStream(
            f"{name}-siem",
            **firehose_resource_args(spec),
            # Firehose checks at creation that its role reaches the buckets and the key.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    delivery_policy,
                    self.backup_bucket.policy,
                    *error_streams,
                    *([self.pull_bucket.policy] if self.pull_bucket else []),
                ],
            ),
        )
        shipping_role = self._role(
            f"{name}-log-shipping-role",
            f"{prefix}-log-shipping",
            "CloudWatch Logs subscription filters putting security log events into Firehose",
            service_trust_policy(
                "logs.amazonaws.com",
                account,
                source_arn_like=(
                    f"arn:{account.partition}:logs:{account.region}:{account.account_id}:*"
                ),
            ),
            args,
        )
        shipping_policy = aws.iam.RolePolicy(
            f"{name}-log-shipping-policy",
            role=shipping_role.id,
            policy=self.stream.arn.apply(lambda arn: json.dumps(logs_to_firehose_role_policy(arn))),
            opts=child,
        )
        self.shipped_log_groups = {**args.log_groups, "cloudtrail": self.trail_log_group}
        for group_name, group in self.shipped_log_groups.items():
            aws.cloudwatch.LogSubscriptionFilter(
                f"{name}-ship-{group_name}",
                name=f"{prefix}-siem",
                log_group=group.name,
                filter_pattern=SUBSCRIBE_EVERYTHING,
                destination_arn=self.stream.arn,
                role_arn=shipping_role.arn,
                # CloudWatch Logs test-writes to the stream with the role when the filter is made.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[shipping_policy]),
            )

        # --- alarms -----------------------------------------------------------------------------
        rule_names = {"break-glass": f"{prefix}-break-glass-assumed"}
        if args.settings.enable_guardduty:
            rule_names["guardduty"] = f"{prefix}-guardduty-findings"
        self.security_topic = aws.sns.Topic(
            f"{name}-security",
            name=f"{prefix}-security",
            kms_master_key_id=args.logs_key.arn,
            opts=child,
        )
        rule_arns = [
            f"arn:{account.partition}:events:{account.region}:{account.account_id}:rule/{r}"
            for r in rule_names.values()
        ]
        topic_policy = aws.sns.TopicPolicy(
            f"{name}-security-policy",
            arn=self.security_topic.arn,
            policy=self.security_topic.arn.apply(
                lambda arn: json.dumps(
                    security_topic_policy(account, arn, account.region, rule_arns=rule_arns)
                )
            ),
            opts=child,
        )
        alarms = {
            **SECURITY_ALARMS,
            BREAK_GLASS_ALARM: SecurityAlarm(
                "someone assumed the break-glass role: confirm the emergency and review the "
                "session's actions in the trail",
                break_glass_filter(args.break_glass_role_arn),
            ),
            DLQ_DELETED_ALARM: SecurityAlarm(
                "a person deleted messages of the ingest dead-letter queue instead of redriving "
                "them: the failed inbox objects they named are no longer tracked; find the "
                "session in the trail and the objects in the inbox",
                dlq_deleted_filter(args.dead_letter_queue_name),
            ),
        }
        for alarm, alarm_spec in alarms.items():
            self._log_alarm(name, prefix, alarm, alarm_spec, self.trail_log_group)
        # Firehose's own errors are watched, not shipped: shipping them through the stream that
        # fails would loop.
        self._log_alarm(
            name,
            prefix,
            "siem-delivery-errors",
            SecurityAlarm(
                "Firehose could not deliver to the SIEM (the records are in the backup bucket): "
                "read the stream's error log group, fix the endpoint or its key, re-send them",
                SUBSCRIBE_EVERYTHING,
            ),
            error_log_group,
        )
        self._rule(
            name,
            rule_names["break-glass"],
            "break-glass",
            "The break-glass role was assumed",
            break_glass_pattern(args.break_glass_role_arn),
            topic_policy,
        )

        # --- optional account-wide detectors ----------------------------------------------------
        self.guardduty_detector = None
        if args.settings.enable_guardduty:
            self.guardduty_detector = aws.guardduty.Detector(
                f"{name}-guardduty",
                enable=True,
                finding_publishing_frequency="FIFTEEN_MINUTES",
                opts=child,
            )
            aws.guardduty.DetectorFeature(
                f"{name}-guardduty-s3",
                detector_id=self.guardduty_detector.id,
                name="S3_DATA_EVENTS",
                status="ENABLED",
                opts=child,
            )
            self._rule(
                name,
                rule_names["guardduty"],
                "guardduty",
                "High and critical GuardDuty findings",
                {
                    "source": ["aws.guardduty"],
                    "detail-type": ["GuardDuty Finding"],
                    "detail": {"severity": [{"numeric": [">=", GUARDDUTY_PAGING_SEVERITY]}]},
                },
                topic_policy,
            )
        if args.settings.enable_security_hub:
            hub = aws.securityhub.Account(
                f"{name}-security-hub",
                # Only the standard below, not whatever AWS enables by default this year.
                enable_default_standards=False,
                auto_enable_controls=True,
                control_finding_generator="SECURITY_CONTROL",
                opts=child,
            )
            aws.securityhub.StandardsSubscription(
                f"{name}-security-hub-fsbp",
                standards_arn=(
                    f"arn:{account.partition}:securityhub:{account.region}::standards/"
                    f"{SECURITY_HUB_STANDARD}"
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[hub]),
            )

        self.register_outputs(
            {
                "trailArn": self.trail.arn,
                "trailBucket": self.trail_bucket.bucket.bucket,
                "siemStreamArn": self.stream.arn,
                "siemBackupBucket": self.backup_bucket.bucket.bucket,
                "siemObjectsQueueUrl": self.siem_queue.url,
                "securityTopicArn": self.security_topic.arn,
            }
        )

    def _role(
        self,
        resource_name: str,
        role_name: str,
        description: str,
        trust: dict[str, Any],
        args: AuditArgs,
    ) -> aws.iam.Role:
        role = aws.iam.Role(
            resource_name,
            name=role_name,
            description=description,
            assume_role_policy=json.dumps(trust),
            permissions_boundary=args.permissions_boundary,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.roles[role_name] = role
        return role

    def _log_alarm(
        self,
        name: str,
        prefix: str,
        alarm: str,
        spec: SecurityAlarm,
        group: aws.cloudwatch.LogGroup,
    ) -> None:
        namespace = f"{prefix}/security"
        aws.cloudwatch.LogMetricFilter(
            f"{name}-{alarm}-filter",
            name=f"{prefix}-{alarm}",
            log_group_name=group.name,
            pattern=spec.pattern,
            metric_transformation={"name": alarm, "namespace": namespace, "value": "1"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-{alarm}-alarm",
            name=f"{prefix}-{alarm}",
            alarm_description=spec.description,
            namespace=namespace,
            metric_name=alarm,
            statistic="Sum",
            period=ALARM_PERIOD_SECONDS,
            evaluation_periods=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            # No datapoints means no matching event.
            treat_missing_data="notBreaching",
            alarm_actions=[self.security_topic.arn],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _rule(
        self,
        name: str,
        rule_name: str,
        short: str,
        description: str,
        pattern: dict[str, Any],
        topic_policy: aws.sns.TopicPolicy,
    ) -> None:
        rule = aws.cloudwatch.EventRule(
            f"{name}-{short}-rule",
            name=rule_name,
            description=description,
            event_pattern=json.dumps(pattern),
            state="ENABLED",
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.cloudwatch.EventTarget(
            f"{name}-{short}-target",
            rule=rule.name,
            arn=self.security_topic.arn,
            # EventBridge publishes only once the topic policy admits the rule.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[topic_policy]),
        )


def _event_selectors(args: AuditArgs) -> list[aws.cloudtrail.TrailAdvancedEventSelectorArgsDict]:
    """Management events, object-level events of the imaging buckets, the stack's invocations."""
    partition = args.account.partition
    return [
        {
            "name": "Management events",
            "field_selectors": [{"field": "eventCategory", "equals": ["Management"]}],
        },
        {
            # No readOnly selector: reads (who viewed a study) and writes are both recorded.
            "name": "Imaging objects read and written",
            "field_selectors": [
                {"field": "eventCategory", "equals": ["Data"]},
                {"field": "resources.type", "equals": ["AWS::S3::Object"]},
                {
                    "field": "resources.ARN",
                    "starts_withs": sorted(
                        f"arn:{partition}:s3:::{b}/" for b in args.data_buckets.values()
                    ),
                },
            ],
        },
        {
            # Only the DLQ's: who received or deleted its messages (DLQ_DELETED_ALARM).
            "name": "Ingest dead-letter queue message events",
            "field_selectors": [
                {"field": "eventCategory", "equals": ["Data"]},
                {"field": "resources.type", "equals": ["AWS::SQS::Queue"]},
                {"field": "resources.ARN", "equals": [args.dead_letter_queue_arn]},
            ],
        },
        {
            "name": "Stack function invocations",
            "field_selectors": [
                {"field": "eventCategory", "equals": ["Data"]},
                {"field": "resources.type", "equals": ["AWS::Lambda::Function"]},
                {"field": "resources.ARN", "equals": list(args.function_arns)},
            ],
        },
    ]
