"""The gateway image: what the Dockerfile copies is all the gateway imports; non-root; pinned."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

from infra.components.edge import GATEWAY_USER, SCRATCH_PATH
from tests.conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_the_image_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert users, "no USER instruction: the container would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert users[-1] == GATEWAY_USER, "the task definition names the same user"


def test_the_entry_point_is_the_gateway_module() -> None:
    assert 'ENTRYPOINT ["python", "-m", "gateway"]' in DOCKERFILE


def test_the_scratch_path_is_a_volume_the_user_can_write() -> None:
    """ECS bind-mounts the task's scratch volume at /tmp: without VOLUME and the image's own
    ownership, Fargate mounts it root-owned 0755 and the gateway cannot spool or start."""
    assert SCRATCH_PATH == "/tmp"  # the task definition's mount point
    assert re.search(r'^VOLUME \["/tmp"\]$', DOCKERFILE, flags=re.MULTILINE)
    assert "chown 10001:10001 /tmp" in DOCKERFILE and "chmod 1777 /tmp" in DOCKERFILE
    volume = DOCKERFILE.index('VOLUME ["/tmp"]')
    assert DOCKERFILE.index("chown 10001:10001 /tmp") < volume, "changes after VOLUME are lost"


def test_requirements_are_the_versions_the_tests_ran() -> None:
    for line in (REPO / "gateway" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            assert importlib.metadata.version(name) == version, name


def test_requirements_are_exact_pins() -> None:
    lines = [
        line.strip()
        for line in (REPO / "gateway" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", x) for x in lines)


def test_what_the_image_copies_is_enough_to_start_the_gateway(tmp_path: Path) -> None:
    # The image's /app: exactly the COPY lines of the Dockerfile, nothing else of the repo.
    app = tmp_path / "app"
    shutil.copytree(REPO / "gateway", app / "gateway", ignore=shutil.ignore_patterns("__pycache__"))
    (app / "lambdas").mkdir()
    for name in ("__init__.py", "dicom_checks.py"):
        shutil.copy(REPO / "lambdas" / name, app / "lambdas" / name)
    probe = (
        "import sys, gateway.app, gateway.__main__; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pulumi', 'pulumi_aws', 'pacs_kit', 'infra', 'aws_lambda_powertools')); "
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"the gateway imports {result.stdout.strip()}"
