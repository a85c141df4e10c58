"""Edge: internal load balancers whose listeners speak TLS 1.3 and verify client certificates (or
pass DICOM TLS through to a gateway that does), logged and hardened; the gateway's task runs
non-root and read-only from an immutable scanned image, its secrets under a customer key."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    Finding,
    Meta,
    ResourceLike,
    Setting,
    Stack,
    customer_key,
    get,
    items,
    label,
    messages,
    plaintext_secrets,
    resource_policy,
    secret_in_text,
    stack_policy,
    truthy,
)

LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
SECRET = "aws:secretsmanager/secret:Secret"

# ALB/NLB security policies that negotiate TLS 1.3 and nothing older.
TLS13_POLICIES = [
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-PQ-2025-09",
]
# DICOM TLS (PS3.15 Annex B): passed through by the NLB to the gateway, which terminates TLS and
# verifies the client certificate itself.
DICOM_TLS_PORT = 2762

_ROOT_USERS = {"root", "0"}


def _listener_label(listener: ResourceLike) -> str:
    return f"listener {listener.name} ({listener.props.get('protocol')} {_port(listener)})"


def _port(listener: ResourceLike) -> int | None:
    port = listener.props.get("port")
    return int(float(port)) if port is not None else None


def _is_alb(lb: ResourceLike) -> bool:
    return lb.props.get("loadBalancerType") in (None, "", "application")


# --- listeners ----------------------------------------------------------------------------------


@resource_policy(
    Meta(
        id="aws-lb-listener-require-tls13-policy",
        description="Every HTTPS and TLS listener negotiates TLS 1.3 only.",
        practice=c.MUTUAL_TLS_ONLY,
        safeguard=c.TRANSMISSION_ENCRYPTION,
        severity=Severity.HIGH,
        remediation="Set ssl_policy on the aws.lb.Listener to one of allowedSslPolicies (stack "
        "config edgeTlsPolicy: an ELBSecurityPolicy-TLS13-1-3-* policy); the listener's default "
        "(ELBSecurityPolicy-2016-08) admits TLS 1.0.",
        subjects=(LISTENER,),
        settings=(
            Setting(
                "allowedSslPolicies",
                "ELB security policies a TLS-terminating listener may use (TLS 1.3 only)",
                TLS13_POLICIES,
                {"type": "array", "items": {"type": "string"}},
            ),
        ),
    )
)
def require_tls13(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.props.get("protocol") not in ("HTTPS", "TLS"):
        return
    policy = resource.props.get("sslPolicy")
    if policy not in set(config["allowedSslPolicies"]):
        yield (
            f"{_listener_label(resource)}: sslPolicy {policy!r} must be one of "
            f"{', '.join(config['allowedSslPolicies'])}"
        )


@resource_policy(
    Meta(
        id="aws-lb-listener-require-mtls-verify",
        description="Every TLS-terminating listener verifies the client's certificate against a "
        "trust store and refuses expired certificates.",
        practice=c.MUTUAL_TLS_ONLY,
        safeguard=c.PERSON_AUTHENTICATION,
        severity=Severity.CRITICAL,
        remediation="On HTTPS listeners set mutual_authentication mode 'verify' with "
        "trust_store_arn the stack's trust store and ignore_client_certificate_expiry False. A "
        "Network Load Balancer cannot verify client certificates: use protocol 'TCP' on a "
        "tlsPassthroughPorts port to a target that terminates mutual TLS, never 'TLS'.",
        subjects=(LISTENER,),
    )
)
def require_mtls_verify(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    title = _listener_label(resource)
    if props.get("protocol") == "TLS":
        yield f"{title}: an NLB TLS listener cannot verify client certificates; pass TLS through"
        return
    if props.get("protocol") != "HTTPS":
        return
    mutual = props.get("mutualAuthentication") or {}
    mode = get(mutual, "mode")
    yield from messages(
        (mode == "verify", f"{title}: mutualAuthentication mode is {mode!r}, must be 'verify'"),
        (
            mode != "verify" or bool(get(mutual, "trustStoreArn")),
            f"{title}: mutualAuthentication must name a trustStoreArn",
        ),
        (
            not truthy(get(mutual, "ignoreClientCertificateExpiry")),
            f"{title}: mutualAuthentication must not ignore client certificate expiry",
        ),
    )


def _redirects_to_https(actions: Any) -> bool:
    actions = items(actions)
    return bool(actions) and all(
        get(a, "type") == "redirect" and get(a, "redirect", "protocol") == "HTTPS" for a in actions
    )


def _rules_of(stack: Stack, listener: Any) -> list[Any]:
    """The listener rules of a listener: by property dependency, by the listener's ARN (a stack's
    outputs), else by its load balancer when that has no other listener (a plan knows neither)."""
    found = []
    balancer = str(listener.props.get("loadBalancerArn") or "").split(":loadbalancer/", 1)[-1]
    siblings = [
        other
        for other in stack.of_type(LISTENER)
        if str(other.props.get("loadBalancerArn") or "").endswith(balancer)
    ]
    for rule in stack.of_type(LISTENER_RULE):
        deps = getattr(rule, "property_dependencies", None) or {}
        arn = str(rule.props.get("listenerArn") or "")
        if deps.get("listenerArn"):
            linked = any(d.urn == listener.urn for d in deps["listenerArn"])
        elif listener.props.get("arn"):
            linked = arn == listener.props["arn"]
        else:
            linked = bool(balancer) and f":listener/{balancer}/" in arn and len(siblings) == 1
        if linked:
            found.append(rule)
    return found


@stack_policy(
    Meta(
        id="aws-lb-listener-no-plaintext",
        description="No listener carries plaintext: HTTP only redirects to HTTPS, and TCP only "
        "passes TLS through on the configured ports.",
        practice=c.MUTUAL_TLS_ONLY,
        safeguard=c.TRANSMISSION_SECURITY,
        severity=Severity.CRITICAL,
        remediation="Use protocol 'HTTPS' (ALB) for web traffic; an 'HTTP' listener may only "
        "have redirect actions to protocol 'HTTPS' (default_actions and listener rules). Use "
        "'TCP' only on tlsPassthroughPorts, whose target terminates mutual TLS; no UDP, "
        "TCP_UDP or GENEVE listeners.",
        subjects=(LISTENER,),
        settings=(
            Setting(
                "tlsPassthroughPorts",
                "Ports of TCP listeners that pass TLS through to a target terminating mutual "
                "TLS itself (DICOM TLS, PS3.15 Annex B)",
                [DICOM_TLS_PORT],
                {"type": "array", "items": {"type": "integer"}},
            ),
        ),
    )
)
def no_plaintext(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    passthrough = {int(p) for p in config["tlsPassthroughPorts"]}
    for listener in stack.of_type(LISTENER):
        props = listener.props
        protocol = props.get("protocol")
        title = _listener_label(listener)
        if protocol in ("HTTPS", "TLS"):
            continue
        if protocol == "HTTP":
            if not _redirects_to_https(props.get("defaultActions")):
                yield listener, f"{title}: an HTTP listener may only redirect to HTTPS"
            for rule in _rules_of(stack, listener):
                if not _redirects_to_https(rule.props.get("actions")):
                    yield listener, f"{title}: listener rule {rule.name} must redirect to HTTPS"
        elif protocol == "TCP":
            if _port(listener) not in passthrough:
                yield (
                    listener,
                    f"{title}: TCP is only allowed on TLS passthrough ports "
                    f"{sorted(passthrough)}; terminate TLS on the listener instead",
                )
        else:
            yield listener, f"{title}: protocol {protocol!r} cannot carry TLS; use HTTPS or TCP"


# --- load balancers -----------------------------------------------------------------------------


@resource_policy(
    Meta(
        id="aws-lb-load-balancer-internal",
        description="Every load balancer is internal, reachable only from private networks.",
        practice=c.PRIVATE_NETWORK,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.HIGH,
        remediation="Set internal=True on the aws.lb.LoadBalancer (stack config "
        "edgeInternetFacing false) and connect clients through VPN, Direct Connect or Transit "
        "Gateway.",
        subjects=(LOAD_BALANCER,),
        settings=(
            Setting(
                "allowInternetFacing",
                "Allow internet-facing load balancers (an edge that the risk analysis accepted)",
                False,
                {"type": "boolean"},
            ),
        ),
    )
)
def lb_internal(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not config["allowInternetFacing"] and not truthy(resource.props.get("internal")):
        yield f"{label(resource, 'load balancer')} must be internal (internal=true)"


@resource_policy(
    Meta(
        id="aws-lb-load-balancer-drop-invalid-headers",
        description="Every application load balancer drops invalid header fields and refuses "
        "ambiguous requests (HTTP desync mitigation).",
        practice=c.MUTUAL_TLS_ONLY,
        safeguard=c.INTEGRITY,
        severity=Severity.MEDIUM,
        remediation="Set drop_invalid_header_fields=True and desync_mitigation_mode 'strictest' "
        "on the application aws.lb.LoadBalancer: PACS clients are known modalities and "
        "partners, so requests that do not follow RFC 7230 are refused rather than guessed at.",
        subjects=(LOAD_BALANCER,),
        settings=(
            Setting(
                "desyncMitigationModes",
                "Accepted desync mitigation modes ('defensive' only for clients proven to send "
                "non-compliant requests)",
                ["strictest"],
                {"type": "array", "items": {"type": "string"}},
            ),
        ),
    )
)
def drop_invalid_headers(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not _is_alb(resource):
        return  # header handling and desync mitigation exist on ALBs only
    props = resource.props
    title = label(resource, "load balancer")
    # The provider's default (also what AWS applies when unset) is 'defensive'.
    mode = props.get("desyncMitigationMode") or "defensive"
    yield from messages(
        (
            truthy(props.get("dropInvalidHeaderFields")),
            f"{title}: dropInvalidHeaderFields must be true",
        ),
        (
            mode in set(config["desyncMitigationModes"]),
            f"{title}: desyncMitigationMode is {mode!r}, must be one of "
            f"{', '.join(config['desyncMitigationModes'])}",
        ),
    )


@resource_policy(
    Meta(
        id="aws-lb-load-balancer-require-access-logs",
        description="Every application load balancer logs each request and each TLS handshake "
        "(with the client certificate's verdict) to a log bucket.",
        practice=c.AUDIT_TO_SIEM,
        safeguard=c.AUDIT_CONTROLS,
        severity=Severity.MEDIUM,
        remediation="Set access_logs and connection_logs on the application aws.lb.LoadBalancer, "
        "each with enabled=True and bucket the stack's access-log bucket.",
        subjects=(LOAD_BALANCER,),
    )
)
def require_access_logs(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    # NLBs write access logs for TLS listeners only, which the pack refuses (mTLS cannot be
    # verified there); their TCP passthrough is recorded by the VPC flow logs.
    if not _is_alb(resource):
        return
    title = label(resource, "load balancer")
    for kind in ("accessLogs", "connectionLogs"):
        logs = resource.props.get(kind) or {}
        if not (truthy(get(logs, "enabled")) and get(logs, "bucket")):
            yield f"{title}: {kind} must be enabled with a bucket"


@resource_policy(
    Meta(
        id="aws-lb-load-balancer-require-deletion-protection",
        description="Every load balancer is protected from deletion, so the front door is never "
        "removed (or replaced by a weaker one) by accident.",
        practice=c.MUTUAL_TLS_ONLY,
        safeguard=c.EMERGENCY_MODE,
        severity=Severity.LOW,
        remediation="Set enable_deletion_protection=True on the aws.lb.LoadBalancer.",
        subjects=(LOAD_BALANCER,),
    )
)
def require_deletion_protection(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not truthy(resource.props.get("enableDeletionProtection")):
        yield f"{label(resource, 'load balancer')}: enableDeletionProtection must be true"


# --- ECS ----------------------------------------------------------------------------------------


def _containers(resource: ResourceLike) -> list[Mapping[str, Any]]:
    raw = resource.props.get("containerDefinitions")
    parsed = json.loads(raw) if isinstance(raw, str) else raw
    return [d for d in items(parsed) if isinstance(d, Mapping)]


def _is_root(user: Any) -> bool:
    if not user:
        return True  # the image's USER, root unless proven otherwise
    return str(user).split(":", 1)[0].strip().lower() in _ROOT_USERS


def _plaintext_secrets(container: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for variable in items(container.get("environment")):
        variable_secrets = {str(get(variable, "name") or ""): get(variable, "value")}
        found += [f"environment {problem}" for problem in plaintext_secrets(variable_secrets)]
    for part in ("command", "entryPoint"):
        kinds = [k for k in (secret_in_text(str(a)) for a in items(container.get(part))) if k]
        if kinds:
            found.append(f"{part} holds {kinds[0]}")
    return found


@resource_policy(
    Meta(
        id="aws-ecs-task-definition-hardened",
        description="Every container runs as a non-root user on a read-only root file system, "
        "unprivileged, and takes its secrets from Secrets Manager, never from plaintext.",
        practice=c.SECURE_COMPUTE,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.HIGH,
        remediation="In each container definition set user to a non-root uid:gid, "
        "readonlyRootFilesystem true (writable paths as task volumes), privileged false, no "
        "linuxParameters.capabilities.add (drop ALL), no host pid/ipc mode, and pass secrets "
        "through `secrets` (valueFrom a Secrets Manager ARN) instead of `environment` or the "
        "command line.",
        subjects=(TASK_DEFINITION,),
    )
)
def task_definition_hardened(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    try:
        containers = _containers(resource)
    except json.JSONDecodeError as exc:
        yield f"containerDefinitions is not valid JSON: {exc}"
        return
    for namespace in ("pidMode", "ipcMode"):
        if props.get(namespace) == "host":
            yield f"task {props.get('family')}: {namespace} must not be 'host'"
    for container in containers:
        title = f"container {container.get('name', '?')}"
        added = items(get(container, "linuxParameters", "capabilities", "add"))
        yield from messages(
            (
                not _is_root(container.get("user")),
                f"{title}: user must be a non-root uid (is {container.get('user')!r})",
            ),
            (
                truthy(container.get("readonlyRootFilesystem")),
                f"{title}: readonlyRootFilesystem must be true",
            ),
            (not truthy(container.get("privileged")), f"{title}: privileged must be false"),
            (
                not added,
                f"{title}: must not add Linux capabilities ({', '.join(map(str, added))})",
            ),
        )
        for problem in _plaintext_secrets(container):
            yield f"{title}: {problem}; pass it through `secrets` (valueFrom Secrets Manager)"


@resource_policy(
    Meta(
        id="aws-ecs-service-private",
        description="Every ECS service runs its tasks without public addresses and without "
        "interactive shells (ECS Exec).",
        practice=c.SECURE_COMPUTE,
        safeguard=c.ACCESS_CONTROL,
        severity=Severity.HIGH,
        remediation="Set network_configuration.assign_public_ip False and "
        "enable_execute_command False on the aws.ecs.Service.",
        subjects=(ECS_SERVICE,),
        settings=(
            Setting(
                "allowExecuteCommand",
                "Allow ECS Exec into tasks (break-glass shells into containers holding PHI and "
                "TLS keys)",
                False,
                {"type": "boolean"},
            ),
        ),
    )
)
def ecs_service_private(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    title = label(resource, "service")
    yield from messages(
        (
            not truthy(get(props, "networkConfiguration", "assignPublicIp")),
            f"{title}: networkConfiguration.assignPublicIp must be false",
        ),
        (
            config["allowExecuteCommand"] or not truthy(props.get("enableExecuteCommand")),
            f"{title}: enableExecuteCommand must be false",
        ),
    )


# --- ECR and Secrets Manager --------------------------------------------------------------------


@resource_policy(
    Meta(
        id="aws-ecr-repository-immutable-scanned-encrypted",
        description="Every ECR repository keeps image tags immutable, scans images on push and "
        "encrypts them with a customer-managed KMS key.",
        practice=c.SECURE_COMPUTE,
        safeguard=c.INTEGRITY,
        severity=Severity.HIGH,
        remediation="Set image_tag_mutability 'IMMUTABLE', image_scanning_configuration "
        "scan_on_push True, encryption_configurations encryption_type 'KMS' with kms_key the "
        "stack's key, and leave force_delete False on the aws.ecr.Repository.",
        subjects=(ECR_REPOSITORY,),
    )
)
def ecr_repository(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    title = label(resource, "repository")
    encryption = items(props.get("encryptionConfigurations"))
    kms = [
        e
        for e in encryption
        if get(e, "encryptionType") in ("KMS", "KMS_DSSE") and customer_key(get(e, "kmsKey"), "ecr")
    ]
    yield from messages(
        (
            props.get("imageTagMutability") == "IMMUTABLE",
            f"{title}: imageTagMutability must be IMMUTABLE",
        ),
        (
            truthy(get(props, "imageScanningConfiguration", "scanOnPush")),
            f"{title}: imageScanningConfiguration.scanOnPush must be true",
        ),
        (
            bool(kms),
            f"{title}: must be encrypted with encryptionType KMS and a customer-managed kmsKey",
        ),
        (not truthy(props.get("forceDelete")), f"{title}: forceDelete must be false"),
    )


@resource_policy(
    Meta(
        id="aws-secretsmanager-secret-require-cmk",
        description="Every Secrets Manager secret is encrypted with a customer-managed KMS key.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.HIGH,
        remediation="Set kms_key_id on the aws.secretsmanager.Secret to the stack's key (not the "
        "AWS-managed aws/secretsmanager key).",
        subjects=(SECRET,),
    )
)
def secret_require_cmk(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not customer_key(resource.props.get("kmsKeyId"), "secretsmanager"):
        yield (
            f"{label(resource, 'secret')} must be encrypted with a customer-managed key (kmsKeyId)"
        )


POLICIES = (
    require_tls13,
    require_mtls_verify,
    no_plaintext,
    lb_internal,
    drop_invalid_headers,
    require_access_logs,
    require_deletion_protection,
    task_definition_hardened,
    ecs_service_private,
    ecr_repository,
    secret_require_cmk,
)
