"""Planted PHI never reaches the output bytes; pseudonyms are keyed and longitudinally consistent.

Outputs are written with pydicom (or by `pacs-kit deid`) and the file's bytes are searched: a leak
hidden in a nested sequence, a private block or the preamble shows up there whatever the parser
makes of it.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from lambdas.deid.engine import Deidentifier
from lambdas.deid.keys import LocalKeyer
from lambdas.deid.verify import dciodvfy_errors, verify
from tests.deid.phi_factory import (
    MARKERS,
    burned_in_ct,
    encode,
    hostile_ct,
    leaked_markers,
    two_studies,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def deidentified(ds: Dataset, key: bytes = KEY) -> Dataset:
    return Deidentifier(LocalKeyer(key)).deidentify(ds)


@pytest.fixture(scope="module")
def studies() -> tuple[Dataset, Dataset]:
    return two_studies()


@pytest.fixture(scope="module")
def outputs(studies: tuple[Dataset, Dataset]) -> tuple[bytes, bytes]:
    first, second = studies
    return encode(deidentified(first)), encode(deidentified(second))


def test_every_marker_is_in_the_input_bytes(studies: tuple[Dataset, Dataset]) -> None:
    # the byte scan below can only fail if the markers really are in what goes in
    for ds in studies:
        found = set(leaked_markers(encode(ds)))
        missing = [n for n in MARKERS if not any(f.startswith(f"{n} (") for f in found)]
        assert missing == [], f"markers not planted: {missing}"


def test_no_planted_marker_in_output_bytes(outputs: tuple[bytes, bytes]) -> None:
    for number, data in enumerate(outputs, start=1):
        assert list(leaked_markers(data)) == [], f"study {number} output leaks"


def test_output_read_back_passes_verification(
    studies: tuple[Dataset, Dataset], outputs: tuple[bytes, bytes]
) -> None:
    for original, data in zip(studies, outputs, strict=True):
        assert verify(original, pydicom.dcmread(io.BytesIO(data))) == []


def test_two_studies_of_one_patient_stay_linked(outputs: tuple[bytes, bytes]) -> None:
    first, second = (pydicom.dcmread(io.BytesIO(data)) for data in outputs)
    assert first.PatientID == second.PatientID != MARKERS["patient-id"]
    assert first.PatientName == second.PatientName
    assert first.StudyInstanceUID != second.StudyInstanceUID
    reference = second.ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert reference == first.SOPInstanceUID, "study 2 no longer points at study 1's image"


def test_uids_are_keyed_2_25_uids(outputs: tuple[bytes, bytes]) -> None:
    ds = pydicom.dcmread(io.BytesIO(outputs[0]))
    for keyword in UID_KEYWORDS:
        value = str(ds[keyword].value)
        assert value.startswith("2.25.") and len(value) <= 64, keyword
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_same_key_gives_the_same_uids_other_key_different() -> None:
    original = hostile_ct()
    first, again = deidentified(original), deidentified(original)
    other = deidentified(original, OTHER_KEY)
    for keyword in UID_KEYWORDS:
        assert first[keyword].value == again[keyword].value, f"{keyword} differs with one key"
        assert first[keyword].value != other[keyword].value, f"{keyword} same with another key"
    assert first.PatientID == again.PatientID != other.PatientID


@pytest.fixture(scope="module")
def dciodvfy() -> str:
    path = shutil.which("dciodvfy")
    if path is None:
        pytest.fail("dciodvfy not found: `make tools` installs dicom3tools (apt package)")
    return path


@pytest.mark.parametrize("source", ["CT_small", "hostile"])
def test_output_has_no_dciodvfy_error_the_input_lacked(
    dciodvfy: str, tmp_path: Path, source: str
) -> None:
    if source == "CT_small":
        original = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    else:
        original = hostile_ct()
    before, after = tmp_path / "in.dcm", tmp_path / "out.dcm"
    before.write_bytes(encode(original))
    after.write_bytes(encode(deidentified(original)))
    new = set(dciodvfy_errors(after)) - set(dciodvfy_errors(before))
    assert new == set(), f"{source}: de-identification added dciodvfy errors"


# --- `pacs-kit deid` -------------------------------------------------------------------------


def pacs_kit(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pacs_kit.cli", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "deid.key"
    path.write_bytes(KEY)
    return path


def write_inputs(directory: Path, **objects: bytes) -> list[Path]:
    directory.mkdir(exist_ok=True)
    paths = []
    for name, data in objects.items():
        path = directory / f"{name}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_cli_writes_one_clean_output_per_input(tmp_path: Path, key_file: Path) -> None:
    first, second = two_studies()
    inputs = write_inputs(tmp_path / "in", a=encode(first), b=encode(second))
    out = tmp_path / "out"
    result = pacs_kit("deid", "--key-file", key_file, "--out", out, *inputs)
    assert result.returncode == 0, result.stderr
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(written) == 2, [p.name for p in written]
    for path in written:
        data = path.read_bytes()
        assert list(leaked_markers(data)) == [], f"{path.name} leaks"
        assert pydicom.dcmread(path).PatientIdentityRemoved == "YES"
    for text in (result.stdout, result.stderr):
        assert all(marker not in text for marker in MARKERS.values()), "the CLI prints PHI"


@pytest.mark.parametrize("bad", ["burned-in", "not-dicom"])
def test_cli_exits_one_and_still_writes_the_good_input(
    tmp_path: Path, key_file: Path, bad: str
) -> None:
    bad_bytes = encode(burned_in_ct()) if bad == "burned-in" else b"this is not DICOM\n" * 20
    inputs = write_inputs(tmp_path / "in", good=encode(hostile_ct()), bad=bad_bytes)
    out = tmp_path / "out"
    result = pacs_kit("deid", "--key-file", key_file, "--out", out, *inputs)
    assert result.returncode == 1, result.stderr
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) == 1, f"expected only the good output, found {[p.name for p in written]}"
    assert pydicom.dcmread(written[0]).PatientIdentityRemoved == "YES"
    assert list(leaked_markers(written[0].read_bytes())) == []


def test_cli_refuses_a_short_key_with_exit_two(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(bytes(16))
    inputs = write_inputs(tmp_path / "in", a=encode(hostile_ct()))
    out = tmp_path / "out"
    result = pacs_kit("deid", "--key-file", short, "--out", out, *inputs)
    assert result.returncode == 2, result.stderr
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_cli_same_key_file_gives_the_same_uids_across_runs(tmp_path: Path, key_file: Path) -> None:
    original = hostile_ct()
    original.SOPInstanceUID = original.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    inputs = write_inputs(tmp_path / "in", a=encode(original))
    uids = []
    for run in ("one", "two"):
        result = pacs_kit("deid", "--key-file", key_file, "--out", tmp_path / run, *inputs)
        assert result.returncode == 0, result.stderr
        (path,) = (p for p in (tmp_path / run).rglob("*") if p.is_file())
        uids.append(pydicom.dcmread(path).SOPInstanceUID)
    assert uids[0] == uids[1] != original.SOPInstanceUID


def test_cli_profile_json_lists_every_row() -> None:
    result = pacs_kit("deid", "profile", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == 621
    assert all({"tag", "keyword", "action"} <= set(row) for row in rows)
    by_keyword = {row["keyword"]: row for row in rows if row["keyword"]}
    name = by_keyword["PatientName"]
    assert (name["tag"], name["action"]) == ("(0010,0010)", "Z")


def test_cli_profile_json_applies_options() -> None:
    result = pacs_kit("deid", "profile", "--option", "retain-patient-characteristics", "--json")
    assert result.returncode == 0, result.stderr
    by_keyword = {row["keyword"]: row for row in json.loads(result.stdout) if row["keyword"]}
    assert by_keyword["PatientSex"]["action"] == "K"
    assert by_keyword["PatientName"]["action"] == "Z"
