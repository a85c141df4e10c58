"""Edge policies: what each refuses, and the variants of the stack that weaken the front door."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.policies.conftest import Judge
from tests.policies.mutations import Mutation, Snapshot

LB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
REPOSITORY = "aws:ecr/repository:Repository"
SECRET = "aws:secretsmanager/secret:Secret"
RULE = "aws:lb/listenerRule:ListenerRule"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
HTTP_TARGETS = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/pacs-dev-gw-http/"
    "628bdbd82377bf0a"
)
ALB_ARN = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/pacs-dev-edge-alb/"
    "85a4d2cb9c2f7592"
)
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END"


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _container(edit: Callable[[dict[str, Any]], None]) -> Callable[[Snapshot], None]:
    """A mutation of the gateway container's definition."""

    def apply(s: Snapshot) -> None:
        props = s.props(TASK, "edge-task")
        containers = json.loads(props["containerDefinitions"])
        edit(containers[0])
        props["containerDefinitions"] = json.dumps(containers)

    return apply


def _set(type_token: str, name: str, *path: str | int, value: Any) -> Callable[[Snapshot], None]:
    def apply(s: Snapshot) -> None:
        target = s.props(type_token, name)
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return apply


def _http_listener_forwards(s: Snapshot) -> None:
    s.add(
        LISTENER,
        "edge-http",
        {
            "loadBalancerArn": ALB_ARN,
            "port": 80.0,
            "protocol": "HTTP",
            "defaultActions": [
                {
                    "type": "forward",
                    "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
                    "targetgroup/pacs-dev-gw-http/628bdbd82377bf0a",
                }
            ],
        },
    )


def _nlb_terminates_tls(s: Snapshot) -> None:
    props = s.props(LISTENER, "edge-dimse")
    props["protocol"] = "TLS"
    props["sslPolicy"] = "ELBSecurityPolicy-TLS13-1-3-2021-06"
    props["certificateArn"] = "arn:aws:acm:us-east-1:123456789012:certificate/0000"


def _tls_key_in_environment(c: dict[str, Any]) -> None:
    c["secrets"] = [v for v in c["secrets"] if v["name"] != "PACS_GATEWAY_TLS_KEY"]
    c["environment"].append({"name": "PACS_GATEWAY_TLS_KEY", "value": PEM_KEY})


def _password_in_environment(c: dict[str, Any]) -> None:
    c["environment"].append({"name": "PACS_DB_PASSWORD", "value": "hunter2hunter2"})


def _no_connection_logs(s: Snapshot) -> None:
    s.props(LB, "edge-alb")["connectionLogs"]["enabled"] = False


def _secret_default_key(s: Snapshot) -> None:
    del s.props(SECRET, "edge-tls-private-key")["kmsKeyId"]


def _ecr_aes256(s: Snapshot) -> None:
    s.props(REPOSITORY, "edge-repository")["encryptionConfigurations"] = [
        {"encryptionType": "AES256"}
    ]


def _http_redirect_listener_with_forwarding_rule(s: Snapshot) -> None:
    _http_listener_forwards(s)
    s.props(LISTENER, "edge-http")["defaultActions"] = [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443"}}
    ]
    s.add(
        RULE,
        "edge-http-stow",
        {
            "listenerArn": ALB_ARN.replace(":loadbalancer/", ":listener/") + "/0f1e2d3c4b5a6978",
            "priority": 10.0,
            "actions": [{"type": "forward", "targetGroupArn": HTTP_TARGETS}],
            "conditions": [{"pathPattern": {"values": ["/studies*"]}}],
        },
    )


def _image(value: str) -> Callable[[Snapshot], None]:
    return _container(lambda c: c.update(image=value))


def _public_secret(s: Snapshot) -> None:
    s.props("aws:secretsmanager/secret:Secret", "edge-tls-private-key")["policy"] = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                }
            ],
        }
    )


MUTATIONS = [
    Mutation(
        "elb-https-tls12-policy",
        "aws-lb-listener-require-tls13-policy",
        "HTTPS listener on a TLS 1.2 security policy",
        _set(LISTENER, "edge-https", "sslPolicy", value="ELBSecurityPolicy-TLS13-1-2-2021-06"),
    ),
    Mutation(
        "elb-https-default-ssl-policy",
        "aws-lb-listener-require-tls13-policy",
        "HTTPS listener on the default policy (TLS 1.0 and up)",
        _set(LISTENER, "edge-https", "sslPolicy", value=None),
    ),
    Mutation(
        "elb-mtls-passthrough",
        "aws-lb-listener-require-mtls-verify",
        "ALB passes client certificates through unverified",
        _set(LISTENER, "edge-https", "mutualAuthentication", "mode", value="passthrough"),
    ),
    Mutation(
        "elb-mtls-ignores-expiry",
        "aws-lb-listener-require-mtls-verify",
        "ALB accepts expired client certificates",
        _set(
            LISTENER,
            "edge-https",
            "mutualAuthentication",
            "ignoreClientCertificateExpiry",
            value=True,
        ),
    ),
    Mutation(
        "elb-nlb-terminates-tls",
        "aws-lb-listener-require-mtls-verify",
        "NLB terminates DICOM TLS without verifying the client",
        _nlb_terminates_tls,
    ),
    Mutation(
        "elb-http-listener-forwards",
        "aws-lb-listener-no-plaintext",
        "plain HTTP listener on the ALB forwarding to the gateway",
        _http_listener_forwards,
    ),
    Mutation(
        "elb-dicom-plain-port-104",
        "aws-lb-listener-no-plaintext",
        "NLB TCP listener on the plain DICOM port 104",
        _set(LISTENER, "edge-dimse", "port", value=104.0),
    ),
    Mutation(
        "elb-alb-internet-facing",
        "aws-lb-load-balancer-internal",
        "ALB faces the internet",
        _set(LB, "edge-alb", "internal", value=False),
    ),
    Mutation(
        "elb-alb-keeps-invalid-headers",
        "aws-lb-load-balancer-drop-invalid-headers",
        "ALB forwards invalid header fields",
        _set(LB, "edge-alb", "dropInvalidHeaderFields", value=False),
    ),
    Mutation(
        "elb-alb-desync-monitor",
        "aws-lb-load-balancer-drop-invalid-headers",
        "ALB only monitors HTTP desync",
        _set(LB, "edge-alb", "desyncMitigationMode", value="monitor"),
    ),
    Mutation(
        "elb-alb-no-connection-logs",
        "aws-lb-load-balancer-require-access-logs",
        "ALB stops logging TLS handshakes",
        _no_connection_logs,
    ),
    Mutation(
        "elb-nlb-deletable",
        "aws-lb-load-balancer-require-deletion-protection",
        "NLB without deletion protection",
        _set(LB, "edge-nlb", "enableDeletionProtection", value=False),
    ),
    Mutation(
        "ecs-container-root",
        "aws-ecs-task-definition-hardened",
        "gateway container runs as root",
        _container(lambda c: c.update(user="0:0")),
    ),
    Mutation(
        "ecs-container-writable-root",
        "aws-ecs-task-definition-hardened",
        "gateway container root file system writable",
        _container(lambda c: c.update(readonlyRootFilesystem=False)),
    ),
    Mutation(
        "ecs-container-adds-capability",
        "aws-ecs-task-definition-hardened",
        "gateway container adds SYS_PTRACE",
        _container(lambda c: c["linuxParameters"]["capabilities"].update(add=["SYS_PTRACE"])),
    ),
    Mutation(
        "ecs-tls-key-in-environment",
        "aws-ecs-task-definition-hardened",
        "gateway TLS private key in plaintext environment",
        _container(_tls_key_in_environment),
    ),
    Mutation(
        "ecs-password-in-environment",
        "aws-ecs-task-definition-hardened",
        "a literal password in the gateway's environment",
        _container(_password_in_environment),
    ),
    Mutation(
        "ecs-service-public-ip",
        "aws-ecs-service-private",
        "gateway tasks get public IPs",
        _set(SERVICE, "edge-service", "networkConfiguration", "assignPublicIp", value=True),
    ),
    Mutation(
        "ecs-service-exec",
        "aws-ecs-service-private",
        "ECS Exec shells into gateway tasks",
        _set(SERVICE, "edge-service", "enableExecuteCommand", value=True),
    ),
    Mutation(
        "ecr-mutable-tags",
        "aws-ecr-repository-immutable-scanned-encrypted",
        "gateway image tags can be overwritten",
        _set(REPOSITORY, "edge-repository", "imageTagMutability", value="MUTABLE"),
    ),
    Mutation(
        "ecr-no-scan-on-push",
        "aws-ecr-repository-immutable-scanned-encrypted",
        "gateway images not scanned on push",
        _set(REPOSITORY, "edge-repository", "imageScanningConfiguration", value={}),
    ),
    Mutation(
        "ecr-aes256",
        "aws-ecr-repository-immutable-scanned-encrypted",
        "gateway images encrypted with an AWS-owned key",
        _ecr_aes256,
    ),
    Mutation(
        "secretsmanager-default-key",
        "aws-secretsmanager-secret-require-cmk",
        "TLS private key secret under the AWS-managed key",
        _secret_default_key,
    ),
    Mutation(
        "elb-http-redirect-listener-forwarding-rule",
        "aws-lb-listener-no-plaintext",
        "an HTTP listener that redirects, plus a listener rule forwarding plaintext to the gateway",
        _http_redirect_listener_with_forwarding_rule,
    ),
    Mutation(
        "elb-dicom-passthrough-to-target-port-104",
        "aws-lb-listener-no-plaintext",
        "the TCP 2762 passthrough listener forwards to a target group on port 104",
        _set(TARGET_GROUP, "edge-dimse-targets", "port", value=104.0),
    ),
    Mutation(
        "elb-dicom-passthrough-to-container-port-104",
        "aws-lb-listener-no-plaintext",
        "the ECS service registers the DICOM targets on container port 104",
        _set(SERVICE, "edge-service", "loadBalancers", 1, "containerPort", value=104.0),
    ),
    Mutation(
        "elb-https-without-hsts",
        "aws-lb-listener-require-hsts",
        "the HTTPS listener stops sending Strict-Transport-Security",
        _set(
            LISTENER,
            "edge-https",
            "routingHttpResponseStrictTransportSecurityHeaderValue",
            value=None,
        ),
    ),
    Mutation(
        "elb-https-short-hsts",
        "aws-lb-listener-require-hsts",
        "the HTTPS listener sends HSTS for five minutes",
        _set(
            LISTENER,
            "edge-https",
            "routingHttpResponseStrictTransportSecurityHeaderValue",
            value="max-age=300; includeSubDomains",
        ),
    ),
    Mutation(
        "ecs-container-root-padded-uid",
        "aws-ecs-task-definition-hardened",
        "gateway container runs as root written 00:00",
        _container(lambda c: c.update(user="00:00")),
    ),
    Mutation(
        "ecs-container-root-by-name",
        "aws-ecs-task-definition-hardened",
        "gateway container runs as root:root",
        _container(lambda c: c.update(user="root:root")),
    ),
    Mutation(
        "ecs-image-docker-hub-latest",
        "aws-ecs-task-definition-trusted-image",
        "gateway runs docker.io/library/nginx:latest",
        _image("docker.io/library/nginx:latest"),
    ),
    Mutation(
        "ecs-image-ecr-latest",
        "aws-ecs-task-definition-trusted-image",
        "gateway runs the ECR image tagged latest",
        _image("123456789012.dkr.ecr.us-east-1.amazonaws.com/pacs-dev/gateway:latest"),
    ),
    Mutation(
        "ecs-image-ecr-untagged",
        "aws-ecs-task-definition-trusted-image",
        "gateway runs the ECR image without a tag (latest)",
        _image("123456789012.dkr.ecr.us-east-1.amazonaws.com/pacs-dev/gateway"),
    ),
    Mutation(
        "secretsmanager-tls-key-public",
        "aws-secretsmanager-secret-policy-no-public-allow",
        "anyone may read the gateway's TLS private key",
        _public_secret,
    ),
]


def test_http_listener_that_only_redirects_passes(snapshot: Snapshot, judge: Judge) -> None:
    _http_listener_forwards(snapshot)
    snapshot.props(LISTENER, "edge-http")["defaultActions"] = [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443"}}
    ]
    assert not judge(snapshot, "aws-lb-listener-no-plaintext").findings


def test_listener_rule_forwarding_on_an_http_listener_is_refused(
    snapshot: Snapshot, judge: Judge
) -> None:
    web = ALB_ARN.replace("pacs-dev-edge-alb/85a4d2cb9c2f7592", "web/0123456789abcdef")
    snapshot.add(LB, "web", {"name": "web", "internal": True, "loadBalancerType": "application"})
    snapshot.add(
        LISTENER,
        "web-http",
        {
            "loadBalancerArn": web,
            "port": 80.0,
            "protocol": "HTTP",
            "defaultActions": [{"type": "redirect", "redirect": {"protocol": "HTTPS"}}],
        },
    )
    snapshot.add(
        "aws:lb/listenerRule:ListenerRule",
        "web-http-stow",
        {
            "listenerArn": web.replace(":loadbalancer/", ":listener/") + "/fedcba9876543210",
            "actions": [{"type": "forward", "targetGroupArn": "arn:...:targetgroup/x/1"}],
            "conditions": [{"pathPattern": {"values": ["/studies*"]}}],
        },
    )
    findings = judge(snapshot, "aws-lb-listener-no-plaintext").findings
    assert [(_name(f.urn), f.message) for f in findings] == [
        (
            "web-http",
            "listener web-http (HTTP 80): listener rule web-http-stow must redirect to HTTPS",
        )
    ]


def test_passthrough_ports_are_configurable(snapshot: Snapshot, judge: Judge) -> None:
    _set(LISTENER, "edge-dimse", "port", value=11112.0)(snapshot)
    assert judge(snapshot, "aws-lb-listener-no-plaintext").blocking
    # The listener's port alone is not enough: its targets listen on 2762.
    config = {"aws-lb-listener-no-plaintext": {"tlsPassthroughPorts": [11112]}}
    findings = judge(snapshot, "aws-lb-listener-no-plaintext", config=config).findings
    assert [f.message for f in findings] == [
        "listener edge-dimse (TCP 11112): target group pacs-dev-gw-dimse port is 2762; a TLS "
        "passthrough listener may only forward to ports [11112]",
        "listener edge-dimse (TCP 11112): target group pacs-dev-gw-dimse ECS service "
        "edge-service containerPort is 2762; a TLS passthrough listener may only forward to "
        "ports [11112]",
    ]
    config = {"aws-lb-listener-no-plaintext": {"tlsPassthroughPorts": [11112, 2762]}}
    assert not judge(snapshot, "aws-lb-listener-no-plaintext", config=config).findings


def test_internet_facing_allowed_by_setting(snapshot: Snapshot, judge: Judge) -> None:
    _set(LB, "edge-nlb", "internal", value=False)(snapshot)
    report = judge(snapshot, "aws-lb-load-balancer-internal")
    assert [f.message for f in report.findings] == [
        "load balancer pacs-dev-edge-nlb must be internal (internal=true)"
    ]
    config = {"aws-lb-load-balancer-internal": {"allowInternetFacing": True}}
    assert not judge(snapshot, "aws-lb-load-balancer-internal", config=config).findings


def test_public_material_and_references_in_the_environment_pass(
    snapshot: Snapshot, judge: Judge
) -> None:
    # The default task carries the client CA certificate (public) in its environment.
    assert not judge(snapshot, "aws-ecs-task-definition-hardened").findings
    _container(
        lambda c: c["environment"].append(
            {"name": "DATA_KEY", "value": "arn:aws:kms:us-east-1:123456789012:key/abc"}
        )
    )(snapshot)
    assert not judge(snapshot, "aws-ecs-task-definition-hardened").findings


def test_findings_name_the_container_and_the_variable(snapshot: Snapshot, judge: Judge) -> None:
    _container(_tls_key_in_environment)(snapshot)
    findings = judge(snapshot, "aws-ecs-task-definition-hardened").findings
    assert [f.message for f in findings] == [
        "container gateway: environment PACS_GATEWAY_TLS_KEY holds key material; pass it "
        "through `secrets` (valueFrom Secrets Manager)"
    ]


def test_a_container_without_user_runs_as_the_image_user_and_is_refused(
    snapshot: Snapshot, judge: Judge
) -> None:
    _container(lambda c: c.pop("user"))(snapshot)
    assert judge(snapshot, "aws-ecs-task-definition-hardened").blocking


def test_defensive_desync_mode_is_a_setting(snapshot: Snapshot, judge: Judge) -> None:
    _set(LB, "edge-alb", "desyncMitigationMode", value="defensive")(snapshot)
    assert judge(snapshot, "aws-lb-load-balancer-drop-invalid-headers").blocking
    config = {
        "aws-lb-load-balancer-drop-invalid-headers": {
            "desyncMitigationModes": ["strictest", "defensive"]
        }
    }
    report = judge(snapshot, "aws-lb-load-balancer-drop-invalid-headers", config=config)
    assert not report.findings


def test_an_untied_listener_rule_is_judged_against_every_listener_it_may_belong_to(
    snapshot: Snapshot, judge: Judge
) -> None:
    _http_redirect_listener_with_forwarding_rule(snapshot)
    findings = judge(snapshot, "aws-lb-listener-no-plaintext").findings
    assert [(_name(f.urn), f.message) for f in findings] == [
        (
            "edge-http",
            "listener edge-http (HTTP 80): listener rule edge-http-stow must redirect to HTTPS "
            "(it may belong to this listener)",
        )
    ]


def test_a_listener_rule_tied_to_the_https_listener_passes(
    plan_json_with_dependencies: dict[str, Any], judge: Judge
) -> None:
    snapshot = Snapshot(plan_json_with_dependencies)
    _http_redirect_listener_with_forwarding_rule(snapshot)
    https = snapshot.entry(LISTENER, "edge-https")["urn"]
    snapshot.entry(RULE, "edge-http-stow")["propertyDependencies"] = {"listenerArn": [https]}
    assert not judge(snapshot, "aws-lb-listener-no-plaintext").findings
    # ...and by ARN, as a stack's outputs name it.
    del snapshot.entry(RULE, "edge-http-stow")["propertyDependencies"]
    arn = snapshot.props(RULE, "edge-http-stow")["listenerArn"]
    snapshot.props(LISTENER, "edge-https")["arn"] = arn
    snapshot.props(LISTENER, "edge-http")["arn"] = arn.replace("0f1e2d3c4b5a6978", "1111")
    assert not judge(snapshot, "aws-lb-listener-no-plaintext").findings


def test_passthrough_listener_to_a_target_group_outside_the_stack_is_refused(
    snapshot: Snapshot, judge: Judge
) -> None:
    _set(
        LISTENER,
        "edge-dimse",
        "defaultActions",
        value=[
            {
                "type": "forward",
                "forward": {
                    "targetGroups": [{"arn": HTTP_TARGETS.replace("pacs-dev-gw-http", "elsewhere")}]
                },
            }
        ],
    )(snapshot)
    findings = judge(snapshot, "aws-lb-listener-no-plaintext").findings
    assert len(findings) == 1
    assert "which is not a target group of the stack" in findings[0].message


def test_root_users_however_written(snapshot: Snapshot, judge: Judge) -> None:
    for user, root in [
        ("0", True),
        ("00", True),
        ("0:1000", True),
        ("ROOT", True),
        (":1000", True),
        ("10001", False),
        ("10001:0", False),
        ("gateway:gateway", False),
    ]:
        case = Snapshot(snapshot.document)
        _container(lambda c, u=user: c.update(user=u))(case)
        assert bool(judge(case, "aws-ecs-task-definition-hardened").blocking) is root, user


def test_images_by_digest_or_from_listed_registries_pass(snapshot: Snapshot, judge: Judge) -> None:
    digest = "sha256:" + "a" * 64
    _image(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/pacs-dev/gateway@{digest}")(snapshot)
    assert not judge(snapshot, "aws-ecs-task-definition-trusted-image").findings
    _image("registry.hospital.example/pacs/gateway:2.1")(snapshot)
    findings = judge(snapshot, "aws-ecs-task-definition-trusted-image").findings
    assert [f.message for f in findings] == [
        "container gateway: image 'registry.hospital.example/pacs/gateway:2.1' must come from "
        "ECR (<account>.dkr.ecr.<region>.amazonaws.com/...) or a registry in "
        "allowedImageRegistries"
    ]
    config = {
        "aws-ecs-task-definition-trusted-image": {
            "allowedImageRegistries": ["registry.hospital.example/"]
        }
    }
    report = judge(snapshot, "aws-ecs-task-definition-trusted-image", config=config)
    assert not report.findings
    _image("registry.hospital.example/pacs/gateway:latest")(snapshot)
    assert judge(snapshot, "aws-ecs-task-definition-trusted-image", config=config).blocking


def test_hsts_max_age_is_read_from_the_header(snapshot: Snapshot, judge: Judge) -> None:
    header = "routingHttpResponseStrictTransportSecurityHeaderValue"
    _set(LISTENER, "edge-https", header, value="includeSubDomains; MAX-AGE=63072000")(snapshot)
    assert not judge(snapshot, "aws-lb-listener-require-hsts").findings
    _set(LISTENER, "edge-https", header, value="max-age=31535999")(snapshot)
    findings = judge(snapshot, "aws-lb-listener-require-hsts").findings
    assert [f.message for f in findings] == [
        "listener edge-https (HTTPS 443): routingHttpResponseStrictTransportSecurityHeaderValue "
        "is 'max-age=31535999'; it must send HSTS with max-age of at least 31536000"
    ]
