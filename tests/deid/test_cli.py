"""``pacs-kit deid`` and ``pacs-kit deid profile``: exit codes, outputs, JSON shape."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from lambdas.deid.engine import Deidentifier
from pacs_kit.cli import main
from tests.deid.test_pixels import BANNER, Layout, assert_cleaned, ultrasound


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


def broken_engine(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[Dataset, Dataset], None]
) -> None:
    """Make the engine run ``change(input, output)`` on each output: a bug the CLI must catch."""
    honest = Deidentifier.deidentify

    def broken(self: Deidentifier, ds: Dataset) -> Dataset:
        out = honest(self, ds)
        change(ds, out)
        return out

    monkeypatch.setattr(Deidentifier, "deidentify", broken)


def only_output(out: Path) -> Path:
    """The one file in ``out`` (no temporary left), named after its de-identified SOP UID."""
    [path] = list(out.iterdir())
    assert path.name == f"{pydicom.dcmread(path).SOPInstanceUID}.dcm", path.name
    assert path.name.startswith("2.25."), path.name
    return path


def test_deid_writes_one_output_per_input(
    tmp_path: Path, key_file: Path, ct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["deid", "--key-file", str(key_file), "--out", str(out), str(ct)]) == 0
    written = only_output(out)
    assert pydicom.dcmread(written).PatientIdentityRemoved == "YES"
    assert f"{ct} -> {out / written.name}" in capsys.readouterr().out


def test_deid_output_names_carry_nothing_of_the_input_name(
    tmp_path: Path, key_file: Path, ct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    named = ct.with_name("DOE_JOHN_MRN123.dcm")
    ct.rename(named)
    out = tmp_path / "out"
    assert main(["deid", "--key-file", str(key_file), "--out", str(out), str(named)]) == 0
    written = only_output(out)
    assert "DOE" not in written.name and "MRN123" not in written.name
    assert f"{named} -> {out / written.name}" in capsys.readouterr().out.splitlines()[0]


def test_deid_refuses_an_out_that_is_an_inputs_directory(
    tmp_path: Path, key_file: Path, ct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deid", "--key-file", str(key_file), "--out", str(ct.parent), str(ct)]) == 2
    assert "--out" in capsys.readouterr().err
    assert [p.name for p in ct.parent.iterdir()] == ["ct.dcm"], "nothing written next to it"


def test_deid_a_second_input_with_the_same_uid_is_not_overwritten(
    tmp_path: Path, key_file: Path, ct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twin = tmp_path / "other" / "ct.dcm"
    twin.parent.mkdir()
    shutil.copyfile(ct, twin)
    out = tmp_path / "out"
    assert main(["deid", "--key-file", str(key_file), "--out", str(out), str(ct), str(twin)]) == 1
    only_output(out)
    assert f"refused  {twin}  duplicate" in capsys.readouterr().out


def test_deid_refuses_a_non_dicom_input_with_exit_1(
    tmp_path: Path, key_file: Path, ct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom")
    out = tmp_path / "out"
    assert main(["deid", "--key-file", str(key_file), "--out", str(out), str(ct), str(junk)]) == 1
    assert "not-dicom" in capsys.readouterr().out
    only_output(out)


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


# --- --verify and --pixel-rules ------------------------------------------------------------------


def test_verify_passes_a_normal_run(
    tmp_path: Path, key_file: Path, ct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["deid", "--verify", "--key-file", str(key_file), "--out", str(out), str(ct)]
    assert main([*args[:1], "--option", "retain-long-modified-dates", *args[1:]]) == 0
    only_output(out)
    assert "deidentified" in capsys.readouterr().out


def test_verify_fails_a_leaking_engine_and_removes_its_output(
    tmp_path: Path,
    key_file: Path,
    ct: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def leaky(ds: Dataset, out: Dataset) -> None:
        out.PatientName = ds.PatientName  # the bug --verify exists for

    broken_engine(monkeypatch, leaky)
    out = tmp_path / "out"
    name = str(pydicom.dcmread(ct).PatientName)
    assert main(["deid", "--verify", "--key-file", str(key_file), "--out", str(out), str(ct)]) == 1
    assert list(out.iterdir()) == [], "no output (and no temporary) is left behind"
    printed = capsys.readouterr().out
    assert f"{ct}: value-retained (0010,0010)" in printed.splitlines()
    assert "verification-failed" in printed
    assert name not in printed, "findings never quote a value"
    # Without --verify the (broken) behaviour is unchanged: the output is written.
    assert main(["deid", "--key-file", str(key_file), "--out", str(out), str(ct)]) == 0
    only_output(out)


def _us_file(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "us.dcm"
    path.parent.mkdir(exist_ok=True)
    ultrasound(Layout(samples=3, planar=1, frames=2)).save_as(path, enforce_file_format=True)
    return path


def test_pixel_rules_release_a_cleaned_ultrasound(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    us = _us_file(tmp_path)
    out = tmp_path / "out"
    base = ["deid", "--verify", "--key-file", str(key_file), "--out", str(out)]
    assert main([*base, str(us)]) == 1
    assert "burned-in-annotation" in capsys.readouterr().out
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"manufacturer": "acme medical", "rectangles": [BANNER]}]))
    assert main([*base, "--pixel-rules", str(rules), str(us)]) == 0
    written = pydicom.dcmread(only_output(out))
    assert written.BurnedInAnnotation == "NO"
    assert "113101" in [i.CodeValue for i in written.DeidentificationMethodCodeSequence]
    assert_cleaned(Layout(samples=3, planar=1, frames=2), written.PixelData)


@pytest.mark.parametrize(
    ("content", "message"),
    [('[{"rectangles": []}]', "pixel rule 0: rectangles"), (None, "cannot read")],
)
def test_bad_pixel_rules_exit_2(
    tmp_path: Path,
    key_file: Path,
    ct: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    rules = tmp_path / "rules.json"
    if content is not None:
        rules.write_text(content)
    args = ["deid", "--pixel-rules", str(rules), "--key-file", str(key_file)]
    assert main([*args, "--out", str(tmp_path / "o"), str(ct)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_help_documents_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["deid", "--help"])
    text = capsys.readouterr().out
    assert "--verify" in text
    assert "--pixel-rules" in text
    assert "--domain" in text
    assert "cannot be joined" in " ".join(text.split())


def _deid_in(tmp_path: Path, key_file: Path, ct: Path, name: str, *domain: str) -> Dataset:
    out = tmp_path / name
    assert main(["deid", "--key-file", str(key_file), *domain, "--out", str(out), str(ct)]) == 0
    return pydicom.dcmread(only_output(out))


def test_deid_domain_separates_recipients(
    tmp_path: Path, key_file: Path, ct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    default = _deid_in(tmp_path, key_file, ct, "default")
    empty = _deid_in(tmp_path, key_file, ct, "empty", "--domain", "")
    a = _deid_in(tmp_path, key_file, ct, "a", "--domain", "project-a")
    a_again = _deid_in(tmp_path, key_file, ct, "a-again", "--domain", "project-a")
    b = _deid_in(tmp_path, key_file, ct, "b", "--domain", "project-b")
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "PatientID"):
        assert default[keyword].value == empty[keyword].value, keyword
        assert a[keyword].value == a_again[keyword].value, keyword
        assert len({default[keyword].value, a[keyword].value, b[keyword].value}) == 3, keyword


def test_verify_fails_an_output_with_a_new_iod_error(
    tmp_path: Path,
    key_file: Path,
    ct: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert shutil.which("dciodvfy"), "`make tools` installs dicom3tools"

    def breaking(ds: Dataset, out: Dataset) -> None:
        del out.Rows  # Type 1: the output is no valid CT image any more

    broken_engine(monkeypatch, breaking)
    out = tmp_path / "out"
    assert main(["deid", "--verify", "--key-file", str(key_file), "--out", str(out), str(ct)]) == 1
    assert list(out.iterdir()) == []
    assert f"{ct}: iod-error-added Rows" in capsys.readouterr().out.splitlines()


def test_verify_without_dciodvfy_warns_and_still_checks_leaks(
    tmp_path: Path,
    key_file: Path,
    ct: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "out"
    assert main(["deid", "--verify", "--key-file", str(key_file), "--out", str(out), str(ct)]) == 0
    assert "dciodvfy not found" in capsys.readouterr().err
    only_output(out)


def test_an_unexpected_failure_costs_only_its_input(
    tmp_path: Path,
    key_file: Path,
    ct: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    second = ct.parent / "second.dcm"
    ds = pydicom.dcmread(ct)
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.save_as(second)

    def buggy(ds: Dataset, out: Dataset) -> None:
        if ds.SOPInstanceUID == "1.2.3.4.5":
            raise RuntimeError("a bug")

    broken_engine(monkeypatch, buggy)
    out = tmp_path / "out"
    args = ["deid", "--key-file", str(key_file), "--out", str(out), str(second), str(ct)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert f"refused  {second}  internal-error" in captured.out
    assert "RuntimeError" in captured.err
    only_output(out)  # the other input went through


def test_an_interrupt_leaves_no_partial_file(tmp_path: Path, key_file: Path, ct: Path) -> None:
    from lambdas.deid.keys import LocalKeyer
    from pacs_kit.deid import deidentify_file

    def interrupted(*_: object) -> list[object]:
        raise KeyboardInterrupt

    out = tmp_path / "out"
    out.mkdir()
    engine = Deidentifier(LocalKeyer(key_file.read_bytes()))
    with pytest.raises(KeyboardInterrupt):
        deidentify_file(engine, ct, out, check=interrupted)
    assert list(out.iterdir()) == [], "a .part file survived the interrupt"


@pytest.mark.filterwarnings("ignore::UserWarning")  # the test plants the invalid value
def test_no_value_reaches_the_terminal(tmp_path: Path, key_file: Path, ct: Path) -> None:
    ds = pydicom.dcmread(ct)
    reference = Dataset()
    reference.add_new(0x00081155, "UI", "1.2.SMITH^JOHN")  # invalid: pydicom warns with it
    ds.ReferencedImageSequence = [reference]
    ds.save_as(ct)
    out = tmp_path / "out"
    # A real process: pydicom's warnings and log lines would reach its stderr.
    args = ["deid", "--verify", "--key-file", str(key_file), "--out", str(out), str(ct)]
    done = subprocess.run(
        [sys.executable, "-m", "pacs_kit.cli", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout
    assert "SMITH" not in done.stdout + done.stderr
