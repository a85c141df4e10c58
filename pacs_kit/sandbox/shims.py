"""Named moto shims: each bridges one verified moto 5.2.5 gap, narrowly, the way AWS behaves.

The sandbox's emulator applies every shim in its own process (``apply_all(setattr)``); the tests
apply the ones they rely on through pytest's ``monkeypatch.setattr``. A shim takes
``patch(target, attribute, value)`` so both work. Each function's docstring says the moto gap, what
AWS does, and exactly what the shim changes; ``SHIMS`` is the one-line list the sandbox reports.

What the shims do NOT make true (moto's HTTP delivery stays simpler than Firehose's):
- moto ignores the endpoint's HTTP status: a 4xx/5xx answer counts as delivered, so Firehose's
  retry-then-backup on a non-2xx response is not emulated (only a refused connection is);
- moto never sends the ``X-Amz-Firehose-Access-Key`` header (nor reads the Secrets Manager secret).
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Callable
from typing import Any

from moto.firehose import models as firehose_models
from moto.firehose.models import FirehoseBackend
from moto.iam.access_control import PermissionResult
from moto.s3.exceptions import MissingUploadObjectWithObjectLockHeaders
from moto.s3.models import FakeBucket
from moto.s3.responses import S3Response
from moto.sqs.models import Queue as SqsQueue

Patch = Callable[[object, str, object], None]

HTTP_BACKUP_MODES = ("FailedDataOnly", "AllData")
# The backup shim's error record for a refused connection (illustrative: AWS's own text for a
# refused connection was not observed here; the envelope and rawData are what matter).
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


def subscriptions_reach_every_destination(patch: Patch) -> None:
    """CloudWatch Logs subscription data reaches a Firehose stream whatever its destination.

    moto gap: moto hands subscription data to a Firehose stream only when its destination is S3
    (``FirehoseBackend.send_log_event`` reads ``destinations[0]["S3"]`` and raises KeyError for an
    HTTP endpoint). AWS treats subscription data like any PutRecordBatch. The shim builds the same
    payload moto builds (AWS's documented subscription format: gzip-compressed JSON with
    ``logEvents``) and hands it to moto's own ``put_record_batch``, whose HTTP destination really
    POSTs to the endpoint.
    """

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
        if stream is None:
            raise LookupError(f"no delivery stream {delivery_stream_arn}")
        self.put_record_batch(stream.delivery_stream_name, [{"Data": payload}])

    patch(FirehoseBackend, "send_log_event", send_log_event)


class _Base64OfBytes:
    """Base64 of a record's bytes, whatever they are (what Firehose sends in ``data``)."""

    def __init__(self, encoded: str) -> None:
        self._encoded = encoded

    @classmethod
    def from_raw_bytes(cls, raw_bytes: bytes, encoding: str = "utf-8") -> _Base64OfBytes:
        return cls(base64.b64encode(raw_bytes).decode("ascii"))

    def __str__(self) -> str:
        return self._encoded


def binary_records_post_as_base64(patch: Patch) -> None:
    """Firehose's HTTP delivery base64-encodes a record's bytes, binary or not.

    moto gap: moto's HTTP delivery base64-encodes a record by first decoding it as UTF-8
    (``Base64EncodedString.from_raw_bytes``), so any binary record (gzip subscription data) raises
    UnicodeDecodeError. AWS base64-encodes the bytes. The shim swaps, in moto's Firehose module
    only, that one helper for one that encodes the bytes; the POST itself stays moto's.
    """
    patch(firehose_models, "Base64EncodedString", _Base64OfBytes)


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


def failed_deliveries_go_to_the_backup(patch: Patch) -> None:
    """Records an HTTP endpoint could not take are written to the stream's S3 backup.

    moto gap: moto raises when an HTTP endpoint cannot be reached and keeps nothing. AWS, after
    the retry duration, writes the records to the stream's S3 backup (``S3BackupMode``
    FailedDataOnly), each as one JSON line in its documented error-record format (Firehose
    developer guide, "Handle data delivery failures", HTTP endpoint destination):
    ``attemptsMade``, ``arrivalTimestamp``, ``errorCode``, ``errorMessage``,
    ``attemptEndingTimestamp``, ``rawData`` (the record, base64), ``subsequenceNumber``,
    ``dataId``. The shim writes those lines with moto's own S3 writer, to the bucket and prefix the
    stream's configuration names. The error code and message are illustrative
    (``UNREACHABLE_ERROR_CODE``); what callers may rely on is the envelope and ``rawData``.
    """
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

    patch(FirehoseBackend, "put_record_batch", put_record_batch)


class UnsupportedProcessor(ValueError):
    """A processor (or parameter) the processors shim does not emulate."""


def apply_processors(processing: dict[str, Any] | None, data: bytes) -> bytes:
    """Firehose's built-in Decompression and CloudWatchLogProcessing, as the configuration says."""
    if not processing or not processing.get("Enabled"):
        return data
    for processor in processing.get("Processors", []):
        params = {p["ParameterName"]: p["ParameterValue"] for p in processor.get("Parameters", [])}
        if processor["Type"] == "Decompression":
            if params.get("CompressionFormat", "GZIP") != "GZIP":
                raise UnsupportedProcessor(f"Decompression {params}")
            data = gzip.decompress(data)
        elif processor["Type"] == "CloudWatchLogProcessing":
            if params.get("DataMessageExtraction") != "true":
                raise UnsupportedProcessor(f"CloudWatchLogProcessing {params}")
            envelope = json.loads(data)
            data = "\n".join(e["message"] for e in envelope["logEvents"]).encode("utf-8")
        else:
            raise UnsupportedProcessor(f"the shim does not emulate processor {processor['Type']}")
    return data


def processors_run_before_delivery(patch: Patch) -> None:
    """A stream's built-in processors run on each record before delivery.

    moto gap: moto stores a stream's ``ProcessingConfiguration`` and ignores it, so it would push
    CloudWatch Logs' gzip data as is. AWS runs the built-in processors first: ``Decompression``
    (GZIP) gunzips each record, ``CloudWatchLogProcessing`` with ``DataMessageExtraction`` keeps
    only the log events' messages (AWS: "Decompression of CloudWatch Logs", "Message extraction";
    newline-separated here). The shim applies exactly the processors the stream's configuration
    names, before moto's own delivery. Apply it after ``failed_deliveries_go_to_the_backup`` so it
    wraps it: AWS processes records before it tries the endpoint.
    """
    deliver = FirehoseBackend.put_record_batch

    def put_record_batch(
        self: FirehoseBackend, delivery_stream_name: str, records: list[dict[str, bytes]]
    ) -> dict[str, Any]:
        stream = self.delivery_streams[delivery_stream_name]
        configured = stream.destinations[0]
        kinds = [k for k in ("HttpEndpoint", "ExtendedS3") if k in configured]
        processing = configured[kinds[0]].get("ProcessingConfiguration") if kinds else None
        processed = [{**r, "Data": apply_processors(processing, r["Data"])} for r in records]
        return deliver(self, delivery_stream_name, processed)

    patch(FirehoseBackend, "put_record_batch", put_record_batch)


_LOCK_HEADERS = (
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
)
_SUBRESOURCES = ("retention", "legal-hold", "acl", "tagging", "uploadId", "partNumber")


def copies_into_locked_buckets_need_no_checksum(patch: Patch) -> None:
    """A server-side CopyObject into a bucket with default Object Lock retention is accepted.

    moto gap: moto refuses any PUT of a key into a bucket with default Object Lock retention unless
    ``Content-MD5`` or ``x-amz-sdk-checksum-algorithm`` is sent
    (``S3Response._key_response_put`` raises MissingUploadObjectWithObjectLockHeaders), and boto3
    sends neither for CopyObject. AWS requires them only for uploads with a body
    (PutObject/UploadPart), not for server-side copies. The shim catches that one error for a plain
    copy (``x-amz-copy-source``, no explicit lock headers, no sub-resource) after moto has
    authorised the request, and runs moto's own ``copy_object``; every other PUT is untouched.
    """
    original = S3Response._key_response_put

    def _key_response_put(
        self: S3Response, query: dict[str, Any], key_name: str
    ) -> tuple[int, dict[str, Any], Any]:
        try:
            return original(self, query, key_name)
        except MissingUploadObjectWithObjectLockHeaders:
            plain_copy = (
                "x-amz-copy-source" in self.headers
                and not any(self.headers.get(h) for h in _LOCK_HEADERS)
                and not any(q in query for q in _SUBRESOURCES)
            )
            if not plain_copy:
                raise
            return self.copy_object()

    patch(S3Response, "_key_response_put", _key_response_put)


def bucket_policies_are_stored_not_evaluated(patch: Patch) -> None:
    """Bucket policies are kept and read back, but the emulator does not judge requests by them.

    moto gap: on object requests moto evaluates a bucket policy by action and resource alone
    (``FakeBucket.get_permission`` → ``IAMPolicy.is_action_permitted``): it ignores Principal and
    treats every statement with a Condition as matching. The kit's ``DenyInsecureTransport``
    (``aws:SecureTransport`` false) therefore denies every request, over TLS or not, and a Deny
    aimed at other principals denies the stack's own roles. AWS evaluates principals and
    conditions. No subset of moto's evaluation is faithful, so the shim answers "no opinion"
    (moto's own result for a bucket without a policy) and IAM enforcement alone decides; the
    policies themselves are proven on the plan (tests/infra, the policy pack).
    """

    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        return PermissionResult.NEUTRAL

    patch(FakeBucket, "get_permission", get_permission)


class _Forgetful(dict[str, Any]):
    """A queue's hook table that forgets every event source mapping moto puts in it."""

    def __setitem__(self, key: str, value: Any) -> None:
        pass


def sqs_mappings_are_polled_by_the_sandbox(patch: Patch) -> None:
    """moto does not run its own poller for SQS event source mappings; the sandbox's does.

    moto gap: for an enabled SQS mapping moto receives the batch itself on every ``SendMessage``
    (``Queue.add_message`` walks ``Queue.lambda_event_source_mappings``), then fails to start the
    function in Docker and makes the messages visible again: each message's receive count is
    burned and, after ``maxReceiveCount``, it reaches the DLQ without any handler having seen it.
    AWS Lambda polls and invokes the function. The shim makes that per-queue hook table always
    empty, so moto keeps the mapping (listed, ``Enabled``) and never polls it;
    :class:`pacs_kit.sandbox.lambda_runtime.LambdaService` polls it as Lambda does.
    """
    original = SqsQueue.__init__

    def __init__(self: SqsQueue, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.lambda_event_source_mappings = _Forgetful()

    patch(SqsQueue, "__init__", __init__)


# Order matters: processors_run_before_delivery wraps failed_deliveries_go_to_the_backup.
_ALL: tuple[tuple[Callable[[Patch], None], str], ...] = (
    (
        subscriptions_reach_every_destination,
        "CloudWatch Logs subscriptions reach Firehose HTTP endpoint streams (moto: S3 only)",
    ),
    (
        binary_records_post_as_base64,
        "Firehose HTTP delivery base64-encodes binary records (moto: UTF-8 decode error)",
    ),
    (
        failed_deliveries_go_to_the_backup,
        "an unreachable HTTP endpoint's records go to the S3 backup (moto: raises, keeps nothing)",
    ),
    (
        processors_run_before_delivery,
        "Firehose Decompression/CloudWatchLogProcessing processors run (moto: ignored)",
    ),
    (
        sqs_mappings_are_polled_by_the_sandbox,
        "SQS event source mappings are polled by the sandbox (moto: burns receives without Docker)",
    ),
    (
        bucket_policies_are_stored_not_evaluated,
        "bucket policies are stored, not evaluated (moto: ignores principals and conditions)",
    ),
    (
        copies_into_locked_buckets_need_no_checksum,
        "CopyObject into a default-retention bucket needs no Content-MD5 (moto: refused)",
    ),
)

SHIMS: tuple[tuple[str, str], ...] = tuple((fn.__name__, reason) for fn, reason in _ALL)


def apply_all(patch: Patch) -> None:
    """Apply every shim, in the order that makes them compose as AWS behaves."""
    for shim, _reason in _ALL:
        shim(patch)
