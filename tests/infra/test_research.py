"""ResearchCopy: present only with researchProjects; its role, trigger, contract and linkage."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.config import DEID_OPTIONS, RESEARCH_PROJECTS_MAX_BYTES, ConfigError, parse_settings
from infra.iam_documents import (
    LINKAGE_CONTEXT_KEYS,
    ReidentificationResources,
    ResearchResources,
    human_trust_policy,
    reidentification_role_policy,
    research_role_policy,
)
from lambdas import settings as env
from lambdas.deid.profile import Option
from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun, Registration
from tests.conftest import RESEARCH_PROJECTS, one, policy_of, statement

REGION = "us-east-1"
PREFIX = "pacs-dev"
FUNCTION = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TABLE = "aws:dynamodb/table:Table"
KEY = "aws:kms/key:Key"
NOTIFICATION = "aws:s3/bucketNotification:BucketNotification"
COMPONENT = "cloud-pacs:research:ResearchCopy"
BOUNDARY_ARN = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:policy/{PREFIX}-permissions-boundary"
LINKAGE_TABLE_NAME = f"{PREFIX}-reidentification"
LINKAGE_TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{MOCK_ACCOUNT_ID}:table/{LINKAGE_TABLE_NAME}"
# Reads of a DynamoDB table's items, whatever the API.
TABLE_READS = (
    "dynamodb:BatchGetItem",
    "dynamodb:GetItem",
    "dynamodb:PartiQLSelect",
    "dynamodb:Query",
    "dynamodb:Scan",
)
GOOD_PROJECT: dict[str, Any] = {"name": "lung-ct", "match": {"Modality": ["CT"]}}


def bucket(purpose: str) -> str:
    return f"{PREFIX}-{MOCK_ACCOUNT_ID}-{REGION}-{purpose}"


def key_arn(run: ProgramRun, purpose: str) -> str:
    return f"arn:aws:kms:{REGION}:{MOCK_ACCOUNT_ID}:key/{one(run, KEY, f'keys-{purpose}').id}"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{name}"


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def research_resources(run: ProgramRun) -> list[Registration]:
    return [r for r in run.resources if r.name.startswith("research") or "linkage" in r.name]


def expected_projects_json() -> str:
    return json.dumps(
        [
            {
                "name": p["name"],
                "match": p["match"],
                "options": p.get("options", []),
                "safePrivate": p.get("safePrivate", []),
            }
            for p in RESEARCH_PROJECTS
        ],
        separators=(",", ":"),
    )


# ------------------------------------------------------------------------------------- config


def parse(**raw: object) -> Any:
    return parse_settings(raw, region="us-east-1", stack="test")


def test_option_names_mirror_the_profile() -> None:
    assert tuple(o.value for o in Option) == DEID_OPTIONS


def test_the_environment_json_is_what_the_function_parses() -> None:
    research = parse(researchProjects=json.dumps(RESEARCH_PROJECTS)).research
    parsed = env.parse_research_projects(research.projects_json)
    assert [(p.name, p.options) for p in parsed] == [(p.name, p.options) for p in research.projects]


def test_research_is_off_by_default() -> None:
    research = parse().research
    assert not research.enabled and research.projects == () and research.linkage is False


def test_projects_parse_from_the_json_pulumi_passes() -> None:
    research = parse(researchProjects=json.dumps(RESEARCH_PROJECTS)).research
    assert [p.name for p in research.projects] == ["lung-ct", "teaching"]
    assert research.projects_json == expected_projects_json()


@pytest.mark.parametrize(
    ("projects", "message"),
    [
        ("not json", "list of project objects"),
        ({"name": "x"}, "list of project objects"),
        (["lung-ct"], "must be an object"),
        ([{**GOOD_PROJECT, "rule": {}}], "unknown field 'rule'"),
        ([{**GOOD_PROJECT, "name": "Lung CT"}], "2-32 characters"),
        ([{**GOOD_PROJECT, "name": "x"}], "2-32 characters"),
        ([{**GOOD_PROJECT, "name": "a" * 33}], "2-32 characters"),
        ([GOOD_PROJECT, GOOD_PROJECT], "unique"),
        ([{"name": "lung-ct"}], "non-empty object"),
        ([{**GOOD_PROJECT, "match": {}}], "non-empty object"),
        ([{**GOOD_PROJECT, "match": {"(0008,0060)": ["CT"]}}], "DICOM keywords"),
        ([{**GOOD_PROJECT, "match": {"0Modality": ["CT"]}}], "DICOM keywords"),
        ([{**GOOD_PROJECT, "match": {"Modality": []}}], "non-empty list"),
        ([{**GOOD_PROJECT, "match": {"Modality": [""]}}], "non-empty list"),
        ([{**GOOD_PROJECT, "match": {"Modality": "CT"}}], "non-empty list"),
        ([{**GOOD_PROJECT, "options": ["retain-everything"]}], "options must be among"),
        ([{**GOOD_PROJECT, "options": ["retain-uids", "retain-uids"]}], "must not repeat"),
        (
            [
                {
                    **GOOD_PROJECT,
                    "options": ["retain-long-full-dates", "retain-long-modified-dates"],
                }
            ],
            "exclude each other",
        ),
        (
            [{**GOOD_PROJECT, "options": ["retain-safe-private"], "safePrivate": ["GEMS:0x1"]}],
            "<private creator>:0x<element>",
        ),
        (
            [{**GOOD_PROJECT, "options": ["retain-safe-private"], "safePrivate": ["0x0010"]}],
            "<private creator>:0x<element>",
        ),
        ([{**GOOD_PROJECT, "safePrivate": ["GEMS:0x10"]}], "only with the retain-safe-private"),
        (
            [
                {**GOOD_PROJECT, "name": f"p{i:02d}", "match": {"StudyDescription": ["x" * 100]}}
                for i in range(30)
            ],
            f"{RESEARCH_PROJECTS_MAX_BYTES} bytes",
        ),
    ],
)
def test_bad_projects_are_refused_naming_the_key(projects: object, message: str) -> None:
    raw = projects if isinstance(projects, str) else json.dumps(projects)
    with pytest.raises(ConfigError, match="cloud-pacs:researchProjects") as raised:
        parse(researchProjects=raw)
    assert message in raised.value.allowed


def test_linkage_without_projects_is_refused() -> None:
    with pytest.raises(ConfigError, match="cloud-pacs:researchLinkage") as raised:
        parse(researchLinkage=True)
    assert "only with researchProjects" in raised.value.allowed


def test_linkage_without_a_federation_source_is_refused() -> None:
    with pytest.raises(ConfigError, match="cloud-pacs:researchLinkage") as raised:
        parse(researchProjects=json.dumps([GOOD_PROJECT]), researchLinkage="true")
    assert "federation source" in raised.value.allowed


def test_linkage_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="cloud-pacs:researchLinkage"):
        parse(researchProjects=json.dumps([GOOD_PROJECT]), researchLinkage="yes")


# --------------------------------------------------------------------------- the default stack


def test_without_projects_nothing_of_it_exists(plan: ProgramRun) -> None:
    assert research_resources(plan) == []
    assert plan.of_type(COMPONENT) == []
    assert [r.name for r in plan.of_type(NOTIFICATION)] == [
        r.name for r in plan.of_type(NOTIFICATION) if not r.name.startswith("research")
    ]
    assert "research" not in plan.outputs
    assert not [r for r in plan.of_type(KEY) if r.name == "keys-linkage"]


# ------------------------------------------------------------------------- with projects, linkage


def test_the_component_and_its_function_exist(research_plan: ProgramRun) -> None:
    assert len(research_plan.of_type(COMPONENT)) == 1
    function = one(research_plan, FUNCTION, "research-research").inputs
    assert function["name"] == f"{PREFIX}-research"
    assert function["handler"] == "lambdas.research.handler"
    assert function["role"].endswith(f":role/{PREFIX}-research")
    assert function["vpcConfig"]["subnetIds"], "research function: not in the app subnets"
    assert function["kmsKeyArn"] == key_arn(research_plan, "archive")
    assert function["loggingConfig"]["logGroup"] == f"/aws/lambda/{PREFIX}-research"


def test_the_function_is_packaged_like_the_ingest_functions(research_plan: ProgramRun) -> None:
    research = one(research_plan, FUNCTION, "research-research").inputs
    ingest = one(research_plan, FUNCTION, "ingest-ingest").inputs
    for field in ("runtime", "architectures", "layers", "code"):
        assert research[field] == ingest[field], f"research function: {field} differs from ingest"


def test_the_environment_is_the_exact_contract(research_plan: ProgramRun) -> None:
    variables = one(research_plan, FUNCTION, "research-research").inputs["environment"]["variables"]
    assert variables == {
        "POWERTOOLS_SERVICE_NAME": "pacs-research",
        env.ARCHIVE_BUCKET: bucket("archive"),
        env.DERIVED_BUCKET: bucket("derived"),
        env.QUARANTINE_BUCKET: bucket("quarantine"),
        env.DATA_KEY_ARN: key_arn(research_plan, "archive"),
        env.PSEUDONYM_KEY_ARN: key_arn(research_plan, "pseudonym"),
        env.IDEMPOTENCY_TABLE: f"{PREFIX}-idempotency",
        env.RESEARCH_PROJECTS: expected_projects_json(),
        env.LINKAGE_TABLE: LINKAGE_TABLE_NAME,
        env.LINKAGE_KEY_ARN: key_arn(research_plan, "linkage"),
    }
    assert sorted(variables) == sorted(
        [
            "POWERTOOLS_SERVICE_NAME",
            "PACS_ARCHIVE_BUCKET",
            "PACS_DERIVED_BUCKET",
            "PACS_QUARANTINE_BUCKET",
            "PACS_DATA_KEY_ARN",
            "PACS_PSEUDONYM_KEY_ARN",
            "PACS_IDEMPOTENCY_TABLE",
            "PACS_RESEARCH_PROJECTS",
            "PACS_LINKAGE_TABLE",
            "PACS_LINKAGE_KEY_ARN",
        ]
    )


def test_without_linkage_the_linkage_variables_are_empty_and_nothing_is_made(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(researchProjects=json.dumps(RESEARCH_PROJECTS))
    variables = one(run, FUNCTION, "research-research").inputs["environment"]["variables"]
    assert variables[env.LINKAGE_TABLE] == "" and variables[env.LINKAGE_KEY_ARN] == ""
    assert not run.of_type(TABLE) or LINKAGE_TABLE_NAME not in {
        t.inputs["name"] for t in run.of_type(TABLE)
    }
    assert not [r for r in run.of_type(KEY) if r.name == "keys-linkage"]
    assert not [r for r in run.of_type(ROLE) if r.name == "research-reidentification"]
    document = policy_of(one(run, ROLE_POLICY, "research-research-policy"))
    assert not [s for s in document["Statement"] if "linkage" in s["Sid"].lower()]


def test_the_archive_notification_sends_new_instances_to_the_research_queue(
    research_plan: ProgramRun,
) -> None:
    notification = one(research_plan, NOTIFICATION, "research-archive-notification").inputs
    assert notification["bucket"] == bucket("archive")
    assert notification["queues"] == [
        {
            "queueArn": f"arn:aws:sqs:{REGION}:{MOCK_ACCOUNT_ID}:{PREFIX}-research",
            "events": ["s3:ObjectCreated:*"],
            "filterPrefix": "studies/",
            "filterSuffix": ".dcm",
        }
    ]
    # S3 keeps one notification configuration per bucket: nobody else may own the archive's.
    archive_notifications = [
        r for r in research_plan.of_type(NOTIFICATION) if r.inputs["bucket"] == bucket("archive")
    ]
    assert len(archive_notifications) == 1


def test_the_queues_are_encrypted_and_the_events_report_partial_failures(
    research_plan: ProgramRun,
) -> None:
    for name in ("research-queue", "research-dlq"):
        queue = one(research_plan, "aws:sqs/queue:Queue", name).inputs
        assert queue["kmsMasterKeyId"] == key_arn(research_plan, "archive"), name
    assert (
        "deadLetterTargetArn"
        in one(research_plan, "aws:sqs/queue:Queue", "research-queue").inputs["redrivePolicy"]
    )
    mapping = one(
        research_plan, "aws:lambda/eventSourceMapping:EventSourceMapping", "research-events"
    )
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    queue_policy = policy_of(
        one(research_plan, "aws:sqs/queuePolicy:QueuePolicy", "research-queue-policy")
    )
    s3 = statement(queue_policy, "S3EventNotificationsFromTheStackBucketsOnly")
    assert s3["Condition"]["ArnLike"]["aws:SourceArn"] == [f"arn:aws:s3:::{bucket('archive')}"]
    alarm = one(research_plan, "aws:cloudwatch/metricAlarm:MetricAlarm", "research-dlq-alarm")
    assert alarm.inputs["dimensions"] == {"QueueName": f"{PREFIX}-research-dlq"}


def test_the_role_policy_is_the_pure_document(research_plan: ProgramRun) -> None:
    document = policy_of(one(research_plan, ROLE_POLICY, "research-research-policy"))
    expected = research_role_policy(
        ResearchResources(
            archive_bucket=bucket("archive"),
            derived_bucket=bucket("derived"),
            quarantine_bucket=bucket("quarantine"),
            projects=("lung-ct", "teaching"),
            queue_arn=f"arn:aws:sqs:{REGION}:{MOCK_ACCOUNT_ID}:{PREFIX}-research",
            data_key_arn=key_arn(research_plan, "archive"),
            pseudonym_key_arn=key_arn(research_plan, "pseudonym"),
            idempotency_table_arn=(
                f"arn:aws:dynamodb:{REGION}:{MOCK_ACCOUNT_ID}:table/{PREFIX}-idempotency"
            ),
            log_group_arn=(
                f"arn:aws:logs:{REGION}:{MOCK_ACCOUNT_ID}:log-group:/aws/lambda/{PREFIX}-research"
            ),
            via_service_endpoints=tuple(
                f"{s}.{REGION}.amazonaws.com" for s in ("dynamodb", "s3", "sqs")
            ),
            linkage_table_arn=LINKAGE_TABLE_ARN,
            linkage_key_arn=key_arn(research_plan, "linkage"),
        )
    )
    assert document == expected


def test_the_role_writes_only_under_the_projects_and_review_prefixes(
    research_plan: ProgramRun,
) -> None:
    document = policy_of(one(research_plan, ROLE_POLICY, "research-research-policy"))
    writes = sorted(
        resource
        for s in document["Statement"]
        if "s3:PutObject" in as_list(s["Action"])
        for resource in as_list(s["Resource"])
    )
    assert writes == [
        f"arn:aws:s3:::{bucket('derived')}/derived/lung-ct/*",
        f"arn:aws:s3:::{bucket('derived')}/derived/teaching/*",
        f"arn:aws:s3:::{bucket('quarantine')}/research-review/*",
    ]
    # Conditional writes (If-None-Match) make a retry safe without listing any bucket.
    assert not [s for s in document["Statement"] if "s3:ListBucket" in as_list(s["Action"])]
    reads = statement(document, "ReadArchivedInstanceVersions")
    assert reads["Resource"] == f"arn:aws:s3:::{bucket('archive')}/studies/*"
    kms = statement(document, "UseTheDataKeyThroughS3SqsAndDynamoDbOnly")
    assert kms["Condition"]["StringEquals"]["kms:ViaService"] == [
        f"{s}.{REGION}.amazonaws.com" for s in ("dynamodb", "s3", "sqs")
    ]
    encrypt = statement(document, "EncryptLinkageValuesWithTheLinkageKeyOnly")
    assert encrypt["Condition"] == {
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": list(LINKAGE_CONTEXT_KEYS)},
        "Null": {f"kms:EncryptionContext:{k}": "false" for k in LINKAGE_CONTEXT_KEYS},
        "StringEquals": {"kms:EncryptionContext:project": ["lung-ct", "teaching"]},
    }


@pytest.mark.parametrize("policy", ["research-research-policy", "research-reidentification-policy"])
def test_no_wildcard_actions_in_allow_statements(research_plan: ProgramRun, policy: str) -> None:
    document = policy_of(one(research_plan, ROLE_POLICY, policy))
    for s in document["Statement"]:
        assert s["Effect"] == "Allow" and "NotAction" not in s, f"{policy}: {s['Sid']}"
        assert not [a for a in as_list(s["Action"]) if "*" in a], f"{policy}: {s['Sid']}"
        assert "*" not in as_list(s["Resource"]), f"{policy}: {s['Sid']}"


@pytest.mark.parametrize("role", ["research-research-role", "research-reidentification"])
def test_the_roles_carry_the_permissions_boundary(research_plan: ProgramRun, role: str) -> None:
    assert one(research_plan, ROLE, role).inputs["permissionsBoundary"] == BOUNDARY_ARN


def test_the_research_role_uses_the_archive_and_pseudonym_keys(research_plan: ProgramRun) -> None:
    for purpose in ("archive", "pseudonym"):
        use = statement(policy_of(one(research_plan, KEY, f"keys-{purpose}")), "KeyUseByStackRoles")
        assert role_arn(f"{PREFIX}-research") in use["Condition"]["ArnEquals"]["aws:PrincipalArn"]


def test_the_function_logs_ship_to_the_siem_and_its_invocations_are_trailed(
    research_plan: ProgramRun,
) -> None:
    one(
        research_plan,
        "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter",
        "audit-ship-function-research",
    )
    group = one(research_plan, "aws:cloudwatch/logGroup:LogGroup", "research-research-logs")
    assert group.inputs["kmsKeyId"] == key_arn(research_plan, "logs")
    trail = one(research_plan, "aws:cloudtrail/trail:Trail", "audit-trail")
    (functions,) = [s for s in trail.inputs["advancedEventSelectors"] if "function" in s["name"]]
    arns = next(f for f in functions["fieldSelectors"] if f["field"] == "resources.ARN")
    assert f"arn:aws:lambda:{REGION}:{MOCK_ACCOUNT_ID}:function:{PREFIX}-research" in arns["equals"]


# ---------------------------------------------------------------------------------- linkage


def test_linkage_creates_the_protected_table(research_plan: ProgramRun) -> None:
    (table,) = [t for t in research_plan.of_type(TABLE) if t.inputs["name"] == LINKAGE_TABLE_NAME]
    assert table.inputs["serverSideEncryption"] == {
        "enabled": True,
        "kmsKeyArn": key_arn(research_plan, "archive"),
    }
    assert table.inputs["pointInTimeRecovery"] == {"enabled": True}
    assert table.inputs["deletionProtectionEnabled"] is True
    # lambdas/research_copy.py puts records keyed by the copy's de-identified SOP Instance UID.
    assert table.inputs["hashKey"] == "deid_sop_instance_uid"


def test_the_reidentification_role_is_a_human_role_with_mfa(research_plan: ProgramRun) -> None:
    role = one(research_plan, ROLE, "research-reidentification").inputs
    assert role["name"] == f"{PREFIX}-reidentification"
    assert role["maxSessionDuration"] == 3600
    identity = one(research_plan, ROLE, "identity-imaging-viewer").inputs
    assert json.loads(role["assumeRolePolicy"]) == json.loads(identity["assumeRolePolicy"])
    assert json.loads(role["assumeRolePolicy"]) == human_trust_policy(
        trusted_principal_arns=[
            "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/"
            "AWSReservedSSO_PacsImaging_0123456789abcdef"
        ]
    )


def test_the_reidentification_policy_is_the_pure_document(research_plan: ProgramRun) -> None:
    document = policy_of(one(research_plan, ROLE_POLICY, "research-reidentification-policy"))
    assert document == reidentification_role_policy(
        ReidentificationResources(
            linkage_table_arn=LINKAGE_TABLE_ARN,
            linkage_key_arn=key_arn(research_plan, "linkage"),
            data_key_arn=key_arn(research_plan, "archive"),
            dynamodb_service_endpoint=f"dynamodb.{REGION}.amazonaws.com",
        )
    )


def _grants(document: dict[str, Any], actions: tuple[str, ...], resource: str) -> bool:
    for s in document["Statement"]:
        if s.get("Effect") != "Allow":
            continue
        granted = (
            any(fnmatch.fnmatchcase(a, p) for a in actions for p in as_list(s["Action"]))
            if "Action" in s
            else any(a not in as_list(s["NotAction"]) for a in actions)
        )
        covers = any(fnmatch.fnmatchcase(resource, r) for r in as_list(s.get("Resource", [])))
        if granted and covers:
            return True
    return False


def test_only_the_reidentification_role_reads_the_table(research_plan: ProgramRun) -> None:
    readers = {
        r.name
        for r in research_plan.of_type(ROLE_POLICY)
        if _grants(policy_of(r), TABLE_READS, LINKAGE_TABLE_ARN)
    }
    assert readers == {"research-reidentification-policy"}
    research = policy_of(one(research_plan, ROLE_POLICY, "research-research-policy"))
    on_table = [s for s in research["Statement"] if LINKAGE_TABLE_ARN in as_list(s["Resource"])]
    assert [s["Action"] for s in on_table] == [["dynamodb:PutItem"]]
    [put] = on_table
    # Only the row's own attributes, and never the replaced row's values back.
    assert put["Condition"] == {
        "ForAllValues:StringEquals": {
            "dynamodb:Attributes": ["ciphertext", "deid_sop_instance_uid", "project"]
        },
        "StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"},
    }
    # Managed policies: Lambda's network interfaces, and AWS Backup's on the backup role only
    # (the table joins the backup plan; a restored copy still holds linkage-key ciphertexts).
    attached = {
        (r.name, r.inputs["policyArn"].rsplit("/", 1)[-1])
        for r in research_plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if not r.inputs["policyArn"].endswith("/AWSLambdaVPCAccessExecutionRole")
    }
    assert {policy for _, policy in attached} <= {
        "AWSBackupServiceRolePolicyForBackup",
        "AWSBackupServiceRolePolicyForRestores",
    }, attached
    assert all(name.startswith("dr-") for name, _ in attached), attached


def test_the_linkage_key_splits_encrypt_and_decrypt(research_plan: ProgramRun) -> None:
    document = policy_of(one(research_plan, KEY, "keys-linkage"))
    sids = [s["Sid"] for s in document["Statement"]]
    assert "KeyUseByStackRoles" not in sids, "the linkage key must have no general users"
    exact_keys = {
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": list(LINKAGE_CONTEXT_KEYS)},
        "Null": {f"kms:EncryptionContext:{k}": "false" for k in LINKAGE_CONTEXT_KEYS},
    }
    writer = statement(document, "ResearchFunctionEncryptsLinkageValuesOnly")
    assert writer["Action"] == ["kms:Encrypt"]
    assert writer["Condition"]["ArnEquals"] == {"aws:PrincipalArn": role_arn(f"{PREFIX}-research")}
    assert exact_keys.items() <= writer["Condition"].items()
    assert writer["Condition"]["StringEquals"]["kms:EncryptionContext:project"] == [
        "lung-ct",
        "teaching",
    ]
    reader = statement(document, "ReidentificationRoleDecryptsLinkageValuesOnly")
    assert reader["Action"] == ["kms:Decrypt"]
    assert reader["Condition"]["ArnEquals"] == {
        "aws:PrincipalArn": role_arn(f"{PREFIX}-reidentification")
    }
    assert exact_keys.items() <= reader["Condition"].items()
