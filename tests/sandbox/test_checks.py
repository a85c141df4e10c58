"""The sandbox's live checks against an in-process moto server.

A minimal stack built directly with boto3 (one resource of each checked kind, configured as the
kit demands) passes every check; each deliberate weakening (a public access block removed, a trail
stopped, a key's rotation disabled, ...) fails exactly the check that reads it. Resources the
sandbox did not emulate come back N/A, never as a pass.
"""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pacs_kit.sandbox import checks as checks_module
from pacs_kit.sandbox.checks import (
    SPECS,
    Check,
    checks_as_json,
    format_checks,
    run_checks,
)
from pacs_kit.sandbox.emulate import Clients
from pacs_kit.sandbox.state import ResourceState, SandboxState
from tests.sandbox.conftest import tls_only_policy

REGION = "us-east-1"
DR_REGION = "us-west-2"
ACCOUNT = "123456789012"
PREFIX = "pacs-test"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-3-2021-06"
CONFIG = {
    "aws:region": REGION,
    "cloud-pacs:archiveRetentionMode": "COMPLIANCE",
    "cloud-pacs:archiveRetentionDays": 2555,
    "cloud-pacs:quarantineRetentionDays": 365,
    "cloud-pacs:logRetentionDays": 2192,
    "cloud-pacs:backupRetentionDays": 35,
    "cloud-pacs:ingestMaxReceiveCount": 5,
    "cloud-pacs:edgeTlsPolicy": TLS_POLICY,
}


@dataclass
class Stack:
    """The built stack: its state and the names the weakenings touch."""

    state: SandboxState
    clients: Clients
    names: dict[str, str]

    def client(self, service: str, region: str = REGION) -> Any:
        return self.clients.client(service, region)


def _resource(type_token: str, pulumi_name: str, resource_id: str, **outputs: Any) -> ResourceState:
    return ResourceState(
        urn=f"urn:pulumi:test::cloud-pacs::{type_token}::{pulumi_name}",
        type=type_token,
        name=pulumi_name,
        status="created",
        id=resource_id,
        outputs=outputs,
    )


def _build(clients: Clients) -> Stack:
    """One correctly configured resource of each checked kind, and the state naming them."""
    endpoint = clients.endpoint
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).close()
    resources: list[ResourceState] = []
    kms = clients.client("kms", REGION)

    # --- keys ---------------------------------------------------------------------------------
    key_arns: dict[str, str] = {}
    for purpose, spec, usage in (
        ("archive", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        ("logs", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        ("signing", "ECC_NIST_P256", "SIGN_VERIFY"),
        ("pseudonym", "HMAC_256", "GENERATE_VERIFY_MAC"),
    ):
        key = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        if spec == "SYMMETRIC_DEFAULT":
            kms.enable_key_rotation(KeyId=key["KeyId"])
        key_arns[purpose] = key["Arn"]
        resources.append(
            _resource(
                checks_module.KMS_KEY,
                f"keys-{purpose}",
                key["KeyId"],
                arn=key["Arn"],
                tags={"purpose": purpose},
            )
        )
    dr_kms = clients.client("kms", DR_REGION)
    dr_key = dr_kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")[
        "KeyMetadata"
    ]
    dr_kms.enable_key_rotation(KeyId=dr_key["KeyId"])
    resources.append(
        _resource(
            checks_module.KMS_KEY,
            "dr-keys-backup",
            dr_key["KeyId"],
            arn=dr_key["Arn"],
            tags={"purpose": "backup"},
        )
    )

    # --- buckets ------------------------------------------------------------------------------
    buckets = {
        p: f"{PREFIX}-{ACCOUNT}-{REGION}-{p}" for p in ("archive", "quarantine", "access-logs")
    }
    replica = f"{PREFIX}-{ACCOUNT}-{DR_REGION}-replica"
    layout = (
        (buckets["archive"], REGION, "archive", key_arns["archive"], ("COMPLIANCE", 2555)),
        (buckets["quarantine"], REGION, "quarantine", key_arns["archive"], ("GOVERNANCE", 365)),
        (buckets["access-logs"], REGION, "access-logs", None, None),
        (replica, DR_REGION, "archive-replica", dr_key["Arn"], ("COMPLIANCE", 2555)),
    )
    for bucket, region, purpose, key_arn, lock in layout:
        s3 = clients.client("s3", region)
        create: dict[str, Any] = {"Bucket": bucket, "ObjectLockEnabledForBucket": lock is not None}
        if region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**create)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_ownership_controls(
            Bucket=bucket,
            OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        )
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        default: dict[str, str] = (
            {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
            if key_arn
            else {"SSEAlgorithm": "AES256"}
        )
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": default,
                        "BucketKeyEnabled": bool(key_arn),
                    }
                ]
            },
        )
        s3.put_bucket_policy(Bucket=bucket, Policy=tls_only_policy(bucket))
        if lock is not None:
            s3.put_object_lock_configuration(
                Bucket=bucket,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": lock[0], "Days": lock[1]}},
                },
            )
        resources.append(
            _resource(
                checks_module.BUCKET,
                f"bucket-{purpose}",
                bucket,
                bucket=bucket,
                arn=f"arn:aws:s3:::{bucket}",
                region=region,
                tags={"purpose": purpose},
            )
        )
    iam = clients.client("iam", REGION)
    boundary = iam.create_policy(
        PolicyName=f"{PREFIX}-permissions-boundary",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    role_arn = iam.create_role(
        RoleName=f"{PREFIX}-ingest",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        PermissionsBoundary=boundary,
    )["Role"]["Arn"]
    resources.append(
        _resource(checks_module.ROLE, "ingest-role", f"{PREFIX}-ingest", name=f"{PREFIX}-ingest")
    )
    clients.client("s3", REGION).put_bucket_replication(
        Bucket=buckets["archive"],
        ReplicationConfiguration={
            "Role": role_arn,
            "Rules": [
                {
                    "ID": "archive-to-dr",
                    "Priority": 1,
                    "Status": "Enabled",
                    "Filter": {},
                    "DeleteMarkerReplication": {"Status": "Disabled"},
                    "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
                    "Destination": {"Bucket": f"arn:aws:s3:::{replica}"},
                }
            ],
        },
    )
    # What the sandbox's handler reports on reading the rule back (moto drops the selection).
    replication = _resource(
        checks_module.BUCKET_REPLICATION,
        "dr-replication",
        buckets["archive"],
        bucket=buckets["archive"],
    )
    replication.notes.append("replication rule fields not kept by moto: SourceSelectionCriteria")
    resources.append(replication)

    # --- trail --------------------------------------------------------------------------------
    trail_bucket = f"{PREFIX}-{ACCOUNT}-{REGION}-audit-trail"
    clients.client("s3", REGION).create_bucket(Bucket=trail_bucket)
    cloudtrail = clients.client("cloudtrail", REGION)
    trail_arn = cloudtrail.create_trail(
        Name=f"{PREFIX}-trail",
        S3BucketName=trail_bucket,
        IsMultiRegionTrail=True,
        EnableLogFileValidation=True,
        KmsKeyId=key_arns["logs"],
    )["TrailARN"]
    cloudtrail.put_event_selectors(
        TrailName=trail_arn,
        AdvancedEventSelectors=[
            {
                "Name": "Imaging objects",
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Data"]},
                    {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                    {
                        "Field": "resources.ARN",
                        "StartsWith": [
                            f"arn:aws:s3:::{buckets['archive']}/",
                            f"arn:aws:s3:::{buckets['quarantine']}/",
                            f"arn:aws:s3:::{replica}/",
                        ],
                    },
                ],
            }
        ],
    )
    cloudtrail.start_logging(Name=trail_arn)
    resources.append(
        _resource(
            checks_module.TRAIL, "audit-trail", f"{PREFIX}-trail", arn=trail_arn, name="trail"
        )
    )

    # --- network and logs ---------------------------------------------------------------------
    logs = clients.client("logs", REGION)
    flow_group = f"/{PREFIX}/vpc/flow-logs"
    logs.create_log_group(logGroupName=flow_group, kmsKeyId=key_arns["logs"])
    logs.put_retention_policy(logGroupName=flow_group, retentionInDays=2192)
    resources.append(
        _resource(
            checks_module.LOG_GROUP,
            "network-flow-logs",
            flow_group,
            name=flow_group,
            arn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{flow_group}",
        )
    )
    ec2 = clients.client("ec2", REGION)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate((f"{REGION}a", f"{REGION}b"))
    ]
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    ec2.create_flow_logs(
        ResourceIds=[vpc],
        ResourceType="VPC",
        TrafficType="ALL",
        LogDestinationType="cloud-watch-logs",
        LogGroupName=flow_group,
        DeliverLogsPermissionArn=role_arn,
    )
    resources.append(_resource(checks_module.VPC, "network-vpc", vpc))

    # --- queues, table, vault -----------------------------------------------------------------
    sqs = clients.client("sqs", REGION)
    dlq_url = sqs.create_queue(
        QueueName=f"{PREFIX}-ingest-dlq", Attributes={"KmsMasterKeyId": key_arns["archive"]}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"{PREFIX}-ingest",
        Attributes={
            "KmsMasterKeyId": key_arns["archive"],
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
        },
    )["QueueUrl"]
    for name, url in (("ingest-dlq", dlq_url), ("ingest-queue", queue_url)):
        resources.append(_resource(checks_module.QUEUE, name, url, url=url))
    dynamodb = clients.client("dynamodb", REGION)
    table = f"{PREFIX}-index"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "uid", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "uid", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_arns["archive"]},
        DeletionProtectionEnabled=True,
    )
    dynamodb.update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    resources.append(_resource(checks_module.TABLE, "ingest-index-table", table, name=table))
    backup = clients.client("backup", DR_REGION)
    vault = f"{PREFIX}-dr-vault"
    vault_arn = backup.create_backup_vault(BackupVaultName=vault, EncryptionKeyArn=dr_key["Arn"])[
        "BackupVaultArn"
    ]
    backup.put_backup_vault_lock_configuration(
        BackupVaultName=vault, MinRetentionDays=35, ChangeableForDays=3
    )
    resources.append(
        _resource(checks_module.VAULT, "dr-dr-vault", vault, name=vault, arn=vault_arn)
    )

    # --- compute ------------------------------------------------------------------------------
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return None\n")
    function = f"{PREFIX}-ingest"
    clients.client("lambda", REGION).create_function(
        FunctionName=function,
        Runtime="python3.12",
        Role=role_arn,
        Handler="handler.handle",
        Code={"ZipFile": code.getvalue()},
        VpcConfig={"SubnetIds": subnets, "SecurityGroupIds": [group]},
        KMSKeyArn=key_arns["archive"],
        Environment={"Variables": {"PACS_ARCHIVE_BUCKET": buckets["archive"]}},
    )
    resources.append(_resource(checks_module.FUNCTION, "ingest-ingest", function, name=function))
    certificate = clients.client("acm", REGION).request_certificate(DomainName="pacs.example")[
        "CertificateArn"
    ]
    elb = clients.client("elbv2", REGION)
    balancer = elb.create_load_balancer(
        Name=f"{PREFIX}-alb", Subnets=subnets, Scheme="internal", Type="application"
    )["LoadBalancers"][0]["LoadBalancerArn"]
    target_group = elb.create_target_group(
        Name=f"{PREFIX}-gw", Protocol="HTTPS", Port=443, VpcId=vpc, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    listener = elb.create_listener(
        LoadBalancerArn=balancer,
        Protocol="HTTPS",
        Port=443,
        SslPolicy=TLS_POLICY,
        Certificates=[{"CertificateArn": certificate}],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}],
    )["Listeners"][0]["ListenerArn"]
    resources.append(
        _resource(checks_module.LISTENER, "edge-https", listener, arn=listener, protocol="HTTPS")
    )

    # --- SIEM stream --------------------------------------------------------------------------
    siem_backup = f"{PREFIX}-{ACCOUNT}-{REGION}-siem-backup"
    clients.client("s3", REGION).create_bucket(Bucket=siem_backup)
    stream_arn = clients.client("firehose", REGION).create_delivery_stream(
        DeliveryStreamName=f"{PREFIX}-siem",
        DeliveryStreamEncryptionConfigurationInput={
            "KeyType": "CUSTOMER_MANAGED_CMK",
            "KeyARN": key_arns["logs"],
        },
        HttpEndpointDestinationConfiguration={
            "EndpointConfiguration": {"Url": "https://127.0.0.1:4443/siem", "Name": "SIEM"},
            "S3BackupMode": "FailedDataOnly",
            "S3Configuration": {
                "RoleARN": role_arn,
                "BucketARN": f"arn:aws:s3:::{siem_backup}",
                "EncryptionConfiguration": {
                    "KMSEncryptionConfig": {"AWSKMSKeyARN": key_arns["logs"]}
                },
            },
        },
    )["DeliveryStreamARN"]
    resources.append(_resource(checks_module.FIREHOSE, "audit-siem", stream_arn, arn=stream_arn))

    state = SandboxState(
        stack="test",
        region=REGION,
        account_id=ACCOUNT,
        endpoint=endpoint,
        siem_url="https://127.0.0.1:4443/siem",
        admin_access_key_id="sandbox",
        admin_secret_access_key="sandbox",
        outputs={
            "buckets": {p: b for p, b in buckets.items()},
            "replicaBucket": replica,
            "keyArns": key_arns,
            "vpcId": vpc,
            "ingestQueueUrl": queue_url,
            "ingestDeadLetterQueueUrl": dlq_url,
            "identity": {"permissionsBoundaryArn": boundary},
        },
        resources=resources,
        config=dict(CONFIG),
    )
    names = {
        "archive": buckets["archive"],
        "quarantine": buckets["quarantine"],
        "access-logs": buckets["access-logs"],
        "replica": replica,
        "archive-key": key_arns["archive"],
        "logs-key": key_arns["logs"],
        "trail": trail_arn,
        "vpc": vpc,
        "flow-group": flow_group,
        "queue": queue_url,
        "table": table,
        "vault": vault_arn,
        "function": function,
        "role": f"{PREFIX}-ingest",
        "listener": listener,
        "stream": stream_arn,
    }
    return Stack(state=state, clients=clients, names=names)


_PRISTINE: dict[str, Stack] = {}


@pytest.fixture
def pristine(clients: Clients) -> Stack:
    """The correct stack, built once for the tests that only read it (a fresh build resets it)."""
    if "stack" not in _PRISTINE:
        _PRISTINE["stack"] = _build(clients)
    return _PRISTINE["stack"]


@pytest.fixture
def fresh(clients: Clients) -> Stack:
    """A correct stack of the test's own, to weaken."""
    _PRISTINE.clear()
    return _build(clients)


def _verdicts(checks: list[Check]) -> dict[tuple[str, str], bool | None]:
    return {(c.id, c.resource): c.passed for c in checks}


def test_correct_stack_passes_every_check(pristine: Stack) -> None:
    checks = run_checks(pristine.state, pristine.clients)
    failing = [c for c in checks if c.passed is not True]
    # The one property moto cannot hold: reported unreadable, with the reason, never passed.
    assert [(c.id, c.passed) for c in failing] == [("backup-and-dr/archive-replication", None)]
    assert "moto drops SourceSelectionCriteria" in failing[0].detail
    # Every kind of check ran against the minimal stack.
    assert {c.id for c in checks} == {spec.id for spec in SPECS}


def test_details_show_what_was_read_back(pristine: Stack) -> None:
    checks = {(c.id, c.resource): c for c in run_checks(pristine.state, pristine.clients)}
    lock = checks[("immutable-archive/object-lock", pristine.names["archive"])]
    assert lock.detail.startswith("COMPLIANCE 2555 days")
    quarantine = checks[("immutable-archive/object-lock", pristine.names["quarantine"])]
    assert quarantine.detail.startswith("GOVERNANCE 365 days")
    logs_sse = checks[
        ("encrypt-with-customer-keys/bucket-encryption", pristine.names["access-logs"])
    ]
    assert logs_sse.passed is True
    assert logs_sse.detail.startswith("AES256")
    assert "(45 CFR 164.312(c)(1))" in lock.title


def test_not_emulated_resources_are_not_applicable(pristine: Stack) -> None:
    """A resource the sandbox could not create is N/A with the reason, never a pass."""
    resources = [
        replace(r, status="not-emulated", notes=["no handler yet"])
        if r.type in (checks_module.BUCKET, checks_module.TRAIL)
        else r
        for r in pristine.state.resources
    ]
    checks = run_checks(replace(pristine.state, resources=resources), pristine.clients)
    skipped = [c for c in checks if c.passed is None]
    assert all("not emulated: no handler yet" in c.detail for c in skipped)
    kinds = {c.id.split("/")[1].split("-")[0] for c in skipped}
    assert kinds == {"object", "bucket", "trail", "archive"}
    assert all(c.passed is True for c in checks if c.passed is not None)


def test_unanswerable_api_is_not_applicable(
    pristine: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An emulator that cannot answer (HTTP 5xx, NotImplemented) gives N/A, not a pass."""

    def not_implemented(**_: Any) -> Any:
        raise ClientError(
            {
                "Error": {"Code": "InternalError", "Message": "not implemented"},
                "ResponseMetadata": {"HTTPStatusCode": 500},
            },
            "GetTrailStatus",
        )

    clients = Clients(endpoint=pristine.clients.endpoint)
    monkeypatch.setattr(clients.client("cloudtrail", REGION), "get_trail_status", not_implemented)
    check = next(c for c in run_checks(pristine.state, clients) if c.id.endswith("trail-logging"))
    assert check.passed is None
    assert "cannot answer GetTrailStatus" in check.detail


def test_format_and_json(pristine: Stack) -> None:
    failed = Check("audit-to-siem/trail-logging", "t", "trail", False, "IsLogging false")
    checks = [*run_checks(pristine.state, pristine.clients), failed]
    lines = format_checks(checks).splitlines()
    assert len(lines) == len(checks) + 1
    assert lines[-2].split() == [
        "FAIL",
        "audit-to-siem/trail-logging",
        "trail",
        "IsLogging",
        "false",
    ]
    assert lines[-1] == (
        f"{len(checks)} checks: {len(checks) - 2} passed, 1 failed, "
        "1 not readable back in the emulator"
    )
    as_json = json.loads(json.dumps(checks_as_json(checks)))
    assert {"id", "title", "resource", "passed", "detail", "verdict"} <= set(as_json[0])
    assert [c["verdict"] for c in as_json].count("FAIL") == 1


# Each weakening: what to change in the emulator, and the (check, resource) it must fail.
Weakening = Callable[[Stack], None]


def _no_public_access_block(stack: Stack) -> None:
    stack.client("s3").delete_public_access_block(Bucket=stack.names["quarantine"])


def _trail_stopped(stack: Stack) -> None:
    stack.client("cloudtrail").stop_logging(Name=stack.names["trail"])


def _no_rotation(stack: Stack) -> None:
    stack.client("kms").disable_key_rotation(KeyId=stack.names["archive-key"])


def _key_disabled(stack: Stack) -> None:
    # moto's DisableKey fails on a key ARN (KeyError, HTTP 500): by key id.
    stack.client("kms").disable_key(KeyId=stack.names["logs-key"].rsplit("/", 1)[-1])


def _shorter_lock(stack: Stack) -> None:
    # AWS refuses shortening a COMPLIANCE default retention; moto does not (OFFLINE-FACTS.md).
    stack.client("s3", DR_REGION).put_object_lock_configuration(
        Bucket=stack.names["replica"],
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}},
        },
    )


def _sse_s3_archive(stack: Stack) -> None:
    stack.client("s3").put_bucket_encryption(
        Bucket=stack.names["archive"],
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def _versioning_suspended(stack: Stack) -> None:
    stack.client("s3").put_bucket_versioning(
        Bucket=stack.names["access-logs"], VersioningConfiguration={"Status": "Suspended"}
    )


def _policy_without_tls(stack: Stack) -> None:
    bucket = stack.names["archive"]
    policy = json.loads(tls_only_policy(bucket))
    policy["Statement"][0]["Condition"] = {"Bool": {"aws:SecureTransport": "true"}}
    stack.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def _short_log_retention(stack: Stack) -> None:
    stack.client("logs").put_retention_policy(
        logGroupName=stack.names["flow-group"], retentionInDays=30
    )


def _flow_logs_deleted(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    found = ec2.describe_flow_logs()["FlowLogs"]
    ec2.delete_flow_logs(FlowLogIds=[f["FlowLogId"] for f in found])


def _internet_gateway(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=stack.names["vpc"])


def _no_redrive(stack: Stack) -> None:
    stack.client("sqs").set_queue_attributes(
        QueueUrl=stack.names["queue"], Attributes={"RedrivePolicy": ""}
    )


def _no_pitr(stack: Stack) -> None:
    stack.client("dynamodb").update_continuous_backups(
        TableName=stack.names["table"],
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False},
    )


def _unprotected_table(stack: Stack) -> None:
    stack.client("dynamodb").update_table(
        TableName=stack.names["table"], DeletionProtectionEnabled=False
    )


def _no_boundary(stack: Stack) -> None:
    stack.client("iam").delete_role_permissions_boundary(RoleName=stack.names["role"])


def _old_tls(stack: Stack) -> None:
    stack.client("elbv2").modify_listener(
        ListenerArn=stack.names["listener"], SslPolicy="ELBSecurityPolicy-2016-08"
    )


def _function_outside_vpc(stack: Stack) -> None:
    stack.client("lambda").update_function_configuration(
        FunctionName=stack.names["function"], VpcConfig={"SubnetIds": [], "SecurityGroupIds": []}
    )


WEAKENINGS: dict[str, tuple[Weakening, str, str]] = {
    "public access block removed": (
        _no_public_access_block,
        "private-network/bucket-public-access-block",
        "quarantine",
    ),
    "trail stopped": (_trail_stopped, "audit-to-siem/trail-logging", "trail"),
    "key rotation off": (
        _no_rotation,
        "encrypt-with-customer-keys/kms-key-rotation",
        "archive-key",
    ),
    "key disabled": (_key_disabled, "encrypt-with-customer-keys/kms-key-enabled", "logs-key"),
    "replica lock shortened": (_shorter_lock, "immutable-archive/object-lock", "replica"),
    "archive on SSE-S3": (
        _sse_s3_archive,
        "encrypt-with-customer-keys/bucket-encryption",
        "archive",
    ),
    "versioning suspended": (
        _versioning_suspended,
        "immutable-archive/bucket-versioning",
        "access-logs",
    ),
    "TLS deny removed": (_policy_without_tls, "mutual-tls-only/bucket-tls-only", "archive"),
    "log retention 30 days": (
        _short_log_retention,
        "audit-to-siem/log-group-retention",
        "flow-group",
    ),
    "flow logs deleted": (_flow_logs_deleted, "private-network/vpc-flow-logs", "vpc"),
    "internet gateway": (_internet_gateway, "private-network/vpc-no-internet-gateway", "vpc"),
    "no redrive": (_no_redrive, "secure-compute/ingest-redrive", "queue"),
    "PITR off": (_no_pitr, "backup-and-dr/table-point-in-time-recovery", "table"),
    "deletion protection off": (
        _unprotected_table,
        "backup-and-dr/table-deletion-protection",
        "table",
    ),
    "boundary removed": (_no_boundary, "least-privilege/role-permissions-boundary", "role"),
    "TLS 1.2 policy": (_old_tls, "mutual-tls-only/listener-tls-policy", "listener"),
    "function outside the VPC": (
        _function_outside_vpc,
        "secure-compute/function-in-vpc",
        "function",
    ),
}


def test_each_weakening_fails_exactly_its_check(fresh: Stack) -> None:
    """All weakenings at once (each on its own resource and property): exactly their checks fail."""
    for weaken, _, _ in WEAKENINGS.values():
        weaken(fresh)
    checks = run_checks(fresh.state, fresh.clients)
    failed = {(c.id, c.resource) for c in checks if c.passed is False}
    expected = {(check_id, fresh.names[name]) for _, check_id, name in WEAKENINGS.values()}
    assert failed == expected, format_checks(checks)
    unreadable = {"backup-and-dr/archive-replication"}  # moto drops the SSE-KMS selection
    assert all(
        c.passed is True
        for c in checks
        if (c.id, c.resource) not in expected and c.id not in unreadable
    )


def test_replication_without_the_kms_object_selection_fails(fresh: Stack) -> None:
    # As AWS reads it back: the rule is there, the SSE-KMS selection is not.
    for resource in fresh.state.of_type(checks_module.BUCKET_REPLICATION):
        resource.notes.clear()
    checks = run_checks(fresh.state, fresh.clients)
    [replication] = [c for c in checks if c.id == "backup-and-dr/archive-replication"]
    assert replication.passed is False and "not selected" in replication.detail


def test_missing_resource_fails(fresh: Stack) -> None:
    """A resource the state says was created but the emulator does not hold fails its checks."""
    dynamodb = fresh.client("dynamodb")
    dynamodb.update_table(TableName=fresh.names["table"], DeletionProtectionEnabled=False)
    dynamodb.delete_table(TableName=fresh.names["table"])
    checks = [
        c for c in run_checks(fresh.state, fresh.clients) if c.resource == fresh.names["table"]
    ]
    assert len(checks) == 3
    assert all(c.passed is False and "absent from the emulator" in c.detail for c in checks)
