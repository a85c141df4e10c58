"""The audit events of the gateway and the functions: each event's fields, types and meaning.

The one source of docs/audit-events.md's tables (tests/audit_events compares them) and of the tests
that run the real code and check every line it logs against it. Data and a checker only: nothing
imports this module at run time (the gateway image does not even carry it), so the code is held
to it by the tests, not by a runtime validator.

An event is one JSON object per log line: the emitter's envelope (``level``, ``message``, and for
the functions Powertools' keys) plus the event's fields. ``message`` names the event. Field names
are paths: ``source.bucket`` is a key of an object, ``reasons[].code`` a key of each element of a
list, ``problems[]`` each element of a list of scalars.

The PHI-free guarantee lives in the types: every type below is either a number, a digest, a
syntactically valid UID (anything else is logged as ``NOT_A_UID``), a name the kit or AWS chose,
or text the code composes from constants. No type admits a value read from a data set or a
request body, which is why a field cannot carry a patient's name, ID, birth date or free text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

# What gateway/uids.py `loggable` and lambdas/dicom_checks.py `loggable_uid` log instead of a
# sender-supplied string that is not a UID.
NOT_A_UID = "(not a valid UID)"

_UID_RE = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_HEX12_RE = re.compile(r"[0-9a-f]{12}")
_CODE_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")


def _is_uid(value: object) -> bool:
    return isinstance(value, str) and (
        value == NOT_A_UID or (len(value) <= 64 and _UID_RE.fullmatch(value) is not None)
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


# DICOM PS3.5 Table 6.2-1, VR AE: at most 16 characters of the Default Character Repertoire without
# backslash or control characters; leading and trailing spaces are not significant.
AE_TITLE_MAX_LENGTH = 16


def is_ae_title(value: object) -> bool:
    """Whether ``value`` is an AE title as logged: 1-16 printable ASCII, no backslash, trimmed."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= AE_TITLE_MAX_LENGTH
        and value == value.strip(" ")
        and all(" " <= c <= "~" and c != "\\" for c in value)
    )


@dataclass(frozen=True)
class FieldType:
    """A kind of value: what it may hold (and why that is never PHI) and how to check it."""

    name: str
    meaning: str
    check: Callable[[object], bool]


TYPES: dict[str, FieldType] = {
    t.name: t
    for t in (
        FieldType("integer", "a JSON integer", _is_int),
        FieldType("boolean", "a JSON boolean", lambda v: isinstance(v, bool)),
        FieldType(
            "port",
            "a TCP port (integer), or null when that listener is not started",
            lambda v: v is None or _is_int(v),
        ),
        FieldType(
            "uid",
            f"a DICOM UID (PS3.5 9.1: digits and dots, at most 64 characters), or `{NOT_A_UID}` "
            "when the sender's value is not one (an arbitrary string could be PHI)",
            _is_uid,
        ),
        FieldType(
            "sha256",
            "64 lowercase hex characters: a SHA-256 digest, or the HMAC-SHA-256 patient pseudonym",
            lambda v: isinstance(v, str) and _HEX64_RE.fullmatch(v) is not None,
        ),
        FieldType(
            "sha256-prefix",
            "the first 12 lowercase hex characters of a SHA-256 digest (of a one-time link's "
            "token: enough to find its links-table item, never the token)",
            lambda v: isinstance(v, str) and _HEX12_RE.fullmatch(v) is not None,
        ),
        FieldType(
            "fingerprint",
            "SHA-256 of the client certificate (DER), lowercase hex; empty when no certificate "
            "was presented (STOW-RS without the ALB's leaf header, local development)",
            lambda v: isinstance(v, str) and (v == "" or _HEX64_RE.fullmatch(v) is not None),
        ),
        FieldType(
            "code",
            "a stable lowercase-hyphenated code (a reason code of lambdas/dicom_checks.py, a "
            "refusal code of lambdas/deid/engine.py, an option name of lambdas/deid/profile.py)",
            lambda v: isinstance(v, str) and _CODE_RE.fullmatch(v) is not None,
        ),
        FieldType(
            "text",
            "a phrase the code composes from constants, reason codes, exception class names, "
            "OpenSSL reason names, UIDs, sizes and certificate fingerprints; never a value read "
            "from a data set or a request body",
            _is_text,
        ),
        FieldType(
            "name",
            "an identifier chosen by the stack or AWS: a bucket, function, ARN, request id, "
            "trace id or code location",
            _is_text,
        ),
        FieldType(
            "ae-title",
            "a DICOM AE title (PS3.5 VR AE): 1 to 16 printable ASCII characters without "
            "backslash, spaces trimmed. The sender chooses it (a device's configured name); the "
            "gateway logs it only when it is a valid AE title and leaves the field out otherwise",
            is_ae_title,
        ),
        FieldType(
            "s3-key",
            "an object key the kit chose: inbox keys are random "
            "(`incoming/<date>/<uuid>.dcm`, gateway/inbox.py), archive keys are made of UIDs, "
            "quarantine keys of the date, bucket, version id and inbox key, derived keys of the "
            "project and de-identified UIDs, research review keys of the project and a SHA-256",
            _is_text,
        ),
        FieldType(
            "version-id",
            "an S3 version id, or null for an object in an unversioned bucket",
            lambda v: v is None or _is_text(v),
        ),
        FieldType(
            "timestamp",
            "a date and time, ISO 8601 (`2025-01-31 12:00:00,000+0000` from Powertools)",
            lambda v: isinstance(v, str) and _TIMESTAMP_RE.match(v) is not None,
        ),
    )
}


@dataclass(frozen=True)
class Field:
    """One key of an event (a path for nested values, see the module docstring)."""

    name: str
    type: str
    meaning: str
    required: bool = True
    values: tuple[str, ...] = ()  # when not empty: the only values it takes

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type!r}")


@dataclass(frozen=True)
class Event:
    """One kind of log line, named by its ``message``."""

    message: str
    level: str
    when: str
    fields: tuple[Field, ...] = ()
    # Why no test scenario emits it (then tests/audit_events exempts it, by this reason).
    untriggered: str = ""

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Emitter:
    """A program whose log lines are audit events, with the envelope every line carries."""

    name: str
    title: str
    log_group: str
    envelope: tuple[Field, ...]
    events: tuple[Event, ...]

    def event(self, message: str) -> Event | None:
        return next((e for e in self.events if e.message == message), None)


LEVELS = ("INFO", "WARNING", "ERROR")

GATEWAY_ENVELOPE = (
    Field("level", "text", "severity", values=LEVELS),
    Field("message", "text", "the event's name: one of the messages below"),
)


def _lambda_envelope(service: str) -> tuple[Field, ...]:
    """Powertools Logger's standard keys (``inject_lambda_context``)."""
    return (
        Field("level", "text", "severity", values=LEVELS),
        Field("location", "name", "`function:line` of the logging call"),
        Field("message", "text", "the event's name: one of the messages below"),
        Field("timestamp", "timestamp", "when the line was logged (UTC)"),
        Field("service", "name", "the emitting function's service name", values=(service,)),
        Field("cold_start", "boolean", "first invocation of this execution environment"),
        Field("function_name", "name", "the Lambda function's name"),
        Field("function_memory_size", "integer", "the function's memory (MiB)"),
        Field("function_arn", "name", "the invoked function's ARN"),
        Field("function_request_id", "name", "the invocation's request id"),
        Field(
            "xray_trace_id", "name", "the X-Ray trace id, when Lambda passes one", required=False
        ),
    )


CHANNEL = Field("channel", "text", "how the instance arrived", values=("dimse", "stow"))
SOP_INSTANCE_UID = Field(
    "sop_instance_uid", "uid", "SOP Instance UID the sender declared (PS3.5 9.1 checked)"
)

GATEWAY = Emitter(
    name="gateway",
    title="Gateway",
    log_group="`/<prefix>/ecs/gateway` (the awslogs driver: standard output and error, by line)",
    envelope=GATEWAY_ENVELOPE,
    events=(
        Event(
            "listening",
            "INFO",
            "both listeners are up",
            (
                Field("dimse_port", "integer", "DICOM-TLS port"),
                Field("http_port", "port", "STOW-RS and /health port"),
            ),
        ),
        Event(
            "STOW-RS accepts requests without client certificates: local development only",
            "WARNING",
            "started with `--allow-missing-mtls-headers`: STOW-RS trusts requests without the "
            "ALB's client-certificate headers; never in a deployed stack",
        ),
        Event(
            "the CRL is past its next update: it still revokes what it lists; publish a new one",
            "WARNING",
            "at start, the CRL given is out of date (it is still enforced)",
            (Field("next_update", "timestamp", "the CRL's nextUpdate"),),
        ),
        Event(
            "dimse connection refused",
            "WARNING",
            "a TLS connection was closed before any association: handshake failed (untrusted, "
            "expired or missing client certificate, old TLS), timed out, or the certificate "
            "is revoked",
            (
                Field(
                    "reason",
                    "text",
                    "`TLS: <OpenSSL reason>`, `TLS: no handshake within the deadline`, "
                    "`no client certificate`, `client certificate revoked (<fingerprint>)`, "
                    "`connection: <exception class>`",
                ),
            ),
        ),
        Event(
            "store refused: no verified client certificate",
            "WARNING",
            "a C-STORE arrived on an association whose peer certificate cannot be read; "
            "answered 0xC000, nothing stored",
            (CHANNEL, SOP_INSTANCE_UID),
        ),
        Event(
            "stow refused: no verified client certificate headers",
            "WARNING",
            "a STOW-RS request without the ALB's mTLS headers; answered 403, nothing stored",
        ),
        Event(
            "stored",
            "INFO",
            "an instance is durably in the inbox (S3 acknowledged it); the sender gets Success",
            (
                CHANNEL,
                SOP_INSTANCE_UID,
                Field("key", "s3-key", "the inbox object's key"),
                Field("sha256", "sha256", "SHA-256 of the stored bytes"),
                Field("size", "integer", "bytes stored"),
                Field("client_fingerprint", "fingerprint", "the sender's client certificate"),
                Field(
                    "calling_ae",
                    "ae-title",
                    "the association's calling AE title (DIMSE only; absent when the sender's is "
                    "not a valid AE title)",
                    required=False,
                ),
            ),
        ),
        Event(
            "store failed: inbox write failed",
            "ERROR",
            "the inbox write raised; the sender is told Out of Resources (0xA700) and keeps "
            "the instance",
            (
                CHANNEL,
                SOP_INSTANCE_UID,
                Field("reason", "text", "the exception's class name (e.g. `ClientError`)"),
            ),
        ),
        Event(
            "stow part too large",
            "WARNING",
            "a STOW-RS part exceeds what one inbox write can carry; that part fails (0xA700)",
            (Field("size", "integer", "bytes received for the part"),),
        ),
        Event(
            "stow body unreadable",
            "WARNING",
            "the STOW-RS body's framing or multipart structure is broken; the rest of the "
            "request fails",
            (
                Field("status", "integer", "the HTTP status answered for the framing"),
                Field("stored", "integer", "instances of this request stored before the damage"),
            ),
        ),
        Event(
            "stow connection lost",
            "WARNING",
            "the client's connection failed mid-request; nothing is answered",
            (Field("stored", "integer", "instances of this request stored before the loss"),),
        ),
        Event(
            "removed abandoned transfers from the spool",
            "WARNING",
            "the sweeper deleted spooled files of transfers cut off mid-way",
            (Field("files", "integer", "files removed"),),
        ),
        Event(
            "stopping",
            "INFO",
            "a stop signal arrived; both listeners stop accepting",
            (Field("signal", "integer", "the signal number (15 SIGTERM, 2 SIGINT)"),),
        ),
        Event(
            "stopped",
            "INFO",
            "shutdown complete",
            (
                Field(
                    "aborted_associations",
                    "integer",
                    "associations still running at the drain deadline, aborted (senders resend)",
                ),
                Field(
                    "unfinished_requests",
                    "integer",
                    "STOW-RS requests still running at the drain deadline",
                ),
            ),
        ),
    ),
)

_SOURCE = (
    Field("source.bucket", "name", "the inbox bucket"),
    Field(
        "source.key",
        "s3-key",
        "the inbox key (writers other than the gateway must name objects without PHI)",
    ),
    Field("source.version_id", "version-id", "the inbox object version read"),
)
_IDENTITY = (
    Field("sop_instance_uid", "uid", "SOP Instance UID"),
    Field("study_instance_uid", "uid", "Study Instance UID"),
    Field("series_instance_uid", "uid", "Series Instance UID"),
    Field("sop_class_uid", "uid", "SOP Class UID"),
)


# Present only when the object carried a Digital Signatures Sequence: one element per signature.
# The signer is its certificate's SHA-256, never its subject (logs carry no names).
_SIGNATURES = (
    Field("signatures[].uid", "uid", "the Digital Signature UID"),
    Field(
        "signatures[].verdict",
        "code",
        "the verification's verdict (lambdas/dicom_signature.py)",
        values=("valid", "untrusted", "invalid", "unsupported", "malformed"),
    ),
    Field(
        "signatures[].mac_algorithm",
        "text",
        "the MAC algorithm the signature names (absent when unreadable)",
        required=False,
        values=("SHA256", "SHA384", "SHA512", "SHA1", "MD5", "RIPEMD160", "other"),
    ),
    Field(
        "signatures[].key_algorithm",
        "text",
        "the signer key's algorithm, e.g. `RSA`, `ECDSA P-256` (absent when unreadable)",
        required=False,
    ),
    Field(
        "signatures[].profile",
        "text",
        "the PS3.15 Annex C profile, or `none (<key algorithm>)` (absent when unreadable)",
        required=False,
    ),
    Field(
        "signatures[].signer_sha256",
        "sha256",
        "SHA-256 of the signer's certificate (DER) (absent when unreadable)",
        required=False,
    ),
    Field(
        "signatures[].complete",
        "boolean",
        "whether the signature covers every top-level element that may be signed "
        "(absent when its parameters are unreadable)",
        required=False,
    ),
)


def _ingest_outcome(
    name: str, when: str, *, identity: bool, extra: tuple[Field, ...], patient_key: bool
) -> Event:
    optional = "" if identity else " (absent when the object did not yield it)"
    return Event(
        name,
        "INFO",
        when,
        (
            Field("outcome", "text", "the same as `message`", values=(name,)),
            *_SOURCE,
            Field("size", "integer", "bytes of the inbox object"),
            Field("sha256", "sha256", "SHA-256 of the inbox object", required=identity),
            *(Field(f.name, f.type, f.meaning + optional, required=identity) for f in _IDENTITY),
            Field(
                "patient_key",
                "sha256",
                "keyed pseudonym of PatientID (HMAC-SHA-256 with the pseudonym KMS key)",
                required=patient_key,
            ),
            *extra,
            *(
                Field(f.name, f.type, f.meaning, required=False, values=f.values)
                for f in _SIGNATURES
            ),
        ),
    )


INGEST = Emitter(
    name="ingest",
    title="Ingest function",
    log_group="`/aws/lambda/<prefix>-ingest`",
    envelope=_lambda_envelope("pacs-ingest"),
    events=(
        _ingest_outcome(
            "archived",
            "the object passed validation and is archived WORM, signed and indexed",
            identity=True,
            patient_key=True,
            extra=(
                Field("archive_key", "s3-key", "the archive key (made of the three UIDs)"),
                Field("archive_version_id", "version-id", "the archived version"),
            ),
        ),
        _ingest_outcome(
            "duplicate",
            "the same bytes are already archived under this SOP Instance UID; nothing written",
            identity=True,
            patient_key=True,
            extra=(),
        ),
        _ingest_outcome(
            "quarantined",
            "the object was refused (or conflicts with an archived one) and copied to quarantine",
            identity=False,
            patient_key=False,
            extra=(
                Field("reasons[].code", "code", "stable reason code (README, reason table)"),
                Field("reasons[].message", "text", "what is wrong, naming UIDs and sizes only"),
                Field("quarantine_key", "s3-key", "the quarantine object's key"),
            ),
        ),
        Event(
            "failed",
            "ERROR",
            "a record could not be processed; SQS redelivers it, and after `maxReceiveCount` "
            "attempts it lands in the DLQ (which raises an alarm)",
            (
                Field("message_id", "name", "the SQS message id (the DLQ keeps the message)"),
                Field(
                    "reason",
                    "text",
                    "the exception's class name: `IntegrityError`, `ClaimInProgress`, "
                    "`EventError` (not an S3 event), `ClientError`, …",
                ),
            ),
        ),
    ),
)

VERIFY = Emitter(
    name="verify",
    title="Verify function",
    log_group="`/aws/lambda/<prefix>-verify`",
    envelope=_lambda_envelope("pacs-verify"),
    events=(
        Event(
            "verified",
            "INFO",
            "the archived bytes match the index digest and the signed manifest, and the "
            "signature verifies",
            (Field("sop_instance_uid", "uid", "the instance checked"),),
        ),
        Event(
            "integrity-failure",
            "ERROR",
            "an instance failed a check, or has no index row: a security incident "
            "(docs/runbooks/restore.md)",
            (
                Field(
                    "sop_instance_uid",
                    "uid",
                    f"the instance checked (a requested value that is no UID: `{NOT_A_UID}`)",
                ),
                Field(
                    "problems[]",
                    "text",
                    "each failed check, e.g. `object SHA-256 differs from the index`, "
                    "`manifest signature does not verify`, `cannot read the archive: <code>`",
                ),
            ),
        ),
    ),
)

_PROJECT = Field("project", "name", "the research project (a name of `researchProjects`)")
_ARCHIVED_UID = Field("sop_instance_uid", "uid", "SOP Instance UID of the archived instance")

RESEARCH = Emitter(
    name="research",
    title="Research-copy function",
    log_group="`/aws/lambda/<prefix>-research`",
    envelope=_lambda_envelope("pacs-research"),
    events=(
        Event(
            "research-copied",
            "INFO",
            "an archived instance matched a project's rule and its de-identified copy, read back "
            "and passed by the leak check of lambdas/deid/verify.py, is in the derived bucket "
            "(with its linkage record first, when linkage is on); the source side "
            "only: no de-identified UID or derived key (the linkage table alone maps copy to "
            "source)",
            (
                _PROJECT,
                _ARCHIVED_UID,
                Field("archive_version_id", "version-id", "the archived version read"),
                Field(
                    "options[]",
                    "code",
                    "each option applied beyond the Basic Profile (absent when none)",
                    required=False,
                ),
                Field("linked", "boolean", "whether a linkage record exists for the copy"),
            ),
        ),
        Event(
            "research-held",
            "WARNING",
            "an instance a project's rule matched is not copied: the engine refused it, the leak "
            "check found its copy keeps what it must not, or a different copy of it already stands "
            "under its derived key (a corrected re-archive; never overwritten, not retried). "
            "Nothing new goes to derived, a review record (no image) goes to quarantine for a "
            "person to decide",
            (
                _PROJECT,
                Field(
                    "reason",
                    "code",
                    "the refusal code of lambdas/deid/engine.py, e.g. `burned-in-annotation`; "
                    "`verification-failed` (the leak check's findings, below); `conflicting-copy` "
                    "(other bytes under the derived key)",
                ),
                _ARCHIVED_UID,
                Field(
                    "review_key",
                    "s3-key",
                    "`research-review/<project>/<SHA-256 of the archive key, NUL, version "
                    "id>.json` in quarantine",
                ),
                Field("review_version_id", "version-id", "the review record's version"),
                Field(
                    "findings[]",
                    "text",
                    "with `verification-failed` only: each finding of lambdas/deid/verify.py as "
                    "its code and tag path, e.g. `value-retained (0010,0010)`; never a value",
                    required=False,
                ),
            ),
        ),
        Event(
            "research-not-routed",
            "INFO",
            "an archived instance matched no project's rule; nothing written (logged so that every "
            "archived instance leaves a trace of the routing decision)",
            (_ARCHIVED_UID,),
        ),
        Event(
            "failed",
            "ERROR",
            "a record could not be processed; SQS redelivers it, and after `maxReceiveCount` "
            "attempts it lands in the DLQ",
            (
                Field("message_id", "name", "the SQS message id (the DLQ keeps the message)"),
                Field(
                    "reason",
                    "text",
                    "the exception's class name: `EventError` (not an S3 event), `ClientError`, "
                    "`InvalidDicomError`, …",
                ),
            ),
        ),
    ),
)

_EXPORT_ID = Field("export_id", "name", "the export's id (a UUID the function chose)")
_TOKEN_PREFIX = Field(
    "token_sha256",
    "sha256-prefix",
    "the link's token, as the first 12 hex digits of its SHA-256 (the links table's key)",
)

EXPORT = Emitter(
    name="export",
    title="Export function",
    log_group="`/aws/lambda/<prefix>-export`",
    envelope=_lambda_envelope("pacs-export"),
    events=(
        Event(
            "export-created",
            "INFO",
            "an operator's export of a study: its package (one zip of Secure DICOM Files and the "
            "signed manifest) is in the exports bucket and a one-time link to it was issued "
            "(lambdas/exports.py); the token is in the function's answer only",
            (
                _EXPORT_ID,
                Field("study_instance_uid", "uid", "the study exported"),
                Field("members", "integer", "how many instances the package holds"),
                Field("package_sha256", "sha256", "SHA-256 of the package's zip"),
                Field(
                    "recipient_sha256",
                    "sha256",
                    "SHA-256 fingerprint of the recipient certificate (DER)",
                ),
                Field("deidentified", "boolean", "whether the members were de-identified"),
                Field("expires_at", "timestamp", "when the link stops working (UTC)"),
                Field(
                    "signer",
                    "code",
                    "who signed the manifest: the stack's signing KMS key with "
                    "`exportSignerCertificate`, or a one-time key (integrity only)",
                    values=("kms", "one-time"),
                ),
            ),
        ),
        Event(
            "export-refused",
            "WARNING",
            'an export was asked for and not made; the operator got `{"error": <reason>}`',
            (
                Field(
                    "reason",
                    "code",
                    "the error code of lambdas/exports.py, e.g. `study-not-found`, "
                    "`recipient-invalid`, `nothing-to-export`, `deidentify-unsupported`",
                ),
                Field(
                    "study_instance_uid",
                    "uid",
                    "the study asked for, only when the request named a valid UID",
                    required=False,
                ),
            ),
        ),
    ),
)

LINK = Emitter(
    name="link",
    title="One-time link function",
    log_group="`/aws/lambda/<prefix>-export-link`",
    envelope=_lambda_envelope("pacs-export-link"),
    events=(
        Event(
            "link-used",
            "INFO",
            "a one-time link was used for the first time before it expired: it is spent, and the "
            "request was redirected to a presigned GET of the package",
            (_EXPORT_ID, _TOKEN_PREFIX),
        ),
        Event(
            "link-refused",
            "WARNING",
            "a link request was answered 410 (the same answer whatever the reason)",
            (
                Field(
                    "reason",
                    "code",
                    "why: no such token (or none given), already used, or past its expiry",
                    values=("unknown", "used", "expired"),
                ),
                _TOKEN_PREFIX,
                Field(
                    "export_id",
                    "name",
                    "the export the link was issued for, when the token is known",
                    required=False,
                ),
            ),
        ),
    ),
)

EMITTERS: dict[str, Emitter] = {
    e.name: e for e in (GATEWAY, INGEST, VERIFY, RESEARCH, EXPORT, LINK)
}


def leaves(value: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Every scalar of a JSON value with its field path (``a.b``, ``a[].b``, ``a[]``)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, f"{path}[]")
    else:
        yield path, value


def problems(emitter: Emitter, record: Mapping[str, object]) -> list[str]:
    """Why ``record`` (one parsed log line) breaks the schema; empty when it conforms."""
    message = record.get("message")
    event = emitter.event(message) if isinstance(message, str) else None
    if event is None:
        return [f"{emitter.name}: undocumented event {message!r}"]
    where = f"{emitter.name} {message!r}"
    found: list[str] = []
    if record.get("level") != event.level:
        found.append(f"{where}: level {record.get('level')!r}, documented {event.level}")
    fields = {f.name: f for f in (*emitter.envelope, *event.fields)}
    seen = set()
    for path, value in leaves(record):
        seen.add(path)
        spec = fields.get(path)
        if spec is None:
            found.append(f"{where}: undocumented field {path!r}")
        elif not TYPES[spec.type].check(value):
            found.append(f"{where}: {path}={value!r} is not of type {spec.type}")
        elif spec.values and value not in spec.values:
            found.append(f"{where}: {path}={value!r} not one of {spec.values}")
    missing = sorted(n for n, f in fields.items() if f.required and n not in seen)
    if missing:
        found.append(f"{where}: required fields missing: {', '.join(missing)}")
    return found
