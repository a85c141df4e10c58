"""The de-identification engine: Table E.1-1 with its options applied to a ``pydicom.Dataset``.

:class:`Deidentifier` returns a new data set and never mutates its input. What it does, row by row
of the table (:mod:`lambdas.deid.profile`, conditional actions resolved by ``profile.resolve``):

- ``X`` removes, ``Z`` empties, ``K`` keeps, ``D`` puts a dummy valid for the VR (:data:`DUMMY`),
  ``U`` puts the keyed UID. On a sequence the action applies to the whole sequence; a kept (or
  ``U``) sequence's items are processed recursively with the same rules, and a ``D``/``C``
  sequence's items are processed recursively and every free-text value left in them is replaced.
- ``C`` (clean) keeps only what cannot identify: free text (PN, LO, SH, ST, LT, UT, UC, AE, UR)
  becomes the fixed token ``CLEANED``, because no rule can tell identifying text from safe text;
  coded strings (CS), numbers and keyed UIDs stay; dates are shifted (Retain Modified Dates) or
  dummied; bulk binary values (overlay bitmaps, curve data) cannot be inspected and are removed.
- Every UID (VR UI, at any depth) that is not a well-known UID of the standard (SOP classes,
  transfer syntaxes, coding schemes...) becomes ``2.25.<int of the first 16 bytes of
  HMAC-SHA256(key, uid)>``, unless Retain UIDs keeps it: the same UID maps to the same new UID in
  every instance, study and run with one key, so references between objects stay consistent. The
  File Meta MediaStorageSOPInstanceUID follows the SOPInstanceUID.
- PatientID and PatientName become keyed pseudonyms (the table says ``Z``): PatientID is the first
  16 hex digits of HMAC(key, "patient-id:" + issuer + "\\" + id), PatientName ``PSEUDO^`` + that.
  This keeps longitudinal linkage across studies and carries no information without the key.
  Without a PatientID the patient is known by name and birth date (kept linked, never merged
  with another unidentified patient); without any of them, by the study (one pseudonym per study).
- ``domain`` (a recipient or project) separates the pseudonyms of data sets released to different
  recipients: when non-empty, every MAC message is prefixed with ``b"domain:" + domain + b"\\0"``,
  so UIDs, PatientID/Name and the date offset differ between domains (their data sets cannot be
  joined) and stay the same within one domain. The empty domain gives the historic values.
- Retain Modified Dates: every DA and DT value is moved back by a keyed per-patient offset of 1 to
  3650 days (intervals are preserved; times of day, TM, are unchanged by a whole-day shift).
  Retain Full Dates keeps them; with neither, dates follow the table (mostly X/Z/D).
- Private elements are removed unless Retain Safe Private is chosen and (private creator, element
  low byte) is on ``safe_private``; the creators of kept private elements are kept.
- Group length elements (gggg,0000) are dropped (retired, and recomputed by writers if needed).

Beyond the table (PS3.15 allows a stricter profile), for a public element with no row:

- a person name (VR PN) is emptied (``Z``); a date (VR DA/DT) is removed (``X``) unless Retain
  Long Full Dates keeps it or Retain Long Modified Dates shifts it (as listed dates are);
- free prose (VR ST, LT, UT, UC: comments, notes, reasons, Text Value outside the Content
  Sequence...) gets the dummy (``D``: the attribute stays present for its IOD, its text is gone);
- URIs and AE titles (VR UR, AE: retrieve URLs embed UIDs, contact URIs name people) are removed,
  and so is every string of the patient and visit groups 0010 and 0038 (e.g. birth and death dates
  in an alternative calendar), and the File Name in Container;
- every free-text element (LO, SH, ST, LT, UT, UC) of the overlay and curve groups 60xx/50xx is
  removed (the table lists only Overlay Data/Comments and Curve Data), e.g. Overlay Description;
- an element the data dictionary does not know, or that the file encodes as UN and the dictionary
  cannot name, is removed: it cannot be judged. A known element encoded as UN is judged by its
  dictionary VR (a UN sequence is processed as a sequence).

Other short unlisted strings (LO, SH, CS: labels, coded values such as Graphic Layer or Channel
Label, a local code's Code Meaning) are kept: the table lists the identifying ones, and
``pacs-kit deid --verify`` cannot tell a planted name in them from a label either. UIDs that name
classes, not instances (SOP Class, Transfer Syntax, Coding Scheme UIDs...;
:data:`CLASS_UID_TAGS`) are never remapped, so a private SOP class stays what it is and the File
Meta agrees with the data set.

Published codes survive cleaning: in a sequence item being dummied or cleaned (``D``/``C`` on a
sequence, e.g. the Content Sequence), a code whose (Coding Scheme Designator, Code Value) is a
concept pydicom publishes from PS3.16 (DCM, SCT, LN, UCUM...) keeps its code attributes and gets the
published Code Meaning, whatever meaning the input carried; every other code is cleaned like text.
So a cleaned structured report keeps its concept names and nothing else of the original text.
Date shifting moves every date of a DA/DT range (``A-B``, ``A-``, ``-B``); a value it cannot parse
becomes a dummy. Dictionary VRs of implicit VR input such as ``OB or OW`` count as binary.

Burned-in text: objects that may show it are refused with :class:`DeidError`
``burned-in-annotation``: Burned In Annotation = YES, and every object of the SOP classes /
modalities that usually carry it (:data:`BURNED_IN_SOP_CLASSES`, :data:`BURNED_IN_MODALITIES`),
whatever that attribute says -- unless Clean Pixel Data (:mod:`lambdas.deid.pixels`) applies: when
one of ``pixel_rules`` matches the object (device and geometry) its rectangles are blanked in the
output's native Pixel Data, and the object is released with Burned In Annotation ``NO`` and CID
7050 code 113101 "Clean Pixel Data Option" in the method attributes. Compressed Pixel Data is
refused (``pixel-data-compressed``), as are layouts it cannot redact (``pixel-data-unsupported``).
Clean Recognizable Visual Features is not implemented.

Exceptions and logs never carry values from the data set (tags and codes only).
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, cast

from pydicom import config as pydicom_config
from pydicom._dicom_dict import DicomDictionary
from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.sr._concepts_dict import concepts as CONCEPTS
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from lambdas.deid.keys import Keyer
from lambdas.deid.profile import (
    BASIC_PROFILE_CODE,
    CODING_SCHEME,
    Option,
    options_from,
    profile,
    resolve,
)
from lambdas.dicom_checks import quiet_pydicom

if TYPE_CHECKING:
    from lambdas.deid.pixels import RedactionRule

# Stable error codes (quarantine reasons, audit events, `pacs-kit deid`). Never rename.
ERRORS: dict[str, str] = {
    "burned-in-annotation": "the pixel data may show burned-in text and no Clean Pixel Data "
    "rule applies to it",
    "pixel-data-compressed": "Clean Pixel Data needs native pixel data: decompressing needs "
    "codecs the Lambda layer does not carry",
    "pixel-data-unsupported": "Clean Pixel Data cannot redact this native pixel data layout",
    "not-dicom": "the input is not a DICOM data set",
    "unsupported": "the data set cannot be de-identified (an element could not be decoded)",
}


class DeidError(ValueError):
    """An object that must not be released; ``code`` is stable (see :data:`ERRORS`)."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        super().__init__(f"{code}: {message or ERRORS.get(code, code)}")


# Secondary capture (incl. the multi-frame ones), ultrasound, visible light photography /
# endoscopy / video, and encapsulated documents: screenshots and scanned pages by nature.
BURNED_IN_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
        "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.2",  # VL Microscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image
        "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
        "1.2.840.10008.5.1.4.1.1.104.2",  # Encapsulated CDA
    }
)
# Ultrasound, other, external-camera photography, endoscopy, general microscopy, document,
# secondary capture, and the retired US modalities.
BURNED_IN_MODALITIES = frozenset({"US", "OT", "XC", "ES", "GM", "DOC", "SC", "IVUS", "ECHO"})

DEIDENTIFIED = "DEIDENTIFIED"
CLEANED = "CLEANED"
DUMMY_DATE = "19000101"
# A dummy per VR: valid for the VR's syntax and length, and carrying nothing of the original.
DUMMY: dict[str, object] = {
    "AE": "DEID",
    "AS": "000D",
    "CS": DEIDENTIFIED,
    "DA": DUMMY_DATE,
    "DS": "0",
    "DT": DUMMY_DATE + "000000",
    "FL": 0.0,
    "FD": 0.0,
    "IS": "0",
    "LO": DEIDENTIFIED,
    "LT": DEIDENTIFIED,
    "PN": DEIDENTIFIED,
    "SH": DEIDENTIFIED,
    "SL": 0,
    "SS": 0,
    "ST": DEIDENTIFIED,
    "SV": 0,
    "TM": "000000",
    "UC": DEIDENTIFIED,
    "UL": 0,
    "UR": "",
    "US": 0,
    "UT": DEIDENTIFIED,
    "UV": 0,
    "AT": 0,
}
TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "AE", "UR"})
DATE_VRS = frozenset({"DA", "DT"})
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# Free text removed from the overlay/curve groups 60xx/50xx (beyond the table, module doc).
GRAPHICS_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
# Free prose with no row of the table: dummied (beyond the table, module doc).
PROSE_VRS = frozenset({"ST", "LT", "UT", "UC"})
# The attributes of a code item (PS3.3 Table 8.8-1), kept in a cleaned item of a standard scheme.
CODE_ATTRIBUTES = frozenset(
    {
        0x00080100,  # Code Value
        0x00080102,  # Coding Scheme Designator
        0x00080103,  # Coding Scheme Version
        0x00080104,  # Code Meaning
        0x00080105,  # Mapping Resource
        0x00080106,  # Context Group Version
        0x00080107,  # Context Group Local Version
        0x0008010B,  # Context Group Extension Flag
        0x0008010F,  # Context Identifier
        0x00080117,  # Context UID
        0x00080119,  # Long Code Value
        0x00080120,  # URN Code Value
        0x00080122,  # Mapping Resource Name
    }
)
_CODING_SCHEME_DESIGNATOR = 0x00080102
_CODE_VALUE = 0x00080100
_CODE_MEANING = 0x00080104
# Unlisted VRs removed wherever they are (module doc), and groups whose unlisted strings go.
REMOVED_VRS = frozenset({"UR", "AE"})
PATIENT_GROUPS = frozenset({0x0010, 0x0038})
STRING_VRS = frozenset({"LO", "SH", "UC", "ST", "LT", "UT", "CS"})
_FILENAME_IN_CONTAINER = 0x0008040B
# Class UIDs (not instances): never remapped (module doc).
CLASS_UID_TAGS = frozenset(
    tag
    for tag, (vr, _, _, _, keyword) in DicomDictionary.items()
    if vr == "UI"
    and (
        keyword.endswith(("ClassUID", "TransferSyntaxUID", "ClassesInStudy"))
        or keyword in {"CodingSchemeUID", "ContextUID", "MappingResourceUID"}
    )
)
_DA_PART = r"\d{8}"
_DT_PART = r"\d{4,14}(?:\.\d{1,6})?(?:[+-]\d{4})?"
MAX_DATE_SHIFT_DAYS = 3650

_PATIENT_ID = 0x00100020
_PATIENT_NAME = 0x00100010
_ISSUER = 0x00100021
_BIRTH_DATE = 0x00100030
_STUDY_UID = 0x0020000D
_SOP_INSTANCE_UID = 0x00080018
_PRIVATE_ROW = "(GGGG"
# CID 7050: the option lambdas.deid.pixels implements.
CLEAN_PIXEL_DATA_CODE = ("113101", "Clean Pixel Data Option")


def _pattern(tag: str) -> tuple[int, int]:
    """``(50XX,XXXX)`` -> (mask, value): X is any hex digit."""
    digits = tag.strip("()").replace(",", "")
    mask = int("".join("0" if c == "X" else "F" for c in digits), 16)
    return mask, int(digits.replace("X", "0"), 16)


@dataclass
class Deidentifier:
    """Applies the Basic Application Level Confidentiality Profile and ``options`` (module doc).

    ``safe_private`` lists the private elements Retain Safe Private may keep, as
    (private creator, element low byte), e.g. ``("SIEMENS CSA HEADER", 0x08)``.
    ``pixel_rules`` (keyword only) are the Clean Pixel Data rules for objects that would
    otherwise be refused as burned-in (:mod:`lambdas.deid.pixels`); none by default.
    ``domain`` (keyword only) is the recipient or project the output is for: outputs of
    different domains have different pseudonyms and UIDs (module doc); empty by default.
    """

    keyer: Keyer
    options: frozenset[Option] = frozenset()
    safe_private: frozenset[tuple[str, int]] = frozenset()
    pixel_rules: tuple[RedactionRule, ...] = field(default=(), kw_only=True)
    domain: str = field(default="", kw_only=True)
    _exact: dict[int, str] = field(init=False, repr=False)
    _patterns: list[tuple[int, int, str]] = field(init=False, repr=False)
    _private_action: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.options = options_from(self.options)
        if not isinstance(self.domain, str) or "\0" in self.domain:
            raise ValueError("the domain must be a string without NUL characters")
        self.pixel_rules = tuple(self.pixel_rules)
        self._exact, self._patterns, self._private_action = {}, [], "X"
        for rule in profile(self.options):
            action = resolve(rule.action)
            if rule.tag.startswith(_PRIVATE_ROW):
                self._private_action = action
            elif "X" in rule.tag:
                self._patterns.append((*_pattern(rule.tag), action))
            else:
                self._exact[_pattern(rule.tag)[1]] = action

    # --- public -----------------------------------------------------------------------------

    def deidentify(self, ds: Dataset) -> Dataset:
        """A new, de-identified copy of ``ds``; DeidError when it must not be released."""
        if not isinstance(ds, Dataset):
            raise DeidError("not-dicom")
        with quiet():
            return self._deidentify(ds)

    def _deidentify(self, ds: Dataset) -> Dataset:
        clean = self._pixel_cleaning(ds)
        run = _Run(self, ds)
        try:
            out = run.dataset(ds, scrub=None)
        except DeidError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            # The original message may quote a value: keep only its type.
            raise DeidError("unsupported", f"{type(exc).__name__} while processing") from None
        run.finish(ds, out, cleaned_pixels=clean is not None)
        if clean is not None:
            from lambdas.deid.pixels import redact

            rule, little_endian = clean
            try:
                redact(out, rule, little_endian=little_endian)  # the output's copy, never ``ds``
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
                if isinstance(exc, DeidError):
                    raise
                raise DeidError(
                    "unsupported", f"{type(exc).__name__} in Clean Pixel Data"
                ) from None
            out.BurnedInAnnotation = "NO"
        return out

    def _pixel_cleaning(self, ds: Dataset) -> tuple[RedactionRule, bool] | None:
        """None for an object without burned-in risk, else the Clean Pixel Data rule to apply
        and the Pixel Data byte order; DeidError when the object must be refused."""
        try:
            _refuse_burned_in(ds)
        except DeidError as refusal:
            refused = refusal
        else:
            return None
        from lambdas.deid.pixels import match_rule, native_byte_order

        rule = match_rule(ds, self.pixel_rules)
        if rule is None:
            raise refused
        return rule, native_byte_order(ds)  # refuses compressed data before any work

    # --- used by _Run -------------------------------------------------------------------------

    def mac(self, data: bytes) -> bytes:
        """The keyer's MAC of ``data``, domain-separated when a domain is set."""
        if self.domain:
            data = b"domain:" + self.domain.encode("utf-8") + b"\0" + data
        return self.keyer.mac(data)

    def action_for(self, tag: int) -> str | None:
        """The resolved action of a public tag, None when the table has no row for it."""
        action = self._exact.get(tag)
        if action is None and 0x5000 <= tag >> 16 <= 0x60FF:
            for mask, value, pattern_action in self._patterns:
                if tag & mask == value:
                    return pattern_action
        return action


class _Run:
    """The state of one ``deidentify`` call: the patient's pseudonyms and a UID cache."""

    def __init__(self, engine: Deidentifier, ds: Dataset) -> None:
        self.engine = engine
        self.mac: Callable[[bytes], bytes] = engine.mac
        self.options = engine.options
        self.keep_uids = Option.RETAIN_UIDS in self.options
        self.shift_dates = Option.RETAIN_LONG_MODIFIED_DATES in self.options
        self.keep_dates = Option.RETAIN_LONG_FULL_DATES in self.options
        self.uids: dict[str, str] = {}
        patient = _patient_key(ds) or b"\0study:" + _text(ds.get(_STUDY_UID)).encode()
        self.patient = patient
        self.pseudo_id = self.pseudonym(patient)
        offset = int.from_bytes(self.mac(b"date-offset:" + patient)[:8], "big")
        self.shift = datetime.timedelta(days=offset % MAX_DATE_SHIFT_DAYS + 1)

    def pseudonym(self, patient: bytes) -> str:
        """The keyed PatientID of ``issuer\\id``: 16 hex digits, nothing without the key."""
        return self.mac(b"patient-id:" + patient)[:8].hex().upper()

    # --- values ----------------------------------------------------------------------------

    def uid(self, value: str) -> str:
        """The keyed UID of ``value`` (well-known UIDs of the standard are not identifying)."""
        value = str(value).strip("\0 ")
        if not value or value in UID_dictionary:
            return value
        new = self.uids.get(value)
        if new is None:
            digest = self.mac(b"uid:" + value.encode("ascii", "replace"))
            new = self.uids[value] = f"2.25.{int.from_bytes(digest[:16], 'big')}"
        return new

    def shifted(self, vr: str, value: str) -> str:
        """A DA/DT value moved back by the patient's offset; a dummy if it does not parse."""
        text = str(value).strip()
        if not text:
            return text
        part = _DT_PART if vr == "DT" else _DA_PART
        if re.fullmatch(part, text):
            return self.shifted_one(vr, text)
        match = re.fullmatch(f"({part})?-({part})?", text)
        if match is None or not (match.group(1) or match.group(2)):
            return str(DUMMY[vr])
        dummy = str(DUMMY[vr])
        ends = [self.shifted_one(vr, end) if end else "" for end in match.groups()]
        if any(end == dummy for end in ends):
            return dummy
        return "-".join(ends)

    def shifted_one(self, vr: str, text: str) -> str:
        """One DA/DT value (no range) moved back; a dummy if its date does not parse."""
        try:
            day = datetime.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return str(DUMMY[vr])
        return (day - self.shift).strftime("%Y%m%d") + text[8:]

    # --- elements ---------------------------------------------------------------------------

    def dataset(self, src: Dataset, scrub: str | None) -> Dataset:
        """The de-identified copy of one data set or sequence item."""
        dst = Dataset()
        kept_creators: set[int] = set()
        for raw in src.elements():
            tag = BaseTag(raw.tag)
            if tag.element == 0:  # group length
                continue
            if tag.is_private:
                if self.keep_private(src, tag):
                    kept_creators.add((tag.group << 16) | (tag.element >> 8))
                    self.copy(src, dst, raw, tag, scrub=None)
                continue
            self.element(src, dst, raw, tag, scrub)
        for creator in kept_creators:
            if creator in src:
                dst[creator] = copy.deepcopy(src[creator])
        if src.get("SpecificCharacterSet") is not None and "SpecificCharacterSet" not in dst:
            dst.SpecificCharacterSet = src.SpecificCharacterSet
        return dst

    def keep_private(self, src: Dataset, tag: BaseTag) -> bool:
        if self.engine._private_action != "C" or not self.engine.safe_private:
            return False
        if tag.element < 0x1000:  # a private creator: kept only with one of its elements
            return False
        creator = src.get((tag.group << 16) | (tag.element >> 8))
        name = str(creator.value).strip() if creator is not None else ""
        return (name, tag.element & 0xFF) in self.engine.safe_private

    def element(
        self,
        src: Dataset,
        dst: Dataset,
        raw: DataElement | RawDataElement,
        tag: BaseTag,
        scrub: str | None,
    ) -> None:
        if tag in (_PATIENT_ID, _PATIENT_NAME):
            # A nested PatientID (e.g. in a referenced patient's item) gets its own pseudonym; an
            # item that names no patient belongs to the object's patient.
            pseudo = self.pseudonym(_patient_key(src) or self.patient)
            if tag == _PATIENT_ID:
                dst.add_new(tag, "LO", pseudo)
            else:
                dst.add_new(tag, "PN", "PSEUDO^" + pseudo)
            return
        action = self.engine.action_for(tag)
        if action == "X":
            return
        vr = _vr(raw, tag)
        if action is None:  # no row: stricter than the table (module doc)
            if vr == "UN" or tag not in DicomDictionary or tag == _FILENAME_IN_CONTAINER:
                return
            if vr in REMOVED_VRS or (tag.group in PATIENT_GROUPS and vr in STRING_VRS):
                return
            if vr in GRAPHICS_TEXT_VRS and (tag >> 16) & 0xFF00 in (0x5000, 0x6000):
                return
            if vr == "PN":
                dst.add_new(tag, vr, None)
                return
            if vr in PROSE_VRS:
                self.replace(src, dst, tag, vr, mode=scrub or "D")
                return
            if vr in DATE_VRS and not (self.keep_dates or self.shift_dates):
                return
        if action is None or action == "K" or (action == "U" and vr == "SQ"):
            self.copy(src, dst, raw, tag, scrub, kept=action == "K")
        elif action == "Z":
            dst.add_new(tag, vr, Sequence() if vr == "SQ" else None)
        elif action == "D":
            self.replace(src, dst, tag, vr, mode="D")
        elif action == "U":
            if vr == "UI":
                self.copy(src, dst, raw, tag, scrub)
            else:  # the table says U only for UIDs; anything else gets a dummy
                self.replace(src, dst, tag, vr, mode="D")
        elif action == "C":
            self.replace(src, dst, tag, vr, mode="C")
        else:  # pragma: no cover - resolve() returns only the actions above
            raise DeidError("unsupported", f"action {action} on {tag}")

    def copy(
        self,
        src: Dataset,
        dst: Dataset,
        raw: DataElement | RawDataElement,
        tag: BaseTag,
        scrub: str | None,
        *,
        kept: bool = False,
    ) -> None:
        """Keep an element, still remapping UIDs and dates and recursing into sequences."""
        vr = _vr(raw, tag)
        if vr == "SQ":
            items = [self.dataset(item, scrub) for item in src[tag].value]
            dst.add_new(tag, "SQ", Sequence(items))
        elif vr == "UI" and not self.keep_uids and tag not in CLASS_UID_TAGS:
            dst.add_new(tag, vr, self.values(src[tag].value, self.uid))
        elif vr in DATE_VRS and self.shift_dates:
            dst.add_new(tag, vr, self.values(src[tag].value, lambda v: self.shifted(vr, v)))
        elif scrub is not None and not kept and tag in CODE_ATTRIBUTES and _published(src):
            if tag == _CODE_MEANING:  # the vocabulary's meaning, never the input's text
                dst.add_new(tag, vr, _published(src))
            else:
                dst[tag] = copy.deepcopy(src[tag])
        elif scrub is not None and not kept and (vr in TEXT_VRS or vr in DATE_VRS):
            self.replace(src, dst, tag, vr, mode=scrub)
        elif isinstance(raw, RawDataElement):
            dst[tag] = raw  # an immutable raw element, converted on first access: shared
        else:
            dst[tag] = copy.deepcopy(raw)  # never share a mutable element with the input

    def replace(self, src: Dataset, dst: Dataset, tag: BaseTag, vr: str, mode: str) -> None:
        """``D`` (dummy) or ``C`` (clean) one element; sequences are processed item by item."""
        if vr == "SQ":
            items = [self.dataset(item, scrub=mode) for item in src[tag].value]
            dst.add_new(tag, "SQ", Sequence(items))
        elif vr == "UI":
            if tag in CLASS_UID_TAGS:
                dst[tag] = copy.deepcopy(src[tag])
            else:
                dst.add_new(tag, vr, self.values(src[tag].value, self.uid))
        elif vr in DATE_VRS:
            if self.shift_dates:
                dst.add_new(tag, vr, self.values(src[tag].value, lambda v: self.shifted(vr, v)))
            else:
                dst.add_new(tag, vr, DUMMY[vr])
        elif mode == "C":
            if vr in TEXT_VRS:
                dst.add_new(tag, vr, CLEANED if vr != "UR" else "")
            elif _binary(vr):
                return  # a bitmap or curve cannot be inspected: removed
            else:  # CS, numbers, TM: coded or measured values, not identifying
                dst[tag] = copy.deepcopy(src[tag])
        elif vr in DUMMY:
            dst.add_new(tag, vr, DUMMY[vr])
        else:  # binary: a zero value of the VR's minimum length
            if vr not in BINARY_VRS:  # an ambiguous dictionary VR ("OB or OW")
                vr = "OW" if "OW" in vr else "OB"
            dst.add_new(tag, vr, b"\0\0\0\0" if vr in {"OF", "OL"} else b"\0\0")

    @staticmethod
    def values(value: object, change: Callable[[str], str]) -> object:
        if isinstance(value, MultiValue | list | tuple):
            return [change(v) for v in value]
        if value is None or value == "":
            return value
        return change(str(value))

    # --- the de-identification record -----------------------------------------------------

    def finish(self, src: Dataset, out: Dataset, *, cleaned_pixels: bool = False) -> None:
        """Patient pseudonyms, the method attributes, and the File Meta."""
        out.PatientID = self.pseudo_id
        out.PatientName = "PSEUDO^" + self.pseudo_id
        out.PatientIdentityRemoved = "YES"
        chosen = [o for o in Option if o in self.options]
        codes = [BASIC_PROFILE_CODE, *((o.code, o.meaning) for o in chosen)]
        if cleaned_pixels:
            codes.append(CLEAN_PIXEL_DATA_CODE)
        out.DeidentificationMethod = [
            "DICOM PS3.15 E.1 Basic Application Confidentiality Profile",
            *(meaning for _, meaning in codes[1:]),
        ]
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = CODING_SCHEME
            item.CodeMeaning = meaning
            items.append(item)
        out.DeidentificationMethodCodeSequence = Sequence(items)
        out.LongitudinalTemporalInformationModified = (
            "UNMODIFIED" if self.keep_dates else "MODIFIED" if self.shift_dates else "REMOVED"
        )
        meta = getattr(src, "file_meta", None)
        if meta is not None:
            new_meta = FileMetaDataset()
            for keyword in ("FileMetaInformationVersion", "MediaStorageSOPClassUID"):
                if keyword in meta:
                    new_meta[keyword] = meta[keyword]
            if _SOP_INSTANCE_UID in out:
                new_meta.MediaStorageSOPInstanceUID = out[_SOP_INSTANCE_UID].value
            if "TransferSyntaxUID" in meta:
                new_meta.TransferSyntaxUID = meta.TransferSyntaxUID
            new_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            new_meta.ImplementationVersionName = "PACSKIT_DEID"
            out.file_meta = new_meta
            out.preamble = None  # a fresh all-zero preamble: nothing of the original's


def _refuse_burned_in(ds: Dataset) -> None:
    value = _text(ds.get("BurnedInAnnotation")).upper()
    if value == "YES":
        raise DeidError("burned-in-annotation")
    # These classes carry burned-in text often enough that their own "NO" is not trusted
    # (PS3.15 E.3.1): held until Clean Pixel Data has been applied. So are screen captures of
    # any modality (Image Type SCREEN SHOT: a viewer's screen, with its patient banner).
    image_type = ds.get("ImageType") or []
    if isinstance(image_type, str):
        image_type = [image_type]
    types = {str(v).strip().upper() for v in image_type}
    if (
        _text(ds.get("SOPClassUID")) in BURNED_IN_SOP_CLASSES
        or _text(ds.get("Modality")).upper() in BURNED_IN_MODALITIES
        or "SCREEN SHOT" in types
        or "SCREENSHOT" in types
    ):
        raise DeidError(
            "burned-in-annotation",
            "a SOP class or modality that usually carries burned-in text (held whatever its "
            "Burned In Annotation says)",
        )


@cache
def _published_meanings() -> dict[tuple[str, str], str]:
    """(Coding Scheme Designator, Code Value) -> Code Meaning of the concepts pydicom publishes
    from PS3.16 (pydicom.sr): the vocabulary a cleaned code may keep."""
    # pydicom's table: scheme -> keyword -> code value -> (meaning, context groups).
    table = cast(dict[str, dict[str, dict[str, tuple[str, list[int]]]]], CONCEPTS)
    return {
        (scheme, value): meaning
        for scheme, concepts in table.items()
        for by_value in concepts.values()
        for value, (meaning, _) in by_value.items()
    }


def _published(item: Dataset) -> str:
    """The published meaning of the code ``item`` carries; empty when it is no published code."""
    key = (_text(item.get(_CODING_SCHEME_DESIGNATOR)), _text(item.get(_CODE_VALUE)))
    return _published_meanings().get(key, "")


def _patient_key(ds: Dataset) -> bytes:
    """What identifies the patient of ``ds`` (an object or a sequence item) for pseudonyms and
    the date offset; empty when it names no patient.

    ``issuer\\id`` when PatientID is set (the historic input, unchanged); without a PatientID,
    the name and birth date (NUL-prefixed, so never equal to an ``issuer\\id``): objects of one
    unidentified patient stay linked, and two unidentified patients do not share a pseudonym.
    The caller falls back to the study (its own pseudonym per study) when nothing is set.
    """
    patient_id = _text(ds.get(_PATIENT_ID))
    if patient_id:
        return (_text(ds.get(_ISSUER)) + "\\" + patient_id).encode()
    name, birth = _text(ds.get(_PATIENT_NAME)), _text(ds.get(_BIRTH_DATE))
    if name or birth:
        return ("\0name:" + name + "\\" + birth).encode()
    return b""


def quiet() -> AbstractContextManager[None]:
    """pydicom's validation warnings and log lines quote element values (names, IDs): none of
    them while a data set is de-identified, written or verified. Values are not validated while
    reading (the engine replaces what it does not keep) and are written as they are."""
    return quiet_pydicom(reading=pydicom_config.IGNORE, writing=pydicom_config.IGNORE)


def _text(value: object) -> str:
    """A single value as stripped text; ``ds.get(tag)`` gives an element, ``ds.get(kw)`` a value."""
    if isinstance(value, DataElement):
        value = value.value
    return "" if value is None else str(value).strip()


def _vr(raw: DataElement | RawDataElement, tag: BaseTag) -> str:
    """The element's VR; for implicit VR input, or a public element the file encodes as UN, the
    dictionary's (``UN`` when the dictionary does not know the tag)."""
    if raw.VR is not None and not (raw.VR == "UN" and not tag.is_private):
        return str(raw.VR)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _binary(vr: str) -> bool:
    """Bulk binary, including the ambiguous dictionary VRs of implicit VR input (``OB or OW``,
    ``US or SS or OW``)."""
    return vr in BINARY_VRS or "OB" in vr or "OW" in vr
