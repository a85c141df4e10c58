"""Identity: every role bounded and least-privileged, people in through federation with MFA for at
most an hour, workloads trusted only on behalf of this account, and no long-lived credentials."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    STRING_LIST,
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
    parse_arn,
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
TOPIC = "aws:sns/topic:Topic"

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

# What no role may be granted, whatever the resource: destroying archived data, its index or its
# backups, bypassing, shortening or reconfiguring Object Lock, letting data go through the bucket's
# policy, public access block, encryption, versioning, lifecycle or replication, making the key that
# encrypts it unusable or handing it out (a grant), or blinding the audit trail (stopping or
# reconfiguring the trail, deleting or shortening its logs, their SIEM subscription and stream, the
# flow logs). Concrete actions: a grant written as a pattern (s3:*, logs:Delete*, kms:*) is matched
# against them.
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
    "kms:CreateGrant",  # unless only for AWS resources: see GRANT_FOR_AWS_RESOURCE
    "s3:PutBucketPublicAccessBlock",
    "s3:DeletePublicAccessBlock",
    "s3:PutEncryptionConfiguration",
    "dynamodb:DeleteTable",
    "dynamodb:UpdateContinuousBackups",
    "backup:DeleteBackupVault",
    "backup:DeleteRecoveryPoint",
    "backup:DeleteBackupVaultLockConfiguration",
    "backup:DeleteBackupPlan",
    "backup:DeleteBackupSelection",
    "backup:UpdateBackupPlan",
    "cloudtrail:StopLogging",
    "cloudtrail:DeleteTrail",
    "cloudtrail:UpdateTrail",
    "cloudtrail:PutEventSelectors",
    "logs:DeleteLogGroup",
    "logs:DeleteLogStream",
    "logs:DeleteSubscriptionFilter",
    "logs:PutRetentionPolicy",
    "logs:DeleteRetentionPolicy",
    "firehose:DeleteDeliveryStream",
    "firehose:UpdateDestination",
    "ec2:DeleteFlowLogs",
)
# kms:CreateGrant lets the grantee use the key as the role may. Conditioned on Bool
# kms:GrantIsForAWSResource "true", only an AWS service integrated with KMS (EBS, RDS, AWS Backup
# copying an encrypted recovery point) can create the grant, for a resource it manages on the
# role's request: that is how AWS documents service-role access (AWSBackupServiceRolePolicyFor-
# Backup does exactly this) and is admitted. No identity policy of the default stack grants it.
GRANT_FOR_AWS_RESOURCE = ("kms:CreateGrant",)
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
    "iam:CreateServiceLinkedRole",
    # Running code as another role: changing a function's code or configuration, creating a
    # function or task, starting instances or stacks (each runs with the role it is given), or
    # commanding instances and containers that already run as one.
    "lambda:CreateFunction",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:AddPermission",
    "ecs:RegisterTaskDefinition",
    "ecs:RunTask",
    "ecs:UpdateService",
    "ssm:SendCommand",
    "ssm:StartSession",
    "ec2:RunInstances",
    "cloudformation:CreateStack",
    "glue:CreateDevEndpoint",
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
                STRING_LIST,
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
                STRING_LIST,
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


def _only_for_aws_resources(statement: Statement) -> bool:
    """Whether a statement's kms:CreateGrant is limited to grants AWS services create for the
    resources they manage (Bool kms:GrantIsForAWSResource "true")."""
    return any(
        operator == "Bool"
        and key == "kms:grantisforawsresource"
        and bool(values)
        and all(v.lower() == "true" for v in values)
        for operator, key, values in statement.conditions()
    )


@stack_policy(
    Meta(
        id="aws-iam-role-no-delete-or-lock-bypass",
        description="No role may destroy, unlock or blind: delete archived data, its index or "
        "backups, bypass or change its Object Lock, open or re-key its buckets, disable or hand "
        "out the key that encrypts it, or stop, reconfigure or delete the audit trail and logs.",
        practice=c.IMMUTABLE_ARCHIVE,
        safeguard=c.INTEGRITY,
        severity=Severity.CRITICAL,
        remediation="Remove the destructive actions (s3:DeleteObject*, s3:DeleteBucket*, "
        "s3:BypassGovernanceRetention, s3:PutObjectRetention, s3:PutObjectLegalHold, "
        "s3:PutBucketObjectLockConfiguration, s3:PutBucketPolicy, s3:PutBucketVersioning, "
        "s3:PutLifecycleConfiguration, s3:PutReplicationConfiguration, "
        "s3:PutBucketPublicAccessBlock, s3:PutEncryptionConfiguration, kms:ScheduleKeyDeletion, "
        "kms:DisableKey, kms:PutKeyPolicy, dynamodb:DeleteTable, backup:Delete*, "
        "backup:UpdateBackupPlan, cloudtrail:StopLogging/DeleteTrail/UpdateTrail/"
        "PutEventSelectors, logs:Delete*, logs:PutRetentionPolicy, firehose:DeleteDeliveryStream, "
        "firehose:UpdateDestination, ec2:DeleteFlowLogs) and any pattern covering them (s3:*, "
        "s3:Delete*) from the role's aws.iam.RolePolicy, inline_policies and attached "
        "aws.iam.Policy; grant kms:CreateGrant only with Bool kms:GrantIsForAWSResource 'true'. "
        "Objects leave the inbox by lifecycle expiration; the archive by its retention, never by "
        "a role.",
        subjects=(ROLE,),
    )
)
def no_delete_or_lock_bypass(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for role in stack.of_type(ROLE):
        for title, doc in _role_documents(stack, role):
            for s in statements(doc):
                granted = [
                    a
                    for a in DESTRUCTIVE_ACTIONS
                    if grants(s, a)
                    and not (a in GRANT_FOR_AWS_RESOURCE and _only_for_aws_resources(s))
                ]
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


# The AWS-managed policies the default stack attaches (AWS Backup's service role, the Lambda
# functions' VPC access): narrow service-role policies, each reviewed.
DEFAULT_MANAGED_POLICY_ARNS = [
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
]


@stack_policy(
    Meta(
        id="aws-iam-no-admin-policy-attachments",
        description="Principals are given only managed policies of the stack or the reviewed "
        "AWS-managed policies of allowedManagedPolicyArns: never administration, power-user, "
        "full-access or any other policy managed outside the stack.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.CRITICAL,
        remediation="Remove the aws.iam.RolePolicyAttachment (or PolicyAttachment, "
        "UserPolicyAttachment, GroupPolicyAttachment) of any policy that is neither an "
        "aws.iam.Policy of the stack nor listed in allowedManagedPolicyArns (by default the "
        "AWS Backup service-role policies and AWSLambdaVPCAccessExecutionRole), and grant the "
        "exact actions in an aws.iam.RolePolicy instead. Attach managed policies with "
        "aws.iam.RolePolicyAttachment, not the aws.iam.Role's deprecated managed_policy_arns. "
        "Never list AdministratorAccess, PowerUserAccess, IAMFullAccess or *FullAccess.",
        subjects=(*ATTACHMENTS, ROLE),
        settings=(
            Setting(
                "allowedManagedPolicyArns",
                "AWS-managed policy ARNs principals may be given (the default is exactly those "
                "the default stack attaches)",
                DEFAULT_MANAGED_POLICY_ARNS,
                STRING_LIST,
            ),
        ),
    )
)
def no_admin_attachments(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    allowed = {str(a) for a in items(config["allowedManagedPolicyArns"])}
    policies = stack.of_type(POLICY)
    subjects: list[tuple[Any, str, str, list[str]]] = [
        (
            role,
            label(role, "role"),
            "managedPolicyArns",
            [str(a) for a in items(role.props.get("managedPolicyArns"))],
        )
        for role in stack.of_type(ROLE)
    ]
    subjects += [
        (a, f"attachment {a.name}", "policyArn", [str(a.props.get("policyArn") or "")])
        for a in stack.of_type(*ATTACHMENTS)
    ]
    for resource, title, prop, arns in subjects:
        # An attachment's policyArn computed from a policy of the stack (a dependency) names it.
        declared = prop == "policyArn" and any(
            stack.refers(resource, prop, p, "arn", "name") for p in policies
        )
        for arn in arns:
            if arn in allowed:
                continue
            if re.match(r"^arn:aws[a-z-]*:iam::aws:policy/", arn):
                grave = "administration" if _admin_policy(arn) else "an AWS-managed policy"
                yield (
                    resource,
                    f"{title} grants {arn}: {grave} not listed in allowedManagedPolicyArns; "
                    "attach least-privilege policies of the stack",
                )
            elif not declared and not any(_names_policy(arn, p) for p in policies):
                yield (
                    resource,
                    f"{title} grants {arn or 'no policy'}: a managed policy must be an "
                    "aws.iam.Policy of the stack or listed in allowedManagedPolicyArns",
                )


def _names_policy(arn: str, policy: Any) -> bool:
    """Whether a policy ARN names a managed policy of the stack (by its ARN or its name)."""
    own = policy.props.get("arn")
    name = policy.props.get("name")
    return (bool(own) and arn == own) or (bool(name) and arn.endswith(f"/{name}"))


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


# Actions that read or write data (objects, keys' plaintext, secrets, items, messages): granted only
# on named buckets, keys, secrets, tables and queues. A pattern grant (s3:Get*) is matched too.
DATA_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAttributes",
    "s3:GetObjectVersionAttributes",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:RestoreObject",
    "s3:ReplicateObject",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "secretsmanager:GetSecretValue",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:PartiQLSelect",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
)
_WILD = re.compile(r"[*?]")
# A secret's ARN ends in '-' and six random characters, which a policy may write as '-??????'.
_SECRET_SUFFIX = re.compile(r"-\?{6}$")


def _names_data(resource: str, services: set[str]) -> bool:
    """Whether an ARN (pattern) names which bucket, key, secret, table or queue the data actions of
    ``services`` reach: no wildcard in its partition, service, region or account, nor in the
    bucket name, the key id, the secret name (but a '-??????' suffix), the table name or the queue
    name. What follows a named bucket or table (objects: ``bucket/*``, ``table/t/index/*``) may be
    a pattern. An ARN of another service is not one these actions reach."""
    arn = parse_arn(resource)
    if arn is None:
        return _WILD.search(resource) is None  # "*", or not an ARN at all
    if _WILD.search(arn.partition + arn.service + arn.region + arn.account):
        return False
    if arn.service not in services:
        return True
    name = arn.resource
    parts = name.split("/")
    if arn.service == "s3":
        # bucket/key, or accesspoint/<name>/object/key (an access point's objects)
        name = "/".join(parts[:2]) if parts[0] in ("accesspoint", "outpost") else parts[0]
    elif arn.service == "dynamodb":
        name = "/".join(parts[:2]) if parts[0] == "table" and len(parts) > 1 else name
    elif arn.service == "secretsmanager":
        name = _SECRET_SUFFIX.sub("", name)
    return bool(name) and _WILD.search(name) is None


@stack_policy(
    Meta(
        id="aws-iam-no-wildcard-data-access",
        description="No identity policy reads or writes data (objects, secrets, items, messages, "
        "keys' plaintext) on a wildcard resource: every bucket, key, secret, table and queue "
        "is named.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.HIGH,
        remediation="In aws.iam.RolePolicy, aws.iam.Policy and the aws.iam.Role's "
        "inline_policies, give s3 object actions the named bucket's objects "
        "(arn:aws:s3:::<bucket>/* or a prefix), kms:Decrypt/GenerateDataKey*/ReEncrypt* the key "
        "ARNs (arn:aws:kms:<region>:<account>:key/<id>), secretsmanager:GetSecretValue the secret "
        "ARNs, dynamodb item actions the table ARNs and sqs:SendMessage/ReceiveMessage the queue "
        "ARNs: never Resource '*' or a wildcard in the bucket, key, secret, table or queue name.",
        subjects=(ROLE_POLICY, POLICY, ROLE, USER_POLICY, GROUP_POLICY),
    )
)
def no_wildcard_data_access(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for resource, title, doc in _documents(stack):
        for s in statements(doc):
            granted = [a for a in DATA_ACTIONS if grants(s, a)]
            if not granted:
                continue
            services = {a.split(":", 1)[0] for a in granted}
            # No Resource: NotResource, everything but a list.
            wide = [r for r in s.resources if not _names_data(r, services)]
            if wide or not s.resources:
                yield (
                    resource,
                    f"{title}: statement {s.sid or '(no Sid)'} allows {', '.join(granted)} on "
                    f"{', '.join(wide) or 'everything but its NotResource'}: name the bucket, "
                    "key, secret, table or queue",
                )


def _names_role(text: str, role: ResourceLike) -> bool:
    path = str(role.props.get("path") or "/")
    name = str(role.props.get("name") or role.name)
    return re.search(rf":role{re.escape(path + name)}(?![\w+=,.@-])", text) is not None


def _alarmed(stack: Stack, metric_filter: Any) -> bool:
    """Whether a metric filter's metric has an alarm that notifies an SNS topic of the stack."""
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
            and (enabled is None or truthy(enabled))
            and any(
                stack.refers(alarm, "alarmActions", t, "arn", "name") for t in stack.of_type(TOPIC)
            )
        ):
            return True
    return False


def _break_glass(role: Any, duties: set[str], suffixes: tuple[str, ...]) -> bool:
    """A role for emergencies: its `duty` tag says so, or its name (or logical name) does."""
    names = [str(role.props.get("name") or ""), str(role.name)]
    return tag(role, "duty") in duties or any(n.endswith(suffixes) for n in names if n)


@stack_policy(
    Meta(
        id="aws-iam-break-glass-role-alarmed",
        description="Assuming a break-glass role raises an alarm.",
        practice=c.HUMAN_ACCESS,
        safeguard=c.EMERGENCY_ACCESS,
        severity=Severity.HIGH,
        remediation="Declare an aws.cloudwatch.LogMetricFilter on the CloudTrail log group whose "
        "pattern matches the STS AssumeRole* events with requestParameters.roleArn the role's ARN, "
        "and an aws.cloudwatch.MetricAlarm on its metric with alarm_actions an aws.sns.Topic of "
        "the stack (the security topic). A role is for emergencies when its duty tag is one of "
        "breakGlassDuties or its name ends with one of breakGlassNameSuffixes. "
        "A metric filter on the multi-region trail sees every regional STS endpoint; an "
        "EventBridge rule sees only its own region and does not replace it.",
        subjects=(ROLE,),
        settings=(
            Setting(
                "breakGlassDuties",
                "Values of the `duty` tag that mark an emergency-access role",
                ["break-glass"],
                STRING_LIST,
            ),
            Setting(
                "breakGlassNameSuffixes",
                "Endings of a role's name (or logical name) that mark an emergency-access role, "
                "whatever its tags",
                ["-break-glass"],
                STRING_LIST,
            ),
        ),
    )
)
def break_glass_alarmed(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    duties = {str(d) for d in items(config["breakGlassDuties"])}
    suffixes = tuple(str(x) for x in items(config["breakGlassNameSuffixes"]) if x)
    filters = stack.of_type(METRIC_FILTER)
    for role in stack.of_type(ROLE):
        if not _break_glass(role, duties, suffixes):
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
                "alarm with actions enabled notifying an SNS topic of the stack",
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
    no_wildcard_data_access,
    break_glass_alarmed,
)
