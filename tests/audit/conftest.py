"""moto fixtures for SIEM delivery: a real HTTP server on 127.0.0.1 and the stack's stream.

moto shims (each a verified moto 5.2.5 gap, kept here and nowhere in the product):
- ``subscriptions_reach_every_destination``: moto hands CloudWatch Logs subscription data to a
  Firehose stream only when its destination is S3 (``FirehoseBackend.send_log_event`` reads
  ``destinations[0]["S3"]`` and raises KeyError for an HTTP endpoint). AWS treats subscription data
  like any PutRecordBatch. The shim builds the same payload moto builds (AWS's documented
  subscription format: gzip-compressed JSON with ``logEvents``) and hands it to moto's own
  ``put_record_batch``, whose HTTP destination really POSTs to the endpoint.
- ``binary_records_post_as_base64``: moto's HTTP delivery base64-encodes a record by first
  decoding it as UTF-8 (``Base64EncodedString.from_raw_bytes``), so any binary record (gzip
  subscription data) raises UnicodeDecodeError. AWS base64-encodes the bytes. The shim swaps, in
  moto's Firehose module only, that one helper for one that encodes the bytes; the POST itself
  stays moto's.
- ``processors_run_before_delivery``: moto stores a stream's ``ProcessingConfiguration`` and
  ignores it, so it would push CloudWatch Logs' gzip data as is. AWS runs the built-in processors
  first: ``Decompression`` (GZIP) gunzips each record, ``CloudWatchLogProcessing`` with
  ``DataMessageExtraction`` keeps only the log events' messages (AWS: "Decompression of CloudWatch
  Logs", "Message extraction"; newline-separated here). The shim applies exactly the processors the
  stream's configuration names, before moto's own delivery.
- ``failed_deliveries_go_to_the_backup``: moto raises when an HTTP endpoint cannot be reached and
  keeps nothing. AWS, after the retry duration, writes the records to the stream's S3 backup
  (``S3BackupMode`` FailedDataOnly), each as one JSON line in its documented error-record format
  (Firehose developer guide, "Handle data delivery failures", HTTP endpoint destination):
  ``attemptsMade``, ``arrivalTimestamp``, ``errorCode``, ``errorMessage``,
  ``attemptEndingTimestamp``, ``rawData`` (the record, base64), ``subsequenceNumber``, ``dataId``.
  The shim writes those lines with moto's own S3 writer, to the bucket and prefix the stream's
  configuration names. The error code and message are illustrative (AWS's own text for a refused
  connection was not observed here); what the tests rely on is the envelope and ``rawData``.

What these tests do NOT prove end to end (moto's HTTP delivery is simpler than Firehose's):
- moto ignores the endpoint's HTTP status: a 4xx/5xx answer counts as delivered, so Firehose's
  retry-then-backup on a non-2xx response is not exercised (only a refused connection is);
- moto never sends the ``X-Amz-Firehose-Access-Key`` header (nor reads the Secrets Manager
  secret), so that the endpoint receives the SIEM's key is not proven; the stack's declaration of
  the secret is checked in tests/infra/test_audit.py instead.
"""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto.firehose import models as firehose_models
from moto.firehose.models import FirehoseBackend

HTTP_BACKUP_MODES = ("FailedDataOnly", "AllData")
# The shim's error record for a refused connection (illustrative: see the module docstring).
UNREACHABLE_ERROR_CODE = "HttpEndpoint.DestinationConnectionFailure"
UNREACHABLE_ERROR_MESSAGE = "Could not connect to the endpoint destination."


def subscription_payload(
    backend: FirehoseBackend,
    filter_name: str,
    log_group_name: str,
    log_stream_name: str,
    log_events: list[dict[str, Any]],
) -> bytes:
    """CloudWatch Logs' subscription record, as moto's ``send_log_event`` builds it."""
    data = {
        "logEvents": log_events,
        "logGroup": log_group_name,
        "logStream": log_stream_name,
        "messageType": "DATA_MESSAGE",
        "owner": backend.account_id,
        "subscriptionFilters": [filter_name],
    }
    return gzip.compress(json.dumps(data, separators=(",", ":")).encode("utf-8"))


@pytest.fixture
def subscriptions_reach_every_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    def send_log_event(
        self: FirehoseBackend,
        delivery_stream_arn: str,
        filter_name: str,
        log_group_name: str,
        log_stream_name: str,
        log_events: list[dict[str, Any]],
    ) -> None:
        payload = subscription_payload(
            self, filter_name, log_group_name, log_stream_name, log_events
        )
        stream = self.lookup_name_from_arn(delivery_stream_arn)
        assert stream is not None, f"no delivery stream {delivery_stream_arn}"
        self.put_record_batch(stream.delivery_stream_name, [{"Data": payload}])

    monkeypatch.setattr(FirehoseBackend, "send_log_event", send_log_event)


class _Base64OfBytes:
    """Base64 of a record's bytes, whatever they are (what Firehose sends in ``data``)."""

    def __init__(self, encoded: str) -> None:
        self._encoded = encoded

    @classmethod
    def from_raw_bytes(cls, raw_bytes: bytes, encoding: str = "utf-8") -> _Base64OfBytes:
        return cls(base64.b64encode(raw_bytes).decode("ascii"))

    def __str__(self) -> str:
        return self._encoded


@pytest.fixture
def binary_records_post_as_base64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firehose_models, "Base64EncodedString", _Base64OfBytes)


def failed_record_line(data: bytes, arrived_ms: int, index: int) -> bytes:
    """One failed record as Firehose writes it to the backup bucket: a JSON line with rawData."""
    line = {
        "attemptsMade": 1,
        "arrivalTimestamp": arrived_ms,
        "errorCode": UNREACHABLE_ERROR_CODE,
        "errorMessage": UNREACHABLE_ERROR_MESSAGE,
        "attemptEndingTimestamp": int(time.time() * 1000),
        "rawData": base64.b64encode(data).decode("ascii"),
        "subsequenceNumber": 0,
        "dataId": f"{arrived_ms}{index:020d}.0",
    }
    return json.dumps(line, separators=(",", ":")).encode("utf-8") + b"\n"


@pytest.fixture
def failed_deliveries_go_to_the_backup(monkeypatch: pytest.MonkeyPatch) -> None:
    deliver = FirehoseBackend.put_record_batch

    def put_record_batch(
        self: FirehoseBackend, delivery_stream_name: str, records: list[dict[str, bytes]]
    ) -> dict[str, Any]:
        arrived_ms = int(time.time() * 1000)
        try:
            return deliver(self, delivery_stream_name, records)
        except RuntimeError:  # moto: the HTTP endpoint could not be reached
            stream = self.delivery_streams[delivery_stream_name]
            endpoint = stream.destinations[0].get("HttpEndpoint")
            if endpoint is None or endpoint.get("S3BackupMode") not in HTTP_BACKUP_MODES:
                raise
            responses = self.put_s3_records(
                delivery_stream_name,
                stream.version_id,
                endpoint["S3DestinationDescription"],
                [
                    {"Data": failed_record_line(r["Data"], arrived_ms, i)}
                    for i, r in enumerate(records)
                ],
            )
            return {"FailedPutCount": 0, "Encrypted": True, "RequestResponses": responses}

    monkeypatch.setattr(FirehoseBackend, "put_record_batch", put_record_batch)


def apply_processors(processing: dict[str, Any] | None, data: bytes) -> bytes:
    """Firehose's built-in Decompression and CloudWatchLogProcessing, as the configuration says."""
    if not processing or not processing.get("Enabled"):
        return data
    for processor in processing.get("Processors", []):
        params = {p["ParameterName"]: p["ParameterValue"] for p in processor.get("Parameters", [])}
        if processor["Type"] == "Decompression":
            assert params.get("CompressionFormat", "GZIP") == "GZIP", params
            data = gzip.decompress(data)
        elif processor["Type"] == "CloudWatchLogProcessing":
            assert params.get("DataMessageExtraction") == "true", params
            envelope = json.loads(data)
            data = "\n".join(e["message"] for e in envelope["logEvents"]).encode("utf-8")
        else:
            raise AssertionError(f"the shim does not emulate processor {processor['Type']}")
    return data


@pytest.fixture
def processors_run_before_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    deliver = FirehoseBackend.put_record_batch

    def put_record_batch(
        self: FirehoseBackend, delivery_stream_name: str, records: list[dict[str, bytes]]
    ) -> dict[str, Any]:
        stream = self.delivery_streams[delivery_stream_name]
        configured = stream.destinations[0]
        destination = next(configured[k] for k in ("HttpEndpoint", "ExtendedS3") if k in configured)
        processing = destination.get("ProcessingConfiguration")
        processed = [{**r, "Data": apply_processors(processing, r["Data"])} for r in records]
        return deliver(self, delivery_stream_name, processed)

    monkeypatch.setattr(FirehoseBackend, "put_record_batch", put_record_batch)


@dataclass
class Received:
    """One request the SIEM endpoint received."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class SiemEndpoint:
    """A real HTTP server on the loopback interface that records what Firehose POSTs."""

    url: str
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def siem_endpoint() -> Iterator[SiemEndpoint]:
    endpoint = SiemEndpoint(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            endpoint.received.append(Received(self.path, dict(self.headers.items()), body))
            request_id = json.loads(body or b"{}").get("requestId", "")
            # Firehose's HTTP endpoint contract: 200 with the request id and a timestamp.
            answer = json.dumps({"requestId": request_id, "timestamp": 0}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads what was received, not the access log."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/siem/ingest"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/siem/ingest"
