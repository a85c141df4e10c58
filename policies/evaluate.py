"""Run the pack's policy objects offline, as the Pulumi engine runs them during a preview.

``pacs-kit check`` and the tests call :func:`evaluate` with a plan snapshot (the
``pacs-kit plan --json`` document). Each resource becomes the same argument objects the policy
analyzer builds from the engine's gRPC request (:class:`pulumi_policy.ResourceValidationArgs`,
:class:`pulumi_policy.PolicyResource`), with properties behind the SDK's unknown-checking proxy:
a policy that reads a not-yet-computed value is recorded as *not evaluated* (the engine's advisory
"can't run policy ... during preview"), never as passed or failed.

Pack configuration has the format of ``pulumi preview --policy-pack-config FILE``:
``{"all": "advisory", "<policy id>": "disabled" | {"enforcementLevel": ..., "<setting>": ...}}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from policies.framework import PacsPolicy, PacsResourcePolicy

KINDS = ("violation", "not-evaluated")


class SnapshotError(ValueError):
    """A snapshot that is not a ``pacs-kit plan --json`` document."""


class PackConfigError(ValueError):
    """Pack configuration naming an unknown policy, enforcement level or setting, or a setting
    value its schema refuses."""


class PolicyFailure(RuntimeError):
    """A policy raised an error: the engine fails the preview; so does ``pacs-kit check``."""

    def __init__(self, policy: str, urn: str, error: Exception) -> None:
        where = f" on {urn}" if urn else ""
        super().__init__(f"policy {policy} failed{where}: {type(error).__name__}: {error}")


@dataclass(frozen=True)
class PlanResource:
    """One resource of a plan snapshot: exactly what ``pacs-kit plan --json`` lists."""

    urn: str
    type: str
    name: str
    props: Mapping[str, Any]
    # Optional (``pacs-kit plan --json --dependencies``): property -> URNs its value came from.
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)


def load_snapshot(document: Any) -> list[PlanResource]:
    """The resources of a ``{"resources": [{urn, type, name, props}]}`` document."""
    if not isinstance(document, Mapping) or not isinstance(document.get("resources"), list):
        raise SnapshotError('expected a JSON object {"resources": [...]} (pacs-kit plan --json)')
    resources: list[PlanResource] = []
    for index, entry in enumerate(document["resources"]):
        where = f"resources[{index}]"
        if not isinstance(entry, Mapping):
            raise SnapshotError(f"{where}: expected an object")
        for key in ("urn", "type", "name"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise SnapshotError(f"{where}: '{key}' must be a non-empty string")
        props = entry.get("props", {})
        if not isinstance(props, Mapping):
            raise SnapshotError(f"{where} ({entry['urn']}): 'props' must be an object")
        deps = entry.get("propertyDependencies", {})
        if not isinstance(deps, Mapping) or not all(
            isinstance(v, list) and all(isinstance(u, str) for u in v) for v in deps.values()
        ):
            raise SnapshotError(
                f"{where} ({entry['urn']}): 'propertyDependencies' must map properties to URN lists"
            )
        resources.append(
            PlanResource(entry["urn"], entry["type"], entry["name"], dict(props), dict(deps))
        )
    return resources


@dataclass(frozen=True)
class PolicySettings:
    """The effective enforcement level and settings of one policy."""

    enforcement: EnforcementLevel
    values: Mapping[str, Any]


class PackConfig:
    """Enforcement levels and settings per policy, as ``--policy-pack-config`` gives them."""

    def __init__(
        self, policies: Sequence[PacsPolicy], given: Mapping[str, Any] | None = None
    ) -> None:
        self._policies = {p.meta.id: p for p in policies}
        self._levels: dict[str, EnforcementLevel] = {}
        self._values: dict[str, dict[str, Any]] = {}
        default: EnforcementLevel | None = None
        for key, value in (given or {}).items():
            if key != "all" and key not in self._policies:
                raise PackConfigError(
                    f"pack configuration names unknown policy {key!r}; "
                    f"known: all, {', '.join(sorted(self._policies))}"
                )
            level, values = _split(key, value)
            if key == "all":
                if values:
                    raise PackConfigError("'all' takes an enforcement level only")
                default = level
                continue
            schemas = {s.name: s.json_schema() for s in self._policies[key].meta.settings}
            unknown = sorted(set(values) - set(schemas))
            if unknown:
                raise PackConfigError(
                    f"{key}: unknown setting(s) {', '.join(unknown)}; "
                    f"allowed: {', '.join(sorted(schemas)) or 'none'}"
                )
            for name, setting_value in values.items():
                _check_schema(f"{key}: {name}", setting_value, schemas[name])
            if level is not None:
                self._levels[key] = level
            self._values[key] = values
        self._default = default

    def settings(self, policy: PacsPolicy) -> PolicySettings:
        level = self._levels.get(policy.meta.id) or self._default or policy.meta.enforcement
        return PolicySettings(level, self._values.get(policy.meta.id, {}))


def _split(key: str, value: Any) -> tuple[EnforcementLevel | None, dict[str, Any]]:
    if isinstance(value, str):
        return _level(key, value), {}
    if not isinstance(value, Mapping):
        raise PackConfigError(f"{key}: expected an enforcement level or an object")
    values = {k: v for k, v in value.items() if k != "enforcementLevel"}
    level = value.get("enforcementLevel")
    return (_level(key, level) if level is not None else None), values


def _level(key: str, value: Any) -> EnforcementLevel:
    allowed = [e.value for e in EnforcementLevel]
    if value not in allowed:
        raise PackConfigError(
            f"{key}: enforcement level {value!r} is not one of {', '.join(allowed)}"
        )
    level = EnforcementLevel(value)
    # The analyzer reports a validation policy configured "remediate" as mandatory.
    return EnforcementLevel.MANDATORY if level is EnforcementLevel.REMEDIATE else level


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int, float),
    "number": (int, float),
    "boolean": (bool,),
    "string": (str,),
    "array": (list, tuple),
    "object": (dict,),
}


def _check_schema(where: str, value: Any, schema: Mapping[str, Any]) -> None:
    """The part of JSON Schema the pack's settings use, as `pulumi` validates pack config."""
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _JSON_TYPES[kind]) and (kind == "boolean") == isinstance(value, bool)
        if ok and kind == "integer":
            ok = float(value).is_integer()
        if not ok:
            raise PackConfigError(f"{where}: expected {kind}, got {value!r}")
    if "pattern" in schema and not re.search(schema["pattern"], str(value)):
        raise PackConfigError(f"{where}: {value!r} does not match {schema['pattern']}")
    if "enum" in schema and value not in schema["enum"]:
        raise PackConfigError(f"{where}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        raise PackConfigError(f"{where}: {value!r} is below the minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise PackConfigError(f"{where}: {value!r} is above the maximum {schema['maximum']}")
    if "items" in schema:
        for index, item in enumerate(value):
            _check_schema(f"{where}[{index}]", item, schema["items"])


@dataclass(frozen=True)
class Finding:
    """A violation (or a policy that could not run on unknown values) of one policy."""

    policy: str
    urn: str
    message: str
    enforcement: str
    kind: str = "violation"

    @property
    def blocking(self) -> bool:
        return self.kind == "violation" and self.enforcement == EnforcementLevel.MANDATORY.value


@dataclass
class Report:
    """What one evaluation found, and which resources satisfied each policy."""

    findings: list[Finding] = field(default_factory=list)
    satisfied: dict[str, list[str]] = field(default_factory=dict)
    evaluated: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    def by_policy(self, policy: str) -> list[Finding]:
        return [f for f in self.findings if f.policy == policy]


def _policy_resources(resources: Iterable[PlanResource]) -> list[PolicyResource]:
    """Resources as the analyzer builds them: deserialized, unknowns behind the proxy."""
    plan = list(resources)
    built: list[PolicyResource] = []
    by_urn: dict[str, PolicyResource] = {}
    for r in plan:
        props = unknown_checking_proxy(deserialize_properties(dict(r.props)))
        opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
        resource = PolicyResource(r.type, props, r.urn, r.name, opts, None, None, [], {})
        built.append(resource)
        by_urn[r.urn] = resource
    # As the analyzer does: dependencies resolved to the resource objects present in the stack.
    for r, resource in zip(plan, built, strict=True):
        for key, urns in r.property_dependencies.items():
            resource.property_dependencies[key] = [by_urn[u] for u in urns if u in by_urn]
    return built


def evaluate(
    resources: Sequence[PlanResource],
    policies: Sequence[PacsPolicy],
    config: PackConfig | None = None,
) -> Report:
    """Run every enabled policy over the resources, as ``pulumi preview`` with the pack would."""
    config = config or PackConfig(policies)
    report = Report()
    stack_resources = _policy_resources(resources)
    for policy in policies:
        settings = config.settings(policy)
        if settings.enforcement is EnforcementLevel.DISABLED:
            continue
        report.evaluated.append(policy.meta.id)
        level = settings.enforcement.value
        flagged: set[str] = set()
        if isinstance(policy, PacsResourcePolicy):
            for resource in stack_resources:
                if resource.resource_type not in policy.meta.subjects:
                    continue
                args = ResourceValidationArgs(
                    resource.resource_type,
                    resource.props,
                    resource.urn,
                    resource.name,
                    resource.opts,
                    _no_provider(),
                    dict(settings.values),
                )
                found: list[Finding] = []

                def report_violation(
                    message: str, urn: str | None = None, *, _urn: str = resource.urn
                ) -> None:
                    found.append(Finding(policy.meta.id, urn or _urn, message, level))  # noqa: B023

                try:
                    policy.validate(args, report_violation)
                except UnknownValueError as exc:
                    found.append(_not_evaluated(policy, resource.urn, exc))
                except _NotApplicableError:
                    found.clear()
                except Exception as exc:
                    raise PolicyFailure(policy.meta.id, resource.urn, exc) from exc
                report.findings.extend(found)
                flagged.update(f.urn for f in found)
        else:
            stack_found: list[Finding] = []

            def report_stack(message: str, urn: str | None = None) -> None:
                stack_found.append(Finding(policy.meta.id, urn or "", message, level))  # noqa: B023

            try:
                policy.validate(
                    StackValidationArgs(stack_resources, dict(settings.values)), report_stack
                )
            except UnknownValueError as exc:
                stack_found = [_not_evaluated(policy, "", exc)]
            except _NotApplicableError:
                stack_found = []
            except Exception as exc:
                raise PolicyFailure(policy.meta.id, "", exc) from exc
            report.findings.extend(stack_found)
            flagged.update(f.urn for f in stack_found)
            if any(f.urn == "" for f in stack_found):
                flagged.update(r.urn for r in stack_resources)
        report.satisfied[policy.meta.id] = [
            r.urn
            for r in stack_resources
            if r.resource_type in policy.meta.subjects and r.urn not in flagged
        ]
    return report


def _not_evaluated(policy: PacsPolicy, urn: str, exc: UnknownValueError) -> Finding:
    return Finding(
        policy.meta.id,
        urn,
        f"can't run policy '{policy.meta.id}' during preview: {exc.message}",
        EnforcementLevel.ADVISORY.value,
        kind="not-evaluated",
    )


def _no_provider() -> PolicyProviderResource | None:
    # A plan snapshot carries provider resources as resources of their own, not per resource.
    return None
