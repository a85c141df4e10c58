"""How a policy of this pack is declared: its metadata, its check, and the helpers checks share.

A policy is a plain function over resource properties plus a :class:`Meta` record: id, one-sentence
description, the seed practice and HIPAA safeguard it enforces, severity, remediation, the resource
types it examines, and its configuration. :func:`resource_policy` and :func:`stack_policy` turn the
pair into Pulumi CrossGuard policy objects; ``pulumi preview --policy-pack policies`` runs those
objects, and ``pacs-kit check`` runs the very same objects offline (:mod:`policies.evaluate`).

Checks read properties as the engine hands them over: camelCase, numbers as floats, JSON policy
documents as strings. Resource policies see a resource's inputs (before it is created or changed);
stack policies see every resource's outputs after the update (the engine's ``AnalyzeStack``: the
provider's state, a superset of the inputs with computed values filled in) — offline, both see the
plan's inputs. So a stack check reads only argument names and never relies on an argument being
absent. During a preview, reading a value that is not known yet raises ``UnknownValueError``; the
engine (and ``pacs-kit check``) then reports the policy as not run instead of guessing.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.controls import Practice, Safeguard

HIPAA_FRAMEWORK = "HIPAA Security Rule"
HIPAA_VERSION = "45 CFR Part 164 Subpart C"


class ResourceLike(Protocol):
    """What a check reads of a resource (``ResourceValidationArgs`` and ``PolicyResource`` both)."""

    resource_type: str
    props: Mapping[str, Any]
    urn: str
    name: str


# JSON schemas of the settings' values that recur across policies.
STRING_LIST: Mapping[str, Any] = {"type": "array", "items": {"type": "string"}}
ACCOUNT_ID_LIST: Mapping[str, Any] = {
    "type": "array",
    "items": {"type": "string", "pattern": "^[0-9]{12}$"},
}


@dataclass(frozen=True)
class Setting:
    """A knob of a policy, set with ``--policy-pack-config`` (or ``pacs-kit check --config``)."""

    name: str
    description: str
    default: Any
    schema: Mapping[str, Any]  # JSON schema of the value, without the default

    def json_schema(self) -> dict[str, Any]:
        return {**self.schema, "description": self.description, "default": self.default}


@dataclass(frozen=True)
class Meta:
    """Everything a reviewer reads about one policy besides its code."""

    id: str
    description: str
    practice: Practice
    safeguard: Safeguard
    severity: Severity
    remediation: str
    # The resource types the policy examines: a resource of these types without a violation
    # satisfies the policy (the control matrix lists it).
    subjects: tuple[str, ...]
    settings: tuple[Setting, ...] = ()
    enforcement: EnforcementLevel = EnforcementLevel.MANDATORY

    def config(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The policy's settings: defaults overlaid with what the pack configuration gives."""
        values = {s.name: s.default for s in self.settings}
        values.update({k: v for k, v in (given or {}).items() if k != "enforcementLevel"})
        return values

    def config_schema(self) -> PolicyConfigSchema | None:
        if not self.settings:
            return None
        return PolicyConfigSchema(properties={s.name: s.json_schema() for s in self.settings})

    def framework(self) -> PolicyComplianceFramework:
        return PolicyComplianceFramework(
            name=HIPAA_FRAMEWORK,
            version=HIPAA_VERSION,
            reference=self.safeguard.ref,
            specification=self.safeguard.title,
        )


ResourceCheck = Callable[[ResourceLike, Mapping[str, Any]], Iterable[str]]
Finding = tuple[ResourceLike, str]
StackCheck = Callable[["Stack", Mapping[str, Any]], Iterable[Finding]]


class PacsResourcePolicy(ResourceValidationPolicy):
    """A single-resource policy of this pack, carrying its :class:`Meta`."""

    def __init__(self, meta: Meta, check: ResourceCheck) -> None:
        self.meta = meta
        self.check = check

        def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
            if args.resource_type not in meta.subjects:
                return
            try:
                for message in check(args, meta.config(args.get_config())):
                    report(message, None)
            except DocumentError as exc:  # AWS refuses it too; say so instead of failing
                report(f"{args.resource_type} {args.name}: unreadable policy document: {exc}", None)

        super().__init__(
            name=meta.id, description=meta.description, validate=validate, **_native(meta)
        )


class PacsStackPolicy(StackValidationPolicy):
    """A cross-resource policy of this pack, carrying its :class:`Meta`."""

    def __init__(self, meta: Meta, check: StackCheck) -> None:
        self.meta = meta
        self.check = check

        def validate(args: StackValidationArgs, report: ReportViolation) -> None:
            try:
                for resource, message in check(
                    Stack(args.resources), meta.config(args.get_config())
                ):
                    report(message, resource.urn)
            except DocumentError as exc:  # AWS refuses it too; say so instead of failing
                report(f"a policy document of the stack is unreadable: {exc}", None)

        super().__init__(
            name=meta.id, description=meta.description, validate=validate, **_native(meta)
        )


PacsPolicy = PacsResourcePolicy | PacsStackPolicy


def _native(meta: Meta) -> dict[str, Any]:
    """The CrossGuard metadata fields, so `pulumi preview` and Pulumi Cloud show them too."""
    return {
        "enforcement_level": meta.enforcement,
        "config_schema": meta.config_schema(),
        "severity": meta.severity,
        "framework": meta.framework(),
        "tags": ["hipaa", meta.practice.id, meta.safeguard.kind],
        "remediation_steps": meta.remediation,
    }


def resource_policy(meta: Meta) -> Callable[[ResourceCheck], PacsResourcePolicy]:
    """Decorator over ``def check(resource, config) -> messages``."""

    def wrap(check: ResourceCheck) -> PacsResourcePolicy:
        return PacsResourcePolicy(meta, check)

    return wrap


def stack_policy(meta: Meta) -> Callable[[StackCheck], PacsStackPolicy]:
    """Decorator over ``def check(stack, config) -> (resource, message), ...``."""

    def wrap(check: StackCheck) -> PacsStackPolicy:
        return PacsStackPolicy(meta, check)

    return wrap


# --- reading the stack ------------------------------------------------------------------------


class Stack:
    """The stack's resources, with lookups that follow references between them.

    A reference is followed through the engine's property dependencies when it has them (a value
    computed from another resource's output), else by value: a name, or an ARN ending in it.
    """

    def __init__(self, resources: Iterable[Any]) -> None:
        self.resources: list[Any] = list(resources)

    def of_type(self, *types: str) -> list[Any]:
        return [r for r in self.resources if r.resource_type in types]

    def refers(self, child: Any, prop: str, target: Any, *identities: str) -> bool:
        """Whether ``child.props[prop]`` names ``target`` (by dependency, name or ARN).

        Without dependencies, a target known only by its provider-assigned id (a VPC, a security
        group: the snapshot of a plan holds inputs, not ids) is named by any value when it is the
        only resource of its type.
        """
        deps = getattr(child, "property_dependencies", None) or {}
        if deps.get(prop):
            return any(d.urn == target.urn for d in deps[prop])
        if prop not in child.props or not child.props[prop]:
            return False
        value = child.props[prop]
        names = [target.props[i] for i in identities if target.props.get(i)]
        if not names:
            return len(self.of_type(target.resource_type)) == 1
        return any(_names(value, str(n)) for n in names)

    def attached(self, target: Any, child_type: str, prop: str, *identities: str) -> list[Any]:
        """The resources of ``child_type`` whose ``prop`` names ``target``."""
        return [c for c in self.of_type(child_type) if self.refers(c, prop, target, *identities)]

    def policies_of(self, target: Any, policy_type: str, prop: str, *identities: str) -> list[Any]:
        """The resource policy documents of ``target``: those of the ``policy_type`` resources
        whose ``prop`` names it, and its own ``policy`` argument."""
        found = [
            p.props.get("policy") for p in self.attached(target, policy_type, prop, *identities)
        ]
        if target.props.get("policy"):
            found.append(target.props.get("policy"))
        return found


def _names(value: Any, name: str) -> bool:
    if isinstance(value, str):
        return value == name or value.endswith((f"/{name}", f":{name}", f":{name}:*"))
    if isinstance(value, Sequence):
        return any(_names(v, name) for v in value)
    return False


# --- reading properties -----------------------------------------------------------------------


def get(props: Mapping[str, Any], *path: str | int, default: Any = None) -> Any:
    """A nested property, or ``default`` where any step is missing."""
    value: Any = props
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, Sequence) or isinstance(value, str) or step >= len(value):
                return default
            value = value[step]
        else:
            if not isinstance(value, Mapping) or step not in value:
                return default
            value = value[step]
    return value


def items(value: Any) -> list[Any]:
    """A property that is a list (or absent, or one value) as a list."""
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return [value]


def truthy(value: Any) -> bool:
    """A boolean property (provider configuration passes booleans as strings)."""
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def tag(resource: ResourceLike, key: str) -> str | None:
    value = get(resource.props, "tags", key)
    return value if isinstance(value, str) else None


def label(resource: ResourceLike, kind: str, *identities: str) -> str:
    """How a message names a resource: ``kind`` and the first name the resource has.

    The names tried, in order: the properties ``identities`` (default ``name``), the ``Name`` tag,
    then the resource's logical name. ``label(bucket, "bucket", "bucket")`` -> ``bucket pacs-dev``.
    """
    for identity in identities or ("name",):
        value = resource.props.get(identity)
        if isinstance(value, str) and value:
            return f"{kind} {value}"
    name = tag(resource, "Name")
    return f"{kind} {name}" if name else f"{kind} {resource.name}"


def customer_key(value: Any, service: str) -> bool:
    """Whether a KMS key argument names a customer-managed key: set, and not the service's
    AWS-managed key (``alias/aws/<service>``, by alias name or alias ARN)."""
    return bool(value) and not str(value).endswith(f"alias/aws/{service}")


# --- ARNs and accounts -------------------------------------------------------------------------

# arn:partition:service:region:account[:resource] (the resource may itself hold colons).
_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):(?P<service>[^:]*):(?P<region>[^:]*):(?P<account>[^:]*)"
    r"(?::(?P<resource>.*))?$"
)
_ACCOUNT_ID = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str


def parse_arn(value: Any) -> Arn | None:
    """An ARN (or ARN pattern) split in its fields, or None when ``value`` is not one."""
    match = _ARN.match(value) if isinstance(value, str) else None
    if not match:
        return None
    return Arn(**{k: v or "" for k, v in match.groupdict().items()})


def account(value: str) -> str | None:
    """The account a value names: a bare 12-digit id, or the account field of an ARN."""
    if _ACCOUNT_ID.match(value):
        return value
    parsed = parse_arn(value)
    return parsed.account if parsed and _ACCOUNT_ID.match(parsed.account) else None


# --- IAM and resource policy documents ---------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One statement of a policy document, with its list-or-string fields as tuples."""

    sid: str
    effect: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    resources: tuple[str, ...]
    principal: Any
    condition: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allows(self) -> bool:
        return self.effect == "Allow"

    def principals(self) -> list[str]:
        """Every principal value (``"*"`` for the anonymous principal)."""
        if self.principal is None:
            return []
        if isinstance(self.principal, str):
            return [self.principal]
        if isinstance(self.principal, Mapping):
            return [str(p) for v in self.principal.values() for p in items(v)]
        return [str(p) for p in items(self.principal)]  # malformed; IAM refuses it

    def conditions(self) -> list[tuple[str, str, list[str]]]:
        """(operator, key in lower case, values) of every condition of the statement."""
        found: list[tuple[str, str, list[str]]] = []
        for operator, block in self.condition.items():
            if isinstance(block, Mapping):
                for key, value in block.items():
                    found.append((str(operator), str(key).lower(), [str(v) for v in items(value)]))
        return found

    def service_principals(self) -> list[str]:
        """The AWS service principals of the statement (``Principal: {"Service": ...}``)."""
        if isinstance(self.principal, Mapping):
            return [str(p) for p in items(self.principal.get("Service"))]
        return []

    def non_service_principals(self) -> list[str]:
        """The principals that are not AWS services: accounts, users, roles, IdPs, ``*``."""
        if isinstance(self.principal, str):
            return [self.principal]
        if isinstance(self.principal, Mapping):
            return [str(p) for k, v in self.principal.items() if k != "Service" for p in items(v)]
        return []

    def condition_keys(self) -> dict[str, list[str]]:
        """Condition key (lower case) -> values, over every operator."""
        keys: dict[str, list[str]] = {}
        for block in self.condition.values():
            if isinstance(block, Mapping):
                for key, value in block.items():
                    keys.setdefault(str(key).lower(), []).extend(str(v) for v in items(value))
        return keys


class DocumentError(ValueError):
    """A policy property that is not a readable policy document."""


def document(value: Any) -> Mapping[str, Any]:
    """A policy property (JSON string or mapping) as a mapping; raises DocumentError.

    An absent or empty property (``None``, ``""``: how outputs show an unset policy) is an empty
    document: no statements.
    """
    if isinstance(value, Mapping):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if not isinstance(value, str):
        raise DocumentError(f"expected a JSON policy document, got {type(value).__name__}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise DocumentError("a policy document is a JSON object")
    return parsed


def statements(value: Any) -> list[Statement]:
    """The statements of a policy document property."""
    doc = document(value)
    return [
        Statement(
            sid=str(s.get("Sid", "")),
            effect=str(s.get("Effect", "")),
            actions=tuple(str(a) for a in items(s.get("Action"))),
            not_actions=tuple(str(a) for a in items(s.get("NotAction"))),
            resources=tuple(str(r) for r in items(s.get("Resource"))),
            principal=s.get("Principal"),
            # A Condition that is not an object is no condition (IAM refuses such a document).
            condition=s["Condition"] if isinstance(s.get("Condition"), Mapping) else {},
        )
        for s in items(doc.get("Statement"))
        if isinstance(s, Mapping)
    ]


def iam_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard matching: ``*`` any run of characters, ``?`` one; nothing else is special
    (unlike fnmatch, ``[...]`` is literal)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL
    return re.fullmatch(regex, value, flags) is not None


def action_matches(pattern: str, action: str) -> bool:
    """Whether an IAM action pattern (``s3:Delete*``, ``*``) covers an action (case-insensitive)."""
    return iam_match(pattern, action, ignore_case=True)


def wildcard_actions(statement: Statement) -> list[str]:
    """The actions of a statement written as patterns (``*``, ``s3:*``, ``s3:Get*``)."""
    return [a for a in statement.actions if "*" in a or "?" in a]


def grants(statement: Statement, action: str) -> bool:
    """Whether an Allow statement grants an action (a pattern grant, or NotAction, included)."""
    if not statement.allows:
        return False
    if statement.not_actions:
        return not any(action_matches(p, action) for p in statement.not_actions)
    return any(action_matches(p, action) for p in statement.actions)


def _positive(operator: str) -> bool:
    """An operator that a request lacking the key fails: no negation, no IfExists, no
    ForAllValues (true of an empty set), no Null (tests presence, not value)."""
    return not (
        "Not" in operator or "IfExists" in operator or operator.startswith(("ForAllValues", "Null"))
    )


# Keys whose value is an ARN that may be pinned by an ARN pattern (see _fixed).
_ARN_PATTERN_KEYS = ("aws:sourcearn",)


def _fixed(operator: str, key: str, value: str) -> bool:
    """Whether a condition value admits one fixed value (or, for an ARN key, one account).

    A value with ``*`` or ``?`` normally admits anything. But ArnLike/ArnEquals match each of the
    six colon-separated fields of an ARN separately, so a wildcard cannot reach across a colon:
    ``arn:aws:logs:us-east-1:123456789012:*`` under ArnLike aws:SourceArn admits only resources of
    that service in that account. Such a pattern scopes to the account when its partition and
    service are fixed and its account field is a fixed 12-digit id. (Under StringLike a ``*``
    spans colons, so the same pattern pins nothing there.)
    """
    if not value:
        return False
    if "*" not in value and "?" not in value:
        return True
    if key not in _ARN_PATTERN_KEYS or not operator.split(":")[-1].startswith("Arn"):
        return False
    parsed = parse_arn(value)
    return (
        parsed is not None
        and bool(_ACCOUNT_ID.match(parsed.account))
        and bool(parsed.service)
        and not any(c in parsed.partition + parsed.service for c in "*?")
    )


def pins(statement: Statement, keys: Sequence[str]) -> bool:
    """Whether a statement requires one of ``keys`` (lower case) to equal fixed values.

    Only a positive operator pins (see _positive): ``StringNotEquals aws:SourceAccount``,
    ``StringEqualsIfExists`` (a request without the key passes) and ``ForAllValues:`` do not; nor
    does a value that is empty or a wildcard pattern (``StringLike aws:PrincipalAccount "*"``),
    except an account-pinned ARN pattern under ArnLike (see _fixed).
    """
    return any(
        _positive(operator)
        and key in keys
        and bool(values)
        and all(_fixed(operator, key, v) for v in values)
        for operator, key, values in statement.conditions()
    )


# Conditions that tie an anonymous-principal Allow to this account, an organization or a network.
SCOPING_CONDITION_KEYS = (
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceowner",
    "aws:principalaccount",
    "aws:principalorgid",
    "aws:sourcevpce",
    "aws:sourcevpc",
    "kms:calleraccount",
)


def anonymous_allows(policy: Any) -> list[Statement]:
    """Allow statements of a resource policy open to Principal '*' that no condition pins to an
    account, organization or network (:func:`pins` over SCOPING_CONDITION_KEYS)."""
    return [
        s
        for s in statements(policy)
        if s.allows
        and any(p == "*" for p in s.principals())
        and not pins(s, SCOPING_CONDITION_KEYS)
    ]


def anonymous_allow_messages(policy: Any) -> list[str]:
    """What :func:`anonymous_allows` finds, as messages naming each statement."""
    return [
        f"statement {s.sid or '(no Sid)'} allows Principal '*' unconditionally"
        for s in anonymous_allows(policy)
    ]


def denials(policy: Any, service: str, actions: Iterable[str] = ()) -> list[Statement]:
    """Deny statements of a resource policy that apply to everyone (Principal '*') and cover every
    action of the service (``*``, ``<service>:*``) or one of ``actions`` (case-insensitive)."""
    covered = {"*", f"{service}:*".lower(), *(a.lower() for a in actions)}
    return [
        s
        for s in statements(policy)
        if s.effect == "Deny"
        and "*" in s.principals()
        and any(a.lower() in covered for a in s.actions)
    ]


def covers(patterns: Sequence[str], arn: str) -> bool:
    """Whether a statement's Resource patterns (``*``/``?`` wildcards) cover an ARN."""
    return any(p == "*" or iam_match(p, arn) for p in patterns)


# Operators under which aws:SecureTransport "false" names exactly the requests made without TLS
# (BoolIfExists also denies a request lacking the key, which only widens the deny).
_TRANSPORT_OPERATORS = ("Bool", "BoolIfExists")


def sole_condition(statement: Statement) -> tuple[str, str, list[str]] | None:
    """The statement's only condition (operator, key in lower case, values), or None when it has
    none or several: a Deny whose conditions are ANDed with another test applies more narrowly."""
    if not isinstance(statement.condition, Mapping):
        return None
    found = statement.conditions()
    if len(found) != 1 or len(statement.condition) != 1:
        return None
    return found[0]


def denies_insecure_transport(
    policy: Any, service: str, actions: Iterable[str] = (), resources: Iterable[str] = ()
) -> bool:
    """Whether a resource policy denies everyone the service's actions (or all, or one of
    ``actions``) whenever the request is not made over TLS.

    The deny counts only when its one condition is aws:SecureTransport "false" under ``Bool`` (or
    ``BoolIfExists``): any other condition beside it (``StringEquals aws:SourceVpce``, ``Null
    aws:SecureTransport "true"``) is ANDed with it and narrows (or voids) the deny; a negated
    operator denies TLS instead. With ``resources``, the deny's Resource must also cover every one
    of these ARNs (``*`` does).
    """
    required = list(resources)
    for s in denials(policy, service, actions):
        condition = sole_condition(s)
        if condition is None:
            continue
        operator, key, values = condition
        if (
            key == "aws:securetransport"
            and operator in _TRANSPORT_OPERATORS
            and "false" in [v.lower() for v in values]
            and all(covers(s.resources, arn) for arn in required)
        ):
            return True
    return False


def messages(*checks: tuple[bool, str]) -> Iterator[str]:
    """The messages of the checks that fail: ``messages((ok, "must hold"), ...)``."""
    for ok, message in checks:
        if not ok:
            yield message


# --- plaintext secrets -------------------------------------------------------------------------

# A variable named with one of these words (or pairs) holds a credential...
SECRET_WORDS = frozenset(
    {
        "SECRET",
        "SECRETS",
        "PASSWORD",
        "PASSWORDS",
        "PASSWD",
        "PASS",
        "PWD",
        "PASSPHRASE",
        "TOKEN",
        "TOKENS",
        "CREDENTIAL",
        "CREDENTIALS",
        "CREDS",
        "APIKEY",
        "PRIVATEKEY",
        # An authentication value (PARTNER_AUTH, BASIC_AUTH), an HMAC secret. PRIVATE alone is
        # not a credential's name (PRIVATE_DNS, PRIVATE_SUBNET): PRIVATE KEY is, as a pair.
        "AUTH",
        "HMAC",
        "PASSCODE",
    }
)
SECRET_PAIRS = frozenset(
    {
        ("PRIVATE", "KEY"),
        ("API", "KEY"),
        ("ACCESS", "KEY"),
        ("SECRET", "KEY"),
        ("ENCRYPTION", "KEY"),
        ("SIGNING", "KEY"),
        ("HMAC", "KEY"),
        ("MASTER", "KEY"),
        ("CONNECTION", "STRING"),
    }
)
# ...or containing one of these, however it is written (DBPASSWORD, myApiKey), or ending in KEY
# (TLS_KEY, KEY)...
SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|PASSPHRASE|PASSCODE|TOKEN|CREDENTIAL|HMAC|PRIVATE_?KEY|API_?KEY"
    r"|ACCESS_?KEY",
    re.IGNORECASE,
)
# ...unless its last word says it holds a reference or a property of the credential, not the
# credential itself: PACS_SIGNING_KEY_ARN holds a KMS key's ARN, DB_SECRET_NAME a secret's name.
REFERENCE_SUFFIXES = frozenset(
    {
        "ARN",
        "ARNS",
        "ID",
        "IDS",
        "NAME",
        "NAMES",
        "ALIAS",
        "PARAMETER",
        "PARAM",
        "PATH",
        "FILE",
        "URL",
        "URI",
        "ENDPOINT",
        "HEADER",
        "REGION",
        "TTL",
        "TIMEOUT",
        "SECONDS",
        "EXPIRY",
        "LENGTH",
        "TYPE",
        "FORMAT",
        # Properties of how one authenticates, not the credential: PARTNER_AUTH_MODE=iam.
        "MODE",
        "METHOD",
        "SCHEME",
        "PROVIDER",
        "ALGORITHM",
        "ENABLED",
        "ISSUER",
        "AUDIENCE",
        "REALM",
        "SCOPE",
        "SCOPES",
    }
)
# Values that are references to a store of secrets, whatever the variable's name: a well-formed
# ARN (arn:partition:service:region:account:resource; an S3 ARN alone names no region or account,
# every other service names its 12-digit account), a KMS alias, or a Secrets Manager reference
# through SSM. A value merely starting with "arn:" (arn:aws:secretsmanager:hunter2) is a literal.
REFERENCE_VALUE = re.compile(
    r"^(?:arn:aws(?:-[a-z]+)*:(?:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/\S*)?"
    r"|[a-z0-9-]+:(?:[a-z]{2}(?:-[a-z]+)+-\d)?:\d{12}:\S+)$"
    r"|alias/|/aws/reference/secretsmanager/)"
)
# Values that are credentials, whatever the variable's name: (kind, pattern). A message names the
# kind, never the value.
SECRET_VALUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b")),
    ("key material", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),  # a PEM private key
    (
        "a URL with a password",
        re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),
    ),
    (
        "a service token",
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"
            r"|xox[abposr]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,}"
            r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.)"
        ),
    ),
)
# An AWS secret access key: 40 base64 characters, mixed case and digits (a hex digest is not).
SECRET_ACCESS_KEY = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
# Public PEM material (certificates, public keys): its base64 lines are not secret access keys.
PUBLIC_PEM = re.compile(
    r"-----BEGIN (?![A-Z0-9 ]*PRIVATE)([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL
)


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.upper()) if w]


def secret_name(name: str) -> bool:
    """Whether a variable's name announces a credential (and not a reference to one)."""
    words = _words(name)
    if not words or words[-1] in REFERENCE_SUFFIXES:
        return False
    return (
        bool(SECRET_WORDS & set(words))
        or any(pair in SECRET_PAIRS for pair in itertools.pairwise(words))
        or bool(SECRET_NAME.search(name))
        or words[-1] == "KEY"
    )


def secret_in_text(text: str) -> str | None:
    """What kind of credential a text (a value, a command line) holds, if it holds one."""
    for kind, pattern in SECRET_VALUES:
        if pattern.search(text):
            return kind
    for candidate in SECRET_ACCESS_KEY.findall(PUBLIC_PEM.sub("", text)):
        if (
            re.search(r"[a-z]", candidate)
            and re.search(r"[A-Z]", candidate)
            and re.search(r"[0-9]", candidate)
        ):
            return "an AWS secret access key"
    return None


def plaintext_secrets(variables: Mapping[str, Any]) -> list[str]:
    """``<name> holds <kind>`` for each variable holding a credential in plaintext: a value that
    is one (whatever the name), or a literal (not a reference such as an ARN) under a name that
    announces one. The messages name the variable and the kind, never the value."""
    found: list[str] = []
    for name, value in variables.items():
        text = "" if value is None else str(value)
        kind = secret_in_text(text)
        if kind:
            found.append(f"{name} holds {kind}")
        elif text and secret_name(str(name)) and not REFERENCE_VALUE.match(text):
            found.append(f"{name} holds a literal secret")
    return found
