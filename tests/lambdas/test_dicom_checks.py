"""The validator on pydicom's corpus, on hostile files, and under byte-level fuzzing."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset, FileDataset
from pydicom.sequence import Sequence

from lambdas.dicom_checks import (
    DEFAULT_TRANSFER_SYNTAXES,
    REASONS,
    Inspection,
    ValidationPolicy,
    default_sop_classes,
    file_chunks,
    inspect_file,
    inspect_stream,
)
from tests.lambdas.factory import (
    HOSTILE,
    PHI_STRINGS,
    ct,
    ct_bytes,
    deflate_bomb,
    deflated_ct,
    encode,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the factory writes bad values

POLICY = ValidationPolicy()
CORPUS = sorted(Path(p) for p in get_testdata_files() if Path(p).is_file())


def inspect(data: bytes, policy: ValidationPolicy = POLICY) -> Inspection:
    return inspect_stream([data], policy)


def test_a_clean_ct_is_accepted_with_its_identity_and_digest() -> None:
    data = ct_bytes()
    result = inspect(data)
    assert result.accepted, result.reasons
    assert result.sha256 == hashlib.sha256(data).digest()
    assert result.size == len(data)
    assert result.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert result.sop_instance_uid and result.study_instance_uid and result.series_instance_uid


def test_a_deflated_object_within_the_cap_is_accepted() -> None:
    # Fresh UIDs change the stream's length: eight objects cover the odd lengths, which PS3.5
    # pads with one null byte after the deflate stream (not "trailing data").
    for _ in range(8):
        result = inspect(deflated_ct())
        assert result.accepted, result.reasons
        assert result.transfer_syntax_uid == "1.2.840.10008.1.2.1.99"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_rejected_with_its_reason(name: str) -> None:
    code, make = HOSTILE[name]
    result = inspect(make())
    assert not result.accepted, f"{name} was accepted"
    assert code in result.codes, f"{name}: expected {code}, got {result.codes}"


def test_deflate_bomb_is_decided_without_inflating_it_all() -> None:
    # 512 MiB of zeros compress to about 0.5 MiB; the check must stop at the ratio limit.
    result = inspect(deflate_bomb(512 * 1024 * 1024))
    assert result.codes == ("deflate-bomb",)
    assert "inflates past" in result.reasons[0].message
    inflated = int(result.reasons[0].message.split("past ")[1].split(" ")[0])
    assert inflated < 16 * 1024 * 1024, "the bomb was inflated far past the point of decision"


def test_deflate_cap_is_configurable() -> None:
    tight = ValidationPolicy(max_inflated_bytes=1024)
    assert "deflate-bomb" in inspect(deflated_ct(), tight).codes


def test_size_cap_refuses_unread_when_the_size_is_declared() -> None:
    def never() -> Iterator[bytes]:
        raise AssertionError("the body was read")
        yield b""

    small = ValidationPolicy(max_object_bytes=1000)
    result = inspect_stream(never(), small, declared_size=5000)
    assert result.codes == ("too-large",) and result.sha256 is None


def test_size_cap_stops_a_stream_that_lies_about_its_size() -> None:
    small = ValidationPolicy(max_object_bytes=1000)
    result = inspect_stream([b"\0" * 600, b"\0" * 600], small, declared_size=10)
    assert result.codes == ("too-large",)


def test_an_unreadable_path_is_a_verdict_not_an_exception(tmp_path: Path) -> None:
    result = inspect_file(tmp_path / "missing.dcm", POLICY)
    assert result.codes == ("unreadable",)
    assert inspect_file(tmp_path, POLICY).codes == ("unreadable",)


def test_transfer_syntax_allow_list_is_configurable() -> None:
    only_implicit = ValidationPolicy(transfer_syntaxes=frozenset({"1.2.840.10008.1.2"}))
    assert "transfer-syntax-unsupported" in inspect(ct_bytes(), only_implicit).codes


def test_sop_class_allow_list_is_configurable() -> None:
    only_mr = ValidationPolicy(sop_classes=frozenset({"1.2.840.10008.5.1.4.1.1.4"}))
    assert "sop-class-not-allowed" in inspect(ct_bytes(), only_mr).codes


def test_default_lists_are_storage_classes_and_image_syntaxes() -> None:
    sops = default_sop_classes()
    assert "1.2.840.10008.5.1.4.1.1.2" in sops  # CT Image Storage
    assert "1.2.840.10008.1.20.1" not in sops  # Storage Commitment is not storage
    assert "1.2.840.10008.1.3.10" not in sops  # DICOMDIR is not an instance
    assert "1.2.840.10008.1.2.2" not in DEFAULT_TRANSFER_SYNTAXES  # retired big endian


def test_messages_never_quote_patient_data() -> None:
    for name, (_, make) in HOSTILE.items():
        for reason in inspect(make()).reasons:
            assert reason.code in REASONS
            for phi in PHI_STRINGS:
                assert phi not in reason.message, f"{name}: {reason.message!r} quotes PHI"


def test_patient_id_is_kept_out_of_repr() -> None:
    result = inspect(ct_bytes())
    assert result.patient_id
    assert result.patient_id not in repr(result)


def test_chunking_does_not_change_the_verdict(tmp_path: Path) -> None:
    path = tmp_path / "ct.dcm"
    path.write_bytes(ct_bytes())
    whole = inspect_stream([path.read_bytes()], POLICY)
    chunked = inspect_stream(file_chunks(path, chunk_size=7), POLICY)
    assert whole == chunked


def _with_large_private_blob() -> bytes:
    ds = ct()
    block = ds.private_block(0x0019, "CLOUD-PACS TEST", create=True)
    block.add_new(0x10, "OB", bytes(9 * 1024 * 1024))  # past the in-memory spool and DEFER
    return encode(ds)


def test_large_values_are_deferred_and_spooled_to_disk(tmp_path: Path) -> None:
    policy = ValidationPolicy(spool_dir=str(tmp_path))
    data = _with_large_private_blob()
    assert inspect_stream([data], policy).accepted


def test_a_deferred_value_running_past_the_end_is_truncation() -> None:
    data = _with_large_private_blob()
    result = inspect(data[: len(data) - 5 * 1024 * 1024])
    assert "truncated" in result.codes


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_pydicom_test_file_gets_a_verdict(path: Path) -> None:
    result = inspect_file(path, POLICY)
    assert isinstance(result, Inspection)
    assert result.accepted or all(r.code in REASONS and r.message for r in result.reasons)
    assert result.sha256 is None or len(result.sha256) == 32


def test_the_corpus_is_split_between_verdicts() -> None:
    verdicts = [inspect_file(p, POLICY) for p in CORPUS]
    accepted = sum(v.accepted for v in verdicts)
    # A validator that accepts everything or nothing is broken, whatever else the tests say.
    assert 50 < accepted < len(CORPUS) - 20, f"{accepted} of {len(CORPUS)} accepted"
    codes = {c for v in verdicts for c in v.codes}
    assert {"truncated", "not-dicom-part10", "transfer-syntax-unsupported"} <= codes


_SEED = ct_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_SEED) - 1), st.binary(min_size=1, max_size=8)),
        min_size=1,
        max_size=8,
    ),
    cut=st.one_of(st.none(), st.integers(0, len(_SEED))),
)
def test_mutated_bytes_never_raise_out_of_the_validator(
    edits: list[tuple[int, bytes]], cut: int | None
) -> None:
    data = bytearray(_SEED)
    for offset, patch in edits:
        data[offset : offset + len(patch)] = patch
    if cut is not None:
        data = data[:cut]
    result = inspect_stream([bytes(data)], POLICY)
    assert all(r.code in REASONS for r in result.reasons)


def test_pydicom_warnings_never_carry_patient_data() -> None:
    # pydicom warns with the offending value ("Invalid value for VR UI: '<value>'"); on Lambda,
    # warnings reach the log group through stderr.
    inputs = [HOSTILE[name][1]() for name in HOSTILE]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for data in inputs:
            inspect(data)
    leaked = [str(w.message) for w in caught if any(p in str(w.message) for p in PHI_STRINGS)]
    assert leaked == []


def _with_large_sequence(item_text: str = "x" * 1000) -> FileDataset:
    ds = ct()
    items = []
    for _ in range(400):  # about 400 KB: larger than the deferral size
        item = Dataset()
        item.ImageComments = item_text
        items.append(item)
    ds.ReferencedImageSequence = Sequence(items)
    return ds


def test_a_large_sequence_is_parsed_although_deferred() -> None:
    # pydicom defers a defined-length sequence over DEFER bytes like any value; the validator
    # still reads and parses it (its items are metadata, not pixels).
    assert inspect(encode(_with_large_sequence())).accepted


def test_a_large_sequence_running_past_the_end_is_truncation() -> None:
    data = encode(_with_large_sequence())
    assert "truncated" in inspect(data[: data.index(b"x" * 1000) + 200_000]).codes
