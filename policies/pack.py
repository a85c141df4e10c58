"""The pack: every policy of every domain, in the order reviewers read them.

Importing this module builds the policy objects only; ``policies/__main__.py`` alone serves them.
"""

from __future__ import annotations

from policies import account, audit, backup, compute, edge, identity, keys, network, storage
from policies.framework import PacsPolicy

PACK_NAME = "cloud-pacs-hipaa"
DOMAINS = {
    "storage": storage.POLICIES,
    "keys": keys.POLICIES,
    "network": network.POLICIES,
    "edge": edge.POLICIES,
    "identity": identity.POLICIES,
    "audit": audit.POLICIES,
    "compute": compute.POLICIES,
    "backup": backup.POLICIES,
    "account": account.POLICIES,
}
POLICIES: tuple[PacsPolicy, ...] = tuple(p for domain in DOMAINS.values() for p in domain)


def domain_of(policy: PacsPolicy) -> str:
    return next(name for name, members in DOMAINS.items() if policy in members)
