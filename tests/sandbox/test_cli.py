"""`pacs-kit sandbox` as people and CI call it: exit codes, outputs, and `make demo`'s command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pacs_kit.cli import main
from pacs_kit.program import Project
from pacs_kit.sandbox import deploy as deploy_module
from pacs_kit.sandbox import server
from pacs_kit.sandbox.cli import demo_problems, research_summary
from pacs_kit.sandbox.deploy import TrackedInputs
from pacs_kit.sandbox.emulate import Clients
from pacs_kit.sandbox.lambda_runtime import Invocation
from pacs_kit.sandbox.operate import ResearchCheck, SignatureCheck
from pacs_kit.sandbox.samples import samples
from pacs_kit.sandbox.state import SandboxState
from tests.sandbox.conftest import moto_server

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize("command", [["status"], ["ingest", "--samples"]])
def test_commands_that_need_a_sandbox_say_so_with_exit_2(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", *command, "--state-dir", str(tmp_path)]) == 2
    assert "no sandbox is up" in capsys.readouterr().err


def test_down_without_a_sandbox_is_a_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", "down", "--state-dir", str(tmp_path)]) == 0
    assert "no sandbox was running" in capsys.readouterr().out


def test_an_unknown_resource_type_stops_the_deployment_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = dict(deploy_module.TABLE)
    del table["aws:sqs/queue:Queue"]
    monkeypatch.setattr(deploy_module, "TABLE", table)
    with (
        moto_server() as url,
        pytest.raises(deploy_module.UnknownResourceType, match="aws:sqs/queue:Queue"),
    ):
        deploy_module.deploy(Project.find(), "sandbox", Clients(url))


def test_up_ingest_files_status_json_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"
    files = []
    for index, sample in enumerate(samples()[1:3]):  # the MR study and the polyglot
        path = tmp_path / f"{index}.dcm"
        path.write_bytes(sample.body)
        files.append(str(path))
    try:
        assert main(["sandbox", "up", "--state-dir", str(state_dir)]) == 0
        up_output = capsys.readouterr().out
        assert "0 unknown types" in up_output
        assert (
            "aws:lb:TrustStore edge-trust-store: moto's ELBv2 has no trust store API" in up_output
        )
        assert main(["sandbox", "up", "--state-dir", str(state_dir)]) == 2  # already up
        assert "already up" in capsys.readouterr().err

        assert main(["sandbox", "ingest", "--json", "--state-dir", str(state_dir), *files]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(d["label"], d["outcome"], d["reasons"]) for d in lines] == [
            (files[0], "archived", []),
            (files[1], "quarantined", ["polyglot-preamble"]),
        ]

        assert main(["sandbox", "status", "--json", "--state-dir", str(state_dir)]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["data"]["archived instances"] == 1
        assert status["data"]["quarantined objects"] == 1
        assert [c["id"] for c in status["checks"] if c["verdict"] != "PASS"] == [
            "backup-and-dr/archive-replication"  # N/A: moto drops the SSE-KMS selection
        ]
        assert {r["type"] for r in status["notEmulated"]} == {
            "aws:lb/trustStore:TrustStore",
            "aws:backup/selection:Selection",
            "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy",
        }

        # An auditor's read-back catches a control weakened behind the stack's back.
        state = SandboxState.load(state_dir)
        trail = state.outputs["audit"]["trailArn"]
        state.admin().client("cloudtrail", state.region).stop_logging(Name=trail)
        assert main(["sandbox", "status", "--state-dir", str(state_dir)]) == 1
        assert "FAIL  audit-to-siem/trail-logging" in capsys.readouterr().out
    finally:
        assert main(["sandbox", "down", "--state-dir", str(state_dir)]) == 0
    assert server.running(state_dir) is None
    assert not state_dir.exists(), "down leaves nothing of the sandbox behind"


def test_up_of_a_missing_stack_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"
    assert main(["sandbox", "up", "--stack", "nosuch", "--state-dir", str(state_dir)]) == 2
    assert "Pulumi.nosuch.yaml" in capsys.readouterr().err
    assert not state_dir.exists()


def test_an_interrupted_up_stops_its_emulator(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pacs_kit.cli", "sandbox", "up", "--state-dir", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while server.running(tmp_path) is None:  # the emulator is up: the deployment runs
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        emulator = server.running(tmp_path)
        assert emulator is not None
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1 and "interrupted (SIGTERM)" in err
    assert server.running(tmp_path) is None
    with pytest.raises(ProcessLookupError):
        os.kill(emulator.pid, 0)


def test_one_command_at_a_time_per_state_dir(tmp_path: Path) -> None:
    waited = threading.Event()
    with server.exclusive(tmp_path):
        other = threading.Thread(
            target=lambda: server.exclusive(tmp_path, waited.set).__enter__(), daemon=True
        )
        other.start()
        assert waited.wait(10), "a second command did not wait for the first"
        assert other.is_alive()
    other.join(10)
    assert not other.is_alive(), "the second command never got the lock"


def test_the_demo_make_demo_runs_ends_with_the_summary(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pacs_kit.cli", "sandbox", "demo", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout.split("\nSummary\n", 1)[1]
    assert "files: 2 archived, 3 quarantined (as expected)" in summary
    assert "signatures verified: 2 of 2" in summary
    assert (
        "research copies: 1 de-identified and verified (ct-research), 0 held, 1 not routed"
        in summary
    )
    assert "0 unknown types" in summary
    assert "CompressedSamples" not in result.stdout + result.stderr
    assert server.running(tmp_path) is None


def test_inputs_a_handler_never_read_are_reported() -> None:
    inputs = TrackedInputs(
        {"bucket": "b", "policy": "{}", "acl": "private", "tags": {}, "forceDestroy": True}
    )
    assert inputs["bucket"] == "b" and inputs.get("policy") == "{}"
    assert "acl" in inputs  # looking is not applying
    # empty values ("tags": {}) carry nothing; forceDestroy acts only on delete
    assert inputs.unread() == ["acl"]


@pytest.mark.parametrize(
    ("verify_result", "siem_events", "dead_letters", "problem"),
    [
        ({"checked": 2, "failed": 1}, 3, 0, "verify function"),
        ({"checked": 0, "failed": 0}, 3, 0, "verify function"),
        ({"checked": 2, "failed": 0}, 0, 0, "SIEM"),
        ({"checked": 2, "failed": 0}, 3, 1, "dead-letter"),
    ],
)
def test_the_demo_fails_when_the_kit_did_not_show_it_works(
    verify_result: dict[str, int], siem_events: int, dead_letters: int, problem: str
) -> None:
    runs = [Invocation(function="verify", trigger="schedule", request_id="r", result=verify_result)]
    signatures = [SignatureCheck("k", True, "ok")] * 2
    data = {"SIEM events received": siem_events, "dead-letter messages": dead_letters}
    problems = demo_problems([], runs, signatures, [], data, 2)
    assert len(problems) == 1 and problem in problems[0]
    ok = {"SIEM events received": 1, "dead-letter messages": 0}
    assert demo_problems([], runs[:0], signatures[:1], [], ok, 1) == [
        "the verify function's run: no run for 1 archived"
    ]


def test_the_demo_fails_when_a_research_check_fails() -> None:
    runs = [Invocation("verify", "schedule", "r", result={"checked": 2, "failed": 0})]
    signatures = [SignatureCheck("k", True, "ok")] * 2
    ok = {"SIEM events received": 1, "dead-letter messages": 0}
    copied = ResearchCheck("1.2.3", "copied", "ct-research", "derived/ct-research/x.dcm", True)
    routed = ResearchCheck("1.2.4", "not-routed", passed=True)
    assert demo_problems([], runs, signatures, [], ok, 2, [copied, routed]) == []
    leaked = ResearchCheck(
        "1.2.3", "copied", "ct-research", "derived/ct-research/x.dcm", False, "verify: ..."
    )
    missing = ResearchCheck("1.2.3", "missing", "ct-research", detail="no research-copied event")
    for failed in (leaked, missing):
        problems = demo_problems([], runs, signatures, [], ok, 2, [failed, routed])
        assert problems == [f"research ct-research of 1.2.3: {failed.detail}"]
    assert research_summary([leaked, routed]) == (
        "0 de-identified and verified, 0 held, 1 not routed, 1 NOT as expected"
    )
