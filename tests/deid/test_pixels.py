"""Clean Pixel Data (PS3.15 E.3.1, code 113101): rules, redaction in native pixel data, engine."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

from lambdas.deid.engine import Deidentifier, DeidError
from lambdas.deid.keys import LocalKeyer
from lambdas.deid.pixels import RedactionRule, clean_pixels, load_rules

KEY = b"p" * 32
TEXT = 250  # the value of the "burned-in text" block
# The banner: columns 1..4, rows 0..1 of a 5 x 7 image (x, y, width, height).
BANNER = (1, 0, 4, 2)
RULE = RedactionRule("ACME Medical", "Sono 5", 5, 7, (BANNER,))


@dataclass(frozen=True)
class Layout:
    bits: int = 8
    samples: int = 1
    planar: int = 0
    frames: int = 1
    signed: bool = False
    stored: int | None = None
    rows: int = 5
    columns: int = 7

    @property
    def minimum(self) -> int:
        return -(1 << ((self.stored or self.bits) - 1)) if self.signed else 0

    def order(self) -> list[tuple[int, int, int, int]]:
        """(frame, sample, y, x) in the order of the bytes, written out loop by loop."""
        cells = []
        for f in range(self.frames):
            if self.planar == 0:
                for y in range(self.rows):
                    for x in range(self.columns):
                        for s in range(self.samples):
                            cells.append((f, s, y, x))
            else:
                for s in range(self.samples):
                    for y in range(self.rows):
                        for x in range(self.columns):
                            cells.append((f, s, y, x))
        return cells


def value(layout: Layout, f: int, s: int, y: int, x: int) -> int:
    """Known pixel values: text inside the banner, a non-minimum gradient elsewhere."""
    bx, by, bw, bh = BANNER
    if bx <= x < bx + bw and by <= y < by + bh and (x + y) % 2 == 0:
        return TEXT
    v = 1 + (f * 31 + s * 7 + y * 5 + x * 3) % 97
    return -v if layout.signed and x % 2 else v


def in_banner(y: int, x: int) -> bool:
    bx, by, bw, bh = BANNER
    return bx <= x < bx + bw and by <= y < by + bh


def encode(
    layout: Layout, values: dict[tuple[int, int, int, int], int], big: bool = False
) -> bytes:
    width = layout.bits // 8
    order = "big" if big else "little"
    return b"".join(values[c].to_bytes(width, order, signed=layout.signed) for c in layout.order())


def decode(layout: Layout, data: bytes, big: bool = False) -> dict[tuple[int, int, int, int], int]:
    width = layout.bits // 8
    order = "big" if big else "little"
    return {
        cell: int.from_bytes(data[i * width : (i + 1) * width], order, signed=layout.signed)
        for i, cell in enumerate(layout.order())
    }


def originals(layout: Layout) -> dict[tuple[int, int, int, int], int]:
    return {c: value(layout, *c) for c in layout.order()}


def ultrasound(layout: Layout = Layout(), *, big: bool = False) -> FileDataset:
    meta = FileMetaDataset()
    sop_class = UltrasoundMultiFrameImageStorage if layout.frames > 1 else UltrasoundImageStorage
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRBigEndian if big else ExplicitVRLittleEndian
    ds = FileDataset("us.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "US"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-4711"
    ds.Manufacturer = "ACME Medical"
    ds.ManufacturerModelName = "Sono 5"
    ds.BurnedInAnnotation = "YES"
    ds.Rows, ds.Columns = layout.rows, layout.columns
    ds.SamplesPerPixel = layout.samples
    ds.PhotometricInterpretation = "RGB" if layout.samples == 3 else "MONOCHROME2"
    if layout.samples > 1:
        ds.PlanarConfiguration = layout.planar
    if layout.frames > 1:
        ds.NumberOfFrames = layout.frames
    ds.BitsAllocated = layout.bits
    ds.BitsStored = layout.stored or layout.bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(layout.signed)
    ds.PixelData = encode(layout, originals(layout), big)
    ds["PixelData"].VR = "OB" if layout.bits == 8 else "OW"
    return ds


def deid(ds: Dataset, rules: tuple[RedactionRule, ...] = (RULE,)) -> Dataset:
    return Deidentifier(LocalKeyer(KEY), pixel_rules=rules).deidentify(ds)


def assert_cleaned(layout: Layout, data: bytes, big: bool = False) -> None:
    before, after = originals(layout), decode(layout, data, big)
    assert any(v == TEXT for v in before.values()), "the fixture has text in the banner"
    for (f, s, y, x), old in before.items():
        expected = layout.minimum if in_banner(y, x) else old
        assert after[(f, s, y, x)] == expected, f"frame {f} sample {s} at ({x}, {y})"


LAYOUTS = [
    Layout(),
    Layout(bits=16, frames=3),
    Layout(bits=16, frames=2, signed=True, stored=12),
    Layout(bits=32),
    Layout(samples=3, planar=0, frames=2),
    Layout(samples=3, planar=1, frames=2),
    Layout(bits=16, samples=3, planar=1),
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=repr)
def test_the_rectangle_is_blanked_in_every_frame_and_sample(layout: Layout) -> None:
    ds = ultrasound(layout)
    assert clean_pixels(ds, [RULE])
    assert_cleaned(layout, ds.PixelData)


def test_big_endian_signed_minimum() -> None:
    layout = Layout(bits=16, signed=True)
    ds = ultrasound(layout, big=True)
    assert clean_pixels(ds, [RULE])
    assert_cleaned(layout, ds.PixelData, big=True)
    assert ds.PixelData[2:4] == b"\x80\x00"  # (x=1, y=0): -32768, most significant byte first


def test_pixel_array_agrees_for_colour_by_plane() -> None:
    np = pytest.importorskip("numpy")
    layout = Layout(samples=3, planar=1, frames=2)
    ds = ultrasound(layout)
    before = ds.pixel_array.copy()
    out = deid(ds)
    after = out.pixel_array  # pydicom's own reading of the layout: frames, rows, columns, samples
    bx, by, bw, bh = BANNER
    assert (after[:, by : by + bh, bx : bx + bw, :] == 0).all()
    assert (before[:, by : by + bh, bx : bx + bw, :] == TEXT).any()
    mask = np.ones(after.shape, dtype=bool)
    mask[:, by : by + bh, bx : bx + bw, :] = False
    assert (after[mask] == before[mask]).all()


def test_one_bit_frames_are_packed_across_bytes() -> None:
    rows, columns, frames = 3, 5, 3  # 15 bits a frame: frames do not start on a byte
    bits = [1] * (rows * columns * frames)
    data = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        data[i >> 3] |= bit << (i & 7)
    ds = ultrasound(Layout())
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
    ds.PixelData = bytes(data)
    assert clean_pixels(ds, [RedactionRule(None, None, None, None, ((1, 1, 2, 5),))])
    out = ds.PixelData
    for i in range(len(bits)):
        y, x = divmod(i % (rows * columns), columns)
        expected = 0 if (y >= 1 and 1 <= x < 3) else 1
        assert (out[i >> 3] >> (i & 7)) & 1 == expected, f"bit {i}"


def test_engine_releases_a_cleaned_object_with_113101_and_burned_in_no() -> None:
    layout = Layout(samples=3, planar=0, frames=2)
    ds = ultrasound(layout)
    pristine = copy.deepcopy(ds)
    out = deid(ds)
    assert out.BurnedInAnnotation == "NO"
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113101"]
    assert "Clean Pixel Data Option" in out.DeidentificationMethod
    assert_cleaned(layout, out.PixelData)
    assert ds.PixelData == pristine.PixelData, "the input is never modified"
    assert ds.BurnedInAnnotation == "YES"
    assert str(out.PatientName).startswith("PSEUDO^")


def test_matching_is_case_insensitive_on_names_and_exact_on_size() -> None:
    ds = ultrasound()
    assert RedactionRule(" acme medical ", "SONO 5", None, None, (BANNER,)).matches(ds)
    assert RedactionRule(None, None, 5, 7, (BANNER,)).matches(ds)
    assert not RedactionRule(None, None, 7, 5, (BANNER,)).matches(ds)
    assert not RedactionRule("ACME", None, None, None, (BANNER,)).matches(ds)
    assert not RedactionRule(None, "Sono 6", None, None, (BANNER,)).matches(ds)


def test_no_matching_rule_is_refused_as_before() -> None:
    other = RedactionRule("Other Vendor", None, None, None, (BANNER,))
    ds = ultrasound()
    data = ds.PixelData
    assert not clean_pixels(ds, [other])
    assert ds.PixelData == data
    for rules in ((), (other,), (RedactionRule(None, None, 480, 640, (BANNER,)),)):
        with pytest.raises(DeidError) as raised:
            deid(ultrasound(), rules)
        assert raised.value.code == "burned-in-annotation"


def test_the_first_matching_rule_wins() -> None:
    first = RedactionRule(None, None, None, None, (BANNER,))
    second = RedactionRule(None, None, None, None, ((0, 0, 7, 5),))
    out = deid(ultrasound(), (first, second))
    assert_cleaned(Layout(), out.PixelData)


def test_objects_without_burned_in_risk_are_not_cleaned() -> None:
    ds = ultrasound()
    ds.Modality, ds.SOPClassUID, ds.BurnedInAnnotation = "CT", generate_uid(), "NO"
    out = deid(ds)
    assert out.PixelData == ds.PixelData
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100"]


def test_compressed_pixel_data_is_refused_with_its_code() -> None:
    ds = ultrasound()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8 not really a JPEG \xff\xd9"])
    with pytest.raises(DeidError) as raised:
        deid(ds)
    assert raised.value.code == "pixel-data-compressed"
    with pytest.raises(DeidError) as raised:
        clean_pixels(ds, [RULE])
    assert raised.value.code == "pixel-data-compressed"
    # Not matched, not cleaned: the refusal stays burned-in-annotation.
    with pytest.raises(DeidError) as raised:
        deid(ds, ())
    assert raised.value.code == "burned-in-annotation"


def test_encapsulated_pixel_data_without_file_meta_is_refused() -> None:
    ds = ultrasound()
    del ds.file_meta
    ds.PixelData = encapsulate([b"frame"])
    ds["PixelData"].is_undefined_length = True
    with pytest.raises(DeidError) as raised:
        clean_pixels(ds, [RULE])
    assert raised.value.code == "pixel-data-compressed"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"PhotometricInterpretation": "YBR_FULL_422", "SamplesPerPixel": 3}, "unsupported"),
        ({"BitsAllocated": 12}, "unsupported"),
        ({"Rows": 50}, "unsupported"),  # Pixel Data shorter than the geometry
        ({"PixelData": None}, "burned-in-annotation"),
    ],
)
def test_layouts_that_cannot_be_redacted_are_refused(change: dict[str, object], code: str) -> None:
    ds = ultrasound()
    for keyword, new in change.items():
        if new is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, new)
    rule = RedactionRule(None, None, None, None, (BANNER,))
    with pytest.raises(DeidError) as raised:
        deid(ds, (rule,))
    expected = "pixel-data-unsupported" if code == "unsupported" else code
    assert raised.value.code == expected


def test_rectangles_are_clipped_to_the_image() -> None:
    layout = Layout()
    ds = ultrasound(layout)
    huge = RedactionRule(None, None, None, None, ((5, 3, 100, 100), (50, 50, 1, 1)))
    assert clean_pixels(ds, [huge])
    after = decode(layout, ds.PixelData)
    for (f, s, y, x), old in originals(layout).items():
        assert after[(f, s, y, x)] == (0 if x >= 5 and y >= 3 else old)


def test_load_rules_parses_lists_objects_and_nulls() -> None:
    text = json.dumps(
        [
            {"manufacturer": "ACME", "model": None, "rows": 480, "columns": 640,
             "rectangles": [[0, 0, 640, 40], {"x": 10, "y": 20, "width": 30, "height": 40}]},
            {"rectangles": [[1, 2, 3, 4]]},
        ]
    )  # fmt: skip
    assert load_rules(text) == (
        RedactionRule("ACME", None, 480, 640, ((0, 0, 640, 40), (10, 20, 30, 40))),
        RedactionRule(None, None, None, None, ((1, 2, 3, 4),)),
    )


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        ({"rectangles": []}, "not a list"),
        ([{"rectangles": [[0, 0, 1, 1]]}, {"rectangles": []}], "pixel rule 1: rectangles"),
        ([{"rows": 0, "rectangles": [[0, 0, 1, 1]]}], "pixel rule 0: rows"),
        ([{"columns": "640", "rectangles": [[0, 0, 1, 1]]}], "pixel rule 0: columns"),
        ([{"manufacturer": 7, "rectangles": [[0, 0, 1, 1]]}], "pixel rule 0: manufacturer"),
        ([{"vendor": "x", "rectangles": [[0, 0, 1, 1]]}], "pixel rule 0: vendor"),
        ([{"rectangles": [[0, 0, 1]]}], "pixel rule 0: rectangles[0]"),
        ([{"rectangles": [[0, 0, 1, 1], [0, -1, 1, 1]]}], "pixel rule 0: rectangles[1]: y"),
        ([{"rectangles": [[0, 0, 0, 1]]}], "pixel rule 0: rectangles[0]: width"),
        ([{"rectangles": [[0, 0, 1, True]]}], "pixel rule 0: rectangles[0]: height"),
        ([{"rectangles": [{"x": 0, "y": 0, "w": 1, "h": 1}]}], "pixel rule 0: rectangles[0]"),
        (["rule"], "pixel rule 0"),
    ],
)
def test_load_rules_errors_name_the_rule_and_field(doc: object, names: str) -> None:
    with pytest.raises(ValueError) as raised:
        load_rules(json.dumps(doc))
    if names == "not a list":
        assert "list" in str(raised.value)
    else:
        assert names in str(raised.value)


def test_load_rules_rejects_invalid_json() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        load_rules("[{")
