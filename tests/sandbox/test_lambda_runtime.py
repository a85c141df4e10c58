"""The sandbox's Lambda service against an in-process moto server and a hand-made mini stack.

The stack: an event queue with a DLQ (maxReceiveCount 2), two functions running
tests/sandbox/lambda_fixture/app.py with different environments and roles, an SQS mapping with
ReportBatchItemFailures, a daily schedule on the second function with an on-failure queue.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests

from pacs_kit.sandbox.emulate import Clients
from pacs_kit.sandbox.lambda_runtime import (
    SHIM_POLICY_NAME,
    LambdaService,
    batch_item_failures,
    grant_moto_resource_star_shim,
)
from pacs_kit.sandbox.lifecycle import create_admin
from pacs_kit.sandbox.shims import sqs_mappings_are_polled_by_the_sandbox
from pacs_kit.sandbox.state import SandboxState
from tests.sandbox.conftest import moto_server

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REGION = "us-east-1"
HANDLER = "tests.sandbox.lambda_fixture.app.handler"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    # As in the sandbox's emulator: moto's own (Docker-only) SQS poller would burn the receive
    # counts of every message sent.
    with pytest.MonkeyPatch.context() as patch:
        sqs_mappings_are_polled_by_the_sandbox(patch.setattr)
        with moto_server() as url:
            yield url


@dataclass
class Mini:
    state: SandboxState
    queue_url: str
    dlq_url: str
    failures_url: str
    key_arn: str
    setup: Clients


def _role(iam: Any, name: str, statements: list[dict[str, Any]]) -> str:
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=name,
        PolicyName="function",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    return str(arn)


def _function(aws: Clients, name: str, role: str, variables: dict[str, str]) -> str:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app.py", "# the sandbox runs the repository's code in-process\n")
    aws.client("logs", REGION).create_log_group(logGroupName=f"/aws/lambda/{name}")
    return str(
        aws.client("lambda", REGION).create_function(
            FunctionName=name,
            Role=role,
            Runtime="python3.12",
            Handler=HANDLER,
            Code={"ZipFile": archive.getvalue()},
            Timeout=30,
            MemorySize=256,
            Environment={"Variables": variables},
        )["FunctionArn"]
    )


@pytest.fixture
def mini(endpoint: str) -> Iterator[Mini]:
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    setup = Clients(endpoint=endpoint)
    sqs, iam = setup.client("sqs", REGION), setup.client("iam", REGION)
    dlq_url = sqs.create_queue(QueueName="events-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    redrive = {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": 2}
    queue_url = sqs.create_queue(
        QueueName="events", Attributes={"RedrivePolicy": json.dumps(redrive)}
    )["QueueUrl"]
    queue_arn = f"arn:aws:sqs:{REGION}:123456789012:events"
    failures_url = sqs.create_queue(QueueName="schedule-failures")["QueueUrl"]
    failures_arn = f"arn:aws:sqs:{REGION}:123456789012:schedule-failures"
    key_arn = setup.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]
    logs = f"arn:aws:logs:{REGION}:123456789012:log-group:/aws/lambda/*"
    worker_role = _role(
        iam,
        "worker",
        [
            {
                "Effect": "Allow",
                "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                "Resource": queue_arn,
            },
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [logs, f"{logs}:*"],
            },
            {"Effect": "Allow", "Action": ["kms:DescribeKey"], "Resource": key_arn},
            # moto 5.2.5 authorises CloudWatch Logs only against "*" (like KMS and DynamoDB).
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            },
        ],
    )
    checker_role = _role(
        iam,
        "checker",
        [
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": failures_arn},
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [logs, f"{logs}:*"],
            },
        ],
    )
    _function(setup, "worker", worker_role, {"ROLE_OF": "worker", "POWERTOOLS_SERVICE_NAME": "w"})
    checker_arn = _function(
        setup, "checker", checker_role, {"ROLE_OF": "checker", "FIXTURE_FAIL_SCHEDULE": "1"}
    )
    lam = setup.client("lambda", REGION)
    lam.create_event_source_mapping(
        EventSourceArn=queue_arn,
        FunctionName="worker",
        BatchSize=10,
        MaximumBatchingWindowInSeconds=5,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    lam.put_function_event_invoke_config(
        FunctionName="checker",
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": failures_arn}},
    )
    events = setup.client("events", REGION)
    events.put_rule(Name="daily", ScheduleExpression="rate(1 day)", State="ENABLED")
    events.put_targets(Rule="daily", Targets=[{"Id": "checker", "Arn": checker_arn}])
    key_id, secret = create_admin(setup, REGION)
    state = SandboxState(
        stack="unit",
        region=REGION,
        account_id="123456789012",
        endpoint=endpoint,
        siem_url="",
        admin_access_key_id=key_id,
        admin_secret_access_key=secret,
        outputs={},
        resources=[],
    )
    yield Mini(state, queue_url, dlq_url, failures_url, key_arn, setup)
    requests.post(f"{endpoint}/moto-api/reset-auth", data="inf", timeout=10)


def _enforce(endpoint: str) -> None:
    requests.post(f"{endpoint}/moto-api/reset-auth", data="0", timeout=10)


def _send(mini: Mini, *bodies: str) -> None:
    sqs = mini.setup.client("sqs", REGION)
    for body in bodies:
        sqs.send_message(QueueUrl=mini.queue_url, MessageBody=body)


def _count(mini: Mini, url: str) -> int:
    attributes = (
        mini.state.admin()
        .client("sqs", REGION)
        .get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    )
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_partial_batch_failure_retries_only_the_failed_message_until_the_dlq(mini: Mini) -> None:
    _send(mini, "ok", "fail", "ok")
    service = LambdaService(mini.state)
    invocations = service.drain(max_rounds=10)

    first, *retries = invocations
    assert first.records == 3 and len(first.failed_message_ids) == 1
    failed = first.failed_message_ids[0]
    # Only the failed message comes back, until SQS's redrive (maxReceiveCount 2) parks it.
    assert [(i.records, i.failed_message_ids) for i in retries] == [(1, [failed])]
    assert _count(mini, mini.queue_url) == 0
    parked = mini.setup.client("sqs", REGION).receive_message(QueueUrl=mini.dlq_url)["Messages"]
    assert [m["MessageId"] for m in parked] == [failed]


def test_the_event_is_lambdas_sqs_event(mini: Mini) -> None:
    _send(mini, "ok")
    (invocation,) = LambdaService(mini.state).drain()
    (record,) = invocation.result["records"]
    assert set(record) == {
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
        "eventSource", "eventSourceARN", "awsRegion",
    }  # fmt: skip
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == f"arn:aws:sqs:{REGION}:123456789012:events"
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId"} <= set(record["attributes"])
    assert 0 < invocation.result["remaining_ms"] <= 30_000


def test_the_environment_is_exactly_the_functions_under_its_role(mini: Mini) -> None:
    _send(mini, "ok")
    service = LambdaService(mini.state)
    (invocation,) = service.drain()
    environment = invocation.result["environment"]
    reserved = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
        "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_EXECUTION_ENV", "_HANDLER", "PATH",
    }  # fmt: skip
    assert set(environment) == reserved | {"ROLE_OF", "POWERTOOLS_SERVICE_NAME"}
    assert environment["ROLE_OF"] == "worker"
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert environment["AWS_ENDPOINT_URL"] == mini.state.endpoint
    # The credentials are the assumed role's, not the administrator's.
    who = boto3.client(
        "sts",
        region_name=REGION,
        endpoint_url=mini.state.endpoint,
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=environment["AWS_SESSION_TOKEN"],
    ).get_caller_identity()
    assert who["Arn"].startswith("arn:aws:sts::123456789012:assumed-role/worker/worker")
    assert environment["AWS_ACCESS_KEY_ID"] != mini.state.admin_access_key_id
    assert "ROLE_OF" not in __import__("os").environ  # restored afterwards


def test_with_iam_enforced_a_call_outside_the_roles_policy_is_denied(mini: Mini) -> None:
    service = LambdaService(mini.state)  # reads the Lambda control plane (moto gap: see refresh)
    _send(mini, "denied")
    _enforce(mini.state.endpoint)
    (invocation,) = service.drain()
    # The poller received and deleted under the role; the handler's S3 call was refused.
    assert invocation.result["denied"] == ["AccessDenied"]
    assert invocation.failed_message_ids == []
    assert _count(mini, mini.queue_url) == 0


def test_log_lines_land_in_the_functions_log_group(mini: Mini) -> None:
    _send(mini, "ok")
    service = LambdaService(mini.state)
    service.drain()
    _send(mini, "ok")
    service.drain()  # a warm invocation: Powertools' handler was bound on the first
    logs = mini.setup.client("logs", REGION)
    (stream,) = logs.describe_log_streams(logGroupName="/aws/lambda/worker")["logStreams"]
    assert "/[$LATEST]" in stream["logStreamName"]
    messages = [
        e["message"]
        for e in logs.get_log_events(
            logGroupName="/aws/lambda/worker", logStreamName=stream["logStreamName"]
        )["events"]
    ]
    starts = [m for m in messages if m.startswith("START RequestId:")]
    reports = [m for m in messages if m.startswith("REPORT RequestId:")]
    records = [json.loads(m) for m in messages if m.startswith("{")]
    assert len(starts) == len(reports) == 2
    assert [r["message"] for r in records] == ["record", "record"]
    assert all(r["service"] == "sandbox-fixture" for r in records)
    assert messages.count("plain print line") == 2


def test_two_functions_never_share_a_cached_module_or_environment(mini: Mini) -> None:
    _send(mini, "ok")
    service = LambdaService(mini.state)
    (worker,) = service.drain()
    checker = service.invoke("checker", {"detail-type": "other", "Records": []})
    assert worker.result["first_function"] == "worker"
    assert checker.result["first_function"] == "checker"
    assert checker.result["environment"]["ROLE_OF"] == "checker"
    assert "POWERTOOLS_SERVICE_NAME" not in checker.result["environment"]
    _send(mini, "ok")
    (again,) = service.drain()
    assert again.result["first_function"] == "worker"


def test_a_failing_schedule_is_retried_then_sent_to_its_on_failure_destination(
    mini: Mini,
) -> None:
    invocations = LambdaService(mini.state).fire_schedules()
    assert [(i.function, i.attempt, i.error_type) for i in invocations] == [
        ("checker", 1, "ScheduledFailure"),
        ("checker", 2, "ScheduledFailure"),
    ]
    (message,) = mini.setup.client("sqs", REGION).receive_message(QueueUrl=mini.failures_url)[
        "Messages"
    ]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"]["detail-type"] == "Scheduled Event"
    assert record["requestPayload"]["source"] == "aws.events"
    assert record["requestPayload"]["resources"] == [
        f"arn:aws:events:{REGION}:123456789012:rule/daily"
    ]
    assert record["responsePayload"]["errorType"] == "ScheduledFailure"


def test_the_moto_shim_regrants_only_kms_dynamodb_and_logs_actions_on_star(mini: Mini) -> None:
    iam = mini.setup.client("iam", REGION)
    grant_moto_resource_star_shim(iam, "worker")
    shim = iam.get_role_policy(RoleName="worker", PolicyName=SHIM_POLICY_NAME)["PolicyDocument"]
    assert shim["Statement"] == [
        {
            "Sid": "MotoAuthorisesTheseOnlyOnStar",
            "Effect": "Allow",
            "Action": ["kms:DescribeKey", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ]
    _role(iam, "bare", [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}])
    grant_moto_resource_star_shim(iam, "bare")  # no KMS, DynamoDB or Logs action: no shim
    assert SHIM_POLICY_NAME not in iam.list_role_policies(RoleName="bare")["PolicyNames"]
    service = LambdaService(mini.state)
    _enforce(mini.state.endpoint)
    role = service._role_clients(service.function("worker"))
    assert role.client("kms", REGION).describe_key(KeyId=mini.key_arn)["KeyMetadata"]


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zz"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ("nonsense", {"a", "b"}),
    ],
)
def test_batch_item_failures_are_read_as_lambda_reads_them(response: Any, failed: set[str]) -> None:
    assert batch_item_failures(response, ["a", "b"]) == failed
