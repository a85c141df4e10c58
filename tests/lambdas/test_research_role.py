"""The research-copy function under moto IAM enforcement, holding exactly the generated policy.

As in test_ingest_role.py: S3 is enforced down to key prefixes and SQS by queue ARN, so those
grants are tested exactly as generated; moto authorises KMS, DynamoDB and Logs only on resource
``*``, so the named shim ``grant_moto_resource_star_shim`` re-grants *the same actions* of those
services on ``*``. The ARN scoping (and the data key's ``kms:ViaService`` condition) is asserted on
the document in tests/infra/test_research.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import settings as moto_settings

from infra.iam_documents import ResearchResources, research_role_policy
from lambdas import settings as env
from tests.lambdas.conftest import (
    ACCOUNT,
    PREFIX,
    REGION,
    Stack,
    assume_role_with_policy,
    deliver,
    deliver_research,
    put_inbox,
    receive,
)
from tests.lambdas.factory import ct, encode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

LUNG_CT = {"name": "lung-ct", "match": {"Modality": ["CT"], "BodyPartExamined": ["CHEST"]}}
BRAIN_MR = {"name": "brain-mr", "match": {"Modality": ["MR"]}}
PROJECTS = (LUNG_CT, BRAIN_MR)


def generated_policy(stack: Stack) -> dict[str, Any]:
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT.account_id}:table"
    return research_role_policy(
        ResearchResources(
            archive_bucket=stack.archive,
            derived_bucket=stack.derived,
            quarantine_bucket=stack.quarantine,
            projects=tuple(str(p["name"]) for p in PROJECTS),
            queue_arn=stack.research_queue_arn,
            data_key_arn=stack.data_key,
            pseudonym_key_arn=stack.pseudonym_key,
            idempotency_table_arn=f"{table}/{stack.idempotency_table}",
            log_group_arn=(
                f"arn:aws:logs:{REGION}:{ACCOUNT.account_id}:log-group:/aws/lambda/{PREFIX}-research"
            ),
            via_service_endpoints=tuple(
                f"{s}.{REGION}.amazonaws.com" for s in ("dynamodb", "s3", "sqs")
            ),
        )
    )


@pytest.fixture
def research_role(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    """The stack with two projects; credentials of a role carrying the generated policy.

    IAM enforcement is left off (``INITIAL_NO_AUTH_ACTION_COUNT`` = inf) so a test can set up
    with the ingest function; ``enforce`` turns it on.
    """
    monkeypatch.setenv(env.RESEARCH_PROJECTS, json.dumps(list(PROJECTS)))
    session = assume_role_with_policy(monkeypatch, f"{PREFIX}-research", generated_policy(stack))
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    yield session


def enforce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)


def archived_key(ds: Any) -> str:
    return (
        f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}.dcm"
    )


def test_the_generated_policy_is_enough_to_copy_and_hold_for_review(
    stack: Stack, research_role: boto3.session.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Instances reach the archive through ingest before the research role's credentials matter.
    copied, burned = ct(BodyPartExamined="CHEST"), ct(BodyPartExamined="CHEST")
    burned.BurnedInAnnotation = "YES"
    for i, ds in enumerate((copied, burned)):
        put_inbox(stack, f"incoming/{i}.dcm", encode(ds))
    assert deliver(stack, receive(stack)) == [], "ingest failed a record"
    enforce(monkeypatch)

    sqs = research_role.client("sqs")
    messages = receive(stack, sqs, queue_url=stack.research_queue_url)
    assert messages, "the archive notified nothing"
    assert deliver_research(stack, messages, sqs) == []

    s3 = research_role.client("s3")
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    versions = s3.list_object_versions(Bucket=stack.derived).get("Versions", [])
    [copy] = versions
    assert copy["Key"].startswith("derived/lung-ct/studies/2.25."), copy["Key"]
    data = s3.get_object(Bucket=stack.derived, Key=copy["Key"])["Body"].read()
    assert str(copied.SOPInstanceUID).encode() not in data
    held = s3.list_object_versions(Bucket=stack.quarantine, Prefix="research-review/")
    [record] = held.get("Versions", [])
    body = json.loads(s3.get_object(Bucket=stack.quarantine, Key=record["Key"])["Body"].read())
    assert body["reason"] == "burned-in-annotation"
    assert body["archive_key"] == archived_key(burned)


REFUSED = [
    ("delete_object", "archive", {"Key": "studies/x.dcm"}),
    ("delete_object", "archive", {"Key": "studies/x.dcm", "VersionId": "v"}),
    ("delete_object", "derived", {"Key": "derived/lung-ct/x.dcm"}),
    ("delete_object", "derived", {"Key": "derived/lung-ct/x.dcm", "VersionId": "v"}),
    ("delete_object", "quarantine", {"Key": "research-review/lung-ct/x.json"}),
    ("delete_object", "quarantine", {"Key": "research-review/lung-ct/x.json", "VersionId": "v"}),
    ("get_object", "archive", {"Key": "outside-studies/x.dcm"}),
    ("get_object", "inbox", {"Key": "incoming/x.dcm"}),
    ("put_object", "derived", {"Key": "derived/other-project/x.dcm", "Body": b"x"}),
    ("put_object", "derived", {"Key": "x.dcm", "Body": b"x"}),
    ("put_object", "archive", {"Key": "studies/x.dcm", "Body": b"x"}),
    ("list_objects_v2", "quarantine", {}),
]


@pytest.mark.parametrize(
    ("operation", "bucket", "kwargs"),
    REFUSED,
    ids=[f"{o}-{b}-{'version' if 'VersionId' in k else k.get('Key', '')}" for o, b, k in REFUSED],
)
def test_the_role_is_refused_what_it_must_not_do(
    stack: Stack,
    research_role: boto3.session.Session,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
    bucket: str,
    kwargs: dict[str, Any],
) -> None:
    enforce(monkeypatch)
    s3 = research_role.client("s3")
    name = getattr(stack, bucket)
    with pytest.raises(ClientError) as error:
        getattr(s3, operation)(Bucket=name, **kwargs)
    code = error.value.response["Error"]["Code"]
    assert code == "AccessDenied", f"{operation} {kwargs} on {bucket} answered {code}"
