"""Export function: a direct invocation by an imaging operator → a study's package and its link.

Thin handler over :func:`lambdas.exports.export_study`: the answer is the contract's JSON
(``export_id``, ``link``, ``expires_at``, ``members``, ``package_sha256``, and ``signer``) or
``{"error": "<code>"}``; the audit event is ``export-created`` or ``export-refused``
(docs/audit-events.md). The link's token is in the answer only: it is never logged, and Lambda
does not log a direct invocation's answer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.exports import ExportError, export_study, is_uid
from lambdas.s3_events import Clients
from lambdas.settings import ExportSettings

logger = Logger(service="pacs-export")


@dataclass
class Runtime:
    """Settings and clients, built once per execution environment."""

    settings: ExportSettings
    clients: Clients

    @classmethod
    def from_environment(cls) -> Runtime:
        return cls(settings=ExportSettings.from_env(), clients=Clients.from_session())


@functools.cache
def runtime() -> Runtime:
    """The execution environment's runtime, built on the first invocation."""
    return Runtime.from_environment()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    current = runtime()
    clients = current.clients
    try:
        result = export_study(
            event,
            current.settings,
            s3=clients.s3,
            kms=clients.kms,
            dynamodb=clients.dynamodb,
        )
    except ExportError as exc:
        study = event.get("study_instance_uid") if isinstance(event, dict) else None
        # The UID only when it is one: a mistaken value could be anything, even PHI.
        fields: dict[str, Any] = {"reason": exc.code}
        if is_uid(study):
            fields["study_instance_uid"] = study
        logger.warning("export-refused", extra=fields)
        return {"error": exc.code}
    logger.info("export-created", extra=result.audit())
    return result.answer()
