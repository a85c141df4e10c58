"""A security log event reaches a real SIEM endpoint on 127.0.0.1, intact; failures are kept.

The chain is the stack's: a KMS-encrypted log group → subscription filter → the Firehose stream as
``infra.components.audit.firehose_request`` defines it (the function the component's declaration is
checked against in tests/infra/test_audit.py) → HTTP endpoint, with the backup bucket for failures.
moto runs the AWS side; the endpoint is a real HTTP server. See conftest.py for the moto gaps this
relies on and how each is bridged.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.components.audit import (
    BACKUP_LOG_STREAM,
    BACKUP_PREFIX,
    DELIVERY_LOG_STREAM,
    PULL_PREFIX,
    SUBSCRIBE_EVERYTHING,
    SiemStream,
    firehose_request,
)
from infra.iam_documents import (
    Account,
    SiemDeliveryResources,
    logs_to_firehose_role_policy,
    service_trust_policy,
    siem_delivery_role_policy,
)
from tests.audit.conftest import UNREACHABLE_ERROR_CODE, SiemEndpoint, apply_processors

REGION = "us-east-1"
ACCOUNT = Account(account_id="123456789012", partition="aws", region=REGION)
PREFIX = "pacs-test"
BACKUP_BUCKET = f"{PREFIX}-{ACCOUNT.account_id}-{REGION}-siem-backup"
PULL_BUCKET = f"{PREFIX}-{ACCOUNT.account_id}-{REGION}-siem"
SECURITY_GROUP = f"/{PREFIX}/ecs/gateway"
FILTER = f"{PREFIX}-siem"

pytestmark = pytest.mark.usefixtures(
    "subscriptions_reach_every_destination",
    "binary_records_post_as_base64",
    "failed_deliveries_go_to_the_backup",
    # Last, so that it wraps the backup shim: AWS processes records before it tries the endpoint.
    "processors_run_before_delivery",
)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def role(iam: Any, name: str, trust: dict[str, Any], policy: dict[str, Any]) -> str:
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    return arn


def deploy_siem_path(url: str | None) -> str:
    """The stack's SIEM path in moto, pushing to ``url`` (None: the s3 pull bucket).

    Returns the security log group's name.
    """
    kms = boto3.client("kms", region_name=REGION)
    key_arn = kms.create_key(Description="logs")["KeyMetadata"]["Arn"]
    for name in (BACKUP_BUCKET, PULL_BUCKET):
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=name)
    logs = boto3.client("logs", region_name=REGION)
    error_group = f"/aws/kinesisfirehose/{PREFIX}-siem"
    logs.create_log_group(logGroupName=error_group, kmsKeyId=key_arn)
    for stream in (DELIVERY_LOG_STREAM, BACKUP_LOG_STREAM):
        logs.create_log_stream(logGroupName=error_group, logStreamName=stream)
    secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"{PREFIX}/siem/access-key",
        KmsKeyId=key_arn,
        SecretString=json.dumps({"api_key": "test-key"}),
    )["ARN"]

    iam = boto3.client("iam", region_name=REGION)
    delivery_role = role(
        iam,
        f"{PREFIX}-siem-delivery",
        service_trust_policy("firehose.amazonaws.com", ACCOUNT),
        siem_delivery_role_policy(
            SiemDeliveryResources(
                bucket_names=(BACKUP_BUCKET, PULL_BUCKET),
                logs_key_arn=key_arn,
                error_log_group_arn=f"arn:aws:logs:{REGION}:{ACCOUNT.account_id}:log-group:{error_group}",
                s3_service_endpoint=ACCOUNT.service_endpoint("s3"),
                secret_arn=secret_arn,
                secretsmanager_service_endpoint=ACCOUNT.service_endpoint("secretsmanager"),
            )
        ),
    )
    request = firehose_request(
        SiemStream(
            name=f"{PREFIX}-siem",
            destination="http" if url else "s3",
            role_arn=delivery_role,
            key_arn=key_arn,
            backup_bucket_arn=ACCOUNT.bucket_arn(BACKUP_BUCKET),
            error_log_group=error_group,
            # Loopback has no TLS: the stack's config admits https:// only.
            endpoint_url=url,
            secret_arn=secret_arn if url else None,
            pull_bucket_arn=None if url else ACCOUNT.bucket_arn(PULL_BUCKET),
        )
    )
    firehose = boto3.client("firehose", region_name=REGION)
    stream_arn = firehose.create_delivery_stream(**request)["DeliveryStreamARN"]
    described = firehose.describe_delivery_stream(DeliveryStreamName=f"{PREFIX}-siem")
    encryption = described["DeliveryStreamDescription"]["DeliveryStreamEncryptionConfiguration"]
    assert (encryption["KeyType"], encryption["KeyARN"]) == ("CUSTOMER_MANAGED_CMK", key_arn)

    shipping_role = role(
        iam,
        f"{PREFIX}-log-shipping",
        service_trust_policy("logs.amazonaws.com", ACCOUNT),
        logs_to_firehose_role_policy(stream_arn),
    )
    logs.create_log_group(logGroupName=SECURITY_GROUP, kmsKeyId=key_arn)
    logs.put_subscription_filter(
        logGroupName=SECURITY_GROUP,
        filterName=FILTER,
        filterPattern=SUBSCRIBE_EVERYTHING,
        destinationArn=stream_arn,
        roleArn=shipping_role,
    )
    return SECURITY_GROUP


def audit_event() -> dict[str, Any]:
    """A distinctive gateway audit record (no PHI: the marker is random)."""
    return {
        "level": "INFO",
        "message": "instance stored",
        "event": "gateway.stow.stored",
        "marker": uuid.uuid4().hex,
        "client_subject": "CN=modality-ct-1,O=Example Hospital",
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
    }


def write(group: str, event: dict[str, Any]) -> str:
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_stream(logGroupName=group, logStreamName="task-1")
    message = json.dumps(event, separators=(",", ":"))
    logs.put_log_events(
        logGroupName=group,
        logStreamName="task-1",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": message}],
    )
    return message


def decode_subscription_record(data: bytes) -> dict[str, Any]:
    """CloudWatch Logs subscription data: gzip-compressed JSON with ``logEvents``."""
    payload: dict[str, Any] = json.loads(gzip.decompress(data))
    return payload


def decode_pushed_record(data: bytes) -> dict[str, Any]:
    """What the stack's http stream pushes: the subscription envelope, decompressed by Firehose."""
    assert not data.startswith(b"\x1f\x8b"), "the SIEM received gzip: Decompression is missing"
    payload: dict[str, Any] = json.loads(data)
    return payload


def objects(bucket: str = BACKUP_BUCKET) -> list[tuple[str, bytes]]:
    s3 = boto3.client("s3", region_name=REGION)
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return [(o["Key"], s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in listed]


@pytest.mark.usefixtures("aws")
def test_a_security_log_event_reaches_the_siem_endpoint_intact(
    siem_endpoint: SiemEndpoint,
) -> None:
    # GIVEN the stack's SIEM path pushing to a real HTTP server on 127.0.0.1
    group = deploy_siem_path(siem_endpoint.url)
    event = audit_event()

    # WHEN the gateway writes an audit event to its log group
    message = write(group, event)

    # THEN the endpoint received one Firehose request carrying exactly that event
    assert len(siem_endpoint.received) == 1, "the SIEM endpoint received nothing"
    request = siem_endpoint.received[0]
    assert request.path == "/siem/ingest"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert body["requestId"] and isinstance(body["timestamp"], int)
    assert len(body["records"]) == 1
    payload = decode_pushed_record(base64.b64decode(body["records"][0]["data"]))
    assert payload["messageType"] == "DATA_MESSAGE"
    assert payload["logGroup"] == group
    assert payload["subscriptionFilters"] == [FILTER]
    assert [e["message"] for e in payload["logEvents"]] == [message]
    assert json.loads(payload["logEvents"][0]["message"]) == event, "the event was altered"
    # FailedDataOnly: delivered records are not copied to the backup bucket.
    assert objects() == []


@pytest.mark.usefixtures("aws")
def test_an_unreachable_siem_leaves_the_event_in_the_backup_bucket(
    closed_port_url: str,
) -> None:
    # GIVEN the SIEM path pointing at a port nothing listens on
    group = deploy_siem_path(closed_port_url)
    event = audit_event()

    # WHEN an event is written
    message = write(group, event)

    # THEN it is not lost: the backup bucket holds it, under the backup prefix, as Firehose's
    # error record (one JSON line per failed record) whose rawData is the record, intact
    kept = objects()
    assert len(kept) == 1, f"expected one backup object in {BACKUP_BUCKET}, found {len(kept)}"
    key, data = kept[0]
    assert key.startswith(BACKUP_PREFIX), key
    lines = data.decode("utf-8").splitlines()
    assert len(lines) == 1, lines
    failure = json.loads(lines[0])
    assert failure["errorCode"] == UNREACHABLE_ERROR_CODE
    assert failure["attemptEndingTimestamp"] >= failure["arrivalTimestamp"]
    payload = decode_pushed_record(base64.b64decode(failure["rawData"]))
    assert payload["logGroup"] == group
    assert [e["message"] for e in payload["logEvents"]] == [message]
    assert json.loads(message) == event


@pytest.mark.usefixtures("aws")
def test_the_default_destination_leaves_the_event_in_the_pull_bucket() -> None:
    # GIVEN the default siemDestination (s3): the SIEM pulls from the stack's bucket
    group = deploy_siem_path(None)
    event = audit_event()

    # WHEN an event is written
    message = write(group, event)

    # THEN the pull bucket holds it under the pull prefix, intact
    pulled = objects(PULL_BUCKET)
    assert len(pulled) == 1, f"expected one object in {PULL_BUCKET}, found {len(pulled)}"
    key, data = pulled[0]
    assert key.startswith(PULL_PREFIX), key
    payload = decode_subscription_record(data)
    assert [e["message"] for e in payload["logEvents"]] == [message]
    assert json.loads(payload["logEvents"][0]["message"]) == event


def _push_stream(destination: str, url: str) -> SiemStream:
    return SiemStream(
        name="s",
        destination=destination,  # type: ignore[arg-type]
        role_arn="r",
        key_arn="k",
        backup_bucket_arn="arn:aws:s3:::b",
        error_log_group="g",
        endpoint_url=url,
        secret_arn="s",
    )


def test_stream_names_a_backup_for_failed_pushes() -> None:
    # The moto emulation above backs up only what the configuration asks for: check it asks.
    request = firehose_request(_push_stream("http", "https://siem.example.org/"))[
        "HttpEndpointDestinationConfiguration"
    ]
    assert request["S3BackupMode"] == "FailedDataOnly"
    assert request["S3Configuration"]["BucketARN"] == "arn:aws:s3:::b"
    assert request["S3Configuration"]["Prefix"] == BACKUP_PREFIX
    assert "AccessKey" not in request["EndpointConfiguration"]


def test_splunk_receives_the_bare_messages() -> None:
    # GIVEN the splunk stream's processors (moto has no Splunk destination: the conftest shim
    # applies the same processors the http test runs through)
    request = firehose_request(
        _push_stream("splunk", "https://hec.example.org/services/collector/raw")
    )["SplunkDestinationConfiguration"]
    events = [audit_event(), audit_event()]
    messages = [json.dumps(e, separators=(",", ":")) for e in events]
    record = gzip.compress(
        json.dumps(
            {
                "messageType": "DATA_MESSAGE",
                "logGroup": SECURITY_GROUP,
                "logEvents": [
                    {"id": str(i), "timestamp": 0, "message": m} for i, m in enumerate(messages)
                ],
            }
        ).encode()
    )

    # WHEN Firehose processes a CloudWatch Logs record
    delivered = apply_processors(request["ProcessingConfiguration"], record)

    # THEN Splunk gets each event's message, one a line, without CloudWatch's envelope
    assert delivered.decode("utf-8").splitlines() == messages
