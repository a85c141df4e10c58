"""PrivateNetwork, checked on the whole program as `pulumi up` would create it."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from infra.components.network import TIERS, subnet_layout
from infra.iam_documents import ENDPOINT_ACTIONS, INTERFACE_ENDPOINT_SERVICES
from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun
from tests.conftest import one, policy_of, statement

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
NACL = "aws:ec2/networkAcl:NetworkAcl"


def test_no_path_to_the_internet(plan: ProgramRun) -> None:
    forbidden = {
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/eip:Eip",
        "aws:ec2/route:Route",
    }
    present = {r.type for r in plan.resources} & forbidden
    assert not present, f"internet path resources declared: {present}"
    for table in plan.of_type("aws:ec2/routeTable:RouteTable"):
        assert not table.inputs.get("routes"), f"{table.name} has routes beyond local"


def test_vpc_resolves_endpoint_names_privately(plan: ProgramRun) -> None:
    vpc = one(plan, VPC, "network-vpc")
    assert vpc.inputs["cidrBlock"] == "10.20.0.0/16"
    assert vpc.inputs["enableDnsSupport"] is True
    assert vpc.inputs["enableDnsHostnames"] is True


def test_private_subnets_per_tier_and_zone(plan: ProgramRun) -> None:
    subnets = plan.of_type(SUBNET)
    assert len(subnets) == len(TIERS) * 2
    cidrs = []
    for subnet in subnets:
        assert subnet.inputs.get("mapPublicIpOnLaunch") is False, f"{subnet.name} maps public IPs"
        assert subnet.inputs["tags"]["tier"] in TIERS, subnet.name
        cidrs.append(ipaddress.ip_network(subnet.inputs["cidrBlock"]))
    vpc = ipaddress.ip_network("10.20.0.0/16")
    assert all(c.subnet_of(vpc) for c in cidrs)
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])
    zones = {s.inputs["availabilityZone"] for s in subnets}
    assert zones == {"us-east-1a", "us-east-1b"}


def test_three_configured_zones_get_a_subnet_per_tier(plan_with: Callable[..., ProgramRun]) -> None:
    run = plan_with(availabilityZones=["us-east-1a", "us-east-1c", "us-east-1d"])
    zones = sorted(s.inputs["availabilityZone"] for s in run.of_type(SUBNET))
    assert zones == sorted(["us-east-1a", "us-east-1c", "us-east-1d"] * 3)


def test_subnet_layout_is_stable_and_disjoint() -> None:
    layout = subnet_layout("10.0.0.0/22", ("z1", "z2", "z3"))
    nets = [ipaddress.ip_network(c) for tier in layout.values() for _, c in tier]
    assert len(nets) == 9
    assert all(n.prefixlen == 26 for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    assert layout == subnet_layout("10.0.0.0/22", ("z1", "z2", "z3"))


def test_gateway_endpoints_for_s3_and_dynamodb_on_every_route_table(plan: ProgramRun) -> None:
    tables = len(plan.of_type("aws:ec2/routeTable:RouteTable"))
    for service in ("s3", "dynamodb"):
        endpoint = one(plan, ENDPOINT, f"network-{service}-endpoint")
        assert endpoint.inputs["vpcEndpointType"] == "Gateway", endpoint.name
        assert endpoint.inputs["serviceName"] == f"com.amazonaws.us-east-1.{service}"
        assert len(endpoint.inputs["routeTableIds"]) == tables, endpoint.name


@pytest.mark.parametrize("service", sorted(INTERFACE_ENDPOINT_SERVICES))
def test_interface_endpoint_is_private_and_guarded(plan: ProgramRun, service: str) -> None:
    endpoint = one(plan, ENDPOINT, f"network-{service.replace('.', '-')}-endpoint")
    assert endpoint.inputs["vpcEndpointType"] == "Interface"
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.us-east-1.{service}"
    assert endpoint.inputs["privateDnsEnabled"] is True
    assert len(endpoint.inputs["subnetIds"]) == 2
    assert len(endpoint.inputs["securityGroupIds"]) == 1


def test_required_interface_endpoints_exist() -> None:
    required = {"kms", "sts", "logs", "sqs", "kinesis-firehose", "ecr.api", "ecr.dkr"}
    assert required <= set(INTERFACE_ENDPOINT_SERVICES)


def test_every_endpoint_policy_admits_only_this_account(plan: ProgramRun) -> None:
    for endpoint in plan.of_type(ENDPOINT):
        document = policy_of(endpoint)
        for stmt in document["Statement"]:
            assert stmt["Effect"] == "Allow"
            if stmt["Sid"] == "EcrImageLayers":
                continue  # AWS's layer bucket, read through ECR's pre-signed URLs (next tests)
            condition = stmt["Condition"]["StringEquals"]
            assert condition["aws:PrincipalAccount"] == MOCK_ACCOUNT_ID, endpoint.name


# Where the stack's code runs inside the VPC: its calls to AWS go through the endpoints.
IN_VPC_PRINCIPALS = {"lambda.amazonaws.com", "ecs-tasks.amazonaws.com"}
ENDPOINT_PREFIX = {"kinesis-firehose": "firehose", "ecr.api": "ecr", "ecr.dkr": "ecr"}


def test_endpoints_admit_every_action_the_in_vpc_roles_are_granted(plan: ProgramRun) -> None:
    """An action granted to a function or the gateway but missing from its service's endpoint
    policy would be refused in AWS only: the endpoint lists must cover the grants."""
    in_vpc = {
        str(r.inputs["name"])
        for r in plan.of_type("aws:iam/role:Role")
        if any(
            s.get("Principal", {}).get("Service") in IN_VPC_PRINCIPALS
            for s in policy_of(r, "assumeRolePolicy")["Statement"]
        )
    }
    assert len(in_vpc) >= 4, in_vpc  # ingest, verify, gateway task and execution
    admitted: dict[str, set[str]] = {}
    for service, actions in ENDPOINT_ACTIONS.items():
        admitted.setdefault(ENDPOINT_PREFIX.get(service, service), set()).update(actions)
    for grant in plan.of_type("aws:iam/rolePolicy:RolePolicy"):
        if grant.inputs["role"] not in in_vpc:
            continue
        for stmt in policy_of(grant)["Statement"]:
            actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
            for action in actions:
                prefix = action.split(":")[0]
                if stmt["Effect"] == "Allow" and prefix in admitted:
                    assert action in admitted[prefix], f"{grant.name}: {action} not on an endpoint"


def test_endpoint_policies_name_their_actions(plan: ProgramRun) -> None:
    for endpoint in plan.of_type(ENDPOINT):
        own = statement(policy_of(endpoint), "OnlyThisAccount")
        assert own["Action"], endpoint.name
        assert not any("*" in a for a in own["Action"]), f"{endpoint.name}: wildcard action"


@pytest.mark.parametrize("service", ["s3", "dynamodb", "kms", "sqs"])
def test_endpoint_policy_pins_resource_account_where_supported(
    plan: ProgramRun, service: str
) -> None:
    document = policy_of(one(plan, ENDPOINT, f"network-{service}-endpoint"))
    own = statement(document, "OnlyThisAccount")
    assert own["Condition"]["StringEquals"]["aws:ResourceAccount"] == MOCK_ACCOUNT_ID


def test_s3_endpoint_lets_fargate_pull_ecr_layers_and_nothing_else_foreign(
    plan: ProgramRun,
) -> None:
    document = policy_of(one(plan, ENDPOINT, "network-s3-endpoint"))
    foreign = [s for s in document["Statement"] if s["Sid"] != "OnlyThisAccount"]
    assert len(foreign) == 1
    assert foreign[0]["Action"] == "s3:GetObject"
    assert foreign[0]["Resource"] == "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/*"
    # ECR pre-signs the layer URLs with its own credentials: an account condition would refuse them.
    assert "Condition" not in foreign[0]


def test_endpoint_security_group_admits_https_from_the_vpc_only(plan: ProgramRun) -> None:
    sg = one(plan, "aws:ec2/securityGroup:SecurityGroup", "network-endpoints-sg")
    (rule,) = sg.inputs["ingress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443)
    assert rule["cidrBlocks"] == ["10.20.0.0/16"]
    assert sg.inputs.get("egress") == [], "endpoint security group must have no egress rules"


def test_default_security_group_and_nacl_are_stripped(plan: ProgramRun) -> None:
    sg = one(plan, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "network-default-sg")
    assert not sg.inputs.get("ingress") and not sg.inputs.get("egress"), sg.name
    acl = one(plan, "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl", "network-default-nacl")
    assert not acl.inputs.get("ingress") and not acl.inputs.get("egress"), acl.name
    assert not acl.inputs.get("subnetIds"), "no subnet may stay on the default NACL"


def test_every_subnet_is_on_its_tier_nacl(plan: ProgramRun) -> None:
    subnet_ids = {s.id for s in plan.of_type(SUBNET)}
    covered: set[str | None] = set()
    for tier in TIERS:
        acl = one(plan, NACL, f"network-{tier}-nacl")
        covered |= set(acl.inputs["subnetIds"])
    assert covered == subnet_ids


def test_edge_nacl_admits_only_configured_clients(plan_with: Callable[..., ProgramRun]) -> None:
    run = plan_with(allowedClientCidrs=["192.168.10.0/24"])
    edge = one(run, NACL, "network-edge-nacl")
    outside = [r for r in edge.inputs["ingress"] if r["cidrBlock"] != "10.20.0.0/16"]
    assert {(r["cidrBlock"], r["fromPort"]) for r in outside} == {
        ("192.168.10.0/24", 443),
        ("192.168.10.0/24", 2762),
    }
    for tier in ("app", "data"):
        acl = one(run, NACL, f"network-{tier}-nacl")
        cidrs = {r["cidrBlock"] for r in acl.inputs["ingress"]}
        assert "192.168.10.0/24" not in cidrs, f"{tier} tier admits client networks directly"


def test_default_edge_nacl_admits_nothing_from_outside(plan: ProgramRun) -> None:
    edge = one(plan, NACL, "network-edge-nacl")
    assert {r["cidrBlock"] for r in edge.inputs["ingress"]} == {"10.20.0.0/16"}


def test_flow_logs_capture_all_traffic_to_an_encrypted_retained_group(plan: ProgramRun) -> None:
    flow = one(plan, "aws:ec2/flowLog:FlowLog", "network-flow-log")
    group = one(plan, "aws:cloudwatch/logGroup:LogGroup", "network-flow-logs")
    logs_key = one(plan, "aws:kms/key:Key", "keys-logs")
    assert flow.inputs["trafficType"] == "ALL"
    assert flow.inputs["logDestinationType"] == "cloud-watch-logs"
    assert flow.inputs["logDestination"].endswith(group.inputs["name"])
    assert flow.inputs["vpcId"] == one(plan, VPC, "network-vpc").id
    assert group.inputs["kmsKeyId"].endswith(logs_key.id or "?"), "flow logs not on the logs key"
    assert group.inputs["retentionInDays"] == 2192
    assert group.inputs["deletionProtectionEnabled"] is True


def test_flow_log_role_writes_only_its_group(plan: ProgramRun) -> None:
    role = one(plan, "aws:iam/role:Role", "network-flow-logs-role")
    trust = policy_of(role, "assumeRolePolicy")["Statement"][0]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == MOCK_ACCOUNT_ID
    document = policy_of(one(plan, "aws:iam/rolePolicy:RolePolicy", "network-flow-logs-policy"))
    write = statement(document, "WriteFlowLogRecords")
    assert all(":log-group:/pacs-dev/vpc/flow-logs" in r for r in write["Resource"])
