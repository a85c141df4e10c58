"""The example pipeline and the pack's project file: what users copy must run the pack."""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import REPO


def _workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (REPO / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf-8")
    )
    return document


def _runs(job: dict[str, Any]) -> list[str]:
    return [str(step["run"]) for step in job["steps"] if "run" in step]


def test_check_then_preview_then_up_each_with_the_pack() -> None:
    jobs = _workflow()["jobs"]
    assert jobs["preview"]["needs"] == "check" and jobs["deploy"]["needs"] == "preview"
    assert any(r.startswith(".venv/bin/pacs-kit check --stack") for r in _runs(jobs["check"]))
    (preview,) = [r for r in _runs(jobs["preview"]) if r.startswith("pulumi ")]
    assert preview.startswith("pulumi preview ") and "--policy-pack policies" in preview
    up = [r for r in _runs(jobs["deploy"]) if r.startswith("pulumi ")]
    assert len(up) == 1 and up[0].startswith("pulumi up ") and "--policy-pack policies" in up[0]
    # The deploy job checks again offline before `pulumi up`, and only on main.
    runs = _runs(jobs["deploy"])
    assert runs.index(next(r for r in runs if "pacs-kit check" in r)) < runs.index(up[0])
    assert "refs/heads/main" in jobs["deploy"]["if"]


def test_the_offline_check_needs_no_secrets() -> None:
    check = _workflow()["jobs"]["check"]
    assert "secrets." not in yaml.safe_dump(check)
    assert "if" not in check, "the offline check runs on every pull request"


def test_the_pack_project_file_runs_python_in_the_repository_venv() -> None:
    project = yaml.safe_load((REPO / "policies" / "PulumiPolicy.yaml").read_text(encoding="utf-8"))
    assert project["runtime"]["name"] == "python"
    venv = (REPO / "policies" / project["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == REPO / ".venv", "the pack must run in the venv `make` builds"
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "VENV   := .venv" in makefile
