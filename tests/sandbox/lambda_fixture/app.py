"""A tiny handler run by the sandbox's Lambda service in the tests.

Each record's body says what to do: ``ok``, ``fail`` (reported as a batch item failure) or
``denied`` (an S3 call outside the role's policy, whose error code is returned). A scheduled event
raises when ``FIXTURE_FAIL_SCHEDULE`` is set. The module caches the function name it was first
imported under, like the real handlers cache their clients.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

logger = Logger(service="sandbox-fixture")
FIRST_FUNCTION = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")


class ScheduledFailure(RuntimeError):
    """Raised on a scheduled event when the function is told to fail."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    environment = dict(os.environ)
    if event.get("detail-type") == "Scheduled Event":
        logger.info("scheduled", extra={"rule": event["resources"][0]})
        if os.environ.get("FIXTURE_FAIL_SCHEDULE"):
            raise ScheduledFailure("told to fail")
        return {"environment": environment, "first_function": FIRST_FUNCTION}
    failures = []
    denied: list[str] = []
    for record in event["Records"]:
        body = record["body"]
        logger.info("record", extra={"message_id": record["messageId"], "body": body})
        if body == "fail":
            failures.append({"itemIdentifier": record["messageId"]})
        elif body == "denied":
            try:
                boto3.client("s3").list_buckets()
                denied.append("allowed")
            except ClientError as exc:
                denied.append(str(exc.response["Error"]["Code"]))
    print("plain print line")  # noqa: T201 - what a bare print does under Lambda
    return {
        "batchItemFailures": failures,
        "environment": environment,
        "first_function": FIRST_FUNCTION,
        "denied": denied,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "records": event["Records"],
    }
