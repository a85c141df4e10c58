"""The cloud-pacs Pulumi program: wires the components together and exports the outputs."""

from __future__ import annotations

import sys
from pathlib import Path

# `pulumi up` runs this file by path: keep `infra` importable even without `pip install -e .`
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import pulumi
import pulumi_aws as aws

from infra.components.archive import DATA_BUCKETS, ImagingArchive, ImagingArchiveArgs, bucket_name
from infra.components.audit import Audit, AuditArgs, audit_bucket_names, siem_delivery_role_name
from infra.components.dr import (
    DisasterRecovery,
    DisasterRecoveryArgs,
    backup_role_name,
    replication_role_name,
)
from infra.components.edge import (
    LOAD_BALANCER_LOG_PREFIXES,
    TRUST_BUCKET_PURPOSE,
    EdgeGateway,
    EdgeGatewayArgs,
    gateway_execution_role_name,
    gateway_task_role_name,
)
from infra.components.exports import (
    Exports,
    ExportsArgs,
    export_function_arn,
    export_role_name,
    exports_bucket_name,
    link_role_name,
)
from infra.components.identity import Identity, IdentityArgs, PermissionsBoundary
from infra.components.ingest import (
    IngestPipeline,
    IngestPipelineArgs,
    ingest_role_name,
    verify_role_name,
)
from infra.components.keys import (
    EDGE_PURPOSES,
    LINKAGE_PURPOSES,
    PURPOSES,
    KeyRing,
    KeyRingArgs,
)
from infra.components.network import PrivateNetwork, PrivateNetworkArgs
from infra.components.research import (
    ResearchCopy,
    ResearchCopyArgs,
    reidentification_role_name,
    research_role_name,
)
from infra.config import RTC_SLA_MINUTES, load_settings
from infra.emulator import provider_args
from infra.iam_documents import (
    ARCHIVE_KEY_DUTIES,
    ELB_ACCOUNT_LOG_REGIONS,
    Account,
    LoadBalancerLogDelivery,
    human_role_name,
    linkage_key_statements,
    logs_key_reader_statements,
)

settings = load_settings()  # raises ConfigError before any resource is declared
for warning in settings.warnings:
    pulumi.log.warn(warning)

default_tags = aws.ProviderDefaultTagsArgs(
    tags={
        "project": settings.project,
        "environment": settings.environment,
        "stack": settings.stack,
        "managed-by": "pulumi",
    }
)
# Only in the sandbox (emulatorEndpoint, which warns): every service endpoint at the local emulator.
emulator = provider_args(settings.emulator_endpoint)
primary = aws.Provider("primary", region=settings.region, default_tags=default_tags, **emulator)
dr_provider = aws.Provider("dr", region=settings.dr_region, default_tags=default_tags, **emulator)
in_primary = pulumi.ResourceOptions(provider=primary)
invoke_primary = pulumi.InvokeOptions(provider=primary)

identity = aws.get_caller_identity(opts=invoke_primary)
partition = aws.get_partition(opts=invoke_primary)
account = Account(
    account_id=identity.account_id,
    partition=partition.partition,
    region=settings.region,
    dns_suffix=partition.dns_suffix,
    reverse_dns_prefix=partition.reverse_dns_prefix,
)
zones = settings.availability_zones or tuple(
    aws.get_availability_zones(
        state="available",
        filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
        opts=invoke_primary,
    ).names[:2]
)

audit_buckets = audit_bucket_names(account, settings.name_prefix, settings.audit.siem_destination)
replication_role = replication_role_name(settings.name_prefix)
backup_role = backup_role_name(settings.name_prefix)
ingest_role = ingest_role_name(settings.name_prefix)
verify_role = verify_role_name(settings.name_prefix)
# Human roles that read archive-key data exist only with a federation source (identity* keys).
human_readers: tuple[str, ...] = (
    tuple(human_role_name(settings.name_prefix, d) for d in ARCHIVE_KEY_DUTIES)
    if settings.identity.federated
    else ()
)
# The edge exists only with a client trust source (edgeClientCaBundle or edgePrivateCaArn).
gateway_roles: tuple[str, ...] = ()
trust_bucket: str | None = None
load_balancer_logs: LoadBalancerLogDelivery | None = None
if settings.edge is not None:
    gateway_roles = (gateway_task_role_name(settings.name_prefix),)
    trust_bucket = bucket_name(account, settings.name_prefix, TRUST_BUCKET_PURPOSE, settings.region)
    load_balancer_logs = LoadBalancerLogDelivery(
        prefixes=LOAD_BALANCER_LOG_PREFIXES,
        regional_elb_account_arn=(
            aws.elb.get_service_account(opts=invoke_primary).arn
            if settings.region in ELB_ACCOUNT_LOG_REGIONS
            else None
        ),
    )
# The research-copy function exists only with researchProjects; the reidentification role and the
# linkage key only with researchLinkage too.
research_roles: tuple[str, ...] = ()
reidentification_roles: tuple[str, ...] = ()
if settings.research.enabled:
    research_roles = (research_role_name(settings.name_prefix),)
    if settings.research.linkage:
        reidentification_roles = (reidentification_role_name(settings.name_prefix),)
# The export and link functions and the exports bucket exist only with exportsEnabled.
export_roles: tuple[str, ...] = ()
link_roles: tuple[str, ...] = ()
exports_bucket: tuple[str, ...] = ()
if settings.exports.enabled:
    export_roles = (export_role_name(settings.name_prefix),)
    link_roles = (link_role_name(settings.name_prefix),)
    exports_bucket = (exports_bucket_name(account, settings.name_prefix),)
# Before any role: every role of the stack carries this boundary (infra/components/identity.py).
boundary = PermissionsBoundary("permissions-boundary", account, settings.name_prefix, in_primary)

keys = KeyRing(
    "keys",
    KeyRingArgs(
        account=account,
        region=settings.region,
        name_prefix=settings.name_prefix,
        purposes=tuple(
            p
            for p in PURPOSES
            if (settings.edge is not None or p not in EDGE_PURPOSES)
            and (settings.research.linkage or p not in LINKAGE_PURPOSES)
        ),
        admin_arns=settings.key_admin_arns,
        users={
            "archive": (
                replication_role,
                ingest_role,
                verify_role,
                *research_roles,
                *export_roles,
                *link_roles,
                *gateway_roles,
                *human_readers,
                # The linkage table is encrypted with the archive key (read through DynamoDB).
                *reidentification_roles,
            ),
            "backup": (backup_role,),
            "signing": (ingest_role, verify_role, *export_roles),
            "pseudonym": (ingest_role, *research_roles),
            "edge": (gateway_execution_role_name(settings.name_prefix),),
            "logs": (siem_delivery_role_name(settings.name_prefix),),
        },
        # Decrypt-only readers of audit data: the SIEM's roles, and the security auditor (it
        # exists only with a federation source) for the trail's files.
        reader_statements={
            # The linkage key's two halves: the research function encrypts, the reidentification
            # role decrypts (the key has no other user).
            "linkage": tuple(
                linkage_key_statements(
                    account,
                    writer_role_arn=account.role_arn(research_roles[0]),
                    reader_role_arn=account.role_arn(reidentification_roles[0]),
                    projects=[p.name for p in settings.research.projects],
                )
                if reidentification_roles
                else ()
            ),
            "logs": tuple(
                logs_key_reader_statements(
                    account,
                    settings.region,
                    siem_reader_arns=settings.audit.siem_reader_arns,
                    security_auditor_arn=(
                        account.role_arn(human_role_name(settings.name_prefix, "security-auditor"))
                        if settings.identity.federated
                        else None
                    ),
                )
            ),
        },
    ),
    opts=in_primary,
)

network = PrivateNetwork(
    "network",
    PrivateNetworkArgs(
        account=account,
        name_prefix=settings.name_prefix,
        vpc_cidr=settings.vpc_cidr,
        availability_zones=zones,
        allowed_client_cidrs=settings.allowed_client_cidrs,
        logs_key=keys.keys["logs"],
        log_retention_days=settings.log_retention_days,
        permissions_boundary=boundary.arn,
    ),
    opts=in_primary,
)

archive = ImagingArchive(
    "imaging",
    ImagingArchiveArgs(
        account=account,
        name_prefix=settings.name_prefix,
        data_key=keys.keys["archive"],
        archive_lock=settings.archive_lock,
        quarantine_lock=settings.quarantine_lock,
        archive_transition_days=settings.archive_transition_days,
        inbox_expiration_days=settings.inbox_expiration_days,
        log_retention_days=settings.log_retention_days,
        other_logged_buckets=(
            *((trust_bucket,) if trust_bucket else ()),
            *exports_bucket,
            *audit_buckets.values(),
        ),
        load_balancer_logs=load_balancer_logs,
    ),
    opts=in_primary,
)

dr = DisasterRecovery(
    "dr",
    DisasterRecoveryArgs(
        account=account,
        name_prefix=settings.name_prefix,
        dr_region=settings.dr_region,
        dr_provider=dr_provider,
        archive=archive.buckets["archive"],
        archive_key=keys.keys["archive"],
        backup_key=keys.keys["backup"],
        archive_lock=settings.archive_lock,
        archive_transition_days=settings.archive_transition_days,
        log_retention_days=settings.log_retention_days,
        admin_arns=settings.key_admin_arns,
        backup_interval_hours=settings.backup_interval_hours,
        backup_retention_days=settings.backup_retention_days,
        permissions_boundary=boundary.arn,
    ),
    opts=in_primary,
)

ingest = IngestPipeline(
    "ingest",
    IngestPipelineArgs(
        account=account,
        name_prefix=settings.name_prefix,
        inbox=archive.buckets["inbox"],
        archive=archive.buckets["archive"],
        quarantine=archive.buckets["quarantine"],
        data_key=keys.keys["archive"],
        signing_key=keys.keys["signing"],
        pseudonym_key=keys.keys["pseudonym"],
        logs_key=keys.keys["logs"],
        vpc_id=network.vpc.id,
        subnet_ids=network.subnet_ids["app"],
        endpoint_security_group_id=network.endpoint_security_group.id,
        gateway_prefix_list_ids=list(network.gateway_prefix_list_ids.values()),
        backup_tag=dr.backup_tag,
        log_retention_days=settings.log_retention_days,
        max_object_mib=settings.ingest_max_object_mib,
        max_receive_count=settings.ingest_max_receive_count,
        reserved_concurrency=settings.ingest_reserved_concurrency,
        transfer_syntaxes=settings.ingest_transfer_syntaxes,
        sop_classes=settings.ingest_sop_classes,
        signature_policy=settings.ingest_signature_policy,
        signature_trust_pem=settings.ingest_signature_trust_pem,
        verify_sample_size=settings.verify_sample_size,
        verify_reserved_concurrency=settings.verify_reserved_concurrency,
        permissions_boundary=boundary.arn,
    ),
    opts=in_primary,
)

research: ResearchCopy | None = None
if settings.research.enabled:
    research = ResearchCopy(
        "research",
        ResearchCopyArgs(
            account=account,
            name_prefix=settings.name_prefix,
            settings=settings.research,
            identity=settings.identity,
            archive=archive.buckets["archive"],
            derived=archive.buckets["derived"],
            quarantine=archive.buckets["quarantine"],
            data_key=keys.keys["archive"],
            pseudonym_key=keys.keys["pseudonym"],
            linkage_key=keys.keys.get("linkage"),
            idempotency_table=ingest.idempotency_table,
            host=ingest.function_host,
            operations_topic_arn=ingest.operations_topic.arn,
            backup_tag=dr.backup_tag,
        ),
        opts=in_primary,
    )

exports: Exports | None = None
if settings.exports.enabled:
    exports = Exports(
        "exports",
        ExportsArgs(
            account=account,
            name_prefix=settings.name_prefix,
            settings=settings.exports,
            archive=archive.buckets["archive"],
            access_log_bucket=archive.buckets["access-logs"].bucket.bucket,
            data_key=keys.keys["archive"],
            signing_key=keys.keys["signing"],
            signing_key_spec=PURPOSES["signing"].key_spec,
            host=ingest.function_host,
            operations_topic_arn=ingest.operations_topic.arn,
        ),
        opts=in_primary,
    )

edge: EdgeGateway | None = None
if settings.edge is not None and trust_bucket is not None:
    edge = EdgeGateway(
        "edge",
        EdgeGatewayArgs(
            account=account,
            name_prefix=settings.name_prefix,
            settings=settings.edge,
            allowed_client_cidrs=settings.allowed_client_cidrs,
            vpc_id=network.vpc.id,
            edge_subnet_ids=network.subnet_ids["edge"],
            app_subnet_ids=network.subnet_ids["app"],
            endpoint_security_group_id=network.endpoint_security_group.id,
            s3_prefix_list_id=network.gateway_prefix_list_ids["s3"],
            inbox=archive.buckets["inbox"],
            access_logs=archive.buckets["access-logs"],
            trust_bucket_name=trust_bucket,
            data_key=keys.keys["archive"],
            edge_key=keys.keys["edge"],
            logs_key=keys.keys["logs"],
            log_retention_days=settings.log_retention_days,
            sop_classes=settings.ingest_sop_classes,
            transfer_syntaxes=settings.ingest_transfer_syntaxes,
            permissions_boundary=boundary.arn,
        ),
        opts=in_primary,
    )

audit = Audit(
    "audit",
    AuditArgs(
        account=account,
        name_prefix=settings.name_prefix,
        settings=settings.audit,
        logs_key=keys.keys["logs"],
        log_retention_days=settings.log_retention_days,
        # The replica too: readers switch to it during a regional outage (docs/runbooks/restore.md).
        data_buckets={
            **{p: archive.buckets[p].name for p in DATA_BUCKETS},
            "archive-replica": dr.replica.name,
            **({"exports": exports.bucket.name} if exports is not None else {}),
        },
        function_arns=[
            *(fn.arn for fn in ingest.functions.values()),
            *((research.function.arn,) if research is not None else ()),
            *(
                (exports.export_function.arn, exports.link_function.arn)
                if exports is not None
                else ()
            ),
        ],
        log_groups={
            **{f"function-{f}": group for f, group in ingest.log_groups.items()},
            **({"function-research": research.log_group} if research is not None else {}),
            **(
                {f"function-{f}": group for f, group in exports.log_groups.items()}
                if exports is not None
                else {}
            ),
            **network.log_groups,
            **(edge.log_groups if edge is not None else {}),
        },
        access_log_bucket=archive.buckets["access-logs"].bucket.bucket,
        break_glass_role_arn=account.role_arn(human_role_name(settings.name_prefix, "break-glass")),
        dead_letter_queue_arn=ingest.dead_letter_queue.arn,
        dead_letter_queue_name=f"{settings.name_prefix}-ingest-dlq",
        permissions_boundary=boundary.arn,
    ),
    opts=in_primary,
)

identity_roles = Identity(
    "identity",
    IdentityArgs(
        account=account,
        name_prefix=settings.name_prefix,
        settings=settings.identity,
        permissions_boundary=boundary.arn,
        inbox_bucket=archive.buckets["inbox"].name,
        archive_bucket=archive.buckets["archive"].name,
        quarantine_bucket=archive.buckets["quarantine"].name,
        derived_bucket=archive.buckets["derived"].name,
        archive_key_arn=keys.keys["archive"].arn,
        ingest_queue_arn=ingest.queue.arn,
        dead_letter_queue_arn=ingest.dead_letter_queue.arn,
        trail_bucket=audit.trail_bucket.name,
        logs_key_arn=keys.keys["logs"].arn,
        export_function_arn=(
            export_function_arn(account, settings.name_prefix) if exports is not None else None
        ),
    ),
    opts=in_primary,
)

pulumi.export("region", settings.region)
pulumi.export("drRegion", settings.dr_region)
pulumi.export("vpcId", network.vpc.id)
pulumi.export("subnetIds", network.subnet_ids)
pulumi.export("buckets", {purpose: b.bucket.bucket for purpose, b in archive.buckets.items()})
pulumi.export("replicaBucket", dr.replica.bucket.bucket)
pulumi.export("keyArns", {purpose: key.arn for purpose, key in keys.keys.items()})
pulumi.export("backupVaults", {"primary": dr.vault.name, "dr": dr.dr_vault.name})
pulumi.export("backupSelectionTag", dr.backup_tag)
pulumi.export("ingestQueueUrl", ingest.queue.url)
pulumi.export("ingestDeadLetterQueueUrl", ingest.dead_letter_queue.url)
pulumi.export(
    "tables",
    {"index": ingest.index_table.name, "idempotency": ingest.idempotency_table.name},
)
pulumi.export(
    "functions",
    {
        **{f: fn.name for f, fn in ingest.functions.items()},
        **({"research": research.function.name} if research is not None else {}),
        **(
            {"export": exports.export_function.name, "exportLink": exports.link_function.name}
            if exports is not None
            else {}
        ),
    },
)
pulumi.export("operationsTopicArn", ingest.operations_topic.arn)
pulumi.export(
    "audit",
    {
        "trailArn": audit.trail.arn,
        "trailBucket": audit.trail_bucket.bucket.bucket,
        "siemDestination": settings.audit.siem_destination,
        "siemStreamArn": audit.stream.arn,
        "siemBackupBucket": audit.backup_bucket.bucket.bucket,
        "siemPullBucket": audit.pull_bucket.bucket.bucket if audit.pull_bucket else None,
        "siemObjectsQueueUrl": audit.siem_queue.url,
        "siemSecretArn": audit.siem_secret.arn if audit.siem_secret else None,
        "securityTopicArn": audit.security_topic.arn,
    },
)
pulumi.export(
    "identity",
    {
        "permissionsBoundaryArn": boundary.arn,
        # None with enableAccessAnalyzer false (the account's analyzer is managed elsewhere).
        "accessAnalyzerArn": identity_roles.analyzer.arn if identity_roles.analyzer else None,
        "roleArns": {duty: role.arn for duty, role in identity_roles.roles.items()},
    },
)
pulumi.export(
    "recoveryObjectives",
    {
        "rpoMinutes": settings.rpo_minutes,
        "rtoMinutes": settings.rto_minutes,
        "archiveReplicationSlaMinutes": RTC_SLA_MINUTES,
        "indexBackupIntervalMinutes": settings.backup_interval_hours * 60,
        "drRegion": settings.dr_region,
        "runbook": "docs/runbooks/restore.md",
    },
)
if research is not None:
    pulumi.export(
        "research",
        {
            "queueUrl": research.queue.url,
            "deadLetterQueueUrl": research.dead_letter_queue.url,
            "projects": [p.name for p in settings.research.projects],
            "linkageTable": research.linkage_table.name if research.linkage_table else None,
            "reidentificationRoleArn": (
                research.reidentification_role.arn if research.reidentification_role else None
            ),
        },
    )
if edge is not None:
    pulumi.export(
        "edge",
        {
            "albDnsName": edge.alb.dns_name,
            "nlbDnsName": edge.nlb.dns_name,
            "repositoryUrl": edge.repository.repository_url,
            "image": edge.image,
            "cluster": edge.cluster.name,
            "service": edge.service.name,
            "tlsSecretArns": {part: secret.arn for part, secret in edge.tls_secrets.items()},
        },
    )
if exports is not None:
    pulumi.export(
        "exports",
        {
            "bucket": exports.bucket.bucket.bucket,
            "table": exports.table.name,
            "exportFunction": exports.export_function.name,
            "linkFunction": exports.link_function.name,
            "linkUrl": exports.link_url.function_url,
        },
    )
