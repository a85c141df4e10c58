"""``pacs-kit sandbox up|ingest|status|down|demo``: the kit's main job on a laptop, no AWS needed.

Exit codes (as every pacs-kit command): 0 success; 1 the command's check failed (a file without a
final outcome, a failed live check, a demo result that differs from the expected one); 2 usage,
configuration, or no sandbox up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from botocore.exceptions import EndpointConnectionError

from infra.config import ConfigError
from pacs_kit.program import Project, ProjectError, short_type
from pacs_kit.sandbox import server
from pacs_kit.sandbox.checks import Check, checks_as_json, format_checks, run_checks
from pacs_kit.sandbox.deploy import ResourceCreateError, UnknownResourceType
from pacs_kit.sandbox.lambda_runtime import (
    SHIM_POLICY_NAME,
    SHIM_REASON,
    Invocation,
    grant_moto_resource_star_shim,
)
from pacs_kit.sandbox.lifecycle import provision
from pacs_kit.sandbox.operate import (
    FileOutcome,
    OperateError,
    ResearchCheck,
    SignatureCheck,
    ingest,
    run_schedules,
    verify_research_copies,
    verify_signatures,
)
from pacs_kit.sandbox.samples import Sample, samples
from pacs_kit.sandbox.shims import SHIMS
from pacs_kit.sandbox.state import STATE_DIR, SandboxState, StateError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_STACK = "sandbox"

Say = Callable[[str], None]


def _say(text: str) -> None:
    print(text, flush=True)


class SandboxError(RuntimeError):
    """A usage-level problem: no sandbox up, one already up, a bad stack."""


def up(stack: str, state_dir: Path, say: Say = _say) -> SandboxState:
    """Start the emulator, deploy ``stack`` into it, switch IAM enforcement on, save the state."""
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        with server.exclusive(state_dir, _waiting(state_dir, say)):
            return _up(stack, state_dir, say)
    except BaseException:
        with contextlib.suppress(OSError):
            state_dir.rmdir()  # made for nothing: only if it is empty
        raise


def _waiting(state_dir: Path, say: Say) -> Callable[[], None]:
    return lambda: say(f"waiting for another sandbox command on {state_dir} to finish")


def _up(stack: str, state_dir: Path, say: Say) -> SandboxState:
    """:func:`up`, with the state directory's lock held."""
    running = server.running(state_dir)
    if running is not None:
        raise SandboxError(
            f"a sandbox is already up at {running.endpoint} ({state_dir}): "
            "`pacs-kit sandbox down` first"
        )
    project = Project.find()
    project.stack_config(stack)  # a missing or unreadable stack file stops before the emulator
    started = time.monotonic()
    with _signals_interrupt():
        return _deploy(project, stack, state_dir, started, say)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP interrupt like Ctrl-C, so a killed `up` still stops its emulator."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _deploy(
    project: Project, stack: str, state_dir: Path, started: float, say: Say
) -> SandboxState:
    try:
        emulator = server.start(state_dir)
        say(f"emulator (moto) up at {emulator.endpoint}, SIEM sink at {emulator.siem_url}")
        state, deployment = provision(
            project, stack, emulator.endpoint, emulator.siem_url, state_dir
        )
        for warning in deployment.run.warnings:
            say(f"warning: {warning}")
        iam = state.admin().client("iam", state.region)
        for role in function_roles(state):
            grant_moto_resource_star_shim(iam, role)
        server.enforce_iam(emulator.endpoint, True)
        path = state.save(state_dir)
    except BaseException:
        tear_down(state_dir)
        raise
    say(deployment_report(state))
    say(f"deployed in {time.monotonic() - started:.1f} s; state: {path}")
    say(
        "IAM enforcement is on. Inspect with the AWS CLI as the sandbox's administrator "
        "(keys valid in this emulator only):\n"
        f"  AWS_ACCESS_KEY_ID={state.admin_access_key_id} "
        f"AWS_SECRET_ACCESS_KEY={state.admin_secret_access_key} AWS_DEFAULT_REGION={state.region} "
        f"aws --endpoint-url {state.endpoint} s3 ls"
    )
    return state


def function_roles(state: SandboxState) -> list[str]:
    """Names of the execution roles of the stack's functions."""
    arns = {str(f.outputs.get("role")) for f in state.created("aws:lambda/function:Function")}
    return sorted(arn.rsplit("/", 1)[-1] for arn in arns if arn)


def type_counts(state: SandboxState) -> dict[str, Counter[str]]:
    """Per AWS resource type: how many were created and how many are not emulated."""
    counts: dict[str, Counter[str]] = {}
    for r in state.resources:
        if r.status in ("created", "not-emulated"):
            counts.setdefault(r.type, Counter())[r.status] += 1
    return dict(sorted(counts.items()))


def deployment_report(state: SandboxState) -> str:
    """Every resource type of the stack: created, or not emulated with the reason."""
    counts = type_counts(state)
    width = max(len(short_type(t)) for t in counts) + 2
    lines = ["", f"  {'RESOURCE TYPE':<{width}}CREATED  NOT EMULATED"]
    for typ, count in counts.items():
        lines.append(
            f"  {short_type(typ):<{width}}{count['created']:>7}  {count['not-emulated']:>12}"
        )
    missing = [r for r in state.resources if r.status == "not-emulated"]
    if missing:
        lines += ["", "Not emulated (the stack declares them; the emulator cannot represent them):"]
        lines += [f"  {short_type(r.type)} {r.name}: {'; '.join(r.notes)}" for r in missing]
    limits: dict[tuple[str, str], int] = {}
    for r in state.resources:
        if r.status == "created":
            for note in r.notes:
                limits[(r.type, note)] = limits.get((r.type, note), 0) + 1
    if limits:
        lines += ["", "Created, with limits of the emulator (resources of the type affected):"]
        lines += [f"  {short_type(t)} ({n}): {note}" for (t, note), n in sorted(limits.items())]
    lines += ["", "moto shims of the emulator (each bridges a verified moto gap; see shims.py):"]
    lines += [f"  {name}: {reason}" for name, reason in SHIMS]
    lines.append(f"  {SHIM_POLICY_NAME} (an inline policy of each function role): {SHIM_REASON}")
    created = sum(c["created"] for c in counts.values())
    absent = sum(c["not-emulated"] for c in counts.values())
    lines += [
        "",
        f"{created} resources created, {absent} not emulated, 0 unknown types "
        f"({len(counts)} resource types)",
    ]
    return "\n".join(lines)


def outcome_table(outcomes: Sequence[FileOutcome]) -> str:
    width = max([len(o.label) for o in outcomes] + [4]) + 2
    lines = [f"  {'FILE':<{width}}{'OUTCOME':<13}DETAIL"]
    for o in outcomes:
        detail = ", ".join(o.reasons) if o.reasons else (o.archive_key or "")
        lines.append(f"  {o.label:<{width}}{o.outcome:<13}{detail}")
    return "\n".join(lines)


def research_table(checks: Sequence[ResearchCheck]) -> str:
    """Per archived instance and project: its research outcome and check (UIDs and keys only)."""
    lines = [f"  {'OUTCOME':<12}{'PROJECT':<16}{'CHECK':<7}OBJECT, THEN DETAIL"]
    for c in checks:
        where = c.derived_key or f"archived {c.sop_instance_uid}"
        lines.append(
            f"  {c.outcome:<12}{c.project or '-':<16}{'ok' if c.passed else 'FAIL':<7}{where}"
        )
        lines.append(f"  {'':<35}{c.detail}")
    return "\n".join(lines)


def research_summary(checks: Sequence[ResearchCheck]) -> str:
    """``1 de-identified and verified (ct-research), 0 held, 1 not routed``."""
    if not checks:
        return "none (the stack has no researchProjects)"
    copied = [c for c in checks if c.outcome == "copied" and c.passed]
    projects = sorted({str(c.project) for c in copied})
    text = (
        f"{len(copied)} de-identified and verified"
        + (f" ({', '.join(projects)})" if projects else "")
        + f", {sum(c.outcome == 'held' for c in checks)} held, "
        f"{sum(c.outcome == 'not-routed' for c in checks)} not routed"
    )
    failed = sum(not c.passed for c in checks)
    return text + (f", {failed} NOT as expected" if failed else "")


def _read_files(paths: Sequence[Path]) -> list[tuple[str, bytes]]:
    files = []
    for path in paths:
        try:
            files.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise SandboxError(f"cannot read {path}: {exc.strerror}") from None
    return files


def _cmd_up(args: argparse.Namespace) -> int:
    up(args.stack, args.state_dir)
    return EXIT_OK


def _running_state(state_dir: Path) -> SandboxState:
    """The state of the sandbox of ``state_dir``, whose emulator must be running."""
    state = SandboxState.load(state_dir)
    if server.running(state_dir) is None:
        raise SandboxError(f"the emulator of {state_dir} is not running: `pacs-kit sandbox up`")
    return state


def _cmd_ingest(args: argparse.Namespace) -> int:
    with server.exclusive(args.state_dir, _waiting(args.state_dir, _note)):
        return _ingest(args)


def _ingest(args: argparse.Namespace) -> int:
    state = _running_state(args.state_dir)
    if args.samples:
        files = [(s.label, s.body) for s in samples()]
    elif args.files:
        files = _read_files(args.files)
    else:
        raise SandboxError("name FILE... to ingest, or --samples")
    outcomes, _ = ingest(state, files)
    if args.json:
        for o in outcomes:
            print(json.dumps(asdict(o), sort_keys=True))
    else:
        print(outcome_table(outcomes))
    final = all(o.outcome in ("archived", "duplicate", "quarantined") for o in outcomes)
    return EXIT_OK if final else EXIT_FAILED


def _cmd_status(args: argparse.Namespace) -> int:
    with server.exclusive(args.state_dir, _waiting(args.state_dir, _note)):
        state = _running_state(args.state_dir)
        with server.iam_paused(state.endpoint):  # moto refuses the Lambda API under enforcement
            checks = run_checks(state)
    data = data_summary(state, args.state_dir)
    if args.json:
        document = {
            "endpoint": state.endpoint,
            "stack": state.stack,
            "resources": {t: dict(c) for t, c in type_counts(state).items()},
            "notEmulated": [
                {"type": r.type, "name": r.name, "reason": "; ".join(r.notes)}
                for r in state.resources
                if r.status == "not-emulated"
            ],
            "checks": checks_as_json(checks),
            "data": data,
        }
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(f"sandbox {state.stack} at {state.endpoint}")
        print(deployment_report(state))
        print("\nLive checks (read back from the emulator):")
        print(format_checks(checks))
        print("\nData: " + ", ".join(f"{k} {v}" for k, v in data.items()))
    return EXIT_FAILED if any(c.passed is False for c in checks) else EXIT_OK


def data_summary(state: SandboxState, state_dir: Path) -> dict[str, int]:
    """Counts an operator looks at: archived instances, quarantined inputs, DLQ, SIEM events."""
    clients = state.admin()
    s3 = clients.client("s3", state.region)
    sqs = clients.client("sqs", state.region)

    def count(bucket: str, suffix: str) -> int:
        total = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            total += sum(1 for o in page.get("Contents", []) if o["Key"].endswith(suffix))
        return total

    buckets = state.outputs.get("buckets", {})
    dlq = sqs.get_queue_attributes(
        QueueUrl=state.outputs["ingestDeadLetterQueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages"],
    )["Attributes"]
    return {
        "archived instances": count(buckets["archive"], ".dcm"),
        "quarantined objects": count(buckets["quarantine"], ""),
        "dead-letter messages": int(dlq["ApproximateNumberOfMessages"]),
        "SIEM events received": len(server.siem_events(state_dir)),
    }


# What a sandbox leaves in its state directory: all of it goes with `down`.
_SANDBOX_FILES = ("state.json", "emulator.log", "siem", "siem-tls", "edge-tls")


def tear_down(state_dir: Path) -> bool:
    """Stop the emulator and remove every file the sandbox wrote; whether one was running."""
    stopped = server.stop(state_dir)
    for name in _SANDBOX_FILES:
        path = state_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        state_dir.rmdir()  # only if nothing else is in it
    return stopped


def _cmd_down(args: argparse.Namespace) -> int:
    with server.exclusive(args.state_dir, _waiting(args.state_dir, _note)):
        stopped = tear_down(args.state_dir)
    print("sandbox stopped" if stopped else "no sandbox was running")
    return EXIT_OK


def demo(stack: str, state_dir: Path, say: Say = _say) -> int:
    """up → ingest the sample set → research copies → verify → live checks → down, with a final
    summary."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with server.exclusive(state_dir, _waiting(state_dir, say)):
        return _demo(stack, state_dir, say)


def _demo(stack: str, state_dir: Path, say: Say) -> int:
    started = time.monotonic()
    say("[1/6] Deploying the stack into the emulator")
    state = _up(stack, state_dir, say)
    try:
        say("\n[2/6] Ingesting the sample set as the gateway's role (2 studies, 3 hostile files)")
        sample_set = samples()
        outcomes, invocations = ingest(state, [(s.label, s.body) for s in sample_set])
        say(outcome_table(outcomes))
        say("\n[3/6] Research copies, checked against their archived originals like an auditor")
        research = verify_research_copies(state, outcomes, invocations)
        say(research_table(research) if research else "  no research project in the stack")
        say("\n[4/6] Verifying signatures: the verify function (its daily schedule, fired once)")
        verify_runs = run_schedules(state)
        verified = sum(
            int(r.result.get("checked", 0)) - int(r.result.get("failed", 0))
            for r in verify_runs
            if isinstance(r.result, dict)
        )
        archived = [o.archive_key for o in outcomes if o.archive_key]
        independent = verify_signatures(state, archived)
        say(
            f"  verify function: {verified} instance(s) match their signed manifests; "
            f"cryptography (KMS public key): {sum(c.valid for c in independent)}/"
            f"{len(independent)} signatures valid"
        )
        say("\n[5/6] Live checks, read back from the emulator like an auditor")
        with server.iam_paused(state.endpoint):  # moto refuses the Lambda API under enforcement
            checks = run_checks(state)
        say(format_checks(checks, compact=True))
        data = data_summary(state, state_dir)
    finally:
        say("\n[6/6] Stopping the emulator")
        tear_down(state_dir)
    wrong = _unexpected(sample_set, outcomes)
    counts = type_counts(state)
    summary = [
        "",
        "Summary",
        f"  resources: {sum(c['created'] for c in counts.values())} created, "
        f"{sum(c['not-emulated'] for c in counts.values())} not emulated, 0 unknown types",
        f"  files: {sum(o.outcome == 'archived' for o in outcomes)} archived, "
        f"{sum(o.outcome == 'quarantined' for o in outcomes)} quarantined"
        + (f", {len(wrong)} NOT as expected: {', '.join(wrong)}" if wrong else " (as expected)"),
        f"  signatures verified: {sum(c.valid for c in independent)} of {len(independent)}",
        f"  research copies: {research_summary(research)}",
        f"  live checks: {sum(c.passed is True for c in checks)} pass, "
        f"{sum(c.passed is False for c in checks)} fail, "
        f"{sum(c.passed is None for c in checks)} not readable in the emulator",
        f"  SIEM events received: {data['SIEM events received']}",
        f"  total {time.monotonic() - started:.0f} s",
    ]
    say("\n".join(summary))
    problems = demo_problems(wrong, verify_runs, independent, checks, data, len(archived), research)
    for problem in problems:
        say(f"  NOT OK: {problem}")
    return EXIT_FAILED if problems else EXIT_OK


def demo_problems(
    wrong: Sequence[str],
    verify_runs: Sequence[Invocation],
    signatures: Sequence[SignatureCheck],
    checks: Sequence[Check],
    data: dict[str, int],
    archived: int,
    research: Sequence[ResearchCheck] = (),
) -> list[str]:
    """Why the demo did not show the kit working; empty when it did."""
    problems = [f"{label}: not the expected outcome" for label in wrong]
    results = [r.result for r in verify_runs if isinstance(r.result, dict)]
    if [(r.get("checked"), r.get("failed")) for r in results] != [(archived, 0)] or not archived:
        problems.append(f"the verify function's run: {results or 'no run'} for {archived} archived")
    if len(signatures) != archived or not all(c.valid for c in signatures):
        problems.append("archived instances' signatures did not all verify")
    # A check the emulator cannot answer (passed None) is listed as such, not failed.
    problems += [f"live check {c.id} failed on {c.resource}" for c in checks if c.passed is False]
    # An expected copy missing or held is a failed research check (operate.verify_research_copies).
    problems += [
        f"research {c.project or 'routing'} of {c.sop_instance_uid}: {c.detail}"
        for c in research
        if not c.passed
    ]
    if data["dead-letter messages"]:
        problems.append(f"{data['dead-letter messages']} message(s) in the dead-letter queue")
    if not data["SIEM events received"]:
        problems.append("no audit event reached the SIEM sink")
    return problems


def _unexpected(expected: Sequence[Sample], outcomes: Sequence[FileOutcome]) -> list[str]:
    wrong = []
    for sample, outcome in zip(expected, outcomes, strict=True):
        if outcome.outcome != sample.expected or (
            sample.reason is not None and sample.reason not in outcome.reasons
        ):
            wrong.append(sample.label)
    return wrong


def _cmd_demo(args: argparse.Namespace) -> int:
    return demo(args.stack, args.state_dir)


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def default_state_dir() -> Path:
    """``.sandbox`` at the project's root, wherever in the project the command runs."""
    try:
        return Project.find().root / STATE_DIR
    except ProjectError:
        return STATE_DIR


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        if args.state_dir is None:
            args.state_dir = default_state_dir()
        try:
            return handler(args)
        except (SandboxError, StateError, ConfigError, ProjectError, OperateError) as exc:
            print(f"pacs-kit sandbox {args.sandbox_command}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (UnknownResourceType, ResourceCreateError, server.EmulatorError) as exc:
            print(f"pacs-kit sandbox {args.sandbox_command}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except EndpointConnectionError as exc:
            print(
                f"pacs-kit sandbox {args.sandbox_command}: the emulator stopped answering "
                f"({exc.kwargs.get('endpoint_url', 'its endpoint')}): was it stopped?",
                file=sys.stderr,
            )
            return EXIT_FAILED
        except KeyboardInterrupt as exc:
            print(
                f"pacs-kit sandbox {args.sandbox_command}: interrupted ({exc or 'SIGINT'}); "
                "an emulator this command started was stopped",
                file=sys.stderr,
            )
            return EXIT_FAILED

    return run


def add_command(commands: Any) -> None:
    """Register ``sandbox`` and its sub-commands on the ``pacs-kit`` parser."""
    sandbox = commands.add_parser(
        "sandbox",
        help="deploy the real stack into a local AWS emulator and run DICOM through it",
        description="The stack of Pulumi.<stack>.yaml, created resource by resource in an "
        "embedded moto server on 127.0.0.1, with the functions' code running under their roles.",
    )
    sub = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="COMMAND")
    state_dir: dict[str, Any] = {
        "type": Path,
        "default": None,
        "help": f"where the state and the emulator's files live (default: {STATE_DIR} at the "
        "project's root, the directory of Pulumi.yaml)",
    }
    commands_: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
        ("up", "start the emulator and deploy the stack into it", _cmd_up),
        ("ingest", "land files in the inbox as the gateway and run the pipeline", _cmd_ingest),
        ("status", "resources, live checks read back from the emulator, data counts", _cmd_status),
        ("down", "stop the emulator and delete what the sandbox wrote", _cmd_down),
        ("demo", "up, ingest a sample set with bad files, verify, status, down", _cmd_demo),
    ]
    for name, help_text, handler in commands_:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--state-dir", **state_dir)
        if name in ("up", "demo"):
            parser.add_argument(
                "--stack", default=DEFAULT_STACK, help="stack to deploy (default sandbox)"
            )
        if name == "ingest":
            parser.add_argument("files", nargs="*", type=Path, metavar="FILE")
            parser.add_argument(
                "--samples", action="store_true", help="the demo's sample set instead of files"
            )
        if name in ("ingest", "status"):
            parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(handler=_guarded(handler))


__all__ = ["Check", "add_command", "demo", "up"]
