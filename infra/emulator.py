"""The sandbox's local AWS emulator: where both providers send their API calls when asked to.

Explicit providers read no ``aws:endpoints`` stack config (only the default provider does, and the
project disables it), so with ``emulatorEndpoint`` set the program points every service the stack
calls at the emulator itself. The list lives here, once: a service missing from it would send its
calls, with the deployer's credentials, to AWS instead (tests/infra/test_emulator.py derives the
services from what the program declares and invokes, and fails on a gap).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pulumi_aws as aws

# pulumi-aws module of each resource type and invoke the program uses (``aws:<module>/...``) ->
# the provider endpoints (ProviderEndpointArgs fields) its API calls go to.
SERVICE_ENDPOINTS: Mapping[str, tuple[str, ...]] = {
    # getCallerIdentity (STS), getAvailabilityZones (EC2); getPartition calls nothing.
    "index": ("sts", "ec2"),
    "accessanalyzer": ("accessanalyzer",),
    "acmpca": ("acmpca",),
    "backup": ("backup",),
    "cloudtrail": ("cloudtrail",),
    # Log groups, filters and streams (CloudWatch Logs), metric alarms (CloudWatch), event rules
    # and targets (EventBridge).
    "cloudwatch": ("logs", "cloudwatch", "events"),
    "dynamodb": ("dynamodb",),
    "ec2": ("ec2",),
    "ecr": ("ecr",),
    "ecs": ("ecs",),
    # getServiceAccount answers from a table inside the provider; listed so that it never leaves.
    "elb": ("elb",),
    "guardduty": ("guardduty",),
    "iam": ("iam",),
    # Firehose delivery streams.
    "kinesis": ("firehose",),
    "kms": ("kms",),
    "lambda": ("lambda_",),
    # ALB/NLB, listeners, target groups, trust stores: Elastic Load Balancing v2.
    "lb": ("elbv2",),
    "s3": ("s3",),
    "secretsmanager": ("secretsmanager",),
    "securityhub": ("securityhub",),
    "sns": ("sns",),
    "sqs": ("sqs",),
    # Security group rules: the EC2 API.
    "vpc": ("ec2",),
}
# Called by the provider itself whatever the stack declares (credentials, account id), and ACM,
# whose certificate the edge's listener names: none of them may reach AWS either.
PROVIDER_ENDPOINTS: tuple[str, ...] = ("sts", "iam", "acm")
# Every endpoint both providers override, sorted.
ENDPOINT_SERVICES: tuple[str, ...] = tuple(
    sorted(set(itertools.chain(PROVIDER_ENDPOINTS, *SERVICE_ENDPOINTS.values())))
)


def provider_args(endpoint: str | None) -> dict[str, Any]:
    """Extra ``aws.Provider`` arguments for a stack deployed into the emulator at ``endpoint``
    (a validated loopback URL, see infra/config.py); none without one."""
    if endpoint is None:
        return {}
    return {
        "endpoints": [aws.ProviderEndpointArgs(**dict.fromkeys(ENDPOINT_SERVICES, endpoint))],
        # An emulator serves every bucket on one host: no <bucket>.<host> virtual hosting.
        "s3_use_path_style": True,
        # No AWS STS to validate credentials against, no instance metadata service to ask.
        "skip_credentials_validation": True,
        "skip_metadata_api_check": True,
    }
