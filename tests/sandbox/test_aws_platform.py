"""The platform handlers against a moto server: what they create reads back as the inputs say."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pulumi import asset

from pacs_kit.sandbox import aws_platform
from pacs_kit.sandbox.emulate import Clients, Context, NotEmulated

REGION = "us-east-1"


def _ctx(clients: Clients, name: str, typ: str = "test") -> Context:
    account = clients.client("sts", REGION).get_caller_identity()["Account"]
    return Context(clients=clients, account_id=account, region=REGION, name=name, type=typ)


def _vpc(clients: Clients, name: str, cidr: str) -> tuple[str, dict[str, Any]]:
    return aws_platform.create_vpc(
        _ctx(clients, name), {"cidrBlock": cidr, "enableDnsSupport": True, "tags": {"N": name}}
    )


def test_every_type_has_a_handler() -> None:
    assert len(aws_platform.HANDLERS) == 37
    assert all(token.startswith("aws:") for token in aws_platform.HANDLERS)


def test_default_security_group_and_acl_end_up_with_no_allow_rules(clients: Clients) -> None:
    vpc_id, vpc = _vpc(clients, "default-deny", "10.31.0.0/16")
    ec2 = clients.client("ec2", REGION)
    group_id, _ = aws_platform.create_default_security_group(
        _ctx(clients, "default-sg"), {"vpcId": vpc_id, "tags": {"Name": "deny"}}
    )
    acl_id, _ = aws_platform.create_default_network_acl(
        _ctx(clients, "default-acl"), {"defaultNetworkAclId": vpc["defaultNetworkAclId"]}
    )
    assert group_id == vpc["defaultSecurityGroupId"]
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []
    entries = ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"][0]["Entries"]
    assert {(e["RuleNumber"], e["RuleAction"]) for e in entries} == {(32767, "deny")}


def test_security_group_keeps_only_its_inline_rules(clients: Clients) -> None:
    vpc_id, _ = _vpc(clients, "sg-rules", "10.32.0.0/16")
    group_id, out = aws_platform.create_security_group(
        _ctx(clients, "endpoints-sg"),
        {
            "vpcId": vpc_id,
            "description": "HTTPS in",
            "ingress": [
                {
                    "protocol": "tcp",
                    "fromPort": 443.0,
                    "toPort": 443.0,
                    "cidrBlocks": ["10.0.0.0/8"],
                }
            ],
            "egress": [],
        },
    )
    group = clients.client("ec2", REGION).describe_security_groups(GroupIds=[group_id])
    group = group["SecurityGroups"][0]
    assert group["IpPermissionsEgress"] == []  # AWS's default allow-all egress is removed
    assert group["IpPermissions"][0]["IpRanges"][0]["CidrIp"] == "10.0.0.0/8"
    rule_id, rule = aws_platform.create_security_group_egress_rule(
        _ctx(clients, "egress"),
        {
            "securityGroupId": group_id,
            "ipProtocol": "tcp",
            "fromPort": 443.0,
            "toPort": 443.0,
            "cidrIpv4": "10.32.0.0/16",
        },
    )
    assert rule_id.startswith("sgr-") and rule["securityGroupRuleId"] == rule_id
    assert out["arn"].endswith(f"security-group/{group_id}")


def test_flow_log_keeps_traffic_type_and_aggregation(clients: Clients) -> None:
    vpc_id, _ = _vpc(clients, "flow", "10.33.0.0/16")
    aws_platform.create_log_group(_ctx(clients, "flow-logs"), {"name": "/test/flow"})
    ctx = _ctx(clients, "flow-log")
    flow_id, _ = aws_platform.create_flow_log(
        ctx,
        {
            "vpcId": vpc_id,
            "trafficType": "REJECT",
            "maxAggregationInterval": 60.0,
            "logDestinationType": "cloud-watch-logs",
            "logDestination": f"arn:aws:logs:{REGION}:{ctx.account_id}:log-group:/test/flow",
            "iamRoleArn": f"arn:aws:iam::{ctx.account_id}:role/flow",
        },
    )
    read = clients.client("ec2", REGION).describe_flow_logs(FlowLogIds=[flow_id])["FlowLogs"][0]
    assert read["TrafficType"] == "REJECT"
    assert read["MaxAggregationInterval"] == 60
    assert read["DeliverLogsStatus"] == "SUCCESS"


def test_log_group_kms_key_and_retention(clients: Clients) -> None:
    key = clients.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]
    ctx = _ctx(clients, "logs")
    name, out = aws_platform.create_log_group(
        ctx, {"name": "/test/kms", "kmsKeyId": key, "retentionInDays": 2192.0}
    )
    group = clients.client("logs", REGION).describe_log_groups(logGroupNamePrefix=name)
    group = group["logGroups"][0]
    assert (group["kmsKeyId"], group["retentionInDays"]) == (key, 2192)
    assert out["arn"] == f"arn:aws:logs:{REGION}:{ctx.account_id}:log-group:/test/kms"
    assert any("KMS key stored, not enforced by moto" in n for n in ctx.notes)


def test_trail_logs_across_regions_with_validation(clients: Clients) -> None:
    clients.client("s3", REGION).create_bucket(Bucket="trail-bucket")
    ctx = _ctx(clients, "trail")
    arn, out = aws_platform.create_trail(
        ctx,
        {
            "name": "test-trail",
            "s3BucketName": "trail-bucket",
            "isMultiRegionTrail": True,
            "enableLogFileValidation": True,
            "advancedEventSelectors": [
                {
                    "name": "Management",
                    "fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}],
                }
            ],
        },
    )
    cloudtrail = clients.client("cloudtrail", REGION)
    trail = cloudtrail.describe_trails(trailNameList=[arn])["trailList"][0]
    assert arn == out["arn"] == trail["TrailARN"]  # pulumi-aws's trail id is its ARN
    assert trail["IsMultiRegionTrail"] and trail["LogFileValidationEnabled"]
    assert cloudtrail.get_trail_status(Name="test-trail")["IsLogging"]
    selectors = cloudtrail.get_event_selectors(TrailName="test-trail")["AdvancedEventSelectors"]
    assert selectors[0]["Name"] == "Management"


def _self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


def _balancer_and_targets(clients: Clients, n: int) -> tuple[str, str]:
    vpc_id, _ = _vpc(clients, f"lb{n}", f"10.{40 + n}.0.0/16")
    subnets = [
        aws_platform.create_subnet(
            _ctx(clients, f"lb-{zone}"),
            {"vpcId": vpc_id, "cidrBlock": cidr, "availabilityZone": f"{REGION}{zone}"},
        )[0]
        for zone, cidr in (("a", f"10.{40 + n}.0.0/20"), ("b", f"10.{40 + n}.16.0/20"))
    ]
    balancer, out = aws_platform.create_load_balancer(
        _ctx(clients, "alb"),
        {
            "name": f"test-alb{n}",
            "internal": True,
            "loadBalancerType": "application",
            "subnets": subnets,
            "dropInvalidHeaderFields": True,
        },
    )
    assert out["arnSuffix"].startswith(f"app/test-alb{n}/")
    targets, _ = aws_platform.create_target_group(
        _ctx(clients, "tg"),
        {
            "name": f"test-tg{n}",
            "port": 8080.0,
            "protocol": "HTTP",
            "vpcId": vpc_id,
            "targetType": "ip",
        },
    )
    return balancer, targets


def test_listener_tls_policy_and_mutual_tls_note(clients: Clients) -> None:
    balancer, targets = _balancer_and_targets(clients, 1)
    cert, key = _self_signed()
    certificate = clients.client("acm", REGION).import_certificate(
        Certificate=cert, PrivateKey=key
    )["CertificateArn"]
    ctx = _ctx(clients, "https")
    listener, _ = aws_platform.create_listener(
        ctx,
        {
            "loadBalancerArn": balancer,
            "protocol": "HTTPS",
            "port": 443.0,
            "sslPolicy": "ELBSecurityPolicy-TLS13-1-3-2021-06",
            "certificateArn": certificate,
            "defaultActions": [{"type": "forward", "targetGroupArn": targets}],
            "mutualAuthentication": {"mode": "verify", "trustStoreArn": "arn:aws:ts"},
        },
    )
    read = clients.client("elbv2", REGION).describe_listeners(ListenerArns=[listener])
    read = read["Listeners"][0]
    assert read["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-3-2021-06"
    assert read["Certificates"][0]["CertificateArn"] == certificate
    assert any("mutual TLS (mode verify) not enforced by moto" in n for n in ctx.notes)
    attributes = clients.client("elbv2", REGION).describe_load_balancer_attributes(
        LoadBalancerArn=balancer
    )["Attributes"]
    assert {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"} in attributes


def test_listener_with_unknown_certificate_and_trust_store_are_not_emulated(
    clients: Clients,
) -> None:
    balancer, targets = _balancer_and_targets(clients, 2)
    with pytest.raises(NotEmulated, match="does not exist in the emulator's ACM"):
        aws_platform.create_listener(
            _ctx(clients, "bad-cert"),
            {
                "loadBalancerArn": balancer,
                "protocol": "HTTPS",
                "port": 8443.0,
                "certificateArn": f"arn:aws:acm:{REGION}:123456789012:certificate/missing",
                "defaultActions": [{"type": "forward", "targetGroupArn": targets}],
            },
        )
    with pytest.raises(NotEmulated, match="no trust store API"):
        aws_platform.create_trust_store(_ctx(clients, "ts"), {"name": "ca"})


def test_function_reads_back_role_environment_and_concurrency(
    clients: Clients, tmp_path: Any
) -> None:
    role = clients.client("iam", REGION).create_role(
        RoleName="fn-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    layer_ctx = _ctx(clients, "layer")
    layer, layer_out = aws_platform.create_layer_version(
        layer_ctx,
        {"layerName": "deps", "code": asset.FileArchive(str(tmp_path / "missing.zip"))},
    )
    assert layer == layer_out["arn"] and layer_out["version"] == "1"
    assert any("layer content not built" in n for n in layer_ctx.notes)
    source = tmp_path / "handler.py"
    source.write_text("def handler(event, context):\n    return event\n")
    name, out = aws_platform.create_function(
        _ctx(clients, "fn"),
        {
            "name": "test-fn",
            "role": role,
            "runtime": "python3.12",
            "handler": "lambdas.handler.handler",
            "code": asset.AssetArchive({"lambdas/handler.py": asset.FileAsset(str(source))}),
            "environment": {"variables": {"PACS_MODE": "sandbox"}},
            "timeout": 30.0,
            "memorySize": 256.0,
            "reservedConcurrentExecutions": 3.0,
            "layers": [layer],
        },
    )
    awslambda = clients.client("lambda", REGION)
    config = awslambda.get_function_configuration(FunctionName=name)
    assert (config["Role"], config["Timeout"], config["MemorySize"]) == (role, 30, 256)
    assert config["Environment"]["Variables"] == {"PACS_MODE": "sandbox"}
    assert (
        awslambda.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    )
    assert out["arn"] == config["FunctionArn"] and out["qualifiedArn"] == f"{out['arn']}:$LATEST"
    assert out["invokeArn"].endswith(f"functions/{out['arn']}/invocations")


def test_function_url_and_its_public_permissions_read_back(clients: Clients, tmp_path: Any) -> None:
    # GIVEN a function (the one-time link function's shape)
    role = clients.client("iam", REGION).create_role(
        RoleName="url-fn-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    source = tmp_path / "link.py"
    source.write_text("def handler(event, context):\n    return {'statusCode': 410}\n")
    name, _ = aws_platform.create_function(
        _ctx(clients, "link-fn"),
        {
            "name": "test-link",
            "role": role,
            "runtime": "python3.12",
            "handler": "lambdas.link.handler",
            "code": asset.AssetArchive({"lambdas/link.py": asset.FileAsset(str(source))}),
        },
    )
    # WHEN its URL (authorization NONE) and the URL's two public grants are created
    url_ctx = _ctx(clients, "link-url")
    url_id, out = aws_platform.create_function_url(
        url_ctx, {"functionName": name, "authorizationType": "NONE", "invokeMode": "BUFFERED"}
    )
    for statement, extra in (
        ("url", {"action": "lambda:InvokeFunctionUrl", "functionUrlAuthType": "NONE"}),
        ("invoke", {"action": "lambda:InvokeFunction", "invokedViaFunctionUrl": True}),
    ):
        aws_platform.create_permission(
            _ctx(clients, statement),
            {"function": name, "principal": "*", "statementId": statement, **extra},
        )
    # THEN the URL reads back with its auth type, and both statements are in the policy
    awslambda = clients.client("lambda", REGION)
    config = awslambda.get_function_url_config(FunctionName=name)
    assert url_id == name and out["functionUrl"] == config["FunctionUrl"]
    assert config["AuthType"] == "NONE"
    assert any("not served" in n for n in url_ctx.notes)
    policy = json.loads(awslambda.get_policy(FunctionName=name)["Policy"])
    assert {s["Sid"] for s in policy["Statement"]} == {"url", "invoke"}


def test_function_url_cors_is_not_emulated(clients: Clients) -> None:
    with pytest.raises(NotEmulated, match="CORS"):
        aws_platform.create_function_url(
            _ctx(clients, "cors-url"),
            {"functionName": "any", "authorizationType": "NONE", "cors": {"allowOrigins": ["*"]}},
        )
