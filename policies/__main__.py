"""The CrossGuard entry point: `pulumi preview --policy-pack policies` runs this file.

Constructing ``PolicyPack`` starts the analyzer's gRPC server and blocks; nothing else may do it.
"""

import sys
from pathlib import Path

# The Pulumi CLI runs this file by path: keep the repository's packages importable.
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.pack import PACK_NAME, POLICIES

PolicyPack(
    name=PACK_NAME,
    policies=list(POLICIES),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="HIPAA guardrails of cloud-pacs-kit: encryption with customer keys, mutual TLS, "
    "private network, immutable archive, backups, least privilege, audit to the SIEM.",
    provider="aws",
    tags=["hipaa", "aws", "dicom", "pacs"],
)
