"""moto fixtures: the ingest resources as the stack defines them, and an SQS → handler driver.

moto shims (each a verified moto gap, kept here and nowhere in the product):
- ``copy_object_lock_shim``: moto refuses CopyObject into a bucket with default Object Lock
  retention unless ``Content-MD5``/``x-amz-sdk-checksum-algorithm`` is sent, a rule AWS applies to
  uploads with a body (PutObject/UploadPart), not to server-side copies.

Other moto gaps these tests live with (no shim, the product does not depend on them):
- S3 event notifications carry no ``versionId``; the pipeline pins the version it actually read
  (``Pipeline._inspect``), which real events make redundant but never wrong.
- KMS ``Verify`` answers ``SignatureValid=false`` where AWS raises KMSInvalidSignatureException;
  the verify function handles both (test_verify.py fakes the AWS behaviour).
- KMS and DynamoDB ARN-scoped grants are not enforced (see test_ingest_role.py).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from infra.components.archive import bucket_name
from infra.iam_documents import Account
from lambdas import settings as env

if TYPE_CHECKING:
    from tests.lambdas.exporting import Exports

REGION = "us-east-1"
ACCOUNT = Account(
    account_id="123456789012",
    partition="aws",
    region=REGION,
    dns_suffix="amazonaws.com",
    reverse_dns_prefix="com.amazonaws",
)
PREFIX = "pacs-test"


def copy_object_lock_shim(s3: Any) -> None:
    def add_checksum_header(params: dict[str, Any], **_: Any) -> None:
        params["headers"].setdefault("x-amz-sdk-checksum-algorithm", "SHA256")

    s3.meta.events.register("before-call.s3.CopyObject", add_checksum_header)


def s3_client(session: boto3.session.Session | None = None) -> Any:
    client = (session or boto3).client("s3", region_name=REGION)
    copy_object_lock_shim(client)
    return client


@dataclass
class Stack:
    """Names and ARNs of the moto resources, and the function environment built from them."""

    inbox: str
    archive: str
    quarantine: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    data_key: str
    signing_key: str
    pseudonym_key: str
    index_table: str
    idempotency_table: str
    # The research-copy function: the archive notifies its queue; linkage is off unless a test
    # sets PACS_LINKAGE_TABLE to linkage_table.
    derived: str = ""
    research_queue_url: str = ""
    research_queue_arn: str = ""
    linkage_table: str = ""
    linkage_key: str = ""
    environment: dict[str, str] = field(default_factory=dict)


def _bucket(s3: Any, purpose: str, *, lock: tuple[str, int] | None) -> str:
    name = bucket_name(ACCOUNT, PREFIX, purpose, REGION)
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock is not None)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if lock:
        mode, days = lock
        s3.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
            },
        )
    return name


def _table(dynamodb: Any, name: str, key: str, sort_key: str | None = None) -> str:
    keys = [key] if sort_key is None else [key, sort_key]
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
        KeySchema=[
            {"AttributeName": k, "KeyType": "HASH" if i == 0 else "RANGE"}
            for i, k in enumerate(keys)
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _drain_test_events(sqs: Any, queue_url: str) -> None:
    """S3 sends an s3:TestEvent when a notification is configured; the functions skip it."""
    for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        assert "s3:TestEvent" in message["Body"]
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def create_stack() -> Stack:
    s3, kms = s3_client(), boto3.client("kms", region_name=REGION)
    sqs, dynamodb = boto3.client("sqs", region_name=REGION), boto3.client("dynamodb", REGION)
    data_key = kms.create_key(Description="archive")["KeyMetadata"]["Arn"]
    signing_key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    pseudonym_key = kms.create_key(KeyUsage="GENERATE_VERIFY_MAC", KeySpec="HMAC_256")
    dlq_url = sqs.create_queue(QueueName=f"{PREFIX}-ingest-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    queue_url = sqs.create_queue(
        QueueName=f"{PREFIX}-ingest",
        Attributes={
            "VisibilityTimeout": "300",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": 3}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    research_url = sqs.create_queue(
        QueueName=f"{PREFIX}-research", Attributes={"VisibilityTimeout": "300"}
    )["QueueUrl"]
    research_arn = sqs.get_queue_attributes(QueueUrl=research_url, AttributeNames=["QueueArn"])
    stack = Stack(
        inbox=_bucket(s3, "inbox", lock=None),
        archive=_bucket(s3, "archive", lock=("COMPLIANCE", 1)),
        quarantine=_bucket(s3, "quarantine", lock=("GOVERNANCE", 1)),
        queue_url=queue_url,
        queue_arn=queue_arn["Attributes"]["QueueArn"],
        dlq_url=dlq_url,
        data_key=data_key,
        signing_key=signing_key["Arn"],
        pseudonym_key=pseudonym_key["KeyMetadata"]["Arn"],
        index_table=_table(dynamodb, f"{PREFIX}-index", "sop_instance_uid"),
        idempotency_table=_table(dynamodb, f"{PREFIX}-idempotency", "id"),
        derived=_bucket(s3, "derived", lock=None),
        research_queue_url=research_url,
        research_queue_arn=research_arn["Attributes"]["QueueArn"],
        linkage_table=_table(dynamodb, f"{PREFIX}-linkage", "deid_sop_instance_uid", "project"),
        linkage_key=kms.create_key(Description="linkage")["KeyMetadata"]["Arn"],
    )
    for bucket, arn in ((stack.inbox, stack.queue_arn), (stack.archive, stack.research_queue_arn)):
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
            },
        )
    _drain_test_events(sqs, queue_url)
    _drain_test_events(sqs, research_url)
    stack.environment = {
        env.ARCHIVE_BUCKET: stack.archive,
        env.QUARANTINE_BUCKET: stack.quarantine,
        env.DATA_KEY_ARN: stack.data_key,
        env.SIGNING_KEY_ARN: stack.signing_key,
        env.PSEUDONYM_KEY_ARN: stack.pseudonym_key,
        env.INDEX_TABLE: stack.index_table,
        env.IDEMPOTENCY_TABLE: stack.idempotency_table,
        env.DERIVED_BUCKET: stack.derived,
        env.LINKAGE_KEY_ARN: stack.linkage_key,
        "POWERTOOLS_SERVICE_NAME": "pacs-ingest",
    }
    return stack


CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def fresh_runtime(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
    """Give a handler module an empty ``runtime()`` cache for this test (the next call builds
    its clients inside the test's mock); the module's own cache is back after the test."""
    monkeypatch.setattr(module, "runtime", functools.cache(module.runtime.__wrapped__))


def install_stack(monkeypatch: pytest.MonkeyPatch) -> Stack:
    """Create the stack in moto (already mocked) and point the functions' environment at it."""
    created = create_stack()
    for name, value in created.environment.items():
        monkeypatch.setenv(name, value)
    import lambdas.ingest as ingest  # inside the mock: clients are built on first use

    fresh_runtime(monkeypatch, ingest)
    # The runtime's S3 client needs the moto shim; wrap the factory that builds it.
    original = ingest.Runtime.from_environment.__func__  # type: ignore[attr-defined]

    def from_environment(cls: type[ingest.Runtime]) -> ingest.Runtime:
        runtime = original(cls)
        copy_object_lock_shim(runtime.pipeline.s3)
        return runtime

    monkeypatch.setattr(ingest.Runtime, "from_environment", classmethod(from_environment))
    import lambdas.research as research

    fresh_runtime(monkeypatch, research)
    return created


@pytest.fixture
def stack(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    yield install_stack(monkeypatch)


@pytest.fixture
def exported(aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Exports]:
    """The stack with the export and link functions' resources and environment (signer on)."""
    from tests.lambdas.exporting import install_exports  # it imports this module

    yield install_exports(monkeypatch, tmp_path)


@dataclass
class FakeContext:
    """The parts of LambdaContext that Powertools reads."""

    function_name: str = f"{PREFIX}-ingest"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:{PREFIX}-ingest"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Messages from ReceiveMessage in the shape the Lambda SQS event source delivers them."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {k: str(v) for k, v in m.get("Attributes", {}).items()},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def receive(
    stack: Stack, sqs: Any | None = None, *, queue_url: str | None = None
) -> list[dict[str, Any]]:
    """Everything visible on the queue now (received messages stay invisible until handled)."""
    sqs = sqs or boto3.client("sqs", region_name=REGION)
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url or stack.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def deliver(stack: Stack, messages: list[dict[str, Any]], sqs: Any | None = None) -> list[str]:
    """Run the handler on one batch as the event source mapping does; return failed message ids.

    Successful messages are deleted; failed ones become visible again at once (in AWS, after the
    visibility timeout) so the next ``receive`` redelivers them.
    """
    from lambdas.ingest import handler

    return _run(handler, FakeContext(), stack.queue_url, stack.queue_arn, messages, sqs)


RESEARCH_CONTEXT = FakeContext(
    function_name=f"{PREFIX}-research",
    invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:{PREFIX}-research",
)


def deliver_research(
    stack: Stack, messages: list[dict[str, Any]], sqs: Any | None = None
) -> list[str]:
    """``deliver`` for the research-copy function and its queue (the archive's notifications)."""
    from lambdas.research import handler

    queue = stack.research_queue_url
    return _run(handler, RESEARCH_CONTEXT, queue, stack.research_queue_arn, messages, sqs)


def _run(
    handler: Any,
    context: FakeContext,
    queue_url: str,
    queue_arn: str,
    messages: list[dict[str, Any]],
    sqs: Any | None,
) -> list[str]:
    sqs = sqs or boto3.client("sqs", region_name=REGION)
    response = handler(sqs_event(messages, queue_arn), context)
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    for m in messages:
        if m["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return failed


def put_inbox(stack: Stack, key: str, body: bytes) -> str:
    return str(s3_client().put_object(Bucket=stack.inbox, Key=key, Body=body)["VersionId"])


def assume_role_with_policy(
    monkeypatch: pytest.MonkeyPatch, role_name: str, policy: dict[str, Any]
) -> boto3.session.Session:
    """A role holding exactly ``policy`` (plus the named moto KMS/DynamoDB/Logs-on-* shim),
    assumed by a user; its credentials in the environment and IAM enforcement switched on."""
    from moto import settings as moto_settings
    from moto.core.responses import ActionAuthenticatorMixin

    from pacs_kit.sandbox.lambda_runtime import grant_moto_resource_star_shim

    iam = boto3.client("iam", region_name=REGION)
    user = iam.create_user(UserName="lambda-service")["User"]
    iam.put_user_policy(
        UserName="lambda-service",
        PolicyName="assume",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
            }
        ),
    )
    keys = iam.create_access_key(UserName="lambda-service")["AccessKey"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(
        RoleName=role_name, PolicyName="generated", PolicyDocument=json.dumps(policy)
    )
    grant_moto_resource_star_shim(iam, role_name)
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    sts = boto3.client(
        "sts",
        region_name=REGION,
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=None,
    )
    creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName=role_name)["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    return boto3.session.Session(region_name=REGION)
