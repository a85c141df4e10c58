"""One-time link function: a Lambda function URL request with ``?token=`` → a page, 302 or 410.

Opening the link (GET or HEAD) spends nothing: it answers a small page whose one button POSTs the
same URL. Mail and chat systems fetch links to scan or preview them; if a GET spent the link, the
recipient would find it used before clicking. The page is the same for every token (no table
read), so it tells a guesser nothing either.

The POST is the use, through :func:`lambdas.exports.consume_link`: a link used for the first time,
before it expires, answers 303 (See Other: the browser follows with a GET) to a presigned GET
of the package that works ``PACS_PRESIGN_SECONDS``; every other POST (no token, an unknown, used
or expired one) gets the same 410 and the same body. Other methods get 405. The audit log says
which: ``link-used`` or ``link-refused`` with the reason (docs/audit-events.md), naming the token
by the first 12 hex digits of its SHA-256, never by the token.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from lambdas.exports import Consumed, consume_link
from lambdas.s3_events import BOTO_CONFIG
from lambdas.settings import EXPORTS_PREFIX, LinkSettings

logger = Logger(service="pacs-export-link")

GONE_BODY = "This link has expired or was already used."
TOKEN_LOG_HEX = 12  # how much of the token's SHA-256 the log shows
# Neither the token in the URL nor the package's URL may be cached or passed on as a Referer.
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
# The landing page: no script, no external resource, not framable; its form posts to itself.
# No form-action directive: browsers (Chrome, Edge) apply it to the redirect that follows the
# POST, which goes to S3, so 'self' would block the download after the link was spent; the form
# has no action attribute, so there is nothing for the directive to protect.
_PAGE_HEADERS = {
    **_HEADERS,
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}
LANDING_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Imaging export</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto">
<h1>Imaging export</h1>
<p>This link downloads an encrypted imaging package <strong>once</strong>. Download it only on
the computer that holds the recipient's private key; open it with <code>pacs-kit open</code>.</p>
<form method="post"><button type="submit">Download the package</button></form>
</body></html>
"""
# SSE-KMS objects can only be fetched with Signature Version 4.
_S3_CONFIG = BOTO_CONFIG.merge(Config(signature_version="s3v4"))


@dataclass
class Runtime:
    """Settings and clients, built once per execution environment."""

    settings: LinkSettings
    s3: Any
    dynamodb: Any

    @classmethod
    def from_environment(cls) -> Runtime:
        session = boto3.session.Session()
        return cls(
            settings=LinkSettings.from_env(),
            s3=session.client("s3", config=_S3_CONFIG),
            dynamodb=session.client("dynamodb", config=BOTO_CONFIG),
        )


@functools.cache
def runtime() -> Runtime:
    """The execution environment's runtime, built on the first invocation."""
    return Runtime.from_environment()


def gone() -> dict[str, Any]:
    """The one answer to every refused use."""
    return {
        "statusCode": 410,
        "headers": {**_HEADERS, "Content-Type": "text/plain; charset=utf-8"},
        "body": GONE_BODY,
    }


def redirect(location: str) -> dict[str, Any]:
    # 303: whatever the request's method, the browser follows with a GET (a 302 after a POST
    # is followed with a GET by browsers too, but 303 says it).
    return {"statusCode": 303, "headers": {**_HEADERS, "Location": location}, "body": ""}


def landing(method: str) -> dict[str, Any]:
    """The page a GET (or HEAD) gets for every token: nothing is spent."""
    return {
        "statusCode": 200,
        "headers": _PAGE_HEADERS,
        "body": "" if method == "HEAD" else LANDING_PAGE,
    }


def not_allowed() -> dict[str, Any]:
    return {
        "statusCode": 405,
        "headers": {**_HEADERS, "Allow": "GET, HEAD, POST", "Content-Type": "text/plain"},
        "body": "",
    }


def _method(event: Any) -> str:
    http = event.get("requestContext", {}).get("http", {}) if isinstance(event, dict) else {}
    return str(http.get("method", "") if isinstance(http, dict) else "").upper()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    method = _method(event)
    if method in ("GET", "HEAD"):
        return landing(method)
    if method != "POST":
        return not_allowed()
    current = runtime()
    settings = current.settings
    query = event.get("queryStringParameters") if isinstance(event, dict) else None
    token = query.get("token") if isinstance(query, dict) else None
    outcome = consume_link(current.dynamodb, settings.exports_table, token, dt.datetime.now(dt.UTC))
    prefix = outcome.token_sha256[:TOKEN_LOG_HEX]
    if not isinstance(outcome, Consumed):
        fields: dict[str, Any] = {"reason": outcome.reason, "token_sha256": prefix}
        if outcome.export_id is not None:
            fields["export_id"] = outcome.export_id
        logger.warning("link-refused", extra=fields)
        return gone()
    if outcome.bucket != settings.exports_bucket or not outcome.key.startswith(EXPORTS_PREFIX):
        # Only a forged table item could point elsewhere; the link is spent either way.
        raise ValueError("a link item names an object outside the exports bucket's exports/")
    url = current.s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": outcome.bucket,
            "Key": outcome.key,
            "ResponseContentDisposition": f'attachment; filename="{outcome.export_id}.zip"',
        },
        ExpiresIn=settings.presign_seconds,
    )
    logger.info("link-used", extra={"export_id": outcome.export_id, "token_sha256": prefix})
    return redirect(url)
