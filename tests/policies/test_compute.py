"""Compute policies: what each refuses, and the variants of the stack that weaken functions and
queues."""

from __future__ import annotations

from typing import Any

from tests.policies.conftest import Judge
from tests.policies.mutations import Mutation, Snapshot, drop_statement

FUNCTION = "aws:lambda/function:Function"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
PERMISSION = "aws:lambda/permission:Permission"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"

SECRETS = "aws-lambda-function-no-plaintext-secrets"
FAILURES = "aws-lambda-function-require-failure-destination"
SOURCE = "aws-lambda-permission-require-source"


def _env(s: Snapshot, function: str = "ingest-ingest") -> dict[str, Any]:
    variables: dict[str, Any] = s.props(FUNCTION, function)["environment"]["variables"]
    return variables


def _findings(report: Any) -> list[str]:
    return [f.message for f in report.findings]


# --- mutations ---------------------------------------------------------------------------------


def _outside_vpc(s: Snapshot) -> None:
    del s.props(FUNCTION, "ingest-ingest")["vpcConfig"]


def _no_security_group(s: Snapshot) -> None:
    s.props(FUNCTION, "ingest-verify")["vpcConfig"]["securityGroupIds"] = []


def _unreserved(s: Snapshot) -> None:
    del s.props(FUNCTION, "ingest-verify")["reservedConcurrentExecutions"]


def _throttled(s: Snapshot) -> None:
    s.props(FUNCTION, "ingest-ingest")["reservedConcurrentExecutions"] = 0.0


def _queue_without_dlq(s: Snapshot) -> None:
    del s.props(QUEUE, "ingest-queue")["redrivePolicy"]


def _verify_without_failure_destination(s: Snapshot) -> None:
    s.remove(INVOKE_CONFIG, "ingest-verify-async")


def _plaintext_password(s: Snapshot) -> None:
    _env(s)["PACS_DB_PASSWORD"] = "correct-horse-battery-staple"


def _access_key_in_env(s: Snapshot) -> None:
    _env(s, "ingest-verify")["PACS_UPLOAD_CONFIG"] = "AKIAIOSFODNN7EXAMPLE"


def _partner_auth_in_env(s: Snapshot) -> None:
    _env(s)["PACS_PARTNER_AUTH"] = "hunter2"


def _hmac_secret_in_env(s: Snapshot) -> None:
    _env(s, "ingest-verify")["PACS_HMAC"] = "s3cr3t"


def _password_posing_as_arn(s: Snapshot) -> None:
    _env(s)["DB_PASS"] = "arn:aws:secretsmanager:hunter2"


def _env_default_key(s: Snapshot) -> None:
    del s.props(FUNCTION, "ingest-verify")["kmsKeyArn"]


def _permission_any_rule(s: Snapshot) -> None:
    del s.props(PERMISSION, "ingest-verify-invoke")["sourceArn"]


def _permission_public(s: Snapshot) -> None:
    props = s.props(PERMISSION, "ingest-verify-invoke")
    props["principal"] = "*"
    del props["sourceArn"]


def _function_url_without_auth(s: Snapshot) -> None:
    s.add(
        FUNCTION_URL,
        "ingest-verify-url",
        {"functionName": "pacs-dev-verify", "authorizationType": "NONE"},
    )


def _allowed_url_grants_any_invocation(s: Snapshot) -> None:
    # An allowed public function's principal '*' grant that is not limited to its URL.
    s.add(
        PERMISSION,
        "ingest-verify-public-invoke",
        {"function": "pacs-dev-verify", "principal": "*", "action": "lambda:InvokeFunction"},
    )


def _queue_aws_managed_key(s: Snapshot) -> None:
    s.props(QUEUE, "ingest-queue")["kmsMasterKeyId"] = "alias/aws/sqs"


def _queue_sse_sqs(s: Snapshot) -> None:
    props = s.props(QUEUE, "ingest-dlq")
    del props["kmsMasterKeyId"]
    props["sqsManagedSseEnabled"] = True


def _queue_plaintext(s: Snapshot) -> None:
    with s.policy(QUEUE_POLICY, "ingest-dlq-policy") as doc:
        drop_statement(doc, "DenyInsecureTransport")


def _queue_without_policy(s: Snapshot) -> None:
    s.remove(QUEUE_POLICY, "audit-siem-objects-policy")


def _queue_public_send(s: Snapshot) -> None:
    with s.policy(QUEUE_POLICY, "ingest-queue-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "AnyoneSends",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": "sqs:SendMessage",
                "Resource": "arn:aws:sqs:us-east-1:123456789012:pacs-dev-ingest",
            }
        )


MUTATIONS = [
    Mutation(
        "lambda-outside-vpc",
        "aws-lambda-function-require-vpc",
        "ingest function runs outside the VPC",
        _outside_vpc,
    ),
    Mutation(
        "lambda-no-security-group",
        "aws-lambda-function-require-vpc",
        "verify function without a security group",
        _no_security_group,
    ),
    Mutation(
        "lambda-unreserved-concurrency",
        "aws-lambda-function-require-reserved-concurrency",
        "verify function shares the account's concurrency pool",
        _unreserved,
    ),
    Mutation(
        "lambda-zero-concurrency",
        "aws-lambda-function-require-reserved-concurrency",
        "ingest function throttled to zero",
        _throttled,
    ),
    Mutation(
        "lambda-ingest-queue-without-dlq",
        FAILURES,
        "ingest queue drops messages that fail repeatedly (no redrive)",
        _queue_without_dlq,
    ),
    Mutation(
        "lambda-verify-without-failure-destination",
        FAILURES,
        "failed scheduled verify runs are dropped",
        _verify_without_failure_destination,
    ),
    Mutation(
        "lambda-plaintext-password",
        SECRETS,
        "database password in the ingest function's environment",
        _plaintext_password,
    ),
    Mutation(
        "lambda-access-key-in-env",
        SECRETS,
        "AWS access key id in an innocuously named variable",
        _access_key_in_env,
    ),
    Mutation(
        "lambda-partner-auth-in-env",
        SECRETS,
        "partner authentication value in the ingest function's environment (PACS_PARTNER_AUTH)",
        _partner_auth_in_env,
    ),
    Mutation(
        "lambda-hmac-secret-in-env",
        SECRETS,
        "HMAC secret in the verify function's environment (PACS_HMAC)",
        _hmac_secret_in_env,
    ),
    Mutation(
        "lambda-password-posing-as-arn",
        SECRETS,
        "a password prefixed with arn:aws:secretsmanager: to pass as a reference",
        _password_posing_as_arn,
    ),
    Mutation(
        "lambda-env-default-key",
        "aws-lambda-function-require-env-kms",
        "verify environment encrypted with Lambda's AWS-managed key",
        _env_default_key,
    ),
    Mutation(
        "lambda-permission-any-rule",
        SOURCE,
        "any EventBridge rule of any account may invoke verify",
        _permission_any_rule,
    ),
    Mutation(
        "lambda-permission-public",
        SOURCE,
        "anyone may invoke verify",
        _permission_public,
    ),
    Mutation(
        "lambda-function-url-unauthenticated",
        SOURCE,
        "a function URL with authorization NONE lets anyone invoke verify",
        _function_url_without_auth,
    ),
    Mutation(
        "lambda-public-url-function-invokable-outside-its-url",
        SOURCE,
        "verify, allowed a public URL, may be invoked by anyone outside the URL",
        _allowed_url_grants_any_invocation,
    ),
    Mutation(
        "sqs-aws-managed-key",
        "aws-sqs-queue-require-kms",
        "ingest queue encrypted with alias/aws/sqs",
        _queue_aws_managed_key,
    ),
    Mutation(
        "sqs-managed-sse-only",
        "aws-sqs-queue-require-kms",
        "dead-letter queue with SSE-SQS instead of the customer key",
        _queue_sse_sqs,
    ),
    Mutation(
        "sqs-plaintext-allowed",
        "aws-sqs-queue-require-tls-only-policy",
        "dead-letter queue accepts requests without TLS",
        _queue_plaintext,
    ),
    Mutation(
        "sqs-queue-without-policy",
        "aws-sqs-queue-require-tls-only-policy",
        "SIEM notification queue without a queue policy",
        _queue_without_policy,
    ),
    Mutation(
        "sqs-public-send",
        "aws-sqs-queue-policy-no-public-allow",
        "anyone may send to the ingest queue",
        _queue_public_send,
    ),
]


# --- focused tests ------------------------------------------------------------------------------


def test_key_arns_are_references_not_secrets(snapshot: Snapshot, judge: Judge) -> None:
    # The default environment holds *_KEY_ARN variables: KMS key ARNs, not key material.
    assert any(name.endswith("_KEY_ARN") for name in _env(snapshot))
    assert not judge(snapshot, SECRETS).findings
    env = _env(snapshot)
    env["PACS_DB_SECRET_ARN"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
    env["PACS_API_TOKEN_TTL"] = "3600"
    env["PACS_BUILD_SHA"] = "0123456789abcdef0123456789abcdef01234567"  # hex digest, 40 chars
    assert not judge(snapshot, SECRETS).findings


def test_secret_values_are_found_but_never_repeated(snapshot: Snapshot, judge: Judge) -> None:
    env = _env(snapshot)
    secrets = {
        "PACS_UPSTREAM": "postgres://pacs:s3cr3t-pw@db.internal:5432/pacs",
        "PACS_SIGNER": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----",
        "PACS_AWS": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "partnerApiKey": "3f2c1a",
    }
    env.update(secrets)
    messages = _findings(judge(snapshot, SECRETS))
    assert len(messages) == len(secrets)
    for name, value in secrets.items():
        assert any(name in m for m in messages), name
        assert not any(value in m for m in messages), "a finding repeats the secret"


def test_synchronous_callers_need_no_failure_destination(snapshot: Snapshot, judge: Judge) -> None:
    _verify_without_failure_destination(snapshot)
    permission = snapshot.props(PERMISSION, "ingest-verify-invoke")
    permission["principal"] = "elasticloadbalancing.amazonaws.com"
    permission["sourceArn"] = (
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/verify/0123456789abcdef"
    )
    assert not judge(snapshot, FAILURES).findings


def test_dead_letter_queue_must_be_a_queue_of_the_stack(snapshot: Snapshot, judge: Judge) -> None:
    snapshot.props(QUEUE, "ingest-queue")["redrivePolicy"] = (
        '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:999999999999:elsewhere", '
        '"maxReceiveCount": 5}'
    )
    report = judge(snapshot, FAILURES)
    assert [f.urn.rsplit("::", 1)[-1] for f in report.findings] == ["ingest-ingest"]


def test_s3_permission_also_needs_the_source_account(snapshot: Snapshot, judge: Judge) -> None:
    permission = snapshot.props(PERMISSION, "ingest-verify-invoke")
    permission["principal"] = "s3.amazonaws.com"
    permission["sourceArn"] = "arn:aws:s3:::pacs-dev-123456789012-us-east-1-inbox"
    assert judge(snapshot, SOURCE).blocking
    permission["sourceAccount"] = "123456789012"
    assert not judge(snapshot, SOURCE).findings


def test_function_url_with_iam_authorization_passes(snapshot: Snapshot, judge: Judge) -> None:
    _function_url_without_auth(snapshot)
    assert judge(snapshot, SOURCE).blocking
    snapshot.props(FUNCTION_URL, "ingest-verify-url")["authorizationType"] = "AWS_IAM"
    assert not judge(snapshot, SOURCE).findings


def test_well_formed_references_pass_but_arn_prefixes_do_not(
    snapshot: Snapshot, judge: Judge
) -> None:
    env = _env(snapshot)
    env["PACS_PARTNER_AUTH_SECRET"] = (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:partner-AbCdEf"
    )
    env["PACS_PARTNER_AUTH_MODE"] = "iam"
    assert not judge(snapshot, SECRETS).findings
    env["PACS_PARTNER_AUTH_SECRET"] = "arn:aws:secretsmanager:::hunter2"
    assert len(_findings(judge(snapshot, SECRETS))) == 1


ALLOW_VERIFY_URL = {SOURCE: {"allowPublicFunctionUrls": ["pacs-*-verify"]}}


def test_the_pack_configuration_can_allow_a_reviewed_public_function_url(
    snapshot: Snapshot, judge: Judge
) -> None:
    # GIVEN a public URL of verify and the URL's two grants to everyone
    _function_url_without_auth(snapshot)
    for name, extra in (
        ("url", {"action": "lambda:InvokeFunctionUrl", "functionUrlAuthType": "NONE"}),
        ("invoke", {"action": "lambda:InvokeFunction", "invokedViaFunctionUrl": True}),
    ):
        snapshot.add(
            PERMISSION,
            f"ingest-verify-{name}",
            {"function": "pacs-dev-verify", "principal": "*", **extra},
        )
    # THEN refused by default, admitted when allowPublicFunctionUrls names the function
    assert len(judge(snapshot, SOURCE).blocking) == 3
    assert not judge(snapshot, SOURCE, config=ALLOW_VERIFY_URL).findings
    other = {SOURCE: {"allowPublicFunctionUrls": ["pacs-*-export-link"]}}
    assert len(judge(snapshot, SOURCE, config=other).blocking) == 3
    # AND even an allowed function may not be invoked by everyone outside its URL
    _allowed_url_grants_any_invocation(snapshot)
    refused = judge(snapshot, SOURCE, config=ALLOW_VERIFY_URL).blocking
    assert [f.urn.rsplit("::", 1)[-1] for f in refused] == ["ingest-verify-public-invoke"]


def test_invocations_through_a_function_url_are_synchronous(
    snapshot: Snapshot, judge: Judge
) -> None:
    _verify_without_failure_destination(snapshot)
    permission = snapshot.props(PERMISSION, "ingest-verify-invoke")
    permission.update(principal="*", action="lambda:InvokeFunctionUrl", functionUrlAuthType="NONE")
    del permission["sourceArn"]
    assert not judge(snapshot, FAILURES).findings
