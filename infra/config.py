"""Stack configuration: one frozen, validated settings object built from Pulumi config.

Every key lives in ``KEYS`` with its default and a description; ``Pulumi.yaml`` declares the same
keys and defaults (a test keeps the two in step). A bad value raises :class:`ConfigError` naming the
key, the value and what is allowed, before any resource is declared.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from infra.iam_documents import (
    TRUST_POLICY_MAX_CHARS,
    human_trust_policy,
    minified_length,
    trusted_principal_kind,
)
from infra.packaging import REPO
from lambdas.settings import (
    DEFAULT_MAX_OBJECT_BYTES,
    DEFAULT_SIGNATURE_POLICY,
    DEFAULT_VERIFY_SAMPLE_SIZE,
    SIGNATURE_POLICIES,
)

PROJECT = "cloud-pacs"
_Loaded = TypeVar("_Loaded")

RetentionMode = Literal["COMPLIANCE", "GOVERNANCE"]
RETENTION_MODES: tuple[RetentionMode, ...] = ("COMPLIANCE", "GOVERNANCE")

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip

# HIPAA 45 CFR 164.316(b)(2)(i): documentation (audit logs among it) is kept six years.
HIPAA_RETENTION_DAYS = 2192

# S3 Replication Time Control replicates 99.99 % of objects within 15 minutes: no smaller RPO can be
# backed by an AWS SLA for the archive.
RTC_SLA_MINUTES = 15

MIB = 1024**2
# The ingest function server-side copies objects with CopyObject, which copies at most 5 GiB.
MAX_OBJECT_MIB = 5 * 1024
# DICOM PS3.5 UI value representation: dot-separated numbers without leading zeros, <= 64 chars.
_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
UID_MAX_LENGTH = 64
# Lambda allows 4 KB of environment variables per function, and the other variables (bucket names,
# key ARNs, tables) take up to about 700 bytes: the two UID lists may take 3 KB.
UID_LISTS_MAX_BYTES = 3072

# Lambda allows 4 KB of environment variables per function; the research-copy function's other
# variables (bucket names, key ARNs, tables) take up to about 800 bytes: the projects may take 3 KB.
RESEARCH_PROJECTS_MAX_BYTES = 3072
# The option names of PS3.15 E.3 as lambdas/deid/profile.Option spells them (infra never imports
# pydicom, nor the profile; tests/infra/test_research.py keeps the two lists equal).
DEID_OPTIONS: tuple[str, ...] = (
    "retain-safe-private",
    "retain-uids",
    "retain-device-identity",
    "retain-institution-identity",
    "retain-patient-characteristics",
    "retain-long-full-dates",
    "retain-long-modified-dates",
    "clean-descriptors",
    "clean-structured-content",
    "clean-graphics",
)
# The two Retain Longitudinal Temporal Information options exclude each other (PS3.15 E.3.6).
EXCLUSIVE_DEID_OPTIONS: tuple[str, str] = ("retain-long-full-dates", "retain-long-modified-dates")
_PROJECT_NAME_RE = re.compile(r"^[a-z0-9-]{2,32}$")
# A DICOM keyword's shape (PS3.6): a letter, then letters and digits.
_DICOM_KEYWORD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
# A safe private attribute: its private creator, then the element within the creator's block.
_SAFE_PRIVATE_RE = re.compile(r"^[^:]+:0x[0-9A-Fa-f]{2}$")
_PROJECT_FIELDS = frozenset({"name", "match", "options", "safePrivate"})
# One-time export links: the longest a link may work (issue #9: at most 15 minutes), and how long
# packages stay in the exports bucket.
EXPORT_LINK_MINUTES_MAX = 15
DEFAULT_EXPORT_LINK_MINUTES = EXPORT_LINK_MINUTES_MAX
EXPORT_EXPIRATION_DAYS_MAX = 30
DEFAULT_EXPORT_EXPIRATION_DAYS = 7

# ALB security policies that negotiate TLS 1.3 and nothing older (ELBSecurityPolicy-TLS13-1-3-*).
EDGE_TLS_POLICIES: tuple[str, ...] = (
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-PQ-2025-09",
)
DEFAULT_EDGE_TLS_POLICY = EDGE_TLS_POLICIES[0]
DEFAULT_GATEWAY_IMAGE_TAG = "v0.1.0"
# The CA bundle and the CRL also reach the gateway's DIMSE listener through its task definition,
# which ECS limits to 64 KiB in all.
EDGE_PEM_MAX_BYTES = 16 * 1024
# A CRL that reaches its next update within this time warns at every deployment.
CRL_RENEWAL_WARNING = datetime.timedelta(days=7)

_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
_ENVIRONMENT_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$")
_ROLE_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:iam::\d{12}:(root|role/[\w+=,.@/-]+|user/[\w+=,.@/-]+)$"
)
_IAM_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_SAML_PROVIDER_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:saml-provider/[\w.-]{1,128}$")
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ACM_CERTIFICATE_RE = re.compile(rf"^arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{{12}}:certificate/{_UUID}$")
_PRIVATE_CA_RE = re.compile(
    rf"^arn:aws[a-z-]*:acm-pca:([a-z0-9-]+):\d{{12}}:certificate-authority/{_UUID}$"
)
# ECR image tags: 1-128 of letters, digits, '_', '.', '-', not starting with '.' or '-'.
_IMAGE_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_IMAGE_TAG_RE = re.compile(rf"^{_IMAGE_TAG}$")
# A local AWS emulator: http(s), a loopback host (checked further below), an optional port, no path
# (matched whole: no user info, query or fragment that parsers could read differently).
_EMULATOR_URL_RE = re.compile(
    r"(?P<scheme>https?)://(?P<host>localhost|[0-9.]+|\[::1\])(?::(?P<port>[0-9]{1,5}))?/?",
    re.IGNORECASE,
)
_ECR_IMAGE_RE = re.compile(
    r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    rf"(?::({_IMAGE_TAG})|@sha256:[0-9a-f]{{64}})$"
)


class ConfigError(ValueError):
    """A stack config value is invalid; the message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid config {key} = {value!r}: {allowed}")


@dataclass(frozen=True)
class Key:
    """One config key: its name in the project namespace, default (as YAML would hold it), doc."""

    name: str
    default: Any
    description: str


KEYS: tuple[Key, ...] = (
    Key(
        "environment", "dev", "Deployment environment; prefixes every resource name (pacs-<env>-…)."
    ),
    Key("drRegion", "us-west-2", "AWS region of the disaster-recovery replica and backup copies."),
    Key("vpcCidr", "10.20.0.0/16", "Private IPv4 CIDR of the VPC (RFC 1918, /16 to /22)."),
    Key(
        "availabilityZones",
        [],
        "2 or 3 availability zones of aws:region; empty takes the region's first two.",
    ),
    Key(
        "allowedClientCidrs",
        [],
        "CIDRs of modalities and partner networks allowed to reach the edge tier (not 0.0.0.0/0).",
    ),
    Key(
        "archiveRetentionMode",
        "COMPLIANCE",
        "Object Lock mode of the archive: COMPLIANCE (nobody can shorten it) or GOVERNANCE.",
    ),
    Key("archiveRetentionDays", 2555, "Default Object Lock retention of archived objects (days)."),
    Key(
        "archiveTransitionDays",
        90,
        "Age (days) after which archive and derived objects move to Glacier Instant Retrieval.",
    ),
    Key(
        "inboxExpirationDays",
        30,
        "Age (days) after which processed inbox objects expire (archive/quarantine keep copies).",
    ),
    Key(
        "quarantineRetentionDays", 365, "Object Lock (GOVERNANCE) retention of quarantined inputs."
    ),
    Key(
        "logRetentionDays",
        HIPAA_RETENTION_DAYS,
        "Retention of CloudWatch log groups and access logs; a CloudWatch-accepted value.",
    ),
    Key("rpoMinutes", 15, "Recovery point objective (minutes); sets the backup frequency."),
    Key("rtoMinutes", 240, "Recovery time objective (minutes) stated in the outputs and runbook."),
    Key("backupRetentionDays", 35, "How long AWS Backup recovery points are kept (days, >= 7)."),
    Key(
        "keyAdminArns",
        [],
        "IAM principals that administer (never use) the KMS keys; empty means the account root.",
    ),
    Key(
        "ingestMaxObjectMiB",
        DEFAULT_MAX_OBJECT_BYTES // MIB,
        "Largest inbox object the ingest function accepts, in MiB (1-5120: CopyObject's 5 GiB).",
    ),
    Key(
        "ingestMaxReceiveCount",
        5,
        "Deliveries of an inbox event before it moves to the dead-letter queue (1-20).",
    ),
    Key(
        "ingestReservedConcurrency",
        10,
        "Concurrency reserved for the ingest function; also the SQS event source's maximum.",
    ),
    Key(
        "ingestTransferSyntaxes",
        [],
        "Transfer syntax UIDs the ingest function accepts; empty takes its built-in list.",
    ),
    Key(
        "ingestSopClasses",
        [],
        "SOP class UIDs the ingest function accepts; empty takes its built-in storage list.",
    ),
    Key(
        "ingestSignaturePolicy",
        DEFAULT_SIGNATURE_POLICY,
        "What DICOM digital signatures of arriving objects decide: reject-invalid (quarantine a "
        "tampered object), record (only log verdicts; warns) or require-valid (also quarantine "
        "objects without a valid signature; needs ingestSignatureTrustBundle).",
    ),
    Key(
        "ingestSignatureTrustBundle",
        "",
        "PEM file (relative to the project) of the CA certificates signers must chain to for a "
        "signature to be valid; empty: signatures verify at most as untrusted.",
    ),
    Key(
        "verifySampleSize",
        DEFAULT_VERIFY_SAMPLE_SIZE,
        "Archived instances the daily verify run re-reads and checks against their signature.",
    ),
    Key("verifyReservedConcurrency", 1, "Concurrency reserved for the verify function (1-10)."),
    Key(
        "edgeClientCaBundle",
        "",
        "PEM file (relative to the project) of the CA certificates client certificates must chain "
        "to; the edge exists only with this or edgePrivateCaArn.",
    ),
    Key(
        "edgePrivateCaArn",
        "",
        "ACM Private CA (in aws:region) whose certificate becomes the client trust store instead "
        "of edgeClientCaBundle.",
    ),
    Key(
        "edgeClientCrl",
        "",
        "PEM certificate revocation list (relative to the project) of the client CA; empty: none.",
    ),
    Key(
        "edgeCertificateArn",
        "",
        "ACM certificate (in aws:region) the HTTPS listener presents; required with an edge.",
    ),
    Key(
        "edgeInternetFacing",
        False,
        "Give the edge load balancers public addresses (warns; needs an internet gateway).",
    ),
    Key(
        "edgeTlsPolicy",
        DEFAULT_EDGE_TLS_POLICY,
        "TLS 1.3-only security policy of the HTTPS listener (ELBSecurityPolicy-TLS13-1-3-*).",
    ),
    Key(
        "gatewayImage",
        "",
        "ECR image URI (tag or digest) of the gateway; empty: the stack's repository with "
        "gatewayImageTag.",
    ),
    Key(
        "gatewayImageTag",
        DEFAULT_GATEWAY_IMAGE_TAG,
        "Tag of the stack's gateway repository to run when gatewayImage is empty (not latest).",
    ),
    Key("gatewayDesiredCount", 2, "Gateway tasks to run (1-20), spread over the app subnets."),
    Key(
        "siemDestination",
        "s3",
        "Where Firehose ships the security logs: s3 (a bucket the SIEM pulls), http or splunk.",
    ),
    Key(
        "siemEndpointUrl",
        "",
        "HTTPS URL of the SIEM's HTTP endpoint or Splunk HEC; required for http and splunk.",
    ),
    Key(
        "siemReaderArns",
        [],
        "IAM roles of the SIEM (this or another account) that read the trail and pull buckets "
        "and the SIEM objects queue; empty: none can decrypt them.",
    ),
    Key(
        "enableGuardDuty",
        False,
        "Create a GuardDuty detector with S3 protection (account-wide: one per account, region).",
    ),
    Key(
        "enableSecurityHub",
        False,
        "Enable Security Hub with AWS Foundational Security Best Practices (account-wide).",
    ),
    Key(
        "identitySamlProviderArn",
        "",
        "IAM SAML provider whose users assume the human roles (the IdP must assert MFA); or use "
        "identityTrustedPrincipalArns, not both.",
    ),
    Key(
        "identityTrustedPrincipalArns",
        [],
        "IAM users, account roots (MFA required in the trust) or IAM Identity Center "
        "permission-set roles (MFA enforced by Identity Center) that may assume the human roles; "
        "empty with no SAML provider: no human roles.",
    ),
    Key(
        "enableAccessAnalyzer",
        False,
        "Create an IAM Access Analyzer of type ACCOUNT (one per account and region: leave false "
        "where the account, another stack or the organization already has one).",
    ),
    Key(
        "researchProjects",
        [],
        "Research projects: studies matching a project's rule get de-identified copies under "
        "derived/<project>/ (a list of {name, match, options, safePrivate}); empty: no "
        "research-copy function.",
    ),
    Key(
        "researchLinkage",
        False,
        "Keep the pseudonym-to-original mapping, KMS-encrypted, in a table only the "
        "reidentification role reads (needs researchProjects and a federation source).",
    ),
    Key(
        "exportsEnabled",
        False,
        "Sharing in AWS: an export function (imaging-operator only) that packages a study for a "
        "recipient certificate and returns a one-time link, served by a public function URL "
        "(warns).",
    ),
    Key(
        "exportLinkMinutes",
        DEFAULT_EXPORT_LINK_MINUTES,
        "How long an issued export link works, in minutes (1-15); its download URL lives 60 s.",
    ),
    Key(
        "exportExpirationDays",
        DEFAULT_EXPORT_EXPIRATION_DAYS,
        "Age (days, 1-30) after which export packages expire from the exports bucket.",
    ),
    Key(
        "exportSignerCertificate",
        "",
        "PEM certificate (relative to the project) issued for the stack's signing KMS key, "
        "with which export manifests are signed; empty: a one-time key signs them (integrity "
        "only; warns when exports are on).",
    ),
    Key(
        "emulatorEndpoint",
        "",
        "http(s) URL of a local AWS emulator on a loopback host (the sandbox) that both providers "
        "send every API call to instead of AWS (warns); empty: AWS.",
    ),
)
# Keys that only mean something when the edge exists (a client trust source is configured).
EDGE_ONLY_KEYS: tuple[str, ...] = (
    "edgeClientCrl",
    "edgeCertificateArn",
    "edgeInternetFacing",
    "edgeTlsPolicy",
    "gatewayImage",
    "gatewayImageTag",
    "gatewayDesiredCount",
)
KEY_NAMES = frozenset(k.name for k in KEYS)
DEFAULTS: Mapping[str, Any] = {k.name: k.default for k in KEYS}


@dataclass(frozen=True)
class ObjectLock:
    """Default Object Lock retention of a bucket."""

    mode: RetentionMode
    days: int


SiemDestination = Literal["s3", "http", "splunk"]
SIEM_DESTINATIONS: tuple[SiemDestination, ...] = ("s3", "http", "splunk")
# Firehose delivers to HTTP endpoints and Splunk over HTTPS only, at most 1000 characters of URL.
SIEM_URL_MAX_LENGTH = 1000
_SIEM_URL_RE = re.compile(r"^https://[A-Za-z0-9.-]+(:\d{1,5})?(/\S*)?$")


@dataclass(frozen=True)
class AuditSettings:
    """Security-log shipping and the optional account-wide detectors."""

    siem_destination: SiemDestination = "s3"
    # None with the s3 destination.
    siem_endpoint_url: str | None = None
    # IAM roles of the SIEM that read the trail and pull buckets and the SIEM objects queue.
    siem_reader_arns: tuple[str, ...] = ()
    enable_guardduty: bool = False
    enable_security_hub: bool = False


@dataclass(frozen=True)
class IdentitySettings:
    """Where the human roles' users come from: exactly one federation source, or none."""

    saml_provider_arn: str | None = None
    trusted_principal_arns: tuple[str, ...] = ()
    # The account analyzer is account-wide (one per account and region): off unless asked for.
    enable_access_analyzer: bool = False

    @property
    def federated(self) -> bool:
        """Whether the stack creates the human roles (a federation source is configured)."""
        return bool(self.saml_provider_arn or self.trusted_principal_arns)


@dataclass(frozen=True)
class EdgeSettings:
    """The mutual-TLS edge and its gateway service; present only with a client trust source."""

    # Exactly one of the two trust sources: the validated PEM text, or the Private CA's ARN.
    client_ca_pem: str | None
    private_ca_arn: str | None
    client_crl_pem: str | None
    certificate_arn: str
    internet_facing: bool
    tls_policy: str
    # None: the stack's own repository with image_tag.
    image: str | None
    image_tag: str
    desired_count: int


@dataclass(frozen=True)
class ResearchProject:
    """One research project: which studies it receives and how they are de-identified.

    ``match`` maps DICOM keywords to accepted values (a study matches when every keyword has one of
    its values). Only the shape is checked here: infra never imports pydicom, so the research-copy
    function itself refuses keywords the DICOM dictionary does not know.
    """

    name: str
    match: tuple[tuple[str, tuple[str, ...]], ...]
    options: tuple[str, ...] = ()
    # "<private creator>:0x<element>" entries kept under the retain-safe-private option.
    safe_private: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The project as the function reads it from PACS_RESEARCH_PROJECTS."""
        return {
            "name": self.name,
            "match": {keyword: list(values) for keyword, values in self.match},
            "options": list(self.options),
            "safePrivate": list(self.safe_private),
        }


@dataclass(frozen=True)
class ResearchSettings:
    """The research-copy pipeline: present only with at least one project."""

    projects: tuple[ResearchProject, ...] = ()
    # Keep the pseudonym -> original mapping (encrypted) for the reidentification role.
    linkage: bool = False

    @property
    def enabled(self) -> bool:
        """Whether the stack creates the research-copy function (some project is configured)."""
        return bool(self.projects)

    @property
    def projects_json(self) -> str:
        """PACS_RESEARCH_PROJECTS: the projects as compact JSON (counts against the 4 KB)."""
        return json.dumps([p.as_json() for p in self.projects], separators=(",", ":"))


@dataclass(frozen=True)
class ExportSettings:
    """Sharing in AWS (issue #9): present only with ``exportsEnabled``."""

    enabled: bool = False
    link_minutes: int = DEFAULT_EXPORT_LINK_MINUTES
    expiration_days: int = DEFAULT_EXPORT_EXPIRATION_DAYS
    # The validated PEM text of the signer certificate, packaged with the export function; None:
    # manifests are signed with a one-time key.
    signer_certificate_pem: str | None = None


@dataclass(frozen=True)
class Settings:
    """The validated stack settings every component reads."""

    project: str
    stack: str
    region: str
    environment: str
    dr_region: str
    vpc_cidr: str
    availability_zones: tuple[str, ...]
    allowed_client_cidrs: tuple[str, ...]
    archive_lock: ObjectLock
    archive_transition_days: int
    inbox_expiration_days: int
    quarantine_lock: ObjectLock
    log_retention_days: int
    rpo_minutes: int
    rto_minutes: int
    backup_retention_days: int
    key_admin_arns: tuple[str, ...]
    ingest_max_object_mib: int
    ingest_max_receive_count: int
    ingest_reserved_concurrency: int
    ingest_transfer_syntaxes: tuple[str, ...]
    ingest_sop_classes: tuple[str, ...]
    verify_sample_size: int
    verify_reserved_concurrency: int
    warnings: tuple[str, ...] = field(default=())
    # lambdas/settings.py SIGNATURE_POLICIES; the trust bundle's validated PEM text, or None.
    ingest_signature_policy: str = DEFAULT_SIGNATURE_POLICY
    ingest_signature_trust_pem: str | None = None
    edge: EdgeSettings | None = None
    audit: AuditSettings = AuditSettings()
    identity: IdentitySettings = IdentitySettings()
    research: ResearchSettings = ResearchSettings()
    exports: ExportSettings = ExportSettings()
    # The sandbox: the URL of the local emulator both providers call instead of AWS; None: AWS.
    emulator_endpoint: str | None = None

    @property
    def name_prefix(self) -> str:
        """Prefix of every physical resource name, short enough for S3's 63-character limit."""
        return f"pacs-{self.environment}"

    @property
    def backup_interval_hours(self) -> int:
        """Hours between AWS Backup runs: AWS Backup schedules at most hourly."""
        return min(24, max(1, -(-self.rpo_minutes // 60)))


def _qualified(key: str) -> str:
    return f"{PROJECT}:{key}"


def _int(key: str, raw: object, lo: int, hi: int) -> int:
    allowed = f"must be a whole number from {lo} to {hi}"
    if isinstance(raw, bool):
        raise ConfigError(_qualified(key), raw, allowed)
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(_qualified(key), raw, allowed) from None
    if not lo <= value <= hi:
        raise ConfigError(_qualified(key), raw, allowed)
    return value


def _str_list(key: str, raw: object) -> list[str]:
    value = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw) if raw.strip() else []
        except json.JSONDecodeError:
            raise ConfigError(_qualified(key), raw, "must be a list of strings") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(_qualified(key), raw, "must be a list of strings")
    return value


def _region(key: str, raw: object) -> str:
    value = str(raw).strip()
    if not _REGION_RE.match(value):
        raise ConfigError(key, raw, "must be an AWS region name such as us-east-1")
    return value


def _private_cidr(key: str, raw: object) -> str:
    allowed = "must be a private (RFC 1918) IPv4 CIDR with a prefix length from /16 to /22"
    try:
        net = ipaddress.ip_network(str(raw).strip(), strict=True)
    except ValueError:
        raise ConfigError(_qualified(key), raw, allowed) from None
    private = [ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
    if (
        not isinstance(net, ipaddress.IPv4Network)
        or not 16 <= net.prefixlen <= 22
        or not any(net.subnet_of(p) for p in private)
    ):
        raise ConfigError(_qualified(key), raw, allowed)
    return str(net)


def _client_cidrs(key: str, raw: object) -> tuple[str, ...]:
    allowed = "must be a list of IPv4 CIDRs with a prefix length of /8 or longer (never 0.0.0.0/0)"
    result: list[str] = []
    for item in _str_list(key, raw):
        try:
            net = ipaddress.ip_network(item.strip(), strict=True)
        except ValueError:
            raise ConfigError(_qualified(key), item, allowed) from None
        if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen < 8:
            raise ConfigError(_qualified(key), item, allowed)
        result.append(str(net))
    if len(set(result)) != len(result):
        raise ConfigError(_qualified(key), raw, "must not repeat a CIDR")
    return tuple(result)


def _zones(key: str, raw: object, region: str) -> tuple[str, ...]:
    zones = _str_list(key, raw)
    if not zones:
        return ()
    allowed = f"must be 2 or 3 distinct zone names of {region} (e.g. {region}a, {region}b)"
    zone_re = re.compile(rf"^{re.escape(region)}[a-z]$")
    if not 2 <= len(zones) <= 3 or len(set(zones)) != len(zones):
        raise ConfigError(_qualified(key), raw, allowed)
    for zone in zones:
        if not zone_re.match(zone):
            raise ConfigError(_qualified(key), zone, allowed)
    return tuple(zones)


def _uids(key: str, raw: object) -> tuple[str, ...]:
    allowed = (
        f"must be a list of distinct DICOM UIDs (digits and dots, no leading zeros, at most "
        f"{UID_MAX_LENGTH} characters); empty takes the function's built-in list"
    )
    uids = [u.strip() for u in _str_list(key, raw)]
    for uid in uids:
        if len(uid) > UID_MAX_LENGTH or not _UID_RE.fullmatch(uid):
            raise ConfigError(_qualified(key), uid, allowed)
    if len(set(uids)) != len(uids):
        raise ConfigError(_qualified(key), raw, allowed)
    return tuple(uids)


def _choice(key: str, raw: object, choices: tuple[str, ...]) -> str:
    value = str(raw).strip()
    if value not in choices:
        raise ConfigError(_qualified(key), raw, "must be one of " + ", ".join(choices))
    return value


def _bool(key: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(_qualified(key), raw, "must be true or false")
    return value == "true"


def _project_file(key: str, raw: object, root: Path) -> bytes:
    path = Path(str(raw).strip())
    full = path if path.is_absolute() else root / path
    allowed = f"must name a readable PEM file (relative to the project, {root})"
    try:
        data = full.read_bytes()
    except OSError:
        raise ConfigError(_qualified(key), raw, allowed) from None
    if len(data) > EDGE_PEM_MAX_BYTES:
        raise ConfigError(
            _qualified(key),
            raw,
            f"must be at most {EDGE_PEM_MAX_BYTES} bytes (the task definition carries it), "
            f"not {len(data)}",
        )
    if b"PRIVATE KEY" in data:
        raise ConfigError(
            _qualified(key),
            raw,
            "must hold certificates only: it contains a private key, which must never be "
            "committed or uploaded; remove it and keep the key with the CA",
        )
    return data


def _pem_file(
    key: str, raw: object, root: Path, allowed: str, load: Callable[[bytes], _Loaded]
) -> tuple[str, _Loaded]:
    """The file's text and what ``load`` makes of it; a ConfigError naming ``allowed`` if not."""
    data = _project_file(key, raw, root)
    try:
        return data.decode("ascii"), load(data)
    except ValueError:  # UnicodeDecodeError included
        raise ConfigError(_qualified(key), raw, allowed) from None


def _ca_bundle(key: str, raw: object, root: Path, now: datetime.datetime) -> str:
    allowed = "must be a PEM file of one or more CA certificates (BEGIN CERTIFICATE blocks)"
    text, certificates = _pem_file(key, raw, root, allowed, x509.load_pem_x509_certificates)
    for certificate in certificates:
        subject = certificate.subject.rfc4514_string()
        try:
            constraints = certificate.extensions.get_extension_for_oid(
                ExtensionOID.BASIC_CONSTRAINTS
            ).value
        except x509.ExtensionNotFound:
            constraints = None
        if not isinstance(constraints, x509.BasicConstraints) or not constraints.ca:
            raise ConfigError(
                _qualified(key), raw, f"{allowed}; {subject!r} is not a CA (basicConstraints)"
            )
        if certificate.not_valid_after_utc <= now:
            raise ConfigError(_qualified(key), raw, f"{allowed}; {subject!r} has expired")
    return text


def _crl(
    key: str,
    raw: object,
    root: Path,
    ca_pem: str | None,
    now: datetime.datetime,
    warnings: list[str],
) -> str:
    allowed = "must be a PEM certificate revocation list (BEGIN X509 CRL) of the client CA"
    text, crl = _pem_file(key, raw, root, allowed, x509.load_pem_x509_crl)
    next_update = crl.next_update_utc
    if next_update is not None and next_update <= now:
        raise ConfigError(
            _qualified(key),
            raw,
            f"{allowed}, not past its next update ({next_update:%Y-%m-%d %H:%M} UTC): publish a "
            "new one (pacs-kit pki crl, or your CA's)",
        )
    if next_update is not None and next_update - now < CRL_RENEWAL_WARNING:
        warnings.append(
            f"{_qualified(key)} reaches its next update on {next_update:%Y-%m-%d %H:%M} UTC: "
            "publish a new CRL and deploy it before then (the gateway keeps revoking what an "
            "old CRL lists; the ALB's trust store follows AWS's CRL handling)"
        )
    if ca_pem is not None:
        issuers = [
            c
            for c in x509.load_pem_x509_certificates(ca_pem.encode("ascii"))
            if c.subject == crl.issuer
        ]
        if not any(crl.is_signature_valid(c.public_key()) for c in issuers):  # type: ignore[arg-type]
            raise ConfigError(
                _qualified(key),
                raw,
                f"{allowed}: its issuer {crl.issuer.rfc4514_string()!r} is not a CA of "
                "edgeClientCaBundle (or did not sign it)",
            )
    return text


def _arn_in_region(key: str, raw: object, pattern: re.Pattern[str], what: str, region: str) -> str:
    value = str(raw).strip()
    match = pattern.match(value)
    if not match:
        raise ConfigError(_qualified(key), raw, f"must be the ARN of {what}")
    if match.group(1) != region:
        raise ConfigError(
            _qualified(key), raw, f"must be {what} in aws:region ({region}), where the edge runs"
        )
    return value


def _gateway_image(key: str, raw: object, region: str) -> str | None:
    value = str(raw).strip()
    if not value:
        return None
    match = _ECR_IMAGE_RE.match(value)
    allowed = (
        "must be an ECR image URI with an immutable tag or a digest "
        "(<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> or @sha256:<digest>)"
    )
    if not match:
        raise ConfigError(_qualified(key), raw, allowed)
    if match.group(1) != region:
        raise ConfigError(
            _qualified(key),
            raw,
            f"must be in aws:region ({region}): the app tier reaches ECR only through the "
            "region's VPC endpoints",
        )
    if match.group(2) == "latest":
        raise ConfigError(_qualified(key), raw, f"{allowed}, not latest")
    return value


def _image_tag(key: str, raw: object) -> str:
    value = str(raw).strip()
    if not _IMAGE_TAG_RE.match(value) or value == "latest":
        raise ConfigError(
            _qualified(key),
            raw,
            "must be an ECR image tag (1-128 of letters, digits, '_', '.', '-') other than latest: "
            "the repository's tags are immutable and each deployment names its image",
        )
    return value


def _emulator_endpoint(key: str, raw: object, warnings: list[str]) -> str | None:
    value = str(raw).strip()
    if not value:
        return None
    match = _EMULATOR_URL_RE.fullmatch(value)
    host = match.group("host").lower() if match else ""
    port = int(match.group("port")) if match and match.group("port") else None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not match or not loopback or (port is not None and not 1 <= port <= 65535):
        raise ConfigError(
            _qualified(key),
            raw,
            "must be empty (deploy to AWS) or the http:// or https:// URL of a local AWS emulator "
            "on a loopback host, 127.0.0.1 (127.0.0.0/8), [::1] or localhost, with an optional "
            "port and no path (e.g. http://127.0.0.1:5000): the providers send every API call, "
            "with the deployer's credentials and the stack's data, to this host",
        )
    url = f"{match.group('scheme').lower()}://{host}" + (f":{port}" if port is not None else "")
    warnings.append(
        f"{_qualified(key)} is {url}: both AWS providers send every API call to the emulator "
        "there instead of AWS, without validating credentials; the stack deploys into that "
        "emulator (the sandbox), not into AWS. Leave emulatorEndpoint empty for any real "
        "deployment"
    )
    return url


def _signature_settings(
    get: Callable[[str], object], root: Path, warnings: list[str]
) -> tuple[str, str | None]:
    """ingestSignaturePolicy and ingestSignatureTrustBundle (its validated PEM text, or None)."""
    policy = _choice("ingestSignaturePolicy", get("ingestSignaturePolicy"), SIGNATURE_POLICIES)
    bundle_raw = str(get("ingestSignatureTrustBundle")).strip()
    now = datetime.datetime.now(datetime.UTC)
    trust = _ca_bundle("ingestSignatureTrustBundle", bundle_raw, root, now) if bundle_raw else None
    if policy == "require-valid" and trust is None:
        raise ConfigError(
            _qualified("ingestSignaturePolicy"),
            policy,
            "require-valid needs ingestSignatureTrustBundle (the CAs signers chain to): without "
            "trust anchors no signature is valid and every object would be quarantined; set the "
            "bundle, or use reject-invalid or record",
        )
    if policy == "record":
        warnings.append(
            "cloud-pacs:ingestSignaturePolicy is record: objects whose DICOM digital signature no "
            "longer matches their data (tampered after signing) are archived, with the verdict "
            "only logged; use reject-invalid (the default) to quarantine them"
        )
    return policy, trust


def _signer_certificate(key: str, raw: object, root: Path, now: datetime.datetime) -> str:
    allowed = (
        "must be a PEM file of exactly one certificate (BEGIN CERTIFICATE) issued for the stack's "
        "signing KMS key (pacs-kit pki csr --kms-key-id ..., then pki sign-csr)"
    )
    text, certificates = _pem_file(key, raw, root, allowed, x509.load_pem_x509_certificates)
    if len(certificates) != 1:
        raise ConfigError(_qualified(key), raw, f"{allowed}; it holds {len(certificates)}")
    certificate = certificates[0]
    subject = certificate.subject.rfc4514_string()
    if certificate.not_valid_after_utc <= now:
        raise ConfigError(_qualified(key), raw, f"{allowed}; {subject!r} has expired")
    return text


def _exports(get: Callable[[str], object], root: Path, warnings: list[str]) -> ExportSettings:
    """exportsEnabled and its three settings (validated whether or not exports are on)."""
    enabled = _bool("exportsEnabled", get("exportsEnabled"))
    minutes = _int("exportLinkMinutes", get("exportLinkMinutes"), 1, EXPORT_LINK_MINUTES_MAX)
    days = _int("exportExpirationDays", get("exportExpirationDays"), 1, EXPORT_EXPIRATION_DAYS_MAX)
    raw = str(get("exportSignerCertificate")).strip()
    now = datetime.datetime.now(datetime.UTC)
    certificate = _signer_certificate("exportSignerCertificate", raw, root, now) if raw else None
    if enabled:
        warnings.append(
            "cloud-pacs:exportsEnabled is true: exports on: a public HTTPS endpoint (the one-time "
            "link function URL) exists; anyone holding an unused, unexpired link downloads its "
            "encrypted package"
        )
        if certificate is None:
            warnings.append(
                "cloud-pacs:exportSignerCertificate is empty: export manifests are signed with a "
                "one-time key (integrity only, no signer identity); issue a certificate for the "
                "signing KMS key (pacs-kit pki csr / sign-csr) and set it"
            )
    return ExportSettings(
        enabled=enabled,
        link_minutes=minutes,
        expiration_days=days,
        signer_certificate_pem=certificate,
    )


def _edge(
    get: Callable[[str], object],
    provided: Mapping[str, object],
    *,
    region: str,
    client_cidrs: tuple[str, ...],
    root: Path,
    warnings: list[str],
) -> EdgeSettings | None:
    bundle_raw = str(get("edgeClientCaBundle")).strip()
    private_ca_raw = str(get("edgePrivateCaArn")).strip()
    if bundle_raw and private_ca_raw:
        raise ConfigError(
            _qualified("edgePrivateCaArn"),
            private_ca_raw,
            "must be empty when edgeClientCaBundle is set: the edge trusts exactly one client CA "
            "source",
        )
    if not bundle_raw and not private_ca_raw:
        for key in EDGE_ONLY_KEYS:
            value = provided.get(key)
            if value is not None and str(value).strip().lower() != str(DEFAULTS[key]).lower():
                raise ConfigError(
                    _qualified(key),
                    value,
                    "takes effect only with an edge: set edgeClientCaBundle or edgePrivateCaArn "
                    "(the client trust source) too, or leave it unset",
                )
        return None

    now = datetime.datetime.now(datetime.UTC)
    ca_pem = _ca_bundle("edgeClientCaBundle", bundle_raw, root, now) if bundle_raw else None
    private_ca = (
        _arn_in_region(
            "edgePrivateCaArn", private_ca_raw, _PRIVATE_CA_RE, "an ACM Private CA", region
        )
        if private_ca_raw
        else None
    )
    crl_raw = str(get("edgeClientCrl")).strip()
    crl = _crl("edgeClientCrl", crl_raw, root, ca_pem, now, warnings) if crl_raw else None
    certificate_raw = str(get("edgeCertificateArn")).strip()
    if not certificate_raw:
        raise ConfigError(
            _qualified("edgeCertificateArn"),
            certificate_raw,
            "is required with an edge: the ARN of the ACM certificate the HTTPS listener presents",
        )
    certificate = _arn_in_region(
        "edgeCertificateArn", certificate_raw, _ACM_CERTIFICATE_RE, "an ACM certificate", region
    )
    internet_facing = _bool("edgeInternetFacing", get("edgeInternetFacing"))
    if internet_facing:
        warnings.append(
            "cloud-pacs:edgeInternetFacing is true: the edge load balancers get public addresses "
            "and face the internet (only allowedClientCidrs and mutual TLS stand in the way); the "
            "kit's VPC has no internet gateway, so AWS refuses them until one is added outside "
            "this stack. Prefer private connectivity (VPN, Direct Connect, Transit Gateway)"
        )
    if not client_cidrs:
        warnings.append(
            "cloud-pacs:allowedClientCidrs is empty: the edge load balancers admit no client "
            "network, so nobody can connect; list the modality and partner networks"
        )
    return EdgeSettings(
        client_ca_pem=ca_pem,
        private_ca_arn=private_ca,
        client_crl_pem=crl,
        certificate_arn=certificate,
        internet_facing=internet_facing,
        tls_policy=_choice("edgeTlsPolicy", get("edgeTlsPolicy"), EDGE_TLS_POLICIES),
        image=_gateway_image("gatewayImage", get("gatewayImage"), region),
        image_tag=_image_tag("gatewayImageTag", get("gatewayImageTag")),
        desired_count=_int("gatewayDesiredCount", get("gatewayDesiredCount"), 1, 20),
    )


def _audit(get: Callable[[str], object]) -> AuditSettings:
    destination = _choice("siemDestination", get("siemDestination"), SIEM_DESTINATIONS)
    url = str(get("siemEndpointUrl")).strip()
    if destination == "s3" and url:
        raise ConfigError(
            _qualified("siemEndpointUrl"),
            url,
            "must be empty when siemDestination is s3 (the SIEM pulls from the stack's bucket); "
            "set siemDestination to http or splunk to push to this URL",
        )
    if destination != "s3" and (not _SIEM_URL_RE.match(url) or len(url) > SIEM_URL_MAX_LENGTH):
        raise ConfigError(
            _qualified("siemEndpointUrl"),
            url,
            f"is required with siemDestination {destination}: an https:// URL of at most "
            f"{SIEM_URL_MAX_LENGTH} characters (Firehose delivers over HTTPS only)",
        )
    readers = [a.strip() for a in _str_list("siemReaderArns", get("siemReaderArns"))]
    for arn in readers:
        # Roles only: a key, bucket or queue policy granting a whole account or a long-lived user
        # key is broader than "the SIEM's reader".
        if not _IAM_ROLE_ARN_RE.match(arn):
            raise ConfigError(
                _qualified("siemReaderArns"),
                arn,
                "must be IAM role ARNs (arn:aws:iam::123456789012:role/Name)",
            )
    if len(set(readers)) != len(readers):
        raise ConfigError(_qualified("siemReaderArns"), readers, "must not repeat a role")
    return AuditSettings(
        siem_destination=destination,  # type: ignore[arg-type]
        siem_endpoint_url=url or None,
        siem_reader_arns=tuple(sorted(readers)),
        enable_guardduty=_bool("enableGuardDuty", get("enableGuardDuty")),
        enable_security_hub=_bool("enableSecurityHub", get("enableSecurityHub")),
    )


def _identity(get: Callable[[str], object], warnings: list[str]) -> IdentitySettings:
    key = "identityTrustedPrincipalArns"
    saml = str(get("identitySamlProviderArn")).strip()
    principals = [a.strip() for a in _str_list(key, get(key))]
    if saml and principals:
        raise ConfigError(
            _qualified(key),
            get(key),
            "must be empty when identitySamlProviderArn is set: the human roles trust exactly "
            "one federation source",
        )
    if saml and not _SAML_PROVIDER_RE.match(saml):
        raise ConfigError(
            _qualified("identitySamlProviderArn"),
            saml,
            "must be the ARN of an IAM SAML provider "
            "(arn:aws:iam::123456789012:saml-provider/Name)",
        )
    for arn in principals:
        kind = trusted_principal_kind(arn)
        if kind is None:
            # Plain roles included: a role's session proves MFA only when an IAM user assumed it
            # with an MFA code (see infra/iam_documents.TrustedPrincipalKind).
            raise ConfigError(
                _qualified(key),
                arn,
                "must be IAM user ARNs, account-root ARNs (arn:aws:iam::123456789012:root; MFA "
                "required) or IAM Identity Center permission-set roles (arn:aws:iam::"
                "123456789012:role/aws-reserved/sso.amazonaws.com/[region/]AWSReservedSSO_Set_"
                "0123456789abcdef; MFA enforced by Identity Center). Other roles cannot prove "
                "MFA: name the IAM users who assume them, or use identitySamlProviderArn",
            )
        if kind == "account-root":
            warnings.append(
                f"cloud-pacs:{key} names {arn}: every IAM user or role session of that account "
                "whose own policies allow it, and that used MFA within the hour, may assume the "
                "human roles; name the IAM users or Identity Center permission-set roles instead "
                "to narrow it"
            )
    if len(set(principals)) != len(principals):
        raise ConfigError(_qualified(key), principals, "must not repeat a principal")
    if principals:
        trust = human_trust_policy(trusted_principal_arns=principals)
        if minified_length(trust) > TRUST_POLICY_MAX_CHARS:
            raise ConfigError(
                _qualified(key),
                principals,
                f"must fit the human roles' trust policy in IAM's default quota of "
                f"{TRUST_POLICY_MAX_CHARS} characters (it would take {minified_length(trust)}): "
                "name fewer principals, e.g. one permission set per duty group",
            )
    # Neither: no human roles (people reach the account through roles managed elsewhere); the
    # permissions boundary exists regardless.
    return IdentitySettings(
        saml_provider_arn=saml or None,
        trusted_principal_arns=tuple(sorted(principals)),
        enable_access_analyzer=_bool("enableAccessAnalyzer", get("enableAccessAnalyzer")),
    )


def _research_project(key: str, index: int, raw: object) -> ResearchProject:
    where = f"project {index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(
            _qualified(key),
            raw,
            f"{where} must be an object with name, match and optionally options and safePrivate",
        )
    unknown = sorted(set(raw) - _PROJECT_FIELDS)
    if unknown:
        raise ConfigError(
            _qualified(key),
            raw,
            f"{where} has unknown field {unknown[0]!r}; allowed: "
            + ", ".join(sorted(_PROJECT_FIELDS)),
        )
    name = raw.get("name")
    if not isinstance(name, str) or not _PROJECT_NAME_RE.match(name):
        raise ConfigError(
            _qualified(key),
            name,
            f"{where}: name must be 2-32 characters of lowercase letters, digits and hyphens "
            "(it becomes the derived/<project>/ prefix)",
        )
    match = raw.get("match")
    if not isinstance(match, dict) or not match:
        raise ConfigError(
            _qualified(key),
            match,
            f"project {name}: match must be a non-empty object of DICOM keyword -> list of values "
            '(e.g. {"StudyDescription": ["CT CHEST"]}); a rule matching every study is refused',
        )
    rules: list[tuple[str, tuple[str, ...]]] = []
    for keyword, values in match.items():
        if not isinstance(keyword, str) or not _DICOM_KEYWORD_RE.match(keyword):
            raise ConfigError(
                _qualified(key),
                keyword,
                f"project {name}: match keys must be DICOM keywords (letters and digits, e.g. "
                "InstitutionName); the function refuses keywords the DICOM dictionary lacks",
            )
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v.strip() for v in values)
        ):
            raise ConfigError(
                _qualified(key),
                values,
                f"project {name}: match.{keyword} must be a non-empty list of non-empty strings",
            )
        rules.append((keyword, tuple(values)))
    options = raw.get("options", [])
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ConfigError(
            _qualified(key), options, f"project {name}: options must be a list of option names"
        )
    for option in options:
        if option not in DEID_OPTIONS:
            raise ConfigError(
                _qualified(key),
                option,
                f"project {name}: options must be among " + ", ".join(DEID_OPTIONS),
            )
    if len(set(options)) != len(options):
        raise ConfigError(_qualified(key), options, f"project {name}: options must not repeat")
    if set(EXCLUSIVE_DEID_OPTIONS) <= set(options):
        raise ConfigError(
            _qualified(key),
            options,
            f"project {name}: {' and '.join(EXCLUSIVE_DEID_OPTIONS)} exclude each other "
            "(PS3.15 E.3.6): choose one",
        )
    safe_private = raw.get("safePrivate", [])
    if not isinstance(safe_private, list) or not all(
        isinstance(e, str) and _SAFE_PRIVATE_RE.match(e) for e in safe_private
    ):
        raise ConfigError(
            _qualified(key),
            safe_private,
            f"project {name}: safePrivate must be a list of '<private creator>:0x<element>' "
            "entries (e.g. 'SIEMENS CT VA0  COAD:0x10')",
        )
    if safe_private and "retain-safe-private" not in options:
        raise ConfigError(
            _qualified(key),
            safe_private,
            f"project {name}: safePrivate takes effect only with the retain-safe-private option: "
            "add it to options, or leave safePrivate empty",
        )
    if len(set(safe_private)) != len(safe_private):
        raise ConfigError(
            _qualified(key), safe_private, f"project {name}: safePrivate must not repeat"
        )
    return ResearchProject(
        name=name, match=tuple(rules), options=tuple(options), safe_private=tuple(safe_private)
    )


def _research(get: Callable[[str], object], identity: IdentitySettings) -> ResearchSettings:
    key = "researchProjects"
    raw = get(key)
    value = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw) if raw.strip() else []
        except json.JSONDecodeError:
            raise ConfigError(_qualified(key), raw, "must be a list of project objects") from None
    if not isinstance(value, list):
        raise ConfigError(_qualified(key), raw, "must be a list of project objects")
    projects = tuple(_research_project(key, i, p) for i, p in enumerate(value))
    names = [p.name for p in projects]
    if len(set(names)) != len(names):
        raise ConfigError(_qualified(key), names, "project names must be unique")
    settings = ResearchSettings(projects=projects)
    size = len(settings.projects_json.encode())
    if size > RESEARCH_PROJECTS_MAX_BYTES:
        raise ConfigError(
            _qualified(key),
            names,
            f"must fit in {RESEARCH_PROJECTS_MAX_BYTES} bytes of compact JSON in the function's "
            f"environment (Lambda allows 4 KB in all), not {size}: fewer projects or values",
        )
    linkage = _bool("researchLinkage", get("researchLinkage"))
    if linkage and not projects:
        raise ConfigError(
            _qualified("researchLinkage"),
            get("researchLinkage"),
            "takes effect only with researchProjects: configure a project, or leave it false",
        )
    if linkage and not identity.federated:
        raise ConfigError(
            _qualified("researchLinkage"),
            get("researchLinkage"),
            "needs a federation source (identitySamlProviderArn or identityTrustedPrincipalArns): "
            "only the reidentification role, a human role, may read the mapping",
        )
    return ResearchSettings(projects=projects, linkage=linkage)


def parse_settings(
    raw: Mapping[str, object],
    *,
    region: object,
    stack: str,
    project: str = PROJECT,
    project_root: Path = REPO,
) -> Settings:
    """Validate raw config values (strings as Pulumi passes them, or YAML values) into Settings.

    ``raw`` holds the project-namespace keys without their ``cloud-pacs:`` prefix; missing keys take
    their defaults. Unknown keys are refused so that a typo never silently falls back to a default.
    Files the config names (the edge's CA bundle and CRL) are read relative to ``project_root``.
    """
    unknown = sorted(set(raw) - KEY_NAMES)
    if unknown:
        raise ConfigError(
            _qualified(unknown[0]),
            raw[unknown[0]],
            "unknown key; known keys: " + ", ".join(sorted(KEY_NAMES)),
        )

    def get(key: str) -> object:
        value = raw.get(key)
        return DEFAULTS[key] if value is None else value

    if region is None or str(region).strip() == "":
        raise ConfigError(
            "aws:region", region, "is required: the primary AWS region, e.g. us-east-1"
        )
    primary = _region("aws:region", region)
    dr_region = _region(_qualified("drRegion"), get("drRegion"))
    if dr_region == primary:
        raise ConfigError(
            _qualified("drRegion"), dr_region, f"must differ from aws:region ({primary})"
        )

    environment = str(get("environment")).strip()
    if not _ENVIRONMENT_RE.match(environment):
        raise ConfigError(
            _qualified("environment"),
            get("environment"),
            "must be 2-16 characters of lowercase letters, digits and inner hyphens, "
            "starting with a letter",
        )

    warnings: list[str] = []
    mode = _choice("archiveRetentionMode", get("archiveRetentionMode"), RETENTION_MODES)
    if mode == "GOVERNANCE":
        warnings.append(
            "cloud-pacs:archiveRetentionMode is GOVERNANCE: whoever may change the archive's "
            "bucket policy and holds s3:BypassGovernanceRetention can shorten or remove the "
            "retention of archived studies; use COMPLIANCE for production archives"
        )
    archive_days = _int("archiveRetentionDays", get("archiveRetentionDays"), 1, 36500)

    log_days_raw = get("logRetentionDays")
    try:
        log_days = int(str(log_days_raw).strip())
    except ValueError:
        log_days = -1
    if log_days not in LOG_RETENTION_DAYS:
        raise ConfigError(
            _qualified("logRetentionDays"),
            log_days_raw,
            "must be a retention CloudWatch Logs accepts: "
            + ", ".join(str(d) for d in LOG_RETENTION_DAYS),
        )
    if log_days < HIPAA_RETENTION_DAYS:
        warnings.append(
            f"cloud-pacs:logRetentionDays is {log_days}: HIPAA (45 CFR 164.316(b)(2)) expects "
            f"audit records to be kept six years ({HIPAA_RETENTION_DAYS} days)"
        )

    rpo = _int("rpoMinutes", get("rpoMinutes"), RTC_SLA_MINUTES, 1440)
    rto = _int("rtoMinutes", get("rtoMinutes"), 15, 10080)

    admin_arns = tuple(_str_list("keyAdminArns", get("keyAdminArns")))
    for arn in admin_arns:
        if not _ROLE_ARN_RE.match(arn):
            raise ConfigError(
                _qualified("keyAdminArns"),
                arn,
                "must be IAM role, user or account-root ARNs (arn:aws:iam::123456789012:role/Name)",
            )

    transfer_syntaxes = _uids("ingestTransferSyntaxes", get("ingestTransferSyntaxes"))
    sop_classes = _uids("ingestSopClasses", get("ingestSopClasses"))
    # Both lists travel comma-separated in the function's environment (4 KB in all).
    env_bytes = len(",".join(transfer_syntaxes)) + len(",".join(sop_classes))
    if env_bytes > UID_LISTS_MAX_BYTES:
        raise ConfigError(
            _qualified("ingestSopClasses"),
            get("ingestSopClasses"),
            f"together with ingestTransferSyntaxes must fit in {UID_LISTS_MAX_BYTES} bytes of the "
            f"function's environment (Lambda allows 4 KB), not {env_bytes}; leave it empty to "
            "take the function's built-in list",
        )

    signature_policy, signature_trust = _signature_settings(get, project_root, warnings)

    client_cidrs = _client_cidrs("allowedClientCidrs", get("allowedClientCidrs"))
    edge = _edge(
        get,
        raw,
        region=primary,
        client_cidrs=client_cidrs,
        root=project_root,
        warnings=warnings,
    )

    # Before Settings: they may add warnings.
    identity = _identity(get, warnings)
    emulator = _emulator_endpoint("emulatorEndpoint", get("emulatorEndpoint"), warnings)
    exports = _exports(get, project_root, warnings)
    return Settings(
        project=project,
        stack=stack,
        region=primary,
        environment=environment,
        dr_region=dr_region,
        vpc_cidr=_private_cidr("vpcCidr", get("vpcCidr")),
        availability_zones=_zones("availabilityZones", get("availabilityZones"), primary),
        allowed_client_cidrs=client_cidrs,
        archive_lock=ObjectLock(mode=mode, days=archive_days),  # type: ignore[arg-type]
        archive_transition_days=_int(
            "archiveTransitionDays", get("archiveTransitionDays"), 1, 3650
        ),
        inbox_expiration_days=_int("inboxExpirationDays", get("inboxExpirationDays"), 7, 3650),
        quarantine_lock=ObjectLock(
            mode="GOVERNANCE",
            days=_int("quarantineRetentionDays", get("quarantineRetentionDays"), 1, 36500),
        ),
        log_retention_days=log_days,
        rpo_minutes=rpo,
        rto_minutes=rto,
        backup_retention_days=_int("backupRetentionDays", get("backupRetentionDays"), 7, 36500),
        key_admin_arns=admin_arns,
        ingest_max_object_mib=_int(
            "ingestMaxObjectMiB", get("ingestMaxObjectMiB"), 1, MAX_OBJECT_MIB
        ),
        ingest_max_receive_count=_int("ingestMaxReceiveCount", get("ingestMaxReceiveCount"), 1, 20),
        # SQS event sources scale from 2 to 1000 concurrent invocations.
        ingest_reserved_concurrency=_int(
            "ingestReservedConcurrency", get("ingestReservedConcurrency"), 2, 1000
        ),
        ingest_transfer_syntaxes=transfer_syntaxes,
        ingest_sop_classes=sop_classes,
        verify_sample_size=_int("verifySampleSize", get("verifySampleSize"), 1, 10000),
        verify_reserved_concurrency=_int(
            "verifyReservedConcurrency", get("verifyReservedConcurrency"), 1, 10
        ),
        warnings=tuple(warnings),
        ingest_signature_policy=signature_policy,
        ingest_signature_trust_pem=signature_trust,
        edge=edge,
        audit=_audit(get),
        identity=identity,
        research=_research(get, identity),
        exports=exports,
        emulator_endpoint=emulator,
    )


def load_settings(
    get_config: Callable[[str], object] | None = None,
    present_keys: Callable[[], set[str]] | None = None,
) -> Settings:
    """Build Settings from the running Pulumi program's config (no resources are declared)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    lookup = get_config or runtime_config.get_config
    keys = (
        present_keys()
        if present_keys
        else set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    )
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix) :]: lookup(k) for k in keys if k.startswith(prefix)}
    return parse_settings(
        raw,
        region=lookup("aws:region"),
        stack=pulumi.get_stack(),
        project=pulumi.get_project(),
    )
