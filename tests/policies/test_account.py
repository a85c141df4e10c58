"""Account policies: nothing names another AWS account; only reviewed resource types."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.policies.conftest import Judge
from tests.policies.mutations import Mutation, Snapshot, statement

FOREIGN = "999999999999"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
ROLE = "aws:iam/role:Role"
ARCHIVE = "pacs-dev-123456789012-us-east-1-archive"


def _foreign_bucket_reader(s: Snapshot) -> None:
    with s.policy(BUCKET_POLICY, "imaging-archive-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "PartnerReads",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{FOREIGN}:root"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{ARCHIVE}/*",
            }
        )


def _foreign_replica(s: Snapshot) -> None:
    rule = s.props("aws:s3/bucketReplicationConfig:BucketReplicationConfig", "dr-replication")[
        "rules"
    ][0]
    rule["destination"]["account"] = FOREIGN


def _foreign_backup_copy(s: Snapshot) -> None:
    rule = s.props("aws:backup/plan:Plan", "dr-plan")["rules"][0]
    rule["copyActions"][0]["destinationVaultArn"] = (
        f"arn:aws:backup:us-west-2:{FOREIGN}:backup-vault:pacs-dev-dr-vault"
    )


def _foreign_trail_key(s: Snapshot) -> None:
    s.props("aws:cloudtrail/trail:Trail", "audit-trail")["kmsKeyId"] = (
        f"arn:aws:kms:us-east-1:{FOREIGN}:key/11111111-2222-3333-4444-555555555555"
    )


def _foreign_invoker(s: Snapshot) -> None:
    permission = s.props("aws:lambda/permission:Permission", "ingest-verify-invoke")
    permission["principal"] = FOREIGN
    permission.pop("sourceArn", None)


def _endpoint_for_foreign_resources(s: Snapshot) -> None:
    with s.policy("aws:ec2/vpcEndpoint:VpcEndpoint", "network-s3-endpoint") as doc:
        for st in doc["Statement"]:
            accounts = st.get("Condition", {}).get("StringEquals", {})
            if "aws:ResourceAccount" in accounts:
                accounts["aws:ResourceAccount"] = [accounts["aws:ResourceAccount"], FOREIGN]
                return
    raise AssertionError("no aws:ResourceAccount condition in the S3 endpoint policy")


def _foreign_source_account(s: Snapshot) -> None:
    with s.policy(ROLE, "ingest-ingest-role", "assumeRolePolicy") as doc:
        doc["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] = FOREIGN


def _foreign_alarm_topic(s: Snapshot) -> None:
    s.props("aws:cloudwatch/metricAlarm:MetricAlarm", "audit-root-account-use-alarm")[
        "alarmActions"
    ] = [f"arn:aws:sns:us-east-1:{FOREIGN}:pager"]


def _foreign_queue_reader(s: Snapshot) -> None:
    with s.policy("aws:sqs/queuePolicy:QueuePolicy", "ingest-queue-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "Mirror",
                "Effect": "Allow",
                "Principal": {"AWS": FOREIGN},
                "Action": "sqs:ReceiveMessage",
                "Resource": "arn:aws:sqs:us-east-1:123456789012:pacs-dev-ingest",
            }
        )


def _foreign_human_trust(s: Snapshot) -> None:
    with s.policy(ROLE, "identity-imaging-viewer", "assumeRolePolicy") as doc:
        doc["Statement"][0]["Principal"]["AWS"] = [f"arn:aws:iam::{FOREIGN}:root"]


def _add(type_token: str, name: str, props: dict[str, Any]) -> Any:
    def apply(s: Snapshot) -> None:
        s.add(type_token, name, props)

    return apply


def _lookalike_role_reads(s: Snapshot) -> None:
    # A role named like one of the stack's, in another account: must not pass as "ours".
    with s.policy(BUCKET_POLICY, "imaging-archive-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "LookalikeReads",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{FOREIGN}:role/pacs-dev-imaging-viewer"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{ARCHIVE}/*",
            }
        )


def _provider_assumes_elsewhere(s: Snapshot) -> None:
    s.props("pulumi:providers:aws", "dr")["assumeRoles"] = json.dumps(
        [{"roleArn": f"arn:aws:iam::{FOREIGN}:role/deployer"}]
    )


def _image_from_another_registry(s: Snapshot) -> None:
    task = s.props("aws:ecs/taskDefinition:TaskDefinition", "edge-task")
    containers = json.loads(task["containerDefinitions"])
    containers[0]["image"] = f"{FOREIGN}.dkr.ecr.us-east-1.amazonaws.com/gateway:v0.1.0"
    task["containerDefinitions"] = json.dumps(containers)


def _elb_grant_to_another_root(s: Snapshot) -> None:
    with s.policy(BUCKET_POLICY, "imaging-access-logs-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "AnotherAccountWrites",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{FOREIGN}:root"},
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::pacs-dev-123456789012-us-east-1-access-logs/*",
            }
        )


def _static_provider_keys(s: Snapshot) -> None:
    provider = s.props("pulumi:providers:aws", "primary")
    provider["accessKey"] = "AKIAIOSFODNN7EXAMPLE"
    provider["secretKey"] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _endpoints(provider: str, endpoints: Any) -> Any:
    def apply(s: Snapshot) -> None:
        s.props("pulumi:providers:aws", provider)["endpoints"] = json.dumps(endpoints)

    return apply


EMULATOR = "http://127.0.0.1:5000"


MUTATIONS = [
    Mutation("account-bucket-read-by-another-account", "aws-account-no-foreign-references",
             "archive bucket policy lets another account read", _foreign_bucket_reader),
    Mutation("account-replica-owned-elsewhere", "aws-account-no-foreign-references",
             "archive replicates into another account", _foreign_replica),
    Mutation("account-backup-copied-elsewhere", "aws-account-no-foreign-references",
             "backups copied to another account's vault", _foreign_backup_copy),
    Mutation("account-trail-key-elsewhere", "aws-account-no-foreign-references",
             "trail encrypted with another account's key", _foreign_trail_key),
    Mutation("account-function-invoked-from-elsewhere", "aws-account-no-foreign-references",
             "verify function invokable by another account", _foreign_invoker),
    Mutation("account-endpoint-reaches-other-buckets", "aws-account-no-foreign-references",
             "S3 endpoint admits another account's buckets (exfiltration path)",
             _endpoint_for_foreign_resources),
    Mutation("account-service-acts-for-another-account", "aws-account-no-foreign-references",
             "ingest role assumable by Lambda on behalf of another account",
             _foreign_source_account),
    Mutation("account-alarm-pages-elsewhere", "aws-account-no-foreign-references",
             "root-use alarm notifies another account's topic", _foreign_alarm_topic),
    Mutation("account-queue-read-elsewhere", "aws-account-no-foreign-references",
             "ingest queue readable by another account", _foreign_queue_reader),
    Mutation("account-humans-from-elsewhere", "aws-account-no-foreign-references",
             "viewer role trusts another account", _foreign_human_trust),
    Mutation("types-s3-access-point", "aws-stack-require-reviewed-resource-types",
             "an S3 access point on the archive",
             _add("aws:s3/accessPoint:AccessPoint", "archive-ap", {"bucket": ARCHIVE})),
    Mutation("types-kms-grant", "aws-stack-require-reviewed-resource-types",
             "a KMS grant on the archive key",
             _add("aws:kms/grant:Grant", "archive-grant",
                  {"keyId": "d05df36e", "granteePrincipal": "arn:aws:iam::123456789012:role/x",
                   "operations": ["Decrypt"]})),
    Mutation("types-rds-instance", "aws-stack-require-reviewed-resource-types",
             "a public, unencrypted RDS instance",
             _add("aws:rds/instance:Instance", "reports-db",
                  {"publiclyAccessible": True, "storageEncrypted": False})),
    Mutation("types-vpc-peering", "aws-stack-require-reviewed-resource-types",
             "a VPC peering connection",
             _add("aws:ec2/vpcPeeringConnection:VpcPeeringConnection", "peer",
                  {"vpcId": "vpc-1", "peerVpcId": "vpc-2"})),
    Mutation("types-sns-http-subscription", "aws-stack-require-reviewed-resource-types",
             "security topic delivered over plain HTTP",
             _add("aws:sns/topicSubscription:TopicSubscription", "pager-http",
                  {"protocol": "http", "endpoint": "http://pager.example.com/hook",
                   "topic": "arn:aws:sns:us-east-1:123456789012:pacs-dev-security"})),
    Mutation("types-ebs-volume", "aws-stack-require-reviewed-resource-types",
             "an unencrypted EBS volume",
             _add("aws:ebs/volume:Volume", "scratch",
                  {"availabilityZone": "us-east-1a", "size": 100.0, "encrypted": False})),
    Mutation("types-other-provider", "aws-stack-require-reviewed-resource-types",
             "a bucket through the aws-native provider, which no policy reads",
             _add("aws-native:s3:Bucket", "side-bucket", {"bucketName": "side"})),
    Mutation("account-lookalike-role-reads-the-archive", "aws-account-no-foreign-references",
             "another account's role named like the viewer reads the archive",
             _lookalike_role_reads),
    Mutation("account-dr-provider-in-another-account", "aws-account-no-foreign-references",
             "the DR provider deploys into another account", _provider_assumes_elsewhere),
    Mutation("account-gateway-image-from-another-account", "aws-account-no-foreign-references",
             "the gateway runs an image of another account's registry",
             _image_from_another_registry),
    Mutation("account-log-bucket-written-by-another-account",
             "aws-account-no-foreign-references",
             "another account's root may write anywhere in the access-log bucket",
             _elb_grant_to_another_root),
    Mutation("provider-static-credentials", "aws-provider-no-static-credentials",
             "access keys in the primary provider's configuration", _static_provider_keys),
    Mutation("provider-s3-endpoint-elsewhere", "aws-provider-no-endpoint-override",
             "the primary provider sends its S3 calls to another host",
             _endpoints("primary", [{"s3": "https://s3.evil.example"}])),
    Mutation("provider-kms-endpoint-lookalike", "aws-provider-no-endpoint-override",
             "the DR provider sends its KMS calls to a host that only looks loopback",
             _endpoints("dr", [{"kms": "http://127.0.0.1.evil.example:5000"}])),
    Mutation("provider-emulator-endpoints-not-allowed", "aws-provider-no-endpoint-override",
             "the primary provider deploys into a local emulator (the pack does not allow it)",
             _endpoints("primary", [{"s3": EMULATOR, "sts": EMULATOR, "iam": EMULATOR}])),
]  # fmt: skip


def test_a_trusted_account_is_accepted(snapshot: Snapshot, judge: Judge) -> None:
    _foreign_replica(snapshot)
    config = {"aws-account-no-foreign-references": {"trustedAccounts": [FOREIGN]}}
    assert judge(snapshot, "aws-account-no-foreign-references", config=config).findings == []


def test_finding_names_the_property_and_both_accounts(snapshot: Snapshot, judge: Judge) -> None:
    _foreign_trail_key(snapshot)
    (finding,) = judge(snapshot, "aws-account-no-foreign-references").findings
    assert finding.urn.endswith("::audit-trail")
    assert f"kmsKeyId names account {FOREIGN}, not this stack's (123456789012)" in finding.message


def test_elb_log_delivery_may_write_the_log_bucket_only(snapshot: Snapshot, judge: Judge) -> None:
    # The default stack grants ELB's us-east-1 account PutObject on the access-log bucket.
    assert judge(snapshot, "aws-account-no-foreign-references").findings == []
    with snapshot.policy(BUCKET_POLICY, "imaging-access-logs-policy") as doc:
        grant = statement(doc, "AllowLoadBalancerLogDeliveryFromTheRegionalElbAccount")
        grant["Action"] = ["s3:PutObject", "s3:GetObject"]
    (finding,) = judge(snapshot, "aws-account-no-foreign-references").findings
    assert "names account 127311923021" in finding.message


def test_without_roles_of_its_own_the_stack_is_not_judged(judge: Judge) -> None:
    document = {
        "resources": [
            {
                "urn": "urn:pulumi:s::p::aws:sns/topic:Topic::t",
                "type": "aws:sns/topic:Topic",
                "name": "t",
                "props": {"kmsMasterKeyId": f"arn:aws:kms:us-east-1:{FOREIGN}:key/k"},
            }
        ]
    }
    assert judge(document, "aws-account-no-foreign-references").findings == []


def test_reviewed_types_can_be_extended_and_components_are_exempt(
    snapshot: Snapshot, judge: Judge
) -> None:
    snapshot.add("aws:rds/instance:Instance", "db", {"storageEncrypted": True})
    snapshot.add("acme:storage:Vault", "component", {})
    policy = "aws-stack-require-reviewed-resource-types"
    names = {f.urn.rsplit("::", 1)[-1] for f in judge(snapshot, policy).findings}
    assert names == {"db", "component"}
    config = {
        policy: {
            "allowedResourceTypes": ["aws:rds/instance:Instance"],
            "componentPackages": ["cloud-pacs", "acme"],
        }
    }
    assert judge(snapshot, policy, config=config).findings == []


ENDPOINT_POLICY = "aws-provider-no-endpoint-override"


def _endpoint_messages(snapshot: Snapshot, judge: Judge, **settings: Any) -> list[str]:
    config = {ENDPOINT_POLICY: settings} if settings else None
    return [f.message for f in judge(snapshot, ENDPOINT_POLICY, config=config).findings]


def test_loopback_endpoints_pass_only_when_the_pack_allows_them(
    snapshot: Snapshot, judge: Judge
) -> None:
    _endpoints("primary", [{"s3": EMULATOR, "lambda": EMULATOR}])(snapshot)
    _endpoints("dr", [{"s3": "https://[::1]:4566/", "sts": "http://LOCALHOST"}])(snapshot)
    messages = sorted(_endpoint_messages(snapshot, judge))
    assert len(messages) == 3, messages
    assert messages[0].startswith("provider dr: endpoints send s3 to 'https://[::1]:4566/': ")
    assert messages[1].startswith("provider dr: endpoints send sts to 'http://LOCALHOST': ")
    assert messages[2].startswith(
        "provider primary: endpoints send lambda, s3 to 'http://127.0.0.1:5000': every API call"
    )
    assert all("allowLoopbackEndpoints" in m for m in messages)
    assert _endpoint_messages(snapshot, judge, allowLoopbackEndpoints=True) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example",
        "http://10.0.0.5:5000",
        "http://127.0.0.1:5000@evil.example",
        "http://127.0.0.1.evil.example",
        "http://localhost.evil.example:5000",
        "http://127.0.0.1:5000/path",
        "ftp://127.0.0.1",
        "http://0.0.0.0:5000",
    ],
)
def test_allowing_loopback_endpoints_never_allows_another_host(
    snapshot: Snapshot, judge: Judge, url: str
) -> None:
    _endpoints("primary", [{"s3": EMULATOR, "ecs": url}])(snapshot)
    (message,) = _endpoint_messages(snapshot, judge, allowLoopbackEndpoints=True)
    assert f"endpoints send ecs to {url!r}" in message and "not a loopback host" in message


@pytest.mark.parametrize(
    "endpoints",
    ["not json", '{"s3": "https://evil.example"}', "[5]", [{"s3": "https://evil.example"}]],
)
def test_endpoints_in_any_shape_are_judged(
    snapshot: Snapshot, judge: Judge, endpoints: Any
) -> None:
    snapshot.props("pulumi:providers:aws", "primary")["endpoints"] = endpoints
    (message,) = _endpoint_messages(snapshot, judge, allowLoopbackEndpoints=True)
    assert message.startswith("provider primary: endpoints send ")


@pytest.mark.parametrize("endpoints", ["", "[]", "[{}]", '[{"s3": ""}]', None])
def test_empty_endpoints_override_nothing(snapshot: Snapshot, judge: Judge, endpoints: Any) -> None:
    snapshot.props("pulumi:providers:aws", "primary")["endpoints"] = endpoints
    assert _endpoint_messages(snapshot, judge) == []
