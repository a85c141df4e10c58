"""ImagingArchive: inbox, WORM archive, quarantine, derived and access-log buckets."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.bucket import Lifecycle, SecureBucket, SecureBucketArgs, access_log_bucket
from infra.config import ObjectLock
from infra.iam_documents import Account, LoadBalancerLogDelivery

DATA_BUCKETS: tuple[str, ...] = ("inbox", "archive", "quarantine", "derived")


def bucket_name(account: Account, name_prefix: str, purpose: str, region: str) -> str:
    """Globally unique, readable bucket names: pacs-<env>-<account>-<region>-<purpose>."""
    name = f"{name_prefix}-{account.account_id}-{region}-{purpose}"
    if len(name) > 63:
        raise ValueError(f"bucket name {name!r} is longer than S3's 63 characters")
    return name


@dataclass(frozen=True)
class ImagingArchiveArgs:
    """Retention and lifecycle of the imaging buckets."""

    account: Account
    name_prefix: str
    data_key: aws.kms.Key
    archive_lock: ObjectLock
    quarantine_lock: ObjectLock
    archive_transition_days: int
    inbox_expiration_days: int
    log_retention_days: int
    # Other buckets of the region whose server access logs land in the access-log bucket.
    other_logged_buckets: tuple[str, ...] = ()
    # The edge's load balancers log to the access-log bucket too.
    load_balancer_logs: LoadBalancerLogDelivery | None = None


class ImagingArchive(pulumi.ComponentResource):
    """The imaging buckets; every one is a :class:`SecureBucket`."""

    buckets: dict[str, SecureBucket]

    def __init__(
        self, name: str, args: ImagingArchiveArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:archive:ImagingArchive", name, None, opts)
        account = args.account

        def named(purpose: str) -> str:
            return bucket_name(account, args.name_prefix, purpose, account.region)

        access_logs = access_log_bucket(
            f"{name}-access-logs",
            account,
            named("access-logs"),
            retention_days=args.log_retention_days,
            source_buckets=(*(named(p) for p in DATA_BUCKETS), *args.other_logged_buckets),
            opts=pulumi.ResourceOptions(parent=self),
            load_balancer_logs=args.load_balancer_logs,
        )
        data_lifecycles = {
            # Inbox objects are copies: the archive or quarantine holds the evidence long before.
            "inbox": Lifecycle(
                expiration_days=args.inbox_expiration_days,
                noncurrent_expiration_days=args.inbox_expiration_days,
            ),
            "archive": Lifecycle(transition_days=args.archive_transition_days),
            "quarantine": Lifecycle(transition_days=args.archive_transition_days),
            "derived": Lifecycle(transition_days=args.archive_transition_days),
        }
        locks = {"archive": args.archive_lock, "quarantine": args.quarantine_lock}
        self.buckets = {"access-logs": access_logs}
        for purpose in DATA_BUCKETS:
            self.buckets[purpose] = SecureBucket(
                f"{name}-{purpose}",
                SecureBucketArgs(
                    account=account,
                    bucket_name=named(purpose),
                    purpose=purpose,
                    kms_key=args.data_key,
                    object_lock=locks.get(purpose),
                    access_log_bucket=access_logs.bucket.bucket,
                    lifecycle=data_lifecycles[purpose],
                    deny_version_deletion=purpose == "archive",
                    protect=purpose in locks,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({p: b.bucket.bucket for p, b in self.buckets.items()})
