"""Every IAM, key, bucket and endpoint policy document of the stack, built by small pure functions.

Components call these with plain strings (inside ``Output.apply``); tests call the same functions to
read the documents a reviewer reads, and later to assume the generated roles under moto. Allow
statements never use wildcard actions; Deny statements may, because they only take power away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lambdas.settings import ARCHIVE_PREFIX

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

# What the permissions boundary takes away from every role the stack creates, by why. Exact action
# names (parliament's IAM definition knows each; a test checks). Nothing here is needed by a
# workload: objects get the buckets' default retention (no role sets retention or legal holds), AWS
# Backup expires recovery points itself, and the deployer that runs `pulumi up` is not bounded.
BOUNDARY_DENIES: dict[str, tuple[str, ...]] = {
    # Object Lock is the archive's immutability: nobody bypasses, shortens or reconfigures it.
    # Legal holds too: lifting one frees a version whose retention has ended for deletion.
    "NoObjectLockBypassOrRetentionChanges": (
        "s3:BypassGovernanceRetention",
        "s3:PutBucketObjectLockConfiguration",
        "s3:PutObjectLegalHold",
        "s3:PutObjectRetention",
    ),
    # Permanent deletion, and every bucket setting that would let data go or leave unprotected.
    "NoArchiveDestructionOrExposure": (
        "s3:DeleteBucket",
        "s3:DeleteBucketPolicy",
        "s3:DeleteObjectVersion",
        "s3:PutAccountPublicAccessBlock",
        "s3:PutBucketAcl",
        "s3:PutBucketOwnershipControls",
        "s3:PutBucketPolicy",
        "s3:PutBucketPublicAccessBlock",
        "s3:PutBucketVersioning",
        "s3:PutEncryptionConfiguration",
        "s3:PutLifecycleConfiguration",
        "s3:PutReplicationConfiguration",
    ),
    # A disabled or deleted key makes the archive, its replica and the logs unreadable.
    "NoKeyDisablingDeletionOrPolicyChanges": (
        "kms:DeleteAlias",
        "kms:DeleteCustomKeyStore",
        "kms:DeleteImportedKeyMaterial",
        "kms:DisableKey",
        "kms:DisableKeyRotation",
        "kms:DisconnectCustomKeyStore",
        "kms:PutKeyPolicy",
        "kms:ScheduleKeyDeletion",
        "kms:UpdateAlias",
    ),
    "NoCloudTrailStopDeleteOrUpdate": (
        "cloudtrail:DeleteTrail",
        "cloudtrail:PutEventSelectors",
        "cloudtrail:PutInsightSelectors",
        "cloudtrail:StopLogging",
        "cloudtrail:UpdateTrail",
    ),
    # Deleting, shortening, decrypting-in-place or unsubscribing log groups blinds the audit.
    "NoLogDeletionRetentionOrSubscriptionChanges": (
        "logs:DeleteLogGroup",
        "logs:DeleteLogStream",
        "logs:DeleteMetricFilter",
        "logs:DeleteRetentionPolicy",
        "logs:DeleteSubscriptionFilter",
        "logs:DisassociateKmsKey",
        "logs:PutRetentionPolicy",
    ),
    "NoFlowLogOrAccessLogBlinding": ("ec2:DeleteFlowLogs", "s3:PutBucketLogging"),
    # The SIEM path and the alarms that page on the rest of this list.
    "NoSiemOrAlarmBlinding": (
        "cloudwatch:DeleteAlarms",
        "cloudwatch:DisableAlarmActions",
        "events:DeleteRule",
        "events:DisableRule",
        "events:RemoveTargets",
        "firehose:DeleteDeliveryStream",
        "firehose:StopDeliveryStreamEncryption",
        "firehose:UpdateDestination",
    ),
    # Detectors and their findings: deleting, disabling or auto-archiving them hides an attack.
    "NoDetectorOrFindingSuppression": (
        "access-analyzer:CreateArchiveRule",
        "access-analyzer:DeleteAnalyzer",
        "access-analyzer:UpdateArchiveRule",
        "config:DeleteConfigurationRecorder",
        "config:DeleteDeliveryChannel",
        "config:StopConfigurationRecorder",
        "guardduty:CreateFilter",
        "guardduty:DeleteDetector",
        "guardduty:DisassociateFromAdministratorAccount",
        "guardduty:DisassociateFromMasterAccount",
        "guardduty:StopMonitoringMembers",
        "guardduty:UpdateDetector",
        "guardduty:UpdateFilter",
        "securityhub:BatchDisableStandards",
        "securityhub:DisableSecurityHub",
        "securityhub:DisassociateFromAdministratorAccount",
        "securityhub:DisassociateFromMasterAccount",
    ),
    # The locked vaults hold the index backups. dynamodb:DeleteBackup stays: AWS Backup expires
    # the tables' recovery points with the backup role, and the vault lock refuses early deletion.
    "NoBackupDeletionOrVaultUnlocking": (
        "backup:DeleteBackupPlan",
        "backup:DeleteBackupSelection",
        "backup:DeleteBackupVault",
        "backup:DeleteBackupVaultAccessPolicy",
        "backup:DeleteBackupVaultLockConfiguration",
        "backup:DeleteRecoveryPoint",
        "backup:PutBackupVaultAccessPolicy",
        "backup:UpdateRecoveryPointLifecycle",
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
STACK_ROLE_TAMPERING: tuple[str, ...] = (
    "iam:AttachRolePolicy",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePolicy",
    "iam:UpdateAssumeRolePolicy",
)
# Creating a principal is allowed only with this same boundary attached (no escape by proxy).
PRINCIPAL_CREATION: tuple[str, ...] = ("iam:CreateRole", "iam:CreateUser")


def permissions_boundary_name(name_prefix: str) -> str:
    """The boundary policy's name; its ARN is known before it exists."""
    return f"{name_prefix}-permissions-boundary"


def permissions_boundary_arn(account: Account, name_prefix: str) -> str:
    """The boundary policy's ARN (IAM policies are global: no region)."""
    name = permissions_boundary_name(name_prefix)
    return f"arn:{account.partition}:iam::{account.account_id}:policy/{name}"


def permissions_boundary_policy(account: Account, name_prefix: str) -> Document:
    """The boundary on every role of the stack: it grants nothing, it caps.

    A boundary is intersected with the role's own policies, so its Allow is the ceiling: every
    action except the destructive and blinding ones, on any resource. The Allow uses ``NotAction``
    (never a wildcard action): each role's own least-privilege policy still decides what it may do,
    and nothing in the list below can be granted to it, by any identity policy. The explicit Deny
    statements repeat the list for the cases an implicit deny does not cover: a resource policy
    (bucket, key, vault) that names a role session directly is not capped by a boundary's
    Allow, but an explicit Deny in the boundary always wins.
    """
    boundary_arn = permissions_boundary_arn(account, name_prefix)
    stack_roles = account.role_arn(f"{name_prefix}-*")
    capped = sorted(
        {a for actions in BOUNDARY_DENIES.values() for a in actions}
        | set(BOUNDARY_POLICY_TAMPERING)
        | set(STACK_ROLE_TAMPERING)
    )
    statements: list[Statement] = [
        {
            "Sid": "CeilingEverythingButDestructiveAndBlindingActions",
            "Effect": "Allow",
            "NotAction": capped,
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
            "Sid": "NoChangesToTheStacksRolesOrTheirTrust",
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


def human_trust_policy(
    *, saml_provider_arn: str | None = None, trusted_principal_arns: Sequence[str] = ()
) -> Document:
    """Who may assume a human role: one federation source, with MFA, tagged and attributable.

    - Trusted principals (e.g. IAM Identity Center permission-set roles, or an identity account's
      roles) call ``sts:AssumeRole``; ``aws:MultiFactorAuthPresent`` must be true and the MFA at
      most an hour old.
    - A SAML provider calls ``sts:AssumeRoleWithSAML``. AWS STS carries no MFA context for SAML
      (the IAM User Guide's "Compare AWS STS credentials" table: MFA support "No"), so
      ``aws:MultiFactorAuthPresent`` is absent there and a ``Bool`` on it would refuse every
      sign-in. The trust instead requires the IdP's assertion to state MFA (REFEDS MFA profile in
      ``eduPersonAssurance``), next to the sign-in audience.

    ``sts:SetSourceIdentity`` and ``sts:TagSession`` let the IdP or caller stamp the person on the
    session, so CloudTrail attributes every call to a human, through role chaining too.
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
    return document(
        {
            "Sid": "TrustedPrincipalsWithRecentMfa",
            "Effect": "Allow",
            "Principal": {"AWS": sorted(trusted_principal_arns)},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
            "Condition": {
                "Bool": {"aws:MultiFactorAuthPresent": "true"},
                "NumericLessThan": {"aws:MultiFactorAuthAge": str(HUMAN_SESSION_SECONDS)},
            },
        }
    )


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
    )


def security_auditor_policy(r: HumanRoleResources) -> Document:
    """Security review: read trails, logs, configuration and findings; no object in any bucket."""
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
