"""Compute: functions run in the VPC with reserved concurrency, never lose a failed event, keep no
secret in plaintext configuration and are invoked only on behalf of this account; their queues
are encrypted with a customer key, TLS-only and closed to anonymous principals."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
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
    anonymous_allow_messages,
    customer_key,
    denies_insecure_transport,
    document,
    get,
    items,
    label,
    messages,
    plaintext_secrets,
    resource_policy,
    stack_policy,
    truthy,
)

FUNCTION = "aws:lambda/function:Function"
EVENT_SOURCE_MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
PERMISSION = "aws:lambda/permission:Permission"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
REDRIVE_POLICY = "aws:sqs/redrivePolicy:RedrivePolicy"

# Principals that invoke a function synchronously: the caller receives the error, there is no
# asynchronous event to lose. Every other service principal (EventBridge, S3, SNS, CloudWatch
# Logs, ...) invokes asynchronously and needs a failure destination.
SYNCHRONOUS_PRINCIPALS = (
    "elasticloadbalancing.amazonaws.com",
    "apigateway.amazonaws.com",
    "cognito-idp.amazonaws.com",
    "secretsmanager.amazonaws.com",
    "lex.amazonaws.com",
)
# Services whose source ARN names no account (bucket ARNs are global): also need aws:SourceAccount.
ACCOUNTLESS_SOURCE_PRINCIPALS = ("s3.amazonaws.com",)

# The function URL's public grants: the URL invocation itself, and (since October 2025) the
# InvokeFunction that Lambda allows only for calls arriving through the URL.
INVOKE_URL = "lambda:InvokeFunctionUrl"
INVOKE = "lambda:InvokeFunction"

# --- helpers -----------------------------------------------------------------------------------


def _function_label(function: ResourceLike) -> str:
    return label(function, "function", "name")


def _queue_label(queue: ResourceLike) -> str:
    return label(queue, "queue", "name", "namePrefix")


def _variables(function: ResourceLike) -> Mapping[str, Any]:
    variables = get(function.props, "environment", "variables", default={})
    return variables if isinstance(variables, Mapping) else {}


def _names_queue(arn: Any, queue: Any) -> bool:
    name = queue.props.get("name")
    return isinstance(arn, str) and bool(name) and arn.endswith(f":{name}")


def _dead_letter_target(redrive: Any) -> str | None:
    if not redrive:
        return None
    try:
        target = document(redrive).get("deadLetterTargetArn")
    except DocumentError:
        return None
    return str(target) if target else None


def _has_dead_letter_queue(stack: Stack, queue: Any) -> bool:
    """Whether the queue redrives failed messages to a dead-letter queue of the stack."""
    redrives = [queue.props.get("redrivePolicy")]
    redrives += [
        r.props.get("redrivePolicy")
        for r in stack.attached(queue, REDRIVE_POLICY, "queueUrl", "name")
    ]
    targets = [t for t in (_dead_letter_target(r) for r in redrives) if t]
    return any(_names_queue(t, q) for t in targets for q in stack.of_type(QUEUE) if q is not queue)


def _principal(permission: ResourceLike) -> str:
    return str(permission.props.get("principal") or "")


def _through_function_url(permission: ResourceLike) -> bool:
    """Whether the permission admits only calls through a function URL (which are synchronous:
    the caller receives the error)."""
    props = permission.props
    return props.get("action") == INVOKE_URL or (
        props.get("action") == INVOKE and truthy(props.get("invokedViaFunctionUrl"))
    )


def _allowed_public(function: Any, patterns: Sequence[str]) -> bool:
    return isinstance(function, str) and any(fnmatchcase(function, p) for p in patterns)


# --- functions ---------------------------------------------------------------------------------


@resource_policy(
    Meta(
        id="aws-lambda-function-require-vpc",
        description="Every Lambda function runs in the stack's private subnets behind a security "
        "group.",
        practice=c.SECURE_COMPUTE,
        safeguard=c.TRANSMISSION_SECURITY,
        severity=Severity.HIGH,
        remediation="Set vpc_config on the aws.lambda_.Function with subnet_ids the private app "
        "subnets and security_group_ids the function's security group (and attach "
        "AWSLambdaVPCAccessExecutionRole to its role).",
        subjects=(FUNCTION,),
    )
)
def function_vpc(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    vpc = resource.props.get("vpcConfig") or {}
    title = _function_label(resource)
    yield from messages(
        (
            bool(items(get(vpc, "subnetIds"))),
            f"{title} must run in the VPC's private subnets (vpcConfig.subnetIds)",
        ),
        (
            bool(items(get(vpc, "securityGroupIds"))),
            f"{title} must run behind a security group (vpcConfig.securityGroupIds)",
        ),
    )


@resource_policy(
    Meta(
        id="aws-lambda-function-require-reserved-concurrency",
        description="Every Lambda function has reserved concurrency: capacity nothing else can "
        "take, and a bound on what it can consume.",
        practice=c.SECURE_COMPUTE,
        safeguard=c.EMERGENCY_MODE,
        severity=Severity.MEDIUM,
        remediation="Set reserved_concurrent_executions on the aws.lambda_.Function to a positive "
        "number (stack config reservedConcurrency); 0 disables the function, -1 (the default) "
        "shares the account's pool.",
        subjects=(FUNCTION,),
    )
)
def function_reserved_concurrency(
    resource: ResourceLike, config: Mapping[str, Any]
) -> Iterator[str]:
    reserved = resource.props.get("reservedConcurrentExecutions")
    if reserved is None or float(reserved) < 1:
        yield (
            f"{_function_label(resource)} must reserve concurrency "
            "(reservedConcurrentExecutions of at least 1)"
        )


@stack_policy(
    Meta(
        id="aws-lambda-function-require-failure-destination",
        description="No event a Lambda function fails to process is lost: queue sources redrive "
        "to a dead-letter queue, asynchronous invocations have a failure destination.",
        practice=c.SECURE_COMPUTE,
        safeguard=c.INTEGRITY,
        severity=Severity.HIGH,
        remediation="For an SQS event source (aws.lambda_.EventSourceMapping), give the source "
        "queue a redrive_policy whose deadLetterTargetArn is a queue of the stack (streams: "
        "destination_config.on_failure on the mapping). For asynchronous invokers (EventBridge, "
        "S3, SNS), declare aws.lambda_.FunctionEventInvokeConfig with "
        "destination_config.on_failure, or set dead_letter_config on the function.",
        subjects=(FUNCTION,),
    )
)
def function_failure_destination(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    queues = stack.of_type(QUEUE)
    for function in stack.of_type(FUNCTION):
        title = _function_label(function)
        mappings = stack.attached(function, EVENT_SOURCE_MAPPING, "functionName", "name", "arn")
        for mapping in mappings:
            if get(mapping.props, "destinationConfig", "onFailure", "destinationArn"):
                continue
            sources = [q for q in queues if stack.refers(mapping, "eventSourceArn", q, "name")]
            if not any(_has_dead_letter_queue(stack, q) for q in sources):
                source = mapping.props.get("eventSourceArn")
                yield (
                    function,
                    f"{title}: its event source {source} must redrive failed messages to a "
                    "dead-letter queue of the stack (or set destinationConfig.onFailure)",
                )
        permissions = stack.attached(function, PERMISSION, "function", "name", "arn")
        asynchronous = [
            p
            for p in permissions
            if _principal(p) not in SYNCHRONOUS_PRINCIPALS and not _through_function_url(p)
        ]
        if not asynchronous and (mappings or permissions):
            # Polled by event source mappings (checked above) or called synchronously only: the
            # caller receives the error, no asynchronous event can be dropped.
            continue
        configs = stack.attached(function, INVOKE_CONFIG, "functionName", "name", "arn")
        handled = bool(get(function.props, "deadLetterConfig", "targetArn")) or any(
            get(i.props, "destinationConfig", "onFailure", "destination") for i in configs
        )
        if not handled:
            yield (
                function,
                f"{title} is invoked asynchronously: it must send failed invocations to a "
                "failure destination (FunctionEventInvokeConfig onFailure or deadLetterConfig)",
            )


@resource_policy(
    Meta(
        id="aws-lambda-function-no-plaintext-secrets",
        description="No Lambda function's environment holds a secret in plaintext.",
        practice=c.SECURE_COMPUTE,
        safeguard=c.PASSWORD_MANAGEMENT,
        severity=Severity.CRITICAL,
        remediation="Store the credential in AWS Secrets Manager (or an SSM SecureString), put "
        "its ARN in the aws.lambda_.Function's environment (a variable ending in _ARN) and read "
        "it at run time with the function's role; rotate the exposed credential.",
        subjects=(FUNCTION,),
    )
)
def function_no_plaintext_secrets(
    resource: ResourceLike, config: Mapping[str, Any]
) -> Iterator[str]:
    title = _function_label(resource)
    for problem in plaintext_secrets(_variables(resource)):
        yield (
            f"{title}: environment variable {problem}: store it in Secrets Manager and pass its ARN"
        )


@resource_policy(
    Meta(
        id="aws-lambda-function-require-env-kms",
        description="Every Lambda function with environment variables encrypts them with a "
        "customer-managed KMS key.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.MEDIUM,
        remediation="Set kms_key_arn on the aws.lambda_.Function to the stack's data key ARN "
        "(Lambda's default is its AWS-managed key, whose policy nobody reviews).",
        subjects=(FUNCTION,),
    )
)
def function_env_kms(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if _variables(resource) and not resource.props.get("kmsKeyArn"):
        yield (
            f"{_function_label(resource)} must encrypt its environment variables with a "
            "customer-managed key (kmsKeyArn)"
        )


@resource_policy(
    Meta(
        id="aws-lambda-permission-require-source",
        description="A Lambda permission lets a service invoke the function only on behalf of a "
        "named source of this account, and neither a permission nor a function URL lets everyone "
        "invoke it, except the function URL of a function the pack configuration names.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.HIGH,
        remediation="Set source_arn (the invoking rule, bucket or topic) on the "
        "aws.lambda_.Permission, and source_account too for S3 (bucket ARNs name no account); "
        "never principal '*' (or function_url_auth_type 'NONE'). Give every "
        "aws.lambda_.FunctionUrl authorization_type 'AWS_IAM' (callers sign with SigV4 and need "
        "lambda:InvokeFunctionUrl), never 'NONE', unless the function authenticates each request "
        "itself (a one-time token) and, after review, allowPublicFunctionUrls names it.",
        subjects=(PERMISSION, FUNCTION_URL),
        settings=(
            Setting(
                "allowPublicFunctionUrls",
                "Function names (glob patterns) whose function URL may be public (authorization "
                "NONE, principal '*' through the URL only), after review: the function "
                "authenticates each request itself",
                [],
                STRING_LIST,
            ),
        ),
    )
)
def permission_require_source(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    public = config["allowPublicFunctionUrls"]
    if resource.resource_type == FUNCTION_URL:
        auth = str(props.get("authorizationType") or "").upper()
        if auth == "NONE" and _allowed_public(props.get("functionName"), public):
            return  # reviewed: allowPublicFunctionUrls names the function
        if auth != "AWS_IAM":
            yield (
                f"function URL {resource.name} ({props.get('functionName')}) lets anyone invoke "
                "the function: authorizationType must be AWS_IAM"
            )
        return
    principal = _principal(resource)
    title = f"permission {resource.name} ({props.get('function')})"
    if principal == "*" and _allowed_public(props.get("function"), public):
        # Only the URL's own grants: the public URL invocation, and InvokeFunction through it.
        url_only = (
            props.get("action") == INVOKE_URL and props.get("functionUrlAuthType") == "NONE"
        ) or (props.get("action") == INVOKE and truthy(props.get("invokedViaFunctionUrl")))
        if not url_only:
            yield (
                f"{title} lets anyone invoke the function outside its function URL: only "
                f"{INVOKE_URL} (functionUrlAuthType NONE) or {INVOKE} with "
                "invokedViaFunctionUrl may name principal '*'"
            )
        return
    if principal == "*":
        yield f"{title} lets anyone invoke the function: name the invoking principal"
        return
    if props.get("functionUrlAuthType") == "NONE":
        yield f"{title} opens a function URL without authentication (functionUrlAuthType NONE)"
    if not principal.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return  # an account or role: IAM in that account decides who acts as it
    source_arn = bool(props.get("sourceArn"))
    source_account = bool(props.get("sourceAccount"))
    if principal in ACCOUNTLESS_SOURCE_PRINCIPALS:
        yield from messages(
            (
                source_arn and source_account,
                f"{title}: {principal} must be limited to a source (sourceArn) of this account "
                "(sourceAccount)",
            ),
        )
    elif not (source_arn or source_account):
        yield f"{title}: {principal} may invoke for any account: set sourceArn (or sourceAccount)"


# --- queues ------------------------------------------------------------------------------------


@resource_policy(
    Meta(
        id="aws-sqs-queue-require-kms",
        description="Every SQS queue is encrypted with a customer-managed KMS key.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.HIGH,
        remediation="Set kms_master_key_id on the aws.sqs.Queue to the stack's key ARN (not "
        "alias/aws/sqs; sqs_managed_sse_enabled alone uses a key the customer does not control).",
        subjects=(QUEUE,),
    )
)
def queue_kms(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not customer_key(resource.props.get("kmsMasterKeyId"), "sqs"):
        yield f"{_queue_label(resource)} must be encrypted with a customer-managed KMS key"


@stack_policy(
    Meta(
        id="aws-sqs-queue-require-tls-only-policy",
        description="Every SQS queue's policy refuses every request made without TLS.",
        practice=c.MUTUAL_TLS_ONLY,
        safeguard=c.TRANSMISSION_ENCRYPTION,
        severity=Severity.HIGH,
        remediation="Give the queue an aws.sqs.QueuePolicy with a Deny statement for Principal "
        "'*', Action 'sqs:*' on the queue, Bool aws:SecureTransport 'false'.",
        subjects=(QUEUE,),
    )
)
def queue_tls_only(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    for queue in stack.of_type(QUEUE):
        if not any(
            denies_insecure_transport(p, "sqs")
            for p in stack.policies_of(queue, QUEUE_POLICY, "queueUrl", "name")
        ):
            yield (
                queue,
                f"{_queue_label(queue)}: its policy must deny sqs:* when aws:SecureTransport is "
                "false",
            )


@resource_policy(
    Meta(
        id="aws-sqs-queue-policy-no-public-allow",
        description="No SQS queue policy allows an anonymous principal without tying it to this "
        "account.",
        practice=c.LEAST_PRIVILEGE,
        safeguard=c.ACCESS_AUTHORIZATION,
        severity=Severity.CRITICAL,
        remediation="Name the principals (s3.amazonaws.com, account roles) in the "
        "aws.sqs.QueuePolicy's Allow statements and condition service principals on "
        "aws:SourceAccount/aws:SourceArn; never Principal '*' unconditionally.",
        subjects=(QUEUE_POLICY, QUEUE),
    )
)
def queue_no_public_allow(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    policy = resource.props.get("policy")
    if not policy:
        return
    yield from anonymous_allow_messages(policy)


POLICIES = (
    function_vpc,
    function_reserved_concurrency,
    function_failure_destination,
    function_no_plaintext_secrets,
    function_env_kms,
    permission_require_source,
    queue_kms,
    queue_tls_only,
    queue_no_public_allow,
)
