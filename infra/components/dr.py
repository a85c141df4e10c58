"""DisasterRecovery: WORM replica in a second region with RTC, and locked AWS Backup vaults."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.archive import bucket_name
from infra.components.bucket import Lifecycle, SecureBucket, SecureBucketArgs, access_log_bucket
from infra.components.keys import KeyRing, KeyRingArgs
from infra.config import RTC_SLA_MINUTES, ObjectLock
from infra.iam_documents import Account, replication_role_policy, service_trust_policy

# AWS Backup vault lock: after this grace period the lock becomes immutable (compliance mode).
VAULT_LOCK_GRACE_DAYS = 3
BACKUP_SELECTION_TAG = "backup-plan"
MANAGED_BACKUP_POLICIES = (
    "service-role/AWSBackupServiceRolePolicyForBackup",
    "service-role/AWSBackupServiceRolePolicyForRestores",
)


def replication_role_name(name_prefix: str) -> str:
    """The replication role's name; the key policies grant it by name before it exists."""
    return f"{name_prefix}-replication"


def backup_role_name(name_prefix: str) -> str:
    """The AWS Backup role's name; the key policies grant it by name before it exists."""
    return f"{name_prefix}-backup"


def backup_schedule(interval_hours: int) -> str:
    """AWS Backup cron expression running every ``interval_hours`` hours (UTC)."""
    if interval_hours >= 24:
        return "cron(0 0 * * ? *)"
    return f"cron(0 0/{interval_hours} * * ? *)"


@dataclass(frozen=True)
class DisasterRecoveryArgs:
    """What to replicate and back up, and the recovery objectives."""

    account: Account
    name_prefix: str
    dr_region: str
    dr_provider: aws.Provider
    archive: SecureBucket
    archive_key: aws.kms.Key
    backup_key: aws.kms.Key
    archive_lock: ObjectLock
    archive_transition_days: int
    log_retention_days: int
    admin_arns: tuple[str, ...]
    backup_interval_hours: int
    backup_retention_days: int
    # The stack's permissions boundary (infra/components/identity.py): every role carries it.
    permissions_boundary: pulumi.Input[str]


class DisasterRecovery(pulumi.ComponentResource):
    """Cross-region replica of the archive (RTC, Object Lock) and locked backup vaults."""

    replica: SecureBucket
    vault: aws.backup.Vault
    dr_vault: aws.backup.Vault
    plan: aws.backup.Plan
    backup_tag: dict[str, str]

    def __init__(
        self, name: str, args: DisasterRecoveryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:dr:DisasterRecovery", name, None, opts)
        account = args.account
        partition = account.partition
        in_dr = pulumi.ResourceOptions(parent=self, provider=args.dr_provider)
        child = pulumi.ResourceOptions(parent=self)
        replication_role = replication_role_name(args.name_prefix)
        backup_role = backup_role_name(args.name_prefix)

        dr_keys = KeyRing(
            f"{name}-keys",
            KeyRingArgs(
                account=account,
                region=args.dr_region,
                name_prefix=args.name_prefix,
                purposes=("backup",),
                admin_arns=args.admin_arns,
                users={"backup": (replication_role, backup_role)},
            ),
            opts=in_dr,
        )
        dr_key = dr_keys.keys["backup"]

        def named(purpose: str) -> str:
            return bucket_name(account, args.name_prefix, purpose, args.dr_region)

        dr_logs = access_log_bucket(
            f"{name}-access-logs",
            account,
            named("access-logs"),
            retention_days=args.log_retention_days,
            source_buckets=(named("replica"),),
            opts=in_dr,
        )
        self.replica = SecureBucket(
            f"{name}-replica",
            SecureBucketArgs(
                account=account,
                bucket_name=named("replica"),
                purpose="archive-replica",
                kms_key=dr_key,
                object_lock=args.archive_lock,
                access_log_bucket=dr_logs.bucket.bucket,
                lifecycle=Lifecycle(transition_days=args.archive_transition_days),
                deny_version_deletion=True,
                protect=True,
            ),
            opts=in_dr,
        )

        role = aws.iam.Role(
            f"{name}-replication-role",
            name=replication_role,
            description="S3 replication of the imaging archive to the DR region (no deletes)",
            permissions_boundary=args.permissions_boundary,
            assume_role_policy=json.dumps(
                service_trust_policy(
                    "s3.amazonaws.com",
                    account,
                    source_arn_like=account.bucket_arn(args.archive.name),
                )
            ),
            opts=child,
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-replication-policy",
            role=role.id,
            policy=pulumi.Output.all(args.archive_key.arn, dr_key.arn).apply(
                lambda arns: json.dumps(
                    replication_role_policy(
                        account,
                        source_bucket=args.archive.name,
                        destination_bucket=self.replica.name,
                        source_key_arn=arns[0],
                        destination_key_arn=arns[1],
                        destination_region=args.dr_region,
                    )
                )
            ),
            opts=child,
        )
        aws.s3.BucketReplicationConfig(
            f"{name}-replication",
            bucket=args.archive.bucket.id,
            role=role.arn,
            rules=[
                {
                    # One rule over the whole bucket: instances and their signature sidecars
                    # travel together, with their Object Lock retention.
                    "id": "archive-to-dr",
                    "status": "Enabled",
                    "priority": 1,
                    "filter": {},
                    # Deletes never propagate: a delete marker in the source stays there.
                    "delete_marker_replication": {"status": "Disabled"},
                    "source_selection_criteria": {
                        "sse_kms_encrypted_objects": {"status": "Enabled"}
                    },
                    "destination": {
                        "bucket": self.replica.arn,
                        "storage_class": "STANDARD",
                        "encryption_configuration": {"replica_kms_key_id": dr_key.arn},
                        "replication_time": {
                            "status": "Enabled",
                            "time": {"minutes": RTC_SLA_MINUTES},
                        },
                        "metrics": {
                            "status": "Enabled",
                            "event_threshold": {"minutes": RTC_SLA_MINUTES},
                        },
                    },
                }
            ],
            # S3 refuses a replication configuration until both buckets are versioned.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[role_policy, self.replica, args.archive]
            ),
        )

        backup_service_role = aws.iam.Role(
            f"{name}-backup-role",
            name=backup_role,
            description="AWS Backup: back up and restore the stack's tagged DynamoDB tables",
            assume_role_policy=json.dumps(service_trust_policy("backup.amazonaws.com", account)),
            permissions_boundary=args.permissions_boundary,
            opts=child,
        )
        for i, managed in enumerate(MANAGED_BACKUP_POLICIES):
            # AWS maintains these service-role policies as Backup gains resource types.
            aws.iam.RolePolicyAttachment(
                f"{name}-backup-role-policy-{i}",
                role=backup_service_role.name,
                policy_arn=f"arn:{partition}:iam::aws:policy/{managed}",
                opts=child,
            )
        # Locked for as long as recovery points are kept: nobody, root included, deletes one
        # early. Lowering backupRetentionDays below a lock already immutable fails the backups.
        retention = args.backup_retention_days
        self.vault = _locked_vault(
            f"{name}-vault", f"{args.name_prefix}-vault", args.backup_key, retention, child
        )
        self.dr_vault = _locked_vault(
            f"{name}-dr-vault", f"{args.name_prefix}-dr-vault", dr_key, retention, in_dr
        )

        plan_name = f"{args.name_prefix}-index"
        backup = aws.backup
        self.plan = aws.backup.Plan(
            f"{name}-plan",
            name=plan_name,
            rules=[
                backup.PlanRuleArgs(
                    rule_name=f"every-{args.backup_interval_hours}h",
                    target_vault_name=self.vault.name,
                    schedule=backup_schedule(args.backup_interval_hours),
                    start_window=60,
                    completion_window=180,
                    lifecycle=backup.PlanRuleLifecycleArgs(delete_after=args.backup_retention_days),
                    copy_actions=[
                        backup.PlanRuleCopyActionArgs(
                            destination_vault_arn=self.dr_vault.arn,
                            lifecycle=backup.PlanRuleCopyActionLifecycleArgs(
                                delete_after=args.backup_retention_days
                            ),
                        )
                    ],
                    recovery_point_tags={BACKUP_SELECTION_TAG: plan_name},
                )
            ],
            opts=child,
        )
        aws.backup.Selection(
            f"{name}-selection",
            name=f"{args.name_prefix}-tables",
            plan_id=self.plan.id,
            iam_role_arn=backup_service_role.arn,
            # Tables join the plan by tag, so the ones later components add are covered.
            resources=[f"arn:{partition}:dynamodb:{account.region}:{account.account_id}:table/*"],
            conditions=[
                {
                    "string_equals": [
                        {"key": f"aws:ResourceTag/{BACKUP_SELECTION_TAG}", "value": plan_name}
                    ]
                }
            ],
            opts=child,
        )
        self.backup_tag = {BACKUP_SELECTION_TAG: plan_name}
        self.register_outputs(
            {
                "replicaBucket": self.replica.bucket.bucket,
                "vault": self.vault.name,
                "drVault": self.dr_vault.name,
            }
        )


def _locked_vault(
    name: str,
    vault_name: str,
    key: aws.kms.Key,
    min_retention_days: int,
    opts: pulumi.ResourceOptions,
) -> aws.backup.Vault:
    vault = aws.backup.Vault(
        name,
        name=vault_name,
        kms_key_arn=key.arn,
        force_destroy=False,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=True)),
    )
    aws.backup.VaultLockConfiguration(
        f"{name}-lock",
        backup_vault_name=vault.name,
        # Setting a grace period is what makes the lock compliance mode: immutable after it.
        changeable_for_days=VAULT_LOCK_GRACE_DAYS,
        min_retention_days=min_retention_days,
        opts=opts,
    )
    return vault
