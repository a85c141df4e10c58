"""The whole program: explicit providers, current pulumi-aws classes, components, outputs."""

from __future__ import annotations

import importlib
import inspect
import keyword
from collections.abc import Callable

import pytest

from pacs_kit.program import ProgramRun


def aws_class(type_token: str) -> type:
    """``aws:s3/bucketPolicy:BucketPolicy`` -> ``pulumi_aws.s3.BucketPolicy``."""
    _, module, name = type_token.split(":")
    package = module.split("/")[0]
    # Python modules cannot be named after keywords: aws:lambda/... lives in pulumi_aws.lambda_.
    package = f"{package}_" if keyword.iskeyword(package) else package
    target = importlib.import_module(
        "pulumi_aws" if package == "index" else f"pulumi_aws.{package}"
    )
    cls: type = getattr(target, name)
    return cls


def test_every_aws_resource_uses_a_current_class(plan: ProgramRun) -> None:
    for token in sorted({r.type for r in plan.resources if r.type.startswith("aws:")}):
        source = inspect.getsource(aws_class(token))
        assert "has been deprecated" not in source, f"{token} is a deprecated pulumi-aws class"
        assert not token.split(":")[-1].endswith("V2"), f"{token}: use the non-V2 class"


def test_no_resource_falls_back_to_a_default_provider(plan: ProgramRun) -> None:
    providers = {r.urn: r for r in plan.of_type("pulumi:providers:aws")}
    assert {p.name for p in providers.values()} == {"primary", "dr"}
    for r in plan.resources:
        if r.custom and r.type.startswith("aws:"):
            assert r.provider in providers, f"{r.urn} uses provider {r.provider!r}"


def test_providers_target_the_configured_regions(plan: ProgramRun) -> None:
    regions = {p.name: p.inputs["region"] for p in plan.of_type("pulumi:providers:aws")}
    assert regions == {"primary": "us-east-1", "dr": "us-west-2"}


def test_dr_resources_live_in_the_dr_region(plan: ProgramRun) -> None:
    dr = next(p.urn for p in plan.of_type("pulumi:providers:aws") if p.name == "dr")
    in_dr = {r.name for r in plan.resources if r.provider == dr}
    assert {"dr-keys-backup", "dr-replica", "dr-dr-vault", "dr-access-logs"} <= in_dr
    assert "imaging-archive" not in in_dr


def test_components_use_the_kit_type_tokens_and_parent_their_children(plan: ProgramRun) -> None:
    components = {r.type for r in plan.resources if not r.custom}
    assert components == {
        "cloud-pacs:network:PrivateNetwork",
        "cloud-pacs:keys:KeyRing",
        "cloud-pacs:archive:ImagingArchive",
        "cloud-pacs:storage:SecureBucket",
        "cloud-pacs:dr:DisasterRecovery",
        "cloud-pacs:ingest:IngestPipeline",
        "cloud-pacs:edge:EdgeGateway",
        "cloud-pacs:audit:Audit",
        "cloud-pacs:identity:Identity",
        "cloud-pacs:identity:PermissionsBoundary",
    }
    for r in plan.resources:
        if r.custom and not r.type.startswith("pulumi:providers:"):
            assert r.parent, f"{r.urn} is not parented to a component"


def test_outputs_state_recovery_objectives(plan: ProgramRun) -> None:
    objectives = plan.outputs["recoveryObjectives"]
    assert objectives["rpoMinutes"] == 15
    assert objectives["archiveReplicationSlaMinutes"] == 15
    assert objectives["indexBackupIntervalMinutes"] == 60
    assert objectives["rtoMinutes"] == 240
    assert objectives["runbook"] == "docs/runbooks/restore.md"


def test_runbook_named_in_outputs_exists(plan: ProgramRun) -> None:
    from tests.conftest import REPO

    assert (REPO / plan.outputs["recoveryObjectives"]["runbook"]).is_file()


def test_governance_mode_reaches_the_engine_as_a_warning(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(archiveRetentionMode="GOVERNANCE")
    assert any("GOVERNANCE" in w for w in run.warnings), run.warnings


@pytest.mark.parametrize("environment", ["prod", "eu-prod-2"])
def test_environment_prefixes_physical_names(
    plan_with: Callable[..., ProgramRun], environment: str
) -> None:
    run = plan_with(environment=environment)
    names = [r.inputs["bucket"] for r in run.of_type("aws:s3/bucket:Bucket")]
    assert names and all(n.startswith(f"pacs-{environment}-") for n in names)
    assert all(len(n) <= 63 for n in names), names


def test_keys_worm_buckets_and_vaults_are_protected_from_destroy(plan: ProgramRun) -> None:
    protected = {r.name for r in plan.resources if r.protect}
    assert protected == {
        "keys-archive",
        "keys-logs",
        "keys-backup",
        "keys-signing",
        "keys-pseudonym",
        "keys-edge",
        "dr-keys-backup",
        "imaging-archive",
        "imaging-quarantine",
        "dr-replica",
        "dr-vault",
        "dr-dr-vault",
        "audit-audit-trail",
    }
