"""`pacs-kit validate [--json] FILE...`: the documented contract, through the real console entry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.lambdas.factory import HOSTILE, ct_bytes

KEYS = ["path", "verdict", "reasons", "sha256", "size", "sop_instance_uid", "study_instance_uid"]


def pacs_kit(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pacs_kit.cli", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("validate")
    made = {"good": root / "good.dcm"}
    made["good"].write_bytes(ct_bytes())
    for name in ("pe-polyglot", "deflate-bomb", "uid-too-long", "short-pixel-data"):
        path = root / f"{name}.dcm"
        path.write_bytes(HOSTILE[name][1]())
        made[name] = path
    return made


def test_all_accepted_exits_zero_with_one_json_object_per_line(files: dict[str, Path]) -> None:
    corpus = Path(get_testdata_file("CT_small.dcm") or "")
    result = pacs_kit("validate", "--json", files["good"], corpus)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        doc = json.loads(line)
        assert list(doc) == KEYS
        assert doc["verdict"] == "accepted" and doc["reasons"] == []
        assert len(doc["sha256"]) == 64 and doc["size"] > 0
        assert doc["sop_instance_uid"] and doc["study_instance_uid"]


def test_any_rejected_exits_one_and_names_each_reason(files: dict[str, Path]) -> None:
    hostile = [n for n in files if n != "good"]
    result = pacs_kit("validate", "--json", files["good"], *(files[n] for n in hostile))
    assert result.returncode == 1
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["verdict"] for d in docs] == ["accepted"] + ["rejected"] * len(hostile)
    for name, doc in zip(hostile, docs[1:], strict=True):
        assert HOSTILE[name][0] in [r["code"] for r in doc["reasons"]], doc
        assert all(set(r) == {"code", "message"} and r["message"] for r in doc["reasons"])


def test_a_file_that_cannot_be_opened_is_a_rejected_verdict(tmp_path: Path) -> None:
    result = pacs_kit("validate", "--json", tmp_path / "nope.dcm")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "rejected" and doc["reasons"][0]["code"] == "unreadable"
    assert doc["sha256"] is None


def test_human_output_is_one_line_per_file(files: dict[str, Path]) -> None:
    result = pacs_kit("validate", files["good"], files["pe-polyglot"])
    lines = result.stdout.splitlines()
    assert lines[0].startswith("accepted") and lines[1].startswith("rejected")
    assert "polyglot-preamble" in lines[1]


@pytest.mark.parametrize("args", [[], ["--json"], ["--max-object-mib", "0", "x.dcm"]])
def test_usage_errors_exit_two(args: list[str]) -> None:
    assert pacs_kit("validate", *args).returncode == 2


def test_size_cap_option_is_honoured(files: dict[str, Path]) -> None:
    # 1 MiB cap vs. a 39 KB file passes; the cap applies per file, so prove it refuses a larger one.
    big = files["good"].parent / "big.dcm"
    big.write_bytes(ct_bytes() + bytes(2 * 1024 * 1024))
    result = pacs_kit("validate", "--json", "--max-object-mib", "1", files["good"], big)
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert docs[0]["verdict"] == "accepted"
    assert docs[1]["reasons"][0]["code"] == "too-large"


def test_the_whole_pydicom_corpus_gets_one_exact_line_per_file() -> None:
    corpus = sorted(p for p in Path(str(get_testdata_file("CT_small.dcm"))).parent.rglob("*"))
    files = [p for p in corpus if p.is_file()]
    result = pacs_kit("validate", "--json", *files)
    assert result.returncode == 1, "the corpus holds broken files on purpose"
    assert "Traceback" not in result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["path"] for d in docs] == [str(p) for p in files]
    assert all(list(d) == KEYS for d in docs)
    verdicts = {d["verdict"] for d in docs}
    assert verdicts == {"accepted", "rejected"}
