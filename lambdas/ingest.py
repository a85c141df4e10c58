"""Ingest function: SQS batch of inbox ``ObjectCreated`` events → archive or quarantine each object.

Thin handler over :mod:`lambdas.pipeline`: parse the event, run the pipeline once per object
version (Powertools idempotency keyed on bucket/key/version, so SQS's at-least-once delivery has an
exactly-once effect), report partial batch failures so only failed records are retried, and write
one structured audit event per object, and one per failed record (docs/audit-events.md).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from lambdas.pipeline import Pipeline, Source
from lambdas.settings import IngestSettings

logger = Logger(service="pacs-ingest")
# A batch whose every record failed is still reported record by record (not raised), so the
# event source mapping retries exactly those and the DLQ takes the poison ones.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# Longer than the queue's retention, so a redelivered message always finds its record.
IDEMPOTENCY_SECONDS = 15 * 24 * 3600
# Standard retry mode backs off on throttling and 5xx before a record is given up for SQS to retry.
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


class EventError(ValueError):
    """An SQS message that is not an S3 event (poison: it ends in the DLQ)."""


def sources(record: SQSRecord) -> Iterator[Source]:
    """The inbox object versions named by one SQS message (an S3 event notification)."""
    try:
        body = json.loads(record.body)
    except ValueError:
        raise EventError(f"message {record.message_id} is not JSON") from None
    if body.get("Event") == "s3:TestEvent":
        return  # sent once when the notification is configured
    entries = body.get("Records")
    if not isinstance(entries, list):
        raise EventError(f"message {record.message_id} has no S3 Records")
    for entry in entries:
        if not str(entry.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = entry["s3"]
        yield Source(
            bucket=s3["bucket"]["name"],
            # S3 event keys are URL-encoded with '+' for spaces.
            key=urllib.parse.unquote_plus(s3["object"]["key"]),
            version_id=s3["object"].get("versionId"),
        )


@dataclass
class Runtime:
    """Clients and the idempotent processing function, built once per execution environment."""

    pipeline: Pipeline
    idempotency: IdempotencyConfig
    process: Any

    @classmethod
    def from_environment(cls) -> Runtime:
        settings = IngestSettings.from_env()
        session = boto3.session.Session()
        dynamodb = session.client("dynamodb", config=BOTO_CONFIG)
        pipeline = Pipeline(
            settings,
            s3=session.client("s3", config=BOTO_CONFIG),
            kms=session.client("kms", config=BOTO_CONFIG),
            dynamodb=dynamodb,
        )
        config = IdempotencyConfig(
            expires_after_seconds=IDEMPOTENCY_SECONDS, raise_on_no_idempotency_key=True
        )
        store = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=dynamodb
        )

        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="source", config=config, persistence_store=store
        )
        def process(source: dict[str, Any]) -> dict[str, Any]:
            outcome = pipeline.process(Source(**source)).as_dict()
            # The one audit event per object: UIDs, digests, reason codes, pseudonymous key only
            # (fields in docs/audit-events.md, schema in lambdas/audit_events.py).
            logger.info(outcome["outcome"], extra=outcome)
            return outcome

        return cls(pipeline=pipeline, idempotency=config, process=process)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime.from_environment()
    return _runtime


def record_handler(record: SQSRecord) -> list[dict[str, Any]]:
    current = runtime()
    try:
        return [current.process(source=s.as_dict()) for s in sources(record)]
    except Exception as exc:
        # The batch processor reports the failure to SQS but logs nothing: without this event a
        # retried record (an integrity error, a poison message) leaves no audit trace. The class
        # name only: exception texts may quote keys and UIDs; the DLQ keeps the message.
        logger.error(
            "failed", extra={"message_id": record.message_id, "reason": type(exc).__name__}
        )
        raise


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime().idempotency.register_lambda_context(context)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
