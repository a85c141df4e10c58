"""The ingest decision for one inbox object: archive it signed and indexed, or quarantine it.

AWS access is only through the clients handed in (S3, KMS, DynamoDB), so tests run this against moto
and the handler against the real services. Nothing here deletes anything: an accepted object is
*copied* into the archive, a refused one *copied* into quarantine, and the inbox keeps its version
until its lifecycle rule expires it long after processing.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdas.dicom_checks import CHUNK, Inspection, Reason, ValidationPolicy, inspect_stream
from lambdas.manifest import Manifest, archive_key, sidecar_document, sidecar_key
from lambdas.settings import IngestSettings

# One request copies at most 5 GiB; larger (refused) objects go to quarantine in parts.
_SINGLE_COPY_LIMIT = 5 * 1024**3
_PSEUDONYM_DOMAIN = b"cloud-pacs/patient-key/1\x00"


# A pending claim older than this was abandoned: longer than SQS keeps retrying one message
# (maxReceiveCount x visibility timeout, 5 x ~90 min by default), so no live attempt holds it.
STALE_CLAIM = timedelta(hours=12)
# S3 keys are at most 1024 bytes and user metadata 2 KB in all: long inbox keys are hashed there.
_MAX_KEY_PART = 256


class ClaimInProgress(RuntimeError):
    """Another inbox object holds the SOP Instance UID's claim; the record is retried later."""


class IntegrityError(RuntimeError):
    """The archive does not hold the bytes that were validated; the record is retried."""


@dataclass(frozen=True)
class Source:
    """One inbox object version, as named by its S3 event."""

    bucket: str
    key: str
    version_id: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id}

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}?versionId={self.version_id}"

    @property
    def short_key(self) -> str:
        """The key, or its SHA-256 when too long to embed in another key or in metadata."""
        if len(self.key.encode()) <= _MAX_KEY_PART:
            return self.key
        return "sha256-" + hashlib.sha256(self.key.encode()).hexdigest()

    def copy_source(self) -> dict[str, str]:
        source = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            source["VersionId"] = self.version_id
        return source


@dataclass
class Outcome:
    """The audit event of one object (no PHI: UIDs, digests, pseudonymous patient key only)."""

    outcome: str  # archived | duplicate | quarantined
    source: Source
    sha256: str | None = None
    size: int | None = None
    reasons: list[dict[str, str]] = field(default_factory=list)
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_class_uid: str | None = None
    patient_key: str | None = None
    archive_key: str | None = None
    archive_version_id: str | None = None
    quarantine_key: str | None = None
    # Present only when the object carried Digital Signatures: one verdict each (no signer names).
    signatures: list[dict[str, str | bool]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if v not in (None, [])}
        data["source"] = self.source.as_dict()
        return data


class Pipeline:
    """Validate, archive, sign, index or quarantine — one object at a time."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        s3: Any,
        kms: Any,
        dynamodb: Any,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.s3 = s3
        self.kms = kms
        self.dynamodb = dynamodb
        self.now = now
        self.policy = ValidationPolicy.from_lists(
            max_object_bytes=settings.max_object_bytes,
            max_inflated_bytes=settings.max_inflated_bytes,
            transfer_syntaxes=settings.transfer_syntaxes,
            sop_classes=settings.sop_classes,
            signature_policy=settings.signature_policy,
            trust_pem=settings.signature_trust_pem,
        )

    # --- the decision -------------------------------------------------------------------------

    def process(self, source: Source) -> Outcome:
        source, inspection = self._inspect(source)
        if not inspection.accepted:
            return self._quarantine(source, inspection, list(inspection.reasons))
        patient_key = self._patient_key(inspection)
        existing = self._claim(inspection, source, patient_key)
        if existing is None:
            return self._archive(source, inspection, patient_key)
        same_bytes = existing["sha256"]["S"] == inspection.sha256_hex
        if existing["status"]["S"] == "archived":
            if same_bytes:
                return self._outcome("duplicate", source, inspection, patient_key)
            return self._conflict(source, inspection, patient_key)
        # A pending claim: resume our own, wait for a live one, take over an abandoned one.
        own = existing.get("source", {}).get("S") == source.uri
        stale = self._is_stale(existing)
        if same_bytes and (own or stale):
            return self._archive(source, inspection, patient_key)
        if same_bytes:
            raise ClaimInProgress(
                f"SOP Instance UID {inspection.sop_instance_uid} is being archived from another "
                "inbox object with the same bytes; retried later, it will be a duplicate"
            )
        if stale:
            self._take_over(existing, inspection, source, patient_key)
            return self._archive(source, inspection, patient_key)
        return self._conflict(source, inspection, patient_key)

    def _conflict(self, source: Source, inspection: Inspection, patient_key: str) -> Outcome:
        conflict = Reason(
            "conflicting-duplicate",
            f"SOP Instance UID {inspection.sop_instance_uid} is already claimed with a different "
            "SHA-256; the original is untouched",
        )
        return self._quarantine(source, inspection, [conflict], patient_key)

    def _inspect(self, source: Source) -> tuple[Source, Inspection]:
        """Read the object once; returns the source pinned to the version actually read.

        An event without a version id (an unversioned bucket, or an emulator) would otherwise let
        a later overwrite of the key be copied instead of the bytes that were validated.
        """
        kwargs: dict[str, Any] = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id:
            kwargs["VersionId"] = source.version_id
        response = self.s3.get_object(**kwargs)
        body = response["Body"]
        try:
            inspection = inspect_stream(
                body.iter_chunks(CHUNK), self.policy, declared_size=response["ContentLength"]
            )
        finally:
            body.close()
        read = response.get("VersionId")
        if read and read != "null" and not source.version_id:
            source = Source(source.bucket, source.key, read)
        return source, inspection

    def _patient_key(self, inspection: Inspection) -> str:
        """A keyed pseudonym of the patient: equal for equal IDs, useless without the KMS key."""
        assert inspection.patient_id is not None
        issuer = (inspection.issuer_of_patient_id or "").encode()
        message = _PSEUDONYM_DOMAIN + issuer + b"\x00" + inspection.patient_id.encode()
        mac = self.kms.generate_mac(
            KeyId=self.settings.pseudonym_key_arn, MacAlgorithm="HMAC_SHA_256", Message=message
        )["Mac"]
        return bytes(mac).hex()

    # --- the index ----------------------------------------------------------------------------

    def _is_stale(self, row: dict[str, Any]) -> bool:
        claimed = datetime.fromisoformat(row["claimed_at"]["S"].replace("Z", "+00:00"))
        return self.now() - claimed > STALE_CLAIM

    def _take_over(
        self, row: dict[str, Any], inspection: Inspection, source: Source, patient_key: str
    ) -> None:
        """Replace an abandoned pending claim (its object never reached the archive's index)."""
        try:
            self.dynamodb.put_item(
                TableName=self.settings.index_table,
                Item=self._claim_item(inspection, source, patient_key),
                ConditionExpression="#status = :pending AND claimed_at = :claimed",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":pending": {"S": "pending"},
                    ":claimed": row["claimed_at"],
                },
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            raise ClaimInProgress(
                f"the claim on SOP Instance UID {inspection.sop_instance_uid} changed meanwhile"
            ) from None

    def _claim(self, inspection: Inspection, source: Source, patient_key: str) -> Any:
        """Claim the SOP Instance UID before writing the archive; return the row if taken.

        A crash after the claim leaves a ``pending`` row with the same digest, which the retry
        resumes; a different digest is a conflicting duplicate whatever the row's state.
        """
        try:
            self.dynamodb.put_item(
                TableName=self.settings.index_table,
                Item=self._claim_item(inspection, source, patient_key),
                ConditionExpression="attribute_not_exists(sop_instance_uid)",
            )
            return None
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return self.dynamodb.get_item(
                TableName=self.settings.index_table,
                Key={"sop_instance_uid": {"S": inspection.sop_instance_uid}},
                ConsistentRead=True,
            )["Item"]

    def _claim_item(
        self, inspection: Inspection, source: Source, patient_key: str
    ) -> dict[str, Any]:
        return {
            "sop_instance_uid": {"S": inspection.sop_instance_uid},
            "status": {"S": "pending"},
            "sha256": {"S": inspection.sha256_hex},
            "size": {"N": str(inspection.size)},
            "study_instance_uid": {"S": inspection.study_instance_uid},
            "series_instance_uid": {"S": inspection.series_instance_uid},
            "sop_class_uid": {"S": inspection.sop_class_uid},
            "transfer_syntax_uid": {"S": inspection.transfer_syntax_uid},
            "patient_key": {"S": patient_key},
            "source": {"S": source.uri},
            "claimed_at": {"S": self._timestamp()},
        }

    def _complete(self, manifest: Manifest, sidecar: str, sidecar_version: str) -> None:
        self.dynamodb.update_item(
            TableName=self.settings.index_table,
            Key={"sop_instance_uid": {"S": manifest.sop_instance_uid}},
            UpdateExpression=(
                "SET #status = :archived, archive_bucket = :bucket, archive_key = :key, "
                "archive_version_id = :version, sidecar_key = :sidecar, "
                "sidecar_version_id = :sidecar_version, signing_key_id = :signing_key, "
                "signing_algorithm = :algorithm, archived_at = :at"
            ),
            ConditionExpression="sha256 = :sha",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":archived": {"S": "archived"},
                ":bucket": {"S": manifest.bucket},
                ":key": {"S": manifest.key},
                ":version": {"S": manifest.version_id},
                ":sidecar": {"S": sidecar},
                ":sidecar_version": {"S": sidecar_version},
                ":signing_key": {"S": manifest.signing_key_id},
                ":algorithm": {"S": manifest.signing_algorithm},
                ":at": {"S": manifest.archived_at},
                ":sha": {"S": manifest.sha256},
            },
        )

    # --- the archive --------------------------------------------------------------------------

    def _archive(self, source: Source, inspection: Inspection, patient_key: str) -> Outcome:
        assert inspection.sha256 is not None
        key = archive_key(
            str(inspection.study_instance_uid),
            str(inspection.series_instance_uid),
            str(inspection.sop_instance_uid),
        )
        checksum = base64.b64encode(inspection.sha256).decode()
        version_id = self._existing_copy(key, checksum) or self._copy_to_archive(
            source, key, checksum, inspection
        )
        manifest = Manifest(
            bucket=self.settings.archive_bucket,
            key=key,
            version_id=version_id,
            sha256=str(inspection.sha256_hex),
            size=inspection.size,
            sop_class_uid=str(inspection.sop_class_uid),
            sop_instance_uid=str(inspection.sop_instance_uid),
            study_instance_uid=str(inspection.study_instance_uid),
            series_instance_uid=str(inspection.series_instance_uid),
            transfer_syntax_uid=str(inspection.transfer_syntax_uid),
            patient_key=patient_key,
            archived_at=self._timestamp(),
            signing_key_id=self.settings.signing_key_arn,
        )
        message = manifest.canonical()
        signature = self.kms.sign(
            KeyId=self.settings.signing_key_arn,
            Message=message,
            MessageType="RAW",
            SigningAlgorithm=manifest.signing_algorithm,
        )["Signature"]
        document = sidecar_document(message, bytes(signature), self.settings.signing_key_arn)
        sidecar = sidecar_key(key)
        written = self.s3.put_object(
            Bucket=self.settings.archive_bucket,
            Key=sidecar,
            Body=document,
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
            **self._encryption(),
        )
        self._complete(manifest, sidecar, written["VersionId"])
        outcome = self._outcome("archived", source, inspection, patient_key)
        outcome.archive_key = key
        outcome.archive_version_id = version_id
        return outcome

    def _existing_copy(self, key: str, checksum: str) -> str | None:
        """The version a crashed earlier attempt already archived, if its bytes are ours."""
        try:
            head = self.s3.head_object(
                Bucket=self.settings.archive_bucket, Key=key, ChecksumMode="ENABLED"
            )
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        if head.get("ChecksumSHA256") == checksum:
            return str(head["VersionId"])
        raise IntegrityError(
            f"archive key {key} holds a different object than the index claim; not overwritten"
        )

    def _copy_to_archive(
        self, source: Source, key: str, checksum: str, inspection: Inspection
    ) -> str:
        # A server-side copy of the exact version that was validated; S3 computes SHA-256 of the
        # copy and it must equal the digest of the bytes read, so what is signed is what is stored.
        response = self.s3.copy_object(
            Bucket=self.settings.archive_bucket,
            Key=key,
            CopySource=source.copy_source(),
            ChecksumAlgorithm="SHA256",
            ContentType="application/dicom",
            MetadataDirective="REPLACE",
            Metadata={"sha256": str(inspection.sha256_hex)},
            # No tags on archived instances: REPLACE without a tag set needs no tagging permission,
            # whereas COPY would need to read the inbox object's tags.
            TaggingDirective="REPLACE",
            **self._encryption(),
        )
        copied = response.get("CopyObjectResult", {}).get("ChecksumSHA256")
        if copied != checksum:
            raise IntegrityError(f"archive copy of {key} has SHA-256 {copied}, expected {checksum}")
        return str(response["VersionId"])

    # --- quarantine ---------------------------------------------------------------------------

    def _quarantine(
        self,
        source: Source,
        inspection: Inspection,
        reasons: list[Reason],
        patient_key: str | None = None,
    ) -> Outcome:
        codes = [r.code for r in reasons]
        key = quarantine_key(source, self.now())
        metadata = {
            "reason-codes": ",".join(codes),
            "source-bucket": source.bucket,
            "source-key": urllib.parse.quote(source.short_key, safe="/"),
            "source-version-id": source.version_id or "null",
        }
        if inspection.sha256_hex:
            metadata["sha256"] = inspection.sha256_hex
        tagging = urllib.parse.urlencode({"reason": codes[0], "reasons": " ".join(codes)})
        extra = {
            "Metadata": metadata,
            "MetadataDirective": "REPLACE",
            "Tagging": tagging,
            "TaggingDirective": "REPLACE",
            **self._encryption(),
        }
        if inspection.size > _SINGLE_COPY_LIMIT:
            # boto3's managed (multipart) copy: multipart uploads always take the new tags, and
            # s3transfer refuses BucketKeyEnabled (the bucket's default enables Bucket Keys anyway).
            extra.pop("TaggingDirective")
            extra.pop("BucketKeyEnabled")
            self.s3.copy(source.copy_source(), self.settings.quarantine_bucket, key, extra)
        else:
            self.s3.copy_object(
                Bucket=self.settings.quarantine_bucket,
                Key=key,
                CopySource=source.copy_source(),
                **extra,
            )
        outcome = self._outcome("quarantined", source, inspection, patient_key)
        outcome.reasons = [{"code": r.code, "message": r.message} for r in reasons]
        outcome.quarantine_key = key
        return outcome

    # --- helpers ------------------------------------------------------------------------------

    def _encryption(self) -> dict[str, Any]:
        return {
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": self.settings.data_key_arn,
            "BucketKeyEnabled": True,
        }

    def _timestamp(self) -> str:
        return self.now().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @staticmethod
    def _outcome(
        name: str, source: Source, inspection: Inspection, patient_key: str | None
    ) -> Outcome:
        return Outcome(
            outcome=name,
            source=source,
            sha256=inspection.sha256_hex,
            size=inspection.size,
            sop_instance_uid=inspection.sop_instance_uid,
            study_instance_uid=inspection.study_instance_uid,
            series_instance_uid=inspection.series_instance_uid,
            sop_class_uid=inspection.sop_class_uid,
            patient_key=patient_key,
            signatures=[s.as_dict() for s in inspection.signatures],
        )


def quarantine_key(source: Source, when: datetime) -> str:
    """Unique per inbox version, grouped by day so operators can list a day's refusals."""
    day = when.astimezone(UTC).strftime("%Y/%m/%d")
    return f"{day}/{source.bucket}/{source.version_id or 'null'}/{source.short_key}"
