"""ResearchCopy: archived studies routed to research projects → de-identified copies in derived/.

Archive events → queue → research-copy function, which de-identifies each instance a project's rule
matches (PS3.15 Annex E, lambdas/deid/) and writes it under ``derived/<project>/`` of the derived
bucket, or holds it under ``research-review/`` of the quarantine when it must not be released.
Present only with ``researchProjects``. With ``researchLinkage``, the pseudonym → original mapping
goes, encrypted with the linkage key, into a table only the reidentification role (a human duty
with MFA) reads; the function itself can only add rows.

Fixed, not knobs: encrypted queues with a dead-letter queue and its alarm, the function in the app
tier beside the ingest functions (same code, layer and security group), a least-privilege role with
the permissions boundary, KMS-encrypted logs shipped to the SIEM, and the linkage table's PITR and
deletion protection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.bucket import SecureBucket
from infra.components.ingest import (
    EPHEMERAL_MIN_MB,
    FunctionHost,
    FunctionSpec,
    NotifiedQueueArgs,
    VpcFunctionArgs,
    encrypted_table,
    failure_alarm,
    function_code,
    function_name,
    notified_queue,
    queue_trigger,
    vpc_function,
)
from infra.config import IdentitySettings, ResearchSettings
from infra.iam_documents import (
    HUMAN_SESSION_SECONDS,
    Account,
    ReidentificationResources,
    ResearchResources,
    human_trust_policy,
    reidentification_role_policy,
    research_role_policy,
)
from lambdas import settings as env
from lambdas.settings import ARCHIVE_PREFIX

# Only DICOM instances under the archive's studies prefix (not the signed manifests beside them).
INSTANCE_SUFFIX = ".dcm"
RESEARCH_FUNCTION = "research"
REIDENTIFICATION = "reidentification"
MAX_RECEIVE_COUNT = 5
# Few concurrent copies: research is not urgent, and the archive's readers come first.
RESERVED_CONCURRENCY = 5

SPEC = FunctionSpec(
    handler="lambdas.research.handler",
    service="pacs-research",
    description="De-identify archived instances routed to research projects into derived/",
    timeout_seconds=900,
    # De-identification holds one dataset in memory at a time; memory buys CPU for the engine.
    memory_mb=1024,
)


def research_role_name(name_prefix: str) -> str:
    """The research function's role name; the key policies grant it by name before it exists."""
    return function_name(name_prefix, RESEARCH_FUNCTION)


def reidentification_role_name(name_prefix: str) -> str:
    """The reidentification duty's role (and table) name; the linkage key policy names it."""
    return f"{name_prefix}-{REIDENTIFICATION}"


@dataclass(frozen=True)
class ResearchCopyArgs:
    """The buckets, keys, shared pipeline pieces and network the research copies run on."""

    account: Account
    name_prefix: str
    settings: ResearchSettings
    # Who may assume the reidentification role (with linkage): the human roles' federation source.
    identity: IdentitySettings
    archive: SecureBucket
    derived: SecureBucket
    quarantine: SecureBucket
    data_key: aws.kms.Key
    pseudonym_key: aws.kms.Key
    # None without researchLinkage.
    linkage_key: aws.kms.Key | None
    # The ingest pipeline's: Powertools keys its records by function, so they never collide.
    idempotency_table: aws.dynamodb.Table
    # The ingest pipeline's: the same layer, logs key, boundary, subnets and security group
    # (the same endpoints: S3, DynamoDB, KMS, SQS, Logs), nothing else.
    host: FunctionHost
    operations_topic_arn: pulumi.Input[str]
    backup_tag: Mapping[str, str]


class ResearchCopy(pulumi.ComponentResource):
    """The research queue, its function, role and logs; with linkage, the table and its reader."""

    queue: aws.sqs.Queue
    dead_letter_queue: aws.sqs.Queue
    function: aws.lambda_.Function
    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    linkage_table: aws.dynamodb.Table | None
    reidentification_role: aws.iam.Role | None

    def __init__(
        self, name: str, args: ResearchCopyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:research:ResearchCopy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = args.account
        prefix = args.name_prefix
        linkage = args.settings.linkage and args.linkage_key is not None

        # --- queues -----------------------------------------------------------------------------
        # The archive's one notification configuration (S3 keeps one per bucket): no other
        # component notifies from the archive; merge here should one ever need to.
        queues = notified_queue(
            name,
            NotifiedQueueArgs(
                queue_name=f"{prefix}-research",
                bucket=args.archive,
                notification="archive",
                data_key=args.data_key,
                account=account,
                function_timeout_seconds=SPEC.timeout_seconds,
                max_receive_count=MAX_RECEIVE_COUNT,
                filter_prefix=ARCHIVE_PREFIX,
                filter_suffix=INSTANCE_SUFFIX,
            ),
            self,
        )
        self.queue, self.dead_letter_queue = queues.queue, queues.dead_letter_queue

        # --- linkage ----------------------------------------------------------------------------
        self.linkage_table = None
        if linkage:
            self.linkage_table = encrypted_table(
                f"{name}-linkage-table",
                reidentification_role_name(prefix),
                args.data_key,
                child,
                # lambdas/research_copy.py's record: the copy's de-identified SOP Instance UID (a
                # keyed pseudonym, no PHI) and its project -> the originals as a linkage-key
                # ciphertext. The project is part of the key: one key pseudonymizes for every
                # project, so two projects' copies of an instance share the de-identified UID.
                hash_key="deid_sop_instance_uid",
                range_key="project",
                tags={
                    **args.backup_tag,
                    "purpose": "reidentification-linkage",
                    "data-classification": "phi",
                },
            )

        # --- function ---------------------------------------------------------------------------
        built = vpc_function(
            f"{name}-{RESEARCH_FUNCTION}",
            VpcFunctionArgs(
                host=args.host,
                physical_name=research_role_name(prefix),
                spec=SPEC,
                code=function_code(),
                environment=self._environment(args),
                role_policy=lambda group: self._role_policy(args, group),
                # The function reads each instance into memory; it spools nothing large.
                ephemeral_storage_mb=EPHEMERAL_MIN_MB,
                reserved_concurrency=RESERVED_CONCURRENCY,
            ),
            parent=self,
        )
        self.function = built.function
        self.role = built.role
        self.log_group = built.log_group
        queue_trigger(
            f"{name}-events",
            self.queue,
            self.function,
            RESERVED_CONCURRENCY,
            built.role_policy,
            self,
        )

        # --- the reidentification duty ----------------------------------------------------------
        self.reidentification_role = None
        if self.linkage_table is not None and args.linkage_key is not None:
            self.reidentification_role = self._reidentification_role(
                name, args, self.linkage_table, args.linkage_key
            )

        # --- alarms -----------------------------------------------------------------------------
        failure_alarm(
            f"{name}-dlq-alarm",
            f"{prefix}-research-dlq-not-empty",
            "archive events failed research copying repeatedly: inspect the messages in the "
            "queue, fix, then redrive",
            self.dead_letter_queue,
            args.operations_topic_arn,
            self,
        )
        failure_alarm(
            f"{name}-errors-alarm",
            f"{prefix}-research-errors",
            "the research function failed: read its log group for the error",
            self.function,
            args.operations_topic_arn,
            self,
        )

        self.register_outputs(
            {
                "queueUrl": self.queue.url,
                "deadLetterQueueUrl": self.dead_letter_queue.url,
                "function": self.function.name,
                "linkageTable": self.linkage_table.name if self.linkage_table else None,
                "reidentificationRoleArn": (
                    self.reidentification_role.arn if self.reidentification_role else None
                ),
            }
        )

    def _environment(self, args: ResearchCopyArgs) -> dict[str, pulumi.Input[str]]:
        return {
            env.ARCHIVE_BUCKET: args.archive.name,
            env.DERIVED_BUCKET: args.derived.name,
            env.QUARANTINE_BUCKET: args.quarantine.name,
            env.DATA_KEY_ARN: args.data_key.arn,
            env.PSEUDONYM_KEY_ARN: args.pseudonym_key.arn,
            env.IDEMPOTENCY_TABLE: args.idempotency_table.name,
            env.RESEARCH_PROJECTS: args.settings.projects_json,
            env.LINKAGE_TABLE: self.linkage_table.name if self.linkage_table is not None else "",
            env.LINKAGE_KEY_ARN: args.linkage_key.arn
            if self.linkage_table is not None and args.linkage_key is not None
            else "",
        }

    def _role_policy(
        self, args: ResearchCopyArgs, log_group: aws.cloudwatch.LogGroup
    ) -> pulumi.Output[str]:
        account = args.account
        arns = pulumi.Output.all(
            queue=self.queue.arn,
            data_key=args.data_key.arn,
            pseudonym_key=args.pseudonym_key.arn,
            idempotency=args.idempotency_table.arn,
            log_group=log_group.arn,
            linkage_table=self.linkage_table.arn if self.linkage_table is not None else "",
            linkage_key=(
                args.linkage_key.arn
                if self.linkage_table is not None and args.linkage_key is not None
                else ""
            ),
        )
        return arns.apply(
            lambda a: json.dumps(
                research_role_policy(
                    ResearchResources(
                        archive_bucket=args.archive.name,
                        derived_bucket=args.derived.name,
                        quarantine_bucket=args.quarantine.name,
                        projects=tuple(p.name for p in args.settings.projects),
                        queue_arn=a["queue"],
                        data_key_arn=a["data_key"],
                        pseudonym_key_arn=a["pseudonym_key"],
                        idempotency_table_arn=a["idempotency"],
                        log_group_arn=a["log_group"],
                        via_service_endpoints=tuple(
                            account.service_endpoint(s) for s in ("dynamodb", "s3", "sqs")
                        ),
                        linkage_table_arn=a["linkage_table"] or None,
                        linkage_key_arn=a["linkage_key"] or None,
                    )
                )
            )
        )

    def _reidentification_role(
        self,
        name: str,
        args: ResearchCopyArgs,
        table: aws.dynamodb.Table,
        linkage_key: aws.kms.Key,
    ) -> aws.iam.Role:
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-{REIDENTIFICATION}",
            name=reidentification_role_name(args.name_prefix),
            description="Looks up the originals behind research pseudonyms; nothing else",
            # The human roles' trust: one federation source, with MFA (infra/iam_documents.py).
            assume_role_policy=json.dumps(
                human_trust_policy(
                    saml_provider_arn=args.identity.saml_provider_arn,
                    trusted_principal_arns=args.identity.trusted_principal_arns,
                )
            ),
            # Automatic logoff: a session ends after an hour at most.
            max_session_duration=HUMAN_SESSION_SECONDS,
            permissions_boundary=args.host.permissions_boundary,
            tags={"duty": REIDENTIFICATION},
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-{REIDENTIFICATION}-policy",
            role=role.id,
            policy=pulumi.Output.all(table.arn, linkage_key.arn, args.data_key.arn).apply(
                lambda a: json.dumps(
                    reidentification_role_policy(
                        ReidentificationResources(
                            linkage_table_arn=a[0],
                            linkage_key_arn=a[1],
                            data_key_arn=a[2],
                            dynamodb_service_endpoint=args.account.service_endpoint("dynamodb"),
                        )
                    )
                )
            ),
            opts=child,
        )
        return role
