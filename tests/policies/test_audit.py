"""Audit policies: what each refuses, and the variants of the stack that weaken the audit trail."""

from __future__ import annotations

from typing import Any

from tests.policies.conftest import Judge
from tests.policies.mutations import Mutation, Snapshot, drop_statement

TRAIL = "aws:cloudtrail/trail:Trail"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SUBSCRIPTION = "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
BUCKET = "aws:s3/bucket:Bucket"

PHI = "aws-cloudtrail-trail-require-phi-data-events"
SUBSCRIBED = "aws-cloudwatch-log-group-require-siem-subscription"
RETENTION = "aws-cloudwatch-log-group-require-retention"
LOCKED_BUCKET = "aws-cloudtrail-trail-require-locked-bucket"
SECURITY_ALARMS = "aws-cloudwatch-require-security-alarms"
SIEM_STREAM = "arn:aws:firehose:us-east-1:123456789012:deliverystream/pacs-dev-siem"
FOREIGN_STREAM = "arn:aws:firehose:us-east-1:999999999999:deliverystream/elsewhere"


def _trail(s: Snapshot) -> dict[str, Any]:
    return s.props(TRAIL, "audit-trail")


def _selector(s: Snapshot, name: str) -> dict[str, Any]:
    found = [e for e in _trail(s)["advancedEventSelectors"] if e.get("name") == name]
    assert len(found) == 1, f"event selector {name!r}: found {len(found)}"
    selector: dict[str, Any] = found[0]
    return selector


def _imaging(s: Snapshot) -> dict[str, Any]:
    return _selector(s, "Imaging objects read and written")


def _field(selector: dict[str, Any], field: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in selector["fieldSelectors"] if f["field"] == field)
    return found


def _findings(report: Any) -> set[str]:
    return {f.urn.rsplit("::", 1)[-1] for f in report.findings}


# --- mutations ---------------------------------------------------------------------------------


def _single_region(s: Snapshot) -> None:
    _trail(s)["isMultiRegionTrail"] = False


def _logging_stopped(s: Snapshot) -> None:
    _trail(s)["enableLogging"] = False


def _no_global_events(s: Snapshot) -> None:
    _trail(s)["includeGlobalServiceEvents"] = False


def _management_writes_only(s: Snapshot) -> None:
    _selector(s, "Management events")["fieldSelectors"].append(
        {"field": "readOnly", "equals": ["false"]}
    )


def _kms_events_excluded(s: Snapshot) -> None:
    _selector(s, "Management events")["fieldSelectors"].append(
        {"field": "eventSource", "notEquals": ["kms.amazonaws.com"]}
    )


def _no_log_validation(s: Snapshot) -> None:
    _trail(s)["enableLogFileValidation"] = False


def _trail_unencrypted(s: Snapshot) -> None:
    del _trail(s)["kmsKeyId"]


def _trail_not_in_cloudwatch(s: Snapshot) -> None:
    del _trail(s)["cloudWatchLogsGroupArn"]


def _archive_not_recorded(s: Snapshot) -> None:
    starts = _field(_imaging(s), "resources.ARN")["startsWiths"]
    starts.remove("arn:aws:s3:::pacs-dev-123456789012-us-east-1-archive/")


def _phi_writes_only(s: Snapshot) -> None:
    _imaging(s)["fieldSelectors"].append({"field": "readOnly", "equals": ["false"]})


def _phi_reads_of_one_role_hidden(s: Snapshot) -> None:
    _imaging(s)["fieldSelectors"].append(
        {
            "field": "userIdentity.arn",
            "notStartsWiths": ["arn:aws:sts::123456789012:assumed-role/pacs-dev-ingest/"],
        }
    )


def _log_group_unencrypted(s: Snapshot) -> None:
    del s.props(LOG_GROUP, "ingest-ingest-logs")["kmsKeyId"]


def _short_retention(s: Snapshot) -> None:
    s.props(LOG_GROUP, "audit-trail-logs")["retentionInDays"] = 365.0


def _flow_logs_not_shipped(s: Snapshot) -> None:
    s.remove(SUBSCRIPTION, "audit-ship-flow-logs")


def _gateway_shipped_elsewhere(s: Snapshot) -> None:
    s.props(SUBSCRIPTION, "audit-ship-gateway")["destinationArn"] = (
        "arn:aws:firehose:us-east-1:999999999999:deliverystream/elsewhere"
    )


def _trail_errors_filtered(s: Snapshot) -> None:
    s.props(SUBSCRIPTION, "audit-ship-cloudtrail")["filterPattern"] = '{ $.errorCode = "*" }'


def _trail_split_between_filters(s: Snapshot) -> None:
    # The SIEM gets only the errors; every event goes to a stream of another account.
    _trail_errors_filtered(s)
    s.add(
        SUBSCRIPTION,
        "audit-ship-cloudtrail-elsewhere",
        {
            "name": "elsewhere",
            "logGroup": "/pacs-dev/cloudtrail",
            "destinationArn": FOREIGN_STREAM,
            "filterPattern": "",
        },
    )


def _trail_group_posing_as_firehose_errors(s: Snapshot) -> None:
    config = s.props(FIREHOSE, "audit-siem")["extendedS3Configuration"]
    config["cloudwatchLoggingOptions"]["logGroupName"] = "/pacs-dev/cloudtrail"
    s.remove(SUBSCRIPTION, "audit-ship-cloudtrail")


def _trail_bucket_outside_stack(s: Snapshot) -> None:
    _trail(s)["s3BucketName"] = "somebody-elses-trail-bucket"


def _trail_bucket_unlocked(s: Snapshot) -> None:
    _trail(s)["s3BucketName"] = "pacs-dev-123456789012-us-east-1-siem"


def _root_alarm_deleted(s: Snapshot) -> None:
    s.remove(ALARM, "audit-root-account-use-alarm")


def _stop_logging_unwatched(s: Snapshot) -> None:
    props = s.props(METRIC_FILTER, "audit-cloudtrail-changes-filter")
    props["pattern"] = props["pattern"].replace(" || ($.eventName = StopLogging)", "")


def _root_filter_neutered(s: Snapshot) -> None:
    props = s.props(METRIC_FILTER, "audit-root-account-use-filter")
    props["pattern"] = props["pattern"].replace('"Root"', '"Rooted"')


def _unauthorized_alarm_to_foreign_topic(s: Snapshot) -> None:
    s.props(ALARM, "audit-unauthorized-api-calls-alarm")["alarmActions"] = [
        "arn:aws:sns:us-east-1:999999999999:somewhere-else"
    ]


def _log_group_deletable(s: Snapshot) -> None:
    s.props(LOG_GROUP, "edge-gateway-logs")["deletionProtectionEnabled"] = False


def _firehose_aws_owned_key(s: Snapshot) -> None:
    s.props(FIREHOSE, "audit-siem")["serverSideEncryption"] = {
        "enabled": True,
        "keyType": "AWS_OWNED_CMK",
    }


def _firehose_backup_unencrypted(s: Snapshot) -> None:
    del s.props(FIREHOSE, "audit-siem")["extendedS3Configuration"]["s3BackupConfiguration"][
        "kmsKeyArn"
    ]


def _firehose_backup_disabled(s: Snapshot) -> None:
    s.props(FIREHOSE, "audit-siem")["extendedS3Configuration"]["s3BackupMode"] = "Disabled"


def _firehose_errors_unlogged(s: Snapshot) -> None:
    s.props(FIREHOSE, "audit-siem")["extendedS3Configuration"]["cloudwatchLoggingOptions"][
        "enabled"
    ] = False


def _topic_aws_managed_key(s: Snapshot) -> None:
    s.props(TOPIC, "audit-security")["kmsMasterKeyId"] = "alias/aws/sns"


def _topic_plaintext(s: Snapshot) -> None:
    with s.policy(TOPIC_POLICY, "audit-security-policy") as doc:
        drop_statement(doc, "DenyInsecureTransport")


def _topic_public_publish(s: Snapshot) -> None:
    with s.policy(TOPIC_POLICY, "ingest-operations-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "AnyonePublishes",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": "arn:aws:sns:us-east-1:123456789012:pacs-dev-operations",
            }
        )


def _alarm_silent(s: Snapshot) -> None:
    del s.props(ALARM, "audit-root-account-use-alarm")["alarmActions"]


def _alarm_actions_disabled(s: Snapshot) -> None:
    s.props(ALARM, "ingest-dlq-alarm")["actionsEnabled"] = False


MUTATIONS = [
    Mutation(
        "cloudtrail-single-region",
        "aws-cloudtrail-trail-require-multi-region",
        "trail records its home region only",
        _single_region,
    ),
    Mutation(
        "cloudtrail-logging-stopped",
        "aws-cloudtrail-trail-require-multi-region",
        "trail declared with logging stopped",
        _logging_stopped,
    ),
    Mutation(
        "cloudtrail-no-global-events",
        "aws-cloudtrail-trail-require-multi-region",
        "trail misses IAM and STS (global service) events",
        _no_global_events,
    ),
    Mutation(
        "cloudtrail-management-writes-only",
        "aws-cloudtrail-trail-require-management-events",
        "trail records management writes only (no reads)",
        _management_writes_only,
    ),
    Mutation(
        "cloudtrail-kms-events-excluded",
        "aws-cloudtrail-trail-require-management-events",
        "trail excludes KMS management events",
        _kms_events_excluded,
    ),
    Mutation(
        "cloudtrail-no-log-validation",
        "aws-cloudtrail-trail-require-log-validation",
        "trail without log file validation",
        _no_log_validation,
    ),
    Mutation(
        "cloudtrail-unencrypted",
        "aws-cloudtrail-trail-require-kms",
        "trail logs encrypted with SSE-S3 only",
        _trail_unencrypted,
    ),
    Mutation(
        "cloudtrail-not-in-cloudwatch",
        "aws-cloudtrail-trail-require-cloudwatch-logs",
        "trail no longer delivers to its log group (alarms and SIEM blind)",
        _trail_not_in_cloudwatch,
    ),
    Mutation(
        "cloudtrail-archive-not-recorded",
        PHI,
        "archive object reads and writes no longer recorded",
        _archive_not_recorded,
    ),
    Mutation(
        "cloudtrail-phi-writes-only",
        PHI,
        "imaging object reads no longer recorded",
        _phi_writes_only,
    ),
    Mutation(
        "cloudtrail-phi-role-hidden",
        PHI,
        "object events of the ingest role filtered out",
        _phi_reads_of_one_role_hidden,
    ),
    Mutation(
        "logs-group-unencrypted",
        "aws-cloudwatch-log-group-require-kms",
        "ingest function log group without the logs key",
        _log_group_unencrypted,
    ),
    Mutation(
        "logs-one-year-retention",
        RETENTION,
        "trail log group kept one year",
        _short_retention,
    ),
    Mutation(
        "logs-flow-logs-not-shipped",
        SUBSCRIBED,
        "VPC flow logs no longer shipped to the SIEM",
        _flow_logs_not_shipped,
    ),
    Mutation(
        "logs-gateway-shipped-elsewhere",
        SUBSCRIBED,
        "gateway logs shipped to a stream of another account",
        _gateway_shipped_elsewhere,
    ),
    Mutation(
        "logs-trail-partially-shipped",
        SUBSCRIBED,
        "only the trail's error events reach the SIEM",
        _trail_errors_filtered,
    ),
    Mutation(
        "logs-trail-split-between-filters",
        SUBSCRIBED,
        "the SIEM filter forwards errors only while a second filter sends every event elsewhere",
        _trail_split_between_filters,
    ),
    Mutation(
        "logs-trail-group-posing-as-firehose-errors",
        SUBSCRIBED,
        "the stream names the trail's group as its error log group and the trail is unshipped",
        _trail_group_posing_as_firehose_errors,
    ),
    Mutation(
        "cloudtrail-bucket-outside-stack",
        LOCKED_BUCKET,
        "trail delivers its log files to a bucket the stack does not declare",
        _trail_bucket_outside_stack,
    ),
    Mutation(
        "cloudtrail-bucket-unlocked",
        LOCKED_BUCKET,
        "trail delivers its log files to a bucket of the stack without Object Lock",
        _trail_bucket_unlocked,
    ),
    Mutation(
        "cloudwatch-root-alarm-deleted",
        SECURITY_ALARMS,
        "the root-account-use alarm is deleted (its metric filter stays)",
        _root_alarm_deleted,
    ),
    Mutation(
        "cloudwatch-stop-logging-unwatched",
        SECURITY_ALARMS,
        "StopLogging dropped from the trail-changes metric filter",
        _stop_logging_unwatched,
    ),
    Mutation(
        "cloudwatch-root-filter-neutered",
        SECURITY_ALARMS,
        "the root-account-use pattern matches a user type that never occurs",
        _root_filter_neutered,
    ),
    Mutation(
        "cloudwatch-security-alarm-foreign-topic",
        SECURITY_ALARMS,
        "the unauthorized-API-calls alarm notifies a topic the stack does not declare",
        _unauthorized_alarm_to_foreign_topic,
    ),
    Mutation(
        "logs-group-deletable",
        "aws-cloudwatch-log-group-require-deletion-protection",
        "gateway log group without deletion protection",
        _log_group_deletable,
    ),
    Mutation(
        "firehose-aws-owned-key",
        "aws-kinesis-firehose-require-encryption",
        "SIEM stream encrypted with an AWS-owned key",
        _firehose_aws_owned_key,
    ),
    Mutation(
        "firehose-backup-unencrypted",
        "aws-kinesis-firehose-require-encryption",
        "SIEM backup objects written without KMS",
        _firehose_backup_unencrypted,
    ),
    Mutation(
        "firehose-backup-disabled",
        "aws-kinesis-firehose-require-delivery-backup",
        "SIEM stream keeps no backup of its records",
        _firehose_backup_disabled,
    ),
    Mutation(
        "firehose-errors-unlogged",
        "aws-kinesis-firehose-require-delivery-backup",
        "SIEM stream delivery errors not logged",
        _firehose_errors_unlogged,
    ),
    Mutation(
        "sns-aws-managed-key",
        "aws-sns-topic-require-kms",
        "security topic encrypted with alias/aws/sns",
        _topic_aws_managed_key,
    ),
    Mutation(
        "sns-plaintext-publish",
        "aws-sns-topic-require-tls-only-policy",
        "security topic accepts publishing without TLS",
        _topic_plaintext,
    ),
    Mutation(
        "sns-public-publish",
        "aws-sns-topic-policy-no-public-allow",
        "anyone may publish to the operations topic",
        _topic_public_publish,
    ),
    Mutation(
        "cloudwatch-alarm-silent",
        "aws-cloudwatch-metric-alarm-require-action",
        "root-account-use alarm notifies nobody",
        _alarm_silent,
    ),
    Mutation(
        "cloudwatch-alarm-actions-disabled",
        "aws-cloudwatch-metric-alarm-require-action",
        "dead-letter queue alarm with its actions disabled",
        _alarm_actions_disabled,
    ),
]


# --- focused tests ------------------------------------------------------------------------------


def test_every_phi_bucket_of_the_stack_is_examined(snapshot: Snapshot, judge: Judge) -> None:
    # A data selector without resources.ARN records every bucket, the DR replica included.
    selector = _imaging(snapshot)
    selector["fieldSelectors"].remove(_field(selector, "resources.ARN"))
    assert not judge(snapshot, PHI).findings
    # Audit buckets are not PHI: the selector may leave them out.
    _field(selector, "resources.type")["equals"] = ["AWS::S3::AccessPoint"]
    assert _findings(judge(snapshot, PHI)) == {
        "imaging-archive",
        "imaging-derived",
        "imaging-inbox",
        "imaging-quarantine",
        "dr-replica",
    }


def test_reads_and_writes_may_come_from_two_selectors(snapshot: Snapshot, judge: Judge) -> None:
    selector = _imaging(snapshot)
    selector["fieldSelectors"].remove(_field(selector, "resources.ARN"))
    reads = {**selector, "fieldSelectors": [*selector["fieldSelectors"]]}
    reads["fieldSelectors"].append({"field": "readOnly", "equals": ["true"]})
    selector["fieldSelectors"].append({"field": "readOnly", "equals": ["false"]})
    _trail(snapshot)["advancedEventSelectors"].append(reads)
    assert not judge(snapshot, PHI).findings


def test_basic_event_selectors_are_understood(snapshot: Snapshot, judge: Judge) -> None:
    trail = _trail(snapshot)
    del trail["advancedEventSelectors"]
    trail["eventSelectors"] = [
        {
            "readWriteType": "All",
            "includeManagementEvents": True,
            "dataResources": [{"type": "AWS::S3::Object", "values": ["arn:aws:s3"]}],
        }
    ]
    assert not judge(snapshot, PHI, "aws-cloudtrail-trail-require-management-events").findings
    trail["eventSelectors"][0]["readWriteType"] = "WriteOnly"
    report = judge(snapshot, PHI, "aws-cloudtrail-trail-require-management-events")
    assert "imaging-archive" in _findings(report)
    assert "audit-trail" in _findings(report)


def test_trail_without_selectors_records_every_management_event(
    snapshot: Snapshot, judge: Judge
) -> None:
    del _trail(snapshot)["advancedEventSelectors"]
    assert not judge(snapshot, "aws-cloudtrail-trail-require-management-events").findings


def test_firehose_error_group_alone_is_exempt_from_shipping(
    snapshot: Snapshot, judge: Judge
) -> None:
    # Shipping the stream's own error log through the stream would loop: it is exempt...
    assert not judge(snapshot, SUBSCRIBED).findings
    # ...because the stream writes its errors there: any other unshipped group is refused.
    config = snapshot.props(FIREHOSE, "audit-siem")["extendedS3Configuration"]
    config["cloudwatchLoggingOptions"]["logGroupName"] = "/aws/kinesisfirehose/other"
    config["s3BackupConfiguration"]["cloudwatchLoggingOptions"]["logGroupName"] = (
        "/aws/kinesisfirehose/other"
    )
    assert _findings(judge(snapshot, SUBSCRIBED)) == {"audit-siem-errors"}


def test_siem_destinations_outside_the_stack_are_configurable(
    snapshot: Snapshot, judge: Judge
) -> None:
    _gateway_shipped_elsewhere(snapshot)
    assert _findings(judge(snapshot, SUBSCRIBED)) == {"edge-gateway-logs"}
    config = {
        SUBSCRIBED: {
            "siemDestinationArns": [
                "arn:aws:firehose:us-east-1:999999999999:deliverystream/elsewhere"
            ]
        }
    }
    assert not judge(snapshot, SUBSCRIBED, config=config).findings


def test_retention_minimum_is_configurable_and_never_expire_passes(
    plan_json: dict[str, Any], snapshot: Snapshot, judge: Judge
) -> None:
    config = {RETENTION: {"minimumRetentionDays": 3653}}
    report = judge(plan_json, RETENTION, config=config)
    assert len(report.findings) == 7
    assert all("at least 3653" in f.message for f in report.findings)
    del snapshot.props(LOG_GROUP, "network-flow-logs")["retentionInDays"]
    snapshot.props(LOG_GROUP, "edge-gateway-logs")["retentionInDays"] = 0.0
    assert not judge(snapshot, RETENTION).findings


def test_every_subscription_filter_must_reach_the_siem(snapshot: Snapshot, judge: Judge) -> None:
    # A second filter to the SIEM stream (or to a configured SIEM destination) is fine.
    snapshot.add(
        SUBSCRIPTION,
        "audit-ship-cloudtrail-errors",
        {
            "name": "errors",
            "logGroup": "/pacs-dev/cloudtrail",
            "destinationArn": SIEM_STREAM,
            "filterPattern": '{ $.errorCode = "*" }',
        },
    )
    assert not judge(snapshot, SUBSCRIBED).findings
    snapshot.props(SUBSCRIPTION, "audit-ship-cloudtrail-errors")["destinationArn"] = FOREIGN_STREAM
    assert _findings(judge(snapshot, SUBSCRIBED)) == {"audit-trail-logs"}
    config = {SUBSCRIBED: {"siemDestinationArns": [FOREIGN_STREAM]}}
    assert not judge(snapshot, SUBSCRIBED, config=config).findings


def test_security_alarm_patterns_may_be_written_differently(
    snapshot: Snapshot, judge: Judge
) -> None:
    # Quotes and spacing do not matter; more signals in a filter or extra events do not either.
    props = snapshot.props(METRIC_FILTER, "audit-cloudtrail-changes-filter")
    props["pattern"] = (
        '{($.eventName="CreateTrail")||($.eventName="UpdateTrail")||($.eventName="DeleteTrail")'
        '||($.eventName="StartLogging")||($.eventName="StopLogging")'
        '||($.eventName="PutEventSelectors")||($.eventName="PutInsightSelectors")}'
    )
    assert not judge(snapshot, SECURITY_ALARMS).findings
    # A longer event name is another event.
    props["pattern"] = props["pattern"].replace('"StopLogging"', '"StopLoggingNever"')
    assert judge(snapshot, SECURITY_ALARMS).blocking


def test_security_signals_are_configurable(snapshot: Snapshot, judge: Judge) -> None:
    _root_alarm_deleted(snapshot)
    config = {
        SECURITY_ALARMS: {
            "securitySignals": [{"name": "trail", "tokens": ["$.eventName = StopLogging"]}]
        }
    }
    assert not judge(snapshot, SECURITY_ALARMS, config=config).findings


def test_trail_bucket_object_lock_is_read_from_the_bucket(snapshot: Snapshot, judge: Judge) -> None:
    snapshot.props(BUCKET, "audit-audit-trail")["objectLockEnabled"] = False
    assert _findings(judge(snapshot, LOCKED_BUCKET)) == {"audit-trail"}
