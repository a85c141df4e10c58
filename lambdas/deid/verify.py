"""Leak verification of a de-identified object against its original (issue #8, Build 7).

Independent of the engine: it reads only the profile (Table E.1-1 and the options) and compares
two data sets, so an engine bug shows up as a finding instead of being trusted. Checks:

- ``value-retained``: an attribute whose effective action is D, Z, X or U still carries its
  original non-empty value somewhere in the output under the same tag (sequences are walked
  recursively; a removed/emptied sequence must not keep any of its original items);
- ``private-tag``: a private element whose (creator, element) is not on the safe-private
  allow-list (which only counts with the Retain Safe Private option);
- ``name-retained``: a person name (VR PN) of the output equals a person name of the input at the
  same tag path, unless it is the engine's pseudonym (``PSEUDO^...``): whatever the table says
  (the engine empties names it has no row for);
- ``text-retained``: text the table has no row for kept its original value at the same tag path:
  free prose (VR ST, LT, UT, UC; the engine replaces it: PS3.15 lists only some of the comments and
  notes that can name a patient), URIs and AE titles, strings of the patient and visit groups
  0010/0038 (e.g. dates in an alternative calendar) and the File Name in Container;
- ``uid-retained``: a UID the profile replaces appears anywhere in the output (as a UID, or in
  text or a URI, e.g. a Retrieve URL);
- ``uid-inconsistent`` / ``uid-collision``: one original UID became two output UIDs, or two
  original UIDs became one;
- ``uid-invalid``: a replaced UID is not a valid UID;
- ``identity-not-removed`` / ``method-codes-missing``: Patient Identity Removed is not ``YES``, or
  the De-identification Method Code Sequence is absent or empty.

A finding's detail names the attribute and the rule, never a value: findings go to logs.
``dciodvfy_errors`` runs dicom3tools' IOD verifier; ``iod_errors_added`` compares an input file
with its output (values stripped from the messages) and reports ``iod-error-added`` for each
error de-identification introduced.

No Pulumi and no pacs_kit imports here: this module runs in the Lambda functions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from lambdas.deid.profile import Option, options_from, profile, resolve

REMOVING = frozenset({"D", "Z", "X"})
CHECKED = REMOVING | {"U"}
TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
# Text with no row of the table that must not keep its value: free prose (the engine dummies
# it), URIs and AE titles anywhere, and strings of the patient and visit groups (removed).
PROSE_VRS = frozenset({"LT", "ST", "UT", "UC", "UR", "AE"})
PATIENT_GROUPS = frozenset({0x0010, 0x0038})
PATIENT_STRING_VRS = frozenset({"LO", "SH", "UC", "ST", "LT", "UT", "CS"})
FILENAME_IN_CONTAINER = 0x0008040B
# The engine's placeholder texts: an input that already held one is no leak.
PLACEHOLDERS = frozenset({"DEIDENTIFIED", "CLEANED"})
UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
PATIENT_IDENTITY_REMOVED = 0x00120062
METHOD_CODE_SEQUENCE = 0x00120064
DCIODVFY = "dciodvfy"
PSEUDONYM_PREFIX = "PSEUDO^"

# A safe-private entry names the private creator and the element's low byte, as the engine's
# allow-list does: ("SIEMENS CSA HEADER", 0x08) allows (gggg,xx08) in that creator's block.
SafePrivate = tuple[str, int]


@dataclass(frozen=True)
class Finding:
    """One way the output fails de-identification. ``detail`` never quotes a value."""

    code: str
    tag: str
    detail: str


@dataclass(frozen=True)
class _Actions:
    exact: dict[int, tuple[str, str]]  # tag -> (keyword or name, resolved action)
    patterns: tuple[tuple[int, int, str, str], ...]  # (mask, value, name, action)

    def of(self, tag: int) -> tuple[str, str] | None:
        found = self.exact.get(tag)
        if found is not None:
            return found
        for mask, value, name, action in self.patterns:
            if tag & mask == value:
                return name, action
        return None


_TAG = re.compile(r"\(([0-9A-FX]{4}),([0-9A-FX]{4})\)")


@cache
def _actions(options: frozenset[Option]) -> _Actions:
    exact: dict[int, tuple[str, str]] = {}
    patterns: list[tuple[int, int, str, str]] = []
    for rule in profile(options):
        match = _TAG.fullmatch(rule.tag.upper())
        if match is None:  # the private-attributes row: checked on its own
            continue
        digits = match.group(1) + match.group(2)
        mask = int("".join("0" if c == "X" else "F" for c in digits), 16)
        value = int(digits.replace("X", "0"), 16)
        entry = (rule.keyword or rule.name, resolve(rule.action))
        if mask == 0xFFFFFFFF:
            exact[value] = entry
        else:
            patterns.append((mask, value, *entry))
    return _Actions(exact, tuple(patterns))


def _label(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == b"" or (isinstance(value, list) and not value)


def _key(value: Any) -> Any:
    """A comparable form of an element value (PersonName, MultiValue and IS/DS normalised)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, MultiValue | list | tuple):
        return tuple(str(v).strip() for v in value)
    return str(value).strip()


def _walk(ds: Dataset, path: str = "") -> Iterator[tuple[str, DataElement]]:
    """Every element of ``ds`` and of its sequences' items, with its path of tags."""
    for elem in ds:
        here = f"{path}{_label(elem.tag)}"
        yield here, elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item, f"{here}>")


def _with_meta(ds: Dataset) -> Iterator[tuple[str, DataElement]]:
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from _walk(meta)
    yield from _walk(ds)


def _values_by_tag(ds: Dataset) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = defaultdict(list)
    for _, elem in _with_meta(ds):
        if elem.VR == "SQ":
            found[elem.tag].extend(elem.value)
        elif not _empty(elem.value):
            found[elem.tag].append(_key(elem.value))
    return found


def _uid_values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


def verify(
    original: Dataset,
    output: Dataset,
    options: Iterable[Option | str] = (),
    safe_private: frozenset[SafePrivate] = frozenset(),
) -> list[Finding]:
    """Every way ``output`` fails to be a de-identification of ``original`` under ``options``.

    An empty list means: no attribute the profile removes, empties, replaces or remaps kept its
    original value, no private element outside ``safe_private`` is left, every replaced UID is
    gone and was replaced consistently, and the output says it was de-identified.
    """
    chosen = options_from(options)
    actions = _actions(chosen)
    allowed = safe_private if Option.RETAIN_SAFE_PRIVATE in chosen else frozenset()
    findings: list[Finding] = []
    findings += _retained_values(original, output, actions)
    findings += _names(original, output, actions)
    findings += _private_tags(output, allowed)
    findings += _uids(original, output, actions)
    findings += _identity_flags(output)
    return findings


def _retained_values(original: Dataset, output: Dataset, actions: _Actions) -> list[Finding]:
    kept = _values_by_tag(output)
    findings = []
    for path, elem in _with_meta(original):
        rule = actions.of(elem.tag)
        if rule is None or rule[1] not in CHECKED or _empty(elem.value):
            continue
        name, action = rule
        if action == "U" and elem.VR == "UI":
            continue  # the UID checks below cover it
        if elem.VR == "SQ":
            # U on a sequence keeps it, D and C rewrite its items (keeping their structure and
            # published codes): the attributes inside are checked one by one. X and Z remove it.
            if action in ("X", "Z") and any(item in kept.get(elem.tag, ()) for item in elem.value):
                findings.append(
                    Finding(
                        "value-retained",
                        path,
                        f"{name}: an original item is still present (action {action})",
                    )
                )
        elif _key(elem.value) in kept.get(elem.tag, ()):
            findings.append(
                Finding("value-retained", path, f"{name} kept its original value (action {action})")
            )
    return findings


def _names(original: Dataset, output: Dataset, actions: _Actions) -> list[Finding]:
    """Person names anywhere, and free prose with no row of the table, kept at the same place."""
    kept: dict[str, set[Any]] = defaultdict(set)
    for path, elem in _with_meta(original):
        if _empty(elem.value):
            continue
        if elem.VR == "PN" or (actions.of(elem.tag) is None and _unlisted_text(elem)):
            kept[path].add(_key(elem.value))
    findings = []
    for path, elem in _with_meta(output):
        if _empty(elem.value) or path not in kept:
            continue
        value = _key(elem.value)
        values = value if isinstance(value, tuple) else (value,)
        if elem.VR == "PN":
            if all(str(v).startswith(PSEUDONYM_PREFIX) for v in values):
                continue
            if value in kept[path]:
                findings.append(
                    Finding("name-retained", path, "a person name kept its original value")
                )
        elif _unlisted_text(elem) and value in kept[path] and not set(values) <= PLACEHOLDERS:
            findings.append(
                Finding("text-retained", path, "free text with no row of the table kept its value")
            )
    return findings


def _unlisted_text(elem: DataElement) -> bool:
    """Whether ``elem`` (with no row of the table) is text that must not keep its value."""
    tag = BaseTag(elem.tag)
    if tag.is_private:
        return False
    return (
        elem.VR in PROSE_VRS
        or (tag.group in PATIENT_GROUPS and elem.VR in PATIENT_STRING_VRS)
        or tag == FILENAME_IN_CONTAINER
    )


def _private_tags(output: Dataset, allowed: frozenset[SafePrivate]) -> list[Finding]:
    findings = []
    for path, elem, creator in _privates(output):
        tag = BaseTag(elem.tag)
        if tag.is_private_creator:
            if not any(name == str(elem.value).strip() for name, _ in allowed):
                findings.append(
                    Finding("private-tag", path, "private creator with no allowed element")
                )
            continue
        if creator is None or (creator, tag.element & 0xFF) not in allowed:
            findings.append(
                Finding("private-tag", path, "private element not on the safe-private allow-list")
            )
    return findings


def _privates(ds: Dataset, path: str = "") -> Iterator[tuple[str, DataElement, str | None]]:
    for elem in ds:
        tag = BaseTag(elem.tag)
        here = f"{path}{_label(tag)}"
        if tag.is_private:
            creator = None
            if not tag.is_private_creator and tag.element >= 0x1000:
                owner = ds.get(BaseTag((tag.group << 16) | (tag.element >> 8)))
                creator = str(owner.value).strip() if owner is not None else None
            yield here, elem, creator
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _privates(item, f"{here}>")


def _uids(original: Dataset, output: Dataset, actions: _Actions) -> list[Finding]:
    replaced: set[str] = set()
    for _, elem in _with_meta(original):
        rule = actions.of(elem.tag)
        if rule is not None and rule[1] == "U" and elem.VR == "UI":
            replaced.update(_uid_values(elem.value))
    findings = []
    for path, elem in _with_meta(output):
        if elem.VR == "UI" and replaced.intersection(_uid_values(elem.value)):
            findings.append(Finding("uid-retained", path, "an original UID was not replaced"))
        elif (
            (elem.VR in TEXT_VRS or elem.VR == "UR")
            and isinstance(elem.value, str)
            and any(uid in elem.value for uid in replaced)
        ):
            findings.append(Finding("uid-retained", path, "text contains an original UID"))
    findings += _uid_mapping(original, output, actions)
    return findings


def _uid_mapping(original: Dataset, output: Dataset, actions: _Actions) -> list[Finding]:
    """Findings at the place (in walk order) where a replacement first disagrees."""
    first_new: dict[str, str] = {}
    first_old: dict[str, str] = {}
    findings: dict[tuple[str, str], Finding] = {}
    for path, before, after in _paired(original, output, actions):
        for old, new in zip(_uid_values(before.value), _uid_values(after.value), strict=False):
            if first_new.setdefault(old, new) != new:
                detail = "one original UID got different new UIDs"
                findings.setdefault(
                    ("uid-inconsistent", path), Finding("uid-inconsistent", path, detail)
                )
            if first_old.setdefault(new, old) != old:
                detail = "different original UIDs got the same new UID"
                findings.setdefault(("uid-collision", path), Finding("uid-collision", path, detail))
            if new != old and (len(new) > 64 or UID_PATTERN.fullmatch(new) is None):
                detail = "the replacement is not a valid UID"
                findings.setdefault(("uid-invalid", path), Finding("uid-invalid", path, detail))
    return list(findings.values())


def _paired(
    original: Dataset, output: Dataset, actions: _Actions
) -> Iterator[tuple[str, DataElement, DataElement]]:
    """UI elements with action U present at the same place in both (data set, then meta)."""
    yield from _paired_in(original, output, actions, "")
    before_meta = getattr(original, "file_meta", None)
    after_meta = getattr(output, "file_meta", None)
    if before_meta is not None and after_meta is not None:
        yield from _paired_in(before_meta, after_meta, actions, "")


def _paired_in(
    before: Dataset, after: Dataset, actions: _Actions, path: str
) -> Iterator[tuple[str, DataElement, DataElement]]:
    for elem in before:
        other = after.get(elem.tag)
        if not isinstance(other, DataElement):
            continue
        here = f"{path}{_label(elem.tag)}"
        if elem.VR == "SQ" and other.VR == "SQ":
            if len(elem.value) == len(other.value):
                for mine, theirs in zip(elem.value, other.value, strict=True):
                    yield from _paired_in(mine, theirs, actions, f"{here}>")
            continue
        rule = actions.of(elem.tag)
        if rule is not None and rule[1] == "U" and elem.VR == "UI" and other.VR == "UI":
            yield here, elem, other


def _identity_flags(output: Dataset) -> list[Finding]:
    findings = []
    flag = output.get(PATIENT_IDENTITY_REMOVED)
    if flag is None or str(flag.value).strip().upper() != "YES":
        findings.append(
            Finding(
                "identity-not-removed",
                _label(PATIENT_IDENTITY_REMOVED),
                "PatientIdentityRemoved must be YES",
            )
        )
    codes = output.get(METHOD_CODE_SEQUENCE)
    if codes is None or codes.VR != "SQ" or not codes.value:
        findings.append(
            Finding(
                "method-codes-missing",
                _label(METHOD_CODE_SEQUENCE),
                "DeidentificationMethodCodeSequence must name the profile and its options",
            )
        )
    return findings


# What dciodvfy quotes from the file: ``= <value>``, ``value <Q> for``, ``= 'X' (0x58)``. Angle
# brackets after ``Element=``, ``Module=`` and ``attribute`` hold dictionary names, not values.
_QUOTED = re.compile(r"(?<!Element=)(?<!Module=)(?<!attribute )<[^<>]*>")
_CHARACTER = re.compile(r"'[^']*' \(0x[0-9A-Fa-f]+\)")
_HEX_TAG = re.compile(r"\(0x([0-9A-Fa-f]{4}),0x([0-9A-Fa-f]{4})\)")
_ELEMENT = re.compile(r"Element=<([A-Za-z0-9]+)>|attribute <([^<>]+)>")


def iod_error(line: str) -> str:
    """A ``dciodvfy`` error line without the values it quotes: what it says about the structure
    (attribute, module, rule), comparable between an input and its output and safe to log."""
    line = _CHARACTER.sub("'?'", _QUOTED.sub("<?>", line))
    return " ".join(line.split())


def iod_errors_added(original: str | Path, output: str | Path) -> list[Finding]:
    """``iod-error-added`` per dciodvfy error of ``output`` the ``original`` file does not have
    (compared by :func:`iod_error`, so changed values do not count as new errors).

    FileNotFoundError when dciodvfy is not installed.
    """
    before = {iod_error(line) for line in dciodvfy_errors(original)}
    findings = []
    for error in sorted({iod_error(line) for line in dciodvfy_errors(output)} - before):
        tag = _HEX_TAG.search(error)
        named = _ELEMENT.search(error)
        where = (
            f"({tag.group(1)},{tag.group(2)})".upper()
            if tag
            else (named.group(1) or named.group(2))
            if named
            else "-"
        )
        findings.append(Finding("iod-error-added", where, error))
    return findings


def dciodvfy_errors(path: str | Path) -> list[str]:
    """The ``Error`` lines dicom3tools' ``dciodvfy`` reports for the file at ``path``.

    Raises FileNotFoundError when ``dciodvfy`` is not installed (``make tools`` installs
    dicom3tools). The lines may quote values of the file: do not log them for real data.
    """
    executable = shutil.which(DCIODVFY)
    if executable is None:
        raise FileNotFoundError(f"{DCIODVFY} not found: `make tools` installs dicom3tools")
    result = subprocess.run(
        [executable, str(path)], capture_output=True, text=True, errors="replace", check=False
    )
    lines = (result.stdout + result.stderr).splitlines()
    return [line.strip() for line in lines if line.strip().startswith("Error")]
