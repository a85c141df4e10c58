"""Mutations of the planned stack: each weakens exactly one control of the default stack.

A domain's test module lists its mutations in ``MUTATIONS``; the campaign
(tests/policies/test_campaign.py) applies each to a copy of the ``pacs-kit plan --json`` document of
the default stack and requires the named policy — and so the pack — to refuse it.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


class Snapshot:
    """A mutable copy of a plan document, with edits that fail loudly when their target is gone."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = copy.deepcopy(document)

    @property
    def resources(self) -> list[dict[str, Any]]:
        resources: list[dict[str, Any]] = self.document["resources"]
        return resources

    def entry(self, type_token: str, name: str) -> dict[str, Any]:
        found = [r for r in self.resources if r["type"] == type_token and r["name"] == name]
        assert len(found) == 1, f"mutation target {type_token} {name!r}: found {len(found)}"
        return found[0]

    def props(self, type_token: str, name: str) -> dict[str, Any]:
        props: dict[str, Any] = self.entry(type_token, name)["props"]
        return props

    def remove(self, type_token: str, name: str) -> None:
        self.resources.remove(self.entry(type_token, name))

    def add(self, type_token: str, name: str, props: dict[str, Any]) -> None:
        stack = self.resources[0]["urn"].split("::")[0:2]
        urn = f"{'::'.join(stack)}::{type_token}::{name}"
        self.resources.append({"urn": urn, "type": type_token, "name": name, "props": props})

    @contextmanager
    def policy(self, type_token: str, name: str, prop: str = "policy") -> Iterator[dict[str, Any]]:
        """Edit a JSON policy document property in place: ``with snap.policy(...) as doc:``."""
        props = self.props(type_token, name)
        doc: dict[str, Any] = json.loads(props[prop])
        yield doc
        props[prop] = json.dumps(doc)


@dataclass(frozen=True)
class Mutation:
    """One insecure variant of the stack, and the policy that must catch it."""

    id: str
    policy: str
    description: str
    apply: Callable[[Snapshot], None]


def statement(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    found = [s for s in doc["Statement"] if s.get("Sid") == sid]
    assert found, f"mutation target statement {sid!r} not found"
    result: dict[str, Any] = found[0]
    return result


def drop_statement(doc: dict[str, Any], sid: str) -> None:
    doc["Statement"].remove(statement(doc, sid))


# The domains' test modules, each with its MUTATIONS (they import nothing of the campaign's).
DOMAIN_TESTS = (
    "storage",
    "keys",
    "network",
    "edge",
    "identity",
    "audit",
    "compute",
    "backup",
    "account",
)
# Mutation id -> refused by the pack; filled by the campaign, printed by tests/conftest.py.
SCORE: dict[str, bool] = {}


def all_mutations() -> list[Mutation]:
    """Every domain's MUTATIONS, in domain order."""
    found: list[Mutation] = []
    for domain in DOMAIN_TESTS:
        module = importlib.import_module(f"tests.policies.test_{domain}")
        found.extend(module.MUTATIONS)
    return found
