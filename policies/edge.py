"""Edge: internal load balancers whose listeners speak TLS 1.3, send HSTS and verify client
certificates (or pass DICOM TLS through to a gateway that does), logged and hardened; the gateway's
task runs non-root and read-only from a pinned image of an immutable scanned ECR repository, its
secrets under a customer key."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    STRING_LIST,
    Finding,
    Meta,
    ResourceLike,
    Setting,
    Stack,
    anonymous_allow_messages,
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
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
TARGET_GROUP_ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
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

# HSTS for a year (RFC 6797; the duration browsers' preload lists require).
HSTS_MIN_MAX_AGE = 31536000
_MAX_AGE = re.compile(r"^\s*max-age\s*=\s*\"?(\d+)\"?\s*$", re.IGNORECASE)
# An image in a private ECR registry: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]/...
_ECR_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^/]")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


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
                STRING_LIST,
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


def _balancer(arn: Any) -> str:
    """The load balancer part of a load balancer or listener ARN: ``app/<name>/<id>``."""
    text = str(arn or "")
    for marker in (":loadbalancer/", ":listener/"):
        if marker in text:
            parts = text.split(marker, 1)[1].split("/")
            return "/".join(parts[:3]) if len(parts) >= 3 else ""
    return ""


def _listeners_of(stack: Stack, rule: Any) -> list[Any]:
    """The listeners a listener rule may belong to: by property dependency, else the one whose
    ARN (a stack's outputs) it names; a plan knows neither, so — fail safe — every listener of
    the rule's load balancer whose ARN is not known (every such listener if none matches)."""
    listeners = stack.of_type(LISTENER)
    deps = (getattr(rule, "property_dependencies", None) or {}).get("listenerArn")
    if deps:
        urns = {d.urn for d in deps}
        return [listener for listener in listeners if listener.urn in urns]
    arn = str(rule.props.get("listenerArn") or "")
    exact = [listener for listener in listeners if listener.props.get("arn") == arn]
    if exact:
        return exact
    unknown = [listener for listener in listeners if not listener.props.get("arn")]
    balancer = _balancer(arn)
    same = [
        listener
        for listener in unknown
        if balancer and _balancer(listener.props.get("loadBalancerArn")) in (balancer, "")
    ]
    return same or unknown


def _rules_of(stack: Stack, listener: Any) -> list[tuple[Any, bool]]:
    """The listener rules that belong (or, untied, may belong) to a listener: (rule, certain)."""
    found = []
    for rule in stack.of_type(LISTENER_RULE):
        candidates = _listeners_of(stack, rule)
        if any(c.urn == listener.urn for c in candidates):
            found.append((rule, len(candidates) == 1))
    return found


def _target_group_arns(actions: Any) -> list[tuple[str, str]]:
    """(property, target group ARN) of every target group the actions forward to."""
    found: list[tuple[str, str]] = []
    for action in items(actions):
        if get(action, "targetGroupArn"):
            found.append(("defaultActions", str(get(action, "targetGroupArn"))))
        for group in items(get(action, "forward", "targetGroups")):
            if get(group, "arn"):
                found.append(("defaultActions", str(get(group, "arn"))))
    return found


def _target_groups(stack: Stack, listener: Any, arn: str) -> list[Any]:
    """The stack's target groups an ARN names: by its ARN (outputs) or its name, else — fail
    safe — every target group the listener's default actions depend on."""
    groups = stack.of_type(TARGET_GROUP)
    named = [
        g
        for g in groups
        if (g.props.get("arn") and g.props.get("arn") == arn)
        or (g.props.get("name") and f":targetgroup/{g.props.get('name')}/" in arn)
    ]
    if named:
        return named
    deps = (getattr(listener, "property_dependencies", None) or {}).get("defaultActions") or []
    return [d for d in deps if d.resource_type == TARGET_GROUP]


def _port_of(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _passthrough_target_problems(
    stack: Stack, listener: Any, passthrough: set[int]
) -> Iterator[str]:
    """Why the target groups a TCP passthrough listener forwards to may carry plaintext."""
    arns = _target_group_arns(listener.props.get("defaultActions"))
    if not arns:
        yield "must forward to a target group"
    for _, arn in arns:
        groups = _target_groups(stack, listener, arn)
        if not groups:
            yield f"forwards to target group {arn}, which is not a target group of the stack"
        for group in groups:
            what = f"target group {group.props.get('name') or group.name}"
            ports = [("port", _port_of(group.props.get("port")))]
            ports += [
                (f"target group attachment {a.name} port", _port_of(a.props.get("port")))
                for a in stack.of_type(TARGET_GROUP_ATTACHMENT)
                if _names_group(
                    a, "targetGroupArn", group, str(a.props.get("targetGroupArn") or "")
                )
                if a.props.get("port")  # unset: the target group's port (a stack may hold 0)
            ]
            ports += [
                (f"ECS service {s.name} containerPort", _port_of(get(lb, "containerPort")))
                for s in stack.of_type(ECS_SERVICE)
                for lb in items(s.props.get("loadBalancers"))
                if _names_group(s, "loadBalancers", group, str(get(lb, "targetGroupArn") or ""))
            ]
            for where, port in ports:
                if port not in passthrough:
                    yield (
                        f"{what} {where} is {port}; a TLS passthrough listener may only forward "
                        f"to ports {sorted(passthrough)}"
                    )


def _names_group(resource: Any, prop: str, group: Any, arn: str) -> bool:
    """Whether a target group ARN given in ``resource.props[prop]`` (a TargetGroupAttachment's
    target_group_arn, an ECS service's load_balancers entry) names ``group``: by its ARN or name,
    else by property dependency."""
    if group.props.get("arn") and group.props.get("arn") == arn:
        return True
    name = group.props.get("name")
    if name and f":targetgroup/{name}/" in arn:
        return True
    if group.props.get("arn") or name:
        return False
    deps = (getattr(resource, "property_dependencies", None) or {}).get(prop) or []
    return any(d.urn == group.urn for d in deps)


@stack_policy(
    Meta(
        id="aws-lb-listener-no-plaintext",
        description="No listener carries plaintext: HTTP only redirects to HTTPS (listener rules "
        "included), and TCP only passes TLS through on the configured ports, to targets on those "
        "ports.",
        practice=c.MUTUAL_TLS_ONLY,
        safeguard=c.TRANSMISSION_SECURITY,
        severity=Severity.CRITICAL,
        remediation="Use protocol 'HTTPS' (ALB) for web traffic; an 'HTTP' listener may only "
        "have redirect actions to protocol 'HTTPS' (default_actions and every aws.lb.ListenerRule "
        "whose listener_arn may name it). Use 'TCP' only on tlsPassthroughPorts, forwarding to "
        "an aws.lb.TargetGroup of the stack whose port (and any TargetGroupAttachment port or "
        "aws.ecs.Service load_balancers container_port) is also one of tlsPassthroughPorts, "
        "where the target terminates mutual TLS; no UDP, TCP_UDP or GENEVE listeners.",
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
            for rule, certain in _rules_of(stack, listener):
                if not _redirects_to_https(rule.props.get("actions")):
                    maybe = "" if certain else " (it may belong to this listener)"
                    yield (
                        listener,
                        f"{title}: listener rule {rule.name} must redirect to HTTPS{maybe}",
                    )
        elif protocol == "TCP":
            if _port(listener) not in passthrough:
                yield (
                    listener,
                    f"{title}: TCP is only allowed on TLS passthrough ports "
                    f"{sorted(passthrough)}; terminate TLS on the listener instead",
                )
                continue
            for problem in _passthrough_target_problems(stack, listener, passthrough):
                yield listener, f"{title}: {problem}"
        else:
            yield listener, f"{title}: protocol {protocol!r} cannot carry TLS; use HTTPS or TCP"


def _hsts_max_age(value: Any) -> int | None:
    """The max-age directive of a Strict-Transport-Security value (RFC 6797), or None."""
    for directive in str(value or "").split(";"):
        match = _MAX_AGE.match(directive)
        if match:
            return int(match.group(1))
    return None


@resource_policy(
    Meta(
        id="aws-lb-listener-require-hsts",
        description="Every HTTPS listener makes browsers keep to HTTPS: it sends "
        "Strict-Transport-Security with a max-age of at least a year.",
        practice=c.MUTUAL_TLS_ONLY,
        safeguard=c.TRANSMISSION_SECURITY,
        severity=Severity.MEDIUM,
        remediation="Set routing_http_response_strict_transport_security_header_value on the "
        "HTTPS aws.lb.Listener to 'max-age=31536000; includeSubDomains' (max-age of at least "
        "minMaxAgeSeconds).",
        subjects=(LISTENER,),
        settings=(
            Setting(
                "minMaxAgeSeconds",
                "Smallest HSTS max-age accepted, in seconds (a year by default)",
                HSTS_MIN_MAX_AGE,
                {"type": "integer"},
            ),
        ),
    )
)
def require_hsts(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.props.get("protocol") != "HTTPS":
        return  # HTTPS listeners exist on ALBs only; the HTTP ones may only redirect
    value = resource.props.get("routingHttpResponseStrictTransportSecurityHeaderValue")
    age = _hsts_max_age(value)
    minimum = int(config["minMaxAgeSeconds"])
    if age is None or age < minimum:
        yield (
            f"{_listener_label(resource)}: routingHttpResponseStrictTransportSecurityHeaderValue "
            f"is {value!r}; it must send HSTS with max-age of at least {minimum}"
        )


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
                STRING_LIST,
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
        practice=c.BACKUP_AND_DR,
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
    """Whether a container's ``user`` (``uid``, ``uid:gid``, ``name[:group]``) is root: no user
    (the image's USER, root unless proven otherwise), the name root, or uid 0 however written
    (``0``, ``00``, ``0:1000``)."""
    if user is None or isinstance(user, bool):
        return True
    uid = str(user).split(":", 1)[0].strip()
    if not uid or uid.lower() == "root":
        return True
    return uid.isdigit() and int(uid) == 0


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


def _image_problem(image: Any, registries: list[str]) -> str | None:
    """Why a container image is not trusted: outside ECR (and the listed registries), or not
    pinned by a tag other than ``latest`` or by a digest."""
    text = str(image or "").strip()
    if not text:
        return "has no image"
    if not (_ECR_IMAGE.match(text) or any(text.startswith(r) for r in registries if r)):
        return (
            f"image {text!r} must come from ECR (<account>.dkr.ecr.<region>.amazonaws.com/...) "
            "or a registry in allowedImageRegistries"
        )
    if "@" in text:
        if not _DIGEST.search(text):
            return f"image {text!r} must be pinned by a sha256 digest"
        return None
    last = text.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if not tag or tag.lower() == "latest":
        return f"image {text!r} must be pinned by a tag other than latest, or by a digest"
    return None


@resource_policy(
    Meta(
        id="aws-ecs-task-definition-trusted-image",
        description="Every container runs an image from the account's ECR registries (or a "
        "listed registry), pinned by a tag other than latest or by a digest.",
        practice=c.SECURE_COMPUTE,
        safeguard=c.INTEGRITY,
        severity=Severity.HIGH,
        remediation="Set image in each container definition to "
        "<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<version> (the stack's immutable, "
        "scanned aws.ecr.Repository) or <...>@sha256:<digest>; never a public registry or the "
        "tag latest. A registry outside ECR only when listed in allowedImageRegistries.",
        subjects=(TASK_DEFINITION,),
        settings=(
            Setting(
                "allowedImageRegistries",
                "Image prefixes outside ECR that containers may run (e.g. a private registry "
                "with the same scanning and immutability the risk analysis accepted)",
                [],
                STRING_LIST,
            ),
        ),
    )
)
def trusted_image(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    try:
        containers = _containers(resource)
    except json.JSONDecodeError as exc:
        yield f"containerDefinitions is not valid JSON: {exc}"
        return
    registries = [str(r) for r in items(config["allowedImageRegistries"])]
    for container in containers:
        problem = _image_problem(container.get("image"), registries)
        if problem:
            yield f"container {container.get('name', '?')}: {problem}"


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


@resource_policy(
    Meta(
        id="aws-secretsmanager-secret-policy-no-public-allow",
        description="No secret's resource policy allows an anonymous principal without tying it "
        "to this account.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.CRITICAL,
        remediation="Remove the policy argument of the aws.secretsmanager.Secret (the stack grants "
        "its readers through IAM), or name the principals instead of '*'.",
        subjects=(SECRET,),
    )
)
def secret_policy_no_public_allow(
    resource: ResourceLike, config: Mapping[str, Any]
) -> Iterator[str]:
    for problem in anonymous_allow_messages(resource.props.get("policy")):
        yield f"{label(resource, 'secret')}: {problem}"


POLICIES = (
    require_tls13,
    require_mtls_verify,
    no_plaintext,
    require_hsts,
    lb_internal,
    drop_invalid_headers,
    require_access_logs,
    require_deletion_protection,
    task_definition_hardened,
    trusted_image,
    ecs_service_private,
    ecr_repository,
    secret_require_cmk,
    secret_policy_no_public_allow,
)
