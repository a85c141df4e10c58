"""IngestPipeline: inbox events → queue → ingest function → archive or quarantine; daily verify.

Fixed, not knobs: encrypted queues with a dead-letter queue, functions in the app tier whose only
egress is the VPC endpoints, one least-privilege role per function, KMS-encrypted logs kept for the
log retention, alarms on everything that needs a human. Knobs are sizes and lists that legitimately
differ between deployments (object size cap, receive count, concurrency, accepted UIDs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra import packaging
from infra.components.bucket import SecureBucket
from infra.components.logs import encrypted_log_group
from infra.iam_documents import (
    Account,
    IngestResources,
    VerifyResources,
    ingest_role_policy,
    operations_topic_policy,
    queue_policy,
    service_trust_policy,
    verify_role_policy,
)
from lambdas import settings as env

MIB = 1024**2
# Lambda limits: ephemeral storage 512-10240 MB.
EPHEMERAL_MIN_MB = 512
EPHEMERAL_MAX_MB = 10240
# /tmp holds the spooled object plus the runtime's and the libraries' own temporary files.
SPOOL_MARGIN_MB = 512
BATCH_SIZE = 10
BATCH_WINDOW_SECONDS = 5
# AWS: the source queue's visibility timeout should be at least six times the function timeout
# (plus the batching window), so Lambda can retry a throttled batch before it reappears.
VISIBILITY_TIMEOUT_FACTOR = 6
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
# Redriven messages keep their original enqueue time: the DLQ must keep them longer than the queue.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
# How long SQS reuses a data key before asking KMS again: fewer KMS calls under bursts of events.
KMS_DATA_KEY_REUSE_SECONDS = 900
VERIFY_SCHEDULE = "rate(1 day)"
ALARM_PERIOD_SECONDS = 300
VPC_ACCESS_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between the pipeline's two functions."""

    handler: str
    service: str
    description: str
    timeout_seconds: int
    # Sized from docs/benchmarks.md: the validate + hash core's peak RSS stays under 50 MB whatever
    # the object size, so memory buys CPU (Lambda allots it in proportion) for hashing.
    memory_mb: int


FUNCTIONS: dict[str, FunctionSpec] = {
    "ingest": FunctionSpec(
        handler="lambdas.ingest.handler",
        service="pacs-ingest",
        description="Validate, sign and archive (or quarantine) each object of the inbox",
        # Lambda's maximum: a batch may hold several objects near ingestMaxObjectMiB, each read
        # once (about 1 GiB/s here) and copied server-side, which S3 does at far lower rates.
        timeout_seconds=900,
        memory_mb=1024,  # about 0.6 vCPU for hashing; the core itself needs < 50 MB
    ),
    "verify": FunctionSpec(
        handler="lambdas.verify.handler",
        service="pacs-verify",
        description="Re-read a sample of archived instances and check digests and signatures",
        timeout_seconds=900,
        memory_mb=512,  # one object hashed at a time, once a day: throughput matters less
    ),
}


def function_name(name_prefix: str, function: str) -> str:
    """Physical function name, also the IAM role's name: the key policies grant roles by name."""
    return f"{name_prefix}-{function}"


def ingest_role_name(name_prefix: str) -> str:
    """The ingest function's role name; the key policies grant it by name before it exists."""
    return function_name(name_prefix, "ingest")


def verify_role_name(name_prefix: str) -> str:
    """The verify function's role name; the key policies grant it by name before it exists."""
    return function_name(name_prefix, "verify")


def ephemeral_storage_mb(max_object_mib: int) -> int:
    """/tmp for the largest object the ingest function spools, within Lambda's limits."""
    return min(EPHEMERAL_MAX_MB, max(EPHEMERAL_MIN_MB, max_object_mib + SPOOL_MARGIN_MB))


def visibility_timeout_seconds(function_timeout_seconds: int) -> int:
    """Visibility timeout of a queue that feeds a function with this timeout."""
    return VISIBILITY_TIMEOUT_FACTOR * function_timeout_seconds + BATCH_WINDOW_SECONDS


@dataclass(frozen=True)
class IngestPipelineArgs:
    """The buckets, keys and network the pipeline runs on, and its deployment-specific sizes."""

    account: Account
    name_prefix: str
    inbox: SecureBucket
    archive: SecureBucket
    quarantine: SecureBucket
    data_key: aws.kms.Key
    signing_key: aws.kms.Key
    pseudonym_key: aws.kms.Key
    logs_key: aws.kms.Key
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    endpoint_security_group_id: pulumi.Input[str]
    gateway_prefix_list_ids: Sequence[pulumi.Input[str]]
    # The DR component's selection tag: tables carrying it join the backup plan.
    backup_tag: Mapping[str, str]
    log_retention_days: int
    max_object_mib: int
    max_receive_count: int
    reserved_concurrency: int
    transfer_syntaxes: tuple[str, ...]
    sop_classes: tuple[str, ...]
    verify_sample_size: int
    verify_reserved_concurrency: int
    # The stack's permissions boundary (infra/components/identity.py): every role carries it.
    permissions_boundary: pulumi.Input[str]
    # What DICOM digital signatures of arriving objects decide (lambdas/settings.py).
    signature_policy: str = env.DEFAULT_SIGNATURE_POLICY
    # PEM text of the CAs signers chain to; packaged with the ingest function's code (not in its
    # environment, which Lambda limits to 4 KB and the UID lists may nearly fill).
    signature_trust_pem: str | None = None
    # None: the repository's lambdas/ and build/lambda-layer.zip (see infra/packaging.py).
    source_root: Path | None = None
    layer_zip: Path | None = None


class IngestPipeline(pulumi.ComponentResource):
    """Queues, index tables, the ingest and verify functions, their roles, logs and alarms."""

    queue: aws.sqs.Queue
    dead_letter_queue: aws.sqs.Queue
    verify_failures: aws.sqs.Queue
    index_table: aws.dynamodb.Table
    idempotency_table: aws.dynamodb.Table
    security_group: aws.ec2.SecurityGroup
    layer: aws.lambda_.LayerVersion
    functions: dict[str, aws.lambda_.Function]
    roles: dict[str, aws.iam.Role]
    log_groups: dict[str, aws.cloudwatch.LogGroup]
    operations_topic: aws.sns.Topic
    # Where the pipeline's functions run; the research and export functions run there too.
    function_host: FunctionHost

    def __init__(
        self, name: str, args: IngestPipelineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:ingest:IngestPipeline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = args.account
        prefix = args.name_prefix
        ingest_spec = FUNCTIONS["ingest"]

        # --- queues -----------------------------------------------------------------------------
        queues = notified_queue(
            name,
            NotifiedQueueArgs(
                queue_name=f"{prefix}-ingest",
                bucket=args.inbox,
                notification="inbox",
                data_key=args.data_key,
                account=account,
                function_timeout_seconds=ingest_spec.timeout_seconds,
                max_receive_count=args.max_receive_count,
            ),
            self,
        )
        self.queue, self.dead_letter_queue = queues.queue, queues.dead_letter_queue
        self.verify_failures = failure_queue(
            f"{name}-verify-failures", f"{prefix}-verify-failures", args.data_key, account, child
        )

        # --- tables -----------------------------------------------------------------------------
        self.index_table = encrypted_table(
            f"{name}-index-table",
            f"{prefix}-index",
            args.data_key,
            child,
            hash_key="sop_instance_uid",
            tags={**args.backup_tag, "purpose": "ingest-index", "data-classification": "phi"},
        )
        self.idempotency_table = encrypted_table(
            f"{name}-idempotency-table",
            f"{prefix}-idempotency",
            args.data_key,
            child,
            # Powertools idempotency's record layout: key "id", expiry epoch in "expiration".
            hash_key="id",
            ttl_attribute="expiration",
            tags={"purpose": "ingest-idempotency", "data-classification": "phi"},
        )

        # --- network, code, layer ---------------------------------------------------------------
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-functions-sg",
            vpc_id=args.vpc_id,
            description="Ingest and verify functions: HTTPS to the VPC endpoints, nothing else",
            ingress=[],
            egress=[
                {
                    "description": "HTTPS to the interface endpoints (KMS, SQS, Logs, STS)",
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "security_groups": [args.endpoint_security_group_id],
                },
                {
                    "description": "HTTPS to the S3 and DynamoDB gateway endpoints",
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "prefix_list_ids": list(args.gateway_prefix_list_ids),
                },
            ],
            tags={"Name": f"{prefix}-pipeline-functions"},
            opts=child,
        )
        source_root = args.source_root or packaging.REPO
        layer_zip = args.layer_zip or packaging.REPO / packaging.LAYER_ZIP
        if not layer_zip.is_file():
            pulumi.log.warn(
                f"the Lambda layer {layer_zip} does not exist: run `make layer` before "
                "`pulumi up` (the offline plan does not need it)"
            )
        self.layer = aws.lambda_.LayerVersion(
            f"{name}-layer",
            layer_name=f"{prefix}-python-deps",
            description="Pinned pure-Python dependencies of lambdas/ (lambdas/requirements.txt)",
            code=pulumi.FileArchive(str(layer_zip)),
            compatible_runtimes=[packaging.LAMBDA_RUNTIME],
            compatible_architectures=[packaging.LAMBDA_ARCHITECTURE],
            opts=child,
        )
        code = function_code(source_root)
        codes: dict[str, pulumi.Archive] = {
            "ingest": function_code(source_root, signature_trust_pem=args.signature_trust_pem)
            if args.signature_trust_pem
            else code,
            "verify": code,
        }

        # --- roles, logs, functions -------------------------------------------------------------
        self.functions = {}
        self.roles = {}
        self.log_groups = {}
        role_policies: dict[str, aws.iam.RolePolicy] = {}
        environments: dict[str, dict[str, pulumi.Input[str]]] = {
            "ingest": _ingest_environment(args, self),
            "verify": {
                env.ARCHIVE_BUCKET: args.archive.name,
                env.SIGNING_KEY_ARN: args.signing_key.arn,
                env.INDEX_TABLE: self.index_table.name,
                env.VERIFY_SAMPLE_SIZE: str(args.verify_sample_size),
            },
        }
        concurrency = {
            "ingest": args.reserved_concurrency,
            "verify": args.verify_reserved_concurrency,
        }
        # Verify streams archived objects through SHA-256 and never spools them.
        storage = {"ingest": ephemeral_storage_mb(args.max_object_mib), "verify": EPHEMERAL_MIN_MB}
        self.function_host = host = FunctionHost(
            account=account,
            layer_arn=self.layer.arn,
            data_key=args.data_key,
            logs_key=args.logs_key,
            log_retention_days=args.log_retention_days,
            permissions_boundary=args.permissions_boundary,
            subnet_ids=args.subnet_ids,
            security_group_id=self.security_group.id,
        )
        for function, spec in FUNCTIONS.items():
            built = vpc_function(
                f"{name}-{function}",
                VpcFunctionArgs(
                    host=host,
                    physical_name=function_name(prefix, function),
                    spec=spec,
                    code=codes[function],
                    environment=environments[function],
                    role_policy=lambda group, function=function: self._role_policy(  # type: ignore[misc]
                        function, args, group
                    ),
                    ephemeral_storage_mb=storage[function],
                    reserved_concurrency=concurrency[function],
                ),
                parent=self,
            )
            self.functions[function] = built.function
            self.roles[function] = built.role
            self.log_groups[function] = built.log_group
            role_policies[function] = built.role_policy

        queue_trigger(
            f"{name}-ingest-events",
            self.queue,
            self.functions["ingest"],
            args.reserved_concurrency,
            role_policies["ingest"],
            self,
        )
        self._schedule_verify(name, prefix, role_policies["verify"])

        # --- alarms -----------------------------------------------------------------------------
        self.operations_topic = aws.sns.Topic(
            f"{name}-operations",
            name=f"{prefix}-operations",
            kms_master_key_id=args.logs_key.arn,
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-operations-policy",
            arn=self.operations_topic.arn,
            policy=self.operations_topic.arn.apply(
                lambda arn: json.dumps(operations_topic_policy(account, arn, account.region))
            ),
            opts=child,
        )
        for queue_name, queue, what in (
            ("dlq", self.dead_letter_queue, "inbox events failed ingest repeatedly"),
            ("verify-failures", self.verify_failures, "verify runs failed"),
        ):
            failure_alarm(
                f"{name}-{queue_name}-alarm",
                f"{prefix}-{queue_name}-not-empty",
                f"{what}: inspect the messages in the queue, fix, then redrive",
                queue,
                self.operations_topic.arn,
                self,
            )
        for function, fn in self.functions.items():
            failure_alarm(
                f"{name}-{function}-errors-alarm",
                f"{prefix}-{function}-errors",
                f"the {function} function failed: read its log group for the error",
                fn,
                self.operations_topic.arn,
                self,
            )

        self.register_outputs(
            {
                "queueUrl": self.queue.url,
                "deadLetterQueueUrl": self.dead_letter_queue.url,
                "indexTable": self.index_table.name,
                "idempotencyTable": self.idempotency_table.name,
                "functions": {f: fn.name for f, fn in self.functions.items()},
                "operationsTopicArn": self.operations_topic.arn,
            }
        )

    def _role_policy(
        self, function: str, args: IngestPipelineArgs, log_group: aws.cloudwatch.LogGroup
    ) -> pulumi.Output[str]:
        arns = pulumi.Output.all(
            queue=self.queue.arn,
            failures=self.verify_failures.arn,
            data_key=args.data_key.arn,
            signing_key=args.signing_key.arn,
            pseudonym_key=args.pseudonym_key.arn,
            index=self.index_table.arn,
            idempotency=self.idempotency_table.arn,
            log_group=log_group.arn,
        )
        if function == "ingest":
            return arns.apply(
                lambda a: json.dumps(
                    ingest_role_policy(
                        IngestResources(
                            inbox_bucket=args.inbox.name,
                            archive_bucket=args.archive.name,
                            quarantine_bucket=args.quarantine.name,
                            queue_arn=a["queue"],
                            data_key_arn=a["data_key"],
                            signing_key_arn=a["signing_key"],
                            pseudonym_key_arn=a["pseudonym_key"],
                            index_table_arn=a["index"],
                            idempotency_table_arn=a["idempotency"],
                            log_group_arn=a["log_group"],
                        )
                    )
                )
            )
        return arns.apply(
            lambda a: json.dumps(
                verify_role_policy(
                    VerifyResources(
                        archive_bucket=args.archive.name,
                        data_key_arn=a["data_key"],
                        signing_key_arn=a["signing_key"],
                        index_table_arn=a["index"],
                        log_group_arn=a["log_group"],
                        failure_queue_arn=a["failures"],
                    )
                )
            )
        )

    def _schedule_verify(self, name: str, prefix: str, role_policy: aws.iam.RolePolicy) -> None:
        verify = self.functions["verify"]
        child = pulumi.ResourceOptions(parent=self)
        rule = aws.cloudwatch.EventRule(
            f"{name}-verify-schedule",
            name=f"{prefix}-verify-daily",
            description="Daily integrity check of a sample of the archive",
            schedule_expression=VERIFY_SCHEDULE,
            state="ENABLED",
            opts=child,
        )
        invoke = aws.lambda_.Permission(
            f"{name}-verify-invoke",
            action="lambda:InvokeFunction",
            function=verify.name,
            principal="events.amazonaws.com",
            # Only this rule, not any EventBridge rule of any account, may invoke the function.
            source_arn=rule.arn,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-verify-target",
            rule=rule.name,
            arn=verify.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[invoke]),
        )
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-verify-async",
            function_name=verify.name,
            maximum_retry_attempts=1,
            maximum_event_age_in_seconds=6 * 3600,
            destination_config={"on_failure": {"destination": self.verify_failures.arn}},
            # Lambda checks at creation that the role may send to the destination.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )


def failure_alarm(
    resource_name: str,
    alarm_name: str,
    description: str,
    watched: aws.sqs.Queue | aws.lambda_.Function,
    topic_arn: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.cloudwatch.MetricAlarm:
    """Notifies the operations topic when a (dead-letter or failure) queue holds a message or
    when a function fails."""
    if isinstance(watched, aws.sqs.Queue):
        namespace, metric, statistic = "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum"
        dimension = "QueueName"
    else:
        namespace, metric, statistic, dimension = "AWS/Lambda", "Errors", "Sum", "FunctionName"
    return aws.cloudwatch.MetricAlarm(
        resource_name,
        name=alarm_name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric,
        statistic=statistic,
        dimensions={dimension: watched.name},
        period=ALARM_PERIOD_SECONDS,
        evaluation_periods=1,
        comparison_operator="GreaterThanThreshold",
        threshold=0,
        # No datapoints means nothing failed.
        treat_missing_data="notBreaching",
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class NotifiedQueueArgs:
    """A function's queue, fed by a bucket's ``ObjectCreated`` notifications."""

    queue_name: str
    bucket: SecureBucket
    # The notification resource is ``{name}-{notification}-notification``.
    notification: str
    data_key: aws.kms.Key
    account: Account
    function_timeout_seconds: int
    max_receive_count: int
    # Only the keys with this prefix and suffix notify (every key when None).
    filter_prefix: str | None = None
    filter_suffix: str | None = None


@dataclass(frozen=True)
class NotifiedQueue:
    queue: aws.sqs.Queue
    dead_letter_queue: aws.sqs.Queue


def notified_queue(name: str, args: NotifiedQueueArgs, parent: pulumi.Resource) -> NotifiedQueue:
    """The queue, its dead-letter queue, their policies and the bucket's notification to it."""
    child = pulumi.ResourceOptions(parent=parent)
    dead_letter_queue = encrypted_queue(
        f"{name}-dlq",
        f"{args.queue_name}-dlq",
        args.data_key,
        DLQ_RETENTION_SECONDS,
        child,
    )
    queue = encrypted_queue(
        f"{name}-queue",
        args.queue_name,
        args.data_key,
        QUEUE_RETENTION_SECONDS,
        child,
        visibility_timeout_seconds=visibility_timeout_seconds(args.function_timeout_seconds),
        redrive_policy=dead_letter_queue.arn.apply(
            lambda arn: json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count}
            )
        ),
    )
    aws.sqs.RedriveAllowPolicy(
        f"{name}-dlq-redrive-allow",
        queue_url=dead_letter_queue.id,
        # Only this queue may park messages here.
        redrive_allow_policy=queue.arn.apply(
            lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
        ),
        opts=child,
    )
    queue_access = aws.sqs.QueuePolicy(
        f"{name}-queue-policy",
        queue_url=queue.id,
        policy=queue.arn.apply(
            lambda arn: json.dumps(
                queue_policy(args.account, arn, notifying_buckets=(args.bucket.name,))
            )
        ),
        opts=child,
    )
    tls_only_queue_policy(f"{name}-dlq-policy", dead_letter_queue, args.account, child)
    entry: aws.s3.BucketNotificationQueueArgsDict = {
        "queue_arn": queue.arn,
        "events": ["s3:ObjectCreated:*"],
    }
    if args.filter_prefix is not None:
        entry["filter_prefix"] = args.filter_prefix
    if args.filter_suffix is not None:
        entry["filter_suffix"] = args.filter_suffix
    # S3 keeps one notification configuration per bucket: this is the bucket's only one.
    aws.s3.BucketNotification(
        f"{name}-{args.notification}-notification",
        bucket=args.bucket.bucket.id,
        queues=[entry],
        # S3 sends a test event when the configuration is saved: the queue policy must exist.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[queue_access]),
    )
    return NotifiedQueue(queue=queue, dead_letter_queue=dead_letter_queue)


def queue_trigger(
    resource_name: str,
    queue: aws.sqs.Queue,
    function: aws.lambda_.Function,
    maximum_concurrency: int,
    role_policy: pulumi.Resource,
    parent: pulumi.Resource,
) -> aws.lambda_.EventSourceMapping:
    """The function's event source mapping from its queue, with partial batch failures."""
    return aws.lambda_.EventSourceMapping(
        resource_name,
        event_source_arn=queue.arn,
        function_name=function.arn,
        batch_size=BATCH_SIZE,
        maximum_batching_window_in_seconds=BATCH_WINDOW_SECONDS,
        # Only the failed records of a batch return to the queue.
        function_response_types=["ReportBatchItemFailures"],
        # Never more pollers than reserved instances: excess invocations would be throttled.
        scaling_config={"maximum_concurrency": maximum_concurrency},
        # Lambda checks at creation that the role may receive from the queue.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[role_policy]),
    )


def encrypted_queue(
    resource_name: str,
    queue_name: str,
    key: aws.kms.Key,
    retention_seconds: int,
    opts: pulumi.ResourceOptions,
    *,
    visibility_timeout_seconds: int | None = None,
    redrive_policy: pulumi.Input[str] | None = None,
) -> aws.sqs.Queue:
    return aws.sqs.Queue(
        resource_name,
        name=queue_name,
        # Event messages carry object keys, which name studies: customer-managed key, not SSE-SQS.
        kms_master_key_id=key.arn,
        kms_data_key_reuse_period_seconds=KMS_DATA_KEY_REUSE_SECONDS,
        message_retention_seconds=retention_seconds,
        visibility_timeout_seconds=visibility_timeout_seconds,
        redrive_policy=redrive_policy,
        opts=opts,
    )


def tls_only_queue_policy(
    resource_name: str, queue: aws.sqs.Queue, account: Account, opts: pulumi.ResourceOptions
) -> aws.sqs.QueuePolicy:
    return aws.sqs.QueuePolicy(
        resource_name,
        queue_url=queue.id,
        policy=queue.arn.apply(lambda arn: json.dumps(queue_policy(account, arn))),
        opts=opts,
    )


def failure_queue(
    resource_name: str,
    queue_name: str,
    key: aws.kms.Key,
    account: Account,
    opts: pulumi.ResourceOptions,
) -> aws.sqs.Queue:
    """Where Lambda reports a failed asynchronous invocation: encrypted, TLS only, kept as long
    as a dead-letter queue. Its policy is ``<resource_name>-policy``."""
    queue = encrypted_queue(resource_name, queue_name, key, DLQ_RETENTION_SECONDS, opts)
    tls_only_queue_policy(f"{resource_name}-policy", queue, account, opts)
    return queue


def encrypted_table(
    resource_name: str,
    table_name: str,
    key: aws.kms.Key,
    opts: pulumi.ResourceOptions,
    *,
    hash_key: str,
    tags: Mapping[str, str],
    range_key: str | None = None,
    ttl_attribute: str | None = None,
) -> aws.dynamodb.Table:
    """An on-demand table of string keys, encrypted with the stack's key, with point-in-time
    recovery and deletion protection; rows expire by ``ttl_attribute`` when one is named."""
    return aws.dynamodb.Table(
        resource_name,
        name=table_name,
        billing_mode="PAY_PER_REQUEST",
        hash_key=hash_key,
        range_key=range_key,
        attributes=[{"name": k, "type": "S"} for k in (hash_key, range_key) if k is not None],
        ttl={"attribute_name": ttl_attribute, "enabled": True} if ttl_attribute else None,
        point_in_time_recovery={"enabled": True},
        server_side_encryption={"enabled": True, "kms_key_arn": key.arn},
        deletion_protection_enabled=True,
        tags=dict(tags),
        opts=opts,
    )


def _ingest_environment(
    args: IngestPipelineArgs, pipeline: IngestPipeline
) -> dict[str, pulumi.Input[str]]:
    variables: dict[str, pulumi.Input[str]] = {
        env.ARCHIVE_BUCKET: args.archive.name,
        env.QUARANTINE_BUCKET: args.quarantine.name,
        env.DATA_KEY_ARN: args.data_key.arn,
        env.SIGNING_KEY_ARN: args.signing_key.arn,
        env.PSEUDONYM_KEY_ARN: args.pseudonym_key.arn,
        env.INDEX_TABLE: pipeline.index_table.name,
        env.IDEMPOTENCY_TABLE: pipeline.idempotency_table.name,
        env.MAX_OBJECT_BYTES: str(args.max_object_mib * MIB),
        env.SIGNATURE_POLICY: args.signature_policy,
    }
    if args.signature_trust_pem:
        # The bundle's place in the package (see function_code), not its text.
        variables[env.SIGNATURE_TRUST_BUNDLE] = env.SIGNATURE_TRUST_FILE
    # Unset means the function's built-in lists (the config's empty default).
    if args.transfer_syntaxes:
        variables[env.TRANSFER_SYNTAXES] = ",".join(args.transfer_syntaxes)
    if args.sop_classes:
        variables[env.SOP_CLASSES] = ",".join(args.sop_classes)
    return variables


def function_code(
    source_root: Path | None = None,
    *,
    signature_trust_pem: str | None = None,
    files: Mapping[str, str] | None = None,
) -> pulumi.AssetArchive:
    """The functions' code archive: every file of lambdas/ (see infra/packaging.py), plus the
    ingest function's signature trust bundle at ``SIGNATURE_TRUST_FILE`` when there is one, and
    ``files`` (path in the package -> text; the export function's signer certificate).

    Packaged, the bundle changes the code hash, so a new bundle redeploys the function, and it
    needs no environment space, no extra permission and no network call at start-up.
    """
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {
        path: pulumi.FileAsset(str(file))
        for path, file in packaging.lambda_sources(source_root or packaging.REPO).items()
    }
    if signature_trust_pem:
        assets[env.SIGNATURE_TRUST_FILE] = pulumi.StringAsset(signature_trust_pem)
    for path, text in (files or {}).items():
        assets[path] = pulumi.StringAsset(text)
    return pulumi.AssetArchive(assets)


@dataclass(frozen=True)
class FunctionHost:
    """What a component's functions share: the layer, keys, log retention, boundary, network."""

    account: Account
    layer_arn: pulumi.Input[str]
    data_key: aws.kms.Key
    logs_key: aws.kms.Key
    log_retention_days: int
    permissions_boundary: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]


@dataclass(frozen=True)
class VpcFunctionArgs:
    """One function of the stack: its code, settings, role policy, and where it runs (host)."""

    host: FunctionHost
    physical_name: str
    spec: FunctionSpec
    code: pulumi.Archive
    environment: Mapping[str, pulumi.Input[str]]
    # The role's whole identity policy (JSON), built from the function's log group.
    role_policy: Callable[[aws.cloudwatch.LogGroup], pulumi.Input[str]]
    ephemeral_storage_mb: int
    reserved_concurrency: int


@dataclass(frozen=True)
class VpcFunction:
    """What :func:`vpc_function` made."""

    function: aws.lambda_.Function
    role: aws.iam.Role
    role_policy: aws.iam.RolePolicy
    log_group: aws.cloudwatch.LogGroup


def vpc_function(
    resource_name: str, args: VpcFunctionArgs, *, parent: pulumi.Resource
) -> VpcFunction:
    """The one way the stack makes a function: in the app tier, its own role and log group.

    Children ``<resource_name>-logs``, ``-role``, ``-policy``, ``-vpc-access`` and the function
    ``<resource_name>``; the role (named like the function) carries the permissions boundary.
    """
    child = pulumi.ResourceOptions(parent=parent)
    host = args.host
    physical = args.physical_name
    log_group = encrypted_log_group(
        f"{resource_name}-logs",
        group_name=f"/aws/lambda/{physical}",
        logs_key=host.logs_key,
        retention_days=host.log_retention_days,
        opts=child,
    )
    role = aws.iam.Role(
        f"{resource_name}-role",
        name=physical,
        description=f"Execution role of the {physical} function",
        permissions_boundary=host.permissions_boundary,
        assume_role_policy=json.dumps(service_trust_policy("lambda.amazonaws.com", host.account)),
        opts=child,
    )
    role_policy = aws.iam.RolePolicy(
        f"{resource_name}-policy",
        role=role.id,
        policy=args.role_policy(log_group),
        opts=child,
    )
    # AWS's managed document for the network interfaces of a VPC function: the EC2 actions accept
    # no resource scoping, so it is the role's one "*" resource (it also repeats the basic
    # log-write actions on "*"). It is AWS's document, not ours.
    vpc_access = aws.iam.RolePolicyAttachment(
        f"{resource_name}-vpc-access",
        role=role.name,
        policy_arn=f"arn:{host.account.partition}:iam::aws:policy/{VPC_ACCESS_POLICY}",
        opts=child,
    )
    spec = args.spec
    function = aws.lambda_.Function(
        resource_name,
        name=physical,
        description=spec.description,
        role=role.arn,
        runtime=packaging.LAMBDA_RUNTIME,
        architectures=[packaging.LAMBDA_ARCHITECTURE],
        handler=spec.handler,
        code=args.code,
        layers=[host.layer_arn],
        timeout=spec.timeout_seconds,
        memory_size=spec.memory_mb,
        ephemeral_storage={"size": args.ephemeral_storage_mb},
        reserved_concurrent_executions=args.reserved_concurrency,
        environment={"variables": {"POWERTOOLS_SERVICE_NAME": spec.service, **args.environment}},
        # The stack's key, not Lambda's AWS-managed one: its policy names who may read.
        kms_key_arn=host.data_key.arn,
        vpc_config={
            "subnet_ids": list(host.subnet_ids),
            "security_group_ids": [host.security_group_id],
        },
        logging_config={
            "log_format": "JSON",
            "log_group": log_group.name,
            "application_log_level": "INFO",
            "system_log_level": "WARN",
        },
        # Lambda checks at creation that the role may manage the function's ENIs.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[vpc_access, role_policy, log_group]),
    )
    return VpcFunction(function=function, role=role, role_policy=role_policy, log_group=log_group)
