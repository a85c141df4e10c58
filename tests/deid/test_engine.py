"""The de-identification engine and its profile: focused behaviours (issue #8)."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from lambdas.deid.engine import Deidentifier, DeidError
from lambdas.deid.keys import LocalKeyer
from lambdas.deid.profile import ACTIONS, Option, profile, resolve

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def ct_small() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def output_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def deid(
    ds: pydicom.Dataset,
    key: bytes = KEY,
    options: frozenset[Option] = frozenset(),
    safe_private: frozenset[tuple[str, int]] = frozenset(),
) -> pydicom.Dataset:
    return Deidentifier(LocalKeyer(key), options, safe_private).deidentify(ds)


def test_identifying_values_are_gone_from_the_output_bytes() -> None:
    original = ct_small()
    original.PatientBirthDate = "19451231"  # empty in CT_small.dcm
    planted = {
        "PatientName": str(original.PatientName),
        "PatientID": original.PatientID,
        "PatientBirthDate": original.PatientBirthDate,
        "InstitutionName": original.InstitutionName,
    }
    data = output_bytes(deid(original))
    for keyword, value in planted.items():
        assert value, f"CT_small.dcm has no {keyword} to test with"
        assert value.encode() not in data, f"{keyword} left in the output bytes"


def test_input_is_not_mutated() -> None:
    original = ct_small()
    before = output_bytes(original)
    deid(original)
    assert output_bytes(original) == before


def test_same_key_same_uids_other_key_different() -> None:
    first, again, other = deid(ct_small()), deid(ct_small()), deid(ct_small(), OTHER_KEY)
    assert first.SOPInstanceUID == again.SOPInstanceUID
    assert first.StudyInstanceUID == again.StudyInstanceUID
    assert first.SOPInstanceUID != other.SOPInstanceUID
    assert first.SOPInstanceUID != ct_small().SOPInstanceUID
    assert first.SOPInstanceUID.startswith("2.25.")
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    assert first.SOPClassUID == ct_small().SOPClassUID, "a well-known SOP Class UID is kept"


def test_references_inside_sequences_follow_the_remapped_target() -> None:
    target = ct_small()
    referring = ct_small()
    referring.SOPInstanceUID = pydicom.uid.generate_uid()
    item = Dataset()
    item.ReferencedSOPClassUID = target.SOPClassUID
    item.ReferencedSOPInstanceUID = target.SOPInstanceUID
    referring.ReferencedImageSequence = Sequence([item])
    remapped_target = deid(target).SOPInstanceUID
    reference = deid(referring).ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == remapped_target
    assert reference.ReferencedSOPClassUID == target.SOPClassUID


def test_nested_text_in_a_dummied_sequence_is_replaced() -> None:
    ds = ct_small()
    item = Dataset()
    item.AccessionNumber = "ACC-PLANTED-123"
    ds.RequestAttributesSequence = Sequence([item])
    assert b"ACC-PLANTED-123" not in output_bytes(deid(ds))


def test_private_tags_are_removed_by_default() -> None:
    ds = ct_small()
    assert any(e.tag.is_private for e in ds), "CT_small.dcm has private tags"
    assert not [e.tag for e in deid(ds) if e.tag.is_private]


def test_safe_private_allow_list_keeps_listed_elements_and_their_creator() -> None:
    ds = ct_small()
    block = ds.private_block(0x0011, "PACSKIT TEST", create=True)
    block.add_new(0x01, "LO", "safe value")
    block.add_new(0x02, "LO", "unsafe value")
    out = deid(
        ds,
        options=frozenset({Option.RETAIN_SAFE_PRIVATE}),
        safe_private=frozenset({("PACSKIT TEST", 0x01)}),
    )
    kept = out.private_block(0x0011, "PACSKIT TEST")
    assert kept[0x01].value == "safe value"
    assert 0x02 not in kept
    assert not deid(ds, safe_private=frozenset({("PACSKIT TEST", 0x01)})).get(0x00111001)


@pytest.mark.parametrize("modality", ["US", "OT"])
def test_burned_in_annotation_is_refused(modality: str) -> None:
    ds = ct_small()
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(DeidError) as raised:
        deid(ds)
    assert raised.value.code == "burned-in-annotation"
    ds = ct_small()
    ds.Modality = modality
    with pytest.raises(DeidError):
        deid(ds)
    ds.BurnedInAnnotation = "NO"  # not trusted for these modalities (no pixel rule given)
    with pytest.raises(DeidError):
        deid(ds)
    ct = ct_small()
    ct.BurnedInAnnotation = "NO"
    assert deid(ct).Modality == "CT"


def test_pseudonyms_are_keyed_and_stable() -> None:
    first, again, other = deid(ct_small()), deid(ct_small()), deid(ct_small(), OTHER_KEY)
    assert first.PatientID == again.PatientID != other.PatientID
    assert str(first.PatientName) == f"PSEUDO^{first.PatientID}"
    assert len(first.PatientID) == 16


def test_deidentification_record() -> None:
    out = deid(ct_small(), options=frozenset({Option.CLEAN_DESCRIPTORS}))
    assert out.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113105"]
    assert out.LongitudinalTemporalInformationModified == "REMOVED"


def test_modified_dates_shift_by_one_offset_per_patient() -> None:
    original = ct_small()
    original.StudyDate, original.ContentDate = "20200101", "20200111"
    out = deid(original, options=frozenset({Option.RETAIN_LONG_MODIFIED_DATES}))
    assert out.StudyDate != "20200101"
    study = pydicom.valuerep.DA(out.StudyDate)
    content = pydicom.valuerep.DA(out.ContentDate)
    assert (content - study).days == 10, "the interval is preserved"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_retain_patient_characteristics_keeps_patient_sex() -> None:
    assert ct_small().PatientSex, "CT_small.dcm has a PatientSex to test with"
    assert not deid(ct_small()).PatientSex
    kept = deid(ct_small(), options=frozenset({Option.RETAIN_PATIENT_CHARACTERISTICS}))
    assert kept.PatientSex == ct_small().PatientSex


def test_retain_uids_keeps_uids() -> None:
    out = deid(ct_small(), options=frozenset({Option.RETAIN_UIDS}))
    assert out.SOPInstanceUID == ct_small().SOPInstanceUID


def test_profile_covers_the_621_rows_with_allowed_actions() -> None:
    rules = profile()
    assert len(rules) == 621
    assert {r.action for r in rules} <= ACTIONS
    assert {resolve(r.action) for r in rules} <= {"D", "Z", "X", "K", "C", "U"}
    name = next(r for r in rules if r.tag == "(0010,0010)")
    assert (name.keyword, name.action) == ("PatientName", "Z")
    assert any(r.tag == "(50XX,XXXX)" for r in rules)


def test_options_change_the_profile() -> None:
    def action(options: set[Option], keyword: str) -> str:
        return next(r.action for r in profile(options) if r.keyword == keyword)

    assert action(set(), "PatientSex") == "Z"
    assert action({Option.RETAIN_PATIENT_CHARACTERISTICS}, "PatientSex") == "K"
    assert action({Option.RETAIN_UIDS}, "SOPInstanceUID") == "K"
    assert action({Option.RETAIN_LONG_FULL_DATES}, "StudyDate") == "K"
    assert action({Option.RETAIN_LONG_MODIFIED_DATES}, "StudyDate") == "C"


def test_exclusive_and_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match=r"retain-long-full-dates.*retain-long-modified-dates"):
        profile({Option.RETAIN_LONG_FULL_DATES, Option.RETAIN_LONG_MODIFIED_DATES})
    with pytest.raises(ValueError, match="allowed: retain-safe-private"):
        Option.parse("retain-everything")


def test_conditional_actions_resolve_conservatively() -> None:
    assert [resolve(a) for a in ("X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*", "K")] == [
        "Z",
        "D",
        "D",
        "D",
        "U",
        "K",
    ]


def test_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        LocalKeyer(b"short")


def _written(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def test_unlisted_names_are_emptied_and_unlisted_dates_removed() -> None:
    original = ct_small()
    original.add_new(0x00140104, "PN", "PHISECONDREVIEWER")  # SecondaryReviewerName
    original.add_new(0x00142006, "PN", "PHIEVALUATOR")  # EvaluatorName
    original.add_new(0x0008041F, "DT", "19870319080000")  # StudyUpdateDateTime
    out = deid(original)
    data = _written(out)
    for planted in (b"PHISECONDREVIEWER", b"PHIEVALUATOR", b"19870319"):
        assert planted not in data
    assert 0x00142006 in out and not out[0x00142006].value, "a name with no row becomes Z"
    assert 0x0008041F not in out, "a date with no row is removed"
    kept = deid(original, options=frozenset({Option.RETAIN_LONG_FULL_DATES}))
    assert kept[0x0008041F].value == "19870319080000"
    shifted = deid(original, options=frozenset({Option.RETAIN_LONG_MODIFIED_DATES}))
    assert b"19870319" not in _written(shifted)
    assert len(shifted[0x0008041F].value) == 14


def test_overlay_and_curve_text_is_removed() -> None:
    original = ct_small()
    original.add_new(0x60000022, "LO", "PHIOVERLAYDESC")  # OverlayDescription
    original.add_new(0x60001500, "LO", "PHIOVERLAYLABEL")  # OverlayLabel
    original.add_new(0x50002500, "LO", "PHICURVELABEL")  # CurveLabel
    data = _written(deid(original))
    for planted in (b"PHIOVERLAYDESC", b"PHIOVERLAYLABEL", b"PHICURVELABEL"):
        assert planted not in data


def test_clean_graphics_removes_bitmaps_of_implicit_vr_input() -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "1.2.3.9"
    ds.Modality = "CT"
    ds.PatientID = "X"
    ds.add_new(0x60000010, "US", 2)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60003000, "OW", b"PHIOVERLAYBITS!!")
    ds.add_new(0x50003000, "OW", b"PHICURVEDATA!!!!")
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta
    source = pydicom.dcmread(io.BytesIO(_written(ds)))
    assert source.get_item(0x60003000).VR is None, "implicit VR: the engine sees 'OB or OW'"
    for options in (frozenset(), frozenset({Option.CLEAN_GRAPHICS})):
        data = _written(deid(source, options=options))
        assert b"PHIOVERLAYBITS" not in data
        assert b"PHICURVEDATA" not in data


def test_modified_dates_shift_both_ends_of_a_range() -> None:
    original = ct_small()
    original.add_new(0x00400244, "DA", "20200101-20200131")  # PerformedProcedureStepStartDate
    original.add_new(0x0040A032, "DT", "20200101-20200131")  # ObservationDateTime
    original.StudyDate = "20200101"
    out = deid(original, options=frozenset({Option.RETAIN_LONG_MODIFIED_DATES}))
    study = pydicom.valuerep.DA(out.StudyDate)
    for tag in (0x00400244, 0x0040A032):
        start, end = str(out[tag].value).split("-")
        assert start == out.StudyDate
        assert (pydicom.valuerep.DA(end[:8]) - study).days == 30
    assert b"20200131" not in _written(out)


# --- domains: one key, per-recipient pseudonyms ----------------------------------------------


def _domain_input() -> Dataset:
    ds = Dataset()
    ds.PatientID = "MRN123"
    ds.PatientName = "DOE^JOHN"
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.StudyDate = "20200102"
    return ds


def _in_domain(domain: str, key: bytes = KEY) -> Dataset:
    engine = Deidentifier(
        LocalKeyer(key), frozenset({Option.RETAIN_LONG_MODIFIED_DATES}), domain=domain
    )
    return engine.deidentify(_domain_input())


def test_the_empty_domain_keeps_the_values_from_before_domains() -> None:
    # Computed before domains existed: existing outputs and linkage records stay valid.
    out = _in_domain("")
    assert out.PatientID == "7EC4B589C9090239"
    assert out.PatientName == "PSEUDO^7EC4B589C9090239"
    assert out.SOPInstanceUID == "2.25.240710007927930545685037786673912305970"
    assert out.StudyDate == "20130514"
    assert Deidentifier(LocalKeyer(KEY)).domain == ""


def test_one_domain_gives_the_same_pseudonyms_every_time() -> None:
    first, second = _in_domain("lung-ct"), _in_domain("lung-ct")
    for keyword in ("PatientID", "PatientName", "SOPInstanceUID", "StudyDate"):
        assert first[keyword].value == second[keyword].value, keyword


def test_different_domains_cannot_be_joined() -> None:
    a, b, none = _in_domain("project-a"), _in_domain("project-b"), _in_domain("")
    for keyword in ("PatientID", "PatientName", "SOPInstanceUID", "StudyDate"):
        values = {str(a[keyword].value), str(b[keyword].value), str(none[keyword].value)}
        assert len(values) == 3, f"{keyword} is shared between domains: {values}"
    assert str(a.SOPInstanceUID).startswith("2.25.")


def test_a_domain_with_a_nul_is_refused() -> None:
    # The NUL ends the domain in the MAC input: "a\0uid:x" must not be writable as a domain.
    with pytest.raises(ValueError, match="domain"):
        Deidentifier(LocalKeyer(KEY), domain="a\0b")


# --- patients without a PatientID ---------------------------------------------------------------


def _unidentified(name: str, birth: str, study: str) -> Dataset:
    ds = ct_small()
    ds.PatientID = ""
    ds.PatientName = name
    ds.PatientBirthDate = birth
    ds.StudyInstanceUID = study
    return ds


def test_patients_without_an_id_do_not_share_a_pseudonym() -> None:
    doe = deid(_unidentified("DOE^JANE", "19600101", "1.2.3.1"))
    roe = deid(_unidentified("ROE^RICHARD", "19700202", "1.2.3.2"))
    assert doe.PatientID != roe.PatientID, "two unidentified patients got one pseudonym"
    # The same unidentified patient in another study stays linked (name and birth date).
    again = deid(_unidentified("DOE^JANE", "19600101", "1.2.3.3"))
    assert again.PatientID == doe.PatientID
    assert again.PatientName == doe.PatientName == "PSEUDO^" + doe.PatientID


def test_objects_naming_no_patient_get_one_pseudonym_per_study() -> None:
    first = deid(_unidentified("", "", "1.2.3.1"))
    other = deid(_unidentified("", "", "1.2.3.2"))
    same = deid(_unidentified("", "", "1.2.3.1"))
    assert first.PatientID != other.PatientID and first.PatientID == same.PatientID


def test_a_patient_id_keeps_the_pseudonym_it_always_had() -> None:
    # issuer\id is the MAC input as before the fallbacks: existing pseudonyms do not change.
    import hashlib
    import hmac

    ds = ct_small()
    expected = hmac.digest(KEY, b"patient-id:\\" + ds.PatientID.encode(), hashlib.sha256)
    assert deid(ds).PatientID == expected[:8].hex().upper()


# --- free prose and codes --------------------------------------------------------------------


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def test_unlisted_prose_is_dummied_at_any_depth_and_short_codes_kept() -> None:
    ds = ct_small()
    ds.CommentsOnTheScheduledProcedureStep = "call Mrs Doe at home"
    protocol = _code("P1", "99LOCAL", "CT HEAD ROUTINE")
    protocol.CommentsOnTheScheduledProcedureStep = "per Dr Who"
    ds.PerformedProtocolCodeSequence = [protocol]
    out = deid(ds)
    assert out.CommentsOnTheScheduledProcedureStep == "DEIDENTIFIED"
    [item] = out.PerformedProtocolCodeSequence
    assert item.CommentsOnTheScheduledProcedureStep == "DEIDENTIFIED"
    assert (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning) == (
        "P1",
        "99LOCAL",
        "CT HEAD ROUTINE",
    ), "an unlisted code sequence of a kept object keeps its short codes"


def _report_item(concept: Dataset, text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = [concept]
    item.TextValue = text
    return item


def test_clean_structured_content_keeps_standard_codes_and_cleans_text() -> None:
    ds = ct_small()
    finding = _code("121071", "DCM", "Finding")
    local = _code("L7", "99LOCAL", "Dr Who's impression")
    ds.ContentSequence = [
        _report_item(finding, "Mass seen, see Mr Doe's notes"),
        _report_item(local, "call 555-0100"),
    ]
    out = deid(ds, options=frozenset({Option.CLEAN_STRUCTURED_CONTENT}))
    standard, other = out.ContentSequence
    [concept] = standard.ConceptNameCodeSequence
    assert (concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning) == (
        "121071",
        "DCM",
        "Finding",
    ), "a DCM concept name is published vocabulary: kept"
    assert standard.TextValue == "CLEANED" and other.TextValue == "CLEANED"
    [local_concept] = other.ConceptNameCodeSequence
    assert local_concept.CodeMeaning == "CLEANED", "a local scheme's meaning is cleaned like text"
    assert standard.RelationshipType == "CONTAINS" and standard.ValueType == "TEXT"
    # Without the option the whole Content Sequence is dummied (table: D): no text survives.
    dummied = deid(ds)
    data = output_bytes(dummied)
    assert b"Doe" not in data and b"555-0100" not in data and b"Who" not in data


# --- review findings: encodings and attributes the table does not list ------------------------


def test_a_known_sequence_encoded_as_un_is_processed_as_a_sequence() -> None:
    ds = ct_small()
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "P1", "99LOCAL", "HEAD"
    item.PatientName = "UNSEQNAME^LEAK"
    item.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    ds.PerformedProtocolCodeSequence = [item]
    # Re-encode the sequence as UN: implicit VR content, undefined length (PS3.5 6.2.2).
    data = bytearray(output_bytes(ds))
    header = (0x0040).to_bytes(2, "little") + (0x0260).to_bytes(2, "little") + b"SQ"
    at = data.index(header)
    data[at + 4 : at + 6] = b"UN"
    raw = pydicom.dcmread(io.BytesIO(bytes(data)))
    assert raw.get_item(0x00400260).VR == "UN", "the test input must carry the sequence as UN"
    result = deid(raw)
    out = output_bytes(result)
    assert b"UNSEQNAME" not in out, "a name inside a UN-encoded sequence was copied verbatim"
    assert b"1.2.3.4.5.6.7.8.9" not in out, "a UID inside a UN-encoded sequence was not remapped"
    # Processed as the sequence it is, not dropped: the code stays, the UID is a keyed one.
    [kept] = pydicom.dcmread(io.BytesIO(out)).PerformedProtocolCodeSequence
    assert kept.CodeValue == "P1" and kept.ReferencedSOPInstanceUID.startswith("2.25.")


def test_unknown_public_elements_and_uris_are_removed() -> None:
    ds = ct_small()
    ds.RetrieveURL = f"https://pacs.example/studies/{ds.StudyInstanceUID}"
    ds.add_new(0x0074100A, "UR", "mailto:jane.doe@example.org")  # Contact URI
    ds.add_new(0x0008040B, "LO", "DOE_JANE_MRN4242.dcm")  # File Name in Container
    ds.add_new(0x00100033, "LO", "5706-04-19")  # birth date, alternative calendar
    ds.add_new(0x00400241, "AE", "CT_DOE_ROOM")  # Performed Station AE Title: listed
    ds.add_new(0x00080119, "UC", "LONGCODELEAK")  # unlisted UC: prose
    ds.add_new(0x7FFF0010, "LO", "UNKNOWNPUBLICLEAK")  # a public tag no dictionary knows
    original = str(ds.StudyInstanceUID)
    data = output_bytes(deid(ds))
    for leak in (original, b"jane.doe", b"DOE_JANE", b"5706-04-19", b"CT_DOE", b"LONGCODELEAK"):
        text = leak if isinstance(leak, bytes) else leak.encode()
        assert text not in data, f"{text!r} left in the output bytes"
    assert b"UNKNOWNPUBLICLEAK" not in data


def test_class_uids_are_never_remapped() -> None:
    ds = ct_small()
    private_class = "1.2.840.113619.4.30"  # a vendor SOP class pydicom does not know
    ds.SOPClassUID = private_class
    ds.file_meta.MediaStorageSOPClassUID = private_class
    reference = Dataset()
    reference.ReferencedSOPClassUID = private_class
    reference.ReferencedSOPInstanceUID = "1.2.3.4.5.6"
    ds.ReferencedImageSequence = [reference]
    out = deid(ds)
    assert out.SOPClassUID == out.file_meta.MediaStorageSOPClassUID == private_class
    [item] = out.ReferencedImageSequence
    assert item.ReferencedSOPClassUID == private_class
    assert item.ReferencedSOPInstanceUID != "1.2.3.4.5.6", "instance UIDs are still remapped"


def test_a_published_code_gets_the_published_meaning_not_the_inputs() -> None:
    ds = ct_small()
    ds.ContentSequence = [_report_item(_code("121071", "DCM", "Mr Doe's finding"), "text")]
    for options in (frozenset(), frozenset({Option.CLEAN_STRUCTURED_CONTENT})):
        out = deid(ds, options=options)
        [concept] = out.ContentSequence[0].ConceptNameCodeSequence
        assert concept.CodeMeaning == "Finding", options
        assert b"Doe" not in output_bytes(out)


def test_a_screen_shot_is_held_whatever_its_class_says() -> None:
    ds = ct_small()
    ds.BurnedInAnnotation = "NO"
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SHOT"]
    with pytest.raises(DeidError) as held:
        deid(ds)
    assert held.value.code == "burned-in-annotation"
    ds.ImageType = "ORIGINAL"  # a single value is no list of characters
    deid(ds)


def test_deidentify_emits_no_warning_that_could_quote_a_value(
    recwarn: pytest.WarningsRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    ds = ct_small()
    ds.add_new(0x00081140, "SQ", [Dataset()])
    ds.ReferencedImageSequence[0].add_new(0x00081155, "UI", "1.2.SMITH^JOHN")
    data = output_bytes(ds)
    recwarn.clear()
    caplog.clear()
    deid(pydicom.dcmread(io.BytesIO(data)))
    assert [str(w.message) for w in recwarn if "SMITH" in str(w.message)] == []
    assert "SMITH" not in caplog.text
