"""The sandbox's emulator as a background process: start, use, deliver to the SIEM sink, stop.

These tests start the real ``python -m pacs_kit.sandbox.server`` process (moto server + HTTPS
sink on 127.0.0.1) and talk to it as the CLI does, over the network.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pacs_kit.sandbox import server
from pacs_kit.sandbox.shims import SHIMS, UNREACHABLE_ERROR_CODE

REGION = "us-east-1"
# The stack's processor parameters (infra.components.audit.processors).
PARAMETERS = {
    "Decompression": [{"ParameterName": "CompressionFormat", "ParameterValue": "GZIP"}],
    "CloudWatchLogProcessing": [
        {"ParameterName": "DataMessageExtraction", "ParameterValue": "true"}
    ],
}


def client(emulator: server.Emulator, service: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
        region_name=REGION,
    ).client(service, endpoint_url=emulator.endpoint)


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One emulator shared by the tests that do not stop it."""
    path = tmp_path_factory.mktemp("sandbox")
    server.start(path)
    try:
        yield path
    finally:
        server.stop(path)


@pytest.fixture
def emulator(state_dir: Path) -> server.Emulator:
    running = server.running(state_dir)
    assert running is not None
    return running


def http_stream(emulator: server.Emulator, name: str, url: str, *processors: str) -> str:
    """A Firehose stream pushing to ``url`` with the given built-in processors; returns its ARN."""
    role = "arn:aws:iam::123456789012:role/siem"
    client(emulator, "s3").create_bucket(Bucket=f"{name}-backup")
    configuration: dict[str, Any] = {
        "EndpointConfiguration": {"Url": url, "Name": "sink"},
        "RoleARN": role,
        "S3BackupMode": "FailedDataOnly",
        "S3Configuration": {"RoleARN": role, "BucketARN": f"arn:aws:s3:::{name}-backup"},
    }
    if processors:
        configuration["ProcessingConfiguration"] = {
            "Enabled": True,
            "Processors": [{"Type": p, "Parameters": PARAMETERS[p]} for p in processors],
        }
    arn: str = client(emulator, "firehose").create_delivery_stream(
        DeliveryStreamName=name, HttpEndpointDestinationConfiguration=configuration
    )["DeliveryStreamARN"]
    return arn


def log_through(emulator: server.Emulator, stream_arn: str, event: dict[str, Any]) -> None:
    """Write ``event`` to a log group subscribed to the stream, as the gateway's logs are."""
    logs = client(emulator, "logs")
    group = f"/sandbox/{uuid.uuid4().hex}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="task-1")
    logs.put_subscription_filter(
        logGroupName=group,
        filterName="siem",
        filterPattern="",
        destinationArn=stream_arn,
        roleArn="arn:aws:iam::123456789012:role/logs",
    )
    logs.put_log_events(
        logGroupName=group,
        logStreamName="task-1",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(event)}],
    )


def test_the_emulator_outlives_the_call_delivers_to_the_sink_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    # GIVEN an emulator started in the background
    emulator = server.start(tmp_path)
    try:
        state = json.loads((tmp_path / server.STATE_FILE).read_text())
        assert state == {
            "pid": emulator.pid,
            "endpoint": emulator.endpoint,
            "siemUrl": emulator.siem_url,
            "caFile": emulator.ca_file,
        }
        assert emulator.siem_url.startswith("https://127.0.0.1:")
        assert server.running(tmp_path) == emulator
        assert server.start(tmp_path) == emulator, "a second start reuses the running emulator"

        # WHEN the stack's services are used through its endpoint
        s3 = client(emulator, "s3")
        s3.create_bucket(Bucket="backup")
        s3.put_object(Bucket="backup", Key="k", Body=b"v")
        assert s3.get_object(Bucket="backup", Key="k")["Body"].read() == b"v"

        # AND a Firehose stream pushes a record to the HTTPS SIEM sink
        firehose = client(emulator, "firehose")
        firehose.create_delivery_stream(
            DeliveryStreamName="siem",
            HttpEndpointDestinationConfiguration={
                "EndpointConfiguration": {"Url": emulator.siem_url, "Name": "sink"},
                "RoleARN": "arn:aws:iam::123456789012:role/siem",
                "S3BackupMode": "FailedDataOnly",
                "S3Configuration": {
                    "RoleARN": "arn:aws:iam::123456789012:role/siem",
                    "BucketARN": "arn:aws:s3:::backup",
                },
            },
        )
        event = {"event": "gateway.stow.stored", "marker": uuid.uuid4().hex}
        firehose.put_record(DeliveryStreamName="siem", Record={"Data": json.dumps(event).encode()})

        # THEN the sink stored the delivery (over TLS: nothing went to the backup bucket)
        deliveries = sorted((tmp_path / server.SIEM_DIR).glob("*.json"))
        assert [p.name for p in deliveries] == ["1.json"]
        body = json.loads(deliveries[0].read_text())
        assert body["requestId"] and len(body["records"]) == 1
        assert server.siem_events(tmp_path) == [event]
        assert "Contents" not in s3.list_objects_v2(Bucket="backup", Prefix="2")
    finally:
        stopped = server.stop(tmp_path)

    # AND stopping leaves no process, no open port and no state file
    assert stopped is True
    assert not pid_alive(emulator.pid)
    assert not any(port_open(p) for p in emulator.ports)
    assert not (tmp_path / server.STATE_FILE).exists()
    assert server.running(tmp_path) is None
    # AND stopping again is a no-op
    assert server.stop(tmp_path) is False


def test_a_copy_into_a_bucket_with_default_compliance_retention_succeeds(
    emulator: server.Emulator,
) -> None:
    # GIVEN a bucket with default COMPLIANCE retention (the archive) and an object elsewhere
    assert "copies_into_locked_buckets_need_no_checksum" in dict(SHIMS)
    s3 = client(emulator, "s3")
    s3.create_bucket(Bucket="inbox")
    s3.put_object(Bucket="inbox", Key="a.dcm", Body=b"DICM")
    s3.create_bucket(Bucket="archive", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket="archive",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )

    # WHEN boto3 copies it server-side (boto3 sends no Content-MD5 nor checksum for a copy)
    copied = s3.copy_object(
        Bucket="archive", Key="a.dcm", CopySource={"Bucket": "inbox", "Key": "a.dcm"}
    )

    # THEN the copy is stored under the bucket's default retention, which still holds
    head = s3.head_object(Bucket="archive", Key="a.dcm")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket="archive", Key="a.dcm", VersionId=copied["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # AND an upload with a body still needs a checksum there (the shim covers copies only)
    s3.put_object(Bucket="archive", Key="b.dcm", Body=b"x", ChecksumAlgorithm="SHA256")
    with pytest.raises(ClientError) as upload:
        s3.put_object(Bucket="archive", Key="c.dcm", Body=b"x", ChecksumAlgorithm="CRC32")
        bare = client(emulator, "s3")
        bare.meta.events.register("before-send.s3.PutObject", drop_checksum_headers)
        bare.put_object(Bucket="archive", Key="d.dcm", Body=b"x")
    assert upload.value.response["Error"]["Code"] == "MissingUploadObjectWithObjectLockHeaders"


def drop_checksum_headers(request: Any, **_: Any) -> None:
    """Send a PutObject as a client without flexible checksums would (no MD5, no checksum)."""
    for name in list(request.headers.keys()):
        if "checksum" in name.lower() or name.lower() == "content-md5":
            del request.headers[name]


def test_iam_enforcement_switches_on_and_off(emulator: server.Emulator) -> None:
    s3 = client(emulator, "s3")
    server.enforce_iam(emulator.endpoint, True)
    try:
        with pytest.raises(ClientError) as denied:
            s3.list_buckets()
        assert denied.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    finally:
        server.enforce_iam(emulator.endpoint, False)
    s3.list_buckets()


@pytest.mark.parametrize(
    "processors", [("Decompression",), ("Decompression", "CloudWatchLogProcessing")]
)
def test_a_subscribed_log_event_reaches_the_siem_sink(
    state_dir: Path, emulator: server.Emulator, processors: tuple[str, ...]
) -> None:
    # GIVEN a log group subscribed to a stream pushing to the sink (the shims bridge moto's gaps)
    stream = http_stream(emulator, f"siem-{len(processors)}", emulator.siem_url, *processors)
    event = {"event": "gateway.stow.stored", "marker": uuid.uuid4().hex}

    # WHEN an event is logged
    log_through(emulator, stream, event)

    # THEN the sink received it, whichever processors ran
    assert event in server.siem_events(state_dir)


def test_an_unreachable_siem_leaves_the_record_in_the_backup_bucket(
    emulator: server.Emulator,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"https://127.0.0.1:{sock.getsockname()[1]}/siem"
    stream = http_stream(emulator, "unreachable", closed, "Decompression")
    event = {"event": "gateway.stow.stored", "marker": uuid.uuid4().hex}

    log_through(emulator, stream, event)

    s3 = client(emulator, "s3")
    kept = s3.list_objects_v2(Bucket="unreachable-backup").get("Contents", [])
    assert len(kept) == 1
    line = json.loads(s3.get_object(Bucket="unreachable-backup", Key=kept[0]["Key"])["Body"].read())
    assert line["errorCode"] == UNREACHABLE_ERROR_CODE
    envelope = json.loads(base64.b64decode(line["rawData"]))
    assert [json.loads(e["message"]) for e in envelope["logEvents"]] == [event]


def test_a_failed_start_quotes_the_log_and_leaves_no_process(tmp_path: Path) -> None:
    # GIVEN a state directory where the sink's TLS directory cannot be made (a file is in the way)
    (tmp_path / server.TLS_DIR).write_text("not a directory")

    # WHEN the emulator is started THEN the error quotes the emulator's log
    with pytest.raises(server.EmulatorError, match="exited with status 1") as failed:
        server.start(tmp_path, timeout=20)
    assert "FileExistsError" in str(failed.value)
    assert server.running(tmp_path) is None
    assert server.stop(tmp_path) is False
