"""The ingest function under moto IAM enforcement, holding exactly the stack's generated policy.

moto limits (verified, see OFFLINE-FACTS): S3 is enforced down to key prefixes and SQS by queue
ARN, so those grants are tested exactly as generated. KMS and DynamoDB are authorised by moto only
against resource ``*``; an ARN-scoped grant — which is what the stack generates — is denied there.
The named shim ``grant_moto_resource_star_shim`` (pacs_kit/sandbox/lambda_runtime.py)
re-grants *the same actions* on ``*`` for those two
services only; the real ARN scoping is asserted on the document in tests/infra.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import settings as moto_settings

from infra.iam_documents import IngestResources, ingest_role_policy
from tests.lambdas.conftest import (
    ACCOUNT,
    PREFIX,
    REGION,
    Stack,
    assume_role_with_policy,
    copy_object_lock_shim,
    deliver,
    put_inbox,
    receive,
)
from tests.lambdas.factory import HOSTILE, ct, encode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def generated_policy(stack: Stack) -> dict[str, Any]:
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT.account_id}:table"
    return ingest_role_policy(
        IngestResources(
            inbox_bucket=stack.inbox,
            archive_bucket=stack.archive,
            quarantine_bucket=stack.quarantine,
            queue_arn=stack.queue_arn,
            data_key_arn=stack.data_key,
            signing_key_arn=stack.signing_key,
            pseudonym_key_arn=stack.pseudonym_key,
            index_table_arn=f"{table}/{stack.index_table}",
            idempotency_table_arn=f"{table}/{stack.idempotency_table}",
            log_group_arn=f"arn:aws:logs:{REGION}:{ACCOUNT.account_id}:log-group:/aws/lambda/x",
        )
    )


@pytest.fixture
def role_session(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    """Credentials of a role carrying the generated policy, with moto enforcing IAM."""
    yield assume_role_with_policy(monkeypatch, f"{PREFIX}-ingest", generated_policy(stack))


def test_the_generated_policy_is_enough_to_archive_and_quarantine(
    stack: Stack, role_session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Objects arrive as the gateway would put them: before the function's credentials matter.
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    ds = ct()
    put_inbox(stack, "ok.dcm", encode(ds))
    put_inbox(stack, "bad.dcm", HOSTILE["pe-polyglot"][1]())
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)

    sqs = role_session.client("sqs")
    messages = receive(stack, sqs)
    assert len(messages) == 2
    assert deliver(stack, messages, sqs) == []
    s3 = role_session.client("s3")
    copy_object_lock_shim(s3)
    head = s3.head_object(
        Bucket=stack.archive,
        Key=f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/"
        f"instances/{ds.SOPInstanceUID}.dcm",
    )
    assert head["ObjectLockMode"] == "COMPLIANCE"


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        ("delete_object", {"Key": "studies/x.dcm", "VersionId": "v"}),
        ("put_object", {"Key": "outside-the-prefix.dcm", "Body": b"x"}),
        ("get_object", {"Key": "studies/any.dcm"}),
    ],
)
def test_the_role_cannot_touch_the_archive_beyond_its_grant(
    stack: Stack, role_session: boto3.session.Session, operation: str, kwargs: dict[str, Any]
) -> None:
    s3 = role_session.client("s3")
    copy_object_lock_shim(s3)
    bucket = stack.archive if operation != "get_object" else stack.quarantine
    with pytest.raises(ClientError) as error:
        getattr(s3, operation)(Bucket=bucket, **kwargs)
    assert error.value.response["Error"]["Code"] == "AccessDenied", f"{operation} on {bucket}"


def test_the_role_cannot_read_other_queues(
    stack: Stack, role_session: boto3.session.Session
) -> None:
    with pytest.raises(ClientError) as error:
        role_session.client("sqs").receive_message(QueueUrl=stack.dlq_url)
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
