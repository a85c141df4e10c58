"""Identity: every role bounded and least-privileged, people in through federation with MFA for at
most an hour, workloads trusted only on behalf of this account, and no long-lived credentials."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    DocumentError,
    Finding,
    Meta,
    ResourceLike,
    Setting,
    Stack,
    Statement,
    document,
    get,
    grants,
    items,
    label,
    resource_policy,
    stack_policy,
    statements,
    tag,
    truthy,
    wildcard_actions,
)

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
ROLE_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
POLICY_ATTACHMENT = "aws:iam/policyAttachment:PolicyAttachment"
USER_ATTACHMENT = "aws:iam/userPolicyAttachment:UserPolicyAttachment"
GROUP_ATTACHMENT = "aws:iam/groupPolicyAttachment:GroupPolicyAttachment"
ATTACHMENTS = (ROLE_ATTACHMENT, POLICY_ATTACHMENT, USER_ATTACHMENT, GROUP_ATTACHMENT)
USER = "aws:iam/user:User"
ACCESS_KEY = "aws:iam/accessKey:AccessKey"
LOGIN_PROFILE = "aws:iam/userLoginProfile:UserLoginProfile"
LONG_LIVED_CREDENTIALS = (
    USER,
    ACCESS_KEY,
    LOGIN_PROFILE,
    "aws:iam/sshKey:SshKey",
    "aws:iam/serviceSpecificCredential:ServiceSpecificCredential",
    "aws:iam/signingCertificate:SigningCertificate",
)
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"

HUMAN_SESSION_SECONDS = 3600  # 45 CFR 164.312(a)(2)(iii): a human session ends within the hour
# REFEDS MFA Profile: the eduPersonAssurance value an IdP releases only after a second factor.
REFEDS_MFA = "https://refeds.org/profile/mfa"
# The role IAM Identity Center creates per permission set (path reserved to Identity Center, with
# the Identity Center region in newer instances). The 16-character suffix may be written as '?'
# (it changes when the role is re-created); nothing else may be a wildcard: '*' would match other
# permission sets (their names may contain '_') or other paths.
IDENTITY_CENTER_ROLE = re.compile(
    r"^arn:aws[a-z-]*:iam::\d{12}:role/aws-reserved/sso\.amazonaws\.com/(?:[a-z0-9-]+/)?"
    r"AWSReservedSSO_[A-Za-z0-9+=,.@_-]{1,32}_[0-9A-Za-z?]{16}$"
)
# Operators that pin a single-valued key to the listed values (no IfExists: absent would pass).
PINNING_OPERATORS = ("StringEquals", "StringLike", "ArnEquals", "ArnLike")
# Keys with which a service principal's trust is tied to this account (confused-deputy guard).
SOURCE_KEYS = ("aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid", "aws:sourceorgpaths")
SOURCE_OPERATORS = (*PINNING_OPERATORS, "ForAnyValue:StringEquals", "ForAnyValue:StringLike")

# What no role may be granted, whatever the resource: destroying archived data or its index,
# bypassing, shortening or reconfiguring Object Lock, letting data go through the bucket's policy,
# versioning, lifecycle or replication, or making the key that encrypts it unusable. Concrete
# actions: a grant written as a pattern (s3:*, s3:Delete*, kms:*) is matched against them.
DESTRUCTIVE_ACTIONS = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:BypassGovernanceRetention",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketPolicy",
    "s3:PutBucketVersioning",
    # Lifecycle expiration deletes objects (and noncurrent versions) on the role's behalf.
    "s3:PutLifecycleConfiguration",
    "s3:PutReplicationConfiguration",
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:DeleteImportedKeyMaterial",
    "kms:PutKeyPolicy",
    "dynamodb:DeleteTable",
    "dynamodb:UpdateContinuousBackups",
    "backup:DeleteBackupVault",
    "backup:DeleteRecoveryPoint",
    "backup:DeleteBackupVaultLockConfiguration",
)
# Actions with which a role grants itself (or a principal it makes) more than it was given.
ESCALATION_ACTIONS = (
    "iam:AddUserToGroup",
    "iam:AttachGroupPolicy",
    "iam:AttachRolePolicy",
    "iam:AttachUserPolicy",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:CreatePolicyVersion",
    "iam:CreateRole",
    "iam:CreateUser",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
    "iam:PutGroupPolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:PutUserPermissionsBoundary",
    "iam:PutUserPolicy",
    "iam:SetDefaultPolicyVersion",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateLoginProfile",
)
# Allowed only on named resources: passing or assuming "any role" reaches every role's power.
NAMED_RESOURCE_ACTIONS = ("iam:PassRole", "sts:AssumeRole")


# --- reading roles and their grants ------------------------------------------------------------


def _trust(role: ResourceLike) -> list[Statement]:
    return statements(role.props.get("assumeRolePolicy"))


def _not_principal_allows(role: ResourceLike) -> list[Mapping[str, Any]]:
    """Allow statements of a trust written with NotPrincipal (everyone but the listed)."""
    doc = document(role.props.get("assumeRolePolicy"))
    return [
        s
        for s in items(doc.get("Statement"))
        if isinstance(s, Mapping) and s.get("Effect") == "Allow" and "NotPrincipal" in s
    ]


def _human_statements(role: ResourceLike) -> list[Statement]:
    """Allow statements of a role's trust that admit people (anything but an AWS service)."""
    return [s for s in _trust(role) if s.allows and s.non_service_principals()]


def _is_human(role: ResourceLike) -> bool:
    return bool(_human_statements(role)) or bool(_not_principal_allows(role))


def _mfa_evidence(statement: Statement) -> bool:
    """Whether a trust statement only admits sessions that proved MFA, one of three ways.

    - ``Bool aws:MultiFactorAuthPresent "true"``: IAM users (or an account's MFA sessions).
    - ``ForAnyValue:StringEquals SAML:edupersonassurance`` the REFEDS MFA profile, and nothing
      else: STS carries no MFA context for SAML, the IdP's assertion states it.
    - ``aws:PrincipalArn`` pinned to IAM Identity Center permission-set roles: their sessions never
      carry MFA context (SAML underneath); Identity Center enforces MFA at sign-in.
    Conditions of a statement all hold together, so one of these in a statement suffices.
    """
    for operator, key, values in statement.conditions():
        if values and (
            (
                operator == "Bool"
                and key == "aws:multifactorauthpresent"
                and all(v.lower() == "true" for v in values)
            )
            or (
                operator == "ForAnyValue:StringEquals"
                and key == "saml:edupersonassurance"
                and all(v == REFEDS_MFA for v in values)
            )
            or (
                operator in PINNING_OPERATORS
                and key == "aws:principalarn"
                and all(IDENTITY_CENTER_ROLE.match(v) for v in values)
            )
        ):
            return True
    return False


def _boundary_only(stack: Stack, policy: Any) -> bool:
    """A managed policy that is some role's permissions boundary and granted to no principal.

    A boundary grants nothing: IAM intersects it with the role's own policies, so its Allow is a
    ceiling, which the stack writes as Allow + NotAction over the gravest actions (no wildcard).
    """
    bounds = any(
        stack.refers(r, "permissionsBoundary", policy, "name") for r in stack.of_type(ROLE)
    )
    attached = any(stack.attached(policy, t, "policyArn", "name") for t in ATTACHMENTS) or any(
        stack.refers(r, "managedPolicyArns", policy, "name") for r in stack.of_type(ROLE)
    )
    return bounds and not attached


def _documents(stack: Stack) -> Iterator[tuple[Any, str, Any]]:
    """(resource, label, document) of every identity policy that grants: inline and managed."""
    for resource in stack.of_type(ROLE_POLICY, USER_POLICY, GROUP_POLICY):
        props = resource.props
        owner = next((props[k] for k in ("role", "user", "group") if k in props), "")
        yield resource, f"policy {resource.name} of {owner}", resource.props.get("policy")
    for role in stack.of_type(ROLE):
        for inline in items(role.props.get("inlinePolicies")):
            if isinstance(inline, Mapping) and inline.get("policy"):
                title = f"inline policy {inline.get('name', '?')} of {label(role, 'role')}"
                yield role, title, inline.get("policy")
    for policy in stack.of_type(POLICY):
        if not _boundary_only(stack, policy):
            yield policy, label(policy, "managed policy"), policy.props.get("policy")


def _role_documents(stack: Stack, role: Any) -> list[tuple[str, Any]]:
    """(label, document) of every policy of the stack that grants the role something."""
    found = [
        (f"policy {p.name}", p.props.get("policy"))
        for p in stack.attached(role, ROLE_POLICY, "role", "name")
    ]
    found += [
        (f"inline policy {i.get('name', '?')}", i.get("policy"))
        for i in items(role.props.get("inlinePolicies"))
        if isinstance(i, Mapping) and i.get("policy")
    ]
    for policy in stack.of_type(POLICY):
        through_attachment = any(
            stack.refers(a, "policyArn", policy, "name")
            for a in stack.attached(role, ROLE_ATTACHMENT, "role", "name")
            + stack.attached(role, POLICY_ATTACHMENT, "roles", "name")
        )
        if through_attachment or stack.refers(role, "managedPolicyArns", policy, "name"):
            found.append((label(policy, "managed policy"), policy.props.get("policy")))
    return found


# --- policies ----------------------------------------------------------------------------------


@stack_policy(
    Meta(
        id="aws-iam-role-require-permissions-boundary",
        description="Every IAM role carries the stack's permissions boundary.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.HIGH,
        remediation="Set permissions_boundary on the aws.iam.Role to the ARN of the stack's "
        "boundary aws.iam.Policy (the kit's PermissionsBoundary component), or to a boundary ARN "
        "listed in boundaryPolicyArns (an organization's own boundary).",
        subjects=(ROLE,),
        settings=(
            Setting(
                "boundaryPolicyArns",
                "ARNs of boundary policies managed outside the stack that roles may carry",
                [],
                {"type": "array", "items": {"type": "string"}},
            ),
        ),
    )
)
def require_permissions_boundary(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    external = set(config["boundaryPolicyArns"])
    policies = stack.of_type(POLICY)
    for role in stack.of_type(ROLE):
        boundary = role.props.get("permissionsBoundary")
        if not boundary:
            yield (
                role,
                f"{label(role, 'role')} must carry a permissions boundary (permissionsBoundary)",
            )
        elif boundary not in external and not any(
            stack.refers(role, "permissionsBoundary", p, "name") for p in policies
        ):
            yield (
                role,
                f"{label(role, 'role')}: permissions boundary {boundary} is neither a policy of "
                "the stack nor listed in boundaryPolicyArns",
            )


@resource_policy(
    Meta(
        id="aws-iam-human-role-require-mfa",
        description="A role people assume trusts them only with proof of MFA.",
        practice=c.HUMAN_ACCESS,
        safeguard=c.PERSON_AUTHENTICATION,
        severity=Severity.CRITICAL,
        remediation="In the aws.iam.Role's assume_role_policy, give every Allow statement for a "
        "non-service principal one of: Bool aws:MultiFactorAuthPresent 'true' (IAM users); a SAML "
        "provider with ForAnyValue:StringEquals SAML:edupersonassurance "
        "'https://refeds.org/profile/mfa'; or ArnLike aws:PrincipalArn on IAM Identity Center "
        "permission-set roles (AWSReservedSSO_<set>_<suffix>, MFA enforced by Identity Center). "
        "The kit's human_trust_policy writes these; any other role or IdP cannot prove MFA.",
        subjects=(ROLE,),
    )
)
def human_role_require_mfa(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    try:
        human = _human_statements(resource)
    except DocumentError as exc:
        yield f"{label(resource, 'role')}: trust policy unreadable ({exc})"
        return
    for s in human:
        if not _mfa_evidence(s):
            yield (
                f"{label(resource, 'role')}: trust statement {s.sid or '(no Sid)'} admits "
                f"{', '.join(s.non_service_principals())} without proof of MFA "
                "(aws:MultiFactorAuthPresent, the SAML REFEDS MFA assurance, or an Identity "
                "Center permission-set role)"
            )


@resource_policy(
    Meta(
        id="aws-iam-human-role-max-session-1h",
        description="A role people assume ends their session within an hour.",
        practice=c.HUMAN_ACCESS,
        safeguard=c.AUTOMATIC_LOGOFF,
        severity=Severity.MEDIUM,
        remediation="Set max_session_duration on the aws.iam.Role to at most 3600 seconds (or "
        "leave it unset: AWS defaults to 3600); maxSessionSeconds may only tighten this.",
        subjects=(ROLE,),
        settings=(
            Setting(
                "maxSessionSeconds",
                "Longest session of a human role, in seconds (AWS allows no less than 900)",
                HUMAN_SESSION_SECONDS,
                {"type": "integer", "minimum": 900, "maximum": HUMAN_SESSION_SECONDS},
            ),
        ),
    )
)
def human_role_max_session(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not _is_human(resource):
        return
    limit = min(int(config["maxSessionSeconds"]), HUMAN_SESSION_SECONDS)
    seconds = float(resource.props.get("maxSessionDuration") or HUMAN_SESSION_SECONDS)
    if seconds > limit:
        yield (
            f"{label(resource, 'role')} is assumed by people: maxSessionDuration is {seconds:.0f} "
            f"seconds, must be at most {limit}"
        )


@resource_policy(
    Meta(
        id="aws-iam-role-trust-no-wildcard-principal",
        description="No role trusts every principal.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.CRITICAL,
        remediation="Name the trusted principals in the aws.iam.Role's assume_role_policy (the "
        "AWS service, the SAML provider, the account or the Identity Center roles): never "
        "Principal '*' or {'AWS': '*'}, and never Allow with NotPrincipal.",
        subjects=(ROLE,),
    )
)
def trust_no_wildcard_principal(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    title = label(resource, "role")
    for s in _trust(resource):
        if s.allows and "*" in s.principals():
            yield f"{title}: trust statement {s.sid or '(no Sid)'} admits Principal '*'"
    for raw in _not_principal_allows(resource):
        sid = raw.get("Sid") or "(no Sid)"
        yield f"{title}: trust statement {sid} allows everyone but its NotPrincipal"


@resource_policy(
    Meta(
        id="aws-iam-role-service-trust-require-source",
        description="A role an AWS service assumes is assumed only on behalf of this account.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.HIGH,
        remediation="In the aws.iam.Role's assume_role_policy, condition every Allow statement "
        "for a service principal on StringEquals aws:SourceAccount (the account id) and, where "
        "the service sends it, ArnLike aws:SourceArn (the kit's service_trust_policy does). Only "
        "services that send neither key may be listed in unscopedServicePrincipals.",
        subjects=(ROLE,),
        settings=(
            Setting(
                "unscopedServicePrincipals",
                "Service principals that send no aws:SourceAccount/aws:SourceArn when assuming "
                "a role (their trust cannot be scoped)",
                [],
                {"type": "array", "items": {"type": "string"}},
            ),
        ),
    )
)
def service_trust_require_source(
    resource: ResourceLike, config: Mapping[str, Any]
) -> Iterator[str]:
    unscoped = set(config["unscopedServicePrincipals"])
    for s in _trust(resource):
        services = [p for p in s.service_principals() if p not in unscoped]
        if not s.allows or not services:
            continue
        scoped = any(
            operator in SOURCE_OPERATORS
            and key in SOURCE_KEYS
            and values
            and not any(set(v) <= {"*", "?"} for v in values)
            for operator, key, values in s.conditions()
        )
        if not scoped:
            yield (
                f"{label(resource, 'role')}: trust statement {s.sid or '(no Sid)'} lets "
                f"{', '.join(services)} assume the role for any account: condition it on "
                "aws:SourceAccount or aws:SourceArn"
            )


@stack_policy(
    Meta(
        id="aws-iam-no-wildcard-actions",
        description="No identity policy allows a wildcard action or everything but a list.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.HIGH,
        remediation="Name the exact actions in every Allow statement of aws.iam.RolePolicy, "
        "aws.iam.Policy and the aws.iam.Role's inline_policies (no '*', 's3:*', 's3:Get*'), and "
        "write Allow with Action, not NotAction. A managed policy used only as a permissions "
        "boundary (attached to no principal) may write its ceiling as Allow + NotAction.",
        subjects=(ROLE_POLICY, POLICY, ROLE, USER_POLICY, GROUP_POLICY),
    )
)
def no_wildcard_actions(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for resource, title, doc in _documents(stack):
        for s in statements(doc):
            if not s.allows:
                continue  # a wildcard in a Deny only takes power away
            sid = s.sid or "(no Sid)"
            wild = wildcard_actions(s)
            if wild:
                yield resource, f"{title}: statement {sid} allows wildcard {', '.join(wild)}"
            if s.not_actions:
                yield resource, f"{title}: statement {sid} allows everything but its NotAction"


@stack_policy(
    Meta(
        id="aws-iam-role-no-delete-or-lock-bypass",
        description="No role may delete archived data, bypass or change its Object Lock, or "
        "disable the key that encrypts it.",
        practice=c.IMMUTABLE_ARCHIVE,
        safeguard=c.INTEGRITY,
        severity=Severity.CRITICAL,
        remediation="Remove the destructive actions (s3:DeleteObject*, s3:DeleteBucket*, "
        "s3:BypassGovernanceRetention, s3:PutObjectRetention, s3:PutObjectLegalHold, "
        "s3:PutBucketObjectLockConfiguration, s3:PutBucketPolicy, s3:PutBucketVersioning, "
        "s3:PutLifecycleConfiguration, s3:PutReplicationConfiguration, kms:ScheduleKeyDeletion, "
        "kms:DisableKey, kms:PutKeyPolicy, dynamodb:DeleteTable, backup:Delete*) and any pattern "
        "covering them (s3:*, s3:Delete*) from the role's aws.iam.RolePolicy, inline_policies "
        "and attached aws.iam.Policy. Objects leave the inbox by lifecycle expiration; the "
        "archive by its retention, never by a role.",
        subjects=(ROLE,),
    )
)
def no_delete_or_lock_bypass(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for role in stack.of_type(ROLE):
        for title, doc in _role_documents(stack, role):
            for s in statements(doc):
                granted = [a for a in DESTRUCTIVE_ACTIONS if grants(s, a)]
                if granted:
                    yield (
                        role,
                        f"{label(role, 'role')}: {title} statement {s.sid or '(no Sid)'} allows "
                        f"{', '.join(granted)}",
                    )


def _admin_policy(arn: str) -> bool:
    """An AWS-managed policy granting administration or a whole service."""
    match = re.match(r"^arn:aws[a-z-]*:iam::aws:policy/(.*)$", arn)
    if not match:
        return False
    path, _, name = match.group(1).rpartition("/")
    return (
        name.startswith("AdministratorAccess")
        or name in ("PowerUserAccess", "IAMFullAccess")
        or "FullAccess" in name
        # job-function/SystemAdministrator, DatabaseAdministrator, NetworkAdministrator
        or (path.startswith("job-function") and name.endswith("Administrator"))
    )


@resource_policy(
    Meta(
        id="aws-iam-no-admin-policy-attachments",
        description="No principal is given an administrator, power-user or full-access "
        "AWS-managed policy.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.CRITICAL,
        remediation="Remove the aws.iam.RolePolicyAttachment (or PolicyAttachment, "
        "UserPolicyAttachment, GroupPolicyAttachment, or the Role's managed_policy_arns entry) of "
        "AdministratorAccess, PowerUserAccess, IAMFullAccess or any *FullAccess policy; grant the "
        "exact actions in an aws.iam.RolePolicy instead. Narrow service-role policies (e.g. "
        "AWSBackupServiceRolePolicyForBackup) are fine; allowedManagedPolicyArns admits others.",
        subjects=(*ATTACHMENTS, ROLE),
        settings=(
            Setting(
                "allowedManagedPolicyArns",
                "AWS-managed policy ARNs admitted although their name marks full access",
                [],
                {"type": "array", "items": {"type": "string"}},
            ),
        ),
    )
)
def no_admin_attachments(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    allowed = set(config["allowedManagedPolicyArns"])
    if resource.resource_type == ROLE:
        arns = [str(a) for a in items(resource.props.get("managedPolicyArns"))]
        title = label(resource, "role")
    else:
        arns = [str(resource.props.get("policyArn") or "")]
        title = f"attachment {resource.name}"
    for arn in arns:
        if arn not in allowed and _admin_policy(arn):
            yield f"{title} grants {arn}: attach least-privilege policies, never administration"


@resource_policy(
    Meta(
        id="aws-iam-no-users-or-access-keys",
        description="The stack's principals are roles only: no IAM users, access keys, passwords "
        "or other long-lived credentials.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.PERSON_AUTHENTICATION,
        severity=Severity.HIGH,
        remediation="Remove the aws.iam.User, AccessKey, UserLoginProfile, SshKey, "
        "ServiceSpecificCredential or SigningCertificate: people federate (SAML or IAM Identity "
        "Center) into the stack's human roles, workloads assume roles; both get temporary "
        "credentials only.",
        # Roles are the principals the stack may declare: listed so the control matrix shows the
        # principals examined (a role never violates this policy).
        subjects=(*LONG_LIVED_CREDENTIALS, ROLE),
    )
)
def no_users_or_access_keys(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.resource_type == ROLE:
        return
    kind = resource.resource_type.rsplit(":", 1)[-1]
    yield (
        f"{kind} {resource.name} is a long-lived credential: people federate into roles, "
        "workloads assume roles"
    )


@stack_policy(
    Meta(
        id="aws-iam-no-privilege-escalation",
        description="No identity policy lets a principal raise its own or another's permissions.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.CRITICAL,
        remediation="Remove IAM write actions (iam:Put*Policy, iam:Attach*Policy, "
        "iam:CreatePolicyVersion, iam:SetDefaultPolicyVersion, iam:CreateRole/User/AccessKey/"
        "LoginProfile, iam:UpdateAssumeRolePolicy, iam:*PermissionsBoundary) from "
        "aws.iam.RolePolicy, inline_policies and aws.iam.Policy; grant iam:PassRole and "
        "sts:AssumeRole only on exact role ARNs (no wildcard resource). The deployer that runs "
        "`pulumi up` manages IAM, not the stack's roles.",
        subjects=(ROLE_POLICY, POLICY, ROLE, USER_POLICY, GROUP_POLICY),
    )
)
def no_privilege_escalation(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for resource, title, doc in _documents(stack):
        for s in statements(doc):
            sid = s.sid or "(no Sid)"
            granted = [a for a in ESCALATION_ACTIONS if grants(s, a)]
            if granted:
                yield resource, f"{title}: statement {sid} allows {', '.join(granted)}"
            wide = any("*" in r or "?" in r for r in s.resources) or not s.resources
            unnamed = [a for a in NAMED_RESOURCE_ACTIONS if grants(s, a) and wide]
            if unnamed:
                yield (
                    resource,
                    f"{title}: statement {sid} allows {', '.join(unnamed)} on a wildcard "
                    "resource: name the exact roles",
                )


def _names_role(text: str, role: ResourceLike) -> bool:
    path = str(role.props.get("path") or "/")
    name = str(role.props.get("name") or role.name)
    return re.search(rf":role{re.escape(path + name)}(?![\w+=,.@-])", text) is not None


def _alarmed(stack: Stack, metric_filter: Any) -> bool:
    """Whether a metric filter's metric has an alarm that notifies someone."""
    transformations = items(metric_filter.props.get("metricTransformation"))
    metrics = {(get(t, "namespace"), get(t, "name")) for t in transformations}
    for alarm in stack.of_type(METRIC_ALARM):
        watched = {(alarm.props.get("namespace"), alarm.props.get("metricName"))}
        watched |= {
            (get(q, "metric", "namespace"), get(q, "metric", "metricName"))
            for q in items(alarm.props.get("metricQueries"))
        }
        enabled = alarm.props.get("actionsEnabled")
        if (
            metrics & watched
            and items(alarm.props.get("alarmActions"))
            and (enabled is None or truthy(enabled))
        ):
            return True
    return False


@stack_policy(
    Meta(
        id="aws-iam-break-glass-role-alarmed",
        description="Assuming a break-glass role raises an alarm.",
        practice=c.HUMAN_ACCESS,
        safeguard=c.EMERGENCY_ACCESS,
        severity=Severity.HIGH,
        remediation="Declare an aws.cloudwatch.LogMetricFilter on the CloudTrail log group whose "
        "pattern matches the STS AssumeRole* events with requestParameters.roleArn the role's ARN, "
        "and an aws.cloudwatch.MetricAlarm on its metric with alarm_actions (the security topic). "
        "A metric filter on the multi-region trail sees every regional STS endpoint; an "
        "EventBridge rule sees only its own region and does not replace it.",
        subjects=(ROLE,),
        settings=(
            Setting(
                "breakGlassDuties",
                "Values of the `duty` tag that mark an emergency-access role",
                ["break-glass"],
                {"type": "array", "items": {"type": "string"}},
            ),
        ),
    )
)
def break_glass_alarmed(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    duties = set(config["breakGlassDuties"])
    filters = stack.of_type(METRIC_FILTER)
    for role in stack.of_type(ROLE):
        if tag(role, "duty") not in duties:
            continue
        watching = [f for f in filters if _names_role(str(f.props.get("pattern") or ""), role)]
        if not watching:
            yield (
                role,
                f"{label(role, 'role')} is for emergencies: a CloudTrail metric filter must match "
                "assuming it",
            )
        elif not any(_alarmed(stack, f) for f in watching):
            yield (
                role,
                f"{label(role, 'role')}: the metric filter matching its assumption must have an "
                "alarm with alarm actions",
            )


POLICIES = (
    require_permissions_boundary,
    human_role_require_mfa,
    human_role_max_session,
    trust_no_wildcard_principal,
    service_trust_require_source,
    no_wildcard_actions,
    no_delete_or_lock_bypass,
    no_admin_attachments,
    no_users_or_access_keys,
    no_privilege_escalation,
    break_glass_alarmed,
)
