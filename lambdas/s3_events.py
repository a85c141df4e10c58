"""S3 event notifications delivered through SQS: the object versions one message names.

Shared by the functions an S3 bucket notifies through a queue (ingest: the inbox; research: the
archive), with the Powertools scaffolding of their handlers: clients, idempotency keyed on the
object version, the record loop with its ``failed`` audit event, partial batch failure reports.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

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

from lambdas.pipeline import Source


class EventError(ValueError):
    """An SQS message that is not an S3 event (poison: it ends in the DLQ)."""


def sources(record: SQSRecord) -> Iterator[Source]:
    """The object versions created, as named by one SQS message (an S3 event notification)."""
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


# --- the handler scaffolding of those functions ------------------------------------------------

# Longer than the queue's retention, so a redelivered message always finds its record.
IDEMPOTENCY_SECONDS = 15 * 24 * 3600
# Standard retry mode backs off on throttling and 5xx before a record is given up for SQS to retry.
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})

Process = TypeVar("Process", bound=Callable[..., Any])
Result = TypeVar("Result")


@dataclass(frozen=True)
class Clients:
    """The clients a function's runtime is built from, with :data:`BOTO_CONFIG`."""

    s3: Any
    kms: Any
    dynamodb: Any

    @classmethod
    def from_session(cls) -> Clients:
        session = boto3.session.Session()
        dynamodb = session.client("dynamodb", config=BOTO_CONFIG)
        return cls(
            s3=session.client("s3", config=BOTO_CONFIG),
            kms=session.client("kms", config=BOTO_CONFIG),
            dynamodb=dynamodb,
        )


def batch_processor() -> BatchProcessor:
    """A batch whose every record failed is still reported record by record (not raised), so the
    event source mapping retries exactly those and the DLQ takes the poison ones."""
    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def idempotent(
    process: Process, *, table_name: str, dynamodb: Any
) -> tuple[IdempotencyConfig, Process]:
    """``process`` run once per ``source`` (its keyword argument), recorded in ``table_name``.

    Powertools keys the records on the function's module and qualified name too: ``process``
    stays defined in its function's module.
    """
    config = IdempotencyConfig(
        expires_after_seconds=IDEMPOTENCY_SECONDS, raise_on_no_idempotency_key=True
    )
    store = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb)
    decorate = idempotent_function(
        data_keyword_argument="source", config=config, persistence_store=store
    )
    return config, decorate(process)


def process_record(
    record: SQSRecord, process: Callable[..., Result], logger: Logger
) -> list[Result]:
    """``process(source=...)`` for each object version the record names; logs ``failed`` if any
    raises, and re-raises so the batch processor reports the record."""
    try:
        return [process(source=s.as_dict()) for s in sources(record)]
    except Exception as exc:
        # The batch processor reports the failure to SQS but logs nothing: without this event a
        # retried record (an integrity error, a poison message) leaves no audit trace. The class
        # name only: exception texts may quote keys and UIDs; the DLQ keeps the message.
        # stacklevel: the location is the calling record handler's, as it always was.
        logger.error(
            "failed",
            extra={"message_id": record.message_id, "reason": type(exc).__name__},
            stacklevel=3,
        )
        raise


def handle_batch(
    event: dict[str, Any],
    context: LambdaContext,
    *,
    idempotency: IdempotencyConfig,
    record_handler: Callable[[SQSRecord], Any],
    processor: BatchProcessor,
) -> dict[str, Any]:
    """The SQS batch through ``record_handler``, reporting partial batch failures."""
    idempotency.register_lambda_context(context)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
