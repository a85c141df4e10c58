"""The export function against moto: one encrypted, KMS-signed zip per study that pacs-kit open and
openssl open to the archived bytes; the link stored as a SHA-256 only; refusals; the audit log."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambdas import export_package as pkg
from lambdas import exports
from lambdas.audit_events import EXPORT
from lambdas.settings import ExportSettings, LinkSettings, SettingsError
from pacs_kit.cli import main
from tests.audit_events.capture import assert_all_emitted, assert_conform, assert_no_phi
from tests.certificates import identity
from tests.lambdas.conftest import REGION
from tests.lambdas.exporting import (
    Exports,
    capture,
    certificate,
    events,
    install_exports,
    openssl,
    run_export,
    token_of,
)
from tests.media.moto_kms import digest_signing

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the factory writes bad values

MEMBERS = ["1.p7m", "2.p7m", "3.p7m", "manifest.json", "manifest.json.p7s"]


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    from lambdas import export_function

    return capture(monkeypatch, export_function)


def _answer(exported: Exports, **changes: Any) -> dict[str, Any]:
    answer = run_export(exported.request(**changes))
    assert "error" not in answer, answer
    return answer


def _unzip(data: bytes, into: Path) -> Path:
    into.mkdir()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(into)
    return into


def test_an_export_writes_one_zip_object_encrypted_with_the_data_key(exported: Exports) -> None:
    answer = _answer(exported)
    key = f"exports/{answer['export_id']}/package.zip"
    assert exported.package_keys() == [key], "the exports bucket holds exactly the one package"
    s3 = boto3.client("s3", region_name=REGION)
    head = s3.head_object(Bucket=exported.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms", key
    assert head["SSEKMSKeyId"] == exported.stack.data_key, key
    data = exported.package(key)
    digest = hashlib.sha256(data).digest()
    assert head["ChecksumSHA256"] == base64.b64encode(digest).decode(), key
    assert answer["package_sha256"] == digest.hex()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == MEMBERS, "the sidecars are not exported"
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}


def test_the_answer_follows_the_contract(exported: Exports) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    answer = _answer(exported, link_minutes=5)
    assert set(answer) == {
        "export_id",
        "link",
        "expires_at",
        "members",
        "package_sha256",
        "signer",
    }
    assert answer["members"] == 3 and answer["signer"] == "kms"
    assert len(token_of(answer["link"])) == 43
    expires = dt.datetime.strptime(answer["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    expires = expires.replace(tzinfo=dt.UTC)
    assert (
        before + dt.timedelta(minutes=5) <= expires <= before + dt.timedelta(minutes=5, seconds=5)
    )


@pytest.mark.parametrize("form", ["directory", "zip"])
def test_pacs_kit_open_gives_the_archived_bytes(
    exported: Exports, tmp_path: Path, form: str
) -> None:
    answer = _answer(exported)
    data = exported.package(f"exports/{answer['export_id']}/package.zip")
    if form == "zip":
        package = tmp_path / "package.zip"
        package.write_bytes(data)
    else:
        package = _unzip(data, tmp_path / "package")
    out = tmp_path / "out"
    key = exported.recipient.key_path
    assert key is not None
    argv = ["open", str(package), "--key", str(key), "--out", str(out)]
    assert main([*argv, "--ca", str(exported.ca_pem)]) == 0
    opened = {p.name.removesuffix(".dcm"): p.read_bytes() for p in out.iterdir()}
    assert opened == exported.archived, "the opened instances are the archived bytes"


def test_openssl_verifies_the_kms_signature_against_the_kit_ca(
    exported: Exports, tmp_path: Path
) -> None:
    answer = _answer(exported)
    package = _unzip(exported.package(f"exports/{answer['export_id']}/package.zip"), tmp_path / "p")
    done = openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-content", package / "manifest.json",
        "-in", package / "manifest.json.p7s", "-CAfile", exported.ca_pem, "-purpose", "any",
        "-out", "/dev/null",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    manifest = (package / "manifest.json").read_bytes()
    signer = pkg.verify_detached(
        manifest, (package / "manifest.json.p7s").read_bytes(), [certificate(exported.ca_pem)]
    )
    assert signer == certificate(exported.signer_pem), "signed by the stack's KMS key"


def test_openssl_decrypts_a_member_to_the_archived_bytes(exported: Exports, tmp_path: Path) -> None:
    answer = _answer(exported)
    package = _unzip(exported.package(f"exports/{answer['export_id']}/package.zip"), tmp_path / "p")
    manifest = json.loads((package / "manifest.json").read_bytes())
    member = manifest["members"][0]
    key = exported.recipient.key_path
    assert key is not None
    done = openssl(
        "cms", "-decrypt", "-inform", "DER", "-binary", "-in", package / member["file"],
        "-inkey", key, "-recip", exported.recipient.cert_path or "",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == exported.archived[member["sop_instance_uid"]]


def test_the_table_holds_the_token_sha256_never_the_token(exported: Exports) -> None:
    answer = _answer(exported)
    token = token_of(answer["link"])
    [item] = exported.links()
    assert item["token_sha256"]["S"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(item), "the links table stores the token itself"
    expires_at = int(item["expires_at"]["N"])
    assert set(item) == {
        "token_sha256",
        "export_id",
        "bucket",
        "key",
        "expires_at",
        "ttl",
        "used",
        "recipient_sha256",
    }
    assert item["export_id"]["S"] == answer["export_id"]
    assert item["bucket"]["S"] == exported.bucket
    assert item["key"]["S"] == f"exports/{answer['export_id']}/package.zip"
    assert int(item["ttl"]["N"]) == expires_at + 24 * 3600
    assert item["used"] == {"BOOL": False}
    assert item["recipient_sha256"]["S"] == pkg.fingerprint(exported.recipient.certificate)


def test_two_exports_make_two_packages_and_two_links(exported: Exports) -> None:
    first, second = _answer(exported), _answer(exported)
    assert first["export_id"] != second["export_id"] and first["link"] != second["link"]
    assert len(exported.package_keys()) == 2 and len(exported.links()) == 2


def test_without_a_signer_certificate_a_one_time_key_signs_with_a_warning(
    aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exported = install_exports(monkeypatch, tmp_path, signer=False)
    answer = run_export(exported.request())
    assert answer["signer"] == "one-time" and "integrity" in answer["warning"]
    package = _unzip(exported.package(f"exports/{answer['export_id']}/package.zip"), tmp_path / "p")
    manifest = (package / "manifest.json").read_bytes()
    p7s = (package / "manifest.json.p7s").read_bytes()
    signer = pkg.verify_detached(manifest, p7s)
    assert pkg.ONE_TIME_SIGNER_CN in signer.subject.rfc4514_string()
    with pytest.raises(pkg.PackageError) as refused:
        pkg.verify_detached(manifest, p7s, [certificate(exported.ca_pem)])
    assert refused.value.code == "signer-untrusted"


def test_a_signer_certificate_for_another_key_fails_the_export(
    aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exported = install_exports(monkeypatch, tmp_path)
    other = tmp_path / "other.pem"
    other.write_bytes(identity("not the KMS key").pem)
    monkeypatch.setenv("PACS_EXPORT_SIGNER_CERT", str(other))
    assert run_export(exported.request()) == {"error": "signer-certificate-mismatch"}
    assert exported.package_keys() == [] and exported.links() == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"study_instance_uid": "1.2.3.4.5.6.7"}, "study-not-found"),
        ({"recipient_certificate": "ec"}, "recipient-invalid"),
        ({"recipient_certificate": "expired"}, "recipient-invalid"),
        ({"recipient_certificate": "not a certificate"}, "recipient-invalid"),
        ({"recipient_certificate": "rsa-1024"}, "recipient-invalid"),
        ({"recipient_certificate": "two certificates"}, "recipient-invalid"),
        ({"deidentify": True}, "deidentify-unsupported"),
        ({"options": ["clean-descriptors"]}, "request-invalid"),
        ({"link_minutes": 16}, "request-invalid"),
        ({"link_minutes": 0}, "request-invalid"),
        ({"study_instance_uid": "Testpatient^Harriet"}, "request-invalid"),
        ({"unexpected": 1}, "request-invalid"),
    ],
)
def test_refusals_answer_an_error_code_and_write_nothing(
    exported: Exports, log: io.StringIO, change: dict[str, Any], code: str
) -> None:
    if change.get("recipient_certificate") == "ec":
        change = {"recipient_certificate": identity("ec", usage="recipient").pem.decode()}
    elif change.get("recipient_certificate") == "expired":
        expired = identity("old", algorithm="rsa", usage="recipient", expired=True)
        change = {"recipient_certificate": expired.pem.decode()}
    elif change.get("recipient_certificate") == "rsa-1024":
        weak = identity("weak", algorithm="rsa", rsa_bits=1024, usage="recipient")
        change = {"recipient_certificate": weak.pem.decode()}
    elif change.get("recipient_certificate") == "two certificates":
        # A second certificate would be silently ignored: the field holds exactly one.
        good = identity("good", algorithm="rsa", usage="recipient").pem.decode()
        change = {"recipient_certificate": good + identity("extra").pem.decode()}
    assert run_export(exported.request(**change)) == {"error": code}
    assert exported.package_keys() == [] and exported.links() == []
    [event] = events(log)
    assert event["message"] == "export-refused" and event["reason"] == code


def test_a_study_of_sidecars_only_has_nothing_to_export(exported: Exports) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    key = "studies/1.2.3.4/series/1.2.3.5/instances/1.2.3.6.dcm.manifest.json"
    s3.put_object(Bucket=exported.stack.archive, Key=key, Body=b"{}", ChecksumAlgorithm="SHA256")
    answer = run_export(exported.request(study_instance_uid="1.2.3.4"))
    assert answer == {"error": "nothing-to-export"}


def test_a_study_uid_prefix_of_another_is_another_study(exported: Exports) -> None:
    # The archived study is "<uid>"; study "<uid>" minus its last digit must find nothing.
    study = exported.study_uid
    shorter = study[:-1] if not study[:-1].endswith(".") else study[:-2]
    assert exports.is_uid(shorter) and study.startswith(shorter)
    assert run_export(exported.request(study_instance_uid=shorter)) == {"error": "study-not-found"}


def test_the_audit_log_follows_the_schema_without_token_or_phi(
    exported: Exports, log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # whatever any other logger says reaches the log group too
    answer = _answer(exported)
    assert run_export(exported.request(study_instance_uid="1.2.3.999")) == {
        "error": "study-not-found"
    }
    assert run_export(exported.request(study_instance_uid="Testpatient^Harriet")) == {
        "error": "request-invalid"
    }
    logged = events(log)
    assert_conform(EXPORT, logged)
    assert_all_emitted(EXPORT, logged)
    lines = log.getvalue().splitlines() + caplog.messages
    assert_no_phi(lines)
    token = token_of(answer["link"])
    assert not any(token in line for line in lines), "a log line carries the token"
    [created] = [e for e in logged if e["message"] == "export-created"]
    assert created["study_instance_uid"] == exported.study_uid
    assert created["package_sha256"] == answer["package_sha256"]
    assert created["members"] == 3 and created["deidentified"] is False
    refused = [e for e in logged if e["message"] == "export-refused"]
    assert [e.get("study_instance_uid") for e in refused] == ["1.2.3.999", None]


def test_the_core_asks_s3_to_check_each_instance_against_its_stored_sha256(
    exported: Exports,
) -> None:
    # ChecksumMode=ENABLED: S3 returns the SHA-256 stored at ingest and botocore refuses a body
    # that does not match it (moto cannot serve a corrupted body, so the request is checked).
    calls: list[dict[str, Any]] = []
    s3 = boto3.client("s3", region_name=REGION)

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(params)

    s3.meta.events.register("provide-client-params.s3.GetObject", record)
    settings = ExportSettings.from_env()
    request = exports.parse_request(exported.request(), max_link_minutes=15)
    with digest_signing():
        exports.build_study_package(
            settings,
            request,
            s3=s3,
            kms=boto3.client("kms", region_name=REGION),
            now=dt.datetime.now(dt.UTC),
        )
    assert len(calls) == 3 and all(c["ChecksumMode"] == "ENABLED" for c in calls)


def test_the_recipient_must_be_valid_now() -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    recipient = identity("r", algorithm="rsa", usage="recipient")
    request = {"study_instance_uid": "1.2.3", "recipient_certificate": recipient.pem.decode()}
    assert exports.parse_request(request, max_link_minutes=15).recipient == recipient.certificate
    with pytest.raises(exports.ExportError) as refused:
        exports.parse_request(request, max_link_minutes=15, now=later)
    assert refused.value.code == "recipient-invalid"


SETTINGS = {
    "PACS_ARCHIVE_BUCKET": "archive",
    "PACS_EXPORTS_BUCKET": "exports",
    "PACS_EXPORTS_TABLE": "links",
    "PACS_DATA_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/data",
    "PACS_SIGNING_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/signing",
    "PACS_LINK_URL": "https://abc.lambda-url.us-east-1.on.aws/",
    "PACS_EXPORT_SIGNER_CERT": "",
}


def test_the_signer_certificate_is_read_from_the_function_package(tmp_path: Path) -> None:
    (tmp_path / "export-signer").mkdir()
    pem = identity("signer").pem
    (tmp_path / "export-signer" / "signer.pem").write_bytes(pem)
    env = {
        **SETTINGS,
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "PACS_EXPORT_SIGNER_CERT": "export-signer/signer.pem",
    }
    settings = ExportSettings.from_env(env)
    assert settings.signer_certificate_pem == pem.decode()
    assert settings.link_minutes == 15
    assert ExportSettings.from_env(SETTINGS).signer_certificate_pem == ""


@pytest.mark.parametrize(
    "change",
    [
        {"PACS_LINK_URL": "http://abc.lambda-url.us-east-1.on.aws/"},
        {"PACS_LINK_MINUTES": "16"},
        {"PACS_LINK_MINUTES": "0"},
        {"PACS_EXPORT_SIGNER_CERT": "no/such/file.pem"},
        {"PACS_EXPORTS_TABLE": ""},
    ],
)
def test_export_settings_refuse_a_broken_environment(change: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        ExportSettings.from_env({**SETTINGS, **change})


def test_link_settings_keep_the_presigned_url_at_most_a_minute() -> None:
    env = {"PACS_EXPORTS_BUCKET": "exports", "PACS_EXPORTS_TABLE": "links"}
    assert LinkSettings.from_env(env).presign_seconds == 60
    assert LinkSettings.from_env({**env, "PACS_PRESIGN_SECONDS": "30"}).presign_seconds == 30
    with pytest.raises(SettingsError):
        LinkSettings.from_env({**env, "PACS_PRESIGN_SECONDS": "61"})


@pytest.fixture
def enforced_export_role(exported: Exports, monkeypatch: pytest.MonkeyPatch) -> Exports:
    """The export function's credentials: a role holding exactly the generated policy (plus the
    named moto KMS/DynamoDB/Logs-on-* shim of conftest.assume_role_with_policy), enforced."""
    from infra.iam_documents import ExportResources, export_role_policy
    from tests.lambdas.conftest import ACCOUNT, PREFIX, assume_role_with_policy

    stack = exported.stack
    policy = export_role_policy(
        ExportResources(
            archive_bucket=stack.archive,
            exports_bucket=exported.bucket,
            links_table_arn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT.account_id}:table/{exported.table}",
            data_key_arn=stack.data_key,
            signing_key_arn=stack.signing_key,
            signing_algorithms=("ECDSA_SHA_256",),
            log_group_arn=(
                f"arn:aws:logs:{REGION}:{ACCOUNT.account_id}:log-group:/aws/lambda/{PREFIX}-export"
            ),
            via_service_endpoints=tuple(f"{s}.{REGION}.amazonaws.com" for s in ("dynamodb", "s3")),
        )
    )
    assume_role_with_policy(monkeypatch, f"{PREFIX}-export", policy)  # enforcement on
    return exported


def test_the_generated_export_role_is_enough_to_export(enforced_export_role: Exports) -> None:
    answer = run_export(enforced_export_role.request())
    assert "error" not in answer, answer
    assert answer["members"] == 3 and answer["signer"] == "kms"


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        ("get_object", {"Key": "exports/x/package.zip"}),
        ("delete_object", {"Key": "exports/x/package.zip"}),
        ("put_object", {"Key": "outside/x.zip", "Body": b"x"}),
    ],
)
def test_the_export_role_cannot_read_or_delete_packages(
    enforced_export_role: Exports, operation: str, kwargs: dict[str, Any]
) -> None:
    from botocore.exceptions import ClientError

    s3 = boto3.session.Session().client("s3", region_name=REGION)  # the role's credentials
    with pytest.raises(ClientError) as error:
        getattr(s3, operation)(Bucket=enforced_export_role.bucket, **kwargs)
    assert error.value.response["Error"]["Code"] == "AccessDenied", f"{operation} {kwargs}"


def test_a_study_too_large_for_one_package_is_refused_before_any_work(
    exported: Exports, log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdas import exports

    monkeypatch.setattr(exports, "MAX_STUDY_BYTES", 1000)  # the study's instances are larger
    assert run_export(exported.request()) == {"error": "study-too-large"}
    assert exported.package_keys() == [] and exported.links() == []
    [event] = events(log)
    assert event["reason"] == "study-too-large"
