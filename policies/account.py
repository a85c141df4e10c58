"""Account: the stack stays inside its AWS account and declares only resource types this pack has
reviewed. Cross-cutting: a weakening through another account, or through a resource type no other
policy looks at (an access point, a grant, a peering connection, an RDS instance...), lands here."""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    ACCOUNT_ID_LIST,
    STRING_LIST,
    Finding,
    Meta,
    ResourceLike,
    Setting,
    Stack,
    account,
    document,
    get,
    items,
    label,
    parse_arn,
    resource_policy,
    stack_policy,
    statements,
)

ROLE = "aws:iam/role:Role"
MANAGED_POLICY = "aws:iam/policy:Policy"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"

TRUSTED_ACCOUNTS = Setting(
    "trustedAccounts",
    "Other AWS accounts the stack may refer to (12-digit ids), after review",
    [],
    ACCOUNT_ID_LIST,
)

# Properties that name an account by its bare 12-digit id (an ARN names it in its account field).
_ACCOUNT_KEYS = ("account", "accountid", "sourceaccount", "principal", "owner", "ownerid")
# Condition keys whose values are account ids.
_ACCOUNT_CONDITION_WORDS = ("account", "owner")


def own_accounts(stack: Stack, configured: Sequence[str] = ()) -> set[str]:
    """The stack's account: configured (accountIds), else where its roles and policies live.

    After an update the engine hands stack policies each role's own ``arn``: authoritative. In a
    plan (inputs only) the account is the one that most references to the stack's own roles and
    managed policies name (a function's role, a task role, every permissions boundary): an added
    reference to ``arn:aws:iam::<other>:role/<same name>`` is one voice against dozens, and is
    itself a foreign reference the policy reports.
    """
    if configured:
        return set(configured)
    declared = stack.of_type(ROLE, MANAGED_POLICY)
    own_arns = {a.account for r in declared if (a := parse_arn(r.props.get("arn"))) and _id(a)}
    if own_arns:
        return own_arns
    names = {str(r.props.get("name")) for r in declared if r.props.get("name")}
    votes: Counter[str] = Counter()
    for resource in stack.resources:
        for _, value in _strings(resource.props, ()):
            arn = parse_arn(value)
            if (
                arn
                and arn.service == "iam"
                and _id(arn)
                and arn.resource.startswith(("role/", "policy/"))
                and arn.resource.rsplit("/", 1)[-1] in names
            ):
                votes[arn.account] += 1
    if not votes:
        return set()
    (account_id, count), *rest = votes.most_common()
    return set() if rest and rest[0][1] == count else {account_id}  # a tie: no basis to judge


def _id(arn: Any) -> bool:
    return bool(arn.account.isdigit() and len(arn.account) == 12)


def _strings(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string under a property, with its path; JSON documents held in strings included."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "{[":
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict | list):
                yield from _strings(parsed, path)
                return
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, Sequence):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, str(index)))


# An ECR image or registry: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]/<repository>...
_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?(/|$)")


def _named_accounts(path: tuple[str, ...], value: str) -> str | None:
    """The account a string names: an ARN's account field, an ECR registry's account, or a bare
    id under an account key."""
    registry = _ECR_HOST.match(value)
    if registry:
        return registry.group(1)
    arn = parse_arn(value)
    if arn is not None:
        return arn.account if arn.account.isdigit() and len(arn.account) == 12 else None
    # The key names the place, or its parent does when the value is one of a list.
    keys = [k.lower() for k in path[-2:] if not k.isdigit()][-1:]
    in_account_place = any(
        k in _ACCOUNT_KEYS or k == "aws" or any(w in k for w in _ACCOUNT_CONDITION_WORDS)
        for k in keys  # "aws": a policy principal {"AWS": "123456789012"}
    )
    return account(value) if in_account_place and value.isdigit() else None


def _log_delivery_grant(stack: Stack, doc: Any, own: set[str]) -> set[int]:
    """Statements letting Elastic Load Balancing's regional account write a stack LB's logs.

    In most regions ALB/NLB logs are delivered by an AWS-owned account per region; the bucket
    policy names it as a principal. Only s3:PutObject into a load balancer log bucket of the
    stack, below ``AWSLogs/<this account>/`` (where ELB writes this account's load balancers'
    logs, and no other account's), qualifies.
    """
    buckets = {
        str(get(lb.props, kind, "bucket"))
        for lb in stack.of_type(LOAD_BALANCER)
        for kind in ("accessLogs", "connectionLogs")
        if get(lb.props, kind, "bucket")
    }
    allowed: set[int] = set()
    for index, s in enumerate(statements(doc)):
        resources = [parse_arn(r) for r in s.resources]
        if (
            s.allows
            and [a.lower() for a in s.actions] == ["s3:putobject"]
            and resources
            and all(
                r
                and r.service == "s3"
                and r.resource.split("/", 1)[0] in buckets
                and any(f"/AWSLogs/{a}/" in r.resource for a in own)
                for r in resources
            )
            and all(p.endswith(":root") for p in s.principals())
        ):
            allowed.add(index)
    return allowed


# The resource types of the default stack, each reviewed against this pack. A type any policy of
# the pack examines (its subjects) counts as reviewed too.
REVIEWED_TYPES: tuple[str, ...] = (
    "aws:backup/plan:Plan",
    "aws:backup/selection:Selection",
    "aws:backup/vault:Vault",
    "aws:backup/vaultLockConfiguration:VaultLockConfiguration",
    "aws:cloudtrail/trail:Trail",
    "aws:cloudwatch/eventRule:EventRule",
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:cloudwatch/logMetricFilter:LogMetricFilter",
    "aws:cloudwatch/logStream:LogStream",
    "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:dynamodb/table:Table",
    "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    "aws:ec2/flowLog:FlowLog",
    "aws:ec2/networkAcl:NetworkAcl",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
    "aws:ecr/repository:Repository",
    "aws:ecs/cluster:Cluster",
    "aws:ecs/service:Service",
    "aws:ecs/taskDefinition:TaskDefinition",
    "aws:iam/policy:Policy",
    "aws:iam/role:Role",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream",
    "aws:kms/alias:Alias",
    "aws:kms/key:Key",
    "aws:lambda/eventSourceMapping:EventSourceMapping",
    "aws:lambda/function:Function",
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig",
    # Reviewed: public (NONE) only for the functions allowPublicFunctionUrls names
    # (aws-lambda-permission-require-source).
    "aws:lambda/functionUrl:FunctionUrl",
    "aws:lambda/layerVersion:LayerVersion",
    "aws:lambda/permission:Permission",
    "aws:lb/listener:Listener",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:lb/targetGroup:TargetGroup",
    "aws:lb/trustStore:TrustStore",
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketLogging:BucketLogging",
    "aws:s3/bucketNotification:BucketNotification",
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
    "aws:s3/bucketObjectv2:BucketObjectv2",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:secretsmanager/secret:Secret",
    "aws:sns/topic:Topic",
    "aws:sns/topicPolicy:TopicPolicy",
    "aws:sqs/queue:Queue",
    "aws:sqs/queuePolicy:QueuePolicy",
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
)


@stack_policy(
    Meta(
        id="aws-account-no-foreign-references",
        description="Nothing in the stack names another AWS account: no principal, condition, "
        "destination, key or topic of an account the pack was not told to trust.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.CRITICAL,
        remediation="Point the property at a resource of the stack's own account (replication, "
        "backup copies, log destinations, alarm actions, keys), remove the other account from "
        "the policy's principals and conditions, or, after review, list it in trustedAccounts.",
        subjects=REVIEWED_TYPES,
        settings=(
            TRUSTED_ACCOUNTS,
            Setting(
                "accountIds",
                "The stack's own account(s); empty: found from the roles the stack declares",
                [],
                ACCOUNT_ID_LIST,
            ),
        ),
    )
)
def no_foreign_references(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    own = own_accounts(stack, config["accountIds"])
    if not own:
        return  # nothing of the stack's declares where it lives: no basis to judge
    trusted = own | set(config["trustedAccounts"])
    for resource in stack.resources:
        if resource.resource_type == "pulumi:pulumi:Stack":
            continue  # providers are judged too: a provider assuming a role elsewhere moves
            # everything it creates into that account
        exempt = _exempt_paths(stack, resource, own)
        kind = resource.resource_type.rsplit(":", 1)[-1]
        for path, value in _strings(resource.props, ()):
            named = _named_accounts(path, value)
            if named is None or named in trusted or any(path[: len(e)] == e for e in exempt):
                continue
            where = ".".join(path) or "(value)"
            yield (
                resource,
                f"{label(resource, kind, 'name', 'bucket')}: {where} names account {named}, "
                f"not this stack's ({', '.join(sorted(own))})",
            )


def _exempt_paths(stack: Stack, resource: Any, own: set[str]) -> list[tuple[str, ...]]:
    """Property paths of the ELB log-delivery grants in a bucket policy."""
    if resource.resource_type != "aws:s3/bucketPolicy:BucketPolicy":
        return []
    doc = resource.props.get("policy")
    grants = _log_delivery_grant(stack, doc, own)
    statement = document(doc).get("Statement")
    if isinstance(statement, Mapping):  # a single statement object
        return [("policy", "Statement")] if grants else []
    return [("policy", "Statement", str(i)) for i in sorted(grants)]


@stack_policy(
    Meta(
        id="aws-stack-require-reviewed-resource-types",
        description="The stack declares only resource types this pack has reviewed.",
        practice=c.REVIEWED_INFRASTRUCTURE,
        safeguard=c.RISK_MANAGEMENT,
        severity=Severity.HIGH,
        remediation="Remove the resource, or review what the new type can expose (public access, "
        "encryption, other accounts, deletion), add policies for it, and list it in "
        "allowedResourceTypes; component types of the project (componentPackages) are exempt.",
        subjects=REVIEWED_TYPES,
        settings=(
            Setting(
                "allowedResourceTypes",
                "Further resource types (type tokens) accepted after review",
                [],
                STRING_LIST,
            ),
            Setting(
                "componentPackages",
                "Packages of component resources (they create nothing themselves)",
                ["cloud-pacs"],
                STRING_LIST,
            ),
        ),
    )
)
def require_reviewed_types(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    from policies.pack import POLICIES  # the pack's own subjects; imported late (pack imports us)

    reviewed = set(REVIEWED_TYPES) | set(config["allowedResourceTypes"])
    reviewed |= {t for p in POLICIES for t in p.meta.subjects}
    components = set(config["componentPackages"])
    for resource in stack.resources:
        token = resource.resource_type
        package = token.split(":", 1)[0]
        if package == "pulumi" or package in components or token in reviewed:
            continue
        yield (
            resource,
            (
                f"{resource.name}: resource type {token} is not reviewed by this pack; remove "
                "it, or review it and list it in allowedResourceTypes"
            ),
        )


AWS_PROVIDER = "pulumi:providers:aws"


@resource_policy(
    Meta(
        id="aws-provider-no-static-credentials",
        description="No AWS provider of the stack carries access keys in its configuration.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.PASSWORD_MANAGEMENT,
        severity=Severity.CRITICAL,
        remediation="Remove access_key, secret_key and token from the aws.Provider: deploy with "
        "the pipeline's short-lived credentials (GitHub OIDC, aws sso login) or assume_roles "
        "into a role of the stack's account.",
        subjects=(AWS_PROVIDER,),
    )
)
def provider_no_static_credentials(
    resource: ResourceLike, config: Mapping[str, Any]
) -> Iterator[str]:
    for key in ("accessKey", "secretKey", "token"):
        if resource.props.get(key):
            yield f"provider {resource.name}: {key} must not be set (long-lived credentials)"


# A local emulator's URL: http(s), a loopback host, an optional port, no path (matched whole, so no
# user info, query or fragment that one parser could read differently from another).
_LOCAL_URL = re.compile(
    r"(?:https?)://(?P<host>localhost|[0-9.]+|\[::1\])(?::[0-9]{1,5})?/?", re.IGNORECASE
)


def _loopback_url(url: str) -> bool:
    """Whether ``url`` names a host on this machine: 127.0.0.0/8, [::1] or localhost."""
    match = _LOCAL_URL.fullmatch(url.strip())
    if not match:
        return False
    host = match.group("host").lower()
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _endpoint_overrides(value: Any) -> list[tuple[str, str]]:
    """(service, URL) of every endpoint a provider's ``endpoints`` sets.

    The engine hands provider configuration as strings: ``endpoints`` is a JSON list of objects
    (service -> URL). A value that is not such a list is reported whole, as ``(unreadable)``.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return [("(unreadable)", text)]
    found: list[tuple[str, str]] = []
    for block in items(value):
        if isinstance(block, Mapping):
            found.extend((str(k), str(url)) for k, url in block.items() if url)
        elif block:
            found.append(("(unreadable)", str(block)))
    return found


@resource_policy(
    Meta(
        id="aws-provider-no-endpoint-override",
        description="No AWS provider of the stack sends API calls anywhere but AWS: no service "
        "endpoint overrides (a local emulator's loopback endpoints only where allowed).",
        practice=c.REVIEWED_INFRASTRUCTURE,
        safeguard=c.TRANSMISSION_SECURITY,
        severity=Severity.CRITICAL,
        remediation="Remove endpoints from the aws.Provider (leave the stack's emulatorEndpoint "
        "empty): an endpoint override sends every API call of its services, signed with the "
        "deployer's credentials and carrying the stack's data, to that host instead of AWS. Only "
        "to deploy into a local emulator (the sandbox) set allowLoopbackEndpoints, which accepts "
        "endpoints on 127.0.0.0/8, [::1] or localhost and nothing else.",
        subjects=(AWS_PROVIDER,),
        settings=(
            Setting(
                "allowLoopbackEndpoints",
                "Accept endpoint overrides whose URLs all name a loopback host (127.0.0.0/8, "
                "[::1], localhost): a local AWS emulator, such as the sandbox's",
                False,
                {"type": "boolean"},
            ),
        ),
    )
)
def provider_no_endpoint_override(
    resource: ResourceLike, config: Mapping[str, Any]
) -> Iterator[str]:
    allow_loopback = config["allowLoopbackEndpoints"] is True
    by_url: dict[str, list[str]] = {}
    for service, url in _endpoint_overrides(resource.props.get("endpoints")):
        if allow_loopback and _loopback_url(url):
            continue
        by_url.setdefault(url, []).append(service)
    for url, services in by_url.items():
        why = (
            "not a loopback host (allowLoopbackEndpoints accepts only 127.0.0.0/8, [::1] and "
            "localhost)"
            if allow_loopback
            else "every API call and its data would go to that host instead of AWS (a local "
            "emulator's loopback endpoints need allowLoopbackEndpoints)"
        )
        yield (
            f"provider {resource.name}: endpoints send {', '.join(sorted(services))} to {url!r}: "
            f"{why}"
        )


POLICIES = (
    no_foreign_references,
    require_reviewed_types,
    provider_no_static_credentials,
    provider_no_endpoint_override,
)
