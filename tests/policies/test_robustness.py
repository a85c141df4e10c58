"""No policy fails on odd but valid input: the engine would fail the deployment instead of judging.

Property-based: a resource of the default stack with one property removed, nulled (how outputs
show an unset argument), or given another value of its own JSON type (an empty string or list, a
zero, a single statement instead of a list, a duplicated element), its policy documents as objects
or strings; every policy of the pack must still report (or not) without raising. Values of another
type than the provider's schema are left out: the provider refuses them before any policy runs.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.evaluate import PolicyFailure, evaluate, load_snapshot
from policies.pack import POLICIES
from tests.policies.mutations import Snapshot


def _odd_values(value: Any) -> list[Any]:
    """Null, or other values of the value's own JSON type."""
    if isinstance(value, bool):
        return [None, not value]
    if isinstance(value, int | float):
        return [None, 0, -1, 0.5, 1e9]
    if isinstance(value, str):
        return [None, "", "x", "*", value.upper()]
    if isinstance(value, list):
        return [None, [], value[:1], value + value, *(value[:1] if value else [])]
    if isinstance(value, dict):
        return [None, {}]
    return [None]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _set(target: Any, path: tuple[Any, ...], value: Any, remove: bool) -> None:
    for step in path[:-1]:
        target = target[step]
    if remove and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = value


@st.composite
def odd_edits(draw: st.DrawFn, document: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(what was changed, the changed document): one odd edit of one resource."""
    snapshot = Snapshot(document)
    resource = draw(st.sampled_from(snapshot.resources))
    props = resource["props"]
    # JSON documents held in strings are edited as objects, then kept as objects or re-encoded.
    documents: list[str] = []
    for key, value in list(props.items()):
        if isinstance(value, str) and value[:1] in "{[":
            try:
                props[key] = json.loads(value)
            except json.JSONDecodeError:
                continue
            documents.append(key)
    change = f"{resource['type']} {resource['name']}: documents as objects"
    paths = _paths(props)
    if paths:
        path = draw(st.sampled_from(paths))
        target: Any = props
        for step in path:
            target = target[step]
        value = draw(st.sampled_from(_odd_values(target)))
        remove = draw(st.booleans())
        _set(props, path, value, remove)
        where = ".".join(str(p) for p in path)
        change += f", {where} {'removed' if remove else f'= {value!r}'}"
    if draw(st.booleans()):
        change += ", re-encoded"
        for key in documents:
            if key in props:
                props[key] = json.dumps(props[key])
    return change, snapshot.document


def test_no_policy_fails_on_odd_input(plan_json: dict[str, Any]) -> None:
    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
        print_blob=False,
        derandomize=True,  # CI runs the same examples every time; explore locally with more
    )
    @given(odd_edits(plan_json))
    def judge_without_failing(edit: tuple[str, dict[str, Any]]) -> None:
        change, document = edit
        try:
            evaluate(load_snapshot(document), POLICIES)
        except PolicyFailure as exc:
            raise AssertionError(f"{change}: {exc}") from None

    judge_without_failing()
