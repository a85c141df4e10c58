"""Network policies: what each refuses, and the variants of the stack that open the network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.policies.conftest import Judge
from tests.policies.mutations import Mutation, Snapshot, statement

VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
SUBNET = "aws:ec2/subnet:Subnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
IGW = "aws:ec2/internetGateway:InternetGateway"
VPC_ID = "vpc-2183149924740027e"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
PREFIX_LIST = "aws:ec2/managedPrefixList:ManagedPrefixList"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ALB_SG = "sg-a2cea93218bc4cc3d"


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _flow_log_removed(s: Snapshot) -> None:
    s.remove(FLOW_LOG, "network-flow-log")


def _flow_log_rejects_only(s: Snapshot) -> None:
    s.props(FLOW_LOG, "network-flow-log")["trafficType"] = "REJECT"


def _internet_gateway(s: Snapshot) -> None:
    s.add(IGW, "network-igw", {"vpcId": VPC_ID, "tags": {"Name": "pacs-dev-igw"}})


def _public_nat_gateway(s: Snapshot) -> None:
    s.add(
        "aws:ec2/natGateway:NatGateway",
        "network-nat",
        {"subnetId": "network-edge-us-east-1a-4f70cecf", "allocationId": "eipalloc-0123456789"},
    )


def _route_to_igw(s: Snapshot) -> None:
    s.add(
        "aws:ec2/route:Route",
        "network-app-default-route",
        {
            "routeTableId": "network-app-routes-db31148d",
            "destinationCidrBlock": "0.0.0.0/0",
            "gatewayId": "igw-0a1b2c3d4e5f60718",
        },
    )


def _endpoints_open_to_world(s: Snapshot) -> None:
    s.props(SECURITY_GROUP, "network-endpoints-sg")["ingress"][0]["cidrBlocks"] = ["0.0.0.0/0"]


def _alb_from_anywhere(s: Snapshot) -> None:
    s.add(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "edge-alb-from-anywhere",
        {
            "securityGroupId": "sg-a2cea93218bc4cc3d",
            "ipProtocol": "tcp",
            "fromPort": 443.0,
            "toPort": 443.0,
            "cidrIpv4": "0.0.0.0/0",
        },
    )


def _nlb_from_ipv6_anywhere(s: Snapshot) -> None:
    s.add(
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "edge-nlb-from-ipv6-anywhere",
        {
            "type": "ingress",
            "securityGroupId": "sg-7b88e1a4d6fa022ec",
            "protocol": "tcp",
            "fromPort": 2762.0,
            "toPort": 2762.0,
            "ipv6CidrBlocks": ["::/0"],
        },
    )


def _subnet_public_ip(s: Snapshot) -> None:
    s.props(SUBNET, "network-edge-us-east-1a")["mapPublicIpOnLaunch"] = True


def _default_sg_allows_all(s: Snapshot) -> None:
    s.props(DEFAULT_SG, "network-default-sg")["ingress"] = [
        {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "self": True}
    ]


def _default_sg_not_adopted(s: Snapshot) -> None:
    s.remove(DEFAULT_SG, "network-default-sg")


def _endpoint_without_policy(s: Snapshot) -> None:
    del s.props(ENDPOINT, "network-kms-endpoint")["policy"]


def _endpoint_any_account(s: Snapshot) -> None:
    with s.policy(ENDPOINT, "network-sqs-endpoint") as doc:
        del statement(doc, "OnlyThisAccount")["Condition"]


def _endpoint_negated_condition(s: Snapshot) -> None:
    with s.policy(ENDPOINT, "network-logs-endpoint") as doc:
        s_ = statement(doc, "OnlyThisAccount")
        s_["Condition"] = {"StringNotEquals": s_["Condition"]["StringEquals"]}


def _endpoint_wildcard_action(s: Snapshot) -> None:
    with s.policy(ENDPOINT, "network-s3-endpoint") as doc:
        statement(doc, "OnlyThisAccount")["Action"] = "s3:*"


def _s3_endpoint_any_bucket(s: Snapshot) -> None:
    with s.policy(ENDPOINT, "network-s3-endpoint") as doc:
        del statement(doc, "OnlyThisAccount")["Condition"]["StringEquals"]["aws:ResourceAccount"]


def _alb_ingress(name: str, **source: Any) -> Callable[[Snapshot], None]:
    def apply(s: Snapshot) -> None:
        s.add(
            INGRESS_RULE,
            name,
            {
                "securityGroupId": ALB_SG,
                "ipProtocol": "tcp",
                "fromPort": 443.0,
                "toPort": 443.0,
                **source,
            },
        )

    return apply


_alb_from_public_range = _alb_ingress("edge-alb-from-public", cidrIpv4="52.0.0.0/8")
_alb_from_outside_prefix_list = _alb_ingress("edge-alb-from-list", prefixListId="pl-0a1b2c3d")


def _alb_from_public_prefix_list(s: Snapshot) -> None:
    s.add(
        PREFIX_LIST,
        "edge-clients",
        {
            "name": "pacs-dev-clients",
            "addressFamily": "IPv4",
            "maxEntries": 5.0,
            "entries": [{"cidr": "10.40.0.0/16"}, {"cidr": "52.0.0.0/8"}],
        },
    )
    _alb_ingress("edge-alb-from-clients", prefixListId="pl-0123456789abcdef0")(s)


def _flow_log_rejects_only_and_copy_to_attacker(s: Snapshot) -> None:
    s.props(FLOW_LOG, "network-flow-log")["trafficType"] = "REJECT"
    s.add(
        FLOW_LOG,
        "network-flow-log-copy",
        {
            "vpcId": VPC_ID,
            "trafficType": "ALL",
            "logDestinationType": "s3",
            "logDestination": "arn:aws:s3:::attacker-bucket",
        },
    )


def _flow_log_copy_to_foreign_group(s: Snapshot) -> None:
    s.add(
        FLOW_LOG,
        "network-flow-log-copy",
        {
            "vpcId": VPC_ID,
            "trafficType": "ALL",
            "logDestinationType": "cloud-watch-logs",
            "logDestination": "arn:aws:logs:us-east-1:123456789012:log-group:/elsewhere/flows",
            "iamRoleArn": "arn:aws:iam::123456789012:role/pacs-dev-flow-logs",
        },
    )


def _default_route_through_peering(s: Snapshot) -> None:
    s.add(
        ROUTE,
        "network-app-peer-default-route",
        {
            "routeTableId": "network-app-routes-db31148d",
            "destinationCidrBlock": "0.0.0.0/0",
            "vpcPeeringConnectionId": "pcx-0a1b2c3d4e5f60718",
        },
    )


def _ipv6_default_route_through_interface(s: Snapshot) -> None:
    s.add(
        ROUTE,
        "network-app-eni-default-route",
        {
            "routeTableId": "network-app-routes-db31148d",
            "destinationIpv6CidrBlock": "::/0",
            "networkInterfaceId": "eni-0a1b2c3d4e5f60718",
        },
    )


def _inline_default_route_through_transit_gateway(s: Snapshot) -> None:
    s.props(ROUTE_TABLE, "network-data-routes")["routes"] = [
        {"cidrBlock": "0.0.0.0/0", "transitGatewayId": "tgw-0a1b2c3d4e5f60718"}
    ]


def _third_party_endpoint(s: Snapshot) -> None:
    s.props("aws:ec2/vpcEndpoint:VpcEndpoint", "network-sts-endpoint")["serviceName"] = (
        "com.vendor.vpce.us-east-1.vpce-svc-0123456789abcdef0"
    )


def _flow_log_without_addresses(s: Snapshot) -> None:
    s.props("aws:ec2/flowLog:FlowLog", "network-flow-log")["logFormat"] = "${version} ${action}"


MUTATIONS = [
    Mutation(
        "ec2-flow-log-removed",
        "aws-ec2-vpc-require-flow-logs",
        "the VPC's flow log removed",
        _flow_log_removed,
    ),
    Mutation(
        "ec2-flow-log-rejects-only",
        "aws-ec2-vpc-require-flow-logs",
        "the flow log records rejected traffic only",
        _flow_log_rejects_only,
    ),
    Mutation(
        "ec2-internet-gateway",
        "aws-ec2-vpc-no-internet-gateway",
        "an internet gateway in the VPC",
        _internet_gateway,
    ),
    Mutation(
        "ec2-public-nat-gateway",
        "aws-ec2-vpc-no-internet-gateway",
        "a public NAT gateway in an edge subnet",
        _public_nat_gateway,
    ),
    Mutation(
        "ec2-route-to-internet-gateway",
        "aws-ec2-vpc-no-internet-gateway",
        "the app tier routes 0.0.0.0/0 to an internet gateway made outside the stack",
        _route_to_igw,
    ),
    Mutation(
        "ec2-endpoints-sg-open-to-world",
        "aws-ec2-security-group-no-public-ingress",
        "the endpoints' security group admits 0.0.0.0/0",
        _endpoints_open_to_world,
    ),
    Mutation(
        "ec2-alb-ingress-from-anywhere",
        "aws-ec2-security-group-no-public-ingress",
        "HTTPS to the ALB from 0.0.0.0/0",
        _alb_from_anywhere,
    ),
    Mutation(
        "ec2-nlb-ingress-from-ipv6-anywhere",
        "aws-ec2-security-group-no-public-ingress",
        "DICOM TLS to the NLB from ::/0",
        _nlb_from_ipv6_anywhere,
    ),
    Mutation(
        "ec2-subnet-public-ip",
        "aws-ec2-subnet-no-public-ip",
        "an edge subnet maps public IPs on launch",
        _subnet_public_ip,
    ),
    Mutation(
        "ec2-default-sg-allows-all",
        "aws-ec2-vpc-default-security-group-closed",
        "the default security group admits all traffic from itself",
        _default_sg_allows_all,
    ),
    Mutation(
        "ec2-default-sg-not-adopted",
        "aws-ec2-vpc-default-security-group-closed",
        "the default security group left with AWS's rules",
        _default_sg_not_adopted,
    ),
    Mutation(
        "ec2-endpoint-without-policy",
        "aws-ec2-vpc-endpoint-require-policy",
        "the KMS endpoint admits every action of every account",
        _endpoint_without_policy,
    ),
    Mutation(
        "ec2-endpoint-any-account",
        "aws-ec2-vpc-endpoint-require-policy",
        "the SQS endpoint admits principals of any account",
        _endpoint_any_account,
    ),
    Mutation(
        "ec2-endpoint-negated-account-condition",
        "aws-ec2-vpc-endpoint-require-policy",
        "the Logs endpoint admits every account but this one",
        _endpoint_negated_condition,
    ),
    Mutation(
        "ec2-endpoint-wildcard-action",
        "aws-ec2-vpc-endpoint-require-policy",
        "the S3 endpoint admits s3:*",
        _endpoint_wildcard_action,
    ),
    Mutation(
        "ec2-s3-endpoint-any-bucket",
        "aws-ec2-vpc-endpoint-require-policy",
        "the S3 endpoint lets data out to buckets of other accounts",
        _s3_endpoint_any_bucket,
    ),
    Mutation(
        "ec2-alb-ingress-from-public-range",
        "aws-ec2-security-group-no-public-ingress",
        "HTTPS to the ALB from the public range 52.0.0.0/8",
        _alb_from_public_range,
    ),
    Mutation(
        "ec2-alb-ingress-from-public-prefix-list",
        "aws-ec2-security-group-prefix-list-ingress-private",
        "HTTPS to the ALB from a stack prefix list holding 52.0.0.0/8",
        _alb_from_public_prefix_list,
    ),
    Mutation(
        "ec2-alb-ingress-from-outside-prefix-list",
        "aws-ec2-security-group-prefix-list-ingress-private",
        "HTTPS to the ALB from a prefix list managed outside the stack",
        _alb_from_outside_prefix_list,
    ),
    Mutation(
        "ec2-flow-log-rejects-only-all-to-attacker-bucket",
        "aws-ec2-vpc-require-flow-logs",
        "the flow log records rejects only, a second one sends ALL to s3://attacker-bucket",
        _flow_log_rejects_only_and_copy_to_attacker,
    ),
    Mutation(
        "ec2-flow-log-copy-to-foreign-log-group",
        "aws-ec2-vpc-require-flow-logs",
        "a second flow log sends ALL traffic to a log group not in the stack",
        _flow_log_copy_to_foreign_group,
    ),
    Mutation(
        "ec2-default-route-through-peering",
        "aws-ec2-vpc-no-internet-gateway",
        "the app tier routes 0.0.0.0/0 through a VPC peering connection",
        _default_route_through_peering,
    ),
    Mutation(
        "ec2-ipv6-default-route-through-interface",
        "aws-ec2-vpc-no-internet-gateway",
        "the app tier routes ::/0 through a network interface",
        _ipv6_default_route_through_interface,
    ),
    Mutation(
        "ec2-inline-default-route-through-transit-gateway",
        "aws-ec2-vpc-no-internet-gateway",
        "the data tier's route table routes 0.0.0.0/0 through a transit gateway",
        _inline_default_route_through_transit_gateway,
    ),
    Mutation(
        "ec2-endpoint-to-a-third-party",
        "aws-ec2-vpc-endpoint-require-policy",
        "an interface endpoint to a third party's PrivateLink service",
        _third_party_endpoint,
    ),
    Mutation(
        "ec2-flow-log-without-addresses",
        "aws-ec2-vpc-require-flow-logs",
        "flow log format drops addresses and ports",
        _flow_log_without_addresses,
    ),
]


def test_the_ecr_layer_exemption_covers_only_reads_of_that_bucket(
    snapshot: Snapshot, judge: Judge
) -> None:
    # The default S3 endpoint admits anyone's s3:GetObject on the AWS-owned ECR layer bucket.
    assert not judge(snapshot, "aws-ec2-vpc-endpoint-require-policy").findings
    with snapshot.policy(ENDPOINT, "network-s3-endpoint") as doc:
        statement(doc, "EcrImageLayers")["Resource"] = "arn:aws:s3:::attacker-drop-bucket/*"
    findings = judge(snapshot, "aws-ec2-vpc-endpoint-require-policy").findings
    assert [_name(f.urn) for f in findings] == ["network-s3-endpoint", "network-s3-endpoint"]
    assert "statement EcrImageLayers must require aws:PrincipalAccount" in findings[0].message
    with snapshot.policy(ENDPOINT, "network-s3-endpoint") as doc:
        layers = statement(doc, "EcrImageLayers")
        layers["Resource"] = "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/*"
        layers["Action"] = ["s3:GetObject", "s3:PutObject"]
    assert judge(snapshot, "aws-ec2-vpc-endpoint-require-policy").blocking


def test_internet_gateway_findings_name_the_vpc_and_the_gateway(
    plan_json_with_dependencies: dict[str, Any], judge: Judge
) -> None:
    snapshot = Snapshot(plan_json_with_dependencies)
    vpc_urn = snapshot.entry(VPC, "network-vpc")["urn"]
    _internet_gateway(snapshot)
    snapshot.entry(IGW, "network-igw")["propertyDependencies"] = {"vpcId": [vpc_urn]}
    findings = judge(snapshot, "aws-ec2-vpc-no-internet-gateway").findings
    assert [f.urn for f in findings] == [vpc_urn]
    assert "VPC pacs-dev-vpc: internet gateway network-igw must be removed" in findings[0].message


def test_internet_gateway_allowed_by_setting(snapshot: Snapshot, judge: Judge) -> None:
    _internet_gateway(snapshot)
    config = {"aws-ec2-vpc-no-internet-gateway": {"allowInternetGateway": True}}
    assert not judge(snapshot, "aws-ec2-vpc-no-internet-gateway", config=config).findings


def test_private_nat_gateway_is_not_a_path_to_the_internet(
    snapshot: Snapshot, judge: Judge
) -> None:
    _public_nat_gateway(snapshot)
    snapshot.props("aws:ec2/natGateway:NatGateway", "network-nat")["connectivityType"] = "private"
    assert not judge(snapshot, "aws-ec2-vpc-no-internet-gateway").findings


def test_split_internet_ranges_are_refused_but_client_networks_pass(
    snapshot: Snapshot, judge: Judge
) -> None:
    rules = snapshot.props(SECURITY_GROUP, "network-endpoints-sg")["ingress"]
    rules[0]["cidrBlocks"] = ["10.0.0.0/8", "172.16.0.0/12"]
    assert not judge(snapshot, "aws-ec2-security-group-no-public-ingress").findings
    rules[0]["cidrBlocks"] = ["0.0.0.0/1", "128.0.0.0/1"]
    findings = judge(snapshot, "aws-ec2-security-group-no-public-ingress").findings
    assert len(findings) == 2
    assert all(_name(f.urn) == "network-endpoints-sg" for f in findings)


def test_a_second_vpc_without_flow_logs_is_named(
    plan_json_with_dependencies: dict[str, Any], judge: Judge
) -> None:
    snapshot = Snapshot(plan_json_with_dependencies)
    snapshot.add(VPC, "spare-vpc", {"cidrBlock": "10.30.0.0/16", "tags": {"Name": "spare"}})
    findings = judge(snapshot, "aws-ec2-vpc-require-flow-logs").findings
    assert [(_name(f.urn), f.message) for f in findings] == [
        ("spare-vpc", "VPC spare must have a flow log (aws.ec2.FlowLog with vpc_id)")
    ]


NO_PUBLIC_INGRESS = "aws-ec2-security-group-no-public-ingress"
PREFIX_LIST_INGRESS = "aws-ec2-security-group-prefix-list-ingress-private"


def test_private_ranges_pass_and_public_ranges_need_listing(
    snapshot: Snapshot, judge: Judge
) -> None:
    rules = snapshot.props(SECURITY_GROUP, "network-endpoints-sg")["ingress"]
    rules[0]["cidrBlocks"] = ["192.168.0.0/16", "100.64.0.0/10"]
    rules[0]["ipv6CidrBlocks"] = ["fd00:1234::/48"]
    assert not judge(snapshot, NO_PUBLIC_INGRESS).findings
    rules[0]["cidrBlocks"] = ["52.10.0.0/16", "172.32.0.0/16"]
    rules[0]["ipv6CidrBlocks"] = ["2600:1f18::/48"]
    findings = judge(snapshot, NO_PUBLIC_INGRESS).findings
    assert len(findings) == 3
    assert "admits 52.10.0.0/16, a public range not listed in allowedPublicCidrs" in (
        findings[0].message
    )
    config = {NO_PUBLIC_INGRESS: {"allowedPublicCidrs": ["52.0.0.0/8", "172.32.0.0/16"]}}
    assert len(judge(snapshot, NO_PUBLIC_INGRESS, config=config).findings) == 1  # the IPv6 one
    # Listing a public range never admits a too-broad one.
    rules[0]["cidrBlocks"] = ["0.0.0.0/0"]
    rules[0]["ipv6CidrBlocks"] = []
    config = {NO_PUBLIC_INGRESS: {"allowedPublicCidrs": ["0.0.0.0/0"]}}
    assert judge(snapshot, NO_PUBLIC_INGRESS, config=config).blocking


def test_public_range_finding_names_the_rule(snapshot: Snapshot, judge: Judge) -> None:
    _alb_from_public_range(snapshot)
    findings = judge(snapshot, NO_PUBLIC_INGRESS).findings
    assert [(_name(f.urn), f.message) for f in findings] == [
        (
            "edge-alb-from-public",
            "security group rule edge-alb-from-public: ingress rule admits 52.0.0.0/8, a public "
            "range not listed in allowedPublicCidrs: ingress must come from private or listed "
            "networks, not the internet",
        )
    ]


def test_prefix_list_of_private_ranges_passes(
    plan_json_with_dependencies: dict[str, Any], judge: Judge
) -> None:
    snapshot = Snapshot(plan_json_with_dependencies)
    _alb_from_public_prefix_list(snapshot)
    snapshot.props(PREFIX_LIST, "edge-clients")["entries"] = [{"cidr": "10.40.0.0/16"}]
    assert not judge(snapshot, PREFIX_LIST_INGRESS).findings
    # A ManagedPrefixListEntry adding a public range to it is found.
    snapshot.add(
        "aws:ec2/managedPrefixListEntry:ManagedPrefixListEntry",
        "edge-clients-extra",
        {"prefixListId": "pl-0123456789abcdef0", "cidr": "3.0.0.0/8"},
    )
    findings = judge(snapshot, PREFIX_LIST_INGRESS).findings
    assert [_name(f.urn) for f in findings] == ["edge-alb-from-clients"]
    assert "whose entry 3.0.0.0/8 is a public range" in findings[0].message


def test_prefix_list_tied_by_dependency(
    plan_json_with_dependencies: dict[str, Any], judge: Judge
) -> None:
    snapshot = Snapshot(plan_json_with_dependencies)
    _alb_from_public_prefix_list(snapshot)
    list_urn = snapshot.entry(PREFIX_LIST, "edge-clients")["urn"]
    snapshot.entry(INGRESS_RULE, "edge-alb-from-clients")["propertyDependencies"] = {
        "prefixListId": [list_urn]
    }
    assert judge(snapshot, PREFIX_LIST_INGRESS).blocking
    # Once the list holds private ranges only, the rule tied to it passes.
    snapshot.props(PREFIX_LIST, "edge-clients")["entries"] = [{"cidr": "10.40.0.0/16"}]
    assert not judge(snapshot, PREFIX_LIST_INGRESS).findings
    # A rule that names a literal id while depending on no prefix list names an outside list
    # when the stack's lists have known ids (a stack's outputs).
    snapshot.props(PREFIX_LIST, "edge-clients")["arn"] = (
        "arn:aws:ec2:us-east-1:123456789012:prefix-list/pl-0fedcba987654321f"
    )
    snapshot.entry(INGRESS_RULE, "edge-alb-from-clients")["propertyDependencies"] = {}
    assert judge(snapshot, PREFIX_LIST_INGRESS).blocking


def test_outside_prefix_lists_allowed_by_setting(snapshot: Snapshot, judge: Judge) -> None:
    _alb_from_outside_prefix_list(snapshot)
    assert judge(snapshot, PREFIX_LIST_INGRESS).blocking
    config = {PREFIX_LIST_INGRESS: {"allowedPrefixListIds": ["pl-0a1b2c3d"]}}
    assert not judge(snapshot, PREFIX_LIST_INGRESS, config=config).findings
    # ...but not the public entries the stack adds to it.
    snapshot.add(
        "aws:ec2/managedPrefixListEntry:ManagedPrefixListEntry",
        "edge-list-extra",
        {"prefixListId": "pl-0a1b2c3d", "cidr": "0.0.0.0/0"},
    )
    assert judge(snapshot, PREFIX_LIST_INGRESS, config=config).blocking


def test_flow_log_to_a_stack_bucket_passes_and_foreign_ones_are_named(
    plan_json_with_dependencies: dict[str, Any], judge: Judge
) -> None:
    snapshot = Snapshot(plan_json_with_dependencies)
    _flow_log_rejects_only_and_copy_to_attacker(snapshot)
    findings = judge(snapshot, "aws-ec2-vpc-require-flow-logs").findings
    assert sorted(_name(f.urn) for f in findings) == ["network-flow-log-copy", "network-vpc"]
    copy = snapshot.props(FLOW_LOG, "network-flow-log-copy")
    copy["logDestination"] = "arn:aws:s3:::pacs-dev-123456789012-us-east-1-access-logs/flows/"
    snapshot.props("aws:s3/bucket:Bucket", "imaging-access-logs")["bucket"] = (
        "pacs-dev-123456789012-us-east-1-access-logs"
    )
    assert not judge(snapshot, "aws-ec2-vpc-require-flow-logs").findings


def test_default_routes_allowed_by_setting(snapshot: Snapshot, judge: Judge) -> None:
    _default_route_through_peering(snapshot)
    findings = judge(snapshot, "aws-ec2-vpc-no-internet-gateway").findings
    assert [f.message for f in findings] == [
        "route network-app-peer-default-route of 0.0.0.0/0 through vpcPeeringConnectionId "
        "pcx-0a1b2c3d4e5f60718 must be removed (the VPC has no path to the internet)"
    ]
    config = {"aws-ec2-vpc-no-internet-gateway": {"allowDefaultRoutes": True}}
    assert not judge(snapshot, "aws-ec2-vpc-no-internet-gateway", config=config).findings
    # A route to an internet gateway stays refused.
    _route_to_igw(snapshot)
    assert judge(snapshot, "aws-ec2-vpc-no-internet-gateway", config=config).blocking
    # Named (non-default) routes through a peering pass.
    snapshot.props(ROUTE, "network-app-peer-default-route")["destinationCidrBlock"] = "10.50.0.0/16"
    snapshot.remove(ROUTE, "network-app-default-route")
    assert not judge(snapshot, "aws-ec2-vpc-no-internet-gateway").findings
