"""EdgeGateway: the mutual-TLS front door and the gateway service behind it.

Clients reach two internal load balancers in the edge tier: an ALB that terminates HTTPS (DICOMweb
STOW-RS) on a TLS 1.3-only policy and verifies client certificates against the trust store, and an
NLB that passes DICOM TLS (port 2762) through untouched to the gateway, which terminates it and
verifies the client itself. The gateway runs on Fargate in the app tier and may only add objects to
the inbox, where the ingest pipeline takes over.

Fixed, not knobs: mutual TLS in verify mode, invalid-header dropping, HSTS, deletion protection,
access and connection logs, a hardened read-only non-root task with no public IP whose only egress
is the VPC endpoints, an immutable scanned ECR repository, KMS-encrypted logs and secrets, one
least-privilege role each for ECS and the gateway. Knobs are the trust source, the server
certificate, the TLS 1.3 policy, the image and the task count.

The container contract with ``gateway/`` (the command line, the environment, the ports, the health
path, the user and the one writable path) is the set of constants below; the README repeats it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.bucket import Lifecycle, SecureBucket, SecureBucketArgs
from infra.components.logs import encrypted_log_group
from infra.config import EdgeSettings
from infra.iam_documents import (
    Account,
    GatewayExecutionResources,
    GatewayTaskResources,
    gateway_execution_role_policy,
    gateway_task_role_policy,
    service_trust_policy,
)

HTTPS_PORT = 443
# DICOM over TLS (PS3.15 Annex B): the NLB passes it through; the gateway terminates it.
DIMSE_PORT = 2762
# STOW-RS and the health check, plain HTTP inside the VPC: the ALB terminated the client's TLS and
# verified its certificate, and only the load balancers' security groups reach this port.
HTTP_PORT = 8080
HEALTH_PATH = "/health"
GATEWAY_CONTAINER = "gateway"
# Any non-root uid/gid works; the image need not know it (nothing in the image is written).
GATEWAY_USER = "10001:10001"
# The one writable path (the root filesystem is read-only): Fargate has no tmpfs, so it is a
# task-scoped volume on the task's ephemeral storage (encrypted by Fargate), gone with the task.
SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/tmp"
# The gateway spools every instance it receives there before the upload (DIMSE and STOW-RS alike,
# up to 4 GiB each): room for several large multi-frame instances at once.
EPHEMERAL_STORAGE_GIB = 60
# The gateway reads its TLS material from these variables (`--tls-cert-env NAME` etc.). ECS fills
# the first two from Secrets Manager at task start; the CA bundle and CRL are public material.
ENV_TLS_CERT = "PACS_GATEWAY_TLS_CERT"
ENV_TLS_KEY = "PACS_GATEWAY_TLS_KEY"
ENV_CLIENT_CA = "PACS_GATEWAY_CLIENT_CA"
ENV_CLIENT_CRL = "PACS_GATEWAY_CLIENT_CRL"
TASK_CPU = "1024"
TASK_MEMORY = "2048"
# What `docker build` produces on the usual CI runners; the image must match it.
CPU_ARCHITECTURE = "X86_64"
# Fargate's longest SIGTERM-to-SIGKILL grace: associations in flight finish their C-STOREs.
STOP_TIMEOUT_SECONDS = 120
HSTS = "max-age=31536000; includeSubDomains"
# ALB idle timeout: a STOW-RS upload of a large multi-frame study must not be cut mid-body.
ALB_IDLE_TIMEOUT_SECONDS = 300
# Where the ALB writes in the access-log bucket (ELB adds AWSLogs/<account>/...).
ALB_ACCESS_LOG_PREFIX = "edge-alb"
# Connection logs record every TLS handshake with the client certificate's serial and verdict.
ALB_CONNECTION_LOG_PREFIX = "edge-alb-connections"
LOAD_BALANCER_LOG_PREFIXES: tuple[str, ...] = (ALB_ACCESS_LOG_PREFIX, ALB_CONNECTION_LOG_PREFIX)
TRUST_BUCKET_PURPOSE = "edge-trust"
CA_BUNDLE_KEY = "client-ca/bundle.pem"
CRL_KEY = "client-ca/crl.pem"
PEM_CONTENT_TYPE = "application/x-pem-file"
SECRET_RECOVERY_DAYS = 30  # the longest Secrets Manager allows: a deleted key can be restored
TLS_SECRETS: dict[str, str] = {
    "certificate": "PEM certificate chain the gateway's DICOM TLS listener presents",
    "private-key": "PEM private key of the gateway's DICOM TLS certificate",
}
ECR_UNTAGGED_DAYS = 7
ECR_KEEP_IMAGES = 50

_ECR_URI_RE = re.compile(
    r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)(?::[^@]+|@sha256:.+)$"
)


def gateway_task_role_name(name_prefix: str) -> str:
    """The gateway container's role; the archive key policy grants it by name before it exists."""
    return f"{name_prefix}-gateway-task"


def gateway_execution_role_name(name_prefix: str) -> str:
    """ECS's role for the gateway's tasks; the edge key policy grants it by name."""
    return f"{name_prefix}-gateway-execution"


def gateway_command(
    inbox_bucket: str,
    *,
    with_crl: bool,
    sop_classes: Sequence[str] = (),
    transfer_syntaxes: Sequence[str] = (),
) -> list[str]:
    """The container's command: ``pacs-kit gateway ...`` without ``pacs-kit`` (the image's
    ENTRYPOINT, ``python -m gateway``, accepts the same arguments, sub-command included).

    ``sop_classes`` and ``transfer_syntaxes`` are the stack's ingest lists (``ingestSopClasses``,
    ``ingestTransferSyntaxes``): the gateway accepts what the ingest validator accepts. Empty, both
    take the validator's built-in lists, as the ingest function does.
    """
    command = [
        "gateway",
        "--dimse-port",
        str(DIMSE_PORT),
        "--http-port",
        str(HTTP_PORT),
        "--tls-cert-env",
        ENV_TLS_CERT,
        "--tls-key-env",
        ENV_TLS_KEY,
        "--client-ca-env",
        ENV_CLIENT_CA,
        "--inbox-bucket",
        inbox_bucket,
    ]
    for uid in sop_classes:
        command += ["--sop-class", uid]
    for uid in transfer_syntaxes:
        command += ["--transfer-syntax", uid]
    if with_crl:
        command += ["--client-crl-env", ENV_CLIENT_CRL]
    return command


@dataclass(frozen=True)
class GatewayContainer:
    """The plain values one container definition is built from."""

    image: str
    inbox_bucket: str
    region: str
    log_group: str
    certificate_secret_arn: str
    private_key_secret_arn: str
    client_ca_pem: str
    client_crl_pem: str | None = None
    sop_classes: tuple[str, ...] = ()
    transfer_syntaxes: tuple[str, ...] = ()


def container_definitions(c: GatewayContainer) -> list[dict[str, Any]]:
    """The task's one container: read-only, non-root, no capabilities, init process, awslogs."""
    environment = [
        {"name": "AWS_REGION", "value": c.region},
        {"name": "AWS_DEFAULT_REGION", "value": c.region},
        {"name": ENV_CLIENT_CA, "value": c.client_ca_pem},
    ]
    if c.client_crl_pem is not None:
        environment.append({"name": ENV_CLIENT_CRL, "value": c.client_crl_pem})
    return [
        {
            "name": GATEWAY_CONTAINER,
            "image": c.image,
            "essential": True,
            # The image's ENTRYPOINT (`python -m gateway`) takes `pacs-kit gateway`'s arguments.
            # ECS's init process reaps and forwards signals (initProcessEnabled below).
            "command": gateway_command(
                c.inbox_bucket,
                with_crl=c.client_crl_pem is not None,
                sop_classes=c.sop_classes,
                transfer_syntaxes=c.transfer_syntaxes,
            ),
            "user": GATEWAY_USER,
            "readonlyRootFilesystem": True,
            "linuxParameters": {
                "initProcessEnabled": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "portMappings": [
                {"containerPort": DIMSE_PORT, "protocol": "tcp", "name": "dicom-tls"},
                {"containerPort": HTTP_PORT, "protocol": "tcp", "name": "http"},
            ],
            "environment": environment,
            "secrets": [
                {"name": ENV_TLS_CERT, "valueFrom": c.certificate_secret_arn},
                {"name": ENV_TLS_KEY, "valueFrom": c.private_key_secret_arn},
            ],
            "mountPoints": [
                {"sourceVolume": SCRATCH_VOLUME, "containerPath": SCRATCH_PATH, "readOnly": False}
            ],
            "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
            "stopTimeout": STOP_TIMEOUT_SECONDS,
            # awslogs' default blocking mode: an audit event is never dropped to keep serving.
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": c.log_group,
                    "awslogs-region": c.region,
                    "awslogs-stream-prefix": GATEWAY_CONTAINER,
                },
            },
        }
    ]


def ecr_lifecycle_policy() -> dict[str, Any]:
    """Untagged layers go after a week; of tagged images the newest ECR_KEEP_IMAGES stay."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Expire untagged images after {ECR_UNTAGGED_DAYS} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": ECR_UNTAGGED_DAYS,
                },
                "action": {"type": "expire"},
            },
            {
                # Rollbacks need older releases; fifty deployments back is far enough.
                "rulePriority": 2,
                "description": f"Keep the newest {ECR_KEEP_IMAGES} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": ECR_KEEP_IMAGES,
                },
                "action": {"type": "expire"},
            },
        ]
    }


def ecr_repository_arn(image_uri: str, partition: str) -> str:
    """ARN of the ECR repository an image URI names."""
    match = _ECR_URI_RE.match(image_uri)
    if not match:
        raise ValueError(f"not an ECR image URI: {image_uri!r}")
    account_id, region, repository = match.groups()
    return f"arn:{partition}:ecr:{region}:{account_id}:repository/{repository}"


def ca_bundle_of_private_ca(certificate: str, chain: str | None) -> str:
    """The trust store bundle of an ACM Private CA: its certificate, then its chain to the root."""
    parts = [p.strip() for p in (certificate, chain or "") if p and p.strip()]
    return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class EdgeGatewayArgs:
    """The network, buckets and keys the edge runs on, and its deployment-specific settings."""

    account: Account
    name_prefix: str
    settings: EdgeSettings
    allowed_client_cidrs: tuple[str, ...]
    vpc_id: pulumi.Input[str]
    edge_subnet_ids: Sequence[pulumi.Input[str]]
    app_subnet_ids: Sequence[pulumi.Input[str]]
    endpoint_security_group_id: pulumi.Input[str]
    # The S3 gateway endpoint's prefix list: the inbox and ECR's image layers.
    s3_prefix_list_id: pulumi.Input[str]
    inbox: SecureBucket
    access_logs: SecureBucket
    trust_bucket_name: str
    data_key: aws.kms.Key
    edge_key: aws.kms.Key
    logs_key: aws.kms.Key
    log_retention_days: int
    # The stack's permissions boundary (infra/components/identity.py): every role carries it.
    permissions_boundary: pulumi.Input[str]
    # The stack's ingest lists (empty: the validator's built-in ones): what the gateway accepts.
    sop_classes: tuple[str, ...] = ()
    transfer_syntaxes: tuple[str, ...] = ()


class EdgeGateway(pulumi.ComponentResource):
    """Trust store, ALB + NLB, the gateway's ECR repository, ECS service, roles, logs, secrets."""

    trust_bucket: SecureBucket
    client_ca_pem: pulumi.Output[str]
    trust_store: aws.lb.TrustStore
    security_groups: dict[str, aws.ec2.SecurityGroup]
    alb: aws.lb.LoadBalancer
    nlb: aws.lb.LoadBalancer
    target_groups: dict[str, aws.lb.TargetGroup]
    listeners: dict[str, aws.lb.Listener]
    repository: aws.ecr.Repository
    image: pulumi.Output[str]
    tls_secrets: dict[str, aws.secretsmanager.Secret]
    log_group: aws.cloudwatch.LogGroup
    # Security log groups of the component (the audit ships each to the SIEM).
    log_groups: dict[str, aws.cloudwatch.LogGroup]
    task_role: aws.iam.Role
    execution_role: aws.iam.Role
    cluster: aws.ecs.Cluster
    task_definition: aws.ecs.TaskDefinition
    service: aws.ecs.Service

    def __init__(
        self, name: str, args: EdgeGatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloud-pacs:edge:EdgeGateway", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = args.account
        prefix = args.name_prefix
        s = args.settings

        # --- client trust -----------------------------------------------------------------------
        self.trust_bucket = SecureBucket(
            f"{name}-trust",
            SecureBucketArgs(
                account=account,
                bucket_name=args.trust_bucket_name,
                purpose=TRUST_BUCKET_PURPOSE,
                # CA certificates and CRLs are public by nature, and ELB reads them with the
                # deployer's credentials, which may not use the stack's keys through S3: SSE-S3.
                kms_key=None,
                access_log_bucket=args.access_logs.bucket.bucket,
                lifecycle=Lifecycle(noncurrent_expiration_days=365),
                classification="public-certificates",
            ),
            opts=child,
        )
        if s.client_ca_pem is not None:
            self.client_ca_pem = pulumi.Output.from_input(s.client_ca_pem)
        else:
            # The trust store still needs the CA certificates as a bundle in S3: read them from
            # the Private CA (its certificate and the chain above it) at deployment.
            authority = aws.acmpca.get_certificate_authority_output(
                arn=s.private_ca_arn, opts=pulumi.InvokeOptions(parent=self)
            )
            self.client_ca_pem = authority.apply(
                lambda ca: ca_bundle_of_private_ca(ca.certificate, ca.certificate_chain)
            )

        def pem_object(suffix: str, key: str, content: pulumi.Input[str]) -> aws.s3.BucketObjectv2:
            return aws.s3.BucketObjectv2(
                f"{name}-{suffix}",
                bucket=self.trust_bucket.bucket.id,
                key=key,
                content=content,
                content_type=PEM_CONTENT_TYPE,
                # Uploaded only once the bucket's TLS-only policy is in force.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.trust_bucket.policy]),
            )

        bundle = pem_object("ca-bundle", CA_BUNDLE_KEY, self.client_ca_pem)
        self.trust_store = aws.lb.TrustStore(
            f"{name}-trust-store",
            name=f"{prefix}-edge-ca",
            ca_certificates_bundle_s3_bucket=args.trust_bucket_name,
            ca_certificates_bundle_s3_key=bundle.key,
            # A new bundle is a new object version: the trust store follows it.
            ca_certificates_bundle_s3_object_version=bundle.version_id,
            opts=child,
        )
        listener_waits_for: list[pulumi.Resource] = []
        if s.client_crl_pem is not None:
            crl = pem_object("crl", CRL_KEY, s.client_crl_pem)
            listener_waits_for.append(
                aws.lb.TrustStoreRevocation(
                    f"{name}-revocations",
                    trust_store_arn=self.trust_store.arn,
                    revocations_s3_bucket=args.trust_bucket_name,
                    revocations_s3_key=crl.key,
                    revocations_s3_object_version=crl.version_id,
                    opts=child,
                )
            )

        # --- security groups --------------------------------------------------------------------
        self.security_groups = {
            role: aws.ec2.SecurityGroup(
                f"{name}-{role}-sg",
                vpc_id=args.vpc_id,
                description=description,
                # Rules are separate resources below: the groups refer to each other.
                tags={"Name": f"{prefix}-edge-{role}"},
                opts=child,
            )
            for role, description in (
                ("alb", "Edge ALB: HTTPS from allowedClientCidrs, HTTP to the gateway"),
                ("nlb", "Edge NLB: DICOM TLS from allowedClientCidrs, to the gateway"),
                ("service", "Gateway tasks: from the edge load balancers, to the VPC endpoints"),
            )
        }
        self._security_group_rules(name, args)

        # --- load balancers ---------------------------------------------------------------------
        # Both: in the edge subnets, internal unless configured otherwise, deletion-protected.
        placement: dict[str, Any] = {
            "internal": not s.internet_facing,
            "ip_address_type": "ipv4",
            "subnets": list(args.edge_subnet_ids),
            "enable_deletion_protection": True,
        }
        logs_bucket = args.access_logs.bucket.bucket
        self.alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            name=f"{prefix}-edge-alb",
            load_balancer_type="application",
            security_groups=[self.security_groups["alb"].id],
            **placement,
            drop_invalid_header_fields=True,
            desync_mitigation_mode="strictest",
            # Adds x-amzn-tls-version and -cipher-suite: the gateway records what was negotiated.
            enable_tls_version_and_cipher_suite_headers=True,
            idle_timeout=ALB_IDLE_TIMEOUT_SECONDS,
            access_logs={"bucket": logs_bucket, "prefix": ALB_ACCESS_LOG_PREFIX, "enabled": True},
            connection_logs={
                "bucket": logs_bucket,
                "prefix": ALB_CONNECTION_LOG_PREFIX,
                "enabled": True,
            },
            # ELB writes a test object when logging is switched on: the bucket policy must exist.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.access_logs.policy]),
        )
        self.nlb = aws.lb.LoadBalancer(
            f"{name}-nlb",
            name=f"{prefix}-edge-nlb",
            load_balancer_type="network",
            security_groups=[self.security_groups["nlb"].id],
            enable_cross_zone_load_balancing=True,
            **placement,
            # A TCP listener has no NLB access logs (only TLS listeners do); flow logs record it.
            opts=child,
        )
        self.target_groups = {
            "http": aws.lb.TargetGroup(
                f"{name}-http-targets",
                name=f"{prefix}-gw-http",
                vpc_id=args.vpc_id,
                target_type="ip",
                protocol="HTTP",
                port=HTTP_PORT,
                deregistration_delay=60,
                health_check={
                    "enabled": True,
                    "protocol": "HTTP",
                    "port": "traffic-port",
                    "path": HEALTH_PATH,
                    "matcher": "200",
                    "interval": 15,
                    "timeout": 5,
                    "healthy_threshold": 2,
                    "unhealthy_threshold": 3,
                },
                opts=child,
            ),
            "dimse": aws.lb.TargetGroup(
                f"{name}-dimse-targets",
                name=f"{prefix}-gw-dimse",
                vpc_id=args.vpc_id,
                target_type="ip",
                protocol="TCP",
                port=DIMSE_PORT,
                # Connections then come from the NLB, which the service's security group names;
                # the gateway identifies callers by their client certificate, not their address.
                preserve_client_ip="false",
                # DICOM associations are long: let them finish before a task is replaced.
                deregistration_delay=STOP_TIMEOUT_SECONDS,
                # A TCP check would open TLS connections and drop them mid-handshake; the
                # gateway's health endpoint says whether it can serve.
                health_check={
                    "enabled": True,
                    "protocol": "HTTP",
                    "port": str(HTTP_PORT),
                    "path": HEALTH_PATH,
                    "matcher": "200",
                    "interval": 10,
                    "timeout": 5,
                    "healthy_threshold": 2,
                    "unhealthy_threshold": 3,
                },
                opts=child,
            ),
        }
        self.listeners = {
            "https": aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=self.alb.arn,
                port=HTTPS_PORT,
                protocol="HTTPS",
                ssl_policy=s.tls_policy,
                certificate_arn=s.certificate_arn,
                mutual_authentication={
                    "mode": "verify",
                    "trust_store_arn": self.trust_store.arn,
                    "ignore_client_certificate_expiry": False,
                    # Clients are configured with their certificate; naming the trusted CAs in
                    # the handshake would only tell strangers which CAs to target.
                    "advertise_trust_store_ca_names": "off",
                },
                default_actions=[
                    {"type": "forward", "target_group_arn": self.target_groups["http"].arn}
                ],
                routing_http_response_strict_transport_security_header_value=HSTS,
                routing_http_response_x_content_type_options_header_value="nosniff",
                routing_http_response_server_enabled=False,
                opts=pulumi.ResourceOptions(parent=self, depends_on=listener_waits_for),
            ),
            "dimse": aws.lb.Listener(
                f"{name}-dimse",
                load_balancer_arn=self.nlb.arn,
                port=DIMSE_PORT,
                # Passed through: the gateway terminates DICOM TLS and verifies the client.
                protocol="TCP",
                default_actions=[
                    {"type": "forward", "target_group_arn": self.target_groups["dimse"].arn}
                ],
                opts=child,
            ),
        }

        # --- image, secrets, logs ---------------------------------------------------------------
        self.repository = aws.ecr.Repository(
            f"{name}-repository",
            name=f"{prefix}/gateway",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.edge_key.arn}],
            force_delete=False,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-repository-lifecycle",
            repository=self.repository.name,
            policy=json.dumps(ecr_lifecycle_policy()),
            opts=child,
        )
        self.image = (
            pulumi.Output.from_input(s.image)
            if s.image
            else pulumi.Output.concat(self.repository.repository_url, ":", s.image_tag)
        )
        # Created empty: an operator puts the values (see the README). Until then tasks cannot
        # start, and the service keeps trying.
        self.tls_secrets = {
            part: aws.secretsmanager.Secret(
                f"{name}-tls-{part}",
                name=f"{prefix}/edge/gateway-tls-{part}",
                description=description,
                kms_key_id=args.edge_key.arn,
                recovery_window_in_days=SECRET_RECOVERY_DAYS,
                opts=child,
            )
            for part, description in TLS_SECRETS.items()
        }
        self.log_group = encrypted_log_group(
            f"{name}-gateway-logs",
            group_name=f"/{prefix}/ecs/gateway",
            logs_key=args.logs_key,
            retention_days=args.log_retention_days,
            opts=child,
        )

        # --- roles ------------------------------------------------------------------------------
        trust = json.dumps(
            service_trust_policy(
                "ecs-tasks.amazonaws.com",
                account,
                source_arn_like=f"arn:{account.partition}:ecs:{account.region}:{account.account_id}:*",
            )
        )
        self.task_role = aws.iam.Role(
            f"{name}-task-role",
            name=gateway_task_role_name(prefix),
            description="The edge gateway container: adds received instances to the inbox",
            assume_role_policy=trust,
            permissions_boundary=args.permissions_boundary,
            opts=child,
        )
        task_policy = aws.iam.RolePolicy(
            f"{name}-task-policy",
            role=self.task_role.id,
            policy=args.data_key.arn.apply(
                lambda key: json.dumps(
                    gateway_task_role_policy(
                        GatewayTaskResources(
                            inbox_bucket=args.inbox.name,
                            data_key_arn=key,
                            s3_service_endpoint=account.service_endpoint("s3"),
                        )
                    )
                )
            ),
            opts=child,
        )
        self.execution_role = aws.iam.Role(
            f"{name}-execution-role",
            name=gateway_execution_role_name(prefix),
            description="ECS starting gateway tasks: image pull, log writes, the TLS secrets",
            assume_role_policy=trust,
            permissions_boundary=args.permissions_boundary,
            opts=child,
        )
        extra_repositories = (ecr_repository_arn(s.image, account.partition),) if s.image else ()
        execution_policy = aws.iam.RolePolicy(
            f"{name}-execution-policy",
            role=self.execution_role.id,
            policy=pulumi.Output.all(
                repository=self.repository.arn,
                log_group=self.log_group.arn,
                certificate=self.tls_secrets["certificate"].arn,
                private_key=self.tls_secrets["private-key"].arn,
                edge_key=args.edge_key.arn,
            ).apply(
                lambda a: json.dumps(
                    gateway_execution_role_policy(
                        GatewayExecutionResources(
                            repository_arns=tuple(sorted({a["repository"], *extra_repositories})),
                            log_group_arn=a["log_group"],
                            secret_arns=(a["certificate"], a["private_key"]),
                            edge_key_arn=a["edge_key"],
                            secretsmanager_service_endpoint=account.service_endpoint(
                                "secretsmanager"
                            ),
                        )
                    )
                )
            ),
            opts=child,
        )

        # --- cluster, task, service -------------------------------------------------------------
        cluster_name = f"{prefix}-edge"
        # Container Insights writes its performance events here: pre-created, they are
        # KMS-encrypted and kept like every other log group instead of AWS's defaults.
        insights = encrypted_log_group(
            f"{name}-container-insights-logs",
            group_name=f"/aws/ecs/containerinsights/{cluster_name}/performance",
            logs_key=args.logs_key,
            retention_days=args.log_retention_days,
            opts=child,
        )
        self.log_groups = {"gateway": self.log_group, "container-insights": insights}
        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=cluster_name,
            settings=[{"name": "containerInsights", "value": "enabled"}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[insights]),
        )
        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"{prefix}-gateway",
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=TASK_CPU,
            memory=TASK_MEMORY,
            runtime_platform={
                "operating_system_family": "LINUX",
                "cpu_architecture": CPU_ARCHITECTURE,
            },
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            volumes=[{"name": SCRATCH_VOLUME}],
            ephemeral_storage={"size_in_gib": EPHEMERAL_STORAGE_GIB},
            container_definitions=pulumi.Output.all(
                image=self.image,
                log_group=self.log_group.name,
                certificate=self.tls_secrets["certificate"].arn,
                private_key=self.tls_secrets["private-key"].arn,
                client_ca=self.client_ca_pem,
            ).apply(
                lambda a: json.dumps(
                    container_definitions(
                        GatewayContainer(
                            image=a["image"],
                            inbox_bucket=args.inbox.name,
                            region=account.region,
                            log_group=a["log_group"],
                            certificate_secret_arn=a["certificate"],
                            private_key_secret_arn=a["private_key"],
                            client_ca_pem=a["client_ca"],
                            client_crl_pem=s.client_crl_pem,
                            sop_classes=args.sop_classes,
                            transfer_syntaxes=args.transfer_syntaxes,
                        )
                    )
                )
            ),
            opts=child,
        )
        self.service = aws.ecs.Service(
            f"{name}-service",
            name=f"{prefix}-gateway",
            cluster=self.cluster.arn,
            task_definition=self.task_definition.arn,
            desired_count=s.desired_count,
            launch_type="FARGATE",
            platform_version="LATEST",
            network_configuration={
                "subnets": list(args.app_subnet_ids),
                "security_groups": [self.security_groups["service"].id],
                "assign_public_ip": False,
            },
            load_balancers=[
                {
                    "target_group_arn": self.target_groups["http"].arn,
                    "container_name": GATEWAY_CONTAINER,
                    "container_port": HTTP_PORT,
                },
                {
                    "target_group_arn": self.target_groups["dimse"].arn,
                    "container_name": GATEWAY_CONTAINER,
                    "container_port": DIMSE_PORT,
                },
            ],
            health_check_grace_period_seconds=60,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            availability_zone_rebalancing="ENABLED",
            # No shell into a task that holds a TLS private key and writes PHI.
            enable_execute_command=False,
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            # ECS refuses target groups that no listener uses yet; tasks need their roles.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*self.listeners.values(), task_policy, execution_policy],
            ),
        )
        self.register_outputs(
            {
                "albDnsName": self.alb.dns_name,
                "nlbDnsName": self.nlb.dns_name,
                "repositoryUrl": self.repository.repository_url,
                "image": self.image,
                "cluster": self.cluster.name,
                "service": self.service.name,
                "tlsSecretArns": {p: sec.arn for p, sec in self.tls_secrets.items()},
            }
        )

    def _security_group_rules(self, name: str, args: EdgeGatewayArgs) -> None:
        """Clients → load balancers → gateway → VPC endpoints; nothing else, nowhere else."""
        child = pulumi.ResourceOptions(parent=self)
        alb, nlb, service = (self.security_groups[r].id for r in ("alb", "nlb", "service"))

        def rule(
            kind: type[aws.vpc.SecurityGroupIngressRule | aws.vpc.SecurityGroupEgressRule],
            resource_name: str,
            group: pulumi.Input[str],
            port: int,
            description: str,
            **peer: Any,
        ) -> None:
            kind(
                resource_name,
                security_group_id=group,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=description,
                **peer,
                opts=child,
            )

        ingress = functools.partial(rule, aws.vpc.SecurityGroupIngressRule)
        egress = functools.partial(rule, aws.vpc.SecurityGroupEgressRule)

        # An empty allowedClientCidrs leaves the load balancers without ingress (config warns).
        for i, cidr in enumerate(args.allowed_client_cidrs):
            ingress(f"{name}-alb-from-client-{i}", alb, HTTPS_PORT, "HTTPS", cidr_ipv4=cidr)
            ingress(f"{name}-nlb-from-client-{i}", nlb, DIMSE_PORT, "DICOM TLS", cidr_ipv4=cidr)
        egress(
            f"{name}-alb-to-gateway",
            alb,
            HTTP_PORT,
            "STOW-RS and health checks",
            referenced_security_group_id=service,
        )
        egress(
            f"{name}-nlb-to-gateway-dimse",
            nlb,
            DIMSE_PORT,
            "DICOM TLS",
            referenced_security_group_id=service,
        )
        egress(
            f"{name}-nlb-to-gateway-health",
            nlb,
            HTTP_PORT,
            "Health checks",
            referenced_security_group_id=service,
        )
        ingress(
            f"{name}-gateway-from-alb",
            service,
            HTTP_PORT,
            "STOW-RS and health checks from the ALB",
            referenced_security_group_id=alb,
        )
        ingress(
            f"{name}-gateway-dimse-from-nlb",
            service,
            DIMSE_PORT,
            "DICOM TLS from the NLB",
            referenced_security_group_id=nlb,
        )
        ingress(
            f"{name}-gateway-health-from-nlb",
            service,
            HTTP_PORT,
            "Health checks from the NLB",
            referenced_security_group_id=nlb,
        )
        egress(
            f"{name}-gateway-to-interface-endpoints",
            service,
            HTTPS_PORT,
            "HTTPS to the interface endpoints (ECR, Logs, Secrets Manager, KMS, STS)",
            referenced_security_group_id=args.endpoint_security_group_id,
        )
        egress(
            f"{name}-gateway-to-s3",
            service,
            HTTPS_PORT,
            "HTTPS to the S3 gateway endpoint (inbox, ECR image layers)",
            prefix_list_id=args.s3_prefix_list_id,
        )
