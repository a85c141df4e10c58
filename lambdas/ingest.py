"""Ingest function: SQS batch of inbox ``ObjectCreated`` events → archive or quarantine each object.

Thin handler over :mod:`lambdas.pipeline`: parse the event, run the pipeline once per object
version (Powertools idempotency keyed on bucket/key/version, so SQS's at-least-once delivery has an
exactly-once effect), report partial batch failures so only failed records are retried, and write
one structured audit event per object, and one per failed record (docs/audit-events.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.pipeline import Pipeline, Source
from lambdas.s3_events import Clients, batch_processor, handle_batch, idempotent, process_record
from lambdas.settings import IngestSettings

logger = Logger(service="pacs-ingest")
# Every failed record is reported, so only those are retried and the DLQ takes the poison ones.
processor = batch_processor()


@dataclass
class Runtime:
    """Clients and the idempotent processing function, built once per execution environment."""

    pipeline: Pipeline
    idempotency: IdempotencyConfig
    process: Any

    @classmethod
    def from_environment(cls) -> Runtime:
        settings = IngestSettings.from_env()
        clients = Clients.from_session()
        pipeline = Pipeline(settings, s3=clients.s3, kms=clients.kms, dynamodb=clients.dynamodb)

        def process(source: dict[str, Any]) -> dict[str, Any]:
            outcome = pipeline.process(Source(**source)).as_dict()
            # The one audit event per object: UIDs, digests, reason codes, pseudonymous key only
            # (fields in docs/audit-events.md, schema in lambdas/audit_events.py).
            logger.info(outcome["outcome"], extra=outcome)
            return outcome

        config, once = idempotent(
            process, table_name=settings.idempotency_table, dynamodb=clients.dynamodb
        )
        return cls(pipeline=pipeline, idempotency=config, process=once)


@functools.cache
def runtime() -> Runtime:
    """The execution environment's runtime, built on the first invocation."""
    return Runtime.from_environment()


def record_handler(record: SQSRecord) -> list[dict[str, Any]]:
    # Logs the ``failed`` audit event (class name only) when the record raises.
    return process_record(record, runtime().process, logger)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_batch(
        event,
        context,
        idempotency=runtime().idempotency,
        record_handler=record_handler,
        processor=processor,
    )
