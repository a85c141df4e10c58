"""DICOM PS3.15 Table E.1-1 and its options, as data: which action applies to which attribute.

The table is the project's own file, ``table_e1_1.tsv`` next to this module, generated once from the
standard by ``tools/make_deid_table.py`` (its header records the edition). It is loaded with
:mod:`importlib.resources`, so it is found inside the Lambda zip as well as in a checkout.

Actions: ``D`` dummy value, ``Z`` zero-length, ``X`` remove, ``K`` keep, ``C`` clean, ``U`` keyed
UID, and the conditional ``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*`` which :func:`resolve`
turns into the one action the engine applies.

Several options on one row: in this edition no two options give different actions for the same
attribute (Allergies and Patient State are ``C`` under both Retain Patient Characteristics and Clean
Descriptors; Device UID is ``K`` under both Retain UIDs and Retain Device Identity). Should a later
edition disagree, PS3.15 E.3 makes a Clean option narrow what a Retain option keeps, so the most
protective action wins, in the order X, Z, D, C, U, K: e.g. ``C`` (Clean Descriptors) beats ``K``.
The two Retain Longitudinal Temporal Information options exclude each other.

No Pulumi and no pacs_kit imports here: this module runs in the Lambda functions.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

TABLE_FILE = "table_e1_1.tsv"
ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"})
RESOLVED_ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U"})
# Most protective first: where chosen options disagree on a row, the earliest wins (see above).
_PROTECTION_ORDER = ("X", "Z", "D", "C", "U", "K")

BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
CODING_SCHEME = "DCM"


class Option(StrEnum):
    """An option of the Basic Application Level Confidentiality Profile (PS3.15 E.3)."""

    RETAIN_SAFE_PRIVATE = "retain-safe-private"
    RETAIN_UIDS = "retain-uids"
    RETAIN_DEVICE_IDENTITY = "retain-device-identity"
    RETAIN_INSTITUTION_IDENTITY = "retain-institution-identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"
    RETAIN_LONG_FULL_DATES = "retain-long-full-dates"
    RETAIN_LONG_MODIFIED_DATES = "retain-long-modified-dates"
    CLEAN_DESCRIPTORS = "clean-descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean-structured-content"
    CLEAN_GRAPHICS = "clean-graphics"

    @property
    def code(self) -> str:
        """Its code value in CID 7050 "De-identification Method" (scheme DCM)."""
        return _CID_7050[self][0]

    @property
    def meaning(self) -> str:
        """Its code meaning in CID 7050."""
        return _CID_7050[self][1]

    @classmethod
    def parse(cls, name: str) -> Option:
        """The option called ``name``; ValueError listing the allowed names otherwise."""
        try:
            return cls(name)
        except ValueError:
            allowed = ", ".join(o.value for o in cls)
            raise ValueError(f"unknown option {name!r}; allowed: {allowed}") from None


_CID_7050: dict[Option, tuple[str, str]] = {
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_LONG_FULL_DATES: (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    Option.RETAIN_LONG_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
}


@dataclass(frozen=True)
class Rule:
    """The effective action of one row of Table E.1-1 (``tag`` may be a pattern: (50XX,XXXX))."""

    tag: str
    keyword: str
    name: str
    action: str


@dataclass(frozen=True)
class _Row:
    tag: str
    keyword: str
    name: str
    basic: str
    by_option: dict[Option, str]


@cache
def _table() -> tuple[_Row, ...]:
    text = resources.files(__package__).joinpath(TABLE_FILE).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader)
    options = [Option(name) for name in header[4:]]
    rows = []
    for fields in reader:
        tag, keyword, name, basic, *cells = fields
        by_option = {o: a for o, a in zip(options, cells, strict=True) if a}
        rows.append(_Row(tag, keyword, name, basic, by_option))
    return tuple(rows)


def options_from(options: Iterable[Option | str]) -> frozenset[Option]:
    """Validated options: unknown names and the two exclusive date options raise ValueError."""
    chosen = frozenset(o if isinstance(o, Option) else Option.parse(o) for o in options)
    exclusive = {Option.RETAIN_LONG_FULL_DATES, Option.RETAIN_LONG_MODIFIED_DATES}
    if exclusive <= chosen:
        raise ValueError(
            f"options {Option.RETAIN_LONG_FULL_DATES.value} and "
            f"{Option.RETAIN_LONG_MODIFIED_DATES.value} exclude each other: choose one"
        )
    return chosen


def profile(options: Iterable[Option] = ()) -> list[Rule]:
    """The effective action of every row of Table E.1-1, in table order, for ``options``.

    An option's column replaces the basic action where it has a value; where several chosen
    options set one row the most protective action wins (module docstring). Actions may still be
    conditional (e.g. ``X/Z``): :func:`resolve` gives the one the engine applies.
    """
    chosen = options_from(options)
    rules = []
    for row in _table():
        overrides = {a for o, a in row.by_option.items() if o in chosen}
        action = min(overrides, key=_PROTECTION_ORDER.index) if overrides else row.basic
        rules.append(Rule(row.tag, row.keyword, row.name, action))
    return rules


def resolve(action: str) -> str:
    """The single action the engine applies for ``action`` (plain actions are returned unchanged).

    The standard lets the implementation pick among a conditional action's choices according to
    the attribute's type in the IOD. The engine does not track IOD types, so it picks the choice
    that keeps any IOD conformant, which never keeps more information than the others:

    - ``X/Z`` -> ``Z`` and ``Z/D`` -> ``D``, ``X/D`` and ``X/Z/D`` -> ``D`` (a dummy satisfies a
      Type 1 attribute and carries nothing of the original);
    - ``X/Z/U*`` (Referenced Image / Source Image Sequence) -> ``U``: the sequence is kept, the
      UIDs inside it are replaced by their keyed UIDs and every other attribute inside follows
      its own row of the table (recursively), so references stay resolvable.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; allowed: {', '.join(sorted(ACTIONS))}")
    return _RESOLVED.get(action, action)


_RESOLVED = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
