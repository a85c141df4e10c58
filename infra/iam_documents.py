"""Every IAM, key, bucket and endpoint policy document of the stack, built by small pure functions.

Components call these with plain strings (inside ``Output.apply``); tests call the same functions to
read the documents a reviewer reads, and later to assume the generated roles under moto. Allow
statements never use wildcard actions; Deny statements may, because they only take power away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Document = dict[str, Any]
Statement = dict[str, Any]

VERSION = "2012-10-17"


@dataclass(frozen=True)
class Account:
    """Where the stack runs: the account, its partition and the primary region."""

    account_id: str
    partition: str
    region: str
    dns_suffix: str = "amazonaws.com"
    reverse_dns_prefix: str = "com.amazonaws"

    @property
    def root_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:root"

    def role_arn(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:role/{name}"

    def service_endpoint(self, service: str, region: str | None = None) -> str:
        """The name KMS sees in ``kms:ViaService`` for a regional service."""
        return f"{service}.{region or self.region}.{self.dns_suffix}"

    def endpoint_service(self, service: str) -> str:
        """VPC endpoint service name, e.g. ``com.amazonaws.us-east-1.s3``."""
        return f"{self.reverse_dns_prefix}.{self.region}.{service}"

    def bucket_arn(self, bucket: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}"


def document(*statements: Statement) -> Document:
    """A policy document with the statements in order."""
    return {"Version": VERSION, "Statement": list(statements)}


# --------------------------------------------------------------------------------------------- KMS

# Administration never includes a cryptographic operation: admins manage keys, roles use them.
KEY_ADMIN_ACTIONS: tuple[str, ...] = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)

KEY_USE_ACTIONS: dict[str, tuple[str, ...]] = {
    "ENCRYPT_DECRYPT": (
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
    ),
    "SIGN_VERIFY": ("kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"),
    "GENERATE_VERIFY_MAC": ("kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"),
}


def key_policy(
    account: Account,
    *,
    region: str,
    usage: str,
    admin_arns: Sequence[str],
    user_role_arns: Sequence[str],
    via_services: Sequence[str],
    grants_for_aws_resources: bool,
    service_statements: Sequence[Statement] = (),
) -> Document:
    """Key policy separating administration from use.

    Use is granted only to the stack's named roles (``aws:PrincipalArn``; the principal is the
    account so the policy is valid before the roles exist) and, for keys that protect data at rest,
    only through the services that hold the data (``kms:ViaService``).
    """
    statements: list[Statement] = [
        {
            "Sid": "KeyAdministrationWithoutUse",
            "Effect": "Allow",
            "Principal": {"AWS": sorted(admin_arns) or [account.root_arn]},
            "Action": list(KEY_ADMIN_ACTIONS),
            "Resource": "*",
        }
    ]
    if user_role_arns:
        condition: dict[str, dict[str, Any]] = {
            "ArnEquals": {"aws:PrincipalArn": sorted(user_role_arns)},
            "StringEquals": {"kms:CallerAccount": account.account_id},
        }
        if via_services:
            condition["StringEquals"]["kms:ViaService"] = sorted(
                account.service_endpoint(s, region) for s in via_services
            )
        statements.append(
            {
                "Sid": "KeyUseByStackRoles",
                "Effect": "Allow",
                "Principal": {"AWS": account.root_arn},
                "Action": list(KEY_USE_ACTIONS[usage]),
                "Resource": "*",
                "Condition": condition,
            }
        )
        if grants_for_aws_resources:
            statements.append(
                {
                    "Sid": "GrantsOnlyForAwsResources",
                    "Effect": "Allow",
                    "Principal": {"AWS": account.root_arn},
                    "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                    "Resource": "*",
                    "Condition": {
                        "ArnEquals": {"aws:PrincipalArn": sorted(user_role_arns)},
                        "Bool": {"kms:GrantIsForAWSResource": "true"},
                    },
                }
            )
    statements.extend(service_statements)
    return {"Version": VERSION, "Statement": statements}


def cloudwatch_logs_key_statement(account: Account, region: str) -> Statement:
    """CloudWatch Logs encrypts this account's log groups in the region with the key."""
    return {
        "Sid": "CloudWatchLogsEncryptsOwnLogGroups",
        "Effect": "Allow",
        "Principal": {"Service": account.service_endpoint("logs", region)},
        "Action": list(KEY_USE_ACTIONS["ENCRYPT_DECRYPT"]),
        "Resource": "*",
        "Condition": {
            "ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": (
                    f"arn:{account.partition}:logs:{region}:{account.account_id}:log-group:*"
                )
            }
        },
    }


def cloudtrail_key_statements(account: Account) -> list[Statement]:
    """CloudTrail encrypts this account's trails with the key (and nobody else's)."""
    return [
        {
            # DescribeKey carries no encryption context, so it gets its own statement.
            "Sid": "CloudTrailDescribesKey",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "kms:DescribeKey",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account.account_id}},
        },
        _cloudtrail_encrypt_statement(account),
    ]


def _cloudtrail_encrypt_statement(account: Account) -> Statement:
    return {
        "Sid": "CloudTrailEncryptsOwnTrails",
        "Effect": "Allow",
        "Principal": {"Service": "cloudtrail.amazonaws.com"},
        "Action": "kms:GenerateDataKey",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": account.account_id},
            "StringLike": {
                "kms:EncryptionContext:aws:cloudtrail:arn": (
                    f"arn:{account.partition}:cloudtrail:*:{account.account_id}:trail/*"
                )
            },
        },
    }


# ---------------------------------------------------------------------------------------------- S3

_TLS_STATEMENTS_ACTION = "s3:*"


def bucket_policy(
    account: Account,
    bucket: str,
    *,
    kms_key_arn: str | None,
    deny_version_deletion: bool = False,
    log_delivery_source_buckets: Sequence[str] = (),
) -> Document:
    """Bucket policy: TLS 1.2+ only, the bucket's KMS key only, optional WORM and log delivery."""
    arn = account.bucket_arn(bucket)
    objects = f"{arn}/*"
    statements: list[Statement] = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": _TLS_STATEMENTS_ACTION,
            "Resource": [arn, objects],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyTlsOlderThan12",
            "Effect": "Deny",
            "Principal": "*",
            "Action": _TLS_STATEMENTS_ACTION,
            "Resource": [arn, objects],
            "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}},
        },
    ]
    if kms_key_arn is not None:
        # A PutObject without encryption headers is encrypted by the bucket default (this key), so
        # the policy refuses only headers that ask for anything else. Requiring the header outright
        # would also refuse UploadPart, which is authorised as s3:PutObject but never carries it.
        statements += [
            {
                "Sid": "DenyEncryptionOtherThanKms",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {
                    "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                    "Null": {"s3:x-amz-server-side-encryption": "false"},
                },
            },
            {
                "Sid": "DenyKmsKeysOtherThanTheBucketKey",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {
                    "StringNotEquals": {
                        "s3:x-amz-server-side-encryption-aws-kms-key-id": kms_key_arn
                    },
                    "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
                },
            },
            {
                "Sid": "DenyCustomerProvidedKeys",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {
                    "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}
                },
            },
        ]
    if deny_version_deletion:
        # Object Lock refuses deletes during retention; this also refuses them afterwards, so a
        # deliberate deletion of archived studies needs a reviewed change to this policy.
        statements.append(
            {
                "Sid": "DenyDeletingArchivedVersions",
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"],
                "Resource": objects,
            }
        )
    if log_delivery_source_buckets:
        statements.append(
            {
                "Sid": "AllowServerAccessLogDeliveryFromStackBuckets",
                "Effect": "Allow",
                "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {
                    "ArnLike": {
                        "aws:SourceArn": sorted(
                            account.bucket_arn(b) for b in log_delivery_source_buckets
                        )
                    },
                    "StringEquals": {"aws:SourceAccount": account.account_id},
                },
            }
        )
    return {"Version": VERSION, "Statement": statements}


def replication_role_policy(
    account: Account,
    *,
    source_bucket: str,
    destination_bucket: str,
    source_key_arn: str,
    destination_key_arn: str,
    destination_region: str,
) -> Document:
    """Least privilege for S3 replication of an Object Lock archive: no ReplicateDelete."""
    src = account.bucket_arn(source_bucket)
    dst = account.bucket_arn(destination_bucket)
    return document(
        {
            "Sid": "ReadReplicationConfiguration",
            "Effect": "Allow",
            "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
            "Resource": src,
        },
        {
            "Sid": "ReadSourceVersionsWithRetention",
            "Effect": "Allow",
            "Action": [
                "s3:GetObjectLegalHold",
                "s3:GetObjectRetention",
                "s3:GetObjectVersionAcl",
                "s3:GetObjectVersionForReplication",
                "s3:GetObjectVersionTagging",
            ],
            "Resource": f"{src}/*",
        },
        {
            "Sid": "WriteReplicasNeverDeletes",
            "Effect": "Allow",
            "Action": ["s3:ReplicateObject", "s3:ReplicateTags"],
            "Resource": f"{dst}/*",
        },
        {
            # With S3 Bucket Keys the encryption context is the bucket ARN, otherwise the object's.
            "Sid": "DecryptSourceThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": source_key_arn,
            "Condition": {
                "StringEquals": {"kms:ViaService": account.service_endpoint("s3")},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [src, f"{src}/*"]},
            },
        },
        {
            "Sid": "EncryptReplicasThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": destination_key_arn,
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": account.service_endpoint("s3", destination_region)
                },
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [dst, f"{dst}/*"]},
            },
        },
    )


# ------------------------------------------------------------------------------------- Trust, VPC


def service_trust_policy(
    service: str, account: Account, *, source_arn_like: str | None = None
) -> Document:
    """Trust policy for an AWS service, pinned to this account (confused-deputy protection)."""
    condition: dict[str, dict[str, str]] = {
        "StringEquals": {"aws:SourceAccount": account.account_id}
    }
    if source_arn_like:
        condition["ArnLike"] = {"aws:SourceArn": source_arn_like}
    return document(
        {
            "Sid": "AssumedOnlyOnBehalfOfThisAccount",
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
            "Condition": condition,
        }
    )


def flow_logs_role_policy(account: Account, log_group_arn: str) -> Document:
    """VPC Flow Logs may write to its one log group and nothing else."""
    return document(
        {
            "Sid": "WriteFlowLogRecords",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"],
        },
        {
            # DescribeLogGroups supports no resource-level permission: AWS requires "*".
            "Sid": "FindTheLogGroup",
            "Effect": "Allow",
            "Action": ["logs:DescribeLogGroups"],
            "Resource": "*",
        },
    )


# Services reached through interface endpoints, and whether their endpoint policy can pin the
# resource's account (aws:ResourceAccount). Where actions have no resource (sts:GetCallerIdentity,
# ecr:GetAuthorizationToken) only the caller's account can be pinned.
INTERFACE_ENDPOINT_SERVICES: dict[str, bool] = {
    "kms": True,
    "sts": False,
    "logs": False,
    "sqs": True,
    "kinesis-firehose": False,
    "ecr.api": False,
    "ecr.dkr": False,
}
GATEWAY_ENDPOINT_SERVICES: dict[str, bool] = {"s3": True, "dynamodb": True}


def endpoint_policy(account: Account, service: str) -> Document:
    """VPC endpoint policy: only this account's principals, and its resources where supported."""
    pin_resource = {**INTERFACE_ENDPOINT_SERVICES, **GATEWAY_ENDPOINT_SERVICES}[service]
    condition: dict[str, str] = {"aws:PrincipalAccount": account.account_id}
    if pin_resource:
        condition["aws:ResourceAccount"] = account.account_id
    # Endpoint policies are a ceiling, not a grant: IAM policies still decide who may do what.
    prefix = {"kinesis-firehose": "firehose", "ecr.api": "ecr", "ecr.dkr": "ecr"}.get(
        service, service
    )
    statements: list[Statement] = [
        {
            "Sid": "OnlyThisAccount",
            "Effect": "Allow",
            "Principal": "*",
            "Action": f"{prefix}:*",
            "Resource": "*",
            "Condition": {"StringEquals": condition},
        }
    ]
    if service == "s3":
        # ECR image layers live in an AWS-owned bucket; without this, Fargate cannot pull images.
        statements.append(
            {
                "Sid": "EcrImageLayers",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": (
                    f"arn:{account.partition}:s3:::prod-{account.region}-starport-layer-bucket/*"
                ),
                "Condition": {"StringEquals": {"aws:PrincipalAccount": account.account_id}},
            }
        )
    return document(*statements)
