"""The export and link functions on top of the moto stack of conftest.py: the exports bucket and
links table as the contract defines them, the kit's CA, a signer certificate issued for the stack's
signing KMS key, an RSA recipient and an archived study.

KMS ``Sign`` with ``MessageType=DIGEST`` goes through tests/media/moto_kms.py's named shim
(``digest_signing``): callers hold it around every export that signs with KMS.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509

from infra.components.archive import bucket_name
from lambdas import settings as env
from lambdas.manifest import archive_key, sidecar_key
from pacs_kit.pki import _name, init_ca, kms_csr, sign_csr
from tests.certificates import Identity, identity, write
from tests.lambdas.conftest import (
    ACCOUNT,
    PREFIX,
    REGION,
    FakeContext,
    Stack,
    fresh_runtime,
    install_stack,
)
from tests.lambdas.factory import ct, encode
from tests.media.moto_kms import digest_signing

LINK_URL = "https://abcdefghij.lambda-url.us-east-1.on.aws/"
EXPORT_CONTEXT = FakeContext(
    function_name=f"{PREFIX}-export",
    invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:{PREFIX}-export",
)
LINK_CONTEXT = FakeContext(
    function_name=f"{PREFIX}-export-link",
    invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:{PREFIX}-export-link",
)


@dataclass
class Exports:
    """The moto stack with its exports resources, PKI and one archived study."""

    stack: Stack
    bucket: str
    table: str
    ca_pem: Path
    signer_pem: Path
    recipient: Identity
    study_uid: str
    # SOP Instance UID -> the archived bytes
    archived: dict[str, bytes]
    tmp: Path

    def request(self, **changes: Any) -> dict[str, Any]:
        """An export request for the archived study to the RSA recipient."""
        return {
            "study_instance_uid": self.study_uid,
            "recipient_certificate": self.recipient.pem.decode(),
            "deidentify": False,
            "options": [],
            **changes,
        }

    def links(self) -> list[dict[str, Any]]:
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        return list(dynamodb.scan(TableName=self.table)["Items"])

    def package_keys(self) -> list[str]:
        s3 = boto3.client("s3", region_name=REGION)
        return [o["Key"] for o in s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])]

    def package(self, key: str) -> bytes:
        s3 = boto3.client("s3", region_name=REGION)
        return bytes(s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())


def archive_study(stack: Stack, count: int = 3) -> tuple[str, dict[str, bytes]]:
    """``count`` CT instances of one new study in the archive, each with a sidecar object."""
    s3 = boto3.client("s3", region_name=REGION)
    first = ct()
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    archived = {}
    for n in range(count):
        ds = first if n == 0 else ct(StudyInstanceUID=study, SeriesInstanceUID=series)
        data = encode(ds)
        key = archive_key(study, series, str(ds.SOPInstanceUID))
        s3.put_object(Bucket=stack.archive, Key=key, Body=data, ChecksumAlgorithm="SHA256")
        # The sidecar is not an instance: the export must leave it out.
        sidecar = json.dumps({"format": "sidecar"}).encode()
        s3.put_object(
            Bucket=stack.archive, Key=sidecar_key(key), Body=sidecar, ChecksumAlgorithm="SHA256"
        )
        archived[str(ds.SOPInstanceUID)] = data
    return study, archived


def install_exports(monkeypatch: pytest.MonkeyPatch, tmp: Path, *, signer: bool = True) -> Exports:
    """The stack (moto already on), the exports resources, the PKI and a study; the export and
    link functions' environment pointed at them (no PACS_EXPORT_SIGNER_CERT unless ``signer``)."""
    stack = install_stack(monkeypatch)
    s3 = boto3.client("s3", region_name=REGION)
    bucket = bucket_name(ACCOUNT, PREFIX, "exports", REGION)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    table = f"{PREFIX}-export-links"
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "token_sha256", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "token_sha256", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ca_dir = tmp / "ca"
    ca_pem = init_ca(ca_dir)
    kms = boto3.client("kms", region_name=REGION)
    with digest_signing():
        csr = kms_csr(kms, stack.signing_key, _name("pacs-test export signer"))
    signer_pem = sign_csr(ca_dir, csr, tmp / "export-signer.pem").certificate
    recipients = tmp / "recipient"
    recipients.mkdir()
    recipient = write(identity("recipient", algorithm="rsa", usage="recipient"), recipients)
    study, archived = archive_study(stack)
    for name, value in {
        env.EXPORTS_BUCKET: bucket,
        env.EXPORTS_TABLE: table,
        env.LINK_URL: LINK_URL,
        env.LINK_MINUTES: "15",
        env.EXPORT_SIGNER_CERT: str(signer_pem) if signer else "",
        env.PRESIGN_SECONDS: "60",
    }.items():
        monkeypatch.setenv(name, value)
    from lambdas import export_function, export_link

    fresh_runtime(monkeypatch, export_function)
    fresh_runtime(monkeypatch, export_link)
    return Exports(
        stack=stack,
        bucket=bucket,
        table=table,
        ca_pem=ca_pem,
        signer_pem=signer_pem,
        recipient=recipient,
        study_uid=study,
        archived=archived,
        tmp=tmp,
    )


def run_export(request: dict[str, Any]) -> dict[str, Any]:
    """The export function's handler, KMS DIGEST signing shimmed."""
    from lambdas import export_function

    with digest_signing():
        return export_function.handler(request, EXPORT_CONTEXT)  # type: ignore[arg-type]


def use_link(token: str | None, method: str = "POST") -> dict[str, Any]:
    """The link function's handler for a function URL request (payload 2.0) with ``token``:
    by default the landing page's POST, which is the use."""
    from lambdas import export_link

    query = {} if token is None else {"token": token}
    event = {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": "" if token is None else f"token={token}",
        "queryStringParameters": query or None,
        "requestContext": {"http": {"method": method, "path": "/"}},
    }
    return export_link.handler(event, LINK_CONTEXT)  # type: ignore[arg-type]


def token_of(link: str) -> str:
    assert link.startswith(LINK_URL + "?token="), link
    return link.removeprefix(LINK_URL + "?token=")


def capture(monkeypatch: pytest.MonkeyPatch, module: Any) -> io.StringIO:
    """What ``module.logger`` (Powertools JSON) writes from now on."""
    stream = io.StringIO()
    monkeypatch.setattr(module.logger.registered_handler, "stream", stream)
    return stream


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``openssl`` (fails the test, not skips it, when it is not installed)."""
    exe = shutil.which("openssl")
    if exe is None:
        pytest.fail("openssl not found: install the apt package openssl")
    return subprocess.run([exe, *map(str, args)], capture_output=True, check=False, timeout=60)
