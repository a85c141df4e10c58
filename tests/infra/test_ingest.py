"""IngestPipeline, checked on the whole program as `pulumi up` would create it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra import packaging
from infra.components.ingest import BATCH_WINDOW_SECONDS, FUNCTIONS
from infra.config import UID_LISTS_MAX_BYTES
from infra.iam_documents import (
    IngestResources,
    VerifyResources,
    ingest_role_policy,
    verify_role_policy,
)
from lambdas import settings as env
from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun, Registration
from tests.conftest import REPO, one, policy_of, statement

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
TABLE = "aws:dynamodb/table:Table"
FUNCTION = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
REGION = "us-east-1"
PREFIX = f"arn:aws:sqs:{REGION}:{MOCK_ACCOUNT_ID}"
INBOX = f"pacs-dev-{MOCK_ACCOUNT_ID}-{REGION}-inbox"
ARCHIVE = f"pacs-dev-{MOCK_ACCOUNT_ID}-{REGION}-archive"
QUARANTINE = f"pacs-dev-{MOCK_ACCOUNT_ID}-{REGION}-quarantine"


def key_arn(plan: ProgramRun, purpose: str) -> str:
    key = one(plan, "aws:kms/key:Key", f"keys-{purpose}")
    return f"arn:aws:kms:{REGION}:{MOCK_ACCOUNT_ID}:key/{key.id}"


def queue_arn(name: str) -> str:
    return f"{PREFIX}:{name}"


def table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{MOCK_ACCOUNT_ID}:table/{name}"


def log_group_arn(function: str) -> str:
    return f"arn:aws:logs:{REGION}:{MOCK_ACCOUNT_ID}:log-group:/aws/lambda/{function}"


def function(plan: ProgramRun, name: str) -> Registration:
    return one(plan, FUNCTION, f"ingest-{name}")


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = document["Statement"]
    return found


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


# --------------------------------------------------------------------------------------- queues


@pytest.mark.parametrize("queue", ["ingest-queue", "ingest-dlq", "ingest-verify-failures"])
def test_queues_are_encrypted_with_the_archive_key(plan: ProgramRun, queue: str) -> None:
    registered = one(plan, QUEUE, queue)
    assert registered.inputs["kmsMasterKeyId"] == key_arn(plan, "archive"), f"{queue}: key"
    assert not registered.inputs.get("sqsManagedSseEnabled"), f"{queue}: SSE-SQS instead of KMS"
    reuse = registered.inputs["kmsDataKeyReusePeriodSeconds"]
    assert 60 <= reuse <= 86400, f"{queue}: data key reuse period {reuse} outside SQS's range"


def test_queue_redrives_to_the_dlq_after_the_configured_receives(plan: ProgramRun) -> None:
    queue = one(plan, QUEUE, "ingest-queue")
    assert queue.inputs["name"] == "pacs-dev-ingest"
    assert one(plan, QUEUE, "ingest-dlq").inputs["name"] == "pacs-dev-ingest-dlq"
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": queue_arn("pacs-dev-ingest-dlq"),
        "maxReceiveCount": 5,
    }


def test_receive_count_follows_config(plan_with: Callable[..., ProgramRun]) -> None:
    queue = one(plan_with(ingestMaxReceiveCount=3), QUEUE, "ingest-queue")
    assert json.loads(queue.inputs["redrivePolicy"])["maxReceiveCount"] == 3


def test_only_the_ingest_queue_may_redrive_into_the_dlq(plan: ProgramRun) -> None:
    allow = one(plan, "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", "ingest-dlq-redrive-allow")
    assert allow.inputs["queueUrl"] == one(plan, QUEUE, "ingest-dlq").id
    assert json.loads(allow.inputs["redriveAllowPolicy"]) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [queue_arn("pacs-dev-ingest")],
    }


def test_dlq_keeps_messages_longer_than_the_queue(plan: ProgramRun) -> None:
    queue = one(plan, QUEUE, "ingest-queue").inputs["messageRetentionSeconds"]
    dlq = one(plan, QUEUE, "ingest-dlq").inputs["messageRetentionSeconds"]
    assert dlq == 14 * 24 * 3600, "ingest-dlq: 14 days, SQS's maximum"
    # A redriven message keeps its first enqueue time, so the DLQ must outlive the queue.
    assert queue < dlq, "ingest-queue: retention must be shorter than the DLQ's"
    assert one(plan, QUEUE, "ingest-verify-failures").inputs["messageRetentionSeconds"] == dlq


def test_visibility_timeout_is_six_function_timeouts_plus_the_batch_window(
    plan: ProgramRun,
) -> None:
    visibility = one(plan, QUEUE, "ingest-queue").inputs["visibilityTimeoutSeconds"]
    timeout = function(plan, "ingest").inputs["timeout"]
    assert visibility > timeout, "ingest-queue: a message would reappear during processing"
    assert visibility == 6 * timeout + BATCH_WINDOW_SECONDS, "ingest-queue: AWS's recommendation"
    assert visibility <= 12 * 3600, "ingest-queue: SQS allows at most 12 hours"


def test_ingest_queue_policy_admits_only_the_inbox_over_tls(plan: ProgramRun) -> None:
    document = policy_of(one(plan, QUEUE_POLICY, "ingest-queue-policy"))
    arn = queue_arn("pacs-dev-ingest")
    deny = statement(document, "DenyInsecureTransport")
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert deny["Resource"] == arn
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allows = [s for s in statements(document) if s["Effect"] == "Allow"]
    assert len(allows) == 1, "ingest-queue-policy: only S3 notifications may be allowed"
    (s3,) = allows
    assert s3["Principal"] == {"Service": "s3.amazonaws.com"}
    assert s3["Action"] == "sqs:SendMessage"
    assert s3["Resource"] == arn
    assert s3["Condition"] == {
        "ArnLike": {"aws:SourceArn": [f"arn:aws:s3:::{INBOX}"]},
        "StringEquals": {"aws:SourceAccount": MOCK_ACCOUNT_ID},
    }


@pytest.mark.parametrize(
    ("policy", "queue"),
    [
        ("ingest-dlq-policy", "pacs-dev-ingest-dlq"),
        ("ingest-verify-failures-policy", "pacs-dev-verify-failures"),
    ],
)
def test_other_queues_only_refuse_plain_http(plan: ProgramRun, policy: str, queue: str) -> None:
    document = policy_of(one(plan, QUEUE_POLICY, policy))
    (deny,) = statements(document)
    assert deny["Sid"] == "DenyInsecureTransport" and deny["Effect"] == "Deny", policy
    assert deny["Resource"] == queue_arn(queue), policy


def test_inbox_notifies_the_queue_of_every_new_object(plan: ProgramRun) -> None:
    notification = one(
        plan, "aws:s3/bucketNotification:BucketNotification", "ingest-inbox-notification"
    )
    assert notification.inputs["bucket"] == INBOX
    assert notification.inputs["queues"] == [
        {"queueArn": queue_arn("pacs-dev-ingest"), "events": ["s3:ObjectCreated:*"]}
    ]
    policy = one(plan, QUEUE_POLICY, "ingest-queue-policy")
    assert policy.urn in notification.dependencies, "S3 validates the queue policy on save"


# --------------------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("table", "physical", "key"),
    [
        ("ingest-index-table", "pacs-dev-index", "sop_instance_uid"),
        ("ingest-idempotency-table", "pacs-dev-idempotency", "id"),
    ],
)
def test_tables_are_on_demand_recoverable_protected_and_on_the_archive_key(
    plan: ProgramRun, table: str, physical: str, key: str
) -> None:
    registered = one(plan, TABLE, table)
    assert registered.inputs["name"] == physical
    assert registered.inputs["billingMode"] == "PAY_PER_REQUEST", table
    assert registered.inputs["hashKey"] == key, table
    assert registered.inputs["attributes"] == [{"name": key, "type": "S"}], table
    assert registered.inputs["pointInTimeRecovery"]["enabled"] is True, f"{table}: PITR"
    assert registered.inputs["deletionProtectionEnabled"] is True, f"{table}: deletion protection"
    assert registered.inputs["serverSideEncryption"] == {
        "enabled": True,
        "kmsKeyArn": key_arn(plan, "archive"),
    }, f"{table}: SSE with the archive key"


def test_index_is_protected_and_joins_the_backup_plan(plan: ProgramRun) -> None:
    index = one(plan, TABLE, "ingest-index-table")
    assert index.inputs["deletionProtectionEnabled"] is True, "ingest-index-table"
    selection = one(plan, "aws:backup/selection:Selection", "dr-selection")
    (condition,) = selection.inputs["conditions"]
    (tag,) = condition["stringEquals"]
    tag_key = tag["key"].removeprefix("aws:ResourceTag/")
    assert index.inputs["tags"][tag_key] == tag["value"], "the backup selection misses the index"


def test_idempotency_records_expire(plan: ProgramRun) -> None:
    table = one(plan, TABLE, "ingest-idempotency-table")
    assert table.inputs["ttl"] == {"attributeName": "expiration", "enabled": True}


# ------------------------------------------------------------------------------------ functions


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_are_arm64_python_312_or_newer(plan: ProgramRun, name: str) -> None:
    registered = function(plan, name)
    runtime = registered.inputs["runtime"]
    assert runtime == packaging.LAMBDA_RUNTIME, name
    major, minor = (int(part) for part in runtime.removeprefix("python").split("."))
    assert (major, minor) >= (3, 12), f"{name}: {runtime}"
    assert registered.inputs["architectures"] == ["arm64"], name
    assert registered.inputs["name"] == f"pacs-dev-{name}"
    assert registered.inputs["role"] == f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/pacs-dev-{name}"


@pytest.mark.parametrize(
    ("name", "handler", "module", "timeout", "memory"),
    [
        ("ingest", "lambdas.ingest.handler", "lambdas/ingest.py", 900, 1024),
        ("verify", "lambdas.verify.handler", "lambdas/verify.py", 900, 512),
    ],
)
def test_handlers_timeouts_and_memory(
    plan: ProgramRun, name: str, handler: str, module: str, timeout: int, memory: int
) -> None:
    registered = function(plan, name)
    assert registered.inputs["handler"] == handler, name
    assert module in registered.inputs["code"]["assetArchive"], f"{name}: {module} not packaged"
    assert registered.inputs["timeout"] == timeout, name
    assert registered.inputs["memorySize"] == memory, name


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_code_is_every_lambdas_source_file_and_nothing_else(plan: ProgramRun, name: str) -> None:
    archive = function(plan, name).inputs["code"]["assetArchive"]
    expected = packaging.lambda_sources()
    assert list(archive) == sorted(expected), f"{name}: files missing, extra or unsorted"
    assert all(
        p.startswith("lambdas/") and p.endswith((".py", *packaging.DATA_SUFFIXES)) for p in archive
    ), name
    assert "lambdas/deid/table_e1_1.tsv" in archive, f"{name}: the de-identification table"
    assert not [p for p in archive if "__pycache__" in p], f"{name}: byte code packaged"
    assert "lambdas/settings.py" in archive, f"{name}: the environment contract is missing"
    for path, asset in archive.items():
        assert asset == {"fileAsset": str(expected[path])}, f"{name}: {path}"


def test_lambda_sources_skip_byte_code(tmp_path: Path) -> None:
    (tmp_path / "lambdas" / "__pycache__").mkdir(parents=True)
    (tmp_path / "lambdas" / "b.py").write_text("")
    (tmp_path / "lambdas" / "a.py").write_text("")
    (tmp_path / "lambdas" / "__pycache__" / "a.py").write_text("")
    (tmp_path / "lambdas" / "notes.txt").write_text("")
    (tmp_path / "lambdas" / "table.tsv").write_text("")
    assert list(packaging.lambda_sources(tmp_path)) == [
        "lambdas/a.py",
        "lambdas/b.py",
        "lambdas/table.tsv",
    ]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_run_in_the_app_tier_behind_their_own_security_group(
    plan: ProgramRun, name: str
) -> None:
    vpc = function(plan, name).inputs["vpcConfig"]
    app = {s.id for s in plan.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "app"}
    assert len(app) == 2
    assert set(vpc["subnetIds"]) == app, f"{name}: not in the app subnets"
    sg = one(plan, "aws:ec2/securityGroup:SecurityGroup", "ingest-functions-sg")
    assert vpc["securityGroupIds"] == [sg.id], f"{name}: security group"


def test_function_security_group_reaches_only_the_vpc_endpoints(plan: ProgramRun) -> None:
    sg = one(plan, "aws:ec2/securityGroup:SecurityGroup", "ingest-functions-sg")
    assert not sg.inputs.get("ingress"), "ingest-functions-sg: functions take no connections"
    assert sg.inputs["vpcId"] == one(plan, "aws:ec2/vpc:Vpc", "network-vpc").id
    endpoints_sg = one(plan, "aws:ec2/securityGroup:SecurityGroup", "network-endpoints-sg").id
    prefix_lists = sorted(
        one(plan, "aws:ec2/vpcEndpoint:VpcEndpoint", f"network-{s}-endpoint").outputs[
            "prefixListId"
        ]
        for s in ("s3", "dynamodb")
    )
    egress = sg.inputs["egress"]
    for rule in egress:
        assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443), rule
        assert not rule.get("cidrBlocks") and not rule.get("ipv6CidrBlocks"), rule
    targets = sorted(
        [*(g for r in egress for g in r.get("securityGroups", []))],
    )
    assert targets == [endpoints_sg], "ingest-functions-sg: HTTPS to the interface endpoints"
    assert sorted(p for r in egress for p in r.get("prefixListIds", [])) == prefix_lists, (
        "ingest-functions-sg: HTTPS to the S3 and DynamoDB gateway endpoints"
    )


def test_reserved_concurrency_and_sqs_scaling(plan: ProgramRun) -> None:
    ingest = function(plan, "ingest").inputs
    verify = function(plan, "verify").inputs
    assert ingest["reservedConcurrentExecutions"] == 10, "ingest-ingest"
    assert verify["reservedConcurrentExecutions"] == 1, "ingest-verify"
    mapping = one(plan, "aws:lambda/eventSourceMapping:EventSourceMapping", "ingest-ingest-events")
    maximum = mapping.inputs["scalingConfig"]["maximumConcurrency"]
    assert 2 <= maximum <= ingest["reservedConcurrentExecutions"], "ingest-ingest-events"


def test_concurrency_follows_config(plan_with: Callable[..., ProgramRun]) -> None:
    run = plan_with(ingestReservedConcurrency=25, verifyReservedConcurrency=2)
    assert function(run, "ingest").inputs["reservedConcurrentExecutions"] == 25
    assert function(run, "verify").inputs["reservedConcurrentExecutions"] == 2
    mapping = one(run, "aws:lambda/eventSourceMapping:EventSourceMapping", "ingest-ingest-events")
    assert mapping.inputs["scalingConfig"]["maximumConcurrency"] == 25


def test_queue_feeds_the_ingest_function_with_partial_batch_failures(plan: ProgramRun) -> None:
    mapping = one(plan, "aws:lambda/eventSourceMapping:EventSourceMapping", "ingest-ingest-events")
    assert mapping.inputs["eventSourceArn"] == queue_arn("pacs-dev-ingest")
    assert mapping.inputs["functionName"] == (
        f"arn:aws:lambda:{REGION}:{MOCK_ACCOUNT_ID}:function:pacs-dev-ingest"
    )
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping.inputs["batchSize"] == 10
    assert mapping.inputs["maximumBatchingWindowInSeconds"] == BATCH_WINDOW_SECONDS
    policy = one(plan, ROLE_POLICY, "ingest-ingest-policy")
    assert policy.urn in mapping.dependencies, "Lambda checks the role can read the queue"


@pytest.mark.parametrize(("max_mib", "storage"), [(4096, 4608), (5120, 5632), (1, 513), (100, 612)])
def test_ingest_tmp_holds_the_largest_object(
    plan_with: Callable[..., ProgramRun], max_mib: int, storage: int
) -> None:
    run = plan_with(ingestMaxObjectMiB=max_mib)
    ingest = function(run, "ingest").inputs
    assert ingest["ephemeralStorage"] == {"size": storage}, f"ingest-ingest at {max_mib} MiB"
    assert 512 <= storage <= 10240
    assert ingest["environment"]["variables"][env.MAX_OBJECT_BYTES] == str(max_mib * 1024**2)


def test_verify_keeps_the_minimum_tmp(plan: ProgramRun) -> None:
    assert function(plan, "verify").inputs["ephemeralStorage"] == {"size": 512}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_log_json_to_their_own_encrypted_retained_group(
    plan: ProgramRun, name: str
) -> None:
    group = one(plan, LOG_GROUP, f"ingest-{name}-logs")
    assert group.inputs["name"] == f"/aws/lambda/pacs-dev-{name}"
    assert group.inputs["kmsKeyId"] == key_arn(plan, "logs"), f"{group.name}: logs key"
    assert group.inputs["retentionInDays"] == 2192, group.name
    logging = function(plan, name).inputs["loggingConfig"]
    assert logging["logFormat"] == "JSON", name
    assert logging["logGroup"] == group.inputs["name"], name


def test_ingest_environment_is_the_settings_contract(plan: ProgramRun) -> None:
    ingest = function(plan, "ingest").inputs
    assert ingest["environment"]["variables"] == {
        "POWERTOOLS_SERVICE_NAME": "pacs-ingest",
        env.ARCHIVE_BUCKET: ARCHIVE,
        env.QUARANTINE_BUCKET: QUARANTINE,
        env.DATA_KEY_ARN: key_arn(plan, "archive"),
        env.SIGNING_KEY_ARN: key_arn(plan, "signing"),
        env.PSEUDONYM_KEY_ARN: key_arn(plan, "pseudonym"),
        env.INDEX_TABLE: "pacs-dev-index",
        env.IDEMPOTENCY_TABLE: "pacs-dev-idempotency",
        env.MAX_OBJECT_BYTES: str(env.DEFAULT_MAX_OBJECT_BYTES),
        env.SIGNATURE_POLICY: "reject-invalid",
    }
    # What the function parses at start-up is what the stack meant.
    parsed = env.IngestSettings.from_env(ingest["environment"]["variables"])
    assert parsed.archive_bucket == ARCHIVE
    assert (parsed.transfer_syntaxes, parsed.sop_classes) == ((), ())


def test_verify_environment_is_the_settings_contract(plan: ProgramRun) -> None:
    variables = function(plan, "verify").inputs["environment"]["variables"]
    assert variables == {
        "POWERTOOLS_SERVICE_NAME": "pacs-verify",
        env.ARCHIVE_BUCKET: ARCHIVE,
        env.SIGNING_KEY_ARN: key_arn(plan, "signing"),
        env.INDEX_TABLE: "pacs-dev-index",
        env.VERIFY_SAMPLE_SIZE: "100",
    }
    assert env.VerifySettings.from_env(variables).sample_size == 100


def test_uid_lists_reach_the_function_within_lambdas_4_kb(
    plan_with: Callable[..., ProgramRun],
) -> None:
    syntaxes = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"]
    # The largest lists the config accepts, with the longest names an environment can give.
    budget = UID_LISTS_MAX_BYTES - len(",".join(syntaxes))
    classes = [f"1.2.840.{n:04d}." + "1" * 49 for n in range(1000, 1000 + (budget + 1) // 63)]
    assert len(",".join(classes)) <= budget < len(",".join(classes)) + 63
    run = plan_with(environment="x" * 16, ingestTransferSyntaxes=syntaxes, ingestSopClasses=classes)
    variables = function(run, "ingest").inputs["environment"]["variables"]
    parsed = env.IngestSettings.from_env(variables)
    assert parsed.transfer_syntaxes == tuple(syntaxes)
    assert parsed.sop_classes == tuple(classes)
    size = sum(len(k) + len(v) for k, v in variables.items())
    assert size <= 4096, f"ingest-ingest: {size} bytes of environment, Lambda allows 4096"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_environment_is_encrypted_with_the_archive_key(plan: ProgramRun, name: str) -> None:
    assert function(plan, name).inputs["kmsKeyArn"] == key_arn(plan, "archive"), name


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_use_the_dependency_layer(plan: ProgramRun, name: str) -> None:
    layer = one(plan, "aws:lambda/layerVersion:LayerVersion", "ingest-layer")
    assert function(plan, name).inputs["layers"] == [layer.outputs["arn"]], name
    assert layer.inputs["compatibleRuntimes"] == [packaging.LAMBDA_RUNTIME]
    assert layer.inputs["compatibleArchitectures"] == ["arm64"]
    assert layer.inputs["code"] == {"fileArchive": str(REPO / "build" / "lambda-layer.zip")}


@pytest.mark.parametrize("present", [False, True])
def test_missing_layer_zip_is_a_warning_naming_make_layer(
    plan_with: Callable[..., ProgramRun],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    present: bool,
) -> None:
    zip_path = tmp_path / "lambda-layer.zip"
    if present:
        zip_path.write_bytes(b"PK\x05\x06" + bytes(18))
    monkeypatch.setattr(packaging, "LAYER_ZIP", zip_path)
    run = plan_with()
    warned = [w for w in run.warnings if "make layer" in w]
    assert bool(warned) is not present, run.warnings
    layer = one(run, "aws:lambda/layerVersion:LayerVersion", "ingest-layer")
    assert layer.inputs["code"] == {"fileArchive": str(zip_path)}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_wait_for_their_network_permissions_and_log_group(
    plan: ProgramRun, name: str
) -> None:
    dependencies = function(plan, name).dependencies
    for needed in (
        one(plan, ATTACHMENT, f"ingest-{name}-vpc-access"),
        one(plan, ROLE_POLICY, f"ingest-{name}-policy"),
        one(plan, LOG_GROUP, f"ingest-{name}-logs"),
    ):
        assert needed.urn in dependencies, f"ingest-{name} does not wait for {needed.name}"


# --------------------------------------------------------------------------------------- verify


def test_verify_runs_daily_and_only_its_rule_may_invoke_it(plan: ProgramRun) -> None:
    rule = one(plan, "aws:cloudwatch/eventRule:EventRule", "ingest-verify-schedule")
    assert rule.inputs["scheduleExpression"] == "rate(1 day)"
    assert rule.inputs.get("state", "ENABLED") == "ENABLED"
    verify_arn = f"arn:aws:lambda:{REGION}:{MOCK_ACCOUNT_ID}:function:pacs-dev-verify"
    target = one(plan, "aws:cloudwatch/eventTarget:EventTarget", "ingest-verify-target")
    assert target.inputs["rule"] == rule.inputs["name"]
    assert target.inputs["arn"] == verify_arn
    permission = one(plan, "aws:lambda/permission:Permission", "ingest-verify-invoke")
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["function"] == "pacs-dev-verify"
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["sourceArn"] == rule.outputs["arn"], "any rule could invoke verify"


def test_failed_verify_runs_land_in_a_queue(plan: ProgramRun) -> None:
    config = one(
        plan,
        "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig",
        "ingest-verify-async",
    )
    assert config.inputs["functionName"] == "pacs-dev-verify"
    assert config.inputs["destinationConfig"] == {
        "onFailure": {"destination": queue_arn("pacs-dev-verify-failures")}
    }
    assert one(plan, ROLE_POLICY, "ingest-verify-policy").urn in config.dependencies, (
        "Lambda checks the role can send to the destination"
    )


# ---------------------------------------------------------------------------------------- roles


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_has_its_own_role_trusted_only_by_lambda(plan: ProgramRun, name: str) -> None:
    role = one(plan, ROLE, f"ingest-{name}-role")
    assert role.inputs["name"] == f"pacs-dev-{name}"
    (trust,) = statements(policy_of(role, "assumeRolePolicy"))
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}, role.name
    assert trust["Action"] == "sts:AssumeRole", role.name
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": MOCK_ACCOUNT_ID}
    policies = [p for p in plan.of_type(ROLE_POLICY) if p.inputs["role"] == f"pacs-dev-{name}"]
    assert [p.name for p in policies] == [f"ingest-{name}-policy"], role.name
    attachments = [a for a in plan.of_type(ATTACHMENT) if a.inputs["role"] == f"pacs-dev-{name}"]
    assert [a.inputs["policyArn"] for a in attachments] == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    ], f"{role.name}: the VPC access document is the only managed policy"


def expected_ingest_policy(plan: ProgramRun) -> dict[str, Any]:
    return ingest_role_policy(
        IngestResources(
            inbox_bucket=INBOX,
            archive_bucket=ARCHIVE,
            quarantine_bucket=QUARANTINE,
            queue_arn=queue_arn("pacs-dev-ingest"),
            data_key_arn=key_arn(plan, "archive"),
            signing_key_arn=key_arn(plan, "signing"),
            pseudonym_key_arn=key_arn(plan, "pseudonym"),
            index_table_arn=table_arn("pacs-dev-index"),
            idempotency_table_arn=table_arn("pacs-dev-idempotency"),
            log_group_arn=log_group_arn("pacs-dev-ingest"),
        )
    )


def test_ingest_role_carries_exactly_the_pure_functions_policy(plan: ProgramRun) -> None:
    attached = policy_of(one(plan, ROLE_POLICY, "ingest-ingest-policy"))
    assert attached == expected_ingest_policy(plan)


def test_verify_role_carries_exactly_the_pure_functions_policy(plan: ProgramRun) -> None:
    attached = policy_of(one(plan, ROLE_POLICY, "ingest-verify-policy"))
    assert attached == verify_role_policy(
        VerifyResources(
            archive_bucket=ARCHIVE,
            data_key_arn=key_arn(plan, "archive"),
            signing_key_arn=key_arn(plan, "signing"),
            index_table_arn=table_arn("pacs-dev-index"),
            log_group_arn=log_group_arn("pacs-dev-verify"),
            failure_queue_arn=queue_arn("pacs-dev-verify-failures"),
        )
    )


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_role_policy_has_no_delete_no_wildcard_action_and_no_star_resource(
    plan: ProgramRun, name: str
) -> None:
    document = policy_of(one(plan, ROLE_POLICY, f"ingest-{name}-policy"))
    for stmt in statements(document):
        where = f"ingest-{name}-policy {stmt.get('Sid')}"
        assert stmt.get("Sid"), f"ingest-{name}-policy: a statement without a Sid"
        assert stmt["Effect"] == "Allow", where
        actions = as_list(stmt["Action"])
        assert not [a for a in actions if "*" in a or "?" in a], f"{where}: wildcard action"
        assert not [a for a in actions if a.lower().startswith("s3:delete")], f"{where}: delete"
        resources = as_list(stmt["Resource"])
        assert "*" not in resources, f"{where}: bare * resource"
        assert all(r.startswith("arn:aws:") for r in resources), f"{where}: {resources}"


def actions_on(document: dict[str, Any], resource: str) -> set[str]:
    return {
        a
        for s in statements(document)
        if resource in as_list(s["Resource"])
        for a in as_list(s["Action"])
    }


def test_ingest_role_actions_per_resource_are_exact(plan: ProgramRun) -> None:
    document = policy_of(one(plan, ROLE_POLICY, "ingest-ingest-policy"))
    expected = {
        f"arn:aws:s3:::{INBOX}/*": {"s3:GetObject", "s3:GetObjectVersion"},
        f"arn:aws:s3:::{ARCHIVE}/{env.ARCHIVE_PREFIX}*": {
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:PutObject",
        },
        f"arn:aws:s3:::{ARCHIVE}": {"s3:ListBucket"},
        f"arn:aws:s3:::{QUARANTINE}/*": {
            "s3:AbortMultipartUpload",
            "s3:PutObject",
            "s3:PutObjectTagging",
        },
        queue_arn("pacs-dev-ingest"): {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
        },
        key_arn(plan, "signing"): {"kms:Sign"},
        key_arn(plan, "pseudonym"): {"kms:GenerateMac"},
        key_arn(plan, "archive"): {"kms:Decrypt", "kms:GenerateDataKey"},
        table_arn("pacs-dev-index"): {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        },
        table_arn("pacs-dev-idempotency"): {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        },
        f"{log_group_arn('pacs-dev-ingest')}:*": {"logs:CreateLogStream", "logs:PutLogEvents"},
    }
    resources = {r for s in statements(document) for r in as_list(s["Resource"])}
    assert resources == set(expected), "ingest-ingest-policy: resources"
    for resource, actions in expected.items():
        assert actions_on(document, resource) == actions, f"ingest-ingest-policy: {resource}"


def test_verify_role_reads_and_verifies_but_writes_nothing(plan: ProgramRun) -> None:
    document = policy_of(one(plan, ROLE_POLICY, "ingest-verify-policy"))
    actions = {a for s in statements(document) for a in as_list(s["Action"])}
    assert actions == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "kms:Verify",
        "kms:GetPublicKey",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "dynamodb:Scan",
        "dynamodb:GetItem",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:SendMessage",
    }, "ingest-verify-policy"
    assert actions_on(document, key_arn(plan, "signing")) == {"kms:Verify", "kms:GetPublicKey"}
    assert actions_on(document, queue_arn("pacs-dev-verify-failures")) == {"sqs:SendMessage"}
    archive = statement(document, "ReadArchivedInstancesAndSidecars")
    assert archive["Resource"] == f"arn:aws:s3:::{ARCHIVE}/{env.ARCHIVE_PREFIX}*"


def test_verify_policy_without_a_failure_queue_sends_nothing() -> None:
    document = verify_role_policy(
        VerifyResources(
            archive_bucket="b",
            data_key_arn="arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/k",
            signing_key_arn="arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/s",
            index_table_arn="arn:aws-us-gov:dynamodb:us-gov-west-1:123456789012:table/t",
            log_group_arn="arn:aws-us-gov:logs:us-gov-west-1:123456789012:log-group:g",
        )
    )
    actions = {a for s in statements(document) for a in as_list(s["Action"])}
    assert not {"sqs:SendMessage", "kms:GenerateDataKey"} & actions
    # Bucket ARNs take the partition of the other ARNs.
    assert statement(document, "ReadArchivedInstancesAndSidecars")["Resource"] == (
        "arn:aws-us-gov:s3:::b/studies/*"
    )


def test_policies_refuse_a_non_arn() -> None:
    with pytest.raises(ValueError, match="not an ARN"):
        verify_role_policy(VerifyResources("b", "key", "s", "t", "g"))


# --------------------------------------------------------------------------------------- alarms


def test_operations_topic_is_encrypted_and_only_alarms_publish(plan: ProgramRun) -> None:
    topic = one(plan, "aws:sns/topic:Topic", "ingest-operations")
    assert topic.inputs["name"] == "pacs-dev-operations"
    assert topic.inputs["kmsMasterKeyId"] == key_arn(plan, "logs"), "ingest-operations: key"
    document = policy_of(one(plan, "aws:sns/topicPolicy:TopicPolicy", "ingest-operations-policy"))
    publish = statement(document, "CloudWatchAlarmsOfThisAccountPublish")
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish["Resource"] == topic.outputs["arn"]
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": MOCK_ACCOUNT_ID}
    assert statement(document, "DenyInsecureTransport")["Effect"] == "Deny"


@pytest.mark.parametrize(
    ("alarm", "namespace", "metric", "dimension"),
    [
        (
            "ingest-dlq-alarm",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "pacs-dev-ingest-dlq",
        ),
        (
            "ingest-verify-failures-alarm",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "pacs-dev-verify-failures",
        ),
        ("ingest-ingest-errors-alarm", "AWS/Lambda", "Errors", "pacs-dev-ingest"),
        ("ingest-verify-errors-alarm", "AWS/Lambda", "Errors", "pacs-dev-verify"),
    ],
)
def test_alarms_fire_on_the_first_failure_to_the_operations_topic(
    plan: ProgramRun, alarm: str, namespace: str, metric: str, dimension: str
) -> None:
    registered = one(plan, ALARM, alarm).inputs
    assert (registered["namespace"], registered["metricName"]) == (namespace, metric), alarm
    assert list(registered["dimensions"].values()) == [dimension], alarm
    assert registered["comparisonOperator"] == "GreaterThanThreshold", alarm
    assert registered["threshold"] == 0, alarm
    topic = one(plan, "aws:sns/topic:Topic", "ingest-operations").outputs["arn"]
    assert registered["alarmActions"] == [topic], f"{alarm}: nobody is told"


# -------------------------------------------------------------------------------------- program


def test_outputs_name_the_queues_tables_and_functions(plan: ProgramRun) -> None:
    outputs = plan.outputs
    assert outputs["ingestQueueUrl"].endswith(f"/{MOCK_ACCOUNT_ID}/pacs-dev-ingest")
    assert outputs["ingestDeadLetterQueueUrl"].endswith("/pacs-dev-ingest-dlq")
    assert outputs["tables"] == {"index": "pacs-dev-index", "idempotency": "pacs-dev-idempotency"}
    assert outputs["functions"] == {"ingest": "pacs-dev-ingest", "verify": "pacs-dev-verify"}


def test_infra_never_imports_pydicom() -> None:
    code = (
        "import sys, infra.components.ingest, infra.config, infra.iam_documents, pacs_kit.layer;"
        "sys.exit('pydicom' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr or "infra imported pydicom"


def test_signature_policy_and_trust_bundle_reach_the_ingest_function(
    plan_with: Callable[..., ProgramRun],
) -> None:
    # GIVEN a trust bundle and require-valid; WHEN planned; THEN the policy is in the environment
    # and the bundle's text is packaged at the path the environment names (the 4 KB stay free).
    bundle = (REPO / "examples/pki/ca.pem").read_text()
    run = plan_with(
        ingestSignaturePolicy="require-valid", ingestSignatureTrustBundle="examples/pki/ca.pem"
    )
    ingest = function(run, "ingest").inputs
    variables = ingest["environment"]["variables"]
    assert variables[env.SIGNATURE_POLICY] == "require-valid"
    assert variables[env.SIGNATURE_TRUST_BUNDLE] == env.SIGNATURE_TRUST_FILE
    assert bundle not in json.dumps(variables), "ingest-ingest: the PEM went into the environment"
    packaged = ingest["code"]["assetArchive"][env.SIGNATURE_TRUST_FILE]
    assert packaged == {"stringAsset": bundle}, f"ingest-ingest: {packaged}"
    # The verify function's package does not carry it.
    verify_code = function(run, "verify").inputs["code"]["assetArchive"]
    assert env.SIGNATURE_TRUST_FILE not in verify_code, "ingest-verify: trust bundle packaged"
