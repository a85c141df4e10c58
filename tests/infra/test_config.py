"""Stack config: defaults, every key's bad values, and failing before any resource exists."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.runtime import mocks as pulumi_mocks

from infra.config import (
    DEFAULT_EDGE_TLS_POLICY,
    DEFAULTS,
    EDGE_ONLY_KEYS,
    EDGE_PEM_MAX_BYTES,
    EDGE_TLS_POLICIES,
    KEYS,
    LOG_RETENTION_DAYS,
    UID_LISTS_MAX_BYTES,
    ConfigError,
    parse_settings,
)
from pacs_kit.program import PlanMocks, Project, run_program
from tests.infra import certificates

REPO = Path(__file__).resolve().parents[2]


def parse(**raw: object) -> Any:
    return parse_settings(raw, region="us-east-1", stack="test")


def test_defaults_are_the_secure_documented_values() -> None:
    s = parse()
    assert s.archive_lock.mode == "COMPLIANCE"
    assert s.archive_lock.days == 2555
    assert s.log_retention_days == 2192
    assert s.rpo_minutes == 15
    assert s.dr_region == "us-west-2"
    assert s.quarantine_lock.mode == "GOVERNANCE"
    assert s.allowed_client_cidrs == ()
    assert s.warnings == ()
    assert s.name_prefix == "pacs-dev"


@pytest.mark.parametrize(
    ("key", "value", "allowed_fragment"),
    [
        ("environment", "Prod", "lowercase"),
        ("environment", "a", "2-16"),
        ("environment", "x" * 17, "2-16"),
        ("environment", "dev-", "inner hyphens"),
        ("drRegion", "us-east-1", "must differ from aws:region"),
        ("drRegion", "mars-1", "AWS region"),
        ("vpcCidr", "8.8.0.0/16", "RFC 1918"),
        ("vpcCidr", "10.0.0.0/8", "/16 to /22"),
        ("vpcCidr", "10.0.0.0/24", "/16 to /22"),
        ("vpcCidr", "10.0.0.1/16", "RFC 1918"),
        ("vpcCidr", "not-a-cidr", "IPv4 CIDR"),
        ("availabilityZones", '["us-east-1a"]', "2 or 3"),
        ("availabilityZones", '["us-east-1a","us-east-1b","us-east-1c","us-east-1d"]', "2 or 3"),
        ("availabilityZones", '["us-east-1a","us-east-1a"]', "distinct"),
        ("availabilityZones", '["us-west-2a","us-west-2b"]', "zone names of us-east-1"),
        ("availabilityZones", "us-east-1a", "list of strings"),
        ("allowedClientCidrs", '["0.0.0.0/0"]', "never 0.0.0.0/0"),
        ("allowedClientCidrs", '["10.1.0.0/16","10.1.0.0/16"]', "must not repeat"),
        ("allowedClientCidrs", '["10.1.0.300/32"]', "IPv4 CIDRs"),
        ("archiveRetentionMode", "compliance", "COMPLIANCE, GOVERNANCE"),
        ("archiveRetentionMode", "NONE", "COMPLIANCE, GOVERNANCE"),
        ("archiveRetentionDays", "0", "from 1 to 36500"),
        ("archiveRetentionDays", "7y", "whole number"),
        ("archiveRetentionDays", True, "whole number"),
        ("archiveTransitionDays", "0", "from 1 to 3650"),
        ("inboxExpirationDays", "1", "from 7 to 3650"),
        ("quarantineRetentionDays", "-5", "from 1 to 36500"),
        ("logRetentionDays", "2190", "2192"),
        ("logRetentionDays", "0", "CloudWatch Logs accepts"),
        ("logRetentionDays", "six years", "CloudWatch Logs accepts"),
        ("rpoMinutes", "5", "from 15 to 1440"),
        ("rtoMinutes", "1", "from 15 to 10080"),
        ("backupRetentionDays", "3", "from 7 to 36500"),
        ("keyAdminArns", '["admin"]', "ARNs"),
        ("ingestMaxObjectMiB", "0", "from 1 to 5120"),
        ("ingestMaxObjectMiB", "5121", "from 1 to 5120"),
        ("ingestMaxObjectMiB", "4GiB", "whole number"),
        ("ingestMaxReceiveCount", "0", "from 1 to 20"),
        ("ingestMaxReceiveCount", "21", "from 1 to 20"),
        ("ingestReservedConcurrency", "1", "from 2 to 1000"),
        ("ingestReservedConcurrency", "1001", "from 2 to 1000"),
        ("ingestTransferSyntaxes", '["1.2.840.10008.1.2.01"]', "no leading zeros"),
        ("ingestTransferSyntaxes", '["1.2.840..1"]', "DICOM UIDs"),
        ("ingestTransferSyntaxes", '["1.2.840.10008.1.2."]', "DICOM UIDs"),
        ("ingestTransferSyntaxes", '["1.2.840.10008.1.2", "1.2.840.10008.1.2"]', "distinct"),
        ("ingestTransferSyntaxes", "1.2.840.10008.1.2", "list of strings"),
        ("ingestSopClasses", '["1.2.840.10008.5.1.4.1.1.2", "1.2.3.a"]', "DICOM UIDs"),
        ("ingestSopClasses", '["CT Image Storage"]', "DICOM UIDs"),
        ("ingestSopClasses", f'["1.{"2" * 63}"]', "at most 64 characters"),
        ("ingestSignaturePolicy", "reject", "reject-invalid, record, require-valid"),
        ("ingestSignaturePolicy", "require-valid", "needs ingestSignatureTrustBundle"),
        ("ingestSignatureTrustBundle", "examples/pki/missing.pem", "readable PEM file"),
        ("ingestSignatureTrustBundle", "examples/pki/README.md", "CA certificates"),
        ("verifySampleSize", "0", "from 1 to 10000"),
        ("verifyReservedConcurrency", "0", "from 1 to 10"),
        ("archiveRetentionDay", "10", "unknown key"),
    ],
)
def test_bad_value_names_key_value_and_allowed(
    key: str, value: object, allowed_fragment: str
) -> None:
    assert_refused_naming(parse, key, value, allowed_fragment)


def assert_refused_naming(
    parser: Callable[..., Any], key: str, value: object, allowed_fragment: str
) -> None:
    """``parser`` refuses ``key = value`` naming the key, the value and what is allowed."""
    with pytest.raises(ConfigError) as caught:
        parser(**{key: value})
    message = str(caught.value)
    assert f"cloud-pacs:{key}" in message, message
    # A bad list item is named on its own; a bad scalar is quoted whole.
    shown = json.loads(value) if isinstance(value, str) and value.startswith("[") else [value]
    assert any(repr(v) in message for v in [value, *shown]), message
    assert allowed_fragment in message, message


def test_ingest_defaults_match_the_functions_own_defaults() -> None:
    from lambdas import settings as function_settings

    s = parse()
    assert s.ingest_max_object_mib * 1024**2 == function_settings.DEFAULT_MAX_OBJECT_BYTES
    assert s.verify_sample_size == function_settings.DEFAULT_VERIFY_SAMPLE_SIZE
    assert s.ingest_max_receive_count == 5
    assert (s.ingest_transfer_syntaxes, s.ingest_sop_classes) == ((), ())
    assert s.ingest_reserved_concurrency >= 2, "SQS event sources need a maximum of at least 2"


def test_signature_defaults_reject_invalid_without_trust_anchors() -> None:
    from lambdas import settings as function_settings

    s = parse()
    assert s.ingest_signature_policy == function_settings.DEFAULT_SIGNATURE_POLICY
    assert s.ingest_signature_policy == "reject-invalid"
    assert s.ingest_signature_trust_pem is None
    assert not any("ingestSignaturePolicy" in w for w in s.warnings)


def test_signature_trust_bundle_is_read_and_enables_require_valid() -> None:
    s = parse(
        ingestSignaturePolicy="require-valid", ingestSignatureTrustBundle="examples/pki/ca.pem"
    )
    assert s.ingest_signature_policy == "require-valid"
    assert s.ingest_signature_trust_pem == (REPO / "examples/pki/ca.pem").read_text()


def test_record_policy_warns_that_tampered_objects_are_archived() -> None:
    s = parse(ingestSignaturePolicy="record")
    assert any("ingestSignaturePolicy is record" in w and "archived" in w for w in s.warnings)


def test_a_signature_trust_bundle_with_a_private_key_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(
        (REPO / "examples/pki/ca.pem").read_text()
        + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse(ingestSignatureTrustBundle=str(bundle))
    assert "cloud-pacs:ingestSignatureTrustBundle" in str(caught.value)
    assert "private key" in str(caught.value)


def test_uid_lists_are_parsed_in_order() -> None:
    s = parse(
        ingestTransferSyntaxes='["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"]',
        ingestSopClasses=["1.2.840.10008.5.1.4.1.1.2", "0.1", "1.2.3"],
    )
    assert s.ingest_transfer_syntaxes == ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90")
    assert s.ingest_sop_classes == ("1.2.840.10008.5.1.4.1.1.2", "0.1", "1.2.3")


def test_uid_lists_that_overflow_the_lambda_environment_are_refused() -> None:
    # 49 UIDs of 62 characters: each is valid, together (3086 bytes) they leave too little room.
    uids = [f"1.2.840.{n:04d}." + "1" * 49 for n in range(1000, 1049)]
    assert all(len(u) == 62 for u in uids)
    assert len(",".join(uids[:-1])) <= UID_LISTS_MAX_BYTES < len(",".join(uids))
    parse(ingestSopClasses=uids[:-1])
    with pytest.raises(ConfigError) as caught:
        parse(ingestSopClasses=uids)
    message = str(caught.value)
    assert "cloud-pacs:ingestSopClasses" in message
    assert f"{UID_LISTS_MAX_BYTES} bytes" in message and "4 KB" in message, message


def test_missing_region_is_named() -> None:
    with pytest.raises(ConfigError, match="aws:region"):
        parse_settings({}, region=None, stack="test")


def test_every_cloudwatch_retention_value_is_accepted() -> None:
    for days in LOG_RETENTION_DAYS:
        assert parse(logRetentionDays=str(days)).log_retention_days == days


def test_governance_archive_is_allowed_only_with_a_warning() -> None:
    s = parse(archiveRetentionMode="GOVERNANCE")
    assert s.archive_lock.mode == "GOVERNANCE"
    assert any("archiveRetentionMode is GOVERNANCE" in w for w in s.warnings), s.warnings


def test_short_log_retention_warns_with_the_hipaa_reason() -> None:
    s = parse(logRetentionDays="365")
    assert any("164.316" in w for w in s.warnings), s.warnings


def test_backup_interval_follows_rpo_within_aws_backup_limits() -> None:
    assert parse(rpoMinutes="15").backup_interval_hours == 1
    assert parse(rpoMinutes="61").backup_interval_hours == 2
    assert parse(rpoMinutes="1440").backup_interval_hours == 24


def test_pulumi_yaml_declares_every_key_with_the_same_default() -> None:
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    declared = {k: v for k, v in project["config"].items() if ":" not in k}
    assert set(declared) == {k.name for k in KEYS}
    for key in KEYS:
        spec = declared[key.name]
        assert spec.get("description"), f"Pulumi.yaml: {key.name} has no description"
        assert spec.get("default") == key.default, f"Pulumi.yaml: default of {key.name}"


def test_default_providers_are_disabled() -> None:
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    assert project["config"]["pulumi:disable-default-providers"] == ["aws"]


# The example stack sets the edge's client trust and server certificate, so that it plans the whole
# edge (the default is no edge); every other value is the documented default.
EXAMPLE_STACK_EDGE = {
    "edgeClientCaBundle": "examples/pki/ca.pem",
    "edgeCertificateArn": (
        "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-4000-8000-000000000000"
    ),
}


# ... and a placeholder federation source, so that it plans the human roles (the default is none).
EXAMPLE_STACK_IDENTITY = {
    "identityTrustedPrincipalArns": [
        "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/"
        "AWSReservedSSO_PacsImaging_0123456789abcdef"
    ]
}


def test_example_stack_values_are_the_documented_defaults() -> None:
    stack = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    ours = {
        k.removeprefix("cloud-pacs:"): v for k, v in stack.items() if k.startswith("cloud-pacs:")
    }
    assert ours == dict(DEFAULTS) | EXAMPLE_STACK_EDGE | EXAMPLE_STACK_IDENTITY
    assert stack["aws:region"] != ours["drRegion"]


class _CountingMocks(PlanMocks):
    def __init__(self) -> None:
        super().__init__(region="us-east-1")
        self.created = 0

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.created += 1
        return super().new_resource(args)


def test_bad_config_fails_before_any_resource_is_declared() -> None:
    project = Project.load(REPO)
    config = project.stack_config("dev") | {"cloud-pacs:vpcCidr": "8.8.8.0/24"}
    mocks = _CountingMocks()
    with pytest.raises(ConfigError, match="cloud-pacs:vpcCidr"):
        run_program(project, "dev", mocks=mocks, config=config)
    assert mocks.created == 0, "resources were declared before the config was validated"


def test_readme_documents_every_key() -> None:
    readme = (REPO / "README.md").read_text()
    for key in KEYS:
        assert f"| `{key.name}` |" in readme, f"README lacks config key {key.name}"


# ------------------------------------------------------------------------------------------ edge

EXAMPLE_CA = "examples/pki/ca.pem"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-4000-8000-000000000000"
PRIVATE_CA = (
    "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/"
    "11111111-2222-4333-8444-555555555555"
)
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/gateway"


def parse_edge(**raw: object) -> Any:
    """Settings with an edge: the example CA and certificate, overridden by ``raw``."""
    return parse(**({"edgeClientCaBundle": EXAMPLE_CA, "edgeCertificateArn": CERTIFICATE} | raw))


def test_no_trust_source_means_no_edge() -> None:
    assert parse().edge is None


def test_example_trust_source_gives_an_internal_tls13_edge() -> None:
    edge = parse_edge().edge
    assert edge is not None
    assert edge.client_ca_pem == (REPO / EXAMPLE_CA).read_text()
    assert (edge.private_ca_arn, edge.client_crl_pem, edge.image) == (None, None, None)
    assert edge.certificate_arn == CERTIFICATE
    assert edge.internet_facing is False
    assert edge.tls_policy == DEFAULT_EDGE_TLS_POLICY
    assert (edge.image_tag, edge.desired_count) == ("v0.1.0", 2)


def test_private_ca_is_the_other_trust_source() -> None:
    edge = parse(edgePrivateCaArn=PRIVATE_CA, edgeCertificateArn=CERTIFICATE).edge
    assert edge is not None
    assert (edge.private_ca_arn, edge.client_ca_pem) == (PRIVATE_CA, None)


def test_tls_policies_are_exactly_the_tls13_only_family() -> None:
    assert DEFAULT_EDGE_TLS_POLICY == "ELBSecurityPolicy-TLS13-1-3-2021-06"
    assert len(set(EDGE_TLS_POLICIES)) == len(EDGE_TLS_POLICIES)
    for policy in EDGE_TLS_POLICIES:
        assert policy.startswith("ELBSecurityPolicy-TLS13-1-3-"), policy
        assert parse_edge(edgeTlsPolicy=policy).edge.tls_policy == policy


@pytest.mark.parametrize(
    ("key", "value", "allowed_fragment"),
    [
        ("edgeTlsPolicy", "ELBSecurityPolicy-TLS13-1-2-2021-06", "must be one of"),
        ("edgeTlsPolicy", "ELBSecurityPolicy-2016-08", DEFAULT_EDGE_TLS_POLICY),
        ("edgeCertificateArn", "", "is required with an edge"),
        ("edgeCertificateArn", "arn:aws:iam::123456789012:server-certificate/x", "ACM"),
        ("edgeCertificateArn", CERTIFICATE.replace("us-east-1", "us-west-2"), "aws:region"),
        ("edgeCertificateArn", CERTIFICATE + "x", "ARN of an ACM certificate"),
        ("edgePrivateCaArn", PRIVATE_CA, "exactly one client CA source"),
        ("edgeClientCaBundle", "examples/pki/missing.pem", "readable PEM file"),
        ("edgeClientCaBundle", "examples/pki/README.md", "CA certificates"),
        ("edgeClientCrl", "examples/pki/ca.pem", "revocation list"),
        ("edgeInternetFacing", "yes", "true or false"),
        ("gatewayImage", f"{IMAGE}:latest", "not latest"),
        ("gatewayImage", IMAGE, "immutable tag or a digest"),
        ("gatewayImage", f"{IMAGE}@sha256:abc", "immutable tag or a digest"),
        ("gatewayImage", "docker.io/library/python:3.12", "ECR image URI"),
        ("gatewayImage", f"{IMAGE.replace('us-east-1', 'eu-west-1')}:v1", "VPC endpoints"),
        ("gatewayImageTag", "latest", "other than latest"),
        ("gatewayImageTag", "-v1", "ECR image tag"),
        ("gatewayImageTag", "v1 beta", "ECR image tag"),
        ("gatewayDesiredCount", "0", "from 1 to 20"),
        ("gatewayDesiredCount", "21", "from 1 to 20"),
    ],
)
def test_bad_edge_value_names_key_value_and_allowed(
    key: str, value: object, allowed_fragment: str
) -> None:
    assert_refused_naming(parse_edge, key, value, allowed_fragment)


def test_bad_private_ca_arn_is_named() -> None:
    for value, fragment in (
        ("arn:aws:acm:us-east-1:123456789012:certificate/x", "ACM Private CA"),
        (PRIVATE_CA.replace("us-east-1", "eu-west-1"), "aws:region"),
    ):
        with pytest.raises(ConfigError, match="cloud-pacs:edgePrivateCaArn") as caught:
            parse(edgePrivateCaArn=value, edgeCertificateArn=CERTIFICATE)
        assert fragment in str(caught.value)


@pytest.mark.parametrize("key", EDGE_ONLY_KEYS)
def test_edge_keys_without_a_trust_source_are_refused(key: str) -> None:
    value = {"edgeInternetFacing": "true", "gatewayDesiredCount": "3"}.get(key, "something")
    with pytest.raises(ConfigError) as caught:
        parse(**{key: value})
    message = str(caught.value)
    assert f"cloud-pacs:{key}" in message
    assert "edgeClientCaBundle or edgePrivateCaArn" in message


def test_edge_keys_at_their_defaults_need_no_trust_source() -> None:
    assert parse(**{key: DEFAULTS[key] for key in EDGE_ONLY_KEYS}).edge is None


def test_a_bundle_with_a_private_key_is_refused(tmp_path: Path) -> None:
    ca = certificates.authority("client CA")
    path = certificates.write(tmp_path / "ca.pem", ca.pem, ca.key_pem)
    with pytest.raises(ConfigError, match="cloud-pacs:edgeClientCaBundle") as caught:
        parse_edge(edgeClientCaBundle=path)
    assert "private key" in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"), [({"ca": False}, "is not a CA"), ({"expired": True}, "has expired")]
)
def test_a_bundle_of_leaf_or_expired_certificates_is_refused(
    tmp_path: Path, kwargs: dict[str, bool], fragment: str
) -> None:
    good = certificates.authority("good CA")
    bad = certificates.authority("bad", **kwargs)
    path = certificates.write(tmp_path / "ca.pem", good.pem, bad.pem)
    with pytest.raises(ConfigError, match="cloud-pacs:edgeClientCaBundle") as caught:
        parse_edge(edgeClientCaBundle=path)
    assert fragment in str(caught.value) and "CN=bad" in str(caught.value)


def test_an_oversized_bundle_is_refused(tmp_path: Path) -> None:
    ca = certificates.authority("client CA")
    copies = EDGE_PEM_MAX_BYTES // len(ca.pem) + 1
    path = certificates.write(tmp_path / "ca.pem", *[ca.pem] * copies)
    with pytest.raises(ConfigError, match="cloud-pacs:edgeClientCaBundle") as caught:
        parse_edge(edgeClientCaBundle=path)
    assert f"at most {EDGE_PEM_MAX_BYTES} bytes" in str(caught.value)


def test_a_crl_of_the_bundles_ca_is_accepted_and_another_cas_refused(tmp_path: Path) -> None:
    ca, stranger = certificates.authority("client CA"), certificates.authority("stranger")
    bundle = certificates.write(tmp_path / "ca.pem", ca.pem)
    good = certificates.write(tmp_path / "good.crl.pem", certificates.crl(ca))
    edge = parse_edge(edgeClientCaBundle=bundle, edgeClientCrl=good).edge
    assert edge.client_crl_pem == (tmp_path / "good.crl.pem").read_text()
    bad = certificates.write(tmp_path / "bad.crl.pem", certificates.crl(stranger))
    with pytest.raises(ConfigError, match="cloud-pacs:edgeClientCrl") as caught:
        parse_edge(edgeClientCaBundle=bundle, edgeClientCrl=bad)
    assert "CN=stranger" in str(caught.value)


def test_an_expired_crl_is_refused_and_one_about_to_expire_warns(tmp_path: Path) -> None:
    ca = certificates.authority("client CA")
    bundle = certificates.write(tmp_path / "ca.pem", ca.pem)
    expired = certificates.crl(ca, next_update=certificates.NOW - certificates.DAY)
    with pytest.raises(ConfigError, match="cloud-pacs:edgeClientCrl") as caught:
        parse_edge(edgeClientCaBundle=bundle, edgeClientCrl=certificates.write(
            tmp_path / "expired.crl.pem", expired))  # fmt: skip
    assert "not past its next update" in str(caught.value)
    soon = certificates.crl(ca, next_update=certificates.NOW + 3 * certificates.DAY)
    settings = parse_edge(
        edgeClientCaBundle=bundle, edgeClientCrl=certificates.write(tmp_path / "soon.pem", soon)
    )
    assert any("edgeClientCrl reaches its next update" in w for w in settings.warnings)
    fresh = certificates.write(tmp_path / "fresh.pem", certificates.crl(ca))
    fresh_settings = parse_edge(edgeClientCaBundle=bundle, edgeClientCrl=fresh)
    assert not any("edgeClientCrl" in w for w in fresh_settings.warnings)


def test_a_crl_forged_in_the_cas_name_is_refused(tmp_path: Path) -> None:
    ca = certificates.authority("client CA")
    impostor = certificates.Authority(ca.certificate, certificates.authority("x").key)
    bundle = certificates.write(tmp_path / "ca.pem", ca.pem)
    forged = certificates.write(tmp_path / "forged.crl.pem", certificates.crl(impostor))
    with pytest.raises(ConfigError, match="did not sign it"):
        parse_edge(edgeClientCaBundle=bundle, edgeClientCrl=forged)


def test_gateway_image_takes_a_tag_or_a_digest() -> None:
    assert parse_edge(gatewayImage=f"{IMAGE}:v2.0.1").edge.image == f"{IMAGE}:v2.0.1"
    digest = f"{IMAGE}@sha256:{'a' * 64}"
    assert parse_edge(gatewayImage=digest).edge.image == digest


def test_internet_facing_edge_is_allowed_only_with_a_warning() -> None:
    s = parse_edge(edgeInternetFacing="true", allowedClientCidrs='["10.50.0.0/16"]')
    assert s.edge.internet_facing is True
    (warning,) = s.warnings
    assert "cloud-pacs:edgeInternetFacing is true" in warning and "internet gateway" in warning


def test_an_edge_without_client_networks_warns_that_nobody_can_connect() -> None:
    (warning,) = parse_edge().warnings
    assert "cloud-pacs:allowedClientCidrs is empty" in warning and "nobody" in warning
    assert parse_edge(allowedClientCidrs='["10.50.0.0/16"]').warnings == ()


# ------------------------------------------------------------------------------------------ audit


def test_audit_defaults_ship_to_a_pull_bucket_and_leave_account_services_alone() -> None:
    audit = parse().audit
    assert audit.siem_destination == "s3", "the default must deploy without an external secret"
    assert audit.siem_endpoint_url is None
    assert audit.enable_guardduty is False
    assert audit.enable_security_hub is False


@pytest.mark.parametrize("destination", ["http", "splunk"])
def test_push_destinations_take_an_https_url(destination: str) -> None:
    url = "https://hec.siem.example.org:8088/services/collector/raw"
    audit = parse(siemDestination=destination, siemEndpointUrl=url).audit
    assert (audit.siem_destination, audit.siem_endpoint_url) == (destination, url)


@pytest.mark.parametrize(
    ("raw", "key", "value", "allowed_fragment"),
    [
        ({"siemDestination": "kafka"}, "siemDestination", "kafka", "s3, http, splunk"),
        ({"siemDestination": "http"}, "siemEndpointUrl", "", "is required with siemDestination"),
        (
            {"siemDestination": "http", "siemEndpointUrl": "http://siem.example.org/"},
            "siemEndpointUrl",
            "http://siem.example.org/",
            "https://",
        ),
        (
            {"siemDestination": "splunk", "siemEndpointUrl": "hec.example.org"},
            "siemEndpointUrl",
            "hec.example.org",
            "https://",
        ),
        (
            {"siemDestination": "http", "siemEndpointUrl": "https://x.example/" + "a" * 1000},
            "siemEndpointUrl",
            "https://x.example/" + "a" * 1000,
            "at most 1000",
        ),
        (
            {"siemEndpointUrl": "https://siem.example.org/"},
            "siemEndpointUrl",
            "https://siem.example.org/",
            "must be empty when siemDestination is s3",
        ),
        ({"enableGuardDuty": "yes"}, "enableGuardDuty", "yes", "true or false"),
        ({"enableSecurityHub": "1"}, "enableSecurityHub", "1", "true or false"),
    ],
)
def test_bad_audit_values_name_key_value_and_allowed(
    raw: dict[str, object], key: str, value: str, allowed_fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(**raw)
    message = str(caught.value)
    assert f"cloud-pacs:{key}" in message, message
    assert repr(value) in message, message
    assert allowed_fragment in message, message


# -------------------------------------------------------------------------------------- emulator


def test_no_emulator_by_default() -> None:
    assert parse().emulator_endpoint is None
    assert parse(emulatorEndpoint="  ").emulator_endpoint is None


@pytest.mark.parametrize(
    ("raw", "endpoint"),
    [
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
        (" https://localhost:4566 ", "https://localhost:4566"),
        ("HTTP://LocalHost", "http://localhost"),
        ("http://[::1]:5000", "http://[::1]:5000"),
        ("http://127.1.2.3:65535", "http://127.1.2.3:65535"),
    ],
)
def test_a_loopback_emulator_is_accepted_with_a_warning(raw: str, endpoint: str) -> None:
    s = parse(emulatorEndpoint=raw)
    assert s.emulator_endpoint == endpoint
    (warning,) = s.warnings
    assert warning.startswith(f"cloud-pacs:emulatorEndpoint is {endpoint}: ")
    assert "instead of AWS" in warning and "not into AWS" in warning


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example",
        "http://evil.example:5000",
        "http://10.0.0.5:5000",
        "http://0.0.0.0:5000",
        "http://[::]:5000",
        "http://127.0.0.1.evil.example:5000",
        "http://localhost.evil.example",
        "http://127.0.0.1:5000@evil.example",
        "http://user:secret@127.0.0.1:5000",
        "http://127.0.0.1:5000/moto",
        "http://127.0.0.1:5000?x=1",
        "http://127.0.0.1:70000",
        "http://127.0.0.1:0",
        "http://127.1:5000",
        "http://::1:5000",
        "ftp://127.0.0.1",
        "127.0.0.1:5000",
        "localhost",
        "not a url",
    ],
)
def test_an_emulator_elsewhere_than_loopback_is_refused(value: str) -> None:
    assert_refused_naming(parse, "emulatorEndpoint", value, "loopback host")
    with pytest.raises(ConfigError) as caught:
        parse(emulatorEndpoint=value)
    assert "every API call" in caught.value.allowed and "credentials" in caught.value.allowed
