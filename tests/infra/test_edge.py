"""EdgeGateway, checked on the whole program as `pulumi up` would create it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.components.edge import (
    ALB_ACCESS_LOG_PREFIX,
    ALB_CONNECTION_LOG_PREFIX,
    ENV_CLIENT_CA,
    ENV_CLIENT_CRL,
    ENV_TLS_CERT,
    ENV_TLS_KEY,
    ca_bundle_of_private_ca,
    ecr_lifecycle_policy,
    ecr_repository_arn,
    gateway_command,
)
from infra.config import EDGE_TLS_POLICIES
from infra.iam_documents import (
    GatewayExecutionResources,
    GatewayTaskResources,
    gateway_execution_role_policy,
    gateway_task_role_policy,
)
from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun, Registration
from tests.conftest import REPO, one, policy_of, statement
from tests.infra import certificates

LB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SECRET = "aws:secretsmanager/secret:Secret"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
KEY = "aws:kms/key:Key"
REGION = "us-east-1"
INBOX = f"pacs-dev-{MOCK_ACCOUNT_ID}-{REGION}-inbox"
ACCESS_LOGS = f"pacs-dev-{MOCK_ACCOUNT_ID}-{REGION}-access-logs"
TRUST_BUCKET = f"pacs-dev-{MOCK_ACCOUNT_ID}-{REGION}-edge-trust"
REPOSITORY = f"arn:aws:ecr:{REGION}:{MOCK_ACCOUNT_ID}:repository/pacs-dev/gateway"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-4000-8000-000000000000"
PRIVATE_CA = (
    "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/"
    "11111111-2222-4333-8444-555555555555"
)
CLIENTS = ["10.50.0.0/16", "192.168.7.0/24"]
EDGE_TYPES = (
    "aws:lb/",
    "aws:ecs/",
    "aws:ecr/",
    "aws:secretsmanager/",
    "aws:vpc/securityGroup",
    "aws:s3/bucketObjectv2",
)


def key_arn(plan: ProgramRun, purpose: str) -> str:
    key = one(plan, KEY, f"keys-{purpose}")
    return f"arn:aws:kms:{REGION}:{MOCK_ACCOUNT_ID}:key/{key.id}"


def container(run: ProgramRun) -> dict[str, Any]:
    task = one(run, "aws:ecs/taskDefinition:TaskDefinition", "edge-task")
    (definition,) = json.loads(task.inputs["containerDefinitions"])
    result: dict[str, Any] = definition
    return result


def environment(run: ProgramRun) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(run)["environment"]}


def group_id(run: ProgramRun, role: str) -> str:
    return str(one(run, SG, f"edge-{role}-sg").id)


def rules(run: ProgramRun, kind: str, group: str) -> list[dict[str, Any]]:
    return [r.inputs for r in run.of_type(kind) if r.inputs["securityGroupId"] == group]


def subnets(run: ProgramRun, tier: str) -> set[str | None]:
    return {s.id for s in run.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == tier}


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@pytest.fixture(scope="module")
def with_clients(plan_with: Callable[..., ProgramRun]) -> ProgramRun:
    """The example stack with two client networks."""
    return plan_with(allowedClientCidrs=CLIENTS)


# --------------------------------------------------------------------------------- client trust


def test_the_configured_bundle_is_uploaded_and_feeds_the_trust_store(plan: ProgramRun) -> None:
    bundle = one(plan, OBJECT, "edge-ca-bundle")
    assert bundle.inputs["bucket"] == TRUST_BUCKET
    assert bundle.inputs["content"] == (REPO / "examples/pki/ca.pem").read_text()
    store = one(plan, "aws:lb/trustStore:TrustStore", "edge-trust-store")
    assert store.inputs["caCertificatesBundleS3Bucket"] == TRUST_BUCKET
    assert store.inputs["caCertificatesBundleS3Key"] == bundle.inputs["key"]
    # A changed bundle is a new object version, which the trust store must follow.
    assert store.inputs["caCertificatesBundleS3ObjectVersion"] == bundle.outputs["versionId"]
    policy = one(plan, "aws:s3/bucketPolicy:BucketPolicy", "edge-trust-policy")
    assert policy.urn in bundle.dependencies, "the TLS-only policy must exist before the upload"
    assert not plan.of_type("aws:lb/trustStoreRevocation:TrustStoreRevocation")


def test_the_trust_bucket_holds_public_certificates_under_the_kit_controls(
    plan: ProgramRun,
) -> None:
    bucket = one(plan, "aws:s3/bucket:Bucket", "edge-trust")
    assert bucket.inputs["bucket"] == TRUST_BUCKET
    assert bucket.inputs["tags"]["data-classification"] == "public-certificates"
    children = {r.type.split(":")[-1]: r for r in plan.resources if r.parent == bucket.parent}
    (rule,) = children["BucketServerSideEncryptionConfiguration"].inputs["rules"]
    # ELB reads the bundle with the deployer's credentials, which may not use the stack's keys.
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    assert children["BucketVersioning"].inputs["versioningConfiguration"]["status"] == "Enabled"
    assert children["BucketLogging"].inputs["targetBucket"] == ACCESS_LOGS
    statement(policy_of(children["BucketPolicy"]), "DenyInsecureTransport")


def test_a_crl_reaches_the_trust_store_the_listener_and_the_gateway(
    plan_with: Callable[..., ProgramRun], tmp_path: Path
) -> None:
    ca = certificates.authority("client CA")
    revocations = certificates.crl(ca, (4711, 4712))
    run = plan_with(
        edgeClientCaBundle=certificates.write(tmp_path / "ca.pem", ca.pem),
        edgeClientCrl=certificates.write(tmp_path / "crl.pem", revocations),
    )
    crl = one(run, OBJECT, "edge-crl")
    assert crl.inputs["content"] == revocations.decode()
    revocation = one(run, "aws:lb/trustStoreRevocation:TrustStoreRevocation", "edge-revocations")
    assert (
        revocation.inputs["trustStoreArn"]
        == one(run, "aws:lb/trustStore:TrustStore", "edge-trust-store").outputs["arn"]
    )
    assert revocation.inputs["revocationsS3Bucket"] == TRUST_BUCKET
    assert revocation.inputs["revocationsS3Key"] == crl.inputs["key"]
    assert revocation.inputs["revocationsS3ObjectVersion"] == crl.outputs["versionId"]
    assert revocation.urn in one(run, LISTENER, "edge-https").dependencies, (
        "the listener must not serve before revoked certificates are refused"
    )
    # DICOM TLS bypasses the ALB: the gateway checks the same CRL itself.
    assert environment(run)[ENV_CLIENT_CRL] == revocations.decode()
    assert container(run)["command"][-2:] == ["--client-crl-env", ENV_CLIENT_CRL]


def test_a_private_ca_becomes_the_trust_store_through_its_certificate(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(edgeClientCaBundle="", edgePrivateCaArn=PRIVATE_CA)
    bundle = one(run, OBJECT, "edge-ca-bundle").inputs["content"]
    assert bundle.startswith("-----BEGIN CERTIFICATE-----")
    assert bundle.count("BEGIN CERTIFICATE") == 2, "the CA's certificate and its chain"
    assert environment(run)[ENV_CLIENT_CA] == bundle
    store = one(run, "aws:lb/trustStore:TrustStore", "edge-trust-store")
    assert store.inputs["caCertificatesBundleS3Key"] == "client-ca/bundle.pem"


def test_private_ca_bundle_joins_certificate_and_chain() -> None:
    assert ca_bundle_of_private_ca("A\n", None) == "A\n"
    assert ca_bundle_of_private_ca("A", "B\n") == "A\nB\n"


# ------------------------------------------------------------------------------------- listeners


def test_https_listener_is_tls13_only_and_verifies_client_certificates(plan: ProgramRun) -> None:
    listener = one(plan, LISTENER, "edge-https").inputs
    assert (listener["port"], listener["protocol"]) == (443, "HTTPS")
    assert listener["sslPolicy"] in EDGE_TLS_POLICIES
    assert listener["sslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-3-")
    assert listener["certificateArn"] == CERTIFICATE
    assert listener["loadBalancerArn"] == one(plan, LB, "edge-alb").outputs["arn"]
    mtls = listener["mutualAuthentication"]
    assert mtls["mode"] == "verify", "edge-https: client certificates must be verified"
    store = one(plan, "aws:lb/trustStore:TrustStore", "edge-trust-store")
    assert mtls["trustStoreArn"] == store.outputs["arn"]
    assert mtls["ignoreClientCertificateExpiry"] is False
    (forward,) = listener["defaultActions"]
    target = one(plan, TARGET_GROUP, "edge-http-targets").outputs["arn"]
    assert forward == {"type": "forward", "targetGroupArn": target}


def test_https_responses_carry_hsts_and_no_server_header(plan: ProgramRun) -> None:
    listener = one(plan, LISTENER, "edge-https").inputs
    hsts = listener["routingHttpResponseStrictTransportSecurityHeaderValue"]
    max_age = int(hsts.split(";")[0].removeprefix("max-age="))
    assert max_age >= 365 * 24 * 3600, f"edge-https: HSTS {hsts!r} shorter than a year"
    assert listener["routingHttpResponseXContentTypeOptionsHeaderValue"] == "nosniff"
    assert listener["routingHttpResponseServerEnabled"] is False


@pytest.mark.parametrize("policy", EDGE_TLS_POLICIES[1:])
def test_tls_policy_follows_config(plan_with: Callable[..., ProgramRun], policy: str) -> None:
    assert one(plan_with(edgeTlsPolicy=policy), LISTENER, "edge-https").inputs["sslPolicy"] == (
        policy
    )


def test_dicom_tls_passes_the_nlb_untouched_to_the_gateway(plan: ProgramRun) -> None:
    listener = one(plan, LISTENER, "edge-dimse").inputs
    assert (listener["port"], listener["protocol"]) == (2762, "TCP")
    assert "sslPolicy" not in listener and "certificateArn" not in listener
    assert listener["loadBalancerArn"] == one(plan, LB, "edge-nlb").outputs["arn"]
    (forward,) = listener["defaultActions"]
    assert forward["targetGroupArn"] == one(plan, TARGET_GROUP, "edge-dimse-targets").outputs["arn"]


def test_target_groups_check_the_gateways_health_endpoint(plan: ProgramRun) -> None:
    http = one(plan, TARGET_GROUP, "edge-http-targets").inputs
    assert (http["protocol"], http["port"], http["targetType"]) == ("HTTP", 8080, "ip")
    assert http["healthCheck"]["path"] == "/health"
    assert http["healthCheck"]["protocol"] == "HTTP"
    dimse = one(plan, TARGET_GROUP, "edge-dimse-targets").inputs
    assert (dimse["protocol"], dimse["port"], dimse["targetType"]) == ("TCP", 2762, "ip")
    assert (dimse["healthCheck"]["protocol"], dimse["healthCheck"]["port"]) == ("HTTP", "8080")
    assert dimse["healthCheck"]["path"] == "/health"
    # Traffic then comes from the NLB, the only source the gateway's security group names.
    assert dimse["preserveClientIp"] == "false"
    vpc = one(plan, "aws:ec2/vpc:Vpc", "network-vpc").id
    assert http["vpcId"] == dimse["vpcId"] == vpc


# -------------------------------------------------------------------------------- load balancers


@pytest.mark.parametrize("lb", ["edge-alb", "edge-nlb"])
def test_load_balancers_are_internal_protected_and_in_the_edge_tier(
    plan: ProgramRun, lb: str
) -> None:
    balancer = one(plan, LB, lb).inputs
    assert balancer["internal"] is True, f"{lb} faces the internet"
    assert balancer["enableDeletionProtection"] is True, lb
    assert set(balancer["subnets"]) == subnets(plan, "edge"), f"{lb}: not in the edge subnets"
    assert balancer["securityGroups"] == [group_id(plan, lb.removeprefix("edge-"))], lb


def test_the_default_stack_has_no_internet_facing_load_balancer(plan: ProgramRun) -> None:
    balancers = plan.of_type(LB)
    assert {b.name for b in balancers} == {"edge-alb", "edge-nlb"}
    assert all(b.inputs["internal"] is True for b in balancers)
    assert plan.outputs["edge"]["albDnsName"].startswith("internal-")


def test_internet_facing_is_possible_only_with_a_warning(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(edgeInternetFacing=True, allowedClientCidrs=CLIENTS)
    assert {b.inputs["internal"] for b in run.of_type(LB)} == {False}
    assert any("edgeInternetFacing is true" in w for w in run.warnings), run.warnings


def test_alb_drops_invalid_headers_and_logs_access_and_connections(plan: ProgramRun) -> None:
    alb = one(plan, LB, "edge-alb")
    assert alb.inputs["loadBalancerType"] == "application"
    assert alb.inputs["dropInvalidHeaderFields"] is True
    assert alb.inputs["desyncMitigationMode"] == "strictest"
    assert alb.inputs["accessLogs"] == {
        "bucket": ACCESS_LOGS,
        "prefix": ALB_ACCESS_LOG_PREFIX,
        "enabled": True,
    }
    assert alb.inputs["connectionLogs"] == {
        "bucket": ACCESS_LOGS,
        "prefix": ALB_CONNECTION_LOG_PREFIX,
        "enabled": True,
    }
    policy = one(plan, "aws:s3/bucketPolicy:BucketPolicy", "imaging-access-logs-policy")
    assert policy.urn in alb.dependencies, "ELB tests log delivery when logging is switched on"


def test_access_log_bucket_admits_elb_only_under_the_edges_prefixes(plan: ProgramRun) -> None:
    document = policy_of(
        one(plan, "aws:s3/bucketPolicy:BucketPolicy", "imaging-access-logs-policy")
    )
    expected = sorted(
        f"arn:aws:s3:::{ACCESS_LOGS}/{p}/AWSLogs/{MOCK_ACCOUNT_ID}/*"
        for p in (ALB_ACCESS_LOG_PREFIX, ALB_CONNECTION_LOG_PREFIX)
    )
    service = statement(document, "AllowLoadBalancerLogDelivery")
    assert service["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    assert (service["Action"], service["Resource"]) == ("s3:PutObject", expected)
    # us-east-1 predates the service principal: its regional ELB account delivers there too.
    regional = statement(document, "AllowLoadBalancerLogDeliveryFromTheRegionalElbAccount")
    assert regional["Principal"] == {"AWS": "arn:aws:iam::127311923021:root"}
    assert (regional["Action"], regional["Resource"]) == ("s3:PutObject", expected)


def test_newer_regions_deliver_elb_logs_through_the_service_principal_only(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(
        **{
            "aws:region": "ap-southeast-3",
            "edgeCertificateArn": CERTIFICATE.replace(REGION, "ap-southeast-3"),
        }
    )
    document = policy_of(one(run, "aws:s3/bucketPolicy:BucketPolicy", "imaging-access-logs-policy"))
    statement(document, "AllowLoadBalancerLogDelivery")
    sids = {s["Sid"] for s in document["Statement"]}
    assert "AllowLoadBalancerLogDeliveryFromTheRegionalElbAccount" not in sids


# ------------------------------------------------------------------------------ security groups


def open_to_anyone(r: Registration) -> list[str]:
    """Every 0.0.0.0/0 or ::/0 in a security group, its inline rules or a separate rule."""
    found: list[str] = []
    blocks: list[dict[str, Any]] = [r.inputs]
    for prop in ("ingress", "egress"):
        blocks += r.inputs.get(prop) or []
    for block in blocks:
        for prop in ("cidrBlocks", "ipv6CidrBlocks", "cidrIpv4", "cidrIpv6"):
            for cidr in as_list(block.get(prop) or []):
                if cidr in ("0.0.0.0/0", "::/0"):
                    found.append(f"{r.name}.{prop}")
    return found


@pytest.mark.parametrize("variant", ["default", "with clients", "internet-facing"])
def test_no_security_group_anywhere_in_the_stack_is_open_to_the_internet(
    plan: ProgramRun, plan_with: Callable[..., ProgramRun], variant: str
) -> None:
    run = {
        "default": lambda: plan,
        "with clients": lambda: plan_with(allowedClientCidrs=CLIENTS),
        "internet-facing": lambda: plan_with(edgeInternetFacing=True, allowedClientCidrs=CLIENTS),
    }[variant]()
    kinds = {
        SG,
        INGRESS,
        EGRESS,
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    }
    checked = [r for r in run.resources if r.type in kinds]
    assert len(checked) >= 10, "the check found almost no security groups: is it looking?"
    problems = [p for r in checked for p in open_to_anyone(r)]
    assert not problems, problems


def test_edge_security_groups_keep_no_inline_rules(plan: ProgramRun) -> None:
    for role in ("alb", "nlb", "service"):
        sg = one(plan, SG, f"edge-{role}-sg").inputs
        # Inline rules would fight the separate rule resources on every update.
        assert not sg.get("ingress") and not sg.get("egress"), f"edge-{role}-sg"


def test_load_balancers_admit_only_the_client_networks(with_clients: ProgramRun) -> None:
    for role, port in (("alb", 443), ("nlb", 2762)):
        admitted = rules(with_clients, INGRESS, group_id(with_clients, role))
        assert {(r["cidrIpv4"], r["fromPort"], r["toPort"], r["ipProtocol"]) for r in admitted} == {
            (cidr, port, port, "tcp") for cidr in CLIENTS
        }, f"edge-{role}-sg"
        assert len(admitted) == len(CLIENTS)


def test_without_client_networks_nobody_can_connect(plan: ProgramRun) -> None:
    for role in ("alb", "nlb"):
        assert not rules(plan, INGRESS, group_id(plan, role)), f"edge-{role}-sg admits someone"
    assert any("allowedClientCidrs is empty" in w for w in plan.warnings), plan.warnings


def test_load_balancers_reach_only_the_gateway(with_clients: ProgramRun) -> None:
    service = group_id(with_clients, "service")
    expected = {"alb": {8080}, "nlb": {2762, 8080}}
    for role, ports in expected.items():
        out = rules(with_clients, EGRESS, group_id(with_clients, role))
        assert {r["referencedSecurityGroupId"] for r in out} == {service}, f"edge-{role}-sg"
        assert {r["fromPort"] for r in out} == ports, f"edge-{role}-sg"
        assert all(r["fromPort"] == r["toPort"] and r["ipProtocol"] == "tcp" for r in out)


def test_gateway_admits_only_the_load_balancers(with_clients: ProgramRun) -> None:
    admitted = rules(with_clients, INGRESS, group_id(with_clients, "service"))
    alb, nlb = group_id(with_clients, "alb"), group_id(with_clients, "nlb")
    assert {(r.get("referencedSecurityGroupId"), r["fromPort"]) for r in admitted} == {
        (alb, 8080),
        (nlb, 2762),
        (nlb, 8080),
    }
    assert not [r for r in admitted if r.get("cidrIpv4") or r.get("prefixListId")]


def test_gateway_egress_is_https_to_the_vpc_endpoints_only(plan: ProgramRun) -> None:
    out = rules(plan, EGRESS, group_id(plan, "service"))
    endpoints = one(plan, SG, "network-endpoints-sg").id
    s3 = one(plan, "aws:ec2/vpcEndpoint:VpcEndpoint", "network-s3-endpoint").outputs["prefixListId"]
    assert {(r.get("referencedSecurityGroupId"), r.get("prefixListId")) for r in out} == {
        (endpoints, None),
        (None, s3),
    }
    assert all((r["ipProtocol"], r["fromPort"], r["toPort"]) == ("tcp", 443, 443) for r in out)


def test_secrets_manager_is_reachable_through_an_endpoint(plan: ProgramRun) -> None:
    endpoint = one(plan, "aws:ec2/vpcEndpoint:VpcEndpoint", "network-secretsmanager-endpoint")
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{REGION}.secretsmanager"
    assert endpoint.inputs["privateDnsEnabled"] is True


# ----------------------------------------------------------------------------------- the task


def test_gateway_runs_read_only_non_root_unprivileged_without_capabilities(
    plan: ProgramRun,
) -> None:
    c = container(plan)
    assert c["readonlyRootFilesystem"] is True
    user, group = c["user"].split(":")
    assert int(user) != 0 and int(group) != 0, f"gateway runs as {c['user']}"
    assert not c.get("privileged"), "gateway is privileged"
    linux = c["linuxParameters"]
    assert linux["initProcessEnabled"] is True
    assert linux["capabilities"] == {"drop": ["ALL"]}, "gateway keeps or adds capabilities"
    assert "tmpfs" not in linux, "Fargate does not support tmpfs"


def test_the_only_writable_path_is_a_task_scoped_scratch_volume(plan: ProgramRun) -> None:
    task = one(plan, "aws:ecs/taskDefinition:TaskDefinition", "edge-task").inputs
    assert task["volumes"] == [{"name": "scratch"}], "a host path or EFS volume"
    # Received instances are spooled there: more than Fargate's default 20 GiB.
    assert task["ephemeralStorage"] == {"sizeInGib": 60}
    assert container(plan)["mountPoints"] == [
        {"sourceVolume": "scratch", "containerPath": "/tmp", "readOnly": False}
    ]


def test_gateway_command_and_environment_are_the_container_contract(plan: ProgramRun) -> None:
    c = container(plan)
    assert "entryPoint" not in c, "the image's ENTRYPOINT (python -m gateway) runs the gateway"
    assert c["command"] == gateway_command(INBOX, with_crl=False)
    assert c["command"][:5] == ["gateway", "--dimse-port", "2762", "--http-port", "8080"]
    assert {p["containerPort"] for p in c["portMappings"]} == {2762, 8080}
    assert environment(plan) == {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        ENV_CLIENT_CA: (REPO / "examples/pki/ca.pem").read_text(),
    }
    secrets = {s["name"]: s["valueFrom"] for s in c["secrets"]}
    assert secrets == {
        ENV_TLS_CERT: one(plan, SECRET, "edge-tls-certificate").outputs["arn"],
        ENV_TLS_KEY: one(plan, SECRET, "edge-tls-private-key").outputs["arn"],
    }
    assert c["image"] == f"{MOCK_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/pacs-dev/gateway:v0.1.0"


def test_the_gateway_accepts_the_stacks_ingest_lists(plan_with: Callable[..., ProgramRun]) -> None:
    mr, explicit_le = "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.1.2.1"
    run = plan_with(ingestSopClasses=[mr], ingestTransferSyntaxes=[explicit_le])
    command = container(run)["command"]
    assert command == gateway_command(
        INBOX, with_crl=False, sop_classes=(mr,), transfer_syntaxes=(explicit_le,)
    )
    assert command[command.index("--sop-class") + 1] == mr
    assert command[command.index("--transfer-syntax") + 1] == explicit_le


def test_by_default_the_gateway_takes_the_validators_own_lists(plan: ProgramRun) -> None:
    command = container(plan)["command"]
    assert "--sop-class" not in command and "--transfer-syntax" not in command


def test_task_is_fargate_awsvpc_with_its_two_roles(plan: ProgramRun) -> None:
    task = one(plan, "aws:ecs/taskDefinition:TaskDefinition", "edge-task").inputs
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert task["networkMode"] == "awsvpc"
    role = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role"
    assert task["taskRoleArn"] == f"{role}/pacs-dev-gateway-task"
    assert task["executionRoleArn"] == f"{role}/pacs-dev-gateway-execution"


def test_gateway_logs_to_an_encrypted_retained_group(plan: ProgramRun) -> None:
    group = one(plan, LOG_GROUP, "edge-gateway-logs")
    assert group.inputs["kmsKeyId"] == key_arn(plan, "logs")
    assert group.inputs["retentionInDays"] == 2192
    logging = container(plan)["logConfiguration"]
    assert logging["logDriver"] == "awslogs"
    assert logging["options"]["awslogs-group"] == group.inputs["name"]
    assert "mode" not in logging["options"], "non-blocking mode drops audit events under load"
    insights = one(plan, LOG_GROUP, "edge-container-insights-logs")
    assert insights.inputs["name"] == "/aws/ecs/containerinsights/pacs-dev-edge/performance"
    assert insights.inputs["kmsKeyId"] == key_arn(plan, "logs")


def test_service_runs_in_the_app_tier_without_public_ips_behind_both_balancers(
    plan: ProgramRun,
) -> None:
    service = one(plan, "aws:ecs/service:Service", "edge-service")
    network = service.inputs["networkConfiguration"]
    assert network["assignPublicIp"] is False
    assert set(network["subnets"]) == subnets(plan, "app")
    assert network["securityGroups"] == [group_id(plan, "service")]
    assert service.inputs["launchType"] == "FARGATE"
    assert service.inputs["desiredCount"] == 2
    assert service.inputs["enableExecuteCommand"] is False
    assert service.inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    attached = {(b["targetGroupArn"], b["containerPort"]) for b in service.inputs["loadBalancers"]}
    assert attached == {
        (one(plan, TARGET_GROUP, "edge-http-targets").outputs["arn"], 8080),
        (one(plan, TARGET_GROUP, "edge-dimse-targets").outputs["arn"], 2762),
    }
    for listener in ("edge-https", "edge-dimse"):
        assert one(plan, LISTENER, listener).urn in service.dependencies, listener


def test_cluster_has_container_insights(plan: ProgramRun) -> None:
    cluster = one(plan, "aws:ecs/cluster:Cluster", "edge-cluster")
    assert {"name": "containerInsights", "value": "enabled"} in cluster.inputs["settings"]


def test_desired_count_follows_config(plan_with: Callable[..., ProgramRun]) -> None:
    run = plan_with(gatewayDesiredCount=4)
    assert one(run, "aws:ecs/service:Service", "edge-service").inputs["desiredCount"] == 4


# -------------------------------------------------------------------------------- image, secrets


def test_repository_is_immutable_scanned_and_on_the_edge_key(plan: ProgramRun) -> None:
    repository = one(plan, "aws:ecr/repository:Repository", "edge-repository").inputs
    assert repository["name"] == "pacs-dev/gateway"
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["encryptionConfigurations"] == [
        {"encryptionType": "KMS", "kmsKey": key_arn(plan, "edge")}
    ]
    assert repository["forceDelete"] is False


def test_repository_lifecycle_expires_untagged_images_and_keeps_releases(
    plan: ProgramRun,
) -> None:
    lifecycle = one(plan, "aws:ecr/lifecyclePolicy:LifecyclePolicy", "edge-repository-lifecycle")
    assert lifecycle.inputs["repository"] == "pacs-dev/gateway"
    document = json.loads(lifecycle.inputs["policy"])
    assert document == ecr_lifecycle_policy()
    first, last = document["rules"]
    assert first["selection"]["tagStatus"] == "untagged"
    # ECR requires the tagStatus "any" rule to have the lowest priority (highest number).
    assert last["selection"]["tagStatus"] == "any"
    assert last["rulePriority"] > first["rulePriority"]


def test_a_configured_image_is_run_and_pullable(plan_with: Callable[..., ProgramRun]) -> None:
    image = f"210987654321.dkr.ecr.{REGION}.amazonaws.com/shared/gateway@sha256:{'b' * 64}"
    run = plan_with(gatewayImage=image)
    assert container(run)["image"] == image
    pull = statement(
        policy_of(one(run, ROLE_POLICY, "edge-execution-policy")), "PullTheGatewayImageOnly"
    )
    assert pull["Resource"] == sorted(
        [REPOSITORY, f"arn:aws:ecr:{REGION}:210987654321:repository/shared/gateway"]
    )


def test_ecr_repository_arn_of_an_image_uri() -> None:
    assert (
        ecr_repository_arn("123456789012.dkr.ecr.us-east-1.amazonaws.com/a/b:v1", "aws")
        == "arn:aws:ecr:us-east-1:123456789012:repository/a/b"
    )
    with pytest.raises(ValueError, match="not an ECR image URI"):
        ecr_repository_arn("python:3.12", "aws")


@pytest.mark.parametrize("part", ["certificate", "private-key"])
def test_tls_secrets_are_kms_encrypted_and_hold_no_value_in_the_stack(
    plan: ProgramRun, part: str
) -> None:
    secret = one(plan, SECRET, f"edge-tls-{part}").inputs
    assert secret["name"] == f"pacs-dev/edge/gateway-tls-{part}"
    assert secret["kmsKeyId"] == key_arn(plan, "edge")
    assert secret["recoveryWindowInDays"] == 30
    assert not plan.of_type("aws:secretsmanager/secretVersion:SecretVersion"), (
        "a secret value would sit in the Pulumi state"
    )


# ----------------------------------------------------------------------------------------- roles


@pytest.mark.parametrize("role", ["task", "execution"])
def test_roles_are_assumed_only_by_this_accounts_ecs_tasks(plan: ProgramRun, role: str) -> None:
    registered = one(plan, ROLE, f"edge-{role}-role")
    assert registered.inputs["name"] == f"pacs-dev-gateway-{role}"
    (trust,) = policy_of(registered, "assumeRolePolicy")["Statement"]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": MOCK_ACCOUNT_ID}
    assert trust["Condition"]["ArnLike"] == {
        "aws:SourceArn": f"arn:aws:ecs:{REGION}:{MOCK_ACCOUNT_ID}:*"
    }
    policies = [p.name for p in plan.of_type(ROLE_POLICY) if p.inputs["role"] == registered.id]
    assert policies == [f"edge-{role}-policy"], registered.name
    attachments = [
        a
        for a in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == registered.inputs["name"]
    ]
    assert not attachments, f"{registered.name}: managed policies are broader than ours"


def test_task_role_may_only_put_inbox_objects_encrypted_through_s3(plan: ProgramRun) -> None:
    document = policy_of(one(plan, ROLE_POLICY, "edge-task-policy"))
    assert document == gateway_task_role_policy(
        GatewayTaskResources(
            inbox_bucket=INBOX,
            data_key_arn=key_arn(plan, "archive"),
            s3_service_endpoint=f"s3.{REGION}.amazonaws.com",
        )
    )
    grants = {
        (a, r)
        for s in document["Statement"]
        for a in as_list(s["Action"])
        for r in as_list(s["Resource"])
    }
    assert grants == {
        ("s3:PutObject", f"arn:aws:s3:::{INBOX}/*"),
        ("kms:GenerateDataKey", key_arn(plan, "archive")),
    }
    kms = statement(document, "EncryptInboxObjectsWithTheDataKeyThroughS3")
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}


def test_execution_role_pulls_logs_and_reads_exactly_its_secrets(plan: ProgramRun) -> None:
    document = policy_of(one(plan, ROLE_POLICY, "edge-execution-policy"))
    group = one(plan, LOG_GROUP, "edge-gateway-logs").outputs["arn"]
    secrets = (
        one(plan, SECRET, "edge-tls-certificate").outputs["arn"],
        one(plan, SECRET, "edge-tls-private-key").outputs["arn"],
    )
    assert document == gateway_execution_role_policy(
        GatewayExecutionResources(
            repository_arns=(REPOSITORY,),
            log_group_arn=group,
            secret_arns=secrets,
            edge_key_arn=key_arn(plan, "edge"),
            secretsmanager_service_endpoint=f"secretsmanager.{REGION}.amazonaws.com",
        )
    )
    for stmt in document["Statement"]:
        assert stmt.get("Sid"), "a statement without a Sid"
        assert stmt["Effect"] == "Allow"
        assert not [a for a in as_list(stmt["Action"]) if "*" in a], stmt["Sid"]
        if "*" in as_list(stmt["Resource"]):
            # The one action AWS offers no resource scoping for.
            assert stmt["Action"] == ["ecr:GetAuthorizationToken"], stmt["Sid"]
    assert statement(document, "ReadTheGatewayTlsSecrets")["Resource"] == sorted(secrets)


def test_key_policies_name_the_gateway_roles(plan: ProgramRun) -> None:
    role = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role"
    archive = statement(policy_of(one(plan, KEY, "keys-archive")), "KeyUseByStackRoles")
    assert f"{role}/pacs-dev-gateway-task" in archive["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    edge = policy_of(one(plan, KEY, "keys-edge"))
    use = statement(edge, "KeyUseByStackRoles")
    assert use["Condition"]["ArnEquals"]["aws:PrincipalArn"] == [
        f"{role}/pacs-dev-gateway-execution"
    ]
    assert use["Condition"]["StringEquals"]["kms:ViaService"] == [
        f"secretsmanager.{REGION}.amazonaws.com"
    ]
    deploy = statement(edge, "KeyAdministratorsDeployEncryptedResourcesThroughServices")
    assert deploy["Condition"]["StringEquals"]["kms:ViaService"] == [
        f"ecr.{REGION}.amazonaws.com",
        f"secretsmanager.{REGION}.amazonaws.com",
    ], "administrators reach the edge key only through ECR and Secrets Manager"


# -------------------------------------------------------------------------------- with no edge


def test_without_a_trust_source_the_stack_has_no_edge(plan_with: Callable[..., ProgramRun]) -> None:
    run = plan_with(edgeClientCaBundle="", edgeCertificateArn="")
    edge_resources = [r.name for r in run.resources if r.type.startswith(EDGE_TYPES)]
    assert not edge_resources, edge_resources
    names = {r.name for r in run.resources}
    assert not {"edge", "keys-edge", "edge-trust"} & names
    assert "edge" not in run.outputs
    document = policy_of(one(run, "aws:s3/bucketPolicy:BucketPolicy", "imaging-access-logs-policy"))
    assert not [s for s in document["Statement"] if "LoadBalancer" in s["Sid"]]
    archive = statement(policy_of(one(run, KEY, "keys-archive")), "KeyUseByStackRoles")
    assert not [a for a in archive["Condition"]["ArnEquals"]["aws:PrincipalArn"] if "gateway" in a]


# -------------------------------------------------------------------------------------- outputs


def test_outputs_name_the_load_balancers_repository_and_service(plan: ProgramRun) -> None:
    edge = plan.outputs["edge"]
    assert edge["albDnsName"].endswith(f".{REGION}.elb.amazonaws.com")
    assert edge["nlbDnsName"].endswith(f".elb.{REGION}.amazonaws.com")
    assert (
        edge["repositoryUrl"]
        == f"{MOCK_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/pacs-dev/gateway"
    )
    assert edge["image"] == f"{edge['repositoryUrl']}:v0.1.0"
    assert (edge["cluster"], edge["service"]) == ("pacs-dev-edge", "pacs-dev-gateway")
    assert set(edge["tlsSecretArns"]) == {"certificate", "private-key"}
