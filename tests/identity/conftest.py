"""moto fixtures: the imaging buckets, the ingest queues, and roles holding the stack's documents.

Each role is created in moto with the document the stack's pure function builds (the same
function the component calls), then assumed; moto then enforces IAM on every call. moto limits
(OFFLINE-FACTS): S3 is enforced down to key prefixes and SQS by queue ARN; Conditions are ignored
(a conditional Deny always denies); KMS is authorised against ``*`` only; resource policies and
permissions boundaries are not evaluated. So:

- the buckets carry no SSE-KMS here (S3 authorisation does not depend on it; the kms:Decrypt
  grants, their ``kms:ViaService`` conditions and the archive key policy are checked on the plan in
  tests/infra/test_identity.py);
- the boundary is attached as its explicit Deny statements only (see ``boundary_denies``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto import settings as moto_settings
from moto.core.responses import ActionAuthenticatorMixin

from infra.components.archive import bucket_name
from infra.iam_documents import Account, Document, permissions_boundary_policy

REGION = "us-east-1"
ACCOUNT = Account(account_id="123456789012", partition="aws", region=REGION)
PREFIX = "pacs-test"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
# The objects every test looks for, by bucket purpose.
OBJECTS: dict[str, tuple[str, ...]] = {
    "inbox": ("incoming/a.dcm",),
    "archive": ("studies/1.2.3/instance.dcm",),
    "quarantine": ("rejected/b.dcm",),
    "derived": ("derived/study-1/deid.dcm", "identified/study-1/report.json"),
}


@dataclass(frozen=True)
class World:
    """Names and ARNs of the moto resources."""

    buckets: dict[str, str]
    # purpose -> key -> version id
    versions: dict[str, dict[str, str]]
    queue_arn: str
    dlq_arn: str
    dlq_url: str
    person_keys: dict[str, str]
    person_arn: str


def boundary_denies() -> Document:
    """The boundary's explicit Deny statements, as moto can evaluate them.

    In AWS a role's effective permissions are its policies intersected with the boundary, and an
    explicit Deny anywhere wins. moto evaluates the union of a role's policies and ignores
    boundaries: attaching the boundary's Deny statements as a policy reproduces exactly the
    explicit-deny half. The Allow ceiling cannot be modelled by a union (it would widen the role);
    that it names every denied action is asserted on the plan.
    """
    document = permissions_boundary_policy(ACCOUNT, PREFIX)
    denies = [s for s in document["Statement"] if s["Effect"] == "Deny"]
    return {"Version": document["Version"], "Statement": denies}


def _bucket(s3: Any, purpose: str, object_lock: bool) -> str:
    name = bucket_name(ACCOUNT, PREFIX, purpose, REGION)
    locked = object_lock and purpose in ("archive", "quarantine")
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if locked:
        # GOVERNANCE: the mode whose retention s3:BypassGovernanceRetention could lift.
        s3.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
            },
        )
    return name


@pytest.fixture
def object_lock() -> bool:
    """Whether archive and quarantine carry Object Lock (GOVERNANCE, 1 day) as in the stack.

    A test that proves a refusal comes from IAM parametrizes this to False
    (``@pytest.mark.parametrize("object_lock", [False])``): on a locked bucket Object Lock refuses
    version deletions by itself, so the same assertion would pass with an IAM grant.
    """
    return True


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, object_lock: bool) -> Iterator[World]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        buckets = {purpose: _bucket(s3, purpose, object_lock) for purpose in OBJECTS}
        versions: dict[str, dict[str, str]] = {}
        for purpose, keys in OBJECTS.items():
            for key in keys:
                put = s3.put_object(
                    Bucket=buckets[purpose], Key=key, Body=b"DICM", ChecksumAlgorithm="SHA256"
                )
                versions.setdefault(purpose, {})[key] = put["VersionId"]
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName=f"{PREFIX}-ingest-dlq")["QueueUrl"]
        queue_url = sqs.create_queue(QueueName=f"{PREFIX}-ingest")["QueueUrl"]

        def arn(url: str) -> str:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            return str(attributes["Attributes"]["QueueArn"])

        iam = boto3.client("iam", region_name=REGION)
        # The person (or IdP session) who assumes the roles; may call sts:AssumeRole only.
        person = iam.create_user(UserName="person")["User"]
        iam.put_user_policy(
            UserName="person",
            PolicyName="assume",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
                }
            ),
        )
        keys = iam.create_access_key(UserName="person")["AccessKey"]
        yield World(
            buckets=buckets,
            versions=versions,
            queue_arn=arn(queue_url),
            dlq_arn=arn(dlq_url),
            dlq_url=dlq_url,
            person_keys={
                "aws_access_key_id": keys["AccessKeyId"],
                "aws_secret_access_key": keys["SecretAccessKey"],
            },
            person_arn=person["Arn"],
        )


AssumeRole = Callable[..., boto3.session.Session]


@pytest.fixture
def assume(world: World, monkeypatch: pytest.MonkeyPatch) -> AssumeRole:
    """Create a role with these policies (and the boundary's denies), enforce IAM, assume it."""

    def run(
        name: str, *policies: Document, trust: Document | None = None, bounded: bool = True
    ) -> boto3.session.Session:
        monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(
                trust
                or {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": world.person_arn},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]
        attached = [*policies, *((boundary_denies(),) if bounded else ())]
        for i, policy in enumerate(attached):
            iam.put_role_policy(
                RoleName=name, PolicyName=f"policy-{i}", PolicyDocument=json.dumps(policy)
            )
        monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
        monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
        sts = boto3.client("sts", region_name=REGION, aws_session_token=None, **world.person_keys)
        creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="person")["Credentials"]
        return boto3.session.Session(
            region_name=REGION,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    return run
