"""emulatorEndpoint: both providers call the local emulator, for every service the stack uses."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import pulumi_aws as aws
import pytest
from pulumi.runtime import mocks as pulumi_mocks

from infra.emulator import ENDPOINT_SERVICES, SERVICE_ENDPOINTS, provider_args
from pacs_kit.program import PlanMocks, ProgramRun, Project, run_program

EMULATOR = "http://127.0.0.1:5000"
PROVIDER = "pulumi:providers:aws"
FLAGS = ("s3UsePathStyle", "skipCredentialsValidation", "skipMetadataApiCheck")
PRIVATE_CA = (
    "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/"
    "11111111-2222-4333-8444-555555555555"
)
# Every optional part of the stack on: together these runs declare every resource type and make
# every invoke the program has.
FEATURE_OVERRIDES: tuple[dict[str, Any], ...] = (
    {
        "enableGuardDuty": True,
        "enableSecurityHub": True,
        "enableAccessAnalyzer": True,
        "siemDestination": "http",
        "siemEndpointUrl": "https://siem.example.org/ingest",
    },
    {"edgeClientCaBundle": "", "edgePrivateCaArn": PRIVATE_CA, "siemDestination": "splunk",
     "siemEndpointUrl": "https://hec.example.org:8088/services/collector/raw"},
)  # fmt: skip


class _InvokeRecorder(PlanMocks):
    def __init__(self) -> None:
        super().__init__(region="us-east-1")
        self.invokes: set[str] = set()

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        self.invokes.add(args.token)
        return super().call(args)


def _module(token: str) -> str:
    """``aws:lambda/function:Function`` -> ``lambda``; ``aws:index/getPartition:…`` -> ``index``."""
    return token.split(":")[1].split("/")[0]


@pytest.fixture(scope="module")
def used_modules(project: Project) -> set[str]:
    modules: set[str] = set()
    for overrides in FEATURE_OVERRIDES:
        config = project.stack_config("dev") | {f"cloud-pacs:{k}": v for k, v in overrides.items()}
        mocks = _InvokeRecorder()
        run = run_program(project, "dev", mocks=mocks, config=config)
        modules |= {_module(r.type) for r in run.resources if r.type.startswith("aws:")}
        modules |= {_module(t) for t in mocks.invokes if t.startswith("aws:")}
    return modules


def test_the_feature_runs_reach_the_optional_services(used_modules: set[str]) -> None:
    # Guards the derivation: the runs above must really switch the optional parts on.
    assert {"guardduty", "securityhub", "accessanalyzer", "acmpca", "secretsmanager"} <= (
        used_modules
    )


def test_every_aws_module_the_stack_uses_has_its_endpoints(used_modules: set[str]) -> None:
    missing = sorted(used_modules - set(SERVICE_ENDPOINTS))
    assert not missing, f"infra/emulator.py SERVICE_ENDPOINTS lacks {missing}"
    stale = sorted(set(SERVICE_ENDPOINTS) - used_modules)
    assert not stale, f"infra/emulator.py SERVICE_ENDPOINTS names modules nothing uses: {stale}"
    for module in used_modules:
        assert set(SERVICE_ENDPOINTS[module]) <= set(ENDPOINT_SERVICES), module


def test_every_endpoint_is_a_provider_endpoint_argument() -> None:
    fields = set(inspect.signature(aws.ProviderEndpointArgs.__init__).parameters) - {"__self__"}
    assert set(ENDPOINT_SERVICES) <= fields, sorted(set(ENDPOINT_SERVICES) - fields)
    assert {"sts", "iam", "s3", "kms", "logs", "events", "elbv2", "lambda_"} <= set(
        ENDPOINT_SERVICES
    )


def test_no_endpoint_no_provider_arguments() -> None:
    assert provider_args(None) == {}


def _providers(run: ProgramRun) -> dict[str, dict[str, Any]]:
    return {p.name: p.inputs for p in run.of_type(PROVIDER)}


def test_with_an_emulator_both_providers_call_it_for_every_service(
    plan_with: Callable[..., ProgramRun],
) -> None:
    run = plan_with(emulatorEndpoint=f"{EMULATOR}/")
    providers = _providers(run)
    assert set(providers) == {"primary", "dr"}
    expected = {s.removesuffix("_"): EMULATOR for s in ENDPOINT_SERVICES}
    for name, inputs in providers.items():
        assert json.loads(inputs["endpoints"]) == [expected], name
        assert {f: inputs[f] for f in FLAGS} == dict.fromkeys(FLAGS, "true"), name
    assert (providers["primary"]["region"], providers["dr"]["region"]) == ("us-east-1", "us-west-2")
    (warning,) = [w for w in run.warnings if "emulatorEndpoint" in w]
    assert warning.startswith(f"cloud-pacs:emulatorEndpoint is {EMULATOR}: ")
    assert "not into AWS" in warning


def test_without_an_emulator_the_providers_call_aws(plan: ProgramRun) -> None:
    for name, inputs in _providers(plan).items():
        assert "endpoints" not in inputs, name
        assert "s3UsePathStyle" not in inputs and "skipMetadataApiCheck" not in inputs, name
        assert inputs.get("skipCredentialsValidation") in (None, "false"), name
    assert not any("emulatorEndpoint" in w for w in plan.warnings)


def test_the_sandbox_stack_targets_a_loopback_emulator(project: Project) -> None:
    run = run_program(project, "sandbox")
    for name, inputs in _providers(run).items():
        endpoints = json.loads(inputs["endpoints"])
        assert endpoints == [{s.removesuffix("_"): EMULATOR for s in ENDPOINT_SERVICES}], name
    assert any("emulatorEndpoint" in w for w in run.warnings)


def test_a_foreign_emulator_stops_the_program(plan_with: Callable[..., ProgramRun]) -> None:
    from infra.config import ConfigError

    with pytest.raises(ConfigError, match="cloud-pacs:emulatorEndpoint"):
        plan_with(emulatorEndpoint="https://evil.example")
