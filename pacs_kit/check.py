"""``pacs-kit check`` and ``pacs-kit controls``: the policy pack, offline, for CI and reviewers.

``check [--stack NAME | --snapshot FILE] [--config FILE] [--json]`` evaluates the very policy
objects ``pulumi preview --policy-pack policies`` runs, against the stack's mocked program (the
``pacs-kit plan`` runner) or a snapshot in the ``pacs-kit plan --json`` format (``-`` reads stdin).
``--json`` prints a list, one object per finding, exactly
``{"policy", "urn", "message", "enforcement", "kind", "severity", "hipaa", "safeguard",
"practice", "remediation"}`` (``kind``: ``violation``, or ``not-evaluated`` when the policy read a
value not known until deployment, as the engine reports it during a preview).
Exit 0 when no mandatory violation, 1 when any, 2 on usage, snapshot or configuration errors, and
when a policy itself fails (the engine fails the preview then too).

``controls [--stack NAME] [--format md|json]`` prints the control matrix (docs/controls.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infra.config import ConfigError
from pacs_kit.controls import control_matrix, render_markdown
from pacs_kit.program import ProgramRun, Project, ProjectError, plan_document, run_program
from policies.evaluate import (
    PackConfig,
    PackConfigError,
    PlanResource,
    PolicyFailure,
    Report,
    SnapshotError,
    evaluate,
    load_snapshot,
)
from policies.framework import PacsPolicy
from policies.pack import PACK_NAME, POLICIES

EXIT_OK, EXIT_VIOLATIONS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A command line, file or configuration the command cannot use; exit 2."""


def add_commands(commands: Any) -> None:
    """Register ``check`` and ``controls`` on the ``pacs-kit`` sub-command parser."""
    check = commands.add_parser(
        "check",
        help="evaluate the HIPAA policy pack offline (exit 1 on a mandatory violation)",
        description="Run the policies of policies/ (the pack `pulumi preview --policy-pack "
        "policies` runs) against the stack's plan or a `pacs-kit plan --json` snapshot.",
    )
    source = check.add_mutually_exclusive_group()
    source.add_argument("--stack", help="stack to plan offline (default dev)")
    source.add_argument(
        "--snapshot",
        metavar="FILE",
        help="a `pacs-kit plan --json` document to check instead ('-' reads standard input)",
    )
    _add_config(check)
    check.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    check.set_defaults(handler=run_check)

    controls = commands.add_parser(
        "controls",
        help="print the control matrix: practice -> HIPAA safeguard -> policies -> resources",
        description="Evaluate the pack against the stack and print the reviewer's control matrix.",
    )
    controls.add_argument("--stack", default="dev", help="stack to plan offline (default dev)")
    controls.add_argument("--format", choices=("md", "json"), default="md")
    _add_config(controls)
    controls.set_defaults(handler=run_controls)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="policy pack configuration, as `pulumi preview --policy-pack-config FILE` takes it",
    )


def _pack_config(path: Path | None, policies: Sequence[PacsPolicy]) -> PackConfig:
    if path is None:
        return PackConfig(policies)
    try:
        given = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read policy configuration {path}: {exc}") from exc
    if not isinstance(given, dict):
        raise UsageError(f"{path}: policy configuration must be a JSON object")
    try:
        return PackConfig(policies, given)
    except PackConfigError as exc:
        raise UsageError(f"{path}: {exc}") from exc


def _read_snapshot(source: str) -> list[PlanResource]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        return load_snapshot(json.loads(text))
    except (OSError, json.JSONDecodeError, SnapshotError) as exc:
        raise UsageError(f"snapshot {source}: {exc}") from exc


def _stack_resources(stack: str) -> tuple[ProgramRun, list[PlanResource]]:
    try:
        run = run_program(Project.find(), stack)
    except (ConfigError, ProjectError) as exc:
        raise UsageError(str(exc)) from exc
    # With property dependencies, as the engine hands them to stack policies.
    return run, load_snapshot(plan_document(run, dependencies=True))


def finding_documents(report: Report, policies: Sequence[PacsPolicy]) -> list[dict[str, Any]]:
    """The ``check --json`` list."""
    metas = {p.meta.id: p.meta for p in policies}
    documents = []
    for f in report.findings:
        meta = metas[f.policy]
        documents.append(
            {
                "policy": f.policy,
                "urn": f.urn,
                "message": f.message,
                "enforcement": f.enforcement,
                "kind": f.kind,
                "severity": meta.severity.value,
                "hipaa": meta.safeguard.citation,
                "safeguard": meta.safeguard.title,
                "practice": meta.practice.id,
                "remediation": meta.remediation,
            }
        )
    return documents


def render_text(report: Report, policies: Sequence[PacsPolicy], subject: str, count: int) -> str:
    metas = {p.meta.id: p.meta for p in policies}
    lines = [
        f"Policy check of {subject}: {len(report.evaluated)} policies of {PACK_NAME} over "
        f"{count} resources (offline, as `pulumi preview --policy-pack policies`)",
    ]
    order = {"mandatory": 0, "advisory": 1}
    for f in sorted(report.findings, key=lambda f: (order.get(f.enforcement, 2), f.policy, f.urn)):
        meta = metas[f.policy]
        label = "NOT EVALUATED" if f.kind == "not-evaluated" else f.enforcement.upper()
        lines += [
            "",
            f"{label}  {f.policy}  [{meta.severity.value}]  {meta.safeguard.citation} "
            f"{meta.safeguard.title}",
            f"  resource:    {f.urn or '(the stack)'}",
            f"  violation:   {f.message}",
            f"  remediation: {meta.remediation}",
        ]
    blocking = len(report.blocking)
    advisory = sum(1 for f in report.findings if f.kind == "violation" and not f.blocking)
    skipped = sum(1 for f in report.findings if f.kind == "not-evaluated")
    verdict = "the deployment would be refused" if blocking else "passes"
    lines += [
        "",
        f"{blocking} mandatory violation(s), {advisory} advisory, {skipped} not evaluated: "
        f"{verdict}.",
    ]
    return "\n".join(lines)


def run_check(args: argparse.Namespace) -> int:
    policies = list(POLICIES)
    try:
        config = _pack_config(args.config, policies)
        if args.snapshot:
            resources = _read_snapshot(args.snapshot)
            subject = f"snapshot {args.snapshot}"
        else:
            run, resources = _stack_resources(args.stack or "dev")
            subject = f"{run.project}/{run.stack}"
            for warning in run.warnings:
                print(f"warning: {warning}", file=sys.stderr)
    except UsageError as exc:
        print(f"pacs-kit check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = evaluate(resources, policies, config)
    except PolicyFailure as exc:
        print(f"pacs-kit check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        json.dump(finding_documents(report, policies), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_text(report, policies, subject, len(resources)))
    return EXIT_VIOLATIONS if report.blocking else EXIT_OK


def run_controls(args: argparse.Namespace) -> int:
    policies = list(POLICIES)
    try:
        config = _pack_config(args.config, policies)
        run, resources = _stack_resources(args.stack)
    except UsageError as exc:
        print(f"pacs-kit controls: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report = evaluate(resources, policies, config)
    document = control_matrix(policies, report, PACK_NAME, run.stack)
    if args.format == "json":
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_markdown(document, policies))
    return EXIT_OK
