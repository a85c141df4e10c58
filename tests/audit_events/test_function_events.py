"""What the ingest, verify and research-copy functions log, against docs/audit-events.md: the real
handlers against moto, every line their Powertools loggers write, through every outcome."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas import settings as env
from lambdas.audit_events import INGEST, RESEARCH, VERIFY
from lambdas.manifest import archive_key
from tests.audit_events.capture import assert_all_emitted, assert_conform, assert_no_phi, parse
from tests.lambdas.conftest import (
    CREDENTIALS,
    PREFIX,
    REGION,
    FakeContext,
    Stack,
    deliver,
    deliver_research,
    install_stack,
    put_inbox,
    receive,
    s3_client,
)
from tests.lambdas.factory import HOSTILE, PATIENT_ID, PATIENT_NAME, ct, encode
from tests.lambdas.signing import signed, tampered

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the factory writes bad values

# What Lambda sets for every invocation (Powertools logs it as xray_trace_id).
TRACE = "Root=1-65f0c0de-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0"
VERIFY_CONTEXT = FakeContext(
    function_name=f"{PREFIX}-verify",
    invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:{PREFIX}-verify",
)


class _Messages(logging.Handler):
    """Whatever any other (stdlib) logger says meanwhile: it reaches the log group too."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def captured() -> Iterator[dict[str, list[str]]]:
    """Lines per function, from one moto stack taken through every outcome."""
    import lambdas.ingest as ingest
    import lambdas.research as research
    import lambdas.verify as verify

    streams = {"ingest": io.StringIO(), "verify": io.StringIO(), "research": io.StringIO()}
    handlers = {
        "ingest": ingest.logger.registered_handler,
        "verify": verify.logger.registered_handler,
        "research": research.logger.registered_handler,
    }
    other, root = _Messages(), logging.getLogger()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {**CREDENTIALS, "_X_AMZN_TRACE_ID": TRACE}.items():
            monkeypatch.setenv(name, value)
        with mock_aws():
            stack = install_stack(monkeypatch)
            monkeypatch.setenv(env.RESEARCH_PROJECTS, json.dumps([RESEARCH_PROJECT]))
            monkeypatch.setenv(env.LINKAGE_TABLE, stack.linkage_table)
            previous = {n: h.setStream(streams[n]) for n, h in handlers.items()}  # type: ignore[attr-defined]
            level = root.level
            root.setLevel(logging.INFO)
            root.addHandler(other)
            try:
                _ingest_every_outcome(stack)
                _verify_every_outcome(stack, verify.handler)
                _research_every_outcome(stack)
            finally:
                root.removeHandler(other)
                root.setLevel(level)
                for name, handler in handlers.items():
                    handler.setStream(previous[name])  # type: ignore[attr-defined]
    yield {
        "ingest": streams["ingest"].getvalue().splitlines(),
        "verify": streams["verify"].getvalue().splitlines(),
        "research": streams["research"].getvalue().splitlines(),
        "other": other.lines,
    }


ARCHIVED = ct()


def _ingest_every_outcome(stack: Stack) -> None:
    # Signed, so archived and duplicate carry `signatures` (untrusted: the stack has no bundle).
    original = signed(encode(ARCHIVED))
    put_inbox(stack, "incoming/first.dcm", original)
    assert deliver(stack, receive(stack)) == []  # archived
    put_inbox(stack, "incoming/resent.dcm", original)
    assert deliver(stack, receive(stack)) == []  # duplicate
    # Same SOP Instance UID, other bytes: a conflicting duplicate (quarantined, with a pseudonym).
    put_inbox(stack, "incoming/other.dcm", encode(ct(SOPInstanceUID=ARCHIVED.SOPInstanceUID)))
    for name, (_, make) in HOSTILE.items():
        put_inbox(stack, f"incoming/{name}.dcm", make())
    put_inbox(stack, "incoming/tampered.dcm", tampered(signed(encode(ct()))))
    assert deliver(stack, receive(stack)) == []  # quarantined, each
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody="not an s3 event")
    assert len(deliver(stack, receive(stack))) == 1  # failed


RESEARCH_PROJECT = {
    "name": "ct-study",
    "match": {"Modality": ["CT"]},
    "options": ["clean-descriptors"],
}


def _research_every_outcome(stack: Stack) -> None:
    # ARCHIVED is in the archive already (its instance and sidecar events wait on the research
    # queue): copied. Straight into the archive, not through ingest (whose events are counted
    # above): a burned-in CT (held) and a PET (not routed).
    s3 = s3_client()
    for ds in (ct(BurnedInAnnotation="YES"), ct(Modality="PT")):
        key = archive_key(
            str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
        )
        s3.put_object(Bucket=stack.archive, Key=key, Body=encode(ds), ChecksumAlgorithm="SHA256")
    messages = receive(stack, queue_url=stack.research_queue_url)
    assert deliver_research(stack, messages) == []
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=stack.research_queue_url, MessageBody="not an s3 event")
    assert len(deliver_research(stack, receive(stack, queue_url=stack.research_queue_url))) == 1


def _verify_every_outcome(stack: Stack, handler: Any) -> None:
    uid = str(ARCHIVED.SOPInstanceUID)
    assert handler({"sop_instance_uids": [uid]}, VERIFY_CONTEXT)["failed"] == 0  # verified
    assert handler({}, VERIFY_CONTEXT)["failed"] == 0  # the scheduled sample
    # Values that are no UIDs (patient data, by mistake) requested; then a tampered index.
    unknown = [PATIENT_NAME, PATIENT_ID, "1.2.3"]
    assert handler({"sop_instance_uids": unknown}, VERIFY_CONTEXT)["failed"] == 3
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=stack.index_table,
        Key={"sop_instance_uid": {"S": uid}},
        UpdateExpression="SET sha256 = :x",
        ExpressionAttributeValues={":x": {"S": "0" * 64}},
    )
    assert handler({"sop_instance_uids": [uid]}, VERIFY_CONTEXT)["failed"] == 1


def test_every_ingest_line_is_a_documented_event(captured: dict[str, list[str]]) -> None:
    assert_conform(INGEST, parse(captured["ingest"]))


def test_every_documented_ingest_event_is_logged(captured: dict[str, list[str]]) -> None:
    assert_all_emitted(INGEST, parse(captured["ingest"]))


def test_every_verify_line_is_a_documented_event(captured: dict[str, list[str]]) -> None:
    assert_conform(VERIFY, parse(captured["verify"]))


def test_every_documented_verify_event_is_logged(captured: dict[str, list[str]]) -> None:
    assert_all_emitted(VERIFY, parse(captured["verify"]))


def test_every_research_line_is_a_documented_event(captured: dict[str, list[str]]) -> None:
    assert_conform(RESEARCH, parse(captured["research"]))


def test_every_documented_research_event_is_logged(captured: dict[str, list[str]]) -> None:
    assert_all_emitted(RESEARCH, parse(captured["research"]))


def test_no_line_of_any_function_carries_patient_data(captured: dict[str, list[str]]) -> None:
    lines = captured["ingest"] + captured["verify"] + captured["research"] + captured["other"]
    assert_no_phi(lines)


def test_research_logs_one_event_per_instance_and_project(captured: dict[str, list[str]]) -> None:
    events = parse(captured["research"])
    messages = sorted(e["message"] for e in events)
    assert messages == ["failed", "research-copied", "research-held", "research-not-routed"]
    [copied] = [e for e in events if e["message"] == "research-copied"]
    assert copied["sop_instance_uid"] == str(ARCHIVED.SOPInstanceUID)
    assert copied["options"] == ["clean-descriptors"] and copied["linked"] is True
    # The source side only: no de-identified UID or derived key pairs the copy with its source.
    assert set(copied) & {"deid_sop_instance_uid", "derived_key", "derived_version_id"} == set()
    assert "2.25." not in json.dumps(copied) and "derived/" not in json.dumps(copied)
    [held] = [e for e in events if e["message"] == "research-held"]
    assert held["reason"] == "burned-in-annotation"


def test_one_event_per_object_and_one_per_failed_record(captured: dict[str, list[str]]) -> None:
    events = parse(captured["ingest"])
    outcomes = [e["message"] for e in events]
    assert outcomes.count("archived") == 1 and outcomes.count("duplicate") == 1
    assert outcomes.count("quarantined") == len(HOSTILE) + 2
    signatures = [e["signatures"] for e in events if "signatures" in e]
    verdicts = sorted(s["verdict"] for found in signatures for s in found)
    assert verdicts == ["invalid", "untrusted", "untrusted"], verdicts
    [failed] = [e for e in events if e["message"] == "failed"]
    assert failed["reason"] == "EventError"


def test_a_requested_value_that_is_no_uid_is_logged_as_such(
    captured: dict[str, list[str]],
) -> None:
    failures = [e for e in parse(captured["verify"]) if e["message"] == "integrity-failure"]
    logged = sorted(e["sop_instance_uid"] for e in failures)
    uid = str(ARCHIVED.SOPInstanceUID)
    assert logged == sorted(["(not a valid UID)", "(not a valid UID)", "1.2.3", uid])
