"""Deploy the real Pulumi program into the emulator: every registration becomes a boto3 create.

The program runs under Pulumi's mock runtime through the same runner as ``pacs-kit plan``
(:func:`pacs_kit.program.run_program`); :class:`SandboxMocks` answers each registration by
creating the resource in the emulator with the handler :mod:`pacs_kit.sandbox.resources` names
for its type, and hands the emulator's ids and ARNs back to the program, so dependent resources
are wired with real values. A type the emulator cannot represent is recorded as not emulated,
with the reason; a type the table does not know stops the deployment, naming it.
"""

from __future__ import annotations

import functools
import importlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from pulumi.runtime import mocks as pulumi_mocks

from pacs_kit.program import PlanMocks, ProgramRun, Project, run_program
from pacs_kit.sandbox.emulate import Clients, Context, NotEmulated
from pacs_kit.sandbox.resources import TABLE

Status = Literal["created", "not-emulated", "component", "provider"]


# Inputs that act only when a resource is deleted; the sandbox never deletes one (`down` stops
# the emulator), so they have nothing to apply.
DESTROY_TIME_INPUTS = frozenset(
    {"forceDestroy", "forceDelete", "deletionWindowInDays", "recoveryWindowInDays"}
)


class TrackedInputs(dict[str, Any]):
    """Inputs that remember which keys a handler read, so nothing is dropped unnoticed."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def items(self) -> Any:
        self.read.update(self.keys())
        return super().items()

    def unread(self) -> list[str]:
        values = dict(super().items())
        empty: tuple[Any, ...] = (None, "", [], {})
        return sorted(
            k
            for k, v in values.items()
            if k not in self.read and k not in DESTROY_TIME_INPUTS and v not in empty
        )


class UnknownResourceType(RuntimeError):
    """The program declared a type the sandbox's table has no entry for."""


class ResourceCreateError(RuntimeError):
    """The emulator refused a resource: names the resource, its type and the emulator's error."""


@dataclass
class Outcome:
    """What became of one registration in the emulator."""

    type: str
    name: str
    status: Status
    id: str
    notes: list[str] = field(default_factory=list)  # limits of a created resource, or the reason
    outputs: dict[str, Any] = field(default_factory=dict)


class SandboxMocks(PlanMocks):
    """Mocks whose resources are real: created in the emulator, answered with its outputs."""

    def __init__(self, clients: Clients, region: str, account_id: str) -> None:
        super().__init__(region=region, account_id=account_id)
        self.clients = clients
        self._default_tags: dict[str, dict[str, str]] = {}  # provider name -> defaultTags
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        region = self.region_of(args.provider)
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            who = self.clients.client("sts", region).get_caller_identity()
            return {
                "accountId": who["Account"],
                "arn": who["Arn"],
                "userId": who["UserId"],
                "id": who["Account"],
            }
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            zones = self.clients.client("ec2", region).describe_availability_zones()
            available = [z for z in zones["AvailabilityZones"] if z["State"] == "available"]
            return {
                "names": [z["ZoneName"] for z in available],
                "zoneIds": [z["ZoneId"] for z in available],
                "id": region,
            }
        return super().call(args)

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "pulumi:providers:aws":
            # A provider's structured settings reach it as JSON text, as the engine sends them.
            defaults = args.inputs.get("defaultTags") or {}
            if isinstance(defaults, str):
                defaults = json.loads(defaults)
            tags = defaults.get("tags") or {}
            self._default_tags[args.name] = {str(k): str(v) for k, v in tags.items()}
        if args.typ == "pulumi:providers:aws" or not args.custom:
            resource_id, state = super().new_resource(args)
            status: Status = "provider" if args.custom else "component"
            self._record(Outcome(args.typ, args.name, status, resource_id, outputs=state))
            return resource_id, state
        handler = TABLE.get(args.typ)
        if handler is None:
            raise UnknownResourceType(
                f"the sandbox has no emulation for resource type {args.typ} ({args.name}): "
                "add it to pacs_kit/sandbox/resources.py"
            )
        inputs = TrackedInputs(self._with_default_tags(args))
        context = Context(
            clients=self.clients,
            account_id=self.account_id,
            region=self.region_of(args.provider),
            name=args.name,
            type=args.typ,
        )
        # One create at a time: the program's registrations arrive from several threads, and
        # creates that AWS orders through dependencies must not race in the emulator.
        with self._lock:
            try:
                resource_id, derived = handler(context, inputs)
            except NotEmulated as exc:
                resource_id, state = super().new_resource(args)
                self._record(
                    Outcome(args.typ, args.name, "not-emulated", resource_id, [exc.reason], state)
                )
                return resource_id, state
            except Exception as exc:
                raise ResourceCreateError(
                    f"creating {args.typ} {args.name} in the emulator failed: {exc}"
                ) from exc
        unread = inputs.unread()
        if unread:
            context.note(f"inputs the sandbox did not apply: {', '.join(unread)}")
        state = {**inputs, **derived}
        self._record(Outcome(args.typ, args.name, "created", resource_id, context.notes, state))
        return resource_id, state

    def _with_default_tags(self, args: pulumi_mocks.MockResourceArgs) -> dict[str, Any]:
        """The inputs with the provider's default tags merged in, as the AWS provider does for
        every taggable resource (the resource's own tags win)."""
        inputs = dict(args.inputs)
        parts = (args.provider or "").rsplit("::", 2)
        defaults = self._default_tags.get(parts[-2] if len(parts) == 3 else "", {})
        if defaults and taggable(args.typ):
            inputs["tags"] = {**defaults, **(inputs.get("tags") or {})}
        return inputs

    def _record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


@functools.cache
def taggable(type_token: str) -> bool:
    """Whether the pulumi-aws resource of ``type_token`` takes ``tags``."""
    _, module, name = type_token.split(":")
    package = module.split("/")[0]
    try:
        sdk = importlib.import_module(
            f"pulumi_aws.{package}_" if package == "lambda" else f"pulumi_aws.{package}"
        )
    except ImportError:
        return False
    return hasattr(getattr(sdk, f"{name}Args", None), "tags")


@dataclass
class Deployment:
    """The program's run against the emulator, and what became of each resource."""

    run: ProgramRun
    outcomes: list[Outcome]


def deploy(
    project: Project,
    stack: str,
    clients: Clients,
    config: dict[str, Any] | None = None,
) -> Deployment:
    """Run ``project``'s program for ``stack``, creating every resource through ``clients``."""
    values = dict(config) if config is not None else project.stack_config(stack)
    region = str(values.get("aws:region") or "us-east-1")
    account_id = clients.client("sts", region).get_caller_identity()["Account"]
    mocks = SandboxMocks(clients, region=region, account_id=account_id)
    run = run_program(project, stack, mocks=mocks, config=values)
    return Deployment(run=run, outcomes=list(mocks.outcomes))
