"""PrivateNetwork: a VPC with no route to the internet; AWS APIs are reached through endpoints."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.logs import encrypted_log_group
from infra.iam_documents import (
    GATEWAY_ENDPOINT_SERVICES,
    INTERFACE_ENDPOINT_SERVICES,
    Account,
    endpoint_policy,
    flow_logs_role_policy,
    service_trust_policy,
)

TIERS: tuple[str, ...] = ("edge", "app", "data")
# Ports the edge tier admits from client networks: DICOM TLS (PS3.15 Annex B) and HTTPS (DICOMweb).
EDGE_PORTS: tuple[int, ...] = (443, 2762)
ANYWHERE = "0.0.0.0/0"


def subnet_layout(vpc_cidr: str, zones: tuple[str, ...]) -> dict[str, list[tuple[str, str]]]:
    """Split the VPC into four equal tier blocks (one spare) and each block into four zone blocks.

    Returns tier -> [(zone, cidr)], stable for a given CIDR and zone list.
    """
    vpc = ipaddress.IPv4Network(vpc_cidr)
    tier_blocks = list(vpc.subnets(prefixlen_diff=2))
    layout: dict[str, list[tuple[str, str]]] = {}
    for tier, block in zip(TIERS, tier_blocks, strict=False):
        zone_blocks = list(block.subnets(prefixlen_diff=2))
        layout[tier] = [(zone, str(zone_blocks[i])) for i, zone in enumerate(zones)]
    return layout


@dataclass(frozen=True)
class NaclRule:
    """One allow rule of a network ACL."""

    rule_no: int
    protocol: str
    cidr_block: str
    from_port: int
    to_port: int


def nacl_rules(
    tier: str, vpc_cidr: str, client_cidrs: tuple[str, ...]
) -> tuple[list[NaclRule], list[NaclRule]]:
    """(ingress, egress) NACL rules of a tier. NACLs are stateless: return traffic needs rules."""
    ingress = [NaclRule(100, "-1", vpc_cidr, 0, 0)]
    egress = [NaclRule(100, "-1", vpc_cidr, 0, 0)]
    if tier in ("app", "data"):
        # The only non-local routes lead to the S3 and DynamoDB gateway endpoints, whose public
        # prefix lists a NACL cannot name; with no internet or NAT gateway nothing else is reached.
        egress.append(NaclRule(200, "tcp", ANYWHERE, 443, 443))
        ingress.append(NaclRule(200, "tcp", ANYWHERE, 1024, 65535))
    if tier == "edge":
        for i, cidr in enumerate(client_cidrs):
            for j, port in enumerate(EDGE_PORTS):
                ingress.append(NaclRule(300 + 10 * i + j, "tcp", cidr, port, port))
            egress.append(NaclRule(300 + 10 * i, "tcp", cidr, 1024, 65535))
    return ingress, egress


@dataclass(frozen=True)
class PrivateNetworkArgs:
    """Addressing and logging of the private network."""

    account: Account
    name_prefix: str
    vpc_cidr: str
    availability_zones: tuple[str, ...]
    allowed_client_cidrs: tuple[str, ...]
    logs_key: aws.kms.Key
    log_retention_days: int
    # The stack's permissions boundary (infra/components/identity.py): every role carries it.
    permissions_boundary: pulumi.Input[str]


class PrivateNetwork(pulumi.ComponentResource):
    """Private subnets per tier, VPC endpoints, flow logs, stripped defaults and NACLs."""

    vpc: aws.ec2.Vpc
    subnet_ids: dict[str, list[pulumi.Output[str]]]
    endpoint_security_group: aws.ec2.SecurityGroup
    # service -> prefix list of the gateway endpoint: the only security-group target for S3/DynamoDB
    gateway_prefix_list_ids: dict[str, pulumi.Output[str]]
    flow_log_group: aws.cloudwatch.LogGroup
    # Security log groups of the component (the audit ships each to the SIEM).
    log_groups: dict[str, aws.cloudwatch.LogGroup]

    def __init__(
        self, name: str, args: PrivateNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:network:PrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = args.account

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            # Interface endpoints answer through private DNS names, which need both settings.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": f"{args.name_prefix}-vpc"},
            opts=child,
        )
        # Taking over the default security group and NACL with no rules removes every rule.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=self.vpc.id,
            tags={"Name": f"{args.name_prefix}-default-deny"},
            opts=child,
        )
        aws.ec2.DefaultNetworkAcl(
            f"{name}-default-nacl",
            default_network_acl_id=self.vpc.default_network_acl_id,
            tags={"Name": f"{args.name_prefix}-default-deny"},
            opts=child,
        )

        layout = subnet_layout(args.vpc_cidr, args.availability_zones)
        self.subnet_ids = {}
        route_tables: list[aws.ec2.RouteTable] = []
        for tier, placements in layout.items():
            table = aws.ec2.RouteTable(
                f"{name}-{tier}-routes",
                vpc_id=self.vpc.id,
                tags={"Name": f"{args.name_prefix}-{tier}", "tier": tier},
                opts=child,
            )
            route_tables.append(table)
            ids: list[pulumi.Output[str]] = []
            for zone, cidr in placements:
                subnet = aws.ec2.Subnet(
                    f"{name}-{tier}-{zone}",
                    vpc_id=self.vpc.id,
                    cidr_block=cidr,
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags={"Name": f"{args.name_prefix}-{tier}-{zone}", "tier": tier},
                    opts=child,
                )
                aws.ec2.RouteTableAssociation(
                    f"{name}-{tier}-{zone}-routes",
                    subnet_id=subnet.id,
                    route_table_id=table.id,
                    opts=child,
                )
                ids.append(subnet.id)
            self.subnet_ids[tier] = ids
            ingress, egress = nacl_rules(tier, args.vpc_cidr, args.allowed_client_cidrs)
            aws.ec2.NetworkAcl(
                f"{name}-{tier}-nacl",
                vpc_id=self.vpc.id,
                subnet_ids=ids,
                ingress=[
                    aws.ec2.NetworkAclIngressArgs(action="allow", **vars(rule)) for rule in ingress
                ],
                egress=[
                    aws.ec2.NetworkAclEgressArgs(action="allow", **vars(rule)) for rule in egress
                ],
                tags={"Name": f"{args.name_prefix}-{tier}", "tier": tier},
                opts=child,
            )

        self.endpoint_security_group = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=self.vpc.id,
            description="HTTPS from inside the VPC to the AWS API endpoints",
            ingress=[
                {
                    "description": "HTTPS from the VPC",
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": [args.vpc_cidr],
                }
            ],
            # Endpoints only answer; stateful return traffic needs no egress rule.
            egress=[],
            tags={"Name": f"{args.name_prefix}-endpoints"},
            opts=child,
        )
        self.gateway_prefix_list_ids = {}
        for service in GATEWAY_ENDPOINT_SERVICES:
            gateway = aws.ec2.VpcEndpoint(
                f"{name}-{service}-endpoint",
                vpc_id=self.vpc.id,
                service_name=account.endpoint_service(service),
                vpc_endpoint_type="Gateway",
                route_table_ids=[t.id for t in route_tables],
                policy=json.dumps(endpoint_policy(account, service)),
                tags={"Name": f"{args.name_prefix}-{service}"},
                opts=child,
            )
            self.gateway_prefix_list_ids[service] = gateway.prefix_list_id
        for service in INTERFACE_ENDPOINT_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}-endpoint",
                vpc_id=self.vpc.id,
                service_name=account.endpoint_service(service),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=self.subnet_ids["app"],
                security_group_ids=[self.endpoint_security_group.id],
                policy=json.dumps(endpoint_policy(account, service)),
                tags={"Name": f"{args.name_prefix}-{service}"},
                opts=child,
            )

        self.flow_log_group = encrypted_log_group(
            f"{name}-flow-logs",
            group_name=f"/{args.name_prefix}/vpc/flow-logs",
            logs_key=args.logs_key,
            retention_days=args.log_retention_days,
            opts=child,
        )
        self.log_groups = {"flow-logs": self.flow_log_group}
        flow_role = aws.iam.Role(
            f"{name}-flow-logs-role",
            name=f"{args.name_prefix}-flow-logs",
            description="VPC Flow Logs delivery to the stack's flow-log group",
            permissions_boundary=args.permissions_boundary,
            assume_role_policy=json.dumps(
                service_trust_policy(
                    "vpc-flow-logs.amazonaws.com",
                    account,
                    source_arn_like=(
                        f"arn:{account.partition}:ec2:{account.region}:"
                        f"{account.account_id}:vpc-flow-log/*"
                    ),
                )
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=flow_role.id,
            policy=self.flow_log_group.arn.apply(
                lambda arn: json.dumps(flow_logs_role_policy(account, arn))
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=flow_role.arn,
            max_aggregation_interval=60,
            tags={"Name": f"{args.name_prefix}-flow-log"},
            opts=child,
        )
        self.register_outputs(
            {
                "vpcId": self.vpc.id,
                "subnetIds": self.subnet_ids,
                "endpointSecurityGroupId": self.endpoint_security_group.id,
                "gatewayPrefixListIds": self.gateway_prefix_list_ids,
            }
        )
