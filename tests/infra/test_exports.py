"""Exports (issue #9, sharing in AWS): present only with exportsEnabled; roles, URL, pack."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.components.exports import SIGNER_CERTIFICATE_FILE
from infra.components.ingest import function_code
from infra.config import ConfigError, parse_settings
from infra.iam_documents import (
    EXPORT_LINK_ATTRIBUTES,
    ExportLinkResources,
    ExportResources,
    export_link_role_policy,
    export_role_policy,
)
from pacs_kit.program import MOCK_ACCOUNT_ID, ProgramRun, plan_document
from policies.evaluate import PackConfig, evaluate, load_snapshot
from policies.pack import POLICIES
from tests.conftest import EXPORTS_PACK_CONFIG, one, policy_of, statement

REGION = "us-east-1"
PREFIX = "pacs-dev"
FUNCTION = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TABLE = "aws:dynamodb/table:Table"
BUCKET = "aws:s3/bucket:Bucket"
KEY = "aws:kms/key:Key"
URL = "aws:lambda/functionUrl:FunctionUrl"
PERMISSION = "aws:lambda/permission:Permission"
BOUNDARY_ARN = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:policy/{PREFIX}-permissions-boundary"
EXPORTS_BUCKET = f"{PREFIX}-{MOCK_ACCOUNT_ID}-{REGION}-exports"
ARCHIVE_BUCKET = f"{PREFIX}-{MOCK_ACCOUNT_ID}-{REGION}-archive"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{MOCK_ACCOUNT_ID}:table/{PREFIX}-export-links"
DATA_KEY = f"arn:aws:kms:{REGION}:{MOCK_ACCOUNT_ID}:key/data"
SIGNING_KEY = f"arn:aws:kms:{REGION}:{MOCK_ACCOUNT_ID}:key/signing"
DELETES = ("s3:DeleteObject", "s3:DeleteObjectVersion", "dynamodb:DeleteItem")
TABLE_READS = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem")


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def actions(document: dict[str, Any]) -> set[str]:
    return {a for s in document["Statement"] for a in as_list(s["Action"])}


def log_group(function: str) -> str:
    return f"arn:aws:logs:{REGION}:{MOCK_ACCOUNT_ID}:log-group:/aws/lambda/{PREFIX}-{function}"


def via(*services: str) -> tuple[str, ...]:
    return tuple(f"{s}.{REGION}.amazonaws.com" for s in services)


def key_arn(run: ProgramRun, purpose: str) -> str:
    return f"arn:aws:kms:{REGION}:{MOCK_ACCOUNT_ID}:key/{one(run, KEY, f'keys-{purpose}').id}"


def export_document() -> dict[str, Any]:
    return export_role_policy(
        ExportResources(
            archive_bucket=ARCHIVE_BUCKET,
            exports_bucket=EXPORTS_BUCKET,
            links_table_arn=TABLE_ARN,
            data_key_arn=DATA_KEY,
            signing_key_arn=SIGNING_KEY,
            signing_algorithms=("ECDSA_SHA_256",),
            log_group_arn=log_group("export"),
            via_service_endpoints=via("dynamodb", "s3", "sqs"),
            failure_queue_arn=f"arn:aws:sqs:{REGION}:{MOCK_ACCOUNT_ID}:{PREFIX}-export-failures",
        )
    )


def link_document() -> dict[str, Any]:
    return export_link_role_policy(
        ExportLinkResources(
            exports_bucket=EXPORTS_BUCKET,
            links_table_arn=TABLE_ARN,
            data_key_arn=DATA_KEY,
            log_group_arn=log_group("export-link"),
            via_service_endpoints=via("dynamodb", "s3"),
        )
    )


# ------------------------------------------------------------------------------------- config


def parse(root: Path | None = None, **raw: object) -> Any:
    if root is None:
        return parse_settings(raw, region=REGION, stack="test")
    return parse_settings(raw, region=REGION, stack="test", project_root=root)


def test_exports_are_off_by_default_and_do_not_warn() -> None:
    settings = parse()
    assert not settings.exports.enabled
    assert (settings.exports.link_minutes, settings.exports.expiration_days) == (15, 7)
    assert not [w for w in settings.warnings if "export" in w]


def test_exports_on_warns_about_the_public_endpoint_and_the_one_time_signer() -> None:
    warnings = parse(exportsEnabled="true").warnings
    assert any(
        "a public HTTPS endpoint (the one-time link function URL) exists" in w for w in warnings
    )
    assert any("exportSignerCertificate is empty" in w for w in warnings)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("exportsEnabled", "yes", "true or false"),
        ("exportLinkMinutes", 0, "from 1 to 15"),
        ("exportLinkMinutes", 16, "from 1 to 15"),
        ("exportLinkMinutes", "ten", "from 1 to 15"),
        ("exportExpirationDays", 0, "from 1 to 30"),
        ("exportExpirationDays", 31, "from 1 to 30"),
        ("exportSignerCertificate", "missing.pem", "readable PEM file"),
    ],
)
def test_bad_export_values_fail_naming_the_key_and_what_is_allowed(
    key: str, value: object, allowed: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(**{key: value})
    assert raised.value.key == f"cloud-pacs:{key}" and allowed in raised.value.allowed


def _certificate(path: Path, days: int = 30) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pacs-dev export signer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def test_the_signer_certificate_is_read_and_its_warning_goes(tmp_path: Path) -> None:
    _certificate(tmp_path / "signer.pem")
    settings = parse(tmp_path, exportsEnabled=True, exportSignerCertificate="signer.pem")
    assert settings.exports.signer_certificate_pem is not None
    assert "BEGIN CERTIFICATE" in settings.exports.signer_certificate_pem
    assert not [w for w in settings.warnings if "exportSignerCertificate" in w]


def test_an_expired_or_doubled_signer_certificate_is_refused(tmp_path: Path) -> None:
    _certificate(tmp_path / "old.pem", days=-1)
    with pytest.raises(ConfigError, match="has expired"):
        parse(tmp_path, exportSignerCertificate="old.pem")
    _certificate(tmp_path / "one.pem")
    (tmp_path / "two.pem").write_bytes((tmp_path / "one.pem").read_bytes() * 2)
    with pytest.raises(ConfigError, match="exactly one certificate"):
        parse(tmp_path, exportSignerCertificate="two.pem")


# ------------------------------------------------------------------------------------ program


def test_without_exports_nothing_of_it_exists(plan: ProgramRun) -> None:
    assert not [r for r in plan.resources if r.name.startswith("exports")]
    assert "exports" not in plan.outputs
    operator = policy_of(one(plan, ROLE_POLICY, "identity-imaging-operator-policy"))
    assert "lambda:InvokeFunction" not in actions(operator)


def test_the_outputs_name_the_bucket_table_functions_and_url(exports_plan: ProgramRun) -> None:
    url = one(exports_plan, URL, "exports-link-url")
    assert exports_plan.outputs["exports"] == {
        "bucket": EXPORTS_BUCKET,
        "table": f"{PREFIX}-export-links",
        "exportFunction": f"{PREFIX}-export",
        "linkFunction": f"{PREFIX}-export-link",
        "linkUrl": url.outputs["functionUrl"],
    }


def test_the_bucket_has_no_object_lock_and_expires_packages(exports_plan: ProgramRun) -> None:
    bucket = one(exports_plan, BUCKET, "exports-bucket")
    assert bucket.inputs["bucket"] == EXPORTS_BUCKET
    assert not bucket.inputs.get("objectLockEnabled")
    assert bucket.inputs["tags"]["purpose"] == "exports"
    lifecycle = one(
        exports_plan,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "exports-bucket-lifecycle",
    )
    (rule,) = lifecycle.inputs["rules"]
    assert rule["expiration"]["days"] == 7
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 1
    assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 1
    encryption = one(
        exports_plan,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "exports-bucket-encryption",
    )
    (sse,) = encryption.inputs["rules"]
    assert sse["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == key_arn(
        exports_plan, "archive"
    )
    assert sse["bucketKeyEnabled"] is True


def test_the_links_table_expires_rows_and_is_protected(exports_plan: ProgramRun) -> None:
    table = one(exports_plan, TABLE, "exports-links-table").inputs
    assert table["name"] == f"{PREFIX}-export-links" and table["hashKey"] == "token_sha256"
    assert table["ttl"] == {"attributeName": "ttl", "enabled": True}
    assert table["pointInTimeRecovery"]["enabled"] is True
    assert table["deletionProtectionEnabled"] is True
    assert table["serverSideEncryption"]["kmsKeyArn"] == key_arn(exports_plan, "archive")


def test_the_functions_follow_the_contract(exports_plan: ProgramRun) -> None:
    export = one(exports_plan, FUNCTION, "exports-export").inputs
    link = one(exports_plan, FUNCTION, "exports-export-link").inputs
    assert export["handler"] == "lambdas.export_function.handler"
    assert (export["timeout"], export["memorySize"], export["ephemeralStorage"]["size"]) == (
        900,
        2048,
        4096,
    )
    assert link["handler"] == "lambdas.export_link.handler"
    assert (link["timeout"], link["memorySize"], link["reservedConcurrentExecutions"]) == (
        10,
        256,
        10,
    )
    for inputs in (export, link):
        assert inputs["vpcConfig"]["subnetIds"] and inputs["vpcConfig"]["securityGroupIds"]


def test_the_environments_are_the_exact_contract(exports_plan: ProgramRun) -> None:
    url = one(exports_plan, URL, "exports-link-url").outputs["functionUrl"]
    export = one(exports_plan, FUNCTION, "exports-export").inputs["environment"]["variables"]
    link = one(exports_plan, FUNCTION, "exports-export-link").inputs["environment"]["variables"]
    assert export == {
        "POWERTOOLS_SERVICE_NAME": "pacs-export",
        "PACS_ARCHIVE_BUCKET": ARCHIVE_BUCKET,
        "PACS_EXPORTS_BUCKET": EXPORTS_BUCKET,
        "PACS_EXPORTS_TABLE": f"{PREFIX}-export-links",
        "PACS_DATA_KEY_ARN": key_arn(exports_plan, "archive"),
        "PACS_SIGNING_KEY_ARN": key_arn(exports_plan, "signing"),
        "PACS_EXPORT_SIGNER_CERT": "",
        "PACS_LINK_URL": url,
        "PACS_LINK_MINUTES": "15",
    }
    assert link == {
        "POWERTOOLS_SERVICE_NAME": "pacs-export-link",
        "PACS_EXPORTS_BUCKET": EXPORTS_BUCKET,
        "PACS_EXPORTS_TABLE": f"{PREFIX}-export-links",
        "PACS_PRESIGN_SECONDS": "60",
    }
    assert url.startswith("https://") and ".lambda-url." in url


def test_the_signer_certificate_is_packaged_with_the_export_function() -> None:
    archive = function_code(files={SIGNER_CERTIFICATE_FILE: "PEM"})
    assert SIGNER_CERTIFICATE_FILE in archive.assets
    assert "lambdas/settings.py" in archive.assets


def test_the_url_is_public_buffered_and_granted_only_through_the_url(
    exports_plan: ProgramRun,
) -> None:
    url = one(exports_plan, URL, "exports-link-url").inputs
    assert url["functionName"] == f"{PREFIX}-export-link"
    assert (url["authorizationType"], url["invokeMode"]) == ("NONE", "BUFFERED")
    assert not url.get("cors")
    grant = one(exports_plan, PERMISSION, "exports-link-url-permission").inputs
    assert (grant["action"], grant["principal"], grant["functionUrlAuthType"]) == (
        "lambda:InvokeFunctionUrl",
        "*",
        "NONE",
    )
    invoke = one(exports_plan, PERMISSION, "exports-link-url-invoke-permission").inputs
    assert (invoke["action"], invoke["invokedViaFunctionUrl"]) == ("lambda:InvokeFunction", True)


def test_an_asynchronous_export_is_not_retried_and_its_failure_is_kept(
    exports_plan: ProgramRun,
) -> None:
    config = one(
        exports_plan,
        "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig",
        "exports-export-async",
    ).inputs
    assert config["maximumRetryAttempts"] == 0
    assert config["destinationConfig"]["onFailure"]["destination"].endswith(
        f":{PREFIX}-export-failures"
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("exports-export-policy", export_document), ("exports-export-link-policy", link_document)],
)
def test_the_role_policies_are_the_pure_documents(
    exports_plan: ProgramRun, policy: str, expected: Any
) -> None:
    document = policy_of(one(exports_plan, ROLE_POLICY, policy))
    data_key, signing_key = key_arn(exports_plan, "archive"), key_arn(exports_plan, "signing")
    pure = expected()
    text = str(pure).replace(DATA_KEY, data_key).replace(SIGNING_KEY, signing_key)
    assert str(document) == text


@pytest.mark.parametrize("role", ["exports-export-role", "exports-export-link-role"])
def test_the_roles_carry_the_permissions_boundary(exports_plan: ProgramRun, role: str) -> None:
    assert one(exports_plan, ROLE, role).inputs["permissionsBoundary"] == BOUNDARY_ARN


@pytest.mark.parametrize("document", [export_document, link_document])
def test_no_wildcard_actions_or_resources_in_allow_statements(document: Any) -> None:
    for s in document()["Statement"]:
        assert s["Effect"] == "Allow" and "NotAction" not in s, s["Sid"]
        assert not [a for a in as_list(s["Action"]) if "*" in a], s["Sid"]
        assert "*" not in as_list(s["Resource"]), s["Sid"]


def test_the_export_role_deletes_nothing_and_reads_no_link() -> None:
    granted = actions(export_document())
    assert not granted & set(DELETES), granted & set(DELETES)
    assert not granted & set(TABLE_READS) and "dynamodb:UpdateItem" not in granted
    issue = statement(export_document(), "IssueOneTimeLinksOnly")
    assert issue["Action"] == ["dynamodb:PutItem"] and issue["Resource"] == TABLE_ARN
    assert issue["Condition"]["StringEqualsIfExists"] == {"dynamodb:ReturnValues": "NONE"}
    assert issue["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"] == list(
        EXPORT_LINK_ATTRIBUTES
    )


def test_the_export_role_reads_only_archived_studies() -> None:
    document = export_document()
    reads = [s for s in document["Statement"] if "s3:GetObject" in as_list(s["Action"])]
    assert [r["Resource"] for r in reads] == [f"arn:aws:s3:::{ARCHIVE_BUCKET}/studies/*"]
    listing = statement(document, "ListArchivedStudiesOnly")
    assert listing["Resource"] == f"arn:aws:s3:::{ARCHIVE_BUCKET}"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["studies/*"]}}
    writes = statement(document, "WritePackagesUnderTheExportsPrefix")
    assert (writes["Action"], writes["Resource"]) == (
        ["s3:PutObject"],
        f"arn:aws:s3:::{EXPORTS_BUCKET}/exports/*",
    )


def test_the_export_role_only_signs_digests_with_the_signing_key() -> None:
    document = export_document()
    on_signing = [s for s in document["Statement"] if SIGNING_KEY in as_list(s["Resource"])]
    assert [s["Action"] for s in on_signing] == [["kms:Sign"]]
    assert on_signing[0]["Condition"] == {
        "StringEquals": {"kms:MessageType": "DIGEST", "kms:SigningAlgorithm": ["ECDSA_SHA_256"]}
    }
    data = statement(document, "UseTheDataKeyThroughServicesOnly")
    assert data["Resource"] == DATA_KEY
    assert data["Condition"]["StringEquals"]["kms:ViaService"] == sorted(
        via("dynamodb", "s3", "sqs")
    )


def test_the_link_role_consumes_links_and_hands_out_packages_only() -> None:
    document = link_document()
    grants = {(a, str(s["Resource"])) for s in document["Statement"] for a in as_list(s["Action"])}
    assert grants == {
        ("dynamodb:UpdateItem", TABLE_ARN),
        ("s3:GetObject", f"arn:aws:s3:::{EXPORTS_BUCKET}/exports/*"),
        ("kms:Decrypt", DATA_KEY),
        ("logs:CreateLogStream", f"{log_group('export-link')}:*"),
        ("logs:PutLogEvents", f"{log_group('export-link')}:*"),
    }
    decrypt = statement(document, "DecryptPackagesAndLinksThroughServicesOnly")
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": sorted(via("dynamodb", "s3"))}
    }


def test_the_keys_name_the_export_roles(exports_plan: ProgramRun) -> None:
    role = f"arn:aws:iam::{MOCK_ACCOUNT_ID}:role/{PREFIX}-"
    archive = statement(policy_of(one(exports_plan, KEY, "keys-archive")), "KeyUseByStackRoles")
    signing = statement(policy_of(one(exports_plan, KEY, "keys-signing")), "KeyUseByStackRoles")
    users = archive["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    assert {f"{role}export", f"{role}export-link"} <= set(users)
    signers = signing["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    assert f"{role}export" in signers and f"{role}export-link" not in signers


def test_only_the_imaging_operator_invokes_the_export_function(exports_plan: ProgramRun) -> None:
    function_arn = f"arn:aws:lambda:{REGION}:{MOCK_ACCOUNT_ID}:function:{PREFIX}-export"
    for duty in ("imaging-viewer", "imaging-operator", "security-auditor", "integration-partner"):
        document = policy_of(one(exports_plan, ROLE_POLICY, f"identity-{duty}-policy"))
        invokes = [
            s for s in document["Statement"] if "lambda:InvokeFunction" in as_list(s["Action"])
        ]
        if duty == "imaging-operator":
            assert [s["Resource"] for s in invokes] == [function_arn]
        else:
            assert not invokes, duty


def test_the_logs_ship_to_the_siem_and_the_bucket_is_trailed(exports_plan: ProgramRun) -> None:
    for function in ("export", "export-link"):
        shipped = one(
            exports_plan,
            "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter",
            f"audit-ship-function-{function}",
        )
        assert shipped.inputs["logGroup"] == f"/aws/lambda/{PREFIX}-{function}"
    trail = str(one(exports_plan, "aws:cloudtrail/trail:Trail", "audit-trail").inputs)
    assert f"arn:aws:s3:::{EXPORTS_BUCKET}/" in trail
    assert f"function:{PREFIX}-export-link" in trail


# ------------------------------------------------------------------------------------ the pack


def judge(run: ProgramRun, config: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    report = evaluate(
        load_snapshot(plan_document(run)), list(POLICIES), PackConfig(list(POLICIES), config)
    )
    return [(f.policy, f.urn.rsplit("::", 1)[-1]) for f in report.findings]


def test_the_pack_admits_exports_when_its_configuration_names_the_link_function(
    exports_plan: ProgramRun,
) -> None:
    assert judge(exports_plan, EXPORTS_PACK_CONFIG) == []


def test_without_the_allowance_the_pack_refuses_the_public_url(exports_plan: ProgramRun) -> None:
    findings = judge(exports_plan)
    assert set(findings) == {
        ("aws-lambda-permission-require-source", "exports-link-url"),
        ("aws-lambda-permission-require-source", "exports-link-url-permission"),
        ("aws-lambda-permission-require-source", "exports-link-url-invoke-permission"),
    }
