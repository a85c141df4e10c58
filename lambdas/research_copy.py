"""Research copies: each archived instance a project's rule matches, de-identified into ``derived``.

For one archived object version (:class:`lambdas.pipeline.Source`): read it once (streamed into a
spool: memory, then a temporary file), and for every project whose rule matches
(:class:`lambdas.settings.ResearchProject`) apply the de-identification engine
(:class:`lambdas.deid.engine.Deidentifier`, keyed with the stack's HMAC KMS key, the project's
name as its domain so projects' copies cannot be joined on pseudonyms or UIDs) and write the copy
to ``derived/<project>/studies/<study>/series/<series>/instances/<sop>.dcm`` (de-identified UIDs).
An instance the engine refuses (:class:`DeidError`, e.g. ``burned-in-annotation``) leaves only a
review record in quarantine: the identified image never leaves the archive.

Defence in depth: the bytes to be released are read back and checked against the original by the
engine-independent leak check (:func:`lambdas.deid.verify.verify`, the project's options and
safe-private list) before anything is written; any finding holds the instance
(``verification-failed``, the findings' codes and tags in the record, never a value). A corrected
re-archive whose copy differs from the one already under the derived key is held too
(``conflicting-copy``): the existing copy is never overwritten, and the record is not retried.

With linkage on, the record that maps the copy back to the patient (PatientID, issuer and the
original UIDs) is KMS-encrypted under the linkage key, bound by its encryption context to the
project and de-identified SOP Instance UID, and written before the copy, so no copy exists without
it.

Every write is repeatable: a copy or review record already holding the same bytes (S3 SHA-256) is
not written again, a linkage record is put only if absent. AWS access is only through the clients
handed in. Nothing here logs or raises with a value of the data set: outcomes carry UIDs and codes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from lambdas.deid.engine import Deidentifier, DeidError
from lambdas.deid.keys import KmsKeyer
from lambdas.deid.profile import options_from
from lambdas.deid.verify import Finding, verify
from lambdas.dicom_checks import CHUNK, SPOOL_IN_MEMORY, loggable_uid, quiet_pydicom
from lambdas.manifest import archive_key
from lambdas.pipeline import Source
from lambdas.settings import (
    DERIVED_PREFIX,
    RESEARCH_REVIEW_PREFIX,
    ResearchProject,
    ResearchSettings,
    SettingsError,
)

# Archived instances only: sidecars (`<instance key>.manifest.json`) and anything else are ignored.
INSTANCE_KEY = re.compile(r"studies/[^/]+/series/[^/]+/instances/[^/]+\.dcm")
# A write error of pydicom on the de-identified data set: held like any refusal of the engine.
_WRITE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
# Hold reasons of this module (the engine's refusal codes are the others).
VERIFICATION_FAILED = "verification-failed"
CONFLICTING_COPY = "conflicting-copy"


def is_instance_key(key: str) -> bool:
    """Whether ``key`` names an archived instance (not a sidecar, not another object)."""
    return INSTANCE_KEY.fullmatch(key) is not None


def derived_key(project: str, study: str, series: str, sop: str) -> str:
    """Where a project's copy lives: its prefix, then the archive's layout of de-identified UIDs."""
    return f"{DERIVED_PREFIX}{project}/{archive_key(study, series, sop)}"


def review_key(project: str, source_key: str, version_id: str | None = None) -> str:
    """One review record per (project, archived object version): the SHA-256 of the key and
    version, not its UIDs. Per version, so a re-archived instance held again gets its own record
    instead of conflicting with the first one's."""
    digest = hashlib.sha256(f"{source_key}\0{version_id or ''}".encode()).hexdigest()
    return f"{RESEARCH_REVIEW_PREFIX}{project}/{digest}.json"


@dataclass(frozen=True)
class Route:
    """A project's rule, checked against the pydicom data dictionary."""

    project: ResearchProject
    tags: tuple[tuple[int, frozenset[str]], ...]

    @classmethod
    def of(cls, project: ResearchProject) -> Route:
        tags = []
        for keyword, values in project.match:
            tag = tag_for_keyword(keyword)
            if tag is None:
                raise SettingsError(f"project {project.name}: {keyword} is not a DICOM keyword")
            tags.append((tag, values))
        return cls(project, tuple(tags))

    def matches(self, ds: Dataset) -> bool:
        """Every keyword present with one of its values accepted (case-insensitive)."""
        return all(_values(ds.get(tag)) & accepted for tag, accepted in self.tags)


def _values(element: DataElement | None) -> set[str]:
    if element is None or element.VR == "SQ":
        return set()
    value = element.value
    items = value if isinstance(value, MultiValue | list | tuple) else [value]
    return {str(v).strip().casefold() for v in items if v is not None and str(v).strip()}


@dataclass
class Event:
    """One audit event (``message`` and its fields, docs/audit-events.md)."""

    message: str
    fields: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, **self.fields}


class ResearchCopier:
    """Route, de-identify and write the research copies of one archived instance at a time."""

    def __init__(
        self,
        settings: ResearchSettings,
        *,
        s3: Any,
        kms: Any,
        dynamodb: Any,
        spool_dir: str | None = None,
    ) -> None:
        self.settings = settings
        self.s3 = s3
        self.kms = kms
        self.dynamodb = dynamodb
        self.spool_dir = spool_dir
        self.routes = tuple(Route.of(p) for p in settings.projects)
        self.keyer = KmsKeyer(kms, settings.pseudonym_key_arn)

    def new_invocation(self) -> None:
        """Start a new cache of KMS MACs: within one invocation a batch of one study's instances
        costs one ``GenerateMac`` per distinct value; across invocations nothing is kept (no
        original UID outlives the invocation that needed it, memory stays bounded)."""
        self.keyer = KmsKeyer(self.kms, self.settings.pseudonym_key_arn)

    def process(self, source: Source) -> list[Event]:
        """The audit events of one archived object version (none for a key that is no instance)."""
        if not is_instance_key(source.key):
            return []
        source, ds = self._read(source)
        sop = loggable_uid(str(ds.get("SOPInstanceUID", "") or ""))
        routes = [r for r in self.routes if r.matches(ds)]
        if not routes:
            return [Event("research-not-routed", {"sop_instance_uid": sop})]
        keyer = self.keyer  # cached per invocation (new_invocation), shared by the projects
        events = []
        for route in routes:
            project = route.project
            engine = Deidentifier(
                keyer=keyer,
                options=options_from(project.options),
                safe_private=project.safe_private,
                # Per-project pseudonyms and UIDs: two projects' copies cannot be joined.
                domain=project.name,
            )
            try:
                out = engine.deidentify(ds)
                with _spooled(self.spool_dir) as spool:
                    digest = _write(out, spool)
                    # Before the linkage record and the copy: a leak releases nothing.
                    leaks = _leaks(ds, spool, project)
                    if leaks:
                        events.append(self._hold(project, source, sop, VERIFICATION_FAILED, leaks))
                    else:
                        events.append(self._copy(project, source, ds, out, spool, digest))
            except DeidError as refused:
                events.append(self._hold(project, source, sop, refused.code))
        return events

    # --- reading ------------------------------------------------------------------------------

    def _read(self, source: Source) -> tuple[Source, Dataset]:
        """The data set of the version named (or, without one, of the version actually read)."""
        kwargs: dict[str, Any] = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id:
            kwargs["VersionId"] = source.version_id
        response = self.s3.get_object(**kwargs)
        body = response["Body"]
        with _spooled(self.spool_dir) as spool:
            try:
                for chunk in body.iter_chunks(CHUNK):
                    spool.write(chunk)
            finally:
                body.close()
            spool.seek(0)
            with _quiet():
                # The archive holds validated objects only; a failure here is retried, then DLQ'd.
                # No deferred values: everything is read before the spool closes.
                ds = pydicom.dcmread(spool)
        read = response.get("VersionId")
        if read and read != "null" and not source.version_id:
            source = Source(source.bucket, source.key, read)
        return source, ds

    # --- outcomes -----------------------------------------------------------------------------

    def _copy(
        self,
        project: ResearchProject,
        source: Source,
        original: Dataset,
        out: Dataset,
        spool: IO[bytes],
        digest: bytes,
    ) -> Event:
        deid_sop = str(out.SOPInstanceUID)
        key = derived_key(
            project.name, str(out.StudyInstanceUID), str(out.SeriesInstanceUID), deid_sop
        )
        linked = False
        if self.settings.linkage:
            self._link(project.name, deid_sop, original)
            linked = True
        sop = loggable_uid(str(original.get("SOPInstanceUID", "") or ""))
        try:
            # Only the project: no metadata may point back to the identified archive object.
            self._put_once(
                self.settings.derived_bucket,
                key,
                spool,
                digest,
                content_type="application/dicom",
                metadata={"project": project.name},
            )
        except ConflictingCopy as conflict:
            # A corrected re-archive: retrying cannot succeed, and a person decides which copy
            # stands (the linkage record, put only if absent, already maps the existing one).
            return self._hold(project, source, sop, conflict.code)
        # The source side only: a de-identified identifier next to the source UID would map the
        # copy back to the patient outside the linkage table (which only re-identification reads).
        return Event(
            "research-copied",
            {
                "project": project.name,
                "sop_instance_uid": sop,
                "archive_version_id": source.version_id,
                "options": list(project.options),
                "linked": linked,
            },
        )

    def _hold(
        self,
        project: ResearchProject,
        source: Source,
        sop: str,
        reason: str,
        findings: list[str] | None = None,
    ) -> Event:
        """Only a record goes to review: the identified image stays in the archive."""
        key = review_key(project.name, source.key, source.version_id)
        record: dict[str, Any] = {
            "project": project.name,
            "reason": reason,
            "archive_key": source.key,
            "archive_version_id": source.version_id,
        }
        if findings:
            record["findings"] = findings
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        with _spooled(self.spool_dir) as spool:
            spool.write(body)
            spool.seek(0)
            version = self._put_once(
                self.settings.quarantine_bucket,
                key,
                spool,
                hashlib.sha256(body).digest(),
                content_type="application/json",
                metadata={"project": project.name, "reason": reason},
            )
        fields: dict[str, Any] = {
            "project": project.name,
            "reason": reason,
            "sop_instance_uid": sop,
            "review_key": key,
            "review_version_id": version,
        }
        if findings:
            fields["findings"] = findings
        return Event("research-held", fields)

    # --- writes -------------------------------------------------------------------------------

    def _link(self, project: str, deid_sop: str, original: Dataset) -> None:
        """The encrypted pseudonym → original record; put only if absent (retries add nothing)."""
        identifiers = {
            "patient_id": _text(original, "PatientID"),
            "issuer_of_patient_id": _text(original, "IssuerOfPatientID"),
            "study_instance_uid": _text(original, "StudyInstanceUID"),
            "series_instance_uid": _text(original, "SeriesInstanceUID"),
            "sop_instance_uid": _text(original, "SOPInstanceUID"),
        }
        context = {"project": project, "deid_sop_instance_uid": deid_sop}
        ciphertext = self.kms.encrypt(
            KeyId=self.settings.linkage_key_arn,
            Plaintext=json.dumps(identifiers, sort_keys=True).encode(),
            EncryptionContext=context,
        )["CiphertextBlob"]
        # Already there: written by an earlier attempt, the same identifiers under the same context.
        with contextlib.suppress(self.dynamodb.exceptions.ConditionalCheckFailedException):
            self.dynamodb.put_item(
                TableName=self.settings.linkage_table,
                Item={
                    "deid_sop_instance_uid": {"S": deid_sop},
                    "project": {"S": project},
                    "ciphertext": {"B": bytes(ciphertext)},
                },
                ConditionExpression="attribute_not_exists(deid_sop_instance_uid)",
            )

    def _put_once(
        self,
        bucket: str,
        key: str,
        body: IO[bytes],
        digest: bytes,
        *,
        content_type: str,
        metadata: dict[str, str],
    ) -> str | None:
        """PutObject if the key is free; a retried record finds its own bytes there (no-op).

        A conditional write (``If-None-Match: *``) rather than a HeadObject first: telling a
        missing key (404) from a forbidden one (403) would need ``s3:ListBucket`` on the bucket,
        which the quarantine must not grant. Different bytes under the key are a conflict.
        """
        checksum = base64.b64encode(digest).decode()
        try:
            written = self.s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                IfNoneMatch="*",
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
                Metadata=metadata,
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self.settings.data_key_arn,
                BucketKeyEnabled=True,
            )
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "PreconditionFailed":
                raise
            head = self.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            if head.get("ChecksumSHA256") != checksum:
                raise ConflictingCopy(key) from None
            return _version(head)
        return _version(written)


class ConflictingCopy(RuntimeError):
    """Other bytes already stand under a key the function writes (never overwritten)."""

    code = CONFLICTING_COPY

    def __init__(self, key: str) -> None:
        super().__init__("an object with other content exists under the key")
        self.key = key


def _version(response: dict[str, Any]) -> str | None:
    version = response.get("VersionId")
    return str(version) if version and version != "null" else None


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _leaks(original: Dataset, spool: IO[bytes], project: ResearchProject) -> list[str]:
    """What the leak check finds in the copy as written (read back from ``spool``, i.e. what would
    be released): each finding's code and tag path, never its value, nor its detail."""
    with _quiet():
        written = pydicom.dcmread(spool)
        found = verify(
            original, written, options=project.options, safe_private=project.safe_private
        )
    spool.seek(0)
    return list(dict.fromkeys(_finding(f) for f in found))


def _finding(finding: Finding) -> str:
    return f"{finding.code} {finding.tag}"


def _write(ds: Dataset, spool: IO[bytes]) -> bytes:
    """Write ``ds`` as a Part 10 file into ``spool``; its SHA-256. DeidError if pydicom cannot."""
    try:
        with _quiet():
            ds.save_as(spool, enforce_file_format=True)
    except _WRITE_ERRORS:
        # The message may quote a value: the type only, as the engine does.
        raise DeidError("unsupported", "the de-identified data set cannot be written") from None
    spool.seek(0)
    digest = hashlib.sha256()
    while chunk := spool.read(CHUNK):
        digest.update(chunk)
    spool.seek(0)
    return digest.digest()


@contextmanager
def _spooled(spool_dir: str | None) -> Iterator[IO[bytes]]:
    """Memory up to a few MiB, then a temporary file (a large multi-frame object never sits in
    memory twice)."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=spool_dir) as spool:
        yield spool


def _quiet() -> AbstractContextManager[None]:
    """pydicom's warnings may quote element values (names, IDs): keep them out of the log."""
    return quiet_pydicom()
