"""The human and workload roles under moto IAM enforcement, holding exactly the stack's documents.

What moto cannot evaluate is left to tests/infra/test_identity.py, on the planned documents: KMS
ARNs and ``kms:ViaService`` (moto authorises KMS against ``*`` only), the partner's ``s3:prefix``
listing condition and the trust conditions (moto ignores conditions), and the boundary's Allow
ceiling (moto ignores boundaries; see conftest.boundary_denies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import settings as moto_settings

from infra.iam_documents import (
    DUTIES,
    HUMAN_POLICIES,
    Document,
    GatewayTaskResources,
    HumanRoleResources,
    IngestResources,
    SiemDeliveryResources,
    VerifyResources,
    cloudtrail_logs_role_policy,
    flow_logs_role_policy,
    gateway_task_role_policy,
    human_trust_policy,
    ingest_role_policy,
    logs_to_firehose_role_policy,
    replication_role_policy,
    siem_delivery_role_policy,
    verify_role_policy,
)
from tests.identity.conftest import ACCOUNT, OBJECTS, PREFIX, REGION, AssumeRole, World

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KEY = f"arn:aws:kms:{REGION}:{ACCOUNT.account_id}:key/00000000-0000-4000-8000-000000000000"
LOGS = f"arn:aws:logs:{REGION}:{ACCOUNT.account_id}:log-group"


def resources(world: World) -> HumanRoleResources:
    return HumanRoleResources(
        account=ACCOUNT,
        name_prefix=PREFIX,
        inbox_bucket=world.buckets["inbox"],
        archive_bucket=world.buckets["archive"],
        quarantine_bucket=world.buckets["quarantine"],
        derived_bucket=world.buckets["derived"],
        archive_key_arn=KEY,
        ingest_queue_arn=world.queue_arn,
        dead_letter_queue_arn=world.dlq_arn,
        analyzer_arn=f"arn:aws:access-analyzer:{REGION}:{ACCOUNT.account_id}:analyzer/x",
        trail_bucket=world.buckets.get("trail", f"{PREFIX}-audit-trail"),
        logs_key_arn=KEY,
    )


def human(assume: AssumeRole, world: World, duty: str) -> Any:
    """An S3 client of the duty's role: its generated policy and trust, and the boundary."""
    session = assume(
        f"{PREFIX}-{duty}",
        HUMAN_POLICIES[duty](resources(world)),
        trust=human_trust_policy(trusted_principal_arns=[world.person_arn]),
    )
    return session.client("s3")


def denied(call: Callable[..., Any], **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as error:
        return error.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


def workload_policies(world: World) -> dict[str, Document]:
    """Every workload role's document, as the components generate it, on the moto buckets."""
    b = world.buckets
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT.account_id}:table"
    return {
        "ingest": ingest_role_policy(
            IngestResources(
                inbox_bucket=b["inbox"],
                archive_bucket=b["archive"],
                quarantine_bucket=b["quarantine"],
                queue_arn=world.queue_arn,
                data_key_arn=KEY,
                signing_key_arn=KEY,
                pseudonym_key_arn=KEY,
                index_table_arn=f"{table}/index",
                idempotency_table_arn=f"{table}/idempotency",
                log_group_arn=f"{LOGS}:/aws/lambda/{PREFIX}-ingest",
            )
        ),
        "verify": verify_role_policy(
            VerifyResources(
                archive_bucket=b["archive"],
                data_key_arn=KEY,
                signing_key_arn=KEY,
                index_table_arn=f"{table}/index",
                log_group_arn=f"{LOGS}:/aws/lambda/{PREFIX}-verify",
                failure_queue_arn=world.dlq_arn,
            )
        ),
        "gateway-task": gateway_task_role_policy(
            GatewayTaskResources(
                inbox_bucket=b["inbox"],
                data_key_arn=KEY,
                s3_service_endpoint=ACCOUNT.service_endpoint("s3"),
            )
        ),
        "replication": replication_role_policy(
            ACCOUNT,
            source_bucket=b["archive"],
            destination_bucket=f"{PREFIX}-replica",
            source_key_arn=KEY,
            destination_key_arn=KEY,
            destination_region="us-west-2",
        ),
        "siem-delivery": siem_delivery_role_policy(
            SiemDeliveryResources(
                bucket_names=(f"{PREFIX}-siem-backup",),
                logs_key_arn=KEY,
                error_log_group_arn=f"{LOGS}:/aws/kinesisfirehose/{PREFIX}-siem",
                s3_service_endpoint=ACCOUNT.service_endpoint("s3"),
            )
        ),
        "trail-logs": cloudtrail_logs_role_policy(f"{LOGS}:/{PREFIX}/cloudtrail"),
        "log-shipping": logs_to_firehose_role_policy(
            f"arn:aws:firehose:{REGION}:{ACCOUNT.account_id}:deliverystream/{PREFIX}-siem"
        ),
        "flow-logs": flow_logs_role_policy(ACCOUNT, f"{LOGS}:/{PREFIX}/vpc/flow-logs"),
    }


# --------------------------------------------------------------------------------- human roles


def test_the_viewer_reads_archive_and_derived_objects(assume: AssumeRole, world: World) -> None:
    s3 = human(assume, world, "imaging-viewer")
    for purpose in ("archive", "derived"):
        for key in OBJECTS[purpose]:
            assert s3.get_object(Bucket=world.buckets[purpose], Key=key)["Body"].read() == b"DICM"


# Unlocked buckets: Object Lock would refuse the version deletions below by itself, so only IAM can.
@pytest.mark.parametrize("object_lock", [False])
@pytest.mark.parametrize("purpose", ["archive", "derived"])
def test_the_viewer_cannot_write_or_delete(assume: AssumeRole, world: World, purpose: str) -> None:
    s3 = human(assume, world, "imaging-viewer")
    bucket = world.buckets[purpose]
    key = OBJECTS[purpose][0]
    assert denied(s3.put_object, Bucket=bucket, Key="new.dcm", Body=b"x"), f"put in {bucket}"
    assert denied(s3.put_object, Bucket=bucket, Key=key, Body=b"x"), f"overwrite in {bucket}"
    assert denied(s3.delete_object, Bucket=bucket, Key=key), f"delete marker in {bucket}"
    assert denied(
        s3.delete_object, Bucket=bucket, Key=key, VersionId=world.versions[purpose][key]
    ), f"version deletion in {bucket}"


def test_the_viewer_cannot_read_the_inbox_or_quarantine(assume: AssumeRole, world: World) -> None:
    s3 = human(assume, world, "imaging-viewer")
    for purpose in ("inbox", "quarantine"):
        assert denied(s3.get_object, Bucket=world.buckets[purpose], Key=OBJECTS[purpose][0])


def test_the_partner_reads_only_under_derived(assume: AssumeRole, world: World) -> None:
    s3 = human(assume, world, "integration-partner")
    derived = world.buckets["derived"]
    assert s3.get_object(Bucket=derived, Key="derived/study-1/deid.dcm")["Body"].read() == b"DICM"
    assert denied(s3.get_object, Bucket=derived, Key="identified/study-1/report.json")
    for purpose in ("inbox", "archive", "quarantine"):
        assert denied(s3.get_object, Bucket=world.buckets[purpose], Key=OBJECTS[purpose][0])
    assert denied(s3.put_object, Bucket=derived, Key="derived/new.dcm", Body=b"x")


def test_the_auditor_reads_no_imaging_object(assume: AssumeRole, world: World) -> None:
    s3 = human(assume, world, "security-auditor")
    for purpose, keys in OBJECTS.items():
        for key in keys:
            assert denied(s3.get_object, Bucket=world.buckets[purpose], Key=key), (
                f"auditor read {purpose}/{key}"
            )


def test_the_operator_redrives_but_reads_no_object(assume: AssumeRole, world: World) -> None:
    session = assume(
        f"{PREFIX}-imaging-operator",
        HUMAN_POLICIES["imaging-operator"](resources(world)),
        trust=human_trust_policy(trusted_principal_arns=[world.person_arn]),
    )
    sqs = session.client("sqs")
    sqs.receive_message(QueueUrl=world.dlq_url)  # the DLQ: allowed (redrive reads it)
    queue_url = world.dlq_url.removesuffix("-dlq")
    with pytest.raises(ClientError):
        sqs.receive_message(QueueUrl=queue_url)  # the ingest queue: send only
    s3 = session.client("s3")
    for purpose, keys in OBJECTS.items():
        assert denied(s3.get_object, Bucket=world.buckets[purpose], Key=keys[0]), purpose


def test_break_glass_reads_everything(assume: AssumeRole, world: World) -> None:
    s3 = human(assume, world, "break-glass")
    for purpose, keys in OBJECTS.items():
        for key in keys:
            assert s3.get_object(Bucket=world.buckets[purpose], Key=key)["Body"].read() == b"DICM"


@pytest.mark.parametrize("object_lock", [False])  # the refusal must come from IAM
@pytest.mark.parametrize("purpose", sorted(OBJECTS))
def test_break_glass_never_deletes(assume: AssumeRole, world: World, purpose: str) -> None:
    s3 = human(assume, world, "break-glass")
    bucket = world.buckets[purpose]
    key = OBJECTS[purpose][0]
    assert denied(s3.delete_object, Bucket=bucket, Key=key), f"delete marker in {bucket}"
    assert denied(
        s3.delete_object, Bucket=bucket, Key=key, VersionId=world.versions[purpose][key]
    ), f"version deletion in {bucket}"
    assert denied(s3.put_object, Bucket=bucket, Key=key, Body=b"x"), f"overwrite in {bucket}"


# ------------------------------------------------------------------ nobody bypasses retention


def bypass_deletion(s3: Any, world: World) -> Callable[[], Any]:
    key = OBJECTS["archive"][0]
    return lambda: s3.delete_object(
        Bucket=world.buckets["archive"],
        Key=key,
        VersionId=world.versions["archive"][key],
        BypassGovernanceRetention=True,
    )


@pytest.mark.parametrize("duty", DUTIES)
def test_no_human_role_bypasses_governance_retention(
    assume: AssumeRole, world: World, duty: str
) -> None:
    s3 = human(assume, world, duty)
    assert denied(lambda: bypass_deletion(s3, world)()), f"{duty} deleted a GOVERNANCE version"


@pytest.mark.parametrize(
    "workload",
    [
        "ingest",
        "verify",
        "gateway-task",
        "replication",
        "siem-delivery",
        "trail-logs",
        "log-shipping",
        "flow-logs",
    ],
)
def test_no_workload_role_bypasses_governance_retention(
    assume: AssumeRole, world: World, workload: str
) -> None:
    s3 = assume(f"{PREFIX}-{workload}", workload_policies(world)[workload]).client("s3")
    assert denied(lambda: bypass_deletion(s3, world)()), f"{workload} deleted a GOVERNANCE version"


GRANTS_DELETION: Document = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AMistakenOrEscalatedGrant",
            "Effect": "Allow",
            "Action": ["s3:BypassGovernanceRetention", "s3:DeleteObjectVersion"],
            "Resource": "arn:aws:s3:::*",
        }
    ],
}


def test_the_boundary_refuses_the_bypass_even_to_a_role_granted_it(
    assume: AssumeRole, world: World
) -> None:
    s3 = assume(f"{PREFIX}-granted", GRANTS_DELETION).client("s3")
    assert denied(lambda: bypass_deletion(s3, world)())


def test_without_the_boundary_the_same_grant_would_delete(
    assume: AssumeRole, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control: the refusal above comes from the boundary, not from moto or Object Lock.
    s3 = assume(f"{PREFIX}-unbounded", GRANTS_DELETION, bounded=False).client("s3")
    bypass_deletion(s3, world)()
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    key = OBJECTS["archive"][0]
    admin = boto3.client("s3", region_name=REGION)
    remaining = admin.list_object_versions(Bucket=world.buckets["archive"], Prefix=key)
    assert not remaining.get("Versions"), "the unbounded grant should have deleted the version"


GRANTS_VERSION_DELETION_AND_BUCKET_CHANGES: Document = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AMistakenOrEscalatedGrant",
            "Effect": "Allow",
            "Action": ["s3:DeleteObjectVersion", "s3:PutBucketLogging", "s3:PutBucketVersioning"],
            "Resource": ["arn:aws:s3:::*", "arn:aws:s3:::*/*"],
        }
    ],
}


def _delete_archive_version(s3: Any, world: World) -> Any:
    key = OBJECTS["archive"][0]
    return s3.delete_object(
        Bucket=world.buckets["archive"], Key=key, VersionId=world.versions["archive"][key]
    )


@pytest.mark.parametrize("object_lock", [False])
def test_the_boundary_refuses_version_deletion_on_an_unlocked_bucket(
    assume: AssumeRole, world: World
) -> None:
    # No Object Lock here: the only thing between the grant and the deletion is the boundary.
    s3 = assume(f"{PREFIX}-granted", GRANTS_VERSION_DELETION_AND_BUCKET_CHANGES).client("s3")
    assert denied(lambda: _delete_archive_version(s3, world)), "version deleted"
    archive = world.buckets["archive"]
    # s3:PutBucket* in the boundary (a wildcard Deny) covers logging and versioning changes.
    assert denied(
        s3.put_bucket_versioning,
        Bucket=archive,
        VersioningConfiguration={"Status": "Suspended"},
    ), "versioning suspended"
    assert denied(s3.put_bucket_logging, Bucket=archive, BucketLoggingStatus={}), "logging off"


@pytest.mark.parametrize("object_lock", [False])
def test_without_the_boundary_the_same_grant_deletes_on_an_unlocked_bucket(
    assume: AssumeRole, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control: moto enforces the grant, so the refusals above come from the boundary.
    s3 = assume(
        f"{PREFIX}-unbounded", GRANTS_VERSION_DELETION_AND_BUCKET_CHANGES, bounded=False
    ).client("s3")
    _delete_archive_version(s3, world)
    s3.put_bucket_versioning(
        Bucket=world.buckets["archive"], VersioningConfiguration={"Status": "Suspended"}
    )
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    admin = boto3.client("s3", region_name=REGION)
    key = OBJECTS["archive"][0]
    remaining = admin.list_object_versions(Bucket=world.buckets["archive"], Prefix=key)
    assert not remaining.get("Versions"), "the unbounded grant should have deleted the version"


def test_object_lock_refuses_version_deletion_even_with_an_iam_grant(
    assume: AssumeRole, world: World
) -> None:
    # The lock-focused half, kept apart: on the locked archive, an unbounded role granted
    # s3:DeleteObjectVersion (without the bypass) still cannot delete a retained version.
    s3 = assume(
        f"{PREFIX}-unbounded", GRANTS_VERSION_DELETION_AND_BUCKET_CHANGES, bounded=False
    ).client("s3")
    assert denied(lambda: _delete_archive_version(s3, world)), "Object Lock let a version go"


def test_the_trust_names_the_federation_source(world: World) -> None:
    # moto ignores trust conditions; the MFA conditions are asserted on the plan.
    trust = human_trust_policy(trusted_principal_arns=[world.person_arn])
    assert trust["Statement"][0]["Principal"] == {"AWS": [world.person_arn]}
