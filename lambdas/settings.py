"""The functions' environment contract: variable names, defaults and parsing.

``infra/components/ingest.py`` sets these variables and the handlers read them, so both import the
names from here. This module imports nothing heavier than the standard library (``infra`` may
import it; it must never pull in pydicom).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# --- ingest -----------------------------------------------------------------------------------
ARCHIVE_BUCKET = "PACS_ARCHIVE_BUCKET"
QUARANTINE_BUCKET = "PACS_QUARANTINE_BUCKET"
DATA_KEY_ARN = "PACS_DATA_KEY_ARN"  # SSE-KMS key of archive and quarantine writes
SIGNING_KEY_ARN = "PACS_SIGNING_KEY_ARN"
PSEUDONYM_KEY_ARN = "PACS_PSEUDONYM_KEY_ARN"
INDEX_TABLE = "PACS_INDEX_TABLE"
IDEMPOTENCY_TABLE = "PACS_IDEMPOTENCY_TABLE"
MAX_OBJECT_BYTES = "PACS_MAX_OBJECT_BYTES"
MAX_INFLATED_BYTES = "PACS_MAX_INFLATED_BYTES"
# Comma-separated UIDs; empty means the built-in defaults of lambdas/dicom_checks.py. Lambda
# environments are limited to 4 KB, so the full storage SOP class list cannot travel here.
TRANSFER_SYNTAXES = "PACS_TRANSFER_SYNTAXES"
SOP_CLASSES = "PACS_SOP_CLASSES"
# What the function does with the Digital Signatures (FFFA,FFFA) of arriving objects: one of
# SIGNATURE_POLICIES; unset means DEFAULT_SIGNATURE_POLICY.
SIGNATURE_POLICY = "PACS_SIGNATURE_POLICY"
# The path, inside the function's package, of a PEM file of the CA certificates signatures must
# chain to; unset: no trust anchors (every signature that verifies is "untrusted"). The bundle is
# packaged with the code rather than carried here: 1-3 certificates take 1-6 KB of PEM, and the
# whole environment (with the UID lists) must fit in Lambda's 4 KB.
SIGNATURE_TRUST_BUNDLE = "PACS_SIGNATURE_TRUST_BUNDLE"
# --- verify -----------------------------------------------------------------------------------
VERIFY_SAMPLE_SIZE = "PACS_VERIFY_SAMPLE_SIZE"
# --- research copies (also ARCHIVE_BUCKET, QUARANTINE_BUCKET, DATA_KEY_ARN, PSEUDONYM_KEY_ARN,
# IDEMPOTENCY_TABLE) ----------------------------------------------------------------------------
DERIVED_BUCKET = "PACS_DERIVED_BUCKET"
# A JSON list of projects (see ResearchProject); empty or unset: nothing is routed.
RESEARCH_PROJECTS = "PACS_RESEARCH_PROJECTS"
# Empty (the default): re-identification linkage is off and nothing is written anywhere.
LINKAGE_TABLE = "PACS_LINKAGE_TABLE"
LINKAGE_KEY_ARN = "PACS_LINKAGE_KEY_ARN"  # symmetric KMS key that encrypts each linkage record

# --- exports (issue #9; also ARCHIVE_BUCKET, DATA_KEY_ARN, SIGNING_KEY_ARN) ---------------------
EXPORTS_BUCKET = "PACS_EXPORTS_BUCKET"
EXPORTS_TABLE = "PACS_EXPORTS_TABLE"  # the one-time links, keyed by token_sha256
# The path, inside the export function's package, of the PEM certificate issued for the signing KMS
# key (like SIGNATURE_TRUST_BUNDLE); empty: manifests are signed by a one-time key.
EXPORT_SIGNER_CERT = "PACS_EXPORT_SIGNER_CERT"
LINK_URL = "PACS_LINK_URL"  # the link function's URL; links are <url>?token=<token>
LINK_MINUTES = "PACS_LINK_MINUTES"  # how long an issued link works: 1 to MAX_LINK_MINUTES
# --- one-time links (also EXPORTS_BUCKET, EXPORTS_TABLE) --------------------------------------
PRESIGN_SECONDS = "PACS_PRESIGN_SECONDS"  # the presigned GET's life once a link is used

DEFAULT_MAX_OBJECT_BYTES = 4 * 1024**3  # CopyObject copies at most 5 GiB in one request
DEFAULT_MAX_INFLATED_BYTES = 256 * 1024**2
DEFAULT_VERIFY_SAMPLE_SIZE = 100
DEFAULT_LINK_MINUTES = MAX_LINK_MINUTES = 15
DEFAULT_PRESIGN_SECONDS = MAX_PRESIGN_SECONDS = 60

# reject-invalid: a signature that no longer matches its data quarantines the object; record: only
# logged (a tampered object is archived); require-valid: also quarantine an object without a valid
# signature (needs a trust bundle). Unsigned objects pass under the first two.
SIGNATURE_POLICIES: tuple[str, ...] = ("reject-invalid", "record", "require-valid")
DEFAULT_SIGNATURE_POLICY = SIGNATURE_POLICIES[0]
# Where infra/components/ingest.py puts the trust bundle in the ingest function's package.
SIGNATURE_TRUST_FILE = "signature-trust/ca-bundle.pem"

# Where archived objects live; the ingest role may write only under this prefix of the archive.
ARCHIVE_PREFIX = "studies/"
# Research copies: derived/<project>/studies/... in the derived bucket; objects the engine refuses
# leave a review record (never the image) under research-review/<project>/ in quarantine.
DERIVED_PREFIX = "derived/"
RESEARCH_REVIEW_PREFIX = "research-review/"
# Export packages: exports/<export_id>/package.zip in the exports bucket; the export role may write
# only under this prefix, the link role read only under it.
EXPORTS_PREFIX = "exports/"
PROJECT_NAME = re.compile(r"[a-z0-9-]{2,32}")
_KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")


class SettingsError(ValueError):
    """A function's environment is missing or malformed (a deployment bug, never data)."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required")
    return value


def _positive_int(
    env: Mapping[str, str], name: str, default: int, maximum: int | None = None
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} must be a positive integer") from None
    if value <= 0:
        raise SettingsError(f"environment variable {name} must be a positive integer")
    if maximum is not None and value > maximum:
        raise SettingsError(f"environment variable {name} must be at most {maximum}")
    return value


def _signature_policy(env: Mapping[str, str]) -> str:
    value = env.get(SIGNATURE_POLICY, "").strip() or DEFAULT_SIGNATURE_POLICY
    if value not in SIGNATURE_POLICIES:
        raise SettingsError(
            f"environment variable {SIGNATURE_POLICY} must be one of "
            + ", ".join(SIGNATURE_POLICIES)
        )
    return value


def _package_root(env: Mapping[str, str]) -> Path:
    """Lambda's task root (where the package is unzipped); locally, the repository."""
    root = env.get("LAMBDA_TASK_ROOT", "").strip() or os.environ.get("LAMBDA_TASK_ROOT", "")
    return Path(root) if root else Path(__file__).resolve().parent.parent


def _packaged_certificate(env: Mapping[str, str], name: str) -> str:
    """The PEM text of the packaged certificate file that ``name`` names, or "" when it is empty
    (the ingest function's SIGNATURE_TRUST_BUNDLE, the export function's EXPORT_SIGNER_CERT)."""
    raw = env.get(name, "").strip()
    if not raw:
        return ""
    path = Path(raw)
    try:
        text = (path if path.is_absolute() else _package_root(env) / path).read_text("ascii")
    except (OSError, ValueError):
        raise SettingsError(
            f"environment variable {name} names {raw!r}, which is not a readable PEM file of "
            "the function's package"
        ) from None
    if "BEGIN CERTIFICATE" not in text:
        raise SettingsError(f"{name}: {raw!r} holds no PEM certificate")
    return text


def _uid_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in env.get(name, "").split(",") if u.strip())


@dataclass(frozen=True)
class IngestSettings:
    """Everything the ingest function needs to know about its stack."""

    archive_bucket: str
    quarantine_bucket: str
    data_key_arn: str
    signing_key_arn: str
    pseudonym_key_arn: str
    index_table: str
    idempotency_table: str
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES
    transfer_syntaxes: tuple[str, ...] = ()
    sop_classes: tuple[str, ...] = ()
    signature_policy: str = DEFAULT_SIGNATURE_POLICY
    # PEM text of the CA certificates arriving signatures must chain to; "" for none.
    signature_trust_pem: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        env = os.environ if env is None else env
        policy = _signature_policy(env)
        trust = _packaged_certificate(env, SIGNATURE_TRUST_BUNDLE)
        if policy == "require-valid" and not trust:
            # Nothing could be valid: every object would be quarantined.
            raise SettingsError(
                f"{SIGNATURE_POLICY}=require-valid needs {SIGNATURE_TRUST_BUNDLE} (trust anchors)"
            )
        return cls(
            archive_bucket=_required(env, ARCHIVE_BUCKET),
            quarantine_bucket=_required(env, QUARANTINE_BUCKET),
            data_key_arn=_required(env, DATA_KEY_ARN),
            signing_key_arn=_required(env, SIGNING_KEY_ARN),
            pseudonym_key_arn=_required(env, PSEUDONYM_KEY_ARN),
            index_table=_required(env, INDEX_TABLE),
            idempotency_table=_required(env, IDEMPOTENCY_TABLE),
            max_object_bytes=_positive_int(env, MAX_OBJECT_BYTES, DEFAULT_MAX_OBJECT_BYTES),
            max_inflated_bytes=_positive_int(env, MAX_INFLATED_BYTES, DEFAULT_MAX_INFLATED_BYTES),
            transfer_syntaxes=_uid_list(env, TRANSFER_SYNTAXES),
            sop_classes=_uid_list(env, SOP_CLASSES),
            signature_policy=policy,
            signature_trust_pem=trust,
        )


@dataclass(frozen=True)
class VerifySettings:
    """Everything the verify function needs to know about its stack."""

    archive_bucket: str
    signing_key_arn: str
    index_table: str
    sample_size: int = DEFAULT_VERIFY_SAMPLE_SIZE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VerifySettings:
        env = os.environ if env is None else env
        return cls(
            archive_bucket=_required(env, ARCHIVE_BUCKET),
            signing_key_arn=_required(env, SIGNING_KEY_ARN),
            index_table=_required(env, INDEX_TABLE),
            sample_size=_positive_int(env, VERIFY_SAMPLE_SIZE, DEFAULT_VERIFY_SAMPLE_SIZE),
        )


@dataclass(frozen=True)
class ResearchProject:
    """One research project: which archived instances it receives and how they are de-identified.

    ``match`` is (DICOM keyword, accepted values): an instance matches when every keyword is
    present in it with one of its values equal to one of the accepted values, case-insensitively
    (values are kept casefolded). ``options`` are the engine's option names
    (``lambdas.deid.profile.Option``); ``safe_private`` the (private creator, element low byte)
    pairs Retain Safe Private may keep.
    """

    name: str
    match: tuple[tuple[str, frozenset[str]], ...]
    options: tuple[str, ...] = ()
    safe_private: frozenset[tuple[str, int]] = frozenset()


def parse_research_projects(raw: str) -> tuple[ResearchProject, ...]:
    """``PACS_RESEARCH_PROJECTS``: a JSON list of ``{"name", "match", "options", "safePrivate"}``.

    SettingsError names what is wrong: a name outside ``[a-z0-9-]{2,32}`` or used twice, an
    empty ``match`` (a rule that would route every instance is refused: list what a project
    receives), an unknown or conflicting option, a malformed ``CREATOR:ELEMENT``.
    """
    if not raw.strip():
        return ()
    try:
        documents = json.loads(raw)
    except ValueError:
        raise SettingsError(f"environment variable {RESEARCH_PROJECTS} is not JSON") from None
    if not isinstance(documents, list):
        raise SettingsError(f"environment variable {RESEARCH_PROJECTS} must be a JSON list")
    projects = tuple(_project(i, doc) for i, doc in enumerate(documents))
    names = [p.name for p in projects]
    if len(names) != len(set(names)):
        raise SettingsError(f"{RESEARCH_PROJECTS}: project names must be unique")
    return projects


def _project(index: int, doc: object) -> ResearchProject:
    where = f"{RESEARCH_PROJECTS}[{index}]"
    if not isinstance(doc, dict):
        raise SettingsError(f"{where} must be an object")
    unknown = set(doc) - {"name", "match", "options", "safePrivate"}
    if unknown:
        raise SettingsError(f"{where}: unknown keys {sorted(unknown)}")
    name = doc.get("name")
    if not isinstance(name, str) or not PROJECT_NAME.fullmatch(name):
        raise SettingsError(f"{where}: name must match ^[a-z0-9-]{{2,32}}$")
    where = f"{RESEARCH_PROJECTS} project {name}"
    match = doc.get("match")
    if not isinstance(match, dict) or not match:
        raise SettingsError(f"{where}: match must be a non-empty object of keyword -> values")
    rules = []
    for keyword, values in match.items():
        if not _KEYWORD.fullmatch(keyword):
            raise SettingsError(f"{where}: {keyword!r} is not a DICOM keyword")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v.strip() for v in values)
        ):
            raise SettingsError(f"{where}: match.{keyword} must be a non-empty list of strings")
        rules.append((keyword, frozenset(v.strip().casefold() for v in values)))
    options = doc.get("options", [])
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise SettingsError(f"{where}: options must be a list of option names")
    # The options' one definition; like this module it imports only the standard library.
    from lambdas.deid.profile import Option, options_from

    try:
        chosen = options_from(options)
    except ValueError as exc:
        raise SettingsError(f"{where}: {exc}") from None
    safe = doc.get("safePrivate", [])
    if not isinstance(safe, list):
        raise SettingsError(f"{where}: safePrivate must be a list of CREATOR:ELEMENT")
    return ResearchProject(
        name=name,
        match=tuple(rules),
        options=tuple(o.value for o in Option if o in chosen),
        safe_private=frozenset(_safe_private(where, entry) for entry in safe),
    )


def _safe_private(where: str, entry: object) -> tuple[str, int]:
    """``CREATOR:ELEMENT`` (element in hex, ``0x`` optional; its low byte counts)."""
    creator, sep, element = str(entry).rpartition(":")
    try:
        number = int(element, 16)
    except ValueError:
        number = -1
    if not isinstance(entry, str) or not sep or not creator.strip() or not 0 <= number <= 0xFFFF:
        raise SettingsError(f"{where}: safePrivate {entry!r} is not CREATOR:ELEMENT (hex)")
    return creator.strip(), number & 0xFF


@dataclass(frozen=True)
class ResearchSettings:
    """Everything the research-copy function needs to know about its stack."""

    archive_bucket: str
    derived_bucket: str
    quarantine_bucket: str
    data_key_arn: str
    pseudonym_key_arn: str
    idempotency_table: str
    projects: tuple[ResearchProject, ...] = ()
    linkage_table: str = ""  # empty: linkage off
    linkage_key_arn: str = ""

    @property
    def linkage(self) -> bool:
        """Whether re-identification linkage records are written."""
        return bool(self.linkage_table)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ResearchSettings:
        env = os.environ if env is None else env
        linkage_table = env.get(LINKAGE_TABLE, "").strip()
        return cls(
            archive_bucket=_required(env, ARCHIVE_BUCKET),
            derived_bucket=_required(env, DERIVED_BUCKET),
            quarantine_bucket=_required(env, QUARANTINE_BUCKET),
            data_key_arn=_required(env, DATA_KEY_ARN),
            pseudonym_key_arn=_required(env, PSEUDONYM_KEY_ARN),
            idempotency_table=_required(env, IDEMPOTENCY_TABLE),
            projects=parse_research_projects(env.get(RESEARCH_PROJECTS, "")),
            linkage_table=linkage_table,
            # The key is required exactly when linkage is on: never a record without encryption.
            linkage_key_arn=_required(env, LINKAGE_KEY_ARN) if linkage_table else "",
        )


@dataclass(frozen=True)
class ExportSettings:
    """Everything the export function needs to know about its stack."""

    archive_bucket: str
    exports_bucket: str
    exports_table: str
    data_key_arn: str  # SSE-KMS key of the package object
    signing_key_arn: str  # signs the manifest when signer_certificate_pem is set
    link_url: str
    # PEM of the certificate issued for the signing key; "" for a one-time signer.
    signer_certificate_pem: str = ""
    link_minutes: int = DEFAULT_LINK_MINUTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExportSettings:
        env = os.environ if env is None else env
        link_url = _required(env, LINK_URL)
        if not link_url.startswith("https://"):
            # The token travels in the query string: never over plain HTTP.
            raise SettingsError(f"environment variable {LINK_URL} must be an https:// URL")
        return cls(
            archive_bucket=_required(env, ARCHIVE_BUCKET),
            exports_bucket=_required(env, EXPORTS_BUCKET),
            exports_table=_required(env, EXPORTS_TABLE),
            data_key_arn=_required(env, DATA_KEY_ARN),
            signing_key_arn=_required(env, SIGNING_KEY_ARN),
            link_url=link_url,
            signer_certificate_pem=_packaged_certificate(env, EXPORT_SIGNER_CERT),
            link_minutes=_positive_int(env, LINK_MINUTES, DEFAULT_LINK_MINUTES, MAX_LINK_MINUTES),
        )


@dataclass(frozen=True)
class LinkSettings:
    """Everything the one-time link function needs to know about its stack."""

    exports_bucket: str
    exports_table: str
    presign_seconds: int = DEFAULT_PRESIGN_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LinkSettings:
        env = os.environ if env is None else env
        return cls(
            exports_bucket=_required(env, EXPORTS_BUCKET),
            exports_table=_required(env, EXPORTS_TABLE),
            presign_seconds=_positive_int(
                env, PRESIGN_SECONDS, DEFAULT_PRESIGN_SECONDS, MAX_PRESIGN_SECONDS
            ),
        )
