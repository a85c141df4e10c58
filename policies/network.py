"""Network: a private VPC with flow logs, no path to or from the internet, closed default security
group, no public addresses, and VPC endpoints whose policies admit only the account's principals."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    DocumentError,
    Finding,
    Meta,
    ResourceLike,
    Setting,
    Stack,
    Statement,
    document,
    get,
    items,
    label,
    messages,
    pins,
    resource_policy,
    stack_policy,
    statements,
    truthy,
    wildcard_actions,
)

VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
SUBNET = "aws:ec2/subnet:Subnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
INTERNET_GATEWAY = "aws:ec2/internetGateway:InternetGateway"
IGW_ATTACHMENT = "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment"
EGRESS_ONLY_GATEWAY = "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"

# A rule broader than these admits (a good part of) the internet: the kit's own client networks
# are /8 or longer (infra config refuses wider ones); no partner network is wider than the
# smallest IPv6 allocation a regional registry hands an ISP.
MIN_IPV4_PREFIX = 8
MIN_IPV6_PREFIX = 32

# Conditions that tie the caller of an endpoint to an account or organization. (aws:SourceVpc and
# aws:SourceVpce are always true through the endpoint itself, so they scope nothing here.)
PRINCIPAL_SCOPING_KEYS = ("aws:principalaccount", "aws:principalorgid")
RESOURCE_SCOPING_KEYS = ("aws:resourceaccount", "aws:resourceorgid")
# ECR image layers sit in an AWS-owned bucket per region and are fetched through URLs that ECR
# pre-signs with its own credentials: the caller is not a principal of the account, so AWS's
# documented S3 gateway endpoint statement for ECR carries no account condition. Only reads of
# exactly that bucket are exempt.
_ECR_LAYER_BUCKET = re.compile(
    r"^arn:aws(-[a-z]+)*:s3:::prod-[a-z]{2}(-gov)?-[a-z]+-\d-starport-layer-bucket/\*$"
)


def _vpcs_of(stack: Stack, resource: Any) -> list[Any]:
    return [v for v in stack.of_type(VPC) if stack.refers(resource, "vpcId", v)]


# --- flow logs ----------------------------------------------------------------------------------


@stack_policy(
    Meta(
        id="aws-ec2-vpc-require-flow-logs",
        description="Every VPC records all of its traffic (accepted and rejected) in flow logs.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.AUDIT_CONTROLS,
        severity=Severity.HIGH,
        remediation="Declare aws.ec2.FlowLog with vpc_id the VPC, traffic_type 'ALL' and a "
        "log_destination (the stack's encrypted flow-log group, with iam_role_arn for CloudWatch "
        "Logs delivery).",
        subjects=(VPC,),
    )
)
def require_flow_logs(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for vpc in stack.of_type(VPC):
        title = label(vpc, "VPC")
        logs = stack.attached(vpc, FLOW_LOG, "vpcId")
        if not logs:
            yield vpc, f"{title} must have a flow log (aws.ec2.FlowLog with vpc_id)"
            continue
        complete = [
            f
            for f in logs
            if f.props.get("trafficType") == "ALL"
            and (f.props.get("logDestination") or f.props.get("logGroupName"))
            and (
                f.props.get("logDestinationType") not in (None, "", "cloud-watch-logs")
                or f.props.get("iamRoleArn")
            )
        ]
        if not complete:
            yield (
                vpc,
                f"{title}: a flow log must record traffic_type ALL to a log_destination "
                "(with iam_role_arn for CloudWatch Logs)",
            )


# --- no internet gateway ------------------------------------------------------------------------


def _routes_to_internet(route: Any, deps: Mapping[str, Any]) -> bool:
    gateway = route.get("gatewayId") if isinstance(route, Mapping) else None
    if isinstance(gateway, str) and gateway.startswith("igw-"):
        return True
    if any(d.resource_type == INTERNET_GATEWAY for d in deps.get("gatewayId") or []):
        return True
    return bool(get(route, "egressOnlyGatewayId"))


def _internet_paths(stack: Stack) -> Iterator[tuple[Any, str]]:
    """Resources that give the VPC a path to or from the internet, with what they are."""
    for gw in stack.of_type(INTERNET_GATEWAY):
        yield gw, f"internet gateway {gw.name}"
    for att in stack.of_type(IGW_ATTACHMENT):
        yield att, f"internet gateway attachment {att.name}"
    for gw in stack.of_type(EGRESS_ONLY_GATEWAY):
        yield gw, f"egress-only internet gateway {gw.name}"
    for nat in stack.of_type(NAT_GATEWAY):
        # A private NAT gateway translates between private networks; public is the default.
        if nat.props.get("connectivityType") != "private":
            yield nat, f"public NAT gateway {nat.name}"
    for route in stack.of_type(ROUTE):
        deps = getattr(route, "property_dependencies", None) or {}
        if _routes_to_internet(route.props, deps):
            yield route, f"route {route.name} to an internet gateway"
    for table in stack.of_type(ROUTE_TABLE):
        if any(_routes_to_internet(r, {}) for r in items(table.props.get("routes"))):
            yield table, f"route table {table.name} with a route to an internet gateway"


@stack_policy(
    Meta(
        id="aws-ec2-vpc-no-internet-gateway",
        description="No VPC has an internet gateway, egress-only internet gateway, public NAT "
        "gateway or route to one.",
        practice=c.PRIVATE_NETWORK,
        safeguard=c.TRANSMISSION_SECURITY,
        severity=Severity.CRITICAL,
        remediation="Remove aws.ec2.InternetGateway, InternetGatewayAttachment, "
        "EgressOnlyInternetGateway and NatGateway (or set connectivity_type 'private'), and any "
        "route with gateway_id igw-* or egress_only_gateway_id; reach AWS services through VPC "
        "endpoints and clients through VPN, Direct Connect or Transit Gateway.",
        subjects=(VPC,),
        settings=(
            Setting(
                "allowInternetGateway",
                "Allow internet, egress-only internet and public NAT gateways (an internet-facing "
                "edge that the risk analysis accepted)",
                False,
                {"type": "boolean"},
            ),
        ),
    )
)
def no_internet_gateway(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    if config["allowInternetGateway"]:
        return
    for resource, what in _internet_paths(stack):
        vpcs = _vpcs_of(stack, resource) if "vpcId" in resource.props else []
        for target in vpcs or [resource]:
            where = f"{label(target, 'VPC')}: " if target is not resource else ""
            yield target, f"{where}{what} must be removed (the VPC has no path to the internet)"


# --- security groups ----------------------------------------------------------------------------


def _too_broad(cidr: Any) -> bool:
    try:
        net = ipaddress.ip_network(str(cidr), strict=False)
    except ValueError:
        return False
    minimum = MIN_IPV4_PREFIX if net.version == 4 else MIN_IPV6_PREFIX
    return net.prefixlen < minimum


def _ingress_cidrs(resource: ResourceLike) -> list[tuple[str, str]]:
    """(rule description, CIDR) of every ingress source a resource declares."""
    props = resource.props
    found: list[tuple[str, str]] = []
    if resource.resource_type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        for i, rule in enumerate(items(props.get("ingress"))):
            what = f"ingress rule {i} ({get(rule, 'description') or 'no description'})"
            for key in ("cidrBlocks", "ipv6CidrBlocks"):
                found.extend((what, str(cidr)) for cidr in items(get(rule, key)))
    elif resource.resource_type == INGRESS_RULE:
        for key in ("cidrIpv4", "cidrIpv6"):
            if props.get(key):
                found.append(("ingress rule", str(props[key])))
    elif resource.resource_type == SECURITY_GROUP_RULE and props.get("type") == "ingress":
        for key in ("cidrBlocks", "ipv6CidrBlocks"):
            found.extend(("ingress rule", str(cidr)) for cidr in items(props.get(key)))
    return found


@resource_policy(
    Meta(
        id="aws-ec2-security-group-no-public-ingress",
        description="No security group admits traffic from the internet (0.0.0.0/0, ::/0 or any "
        "range broader than an IPv4 /8 or IPv6 /32).",
        practice=c.PRIVATE_NETWORK,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.CRITICAL,
        remediation="Name the source of every ingress rule: another security group "
        "(referenced_security_group_id / security_groups), a prefix list, or the client networks "
        "of allowedClientCidrs (cidr_ipv4 / cidr_blocks of /8 or longer) — never 0.0.0.0/0 or "
        "::/0.",
        subjects=(SECURITY_GROUP, DEFAULT_SECURITY_GROUP, INGRESS_RULE, SECURITY_GROUP_RULE),
    )
)
def no_public_ingress(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    for what, cidr in _ingress_cidrs(resource):
        if _too_broad(cidr):
            yield f"{what} admits {cidr}: ingress must come from named networks, not the internet"


# --- subnets ------------------------------------------------------------------------------------


@resource_policy(
    Meta(
        id="aws-ec2-subnet-no-public-ip",
        description="No subnet gives the interfaces launched in it a public IPv4 or a global "
        "IPv6 address.",
        practice=c.PRIVATE_NETWORK,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.HIGH,
        remediation="Set map_public_ip_on_launch False and leave "
        "assign_ipv6_address_on_creation and map_customer_owned_ip_on_launch unset (or False).",
        subjects=(SUBNET,),
    )
)
def subnet_no_public_ip(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    title = label(resource, "subnet")
    yield from messages(
        (
            not truthy(props.get("mapPublicIpOnLaunch")),
            f"{title}: mapPublicIpOnLaunch must be false",
        ),
        (
            not truthy(props.get("assignIpv6AddressOnCreation")),
            f"{title}: assignIpv6AddressOnCreation must be false",
        ),
        (
            not truthy(props.get("mapCustomerOwnedIpOnLaunch")),
            f"{title}: mapCustomerOwnedIpOnLaunch must be false",
        ),
    )


# --- default security group ---------------------------------------------------------------------


@stack_policy(
    Meta(
        id="aws-ec2-vpc-default-security-group-closed",
        description="Every VPC's default security group is taken over with no rules, so nothing "
        "placed in it by default can talk.",
        practice=c.PRIVATE_NETWORK,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.MEDIUM,
        remediation="Declare aws.ec2.DefaultSecurityGroup with vpc_id the VPC and no ingress or "
        "egress arguments (adopting it removes every rule AWS created).",
        subjects=(VPC,),
    )
)
def default_security_group_closed(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for vpc in stack.of_type(VPC):
        title = label(vpc, "VPC")
        groups = stack.attached(vpc, DEFAULT_SECURITY_GROUP, "vpcId")
        if not groups:
            yield vpc, f"{title} must adopt its default security group (DefaultSecurityGroup)"
            continue
        for group in groups:
            if items(group.props.get("ingress")) or items(group.props.get("egress")):
                yield (
                    vpc,
                    f"{title}: default security group {group.name} must have no ingress or "
                    "egress rules",
                )


# --- VPC endpoints ------------------------------------------------------------------------------


def _ecr_layer_read(statement: Statement) -> bool:
    return (
        bool(statement.resources)
        and all(_ECR_LAYER_BUCKET.match(r) for r in statement.resources)
        and [a.lower() for a in statement.actions] == ["s3:getobject"]
    )


def _service(resource: ResourceLike) -> str:
    """The endpoint's service short name: com.amazonaws.us-east-1.ecr.api -> ecr.api."""
    parts = str(resource.props.get("serviceName") or "").split(".")
    return ".".join(parts[3:]) if len(parts) > 3 else ".".join(parts)


@resource_policy(
    Meta(
        id="aws-ec2-vpc-endpoint-require-policy",
        description="Every VPC endpoint has a policy that admits only named actions, only by the "
        "account's principals, on the account's resources where the service has resource "
        "policies.",
        practice=c.PRIVATE_NETWORK,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.HIGH,
        remediation="Give the aws.ec2.VpcEndpoint a policy whose Allow statements list exact "
        "actions (no wildcards, no NotAction) and carry StringEquals aws:PrincipalAccount (or "
        "aws:PrincipalOrgID), plus aws:ResourceAccount for the services in "
        "resourceAccountServices; the one exemption is s3:GetObject on the AWS-owned ECR layer "
        "bucket (prod-<region>-starport-layer-bucket).",
        subjects=(VPC_ENDPOINT,),
        settings=(
            Setting(
                "resourceAccountServices",
                "Endpoint services whose policy must also pin aws:ResourceAccount (services "
                "with resource policies, through which data could reach another account)",
                ["s3", "dynamodb", "kms", "sqs", "secretsmanager"],
                {"type": "array", "items": {"type": "string"}},
            ),
        ),
    )
)
def endpoint_policy(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    name = label(resource, "VPC endpoint")
    if props.get("vpcEndpointType") == "GatewayLoadBalancer":
        return  # AWS does not support policies on Gateway Load Balancer endpoints
    policy = props.get("policy")
    if not policy:
        yield f"{name} must have a policy (without one it admits every action of the service)"
        return
    try:
        document(policy)
        parsed = statements(policy)
    except DocumentError as exc:
        yield f"{name}: policy is not a policy document ({exc})"
        return
    pin_resource = _service(resource) in set(config["resourceAccountServices"])
    for s in parsed:
        if not s.allows:
            continue
        sid = s.sid or "(no Sid)"
        if _ecr_layer_read(s):
            continue
        yield from messages(
            (not s.not_actions, f"{name}: statement {sid} must list actions, not NotAction"),
            (
                not wildcard_actions(s),
                f"{name}: statement {sid} allows wildcard actions "
                f"{', '.join(wildcard_actions(s))}; list exact actions",
            ),
            (
                pins(s, PRINCIPAL_SCOPING_KEYS),
                f"{name}: statement {sid} must require aws:PrincipalAccount (or "
                "aws:PrincipalOrgID) to equal the account",
            ),
            (
                not pin_resource or pins(s, RESOURCE_SCOPING_KEYS),
                f"{name}: statement {sid} must require aws:ResourceAccount to equal the account",
            ),
        )


POLICIES = (
    require_flow_logs,
    no_internet_gateway,
    no_public_ingress,
    subnet_no_public_ip,
    default_security_group_closed,
    endpoint_policy,
)
