"""The one-time link function against moto: works once (303 to a presigned GET of exactly the
package), then 410; expired and unknown tokens get the same 410; one of two concurrent uses wins;
the log names the reason, never the token."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto.dynamodb.models import DynamoDBBackend

from lambdas import exports
from lambdas.audit_events import LINK
from lambdas.export_link import GONE_BODY
from lambdas.settings import ExportSettings
from tests.audit_events.capture import assert_all_emitted, assert_conform
from tests.lambdas.conftest import REGION
from tests.lambdas.exporting import (
    Exports,
    capture,
    events,
    run_export,
    token_of,
    use_link,
)
from tests.media.moto_kms import digest_signing

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the factory writes bad values


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    from lambdas import export_link

    return capture(monkeypatch, export_link)


def _link(exported: Exports, **changes: Any) -> tuple[str, dict[str, Any]]:
    answer = run_export(exported.request(**changes))
    assert "error" not in answer, answer
    return token_of(answer["link"]), answer


def _assert_gone(response: dict[str, Any]) -> None:
    assert response["statusCode"] == 410, response
    assert response["body"] == GONE_BODY
    assert response["headers"]["Cache-Control"] == "no-store"
    assert "Location" not in response["headers"]


def test_the_first_use_redirects_to_a_presigned_get_of_exactly_the_package(
    exported: Exports,
) -> None:
    token, answer = _link(exported)
    response = use_link(token)
    assert response["statusCode"] == 303, response
    headers = response["headers"]
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    location = headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query["X-Amz-Expires"] == ["60"], "the presigned URL lives PACS_PRESIGN_SECONDS"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"], "SSE-KMS objects need SigV4"
    assert token not in location, "the package URL carries the link's token"
    download = requests.get(location, timeout=30)  # moto answers the presigned GET
    assert download.status_code == 200
    package = exported.package(f"exports/{answer['export_id']}/package.zip")
    assert download.content == package, "the presigned GET returns exactly the package"
    assert hashlib.sha256(download.content).hexdigest() == answer["package_sha256"]


def test_the_second_use_is_refused(exported: Exports, log: io.StringIO) -> None:
    token, answer = _link(exported)
    assert use_link(token)["statusCode"] == 303
    _assert_gone(use_link(token))
    [item] = exported.links()
    assert item["used"] == {"BOOL": True} and "used_at" in item
    used, refused = events(log)
    assert used["message"] == "link-used" and used["export_id"] == answer["export_id"]
    assert refused["message"] == "link-refused" and refused["reason"] == "used"
    assert refused["export_id"] == answer["export_id"]
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert used["token_sha256"] == refused["token_sha256"] == digest[:12]


def test_an_expired_link_is_refused(exported: Exports, log: io.StringIO) -> None:
    # GIVEN a one-minute link issued twenty minutes ago
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    request = exports.parse_request(exported.request(link_minutes=1), max_link_minutes=15, now=past)
    s3 = boto3.client("s3", region_name=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    kms = boto3.client("kms", region_name=REGION)
    settings = ExportSettings.from_env()
    with digest_signing():
        package = exports.build_study_package(settings, request, s3=s3, kms=kms, now=past)
    link = exports.issue_link(
        dynamodb, settings.exports_table, package, recipient_sha256="0" * 64, minutes=1, now=past
    )
    # WHEN it is used now THEN it is refused, as expired, and stays unused
    _assert_gone(use_link(link.token))
    [refused] = events(log)
    assert refused["reason"] == "expired"
    [item] = exported.links()
    assert item["used"] == {"BOOL": False}


def test_a_link_used_after_its_expiry_is_refused_by_the_core(exported: Exports) -> None:
    token, answer = _link(exported, link_minutes=1)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
    outcome = exports.consume_link(dynamodb, exported.table, token, later)
    assert outcome == exports.Refused(
        "expired", hashlib.sha256(token.encode()).hexdigest(), answer["export_id"]
    )
    # The expiry is exclusive: at expires_at exactly, the link no longer works.
    expires_at = int(exported.links()[0]["expires_at"]["N"])
    at_expiry = exports.consume_link(dynamodb, exported.table, token, expires_at)
    assert isinstance(at_expiry, exports.Refused) and at_expiry.reason == "expired"
    just_before = exports.consume_link(dynamodb, exported.table, token, expires_at - 1)
    assert isinstance(just_before, exports.Consumed)


@pytest.mark.parametrize(
    "token",
    [None, "", "x" * 43, "A" * 42, "not-a-token/../../etc", "A" * 43],
)
def test_unknown_or_missing_tokens_get_the_same_answer(
    exported: Exports, log: io.StringIO, token: str | None
) -> None:
    _link(exported)  # a real link exists; these tokens are not it
    _assert_gone(use_link(token))
    [refused] = events(log)
    assert refused["message"] == "link-refused" and refused["reason"] == "unknown"
    assert "export_id" not in refused
    assert exported.links()[0]["used"] == {"BOOL": False}


def test_the_refusals_are_indistinguishable_to_the_recipient(exported: Exports) -> None:
    used, _ = _link(exported)
    use_link(used)
    expiring, _ = _link(exported, link_minutes=1)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.update_item(  # moved into the past rather than waiting a minute
        TableName=exported.table,
        Key={"token_sha256": {"S": hashlib.sha256(expiring.encode()).hexdigest()}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1000"}},
    )
    answers = [use_link(t) for t in (used, expiring, "B" * 43)]
    assert answers[0] == answers[1] == answers[2]


@pytest.fixture
def atomic_moto_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies a conditional UpdateItem atomically (its condition is checked and the
    write made as one step); moto's in-memory backend does not lock, so two threads could both
    pass the condition inside moto. The lock gives moto the atomicity DynamoDB has: what is
    tested is that the product relies on that one conditional write alone (no read-then-write)."""
    lock = threading.Lock()
    original = DynamoDBBackend.update_item

    def update_item(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "update_item", update_item)


def test_of_two_concurrent_uses_exactly_one_succeeds(
    exported: Exports, atomic_moto_updates: None
) -> None:
    token, _ = _link(exported)
    barrier = threading.Barrier(2)
    table = exported.table

    def consume(_: int) -> exports.Consumed | exports.Refused:
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        barrier.wait(timeout=30)
        return exports.consume_link(dynamodb, table, token, dt.datetime.now(dt.UTC))

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(consume, range(2)))
    consumed = [o for o in outcomes if isinstance(o, exports.Consumed)]
    refused = [o for o in outcomes if isinstance(o, exports.Refused)]
    assert len(consumed) == 1 and len(refused) == 1, outcomes
    assert refused[0].reason == "used"


class _Recorder:
    """A DynamoDB client that records calls and answers an UpdateItem as DynamoDB would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("update_item", kwargs))
        item = {"export_id": {"S": "e"}, "bucket": {"S": "b"}, "key": {"S": "exports/e/p.zip"}}
        return {"Attributes": item}

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> dict[str, Any]:
            self.calls.append((name, kwargs))
            return {}

        return call


def test_a_use_is_one_conditional_update_and_nothing_else() -> None:
    client = _Recorder()
    outcome = exports.consume_link(client, "links", "C" * 43, 1_000)
    assert isinstance(outcome, exports.Consumed)
    [(operation, call)] = client.calls
    assert operation == "update_item"
    assert call["ConditionExpression"] == (
        "attribute_exists(token_sha256) AND used = :false AND expires_at > :now"
    )
    assert call["UpdateExpression"] == "SET used = :true, used_at = :now"
    assert call["Key"] == {"token_sha256": {"S": hashlib.sha256(b"C" * 43).hexdigest()}}


def test_the_link_log_follows_the_schema_and_never_carries_the_token(
    exported: Exports, log: io.StringIO
) -> None:
    token, _ = _link(exported)
    use_link(token)
    use_link(token)
    use_link("D" * 43)
    use_link(None)
    logged = events(log)
    assert_conform(LINK, logged)
    assert_all_emitted(LINK, logged)
    assert not any(token in line for line in log.getvalue().splitlines())
    assert sorted(e["reason"] for e in logged if e["message"] == "link-refused") == [
        "unknown",
        "unknown",
        "used",
    ]


def test_the_generated_link_role_is_enough_to_use_a_link_and_fetch_the_package(
    exported: Exports, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a link issued by the export function, THEN the link function holding exactly its
    # generated policy (plus conftest's named moto KMS/DynamoDB/Logs-on-* shim), enforced
    from infra.iam_documents import ExportLinkResources, export_link_role_policy
    from tests.lambdas.conftest import ACCOUNT, PREFIX, assume_role_with_policy

    token, answer = _link(exported)
    policy = export_link_role_policy(
        ExportLinkResources(
            exports_bucket=exported.bucket,
            links_table_arn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT.account_id}:table/{exported.table}",
            data_key_arn=exported.stack.data_key,
            log_group_arn=(
                f"arn:aws:logs:{REGION}:{ACCOUNT.account_id}:log-group:/aws/lambda/"
                f"{PREFIX}-export-link"
            ),
            via_service_endpoints=tuple(f"{s}.{REGION}.amazonaws.com" for s in ("dynamodb", "s3")),
        )
    )
    session = assume_role_with_policy(monkeypatch, f"{PREFIX}-export-link", policy)
    response = use_link(token)
    assert response["statusCode"] == 303, response
    _assert_gone(use_link(token))  # the refusal needs no read permission either
    # The presigned URL carries the role's credentials. moto's IAM enforcement cannot judge a
    # query-string-signed request (it looks for an Authorization header), so the same GetObject
    # is made header-signed with the role's credentials; the presigned GET itself is tested above.
    s3 = session.client("s3", region_name=REGION)
    key = f"exports/{answer['export_id']}/package.zip"
    data = s3.get_object(Bucket=exported.bucket, Key=key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == answer["package_sha256"]
    with pytest.raises(ClientError) as error:
        s3.put_object(Bucket=exported.bucket, Key="exports/x/package.zip", Body=b"x")
    assert error.value.response["Error"]["Code"] == "AccessDenied", "the link role wrote a package"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_opening_the_link_spends_nothing(exported: Exports, method: str) -> None:
    # Mail scanners and link previews fetch a link before the recipient clicks it.
    token, _ = _link(exported)
    for _ in range(3):
        page = use_link(token, method=method)
        assert page["statusCode"] == 200, page
        assert "default-src 'none'" in page["headers"]["Content-Security-Policy"]
        assert page["headers"]["Cache-Control"] == "no-store"
    assert (page["body"] == "") == (method == "HEAD")
    assert [item["used"] for item in exported.links()] == [{"BOOL": False}]
    assert use_link(token)["statusCode"] == 303, "the POST still works after the previews"


def test_the_page_does_not_block_the_redirect_to_s3(exported: Exports) -> None:
    # Chrome and Edge apply CSP form-action to the redirect after the POST: 'self' would block
    # the download to S3 after the link was spent.
    token, _ = _link(exported)
    policy = use_link(token, method="GET")["headers"]["Content-Security-Policy"]
    assert "form-action" not in policy, policy
    assert "frame-ancestors 'none'" in policy


def test_the_page_is_the_same_for_any_token(exported: Exports) -> None:
    token, _ = _link(exported)
    assert use_link(token, method="GET") == use_link("not-a-token", method="GET")


def test_other_methods_are_not_allowed(exported: Exports) -> None:
    token, _ = _link(exported)
    assert use_link(token, method="DELETE")["statusCode"] == 405
    assert use_link(token)["statusCode"] == 303
