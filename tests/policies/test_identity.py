"""Identity policies: what each refuses, and the variants of the stack that weaken identity."""

from __future__ import annotations

import json
from typing import Any

from tests.policies.conftest import Judge
from tests.policies.mutations import Mutation, Snapshot, statement

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
TRUST = "assumeRolePolicy"
DATA_KEY = "arn:aws:kms:us-east-1:123456789012:key/d05df36e-d570-aad9-2114-16f571370cfe"
SSO_ROLE = (
    "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/"
    "AWSReservedSSO_PacsImaging_????????????????"
)
HUMAN_ROLES = {
    "identity-imaging-viewer",
    "identity-imaging-operator",
    "identity-security-auditor",
    "identity-integration-partner",
    "identity-break-glass",
}


def _names(report: Any) -> set[str]:
    return {f.urn.rsplit("::", 1)[-1] for f in report.findings}


def _set_trust(s: Snapshot, role: str, *trust: dict[str, Any]) -> None:
    s.props(ROLE, role)[TRUST] = json.dumps({"Version": "2012-10-17", "Statement": list(trust)})


def _add_statement(s: Snapshot, policy: str, stmt: dict[str, Any]) -> None:
    with s.policy(ROLE_POLICY, policy) as doc:
        doc["Statement"].append(stmt)


# --- mutations ---------------------------------------------------------------------------------


def _no_boundary(s: Snapshot) -> None:
    del s.props(ROLE, "ingest-ingest-role")["permissionsBoundary"]


def _foreign_boundary(s: Snapshot) -> None:
    s.props(ROLE, "edge-task-role")["permissionsBoundary"] = (
        "arn:aws:iam::123456789012:policy/lenient-boundary"
    )


def _trust_without_mfa(s: Snapshot) -> None:
    with s.policy(ROLE, "identity-break-glass", TRUST) as doc:
        del statement(doc, "IdentityCenterPermissionSetsAfterIdentityCenterMfa")["Condition"]


def _any_permission_set(s: Snapshot) -> None:
    with s.policy(ROLE, "identity-imaging-viewer", TRUST) as doc:
        statement(doc, "IdentityCenterPermissionSetsAfterIdentityCenterMfa")["Condition"][
            "ArnLike"
        ]["aws:PrincipalArn"] = ["arn:aws:iam::123456789012:role/*AWSReservedSSO_*"]


def _saml_without_mfa(s: Snapshot) -> None:
    _set_trust(
        s,
        "identity-security-auditor",
        {
            "Sid": "FederatedSignIn",
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:saml-provider/Hospital"},
            "Action": "sts:AssumeRoleWithSAML",
            "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
        },
    )


def _mfa_if_exists(s: Snapshot) -> None:
    _set_trust(
        s,
        "identity-imaging-operator",
        {
            "Sid": "IamUsers",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"},
            "Action": "sts:AssumeRole",
            # Absent MFA context passes an IfExists condition.
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}},
        },
    )


def _twelve_hour_session(s: Snapshot) -> None:
    s.props(ROLE, "identity-imaging-viewer")["maxSessionDuration"] = 43200.0


def _trust_anyone(s: Snapshot) -> None:
    with s.policy(ROLE, "identity-integration-partner", TRUST) as doc:
        statement(doc, "IdentityCenterPermissionSetsAfterIdentityCenterMfa")["Principal"] = {
            "AWS": "*"
        }


def _service_trust_unscoped(s: Snapshot) -> None:
    with s.policy(ROLE, "ingest-ingest-role", TRUST) as doc:
        del statement(doc, "AssumedOnlyOnBehalfOfThisAccount")["Condition"]


def _wildcard_read(s: Snapshot) -> None:
    with s.policy(ROLE_POLICY, "identity-imaging-viewer-policy") as doc:
        statement(doc, "ReadArchivedStudiesAndDerivedObjects")["Action"] = ["s3:Get*"]


def _not_action_grant(s: Snapshot) -> None:
    _add_statement(
        s,
        "network-flow-logs-policy",
        {"Sid": "AllButIam", "Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"},
    )


def _boundary_attached_as_grant(s: Snapshot) -> None:
    s.add(
        ATTACHMENT,
        "ingest-ingest-boundary-as-policy",
        {
            "policyArn": "arn:aws:iam::123456789012:policy/pacs-dev-permissions-boundary",
            "role": "pacs-dev-ingest",
        },
    )


def _ingest_deletes_versions(s: Snapshot) -> None:
    with s.policy(ROLE_POLICY, "ingest-ingest-policy") as doc:
        statement(doc, "ArchiveAcceptedInstancesUnderTheStudiesPrefix")["Action"].append(
            "s3:DeleteObjectVersion"
        )


def _verify_deletes_by_pattern(s: Snapshot) -> None:
    with s.policy(ROLE_POLICY, "ingest-verify-policy") as doc:
        statement(doc, "ReadArchivedInstancesAndSidecars")["Action"].append("s3:Delete*")


def _operator_lifts_legal_holds(s: Snapshot) -> None:
    _add_statement(
        s,
        "identity-imaging-operator-policy",
        {
            "Sid": "LiftLegalHolds",
            "Effect": "Allow",
            "Action": ["s3:PutObjectLegalHold"],
            "Resource": "arn:aws:s3:::pacs-dev-123456789012-us-east-1-archive/*",
        },
    )


def _replication_schedules_key_deletion(s: Snapshot) -> None:
    with s.policy(ROLE_POLICY, "dr-replication-policy") as doc:
        statement(doc, "DecryptSourceThroughS3")["Action"].append("kms:ScheduleKeyDeletion")


def _ingest_stops_the_trail(s: Snapshot) -> None:
    _add_statement(
        s,
        "ingest-ingest-policy",
        {
            "Sid": "BlindTheTrail",
            "Effect": "Allow",
            "Action": ["cloudtrail:StopLogging", "cloudtrail:PutEventSelectors"],
            "Resource": "arn:aws:cloudtrail:us-east-1:123456789012:trail/pacs-dev-trail",
        },
    )


def _verify_deletes_log_groups(s: Snapshot) -> None:
    _add_statement(
        s,
        "ingest-verify-policy",
        {
            "Sid": "CleanUpLogs",
            "Effect": "Allow",
            "Action": ["logs:DeleteLogGroup", "logs:PutRetentionPolicy"],
            "Resource": "arn:aws:logs:us-east-1:123456789012:log-group:/pacs-dev/cloudtrail:*",
        },
    )


def _operator_opens_buckets(s: Snapshot) -> None:
    _add_statement(
        s,
        "identity-imaging-operator-policy",
        {
            "Sid": "FixBucketSettings",
            "Effect": "Allow",
            "Action": ["s3:PutBucketPublicAccessBlock", "s3:PutEncryptionConfiguration"],
            "Resource": "arn:aws:s3:::pacs-dev-123456789012-us-east-1-archive",
        },
    )


def _operator_grants_the_data_key(s: Snapshot) -> None:
    _add_statement(
        s,
        "identity-imaging-operator-policy",
        {
            "Sid": "ShareTheDataKey",
            "Effect": "Allow",
            "Action": ["kms:CreateGrant"],
            "Resource": DATA_KEY,
        },
    )


def _wildcard_object_read(s: Snapshot) -> None:
    with s.policy(ROLE_POLICY, "identity-imaging-viewer-policy") as doc:
        statement(doc, "ReadArchivedStudiesAndDerivedObjects")["Resource"] = "arn:aws:s3:::*/*"


def _decrypt_with_any_key(s: Snapshot) -> None:
    with s.policy(ROLE_POLICY, "ingest-verify-policy") as doc:
        statement(doc, "DecryptArchivedObjectsAndIndexRows")["Resource"] = "*"


def _read_only_access_attached(s: Snapshot) -> None:
    s.add(
        ATTACHMENT,
        "edge-task-read-only",
        {"policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess", "role": "pacs-dev-gateway-task"},
    )


def _foreign_customer_policy_attached(s: Snapshot) -> None:
    s.add(
        ATTACHMENT,
        "ingest-verify-legacy",
        {
            "policyArn": "arn:aws:iam::123456789012:policy/legacy-broad-access",
            "role": "pacs-dev-verify",
        },
    )


def _ingest_runs_code_as_other_roles(s: Snapshot) -> None:
    _add_statement(
        s,
        "ingest-ingest-policy",
        {
            "Sid": "RunCodeElsewhere",
            "Effect": "Allow",
            "Action": ["lambda:UpdateFunctionCode", "ssm:SendCommand", "ecs:RunTask"],
            "Resource": "*",
        },
    )


def _administrator_attached(s: Snapshot) -> None:
    s.add(
        ATTACHMENT,
        "edge-task-admin",
        {
            "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
            "role": "pacs-dev-gateway-task",
        },
    )


def _s3_full_access(s: Snapshot) -> None:
    s.props(ATTACHMENT, "ingest-verify-vpc-access")["policyArn"] = (
        "arn:aws:iam::aws:policy/AmazonS3FullAccess"
    )


def _iam_user(s: Snapshot) -> None:
    s.add("aws:iam/user:User", "radiologist", {"name": "radiologist"})


def _access_key(s: Snapshot) -> None:
    s.add("aws:iam/accessKey:AccessKey", "ci-key", {"user": "ci-deployer"})


def _pass_any_role(s: Snapshot) -> None:
    _add_statement(
        s,
        "identity-imaging-operator-policy",
        {"Sid": "PassRoles", "Effect": "Allow", "Action": ["iam:PassRole"], "Resource": "*"},
    )


def _ingest_writes_role_policies(s: Snapshot) -> None:
    _add_statement(
        s,
        "ingest-ingest-policy",
        {
            "Sid": "EditOwnPolicy",
            "Effect": "Allow",
            "Action": ["iam:PutRolePolicy"],
            "Resource": "arn:aws:iam::123456789012:role/pacs-dev-ingest",
        },
    )


def _break_glass_unwatched(s: Snapshot) -> None:
    s.remove("aws:cloudwatch/logMetricFilter:LogMetricFilter", "audit-break-glass-assumed-filter")


def _break_glass_alarm_silent(s: Snapshot) -> None:
    s.props("aws:cloudwatch/metricAlarm:MetricAlarm", "audit-break-glass-assumed-alarm")[
        "alarmActions"
    ] = []


def _break_glass_untagged_and_unalarmed(s: Snapshot) -> None:
    s.props(ROLE, "identity-break-glass")["tags"] = {"purpose": "break-glass"}
    s.remove("aws:cloudwatch/metricAlarm:MetricAlarm", "audit-break-glass-assumed-alarm")


def _break_glass_alarm_foreign_topic(s: Snapshot) -> None:
    s.props("aws:cloudwatch/metricAlarm:MetricAlarm", "audit-break-glass-assumed-alarm")[
        "alarmActions"
    ] = ["arn:aws:sns:us-east-1:123456789012:not-declared-here"]


MUTATIONS = [
    Mutation(
        "iam-role-without-boundary",
        "aws-iam-role-require-permissions-boundary",
        "ingest role without the permissions boundary",
        _no_boundary,
    ),
    Mutation(
        "iam-role-foreign-boundary",
        "aws-iam-role-require-permissions-boundary",
        "gateway task role bounded by a policy outside the stack",
        _foreign_boundary,
    ),
    Mutation(
        "iam-human-trust-without-mfa",
        "aws-iam-human-role-require-mfa",
        "break-glass trusts the whole account without pinning the Identity Center roles",
        _trust_without_mfa,
    ),
    Mutation(
        "iam-human-trust-any-role-named-sso",
        "aws-iam-human-role-require-mfa",
        "viewer trusts any role whose name contains AWSReservedSSO_",
        _any_permission_set,
    ),
    Mutation(
        "iam-human-trust-saml-without-mfa",
        "aws-iam-human-role-require-mfa",
        "auditor federated through SAML without the REFEDS MFA assurance",
        _saml_without_mfa,
    ),
    Mutation(
        "iam-human-trust-mfa-if-exists",
        "aws-iam-human-role-require-mfa",
        "operator trusts an IAM user with BoolIfExists MFA (passes without MFA context)",
        _mfa_if_exists,
    ),
    Mutation(
        "iam-human-session-12h",
        "aws-iam-human-role-max-session-1h",
        "viewer sessions last 12 hours",
        _twelve_hour_session,
    ),
    Mutation(
        "iam-trust-any-principal",
        "aws-iam-role-trust-no-wildcard-principal",
        "integration partner role trusts {'AWS': '*'}",
        _trust_anyone,
    ),
    Mutation(
        "iam-service-trust-confused-deputy",
        "aws-iam-role-service-trust-require-source",
        "Lambda may assume the ingest role on behalf of any account",
        _service_trust_unscoped,
    ),
    Mutation(
        "iam-wildcard-read",
        "aws-iam-no-wildcard-actions",
        "viewer reads with s3:Get*",
        _wildcard_read,
    ),
    Mutation(
        "iam-not-action-grant",
        "aws-iam-no-wildcard-actions",
        "flow logs role allowed everything but IAM",
        _not_action_grant,
    ),
    Mutation(
        "iam-boundary-attached-as-grant",
        "aws-iam-no-wildcard-actions",
        "the boundary (Allow + NotAction ceiling) attached to the ingest role as a grant",
        _boundary_attached_as_grant,
    ),
    Mutation(
        "iam-ingest-deletes-object-versions",
        "aws-iam-role-no-delete-or-lock-bypass",
        "ingest may permanently delete archived object versions",
        _ingest_deletes_versions,
    ),
    Mutation(
        "iam-verify-deletes-by-pattern",
        "aws-iam-role-no-delete-or-lock-bypass",
        "verify granted s3:Delete* on the archive",
        _verify_deletes_by_pattern,
    ),
    Mutation(
        "iam-operator-lifts-legal-holds",
        "aws-iam-role-no-delete-or-lock-bypass",
        "operator may lift legal holds on archived objects",
        _operator_lifts_legal_holds,
    ),
    Mutation(
        "iam-replication-schedules-key-deletion",
        "aws-iam-role-no-delete-or-lock-bypass",
        "replication role may schedule the archive key's deletion",
        _replication_schedules_key_deletion,
    ),
    Mutation(
        "iam-ingest-stops-the-trail",
        "aws-iam-role-no-delete-or-lock-bypass",
        "ingest may stop the trail and change its event selectors",
        _ingest_stops_the_trail,
    ),
    Mutation(
        "iam-verify-deletes-log-groups",
        "aws-iam-role-no-delete-or-lock-bypass",
        "verify may delete the trail's log group or shorten its retention",
        _verify_deletes_log_groups,
    ),
    Mutation(
        "iam-operator-opens-buckets",
        "aws-iam-role-no-delete-or-lock-bypass",
        "operator may change the archive's public access block and default encryption",
        _operator_opens_buckets,
    ),
    Mutation(
        "iam-operator-grants-the-data-key",
        "aws-iam-role-no-delete-or-lock-bypass",
        "operator may create grants on the data key for any principal",
        _operator_grants_the_data_key,
    ),
    Mutation(
        "iam-wildcard-object-read",
        "aws-iam-no-wildcard-data-access",
        "viewer reads objects of every bucket (arn:aws:s3:::*/*)",
        _wildcard_object_read,
    ),
    Mutation(
        "iam-decrypt-with-any-key",
        "aws-iam-no-wildcard-data-access",
        "verify may decrypt with any key (Resource '*', no condition)",
        _decrypt_with_any_key,
    ),
    Mutation(
        "iam-read-only-access-attached",
        "aws-iam-no-admin-policy-attachments",
        "ReadOnlyAccess (every object and item of the account) attached to the gateway task role",
        _read_only_access_attached,
    ),
    Mutation(
        "iam-foreign-customer-policy-attached",
        "aws-iam-no-admin-policy-attachments",
        "a customer-managed policy from outside the stack attached to the verify role",
        _foreign_customer_policy_attached,
    ),
    Mutation(
        "iam-ingest-runs-code-as-other-roles",
        "aws-iam-no-privilege-escalation",
        "ingest may update function code, send SSM commands and run ECS tasks anywhere",
        _ingest_runs_code_as_other_roles,
    ),
    Mutation(
        "iam-break-glass-untagged-and-unalarmed",
        "aws-iam-break-glass-role-alarmed",
        "break-glass role's duty tag renamed and its alarm deleted",
        _break_glass_untagged_and_unalarmed,
    ),
    Mutation(
        "iam-break-glass-alarm-foreign-topic",
        "aws-iam-break-glass-role-alarmed",
        "the break-glass alarm notifies a topic the stack does not declare",
        _break_glass_alarm_foreign_topic,
    ),
    Mutation(
        "iam-administrator-attached",
        "aws-iam-no-admin-policy-attachments",
        "AdministratorAccess attached to the gateway task role",
        _administrator_attached,
    ),
    Mutation(
        "iam-s3-full-access-attached",
        "aws-iam-no-admin-policy-attachments",
        "AmazonS3FullAccess attached to the verify role",
        _s3_full_access,
    ),
    Mutation(
        "iam-user-declared",
        "aws-iam-no-users-or-access-keys",
        "an IAM user for a radiologist",
        _iam_user,
    ),
    Mutation(
        "iam-access-key-declared",
        "aws-iam-no-users-or-access-keys",
        "a long-lived access key",
        _access_key,
    ),
    Mutation(
        "iam-pass-any-role",
        "aws-iam-no-privilege-escalation",
        "operator may pass any role to a service",
        _pass_any_role,
    ),
    Mutation(
        "iam-ingest-edits-its-policy",
        "aws-iam-no-privilege-escalation",
        "ingest may rewrite its own role policy",
        _ingest_writes_role_policies,
    ),
    Mutation(
        "iam-break-glass-unwatched",
        "aws-iam-break-glass-role-alarmed",
        "no metric filter matches assuming the break-glass role",
        _break_glass_unwatched,
    ),
    Mutation(
        "iam-break-glass-alarm-silent",
        "aws-iam-break-glass-role-alarmed",
        "the break-glass alarm notifies nobody",
        _break_glass_alarm_silent,
    ),
]


# --- focused tests -----------------------------------------------------------------------------

MFA = "aws-iam-human-role-require-mfa"


def test_each_legitimate_mfa_proof_is_accepted(snapshot: Snapshot, judge: Judge) -> None:
    saml = {
        "Sid": "Saml",
        "Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::123456789012:saml-provider/Hospital"},
        "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
        "Condition": {
            "StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"},
            "ForAnyValue:StringEquals": {
                "SAML:edupersonassurance": "https://refeds.org/profile/mfa"
            },
        },
    }
    users = {
        "Sid": "IamUsersWithMfa",
        "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::123456789012:user/alice"]},
        "Action": "sts:AssumeRole",
        "Condition": {
            "Bool": {"aws:MultiFactorAuthPresent": "true"},
            "NumericLessThan": {"aws:MultiFactorAuthAge": "3600"},
        },
    }
    regional_sso = {
        "Sid": "IdentityCenterRegionalPath",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "sts:AssumeRole",
        "Condition": {
            "ArnLike": {
                "aws:PrincipalArn": "arn:aws:iam::123456789012:role/aws-reserved/"
                "sso.amazonaws.com/eu-west-1/AWSReservedSSO_Pacs_Viewer_0123456789abcdef"
            }
        },
    }
    _set_trust(snapshot, "identity-security-auditor", saml)
    _set_trust(snapshot, "identity-imaging-operator", users, regional_sso)
    assert not judge(snapshot, MFA).findings


def test_saml_assurance_other_than_mfa_is_refused(snapshot: Snapshot, judge: Judge) -> None:
    # ForAnyValue: any one listed value suffices, so a non-MFA assurance next to MFA lets
    # single-factor sign-ins in.
    _saml_without_mfa(snapshot)
    with snapshot.policy(ROLE, "identity-security-auditor", TRUST) as doc:
        doc["Statement"][0]["Condition"]["ForAnyValue:StringEquals"] = {
            "SAML:edupersonassurance": [
                "https://refeds.org/profile/mfa",
                "https://refeds.org/assurance/IAP/low",
            ]
        }
    assert _names(judge(snapshot, MFA)) == {"identity-security-auditor"}


def test_a_role_outside_identity_center_cannot_vouch_for_mfa(
    snapshot: Snapshot, judge: Judge
) -> None:
    with snapshot.policy(ROLE, "identity-break-glass", TRUST) as doc:
        statement(doc, "IdentityCenterPermissionSetsAfterIdentityCenterMfa")["Condition"][
            "ArnLike"
        ]["aws:PrincipalArn"] = [
            SSO_ROLE,
            "arn:aws:iam::123456789012:role/ci-deployer",
        ]
    assert _names(judge(snapshot, MFA)) == {"identity-break-glass"}


def test_workload_roles_need_no_mfa_or_session_limit(snapshot: Snapshot, judge: Judge) -> None:
    snapshot.props(ROLE, "ingest-ingest-role")["maxSessionDuration"] = 43200.0
    report = judge(snapshot, MFA, "aws-iam-human-role-max-session-1h")
    assert not report.findings


def test_session_limit_may_only_tighten(plan_json: dict[str, Any], judge: Judge) -> None:
    policy = "aws-iam-human-role-max-session-1h"
    report = judge(plan_json, policy, config={policy: {"maxSessionSeconds": 1800}})
    assert _names(report) == HUMAN_ROLES
    assert all("at most 1800" in f.message for f in report.findings)


def test_unscoped_service_principals_setting(snapshot: Snapshot, judge: Judge) -> None:
    policy = "aws-iam-role-service-trust-require-source"
    _service_trust_unscoped(snapshot)
    config = {policy: {"unscopedServicePrincipals": ["lambda.amazonaws.com"]}}
    assert not judge(snapshot, policy, config=config).findings
    # A source condition that only applies when the key exists does not scope anything.
    with snapshot.policy(ROLE, "edge-task-role", TRUST) as doc:
        statement(doc, "AssumedOnlyOnBehalfOfThisAccount")["Condition"] = {
            "StringEqualsIfExists": {"aws:SourceAccount": "123456789012"}
        }
    assert _names(judge(snapshot, policy, config=config)) == {"edge-task-role"}


def test_external_boundary_setting(snapshot: Snapshot, judge: Judge) -> None:
    policy = "aws-iam-role-require-permissions-boundary"
    _foreign_boundary(snapshot)
    config = {policy: {"boundaryPolicyArns": ["arn:aws:iam::123456789012:policy/lenient-boundary"]}}
    assert not judge(snapshot, policy, config=config).findings


def test_allowed_managed_policy_setting(snapshot: Snapshot, judge: Judge) -> None:
    policy = "aws-iam-no-admin-policy-attachments"
    _s3_full_access(snapshot)
    defaults = [
        "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
        "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
    ]
    # The setting replaces the default list: leaving the stack's own out refuses them.
    config = {policy: {"allowedManagedPolicyArns": ["arn:aws:iam::aws:policy/AmazonS3FullAccess"]}}
    assert _names(judge(snapshot, policy, config=config)) == {
        "dr-backup-role-policy-0",
        "dr-backup-role-policy-1",
        "ingest-ingest-vpc-access",
    }
    config = {
        policy: {
            "allowedManagedPolicyArns": [*defaults, "arn:aws:iam::aws:policy/AmazonS3FullAccess"]
        }
    }
    assert not judge(snapshot, policy, config=config).findings
    # Through the role's managed_policy_arns too.
    snapshot.props(ROLE, "dr-backup-role")["managedPolicyArns"] = [
        "arn:aws:iam::aws:policy/PowerUserAccess"
    ]
    assert _names(judge(snapshot, policy, config=config)) == {"dr-backup-role"}


def test_destruction_granted_through_an_attached_managed_policy(
    snapshot: Snapshot, judge: Judge
) -> None:
    policy = "aws-iam-role-no-delete-or-lock-bypass"
    snapshot.add(
        POLICY,
        "cleanup-policy",
        {
            "name": "pacs-dev-cleanup",
            "policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::*"}
                    ],
                }
            ),
        },
    )
    # Declared but granted to no role: nothing to refuse here.
    assert not judge(snapshot, policy).findings
    snapshot.add(
        ATTACHMENT,
        "verify-cleanup",
        {
            "policyArn": "arn:aws:iam::123456789012:policy/pacs-dev-cleanup",
            "role": "pacs-dev-verify",
        },
    )
    assert _names(judge(snapshot, policy)) == {"ingest-verify-role"}


def test_deny_wildcards_of_the_boundary_are_not_grants(
    plan_json: dict[str, Any], judge: Judge
) -> None:
    # The boundary denies s3:DeleteBucket*, kms:Delete*, ... and caps with Allow + NotAction.
    report = judge(
        plan_json,
        "aws-iam-no-wildcard-actions",
        "aws-iam-no-privilege-escalation",
        "aws-iam-role-no-delete-or-lock-bypass",
    )
    assert not report.findings
    assert any(
        "permissions-boundary-policy" in u for u in report.satisfied["aws-iam-no-wildcard-actions"]
    )


def test_managed_policies_of_the_stack_may_be_attached(snapshot: Snapshot, judge: Judge) -> None:
    policy = "aws-iam-no-admin-policy-attachments"
    snapshot.add(
        POLICY,
        "verify-extra",
        {
            "name": "pacs-dev-verify-extra",
            "policy": json.dumps({"Version": "2012-10-17", "Statement": []}),
        },
    )
    snapshot.add(
        ATTACHMENT,
        "verify-extra-attachment",
        {
            "policyArn": "arn:aws:iam::123456789012:policy/pacs-dev-verify-extra",
            "role": "pacs-dev-verify",
        },
    )
    assert not judge(snapshot, policy).findings
    snapshot.props(ROLE, "ingest-verify-role")["managedPolicyArns"] = [
        "arn:aws:iam::123456789012:policy/pacs-dev-verify-extra",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
    ]
    assert not judge(snapshot, policy).findings


def test_grants_for_aws_resources_only_are_admitted(snapshot: Snapshot, judge: Judge) -> None:
    policy = "aws-iam-role-no-delete-or-lock-bypass"
    _operator_grants_the_data_key(snapshot)
    with snapshot.policy(ROLE_POLICY, "identity-imaging-operator-policy") as doc:
        statement(doc, "ShareTheDataKey")["Condition"] = {
            "Bool": {"kms:GrantIsForAWSResource": "true"}
        }
    assert not judge(snapshot, policy).findings
    with snapshot.policy(ROLE_POLICY, "identity-imaging-operator-policy") as doc:
        statement(doc, "ShareTheDataKey")["Condition"] = {
            "BoolIfExists": {"kms:GrantIsForAWSResource": "true"}
        }
    assert _names(judge(snapshot, policy)) == {"identity-imaging-operator"}


def test_named_data_resources_may_end_in_patterns(snapshot: Snapshot, judge: Judge) -> None:
    policy = "aws-iam-no-wildcard-data-access"
    _add_statement(
        snapshot,
        "ingest-verify-policy",
        {
            "Sid": "NamedResourcesWithPatterns",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "secretsmanager:GetSecretValue", "dynamodb:Query"],
            "Resource": [
                "arn:aws:s3:::pacs-dev-123456789012-us-east-1-archive/studies/*",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:pacs-dev/db-??????",
                "arn:aws:dynamodb:us-east-1:123456789012:table/pacs-dev-index/index/*",
                # Another service's ARN is not one these actions reach.
                "arn:aws:logs:us-east-1:123456789012:log-group:/pacs-dev/*",
            ],
        },
    )
    assert not judge(snapshot, policy).findings
    for wide in (
        "arn:aws:s3:::pacs-dev-*",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:pacs-dev/*",
        "arn:aws:dynamodb:us-east-1:123456789012:table/*",
        "arn:aws:s3:::pacs-dev-123456789012-us-east-1-archive/*".replace("us-east-1", "*"),
    ):
        with snapshot.policy(ROLE_POLICY, "ingest-verify-policy") as doc:
            statement(doc, "NamedResourcesWithPatterns")["Resource"] = wide
        assert _names(judge(snapshot, policy)) == {"ingest-verify-policy"}, wide


def test_break_glass_role_is_known_by_its_name_too(snapshot: Snapshot, judge: Judge) -> None:
    policy = "aws-iam-break-glass-role-alarmed"
    snapshot.props(ROLE, "identity-break-glass")["tags"] = {}
    assert not judge(snapshot, policy).findings
    _break_glass_unwatched(snapshot)
    assert _names(judge(snapshot, policy)) == {"identity-break-glass"}
