"""Operating a sandbox that is up: land files as the gateway does, run the pipeline, read results.

Files reach the inbox exactly as the edge gateway lands them (:class:`gateway.inbox.InboxWriter`:
random key, SSE-KMS, SHA-256 checksum) under the credentials of the gateway's own task role. The
Lambda service emulation then drains the ingest queue under the ingest function's role, and each
file's outcome is read from the function's audit events (the lines its invocations wrote, which
the emulation also puts in the function's CloudWatch log group), matched on the inbox key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from gateway.inbox import InboxWriter, Sender
from lambdas.manifest import SIDECAR_SUFFIX, ManifestError, parse_sidecar
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
