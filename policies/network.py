"""Network: a private VPC with flow logs kept in the stack, no path to or from the internet (no
gateway, no default route), ingress only from private or listed networks, closed default security
group, no public addresses, and VPC endpoints whose policies name exact actions and pin fixed
accounts."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    STRING_LIST,
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
DEFAULT_ROUTE_TABLE = "aws:ec2/defaultRouteTable:DefaultRouteTable"
PREFIX_LIST = "aws:ec2/managedPrefixList:ManagedPrefixList"
PREFIX_LIST_ENTRY = "aws:ec2/managedPrefixListEntry:ManagedPrefixListEntry"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"

# A rule broader than these admits (a good part of) the internet: the kit's own client networks
# are /8 or longer (infra config refuses wider ones); no partner network is wider than the
# smallest IPv6 allocation a regional registry hands an ISP.
MIN_IPV4_PREFIX = 8
MIN_IPV6_PREFIX = 32
# Ranges that are not routed on the internet: RFC 1918, the RFC 6598 shared address space (carrier
# NAT, often a hospital's VPN pool) and IPv6 unique local addresses (RFC 4193). Ingress from any
# other range comes from the internet unless the risk analysis listed it (allowedPublicCidrs).
PRIVATE_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)

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


def _log_group_name(value: str) -> str | None:
    """The log group a CloudWatch Logs ARN names: ...:log-group:NAME[:*] -> NAME."""
    if ":log-group:" not in value:
        return None
    name = value.split(":log-group:", 1)[1]
    return name[: -len(":*")] if name.endswith(":*") else name


def _destinations(stack: Stack) -> list[tuple[Any, set[str]]]:
    """The stack's log groups, buckets and Firehose streams, each with the values naming it."""
    found: list[tuple[Any, set[str]]] = []
    for r in stack.of_type(LOG_GROUP, BUCKET, BUCKET_V2, FIREHOSE):
        names = {str(r.props.get(k)) for k in ("name", "bucket", "arn") if r.props.get(k)}
        found.append((r, names))
    return found


def _in_stack(stack: Stack, log: Any, prop: str) -> bool:
    """Whether the flow log's destination argument ``prop`` names a log group, bucket or
    Firehose stream of the stack (by property dependency, else by name or ARN)."""
    value = log.props.get(prop)
    deps = (getattr(log, "property_dependencies", None) or {}).get(prop)
    if deps:
        return any(d.resource_type in (LOG_GROUP, BUCKET, BUCKET_V2, FIREHOSE) for d in deps)
    text = str(value)
    candidates = {text}
    group = _log_group_name(text)
    if group:
        candidates.add(group)
    if text.startswith("arn:") and ":s3:::" in text:
        candidates.add(text.split(":s3:::", 1)[1].split("/", 1)[0])  # the bucket of bucket/prefix
    if ":deliverystream/" in text:
        candidates.add(text.split(":deliverystream/", 1)[1])
    return any(candidates & names for _, names in _destinations(stack))


def _foreign_destinations(stack: Stack, log: Any) -> list[str]:
    """The destination arguments of a flow log that name something not declared in the stack."""
    return [
        f"{prop} {log.props.get(prop)!r}"
        for prop in ("logDestination", "logGroupName")
        if log.props.get(prop) and not _in_stack(stack, log, prop)
    ]


# The fields without which a flow record cannot say who talked to whom and whether it was let in.
FLOW_FIELDS = ("srcaddr", "dstaddr", "srcport", "dstport", "protocol", "action")


def _records_the_flow(log_format: Any) -> bool:
    """The default format records every field; a custom one must keep FLOW_FIELDS."""
    if not log_format:
        return True
    return all(f"${{{field}}}" in str(log_format) for field in FLOW_FIELDS)


@stack_policy(
    Meta(
        id="aws-ec2-vpc-require-flow-logs",
        description="Every VPC records all of its traffic (accepted and rejected) in a flow log "
        "delivered to a log group, bucket or Firehose stream of the stack, and no flow log "
        "delivers anywhere else.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.AUDIT_CONTROLS,
        severity=Severity.HIGH,
        remediation="Declare aws.ec2.FlowLog with vpc_id the VPC, traffic_type 'ALL' and a "
        "log_destination that is the stack's encrypted flow-log group (aws.cloudwatch.LogGroup, "
        "with iam_role_arn for CloudWatch Logs delivery) or a bucket of the stack; remove any "
        "flow log whose log_destination (or log_group_name) is not declared in the stack.",
        subjects=(VPC, FLOW_LOG),
    )
)
def require_flow_logs(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for log in stack.of_type(FLOW_LOG):
        foreign = _foreign_destinations(stack, log)
        if foreign:
            yield (
                log,
                f"{label(log, 'flow log')}: {', '.join(foreign)} is not a log group, bucket or "
                "Firehose stream of the stack; flow logs must be delivered only to the stack's",
            )
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
            and not _foreign_destinations(stack, f)
            and _records_the_flow(f.props.get("logFormat"))
            and (
                f.props.get("logDestinationType") not in (None, "", "cloud-watch-logs")
                or f.props.get("iamRoleArn")
            )
        ]
        if not complete:
            yield (
                vpc,
                f"{title}: a flow log must record traffic_type ALL, in the default log_format "
                "or one with srcaddr, dstaddr, srcport, dstport, protocol and action, to a "
                "log_destination declared in the stack (with iam_role_arn for CloudWatch Logs)",
            )


# --- no internet gateway ------------------------------------------------------------------------


def _routes_to_internet(route: Any, deps: Mapping[str, Any]) -> bool:
    gateway = route.get("gatewayId") if isinstance(route, Mapping) else None
    if isinstance(gateway, str) and gateway.startswith("igw-"):
        return True
    if any(d.resource_type == INTERNET_GATEWAY for d in deps.get("gatewayId") or []):
        return True
    return bool(get(route, "egressOnlyGatewayId"))


# Where a route sends its traffic (aws.ec2.Route and the inline routes of a route table).
_ROUTE_TARGETS = (
    "gatewayId",
    "egressOnlyGatewayId",
    "natGatewayId",
    "transitGatewayId",
    "vpcPeeringConnectionId",
    "vpnGatewayId",
    "networkInterfaceId",
    "vpcEndpointId",
    "carrierGatewayId",
    "localGatewayId",
    "coreNetworkArn",
    "instanceId",
)


def _default_destination(route: Any, *keys: str) -> str | None:
    """The destination of a route when it is the default route (0.0.0.0/0, ::/0) or a range as
    broad as a good part of the internet (0.0.0.0/1 and 128.0.0.0/1 split the default route)."""
    for key in keys:
        value = get(route, key)
        if value and _too_broad(value):
            return str(value)
    return None


def _target(route: Any) -> str:
    named = [f"{k} {get(route, k)}" for k in _ROUTE_TARGETS if get(route, k)]
    return ", ".join(named) or "an unnamed target"


def _default_routes(stack: Stack) -> Iterator[tuple[Any, str]]:
    """Routes of 0.0.0.0/0 or ::/0 (or as broad), through whatever target."""
    for route in stack.of_type(ROUTE):
        where = _default_destination(
            route.props, "destinationCidrBlock", "destinationIpv6CidrBlock"
        )
        if where:
            yield route, f"route {route.name} of {where} through {_target(route.props)}"
    for table in stack.of_type(ROUTE_TABLE, DEFAULT_ROUTE_TABLE):
        for r in items(table.props.get("routes")):
            where = _default_destination(r, "cidrBlock", "ipv6CidrBlock")
            if where:
                yield table, f"route table {table.name}: route of {where} through {_target(r)}"


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
    for table in stack.of_type(ROUTE_TABLE, DEFAULT_ROUTE_TABLE):
        if any(_routes_to_internet(r, {}) for r in items(table.props.get("routes"))):
            yield table, f"route table {table.name} with a route to an internet gateway"


@stack_policy(
    Meta(
        id="aws-ec2-vpc-no-internet-gateway",
        description="No VPC has an internet gateway, egress-only internet gateway, public NAT "
        "gateway or route to one, nor a default route (0.0.0.0/0, ::/0) through any target.",
        practice=c.PRIVATE_NETWORK,
        safeguard=c.TRANSMISSION_SECURITY,
        severity=Severity.CRITICAL,
        remediation="Remove aws.ec2.InternetGateway, InternetGatewayAttachment, "
        "EgressOnlyInternetGateway and NatGateway (or set connectivity_type 'private'), any "
        "route with gateway_id igw-* or egress_only_gateway_id, and any aws.ec2.Route "
        "(destination_cidr_block / destination_ipv6_cidr_block) or inline route of an "
        "aws.ec2.RouteTable / DefaultRouteTable (cidr_block / ipv6_cidr_block) of 0.0.0.0/0 or "
        "::/0, whatever its target (vpc_peering_connection_id, transit_gateway_id, "
        "network_interface_id, ...): route the client and partner networks by name. Reach AWS "
        "services through VPC endpoints and clients through VPN, Direct Connect or Transit "
        "Gateway.",
        subjects=(VPC,),
        settings=(
            Setting(
                "allowInternetGateway",
                "Allow internet, egress-only internet and public NAT gateways and default routes "
                "(an internet-facing edge that the risk analysis accepted)",
                False,
                {"type": "boolean"},
            ),
            Setting(
                "allowDefaultRoutes",
                "Allow default routes (0.0.0.0/0, ::/0) through targets that are not internet "
                "gateways, e.g. a Transit Gateway to a central inspection VPC the risk analysis "
                "accepted",
                False,
                {"type": "boolean"},
            ),
        ),
    )
)
def no_internet_gateway(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    if config["allowInternetGateway"]:
        return
    found = list(_internet_paths(stack))
    internet = {id(r) for r, _ in found}
    if not config["allowDefaultRoutes"]:
        found += [(r, what) for r, what in _default_routes(stack) if id(r) not in internet]
    for resource, what in found:
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


def _within(net: ipaddress.IPv4Network | ipaddress.IPv6Network, ranges: Any) -> bool:
    for entry in ranges:
        try:
            allowed = ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            continue
        if allowed.version == net.version and net.subnet_of(allowed):  # type: ignore[arg-type]
            return True
    return False


def _cidr_problem(cidr: Any, allowed_public: Any) -> str | None:
    """Why an ingress source range is refused: too broad, not a range, or public and unlisted."""
    try:
        net = ipaddress.ip_network(str(cidr).strip(), strict=False)
    except ValueError:
        return "which is not a CIDR range"
    if _too_broad(net):
        return "a range broader than an IPv4 /8 or IPv6 /32 (the internet)"
    if _within(net, PRIVATE_RANGES) or _within(net, items(allowed_public)):
        return None
    return "a public range not listed in allowedPublicCidrs"


_ALLOWED_PUBLIC_CIDRS = Setting(
    "allowedPublicCidrs",
    "Public (internet-routed) ranges that ingress may come from: client or partner networks with "
    "public addresses that the risk analysis accepted. Private ranges (10/8, 172.16/12, "
    "192.168/16, 100.64/10, fc00::/7) need no listing.",
    [],
    STRING_LIST,
)


def _source_label(resource: ResourceLike) -> str:
    if resource.resource_type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        return label(resource, "security group")
    return label(resource, "security group rule")


def _ingress_cidrs(resource: ResourceLike) -> list[tuple[str, str]]:
    """(rule description, CIDR) of every ingress source a resource declares."""
    props = resource.props
    found: list[tuple[str, str]] = []
    if resource.resource_type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        for i, rule in enumerate(items(props.get("ingress"))):
            what = f"ingress rule {i} ({get(rule, 'description') or 'no description'})"
            for key in ("cidrBlocks", "ipv6CidrBlocks"):
                found.extend((what, str(cidr)) for cidr in items(get(rule, key)) if cidr)
    elif resource.resource_type == INGRESS_RULE:
        for key in ("cidrIpv4", "cidrIpv6"):
            if props.get(key):
                found.append(("ingress rule", str(props[key])))
    elif resource.resource_type == SECURITY_GROUP_RULE and props.get("type") == "ingress":
        for key in ("cidrBlocks", "ipv6CidrBlocks"):
            found.extend(("ingress rule", str(cidr)) for cidr in items(props.get(key)) if cidr)
    return found


@resource_policy(
    Meta(
        id="aws-ec2-security-group-no-public-ingress",
        description="No security group admits traffic from the internet: every ingress range is "
        "private (RFC 1918, 100.64.0.0/10, fc00::/7) or a listed public network, and none is "
        "broader than an IPv4 /8 or IPv6 /32.",
        practice=c.PRIVATE_NETWORK,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.CRITICAL,
        remediation="Name the source of every ingress rule: another security group "
        "(referenced_security_group_id / security_groups), a prefix list of private ranges, or "
        "the client networks of allowedClientCidrs (cidr_ipv4 / cidr_blocks of /8 or longer, "
        "private ranges; a public client network only when listed in this policy's "
        "allowedPublicCidrs) — never 0.0.0.0/0 or ::/0.",
        subjects=(SECURITY_GROUP, DEFAULT_SECURITY_GROUP, INGRESS_RULE, SECURITY_GROUP_RULE),
        settings=(_ALLOWED_PUBLIC_CIDRS,),
    )
)
def no_public_ingress(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    for what, cidr in _ingress_cidrs(resource):
        problem = _cidr_problem(cidr, config["allowedPublicCidrs"])
        if problem:
            yield (
                f"{_source_label(resource)}: {what} admits {cidr}, {problem}: ingress "
                "must come from private or listed networks, not the internet"
            )


# --- prefix-list ingress ------------------------------------------------------------------------


def _prefix_list_sources(resource: Any) -> list[tuple[str, str, str]]:
    """(rule description, property, prefix list id) of every prefix-list ingress source."""
    props = resource.props
    found: list[tuple[str, str, str]] = []
    if resource.resource_type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        for i, rule in enumerate(items(props.get("ingress"))):
            what = f"ingress rule {i} ({get(rule, 'description') or 'no description'})"
            found.extend((what, "ingress", str(p)) for p in items(get(rule, "prefixListIds")) if p)
    elif resource.resource_type == INGRESS_RULE:
        if props.get("prefixListId"):
            found.append(("ingress rule", "prefixListId", str(props["prefixListId"])))
    elif resource.resource_type == SECURITY_GROUP_RULE and props.get("type") == "ingress":
        found.extend(
            ("ingress rule", "prefixListIds", str(p))
            for p in items(props.get("prefixListIds"))
            if p
        )
    return found


def _names_list(prefix_list: Any, value: str) -> bool:
    """Whether a prefix list id (or ARN) names a prefix list of the stack by its known id/ARN."""
    known = [str(prefix_list.props.get(k)) for k in ("id", "prefixListId", "arn")]
    return any(k and k != "None" and (k == value or k.endswith(f"/{value}")) for k in known)


def _unknown_id(prefix_list: Any) -> bool:
    """A prefix list whose id the snapshot does not hold (a plan: inputs only)."""
    return not any(prefix_list.props.get(k) for k in ("id", "prefixListId", "arn"))


def _lists_named(stack: Stack, source: Any, prop: str, value: str) -> list[Any]:
    """The stack's prefix lists an ingress source may name: by its value (a known id or ARN),
    else — fail safe — every list it could be (its property dependencies, or lists whose id is
    not known yet)."""
    lists = stack.of_type(PREFIX_LIST)
    exact = [p for p in lists if _names_list(p, value)]
    if exact:
        return exact
    deps = (getattr(source, "property_dependencies", None) or {}).get(prop) or []
    by_dependency = [d for d in deps if d.resource_type == PREFIX_LIST and _unknown_id(d)]
    if deps:
        return by_dependency
    return [p for p in lists if _unknown_id(p)]


def _entries(stack: Stack, prefix_list: Any | None, value: str) -> list[str]:
    """The CIDRs of a prefix list: its inline entries and the ManagedPrefixListEntry resources
    added to it (by dependency, by id, or — fail safe — any entry not tied to a known list)."""
    cidrs = (
        [str(get(e, "cidr")) for e in items(get(prefix_list.props, "entries"))]
        if prefix_list
        else []
    )
    lists = stack.of_type(PREFIX_LIST)
    for entry in stack.of_type(PREFIX_LIST_ENTRY):
        deps = (getattr(entry, "property_dependencies", None) or {}).get("prefixListId") or []
        target = str(entry.props.get("prefixListId") or "")
        if deps:
            tied = prefix_list is not None and any(d.urn == prefix_list.urn for d in deps)
        elif target == value or (prefix_list is not None and _names_list(prefix_list, target)):
            tied = True
        else:
            # Not tied to any list whose id is known: it may be added to this one.
            tied = prefix_list is not None and not any(_names_list(p, target) for p in lists)
        if tied and entry.props.get("cidr"):
            cidrs.append(str(entry.props.get("cidr")))
    return [c for c in cidrs if c and c != "None"]


@stack_policy(
    Meta(
        id="aws-ec2-security-group-prefix-list-ingress-private",
        description="Ingress through a prefix list comes from a managed prefix list of the stack "
        "whose entries are private (or listed) ranges no broader than an IPv4 /8 or IPv6 /32, "
        "or from a listed prefix list kept outside the stack.",
        practice=c.PRIVATE_NETWORK,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.CRITICAL,
        remediation="Point prefix_list_id / prefix_list_ids of ingress rules at an "
        "aws.ec2.ManagedPrefixList of the stack whose entries (and ManagedPrefixListEntry "
        "cidr) are private ranges of /8 or longer, or public ranges listed in this policy's "
        "allowedPublicCidrs; a prefix list managed outside the stack only when its id is in "
        "allowedPrefixListIds.",
        subjects=(SECURITY_GROUP, DEFAULT_SECURITY_GROUP, INGRESS_RULE, SECURITY_GROUP_RULE),
        settings=(
            _ALLOWED_PUBLIC_CIDRS,
            Setting(
                "allowedPrefixListIds",
                "Ids of prefix lists managed outside the stack that ingress may name (their "
                "entries cannot be checked here: the risk analysis vouches for them)",
                [],
                STRING_LIST,
            ),
        ),
    )
)
def prefix_list_ingress(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    allowed_ids = {str(i) for i in items(config["allowedPrefixListIds"])}
    subjects = stack.of_type(
        SECURITY_GROUP, DEFAULT_SECURITY_GROUP, INGRESS_RULE, SECURITY_GROUP_RULE
    )
    for source in subjects:
        title = _source_label(source)
        for what, prop, value in _prefix_list_sources(source):
            candidates: list[Any | None] = list(_lists_named(stack, source, prop, value))
            if not candidates:
                if value not in allowed_ids:
                    yield (
                        source,
                        f"{title}: {what} admits prefix list {value}, which is neither a "
                        "ManagedPrefixList of the stack nor in allowedPrefixListIds",
                    )
                    continue
                candidates = [None]  # a listed outside list: check the entries we add to it
            for prefix_list in candidates:
                name = prefix_list.name if prefix_list is not None else value
                for cidr in _entries(stack, prefix_list, value):
                    problem = _cidr_problem(cidr, config["allowedPublicCidrs"])
                    if problem:
                        yield (
                            source,
                            f"{title}: {what} admits prefix list {name}, whose entry {cidr} is "
                            f"{problem.removeprefix('which is ')}: entries must be private or "
                            "listed networks",
                        )


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
        description="Every VPC endpoint has a policy that admits only named actions, only by "
        "principals pinned to fixed accounts (or an organization), on resources pinned to fixed "
        "accounts where the service has resource policies.",
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
                STRING_LIST,
            ),
        ),
    )
)
def endpoint_policy(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    name = label(resource, "VPC endpoint")
    if props.get("vpcEndpointType") == "GatewayLoadBalancer":
        return  # AWS does not support policies on Gateway Load Balancer endpoints
    service = str(props.get("serviceName") or "")
    if service and not service.startswith(("com.amazonaws.", "cn.com.amazonaws.", "aws.")):
        # A third party's PrivateLink service: traffic leaves AWS's services for someone else's.
        yield f"{name} reaches {service}, not an AWS service; remove it or review it first"
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
    prefix_list_ingress,
    subnet_no_public_ip,
    default_security_group_closed,
    endpoint_policy,
)
