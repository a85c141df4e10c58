"""Identity: the permissions boundary of every role, human roles per duty, IAM Access Analyzer.

People never hold standing credentials in the stack's account: they assume one role per duty
through federation (a SAML provider, IAM Identity Center permission-set roles, or IAM users), with
MFA, for at most an hour, tagged with the duty. Every role the stack creates, human or workload,
carries the same permissions boundary, which denies destroying the archive and blinding the audit
trail whatever the role's own policy says. The account's Access Analyzer is optional
(``enableAccessAnalyzer``): AWS allows one account analyzer per account and region, and an
organization or another stack in the account often has it already.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import IdentitySettings
from infra.iam_documents import (
    DUTIES,
    HUMAN_POLICIES,
    HUMAN_SESSION_SECONDS,
    Account,
    HumanRoleResources,
    human_role_name,
    human_trust_policy,
    permissions_boundary_name,
    permissions_boundary_policy,
)

DUTY_DESCRIPTIONS: dict[str, str] = {
    "imaging-viewer": "Reads archived studies and derived objects; writes nothing",
    "imaging-operator": "Redrives the ingest dead-letter queue, reads metrics and logs; no objects",
    "security-auditor": "Reads trails, logs, configuration and findings; no imaging objects",
    "integration-partner": "Reads de-identified objects under derived/ only",
    "break-glass": "Emergency read of every imaging object; never deletes; assuming it pages",
}


def analyzer_name(name_prefix: str) -> str:
    """The account analyzer's name; its ARN is known before it exists."""
    return f"{name_prefix}-account"


def analyzer_arn(account: Account, name_prefix: str, *, created: bool = True) -> str:
    """What the auditor reads findings of: the stack's analyzer, or else the account's own.

    Without the stack's analyzer (``enableAccessAnalyzer`` false) the account's existing analyzers
    in this region are read instead, whatever their name; an organization analyzer lives in the
    delegated administrator account and is read there.
    """
    name = analyzer_name(name_prefix) if created else "*"
    return account.arn("access-analyzer", f"analyzer/{name}")


class PermissionsBoundary(pulumi.ComponentResource):
    """The boundary policy; declared before any role so that every role can name its ARN."""

    policy: aws.iam.Policy
    arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        account: Account,
        name_prefix: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloud-pacs:identity:PermissionsBoundary", name, None, opts)
        self.policy = aws.iam.Policy(
            f"{name}-policy",
            name=permissions_boundary_name(name_prefix),
            description=(
                "Permissions boundary of every role of the stack: no archive destruction, no "
                "Object Lock bypass, no key disabling, no audit blinding, no boundary tampering"
            ),
            policy=json.dumps(permissions_boundary_policy(account, name_prefix)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.policy.arn
        self.register_outputs({"arn": self.arn})


@dataclass(frozen=True)
class IdentityArgs:
    """The federation source and the exact resources the human roles read or operate."""

    account: Account
    name_prefix: str
    settings: IdentitySettings
    permissions_boundary: pulumi.Input[str]
    inbox_bucket: str
    archive_bucket: str
    quarantine_bucket: str
    derived_bucket: str
    archive_key_arn: pulumi.Input[str]
    ingest_queue_arn: pulumi.Input[str]
    dead_letter_queue_arn: pulumi.Input[str]
    trail_bucket: str
    logs_key_arn: pulumi.Input[str]
    # With exportsEnabled: the export function the imaging-operator role may invoke.
    export_function_arn: str | None = None


class Identity(pulumi.ComponentResource):
    """Human roles per duty (with a federation source) and, optionally, the account's analyzer."""

    analyzer: aws.accessanalyzer.Analyzer | None
    roles: dict[str, aws.iam.Role]

    def __init__(
        self, name: str, args: IdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:identity:Identity", name, None, opts)
        account = args.account
        child = pulumi.ResourceOptions(parent=self)
        # External-access findings for the account: buckets, keys, queues or roles shared outside.
        # One ACCOUNT analyzer per account and region: a second stack in the account would fail.
        self.analyzer = None
        if args.settings.enable_access_analyzer:
            self.analyzer = aws.accessanalyzer.Analyzer(
                f"{name}-analyzer",
                analyzer_name=analyzer_name(args.name_prefix),
                type="ACCOUNT",
                opts=child,
            )
        readable_analyzer = analyzer_arn(
            account, args.name_prefix, created=self.analyzer is not None
        )
        self.roles = {}
        if args.settings.federated:
            trust = json.dumps(
                human_trust_policy(
                    saml_provider_arn=args.settings.saml_provider_arn,
                    trusted_principal_arns=args.settings.trusted_principal_arns,
                )
            )
            resources = pulumi.Output.all(
                args.archive_key_arn,
                args.ingest_queue_arn,
                args.dead_letter_queue_arn,
                args.logs_key_arn,
            ).apply(
                lambda arns: HumanRoleResources(
                    account=account,
                    name_prefix=args.name_prefix,
                    inbox_bucket=args.inbox_bucket,
                    archive_bucket=args.archive_bucket,
                    quarantine_bucket=args.quarantine_bucket,
                    derived_bucket=args.derived_bucket,
                    archive_key_arn=arns[0],
                    ingest_queue_arn=arns[1],
                    dead_letter_queue_arn=arns[2],
                    analyzer_arn=readable_analyzer,
                    trail_bucket=args.trail_bucket,
                    logs_key_arn=arns[3],
                    export_function_arn=args.export_function_arn,
                )
            )
            for duty in DUTIES:
                role = aws.iam.Role(
                    f"{name}-{duty}",
                    name=human_role_name(args.name_prefix, duty),
                    description=DUTY_DESCRIPTIONS[duty],
                    assume_role_policy=trust,
                    # Automatic logoff: a session ends after an hour at most.
                    max_session_duration=HUMAN_SESSION_SECONDS,
                    permissions_boundary=args.permissions_boundary,
                    tags={"duty": duty},
                    opts=child,
                )
                aws.iam.RolePolicy(
                    f"{name}-{duty}-policy",
                    role=role.id,
                    policy=resources.apply(
                        lambda r, duty=duty: json.dumps(HUMAN_POLICIES[duty](r))  # type: ignore[misc]
                    ),
                    opts=child,
                )
                self.roles[duty] = role
        self.register_outputs(
            {
                "analyzer": self.analyzer.arn if self.analyzer else None,
                **{d: r.arn for d, r in self.roles.items()},
            }
        )
