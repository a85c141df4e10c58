"""`pacs-kit check` and `pacs-kit controls`: the documented output, exit codes and errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pacs_kit.cli import main
from policies.pack import POLICIES
from tests.conftest import REPO
from tests.policies.mutations import Snapshot

PACS_KIT = [sys.executable, "-m", "pacs_kit.cli"]
FINDING_KEYS = [
    "policy",
    "urn",
    "message",
    "enforcement",
    "kind",
    "severity",
    "hipaa",
    "safeguard",
    "practice",
    "remediation",
]


def pacs_kit(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PACS_KIT, *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _weakened(snapshot: Snapshot, tmp_path: Path) -> Path:
    lock = snapshot.props(
        "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
        "imaging-archive-object-lock",
    )
    lock["rule"]["defaultRetention"]["mode"] = "GOVERNANCE"
    path = tmp_path / "weakened.json"
    path.write_text(json.dumps(snapshot.document))
    return path


def test_default_stack_passes_through_the_real_cli() -> None:
    result = pacs_kit("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(POLICIES)} policies" in result.stdout
    assert "0 mandatory violation(s)" in result.stdout


def test_plan_json_round_trips_through_check_on_stdin() -> None:
    plan = pacs_kit("plan", "--json")
    assert plan.returncode == 0, plan.stderr
    result = pacs_kit("check", "--snapshot", "-", "--json", stdin=plan.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_a_weakened_snapshot_exits_1_naming_policy_resource_safeguard_and_fix(
    snapshot: Snapshot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", "--snapshot", str(_weakened(snapshot, tmp_path))])
    out = capsys.readouterr().out
    assert code == 1
    assert "MANDATORY  aws-s3-bucket-require-object-lock  [critical]" in out
    assert "45 CFR 164.312(c)(1) Integrity" in out
    assert "SecureBucket$aws:s3/bucket:Bucket::imaging-archive" in out
    assert "Object Lock mode is 'GOVERNANCE', must be COMPLIANCE" in out
    assert "remediation: Create the bucket with object_lock_enabled=True" in out
    assert "the deployment would be refused" in out


def test_json_lists_findings_with_exactly_the_documented_keys(
    snapshot: Snapshot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", "--snapshot", str(_weakened(snapshot, tmp_path)), "--json"])
    findings: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [list(f) for f in findings] == [FINDING_KEYS]
    (finding,) = findings
    assert finding["policy"] == "aws-s3-bucket-require-object-lock"
    assert finding["enforcement"] == "mandatory" and finding["kind"] == "violation"
    assert finding["hipaa"] == "45 CFR 164.312(c)(1)"
    assert finding["urn"].endswith("::imaging-archive")


def _config(tmp_path: Path, value: Any) -> str:
    path = tmp_path / "policy-config.json"
    path.write_text(json.dumps(value))
    return str(path)


def test_an_advisory_policy_reports_but_does_not_fail(
    snapshot: Snapshot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, {"aws-s3-bucket-require-object-lock": "advisory"})
    code = main(["check", "--snapshot", str(_weakened(snapshot, tmp_path)), "--config", config])
    out = capsys.readouterr().out
    assert code == 0
    assert "ADVISORY  aws-s3-bucket-require-object-lock" in out
    assert "0 mandatory violation(s), 1 advisory" in out


def test_a_disabled_policy_is_not_run(
    snapshot: Snapshot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(
        tmp_path, {"aws-s3-bucket-require-object-lock": {"enforcementLevel": "disabled"}}
    )
    code = main(["check", "--snapshot", str(_weakened(snapshot, tmp_path)), "--config", config])
    assert code == 0
    assert f"{len(POLICIES) - 1} policies" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"aws-s3-no-such-policy": "advisory"}, "unknown policy 'aws-s3-no-such-policy'"),
        ({"aws-s3-bucket-require-versioning": "warn"}, "enforcement level 'warn' is not one of"),
        (
            {"aws-s3-bucket-require-object-lock": {"minimumRetention": 10}},
            "unknown setting(s) minimumRetention; allowed: archivePurposes, minimumRetentionDays",
        ),
        ({"all": {"minimumRetentionDays": 1}}, "'all' takes an enforcement level only"),
        (
            {"aws-kms-key-require-rotation": {"maximumRotationPeriodDays": 2000}},
            "maximumRotationPeriodDays: 2000 is above the maximum 365",
        ),
        (
            {"aws-s3-bucket-require-object-lock": {"minimumRetentionDays": "abc"}},
            "minimumRetentionDays: expected integer, got 'abc'",
        ),
        (
            {"aws-s3-bucket-require-object-lock": {"archivePurposes": ["archive", 7]}},
            "archivePurposes[1]: expected string, got 7",
        ),
    ],
)
def test_bad_pack_configuration_exits_2_naming_it(
    config: dict[str, Any],
    expected: str,
    plan_json: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    snapshot = tmp_path / "plan.json"
    snapshot.write_text(json.dumps(plan_json))
    code = main(["check", "--snapshot", str(snapshot), "--config", _config(tmp_path, config)])
    assert code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not json", "Expecting value"),
        ('{"items": []}', '{"resources": [...]}'),
        ('{"resources": [{"urn": "u", "type": "t"}]}', "resources[0]: 'name' must be"),
        ('{"resources": [{"urn": "u", "type": "t", "name": "n", "props": []}]}', "'props' must"),
    ],
)
def test_a_bad_snapshot_exits_2_naming_what_is_wrong(
    text: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(text)
    assert main(["check", "--snapshot", str(path)]) == 2
    assert expected in capsys.readouterr().err


def test_a_missing_snapshot_or_stack_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--snapshot", str(tmp_path / "absent.json")]) == 2
    assert "absent.json" in capsys.readouterr().err
    assert main(["check", "--stack", "nosuchstack"]) == 2
    assert "Pulumi.nosuchstack.yaml" in capsys.readouterr().err


def test_stack_and_snapshot_are_exclusive() -> None:
    result = pacs_kit("check", "--stack", "dev", "--snapshot", "plan.json")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


def test_an_unknown_value_is_reported_not_evaluated_and_does_not_fail(
    snapshot: Snapshot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    snapshot.props("aws:s3/bucket:Bucket", "imaging-archive")["forceDestroy"] = UNKNOWN_STRING_VALUE
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(snapshot.document))
    code = main(["check", "--snapshot", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "NOT EVALUATED  aws-s3-bucket-no-force-destroy" in out
    assert "can't be known during preview" in out


def test_bad_stack_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "infra").symlink_to(REPO / "infra", target_is_directory=True)
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  cloud-pacs:archiveRetentionMode: OFF\n"
    )
    result = subprocess.run(
        [*PACS_KIT, "check", "--stack", "broken"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout
    assert "cloud-pacs:archiveRetentionMode" in result.stderr
    assert "Traceback" not in result.stderr


def test_remediate_enforces_like_mandatory(
    snapshot: Snapshot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The analyzer reports a validation policy configured "remediate" as mandatory.
    config = _config(tmp_path, {"aws-s3-bucket-require-object-lock": "remediate"})
    code = main(["check", "--snapshot", str(_weakened(snapshot, tmp_path)), "--config", config])
    assert code == 1
    assert "MANDATORY  aws-s3-bucket-require-object-lock" in capsys.readouterr().out


def test_a_policy_that_fails_exits_2_naming_it(
    plan_json: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pulumi_policy import Severity

    from pacs_kit import check
    from policies import controls
    from policies.framework import Meta, resource_policy

    @resource_policy(
        Meta(
            id="aws-test-broken",
            description="A policy with a bug.",
            practice=controls.PRIVATE_NETWORK,
            safeguard=controls.ACCESS_CONTROL,
            severity=Severity.LOW,
            remediation="Fix the policy.",
            subjects=("aws:ec2/vpc:Vpc",),
        )
    )
    def broken(resource: Any, config: Any) -> Any:
        raise KeyError("cidrBlocks")

    monkeypatch.setattr(check, "POLICIES", (*POLICIES, broken))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_json))
    assert main(["check", "--snapshot", str(path)]) == 2
    err = capsys.readouterr().err
    assert "policy aws-test-broken failed on urn:pulumi:dev::cloud-pacs::" in err
    assert "KeyError" in err
