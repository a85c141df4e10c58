"""Every IAM, key, bucket and endpoint policy document of the stack, built by small pure functions.

Components call these with plain strings (inside ``Output.apply``); tests call the same functions to
read the documents a reviewer reads, and later to assume the generated roles under moto. Allow
statements never use wildcard actions; Deny statements may, because they only take power away.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lambdas.settings import ARCHIVE_PREFIX, RESEARCH_REVIEW_PREFIX

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

    def arn(self, service: str, resource: str) -> str:
        """ARN of a regional resource of this account in the primary region."""
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"


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


# What a deployer needs, through a service only, to create a resource encrypted under a key.
DEPLOY_THROUGH_SERVICE_ACTIONS: tuple[str, ...] = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
)


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
    deployed_via_services: Sequence[str] = (),
) -> Document:
    """Key policy separating administration from use.

    Use is granted only to the stack's named roles (``aws:PrincipalArn``; the principal is the
    account so the policy is valid before the roles exist) and, for keys that protect data at rest,
    only through the services that hold the data (``kms:ViaService``). ``deployed_via_services``
    names the services whose resources the administrators (who run ``pulumi up``) create encrypted
    under the key; they get the key only through those services, never directly.
    """
    admins = sorted(admin_arns) or [account.root_arn]
    statements: list[Statement] = [
        {
            "Sid": "KeyAdministrationWithoutUse",
            "Effect": "Allow",
            "Principal": {"AWS": admins},
            "Action": list(KEY_ADMIN_ACTIONS),
            "Resource": "*",
        }
    ]
    if deployed_via_services:
        statements.append(
            {
                # DynamoDB (CreateTable) and Lambda (encrypted environment variables) create their
                # grants and data keys with the credentials of whoever declares the resource.
                "Sid": "KeyAdministratorsDeployEncryptedResourcesThroughServices",
                "Effect": "Allow",
                "Principal": {"AWS": admins},
                "Action": list(DEPLOY_THROUGH_SERVICE_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:CallerAccount": account.account_id,
                        "kms:ViaService": sorted(
                            account.service_endpoint(s, region) for s in deployed_via_services
                        ),
                    }
                },
            }
        )
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


def s3_notifications_key_statement(account: Account) -> Statement:
    """S3 encrypts this account's event notifications into queues protected by the key."""
    return {
        "Sid": "S3EncryptsEventNotificationsOfThisAccount",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": account.account_id}},
    }


def cloudwatch_alarms_key_statement(account: Account, region: str) -> Statement:
    """CloudWatch alarms of this account publish to SNS topics encrypted with the key."""
    return _publishes_to_encrypted_topics(
        "CloudWatchAlarmsPublishToEncryptedTopics",
        "cloudwatch.amazonaws.com",
        account,
        f"arn:{account.partition}:cloudwatch:{region}:{account.account_id}:alarm:*",
    )


def eventbridge_key_statement(account: Account, region: str) -> Statement:
    """EventBridge rules of this account publish to SNS topics encrypted with the key."""
    return _publishes_to_encrypted_topics(
        "EventBridgeRulesPublishToEncryptedTopics",
        "events.amazonaws.com",
        account,
        f"arn:{account.partition}:events:{region}:{account.account_id}:rule/*",
    )


def _publishes_to_encrypted_topics(
    sid: str, service: str, account: Account, source_arn_pattern: str
) -> Statement:
    # SNS asks KMS with the publishing service's identity; only this account's sources may.
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": account.account_id},
            "ArnLike": {"aws:SourceArn": source_arn_pattern},
        },
    }


# ---------------------------------------------------------------------------------------------- S3

_TLS_STATEMENTS_ACTION = "s3:*"


def allow_service_for_sources(
    sid: str,
    account: Account,
    *,
    service: str,
    action: str,
    resource: str,
    source_arns: str | list[str],
) -> Statement:
    """Resource-policy statement: an AWS service may act only for these resources of the account."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": action,
        "Resource": resource,
        "Condition": {
            "ArnLike": {"aws:SourceArn": source_arns},
            "StringEquals": {"aws:SourceAccount": account.account_id},
        },
    }


def deny_insecure_transport(action: str, resource: str | list[str]) -> Statement:
    """Resource-policy statement refusing every request made without TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": resource,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def bucket_policy(
    account: Account,
    bucket: str,
    *,
    kms_key_arn: str | None,
    deny_version_deletion: bool = False,
    log_delivery_source_buckets: Sequence[str] = (),
    load_balancer_logs: LoadBalancerLogDelivery | None = None,
) -> Document:
    """Bucket policy: TLS 1.2+ only, the bucket's KMS key only, optional WORM and log delivery."""
    arn = account.bucket_arn(bucket)
    objects = f"{arn}/*"
    statements: list[Statement] = [
        deny_insecure_transport(_TLS_STATEMENTS_ACTION, [arn, objects]),
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
            allow_service_for_sources(
                "AllowServerAccessLogDeliveryFromStackBuckets",
                account,
                service="logging.s3.amazonaws.com",
                action="s3:PutObject",
                resource=objects,
                source_arns=sorted(account.bucket_arn(b) for b in log_delivery_source_buckets),
            )
        )
    if load_balancer_logs is not None:
        statements += load_balancer_log_delivery_statements(account, bucket, load_balancer_logs)
    return {"Version": VERSION, "Statement": statements}


# Elastic Load Balancing's log delivery principal (regions opened since August 2022, and AWS's
# recommendation everywhere); regions opened earlier deliver from a regional ELB account instead.
ELB_LOG_DELIVERY_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"
# Regions opened before the service principal existed: their ELB account is still documented as the
# principal that writes the logs (`aws.elb.get_service_account` knows it). Later regions have none.
ELB_ACCOUNT_LOG_REGIONS: frozenset[str] = frozenset(
    {
        "af-south-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
        "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ca-central-1", "cn-north-1",
        "cn-northwest-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-west-1", "eu-west-2",
        "eu-west-3", "me-south-1", "sa-east-1", "us-east-1", "us-east-2", "us-gov-east-1",
        "us-gov-west-1", "us-west-1", "us-west-2",
    }
)  # fmt: skip


@dataclass(frozen=True)
class LoadBalancerLogDelivery:
    """Prefixes under which the stack's load balancers write logs, and who delivers them."""

    prefixes: tuple[str, ...]
    # arn:<partition>:iam::<elb account>:root in the regions of ELB_ACCOUNT_LOG_REGIONS, else None.
    regional_elb_account_arn: str | None = None


def load_balancer_log_delivery_statements(
    account: Account, bucket: str, delivery: LoadBalancerLogDelivery
) -> list[Statement]:
    """Elastic Load Balancing may write this account's logs under the given prefixes only.

    ELB writes below ``<prefix>/AWSLogs/<load balancer's account>/``: naming our account in the path
    keeps another account's load balancer from writing here, whatever it is configured with.
    """
    arn = account.bucket_arn(bucket)
    resources = sorted(f"{arn}/{p}/AWSLogs/{account.account_id}/*" for p in delivery.prefixes)
    statements: list[Statement] = [
        {
            "Sid": "AllowLoadBalancerLogDelivery",
            "Effect": "Allow",
            "Principal": {"Service": ELB_LOG_DELIVERY_SERVICE},
            "Action": "s3:PutObject",
            "Resource": resources,
        }
    ]
    if delivery.regional_elb_account_arn:
        statements.append(
            {
                "Sid": "AllowLoadBalancerLogDeliveryFromTheRegionalElbAccount",
                "Effect": "Allow",
                "Principal": {"AWS": delivery.regional_elb_account_arn},
                "Action": "s3:PutObject",
                "Resource": resources,
            }
        )
    return statements


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
    # Fargate reads the gateway's TLS secrets at task start, before the container runs.
    "secretsmanager": True,
}
GATEWAY_ENDPOINT_SERVICES: dict[str, bool] = {"s3": True, "dynamodb": True}

# What the workloads inside the VPC (the functions, the gateway's task and ECS on its behalf) call
# through each endpoint: the endpoint admits these and nothing else, so a stolen credential used
# from inside the VPC cannot reach other actions of the service even in this account. A test checks
# that every action the in-VPC roles are granted is here (a missing one would fail in AWS only).
_ECR_PULL = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetAuthorizationToken",
    "ecr:GetDownloadUrlForLayer",
)
ENDPOINT_ACTIONS: dict[str, tuple[str, ...]] = {
    "s3": (
        "s3:AbortMultipartUpload",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "s3:PutObject",
        "s3:PutObjectTagging",
    ),
    "dynamodb": (
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
    ),
    "kms": (
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:GenerateMac",
        "kms:GetPublicKey",
        "kms:Sign",
        "kms:Verify",
    ),
    # Nothing of ours needs STS inside the VPC but the SDKs' identity check.
    "sts": ("sts:GetCallerIdentity",),
    "logs": ("logs:CreateLogStream", "logs:PutLogEvents"),
    "sqs": (
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
        "sqs:SendMessage",
    ),
    # Log shipping is CloudWatch Logs' own (a service principal, outside the VPC); this admits
    # only record writes, for a forwarder run in the VPC.
    "kinesis-firehose": ("firehose:PutRecord", "firehose:PutRecordBatch"),
    "ecr.api": _ECR_PULL,
    "ecr.dkr": _ECR_PULL,
    "secretsmanager": ("secretsmanager:GetSecretValue",),
}


def endpoint_policy(account: Account, service: str) -> Document:
    """VPC endpoint policy: the workloads' actions only, by this account's principals, on its
    resources where the service supports that."""
    pin_resource = {**INTERFACE_ENDPOINT_SERVICES, **GATEWAY_ENDPOINT_SERVICES}[service]
    condition: dict[str, str] = {"aws:PrincipalAccount": account.account_id}
    if pin_resource:
        condition["aws:ResourceAccount"] = account.account_id
    # Endpoint policies are a ceiling, not a grant: IAM policies still decide who may do what.
    statements: list[Statement] = [
        {
            "Sid": "OnlyThisAccount",
            "Effect": "Allow",
            "Principal": "*",
            "Action": list(ENDPOINT_ACTIONS[service]),
            "Resource": "*",
            "Condition": {"StringEquals": condition},
        }
    ]
    if service == "s3":
        # ECR image layers live in an AWS-owned bucket and are fetched through URLs that ECR
        # pre-signs with its own credentials: the caller is not a principal of this account, so
        # this statement cannot carry the account condition (AWS's documented minimal policy for
        # ECR behind an S3 gateway endpoint has none). It admits reads of that one bucket only.
        statements.append(
            {
                "Sid": "EcrImageLayers",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": (
                    f"arn:{account.partition}:s3:::prod-{account.region}-starport-layer-bucket/*"
                ),
            }
        )
    return document(*statements)


# ----------------------------------------------------------------------------- Ingest, SQS, SNS


def _partition(arn: str) -> str:
    """The partition (``aws``, ``aws-us-gov``, ``aws-cn``) of an ARN."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not parts[1]:
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[1]


def _bucket(partition: str, bucket: str) -> str:
    return f"arn:{partition}:s3:::{bucket}"


def _objects(partition: str, bucket: str, prefix: str = "") -> str:
    return f"{_bucket(partition, bucket)}/{prefix}*"


def _own_log_group_statement(
    log_group_arn: str, sid: str = "WriteOnlyTheFunctionsOwnLogGroup"
) -> Statement:
    # The role writes only to the group the stack created for it (KMS, retention).
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": f"{log_group_arn}:*",
    }


def _put_items_only(sid: str, table_arn: str, attributes: Sequence[str]) -> Statement:
    """PutItem of rows with only these attributes, nothing returned: no read of any row."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": ["dynamodb:PutItem"],
        "Resource": table_arn,
        "Condition": {
            "ForAllValues:StringEquals": {"dynamodb:Attributes": list(attributes)},
            "StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"},
        },
    }


def _data_key_via_services(
    sid: str, actions: Sequence[str], data_key_arn: str, via_service_endpoints: Sequence[str]
) -> Statement:
    """The data key used only through the services that hold the data (``kms:ViaService``)."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": data_key_arn,
        "Condition": {"StringEquals": {"kms:ViaService": sorted(via_service_endpoints)}},
    }


def _missing_archive_keys_statement(partition: str, archive_bucket: str) -> Statement:
    return {
        # Without ListBucket, S3 answers 403 instead of 404 for a key that does not exist, and the
        # functions could not tell "not archived yet" or "missing" from "forbidden".
        "Sid": "TellMissingArchiveKeysFromForbiddenOnes",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": _bucket(partition, archive_bucket),
    }


@dataclass(frozen=True)
class IngestResources:
    """The exact buckets, queue, keys, tables and log group the ingest function touches."""

    inbox_bucket: str
    archive_bucket: str
    quarantine_bucket: str
    queue_arn: str
    data_key_arn: str
    signing_key_arn: str
    pseudonym_key_arn: str
    index_table_arn: str
    idempotency_table_arn: str
    log_group_arn: str


def ingest_role_policy(r: IngestResources) -> Document:
    """The ingest function's whole identity policy: exact actions on exact ARNs, no deletes."""
    partition = _partition(r.queue_arn)
    return document(
        {
            "Sid": "ReadTheInboxObjectVersionThatArrived",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": _objects(partition, r.inbox_bucket),
        },
        {
            # Accepted instances and their signed sidecars live under the studies prefix only.
            "Sid": "ArchiveAcceptedInstancesUnderTheStudiesPrefix",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
            "Resource": _objects(partition, r.archive_bucket, ARCHIVE_PREFIX),
        },
        _missing_archive_keys_statement(partition, r.archive_bucket),
        {
            # AbortMultipartUpload: a failed multipart copy of an oversize object cleans up its
            # parts; it removes no stored object.
            "Sid": "QuarantineRejectedObjectsWithReasonTags",
            "Effect": "Allow",
            "Action": ["s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectTagging"],
            "Resource": _objects(partition, r.quarantine_bucket),
        },
        {
            "Sid": "ConsumeTheIngestQueue",
            "Effect": "Allow",
            "Action": [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
            ],
            "Resource": r.queue_arn,
        },
        {
            "Sid": "SignManifestsWithTheSigningKeyOnly",
            "Effect": "Allow",
            "Action": ["kms:Sign"],
            "Resource": r.signing_key_arn,
        },
        {
            "Sid": "PseudonymizePatientIdsWithThePseudonymKeyOnly",
            "Effect": "Allow",
            "Action": ["kms:GenerateMac"],
            "Resource": r.pseudonym_key_arn,
        },
        {
            # Data keys of the SSE-KMS objects, the encrypted queue and the tables; the key policy
            # admits these calls only through S3, SQS and DynamoDB.
            "Sid": "UseTheDataKeyForObjectsQueueAndTables",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": r.data_key_arn,
        },
        {
            "Sid": "ClaimAndCompleteIndexRecords",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            "Resource": r.index_table_arn,
        },
        {
            # Powertools idempotency deletes its own in-progress record when processing fails.
            "Sid": "RecordEachObjectVersionOnceForIdempotency",
            "Effect": "Allow",
            "Action": [
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ],
            "Resource": r.idempotency_table_arn,
        },
        _own_log_group_statement(r.log_group_arn),
    )


@dataclass(frozen=True)
class VerifyResources:
    """The exact bucket, keys, table and log group the verify function touches.

    ``failure_queue_arn`` is the queue Lambda sends failed asynchronous runs to; Lambda sends with
    the function's own role, so the role needs to reach it.
    """

    archive_bucket: str
    data_key_arn: str
    signing_key_arn: str
    index_table_arn: str
    log_group_arn: str
    failure_queue_arn: str | None = None


def verify_role_policy(r: VerifyResources) -> Document:
    """The verify function's whole identity policy: it reads and verifies, and writes nothing."""
    partition = _partition(r.data_key_arn)
    statements: list[Statement] = [
        {
            "Sid": "ReadArchivedInstancesAndSidecars",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": _objects(partition, r.archive_bucket, ARCHIVE_PREFIX),
        },
        _missing_archive_keys_statement(partition, r.archive_bucket),
        {
            "Sid": "VerifyManifestSignaturesWithTheSigningKey",
            "Effect": "Allow",
            "Action": ["kms:GetPublicKey", "kms:Verify"],
            "Resource": r.signing_key_arn,
        },
        {
            "Sid": "DecryptArchivedObjectsAndIndexRows",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": r.data_key_arn,
        },
        {
            "Sid": "SampleAndReadTheIndex",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:Scan"],
            "Resource": r.index_table_arn,
        },
        _own_log_group_statement(r.log_group_arn),
    ]
    if r.failure_queue_arn:
        statements += [
            {
                "Sid": "ReportFailedRunsToTheFailureQueue",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": r.failure_queue_arn,
            },
            {
                # The failure queue is encrypted with the data key, so sending needs a data key.
                "Sid": "EncryptFailureRecordsForTheQueue",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey"],
                "Resource": r.data_key_arn,
            },
        ]
    return document(*statements)


# ---------------------------------------------------------------------------- Research copies

# The encryption context of every linkage record (lambdas/research_copy.py): the project and the
# de-identified SOP Instance UID the record maps back. The linkage key encrypts and decrypts only
# with exactly these keys present, so a record cannot be replayed under another use of the key.
LINKAGE_CONTEXT_KEYS: tuple[str, ...] = ("deid_sop_instance_uid", "project")
# The attributes of a linkage row (lambdas/research_copy.py writes exactly these).
LINKAGE_ATTRIBUTES: tuple[str, ...] = ("ciphertext", "deid_sop_instance_uid", "project")


def _linkage_context_condition(projects: Sequence[str] = ()) -> dict[str, Any]:
    """Exactly the linkage context's keys; with ``projects``, the project among them."""
    condition: dict[str, Any] = {
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": list(LINKAGE_CONTEXT_KEYS)},
        "Null": {f"kms:EncryptionContext:{k}": "false" for k in LINKAGE_CONTEXT_KEYS},
    }
    if projects:
        condition["StringEquals"] = {"kms:EncryptionContext:project": sorted(projects)}
    return condition


@dataclass(frozen=True)
class ResearchResources:
    """The exact buckets, prefixes, queue, keys, tables and log group the research function uses.

    ``via_service_endpoints``: the ``kms:ViaService`` names (Account.service_endpoint) of S3, SQS
    and DynamoDB, the only services through which the role may use the data key. The linkage
    table and key are None without ``researchLinkage``.
    """

    archive_bucket: str
    derived_bucket: str
    quarantine_bucket: str
    projects: tuple[str, ...]
    queue_arn: str
    data_key_arn: str
    pseudonym_key_arn: str
    idempotency_table_arn: str
    log_group_arn: str
    via_service_endpoints: tuple[str, ...]
    linkage_table_arn: str | None = None
    linkage_key_arn: str | None = None


def research_role_policy(r: ResearchResources) -> Document:
    """The research-copy function's whole identity policy: read archived, write de-identified.

    It reads archived instance versions, writes copies under each project's prefix of the derived
    bucket and unreleasable objects under the review prefix of the quarantine; with linkage it
    only adds encrypted rows to the linkage table (it can never read the mapping back).
    """
    partition = _partition(r.queue_arn)
    statements: list[Statement] = [
        {
            "Sid": "ReadArchivedInstanceVersions",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": _objects(partition, r.archive_bucket, ARCHIVE_PREFIX),
        },
        {
            # GetObject: the function reads back (HEAD, checksum) what a retried record already
            # wrote, and writes only when the bytes differ.
            "Sid": "WriteDeidentifiedCopiesUnderEachProjectsPrefix",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": sorted(
                _objects(partition, r.derived_bucket, f"{DEIDENTIFIED_PREFIX}{p}/")
                for p in r.projects
            ),
        },
        {
            # Review records only (never the identified image): research-review/<project>/...
            "Sid": "HoldUnreleasableObjectsForResearchReview",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": _objects(partition, r.quarantine_bucket, RESEARCH_REVIEW_PREFIX),
        },
        {
            "Sid": "ConsumeTheResearchQueue",
            "Effect": "Allow",
            "Action": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
            "Resource": r.queue_arn,
        },
        {
            "Sid": "PseudonymizeWithThePseudonymKeyOnly",
            "Effect": "Allow",
            "Action": ["kms:GenerateMac"],
            "Resource": r.pseudonym_key_arn,
        },
        # SSE-KMS objects (read and written), the encrypted queue and the tables: only through
        # those services, never a direct call on the data key.
        _data_key_via_services(
            "UseTheDataKeyThroughS3SqsAndDynamoDbOnly",
            ("kms:Decrypt", "kms:GenerateDataKey"),
            r.data_key_arn,
            r.via_service_endpoints,
        ),
        {
            # Powertools idempotency deletes its own in-progress record when processing fails.
            "Sid": "RecordEachArchivedVersionOnceForIdempotency",
            "Effect": "Allow",
            "Action": [
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ],
            "Resource": r.idempotency_table_arn,
        },
        _own_log_group_statement(r.log_group_arn),
    ]
    if r.linkage_table_arn and r.linkage_key_arn:
        statements += [
            # PutItem only: the function adds mappings and can never read one back, not even the
            # row a put replaces (ReturnValues NONE), and writes only the row's three attributes.
            # DynamoDB has no IAM condition that forces the function's own attribute_not_exists
            # write: a hijacked function could overwrite a row, which point-in-time recovery
            # keeps (README, "Re-identification linkage").
            _put_items_only(
                "AddReidentificationLinkageRowsOnly", r.linkage_table_arn, LINKAGE_ATTRIBUTES
            ),
            {
                "Sid": "EncryptLinkageValuesWithTheLinkageKeyOnly",
                "Effect": "Allow",
                "Action": ["kms:Encrypt"],
                "Resource": r.linkage_key_arn,
                "Condition": _linkage_context_condition(r.projects),
            },
        ]
    return document(*statements)


@dataclass(frozen=True)
class ReidentificationResources:
    """The linkage table, its (archive) table key and the linkage key the human role reads with."""

    linkage_table_arn: str
    linkage_key_arn: str
    data_key_arn: str
    # kms:ViaService of the region's DynamoDB (Account.service_endpoint)
    dynamodb_service_endpoint: str


def reidentification_role_policy(r: ReidentificationResources) -> Document:
    """The reidentification duty: look up and decrypt linkage rows; nothing else, no writes."""
    return document(
        {
            "Sid": "LookUpReidentificationLinkageRows",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:Query"],
            "Resource": r.linkage_table_arn,
        },
        {
            # The table is encrypted at rest with the data key: DynamoDB decrypts with the
            # reader's permissions, through DynamoDB only.
            "Sid": "ReadTheLinkageTableThroughDynamoDbOnly",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": r.data_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": r.dynamodb_service_endpoint}},
        },
        {
            "Sid": "DecryptLinkageValuesWithTheLinkageKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": r.linkage_key_arn,
            "Condition": _linkage_context_condition(),
        },
    )


def linkage_key_statements(
    account: Account, *, writer_role_arn: str, reader_role_arn: str, projects: Sequence[str]
) -> list[Statement]:
    """The linkage key's use: the research function encrypts, the reidentification role decrypts.

    Neither can do the other's half, and both only with the linkage encryption context; the
    function only for the configured projects, the role for any (records outlive a project).
    """
    return [
        {
            "Sid": "ResearchFunctionEncryptsLinkageValuesOnly",
            "Effect": "Allow",
            "Principal": {"AWS": account.root_arn},
            "Action": ["kms:Encrypt"],
            "Resource": "*",
            "Condition": {
                **_linkage_context_condition(projects),
                "ArnEquals": {"aws:PrincipalArn": writer_role_arn},
                "StringEquals": {
                    "kms:CallerAccount": account.account_id,
                    "kms:EncryptionContext:project": sorted(projects),
                },
            },
        },
        {
            "Sid": "ReidentificationRoleDecryptsLinkageValuesOnly",
            "Effect": "Allow",
            "Principal": {"AWS": account.root_arn},
            "Action": ["kms:Decrypt"],
            "Resource": "*",
            "Condition": {
                **_linkage_context_condition(),
                "ArnEquals": {"aws:PrincipalArn": reader_role_arn},
                "StringEquals": {"kms:CallerAccount": account.account_id},
            },
        },
    ]


# ------------------------------------------------------------------------- Exports (issue #9)

# Where the export function writes packages in the exports bucket: exports/<export_id>/package.zip.
EXPORTS_PREFIX = "exports/"
# The algorithms KMS signs with per key spec of the signing key (keys.py's "signing" purpose).
SIGNING_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "ECC_NIST_P256": ("ECDSA_SHA_256",),
    "ECC_NIST_P384": ("ECDSA_SHA_384",),
    "RSA_2048": ("RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PSS_SHA_256"),
    "RSA_3072": ("RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PSS_SHA_256"),
}
# The attributes of a one-time link row (lambdas/export_function.py writes at most these).
EXPORT_LINK_ATTRIBUTES: tuple[str, ...] = (
    "bucket",
    "expires_at",
    "export_id",
    "key",
    "recipient_sha256",
    "token_sha256",
    "ttl",
    "used",
    "used_at",
)


@dataclass(frozen=True)
class ExportResources:
    """The exact buckets, table, keys and log group the export function touches.

    ``via_service_endpoints``: the ``kms:ViaService`` names of S3, DynamoDB and SQS, the only
    services through which the role may use the data key. ``failure_queue_arn``: where Lambda
    sends a failed asynchronous invocation (with the function's role).
    """

    archive_bucket: str
    exports_bucket: str
    links_table_arn: str
    data_key_arn: str
    signing_key_arn: str
    signing_algorithms: tuple[str, ...]
    log_group_arn: str
    via_service_endpoints: tuple[str, ...]
    failure_queue_arn: str | None = None


def export_role_policy(r: ExportResources) -> Document:
    """The export function's whole identity policy: read archived studies, write one package,
    record its link, sign its manifest; it deletes nothing and reads no link back."""
    partition = _partition(r.data_key_arn)
    statements: list[Statement] = [
        {
            "Sid": "ReadArchivedStudies",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": _objects(partition, r.archive_bucket, ARCHIVE_PREFIX),
        },
        {
            # A study's instances are found by listing its prefix; nothing outside studies/.
            "Sid": "ListArchivedStudiesOnly",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": _bucket(partition, r.archive_bucket),
            "Condition": {"StringLike": {"s3:prefix": [f"{ARCHIVE_PREFIX}*"]}},
        },
        {
            # PutObject only: no read, overwrite-by-delete or delete of any package; incomplete
            # multipart uploads are aborted by the bucket's lifecycle.
            "Sid": "WritePackagesUnderTheExportsPrefix",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": _objects(partition, r.exports_bucket, EXPORTS_PREFIX),
        },
        # PutItem only, nothing returned: the function issues links and can never read one.
        _put_items_only("IssueOneTimeLinksOnly", r.links_table_arn, EXPORT_LINK_ATTRIBUTES),
        {
            # Digests only (the manifest's SHA-256), with the key's own algorithm.
            "Sid": "SignManifestDigestsWithTheSigningKeyOnly",
            "Effect": "Allow",
            "Action": ["kms:Sign"],
            "Resource": r.signing_key_arn,
            "Condition": {
                "StringEquals": {
                    "kms:MessageType": "DIGEST",
                    "kms:SigningAlgorithm": sorted(r.signing_algorithms),
                }
            },
        },
        _data_key_via_services(
            "UseTheDataKeyThroughServicesOnly",
            ("kms:Decrypt", "kms:GenerateDataKey"),
            r.data_key_arn,
            r.via_service_endpoints,
        ),
        _own_log_group_statement(r.log_group_arn),
    ]
    if r.failure_queue_arn:
        statements.append(
            {
                "Sid": "ReportFailedAsynchronousExportsToTheFailureQueue",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": r.failure_queue_arn,
            }
        )
    return document(*statements)


@dataclass(frozen=True)
class ExportLinkResources:
    """The exact bucket, table, key and log group the one-time link function touches.

    ``via_service_endpoints``: the ``kms:ViaService`` names of S3 (the presigned GET of an
    SSE-KMS package decrypts with the function's credentials) and DynamoDB (the links table is
    encrypted with the data key).
    """

    exports_bucket: str
    links_table_arn: str
    data_key_arn: str
    log_group_arn: str
    via_service_endpoints: tuple[str, ...]


def export_link_role_policy(r: ExportLinkResources) -> Document:
    """The link function's whole identity policy: consume a link, presign its package's GET."""
    partition = _partition(r.data_key_arn)
    return document(
        {
            # One conditional UpdateItem consumes a link (lambdas/export_link.py): no Get, no
            # Query, no Scan, no Delete.
            "Sid": "ConsumeOneTimeLinks",
            "Effect": "Allow",
            "Action": ["dynamodb:UpdateItem"],
            "Resource": r.links_table_arn,
        },
        {
            # The presigned URL carries these credentials: it can fetch a package, nothing else.
            "Sid": "HandOutPackagesUnderTheExportsPrefix",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": _objects(partition, r.exports_bucket, EXPORTS_PREFIX),
        },
        _data_key_via_services(
            "DecryptPackagesAndLinksThroughServicesOnly",
            ("kms:Decrypt",),
            r.data_key_arn,
            r.via_service_endpoints,
        ),
        _own_log_group_statement(r.log_group_arn),
    )


def queue_policy(
    account: Account, queue_arn: str, *, notifying_buckets: Sequence[str] = ()
) -> Document:
    """SQS queue policy: TLS only; optionally S3 event notifications from the named buckets."""
    statements = [deny_insecure_transport("sqs:*", queue_arn)]
    if notifying_buckets:
        statements.append(
            allow_service_for_sources(
                "S3EventNotificationsFromTheStackBucketsOnly",
                account,
                service="s3.amazonaws.com",
                action="sqs:SendMessage",
                resource=queue_arn,
                source_arns=sorted(account.bucket_arn(b) for b in notifying_buckets),
            )
        )
    return {"Version": VERSION, "Statement": statements}


def operations_topic_policy(account: Account, topic_arn: str, region: str) -> Document:
    """SNS topic policy: TLS only; this account's CloudWatch alarms may publish."""
    return document(
        deny_insecure_transport("sns:Publish", topic_arn),
        _alarms_publish(account, topic_arn, region),
    )


def _alarms_publish(account: Account, topic_arn: str, region: str) -> Statement:
    return allow_service_for_sources(
        "CloudWatchAlarmsOfThisAccountPublish",
        account,
        service="cloudwatch.amazonaws.com",
        action="sns:Publish",
        resource=topic_arn,
        source_arns=f"arn:{account.partition}:cloudwatch:{region}:{account.account_id}:alarm:*",
    )


# ---------------------------------------------------------------------------------- Edge gateway


@dataclass(frozen=True)
class GatewayTaskResources:
    """What the gateway container itself touches: the inbox, through S3, with the data key."""

    inbox_bucket: str
    data_key_arn: str
    # kms:ViaService of the region's S3, e.g. s3.us-east-1.amazonaws.com (Account.service_endpoint)
    s3_service_endpoint: str


def gateway_task_role_policy(r: GatewayTaskResources) -> Document:
    """The gateway's whole identity policy: it adds objects to the inbox and does nothing else.

    No read, list, delete or tagging: a compromised gateway can add files for the ingest pipeline
    to validate, never read back what others sent. Single-request PutObject only: a multipart
    upload would also need kms:Decrypt and s3:AbortMultipartUpload.
    """
    partition = _partition(r.data_key_arn)
    return document(
        {
            "Sid": "WriteReceivedInstancesToTheInbox",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": _objects(partition, r.inbox_bucket),
        },
        {
            # The inbox encrypts with the data key by default (SSE-KMS, Bucket Key): S3 asks KMS for
            # a data key with the caller's permissions.
            "Sid": "EncryptInboxObjectsWithTheDataKeyThroughS3",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey"],
            "Resource": r.data_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": r.s3_service_endpoint}},
        },
    )


@dataclass(frozen=True)
class GatewayExecutionResources:
    """What ECS needs to start the gateway: its image, its log group and its TLS secrets."""

    repository_arns: tuple[str, ...]
    log_group_arn: str
    secret_arns: tuple[str, ...]
    edge_key_arn: str
    # kms:ViaService of the region's Secrets Manager (Account.service_endpoint)
    secretsmanager_service_endpoint: str


def gateway_execution_role_policy(r: GatewayExecutionResources) -> Document:
    """ECS's role for starting gateway tasks: pull the image, write logs, read the TLS secrets."""
    return document(
        {
            # GetAuthorizationToken has no resource: AWS requires "*". The token alone pulls
            # nothing; the next statement names the repositories.
            "Sid": "GetRegistryAuthorizationTokens",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": "*",
        },
        {
            "Sid": "PullTheGatewayImageOnly",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Resource": sorted(r.repository_arns),
        },
        _own_log_group_statement(r.log_group_arn, sid="WriteOnlyTheGatewayLogGroup"),
        {
            "Sid": "ReadTheGatewayTlsSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": sorted(r.secret_arns),
        },
        {
            "Sid": "DecryptTheTlsSecretsThroughSecretsManager",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": r.edge_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": r.secretsmanager_service_endpoint}},
        },
    )


# ------------------------------------------------------------------------------------------- Audit


def cloudtrail_bucket_statements(account: Account, bucket: str, trail_arn: str) -> list[Statement]:
    """CloudTrail may check the audit bucket's ACL and write log files, for this one trail only.

    AWS's documented pair (AWSCloudTrailAclCheck / AWSCloudTrailWrite) with ``aws:SourceArn``
    pinned to the trail: no other trail, of this account or any other, can write here.
    """
    arn = account.bucket_arn(bucket)
    return [
        {
            "Sid": "AWSCloudTrailAclCheck",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:GetBucketAcl",
            "Resource": arn,
            "Condition": {"StringEquals": {"aws:SourceArn": trail_arn}},
        },
        {
            "Sid": "AWSCloudTrailWrite",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"{arn}/AWSLogs/{account.account_id}/*",
            "Condition": {
                "StringEquals": {
                    "aws:SourceArn": trail_arn,
                    "s3:x-amz-acl": "bucket-owner-full-control",
                }
            },
        },
    ]


def cloudtrail_logs_role_policy(log_group_arn: str) -> Document:
    """CloudTrail's role for its CloudWatch Logs copy: write the trail's one log group."""
    return document(
        {
            "Sid": "DeliverTrailEventsToTheTrailLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn}:log-stream:*",
        }
    )


def logs_to_firehose_role_policy(stream_arn: str) -> Document:
    """CloudWatch Logs' role for the subscription filters: put records into the SIEM stream only."""
    return document(
        {
            "Sid": "ShipSubscribedLogEventsToTheSiemStream",
            "Effect": "Allow",
            "Action": ["firehose:PutRecord", "firehose:PutRecordBatch"],
            "Resource": stream_arn,
        }
    )


@dataclass(frozen=True)
class SiemDeliveryResources:
    """What the SIEM delivery stream's role touches: its buckets, the logs key, logs, the secret."""

    # The backup bucket and, for an ``s3`` destination, the bucket the SIEM pulls from.
    bucket_names: tuple[str, ...]
    logs_key_arn: str
    error_log_group_arn: str
    # kms:ViaService of the region's S3 (Account.service_endpoint)
    s3_service_endpoint: str
    # The SIEM's access key or HEC token (http and splunk destinations only).
    secret_arn: str | None = None
    # kms:ViaService of the region's Secrets Manager, with ``secret_arn``
    secretsmanager_service_endpoint: str | None = None


def siem_delivery_role_policy(r: SiemDeliveryResources) -> Document:
    """Firehose's role: write the backup (and pull) buckets, log its errors, read its secret."""
    partition = _partition(r.logs_key_arn)
    buckets = sorted(_bucket(partition, b) for b in r.bucket_names)
    statements: list[Statement] = [
        {
            # Firehose's documented bucket-level calls before it writes (and resumes) uploads.
            "Sid": "FindTheDeliveryBuckets",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
            "Resource": buckets,
        },
        {
            # GetObject: Firehose reads back parts of its own multipart uploads. No delete.
            "Sid": "WriteDeliveredAndFailedRecords",
            "Effect": "Allow",
            "Action": ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
            "Resource": sorted(f"{b}/*" for b in buckets),
        },
        {
            # The buckets encrypt with the logs key (SSE-KMS): S3 asks KMS with the caller's rights.
            "Sid": "EncryptDeliveredObjectsWithTheLogsKeyThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": r.logs_key_arn,
            "Condition": {
                "StringEquals": {"kms:ViaService": r.s3_service_endpoint},
                "StringLike": {
                    "kms:EncryptionContext:aws:s3:arn": sorted(
                        [*buckets, *(f"{b}/*" for b in buckets)]
                    )
                },
            },
        },
        {
            "Sid": "ReportDeliveryErrorsToTheStreamsLogGroup",
            "Effect": "Allow",
            "Action": ["logs:PutLogEvents"],
            "Resource": f"{r.error_log_group_arn}:log-stream:*",
        },
    ]
    if r.secret_arn is not None:
        statements += [
            {
                "Sid": "ReadTheSiemAccessKey",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": r.secret_arn,
            },
            {
                "Sid": "DecryptTheSiemAccessKeyThroughSecretsManager",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": r.logs_key_arn,
                "Condition": {
                    "StringEquals": {"kms:ViaService": r.secretsmanager_service_endpoint}
                },
            },
        ]
    return document(*statements)


def _account_roots(partition: str, role_arns: Sequence[str]) -> list[str]:
    """The roots of the accounts the roles live in: the policy admits them, the condition pins."""
    return sorted({f"arn:{partition}:iam::{arn.split(':')[4]}:root" for arn in role_arns})


def _siem_readers(account: Account, reader_arns: Sequence[str]) -> dict[str, Any]:
    # Account principal + aws:PrincipalArn: valid before the roles exist (KMS, S3 and SQS refuse a
    # policy naming a role that does not exist), and it survives the role being recreated. The
    # readers' own account must also allow the actions (IAM policy), as it must across accounts.
    return {
        "Principal": {"AWS": _account_roots(account.partition, reader_arns)},
        "Condition": {"ArnEquals": {"aws:PrincipalArn": sorted(reader_arns)}},
    }


def siem_reader_bucket_statements(
    account: Account, bucket: str, reader_arns: Sequence[str]
) -> list[Statement]:
    """Bucket-policy statements: the SIEM's roles list the bucket and read its objects, no more."""
    if not reader_arns:
        return []
    arn = account.bucket_arn(bucket)
    return [
        {
            "Sid": "SiemReadersFindTheBucket",
            "Effect": "Allow",
            **_siem_readers(account, reader_arns),
            "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
            "Resource": arn,
        },
        {
            "Sid": "SiemReadersReadTheObjects",
            "Effect": "Allow",
            **_siem_readers(account, reader_arns),
            "Action": ["s3:GetObject"],
            "Resource": f"{arn}/*",
        },
    ]


# What an SQS-based S3 input of a SIEM (e.g. Splunk's) calls on the queue that announces objects:
# receive, hide while reading, delete when read; queue attributes and URL to find it.
SIEM_QUEUE_READER_ACTIONS: tuple[str, ...] = (
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
)


def siem_queue_policy(
    account: Account,
    queue_arn: str,
    *,
    notifying_buckets: Sequence[str],
    reader_arns: Sequence[str] = (),
) -> Document:
    """The SIEM objects queue: TLS only, the audit buckets announce, the SIEM's roles consume."""
    document_ = queue_policy(account, queue_arn, notifying_buckets=notifying_buckets)
    if reader_arns:
        document_["Statement"].append(
            {
                "Sid": "SiemReadersConsumeObjectNotices",
                "Effect": "Allow",
                **_siem_readers(account, reader_arns),
                "Action": list(SIEM_QUEUE_READER_ACTIONS),
                "Resource": queue_arn,
            }
        )
    return document_


def logs_key_reader_statements(
    account: Account,
    region: str,
    *,
    siem_reader_arns: Sequence[str] = (),
    security_auditor_arn: str | None = None,
) -> list[Statement]:
    """Logs key policy: who may *decrypt* audit data (never encrypt), and only through a service.

    - The SIEM's roles: the trail and pull buckets' objects (through S3) and the SIEM objects
      queue's messages (through SQS).
    - The security auditor: CloudTrail's log and digest files only (through S3; the encryption
      context CloudTrail sets, as in AWS's "Enable CloudTrail log decrypt permissions" statement),
      so that ``aws cloudtrail validate-logs`` can read them.
    """
    statements: list[Statement] = []
    if siem_reader_arns:
        statements.append(
            {
                "Sid": "SiemReadersDecryptThroughS3AndSqsOnly",
                "Effect": "Allow",
                "Principal": {"AWS": _account_roots(account.partition, siem_reader_arns)},
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {
                    "ArnEquals": {"aws:PrincipalArn": sorted(siem_reader_arns)},
                    "StringEquals": {
                        "kms:ViaService": sorted(
                            account.service_endpoint(s, region) for s in ("s3", "sqs")
                        )
                    },
                },
            }
        )
    if security_auditor_arn is not None:
        statements.append(
            {
                "Sid": "SecurityAuditorDecryptsTrailFilesThroughS3Only",
                "Effect": "Allow",
                "Principal": {"AWS": account.root_arn},
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {
                    "ArnEquals": {"aws:PrincipalArn": security_auditor_arn},
                    "StringEquals": {
                        "kms:CallerAccount": account.account_id,
                        "kms:ViaService": account.service_endpoint("s3", region),
                    },
                    "Null": {"kms:EncryptionContext:aws:cloudtrail:arn": "false"},
                },
            }
        )
    return statements


def security_auditor_trail_statements(
    account: Account, trail_bucket: str, logs_key_arn: str
) -> list[Statement]:
    """The auditor's identity-policy side of reading (and validating) the trail's files.

    ``aws cloudtrail validate-logs`` lists and reads the log and digest files, finds the bucket's
    region, and fetches CloudTrail's public keys; S3 decrypts with the logs key on the caller's
    behalf (the key policy admits the auditor for CloudTrail's files only).
    """
    arn = account.bucket_arn(trail_bucket)
    return [
        {
            "Sid": "ReadAndValidateTheTrailsFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": f"{arn}/AWSLogs/{account.account_id}/*",
        },
        {
            "Sid": "ListTheTrailBucket",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
            "Resource": arn,
        },
        {
            "Sid": "DecryptTheTrailsFilesThroughS3Only",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": logs_key_arn,
            "Condition": {
                "StringEquals": {"kms:ViaService": account.service_endpoint("s3")},
                "Null": {"kms:EncryptionContext:aws:cloudtrail:arn": "false"},
            },
        },
        {
            # validate-logs checks digest signatures with CloudTrail's public keys: no resource.
            "Sid": "FetchCloudTrailsPublicKeys",
            "Effect": "Allow",
            "Action": ["cloudtrail:ListPublicKeys"],
            "Resource": "*",
        },
    ]


def security_topic_policy(
    account: Account, topic_arn: str, region: str, *, rule_arns: Sequence[str]
) -> Document:
    """SNS topic policy: TLS only; this account's alarms and the named EventBridge rules publish."""
    return document(
        deny_insecure_transport("sns:Publish", topic_arn),
        _alarms_publish(account, topic_arn, region),
        allow_service_for_sources(
            "TheStacksSecurityRulesPublish",
            account,
            service="events.amazonaws.com",
            action="sns:Publish",
            resource=topic_arn,
            source_arns=sorted(rule_arns),
        ),
    )


# ---------------------------------------------------------------------------------------- Identity

# What the permissions boundary takes away from every role the stack creates, by why. Nothing here
# is needed by a workload or a human duty (a test checks every grant of the plan against it):
# objects get the buckets' default retention (no role sets retention or legal holds), AWS Backup
# expires recovery points itself, alarms, rules and topics are the deployer's, and the deployer
# that runs `pulumi up` is not bounded.
#
# Deny statements may name a service-level wildcard (``logs:Delete*``, ``backup:Delete*``) where
# every action it matches only destroys or blinds: a wildcard in a Deny takes power away, never
# grants it, and keeps the managed policy under IAM's 6,144-character limit. The "no wildcard
# action" rule is about Allow statements (a test matches each wildcard to real actions and checks
# that no Allow of the plan has one). Actions whose family also holds something a role needs stay
# exact: ``s3:DeleteObjectVersion`` (not ``s3:Delete*``: ``s3:DeleteObject`` may be granted),
# ``dynamodb:DeleteTable`` (the functions delete idempotency items), IAM role actions (the auditor
# reads role policies).
BOUNDARY_DENIES: dict[str, tuple[str, ...]] = {
    # Object Lock is the archive's immutability: nobody bypasses, shortens or reconfigures it.
    # Legal holds too: lifting one frees a version whose retention has ended for deletion.
    "NoObjectLockBypassOrRetentionChanges": (
        "s3:BypassGovernanceRetention",
        "s3:PutObjectLegalHold",
        "s3:PutObjectRetention",
    ),
    # Permanent deletion, and every bucket setting that would let data go, leave unprotected or
    # stop being logged or announced: policy, ACL, versioning, Object Lock, public access,
    # ownership, logging, notifications (s3:PutBucket*), encryption, lifecycle, replication.
    "NoArchiveDestructionExposureOrBlinding": (
        "s3:DeleteBucket*",
        "s3:DeleteObjectVersion",
        "s3:PutAccountPublicAccessBlock",
        "s3:PutBucket*",
        "s3:PutEncryptionConfiguration",
        "s3:PutLifecycleConfiguration",
        "s3:PutReplicationConfiguration",
    ),
    # A disabled or deleted key makes the archive, its replica and the logs unreadable.
    "NoKeyDisablingDeletionOrPolicyChanges": (
        "kms:Delete*",
        "kms:Disable*",
        "kms:DisconnectCustomKeyStore",
        "kms:PutKeyPolicy",
        "kms:ScheduleKeyDeletion",
        "kms:UpdateAlias",
    ),
    "NoCloudTrailStopDeleteOrUpdate": (
        "cloudtrail:Delete*",
        "cloudtrail:Put*",
        "cloudtrail:Stop*",
        "cloudtrail:Update*",
    ),
    # Deleting, shortening, decrypting-in-place, unsubscribing or re-filtering log groups (the
    # subscriptions feed the SIEM, the metric filters feed the alarms) blinds the audit.
    "NoLogDeletionRetentionSubscriptionOrFilterChanges": (
        "logs:Delete*",
        "logs:DisassociateKmsKey",
        "logs:PutMetricFilter",
        "logs:PutRetentionPolicy",
        "logs:PutSubscriptionFilter",
    ),
    "NoFlowLogDeletion": ("ec2:DeleteFlowLogs",),
    # The SIEM stream, the alarms, the EventBridge rules and the topic that page on the rest.
    "NoSiemAlarmRuleOrTopicBlinding": (
        "cloudwatch:DeleteAlarms",
        "cloudwatch:DisableAlarmActions",
        "cloudwatch:PutMetricAlarm",
        "events:Delete*",
        "events:DisableRule",
        "events:PutRule",
        "events:PutTargets",
        "events:RemoveTargets",
        "firehose:DeleteDeliveryStream",
        "firehose:StopDeliveryStreamEncryption",
        "firehose:UpdateDestination",
        "sns:DeleteTopic",
        "sns:RemovePermission",
        "sns:SetTopicAttributes",
        "sns:Unsubscribe",
    ),
    # Detectors and their findings: deleting, disabling, trusting an IP list or auto-archiving
    # findings hides an attack.
    "NoDetectorOrFindingSuppression": (
        "access-analyzer:ApplyArchiveRule",
        "access-analyzer:CreateArchiveRule",
        "access-analyzer:DeleteAnalyzer",
        "access-analyzer:UpdateArchiveRule",
        "access-analyzer:UpdateFindings",
        "config:Delete*",
        "config:StopConfigurationRecorder",
        "guardduty:ArchiveFindings",
        "guardduty:CreateFilter",
        "guardduty:CreateIPSet",
        "guardduty:Delete*",
        "guardduty:Disassociate*",
        "guardduty:StopMonitoringMembers",
        "guardduty:UpdateDetector",
        "guardduty:UpdateFilter",
        "guardduty:UpdateIPSet",
        "securityhub:BatchDeleteAutomationRules",
        "securityhub:BatchDisableStandards",
        "securityhub:BatchUpdateAutomationRules",
        "securityhub:BatchUpdateFindings",
        "securityhub:CreateAutomationRule",
        "securityhub:Disable*",
        "securityhub:Disassociate*",
    ),
    # The locked vaults hold the index backups; the table is the archive's index and its
    # point-in-time recovery the last resort. dynamodb:DeleteBackup stays: AWS Backup expires the
    # tables' recovery points with the backup role, and the vault lock refuses early deletion.
    "NoBackupOrIndexDeletionOrVaultUnlocking": (
        "backup:Delete*",
        "backup:Put*",
        "backup:Update*",
        "dynamodb:DeleteTable",
        "dynamodb:UpdateContinuousBackups",
    ),
    # A role that could lift its own boundary, or any other, would have no cap at all.
    "NoPermissionsBoundaryRemoval": (
        "iam:DeleteRolePermissionsBoundary",
        "iam:DeleteUserPermissionsBoundary",
        "iam:PutRolePermissionsBoundary",
        "iam:PutUserPermissionsBoundary",
    ),
}
# Denied on the boundary policy and the stack's roles only (their ARNs), not everywhere.
BOUNDARY_POLICY_TAMPERING: tuple[str, ...] = (
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
)
# Trust, session length (UpdateRole) and the duty tag (UntagRole) of the stack's roles included.
STACK_ROLE_TAMPERING: tuple[str, ...] = (
    "iam:AttachRolePolicy",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePolicy",
    "iam:UntagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
)
# Creating a principal is allowed only with this same boundary attached (no escape by proxy).
PRINCIPAL_CREATION: tuple[str, ...] = ("iam:CreateRole", "iam:CreateUser")
# What the boundary's Allow ceiling leaves out. The explicit Deny statements above are the control
# (an explicit Deny wins over any Allow, in any policy, resource policies included); the ceiling
# only has to allow the rest without a wildcard action, so it names a few actions (exact names,
# each also denied) that must stay out of reach even if a Deny were ever narrowed by mistake.
# Kept short on purpose: IAM limits a managed policy to 6,144 characters without whitespace.
CEILING_EXCLUSIONS: tuple[str, ...] = (
    "cloudtrail:DeleteTrail",
    "cloudtrail:StopLogging",
    "iam:DeleteRolePermissionsBoundary",
    "iam:PutRolePermissionsBoundary",
    "kms:ScheduleKeyDeletion",
    "logs:DeleteLogGroup",
    "s3:BypassGovernanceRetention",
    "s3:PutBucketObjectLockConfiguration",
)
# IAM quotas the plan must fit (characters, whitespace not counted): a managed policy, a role's
# inline policies together, and a role trust policy at the default quota (raisable to 4,096).
MANAGED_POLICY_MAX_CHARS = 6144
ROLE_INLINE_POLICIES_MAX_CHARS = 10240
TRUST_POLICY_MAX_CHARS = 2048


def minified_length(document: Document) -> int:
    """The length IAM counts against its quotas: the JSON without whitespace."""
    return len(json.dumps(document, separators=(",", ":")))


def permissions_boundary_name(name_prefix: str) -> str:
    """The boundary policy's name; its ARN is known before it exists."""
    return f"{name_prefix}-permissions-boundary"


def permissions_boundary_arn(account: Account, name_prefix: str) -> str:
    """The boundary policy's ARN (IAM policies are global: no region)."""
    name = permissions_boundary_name(name_prefix)
    return f"arn:{account.partition}:iam::{account.account_id}:policy/{name}"


def permissions_boundary_policy(account: Account, name_prefix: str) -> Document:
    """The boundary on every role of the stack: it grants nothing, it caps.

    A boundary is intersected with the role's own policies, so its Allow is the ceiling. The
    control is the explicit Deny statements: an explicit Deny in the boundary wins over every
    Allow, a role's own policy or a resource policy (bucket, key, vault) naming the role session
    alike. The Allow ceiling is ``NotAction`` over a short list (never a wildcard action, see
    ``CEILING_EXCLUSIONS``); each role's own least-privilege policy still decides what it may do.
    """
    boundary_arn = permissions_boundary_arn(account, name_prefix)
    stack_roles = account.role_arn(f"{name_prefix}-*")
    statements: list[Statement] = [
        {
            "Sid": "CeilingAllButTheGravestActions",
            "Effect": "Allow",
            "NotAction": list(CEILING_EXCLUSIONS),
            "Resource": "*",
        }
    ]
    statements += [
        {"Sid": sid, "Effect": "Deny", "Action": list(actions), "Resource": "*"}
        for sid, actions in BOUNDARY_DENIES.items()
    ]
    statements += [
        {
            "Sid": "NoEditsToThePermissionsBoundaryPolicy",
            "Effect": "Deny",
            "Action": list(BOUNDARY_POLICY_TAMPERING),
            "Resource": boundary_arn,
        },
        {
            "Sid": "NoChangesToTheStacksRolesTrustSessionOrTags",
            "Effect": "Deny",
            "Action": list(STACK_ROLE_TAMPERING),
            "Resource": stack_roles,
        },
        {
            "Sid": "NewPrincipalsCarryThisBoundary",
            "Effect": "Deny",
            "Action": list(PRINCIPAL_CREATION),
            "Resource": "*",
            "Condition": {"ArnNotEquals": {"iam:PermissionsBoundary": boundary_arn}},
        },
    ]
    return document(*statements)


# Human duties, each a role <prefix>-<duty> assumed through federation.
DUTIES: tuple[str, ...] = (
    "imaging-viewer",
    "imaging-operator",
    "security-auditor",
    "integration-partner",
    "break-glass",
)
# Automatic logoff: a human session lasts at most an hour (45 CFR 164.312(a)(2)(iii)).
HUMAN_SESSION_SECONDS = 3600
SAML_SIGNIN_AUDIENCE = "https://signin.aws.amazon.com/saml"
# REFEDS MFA Profile: the assurance value an IdP releases (eduPersonAssurance) only when the user
# authenticated with a second factor. AssumeRoleWithSAML carries no AWS MFA context, so this is
# how a SAML trust can require MFA (see human_trust_policy).
SAML_MFA_ASSURANCE = "https://refeds.org/profile/mfa"
# The integration partner reads the de-identified objects of the derived bucket under this prefix.
DEIDENTIFIED_PREFIX = "derived/"


def human_role_name(name_prefix: str, duty: str) -> str:
    """A human role's name; the archive key policy grants readers by name before they exist."""
    if duty not in DUTIES:
        raise ValueError(f"unknown duty {duty!r}; known: {', '.join(DUTIES)}")
    return f"{name_prefix}-{duty}"


# The principals identityTrustedPrincipalArns may name, by how the trust can know a person used MFA.
# - IAM users, or an account root (its IAM users and MFA sessions): their STS sessions carry
#   aws:MultiFactorAuthPresent when the user signed in, or called AssumeRole/GetSessionToken, with
#   an MFA code. The trust requires it, at most an hour old.
# - IAM Identity Center permission-set roles (AWSReservedSSO_<set>_<suffix>): Identity Center signs
#   people in through SAML (AssumeRoleWithSAML), and STS carries no MFA context for SAML, nor for a
#   role chained from such a session: aws:MultiFactorAuthPresent is never present, so a Bool on it
#   would refuse everyone. MFA is enforced by Identity Center itself (Settings > Authentication >
#   MFA: "Every time they sign in", and "Require them to register an MFA device at sign in"; see
#   the README); the trust pins the permission set's role by aws:PrincipalArn.
# - Any other role: refused. A role's session proves MFA only if an IAM user assumed it with an MFA
#   code; name that user (or the account root) instead, or use a SAML provider.
TrustedPrincipalKind = Literal["iam-user", "account-root", "identity-center-role"]
_PARTITION_ACCOUNT = r"^arn:(aws[a-z-]*):iam::(\d{12}):"
_TRUSTED_PRINCIPAL_KINDS: tuple[tuple[TrustedPrincipalKind, re.Pattern[str]], ...] = (
    ("account-root", re.compile(_PARTITION_ACCOUNT + r"root$")),
    ("iam-user", re.compile(_PARTITION_ACCOUNT + r"user/[\w+=,.@/-]{1,512}$")),
    (
        # The role Identity Center creates per permission set and account; the path has the
        # Identity Center region in newer instances. The 16-character suffix changes whenever the
        # role is re-created (all assignments removed, then one added).
        "identity-center-role",
        re.compile(
            _PARTITION_ACCOUNT
            + r"role/aws-reserved/sso\.amazonaws\.com/(?:[a-z0-9-]+/)?"
            + r"AWSReservedSSO_[\w+=,.@-]{1,32}_[0-9A-Za-z]{16}$"
        ),
    ),
)
IDENTITY_CENTER_SUFFIX_LENGTH = 16


def trusted_principal_kind(arn: str) -> TrustedPrincipalKind | None:
    """How a trusted principal proves MFA (see above); None: it cannot, the trust refuses it."""
    for kind, pattern in _TRUSTED_PRINCIPAL_KINDS:
        if pattern.match(arn):
            return kind
    return None


def _account_root(arn: str) -> str:
    partition, account_id = arn.split(":")[1], arn.split(":")[4]
    return f"arn:{partition}:iam::{account_id}:root"


def identity_center_role_pattern(arn: str) -> str:
    """The permission set's role under any suffix: ``?`` matches exactly one character.

    IAM Identity Center's guide ("Referencing permission sets in resource policies") recommends
    matching ``aws:PrincipalArn`` with a wildcard for the suffix: a re-created role gets a new one,
    and a trust naming the old ARN would lock the permission set's users out.
    """
    return arn[:-IDENTITY_CENTER_SUFFIX_LENGTH] + "?" * IDENTITY_CENTER_SUFFIX_LENGTH


def human_trust_policy(
    *, saml_provider_arn: str | None = None, trusted_principal_arns: Sequence[str] = ()
) -> Document:
    """Who may assume a human role: one federation source, with MFA, attributable to a person.

    - IAM users and account roots (``trusted_principal_arns``) call ``sts:AssumeRole`` with
      ``aws:MultiFactorAuthPresent`` true and the MFA at most an hour old.
    - IAM Identity Center permission-set roles call ``sts:AssumeRole`` from the session Identity
      Center opened after its own MFA (their sessions never carry ``aws:MultiFactorAuthPresent``,
      see ``TrustedPrincipalKind``). The trust names their accounts and pins the roles with
      ``ArnLike`` on ``aws:PrincipalArn`` (any suffix), so no other principal of those accounts
      qualifies. Attribution: Identity Center names each session after the person, and CloudTrail
      records that session as the caller of every ``AssumeRole`` into these roles.
    - A SAML provider calls ``sts:AssumeRoleWithSAML``. AWS STS carries no MFA context for SAML
      (the IAM User Guide's "Compare AWS STS credentials" table: MFA support "No"), so the trust
      requires the IdP's assertion to state MFA (REFEDS MFA profile in ``eduPersonAssurance``),
      next to the sign-in audience.

    ``sts:SetSourceIdentity`` and ``sts:TagSession`` are allowed, not required: a source identity
    follows every chained call in CloudTrail, but AWS does not check its value and a role that
    requires one cannot be switched to in the console (IAM User Guide, "Monitor and control actions
    taken with assumed roles").
    """
    if bool(saml_provider_arn) == bool(trusted_principal_arns):
        raise ValueError("exactly one of saml_provider_arn and trusted_principal_arns is required")
    if saml_provider_arn:
        return document(
            {
                "Sid": "FederatedSignInWithMfaThroughTheSamlProvider",
                "Effect": "Allow",
                "Principal": {"Federated": saml_provider_arn},
                "Action": ["sts:AssumeRoleWithSAML", "sts:SetSourceIdentity", "sts:TagSession"],
                "Condition": {
                    "StringEquals": {"SAML:aud": SAML_SIGNIN_AUDIENCE},
                    "ForAnyValue:StringEquals": {"SAML:edupersonassurance": SAML_MFA_ASSURANCE},
                },
            }
        )
    by_kind: dict[TrustedPrincipalKind, list[str]] = {}
    for arn in trusted_principal_arns:
        kind = trusted_principal_kind(arn)
        if kind is None:
            raise ValueError(
                f"{arn}: not an IAM user, account root or IAM Identity Center permission-set "
                "role; its sessions cannot prove MFA"
            )
        by_kind.setdefault(kind, []).append(arn)
    actions = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    statements: list[Statement] = []
    with_mfa = by_kind.get("iam-user", []) + by_kind.get("account-root", [])
    if with_mfa:
        statements.append(
            {
                "Sid": "IamUsersWithRecentMfa",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(with_mfa)},
                "Action": actions,
                "Condition": {
                    "Bool": {"aws:MultiFactorAuthPresent": "true"},
                    "NumericLessThan": {"aws:MultiFactorAuthAge": str(HUMAN_SESSION_SECONDS)},
                },
            }
        )
    identity_center = by_kind.get("identity-center-role", [])
    if identity_center:
        statements.append(
            {
                "Sid": "IdentityCenterPermissionSetsAfterIdentityCenterMfa",
                "Effect": "Allow",
                "Principal": {"AWS": sorted({_account_root(a) for a in identity_center})},
                "Action": actions,
                "Condition": {
                    "ArnLike": {
                        "aws:PrincipalArn": sorted(
                            identity_center_role_pattern(a) for a in identity_center
                        )
                    }
                },
            }
        )
    return document(*statements)


@dataclass(frozen=True)
class HumanRoleResources:
    """The exact buckets, key, queues and detectors the human roles read or operate."""

    account: Account
    name_prefix: str
    inbox_bucket: str
    archive_bucket: str
    quarantine_bucket: str
    derived_bucket: str
    archive_key_arn: str
    ingest_queue_arn: str
    dead_letter_queue_arn: str
    analyzer_arn: str
    # The CloudTrail bucket and the logs key its files are encrypted with (the auditor reads them).
    trail_bucket: str
    logs_key_arn: str
    # With exportsEnabled: the export function the imaging operators invoke; None without.
    export_function_arn: str | None = None

    def log_groups(self, *names: str) -> list[str]:
        """ARNs of the stack's log groups named by the patterns (and their streams)."""
        a = self.account
        groups = [f"arn:{a.partition}:logs:{a.region}:{a.account_id}:log-group:{n}" for n in names]
        return sorted(groups + [f"{g}:log-stream:*" for g in groups])

    @property
    def operations_log_groups(self) -> list[str]:
        """The functions' and the gateway's logs: what operating the pipeline needs."""
        p = self.name_prefix
        return self.log_groups(f"/aws/lambda/{p}-*", f"/{p}/ecs/*")

    @property
    def security_log_groups(self) -> list[str]:
        """Every log group of the stack: functions, gateway, flow logs, CloudTrail, Firehose."""
        p = self.name_prefix
        return self.log_groups(
            f"/aws/lambda/{p}-*",
            f"/{p}/*",
            f"/aws/ecs/containerinsights/{p}-*",
            f"/aws/kinesisfirehose/{p}-*",
        )


def _read_objects(sid: str, partition: str, buckets: Sequence[str], prefix: str = "") -> Statement:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:GetObjectVersion"],
        "Resource": sorted(_objects(partition, b, prefix) for b in buckets),
    }


def _list_buckets(sid: str, partition: str, buckets: Sequence[str]) -> Statement:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
        "Resource": sorted(_bucket(partition, b) for b in buckets),
    }


def _decrypt_through_s3(r: HumanRoleResources, sid: str) -> Statement:
    # The data buckets encrypt with the archive key (SSE-KMS): S3 decrypts with the reader's
    # permissions, and only through S3 (the archive key policy names the reading roles).
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": r.archive_key_arn,
        "Condition": {"StringEquals": {"kms:ViaService": r.account.service_endpoint("s3")}},
    }


def imaging_viewer_policy(r: HumanRoleResources) -> Document:
    """Clinicians and radiologists: read archived studies and derived objects; never write."""
    partition = r.account.partition
    readable = (r.archive_bucket, r.derived_bucket)
    return document(
        _read_objects("ReadArchivedStudiesAndDerivedObjects", partition, readable),
        _list_buckets("BrowseTheArchiveAndDerivedBuckets", partition, readable),
        _decrypt_through_s3(r, "DecryptImagingObjectsThroughS3Only"),
    )


def imaging_operator_policy(r: HumanRoleResources) -> Document:
    """Operations: redrive the ingest dead-letter queue, read metrics, alarms and logs; no objects.

    A redrive moves the DLQ's messages (S3 event notifications: bucket and key, no image data) back
    to the ingest queue; SQS moves them with the caller's permissions on both queues and keys.
    With exports, the operator also invokes the export function (it reads no object itself).
    """
    a = r.account
    return document(
        {
            "Sid": "RedriveTheIngestDeadLetterQueue",
            "Effect": "Allow",
            "Action": [
                "sqs:CancelMessageMoveTask",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ListMessageMoveTasks",
                "sqs:ReceiveMessage",
                "sqs:StartMessageMoveTask",
            ],
            "Resource": r.dead_letter_queue_arn,
        },
        {
            "Sid": "MoveRedrivenMessagesBackToTheIngestQueue",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueAttributes", "sqs:SendMessage"],
            "Resource": r.ingest_queue_arn,
        },
        {
            # Both queues are encrypted with the archive key; SQS uses it for the moved messages.
            "Sid": "UseTheQueueKeyThroughSqsOnly",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": r.archive_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": a.service_endpoint("sqs")}},
        },
        {
            "Sid": "ReadThePipelinesLogs",
            "Effect": "Allow",
            "Action": [
                "logs:DescribeLogStreams",
                "logs:FilterLogEvents",
                "logs:GetLogEvents",
                "logs:GetQueryResults",
                "logs:StartQuery",
            ],
            "Resource": r.operations_log_groups,
        },
        {
            "Sid": "ReadThePipelinesAlarms",
            "Effect": "Allow",
            "Action": ["cloudwatch:DescribeAlarms"],
            "Resource": (
                f"arn:{a.partition}:cloudwatch:{a.region}:{a.account_id}:alarm:{r.name_prefix}-*"
            ),
        },
        {
            # Metric reads, listing log groups and stopping one's own queries have no resource-level
            # permission: AWS requires "*". They reveal metrics and names, never log or object data.
            "Sid": "ReadMetricsAndFindLogGroups",
            "Effect": "Allow",
            "Action": [
                "cloudwatch:GetMetricData",
                "cloudwatch:GetMetricStatistics",
                "cloudwatch:ListMetrics",
                "logs:DescribeLogGroups",
                "logs:StopQuery",
            ],
            "Resource": "*",
        },
        *(
            [
                {
                    # Exports (issue #9): the operator packages a study for a recipient and
                    # hands over the one-time link the function returns.
                    "Sid": "InvokeTheExportFunction",
                    "Effect": "Allow",
                    "Action": ["lambda:InvokeFunction"],
                    "Resource": r.export_function_arn,
                }
            ]
            if r.export_function_arn
            else []
        ),
    )


def security_auditor_policy(r: HumanRoleResources) -> Document:
    """Security review: read trails (and the trail's files), logs, configuration and findings;
    no object of any imaging bucket."""
    a = r.account
    p = r.name_prefix
    return document(
        {
            "Sid": "ReadTheStacksTrail",
            "Effect": "Allow",
            "Action": [
                "cloudtrail:GetEventSelectors",
                "cloudtrail:GetInsightSelectors",
                "cloudtrail:GetTrail",
                "cloudtrail:GetTrailStatus",
            ],
            "Resource": f"arn:{a.partition}:cloudtrail:{a.region}:{a.account_id}:trail/{p}-*",
        },
        {
            "Sid": "ReadEveryLogGroupOfTheStack",
            "Effect": "Allow",
            "Action": [
                "logs:DescribeLogStreams",
                "logs:FilterLogEvents",
                "logs:GetLogEvents",
                "logs:GetQueryResults",
                "logs:StartQuery",
            ],
            "Resource": r.security_log_groups,
        },
        {
            # Bucket-level settings only (bucket ARNs, never /*): policies, Object Lock, encryption,
            # logging, replication, lifecycle of every bucket of the stack, in both regions.
            "Sid": "ReadBucketConfigurationNotObjects",
            "Effect": "Allow",
            "Action": [
                "s3:GetBucketLogging",
                "s3:GetBucketObjectLockConfiguration",
                "s3:GetBucketPolicy",
                "s3:GetBucketPublicAccessBlock",
                "s3:GetBucketVersioning",
                "s3:GetEncryptionConfiguration",
                "s3:GetLifecycleConfiguration",
                "s3:GetReplicationConfiguration",
            ],
            "Resource": f"arn:{a.partition}:s3:::{p}-{a.account_id}-*",
        },
        {
            "Sid": "ReadTheStacksRolesAndBoundary",
            "Effect": "Allow",
            "Action": [
                "iam:GetPolicy",
                "iam:GetPolicyVersion",
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
            ],
            "Resource": [a.role_arn(f"{p}-*"), permissions_boundary_arn(a, p)],
        },
        {
            "Sid": "ReadAccessAnalyzerFindings",
            "Effect": "Allow",
            "Action": ["access-analyzer:GetFinding", "access-analyzer:ListFindings"],
            "Resource": r.analyzer_arn,
        },
        {
            "Sid": "ReadGuardDutyDetectors",
            "Effect": "Allow",
            "Action": ["guardduty:GetDetector"],
            "Resource": f"arn:{a.partition}:guardduty:{a.region}:{a.account_id}:detector/*",
        },
        {
            "Sid": "ReadSecurityHubFindings",
            "Effect": "Allow",
            "Action": [
                "securityhub:DescribeHub",
                "securityhub:GetEnabledStandards",
                "securityhub:GetFindings",
            ],
            "Resource": f"arn:{a.partition}:securityhub:{a.region}:{a.account_id}:hub/default",
        },
        {
            "Sid": "ReadTheStacksAlarms",
            "Effect": "Allow",
            "Action": ["cloudwatch:DescribeAlarms"],
            "Resource": f"arn:{a.partition}:cloudwatch:{a.region}:{a.account_id}:alarm:{p}-*",
        },
        {
            # None of these has a resource-level permission: AWS requires "*". All are reads of
            # events, findings, metrics and configuration records, none of an object's content.
            "Sid": "ReadEventsFindingsAndConfigurationWithoutResourceScope",
            "Effect": "Allow",
            "Action": [
                "access-analyzer:ListAnalyzers",
                "cloudtrail:DescribeTrails",
                "cloudtrail:ListTrails",
                "cloudtrail:LookupEvents",
                "cloudwatch:GetMetricData",
                "config:DescribeComplianceByConfigRule",
                "config:DescribeConfigRules",
                "config:GetResourceConfigHistory",
                "config:SelectResourceConfig",
                "guardduty:GetFindings",
                "guardduty:ListDetectors",
                "guardduty:ListFindings",
                "logs:DescribeLogGroups",
                "logs:StopQuery",
            ],
            "Resource": "*",
        },
        # The trail's files (no PHI: object keys are random or UIDs) and their validation.
        *security_auditor_trail_statements(r.account, r.trail_bucket, r.logs_key_arn),
    )


def integration_partner_policy(r: HumanRoleResources) -> Document:
    """A partner (research, AI vendor): read de-identified objects under ``derived/`` only."""
    partition = r.account.partition
    return document(
        _read_objects(
            "ReadDeidentifiedObjectsOnly", partition, (r.derived_bucket,), DEIDENTIFIED_PREFIX
        ),
        {
            "Sid": "ListTheDeidentifiedPrefixOnly",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": _bucket(partition, r.derived_bucket),
            "Condition": {"StringLike": {"s3:prefix": f"{DEIDENTIFIED_PREFIX}*"}},
        },
        _decrypt_through_s3(r, "DecryptDeidentifiedObjectsThroughS3Only"),
    )


def break_glass_policy(r: HumanRoleResources) -> Document:
    """Emergency access: read every imaging object (inbox, archive, quarantine, derived); no delete.

    Assuming it pages the security topic (the audit's break-glass alarm); the boundary still holds.
    """
    partition = r.account.partition
    buckets = (r.inbox_bucket, r.archive_bucket, r.quarantine_bucket, r.derived_bucket)
    return document(
        {
            "Sid": "EmergencyReadOfEveryImagingObject",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:GetObjectLegalHold",
                "s3:GetObjectRetention",
                "s3:GetObjectTagging",
                "s3:GetObjectVersion",
                "s3:GetObjectVersionTagging",
            ],
            "Resource": sorted(_objects(partition, b) for b in buckets),
        },
        _list_buckets("EmergencyListingOfEveryImagingBucket", partition, buckets),
        _decrypt_through_s3(r, "DecryptEveryImagingObjectThroughS3Only"),
    )


HUMAN_POLICIES: dict[str, Callable[[HumanRoleResources], Document]] = {
    "imaging-viewer": imaging_viewer_policy,
    "imaging-operator": imaging_operator_policy,
    "security-auditor": security_auditor_policy,
    "integration-partner": integration_partner_policy,
    "break-glass": break_glass_policy,
}
# Human roles that decrypt archive-key data (through S3, or SQS for the operator's redrive): the
# archive key policy names them.
ARCHIVE_KEY_DUTIES: tuple[str, ...] = (
    "imaging-viewer",
    "imaging-operator",
    "integration-partner",
    "break-glass",
)
