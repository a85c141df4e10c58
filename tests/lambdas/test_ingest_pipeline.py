"""The ingest function end to end against moto: S3 → SQS → handler → archive/quarantine/index."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from lambdas.manifest import Manifest, parse_sidecar
from tests.lambdas.conftest import REGION, Stack, deliver, put_inbox, receive, s3_client
from tests.lambdas.factory import HOSTILE, PATIENT_ID, PHI_STRINGS, ct, encode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the factory writes bad values


@pytest.fixture
def logs(stack: Stack, caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Everything the functions log: the Powertools JSON stream plus any stdlib logger."""
    import lambdas.ingest as ingest

    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    handler = ingest.logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    handler.setStream(previous)  # type: ignore[attr-defined]
    stream.write("\n".join(r.getMessage() for r in caplog.records))


def audit_events(logs: io.StringIO) -> list[dict[str, Any]]:
    events = []
    for line in logs.getvalue().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "outcome" in record:  # an ingest audit event (docs/audit-events.md)
                events.append(record)
    return events


def index_row(stack: Stack, uid: str) -> dict[str, Any] | None:
    client = boto3.client("dynamodb", region_name=REGION)
    item = client.get_item(TableName=stack.index_table, Key={"sop_instance_uid": {"S": uid}})
    return item.get("Item")


def sidecar_of(stack: Stack, uid: str) -> tuple[dict[str, Any], Any]:
    """The index row of an archived instance and its sidecar object (as get_object returns it)."""
    row = index_row(stack, uid)
    assert row is not None, f"no index row for {uid}"
    obj = s3_client().get_object(
        Bucket=stack.archive, Key=row["sidecar_key"]["S"], VersionId=row["sidecar_version_id"]["S"]
    )
    return row, obj


def versions(bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    listing = s3_client().list_object_versions(Bucket=bucket, Prefix=prefix)
    return list(listing.get("Versions", []))


def ingest(stack: Stack, key: str, body: bytes) -> list[str]:
    put_inbox(stack, key, body)
    return deliver(stack, receive(stack))


def test_accepted_object_is_archived_worm_under_its_uids(stack: Stack, logs: io.StringIO) -> None:
    ds = ct()
    data = encode(ds)
    assert ingest(stack, "modality/a.dcm", data) == []

    key = (
        f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/"
        f"instances/{ds.SOPInstanceUID}.dcm"
    )
    s3 = s3_client()
    head = s3.head_object(Bucket=stack.archive, Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == stack.data_key
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"]
    assert s3.get_object(Bucket=stack.archive, Key=key)["Body"].read() == data
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=stack.archive, Key=key, VersionId=head["VersionId"])
    events = audit_events(logs)
    assert [e["outcome"] for e in events] == ["archived"]
    assert events[0]["archive_key"] == key
    assert events[0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_sidecar_signature_verifies_outside_moto_with_the_public_key(stack: Stack) -> None:
    ds = ct()
    data = encode(ds)
    ingest(stack, "b.dcm", data)
    row, sidecar_obj = sidecar_of(stack, ds.SOPInstanceUID)
    assert sidecar_obj["ObjectLockMode"] == "COMPLIANCE", "the sidecar must be WORM too"
    sidecar = parse_sidecar(sidecar_obj["Body"].read())

    der = boto3.client("kms", region_name=REGION).get_public_key(KeyId=stack.signing_key)
    public_key = load_der_public_key(der["PublicKey"])
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(sidecar.signature, sidecar.manifest_bytes, ec.ECDSA(hashes.SHA256()))

    manifest = sidecar.manifest
    assert manifest.sha256 == hashlib.sha256(data).hexdigest() and manifest.size == len(data)
    assert manifest.version_id == row["archive_version_id"]["S"]
    assert manifest.sop_instance_uid == ds.SOPInstanceUID
    assert manifest.signing_key_id == stack.signing_key
    assert manifest.signing_algorithm == "ECDSA_SHA_256"
    tampered = manifest.canonical().replace(manifest.sha256.encode(), b"0" * 64)
    with pytest.raises(InvalidSignature):
        public_key.verify(sidecar.signature, tampered, ec.ECDSA(hashes.SHA256()))
    assert isinstance(Manifest.from_canonical(sidecar.manifest_bytes), Manifest)


def test_index_row_holds_digest_locations_and_a_keyed_patient_pseudonym(stack: Stack) -> None:
    ds = ct()
    data = encode(ds)
    ingest(stack, "c.dcm", data)
    row = index_row(stack, ds.SOPInstanceUID)
    assert row is not None
    assert row["status"]["S"] == "archived"
    assert row["sha256"]["S"] == hashlib.sha256(data).hexdigest()
    assert row["archive_bucket"]["S"] == stack.archive
    assert row["study_instance_uid"]["S"] == ds.StudyInstanceUID
    kms = boto3.client("kms", region_name=REGION)
    expected = kms.generate_mac(
        KeyId=stack.pseudonym_key,
        MacAlgorithm="HMAC_SHA_256",
        Message=b"cloud-pacs/patient-key/1\x00\x00" + PATIENT_ID.encode(),
    )["Mac"].hex()
    assert row["patient_key"]["S"] == expected
    flat = json.dumps(row)
    for phi in PHI_STRINGS:
        assert phi not in flat, f"index row carries {phi!r}"


def test_same_patient_gets_the_same_pseudonym_across_studies(stack: Stack) -> None:
    first, second = ct(), ct()
    ingest(stack, "d1.dcm", encode(first))
    ingest(stack, "d2.dcm", encode(second))
    a, b = index_row(stack, first.SOPInstanceUID), index_row(stack, second.SOPInstanceUID)
    assert a and b and a["patient_key"] == b["patient_key"]
    assert a["study_instance_uid"] != b["study_instance_uid"]


@pytest.mark.parametrize(
    "name", ["pe-polyglot", "truncated-half", "uid-too-long", "short-pixel-data", "deflate-bomb"]
)
def test_rejected_object_is_quarantined_with_its_reasons(
    stack: Stack, logs: io.StringIO, name: str
) -> None:
    code, make = HOSTILE[name]
    data = make()
    version = put_inbox(stack, f"in/{name}.dcm", data)
    assert deliver(stack, receive(stack)) == []

    quarantined = versions(stack.quarantine)
    assert len(quarantined) == 1, "exactly one quarantine copy"
    s3 = s3_client()
    key = quarantined[0]["Key"]
    head = s3.head_object(Bucket=stack.quarantine, Key=key)
    assert code in head["Metadata"]["reason-codes"].split(",")
    assert head["Metadata"]["source-version-id"] == version
    assert head["ServerSideEncryption"] == "aws:kms"
    tags = {
        t["Key"]: t["Value"]
        for t in s3.get_object_tagging(Bucket=stack.quarantine, Key=key)["TagSet"]
    }
    assert code in tags["reasons"].split()
    assert s3.get_object(Bucket=stack.quarantine, Key=key)["Body"].read() == data
    assert versions(stack.archive) == [], "nothing reaches the archive"
    assert s3.get_object(Bucket=stack.inbox, Key=f"in/{name}.dcm", VersionId=version)
    events = audit_events(logs)
    assert [e["outcome"] for e in events] == ["quarantined"]
    assert code in [r["code"] for r in events[0]["reasons"]]


def test_same_event_three_times_has_one_effect(stack: Stack, logs: io.StringIO) -> None:
    ds = ct()
    put_inbox(stack, "dup.dcm", encode(ds))
    messages = receive(stack)
    assert len(messages) == 1
    for _ in range(3):
        assert deliver(stack, messages) == []

    assert len(versions(stack.archive, "studies/")) == 2, "one instance + one sidecar version"
    table = boto3.client("dynamodb", region_name=REGION).scan(TableName=stack.index_table)
    assert table["Count"] == 1
    assert [e["outcome"] for e in audit_events(logs)] == ["archived"]


def test_a_resend_of_the_same_instance_is_a_no_op_success(stack: Stack, logs: io.StringIO) -> None:
    data = encode(ct())
    ingest(stack, "first.dcm", data)
    assert ingest(stack, "resend.dcm", data) == []
    assert len(versions(stack.archive, "studies/")) == 2
    assert [e["outcome"] for e in audit_events(logs)] == ["archived", "duplicate"]


def test_conflicting_duplicate_is_quarantined_and_the_original_untouched(
    stack: Stack, logs: io.StringIO
) -> None:
    original = ct()
    ingest(stack, "orig.dcm", encode(original))
    before = versions(stack.archive, "studies/")
    row_before = index_row(stack, original.SOPInstanceUID)

    impostor = ct(SOPInstanceUID=original.SOPInstanceUID)
    impostor.file_meta.MediaStorageSOPInstanceUID = original.SOPInstanceUID
    assert ingest(stack, "impostor.dcm", encode(impostor)) == []

    assert versions(stack.archive, "studies/") == before
    assert index_row(stack, original.SOPInstanceUID) == row_before
    [quarantined] = versions(stack.quarantine)
    head = s3_client().head_object(Bucket=stack.quarantine, Key=quarantined["Key"])
    assert head["Metadata"]["reason-codes"] == "conflicting-duplicate"
    assert [e["outcome"] for e in audit_events(logs)] == ["archived", "quarantined"]


def test_a_transient_error_fails_only_its_record_and_the_retry_succeeds(stack: Stack) -> None:
    good, flaky = ct(), ct()
    put_inbox(stack, "good.dcm", encode(good))
    put_inbox(stack, "flaky.dcm", encode(flaky))
    messages = receive(stack)
    assert len(messages) == 2

    import lambdas.ingest as ingest_module

    runtime = ingest_module.runtime()
    real_copy = runtime.pipeline.s3.copy_object

    def throttled(**kwargs: Any) -> Any:
        if kwargs["CopySource"]["Key"] == "flaky.dcm":
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "x"}}, "CopyObject")
        return real_copy(**kwargs)

    with mock.patch.object(runtime.pipeline.s3, "copy_object", side_effect=throttled):
        failed = deliver(stack, messages)
    flaky_id = next(m["MessageId"] for m in messages if "flaky.dcm" in m["Body"])
    assert failed == [flaky_id]
    assert index_row(stack, good.SOPInstanceUID)["status"]["S"] == "archived"  # type: ignore[index]

    retry = receive(stack)
    assert [m["MessageId"] for m in retry] == [flaky_id]
    assert deliver(stack, retry) == []
    assert index_row(stack, flaky.SOPInstanceUID)["status"]["S"] == "archived"  # type: ignore[index]


def test_a_crash_after_the_claim_is_resumed_without_a_second_copy(stack: Stack) -> None:
    ds = ct()
    put_inbox(stack, "crash.dcm", encode(ds))
    messages = receive(stack)
    import lambdas.ingest as ingest_module

    runtime = ingest_module.runtime()
    with mock.patch.object(runtime.pipeline.kms, "sign", side_effect=RuntimeError("crash")):
        assert len(deliver(stack, messages)) == 1
    assert index_row(stack, ds.SOPInstanceUID)["status"]["S"] == "pending"  # type: ignore[index]
    assert deliver(stack, receive(stack)) == []
    instance = [v for v in versions(stack.archive) if v["Key"].endswith(".dcm")]
    assert len(instance) == 1, "the retry reuses the archived version"
    assert index_row(stack, ds.SOPInstanceUID)["status"]["S"] == "archived"  # type: ignore[index]


def test_a_poison_message_ends_in_the_dead_letter_queue(stack: Stack) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody="not an s3 event")
    for _ in range(3):  # maxReceiveCount in the fixture
        messages = receive(stack)
        assert len(messages) == 1
        assert len(deliver(stack, messages)) == 1
    assert receive(stack) == []
    dead = sqs.receive_message(QueueUrl=stack.dlq_url).get("Messages", [])
    assert [m["Body"] for m in dead] == ["not an s3 event"]


def test_no_phi_in_any_log_line(stack: Stack, logs: io.StringIO) -> None:
    for name in ("pe-polyglot", "uid-letters", "patient-id-empty", "truncated-end"):
        put_inbox(stack, f"{name}.dcm", HOSTILE[name][1]())
    put_inbox(stack, "ok.dcm", encode(ct()))
    deliver(stack, receive(stack))
    captured = logs.getvalue()
    assert captured.count('"outcome"') == 5
    for phi in PHI_STRINGS:
        assert phi not in captured, f"a log line carries {phi!r}"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_runbooks_openssl_check_verifies_the_sidecar(stack: Stack, tmp_path: Path) -> None:
    """docs/runbooks/restore.md step 2, run for real with openssl."""
    ds = ct()
    ingest(stack, "runbook.dcm", encode(ds))
    sidecar = parse_sidecar(sidecar_of(stack, ds.SOPInstanceUID)[1]["Body"].read())
    der = boto3.client("kms", region_name=REGION).get_public_key(KeyId=stack.signing_key)
    (tmp_path / "signing.der").write_bytes(der["PublicKey"])
    (tmp_path / "manifest.json").write_bytes(sidecar.manifest_bytes)
    (tmp_path / "manifest.sig").write_bytes(sidecar.signature)
    commands = [
        [
            "openssl",
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            "signing.der",
            "-out",
            "signing.pem",
        ],
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            "signing.pem",
            "-signature",
            "manifest.sig",
            "manifest.json",
        ],
    ]
    for command in commands:
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
    assert "Verified OK" in result.stdout
    (tmp_path / "manifest.json").write_bytes(
        sidecar.manifest_bytes.replace(b'"size":', b'"size":1')
    )
    tampered = subprocess.run(commands[1], cwd=tmp_path, capture_output=True, check=False)
    assert tampered.returncode != 0


def test_an_oversize_object_is_quarantined_by_a_managed_multipart_copy() -> None:
    """Objects over 5 GiB cannot be copied in one request; boto3's managed copy takes only the
    arguments s3transfer allows, so an unsupported one would crash exactly when it matters."""
    from s3transfer.manager import TransferManager

    from lambdas.dicom_checks import Inspection, Reason
    from lambdas.pipeline import Pipeline, Source
    from lambdas.settings import IngestSettings

    settings = IngestSettings(
        archive_bucket="a",
        quarantine_bucket="q",
        data_key_arn="arn:aws:kms:::key/d",
        signing_key_arn="s",
        pseudonym_key_arn="p",
        index_table="i",
        idempotency_table="t",
    )
    s3 = mock.MagicMock()
    pipeline = Pipeline(settings, s3=s3, kms=mock.MagicMock(), dynamodb=mock.MagicMock())
    too_large = Reason("too-large", "object is larger than the cap")
    huge = Inspection(size=6 * 1024**3, sha256=None, reasons=(too_large,))
    outcome = pipeline._quarantine(Source("inbox", "big.dcm", "v1"), huge, [too_large])

    assert outcome.outcome == "quarantined"
    s3.copy_object.assert_not_called()
    (copy_source, bucket, key, extra), _ = s3.copy.call_args
    assert bucket == "q" and key == outcome.quarantine_key
    assert copy_source == {"Bucket": "inbox", "Key": "big.dcm", "VersionId": "v1"}
    assert set(extra) <= set(TransferManager.ALLOWED_COPY_ARGS), set(extra) - set(
        TransferManager.ALLOWED_COPY_ARGS
    )
    assert extra["SSEKMSKeyId"] == settings.data_key_arn
    assert "reason=too-large" in extra["Tagging"]


def _pending_claim(stack: Stack, uid: str, *, sha256: str, source: str, age: timedelta) -> None:
    """An index claim as another attempt left it."""
    claimed = (datetime.now(UTC) - age).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=stack.index_table,
        Item={
            "sop_instance_uid": {"S": uid},
            "status": {"S": "pending"},
            "sha256": {"S": sha256},
            "source": {"S": source},
            "claimed_at": {"S": claimed},
        },
    )


def test_an_abandoned_pending_claim_is_taken_over(stack: Stack, logs: io.StringIO) -> None:
    ds = ct()
    _pending_claim(
        stack, ds.SOPInstanceUID, sha256="0" * 64, source="s3://x/lost.dcm", age=timedelta(hours=13)
    )
    assert ingest(stack, "corrected.dcm", encode(ds)) == []
    row = index_row(stack, ds.SOPInstanceUID)
    assert row is not None and row["status"]["S"] == "archived"
    assert row["sha256"]["S"] != "0" * 64, "the abandoned claim's digest is replaced"
    assert [e["outcome"] for e in audit_events(logs)] == ["archived"]


def test_a_live_claim_with_other_bytes_makes_a_conflicting_duplicate(
    stack: Stack, logs: io.StringIO
) -> None:
    ds = ct()
    _pending_claim(
        stack, ds.SOPInstanceUID, sha256="0" * 64, source="s3://x/a.dcm", age=timedelta(minutes=1)
    )
    assert ingest(stack, "late.dcm", encode(ds)) == []
    assert [e["outcome"] for e in audit_events(logs)] == ["quarantined"]
    assert versions(stack.archive) == []


def test_the_same_bytes_from_another_object_wait_for_the_live_claim(
    stack: Stack, logs: io.StringIO
) -> None:
    ds = ct()
    data = encode(ds)
    _pending_claim(
        stack,
        ds.SOPInstanceUID,
        sha256=hashlib.sha256(data).hexdigest(),
        source="s3://x/first.dcm",
        age=timedelta(minutes=1),
    )
    put_inbox(stack, "second.dcm", data)
    assert len(deliver(stack, receive(stack))) == 1, "retried, not archived a second time"
    assert versions(stack.archive) == []
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=stack.index_table,
        Key={"sop_instance_uid": {"S": ds.SOPInstanceUID}},
        UpdateExpression="SET #s = :a",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":a": {"S": "archived"}},
    )
    assert deliver(stack, receive(stack)) == []
    assert [e["outcome"] for e in audit_events(logs)] == ["duplicate"]


def test_a_very_long_inbox_key_is_still_quarantined(stack: Stack) -> None:
    key = "deep/" + "d" * 1000 + ".dcm"
    put_inbox(stack, key, HOSTILE["pe-polyglot"][1]())
    assert deliver(stack, receive(stack)) == []
    [quarantined] = versions(stack.quarantine)
    assert "sha256-" in quarantined["Key"] and len(quarantined["Key"]) < 1024
