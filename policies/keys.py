"""Keys: every KMS key has a policy of its own that names its principals and exact actions, admits
no other account (nor the world), rotates yearly when AWS can rotate it, and cannot be deleted in a
hurry."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    ACCOUNT_ID_LIST,
    DocumentError,
    Finding,
    Meta,
    ResourceLike,
    Setting,
    Stack,
    Statement,
    account,
    anonymous_allow_messages,
    document,
    grants,
    items,
    label,
    messages,
    resource_policy,
    stack_policy,
    statements,
    truthy,
    wildcard_actions,
)

KEY = "aws:kms/key:Key"
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"
KEYS = (KEY, REPLICA_KEY)
# Every resource that carries a key policy document in its `policy` argument.
POLICY_HOLDERS = (KEY, REPLICA_KEY, KEY_POLICY)

# The policy AWS gives a key created without one: `kms:*` for the account root, which hands all
# access control over the key to IAM policies ("Id": "key-default-1").
AWS_DEFAULT_POLICY_ID = "key-default-1"

# Keys that tie a service principal's use of the key to this account's resources (the
# confused-deputy guard): the calling resource, or the encryption context the service binds to it
# (CloudWatch Logs and CloudTrail name the log group or trail there).
SERVICE_SCOPING_KEYS = (
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceorgid",
    "aws:sourceorgpaths",
)
ENCRYPTION_CONTEXT_PREFIX = "kms:encryptioncontext:"
# Principal "*" statements are tied to an account by these keys: their values are the accounts the
# statement admits.
CALLER_ACCOUNT_KEYS = ("kms:calleraccount", "aws:principalaccount")


def _label(resource: ResourceLike) -> str:
    if resource.resource_type == KEY_POLICY:
        return f"key policy {resource.name} (key {resource.props.get('keyId')})"
    return label(resource, "KMS key")


def _aws_principals(statement: Statement) -> list[str]:
    principal = statement.principal
    if isinstance(principal, str):
        return [principal]
    if isinstance(principal, Mapping):
        return [str(p) for p in items(principal.get("AWS"))]
    return []


def _principal_accounts(statement: Statement) -> set[str]:
    """The accounts an Allow statement admits: its AWS principals' and, for '*', the caller's."""
    found = {a for p in _aws_principals(statement) if (a := account(p))}
    if "*" in _aws_principals(statement):
        keys = statement.condition_keys()
        found |= {a for k in CALLER_ACCOUNT_KEYS for v in keys.get(k, []) if (a := account(v))}
    return found


def _named_accounts(statement: Statement) -> set[str]:
    """Every account an Allow statement names: in its principals and in its condition values."""
    found = _principal_accounts(statement)
    for values in statement.condition_keys().values():
        found |= {a for v in values if (a := account(v))}
    return found


def _scoped_to_account(statement: Statement) -> bool:
    """Whether a service principal's Allow is tied to an account's resources (not just any)."""
    for key, values in statement.condition_keys().items():
        if key in ("aws:sourceorgid", "aws:sourceorgpaths") and values:
            return True
        if (key in SERVICE_SCOPING_KEYS or key.startswith(ENCRYPTION_CONTEXT_PREFIX)) and any(
            account(v) for v in values
        ):
            return True
    return False


def _policy_statements(resource: ResourceLike) -> tuple[list[Statement], list[str]]:
    """The statements of the resource's key policy, or the message saying it is unreadable."""
    policy = resource.props.get("policy")
    if not policy:
        return [], []  # aws-kms-key-require-explicit-policy refuses a key without a policy
    try:
        return statements(policy), []
    except DocumentError as exc:
        return [], [f"{_label(resource)}: policy is not a policy document ({exc})"]


@resource_policy(
    Meta(
        id="aws-kms-key-require-rotation",
        description="Every symmetric encryption KMS key rotates its key material at least yearly.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.HIGH,
        remediation="Set enable_key_rotation=True on the aws.kms.Key, and leave "
        "rotation_period_in_days unset (AWS rotates every 365 days) or set it to at most "
        "maximumRotationPeriodDays. Asymmetric, HMAC and custom key store keys are exempt: AWS "
        "cannot rotate them; replace them on a schedule instead.",
        subjects=(KEY,),
        settings=(
            Setting(
                "maximumRotationPeriodDays",
                "Longest rotation period allowed, in days (AWS accepts 90 to 2560)",
                365,
                {"type": "integer", "minimum": 90, "maximum": 365},
            ),
        ),
    )
)
def require_rotation(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    spec = props.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    usage = props.get("keyUsage") or "ENCRYPT_DECRYPT"
    # AWS rotates automatically only symmetric encryption keys whose material it generated in KMS
    # proper: it refuses EnableKeyRotation on asymmetric (RSA/ECC/SM2) and HMAC keys, and on keys
    # in a custom key store (CloudHSM or external key store). Those keys are exempt; imported key
    # material is a separate resource type (aws.kms.ExternalKey), not examined here.
    if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
        return
    if props.get("customKeyStoreId") or props.get("xksKeyId"):
        return
    # (Replica keys, aws.kms.ReplicaKey, are not subjects: they share the key material, and so the
    # rotation, of their multi-Region primary key, which this policy examines.)
    title = _label(resource)
    maximum = int(config["maximumRotationPeriodDays"])
    period = props.get("rotationPeriodInDays")
    yield from messages(
        (
            truthy(props.get("enableKeyRotation")),
            f"{title} must rotate automatically (enableKeyRotation true)",
        ),
        (
            period is None or float(period) <= maximum,
            f"{title} rotates every {period} days; the period must be at most {maximum}",
        ),
    )


@resource_policy(
    Meta(
        id="aws-kms-key-no-open-principal",
        description="No key policy admits everyone, any account's use of an AWS service, or a "
        "principal of another account.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.CRITICAL,
        remediation="In the key's policy argument (aws.kms.Key, aws.kms.ReplicaKey or "
        "aws.kms.KeyPolicy): name the account's roles instead of Principal '*' (or condition it on "
        "kms:CallerAccount / aws:PrincipalAccount), condition every service principal on "
        "aws:SourceAccount, aws:SourceArn or the service's kms:EncryptionContext, remove "
        "principals of other accounts (or list the account in trustedAccounts), let only the "
        "key's own account change the policy, and leave bypass_policy_lockout_safety_check unset.",
        subjects=POLICY_HOLDERS,
        settings=(
            Setting(
                "trustedAccounts",
                "Account ids (12 digits) besides the key's own whose principals a key policy may "
                "admit (e.g. a central backup or log-archive account)",
                [],
                ACCOUNT_ID_LIST,
            ),
        ),
    )
)
def no_open_principal(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    title = _label(resource)
    parsed, errors = _policy_statements(resource)
    yield from errors
    if not parsed:
        return
    for problem in anonymous_allow_messages(resource.props.get("policy")):
        yield f"{title}: {problem}"
    doc = document(resource.props.get("policy"))
    for raw in items(doc.get("Statement")):
        if isinstance(raw, Mapping) and raw.get("Effect") == "Allow" and "NotPrincipal" in raw:
            yield (
                f"{title}: statement {raw.get('Sid', '(no Sid)')} allows everyone but its "
                "NotPrincipal; name the principals"
            )
    allows = [s for s in parsed if s.allows]
    for s in allows:
        if s.service_principals() and not _scoped_to_account(s):
            yield (
                f"{title}: statement {s.sid or '(no Sid)'} lets "
                f"{', '.join(s.service_principals())} use the key for any account; condition it "
                "on aws:SourceAccount, aws:SourceArn or the service's encryption context"
            )
    # The key's own account: the lockout safety check (which we require) makes AWS refuse a key
    # policy that does not let the account creating the key change it, and a key is always
    # created in its own account. So the accounts allowed kms:PutKeyPolicy include the owner:
    # with one such account, every other account the policy names is foreign; with several,
    # another account administers the key.
    trusted = {str(a) for a in config["trustedAccounts"]}
    owners = set().union(*(_principal_accounts(s) for s in allows if grants(s, "kms:PutKeyPolicy")))
    named = set().union(*(_named_accounts(s) for s in allows)) - trusted
    if len(owners) > 1:
        yield (
            f"{title}: accounts {', '.join(sorted(owners))} may change the key policy; only the "
            "key's own account may administer it"
        )
        foreign = named - owners
    elif owners:
        foreign = named - owners
    else:
        # No administrator statement names an account: without an owner to compare with, the
        # policy may name one account (its own) besides the trusted ones.
        foreign = named if len(named) > 1 else set()
    if foreign:
        yield (
            f"{title}: the policy admits principals of other accounts "
            f"{', '.join(sorted(foreign))}; remove them or list them in trustedAccounts"
        )
    if truthy(resource.props.get("bypassPolicyLockoutSafetyCheck")):
        yield (
            f"{title}: bypassPolicyLockoutSafetyCheck must not be true (the check keeps the key "
            "administrable by its own account)"
        )


@resource_policy(
    Meta(
        id="aws-kms-key-policy-no-wildcard-actions",
        description="No key policy allows a wildcard action or NotAction: every grant names exact "
        "KMS actions.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.HIGH,
        remediation="In the key's policy argument (aws.kms.Key, aws.kms.ReplicaKey or "
        "aws.kms.KeyPolicy), list exact actions in every Allow statement (the kit's key policy "
        "separates administration actions from use actions) instead of kms:*, * or patterns "
        "such as kms:Re*, and never Allow with NotAction.",
        subjects=POLICY_HOLDERS,
    )
)
def no_wildcard_actions(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    title = _label(resource)
    parsed, errors = _policy_statements(resource)
    yield from errors
    for s in parsed:
        if not s.allows:
            continue
        sid = s.sid or "(no Sid)"
        yield from messages(
            (
                not wildcard_actions(s),
                f"{title}: statement {sid} allows wildcard actions "
                f"{', '.join(wildcard_actions(s))}; list exact actions",
            ),
            (
                not s.not_actions,
                f"{title}: statement {sid} allows every action but its NotAction; list actions",
            ),
        )


def _is_aws_default_policy(policy: Any) -> bool:
    try:
        return document(policy).get("Id") == AWS_DEFAULT_POLICY_ID
    except DocumentError:
        return False


@stack_policy(
    Meta(
        id="aws-kms-key-require-explicit-policy",
        description="Every KMS key declares its own key policy instead of AWS's default, which "
        "grants the account root kms:*.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.HIGH,
        remediation="Set the policy argument of the aws.kms.Key (or aws.kms.ReplicaKey), or "
        "declare an aws.kms.KeyPolicy for it, naming the administrators and the roles that use "
        "the key (infra/iam_documents.py key_policy builds one).",
        subjects=KEYS,
    )
)
def require_explicit_policy(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for key in stack.of_type(*KEYS):
        if stack.attached(key, KEY_POLICY, "keyId", "keyId", "arn"):
            continue  # the policy is declared by a KeyPolicy resource
        policy = key.props.get("policy")
        # Offline (inputs) an undeclared policy is absent; after an update (outputs) it reads as
        # the default policy AWS attached.
        if not policy or _is_aws_default_policy(policy):
            yield (
                key,
                (
                    f"{_label(key)} must declare its key policy: without one AWS attaches its "
                    "default policy, which grants the account root kms:*"
                ),
            )


@resource_policy(
    Meta(
        id="aws-kms-key-require-deletion-window",
        description="A KMS key scheduled for deletion stays recoverable for the full waiting "
        "period.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.INTEGRITY,
        severity=Severity.MEDIUM,
        remediation="Leave deletion_window_in_days unset (AWS waits 30 days) or set it to at "
        "least minimumDeletionWindowDays on the aws.kms.Key or aws.kms.ReplicaKey: a key deleted "
        "by mistake makes every backup and archive object it encrypts unreadable.",
        subjects=KEYS,
        settings=(
            Setting(
                "minimumDeletionWindowDays",
                "Shortest waiting period before a key scheduled for deletion is deleted, in days",
                30,
                {"type": "integer", "minimum": 7, "maximum": 30},
            ),
        ),
    )
)
def require_deletion_window(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    window = resource.props.get("deletionWindowInDays")
    minimum = int(config["minimumDeletionWindowDays"])
    if window is not None and float(window) < minimum:
        yield (
            f"{_label(resource)}: deletion window is {float(window):.0f} days, must be at least "
            f"{minimum}"
        )


@resource_policy(
    Meta(
        id="aws-kms-key-require-enabled",
        description="Every KMS key of the stack stays enabled: a disabled key makes everything it "
        "encrypts unreadable.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.DATA_BACKUP_PLAN,
        severity=Severity.HIGH,
        remediation="Leave is_enabled unset (or True) on the aws.kms.Key and enabled unset (or "
        "True) on the aws.kms.ReplicaKey: disabling the archive key makes every archived image, "
        "replica and recovery point it encrypts unreadable until it is enabled again. Retire a "
        "key by removing its users first, then scheduling its deletion.",
        subjects=KEYS,
    )
)
def require_enabled(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    prop = "enabled" if resource.resource_type == REPLICA_KEY else "isEnabled"
    value = resource.props.get(prop)
    # Unset means enabled (AWS's default); the provider passes booleans, or strings.
    if value is not None and value != "" and not truthy(value):
        yield f"{_label(resource)} is disabled: {prop} must be true (or unset)"


def _grant_constrained(statement: Statement) -> bool:
    """A CreateGrant an AWS service makes for its own resources, never a free-standing grant."""
    keys = statement.condition_keys()
    return "true" in [v.lower() for v in keys.get("kms:grantisforawsresource", [])] or bool(
        keys.get("kms:viaservice")
    )


@resource_policy(
    Meta(
        id="aws-kms-key-grants-only-for-aws-resources",
        description="A key policy lets principals create grants only through AWS services, for "
        "their resources: no principal can hand the key to anyone it likes.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.HIGH,
        remediation="Condition every Allow of kms:CreateGrant in the key's policy argument on "
        "Bool kms:GrantIsForAWSResource 'true' (or StringEquals kms:ViaService on the services "
        "that create grants for the stack's resources).",
        subjects=POLICY_HOLDERS,
    )
)
def grants_only_for_aws_resources(
    resource: ResourceLike, config: Mapping[str, Any]
) -> Iterator[str]:
    parsed, errors = _policy_statements(resource)
    yield from errors
    for s in parsed:
        if grants(s, "kms:CreateGrant") and not _grant_constrained(s):
            yield (
                f"{_label(resource)}: statement {s.sid or '(no Sid)'} allows kms:CreateGrant "
                "without kms:GrantIsForAWSResource or kms:ViaService"
            )


POLICIES = (
    require_rotation,
    no_open_principal,
    grants_only_for_aws_resources,
    no_wildcard_actions,
    require_explicit_policy,
    require_deletion_window,
    require_enabled,
)
