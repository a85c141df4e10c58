"""Exports: a study packaged for one recipient, handed over through a link that works once.

The imaging-operator role invokes the export function directly; it reads the study from the
archive, writes one encrypted package (CMS EnvelopedData per instance, signed manifest;
lambdas/export_package.py) to ``exports/<export_id>/package.zip`` of the exports bucket, records a
one-time link in the links table and returns it. The link function, behind a public Lambda
function URL, consumes the link with one conditional write and redirects to a presigned GET that
lives a minute. Present only with ``exportsEnabled``.

Fixed, not knobs: the exports bucket's controls (SecureBucket, without Object Lock: packages must
expire), the links table's TTL, PITR and deletion protection, both functions in the app tier with
least-privilege roles under the permissions boundary and KMS-encrypted logs, the URL's public
access limited to the link function (the token in the query string is the credential).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.archive import bucket_name
from infra.components.bucket import Lifecycle, SecureBucket, SecureBucketArgs
from infra.components.ingest import (
    EPHEMERAL_MIN_MB,
    FunctionHost,
    FunctionSpec,
    VpcFunctionArgs,
    encrypted_table,
    failure_alarm,
    failure_queue,
    function_code,
    function_name,
    vpc_function,
)
from infra.config import ExportSettings
from infra.iam_documents import (
    SIGNING_ALGORITHMS,
    Account,
    ExportLinkResources,
    ExportResources,
    export_link_role_policy,
    export_role_policy,
)
from lambdas import settings as env

EXPORTS_PURPOSE = "exports"
EXPORT_FUNCTION = "export"
LINK_FUNCTION = "export-link"
# Where the signer certificate sits in the export function's package (its env holds this path).
SIGNER_CERTIFICATE_FILE = "export-signer/certificate.pem"
# Rows stay a day past their link's expiry (the log and the audit event keep the rest).
LINK_ROW_GRACE_SECONDS = 24 * 3600
# Noncurrent versions and abandoned multipart uploads of packages: gone after a day.
NONCURRENT_EXPIRATION_DAYS = 1
ABORT_MULTIPART_DAYS = 1
# Exports are on demand, one operator at a time: a few at once at most.
EXPORT_CONCURRENCY = 2
# The link function is public: a bound on what a flood of requests can consume.
LINK_CONCURRENCY = 10
# /tmp holds the study's members while the package is assembled.
EXPORT_EPHEMERAL_MB = 4096

EXPORT_SPEC = FunctionSpec(
    handler="lambdas.export_function.handler",
    service="pacs-export",
    description="Package a study for a recipient certificate and issue a one-time link",
    timeout_seconds=900,
    # Encrypts and hashes every member; memory buys CPU.
    memory_mb=2048,
)
LINK_SPEC = FunctionSpec(
    handler="lambdas.export_link.handler",
    service="pacs-export-link",
    description="Consume a one-time export link and redirect to a short-lived download",
    timeout_seconds=10,
    memory_mb=256,
)


def export_role_name(name_prefix: str) -> str:
    """The export function's role name; the key policies grant it by name before it exists."""
    return function_name(name_prefix, EXPORT_FUNCTION)


def link_role_name(name_prefix: str) -> str:
    """The link function's role name; the archive key policy grants it by name."""
    return function_name(name_prefix, LINK_FUNCTION)


def export_function_arn(account: Account, name_prefix: str) -> str:
    """The export function's ARN, known before it exists (the imaging-operator role names it)."""
    return account.arn("lambda", f"function:{function_name(name_prefix, EXPORT_FUNCTION)}")


def exports_bucket_name(account: Account, name_prefix: str) -> str:
    """``pacs-<env>-<account>-<region>-exports``, named like the stack's other buckets."""
    return bucket_name(account, name_prefix, EXPORTS_PURPOSE, account.region)


@dataclass(frozen=True)
class ExportsArgs:
    """The archive, keys, shared pipeline pieces and network the exports run on."""

    account: Account
    name_prefix: str
    settings: ExportSettings
    archive: SecureBucket
    # The region's server-access-log bucket (its policy admits the exports bucket's logs).
    access_log_bucket: pulumi.Input[str]
    data_key: aws.kms.Key
    signing_key: aws.kms.Key
    # keys.py's key spec of the signing key: which algorithms kms:Sign may use.
    signing_key_spec: str
    # The ingest pipeline's: the same layer, logs key, boundary, subnets and security group
    # (the same endpoints: S3, DynamoDB, KMS, SQS, Logs).
    host: FunctionHost
    operations_topic_arn: pulumi.Input[str]


class Exports(pulumi.ComponentResource):
    """The exports bucket, links table, export and link functions, the link URL and alarms."""

    bucket: SecureBucket
    table: aws.dynamodb.Table
    failures: aws.sqs.Queue
    export_function: aws.lambda_.Function
    link_function: aws.lambda_.Function
    roles: dict[str, aws.iam.Role]
    log_groups: dict[str, aws.cloudwatch.LogGroup]
    link_url: aws.lambda_.FunctionUrl

    def __init__(
        self, name: str, args: ExportsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:exports:Exports", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = args.account
        prefix = args.name_prefix
        settings = args.settings

        # --- storage ----------------------------------------------------------------------------
        self.bucket = SecureBucket(
            f"{name}-bucket",
            SecureBucketArgs(
                account=account,
                bucket_name=exports_bucket_name(account, prefix),
                purpose=EXPORTS_PURPOSE,
                kms_key=args.data_key,
                # No Object Lock: a package is a copy for one recipient and must expire.
                object_lock=None,
                access_log_bucket=args.access_log_bucket,
                lifecycle=Lifecycle(
                    expiration_days=settings.expiration_days,
                    noncurrent_expiration_days=NONCURRENT_EXPIRATION_DAYS,
                    abort_multipart_days=ABORT_MULTIPART_DAYS,
                ),
            ),
            opts=child,
        )
        self.table = encrypted_table(
            f"{name}-links-table",
            f"{prefix}-export-links",
            args.data_key,
            child,
            # The SHA-256 of the link's token: the table never holds a usable token.
            hash_key="token_sha256",
            ttl_attribute="ttl",
            # Token hashes and package keys, no PHI; rows expire by TTL.
            tags={"purpose": "export-links", "data-classification": "confidential"},
        )
        # Where Lambda reports a failed asynchronous export (operators invoke synchronously; an
        # asynchronous call's failure must still reach someone).
        self.failures = failure_queue(
            f"{name}-failures", f"{prefix}-export-failures", args.data_key, account, child
        )

        # --- the link function and its public URL ------------------------------------------------
        self.roles = {}
        self.log_groups = {}
        link = vpc_function(
            f"{name}-{LINK_FUNCTION}",
            VpcFunctionArgs(
                host=args.host,
                physical_name=link_role_name(prefix),
                spec=LINK_SPEC,
                code=function_code(),
                environment={
                    env.EXPORTS_BUCKET: self.bucket.name,
                    env.EXPORTS_TABLE: self.table.name,
                    env.PRESIGN_SECONDS: str(env.DEFAULT_PRESIGN_SECONDS),
                },
                role_policy=lambda group: self._link_policy(args, group),
                ephemeral_storage_mb=EPHEMERAL_MIN_MB,
                reserved_concurrency=LINK_CONCURRENCY,
            ),
            parent=self,
        )
        self.link_function = link.function
        self.roles[LINK_FUNCTION] = link.role
        self.log_groups[LINK_FUNCTION] = link.log_group
        self.link_url = aws.lambda_.FunctionUrl(
            f"{name}-link-url",
            function_name=self.link_function.name,
            # The token in the query string is the credential: recipients have no AWS identity.
            # The pack admits NONE only for functions its allowPublicFunctionUrls names.
            authorization_type="NONE",
            invoke_mode="BUFFERED",
            opts=child,
        )
        aws.lambda_.Permission(
            f"{name}-link-url-permission",
            action="lambda:InvokeFunctionUrl",
            function=self.link_function.name,
            principal="*",
            function_url_auth_type="NONE",
            opts=child,
        )
        # Since October 2025 a new function URL also needs lambda:InvokeFunction, which this
        # statement grants only for calls that come through the URL.
        aws.lambda_.Permission(
            f"{name}-link-url-invoke-permission",
            action="lambda:InvokeFunction",
            function=self.link_function.name,
            principal="*",
            invoked_via_function_url=True,
            opts=child,
        )

        # --- the export function -----------------------------------------------------------------
        files = (
            {SIGNER_CERTIFICATE_FILE: settings.signer_certificate_pem}
            if settings.signer_certificate_pem
            else None
        )
        export = vpc_function(
            f"{name}-{EXPORT_FUNCTION}",
            VpcFunctionArgs(
                host=args.host,
                physical_name=export_role_name(prefix),
                spec=EXPORT_SPEC,
                code=function_code(files=files),
                environment={
                    env.ARCHIVE_BUCKET: args.archive.name,
                    env.EXPORTS_BUCKET: self.bucket.name,
                    env.EXPORTS_TABLE: self.table.name,
                    env.DATA_KEY_ARN: args.data_key.arn,
                    env.SIGNING_KEY_ARN: args.signing_key.arn,
                    env.EXPORT_SIGNER_CERT: SIGNER_CERTIFICATE_FILE if files else "",
                    env.LINK_URL: self.link_url.function_url,
                    env.LINK_MINUTES: str(settings.link_minutes),
                },
                role_policy=lambda group: self._export_policy(args, group),
                ephemeral_storage_mb=EXPORT_EPHEMERAL_MB,
                reserved_concurrency=EXPORT_CONCURRENCY,
            ),
            parent=self,
        )
        self.export_function = export.function
        self.roles[EXPORT_FUNCTION] = export.role
        self.log_groups[EXPORT_FUNCTION] = export.log_group
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-export-async",
            function_name=self.export_function.name,
            # A retried export would issue a second link nobody receives.
            maximum_retry_attempts=0,
            maximum_event_age_in_seconds=3600,
            destination_config={"on_failure": {"destination": self.failures.arn}},
            # Lambda checks at creation that the role may send to the destination.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[export.role_policy]),
        )

        # --- alarms -----------------------------------------------------------------------------
        topic = args.operations_topic_arn
        failure_alarm(
            f"{name}-export-failures-not-empty-alarm",
            f"{prefix}-export-failures-not-empty",
            "an asynchronous export failed: read the message and the export log group",
            self.failures,
            topic,
            self,
        )
        for function, fn, what in (
            ("export", self.export_function, "the export function"),
            ("export-link", self.link_function, "the one-time link function"),
        ):
            failure_alarm(
                f"{name}-{function}-errors-alarm",
                f"{prefix}-{function}-errors",
                f"{what} failed: read its log group for the error",
                fn,
                topic,
                self,
            )

        self.register_outputs(
            {
                "bucket": self.bucket.bucket.bucket,
                "table": self.table.name,
                "exportFunction": self.export_function.name,
                "linkFunction": self.link_function.name,
                "linkUrl": self.link_url.function_url,
            }
        )

    def _via(self, account: Account, *services: str) -> tuple[str, ...]:
        return tuple(account.service_endpoint(s) for s in services)

    def _export_policy(
        self, args: ExportsArgs, log_group: aws.cloudwatch.LogGroup
    ) -> pulumi.Output[str]:
        arns = pulumi.Output.all(
            table=self.table.arn,
            data_key=args.data_key.arn,
            signing_key=args.signing_key.arn,
            log_group=log_group.arn,
            failures=self.failures.arn,
        )
        return arns.apply(
            lambda a: json.dumps(
                export_role_policy(
                    ExportResources(
                        archive_bucket=args.archive.name,
                        exports_bucket=self.bucket.name,
                        links_table_arn=a["table"],
                        data_key_arn=a["data_key"],
                        signing_key_arn=a["signing_key"],
                        signing_algorithms=SIGNING_ALGORITHMS[args.signing_key_spec],
                        log_group_arn=a["log_group"],
                        # SQS: the failure queue is encrypted with the data key.
                        via_service_endpoints=self._via(args.account, "dynamodb", "s3", "sqs"),
                        failure_queue_arn=a["failures"],
                    )
                )
            )
        )

    def _link_policy(
        self, args: ExportsArgs, log_group: aws.cloudwatch.LogGroup
    ) -> pulumi.Output[str]:
        arns = pulumi.Output.all(
            table=self.table.arn, data_key=args.data_key.arn, log_group=log_group.arn
        )
        return arns.apply(
            lambda a: json.dumps(
                export_link_role_policy(
                    ExportLinkResources(
                        exports_bucket=self.bucket.name,
                        links_table_arn=a["table"],
                        data_key_arn=a["data_key"],
                        log_group_arn=a["log_group"],
                        via_service_endpoints=self._via(args.account, "dynamodb", "s3"),
                    )
                )
            )
        )
