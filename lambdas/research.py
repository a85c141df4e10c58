"""Research-copy function: SQS batch of archive ``ObjectCreated`` events → de-identified copies.

Thin handler over :mod:`lambdas.research_copy`, in the ingest function's pattern: parse the event,
process each archived object version once (Powertools idempotency keyed on bucket/key/version, so a
redelivered message has one effect), report partial batch failures, and log the audit events of
each object — one per project it is routed to (``research-copied`` or ``research-held``), or
``research-not-routed`` — and one ``failed`` per record that raised (docs/audit-events.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.pipeline import Source
from lambdas.research_copy import ResearchCopier
from lambdas.s3_events import Clients, batch_processor, handle_batch, idempotent, process_record
from lambdas.settings import ResearchSettings

logger = Logger(service="pacs-research")
# As in ingest: every failed record is reported, so only those are retried and the DLQ takes poison.
processor = batch_processor()
_LEVELS = {"research-held": "warning"}


@dataclass
class Runtime:
    """Clients and the idempotent processing function, built once per execution environment."""

    copier: ResearchCopier
    idempotency: IdempotencyConfig
    process: Any

    @classmethod
    def from_environment(cls) -> Runtime:
        settings = ResearchSettings.from_env()
        clients = Clients.from_session()
        copier = ResearchCopier(settings, s3=clients.s3, kms=clients.kms, dynamodb=clients.dynamodb)

        def research_copy(source: dict[str, Any]) -> dict[str, int]:
            events = [e.as_dict() for e in copier.process(Source(**source))]
            for event in events:
                # UIDs, keys, codes and project names only (docs/audit-events.md).
                fields = {k: v for k, v in event.items() if k != "message"}
                log = getattr(logger, _LEVELS.get(event["message"], "info"))
                log(event["message"], extra=fields)
            # The idempotency record (a table shared with ingest) keeps counts only: no UID, no key.
            return _summary(events)

        config, once = idempotent(
            research_copy, table_name=settings.idempotency_table, dynamodb=clients.dynamodb
        )
        return cls(copier=copier, idempotency=config, process=once)


def _summary(events: list[dict[str, Any]]) -> dict[str, int]:
    """What the idempotent function returns: how many copies and holds, nothing identifying."""
    messages = [e["message"] for e in events]
    return {"copies": messages.count("research-copied"), "held": messages.count("research-held")}


@functools.cache
def runtime() -> Runtime:
    """The execution environment's runtime, built on the first invocation."""
    return Runtime.from_environment()


def record_handler(record: SQSRecord) -> list[dict[str, int]]:
    # As in ingest: logs the ``failed`` audit event (class name only) when the record raises.
    return process_record(record, runtime().process, logger)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    current = runtime()
    current.copier.new_invocation()  # the MAC cache lives for this invocation only
    return handle_batch(
        event,
        context,
        idempotency=current.idempotency,
        record_handler=record_handler,
        processor=processor,
    )
