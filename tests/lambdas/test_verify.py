"""The verify function against moto: recompute digests, check signed manifests, report tampering."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import boto3
import pytest

from lambdas.manifest import parse_sidecar, sidecar_document
from lambdas.settings import VerifySettings
from lambdas.verify import Verifier, run
from tests.lambdas.conftest import REGION, Stack, deliver, put_inbox, receive, s3_client
from tests.lambdas.factory import ct, encode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def verifier(stack: Stack, sample_size: int = 10) -> Verifier:
    settings = VerifySettings(
        archive_bucket=stack.archive,
        signing_key_arn=stack.signing_key,
        index_table=stack.index_table,
        sample_size=sample_size,
    )
    return Verifier(
        settings,
        s3=s3_client(),
        kms=boto3.client("kms", region_name=REGION),
        dynamodb=boto3.client("dynamodb", region_name=REGION),
    )


def archive(stack: Stack, count: int) -> list[str]:
    uids = []
    for n in range(count):
        ds = ct()
        put_inbox(stack, f"v{n}.dcm", encode(ds))
        uids.append(str(ds.SOPInstanceUID))
    assert deliver(stack, receive(stack)) == []
    return uids


def row(stack: Stack, uid: str) -> dict[str, Any]:
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=stack.index_table, Key={"sop_instance_uid": {"S": uid}}
    )
    return dict(item["Item"])


def test_archived_instances_verify(stack: Stack) -> None:
    uids = archive(stack, 3)
    assert run(verifier(stack), {"sop_instance_uids": uids}) == {"checked": 3, "failed": 0}


def test_the_scheduled_sample_covers_the_index_once(stack: Stack) -> None:
    archive(stack, 4)
    assert run(verifier(stack, sample_size=10), {}) == {"checked": 4, "failed": 0}
    assert run(verifier(stack, sample_size=2), {})["checked"] == 2


def test_an_index_digest_that_disagrees_is_an_integrity_failure(stack: Stack) -> None:
    [uid] = archive(stack, 1)
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=stack.index_table,
        Key={"sop_instance_uid": {"S": uid}},
        UpdateExpression="SET sha256 = :x",
        ExpressionAttributeValues={":x": {"S": "0" * 64}},
    )
    verdict = verifier(stack).verify(row(stack, uid))
    assert "object SHA-256 differs from the index" in verdict.problems


def test_a_forged_manifest_fails_the_signature_check(stack: Stack) -> None:
    [uid] = archive(stack, 1)
    current = row(stack, uid)
    s3 = s3_client()
    original = parse_sidecar(
        s3.get_object(
            Bucket=stack.archive,
            Key=current["sidecar_key"]["S"],
            VersionId=current["sidecar_version_id"]["S"],
        )["Body"].read()
    )
    body = json.loads(original.manifest_bytes)
    body["archived_at"] = "2000-01-01T00:00:00.000Z"  # any change, same fields
    forged = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    written = s3.put_object(
        Bucket=stack.archive,
        Key=current["sidecar_key"]["S"],
        Body=sidecar_document(forged, original.signature, original.signing_key_id),
        ChecksumAlgorithm="SHA256",
    )
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=stack.index_table,
        Key={"sop_instance_uid": {"S": uid}},
        UpdateExpression="SET sidecar_version_id = :v",
        ExpressionAttributeValues={":v": {"S": written["VersionId"]}},
    )
    verdict = verifier(stack).verify(row(stack, uid))
    assert verdict.problems == ["manifest signature does not verify"]


def test_an_unknown_uid_is_reported_not_raised(stack: Stack) -> None:
    assert run(verifier(stack), {"sop_instance_uids": ["1.2.3"]}) == {"checked": 1, "failed": 1}


def test_kms_rejecting_a_signature_is_a_failed_check_not_a_crash(stack: Stack) -> None:
    """Real KMS raises KMSInvalidSignatureException where moto answers SignatureValid=false."""
    uids = archive(stack, 2)
    checker = verifier(stack)
    rejection = checker.kms.exceptions.KMSInvalidSignatureException(
        {"Error": {"Code": "KMSInvalidSignatureException", "Message": "x"}}, "Verify"
    )
    with mock.patch.object(checker.kms, "verify", side_effect=rejection):
        assert run(checker, {"sop_instance_uids": uids}) == {"checked": 2, "failed": 2}


def test_an_unreadable_archived_version_fails_that_row_only(stack: Stack) -> None:
    first, second = archive(stack, 2)
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=stack.index_table,
        Key={"sop_instance_uid": {"S": first}},
        UpdateExpression="SET archive_version_id = :v",
        ExpressionAttributeValues={":v": {"S": "no-such-version"}},
    )
    assert run(verifier(stack), {"sop_instance_uids": [first, second]}) == {
        "checked": 2,
        "failed": 1,
    }
