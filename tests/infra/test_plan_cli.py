"""`pacs-kit plan` through the real CLI: the documented JSON, the table, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACS_KIT = [sys.executable, "-m", "pacs_kit.cli"]

REQUIRED_TYPES = {
    # PrivateNetwork
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    "aws:ec2/networkAcl:NetworkAcl",
    "aws:ec2/flowLog:FlowLog",
    "aws:cloudwatch/logGroup:LogGroup",
    # KeyRing
    "aws:kms/key:Key",
    "aws:kms/alias:Alias",
    # ImagingArchive
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketLogging:BucketLogging",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    # DisasterRecovery
    "pulumi:providers:aws",
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
    "aws:iam/role:Role",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:backup/vault:Vault",
    "aws:backup/vaultLockConfiguration:VaultLockConfiguration",
    "aws:backup/plan:Plan",
    "aws:backup/selection:Selection",
    # IngestPipeline
    "aws:sqs/queue:Queue",
    "aws:sqs/queuePolicy:QueuePolicy",
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy",
    "aws:s3/bucketNotification:BucketNotification",
    "aws:dynamodb/table:Table",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:lambda/layerVersion:LayerVersion",
    "aws:lambda/function:Function",
    "aws:lambda/eventSourceMapping:EventSourceMapping",
    "aws:lambda/permission:Permission",
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig",
    "aws:cloudwatch/eventRule:EventRule",
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:sns/topic:Topic",
    "aws:sns/topicPolicy:TopicPolicy",
    # EdgeGateway (the example stack names a client trust source)
    "aws:s3/bucketObjectv2:BucketObjectv2",
    "aws:lb/trustStore:TrustStore",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:lb/targetGroup:TargetGroup",
    "aws:lb/listener:Listener",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:ecr/repository:Repository",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
    "aws:secretsmanager/secret:Secret",
    "aws:ecs/cluster:Cluster",
    "aws:ecs/taskDefinition:TaskDefinition",
    "aws:ecs/service:Service",
    # Audit
    "aws:cloudtrail/trail:Trail",
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream",
    "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter",
    "aws:cloudwatch/logMetricFilter:LogMetricFilter",
    "aws:cloudwatch/logStream:LogStream",
    # Identity (the Access Analyzer is opt-in: enableAccessAnalyzer, false in the example stack)
    "aws:iam/policy:Policy",
}


def pacs_kit(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PACS_KIT, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def plan_json() -> dict[str, object]:
    result = pacs_kit("plan", "--json")
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_json_has_exactly_the_documented_shape(plan_json: dict[str, object]) -> None:
    assert list(plan_json) == ["resources"]
    resources = plan_json["resources"]
    assert isinstance(resources, list) and resources
    for resource in resources:
        assert list(resource) == ["urn", "type", "name", "props"], resource
        assert resource["urn"].startswith("urn:pulumi:dev::cloud-pacs::")
        assert resource["urn"].endswith(f"::{resource['name']}")
        assert isinstance(resource["props"], dict)


def test_json_lists_every_resource_type_of_the_stack(plan_json: dict[str, object]) -> None:
    resources = plan_json["resources"]
    assert isinstance(resources, list)
    missing = REQUIRED_TYPES - {r["type"] for r in resources}
    assert not missing, f"pacs-kit plan --json lacks {sorted(missing)}"


def test_json_props_are_camel_case_inputs(plan_json: dict[str, object]) -> None:
    resources = plan_json["resources"]
    assert isinstance(resources, list)
    vpc = next(r for r in resources if r["type"] == "aws:ec2/vpc:Vpc")
    assert vpc["props"]["cidrBlock"] == "10.20.0.0/16"
    assert "cidr_block" not in vpc["props"]


def test_json_urns_carry_the_whole_component_chain(plan_json: dict[str, object]) -> None:
    resources = plan_json["resources"]
    assert isinstance(resources, list)
    replica_key = next(r for r in resources if r["name"] == "dr-keys-backup")
    assert replica_key["urn"] == (
        "urn:pulumi:dev::cloud-pacs::cloud-pacs:dr:DisasterRecovery$cloud-pacs:keys:KeyRing"
        "$aws:kms/key:Key::dr-keys-backup"
    )


def test_json_is_stable_between_runs(plan_json: dict[str, object]) -> None:
    again = json.loads(pacs_kit("plan", "--json").stdout)
    assert again == plan_json


def test_table_is_a_tree_with_a_summary() -> None:
    result = pacs_kit("plan")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Plan for cloud-pacs/dev")
    assert any(line.startswith("+ cloud-pacs:network:PrivateNetwork") for line in lines)
    assert any(line.startswith("+   aws:ec2:Vpc") for line in lines)
    assert "to create:" in lines[-1]


@pytest.fixture()
def scratch_project(tmp_path: Path) -> Path:
    """A project directory that runs the real program with stack files of the test's making."""
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "infra").symlink_to(REPO / "infra", target_is_directory=True)
    return tmp_path


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ("cloud-pacs:drRegion: us-east-1", "cloud-pacs:drRegion"),
        ("cloud-pacs:archiveRetentionMode: OFF", "cloud-pacs:archiveRetentionMode"),
        ("cloud-pacs:logRetentionDays: 2000", "cloud-pacs:logRetentionDays"),
        ("cloud-pacs:allowedClientCidrs: ['0.0.0.0/0']", "cloud-pacs:allowedClientCidrs"),
        ("cloud-pacs:vpcCidrs: 10.0.0.0/16", "cloud-pacs:vpcCidrs"),
        ("cloud-pacs:edgeTlsPolicy: ELBSecurityPolicy-2016-08", "cloud-pacs:edgeTlsPolicy"),
        ("cloud-pacs:edgeClientCaBundle: examples/pki/absent.pem", "cloud-pacs:edgeClientCaBundle"),
    ],
)
def test_broken_stack_file_exits_2_naming_the_key(
    scratch_project: Path, config: str, named: str
) -> None:
    (scratch_project / "Pulumi.broken.yaml").write_text(
        f"config:\n  aws:region: us-east-1\n  {config}\n"
    )
    result = pacs_kit("plan", "--stack", "broken", cwd=scratch_project)
    assert result.returncode == 2, result.stdout
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_project_defaults_apply_to_a_minimal_stack(scratch_project: Path) -> None:
    (scratch_project / "Pulumi.min.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    result = pacs_kit("plan", "--stack", "min", "--json", cwd=scratch_project)
    assert result.returncode == 0, result.stderr
    names = {r["name"] for r in json.loads(result.stdout)["resources"]}
    assert "network-edge-eu-west-1a" in names


def test_missing_stack_file_exits_2(scratch_project: Path) -> None:
    result = pacs_kit("plan", "--stack", "absent", cwd=scratch_project)
    assert result.returncode == 2
    assert "Pulumi.absent.yaml" in result.stderr


def test_governance_warning_goes_to_stderr(scratch_project: Path) -> None:
    (scratch_project / "Pulumi.gov.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  cloud-pacs:archiveRetentionMode: GOVERNANCE\n"
    )
    result = pacs_kit("plan", "--stack", "gov", "--json", cwd=scratch_project)
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr and "GOVERNANCE" in result.stderr
    json.loads(result.stdout)  # stdout stays pure JSON


def test_usage_error_exits_2() -> None:
    assert pacs_kit("plan", "--bogus").returncode == 2
    assert pacs_kit().returncode == 2
