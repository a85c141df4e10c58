"""Sandbox handlers of the platform: network, logs, events, audit, compute and load balancing.

Each handler creates one Pulumi resource in the emulator (moto) through boto3, applying every
input property that has a meaning in AWS, and returns pulumi-aws's id for the type with the
outputs AWS derives, read from the emulator. Where moto refuses or silently ignores a property
with a security meaning, the handler says so with :meth:`Context.note`; a resource moto cannot
represent at all raises :class:`NotEmulated` with the reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from pulumi import asset

from pacs_kit.sandbox.emulate import Context, Created, Handler, NotEmulated

Inputs = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _int(value: Any) -> int:
    """A Pulumi number (a float in the mock runtime) as the int AWS wants."""
    return int(value)


def _drop_none(params: Mapping[str, Any]) -> dict[str, Any]:
    """The API parameters that were given (boto3 refuses ``None`` for an absent parameter)."""
    return {k: v for k, v in params.items() if v is not None and v != {}}


def _tag_list(inputs: Inputs, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """The resource's ``tags`` as AWS's list of key/value pairs."""
    tags = inputs.get("tags") or {}
    return [{key: k, value: str(v)} for k, v in sorted(tags.items())]


def _tag_specs(resource_type: str, inputs: Inputs) -> list[dict[str, Any]]:
    """EC2's TagSpecifications for a create call (empty when the resource has no tags)."""
    tags = _tag_list(inputs)
    return [{"ResourceType": resource_type, "Tags": tags}] if tags else []


def _auto_name(ctx: Context, inputs: Inputs, limit: int = 255) -> str:
    """``name``, else ``namePrefix`` or the Pulumi name with a stable suffix (Pulumi's autoname)."""
    if inputs.get("name"):
        return str(inputs["name"])
    digest = hashlib.sha256(f"{ctx.type}::{ctx.name}".encode()).hexdigest()[:7]
    prefix = str(inputs.get("namePrefix") or f"{ctx.name}-")
    return f"{prefix}{digest}"[:limit]


def _bool_str(value: Any) -> str:
    """A boolean as the lower-case string ELB attributes want."""
    return "true" if value in (True, "true", "True") else "false"


# ---------------------------------------------------------------------------------------------
# EC2: VPC, subnets, routes, network ACLs, security groups, endpoints, flow logs
# ---------------------------------------------------------------------------------------------


def _ec2_arn(ctx: Context, kind: str, resource_id: str) -> str:
    return f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:{kind}/{resource_id}"


def create_vpc(ctx: Context, inputs: Inputs) -> Created:
    """A VPC with its DNS attributes; outputs its default ACL, security group and route table."""
    ec2 = ctx.client("ec2")
    if inputs.get("ipv4IpamPoolId") or inputs.get("assignGeneratedIpv6CidrBlock"):
        ctx.note("IPAM pools and Amazon-provided IPv6 blocks are not emulated: IPv4 CIDR only")
    vpc = ec2.create_vpc(
        **_drop_none(
            {
                "CidrBlock": inputs.get("cidrBlock"),
                "InstanceTenancy": inputs.get("instanceTenancy"),
                "TagSpecifications": _tag_specs("vpc", inputs) or None,
            }
        )
    )["Vpc"]
    vpc_id = vpc["VpcId"]
    # AWS takes one attribute per ModifyVpcAttribute call.
    for key, attribute in (
        ("enableDnsSupport", "EnableDnsSupport"),
        ("enableDnsHostnames", "EnableDnsHostnames"),
        ("enableNetworkAddressUsageMetrics", "EnableNetworkAddressUsageMetrics"),
    ):
        if inputs.get(key) is not None:
            ec2.modify_vpc_attribute(VpcId=vpc_id, **{attribute: {"Value": bool(inputs[key])}})
    acl = ec2.describe_network_acls(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default", "Values": ["true"]}]
    )["NetworkAcls"][0]["NetworkAclId"]
    group = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"][0]["GroupId"]
    main_table = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"][0]["RouteTableId"]
    return vpc_id, {
        "arn": _ec2_arn(ctx, "vpc", vpc_id),
        "defaultNetworkAclId": acl,
        "defaultSecurityGroupId": group,
        "defaultRouteTableId": main_table,
        "mainRouteTableId": main_table,
        "dhcpOptionsId": vpc.get("DhcpOptionsId", ""),
        "ownerId": vpc.get("OwnerId", ctx.account_id),
        "instanceTenancy": vpc.get("InstanceTenancy", "default"),
    }


def create_subnet(ctx: Context, inputs: Inputs) -> Created:
    """A subnet; ``mapPublicIpOnLaunch`` is set explicitly, as the provider does."""
    ec2 = ctx.client("ec2")
    subnet = ec2.create_subnet(
        **_drop_none(
            {
                "VpcId": inputs["vpcId"],
                "CidrBlock": inputs.get("cidrBlock"),
                "Ipv6CidrBlock": inputs.get("ipv6CidrBlock"),
                "AvailabilityZone": inputs.get("availabilityZone"),
                "AvailabilityZoneId": inputs.get("availabilityZoneId"),
                "TagSpecifications": _tag_specs("subnet", inputs) or None,
            }
        )
    )["Subnet"]
    subnet_id = subnet["SubnetId"]
    if inputs.get("mapPublicIpOnLaunch") is not None:
        ec2.modify_subnet_attribute(
            SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": bool(inputs["mapPublicIpOnLaunch"])}
        )
    read = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
    return subnet_id, {
        "arn": read.get("SubnetArn") or _ec2_arn(ctx, "subnet", subnet_id),
        "availabilityZone": read["AvailabilityZone"],
        "availabilityZoneId": read.get("AvailabilityZoneId", ""),
        "mapPublicIpOnLaunch": read.get("MapPublicIpOnLaunch", False),
        "ownerId": read.get("OwnerId", ctx.account_id),
    }


_ROUTE_TARGETS = {
    "gatewayId": "GatewayId",
    "natGatewayId": "NatGatewayId",
    "networkInterfaceId": "NetworkInterfaceId",
    "transitGatewayId": "TransitGatewayId",
    "vpcEndpointId": "VpcEndpointId",
    "vpcPeeringConnectionId": "VpcPeeringConnectionId",
    "egressOnlyGatewayId": "EgressOnlyInternetGatewayId",
    "localGatewayId": "LocalGatewayId",
    "carrierGatewayId": "CarrierGatewayId",
    "coreNetworkArn": "CoreNetworkArn",
}


def create_route_table(ctx: Context, inputs: Inputs) -> Created:
    """A route table with its inline routes (the local route is AWS's own)."""
    ec2 = ctx.client("ec2")
    table = ec2.create_route_table(
        **_drop_none(
            {
                "VpcId": inputs["vpcId"],
                "TagSpecifications": _tag_specs("route-table", inputs) or None,
            }
        )
    )["RouteTable"]
    table_id = table["RouteTableId"]
    for route in inputs.get("routes") or []:
        params = {"RouteTableId": table_id}
        if route.get("cidrBlock"):
            params["DestinationCidrBlock"] = route["cidrBlock"]
        if route.get("ipv6CidrBlock"):
            params["DestinationIpv6CidrBlock"] = route["ipv6CidrBlock"]
        if route.get("destinationPrefixListId"):
            params["DestinationPrefixListId"] = route["destinationPrefixListId"]
        params.update({api: route[key] for key, api in _ROUTE_TARGETS.items() if route.get(key)})
        ec2.create_route(**params)
    for gateway in inputs.get("propagatingVgws") or []:
        ec2.enable_vgw_route_propagation(RouteTableId=table_id, GatewayId=gateway)
    return table_id, {
        "arn": _ec2_arn(ctx, "route-table", table_id),
        "ownerId": table.get("OwnerId", ctx.account_id),
    }


def create_route_table_association(ctx: Context, inputs: Inputs) -> Created:
    """Associates a route table with a subnet (or a gateway): the id is the association's."""
    ec2 = ctx.client("ec2")
    params = _drop_none(
        {
            "RouteTableId": inputs["routeTableId"],
            "SubnetId": inputs.get("subnetId"),
            "GatewayId": inputs.get("gatewayId"),
        }
    )
    association = ec2.associate_route_table(**params)["AssociationId"]
    return association, {}


def _acl_entry(entry: Inputs) -> dict[str, Any]:
    """A network ACL rule of the inline form as CreateNetworkAclEntry parameters."""
    protocol = str(entry.get("protocol", "-1"))
    protocol = {"all": "-1", "tcp": "6", "udp": "17", "icmp": "1"}.get(protocol.lower(), protocol)
    params: dict[str, Any] = {
        "RuleNumber": _int(entry["ruleNo"]),
        "Protocol": protocol,
        "RuleAction": str(entry["action"]).lower(),
    }
    if entry.get("cidrBlock"):
        params["CidrBlock"] = entry["cidrBlock"]
    if entry.get("ipv6CidrBlock"):
        params["Ipv6CidrBlock"] = entry["ipv6CidrBlock"]
    if protocol not in ("-1",):
        params["PortRange"] = {"From": _int(entry.get("fromPort", 0)), "To": _int(entry["toPort"])}
    if entry.get("icmpType") is not None or entry.get("icmpCode") is not None:
        params["IcmpTypeCode"] = {
            "Type": _int(entry.get("icmpType", -1)),
            "Code": _int(entry.get("icmpCode", -1)),
        }
    return params


def _apply_acl_entries(ctx: Context, acl_id: str, inputs: Inputs) -> None:
    """Creates the ACL's ``ingress`` and ``egress`` rules."""
    ec2 = ctx.client("ec2")
    for key, egress in (("ingress", False), ("egress", True)):
        for entry in inputs.get(key) or []:
            ec2.create_network_acl_entry(NetworkAclId=acl_id, Egress=egress, **_acl_entry(entry))


def _associate_acl(ctx: Context, acl_id: str, subnet_ids: Iterable[str]) -> None:
    """Moves each subnet's ACL association to ``acl_id`` (a subnet always has exactly one)."""
    ec2 = ctx.client("ec2")
    for subnet in subnet_ids:
        current = ec2.describe_network_acls(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
        )["NetworkAcls"]
        association = next(
            a["NetworkAclAssociationId"]
            for acl in current
            for a in acl["Associations"]
            if a["SubnetId"] == subnet
        )
        ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl_id)


def create_network_acl(ctx: Context, inputs: Inputs) -> Created:
    """A network ACL with its rules, associated with its subnets."""
    ec2 = ctx.client("ec2")
    acl = ec2.create_network_acl(
        **_drop_none(
            {
                "VpcId": inputs["vpcId"],
                "TagSpecifications": _tag_specs("network-acl", inputs) or None,
            }
        )
    )["NetworkAcl"]
    acl_id = acl["NetworkAclId"]
    _apply_acl_entries(ctx, acl_id, inputs)
    _associate_acl(ctx, acl_id, inputs.get("subnetIds") or [])
    return acl_id, {
        "arn": _ec2_arn(ctx, "network-acl", acl_id),
        "ownerId": acl.get("OwnerId", ctx.account_id),
    }


def create_default_network_acl(ctx: Context, inputs: Inputs) -> Created:
    """Adopts the VPC's default ACL: removes every rule AWS put there, then adds the given ones.

    The provider manages the default ACL this way, so a DefaultNetworkAcl with no rules denies
    everything (only the fixed ``*`` deny rules, number 32767, remain).
    """
    ec2 = ctx.client("ec2")
    acl_id = str(inputs["defaultNetworkAclId"])
    acl = ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"][0]
    for entry in acl["Entries"]:
        if entry["RuleNumber"] != 32767:
            ec2.delete_network_acl_entry(
                NetworkAclId=acl_id, RuleNumber=entry["RuleNumber"], Egress=entry["Egress"]
            )
    _apply_acl_entries(ctx, acl_id, inputs)
    _associate_acl(ctx, acl_id, inputs.get("subnetIds") or [])
    tags = _tag_list(inputs)
    if tags:
        ec2.create_tags(Resources=[acl_id], Tags=tags)
    return acl_id, {
        "arn": _ec2_arn(ctx, "network-acl", acl_id),
        "vpcId": acl["VpcId"],
        "ownerId": acl.get("OwnerId", ctx.account_id),
    }


def _permission(rule: Inputs) -> dict[str, Any]:
    """A security group rule of the inline form (``ingress``/``egress``) as an IpPermission."""
    protocol = str(rule.get("protocol", "-1"))
    protocol = "-1" if protocol.lower() == "all" else protocol
    permission: dict[str, Any] = {"IpProtocol": protocol}
    if protocol != "-1":
        permission["FromPort"] = _int(rule.get("fromPort", 0))
        permission["ToPort"] = _int(rule.get("toPort", 0))
    description = {"Description": rule["description"]} if rule.get("description") else {}
    permission["IpRanges"] = [{"CidrIp": c, **description} for c in rule.get("cidrBlocks") or []]
    permission["Ipv6Ranges"] = [
        {"CidrIpv6": c, **description} for c in rule.get("ipv6CidrBlocks") or []
    ]
    permission["PrefixListIds"] = [
        {"PrefixListId": p, **description} for p in rule.get("prefixListIds") or []
    ]
    groups = list(rule.get("securityGroups") or [])
    permission["UserIdGroupPairs"] = [{"GroupId": g, **description} for g in groups]
    return permission


def _self_pair(permission: dict[str, Any], group_id: str, rule: Inputs) -> dict[str, Any]:
    """Adds the group itself as a source/destination when the rule says ``self``."""
    if rule.get("self"):
        description = {"Description": rule["description"]} if rule.get("description") else {}
        permission["UserIdGroupPairs"].append({"GroupId": group_id, **description})
    return permission


def _revoke_all(ctx: Context, group_id: str) -> None:
    """Removes every ingress and egress rule of a security group."""
    ec2 = ctx.client("ec2")
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    if group.get("IpPermissions"):
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=group["IpPermissions"])
    if group.get("IpPermissionsEgress"):
        ec2.revoke_security_group_egress(
            GroupId=group_id, IpPermissions=group["IpPermissionsEgress"]
        )


def _authorize_inline(ctx: Context, group_id: str, inputs: Inputs) -> None:
    """Authorizes a group's inline ``ingress`` and ``egress`` rules."""
    ec2 = ctx.client("ec2")
    ingress = [_self_pair(_permission(r), group_id, r) for r in inputs.get("ingress") or []]
    egress = [_self_pair(_permission(r), group_id, r) for r in inputs.get("egress") or []]
    if ingress:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=ingress)
    if egress:
        ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=egress)


def create_security_group(ctx: Context, inputs: Inputs) -> Created:
    """A security group with exactly its inline rules.

    Like the provider, the allow-all egress rule AWS adds to a new VPC group is removed, so a
    group without ``egress`` allows no outbound traffic (its separate egress rule resources add
    to it).
    """
    ec2 = ctx.client("ec2")
    name = _auto_name(ctx, inputs)
    group_id = ec2.create_security_group(
        **_drop_none(
            {
                "GroupName": name,
                "Description": inputs.get("description") or "Managed by Pulumi",
                "VpcId": inputs.get("vpcId"),
                "TagSpecifications": _tag_specs("security-group", inputs) or None,
            }
        )
    )["GroupId"]
    _revoke_all(ctx, group_id)
    _authorize_inline(ctx, group_id, inputs)
    return group_id, {
        "arn": _ec2_arn(ctx, "security-group", group_id),
        "name": name,
        "ownerId": ctx.account_id,
        "description": inputs.get("description") or "Managed by Pulumi",
    }


def create_default_security_group(ctx: Context, inputs: Inputs) -> Created:
    """Adopts the VPC's default group: revokes AWS's default rules, then adds the given ones.

    With no ``ingress``/``egress`` the default group allows nothing, as the provider leaves it.
    """
    ec2 = ctx.client("ec2")
    filters = [{"Name": "group-name", "Values": ["default"]}]
    if inputs.get("vpcId"):
        filters.append({"Name": "vpc-id", "Values": [inputs["vpcId"]]})
    group = ec2.describe_security_groups(Filters=filters)["SecurityGroups"][0]
    group_id = group["GroupId"]
    _revoke_all(ctx, group_id)
    _authorize_inline(ctx, group_id, inputs)
    tags = _tag_list(inputs)
    if tags:
        ec2.create_tags(Resources=[group_id], Tags=tags)
    return group_id, {
        "arn": _ec2_arn(ctx, "security-group", group_id),
        "name": "default",
        "description": group.get("Description", ""),
        "ownerId": group.get("OwnerId", ctx.account_id),
        "vpcId": group.get("VpcId", inputs.get("vpcId")),
    }


def _rule_permission(inputs: Inputs) -> dict[str, Any]:
    """A ``aws.vpc`` security group rule resource as one IpPermission."""
    protocol = str(inputs.get("ipProtocol", "-1"))
    protocol = "-1" if protocol.lower() == "all" else protocol
    permission: dict[str, Any] = {"IpProtocol": protocol}
    if protocol != "-1":
        if inputs.get("fromPort") is not None:
            permission["FromPort"] = _int(inputs["fromPort"])
        if inputs.get("toPort") is not None:
            permission["ToPort"] = _int(inputs["toPort"])
    description = {"Description": inputs["description"]} if inputs.get("description") else {}
    if inputs.get("cidrIpv4"):
        permission["IpRanges"] = [{"CidrIp": inputs["cidrIpv4"], **description}]
    if inputs.get("cidrIpv6"):
        permission["Ipv6Ranges"] = [{"CidrIpv6": inputs["cidrIpv6"], **description}]
    if inputs.get("prefixListId"):
        permission["PrefixListIds"] = [{"PrefixListId": inputs["prefixListId"], **description}]
    if inputs.get("referencedSecurityGroupId"):
        permission["UserIdGroupPairs"] = [
            {"GroupId": inputs["referencedSecurityGroupId"], **description}
        ]
    return permission


def _create_rule(ctx: Context, inputs: Inputs, egress: bool) -> Created:
    """Authorizes one rule; the id is the security group rule id AWS returns."""
    ec2 = ctx.client("ec2")
    authorize = (
        ec2.authorize_security_group_egress if egress else ec2.authorize_security_group_ingress
    )
    params: dict[str, Any] = {
        "GroupId": inputs["securityGroupId"],
        "IpPermissions": [_rule_permission(inputs)],
    }
    tags = _tag_list(inputs)
    if tags:
        params["TagSpecifications"] = [{"ResourceType": "security-group-rule", "Tags": tags}]
    answer = authorize(**params)
    rules = answer.get("SecurityGroupRules") or []
    if not rules:
        raise RuntimeError(f"the emulator returned no security group rule id for {ctx.name}")
    rule_id = rules[0]["SecurityGroupRuleId"]
    return rule_id, {
        "securityGroupRuleId": rule_id,
        "arn": _ec2_arn(ctx, "security-group-rule", rule_id),
    }


def create_security_group_ingress_rule(ctx: Context, inputs: Inputs) -> Created:
    """An ingress rule of a security group (``aws.vpc.SecurityGroupIngressRule``)."""
    return _create_rule(ctx, inputs, egress=False)


def create_security_group_egress_rule(ctx: Context, inputs: Inputs) -> Created:
    """An egress rule of a security group (``aws.vpc.SecurityGroupEgressRule``)."""
    return _create_rule(ctx, inputs, egress=True)


def _prefix_list_id(ctx: Context, service_name: str) -> str:
    """The AWS-managed prefix list of a gateway endpoint's service."""
    lists = ctx.client("ec2").describe_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": [service_name]}]
    )["PrefixLists"]
    return str(lists[0]["PrefixListId"]) if lists else ""


def create_vpc_endpoint(ctx: Context, inputs: Inputs) -> Created:
    """A gateway or interface endpoint with its policy, subnets, groups and route tables."""
    ec2 = ctx.client("ec2")
    kind = inputs.get("vpcEndpointType") or "Gateway"
    dns_options = inputs.get("dnsOptions") or {}
    params = _drop_none(
        {
            "VpcEndpointType": kind,
            "VpcId": inputs["vpcId"],
            "ServiceName": inputs["serviceName"],
            "PolicyDocument": inputs.get("policy"),
            "RouteTableIds": inputs.get("routeTableIds") or None,
            "SubnetIds": inputs.get("subnetIds") or None,
            "SecurityGroupIds": inputs.get("securityGroupIds") or None,
            "PrivateDnsEnabled": inputs.get("privateDnsEnabled"),
            "IpAddressType": inputs.get("ipAddressType"),
            "DnsOptions": _drop_none(
                {
                    "DnsRecordIpType": dns_options.get("dnsRecordIpType"),
                    "PrivateDnsOnlyForInboundResolverEndpoint": dns_options.get(
                        "privateDnsOnlyForInboundResolverEndpoint"
                    ),
                }
            )
            or None,
            "TagSpecifications": _tag_specs("vpc-endpoint", inputs) or None,
        }
    )
    endpoint = ec2.create_vpc_endpoint(**params)["VpcEndpoint"]
    endpoint_id = endpoint["VpcEndpointId"]
    outputs: dict[str, Any] = {
        "arn": _ec2_arn(ctx, "vpc-endpoint", endpoint_id),
        "ownerId": endpoint.get("OwnerId", ctx.account_id),
        "state": endpoint.get("State", "available"),
        "requesterManaged": bool(endpoint.get("RequesterManaged", False)),
        "networkInterfaceIds": list(endpoint.get("NetworkInterfaceIds") or []),
        "dnsEntries": [
            {"dnsName": e.get("DnsName", ""), "hostedZoneId": e.get("HostedZoneId", "")}
            for e in endpoint.get("DnsEntries") or []
        ],
    }
    if kind == "Gateway":
        outputs["prefixListId"] = _prefix_list_id(ctx, str(inputs["serviceName"]))
        outputs["cidrBlocks"] = _prefix_list_cidrs(ctx, outputs["prefixListId"])
    ctx.note(
        "endpoint policy stored, not enforced by moto: requests do not pass through the endpoint"
    )
    return endpoint_id, outputs


def _prefix_list_cidrs(ctx: Context, prefix_list_id: str) -> list[str]:
    if not prefix_list_id:
        return []
    lists = ctx.client("ec2").describe_prefix_lists(PrefixListIds=[prefix_list_id])["PrefixLists"]
    return list(lists[0].get("Cidrs") or []) if lists else []


_FLOW_LOG_RESOURCES = {
    "vpcId": "VPC",
    "subnetId": "Subnet",
    "eniId": "NetworkInterface",
    "transitGatewayId": "TransitGateway",
    "transitGatewayAttachmentId": "TransitGatewayAttachment",
}


def create_flow_log(ctx: Context, inputs: Inputs) -> Created:
    """A flow log of a VPC, subnet or interface, with its traffic type, destination and format."""
    ec2 = ctx.client("ec2")
    key, resource_type = next(
        (k, t) for k, t in _FLOW_LOG_RESOURCES.items() if inputs.get(k) is not None
    )
    destination_type = inputs.get("logDestinationType") or "cloud-watch-logs"
    options = inputs.get("destinationOptions") or {}
    params = _drop_none(
        {
            "ResourceIds": [inputs[key]],
            "ResourceType": resource_type,
            "TrafficType": inputs.get("trafficType"),
            "LogDestinationType": destination_type,
            "LogDestination": inputs.get("logDestination"),
            "LogGroupName": inputs.get("logGroupName"),
            "DeliverLogsPermissionArn": inputs.get("iamRoleArn"),
            "DeliverCrossAccountRole": inputs.get("deliverCrossAccountRole"),
            "LogFormat": inputs.get("logFormat"),
            "MaxAggregationInterval": (
                _int(inputs["maxAggregationInterval"])
                if inputs.get("maxAggregationInterval") is not None
                else None
            ),
            "DestinationOptions": _drop_none(
                {
                    "FileFormat": options.get("fileFormat"),
                    "HiveCompatiblePartitions": options.get("hiveCompatiblePartitions"),
                    "PerHourPartition": options.get("perHourPartition"),
                }
            )
            or None,
            "TagSpecifications": _tag_specs("vpc-flow-log", inputs) or None,
        }
    )
    if destination_type == "cloud-watch-logs" and "LogDestination" in params:
        # moto checks the log group by LogGroupName only and marks an ARN-only flow log's
        # delivery FAILED; the name names the same group, so both are given.
        group = str(params["LogDestination"]).split(":log-group:", 1)[-1].removesuffix(":*")
        params.setdefault("LogGroupName", group)
    answer = ec2.create_flow_logs(**params)
    if answer.get("Unsuccessful"):
        raise RuntimeError(f"flow log refused: {answer['Unsuccessful']}")
    flow_log_id = answer["FlowLogIds"][0]
    read = ec2.describe_flow_logs(FlowLogIds=[flow_log_id])["FlowLogs"][0]
    if read.get("DeliverLogsStatus") == "FAILED":
        ctx.note(f"flow log delivery FAILED in moto: {read.get('DeliverLogsErrorMessage')}")
    ctx.note("no traffic is captured by moto: the flow log is configuration only")
    return flow_log_id, {
        "arn": _ec2_arn(ctx, "vpc-flow-log", flow_log_id),
        "logFormat": read.get("LogFormat", inputs.get("logFormat", "")),
        "trafficType": read.get("TrafficType", inputs.get("trafficType")),
    }


# ---------------------------------------------------------------------------------------------
# CloudWatch Logs, alarms and EventBridge
# ---------------------------------------------------------------------------------------------


def _log_group_arn(ctx: Context, name: str) -> str:
    return f"arn:aws:logs:{ctx.region}:{ctx.account_id}:log-group:{name}"


def create_log_group(ctx: Context, inputs: Inputs) -> Created:
    """A log group with its KMS key, retention, class and deletion protection."""
    logs = ctx.client("logs")
    name = _auto_name(ctx, inputs, limit=512)
    params = _drop_none(
        {
            "logGroupName": name,
            "kmsKeyId": inputs.get("kmsKeyId"),
            "logGroupClass": inputs.get("logGroupClass"),
            "tags": dict(inputs.get("tags") or {}) or None,
        }
    )
    if inputs.get("deletionProtectionEnabled") is not None:
        params["deletionProtectionEnabled"] = bool(inputs["deletionProtectionEnabled"])
    logs.create_log_group(**params)
    if inputs.get("retentionInDays"):
        logs.put_retention_policy(
            logGroupName=name, retentionInDays=_int(inputs["retentionInDays"])
        )
    read = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    group = next(g for g in read if g["logGroupName"] == name)
    if inputs.get("kmsKeyId") and group.get("kmsKeyId") != inputs["kmsKeyId"]:
        ctx.note("log group KMS key not kept by moto")
    if inputs.get("deletionProtectionEnabled") and not group.get("deletionProtectionEnabled"):
        ctx.note("log group deletion protection not enforced by moto: the flag is not kept")
    ctx.note("log group KMS key stored, not enforced by moto: events are stored in clear")
    return name, {"name": name, "arn": _log_group_arn(ctx, name)}


def create_log_stream(ctx: Context, inputs: Inputs) -> Created:
    """A log stream of a log group; the id is its name."""
    name = str(inputs["name"])
    group = str(inputs["logGroupName"])
    ctx.client("logs").create_log_stream(logGroupName=group, logStreamName=name)
    return name, {"arn": f"{_log_group_arn(ctx, group)}:log-stream:{name}"}


def _metric_transformation(item: Inputs) -> dict[str, Any]:
    """A ``metricTransformation`` block as PutMetricFilter's structure."""
    return _drop_none(
        {
            "metricName": item["name"],
            "metricNamespace": item["namespace"],
            "metricValue": item["value"],
            "defaultValue": (
                float(item["defaultValue"]) if item.get("defaultValue") is not None else None
            ),
            "dimensions": dict(item.get("dimensions") or {}) or None,
            "unit": item.get("unit"),
        }
    )


def create_log_metric_filter(ctx: Context, inputs: Inputs) -> Created:
    """A metric filter: its pattern and metric transformation; the id is its name."""
    logs = ctx.client("logs")
    name = str(inputs["name"])
    group = str(inputs["logGroupName"])
    transformation = inputs["metricTransformation"]
    params: dict[str, Any] = {
        "logGroupName": group,
        "filterName": name,
        "filterPattern": inputs.get("pattern", ""),
        "metricTransformations": [_metric_transformation(transformation)],
    }
    if inputs.get("applyOnTransformedLogs") is not None:
        params["applyOnTransformedLogs"] = bool(inputs["applyOnTransformedLogs"])
    logs.put_metric_filter(**params)
    read = logs.describe_metric_filters(logGroupName=group, filterNamePrefix=name)["metricFilters"]
    if not any(f["filterName"] == name for f in read):
        raise RuntimeError(f"metric filter {name} not found after creation")
    ctx.note("metric filter stored, not evaluated by moto: log events publish no metric")
    return name, {}


def _subscription_filter_id(log_group: str) -> str:
    """The provider's id of a subscription filter: ``cwlsf-`` and a CRC-32 of the group name."""
    return f"cwlsf-{zlib.crc32(f'{log_group}-'.encode())}"


def create_log_subscription_filter(ctx: Context, inputs: Inputs) -> Created:
    """A subscription filter delivering a log group to Firehose, Kinesis or Lambda."""
    logs = ctx.client("logs")
    group = str(inputs["logGroup"])
    params = _drop_none(
        {
            "logGroupName": group,
            "filterName": inputs["name"],
            "filterPattern": inputs.get("filterPattern", ""),
            "destinationArn": inputs["destinationArn"],
            "roleArn": inputs.get("roleArn"),
            "distribution": inputs.get("distribution"),
        }
    )
    if inputs.get("applyOnTransformedLogs") is not None:
        params["applyOnTransformedLogs"] = bool(inputs["applyOnTransformedLogs"])
    if params["filterPattern"] == "":
        params["filterPattern"] = ""
    logs.put_subscription_filter(**params)
    read = logs.describe_subscription_filters(logGroupName=group)["subscriptionFilters"]
    if not any(f["filterName"] == inputs["name"] for f in read):
        raise RuntimeError(f"subscription filter {inputs['name']} not found after creation")
    if inputs.get("roleArn"):
        ctx.note("subscription role not enforced by moto: delivery does not assume it")
    return _subscription_filter_id(group), {}


def _metric_query(query: Inputs) -> dict[str, Any]:
    """A ``metricQueries`` item as a MetricDataQuery."""
    metric = query.get("metric") or {}
    stat = None
    if metric:
        stat = _drop_none(
            {
                "Metric": {
                    "Namespace": metric.get("namespace"),
                    "MetricName": metric["metricName"],
                    "Dimensions": [
                        {"Name": k, "Value": v}
                        for k, v in sorted((metric.get("dimensions") or {}).items())
                    ],
                },
                "Period": _int(metric["period"]),
                "Stat": metric["stat"],
                "Unit": metric.get("unit"),
            }
        )
    return _drop_none(
        {
            "Id": query["id"],
            "Expression": query.get("expression"),
            "Label": query.get("label"),
            "ReturnData": query.get("returnData"),
            "Period": _int(query["period"]) if query.get("period") else None,
            "AccountId": query.get("accountId"),
            "MetricStat": stat,
        }
    )


def create_metric_alarm(ctx: Context, inputs: Inputs) -> Created:
    """A metric alarm with its metric or metric queries, threshold and actions."""
    cloudwatch = ctx.client("cloudwatch")
    name = _auto_name(ctx, inputs)
    dimensions = inputs.get("dimensions") or {}
    params = _drop_none(
        {
            "AlarmName": name,
            "AlarmDescription": inputs.get("alarmDescription"),
            "ActionsEnabled": inputs.get("actionsEnabled"),
            "AlarmActions": inputs.get("alarmActions"),
            "OKActions": inputs.get("okActions"),
            "InsufficientDataActions": inputs.get("insufficientDataActions"),
            "MetricName": inputs.get("metricName"),
            "Namespace": inputs.get("namespace"),
            "Statistic": inputs.get("statistic"),
            "ExtendedStatistic": inputs.get("extendedStatistic"),
            "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(dimensions.items())] or None,
            "Period": _int(inputs["period"]) if inputs.get("period") is not None else None,
            "Unit": inputs.get("unit"),
            "EvaluationPeriods": _int(inputs["evaluationPeriods"]),
            "DatapointsToAlarm": (
                _int(inputs["datapointsToAlarm"]) if inputs.get("datapointsToAlarm") else None
            ),
            "Threshold": float(inputs["threshold"]) if "threshold" in inputs else None,
            "ThresholdMetricId": inputs.get("thresholdMetricId"),
            "ComparisonOperator": inputs["comparisonOperator"],
            "TreatMissingData": inputs.get("treatMissingData"),
            "EvaluateLowSampleCountPercentile": inputs.get("evaluateLowSampleCountPercentiles"),
            "Metrics": [_metric_query(q) for q in inputs.get("metricQueries") or []] or None,
            "Tags": _tag_list(inputs) or None,
        }
    )
    cloudwatch.put_metric_alarm(**params)
    alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    ctx.note("alarm stored, not evaluated against real traffic: moto publishes no AWS metrics")
    return name, {"name": name, "arn": alarm["AlarmArn"]}


def create_event_rule(ctx: Context, inputs: Inputs) -> Created:
    """An EventBridge rule with its pattern or schedule and state."""
    events = ctx.client("events")
    name = _auto_name(ctx, inputs, limit=64)
    state = inputs.get("state")
    if state is None and inputs.get("isEnabled") is not None:
        state = "ENABLED" if inputs["isEnabled"] else "DISABLED"
    bus = inputs.get("eventBusName")
    params = _drop_none(
        {
            "Name": name,
            "ScheduleExpression": inputs.get("scheduleExpression"),
            "EventPattern": inputs.get("eventPattern"),
            "State": state or "ENABLED",
            "Description": inputs.get("description"),
            "RoleArn": inputs.get("roleArn"),
            "EventBusName": bus,
            "Tags": _tag_list(inputs) or None,
        }
    )
    arn = events.put_rule(**params)["RuleArn"]
    if inputs.get("scheduleExpression"):
        ctx.note("schedule stored, not triggered by moto: run the target in-process instead")
    rule_id = name if not bus or bus == "default" else f"{bus}/{name}"
    return rule_id, {"name": name, "arn": arn}


def _target(inputs: Inputs, target_id: str) -> dict[str, Any]:
    """An EventTarget's inputs as a PutTargets target."""
    transformer = inputs.get("inputTransformer") or {}
    dead_letter = inputs.get("deadLetterConfig") or {}
    retry = inputs.get("retryPolicy") or {}
    sqs = inputs.get("sqsTarget") or {}
    return _drop_none(
        {
            "Id": target_id,
            "Arn": inputs["arn"],
            "RoleArn": inputs.get("roleArn"),
            "Input": inputs.get("input"),
            "InputPath": inputs.get("inputPath"),
            "InputTransformer": _drop_none(
                {
                    "InputPathsMap": transformer.get("inputPaths"),
                    "InputTemplate": transformer.get("inputTemplate"),
                }
            )
            or None,
            "DeadLetterConfig": _drop_none({"Arn": dead_letter.get("arn")}) or None,
            "RetryPolicy": _drop_none(
                {
                    "MaximumRetryAttempts": (
                        _int(retry["maximumRetryAttempts"])
                        if retry.get("maximumRetryAttempts") is not None
                        else None
                    ),
                    "MaximumEventAgeInSeconds": (
                        _int(retry["maximumEventAgeInSeconds"])
                        if retry.get("maximumEventAgeInSeconds") is not None
                        else None
                    ),
                }
            )
            or None,
            "SqsParameters": _drop_none({"MessageGroupId": sqs.get("messageGroupId")}) or None,
        }
    )


_TARGET_UNSUPPORTED = (
    "ecsTarget",
    "batchTarget",
    "kinesisTarget",
    "httpTarget",
    "runCommandTargets",
    "redshiftTarget",
    "sagemakerPipelineTarget",
    "appsyncTarget",
)


def create_event_target(ctx: Context, inputs: Inputs) -> Created:
    """A target of an EventBridge rule; the id is ``rule-targetId`` as the provider sets it."""
    unsupported = [k for k in _TARGET_UNSUPPORTED if inputs.get(k)]
    if unsupported:
        raise NotEmulated(f"event target parameters {unsupported} are not mapped by the sandbox")
    events = ctx.client("events")
    target_id = str(inputs.get("targetId") or _auto_name(ctx, {}, limit=64))
    rule = str(inputs["rule"])
    bus = inputs.get("eventBusName")
    params = _drop_none(
        {"Rule": rule, "EventBusName": bus, "Targets": [_target(inputs, target_id)]}
    )
    answer = events.put_targets(**params)
    if answer.get("FailedEntryCount"):
        raise RuntimeError(f"event target refused: {answer.get('FailedEntries')}")
    ctx.note("target stored; moto delivers matching events to some targets only (SQS, SNS)")
    parts = [rule, target_id] if not bus or bus == "default" else [bus, rule, target_id]
    return "-".join(parts), {"targetId": target_id}


# ---------------------------------------------------------------------------------------------
# Firehose and CloudTrail
# ---------------------------------------------------------------------------------------------


def _buffering(block: Inputs) -> dict[str, Any] | None:
    hints = _drop_none(
        {
            "SizeInMBs": _int(block["bufferingSize"]) if block.get("bufferingSize") else None,
            "IntervalInSeconds": (
                _int(block["bufferingInterval"])
                if block.get("bufferingInterval") is not None
                else None
            ),
        }
    )
    return hints or None


def _cloudwatch_logging(block: Inputs) -> dict[str, Any] | None:
    options = block.get("cloudwatchLoggingOptions")
    if not options:
        return None
    return _drop_none(
        {
            "Enabled": bool(options.get("enabled")),
            "LogGroupName": options.get("logGroupName"),
            "LogStreamName": options.get("logStreamName"),
        }
    )


def _processing(block: Inputs) -> dict[str, Any] | None:
    config = block.get("processingConfiguration")
    if not config:
        return None
    return {
        "Enabled": bool(config.get("enabled")),
        "Processors": [
            {
                "Type": p["type"],
                "Parameters": [
                    {"ParameterName": q["parameterName"], "ParameterValue": q["parameterValue"]}
                    for q in p.get("parameters") or []
                ],
            }
            for p in config.get("processors") or []
        ],
    }


def _s3_destination(block: Inputs) -> dict[str, Any]:
    """An ``s3Configuration`` block as Firehose's S3DestinationConfiguration."""
    encryption: dict[str, Any] = {"NoEncryptionConfig": "NoEncryption"}
    if block.get("kmsKeyArn"):
        encryption = {"KMSEncryptionConfig": {"AWSKMSKeyARN": block["kmsKeyArn"]}}
    return _drop_none(
        {
            "RoleARN": block["roleArn"],
            "BucketARN": block["bucketArn"],
            "Prefix": block.get("prefix"),
            "ErrorOutputPrefix": block.get("errorOutputPrefix"),
            "BufferingHints": _buffering(block),
            "CompressionFormat": block.get("compressionFormat"),
            "EncryptionConfiguration": encryption,
            "CloudWatchLoggingOptions": _cloudwatch_logging(block),
        }
    )


def _http_endpoint_destination(block: Inputs) -> dict[str, Any]:
    """An ``httpEndpointConfiguration`` block as HttpEndpointDestinationConfiguration."""
    request = block.get("requestConfiguration") or {}
    secrets = block.get("secretsManagerConfiguration") or {}
    return _drop_none(
        {
            "EndpointConfiguration": _drop_none(
                {
                    "Url": block["url"],
                    "Name": block.get("name"),
                    "AccessKey": block.get("accessKey"),
                }
            ),
            "BufferingHints": _buffering(block),
            "CloudWatchLoggingOptions": _cloudwatch_logging(block),
            "RequestConfiguration": _drop_none(
                {
                    "ContentEncoding": request.get("contentEncoding"),
                    "CommonAttributes": [
                        {"AttributeName": a["name"], "AttributeValue": a["value"]}
                        for a in request.get("commonAttributes") or []
                    ]
                    or None,
                }
            )
            or None,
            "ProcessingConfiguration": _processing(block),
            "RoleARN": block.get("roleArn"),
            "RetryOptions": (
                {"DurationInSeconds": _int(block["retryDuration"])}
                if block.get("retryDuration") is not None
                else None
            ),
            "S3BackupMode": block.get("s3BackupMode"),
            "S3Configuration": _s3_destination(block["s3Configuration"]),
            "SecretsManagerConfiguration": _drop_none(
                {
                    "SecretARN": secrets.get("secretArn"),
                    "RoleARN": secrets.get("roleArn"),
                    "Enabled": secrets.get("enabled"),
                }
            )
            or None,
        }
    )


def _extended_s3_destination(block: Inputs) -> dict[str, Any]:
    """An ``extendedS3Configuration`` block as ExtendedS3DestinationConfiguration."""
    base = _s3_destination(block)
    backup = block.get("s3BackupConfiguration")
    return _drop_none(
        {
            **base,
            "ProcessingConfiguration": _processing(block),
            "S3BackupMode": block.get("s3BackupMode"),
            "S3BackupConfiguration": _s3_destination(backup) if backup else None,
            "FileExtension": block.get("fileExtension"),
            "CustomTimeZone": block.get("customTimeZone"),
        }
    )


def create_firehose_delivery_stream(ctx: Context, inputs: Inputs) -> Created:
    """A Firehose stream to an HTTP endpoint or S3, with backup, processing and KMS encryption."""
    firehose = ctx.client("firehose")
    name = str(inputs["name"])
    destination = inputs["destination"]
    params: dict[str, Any] = {"DeliveryStreamName": name, "DeliveryStreamType": "DirectPut"}
    if destination == "http_endpoint":
        params["HttpEndpointDestinationConfiguration"] = _http_endpoint_destination(
            inputs["httpEndpointConfiguration"]
        )
    elif destination == "extended_s3":
        params["ExtendedS3DestinationConfiguration"] = _extended_s3_destination(
            inputs["extendedS3Configuration"]
        )
    else:
        raise NotEmulated(f"Firehose destination {destination!r} is not mapped by the sandbox")
    source = inputs.get("kinesisSourceConfiguration")
    if source:
        params["DeliveryStreamType"] = "KinesisStreamAsSource"
        params["KinesisStreamSourceConfiguration"] = {
            "KinesisStreamARN": source["kinesisStreamArn"],
            "RoleARN": source["roleArn"],
        }
    sse = inputs.get("serverSideEncryption") or {}
    if sse.get("enabled"):
        params["DeliveryStreamEncryptionConfigurationInput"] = _drop_none(
            {"KeyType": sse.get("keyType") or "AWS_OWNED_CMK", "KeyARN": sse.get("keyArn")}
        )
    tags = _tag_list(inputs)
    if tags:
        params["Tags"] = tags
    arn = firehose.create_delivery_stream(**params)["DeliveryStreamARN"]
    read = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    _note_firehose_gaps(ctx, inputs, read)
    return arn, {
        "arn": arn,
        "versionId": read.get("VersionId", "1"),
        "destinationId": (read.get("Destinations") or [{}])[0].get("DestinationId", ""),
    }


def _note_firehose_gaps(ctx: Context, inputs: Inputs, read: dict[str, Any]) -> None:
    """Notes what the emulator does not keep or enforce of a Firehose stream."""
    sse = inputs.get("serverSideEncryption") or {}
    kept = read.get("DeliveryStreamEncryptionConfiguration") or {}
    if sse.get("enabled") and kept.get("KeyARN") != sse.get("keyArn"):
        ctx.note("stream encryption (SSE with KMS) not kept by moto: records are held in clear")
    http = inputs.get("httpEndpointConfiguration") or {}
    if (http.get("secretsManagerConfiguration") or {}).get("enabled"):
        ctx.note(
            "HTTP endpoint access key from Secrets Manager not sent by moto: it POSTs "
            "without the X-Amz-Firehose-Access-Key header"
        )
    if (http.get("processingConfiguration") or {}).get("enabled"):
        ctx.note(
            "record processing (Decompression, CloudWatchLogProcessing) applied by the "
            "emulator's shim processors_run_before_delivery (moto ignores it)"
        )
    if http.get("s3BackupMode") or (inputs.get("extendedS3Configuration") or {}).get(
        "s3BackupMode"
    ):
        ctx.note(
            "failed deliveries reach the S3 backup through the emulator's shim "
            "failed_deliveries_go_to_the_backup (only a refused connection: moto ignores HTTP "
            "status codes and never retries)"
        )


def _advanced_selector(selector: Inputs) -> dict[str, Any]:
    """An ``advancedEventSelectors`` item as CloudTrail's AdvancedEventSelector."""
    keys = {
        "equals": "Equals",
        "startsWiths": "StartsWith",
        "endsWiths": "EndsWith",
        "notEquals": "NotEquals",
        "notStartsWiths": "NotStartsWith",
        "notEndsWiths": "NotEndsWith",
    }
    fields = [
        {"Field": f["field"], **{api: list(f[k]) for k, api in keys.items() if f.get(k)}}
        for f in selector.get("fieldSelectors") or []
    ]
    return _drop_none({"Name": selector.get("name"), "FieldSelectors": fields})


def _event_selector(selector: Inputs) -> dict[str, Any]:
    """An ``eventSelectors`` item as CloudTrail's EventSelector."""
    return _drop_none(
        {
            "ReadWriteType": selector.get("readWriteType"),
            "IncludeManagementEvents": selector.get("includeManagementEvents"),
            "ExcludeManagementEventSources": selector.get("excludeManagementEventSources"),
            "DataResources": [
                {"Type": d["type"], "Values": list(d["values"])}
                for d in selector.get("dataResources") or []
            ]
            or None,
        }
    )


def create_trail(ctx: Context, inputs: Inputs) -> Created:
    """A trail: multi-region, log file validation, KMS, CloudWatch Logs, selectors, logging on."""
    cloudtrail = ctx.client("cloudtrail")
    name = _auto_name(ctx, inputs, limit=128)
    params = _drop_none(
        {
            "Name": name,
            "S3BucketName": inputs["s3BucketName"],
            "S3KeyPrefix": inputs.get("s3KeyPrefix"),
            "SnsTopicName": inputs.get("snsTopicName"),
            "IncludeGlobalServiceEvents": inputs.get("includeGlobalServiceEvents"),
            "IsMultiRegionTrail": inputs.get("isMultiRegionTrail"),
            "EnableLogFileValidation": inputs.get("enableLogFileValidation"),
            "CloudWatchLogsLogGroupArn": inputs.get("cloudWatchLogsGroupArn"),
            "CloudWatchLogsRoleArn": inputs.get("cloudWatchLogsRoleArn"),
            "KmsKeyId": inputs.get("kmsKeyId"),
            "IsOrganizationTrail": inputs.get("isOrganizationTrail"),
            "TagsList": _tag_list(inputs) or None,
        }
    )
    trail = cloudtrail.create_trail(**params)
    arn = trail["TrailARN"]
    if inputs.get("advancedEventSelectors"):
        cloudtrail.put_event_selectors(
            TrailName=name,
            AdvancedEventSelectors=[
                _advanced_selector(s) for s in inputs["advancedEventSelectors"]
            ],
        )
    elif inputs.get("eventSelectors"):
        cloudtrail.put_event_selectors(
            TrailName=name, EventSelectors=[_event_selector(s) for s in inputs["eventSelectors"]]
        )
    if inputs.get("insightSelectors"):
        cloudtrail.put_insight_selectors(
            TrailName=name,
            InsightSelectors=[
                {"InsightType": s["insightType"]} for s in inputs["insightSelectors"]
            ],
        )
    if inputs.get("enableLogging", True) is not False:
        cloudtrail.start_logging(Name=name)
    ctx.note("trail configured and logging, but moto records no events (nothing reaches S3/Logs)")
    return arn, {
        "arn": arn,
        "name": name,
        "homeRegion": ctx.region,
        "snsTopicArn": trail.get("SnsTopicARN", ""),
    }


# ---------------------------------------------------------------------------------------------
# Lambda
# ---------------------------------------------------------------------------------------------

# A fixed timestamp, so the same sources always give the same zip and the same CodeSha256.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _zip_add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def _add_path(archive: zipfile.ZipFile, name: str, path: Path) -> None:
    """Adds a file, or a directory's files under ``name``, to the archive."""
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            _zip_add(
                archive,
                f"{name}/{child.relative_to(path).as_posix()}".lstrip("/"),
                child.read_bytes(),
            )
    else:
        _zip_add(archive, name, path.read_bytes())


def _add_member(archive: zipfile.ZipFile, name: str, member: Any) -> None:
    """Adds one member of an AssetArchive (an asset, an archive, or its plain-dict form)."""
    if isinstance(member, asset.StringAsset):
        _zip_add(archive, name, member.text.encode())
    elif isinstance(member, asset.FileAsset | asset.FileArchive):
        _add_path(archive, name, Path(str(member.path)))
    elif isinstance(member, asset.AssetArchive):
        for child, value in sorted(member.assets.items()):
            _add_member(archive, f"{name}/{child}", value)
    elif isinstance(member, Mapping) and "fileAsset" in member:
        _add_path(archive, name, Path(str(member["fileAsset"])))
    elif isinstance(member, Mapping) and "stringAsset" in member:
        _zip_add(archive, name, str(member["stringAsset"]).encode())
    else:
        raise NotEmulated(
            f"Lambda code member {name!r} of kind {type(member).__name__} is not "
            "buildable offline (remote assets are not fetched)"
        )


def _archive_members(code: Any) -> Mapping[str, Any] | None:
    if isinstance(code, asset.AssetArchive):
        return code.assets
    if isinstance(code, Mapping) and "assetArchive" in code:
        return dict(code["assetArchive"])
    return None


def _archive_path(code: Any) -> Path | None:
    if isinstance(code, asset.FileArchive):
        return Path(str(code.path))
    if isinstance(code, Mapping) and "fileArchive" in code:
        return Path(str(code["fileArchive"]))
    return None


def build_zip(code: Any) -> bytes:
    """A Lambda deployment package built in memory from a Pulumi archive.

    An AssetArchive's members are zipped under their names; a FileArchive that is a zip is used
    as is, a directory is zipped. Raises FileNotFoundError when a FileArchive does not exist.
    """
    members = _archive_members(code)
    path = _archive_path(code)
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(str(path))
        if path.is_file() and zipfile.is_zipfile(path):
            return path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if members is not None:
            for name, member in sorted(members.items()):
                _add_member(archive, name, member)
        elif path is not None and path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                _zip_add(archive, child.relative_to(path).as_posix(), child.read_bytes())
        else:
            raise NotEmulated(f"Lambda code of kind {type(code).__name__} is not buildable offline")
    return buffer.getvalue()


def _placeholder_zip(ctx: Context) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _zip_add(archive, "python/SANDBOX-PLACEHOLDER.txt", f"{ctx.name}: not built\n".encode())
    return buffer.getvalue()


def create_layer_version(ctx: Context, inputs: Inputs) -> Created:
    """Publishes a layer version; a layer archive not built yet is published as a placeholder."""
    awslambda = ctx.client("lambda")
    try:
        content = build_zip(inputs.get("code"))
    except FileNotFoundError as missing:
        content = _placeholder_zip(ctx)
        ctx.note(
            f"layer content not built ({missing} does not exist): published a placeholder zip; "
            "the sandbox runs the functions in-process on its own Python environment"
        )
    if inputs.get("s3Bucket"):
        raise NotEmulated("a layer published from S3 is not mapped by the sandbox")
    layer = awslambda.publish_layer_version(
        **_drop_none(
            {
                "LayerName": inputs["layerName"],
                "Description": inputs.get("description"),
                "Content": {"ZipFile": content},
                "CompatibleRuntimes": inputs.get("compatibleRuntimes"),
                "CompatibleArchitectures": inputs.get("compatibleArchitectures"),
                "LicenseInfo": inputs.get("licenseInfo"),
            }
        )
    )
    arn = layer["LayerVersionArn"]
    return arn, {
        "arn": arn,
        "layerArn": layer["LayerArn"],
        "version": str(layer["Version"]),
        "createdDate": str(layer.get("CreatedDate", "")),
        "codeSha256": layer.get("Content", {}).get("CodeSha256", ""),
        "codeSize": layer.get("Content", {}).get("CodeSize", len(content)),
        "sourceCodeHash": layer.get("Content", {}).get("CodeSha256", ""),
    }


def _function_params(ctx: Context, inputs: Inputs, name: str) -> dict[str, Any]:
    """CreateFunction's parameters from a Function's inputs."""
    vpc = inputs.get("vpcConfig") or {}
    ephemeral = inputs.get("ephemeralStorage") or {}
    logging = inputs.get("loggingConfig") or {}
    tracing = inputs.get("tracingConfig") or {}
    dead_letter = inputs.get("deadLetterConfig") or {}
    environment = (inputs.get("environment") or {}).get("variables")
    if inputs.get("imageUri") or inputs.get("s3Bucket"):
        raise NotEmulated("a function from a container image or from S3 is not mapped")
    return _drop_none(
        {
            "FunctionName": name,
            "Runtime": inputs.get("runtime"),
            "Role": inputs["role"],
            "Handler": inputs.get("handler"),
            "Code": {"ZipFile": build_zip(inputs["code"])},
            "Description": inputs.get("description"),
            "Timeout": _int(inputs["timeout"]) if inputs.get("timeout") else None,
            "MemorySize": _int(inputs["memorySize"]) if inputs.get("memorySize") else None,
            "Publish": bool(inputs.get("publish", False)),
            "VpcConfig": _drop_none(
                {
                    "SubnetIds": vpc.get("subnetIds"),
                    "SecurityGroupIds": vpc.get("securityGroupIds"),
                    "Ipv6AllowedForDualStack": vpc.get("ipv6AllowedForDualStack"),
                }
            )
            or None,
            "Environment": {"Variables": dict(environment)} if environment else None,
            "KMSKeyArn": inputs.get("kmsKeyArn"),
            "TracingConfig": {"Mode": tracing["mode"]} if tracing.get("mode") else None,
            "DeadLetterConfig": (
                {"TargetArn": dead_letter["targetArn"]} if dead_letter.get("targetArn") else None
            ),
            "Layers": inputs.get("layers") or None,
            "Architectures": inputs.get("architectures") or None,
            "EphemeralStorage": {"Size": _int(ephemeral["size"])}
            if ephemeral.get("size")
            else None,
            "LoggingConfig": _drop_none(
                {
                    "LogFormat": logging.get("logFormat"),
                    "ApplicationLogLevel": logging.get("applicationLogLevel"),
                    "SystemLogLevel": logging.get("systemLogLevel"),
                    "LogGroup": logging.get("logGroup"),
                }
            )
            or None,
            "PackageType": inputs.get("packageType"),
            "Tags": dict(inputs.get("tags") or {}) or None,
        }
    )


def create_function(ctx: Context, inputs: Inputs) -> Created:
    """A function from its in-memory zip, with reserved concurrency; the id is its name."""
    awslambda = ctx.client("lambda")
    name = _auto_name(ctx, inputs, limit=64)
    params = _function_params(ctx, inputs, name)
    if (
        inputs.get("fileSystemConfig")
        or inputs.get("snapStart")
        or inputs.get("codeSigningConfigArn")
    ):
        raise NotEmulated("file systems, SnapStart and code signing are not mapped by the sandbox")
    created = awslambda.create_function(**params)
    reserved = inputs.get("reservedConcurrentExecutions")
    if reserved is not None and _int(reserved) >= 0:
        awslambda.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=_int(reserved)
        )
    read = awslambda.get_function(FunctionName=name)["Configuration"]
    _note_function_gaps(ctx, inputs, read)
    arn = read["FunctionArn"]
    version = read.get("Version", "$LATEST")
    qualified = f"{arn}:{version}"
    invoke = f"arn:aws:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{arn}/invocations"
    qualified_invoke = (
        f"arn:aws:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{qualified}/invocations"
    )
    return name, {
        "name": name,
        "arn": arn,
        "invokeArn": invoke,
        "qualifiedArn": qualified,
        "qualifiedInvokeArn": qualified_invoke,
        "version": version,
        "lastModified": read.get("LastModified", ""),
        "codeSha256": read.get("CodeSha256", created.get("CodeSha256", "")),
        "sourceCodeHash": read.get("CodeSha256", ""),
        "sourceCodeSize": read.get("CodeSize", 0),
    }


def _note_function_gaps(ctx: Context, inputs: Inputs, read: dict[str, Any]) -> None:
    """Notes what moto does not keep or enforce of a function's configuration."""
    ctx.note(
        "not invoked through moto (invoke needs Docker): the sandbox runs the handler in-process "
        f"on its own Python {sys.version_info.major}.{sys.version_info.minor} and installed "
        f"packages, not on the {inputs.get('runtime') or 'declared'} runtime with the layer"
    )
    if inputs.get("kmsKeyArn") and read.get("KMSKeyArn") != inputs["kmsKeyArn"]:
        ctx.note("environment encryption KMS key not kept by moto")
    if inputs.get("vpcConfig"):
        ctx.note(
            "VPC placement stored, not enforced by moto: the in-process handler is not "
            "confined to the subnets and security groups"
        )
    if inputs.get("loggingConfig") and not read.get("LoggingConfig"):
        ctx.note("logging configuration (JSON format, levels, log group) not kept by moto")


def create_event_source_mapping(ctx: Context, inputs: Inputs) -> Created:
    """An event source mapping (SQS, Kinesis, DynamoDB streams); the id is its UUID."""
    awslambda = ctx.client("lambda")
    scaling = inputs.get("scalingConfig") or {}
    criteria = inputs.get("filterCriteria") or {}
    params = _drop_none(
        {
            "EventSourceArn": inputs.get("eventSourceArn"),
            "FunctionName": inputs["functionName"],
            "Enabled": inputs.get("enabled"),
            "BatchSize": _int(inputs["batchSize"]) if inputs.get("batchSize") else None,
            "MaximumBatchingWindowInSeconds": (
                _int(inputs["maximumBatchingWindowInSeconds"])
                if inputs.get("maximumBatchingWindowInSeconds") is not None
                else None
            ),
            "FunctionResponseTypes": inputs.get("functionResponseTypes") or None,
            "ScalingConfig": (
                {"MaximumConcurrency": _int(scaling["maximumConcurrency"])}
                if scaling.get("maximumConcurrency")
                else None
            ),
            "FilterCriteria": (
                {"Filters": [{"Pattern": f["pattern"]} for f in criteria.get("filters") or []]}
                if criteria
                else None
            ),
            "StartingPosition": inputs.get("startingPosition"),
            "MaximumRetryAttempts": (
                _int(inputs["maximumRetryAttempts"])
                if inputs.get("maximumRetryAttempts") is not None
                else None
            ),
            "BisectBatchOnFunctionError": inputs.get("bisectBatchOnFunctionError"),
            "ParallelizationFactor": (
                _int(inputs["parallelizationFactor"])
                if inputs.get("parallelizationFactor")
                else None
            ),
            "KMSKeyArn": inputs.get("kmsKeyArn"),
        }
    )
    mapping = awslambda.create_event_source_mapping(**params)
    uuid = mapping["UUID"]
    read = awslambda.get_event_source_mapping(UUID=uuid)
    if inputs.get("functionResponseTypes") and not read.get("FunctionResponseTypes"):
        ctx.note("ReportBatchItemFailures not kept by moto: partial batch failures not reported")
    if scaling and not read.get("ScalingConfig"):
        ctx.note("scaling config (maximum concurrency) not kept by moto")
    ctx.note("moto does not poll the queue into the function: the sandbox drives it in-process")
    return mapping["UUID"], {
        "uuid": mapping["UUID"],
        "functionArn": read.get("FunctionArn", ""),
        "state": read.get("State", ""),
        "lastModified": str(read.get("LastModified", "")),
        "arn": f"arn:aws:lambda:{ctx.region}:{ctx.account_id}:event-source-mapping:{uuid}",
    }


def create_function_event_invoke_config(ctx: Context, inputs: Inputs) -> Created:
    """Asynchronous invocation settings: retries, event age and destinations."""
    awslambda = ctx.client("lambda")
    destinations = inputs.get("destinationConfig") or {}
    config = {
        api: {"Destination": destinations[key]["destination"]}
        for key, api in (("onSuccess", "OnSuccess"), ("onFailure", "OnFailure"))
        if (destinations.get(key) or {}).get("destination")
    }
    function = str(inputs["functionName"])
    params = _drop_none(
        {
            "FunctionName": function,
            "Qualifier": inputs.get("qualifier"),
            "MaximumRetryAttempts": (
                _int(inputs["maximumRetryAttempts"])
                if inputs.get("maximumRetryAttempts") is not None
                else None
            ),
            "MaximumEventAgeInSeconds": (
                _int(inputs["maximumEventAgeInSeconds"])
                if inputs.get("maximumEventAgeInSeconds") is not None
                else None
            ),
            "DestinationConfig": config or None,
        }
    )
    awslambda.put_function_event_invoke_config(**params)
    ctx.note("async retries and the on-failure destination are not applied by moto (no invoke)")
    qualifier = inputs.get("qualifier")
    return f"{function}:{qualifier}" if qualifier else function, {}


def create_permission(ctx: Context, inputs: Inputs) -> Created:
    """A statement of a function's resource policy; the id is the statement id."""
    awslambda = ctx.client("lambda")
    statement = str(
        inputs.get("statementId")
        or _auto_name(
            ctx, {"namePrefix": inputs.get("statementIdPrefix") or "terraform-"}, limit=100
        )
    )
    params = _drop_none(
        {
            "FunctionName": inputs["function"],
            "StatementId": statement,
            "Action": inputs["action"],
            "Principal": inputs["principal"],
            "SourceArn": inputs.get("sourceArn"),
            "SourceAccount": inputs.get("sourceAccount"),
            "EventSourceToken": inputs.get("eventSourceToken"),
            "Qualifier": inputs.get("qualifier"),
            "PrincipalOrgID": inputs.get("principalOrgId"),
            "FunctionUrlAuthType": inputs.get("functionUrlAuthType"),
            "InvokedViaFunctionUrl": (True if inputs.get("invokedViaFunctionUrl") else None),
        }
    )
    awslambda.add_permission(**params)
    ctx.note("resource policy stored, not enforced by moto")
    return statement, {"statementId": statement}


def create_function_url(ctx: Context, inputs: Inputs) -> Created:
    """A function URL (CreateFunctionUrlConfig); the id is the function's name."""
    awslambda = ctx.client("lambda")
    function = str(inputs["functionName"])
    cors = inputs.get("cors")
    if cors:
        raise NotEmulated("function URL CORS settings are not mapped by the sandbox")
    params = _drop_none(
        {
            "FunctionName": function,
            "Qualifier": inputs.get("qualifier"),
            "AuthType": inputs["authorizationType"],
            "InvokeMode": inputs.get("invokeMode"),
        }
    )
    created = awslambda.create_function_url_config(**params)
    url = str(created["FunctionUrl"])
    ctx.note(
        "the URL is moto's, not served: requests to it do not reach the handler (the sandbox "
        "invokes the handler in-process)"
    )
    return function, {
        "functionUrl": url,
        "functionArn": created.get("FunctionArn", ""),
        "urlId": url.split("//", 1)[-1].split(".", 1)[0],
    }


# ---------------------------------------------------------------------------------------------
# ECR and ECS
# ---------------------------------------------------------------------------------------------


def create_repository(ctx: Context, inputs: Inputs) -> Created:
    """A repository: tag immutability, scan on push and KMS encryption; the id is its name."""
    ecr = ctx.client("ecr")
    name = _auto_name(ctx, inputs)
    encryption = (inputs.get("encryptionConfigurations") or [{}])[0]
    scanning = inputs.get("imageScanningConfiguration") or {}
    params = _drop_none(
        {
            "repositoryName": name,
            "imageTagMutability": inputs.get("imageTagMutability"),
            "imageScanningConfiguration": (
                {"scanOnPush": bool(scanning["scanOnPush"])}
                if scanning.get("scanOnPush") is not None
                else None
            ),
            "encryptionConfiguration": _drop_none(
                {
                    "encryptionType": encryption.get("encryptionType"),
                    "kmsKey": encryption.get("kmsKey"),
                }
            )
            or None,
            "tags": _tag_list(inputs) or None,
        }
    )
    repository = ecr.create_repository(**params)["repository"]
    ctx.note("scan on push stored, no scan is run by moto")
    return name, {
        "name": name,
        "arn": repository["repositoryArn"],
        "registryId": repository["registryId"],
        "repositoryUrl": repository["repositoryUri"],
    }


def create_lifecycle_policy(ctx: Context, inputs: Inputs) -> Created:
    """A repository's lifecycle policy; the id is the repository name."""
    ecr = ctx.client("ecr")
    answer = ecr.put_lifecycle_policy(
        repositoryName=inputs["repository"], lifecyclePolicyText=inputs["policy"]
    )
    ctx.note("lifecycle policy stored, not applied by moto: no image expires")
    return str(inputs["repository"]), {"registryId": answer["registryId"]}


def create_cluster(ctx: Context, inputs: Inputs) -> Created:
    """An ECS cluster with its settings (Container Insights); the id is its ARN."""
    ecs = ctx.client("ecs")
    name = _auto_name(ctx, inputs)
    configuration = inputs.get("configuration") or {}
    execute = configuration.get("executeCommandConfiguration") or {}
    params = _drop_none(
        {
            "clusterName": name,
            "settings": [
                {"name": s["name"], "value": s["value"]} for s in inputs.get("settings") or []
            ]
            or None,
            "configuration": (
                {
                    "executeCommandConfiguration": _drop_none(
                        {"kmsKeyId": execute.get("kmsKeyId"), "logging": execute.get("logging")}
                    )
                }
                if execute
                else None
            ),
            "tags": _tag_list(inputs, "key", "value") or None,
        }
    )
    cluster = ecs.create_cluster(**params)["cluster"]
    if inputs.get("settings"):
        ctx.note("Container Insights setting stored; moto publishes no performance events")
    return cluster["clusterArn"], {"name": name, "arn": cluster["clusterArn"]}


def create_task_definition(ctx: Context, inputs: Inputs) -> Created:
    """A task definition from its container definitions JSON; the id is its family."""
    ecs = ctx.client("ecs")
    family = str(inputs["family"])
    ephemeral = inputs.get("ephemeralStorage") or {}
    platform = inputs.get("runtimePlatform") or {}
    params = _drop_none(
        {
            "family": family,
            "containerDefinitions": json.loads(inputs["containerDefinitions"]),
            "taskRoleArn": inputs.get("taskRoleArn"),
            "executionRoleArn": inputs.get("executionRoleArn"),
            "networkMode": inputs.get("networkMode"),
            "cpu": inputs.get("cpu"),
            "memory": inputs.get("memory"),
            "requiresCompatibilities": inputs.get("requiresCompatibilities") or None,
            "volumes": [_volume(v) for v in inputs.get("volumes") or []] or None,
            "ephemeralStorage": (
                {"sizeInGiB": _int(ephemeral["sizeInGib"])} if ephemeral.get("sizeInGib") else None
            ),
            "runtimePlatform": _drop_none(
                {
                    "cpuArchitecture": platform.get("cpuArchitecture"),
                    "operatingSystemFamily": platform.get("operatingSystemFamily"),
                }
            )
            or None,
            "pidMode": inputs.get("pidMode"),
            "ipcMode": inputs.get("ipcMode"),
            "tags": _tag_list(inputs, "key", "value") or None,
        }
    )
    task = ecs.register_task_definition(**params)["taskDefinition"]
    arn = task["taskDefinitionArn"]
    ctx.note("containers are not run by moto: the gateway runs in-process in the sandbox")
    return family, {
        "arn": arn,
        "arnWithoutRevision": arn.rsplit(":", 1)[0],
        "revision": task["revision"],
    }


def _volume(volume: Inputs) -> dict[str, Any]:
    """A task definition volume (a bind mount, or EFS)."""
    if volume.get("efsVolumeConfiguration") or volume.get("dockerVolumeConfiguration"):
        raise NotEmulated("EFS and Docker volumes of a task definition are not mapped")
    host = {"host": {"sourcePath": volume["hostPath"]}} if volume.get("hostPath") else {}
    return {"name": volume["name"], **host}


def _service_params(inputs: Inputs, name: str) -> dict[str, Any]:
    """CreateService's parameters from a Service's inputs."""
    network = inputs.get("networkConfiguration") or {}
    breaker = inputs.get("deploymentCircuitBreaker") or {}
    deployment = _drop_none(
        {
            "deploymentCircuitBreaker": (
                {"enable": bool(breaker.get("enable")), "rollback": bool(breaker.get("rollback"))}
                if breaker
                else None
            ),
            "maximumPercent": (
                _int(inputs["deploymentMaximumPercent"])
                if inputs.get("deploymentMaximumPercent") is not None
                else None
            ),
            "minimumHealthyPercent": (
                _int(inputs["deploymentMinimumHealthyPercent"])
                if inputs.get("deploymentMinimumHealthyPercent") is not None
                else None
            ),
        }
    )
    return _drop_none(
        {
            "cluster": inputs.get("cluster"),
            "serviceName": name,
            "taskDefinition": inputs.get("taskDefinition"),
            "loadBalancers": [
                _drop_none(
                    {
                        "targetGroupArn": lb.get("targetGroupArn"),
                        "loadBalancerName": lb.get("elbName"),
                        "containerName": lb["containerName"],
                        "containerPort": _int(lb["containerPort"]),
                    }
                )
                for lb in inputs.get("loadBalancers") or []
            ]
            or None,
            "desiredCount": (
                _int(inputs["desiredCount"]) if inputs.get("desiredCount") is not None else None
            ),
            "launchType": inputs.get("launchType"),
            "platformVersion": inputs.get("platformVersion"),
            "schedulingStrategy": inputs.get("schedulingStrategy"),
            "networkConfiguration": (
                {
                    "awsvpcConfiguration": {
                        "subnets": list(network["subnets"]),
                        "securityGroups": list(network.get("securityGroups") or []),
                        "assignPublicIp": "ENABLED"
                        if network.get("assignPublicIp")
                        else "DISABLED",
                    }
                }
                if network
                else None
            ),
            "healthCheckGracePeriodSeconds": (
                _int(inputs["healthCheckGracePeriodSeconds"])
                if inputs.get("healthCheckGracePeriodSeconds") is not None
                else None
            ),
            "deploymentConfiguration": deployment or None,
            "enableECSManagedTags": inputs.get("enableEcsManagedTags"),
            "propagateTags": inputs.get("propagateTags"),
            "enableExecuteCommand": inputs.get("enableExecuteCommand"),
            "availabilityZoneRebalancing": inputs.get("availabilityZoneRebalancing"),
            "tags": _tag_list(inputs, "key", "value") or None,
        }
    )


def create_service(ctx: Context, inputs: Inputs) -> Created:
    """A Fargate service with its network configuration and load balancers; the id is its ARN."""
    ecs = ctx.client("ecs")
    name = _auto_name(ctx, inputs)
    service = ecs.create_service(**_service_params(inputs, name))["service"]
    arn = service["serviceArn"]
    ctx.note(
        f"desired count {service.get('desiredCount')} recorded; moto runs no tasks and registers "
        "no targets"
    )
    kept = {
        "availabilityZoneRebalancing": "availabilityZoneRebalancing",
        "deploymentCircuitBreaker": "deploymentConfiguration",
        "healthCheckGracePeriodSeconds": "healthCheckGracePeriodSeconds",
        "enableEcsManagedTags": "enableECSManagedTags",
    }
    for key, answer in kept.items():
        if inputs.get(key) and not service.get(answer):
            ctx.note(f"service {key} not kept by moto")
    return arn, {"name": name, "arn": arn, "cluster": service.get("clusterArn", "")}


# ---------------------------------------------------------------------------------------------
# Elastic Load Balancing v2
# ---------------------------------------------------------------------------------------------


def _arn_suffix(arn: str) -> str:
    """The ARN's resource part CloudWatch dimensions use (after ``loadbalancer/``)."""
    resource = arn.split(":", 5)[5]
    return resource.removeprefix("loadbalancer/")


def _modify_attributes(ctx: Context, apply: Any, attributes: dict[str, str], what: str) -> None:
    """Sets ELB attributes one at a time; an attribute moto refuses is noted, not dropped."""
    for key, value in attributes.items():
        try:
            apply([{"Key": key, "Value": value}])
        except ClientError as refused:
            message = refused.response.get("Error", {}).get("Message", str(refused))
            ctx.note(f"{what} attribute {key}={value} not enforced by moto: refused ({message})")


def _load_balancer_attributes(inputs: Inputs) -> dict[str, str]:
    """The load balancer attributes its inputs set."""
    attributes: dict[str, str] = {}
    for key, prefix in (("accessLogs", "access_logs.s3"), ("connectionLogs", "connection_logs.s3")):
        logs = inputs.get(key)
        if logs:
            attributes[f"{prefix}.enabled"] = _bool_str(logs.get("enabled", True))
            attributes[f"{prefix}.bucket"] = str(logs.get("bucket", ""))
            attributes[f"{prefix}.prefix"] = str(logs.get("prefix", ""))
    simple = {
        "enableDeletionProtection": "deletion_protection.enabled",
        "dropInvalidHeaderFields": "routing.http.drop_invalid_header_fields.enabled",
        "enableTlsVersionAndCipherSuiteHeaders": (
            "routing.http.x_amzn_tls_version_and_cipher_suite.enabled"
        ),
        "enableCrossZoneLoadBalancing": "load_balancing.cross_zone.enabled",
        "enableHttp2": "routing.http2.enabled",
        "enableWafFailOpen": "waf.fail_open.enabled",
        "preserveHostHeader": "routing.http.preserve_host_header.enabled",
        "enableXffClientPort": "routing.http.xff_client_port.enabled",
    }
    for key, attribute in simple.items():
        if inputs.get(key) is not None:
            attributes[attribute] = _bool_str(inputs[key])
    if inputs.get("idleTimeout") is not None:
        attributes["idle_timeout.timeout_seconds"] = str(_int(inputs["idleTimeout"]))
    if inputs.get("desyncMitigationMode"):
        attributes["routing.http.desync_mitigation_mode"] = str(inputs["desyncMitigationMode"])
    if inputs.get("xffHeaderProcessingMode"):
        attributes["routing.http.xff_header_processing.mode"] = str(
            inputs["xffHeaderProcessingMode"]
        )
    return attributes


def create_load_balancer(ctx: Context, inputs: Inputs) -> Created:
    """An ALB or NLB: scheme, subnets, groups, then its attributes (logs, protections)."""
    elbv2 = ctx.client("elbv2")
    name = _auto_name(ctx, inputs, limit=32)
    mappings = [
        _drop_none(
            {
                "SubnetId": m["subnetId"],
                "AllocationId": m.get("allocationId"),
                "PrivateIPv4Address": m.get("privateIpv4Address"),
            }
        )
        for m in inputs.get("subnetMappings") or []
    ]
    params = _drop_none(
        {
            "Name": name,
            "Subnets": inputs.get("subnets") or None,
            "SubnetMappings": mappings or None,
            "SecurityGroups": inputs.get("securityGroups") or None,
            "Scheme": "internal" if inputs.get("internal") else "internet-facing",
            "Type": inputs.get("loadBalancerType") or "application",
            "IpAddressType": inputs.get("ipAddressType"),
            "Tags": _tag_list(inputs) or None,
        }
    )
    balancer = elbv2.create_load_balancer(**params)["LoadBalancers"][0]
    arn = balancer["LoadBalancerArn"]
    if balancer.get("Type") == "network" and ":loadbalancer/app/" in arn:
        ctx.note(
            "moto names a network load balancer app/ in its ARN (AWS: net/): arnSuffix differs"
        )
    _modify_attributes(
        ctx,
        lambda attrs: elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=attrs),
        _load_balancer_attributes(inputs),
        "load balancer",
    )
    return arn, {
        "name": name,
        "arn": arn,
        "arnSuffix": _arn_suffix(arn),
        "dnsName": balancer["DNSName"],
        "zoneId": balancer.get("CanonicalHostedZoneId", ""),
        "vpcId": balancer.get("VpcId", ""),
    }


def _health_check(check: Inputs) -> dict[str, Any]:
    """A target group's ``healthCheck`` as CreateTargetGroup parameters."""
    return _drop_none(
        {
            "HealthCheckEnabled": check.get("enabled"),
            "HealthCheckPath": check.get("path"),
            "HealthCheckPort": check.get("port"),
            "HealthCheckProtocol": check.get("protocol"),
            "HealthCheckIntervalSeconds": _int(check["interval"])
            if check.get("interval")
            else None,
            "HealthCheckTimeoutSeconds": _int(check["timeout"]) if check.get("timeout") else None,
            "HealthyThresholdCount": (
                _int(check["healthyThreshold"]) if check.get("healthyThreshold") else None
            ),
            "UnhealthyThresholdCount": (
                _int(check["unhealthyThreshold"]) if check.get("unhealthyThreshold") else None
            ),
            "Matcher": {"HttpCode": check["matcher"]} if check.get("matcher") else None,
        }
    )


def _target_group_attributes(inputs: Inputs) -> dict[str, str]:
    """The target group attributes its inputs set."""
    attributes: dict[str, str] = {}
    if inputs.get("deregistrationDelay") is not None:
        attributes["deregistration_delay.timeout_seconds"] = str(
            _int(inputs["deregistrationDelay"])
        )
    if inputs.get("preserveClientIp") is not None:
        attributes["preserve_client_ip.enabled"] = _bool_str(inputs["preserveClientIp"])
    if inputs.get("proxyProtocolV2") is not None:
        attributes["proxy_protocol_v2.enabled"] = _bool_str(inputs["proxyProtocolV2"])
    if inputs.get("slowStart"):
        attributes["slow_start.duration_seconds"] = str(_int(inputs["slowStart"]))
    if inputs.get("loadBalancingAlgorithmType"):
        attributes["load_balancing.algorithm.type"] = str(inputs["loadBalancingAlgorithmType"])
    stickiness = inputs.get("stickiness") or {}
    if stickiness:
        attributes["stickiness.enabled"] = _bool_str(stickiness.get("enabled", True))
        attributes["stickiness.type"] = str(stickiness["type"])
    return attributes


def create_target_group(ctx: Context, inputs: Inputs) -> Created:
    """A target group with its health check and attributes; the id is its ARN."""
    elbv2 = ctx.client("elbv2")
    name = _auto_name(ctx, inputs, limit=32)
    params = _drop_none(
        {
            "Name": name,
            "Protocol": inputs.get("protocol"),
            "ProtocolVersion": inputs.get("protocolVersion"),
            "Port": _int(inputs["port"]) if inputs.get("port") is not None else None,
            "VpcId": inputs.get("vpcId"),
            "TargetType": inputs.get("targetType"),
            "IpAddressType": inputs.get("ipAddressType"),
            "Tags": _tag_list(inputs) or None,
            **_health_check(inputs.get("healthCheck") or {}),
        }
    )
    group = elbv2.create_target_group(**params)["TargetGroups"][0]
    arn = group["TargetGroupArn"]
    _modify_attributes(
        ctx,
        lambda attrs: elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=attrs),
        _target_group_attributes(inputs),
        "target group",
    )
    return arn, {
        "name": name,
        "arn": arn,
        "arnSuffix": arn.split(":", 5)[5],
        "loadBalancerArns": list(group.get("LoadBalancerArns") or []),
    }


def _action(action: Inputs) -> dict[str, Any]:
    """A listener's default action (forward, fixed response or redirect)."""
    kind = action["type"]
    result: dict[str, Any] = {"Type": kind}
    if action.get("order") is not None:
        result["Order"] = _int(action["order"])
    if kind == "forward":
        forward = action.get("forward") or {}
        if action.get("targetGroupArn"):
            result["TargetGroupArn"] = action["targetGroupArn"]
        if forward:
            result["ForwardConfig"] = {
                "TargetGroups": [
                    _drop_none(
                        {
                            "TargetGroupArn": g["arn"],
                            "Weight": _int(g["weight"]) if g.get("weight") is not None else None,
                        }
                    )
                    for g in forward.get("targetGroups") or []
                ]
            }
    elif kind == "fixed-response":
        fixed = action["fixedResponse"]
        result["FixedResponseConfig"] = _drop_none(
            {
                "StatusCode": fixed.get("statusCode"),
                "ContentType": fixed.get("contentType"),
                "MessageBody": fixed.get("messageBody"),
            }
        )
    elif kind == "redirect":
        redirect = action["redirect"]
        result["RedirectConfig"] = _drop_none(
            {
                "Protocol": redirect.get("protocol"),
                "Port": redirect.get("port"),
                "Host": redirect.get("host"),
                "Path": redirect.get("path"),
                "Query": redirect.get("query"),
                "StatusCode": redirect["statusCode"],
            }
        )
    else:
        raise NotEmulated(f"listener action type {kind!r} is not mapped by the sandbox")
    return result


_LISTENER_ATTRIBUTES = {
    "routingHttpResponseServerEnabled": "routing.http.response.server.enabled",
    "routingHttpResponseStrictTransportSecurityHeaderValue": (
        "routing.http.response.strict_transport_security.header_value"
    ),
    "routingHttpResponseXContentTypeOptionsHeaderValue": (
        "routing.http.response.x_content_type_options.header_value"
    ),
    "routingHttpResponseXFrameOptionsHeaderValue": (
        "routing.http.response.x_frame_options.header_value"
    ),
    "routingHttpResponseContentSecurityPolicyHeaderValue": (
        "routing.http.response.content_security_policy.header_value"
    ),
    "tcpIdleTimeoutSeconds": "tcp.idle_timeout.seconds",
}


def _check_certificate(ctx: Context, certificate: str) -> None:
    """Refuses, as AWS would, a listener whose certificate is not in the emulator's ACM."""
    try:
        ctx.client("acm").describe_certificate(CertificateArn=certificate)
    except ClientError as missing:
        raise NotEmulated(
            f"listener certificate {certificate} does not exist in the emulator's ACM (AWS "
            "refuses such a listener too): import the certificate into the sandbox's ACM and "
            "set the stack's certificate ARN to it"
        ) from missing


def create_listener(ctx: Context, inputs: Inputs) -> Created:
    """A listener: protocol, port, TLS policy, certificate, default actions, response headers.

    moto accepts a listener's mutual authentication (trust store, verify mode) and drops it, so
    the listener is created and the missing client certificate check is noted.
    """
    elbv2 = ctx.client("elbv2")
    if inputs.get("certificateArn"):
        _check_certificate(ctx, str(inputs["certificateArn"]))
    params = _drop_none(
        {
            "LoadBalancerArn": inputs["loadBalancerArn"],
            "Protocol": inputs.get("protocol"),
            "Port": _int(inputs["port"]) if inputs.get("port") is not None else None,
            "SslPolicy": inputs.get("sslPolicy"),
            "Certificates": (
                [{"CertificateArn": inputs["certificateArn"]}]
                if inputs.get("certificateArn")
                else None
            ),
            "AlpnPolicy": [inputs["alpnPolicy"]] if inputs.get("alpnPolicy") else None,
            "DefaultActions": [_action(a) for a in inputs.get("defaultActions") or []],
            "Tags": _tag_list(inputs) or None,
        }
    )
    mutual = inputs.get("mutualAuthentication") or {}
    if mutual:
        params["MutualAuthentication"] = _drop_none(
            {
                "Mode": mutual.get("mode"),
                "TrustStoreArn": mutual.get("trustStoreArn"),
                "IgnoreClientCertificateExpiry": mutual.get("ignoreClientCertificateExpiry"),
                "AdvertiseTrustStoreCaNames": mutual.get("advertiseTrustStoreCaNames"),
            }
        )
    listener = elbv2.create_listener(**params)["Listeners"][0]
    arn = listener["ListenerArn"]
    if mutual and mutual.get("mode", "off") != "off" and not listener.get("MutualAuthentication"):
        ctx.note(
            f"mutual TLS (mode {mutual.get('mode')}) not enforced by moto: the listener's "
            "MutualAuthentication is accepted and dropped, and moto has no trust stores"
        )
    attributes = {
        api: (_bool_str(inputs[key]) if isinstance(inputs[key], bool) else str(inputs[key]))
        for key, api in _LISTENER_ATTRIBUTES.items()
        if inputs.get(key) is not None
    }
    if "tcp.idle_timeout.seconds" in attributes:
        attributes["tcp.idle_timeout.seconds"] = str(_int(inputs["tcpIdleTimeoutSeconds"]))
    _modify_attributes(
        ctx,
        lambda attrs: elbv2.modify_listener_attributes(ListenerArn=arn, Attributes=attrs),
        attributes,
        "listener",
    )
    if attributes:
        ctx.note("listener response header attributes stored; moto serves no HTTP traffic")
    return arn, {"arn": arn}


def create_trust_store(ctx: Context, inputs: Inputs) -> Created:
    """Trust stores cannot be represented: moto's ELBv2 has no trust store API."""
    raise NotEmulated(
        "moto's ELBv2 has no trust store API (CreateTrustStore is not implemented): the "
        "listener's client certificate check cannot be emulated"
    )


def create_trust_store_revocation(ctx: Context, inputs: Inputs) -> Created:
    """Trust store revocations cannot be represented: moto's ELBv2 has no trust store API."""
    raise NotEmulated(
        "moto's ELBv2 has no trust store API (AddTrustStoreRevocations is not implemented)"
    )


HANDLERS: dict[str, Handler] = {
    "aws:ec2/vpc:Vpc": create_vpc,
    "aws:ec2/subnet:Subnet": create_subnet,
    "aws:ec2/routeTable:RouteTable": create_route_table,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": create_route_table_association,
    "aws:ec2/networkAcl:NetworkAcl": create_network_acl,
    "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl": create_default_network_acl,
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": create_default_security_group,
    "aws:ec2/securityGroup:SecurityGroup": create_security_group,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": create_security_group_ingress_rule,
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": create_security_group_egress_rule,
    "aws:ec2/vpcEndpoint:VpcEndpoint": create_vpc_endpoint,
    "aws:ec2/flowLog:FlowLog": create_flow_log,
    "aws:cloudwatch/logGroup:LogGroup": create_log_group,
    "aws:cloudwatch/logStream:LogStream": create_log_stream,
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": create_log_metric_filter,
    "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter": create_log_subscription_filter,
    "aws:cloudwatch/metricAlarm:MetricAlarm": create_metric_alarm,
    "aws:cloudwatch/eventRule:EventRule": create_event_rule,
    "aws:cloudwatch/eventTarget:EventTarget": create_event_target,
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": create_firehose_delivery_stream,
    "aws:cloudtrail/trail:Trail": create_trail,
    "aws:lambda/layerVersion:LayerVersion": create_layer_version,
    "aws:lambda/function:Function": create_function,
    "aws:lambda/eventSourceMapping:EventSourceMapping": create_event_source_mapping,
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": (
        create_function_event_invoke_config
    ),
    "aws:lambda/permission:Permission": create_permission,
    "aws:lambda/functionUrl:FunctionUrl": create_function_url,
    "aws:ecr/repository:Repository": create_repository,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": create_lifecycle_policy,
    "aws:ecs/cluster:Cluster": create_cluster,
    "aws:ecs/taskDefinition:TaskDefinition": create_task_definition,
    "aws:ecs/service:Service": create_service,
    "aws:lb/loadBalancer:LoadBalancer": create_load_balancer,
    "aws:lb/targetGroup:TargetGroup": create_target_group,
    "aws:lb/listener:Listener": create_listener,
    "aws:lb/trustStore:TrustStore": create_trust_store,
    "aws:lb/trustStoreRevocation:TrustStoreRevocation": create_trust_store_revocation,
}
