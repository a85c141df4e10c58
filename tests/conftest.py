"""Shared fixtures: the real program run once under Pulumi's mock runtime."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pacs_kit.program import ProgramRun, Project, Registration, run_program

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def project() -> Project:
    return Project.load(REPO)


@pytest.fixture(scope="session")
def plan(project: Project) -> ProgramRun:
    """The default stack (Pulumi.dev.yaml) as `pulumi up` would create it."""
    return run_program(project, "dev")


@pytest.fixture(scope="session")
def plan_with(project: Project) -> Callable[..., ProgramRun]:
    """Run the program with the dev stack's config overridden (keys without the namespace)."""

    def run(**overrides: Any) -> ProgramRun:
        config = project.stack_config("dev")
        for key, value in overrides.items():
            config[key if ":" in key else f"cloud-pacs:{key}"] = value
        return run_program(project, "dev", config=config)

    return run


# Two research projects (one with safe private attributes), as an operator would configure them.
RESEARCH_PROJECTS: list[dict[str, Any]] = [
    {
        "name": "lung-ct",
        "match": {"Modality": ["CT"], "BodyPartExamined": ["CHEST", "LUNG"]},
        "options": ["retain-safe-private", "clean-descriptors"],
        "safePrivate": ["GEMS_PARM_01:0x02"],
    },
    {"name": "teaching", "match": {"InstitutionName": ["General Hospital"]}},
]


@pytest.fixture(scope="session")
def research_plan(project: Project) -> ProgramRun:
    """The dev stack with research projects and linkage (the example stack has a federation)."""
    config = project.stack_config("dev")
    config["cloud-pacs:researchProjects"] = json.dumps(RESEARCH_PROJECTS)
    config["cloud-pacs:researchLinkage"] = "true"
    return run_program(project, "dev", config=config)


# The pack configuration that admits the one-time link function's public URL (README, "Sharing
# exports"): without it the pack refuses an exports-on stack.
EXPORTS_PACK_CONFIG: dict[str, Any] = {
    "aws-lambda-permission-require-source": {"allowPublicFunctionUrls": ["pacs-*-export-link"]}
}


@pytest.fixture(scope="session")
def exports_plan(project: Project) -> ProgramRun:
    """The dev stack with exports on (the export and one-time link functions)."""
    config = project.stack_config("dev")
    config["cloud-pacs:exportsEnabled"] = "true"
    return run_program(project, "dev", config=config)


def one(run: ProgramRun, type_token: str, name: str) -> Registration:
    """The single resource of a type and logical name; fails naming what is missing."""
    found = [r for r in run.resources if r.type == type_token and r.name == name]
    assert len(found) == 1, f"expected exactly one {type_token} named {name!r}, found {len(found)}"
    return found[0]


def policy_of(resource: Registration, prop: str = "policy") -> dict[str, Any]:
    """A JSON policy input parsed into a document."""
    value = resource.inputs[prop]
    assert isinstance(value, str), f"{resource.name}: {prop} is not a JSON string"
    document: dict[str, Any] = json.loads(value)
    return document


def statement(document: dict[str, Any], sid: str) -> dict[str, Any]:
    found = [s for s in document["Statement"] if s.get("Sid") == sid]
    assert found, (
        f"no statement {sid!r} in policy (has {[s.get('Sid') for s in document['Statement']]})"
    )
    result: dict[str, Any] = found[0]
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The policy pack's mutation score, when the campaign ran."""
    import sys

    campaign = sys.modules.get("tests.policies.mutations")
    SCORE: dict[str, bool] = getattr(campaign, "SCORE", {})
    if SCORE:
        caught = sum(SCORE.values())
        terminalreporter.write_line(
            f"policy mutation score: {caught}/{len(SCORE)} insecure variants refused "
            f"({100 * caught / len(SCORE):.0f}%)"
        )
