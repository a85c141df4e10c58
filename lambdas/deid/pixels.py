"""Clean Pixel Data (PS3.15 E.3.1; CID 7050 code 113101): blank configured rectangles.

Burned-in text sits at fixed places for a given device and image geometry (the ultrasound
vendor's header bar, a secondary-capture's patient banner). A :class:`RedactionRule` names the
device (Manufacturer, Manufacturer's Model Name; case-insensitive, surrounding blanks ignored) and
the geometry (Rows, Columns; exact), any of which may be ``None`` for "any", and the rectangles
``(x, y, width, height)`` in pixels (x = column, y = row, from the top-left corner) to blank.
The first rule that matches an object is the one applied.

Blanking sets every sample of every pixel in the rectangles, in every frame and every colour
plane, to the minimum value the Pixel Data can hold: 0 when unsigned (Pixel Representation 0),
``-2**(BitsStored - 1)`` (sign-extended to Bits Allocated) when signed. Rectangles are clipped to
the image. Only NATIVE (uncompressed) Pixel Data is cleaned, and it is edited as raw bytes from
Bits Allocated (1, 8, 16 or 32), Samples per Pixel, Planar Configuration and Number of Frames,
so the Lambda layer needs neither numpy nor image codecs:

- compressed (encapsulated) transfer syntaxes are refused with :class:`DeidError`
  ``pixel-data-compressed``: decompressing and re-encoding needs codecs (JPEG, JPEG 2000, JPEG-LS,
  RLE...) that the layer does not carry, and lossy re-encoding would alter the image;
- native layouts it cannot address pixel by pixel (YBR_FULL_422 / YBR_PARTIAL_422 sub-sampling,
  other Bits Allocated, data shorter than its geometry, missing image attributes) are refused
  with ``pixel-data-unsupported``; an object with no Pixel Data (an encapsulated PDF, say) with
  ``burned-in-annotation``, since there is nothing this option can clean.

Rules are configuration, loaded by :func:`load_rules` from JSON::

    [{"manufacturer": "ACME", "model": "Sono 5", "rows": 480, "columns": 640,
      "rectangles": [[0, 0, 640, 40], {"x": 500, "y": 440, "width": 140, "height": 40}]}]

No Pulumi and no pacs_kit imports here: this module runs in the Lambda functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from lambdas.deid.engine import CLEAN_PIXEL_DATA_CODE, DeidError

__all__ = [
    "CLEAN_PIXEL_DATA_CODE",
    "RedactionRule",
    "clean_pixels",
    "load_rules",
    "match_rule",
    "native_byte_order",
    "redact",
]
NATIVE_LITTLE_ENDIAN = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}
)
SUB_SAMPLED = frozenset({"YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420"})
_RULE_FIELDS = ("manufacturer", "model", "rows", "columns", "rectangles")
_RECT_FIELDS = ("x", "y", "width", "height")
_PIXEL_DATA = 0x7FE00010

Rectangle = tuple[int, int, int, int]


@dataclass(frozen=True)
class RedactionRule:
    """Where one device/geometry burns text in: ``rectangles`` of ``(x, y, width, height)``."""

    manufacturer: str | None
    model: str | None
    rows: int | None
    columns: int | None
    rectangles: tuple[Rectangle, ...]

    def matches(self, ds: Dataset) -> bool:
        """Whether ``ds`` comes from this device with this geometry (None matches anything)."""
        if self.manufacturer is not None and _fold(ds.get("Manufacturer")) != _fold(
            self.manufacturer
        ):
            return False
        if self.model is not None and _fold(ds.get("ManufacturerModelName")) != _fold(self.model):
            return False
        if self.rows is not None and _int(ds.get("Rows")) != self.rows:
            return False
        return self.columns is None or _int(ds.get("Columns")) == self.columns


# --- configuration -----------------------------------------------------------------------------


def load_rules(json_text: str) -> tuple[RedactionRule, ...]:
    """Rules from a JSON list; ValueError naming the rule index and field of the first problem."""
    try:
        doc = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"pixel rules: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(doc, list):
        raise ValueError("pixel rules: expected a JSON list of rules")
    return tuple(_rule(index, item) for index, item in enumerate(doc))


def _rule(index: int, item: Any) -> RedactionRule:
    where = f"pixel rule {index}"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object with {', '.join(_RULE_FIELDS)}")
    unknown = sorted(set(item) - set(_RULE_FIELDS))
    if unknown:
        raise ValueError(f"{where}: {unknown[0]}: unknown field")
    texts: dict[str, str | None] = {}
    for name in ("manufacturer", "model"):
        value = item.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{where}: {name}: expected a non-empty string or null")
        texts[name] = value
    sizes: dict[str, int | None] = {}
    for name in ("rows", "columns"):
        value = item.get(name)
        if value is not None and not _positive(value):
            raise ValueError(f"{where}: {name}: expected a positive integer or null")
        sizes[name] = value
    rectangles = item.get("rectangles")
    if not isinstance(rectangles, list) or not rectangles:
        raise ValueError(f"{where}: rectangles: expected a non-empty list")
    return RedactionRule(
        manufacturer=texts["manufacturer"],
        model=texts["model"],
        rows=sizes["rows"],
        columns=sizes["columns"],
        rectangles=tuple(
            _rectangle(f"{where}: rectangles[{n}]", r) for n, r in enumerate(rectangles)
        ),
    )


def _rectangle(where: str, value: Any) -> Rectangle:
    """``[x, y, width, height]`` or ``{"x":, "y":, "width":, "height":}``."""
    if isinstance(value, dict):
        if sorted(value) != sorted(_RECT_FIELDS):
            raise ValueError(f"{where}: expected exactly the fields {', '.join(_RECT_FIELDS)}")
        value = [value[name] for name in _RECT_FIELDS]
    if not isinstance(value, list) or len(value) != len(_RECT_FIELDS):
        raise ValueError(f"{where}: expected [x, y, width, height]")
    for name, number in zip(_RECT_FIELDS, value, strict=True):
        if not (_positive(number) or (name in ("x", "y") and number == 0 and _integer(number))):
            kind = "a non-negative" if name in ("x", "y") else "a positive"
            raise ValueError(f"{where}: {name}: expected {kind} integer")
    x, y, width, height = value
    return x, y, width, height


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return _integer(value) and value > 0


# --- cleaning ----------------------------------------------------------------------------------


def match_rule(ds: Dataset, rules: Iterable[RedactionRule]) -> RedactionRule | None:
    """The first rule that matches ``ds``, None when none does."""
    return next((rule for rule in rules if rule.matches(ds)), None)


def clean_pixels(ds: Dataset, rules: Iterable[RedactionRule]) -> bool:
    """Blank the rectangles of the first matching rule in ``ds``'s Pixel Data, in place.

    False (``ds`` untouched) when no rule matches; DeidError when the Pixel Data cannot be
    cleaned (module doc). Burned In Annotation and the method codes are the engine's business.
    """
    rule = match_rule(ds, rules)
    if rule is None:
        return False
    redact(ds, rule, little_endian=native_byte_order(ds))
    return True


def native_byte_order(ds: Dataset) -> bool:
    """True for little endian native Pixel Data, False for big; DeidError when compressed."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None:
        if syntax in NATIVE_LITTLE_ENDIAN:
            return True
        if syntax == ExplicitVRBigEndian:
            return False
        raise DeidError("pixel-data-compressed")
    # No File Meta (a data set built in memory or read with force=True): encapsulated Pixel Data
    # has an undefined length; otherwise it is native in the data set's own byte order.
    elem = ds.get(_PIXEL_DATA)
    if elem is not None and getattr(elem, "is_undefined_length", False):
        raise DeidError("pixel-data-compressed")
    return ds.original_encoding[1] is not False


def redact(ds: Dataset, rule: RedactionRule, *, little_endian: bool = True) -> None:
    """Blank ``rule``'s rectangles in the native Pixel Data of ``ds`` (in place)."""
    if _PIXEL_DATA not in ds:
        raise DeidError("burned-in-annotation", "no Pixel Data that Clean Pixel Data could clean")
    elem = ds[_PIXEL_DATA]
    if isinstance(elem, DataElement) and elem.is_undefined_length:
        raise DeidError("pixel-data-compressed")
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    samples = _int(ds.get("SamplesPerPixel"), default=1)
    bits = _int(ds.get("BitsAllocated"))
    stored = _int(ds.get("BitsStored"), default=bits)
    frames = _int(ds.get("NumberOfFrames"), default=1)
    planar = _int(ds.get("PlanarConfiguration"), default=0) if samples > 1 else 0
    signed = _int(ds.get("PixelRepresentation"), default=0) == 1
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    if min(rows, columns, samples, frames) < 1 or not 1 <= stored <= bits:
        raise DeidError("pixel-data-unsupported", "incomplete or invalid image pixel attributes")
    if bits not in (1, 8, 16, 32) or (bits == 1 and samples != 1):
        raise DeidError("pixel-data-unsupported", f"Bits Allocated {bits} is not redactable")
    if photometric in SUB_SAMPLED:
        raise DeidError("pixel-data-unsupported", f"sub-sampled colour ({photometric})")
    if planar not in (0, 1):
        raise DeidError("pixel-data-unsupported", f"Planar Configuration {planar}")
    pixels = rows * columns
    expected = (pixels * frames + 7) // 8 if bits == 1 else pixels * samples * frames * bits // 8
    data = bytearray(elem.value or b"")
    if len(data) < expected:
        raise DeidError("pixel-data-unsupported", "Pixel Data shorter than its geometry")
    boxes = [box for box in (_clip(r, rows, columns) for r in rule.rectangles) if box]
    if bits == 1:
        _blank_bits(data, boxes, pixels, columns, frames)
    else:
        width = bits // 8
        minimum = -(1 << (stored - 1)) & ((1 << bits) - 1) if signed else 0
        value = minimum.to_bytes(width, "little" if little_endian else "big")
        _blank_samples(data, boxes, value, rows, columns, samples, frames, planar)
    ds[_PIXEL_DATA].value = bytes(data)


def _clip(rect: Rectangle, rows: int, columns: int) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` (exclusive ends) inside the image, None when nothing is left."""
    x, y, width, height = rect
    x0, y0, x1, y1 = min(x, columns), min(y, rows), min(x + width, columns), min(y + height, rows)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _blank_samples(
    data: bytearray,
    boxes: list[tuple[int, int, int, int]],
    value: bytes,
    rows: int,
    columns: int,
    samples: int,
    frames: int,
    planar: int,
) -> None:
    width = len(value)
    plane = rows * columns * width  # one colour plane of one frame, in bytes
    frame_size = plane * samples
    for frame in range(frames):
        start = frame * frame_size
        for x0, y0, x1, y1 in boxes:
            for y in range(y0, y1):
                if planar == 0:  # R G B R G B ...: one run per row covers every sample
                    a = start + (y * columns + x0) * samples * width
                    b = start + (y * columns + x1) * samples * width
                    data[a:b] = value * ((x1 - x0) * samples)
                else:  # R R R ... G G G ... B B B ...: one run per row and plane
                    for s in range(samples):
                        a = start + s * plane + (y * columns + x0) * width
                        b = start + s * plane + (y * columns + x1) * width
                        data[a:b] = value * (x1 - x0)


def _blank_bits(
    data: bytearray,
    boxes: list[tuple[int, int, int, int]],
    pixels: int,
    columns: int,
    frames: int,
) -> None:
    """1-bit data: frames are packed back to back, the first pixel in the lowest bit."""
    for frame in range(frames):
        for x0, y0, x1, y1 in boxes:
            for y in range(y0, y1):
                for bit in range(
                    frame * pixels + y * columns + x0, frame * pixels + y * columns + x1
                ):
                    data[bit >> 3] &= ~(1 << (bit & 7)) & 0xFF


def _fold(value: object) -> str:
    if isinstance(value, DataElement):
        value = value.value
    return "" if value is None else str(value).strip().casefold()


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, DataElement):
        value = value.value
    if value is None or value == "":
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        return -1
