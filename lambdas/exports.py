"""Sharing in AWS (issue #9): a study's export package in the exports bucket, and its one-time link.

The export function (:mod:`lambdas.export_function`) calls :func:`export_study`:

1. :func:`parse_request` checks the invocation (a study UID, an RSA recipient certificate valid
   now, ``link_minutes`` at most the stack's ``PACS_LINK_MINUTES``). De-identification is not
   offered here (``deidentify: true`` is refused with ``deidentify-unsupported``): the function
   holds no pseudonym key, so every member is the archived instance's exact bytes.
2. :func:`build_study_package` lists the current versions of the archive's
   ``studies/<uid>/**.dcm`` instances (not their ``.manifest.json`` sidecars), reads them one at a
   time (spooled to ``/tmp``, S3 checks the stored SHA-256 on the way), encrypts each for the
   recipient (:func:`lambdas.export_package.envelope`, Secure DICOM File ``<n>.p7m``), lists them
   in the manifest, signs it (the stack's signing KMS key with the certificate the CA issued for
   it, or a one-time key when the stack has none) and writes ONE zip (stored, not compressed:
   the members are ciphertext) of ``1.p7m``..``n.p7m``, ``manifest.json`` and
   ``manifest.json.p7s``, the layout ``pacs-kit export`` writes, which ``pacs-kit open`` accepts
   unzipped or as the zip. The zip is spooled to ``/tmp`` and put once, at
   ``exports/<export_id>/package.zip``, SSE-KMS with the data key, with its SHA-256 checksum and
   ``If-None-Match: *`` (an export never replaces another).
3. :func:`issue_link` draws a token (32 random bytes, URL-safe base64) and stores only its
   SHA-256, with the package's key, the expiry and ``used = false``, in the links table; the
   token itself exists only in the function's answer to the operator.

The link function (:mod:`lambdas.export_link`) calls :func:`consume_link` with the token of the
URL: ONE conditional ``UpdateItem`` (the item exists, is unused and unexpired) sets ``used``, so of
two concurrent uses exactly one wins. A failed condition returns the item as it was
(``ReturnValuesOnConditionCheckFailure``), which tells unknown, used and expired apart for the
audit log without another read (the link role may only ``UpdateItem``); the recipient gets the same
answer for each.

Clients are passed in; nothing here reads the environment. Errors a caller can cause are
:class:`ExportError` with a stable ``code`` that never carries a value of the request.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import re
import secrets
import shutil
import stat
import tempfile
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import pydicom
import pydicom.config
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from lambdas import export_package as pkg
from lambdas.dicom_checks import quiet_pydicom
from lambdas.kms_signing import KmsSigningError, sign_digest
from lambdas.manifest import SIDECAR_SUFFIX
from lambdas.settings import ARCHIVE_PREFIX, EXPORTS_PREFIX, ExportSettings

logging.getLogger("pydicom").disabled = True  # its log lines may quote values, as its warnings do

PACKAGE_NAME = "package.zip"
TOKEN_BYTES = 32  # secrets.token_urlsafe: 43 characters of URL-safe base64
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
# The table's TTL attribute: DynamoDB deletes a link a day after it stopped working.
TTL_GRACE_SECONDS = 24 * 3600
CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # an instance above this is spooled to /tmp while it is read
CREATOR = "cloud-pacs-kit export function"
ONE_TIME_WARNING = (
    "the manifest is signed by a one-time key (exportSignerCertificate is empty): its signature "
    "proves the members are those the manifest lists (integrity), not who made the package"
)
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_REQUEST_KEYS = frozenset(
    {"study_instance_uid", "recipient_certificate", "deidentify", "options", "link_minutes"}
)

# Stable error codes: the function's {"error": code} answer and the export-refused audit event.
ERRORS: dict[str, str] = {
    "request-invalid": "the invocation is not an export request (see lambdas/exports.py)",
    "study-not-found": "the archive holds no object under studies/<uid>/",
    "recipient-invalid": "the recipient certificate is not a PEM X.509 certificate with an RSA key "
    "valid now",
    "nothing-to-export": "the study holds no DICOM instance (.dcm) to export",
    "deidentify-unsupported": "the export function packages archived bytes only; de-identify "
    "with the research-copy function or pacs-kit export --deid",
    "instance-unreadable": "an archived instance is not a DICOM Part 10 file with safe UIDs",
    "signer-certificate-mismatch": "exportSignerCertificate does not certify the signing KMS key",
    "study-too-large": "an instance or the whole study exceeds what one export package holds "
    "(MAX_INSTANCE_BYTES each, MAX_STUDY_BYTES in all): export it with pacs-kit export",
}
# One package is built in the function: each instance is encrypted in memory (2 GiB function),
# the zip is spooled in /tmp (4 GiB) and put with one PutObject. Checked from the listing, before
# any work, so a large study answers a code instead of running out of memory or disk.
MAX_INSTANCE_BYTES = 512 * 1024 * 1024
MAX_STUDY_BYTES = 3 * 1024 * 1024 * 1024
# Why a link was refused (the link-refused audit event); the recipient sees one answer for all.
REFUSALS = ("unknown", "used", "expired")


class ExportError(ValueError):
    """An export that cannot be made; ``code`` is stable (see :data:`ERRORS`)."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"{code}: {ERRORS[code]}")


def is_uid(value: object) -> bool:
    """Whether ``value`` is a DICOM UID (PS3.5 9.1): only such a value is ever logged."""
    return isinstance(value, str) and len(value) <= 64 and _UID.fullmatch(value) is not None


def package_key(export_id: str) -> str:
    """Where the package of ``export_id`` lives in the exports bucket."""
    return f"{EXPORTS_PREFIX}{export_id}/{PACKAGE_NAME}"


def token_sha256(token: str) -> str:
    """What the links table keys a token by: SHA-256 of its text, lower-case hex."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def iso(epoch: int) -> str:
    """Epoch seconds as ISO 8601 UTC (``2026-01-31T12:00:00Z``)."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the request ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    """A checked invocation of the export function."""

    study_instance_uid: str
    recipient: x509.Certificate
    link_minutes: int


def parse_request(
    event: object, *, max_link_minutes: int, now: dt.datetime | None = None
) -> ExportRequest:
    """The request in ``event`` (module docstring); ExportError ``request-invalid``,
    ``deidentify-unsupported`` or ``recipient-invalid``."""
    if not isinstance(event, Mapping) or set(event) - _REQUEST_KEYS:
        raise ExportError("request-invalid")
    study = event.get("study_instance_uid")
    if not is_uid(study):
        raise ExportError("request-invalid")
    deidentify = event.get("deidentify", False)
    options = event.get("options", [])
    if not isinstance(deidentify, bool) or not isinstance(options, list):
        raise ExportError("request-invalid")
    if deidentify:
        raise ExportError("deidentify-unsupported")
    if options:  # options are de-identification options: meaningless without it
        raise ExportError("request-invalid")
    minutes = event.get("link_minutes", max_link_minutes)
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ExportError("request-invalid")
    if not 1 <= minutes <= max_link_minutes:
        raise ExportError("request-invalid")
    recipient = _recipient(event.get("recipient_certificate"), now or dt.datetime.now(dt.UTC))
    assert isinstance(study, str)
    return ExportRequest(study_instance_uid=study, recipient=recipient, link_minutes=minutes)


def _recipient(pem: object, now: dt.datetime) -> x509.Certificate:
    # Exactly one certificate: nothing else travels in the field (no second certificate that
    # would be silently ignored, no key, no trailing text).
    if (
        not isinstance(pem, str)
        or pem.count("-----BEGIN") != 1
        or not pem.strip().startswith("-----BEGIN CERTIFICATE-----")
        or not pem.strip().endswith("-----END CERTIFICATE-----")
    ):
        raise ExportError("recipient-invalid")
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
        pkg.check_recipient(certificate)
    except (ValueError, UnicodeEncodeError):  # PackageError is a ValueError
        raise ExportError("recipient-invalid") from None
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise ExportError("recipient-invalid")
    return certificate


# --- the package ------------------------------------------------------------------------------


class CertifiedKmsSigner:
    """A :class:`lambdas.dicom_signature.Signer` over a KMS key and the certificate issued for it.

    Unlike :class:`lambdas.kms_signing.KmsSigner` it does not call ``GetPublicKey``: the export
    role may only ``Sign``. The certificate's key chooses the signing algorithm, and
    :func:`build_study_package` verifies the finished signature with the certificate, so a
    certificate issued for another key fails the export (``signer-certificate-mismatch``) instead
    of shipping a signature no one can verify.
    """

    def __init__(self, kms: Any, key_id: str, certificate: x509.Certificate) -> None:
        self._kms = kms
        self._key_id = key_id
        self._certificate = certificate

    @property
    def certificate(self) -> x509.Certificate:
        """The certificate embedded in the signature."""
        return self._certificate

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """KMS ``Sign`` of ``digest`` (``MessageType=DIGEST``)."""
        public = self._certificate.public_key()
        return sign_digest(self._kms, self._key_id, public, digest, algorithm)


@dataclass(frozen=True)
class Package:
    """What :func:`build_study_package` wrote."""

    export_id: str
    bucket: str
    key: str
    version_id: str | None
    members: int
    sha256: str  # of the zip's bytes
    one_time_signer: bool


def study_keys(s3: Any, bucket: str, study_uid: str) -> tuple[list[str], bool]:
    """The archive's instance keys of the study (current versions, sorted) and whether any object
    at all lies under its prefix; ExportError ``study-too-large`` past the package's limits."""
    prefix = f"{ARCHIVE_PREFIX}{study_uid}/"  # the slash: study 1.2.3 is not study 1.2.34
    keys, found, total = [], False, 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found = True
            key = item["Key"]
            if key.endswith(".dcm") and not key.endswith(SIDECAR_SUFFIX):
                keys.append(key)
                size = int(item.get("Size", 0))
                total += size
                if size > MAX_INSTANCE_BYTES or total > MAX_STUDY_BYTES:
                    raise ExportError("study-too-large")
    return sorted(keys), found


def _read_instance(s3: Any, bucket: str, key: str) -> IO[bytes]:
    """The object's bytes in a spool: memory up to SPOOL_IN_MEMORY, /tmp above."""
    # ChecksumMode: S3 returns the SHA-256 stored at ingest and botocore checks the body against it.
    response = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned
    body = response["Body"]
    try:
        shutil.copyfileobj(body, spool, CHUNK)
    except BaseException:
        spool.close()
        raise
    finally:
        body.close()
    spool.seek(0)
    return spool


def _uids(spool: IO[bytes]) -> dict[str, str]:
    """The UIDs the manifest lists; ExportError ``instance-unreadable`` unless they are UIDs."""
    spool.seek(0)
    try:
        # pydicom's validation warnings quote element values (names, IDs): none in the log.
        with quiet_pydicom(reading=pydicom.config.IGNORE):
            ds = pydicom.dcmread(spool, stop_before_pixels=True)
            uids = {
                "sop_class_uid": str(ds.SOPClassUID),
                "sop_instance_uid": str(ds.SOPInstanceUID),
                "study_instance_uid": str(ds.StudyInstanceUID),
                "series_instance_uid": str(ds.SeriesInstanceUID),
                "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
            }
    except Exception:  # noqa: BLE001 - pydicom raises many kinds; none may leak a value
        raise ExportError("instance-unreadable") from None
    if not all(is_uid(u) for u in uids.values()):
        raise ExportError("instance-unreadable")
    return uids


def _zip_info(name: str, when: dt.datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.astimezone(dt.UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = (stat.S_IFREG | 0o644) << 16  # a plain file when unzipped on Unix
    return info


def _digest(file: IO[bytes]) -> bytes:
    file.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: file.read(CHUNK), b""):
        digest.update(chunk)
    file.seek(0)
    return digest.digest()


def build_study_package(
    settings: ExportSettings,
    request: ExportRequest,
    *,
    s3: Any,
    kms: Any,
    now: dt.datetime,
    export_id: str | None = None,
) -> Package:
    """Write the study's package (module docstring, step 2); ExportError ``study-not-found``,
    ``nothing-to-export``, ``instance-unreadable`` or ``signer-certificate-mismatch``."""
    export_id = export_id or str(uuid.uuid4())
    keys, found = study_keys(s3, settings.archive_bucket, request.study_instance_uid)
    if not found:
        raise ExportError("study-not-found")
    if not keys:
        raise ExportError("nothing-to-export")
    signer: Any
    if settings.signer_certificate_pem:
        certificate = x509.load_pem_x509_certificate(settings.signer_certificate_pem.encode())
        signer = CertifiedKmsSigner(kms, settings.signing_key_arn, certificate)
    else:
        signer = pkg.one_time_signer(now)
    key = package_key(export_id)
    with tempfile.TemporaryFile() as spool:
        with zipfile.ZipFile(spool, "w", zipfile.ZIP_STORED) as archive:
            members = list(_members(s3, settings.archive_bucket, keys, request, archive, now))
            manifest = pkg.build_manifest(
                members,
                request.recipient,
                creator={"name": CREATOR, "export_id": export_id},
                created=now,
            )
            try:
                p7s = pkg.sign_detached(manifest, signer, now=now)
                pkg.verify_detached(manifest, p7s)  # the KMS key is the certificate's
            except (pkg.PackageError, KmsSigningError):
                raise ExportError("signer-certificate-mismatch") from None
            archive.writestr(_zip_info(pkg.MANIFEST, now), manifest)
            archive.writestr(_zip_info(pkg.SIGNATURE, now), p7s)
        digest = _digest(spool)
        response = s3.put_object(
            Bucket=settings.exports_bucket,
            Key=key,
            Body=spool,
            ContentType="application/zip",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=settings.data_key_arn,
            BucketKeyEnabled=True,
            # S3 checks the body against it and keeps it (the recipient may check it too).
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
            IfNoneMatch="*",
        )
    return Package(
        export_id=export_id,
        bucket=settings.exports_bucket,
        key=key,
        version_id=response.get("VersionId"),
        members=len(members),
        sha256=digest.hex(),
        one_time_signer=not settings.signer_certificate_pem,
    )


def _members(
    s3: Any,
    bucket: str,
    keys: list[str],
    request: ExportRequest,
    archive: zipfile.ZipFile,
    now: dt.datetime,
) -> Iterator[pkg.Member]:
    """Each instance read, enveloped and written to the zip before the next is read: at most one
    instance (and its ciphertext) is in memory at a time."""
    seen: set[str] = set()
    for key in keys:
        with _read_instance(s3, bucket, key) as spool:
            uids = _uids(spool)
            if uids["sop_instance_uid"] in seen:
                continue  # pacs-kit open names outputs by it: the first stays
            seen.add(uids["sop_instance_uid"])
            name = f"{len(seen)}{pkg.MEMBER_SUFFIX}"
            spool.seek(0)
            data = spool.read()  # cryptography's envelope builder takes bytes
            archive.writestr(_zip_info(name, now), pkg.envelope(data, request.recipient))
            yield pkg.Member.of(name, data, uids, deidentified=False)
            del data


# --- the link ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """An issued link: the token (only ever in the operator's answer) and what the table holds."""

    token: str
    token_sha256: str
    expires_at: int

    def url(self, base: str) -> str:
        """The link: ``base`` with the token as its ``token`` query parameter."""
        return f"{base}{'&' if '?' in base else '?'}token={self.token}"


def issue_link(
    dynamodb: Any,
    table: str,
    package: Package,
    *,
    recipient_sha256: str,
    minutes: int,
    now: dt.datetime,
) -> Link:
    """Store a new link to ``package``, working ``minutes`` from ``now``; the table gets the
    token's SHA-256, never the token."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    digest = token_sha256(token)
    expires_at = int(now.timestamp()) + 60 * minutes
    dynamodb.put_item(
        TableName=table,
        Item={
            "token_sha256": {"S": digest},
            "export_id": {"S": package.export_id},
            "bucket": {"S": package.bucket},
            "key": {"S": package.key},
            "expires_at": {"N": str(expires_at)},
            "ttl": {"N": str(expires_at + TTL_GRACE_SECONDS)},
            "used": {"BOOL": False},
            "recipient_sha256": {"S": recipient_sha256},
        },
        # 256 random bits never collide; the condition makes sure no link is ever replaced.
        ConditionExpression="attribute_not_exists(token_sha256)",
    )
    return Link(token=token, token_sha256=digest, expires_at=expires_at)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_study` made: the operator's answer and the audit event's fields."""

    package: Package
    link: Link
    link_url: str
    study_instance_uid: str
    recipient_sha256: str

    def answer(self) -> dict[str, Any]:
        """The function's output (the contract's keys, ``signer``, and a warning if one-time)."""
        out: dict[str, Any] = {
            "export_id": self.package.export_id,
            "link": self.link.url(self.link_url),
            "expires_at": iso(self.link.expires_at),
            "members": self.package.members,
            "package_sha256": self.package.sha256,
            "signer": "one-time" if self.package.one_time_signer else "kms",
        }
        if self.package.one_time_signer:
            out["warning"] = ONE_TIME_WARNING
        return out

    def audit(self) -> dict[str, Any]:
        """The ``export-created`` event's fields: never the token."""
        return {
            "export_id": self.package.export_id,
            "study_instance_uid": self.study_instance_uid,
            "members": self.package.members,
            "package_sha256": self.package.sha256,
            "recipient_sha256": self.recipient_sha256,
            "deidentified": False,
            "expires_at": iso(self.link.expires_at),
            "signer": "one-time" if self.package.one_time_signer else "kms",
        }


def export_study(
    event: object,
    settings: ExportSettings,
    *,
    s3: Any,
    kms: Any,
    dynamodb: Any,
    now: dt.datetime | None = None,
) -> ExportResult:
    """Steps 1-3 of the module docstring; ExportError for what the caller can fix."""
    now = now or dt.datetime.now(dt.UTC)
    request = parse_request(event, max_link_minutes=settings.link_minutes, now=now)
    package = build_study_package(settings, request, s3=s3, kms=kms, now=now)
    recipient_sha256 = pkg.fingerprint(request.recipient)
    link = issue_link(
        dynamodb,
        settings.exports_table,
        package,
        recipient_sha256=recipient_sha256,
        minutes=request.link_minutes,
        now=now,
    )
    return ExportResult(
        package=package,
        link=link,
        link_url=settings.link_url,
        study_instance_uid=request.study_instance_uid,
        recipient_sha256=recipient_sha256,
    )


@dataclass(frozen=True)
class Consumed:
    """A link used now: the package to hand out."""

    export_id: str
    bucket: str
    key: str
    token_sha256: str


@dataclass(frozen=True)
class Refused:
    """A link refused, and why (for the log only)."""

    reason: str  # one of REFUSALS
    token_sha256: str
    export_id: str | None = None


def consume_link(
    dynamodb: Any, table: str, token: object, now: dt.datetime | int
) -> Consumed | Refused:
    """Use the link of ``token`` once (module docstring): ONE conditional ``UpdateItem``."""
    text = token if isinstance(token, str) else ""
    digest = token_sha256(text)
    if not TOKEN.fullmatch(text):
        return Refused("unknown", digest)  # no token_urlsafe(32) output: not worth a request
    epoch = now if isinstance(now, int) else int(now.timestamp())
    try:
        response = dynamodb.update_item(
            TableName=table,
            Key={"token_sha256": {"S": digest}},
            UpdateExpression="SET used = :true, used_at = :now",
            ConditionExpression=(
                "attribute_exists(token_sha256) AND used = :false AND expires_at > :now"
            ),
            ExpressionAttributeValues={
                ":true": {"BOOL": True},
                ":false": {"BOOL": False},
                ":now": {"N": str(epoch)},
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return _refusal(exc.response.get("Item"), digest)
    item = response["Attributes"]
    return Consumed(
        export_id=item["export_id"]["S"],
        bucket=item["bucket"]["S"],
        key=item["key"]["S"],
        token_sha256=digest,
    )


def _refusal(item: object, digest: str) -> Refused:
    if not isinstance(item, Mapping) or not item:
        return Refused("unknown", digest)
    export_id = item.get("export_id", {}).get("S")
    if item.get("used", {}).get("BOOL", True):
        return Refused("used", digest, export_id)
    return Refused("expired", digest, export_id)
