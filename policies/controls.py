"""What the pack enforces, in a reviewer's terms: seed practices and HIPAA safeguards.

Every policy names one :class:`Practice` (what the kit promises hospitals) and one
:class:`Safeguard` (the paragraph of 45 CFR Part 164 Subpart C it implements). The control matrix
(``pacs-kit controls``, ``docs/controls.md``) is generated from these two tables and the policies.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Safeguard:
    """One paragraph of the HIPAA Security Rule (45 CFR Part 164 Subpart C)."""

    ref: str  # "164.312(a)(2)(iv)"
    title: str
    kind: str  # administrative / physical / technical / documentation

    @property
    def citation(self) -> str:
        return f"45 CFR {self.ref}"


@dataclass(frozen=True)
class Practice:
    """A seed practice of the kit: what a hospital's PACS must do, in one sentence."""

    id: str
    title: str
    statement: str


def _safeguard(ref: str, title: str, kind: str) -> Safeguard:
    return Safeguard(ref=ref, title=title, kind=kind)


# Administrative safeguards (164.308)
RISK_MANAGEMENT = _safeguard("164.308(a)(1)(ii)(B)", "Risk management", "administrative")
ACTIVITY_REVIEW = _safeguard(
    "164.308(a)(1)(ii)(D)", "Information system activity review", "administrative"
)
ACCESS_AUTHORIZATION = _safeguard(
    "164.308(a)(4)(ii)(B)", "Access authorization (information access management)", "administrative"
)
LOGIN_MONITORING = _safeguard("164.308(a)(5)(ii)(C)", "Log-in monitoring", "administrative")
PASSWORD_MANAGEMENT = _safeguard("164.308(a)(5)(ii)(D)", "Password management", "administrative")
INCIDENT_RESPONSE = _safeguard(
    "164.308(a)(6)(ii)", "Security incident response and reporting", "administrative"
)
DATA_BACKUP_PLAN = _safeguard("164.308(a)(7)(ii)(A)", "Data backup plan", "administrative")
DISASTER_RECOVERY = _safeguard("164.308(a)(7)(ii)(B)", "Disaster recovery plan", "administrative")
EMERGENCY_MODE = _safeguard(
    "164.308(a)(7)(ii)(C)", "Emergency mode operation plan", "administrative"
)
# Physical safeguards (164.310)
MEDIA_DISPOSAL = _safeguard("164.310(d)(2)(i)", "Disposal (device and media controls)", "physical")
MEDIA_BACKUP = _safeguard("164.310(d)(2)(iv)", "Data backup and storage", "physical")
# Technical safeguards (164.312)
ACCESS_CONTROL = _safeguard("164.312(a)(1)", "Access control", "technical")
EMERGENCY_ACCESS = _safeguard("164.312(a)(2)(ii)", "Emergency access procedure", "technical")
AUTOMATIC_LOGOFF = _safeguard("164.312(a)(2)(iii)", "Automatic logoff", "technical")
ENCRYPTION_AT_REST = _safeguard("164.312(a)(2)(iv)", "Encryption and decryption", "technical")
AUDIT_CONTROLS = _safeguard("164.312(b)", "Audit controls", "technical")
INTEGRITY = _safeguard("164.312(c)(1)", "Integrity", "technical")
INTEGRITY_MECHANISM = _safeguard(
    "164.312(c)(2)", "Mechanism to authenticate electronic PHI", "technical"
)
PERSON_AUTHENTICATION = _safeguard("164.312(d)", "Person or entity authentication", "technical")
TRANSMISSION_SECURITY = _safeguard("164.312(e)(1)", "Transmission security", "technical")
TRANSMISSION_ENCRYPTION = _safeguard(
    "164.312(e)(2)(ii)", "Encryption (in transmission)", "technical"
)
# Six years, leap days included: the period 164.316(b)(2)(i) keeps the Security Rule's documentation
# (activity reviews among it); the pack's floor for audit logs and archived images alike.
SIX_YEARS_DAYS = 2192

# Policies, procedures and documentation (164.316)
DOCUMENTATION_RETENTION = _safeguard(
    "164.316(b)(2)(i)", "Time limit: retain documentation six years", "documentation"
)


ENCRYPT_WITH_CUSTOMER_KEYS = Practice(
    "encrypt-with-customer-keys",
    "PHI encrypted at rest with customer-managed keys",
    "Every store of images, queues, tables, logs and secrets is encrypted with a KMS key the "
    "customer controls, rotated yearly, whose policy names every principal.",
)
MUTUAL_TLS_ONLY = Practice(
    "mutual-tls-only",
    "Transmitted only over mutually authenticated TLS",
    "Modalities and partners reach the PACS only through TLS 1.3 listeners that verify the "
    "client's certificate; every store refuses requests not made over TLS.",
)
PRIVATE_NETWORK = Practice(
    "private-network",
    "Private network, no path to or from the internet",
    "Workloads run in a private VPC with no internet gateway, no public addresses and no ingress "
    "from anywhere; AWS services are reached through VPC endpoints.",
)
IMMUTABLE_ARCHIVE = Practice(
    "immutable-archive",
    "Archived images are immutable and never lost",
    "The archive is versioned and under S3 Object Lock in compliance mode for the retention "
    "period; nothing of ours can delete it or bypass the lock.",
)
BACKUP_AND_DR = Practice(
    "backup-and-dr",
    "Backed up immutably, recoverable in another region",
    "The archive replicates to another region within 15 minutes, tables keep point-in-time "
    "recovery and hourly backups into a locked vault, copied across regions.",
)
LEAST_PRIVILEGE = Practice(
    "least-privilege",
    "Least privilege for every role",
    "Every role carries the permissions boundary and names exact actions; no wildcard grants, no "
    "long-lived credentials, no administrator policies.",
)
HUMAN_ACCESS = Practice(
    "human-access-mfa",
    "People sign in through federation with MFA, for at most an hour",
    "Human roles are assumed through a federation source that proves MFA, with sessions of at "
    "most one hour.",
)
AUDIT_TO_SIEM = Practice(
    "audit-to-siem",
    "Every access lands in the SIEM",
    "CloudTrail records management and data events of every PHI store in all regions, with "
    "validation; every log group is encrypted, kept six years and shipped to the SIEM stream.",
)
SECURE_COMPUTE = Practice(
    "secure-compute",
    "Functions and containers run private, bounded and without plaintext secrets",
    "Functions run in the VPC with reserved concurrency and failure destinations; containers run "
    "as non-root on read-only file systems from immutable, scanned images; no secret sits in "
    "plaintext configuration.",
)
REVIEWED_INFRASTRUCTURE = Practice(
    "reviewed-infrastructure",
    "Only reviewed infrastructure, inside the stack's account",
    "The stack declares only resource types this pack has reviewed, and refers to no other AWS "
    "account unless the pack is told to trust it.",
)

PRACTICES: tuple[Practice, ...] = (
    ENCRYPT_WITH_CUSTOMER_KEYS,
    MUTUAL_TLS_ONLY,
    PRIVATE_NETWORK,
    IMMUTABLE_ARCHIVE,
    BACKUP_AND_DR,
    LEAST_PRIVILEGE,
    HUMAN_ACCESS,
    AUDIT_TO_SIEM,
    SECURE_COMPUTE,
    REVIEWED_INFRASTRUCTURE,
)
