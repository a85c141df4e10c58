"""KeyRing: one customer-managed KMS key per purpose, with policies that separate admin from use."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.iam_documents import (
    Account,
    Statement,
    cloudtrail_key_statements,
    cloudwatch_alarms_key_statement,
    cloudwatch_logs_key_statement,
    eventbridge_key_statement,
    key_policy,
    s3_notifications_key_statement,
)

DELETION_WINDOW_DAYS = 30  # the longest AWS allows: a scheduled deletion stays reversible


@dataclass(frozen=True)
class KeyPurpose:
    """What a key is for and how it may be used."""

    description: str
    key_spec: str
    usage: str
    # Services through which roles may use the key (kms:ViaService); empty = called directly.
    via_services: tuple[str, ...] = ()
    # AWS services that create grants on the key for resources they manage (e.g. AWS Backup).
    grants_for_aws_resources: bool = False
    # Services whose encrypted resources the administrators declare with `pulumi up`.
    deployed_via_services: tuple[str, ...] = ()


PURPOSES: dict[str, KeyPurpose] = {
    "archive": KeyPurpose(
        "Imaging data at rest: imaging objects, the ingest queues, index tables, function settings",
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        via_services=("dynamodb", "s3", "sqs"),
        # Index tables (DynamoDB) and the functions' environment variables (Lambda).
        deployed_via_services=("dynamodb", "lambda"),
    ),
    "logs": KeyPurpose(
        "Security logs: CloudWatch Logs, CloudTrail and Firehose delivery streams",
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        # The SIEM delivery role writes the audit buckets (S3) and reads the SIEM's key (Secrets
        # Manager).
        via_services=("firehose", "logs", "s3", "secretsmanager"),
        # Firehose creates its grant for stream encryption with the deployer's credentials; the
        # administrators who create the SIEM secret also set its value.
        deployed_via_services=("firehose", "secretsmanager"),
    ),
    "backup": KeyPurpose(
        "Disaster recovery: archive replica and AWS Backup vault",
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        via_services=("backup", "s3"),
        grants_for_aws_resources=True,
    ),
    "signing": KeyPurpose(
        "Signs archive manifests and DICOM digital signatures (asymmetric, never leaves KMS)",
        "ECC_NIST_P256",
        "SIGN_VERIFY",
    ),
    "pseudonym": KeyPurpose(
        "Keyed pseudonyms of patient identifiers and UIDs (HMAC-SHA256)",
        "HMAC_256",
        "GENERATE_VERIFY_MAC",
    ),
    "edge": KeyPurpose(
        "Edge gateway: its TLS private key (Secrets Manager) and container images (ECR)",
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        # ECS reads the TLS secrets for the gateway's execution role through Secrets Manager.
        via_services=("secretsmanager",),
        # ECR creates its grant on the key with the deployer's credentials; the administrators
        # who create the secrets also set their values (through Secrets Manager only).
        deployed_via_services=("ecr", "secretsmanager"),
    ),
    "linkage": KeyPurpose(
        "Re-identification linkage: the originals behind research pseudonyms (encrypted directly)",
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        # No KeyUseByStackRoles: its users are split by half (infra/iam_documents.py,
        # linkage_key_statements): the research function encrypts, the reidentification role
        # decrypts.
    ),
}
# Made only when the stack has an edge (a configured client trust source).
EDGE_PURPOSES: frozenset[str] = frozenset({"edge"})
# Made only with researchLinkage.
LINKAGE_PURPOSES: frozenset[str] = frozenset({"linkage"})


@dataclass(frozen=True)
class KeyRingArgs:
    """Which keys to make, in which region, and which of the stack's roles may use each."""

    account: Account
    region: str
    name_prefix: str
    purposes: tuple[str, ...] = tuple(PURPOSES)
    admin_arns: tuple[str, ...] = ()
    # purpose -> names of the stack's IAM roles that may use the key
    users: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # purpose -> statements admitting principals that only decrypt, each through named services
    # (the SIEM's readers and the security auditor on the logs key).
    reader_statements: Mapping[str, tuple[Statement, ...]] = field(default_factory=dict)


class KeyRing(pulumi.ComponentResource):
    """Customer-managed keys per purpose, with aliases ``alias/<prefix>/<purpose>``."""

    keys: dict[str, aws.kms.Key]

    def __init__(
        self, name: str, args: KeyRingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:keys:KeyRing", name, None, opts)
        unknown = sorted(set(args.purposes) - set(PURPOSES))
        if unknown:
            raise ValueError(f"unknown key purposes {unknown}; known: {sorted(PURPOSES)}")
        self.keys = {}
        for purpose in args.purposes:
            spec = PURPOSES[purpose]
            users = tuple(args.account.role_arn(n) for n in args.users.get(purpose, ()))
            policy = key_policy(
                args.account,
                region=args.region,
                usage=spec.usage,
                admin_arns=args.admin_arns,
                user_role_arns=users,
                via_services=spec.via_services,
                grants_for_aws_resources=spec.grants_for_aws_resources,
                service_statements=[
                    *_service_statements(purpose, args.account, args.region),
                    *args.reader_statements.get(purpose, ()),
                ],
                deployed_via_services=spec.deployed_via_services,
            )
            key = aws.kms.Key(
                f"{name}-{purpose}",
                description=f"{args.name_prefix}: {spec.description}",
                customer_master_key_spec=spec.key_spec,
                key_usage=spec.usage,
                # AWS rotates only symmetric encryption keys; asymmetric and HMAC keys cannot.
                enable_key_rotation=spec.key_spec == "SYMMETRIC_DEFAULT",
                rotation_period_in_days=365 if spec.key_spec == "SYMMETRIC_DEFAULT" else None,
                deletion_window_in_days=DELETION_WINDOW_DAYS,
                policy=json.dumps(policy),
                tags={"purpose": purpose},
                # `pulumi destroy` must not schedule deletion of the keys that decrypt the archive.
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            aws.kms.Alias(
                f"{name}-{purpose}-alias",
                name=f"alias/{args.name_prefix}/{purpose}",
                target_key_id=key.key_id,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.keys[purpose] = key
        self.register_outputs({p: k.arn for p, k in self.keys.items()})

    def arn(self, purpose: str) -> pulumi.Output[str]:
        """ARN of the key for ``purpose``."""
        return self.keys[purpose].arn


def _service_statements(purpose: str, account: Account, region: str) -> list[Statement]:
    if purpose == "archive":
        return [s3_notifications_key_statement(account)]
    if purpose == "logs":
        return [
            cloudwatch_logs_key_statement(account, region),
            *cloudtrail_key_statements(account),
            cloudwatch_alarms_key_statement(account, region),
            # Security rules (break-glass, GuardDuty) publish to the encrypted security topic;
            # the audit buckets announce new objects on the encrypted SIEM queue.
            eventbridge_key_statement(account, region),
            s3_notifications_key_statement(account),
        ]
    return []
