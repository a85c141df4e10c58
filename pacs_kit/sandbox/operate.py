"""Operating a sandbox that is up: land files as the gateway does, run the pipeline, read results.

Files reach the inbox exactly as the edge gateway lands them (:class:`gateway.inbox.InboxWriter`:
random key, SSE-KMS, SHA-256 checksum) under the credentials of the gateway's own task role. The
Lambda service emulation then drains the ingest queue under the ingest function's role, and each
file's outcome is read from the function's audit events (the lines its invocations wrote, which
the emulation also puts in the function's CloudWatch log group), matched on the inbox key.
Research copies are found the same way (the research function's events, by original SOP Instance
UID) and then checked as an auditor would, with the administrator's clients: the copy against its
archived original, and its linkage record decrypted.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pydicom
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydicom.multival import MultiValue

from gateway.inbox import InboxWriter, Sender
from infra.config import PROJECT, parse_settings
from lambdas.deid.profile import Option
from lambdas.deid.verify import verify
from lambdas.dicom_checks import quiet_pydicom
from lambdas.manifest import SIDECAR_SUFFIX, ManifestError, parse_sidecar
from lambdas.research_copy import Route, derived_key
from lambdas.settings import ResearchProject, parse_research_projects
from pacs_kit.sandbox import server
from pacs_kit.sandbox.lambda_runtime import ClientShim, Invocation, LambdaService
from pacs_kit.sandbox.state import SandboxState

# Who the sandbox says sent a file (S3 metadata, as the gateway records a client certificate).
SANDBOX_SENDER = Sender(channel="sandbox", subject="CN=pacs-kit sandbox", fingerprint="0" * 64)
FINAL_OUTCOMES = ("archived", "duplicate", "quarantined")


class OperateError(RuntimeError):
    """The sandbox cannot do what was asked (e.g. the stack has no gateway role)."""


@dataclass
class FileOutcome:
    """What became of one landed file."""

    label: str
    key: str
    outcome: str = "pending"  # archived | duplicate | quarantined | failed | pending
    reasons: list[str] = field(default_factory=list)
    sop_instance_uid: str | None = None
    archive_key: str | None = None


def role_session(state: SandboxState, role_arn: str, session_name: str) -> boto3.session.Session:
    """A boto3 session holding temporary credentials of ``role_arn``, assumed in the emulator."""
    sts = state.admin().client("sts", state.region)
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=state.region,
    )


def _output(state: SandboxState, *path: str) -> Any:
    value: Any = state.outputs
    for part in path:
        if not isinstance(value, dict) or part not in value:
            raise OperateError(f"the stack exports no {'.'.join(path)}")
        value = value[part]
    return value


def gateway_role_arn(state: SandboxState) -> str:
    """The edge gateway's task role: the one identity of the stack that writes the inbox."""
    for task in state.created("aws:ecs/taskDefinition:TaskDefinition"):
        arn = task.outputs.get("taskRoleArn")
        if arn:
            return str(arn)
    raise OperateError(
        "the stack has no gateway task role (the edge exists only with edgeClientCaBundle or "
        "edgePrivateCaArn): use the sandbox stack"
    )


def land(
    state: SandboxState, session: boto3.session.Session, files: Sequence[tuple[str, bytes]]
) -> list[FileOutcome]:
    """Put each file in the inbox as the gateway does, with ``session`` (the gateway's role)."""
    s3 = session.client("s3", endpoint_url=state.endpoint)
    writer = InboxWriter(
        s3, str(_output(state, "buckets", "inbox")), kms_key_id=_output(state, "keyArns", "archive")
    )
    return [FileOutcome(label, writer.put(body, SANDBOX_SENDER).key) for label, body in files]


def audit_events(invocations: Iterable[Invocation]) -> list[dict[str, Any]]:
    """The JSON log events the functions wrote (platform lines and plain text skipped)."""
    events = []
    for invocation in invocations:
        for line in invocation.log_lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def resolve(outcomes: list[FileOutcome], events: Iterable[dict[str, Any]]) -> None:
    """Fill in each file's outcome from the ingest function's audit events (by inbox key)."""
    by_key = {o.key: o for o in outcomes}
    for event in events:
        source = event.get("source")
        message = event.get("message")
        if not isinstance(source, dict) or message not in FINAL_OUTCOMES:
            continue
        outcome = by_key.get(str(source.get("key")))
        if outcome is None:
            continue
        outcome.outcome = str(message)
        outcome.reasons = [str(r.get("code")) for r in event.get("reasons") or []]
        outcome.sop_instance_uid = event.get("sop_instance_uid")
        outcome.archive_key = event.get("archive_key")


def ingest(
    state: SandboxState,
    files: Sequence[tuple[str, bytes]],
    client_shims: Sequence[ClientShim] = (),
) -> tuple[list[FileOutcome], list[Invocation]]:
    """Land ``files``, let the event source mapping drain the queue, and read each outcome."""
    with server.iam_paused(state.endpoint):  # ECS and Lambda assume their roles
        gateway = role_session(state, gateway_role_arn(state), "sandbox-gateway")
        service = LambdaService(state, client_shims=client_shims)
    outcomes = land(state, gateway, files)
    invocations = service.drain()
    resolve(outcomes, audit_events(invocations))
    return outcomes, invocations


def run_schedules(state: SandboxState) -> list[Invocation]:
    """Fire the stack's EventBridge schedules once (the daily verify run)."""
    with server.iam_paused(state.endpoint):  # Lambda assumes the function's role
        service = LambdaService(state)
    return service.fire_schedules()


@dataclass
class SignatureCheck:
    """An archived instance's manifest signature, verified outside KMS with its public key."""

    key: str
    valid: bool
    detail: str


def _same_key(named: str, key_arn: str) -> bool:
    """Whether a key id or ARN names the key ``key_arn``."""
    return named == key_arn or named == key_arn.rsplit("/", 1)[-1]


def verify_signatures(state: SandboxState, archive_keys: Iterable[str]) -> list[SignatureCheck]:
    """Verify each archived instance against its signed manifest, outside KMS.

    Independent of the verify function (which asks KMS): the public key of the stack's signing
    key is fetched once (a sidecar naming any other key fails), the manifest bytes stored
    verbatim in the sidecar are checked with ECDSA P-256 / SHA-256 by ``cryptography``, and the
    archived object version the manifest names is read back and must have its SHA-256 and size.
    """
    clients = state.admin()
    s3 = clients.client("s3", state.region)
    kms = clients.client("kms", state.region)
    bucket = str(_output(state, "buckets", "archive"))
    signing_key = str(_output(state, "keyArns", "signing"))
    der = kms.get_public_key(KeyId=signing_key)["PublicKey"]
    public_key = load_der_public_key(der)
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise OperateError(f"signing key {signing_key} is not an EC key")
    return [_verify_one(s3, bucket, key, signing_key, public_key) for key in archive_keys]


def _verify_one(
    s3: Any, bucket: str, key: str, signing_key: str, public_key: ec.EllipticCurvePublicKey
) -> SignatureCheck:
    body = s3.get_object(Bucket=bucket, Key=key + SIDECAR_SUFFIX)["Body"].read()
    try:
        sidecar = parse_sidecar(body)
        manifest = sidecar.manifest
    except ManifestError as exc:
        return SignatureCheck(key, False, f"sidecar unreadable: {exc}")
    if not _same_key(sidecar.signing_key_id, signing_key):
        return SignatureCheck(key, False, f"signed by {sidecar.signing_key_id}, not the stack's")
    try:
        public_key.verify(sidecar.signature, sidecar.manifest_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return SignatureCheck(key, False, "signature does not verify")
    if manifest.key != key or manifest.bucket != bucket:
        return SignatureCheck(key, False, f"manifest names {manifest.bucket}/{manifest.key}")
    digest, size = hashlib.sha256(), 0
    stream = s3.get_object(Bucket=bucket, Key=key, VersionId=manifest.version_id)["Body"]
    for chunk in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(chunk)
        size += len(chunk)
    if digest.hexdigest() != manifest.sha256 or size != manifest.size:
        return SignatureCheck(key, False, "the archived object differs from its manifest")
    return SignatureCheck(key, True, f"ECDSA P-256 by {signing_key}; SHA-256 matches")


# --- research copies ----------------------------------------------------------------------------

RESEARCH_OUTCOMES = ("research-copied", "research-held", "research-not-routed")
# What a copy's bytes must not hold of its original (each non-empty value), unless an option of
# the project keeps it on purpose.
IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "InstitutionName",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyInstanceUID",
    "SOPInstanceUID",
)
_KEPT_BY = {
    "InstitutionName": Option.RETAIN_INSTITUTION_IDENTITY,
    "StudyInstanceUID": Option.RETAIN_UIDS,
    "SOPInstanceUID": Option.RETAIN_UIDS,
}


@dataclass
class ResearchCheck:
    """One archived instance's research outcome (per project it was routed to), checked outside
    the research function. ``detail`` names codes, keywords and UIDs, never a value."""

    sop_instance_uid: str  # the archived (original) instance
    outcome: str  # copied | held | not-routed | missing
    project: str | None = None
    derived_key: str | None = None
    passed: bool = False
    detail: str = ""


@dataclass(frozen=True)
class ResearchConfig:
    """The stack's research projects, as the research function reads them, and linkage."""

    projects: tuple[ResearchProject, ...]
    linkage: bool


def research_config(state: SandboxState) -> ResearchConfig:
    """The projects of the stack's config (validated as the program does) in the function's form."""
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix) :]: v for k, v in state.config.items() if k.startswith(prefix)}
    settings = parse_settings(
        raw, region=state.config.get("aws:region", state.region), stack=state.stack
    ).research
    # The same JSON the function gets in PACS_RESEARCH_PROJECTS, parsed by the function's parser.
    return ResearchConfig(parse_research_projects(settings.projects_json), settings.linkage)


def _research_events(
    state: SandboxState, invocations: Iterable[Invocation]
) -> dict[str, list[dict[str, Any]]]:
    """The research function's outcome events, by original SOP Instance UID."""
    function = (state.outputs.get("functions") or {}).get("research")
    by_sop: dict[str, list[dict[str, Any]]] = {}
    for event in audit_events(i for i in invocations if i.function == function):
        if event.get("message") in RESEARCH_OUTCOMES:
            by_sop.setdefault(str(event.get("sop_instance_uid")), []).append(event)
    return by_sop


def _dataset(body: bytes) -> pydicom.Dataset:
    with quiet_pydicom():  # pydicom's warnings may quote values
        return pydicom.dcmread(io.BytesIO(body))


class _Research:
    """The administrator's view of the research copies: derived bucket, linkage table, KMS."""

    def __init__(self, state: SandboxState, config: ResearchConfig) -> None:
        clients = state.admin()
        self.s3 = clients.client("s3", state.region)
        self.kms = clients.client("kms", state.region)
        self.dynamodb = clients.client("dynamodb", state.region)
        self.config = config
        self.archive = str(_output(state, "buckets", "archive"))
        self.derived = str(_output(state, "buckets", "derived"))
        self.table = str(_output(state, "research", "linkageTable")) if config.linkage else ""
        self.copies = {p.name: self._list(p.name) for p in config.projects}

    def _list(self, project: str) -> list[str]:
        keys = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.derived, Prefix=f"derived/{project}/"):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".dcm")]
        return keys

    def linked_original(self, project: str, deid_sop: str) -> tuple[str | None, str]:
        """The original SOP Instance UID the copy's linkage record names, or why there is none."""
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={"deid_sop_instance_uid": {"S": deid_sop}, "project": {"S": project}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None, "no linkage record"
        try:
            plaintext = self.kms.decrypt(
                CiphertextBlob=item["ciphertext"]["B"],
                EncryptionContext={"project": project, "deid_sop_instance_uid": deid_sop},
            )["Plaintext"]
            identifiers = json.loads(plaintext)
        except (self.kms.exceptions.ClientError, KeyError, ValueError) as exc:
            return (
                None,
                f"the linkage record does not decrypt under its context ({type(exc).__name__})",
            )
        return str(identifiers.get("sop_instance_uid") or ""), ""

    def locate(self, project: str, sop: str, copied_events: int) -> tuple[str | None, str]:
        """The derived key of ``sop``'s copy for ``project``: by its linkage record, or (without
        linkage) the project's only copy when only one was made."""
        keys = self.copies[project]
        if self.config.linkage:
            for key in keys:
                deid_sop = key.rsplit("/", 1)[-1].removesuffix(".dcm")
                if self.linked_original(project, deid_sop)[0] == sop:
                    return key, ""
            return None, f"no copy under derived/{project}/ whose linkage record names it"
        if len(keys) == 1 and copied_events == 1:
            return keys[0], ""
        return None, f"{len(keys)} copies under derived/{project}/: without linkage none pairs"

    def check_copy(
        self, project: ResearchProject, sop: str, original: pydicom.Dataset, key: str
    ) -> ResearchCheck:
        raw = self.s3.get_object(Bucket=self.derived, Key=key)["Body"].read()
        copy = _dataset(raw)
        options = frozenset(Option(o) for o in project.options)
        problems = []
        uids = [str(copy.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID")]
        uids.append(str(copy.get("SOPInstanceUID", "")))
        if key != derived_key(project.name, *uids):
            problems.append("its key is not derived/<project>/ of its own UIDs")
        if Option.RETAIN_UIDS not in options and not all(u.startswith("2.25.") for u in uids):
            problems.append("its UIDs are not keyed 2.25. UIDs")
        findings = verify(original, copy, options=options, safe_private=project.safe_private)
        if findings:
            problems.append("verify: " + ", ".join(sorted({f"{f.code} {f.tag}" for f in findings})))
        leaked = [
            keyword
            for keyword in IDENTIFYING
            if _KEPT_BY.get(keyword) not in options
            and any(v.encode() in raw for v in _values(original, keyword))
        ]
        if leaked:
            problems.append("original values in the copy's bytes: " + ", ".join(leaked))
        linkage = ""
        if self.config.linkage:
            named, why = self.linked_original(project.name, uids[2])
            if named != sop:
                problems.append(why or "the linkage record names another instance")
            linkage = "; linkage record decrypts to the original"
        detail = "; ".join(problems) or (
            f"verify: no findings; none of {len(IDENTIFYING)} identifiers in its bytes{linkage}"
        )
        return ResearchCheck(sop, "copied", project.name, key, not problems, detail)


def _values(ds: pydicom.Dataset, keyword: str) -> list[str]:
    element = ds.get(keyword)
    if element is None or element == "":
        return []
    items = element if isinstance(element, MultiValue | list | tuple) else [element]
    return [str(v).strip() for v in items if str(v).strip()]


def verify_research_copies(
    state: SandboxState, outcomes: Iterable[FileOutcome], invocations: Iterable[Invocation]
) -> list[ResearchCheck]:
    """Check every archived instance's research outcome independently of the research function.

    Which projects an instance goes to is decided from the stack's config (the projects' rules on
    the archived original); the function's audit events must report it (``research-copied`` with
    the project's options, or ``research-not-routed``), and each copy, found in the derived bucket
    by its linkage record, must pass :func:`lambdas.deid.verify.verify` against the original, hold
    none of the original's identifying values in its bytes, and (with linkage) have a record that
    decrypts, under its encryption context, to the original SOP Instance UID. A held instance
    fails: where a copy was expected there is none. Empty when the stack has no research project.
    """
    config = research_config(state)
    if not config.projects:
        return []
    research = _Research(state, config)
    events = _research_events(state, invocations)
    checks = []
    for outcome in outcomes:
        if not (outcome.archive_key and outcome.sop_instance_uid):
            continue
        sop = outcome.sop_instance_uid
        body = research.s3.get_object(Bucket=research.archive, Key=outcome.archive_key)["Body"]
        original = _dataset(body.read())
        expected = [p for p in config.projects if Route.of(p).matches(original)]
        mine = events.get(sop, [])
        if not expected:
            routed = [e for e in mine if e.get("message") != "research-not-routed"]
            reported = any(e.get("message") == "research-not-routed" for e in mine)
            passed = reported and not routed
            detail = "matches no project's rule" + (
                "" if passed else "; the function did not report research-not-routed alone"
            )
            checks.append(ResearchCheck(sop, "not-routed", passed=passed, detail=detail))
            continue
        for project in expected:
            checks.append(_project_check(research, project, sop, original, mine))
    return checks


def _project_check(
    research: _Research,
    project: ResearchProject,
    sop: str,
    original: pydicom.Dataset,
    events: list[dict[str, Any]],
) -> ResearchCheck:
    mine = [e for e in events if e.get("project") == project.name]
    held = [e for e in mine if e.get("message") == "research-held"]
    if held:
        reason = held[0].get("reason")
        return ResearchCheck(sop, "held", project.name, detail=f"held ({reason}): no copy")
    copied = [e for e in mine if e.get("message") == "research-copied"]
    if not copied:
        return ResearchCheck(sop, "missing", project.name, detail="no research-copied event")
    if list(copied[0].get("options") or []) != list(project.options):
        return ResearchCheck(
            sop, "copied", project.name, detail="the event's options are not the project's"
        )
    key, why = research.locate(project.name, sop, len(copied))
    if key is None:
        return ResearchCheck(sop, "missing", project.name, detail=why)
    return research.check_copy(project, sop, original, key)
