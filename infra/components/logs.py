"""The one way the stack makes a CloudWatch log group: the logs key, the retention, protected."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def encrypted_log_group(
    resource_name: str,
    *,
    group_name: str,
    logs_key: aws.kms.Key,
    retention_days: int,
    opts: pulumi.ResourceOptions,
) -> aws.cloudwatch.LogGroup:
    """A log group encrypted with the logs key, kept ``retention_days``, safe from deletion."""
    return aws.cloudwatch.LogGroup(
        resource_name,
        name=group_name,
        kms_key_id=logs_key.arn,
        retention_in_days=retention_days,
        deletion_protection_enabled=True,
        opts=opts,
    )
