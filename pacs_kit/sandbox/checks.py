"""Live checks of a deployed sandbox: what an auditor reads back from the emulator.

Each check reads one property of one resource through the sandbox administrator's clients and
compares it with what the stack demands (its config and exports in the state), never with the
inputs Pulumi passed: the point is what actually got created. Resources are found by type in the
state, so the checks follow the stack rather than a list of names.

A check passes (``True``), fails (``False``), or cannot be read back (``None``): the resource was
not emulated, or the emulator does not implement the API or the field. ``None`` is never a pass.
Check ids are ``<practice>/<property>``, the practice being one of :mod:`policies.controls`, and
titles cite the HIPAA safeguard the property implements.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from infra.config import DEFAULT_EDGE_TLS_POLICY, DEFAULTS, PROJECT
from pacs_kit.sandbox.emulate import Clients
from pacs_kit.sandbox.state import ResourceState, SandboxState
from policies.controls import (
    ACCESS_CONTROL,
    AUDIT_CONTROLS,
    AUDIT_TO_SIEM,
    BACKUP_AND_DR,
    DATA_BACKUP_PLAN,
    DISASTER_RECOVERY,
    DOCUMENTATION_RETENTION,
    ENCRYPT_WITH_CUSTOMER_KEYS,
    ENCRYPTION_AT_REST,
    IMMUTABLE_ARCHIVE,
    INTEGRITY,
    INTEGRITY_MECHANISM,
    LEAST_PRIVILEGE,
    MUTUAL_TLS_ONLY,
    PRIVATE_NETWORK,
    SECURE_COMPUTE,
    TRANSMISSION_ENCRYPTION,
    TRANSMISSION_SECURITY,
    Practice,
    Safeguard,
)

# Pulumi type tokens of the resources the checks read.
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
BUCKET_PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_OBJECT_LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
BUCKET_REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
KMS_KEY = "aws:kms/key:Key"
TRAIL = "aws:cloudtrail/trail:Trail"
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
QUEUE = "aws:sqs/queue:Queue"
TABLE = "aws:dynamodb/table:Table"
VAULT = "aws:backup/vault:Vault"
VAULT_LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
FUNCTION = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
LISTENER = "aws:lb/listener:Listener"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"

# Buckets the stack deliberately leaves on SSE-S3 (infra/components/bucket.py, edge.py), and why.
SSE_S3_PURPOSES: Mapping[str, str] = {
    "access-logs": "S3 access logs and ELB logs are delivered only to SSE-S3 buckets",
    "edge-trust": "ELB reads the trust store with the deployer's credentials",
}
# Key purposes (infra/components/keys.py) that are not symmetric encryption keys.
KEY_SPECS: Mapping[str, tuple[str, str]] = {
    "signing": ("ECC_NIST_P256", "SIGN_VERIFY"),
    "pseudonym": ("HMAC_256", "GENERATE_VERIFY_MAC"),
}
SYMMETRIC = ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")


@dataclass(frozen=True)
class Check:
    """One property of one resource as read back from the emulator."""

    id: str
    title: str
    resource: str  # the name or ARN checked
    passed: bool | None  # None: cannot be read back in the emulator (detail says why)
    detail: str  # what was read back, or why nothing could be

    @property
    def verdict(self) -> str:
        """PASS, FAIL or N/A."""
        if self.passed is None:
            return "N/A"
        return "PASS" if self.passed else "FAIL"


@dataclass(frozen=True)
class _Spec:
    """What a check id stands for: the property, the kit's practice and the HIPAA safeguard."""

    aspect: str
    title: str
    practice: Practice
    safeguard: Safeguard

    @property
    def id(self) -> str:
        return f"{self.practice.id}/{self.aspect}"

    @property
    def full_title(self) -> str:
        return f"{self.title} ({self.safeguard.citation})"


def _spec(aspect: str, title: str, practice: Practice, safeguard: Safeguard) -> _Spec:
    return _Spec(aspect, title, practice, safeguard)


OBJECT_LOCK = _spec(
    "object-lock", "Object Lock default retention as demanded", IMMUTABLE_ARCHIVE, INTEGRITY
)
BUCKET_SSE = _spec(
    "bucket-encryption",
    "Default encryption with a key of the stack",
    ENCRYPT_WITH_CUSTOMER_KEYS,
    ENCRYPTION_AT_REST,
)
PUBLIC_ACCESS = _spec(
    "bucket-public-access-block",
    "All four Block Public Access settings on",
    PRIVATE_NETWORK,
    ACCESS_CONTROL,
)
VERSIONING = _spec("bucket-versioning", "Versioning enabled", IMMUTABLE_ARCHIVE, INTEGRITY)
OWNERSHIP = _spec(
    "bucket-owner-enforced",
    "Object ownership BucketOwnerEnforced (no ACLs)",
    LEAST_PRIVILEGE,
    ACCESS_CONTROL,
)
TLS_ONLY = _spec(
    "bucket-tls-only",
    "Bucket policy denies requests without TLS (aws:SecureTransport false)",
    MUTUAL_TLS_ONLY,
    TRANSMISSION_SECURITY,
)
REPLICATION = _spec(
    "archive-replication",
    "Archive replicates to the DR replica",
    BACKUP_AND_DR,
    DISASTER_RECOVERY,
)
KEY_ENABLED = _spec(
    "kms-key-enabled", "KMS key enabled", ENCRYPT_WITH_CUSTOMER_KEYS, ENCRYPTION_AT_REST
)
KEY_ROTATION = _spec(
    "kms-key-rotation",
    "Symmetric KMS key rotates",
    ENCRYPT_WITH_CUSTOMER_KEYS,
    ENCRYPTION_AT_REST,
)
KEY_SPEC = _spec(
    "kms-key-spec",
    "KMS key spec and usage of its purpose",
    ENCRYPT_WITH_CUSTOMER_KEYS,
    INTEGRITY_MECHANISM,
)
TRAIL_LOGGING = _spec("trail-logging", "CloudTrail is logging", AUDIT_TO_SIEM, AUDIT_CONTROLS)
TRAIL_MULTI_REGION = _spec(
    "trail-multi-region", "CloudTrail trail covers all regions", AUDIT_TO_SIEM, AUDIT_CONTROLS
)
TRAIL_VALIDATION = _spec(
    "trail-log-file-validation",
    "CloudTrail log file validation",
    AUDIT_TO_SIEM,
    INTEGRITY_MECHANISM,
)
TRAIL_KMS = _spec(
    "trail-encryption",
    "CloudTrail files encrypted with a key of the stack",
    AUDIT_TO_SIEM,
    ENCRYPTION_AT_REST,
)
TRAIL_DATA_EVENTS = _spec(
    "trail-data-events",
    "CloudTrail records object data events of every PHI bucket",
    AUDIT_TO_SIEM,
    AUDIT_CONTROLS,
)
FLOW_LOGS = _spec("vpc-flow-logs", "VPC flow logs of ALL traffic", PRIVATE_NETWORK, AUDIT_CONTROLS)
NO_IGW = _spec(
    "vpc-no-internet-gateway", "No internet gateway attached", PRIVATE_NETWORK, ACCESS_CONTROL
)
NO_NAT = _spec("vpc-no-nat-gateway", "No NAT gateway", PRIVATE_NETWORK, ACCESS_CONTROL)
LOG_GROUP_KMS = _spec(
    "log-group-encryption",
    "Log group encrypted with a key of the stack",
    AUDIT_TO_SIEM,
    ENCRYPTION_AT_REST,
)
LOG_GROUP_RETENTION = _spec(
    "log-group-retention",
    "Log group retention is logRetentionDays",
    AUDIT_TO_SIEM,
    DOCUMENTATION_RETENTION,
)
QUEUE_KMS = _spec(
    "queue-encryption",
    "SQS queue encrypted with a key of the stack",
    ENCRYPT_WITH_CUSTOMER_KEYS,
    ENCRYPTION_AT_REST,
)
QUEUE_REDRIVE = _spec(
    "ingest-redrive",
    "Ingest queue redrives to its dead-letter queue",
    SECURE_COMPUTE,
    INTEGRITY,
)
TABLE_KMS = _spec(
    "table-encryption",
    "DynamoDB table encrypted with a key of the stack",
    ENCRYPT_WITH_CUSTOMER_KEYS,
    ENCRYPTION_AT_REST,
)
TABLE_PITR = _spec(
    "table-point-in-time-recovery",
    "DynamoDB point-in-time recovery",
    BACKUP_AND_DR,
    DATA_BACKUP_PLAN,
)
TABLE_PROTECTION = _spec(
    "table-deletion-protection",
    "DynamoDB deletion protection",
    BACKUP_AND_DR,
    DATA_BACKUP_PLAN,
)
VAULT_LOCKED = _spec(
    "backup-vault-lock",
    "Backup vault locked with the minimum retention",
    BACKUP_AND_DR,
    DATA_BACKUP_PLAN,
)
VAULT_KMS = _spec(
    "backup-vault-encryption",
    "Backup vault encrypted with a key of the stack",
    ENCRYPT_WITH_CUSTOMER_KEYS,
    ENCRYPTION_AT_REST,
)
FUNCTION_VPC = _spec(
    "function-in-vpc", "Function runs in the stack's VPC", SECURE_COMPUTE, ACCESS_CONTROL
)
FUNCTION_KMS = _spec(
    "function-environment-encryption",
    "Function environment encrypted with a key of the stack",
    SECURE_COMPUTE,
    ENCRYPTION_AT_REST,
)
ROLE_BOUNDARY = _spec(
    "role-permissions-boundary",
    "Role carries the stack's permissions boundary",
    LEAST_PRIVILEGE,
    ACCESS_CONTROL,
)
LISTENER_TLS = _spec(
    "listener-tls-policy",
    "HTTPS listener negotiates the configured TLS 1.3 policy",
    MUTUAL_TLS_ONLY,
    TRANSMISSION_ENCRYPTION,
)
STREAM_KMS = _spec(
    "firehose-encryption",
    "Firehose stream encrypted with a key of the stack",
    AUDIT_TO_SIEM,
    ENCRYPTION_AT_REST,
)
STREAM_BACKUP = _spec(
    "firehose-s3-backup",
    "Firehose keeps undelivered records in an encrypted S3 backup",
    AUDIT_TO_SIEM,
    AUDIT_CONTROLS,
)

SPECS: tuple[_Spec, ...] = (
    OBJECT_LOCK,
    BUCKET_SSE,
    PUBLIC_ACCESS,
    VERSIONING,
    OWNERSHIP,
    TLS_ONLY,
    REPLICATION,
    KEY_ENABLED,
    KEY_ROTATION,
    KEY_SPEC,
    TRAIL_LOGGING,
    TRAIL_MULTI_REGION,
    TRAIL_VALIDATION,
    TRAIL_KMS,
    TRAIL_DATA_EVENTS,
    FLOW_LOGS,
    NO_IGW,
    NO_NAT,
    LOG_GROUP_KMS,
    LOG_GROUP_RETENTION,
    QUEUE_KMS,
    QUEUE_REDRIVE,
    TABLE_KMS,
    TABLE_PITR,
    TABLE_PROTECTION,
    VAULT_LOCKED,
    VAULT_KMS,
    FUNCTION_VPC,
    FUNCTION_KMS,
    ROLE_BOUNDARY,
    LISTENER_TLS,
    STREAM_KMS,
    STREAM_BACKUP,
)
"""Every check the sandbox runs, in report order."""

Outcome = tuple[bool | None, str]

# Error codes of a resource or configuration that does not exist: a FAIL, not an unreadable one.
_ABSENT_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "TableNotFoundException",
        "TrailNotFoundException",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "ListenerNotFound",
        "NotFoundException",
    }
)


class Unreadable(Exception):
    """The emulator cannot return the property: the check is N/A, with this reason."""


def _absent(code: str) -> bool:
    return code in _ABSENT_CODES or code.startswith("NoSuch") or code.endswith("NotFoundError")


def _judge(spec: _Spec, resource: str, read: Callable[[], Outcome]) -> Check:
    """Run one read-back; the emulator's refusals become FAIL (absent) or N/A (cannot answer)."""
    passed: bool | None
    try:
        passed, detail = read()
    except Unreadable as exc:
        passed, detail = None, str(exc)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "?"))
        message = str(error.get("Message", "")).strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        operation = exc.operation_name
        if _absent(code):
            passed, detail = False, f"{operation}: {code} (absent from the emulator)"
        elif status >= 500 or code in ("NotImplemented", "InternalError", "InternalFailure"):
            passed, detail = None, f"the emulator cannot answer {operation} ({code})"
        else:
            passed, detail = None, f"{operation} refused: {code} {message}".strip()
    except BotoCoreError as exc:
        passed, detail = None, f"cannot read back: {exc}"
    except NotImplementedError as exc:
        passed, detail = None, f"the emulator does not implement this: {exc}"
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        # An answer without the fields AWS documents: unreadable, and never a pass.
        passed, detail = None, f"unexpected answer from the emulator: {type(exc).__name__} {exc}"
    return Check(spec.id, spec.full_title, resource, passed, detail)


# ---------------------------------------------------------------------------------------- context


def _id_of_key(ref: str) -> str:
    """``key/<id>`` of a key ARN, or the reference itself (a bare key id)."""
    return ref.rsplit(":key/", 1)[-1] if ":key/" in ref else ref


class _Stack:
    """The state and the emulator's clients, with what the checks derive from them."""

    def __init__(self, state: SandboxState, clients: Clients) -> None:
        self.state = state
        self.clients = clients
        self.key_ids: set[str] = set()
        self.key_purposes: dict[str, str] = {}
        for purpose, arn in dict(state.outputs.get("keyArns") or {}).items():
            self.key_ids.add(_id_of_key(str(arn)))
            self.key_purposes[_id_of_key(str(arn))] = str(purpose)
        for key in state.of_type(KMS_KEY):
            for ref in (key.id, key.outputs.get("arn"), key.outputs.get("keyId")):
                if ref:
                    self.key_ids.add(_id_of_key(str(ref)))
            purpose = (key.outputs.get("tags") or {}).get("purpose")
            if purpose:
                self.key_purposes.setdefault(_id_of_key(key.id), str(purpose))
        self._aliases: dict[tuple[str, str], str] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        return self.clients.client(service, region or self.state.region)

    def config(self, key: str) -> Any:
        """The stack's config value (project namespace), or the kit's default."""
        value = self.state.config.get(f"{PROJECT}:{key}")
        return DEFAULTS.get(key) if value is None else value

    def config_int(self, key: str) -> int:
        return int(str(self.config(key)).strip())

    def region_of(self, resource: ResourceState) -> str:
        """The resource's region: its ``region`` output, else its ARN's, else the stack's."""
        region = resource.outputs.get("region")
        if isinstance(region, str) and region:
            return region
        arn = resource.outputs.get("arn")
        if isinstance(arn, str) and arn.startswith("arn:"):
            parts = arn.split(":")
            if len(parts) > 3 and parts[3]:
                return parts[3]
        return self.state.region

    def owns_key(self, ref: object, region: str) -> bool:
        """Whether ``ref`` (key id, key ARN, alias or alias ARN) names a key of the stack."""
        if not isinstance(ref, str) or not ref:
            return False
        if "alias/" in ref:
            cached = self._aliases.get((ref, region))
            if cached is None:
                arn_region = ref.split(":")[3] if ref.startswith("arn:") else region
                metadata = self.client("kms", arn_region).describe_key(KeyId=ref)["KeyMetadata"]
                cached = self._aliases[(ref, region)] = str(metadata["KeyId"])
            return cached in self.key_ids
        return _id_of_key(ref) in self.key_ids

    def key_label(self, ref: object) -> str:
        """A key reference as the report shows it: ``<purpose> key`` or the id."""
        if not isinstance(ref, str) or not ref:
            return "no key"
        key_id = _id_of_key(ref)
        purpose = self.key_purposes.get(key_id)
        return f"{purpose} key {key_id}" if purpose else ref


def _not_emulated(resource: ResourceState) -> str | None:
    """Why a resource of the state cannot be read back, or None if it was created."""
    if resource.status == "created":
        return None
    reason = "; ".join(resource.notes) or resource.status
    return f"{resource.name} not emulated: {reason}"


def _require(resource: ResourceState) -> None:
    reason = _not_emulated(resource)
    if reason is not None:
        raise Unreadable(reason)


def _require_declared(stack: _Stack, type_token: str, bucket: str) -> None:
    """N/A if the stack's sub-resource configuring ``bucket`` was not emulated."""
    for resource in stack.state.of_type(type_token):
        if bucket in (resource.outputs.get("bucket"), resource.id):
            _require(resource)


def _gated(reason: str | None, read: Callable[[], Outcome]) -> Outcome:
    """``read()`` unless the resource was not emulated (then N/A with ``reason``)."""
    if reason is not None:
        raise Unreadable(reason)
    return read()


def _name(resource: ResourceState, *keys: str) -> str:
    for key in keys:
        value = resource.outputs.get(key)
        if isinstance(value, str) and value:
            return value
    return resource.id


# ----------------------------------------------------------------------------------------- S3


def _bucket_name(resource: ResourceState) -> str:
    return _name(resource, "bucket")


def _lock_demands(stack: _Stack) -> dict[str, tuple[str, int]]:
    """Bucket -> (mode, minimum days) of the Object Lock default retention the stack demands."""
    outputs = stack.state.outputs
    buckets = dict(outputs.get("buckets") or {})
    archive = (str(stack.config("archiveRetentionMode")), stack.config_int("archiveRetentionDays"))
    demands: dict[str, tuple[str, int]] = {}
    if buckets.get("archive"):
        demands[str(buckets["archive"])] = archive
    if outputs.get("replicaBucket"):
        demands[str(outputs["replicaBucket"])] = archive
    if buckets.get("quarantine"):
        demands[str(buckets["quarantine"])] = (
            "GOVERNANCE",
            stack.config_int("quarantineRetentionDays"),
        )
    trail_bucket = (outputs.get("audit") or {}).get("trailBucket")
    if trail_bucket:
        # The trail is evidence (infra/components/audit.py): COMPLIANCE for the log retention.
        demands[str(trail_bucket)] = ("COMPLIANCE", stack.config_int("logRetentionDays"))
    return demands


def _object_lock(stack: _Stack, bucket: str, region: str, mode: str, days: int) -> Outcome:
    _require_declared(stack, BUCKET_OBJECT_LOCK, bucket)
    s3 = stack.client("s3", region)
    config = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    if config.get("ObjectLockEnabled") != "Enabled":
        return False, f"Object Lock {config.get('ObjectLockEnabled') or 'not enabled'}"
    retention = (config.get("Rule") or {}).get("DefaultRetention") or {}
    got_mode = retention.get("Mode")
    got_days = int(retention.get("Days") or 0) or 365 * int(retention.get("Years") or 0)
    detail = f"{got_mode or 'no default retention'} {got_days} days (demanded {mode} >= {days})"
    return got_mode == mode and got_days >= days, detail


def _encryption(stack: _Stack, bucket: str, region: str, purpose: str) -> Outcome:
    _require_declared(stack, BUCKET_ENCRYPTION, bucket)
    s3 = stack.client("s3", region)
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    if not rules:
        return False, "no default encryption rule"
    rule = rules[0]
    default = rule.get("ApplyServerSideEncryptionByDefault") or {}
    algorithm = default.get("SSEAlgorithm")
    key = default.get("KMSMasterKeyID")
    bucket_key = bool(rule.get("BucketKeyEnabled"))
    if purpose in SSE_S3_PURPOSES:
        return algorithm == "AES256", f"{algorithm} ({purpose}: {SSE_S3_PURPOSES[purpose]})"
    owned = algorithm == "aws:kms" and stack.owns_key(key, region)
    detail = f"{algorithm} with {stack.key_label(key)}, BucketKeyEnabled {bucket_key}"
    if algorithm == "aws:kms" and not owned:
        detail += " (not a key of the stack)"
    return owned and bucket_key, detail


def _public_access(stack: _Stack, bucket: str, region: str) -> Outcome:
    _require_declared(stack, BUCKET_PUBLIC_ACCESS, bucket)
    s3 = stack.client("s3", region)
    flags = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    names = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    off = [n for n in names if flags.get(n) is not True]
    return not off, "all four on" if not off else f"off: {', '.join(off)}"


def _versioning(stack: _Stack, bucket: str, region: str) -> Outcome:
    _require_declared(stack, BUCKET_VERSIONING, bucket)
    status = stack.client("s3", region).get_bucket_versioning(Bucket=bucket).get("Status")
    return status == "Enabled", f"versioning {status or 'never enabled'}"


def _ownership(stack: _Stack, bucket: str, region: str) -> Outcome:
    _require_declared(stack, BUCKET_OWNERSHIP, bucket)
    controls = stack.client("s3", region).get_bucket_ownership_controls(Bucket=bucket)
    rules = controls["OwnershipControls"]["Rules"]
    got = [r.get("ObjectOwnership") for r in rules]
    return got == ["BucketOwnerEnforced"], f"ObjectOwnership {', '.join(map(str, got))}"


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    if statement.get("Effect") != "Deny":
        return False
    condition = statement.get("Condition") or {}
    for operator, values in condition.items():
        if not str(operator).startswith("Bool"):
            continue
        value = (values or {}).get("aws:SecureTransport")
        candidates = value if isinstance(value, list) else [value]
        if any(str(v).lower() == "false" for v in candidates):
            return True
    return False


def _tls_only(stack: _Stack, bucket: str, region: str) -> Outcome:
    _require_declared(stack, BUCKET_POLICY, bucket)
    policy = json.loads(stack.client("s3", region).get_bucket_policy(Bucket=bucket)["Policy"])
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    denying = [s.get("Sid", "(no Sid)") for s in statements if _denies_insecure_transport(s)]
    if not denying:
        return False, f"{len(statements)} statements, none denies aws:SecureTransport false"
    return True, f"denied by {', '.join(map(str, denying))}"


def _replication(stack: _Stack, source: str, replica: str, region: str) -> Outcome:
    _require_declared(stack, BUCKET_REPLICATION, source)
    config = stack.client("s3", region).get_bucket_replication(Bucket=source)
    rules = config["ReplicationConfiguration"].get("Rules") or []
    to_replica = [
        r
        for r in rules
        if r.get("Status") == "Enabled"
        and str((r.get("Destination") or {}).get("Bucket", "")).endswith(f":::{replica}")
    ]
    if not to_replica:
        return False, f"{len(rules)} rules, none enabled to {replica}"
    rule = to_replica[0]
    rtc = (rule.get("Destination") or {}).get("ReplicationTime") or {}
    # The archive is SSE-KMS: S3 replicates such objects only when the rule selects them.
    selection = (rule.get("SourceSelectionCriteria") or {}).get("SseKmsEncryptedObjects") or {}
    if not selection:
        for resource in stack.state.of_type(BUCKET_REPLICATION):
            if any("SourceSelectionCriteria" in note for note in resource.notes):
                raise Unreadable(
                    f"enabled to {replica}, but whether SSE-KMS objects are selected cannot be "
                    "read back: moto drops SourceSelectionCriteria"
                )
    if selection.get("Status") != "Enabled":
        return False, f"enabled to {replica}, but SSE-KMS encrypted objects are not selected"
    return True, (
        f"enabled to {replica} for SSE-KMS objects, Replication Time Control "
        f"{rtc.get('Status', 'not shown')}"
    )


def _bucket_checks(stack: _Stack) -> Iterator[Check]:
    demands = _lock_demands(stack)
    for resource in stack.state.of_type(BUCKET):
        bucket = _bucket_name(resource)
        region = stack.region_of(resource)
        purpose = str((resource.outputs.get("tags") or {}).get("purpose") or "")
        reason = _not_emulated(resource)
        if bucket in demands:
            mode, days = demands[bucket]
            lock = partial(_object_lock, stack, bucket, region, mode, days)
            yield _judge(OBJECT_LOCK, bucket, partial(_gated, reason, lock))
        reads: tuple[tuple[_Spec, Callable[[], Outcome]], ...] = (
            (BUCKET_SSE, partial(_encryption, stack, bucket, region, purpose)),
            (PUBLIC_ACCESS, partial(_public_access, stack, bucket, region)),
            (VERSIONING, partial(_versioning, stack, bucket, region)),
            (OWNERSHIP, partial(_ownership, stack, bucket, region)),
            (TLS_ONLY, partial(_tls_only, stack, bucket, region)),
        )
        for spec, bucket_read in reads:
            yield _judge(spec, bucket, partial(_gated, reason, bucket_read))
    archive = (stack.state.outputs.get("buckets") or {}).get("archive")
    replica = stack.state.outputs.get("replicaBucket")
    sources = [r for r in stack.state.of_type(BUCKET) if _bucket_name(r) == archive]
    if archive and replica and sources:
        region = stack.region_of(sources[0])
        replication = partial(_replication, stack, str(archive), str(replica), region)
        yield _judge(
            REPLICATION, str(archive), partial(_gated, _not_emulated(sources[0]), replication)
        )


# ---------------------------------------------------------------------------------------- KMS


def _key_metadata(stack: _Stack, resource: ResourceState) -> dict[str, Any]:
    _require(resource)
    kms = stack.client("kms", stack.region_of(resource))
    return dict(kms.describe_key(KeyId=_name(resource, "arn"))["KeyMetadata"])


def _key_enabled(stack: _Stack, resource: ResourceState) -> Outcome:
    metadata = _key_metadata(stack, resource)
    state = metadata.get("KeyState")
    return state == "Enabled", f"KeyState {state}"


def _key_spec(stack: _Stack, resource: ResourceState, purpose: str) -> Outcome:
    metadata = _key_metadata(stack, resource)
    spec, usage = KEY_SPECS.get(purpose, SYMMETRIC)
    got_spec = metadata.get("KeySpec") or metadata.get("CustomerMasterKeySpec")
    got_usage = metadata.get("KeyUsage")
    detail = f"{got_spec} {got_usage} ({purpose or 'unnamed'} key: {spec} {usage})"
    if got_spec != spec:
        return False, detail
    if got_usage is None:
        raise Unreadable(f"{got_spec}; the emulator returns no KeyUsage for this key")
    return got_usage == usage, detail


def _key_rotation(stack: _Stack, resource: ResourceState) -> Outcome:
    metadata = _key_metadata(stack, resource)
    if metadata.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
        raise Unreadable(f"{metadata.get('KeySpec')} keys cannot rotate in AWS")
    status = stack.client("kms", stack.region_of(resource)).get_key_rotation_status(
        KeyId=metadata["KeyId"]
    )
    enabled = status.get("KeyRotationEnabled") is True
    period = status.get("RotationPeriodInDays")
    return enabled, f"rotation {'enabled' if enabled else 'disabled'}" + (
        f" every {period} days" if period else ""
    )


def _key_checks(stack: _Stack) -> Iterator[Check]:
    for resource in stack.state.of_type(KMS_KEY):
        label = _name(resource, "arn")
        purpose = stack.key_purposes.get(_id_of_key(resource.id), "")
        yield _judge(KEY_ENABLED, label, partial(_key_enabled, stack, resource))
        yield _judge(KEY_SPEC, label, partial(_key_spec, stack, resource, purpose))
        if KEY_SPECS.get(purpose, SYMMETRIC) == SYMMETRIC:
            yield _judge(KEY_ROTATION, label, partial(_key_rotation, stack, resource))


# --------------------------------------------------------------------------------- CloudTrail


def _trail(stack: _Stack, resource: ResourceState) -> dict[str, Any]:
    _require(resource)
    client = stack.client("cloudtrail", stack.region_of(resource))
    return dict(client.get_trail(Name=_name(resource, "arn", "name"))["Trail"])


def _trail_logging(stack: _Stack, resource: ResourceState) -> Outcome:
    trail = _trail(stack, resource)
    client = stack.client("cloudtrail", stack.region_of(resource))
    status = client.get_trail_status(Name=trail["TrailARN"])
    logging = status.get("IsLogging") is True
    return logging, "IsLogging true" if logging else "IsLogging false (logging stopped)"


def _trail_flag(stack: _Stack, resource: ResourceState, flag: str) -> Outcome:
    trail = _trail(stack, resource)
    if flag not in trail:
        raise Unreadable(f"the emulator's GetTrail returns no {flag}")
    return trail[flag] is True, f"{flag} {str(trail[flag]).lower()}"


def _trail_kms(stack: _Stack, resource: ResourceState) -> Outcome:
    trail = _trail(stack, resource)
    key = trail.get("KmsKeyId")
    owned = stack.owns_key(key, stack.region_of(resource))
    return owned, f"KmsKeyId {stack.key_label(key)}" + ("" if owned or not key else " (foreign)")


def _selected_prefixes(selectors: Mapping[str, Any]) -> tuple[bool, set[str]]:
    """(all S3 objects selected, ARN prefixes selected) by a trail's data event selectors."""
    everything = False
    prefixes: set[str] = set()
    for advanced in selectors.get("AdvancedEventSelectors") or []:
        fields = {f.get("Field"): f for f in advanced.get("FieldSelectors") or []}
        category = (fields.get("eventCategory") or {}).get("Equals") or []
        types = (fields.get("resources.type") or {}).get("Equals") or []
        if "Data" not in category or "AWS::S3::Object" not in types:
            continue
        arn_field = fields.get("resources.ARN")
        if arn_field is None:
            everything = True
        else:
            prefixes.update(arn_field.get("StartsWith") or [])
            prefixes.update(arn_field.get("Equals") or [])
    for basic in selectors.get("EventSelectors") or []:
        if basic.get("ReadWriteType", "All") != "All":
            continue
        for data in basic.get("DataResources") or []:
            if data.get("Type") != "AWS::S3::Object":
                continue
            for value in data.get("Values") or []:
                if value in ("arn:aws:s3", "arn:aws:s3:::"):
                    everything = True
                prefixes.add(str(value))
    return everything, prefixes


def _trail_data_events(stack: _Stack, resource: ResourceState, buckets: list[str]) -> Outcome:
    trail = _trail(stack, resource)
    client = stack.client("cloudtrail", stack.region_of(resource))
    selectors = client.get_event_selectors(TrailName=trail["TrailARN"])
    everything, prefixes = _selected_prefixes(selectors)
    if everything:
        return True, "every S3 object selected"
    missing = [b for b in buckets if not any(p.startswith(f"arn:aws:s3:::{b}") for p in prefixes)]
    missing = [
        b
        for b in missing
        if not any(f"arn:aws:s3:::{b}/".startswith(p) for p in prefixes if p.endswith("/"))
    ]
    if missing:
        return False, f"no data events for {', '.join(missing)}"
    return True, f"object data events of {len(buckets)} buckets ({', '.join(buckets)})"


def _trail_checks(stack: _Stack) -> Iterator[Check]:
    outputs = stack.state.outputs
    data_buckets = [
        str(name)
        for purpose, name in (outputs.get("buckets") or {}).items()
        if purpose != "access-logs" and name
    ]
    if outputs.get("replicaBucket"):
        data_buckets.append(str(outputs["replicaBucket"]))
    for resource in stack.state.of_type(TRAIL):
        label = _name(resource, "arn", "name")
        yield _judge(TRAIL_LOGGING, label, partial(_trail_logging, stack, resource))
        yield _judge(
            TRAIL_MULTI_REGION, label, partial(_trail_flag, stack, resource, "IsMultiRegionTrail")
        )
        yield _judge(
            TRAIL_VALIDATION,
            label,
            partial(_trail_flag, stack, resource, "LogFileValidationEnabled"),
        )
        yield _judge(TRAIL_KMS, label, partial(_trail_kms, stack, resource))
        yield _judge(
            TRAIL_DATA_EVENTS, label, partial(_trail_data_events, stack, resource, data_buckets)
        )


# ---------------------------------------------------------------------------------------- VPC


def _flow_logs(stack: _Stack, resource: ResourceState) -> Outcome:
    _require(resource)
    for flow_log in stack.state.of_type(FLOW_LOG):
        if flow_log.outputs.get("vpcId") == resource.id:
            _require(flow_log)
    ec2 = stack.client("ec2", stack.region_of(resource))
    logs = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [resource.id]}])
    found = [f for f in logs.get("FlowLogs") or [] if f.get("ResourceId") == resource.id]
    all_traffic = [
        f for f in found if f.get("TrafficType") == "ALL" and f.get("FlowLogStatus") == "ACTIVE"
    ]
    if not all_traffic:
        kinds = ", ".join(str(f.get("TrafficType")) for f in found) or "none"
        return False, f"no active flow log of ALL traffic (found: {kinds})"
    where = all_traffic[0].get("LogGroupName") or all_traffic[0].get("LogDestination")
    return True, f"ALL traffic to {where}"


def _no_internet_gateway(stack: _Stack, resource: ResourceState) -> Outcome:
    _require(resource)
    ec2 = stack.client("ec2", stack.region_of(resource))
    gateways = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [resource.id]}]
    )["InternetGateways"]
    attached = [
        g["InternetGatewayId"]
        for g in gateways
        if any(a.get("VpcId") == resource.id for a in g.get("Attachments") or [])
    ]
    return not attached, f"attached: {', '.join(attached)}" if attached else "none attached"


def _no_nat_gateway(stack: _Stack, resource: ResourceState) -> Outcome:
    _require(resource)
    ec2 = stack.client("ec2", stack.region_of(resource))
    gateways = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [resource.id]}])
    live = [
        g["NatGatewayId"]
        for g in gateways.get("NatGateways") or []
        if g.get("VpcId") == resource.id and g.get("State") not in ("deleted", "deleting")
    ]
    return not live, f"NAT gateways: {', '.join(live)}" if live else "none"


def _vpc_checks(stack: _Stack) -> Iterator[Check]:
    for resource in stack.state.of_type(VPC):
        yield _judge(FLOW_LOGS, resource.id, partial(_flow_logs, stack, resource))
        yield _judge(NO_IGW, resource.id, partial(_no_internet_gateway, stack, resource))
        yield _judge(NO_NAT, resource.id, partial(_no_nat_gateway, stack, resource))


# ----------------------------------------------------------------------------------- log groups


def _log_group(stack: _Stack, resource: ResourceState) -> dict[str, Any]:
    _require(resource)
    name = _name(resource, "name")
    logs = stack.client("logs", stack.region_of(resource))
    groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups") or []
    for group in groups:
        if group.get("logGroupName") == name:
            return dict(group)
    raise ClientError(
        {"Error": {"Code": "ResourceNotFoundException", "Message": name}}, "DescribeLogGroups"
    )


def _log_group_kms(stack: _Stack, resource: ResourceState) -> Outcome:
    key = _log_group(stack, resource).get("kmsKeyId")
    owned = stack.owns_key(key, stack.region_of(resource))
    return owned, f"kmsKeyId {stack.key_label(key)}"


def _log_group_retention(stack: _Stack, resource: ResourceState) -> Outcome:
    days = _log_group(stack, resource).get("retentionInDays")
    wanted = stack.config_int("logRetentionDays")
    return days == wanted, f"retention {days or 'never expire'} days (logRetentionDays {wanted})"


def _log_group_checks(stack: _Stack) -> Iterator[Check]:
    for resource in stack.state.of_type(LOG_GROUP):
        label = _name(resource, "name")
        yield _judge(LOG_GROUP_KMS, label, partial(_log_group_kms, stack, resource))
        yield _judge(LOG_GROUP_RETENTION, label, partial(_log_group_retention, stack, resource))


# ---------------------------------------------------------------------------------------- SQS


def _queue_attributes(stack: _Stack, resource: ResourceState) -> dict[str, str]:
    _require(resource)
    sqs = stack.client("sqs", stack.region_of(resource))
    url = _name(resource, "url")
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


def _queue_kms(stack: _Stack, resource: ResourceState) -> Outcome:
    key = _queue_attributes(stack, resource).get("KmsMasterKeyId")
    owned = stack.owns_key(key, stack.region_of(resource))
    return owned, f"KmsMasterKeyId {stack.key_label(key)}"


def _queue_redrive(stack: _Stack, resource: ResourceState, dlq: ResourceState | None) -> Outcome:
    attributes = _queue_attributes(stack, resource)
    if dlq is None:
        return False, "the stack exports no ingest dead-letter queue"
    dlq_arn = _queue_attributes(stack, dlq).get("QueueArn")
    raw = attributes.get("RedrivePolicy")
    if not raw:
        return False, "no RedrivePolicy"
    policy = json.loads(raw)
    target = policy.get("deadLetterTargetArn")
    count = int(policy.get("maxReceiveCount") or 0)
    wanted = stack.config_int("ingestMaxReceiveCount")
    detail = f"to {target} after {count} receives (ingestMaxReceiveCount {wanted})"
    return target == dlq_arn and count == wanted, detail


def _queue_checks(stack: _Stack) -> Iterator[Check]:
    queues = stack.state.of_type(QUEUE)
    ingest_url = stack.state.outputs.get("ingestQueueUrl")
    dlq_url = stack.state.outputs.get("ingestDeadLetterQueueUrl")
    dlq = next((q for q in queues if _name(q, "url") == dlq_url), None)
    for resource in queues:
        label = _name(resource, "url")
        yield _judge(QUEUE_KMS, label, partial(_queue_kms, stack, resource))
        if ingest_url and label == ingest_url:
            yield _judge(QUEUE_REDRIVE, label, partial(_queue_redrive, stack, resource, dlq))


# ----------------------------------------------------------------------------------- DynamoDB


def _table(stack: _Stack, resource: ResourceState) -> dict[str, Any]:
    _require(resource)
    dynamodb = stack.client("dynamodb", stack.region_of(resource))
    return dict(dynamodb.describe_table(TableName=_name(resource, "name"))["Table"])


def _table_kms(stack: _Stack, resource: ResourceState) -> Outcome:
    sse = _table(stack, resource).get("SSEDescription") or {}
    key = sse.get("KMSMasterKeyArn")
    owned = stack.owns_key(key, stack.region_of(resource))
    detail = f"SSE {sse.get('Status', 'AWS owned key')} {sse.get('SSEType', '')} "
    return sse.get("Status") == "ENABLED" and sse.get("SSEType") == "KMS" and owned, (
        detail.strip() + f" with {stack.key_label(key)}"
    )


def _table_pitr(stack: _Stack, resource: ResourceState) -> Outcome:
    _require(resource)
    dynamodb = stack.client("dynamodb", stack.region_of(resource))
    backups = dynamodb.describe_continuous_backups(TableName=_name(resource, "name"))
    pitr = backups["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription") or {}
    status = pitr.get("PointInTimeRecoveryStatus")
    return status == "ENABLED", f"point-in-time recovery {status or 'DISABLED'}"


def _table_protection(stack: _Stack, resource: ResourceState) -> Outcome:
    table = _table(stack, resource)
    if "DeletionProtectionEnabled" not in table:
        raise Unreadable("the emulator's DescribeTable returns no DeletionProtectionEnabled")
    enabled = table["DeletionProtectionEnabled"] is True
    return enabled, f"DeletionProtectionEnabled {str(enabled).lower()}"


def _table_checks(stack: _Stack) -> Iterator[Check]:
    for resource in stack.state.of_type(TABLE):
        label = _name(resource, "name")
        yield _judge(TABLE_KMS, label, partial(_table_kms, stack, resource))
        yield _judge(TABLE_PITR, label, partial(_table_pitr, stack, resource))
        yield _judge(TABLE_PROTECTION, label, partial(_table_protection, stack, resource))


# ------------------------------------------------------------------------------------- Backup


def _vault(stack: _Stack, resource: ResourceState) -> dict[str, Any]:
    _require(resource)
    backup = stack.client("backup", stack.region_of(resource))
    return dict(backup.describe_backup_vault(BackupVaultName=_name(resource, "name")))


def _vault_lock(stack: _Stack, resource: ResourceState) -> Outcome:
    name = _name(resource, "name")
    for lock in stack.state.of_type(VAULT_LOCK):
        if lock.outputs.get("backupVaultName") == name:
            _require(lock)
    vault = _vault(stack, resource)
    wanted = stack.config_int("backupRetentionDays")
    minimum = vault.get("MinRetentionDays")
    if not vault.get("Locked") and minimum is None:
        return False, "no vault lock"
    passed = bool(vault.get("Locked")) and minimum is not None and int(minimum) >= wanted
    return passed, (
        f"Locked {str(bool(vault.get('Locked'))).lower()}, MinRetentionDays {minimum} "
        f"(backupRetentionDays {wanted})"
    )


def _vault_kms(stack: _Stack, resource: ResourceState) -> Outcome:
    key = _vault(stack, resource).get("EncryptionKeyArn")
    owned = stack.owns_key(key, stack.region_of(resource))
    return owned, f"EncryptionKeyArn {stack.key_label(key)}"


def _vault_checks(stack: _Stack) -> Iterator[Check]:
    for resource in stack.state.of_type(VAULT):
        label = _name(resource, "arn", "name")
        yield _judge(VAULT_LOCKED, label, partial(_vault_lock, stack, resource))
        yield _judge(VAULT_KMS, label, partial(_vault_kms, stack, resource))


# ------------------------------------------------------------------------------------- Lambda


def _function(stack: _Stack, resource: ResourceState) -> dict[str, Any]:
    _require(resource)
    client = stack.client("lambda", stack.region_of(resource))
    return dict(client.get_function_configuration(FunctionName=_name(resource, "name")))


def _function_vpc(stack: _Stack, resource: ResourceState, vpcs: set[str]) -> Outcome:
    config = _function(stack, resource).get("VpcConfig") or {}
    subnets = list(config.get("SubnetIds") or [])
    if not subnets:
        return False, "not attached to a VPC"
    # The subnets' VPC as EC2 reads it back (the function's own VpcId field is not trusted).
    ec2 = stack.client("ec2", stack.region_of(resource))
    found = ec2.describe_subnets(SubnetIds=subnets)["Subnets"]
    their_vpcs = sorted({str(s.get("VpcId")) for s in found})
    passed = bool(found) and set(their_vpcs) <= vpcs and len(found) == len(subnets)
    return passed, f"{len(subnets)} subnets in {', '.join(their_vpcs) or 'no known VPC'}"


def _function_kms(stack: _Stack, resource: ResourceState) -> Outcome:
    key = _function(stack, resource).get("KMSKeyArn")
    owned = stack.owns_key(key, stack.region_of(resource))
    return owned, f"KMSKeyArn {stack.key_label(key) if key else 'none (AWS managed key)'}"


def _function_checks(stack: _Stack) -> Iterator[Check]:
    vpcs = {r.id for r in stack.state.of_type(VPC)}
    if stack.state.outputs.get("vpcId"):
        vpcs.add(str(stack.state.outputs["vpcId"]))
    for resource in stack.state.of_type(FUNCTION):
        label = _name(resource, "name")
        yield _judge(FUNCTION_VPC, label, partial(_function_vpc, stack, resource, vpcs))
        yield _judge(FUNCTION_KMS, label, partial(_function_kms, stack, resource))


# ---------------------------------------------------------------------------------------- IAM


def _boundary_arn(stack: _Stack) -> str | None:
    arn = (stack.state.outputs.get("identity") or {}).get("permissionsBoundaryArn")
    return str(arn) if arn else None


def _role_boundary(stack: _Stack, resource: ResourceState, wanted: str | None) -> Outcome:
    _require(resource)
    iam = stack.client("iam")
    role = iam.get_role(RoleName=_name(resource, "name"))["Role"]
    got = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    if wanted is None:
        return False, f"boundary {got}; the stack exports no permissionsBoundaryArn"
    return got == wanted, f"boundary {got or 'none'}"


def _role_checks(stack: _Stack) -> Iterator[Check]:
    wanted = _boundary_arn(stack)
    for resource in stack.state.of_type(ROLE):
        label = _name(resource, "name")
        yield _judge(ROLE_BOUNDARY, label, partial(_role_boundary, stack, resource, wanted))


# -------------------------------------------------------------------------------------- ELBv2


def _listener_tls(stack: _Stack, resource: ResourceState) -> Outcome:
    _require(resource)
    elb = stack.client("elbv2", stack.region_of(resource))
    listener = elb.describe_listeners(ListenerArns=[resource.id])["Listeners"][0]
    wanted = str(stack.config("edgeTlsPolicy") or DEFAULT_EDGE_TLS_POLICY)
    protocol = listener.get("Protocol")
    policy = listener.get("SslPolicy")
    if protocol != "HTTPS":
        return False, f"protocol {protocol} (the stack declares HTTPS with {wanted})"
    return policy == wanted, f"HTTPS with {policy} (edgeTlsPolicy {wanted})"


def _listener_checks(stack: _Stack) -> Iterator[Check]:
    for resource in stack.state.of_type(LISTENER):
        # TCP listeners pass DICOM TLS through to the gateway; only HTTPS ones negotiate TLS.
        if resource.outputs.get("protocol") == "HTTPS":
            yield _judge(LISTENER_TLS, resource.id, partial(_listener_tls, stack, resource))


# ----------------------------------------------------------------------------------- Firehose


_DESTINATIONS = (
    "HttpEndpointDestinationDescription",
    "SplunkDestinationDescription",
    "ExtendedS3DestinationDescription",
)


def _stream(stack: _Stack, resource: ResourceState) -> dict[str, Any]:
    _require(resource)
    firehose = stack.client("firehose", stack.region_of(resource))
    name = _name(resource, "name")
    if name.startswith("arn:"):
        name = name.rsplit("/", 1)[-1]
    return dict(
        firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    )


def _stream_kms(stack: _Stack, resource: ResourceState) -> Outcome:
    encryption = _stream(stack, resource).get("DeliveryStreamEncryptionConfiguration") or {}
    key = encryption.get("KeyARN")
    owned = stack.owns_key(key, stack.region_of(resource))
    passed = encryption.get("KeyType") == "CUSTOMER_MANAGED_CMK" and owned
    detail = f"{encryption.get('KeyType', 'not encrypted')} {stack.key_label(key)}"
    status = encryption.get("Status")
    if status is None:  # moto leaves Status out: judged on the key type and key alone
        return passed, f"{detail} (Status not reported by the emulator)"
    return passed and status == "ENABLED", f"{detail}, Status {status}"


def _stream_backup(stack: _Stack, resource: ResourceState) -> Outcome:
    stream = _stream(stack, resource)
    region = stack.region_of(resource)
    for destination in stream.get("Destinations") or []:
        for kind in _DESTINATIONS:
            described = destination.get(kind)
            if not described:
                continue
            mode = described.get("S3BackupMode")
            s3 = described.get("S3DestinationDescription") or described.get("S3BackupDescription")
            if kind == "ExtendedS3DestinationDescription":
                s3 = described.get("S3BackupDescription")
            if not mode or mode == "Disabled" or not s3:
                return False, f"{kind}: S3BackupMode {mode}, no S3 backup"
            key = ((s3.get("EncryptionConfiguration") or {}).get("KMSEncryptionConfig") or {}).get(
                "AWSKMSKeyARN"
            )
            owned = stack.owns_key(key, region)
            return owned, (f"{mode} to {s3.get('BucketARN')} encrypted with {stack.key_label(key)}")
    return False, "no HTTP endpoint, Splunk or S3 destination read back"


def _stream_checks(stack: _Stack) -> Iterator[Check]:
    for resource in stack.state.of_type(FIREHOSE):
        label = _name(resource, "arn", "name")
        yield _judge(STREAM_KMS, label, partial(_stream_kms, stack, resource))
        yield _judge(STREAM_BACKUP, label, partial(_stream_backup, stack, resource))


# ------------------------------------------------------------------------------------ running

_GROUPS: tuple[Callable[[_Stack], Iterable[Check]], ...] = (
    _bucket_checks,
    _key_checks,
    _trail_checks,
    _vpc_checks,
    _log_group_checks,
    _queue_checks,
    _table_checks,
    _vault_checks,
    _function_checks,
    _role_checks,
    _listener_checks,
    _stream_checks,
)


def run_checks(state: SandboxState, clients: Clients | None = None) -> list[Check]:
    """Read the deployed sandbox back from the emulator; one :class:`Check` per property.

    ``clients`` defaults to the state's administrator (allowed everything, like an auditor with
    read access to the whole account).
    """
    stack = _Stack(state, clients if clients is not None else state.admin())
    checks: list[Check] = []
    for group in _GROUPS:
        checks.extend(group(stack))
    order = {spec.id: index for index, spec in enumerate(SPECS)}
    return sorted(checks, key=lambda c: order.get(c.id, len(order)))


def checks_as_json(checks: Iterable[Check]) -> list[dict[str, Any]]:
    """The checks as JSON-ready dicts (``verdict`` added: PASS, FAIL or N/A)."""
    return [{**asdict(c), "verdict": c.verdict} for c in checks]


def summary(checks: Iterable[Check]) -> dict[str, int]:
    """Counts of passed, failed and unreadable (N/A) checks."""
    listed = list(checks)
    return {
        "passed": sum(1 for c in listed if c.passed is True),
        "failed": sum(1 for c in listed if c.passed is False),
        "not_readable": sum(1 for c in listed if c.passed is None),
    }


def format_checks(checks: Iterable[Check], compact: bool = False) -> str:
    """One line per check (verdict, id, resource, detail) and a final count line.

    ``compact``: one line per check id with its resource count, and a line for each check that
    did not pass (what an operator reads first).
    """
    listed = list(checks)
    id_width = max((len(c.id) for c in listed), default=0)
    shown = [c for c in listed if c.passed is not True] if compact else listed
    lines = []
    if compact:
        for check_id in dict.fromkeys(c.id for c in listed):
            group = [c for c in listed if c.id == check_id]
            verdict = next((c.verdict for c in group if c.passed is False), None) or (
                "N/A" if any(c.passed is None for c in group) else "PASS"
            )
            lines.append(f"{verdict:<4}  {check_id:<{id_width}}  {len(group)} resource(s)")
    lines += [f"{c.verdict:<4}  {c.id:<{id_width}}  {c.resource}  {c.detail}" for c in shown]
    counts = summary(listed)
    lines.append(
        f"{len(listed)} checks: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['not_readable']} not readable back in the emulator"
    )
    return "\n".join(lines)
