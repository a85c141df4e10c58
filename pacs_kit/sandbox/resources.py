"""The sandbox's table: each Pulumi resource type the stack declares -> the handler creating it.

Handlers live by service family in :mod:`pacs_kit.sandbox.aws_data` (storage, keys, identity,
queues, backup) and :mod:`pacs_kit.sandbox.aws_platform` (network, logs, events, audit, compute,
load balancing); a type whose handler raises :class:`~pacs_kit.sandbox.emulate.NotEmulated` is
reported with the reason. A type missing here stops the deployment, naming it.
"""

from __future__ import annotations

from pacs_kit.sandbox import aws_data, aws_platform
from pacs_kit.sandbox.emulate import Handler

TABLE: dict[str, Handler] = {**aws_data.HANDLERS, **aws_platform.HANDLERS}
