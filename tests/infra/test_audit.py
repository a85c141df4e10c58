"""Audit: the trail, every log group encrypted, retained and shipped, Firehose, alarms, toggles."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.components.audit import (
    BREAK_GLASS_ALARM,
    DLQ_DELETED_ALARM,
    SECURITY_ALARMS,
    SiemStream,
    firehose_request,
)
from infra.config import ConfigError, parse_settings
from infra.iam_documents import Account, security_auditor_trail_statements
from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun, Registration
from tests.conftest import one, policy_of, statement

PREFIX = "pacs-dev"
REGION = "us-east-1"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SUBSCRIPTION = "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter"
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
STREAM = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
RETENTION_DAYS = 2192
STREAM_ARN = f"arn:aws:firehose:{REGION}:{MOCK_ACCOUNT_ID}:deliverystream/{PREFIX}-siem"
TRAIL_ARN = f"arn:aws:cloudtrail:{REGION}:{MOCK_ACCOUNT_ID}:trail/{PREFIX}-trail"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{MOCK_ACCOUNT_ID}:{PREFIX}-security"
BREAK_GLASS_ROLE = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{PREFIX}-break-glass"
# Firehose's own delivery-error group is watched by an alarm, not shipped: shipping the errors of
# the stream through that same stream would loop whenever it fails.
NOT_SHIPPED = {f"/aws/kinesisfirehose/{PREFIX}-siem"}
ENDPOINT = "https://hec.siem.example.org/services/collector/raw"
# The SIEM's readers: one in this account, one in a security-tooling account.
SIEM_READERS = [
    f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/splunk-s3-reader",
    "arn:aws:iam::210987654321:role/siem/sqs-s3-input",
]
AUDITOR_ROLE = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{PREFIX}-security-auditor"


def bucket(name: str) -> str:
    return f"{PREFIX}-{MOCK_ACCOUNT_ID}-{REGION}-{name}"


def logs_key_arn(run: ProgramRun) -> str:
    return (
        f"arn:aws:kms:{REGION}:{MOCK_ACCOUNT_ID}:key/{one(run, 'aws:kms/key:Key', 'keys-logs').id}"
    )


@pytest.fixture(scope="module")
def http_plan(plan_with: Callable[..., ProgramRun]) -> ProgramRun:
    return plan_with(siemDestination="http", siemEndpointUrl=ENDPOINT)


@pytest.fixture(scope="module")
def readers_plan(plan_with: Callable[..., ProgramRun]) -> ProgramRun:
    return plan_with(siemReaderArns=SIEM_READERS)


@pytest.fixture(scope="module")
def splunk_plan(plan_with: Callable[..., ProgramRun]) -> ProgramRun:
    return plan_with(siemDestination="splunk", siemEndpointUrl=ENDPOINT)


# ------------------------------------------------------------------------------------------ trail


def test_trail_is_multi_region_validated_encrypted_and_in_cloudwatch(plan: ProgramRun) -> None:
    trail = one(plan, "aws:cloudtrail/trail:Trail", "audit-trail").inputs
    assert trail["isMultiRegionTrail"] is True
    assert trail["includeGlobalServiceEvents"] is True
    assert trail["enableLogFileValidation"] is True
    assert trail["enableLogging"] is True
    assert trail["kmsKeyId"] == logs_key_arn(plan)
    assert trail["s3BucketName"] == bucket("audit-trail")
    assert trail["cloudWatchLogsGroupArn"] == (
        f"arn:aws:logs:{REGION}:{MOCK_ACCOUNT_ID}:log-group:/{PREFIX}/cloudtrail:*"
    )
    assert trail["cloudWatchLogsRoleArn"].endswith(f":role/{PREFIX}-cloudtrail-logs")


def selector(trail: Registration, name: str) -> dict[str, dict[str, list[str]]]:
    found = [s for s in trail.inputs["advancedEventSelectors"] if s["name"] == name]
    assert len(found) == 1, f"audit-trail: no selector {name!r}"
    return {
        f["field"]: {k: v for k, v in f.items() if k != "field"} for f in found[0]["fieldSelectors"]
    }


def test_trail_records_reads_and_writes_of_the_imaging_buckets_and_the_replica(
    plan: ProgramRun,
) -> None:
    s3 = selector(
        one(plan, "aws:cloudtrail/trail:Trail", "audit-trail"), "Imaging objects read and written"
    )
    assert s3["eventCategory"] == {"equals": ["Data"]}
    assert s3["resources.type"] == {"equals": ["AWS::S3::Object"]}
    replica = f"arn:aws:s3:::{PREFIX}-{MOCK_ACCOUNT_ID}-us-west-2-replica/"
    assert s3["resources.ARN"] == {
        "startsWiths": sorted(
            [
                *(
                    f"arn:aws:s3:::{bucket(p)}/"
                    for p in ("inbox", "archive", "quarantine", "derived")
                ),
                replica,
            ]
        )
    }
    assert "readOnly" not in s3, "both reads (who viewed a study) and writes must be recorded"


def test_trail_records_the_stacks_function_invocations_and_management_events(
    plan: ProgramRun,
) -> None:
    trail = one(plan, "aws:cloudtrail/trail:Trail", "audit-trail")
    functions = selector(trail, "Stack function invocations")
    assert functions["resources.type"] == {"equals": ["AWS::Lambda::Function"]}
    assert functions["resources.ARN"]["equals"] == [
        f"arn:aws:lambda:{REGION}:{MOCK_ACCOUNT_ID}:function:{PREFIX}-{f}"
        for f in ("ingest", "verify")
    ]
    assert selector(trail, "Management events") == {"eventCategory": {"equals": ["Management"]}}


def test_trail_bucket_is_compliance_locked_for_the_log_retention(plan: ProgramRun) -> None:
    lock = one(
        plan,
        "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
        "audit-audit-trail-object-lock",
    ).inputs
    assert lock["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": RETENTION_DAYS}
    assert one(plan, "aws:s3/bucket:Bucket", "audit-audit-trail").protect


def test_trail_bucket_admits_only_this_trail(plan: ProgramRun) -> None:
    document = policy_of(one(plan, "aws:s3/bucketPolicy:BucketPolicy", "audit-audit-trail-policy"))
    acl = statement(document, "AWSCloudTrailAclCheck")
    write = statement(document, "AWSCloudTrailWrite")
    for s in (acl, write):
        assert s["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        assert s["Condition"]["StringEquals"]["aws:SourceArn"] == TRAIL_ARN
    assert acl["Action"] == "s3:GetBucketAcl"
    assert write["Action"] == "s3:PutObject"
    assert write["Resource"] == f"arn:aws:s3:::{bucket('audit-trail')}/AWSLogs/{MOCK_ACCOUNT_ID}/*"
    assert write["Condition"]["StringEquals"]["s3:x-amz-acl"] == "bucket-owner-full-control"
    # The kit's denies still come first: TLS only, the logs key only.
    statement(document, "DenyInsecureTransport")
    statement(document, "DenyKmsKeysOtherThanTheBucketKey")


def test_trail_bucket_notifies_the_siem_queue(plan: ProgramRun) -> None:
    notification = one(
        plan, "aws:s3/bucketNotification:BucketNotification", "audit-audit-trail-notification"
    ).inputs
    queue_arn = f"arn:aws:sqs:{REGION}:{MOCK_ACCOUNT_ID}:{PREFIX}-siem-objects"
    assert notification["queues"] == [{"queueArn": queue_arn, "events": ["s3:ObjectCreated:*"]}]
    queue = one(plan, "aws:sqs/queue:Queue", "audit-siem-objects").inputs
    assert queue["kmsMasterKeyId"] == logs_key_arn(plan)
    document = policy_of(one(plan, "aws:sqs/queuePolicy:QueuePolicy", "audit-siem-objects-policy"))
    sources = statement(document, "S3EventNotificationsFromTheStackBucketsOnly")["Condition"]
    assert f"arn:aws:s3:::{bucket('audit-trail')}" in sources["ArnLike"]["aws:SourceArn"]


# ------------------------------------------------------------------------------------ log groups


def test_every_log_group_is_encrypted_retained_and_shipped_to_the_siem(plan: ProgramRun) -> None:
    key = logs_key_arn(plan)
    shipped = {f.inputs["logGroup"]: f.inputs for f in plan.of_type(SUBSCRIPTION)}
    groups = plan.of_type(LOG_GROUP)
    assert len(groups) >= 7, "functions, gateway, insights, flow logs, trail, Firehose errors"
    for group in groups:
        name = group.inputs["name"]
        assert group.inputs["kmsKeyId"] == key, f"{name}: not encrypted with the logs key"
        assert group.inputs["retentionInDays"] >= RETENTION_DAYS, f"{name}: retention"
        assert group.inputs["deletionProtectionEnabled"] is True, f"{name}: deletable"
        if name in NOT_SHIPPED:
            assert name not in shipped, f"{name}: would ship its own errors through itself"
            continue
        assert name in shipped, f"{name}: no subscription filter to the SIEM"
        assert shipped[name]["destinationArn"] == STREAM_ARN, f"{name}: not to the SIEM stream"
        assert shipped[name]["filterPattern"] == "", f"{name}: must forward every event"
        assert shipped[name]["roleArn"].endswith(f":role/{PREFIX}-log-shipping")


def test_the_security_log_groups_are_all_there(plan: ProgramRun) -> None:
    names = {g.inputs["name"] for g in plan.of_type(LOG_GROUP)}
    assert {
        f"/aws/lambda/{PREFIX}-ingest",
        f"/aws/lambda/{PREFIX}-verify",
        f"/{PREFIX}/ecs/gateway",
        f"/aws/ecs/containerinsights/{PREFIX}-edge/performance",
        f"/{PREFIX}/vpc/flow-logs",
        f"/{PREFIX}/cloudtrail",
    } <= names


def test_firehose_errors_are_watched_instead(plan: ProgramRun) -> None:
    errors = one(plan, METRIC_FILTER, "audit-siem-delivery-errors-filter").inputs
    assert errors["logGroupName"] == f"/aws/kinesisfirehose/{PREFIX}-siem"
    alarm = one(plan, ALARM, "audit-siem-delivery-errors-alarm").inputs
    assert alarm["alarmActions"] == [TOPIC_ARN]


def test_log_shipping_role_may_only_put_into_the_stream(plan: ProgramRun) -> None:
    document = policy_of(one(plan, "aws:iam/rolePolicy:RolePolicy", "audit-log-shipping-policy"))
    assert document["Statement"] == [
        {
            "Sid": "ShipSubscribedLogEventsToTheSiemStream",
            "Effect": "Allow",
            "Action": ["firehose:PutRecord", "firehose:PutRecordBatch"],
            "Resource": STREAM_ARN,
        }
    ]
    trust = policy_of(one(plan, "aws:iam/role:Role", "audit-log-shipping-role"), "assumeRolePolicy")
    assert trust["Statement"][0]["Principal"] == {"Service": "logs.amazonaws.com"}


# -------------------------------------------------------------------------------------- Firehose


def test_stream_is_encrypted_with_the_logs_key(plan: ProgramRun) -> None:
    stream = one(plan, STREAM, "audit-siem").inputs
    assert stream["serverSideEncryption"] == {
        "enabled": True,
        "keyType": "CUSTOMER_MANAGED_CMK",
        "keyArn": logs_key_arn(plan),
    }


def test_default_destination_is_the_pull_bucket_with_every_record_backed_up(
    plan: ProgramRun,
) -> None:
    stream = one(plan, STREAM, "audit-siem").inputs
    assert stream["destination"] == "extended_s3"
    s3 = stream["extendedS3Configuration"]
    assert s3["bucketArn"] == f"arn:aws:s3:::{bucket('siem')}"
    assert s3["kmsKeyArn"] == logs_key_arn(plan)
    assert s3["s3BackupMode"] == "Enabled"
    assert s3["s3BackupConfiguration"]["bucketArn"] == f"arn:aws:s3:::{bucket('siem-backup')}"
    assert s3["cloudwatchLoggingOptions"]["enabled"] is True
    secrets = {sec.inputs["name"] for sec in plan.of_type("aws:secretsmanager/secret:Secret")}
    assert not {n for n in secrets if "/siem/" in n}, "the s3 destination needs no SIEM secret"


def siem_secret(run: ProgramRun) -> Registration:
    found = [
        s for s in run.of_type("aws:secretsmanager/secret:Secret") if "/siem/" in s.inputs["name"]
    ]
    assert len(found) == 1, "expected one SIEM secret"
    return found[0]


def test_http_destination_posts_to_the_url_with_the_secret_and_backs_up_failures(
    http_plan: ProgramRun,
) -> None:
    stream = one(http_plan, STREAM, "audit-siem").inputs
    assert stream["destination"] == "http_endpoint"
    http = stream["httpEndpointConfiguration"]
    assert http["url"] == ENDPOINT
    assert http["s3BackupMode"] == "FailedDataOnly"
    assert http["retryDuration"] == 7200
    assert http["s3Configuration"]["bucketArn"] == f"arn:aws:s3:::{bucket('siem-backup')}"
    assert http["s3Configuration"]["kmsKeyArn"] == logs_key_arn(http_plan)
    secret = siem_secret(http_plan)
    assert secret.inputs["name"] == f"{PREFIX}/siem/access-key"
    assert secret.inputs["kmsKeyId"] == logs_key_arn(http_plan)
    assert http["secretsManagerConfiguration"]["enabled"] is True
    assert http["secretsManagerConfiguration"]["secretArn"] == secret.id
    assert "accessKey" not in http, "the key lives in Secrets Manager, never in the stack"
    buckets = {b.name for b in http_plan.of_type("aws:s3/bucket:Bucket")}
    assert "audit-siem" not in buckets, "no pull bucket when the stream pushes"


def test_splunk_destination_uses_hec_with_the_secret_and_backs_up_failures(
    splunk_plan: ProgramRun,
) -> None:
    stream = one(splunk_plan, STREAM, "audit-siem").inputs
    assert stream["destination"] == "splunk"
    splunk = stream["splunkConfiguration"]
    assert splunk["hecEndpoint"] == ENDPOINT
    assert splunk["s3BackupMode"] == "FailedEventsOnly"
    assert splunk["s3Configuration"]["bucketArn"] == f"arn:aws:s3:::{bucket('siem-backup')}"
    assert "hecToken" not in splunk
    assert splunk["secretsManagerConfiguration"]["secretArn"] == siem_secret(splunk_plan).id


def test_delivery_role_reads_the_secret_only_with_a_push_destination(
    plan: ProgramRun, http_plan: ProgramRun
) -> None:
    sids = {
        s["Sid"]
        for s in policy_of(
            one(plan, "aws:iam/rolePolicy:RolePolicy", "audit-siem-delivery-policy")
        )["Statement"]
    }
    assert "ReadTheSiemAccessKey" not in sids
    document = policy_of(
        one(http_plan, "aws:iam/rolePolicy:RolePolicy", "audit-siem-delivery-policy")
    )
    assert statement(document, "ReadTheSiemAccessKey")["Resource"] == siem_secret(http_plan).id
    writes = statement(document, "WriteDeliveredAndFailedRecords")
    assert writes["Resource"] == [f"arn:aws:s3:::{bucket('siem-backup')}/*"]
    assert "s3:DeleteObject" not in writes["Action"]


def leaves(value: Any) -> set[Any]:
    """Every scalar of a nested structure (numbers as floats, as the mock runtime hands them)."""
    if isinstance(value, dict):
        return set().union(*(leaves(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(leaves(v) for v in value)) if value else set()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {float(value)}
    return {value}


@pytest.mark.parametrize("destination", ["s3", "http", "splunk"])
def test_the_api_request_the_moto_test_uses_matches_the_declared_stream(
    destination: str, plan: ProgramRun, http_plan: ProgramRun, splunk_plan: ProgramRun
) -> None:
    run = {"s3": plan, "http": http_plan, "splunk": splunk_plan}[destination]
    declared = one(run, STREAM, "audit-siem").inputs
    secret = siem_secret(run).id if destination != "s3" else None
    request = firehose_request(
        SiemStream(
            name=f"{PREFIX}-siem",
            destination=destination,  # type: ignore[arg-type]
            role_arn=f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{PREFIX}-siem-delivery",
            key_arn=logs_key_arn(run),
            backup_bucket_arn=f"arn:aws:s3:::{bucket('siem-backup')}",
            error_log_group=f"/aws/kinesisfirehose/{PREFIX}-siem",
            endpoint_url=ENDPOINT if destination != "s3" else None,
            secret_arn=secret,
            pull_bucket_arn=f"arn:aws:s3:::{bucket('siem')}" if destination == "s3" else None,
        )
    )
    # Only the enum spellings differ: the API's stream type, Pulumi's destination name.
    assert leaves(request) - {"DirectPut"} == leaves(declared) - {declared["destination"]}


# ---------------------------------------------------------------------------------------- alarms


@pytest.mark.parametrize("alarm", sorted([*SECURITY_ALARMS, BREAK_GLASS_ALARM, DLQ_DELETED_ALARM]))
def test_each_security_event_has_a_filter_on_the_trail_and_an_alarm(
    plan: ProgramRun, alarm: str
) -> None:
    metric = one(plan, METRIC_FILTER, f"audit-{alarm}-filter").inputs
    assert metric["logGroupName"] == f"/{PREFIX}/cloudtrail"
    assert metric["metricTransformation"]["name"] == alarm
    raised = one(plan, ALARM, f"audit-{alarm}-alarm").inputs
    assert raised["metricName"] == alarm
    assert raised["namespace"] == metric["metricTransformation"]["namespace"]
    assert raised["threshold"] == 1
    assert raised["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert raised["alarmActions"] == [TOPIC_ARN]


@pytest.mark.parametrize(
    ("alarm", "fragments"),
    [
        ("root-account-use", ['"Root"']),
        ("unauthorized-api-calls", ["UnauthorizedOperation", "AccessDenied"]),
        ("iam-policy-changes", ["PutRolePolicy", "AttachRolePolicy", "PutRolePermissionsBoundary"]),
        ("kms-key-disable-or-deletion", ["DisableKey", "ScheduleKeyDeletion"]),
        ("cloudtrail-changes", ["StopLogging", "DeleteTrail", "UpdateTrail"]),
        (
            "s3-policy-or-object-lock-changes",
            ["PutBucketPolicy", "PutObjectLockConfiguration", "PutObjectRetention"],
        ),
        ("console-login-without-mfa", ["ConsoleLogin", "MFAUsed"]),
        (BREAK_GLASS_ALARM, ["AssumeRoleWithSAML", BREAK_GLASS_ROLE]),
    ],
)
def test_alarm_patterns_match_their_events(
    plan: ProgramRun, alarm: str, fragments: list[str]
) -> None:
    pattern = one(plan, METRIC_FILTER, f"audit-{alarm}-filter").inputs["pattern"]
    for fragment in fragments:
        assert fragment in pattern, f"{alarm}: pattern lacks {fragment}"


def test_break_glass_rule_pages_the_security_topic(plan: ProgramRun) -> None:
    rule = one(plan, "aws:cloudwatch/eventRule:EventRule", "audit-break-glass-rule").inputs
    pattern = json.loads(rule["eventPattern"])
    assert pattern["detail"]["requestParameters"]["roleArn"] == [BREAK_GLASS_ROLE]
    assert {"AssumeRole", "AssumeRoleWithSAML"} <= set(pattern["detail"]["eventName"])
    target = one(plan, "aws:cloudwatch/eventTarget:EventTarget", "audit-break-glass-target")
    assert target.inputs["arn"] == TOPIC_ARN
    document = policy_of(one(plan, "aws:sns/topicPolicy:TopicPolicy", "audit-security-policy"))
    rules = statement(document, "TheStacksSecurityRulesPublish")["Condition"]["ArnLike"]
    assert rules["aws:SourceArn"] == [
        f"arn:aws:events:{REGION}:{MOCK_ACCOUNT_ID}:rule/{PREFIX}-break-glass-assumed"
    ]


def test_security_topic_is_encrypted_and_the_key_admits_its_publishers(plan: ProgramRun) -> None:
    topic = one(plan, "aws:sns/topic:Topic", "audit-security").inputs
    assert topic["kmsMasterKeyId"] == logs_key_arn(plan)
    key = policy_of(one(plan, "aws:kms/key:Key", "keys-logs"))
    statement(key, "CloudWatchAlarmsPublishToEncryptedTopics")
    assert statement(key, "EventBridgeRulesPublishToEncryptedTopics")["Principal"] == {
        "Service": "events.amazonaws.com"
    }


def test_dead_letter_queue_alarm_stays_with_ingest_and_is_not_duplicated(plan: ProgramRun) -> None:
    dlq = [a for a in plan.of_type(ALARM) if a.inputs["name"] == f"{PREFIX}-dlq-not-empty"]
    assert len(dlq) == 1


def test_logs_key_lets_the_delivery_role_use_it_only_through_services(plan: ProgramRun) -> None:
    key = policy_of(one(plan, "aws:kms/key:Key", "keys-logs"))
    use = statement(key, "KeyUseByStackRoles")["Condition"]
    assert use["ArnEquals"]["aws:PrincipalArn"] == [
        f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{PREFIX}-siem-delivery"
    ]
    assert use["StringEquals"]["kms:ViaService"] == [
        f"{s}.{REGION}.amazonaws.com" for s in ("firehose", "logs", "s3", "secretsmanager")
    ]
    deploy = statement(key, "KeyAdministratorsDeployEncryptedResourcesThroughServices")
    assert deploy["Condition"]["StringEquals"]["kms:ViaService"] == [
        f"{s}.{REGION}.amazonaws.com" for s in ("firehose", "secretsmanager")
    ]


def test_audit_roles_carry_the_permissions_boundary(plan: ProgramRun) -> None:
    roles = [r for r in plan.of_type("aws:iam/role:Role") if r.name.startswith("audit-")]
    assert len(roles) == 3
    for role in roles:
        assert role.inputs.get("permissionsBoundary"), f"{role.name}: no permissions boundary"


# --------------------------------------------------------------------------------------- toggles


def test_account_wide_services_are_off_by_default(plan: ProgramRun) -> None:
    assert not plan.of_type("aws:guardduty/detector:Detector")
    assert not plan.of_type("aws:securityhub/account:Account")


def test_guardduty_toggle_adds_s3_protection_and_pages_high_findings(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(enableGuardDuty=True)
    assert one(run, "aws:guardduty/detector:Detector", "audit-guardduty").inputs["enable"] is True
    feature = one(run, "aws:guardduty/detectorFeature:DetectorFeature", "audit-guardduty-s3")
    assert (feature.inputs["name"], feature.inputs["status"]) == ("S3_DATA_EVENTS", "ENABLED")
    rule = one(run, "aws:cloudwatch/eventRule:EventRule", "audit-guardduty-rule").inputs
    assert json.loads(rule["eventPattern"])["source"] == ["aws.guardduty"]
    target = one(run, "aws:cloudwatch/eventTarget:EventTarget", "audit-guardduty-target")
    assert target.inputs["arn"] == TOPIC_ARN


def test_security_hub_toggle_subscribes_foundational_best_practices(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(enableSecurityHub=True)
    hub = one(run, "aws:securityhub/account:Account", "audit-security-hub").inputs
    assert hub["enableDefaultStandards"] is False
    standard = one(
        run,
        "aws:securityhub/standardsSubscription:StandardsSubscription",
        "audit-security-hub-fsbp",
    ).inputs
    assert standard["standardsArn"].endswith(
        "::standards/aws-foundational-security-best-practices/v/1.0.0"
    )


def test_outputs_name_the_trail_stream_and_topic(plan: ProgramRun) -> None:
    audit = plan.outputs["audit"]
    assert audit["trailArn"] == TRAIL_ARN
    assert audit["siemStreamArn"] == STREAM_ARN
    assert audit["securityTopicArn"] == TOPIC_ARN
    assert audit["siemBackupBucket"] == bucket("siem-backup")


# ------------------------------------------------------------------------- SIEM processing (S2)


def processing(run: ProgramRun, block: str) -> dict[str, Any]:
    config: dict[str, Any] = one(run, STREAM, "audit-siem").inputs[block]
    return config.get("processingConfiguration", {})


def test_http_destination_decompresses_cloudwatch_logs_and_keeps_the_envelope(
    http_plan: ProgramRun,
) -> None:
    # CloudWatch Logs sends gzip: without Decompression the endpoint would receive binary.
    assert processing(http_plan, "httpEndpointConfiguration") == {
        "enabled": True,
        "processors": [
            {
                "type": "Decompression",
                "parameters": [{"parameterName": "CompressionFormat", "parameterValue": "GZIP"}],
            }
        ],
    }


def test_splunk_destination_decompresses_and_extracts_the_messages(
    splunk_plan: ProgramRun,
) -> None:
    processors = processing(splunk_plan, "splunkConfiguration")["processors"]
    assert [p["type"] for p in processors] == ["Decompression", "CloudWatchLogProcessing"]
    assert processors[1]["parameters"] == [
        {"parameterName": "DataMessageExtraction", "parameterValue": "true"}
    ]


def test_the_pull_bucket_keeps_cloudwatch_logs_records_as_delivered(plan: ProgramRun) -> None:
    assert processing(plan, "extendedS3Configuration") == {}


# ----------------------------------------------------------------------- who reads audit data (S1)


def test_siem_readers_decrypt_through_s3_and_sqs_only(readers_plan: ProgramRun) -> None:
    key = policy_of(one(readers_plan, "aws:kms/key:Key", "keys-logs"))
    readers = statement(key, "SiemReadersDecryptThroughS3AndSqsOnly")
    assert readers["Action"] == "kms:Decrypt", "readers must never encrypt or generate keys"
    assert readers["Principal"] == {
        "AWS": [f"arn:aws:iam::{MOCK_ACCOUNT_ID}:root", "arn:aws:iam::210987654321:root"]
    }
    assert readers["Condition"]["ArnEquals"]["aws:PrincipalArn"] == sorted(SIEM_READERS)
    assert readers["Condition"]["StringEquals"]["kms:ViaService"] == [
        f"s3.{REGION}.amazonaws.com",
        f"sqs.{REGION}.amazonaws.com",
    ]


@pytest.mark.parametrize("purpose", ["audit-trail", "siem"])
def test_siem_readers_read_the_announced_buckets(readers_plan: ProgramRun, purpose: str) -> None:
    document = policy_of(
        one(readers_plan, "aws:s3/bucketPolicy:BucketPolicy", f"audit-{purpose}-policy")
    )
    read = statement(document, "SiemReadersReadTheObjects")
    assert read["Action"] == ["s3:GetObject"]
    assert read["Resource"] == f"arn:aws:s3:::{bucket(purpose)}/*"
    assert read["Condition"]["ArnEquals"]["aws:PrincipalArn"] == sorted(SIEM_READERS)
    find = statement(document, "SiemReadersFindTheBucket")
    assert find["Resource"] == f"arn:aws:s3:::{bucket(purpose)}"


def test_siem_readers_consume_the_objects_queue(readers_plan: ProgramRun) -> None:
    document = policy_of(
        one(readers_plan, "aws:sqs/queuePolicy:QueuePolicy", "audit-siem-objects-policy")
    )
    consume = statement(document, "SiemReadersConsumeObjectNotices")
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= set(consume["Action"])
    assert "sqs:SendMessage" not in consume["Action"]
    assert consume["Resource"] == f"arn:aws:sqs:{REGION}:{MOCK_ACCOUNT_ID}:{PREFIX}-siem-objects"
    assert consume["Condition"]["ArnEquals"]["aws:PrincipalArn"] == sorted(SIEM_READERS)


def test_without_siem_readers_no_policy_names_any(plan: ProgramRun) -> None:
    key = policy_of(one(plan, "aws:kms/key:Key", "keys-logs"))
    assert not [s for s in key["Statement"] if s.get("Sid", "").startswith("SiemReaders")]
    queue = policy_of(one(plan, "aws:sqs/queuePolicy:QueuePolicy", "audit-siem-objects-policy"))
    assert not [s for s in queue["Statement"] if s.get("Sid", "").startswith("SiemReaders")]


def test_security_auditor_may_decrypt_cloudtrails_files_only_through_s3(plan: ProgramRun) -> None:
    # The dev stack has a federation source, so the auditor role exists.
    key = policy_of(one(plan, "aws:kms/key:Key", "keys-logs"))
    auditor = statement(key, "SecurityAuditorDecryptsTrailFilesThroughS3Only")
    assert auditor["Action"] == "kms:Decrypt"
    assert auditor["Condition"]["ArnEquals"]["aws:PrincipalArn"] == AUDITOR_ROLE
    assert auditor["Condition"]["StringEquals"]["kms:ViaService"] == f"s3.{REGION}.amazonaws.com"
    # CloudTrail's encryption context: log and digest files, not the SIEM's or Firehose's objects.
    assert auditor["Condition"]["Null"] == {"kms:EncryptionContext:aws:cloudtrail:arn": "false"}


def test_no_auditor_grant_without_a_federation_source(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(identityTrustedPrincipalArns=[])
    key = policy_of(one(run, "aws:kms/key:Key", "keys-logs"))
    sids = {s.get("Sid") for s in key["Statement"]}
    assert "SecurityAuditorDecryptsTrailFilesThroughS3Only" not in sids


def test_auditor_trail_statements_read_only_the_trails_files() -> None:
    account = Account(MOCK_ACCOUNT_ID, "aws", REGION)
    key = f"arn:aws:kms:{REGION}:{MOCK_ACCOUNT_ID}:key/logs"
    statements = {
        s["Sid"]: s for s in security_auditor_trail_statements(account, bucket("audit-trail"), key)
    }
    read = statements["ReadAndValidateTheTrailsFiles"]
    assert read["Action"] == ["s3:GetObject"]
    assert read["Resource"] == f"arn:aws:s3:::{bucket('audit-trail')}/AWSLogs/{MOCK_ACCOUNT_ID}/*"
    decrypt = statements["DecryptTheTrailsFilesThroughS3Only"]
    assert decrypt["Resource"] == key
    assert decrypt["Condition"]["Null"] == {"kms:EncryptionContext:aws:cloudtrail:arn": "false"}
    assert statements["FetchCloudTrailsPublicKeys"]["Action"] == ["cloudtrail:ListPublicKeys"]


@pytest.mark.parametrize(
    "value",
    [
        ["arn:aws:iam::123456789012:root"],
        ["arn:aws:iam::123456789012:user/splunk"],
        ["arn:aws:s3:::bucket"],
        [SIEM_READERS[0], SIEM_READERS[0]],
        "not a list",
    ],
)
def test_siem_readers_must_be_distinct_role_arns(value: object) -> None:
    with pytest.raises(ConfigError, match="cloud-pacs:siemReaderArns"):
        parse_settings({"siemReaderArns": value}, region=REGION, stack="test")


def test_siem_readers_are_parsed_sorted() -> None:
    settings = parse_settings(
        {"siemReaderArns": list(reversed(SIEM_READERS))}, region=REGION, stack="test"
    )
    assert settings.audit.siem_reader_arns == tuple(sorted(SIEM_READERS))


# ---------------------------------------------------------------------- DLQ deletions by a person


def test_trail_records_the_dead_letter_queues_message_events_only(plan: ProgramRun) -> None:
    trail = one(plan, "aws:cloudtrail/trail:Trail", "audit-trail")
    dlq = selector(trail, "Ingest dead-letter queue message events")
    assert dlq["resources.type"] == {"equals": ["AWS::SQS::Queue"]}
    queue = one(plan, "aws:sqs/queue:Queue", "ingest-dlq")
    assert dlq["resources.ARN"] == {
        "equals": [f"arn:aws:sqs:{REGION}:{MOCK_ACCOUNT_ID}:{queue.inputs['name']}"]
    }


def test_dlq_deletion_alarm_watches_the_real_dead_letter_queue(plan: ProgramRun) -> None:
    queue = one(plan, "aws:sqs/queue:Queue", "ingest-dlq").inputs["name"]
    pattern = one(plan, METRIC_FILTER, f"audit-{DLQ_DELETED_ALARM}-filter").inputs["pattern"]
    assert f'"*/{queue}"' in pattern, f"{DLQ_DELETED_ALARM}: does not name {queue}"
