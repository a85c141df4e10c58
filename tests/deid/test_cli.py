"""``pacs-kit deid`` and ``pacs-kit deid profile``: exit codes, outputs, JSON shape."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from pacs_kit.cli import main


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_bytes(bytes(range(32)))
    return path


@pytest.fixture
def ct(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "ct.dcm"
    path.parent.mkdir()
    shutil.copyfile(get_testdata_file("CT_small.dcm"), path)
    return path


def test_deid_writes_one_output_per_input(tmp_path: Path, key_file: Path, ct: Path) -> None:
    out = tmp_path / "out"
    assert main(["deid", "--key-file", str(key_file), "--out", str(out), str(ct)]) == 0
    assert [p.name for p in out.iterdir()] == ["ct.dcm"], "one output, no temporary left"
    assert pydicom.dcmread(out / "ct.dcm").PatientIdentityRemoved == "YES"


def test_deid_refuses_a_non_dicom_input_with_exit_1(
    tmp_path: Path, key_file: Path, ct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom")
    out = tmp_path / "out"
    assert main(["deid", "--key-file", str(key_file), "--out", str(out), str(ct), str(junk)]) == 1
    assert "not-dicom" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["ct.dcm"]


@pytest.mark.parametrize(
    "extra",
    [["--option", "retain-everything"], ["--safe-private", "no-element"]],
)
def test_deid_usage_errors_exit_2(
    tmp_path: Path, key_file: Path, ct: Path, extra: list[str]
) -> None:
    args = ["deid", "--key-file", str(key_file), "--out", str(tmp_path / "o"), *extra, str(ct)]
    assert main(args) == 2


def test_deid_short_or_missing_key_exits_2(tmp_path: Path, ct: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"x" * 31)
    assert main(["deid", "--key-file", str(short), "--out", str(tmp_path / "o"), str(ct)]) == 2
    assert main(["deid", "--out", str(tmp_path / "o"), str(ct)]) == 2
    assert not (tmp_path / "o").exists()


def test_profile_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deid", "profile", "--option", "retain-uids", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc) == 621
    assert {"tag": "(0010,0010)", "keyword": "PatientName", "action": "Z"} in doc
    assert {"tag": "(0008,0018)", "keyword": "SOPInstanceUID", "action": "K"} in doc
    assert all(list(row) == ["tag", "keyword", "action"] for row in doc)
