"""`lambdas.deid.verify`: engine output passes, and each kind of leak is caught (it can fail)."""

from __future__ import annotations

import copy
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from lambdas.deid.engine import Deidentifier
from lambdas.deid.keys import LocalKeyer
from lambdas.deid.profile import Option
from lambdas.deid.verify import Finding, dciodvfy_errors, iod_error, iod_errors_added, verify
from tests.deid.phi_factory import (
    MARKERS,
    PRIVATE_CREATOR,
    PRIVATE_ELEMENT,
    PRIVATE_GROUP,
    encode,
    hostile_ct,
    two_studies,
)

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def engine() -> Deidentifier:
    return Deidentifier(LocalKeyer(KEY))


def read_back(ds: Dataset) -> Dataset:
    """What a file written with pydicom holds."""
    return pydicom.dcmread(io.BytesIO(encode(ds)))


def codes(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.code, f.tag) for f in findings}


def test_engine_output_has_no_findings(engine: Deidentifier) -> None:
    for original in two_studies():
        output = engine.deidentify(original)
        assert verify(original, output) == [], "in memory"
        assert verify(original, read_back(output)) == [], "written and read back"


@pytest.mark.parametrize("option", list(Option), ids=str)
def test_engine_output_with_each_option_has_no_findings(option: Option) -> None:
    engine = Deidentifier(LocalKeyer(KEY), options=frozenset({option}))
    original = hostile_ct()
    output = read_back(engine.deidentify(original))
    assert verify(original, output, {option}) == []


def _set(keyword: str, value: Callable[[Dataset], object]) -> Callable[[Dataset, Dataset], None]:
    def mutate(original: Dataset, output: Dataset) -> None:
        setattr(output, keyword, value(original))

    return mutate


def _reinsert_private(original: Dataset, output: Dataset) -> None:
    block = output.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(PRIVATE_ELEMENT, "LO", "anything")


def _remap_media_storage_differently(original: Dataset, output: Dataset) -> None:
    output.file_meta.MediaStorageSOPInstanceUID = generate_uid(prefix="2.25.")


def _collide(original: Dataset, output: Dataset) -> None:
    output.SeriesInstanceUID = output.StudyInstanceUID


def _unlisted_name_copied_back(original: Dataset, output: Dataset) -> None:
    # (0014,2006) EvaluatorName has no row in Table E.1-1: the engine empties it anyway
    original.add_new(0x00142006, "PN", "Evaluator^Eve")
    output.add_new(0x00142006, "PN", "Evaluator^Eve")


def _delete(keyword: str) -> Callable[[Dataset, Dataset], None]:
    def mutate(original: Dataset, output: Dataset) -> None:
        delattr(output, keyword)

    return mutate


# mutation of a correct output -> the finding it must cause (code, tag path)
BROKEN: dict[str, tuple[Callable[[Dataset, Dataset], None], tuple[str, str]]] = {
    "patient-name-copied-back": (
        _set("PatientName", lambda o: o.PatientName),
        ("value-retained", "(0010,0010)"),
    ),
    "birth-date-copied-back": (
        _set("PatientBirthDate", lambda o: o.PatientBirthDate),
        ("value-retained", "(0010,0030)"),
    ),
    "nested-sequence-copied-back": (
        _set("RequestAttributesSequence", lambda o: copy.deepcopy(o.RequestAttributesSequence)),
        ("value-retained", "(0040,0275)>(0032,1060)"),
    ),
    "other-ids-copied-back": (
        _set("OtherPatientIDsSequence", lambda o: copy.deepcopy(o.OtherPatientIDsSequence)),
        ("value-retained", "(0010,1002)"),
    ),
    "unlisted-name-copied-back": (
        _unlisted_name_copied_back,
        ("name-retained", "(0014,2006)"),
    ),
    "private-tag-reinserted": (_reinsert_private, ("private-tag", "(0009,1001)")),
    "original-study-uid-left": (
        _set("StudyInstanceUID", lambda o: o.StudyInstanceUID),
        ("uid-retained", "(0020,000D)"),
    ),
    "original-uid-in-text": (
        _set("ImageComments", lambda o: f"copy of {o.SOPInstanceUID}"),
        ("uid-retained", "(0020,4000)"),
    ),
    "one-uid-two-replacements": (
        _remap_media_storage_differently,
        ("uid-inconsistent", "(0002,0003)"),
    ),
    "two-uids-one-replacement": (_collide, ("uid-collision", "(0020,000E)")),
    "replacement-not-a-uid": (
        _set("StudyInstanceUID", lambda o: "2.25.0123"),  # a leading zero is not allowed
        ("uid-invalid", "(0020,000D)"),
    ),
    "identity-flag-removed": (
        _delete("PatientIdentityRemoved"),
        ("identity-not-removed", "(0012,0062)"),
    ),
    "method-codes-removed": (
        _delete("DeidentificationMethodCodeSequence"),
        ("method-codes-missing", "(0012,0064)"),
    ),
}


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the invalid-UID mutation
@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_output_is_caught(engine: Deidentifier, name: str) -> None:
    # GIVEN a correct output, WHEN one leak is put back, THEN verify names it
    mutate, expected = BROKEN[name]
    original = hostile_ct()
    output = read_back(engine.deidentify(original))
    mutate(original, output)
    findings = verify(original, output)
    assert expected in codes(findings), f"{name}: {codes(findings)}"


def test_safe_private_element_allowed_only_with_the_option(engine: Deidentifier) -> None:
    original = hostile_ct()
    output = read_back(engine.deidentify(original))
    _reinsert_private(original, output)
    allow = frozenset({(PRIVATE_CREATOR, PRIVATE_ELEMENT)})
    without_option = verify(original, output, (), allow)
    assert ("private-tag", "(0009,1001)") in codes(without_option)
    with_option = verify(original, output, {Option.RETAIN_SAFE_PRIVATE}, allow)
    assert [f for f in with_option if f.code == "private-tag"] == []


def test_findings_never_quote_a_value() -> None:
    # the original against itself: every check fires
    original = hostile_ct()
    findings = verify(original, original)
    assert {f.code for f in findings} >= {
        "value-retained",
        "private-tag",
        "uid-retained",
        "identity-not-removed",
        "method-codes-missing",
    }
    text = "\n".join(f"{f.tag} {f.detail}" for f in findings)
    for name, marker in MARKERS.items():
        assert marker not in text, f"a finding quotes the {name} marker"
    assert original.SOPInstanceUID not in text and original.StudyInstanceUID not in text


@pytest.fixture(scope="module")
def dciodvfy() -> str:
    path = shutil.which("dciodvfy")
    if path is None:
        pytest.fail("dciodvfy not found: `make tools` installs dicom3tools (apt package)")
    return path


def test_dciodvfy_passes_ct_small(dciodvfy: str) -> None:
    corpus = pydicom.data.get_testdata_file("CT_small.dcm")
    assert dciodvfy_errors(str(corpus)) == []


def test_dciodvfy_reports_errors_of_an_invalid_object(dciodvfy: str, tmp_path: Path) -> None:
    ds = hostile_ct()
    del ds.Rows  # Type 1 in the Image Pixel module
    path = tmp_path / "invalid.dcm"
    path.write_bytes(encode(ds))
    errors = dciodvfy_errors(path)
    assert errors and all(line.startswith("Error") for line in errors)


def test_unlisted_prose_kept_is_a_finding(engine: Deidentifier) -> None:
    original = hostile_ct()
    output = engine.deidentify(original)
    [protocol] = output.PerformedProtocolCodeSequence
    protocol.CommentsOnTheScheduledProcedureStep = MARKERS["protocol-comments"]  # a leak
    found = codes(verify(original, output))
    assert found == {("text-retained", "(0040,0260)>(0040,0400)")}, found


def test_iod_errors_added_ignores_changed_values_and_names_new_errors(
    dciodvfy: str, tmp_path: Path
) -> None:
    original = hostile_ct()
    original.PatientSex = "Q"  # an error the input already has, with a value quoted
    before = tmp_path / "in.dcm"
    before.write_bytes(encode(original))
    output = copy.deepcopy(original)
    output.PatientSex = "X"  # the same error with another value: not new
    del output.Rows  # new: Type 1 in the Image Pixel module
    after = tmp_path / "out.dcm"
    after.write_bytes(encode(output))
    findings = iod_errors_added(before, after)
    assert findings and {f.code for f in findings} == {"iod-error-added"}
    assert any(f.tag == "Rows" for f in findings), findings
    assert not any("Sex" in f.detail for f in findings), "a changed value counted as a new error"
    for finding in findings:
        assert "<Q>" not in finding.detail and "<X>" not in finding.detail


def test_iod_error_strips_quoted_values() -> None:
    line = (
        "Error - Value invalid for this VR - (0x0010,0x0010) PN Patient's Name  PN [1] = "
        "<DOE^JOHN> - Character invalid for this VR = 'X' (0x58)"
    )
    assert "DOE" not in iod_error(line) and "'X'" not in iod_error(line)
    assert iod_error("Error - Missing attribute Type 1 Required Element=<Rows> Module=<Image>") == (
        "Error - Missing attribute Type 1 Required Element=<Rows> Module=<Image>"
    )


def test_a_report_of_published_codes_only_passes(engine: Deidentifier) -> None:
    original = hostile_ct()
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "CODE"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = (
        "121071",
        "DCM",
        "Finding",
    )
    item.ConceptNameCodeSequence = [concept]
    original.ContentSequence = [item]
    output = read_back(engine.deidentify(original))
    assert verify(original, output) == [], "a D sequence rewritten item by item is no leak"


def test_a_kept_uri_and_a_uid_inside_it_are_findings(engine: Deidentifier) -> None:
    original = hostile_ct()
    original.RetrieveURL = f"https://pacs.example/studies/{original.StudyInstanceUID}"
    output = engine.deidentify(original)
    output.RetrieveURL = original.RetrieveURL  # a leak the engine would never write
    found = codes(verify(original, output))
    assert ("text-retained", "(0008,1190)") in found, found
    assert ("uid-retained", "(0008,1190)") in found, found
