"""``pacs-kit``: the command line for people and CI.

Exit codes: 0 success, 1 the command's check failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway import cli as gateway_cli
from infra.config import ConfigError
from infra.packaging import LAMBDA_PYTHON, LAYER_ZIP, REPO, REQUIREMENTS
from pacs_kit import check, deid, export, pki, signature, validate
from pacs_kit.layer import LayerError, build_layer, runtime_interpreter
from pacs_kit.program import (
    ProgramRun,
    Project,
    ProjectError,
    plan_document,
    run_program,
    short_type,
)
from pacs_kit.sandbox import cli as sandbox_cli

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def plan_table(run: ProgramRun) -> str:
    """What ``pulumi up`` would create, as an indented tree of components and resources."""
    depth: dict[str, int] = {"": -1}
    rows: list[tuple[str, str]] = []
    for r in run.resources:  # already parents first
        depth[r.urn] = depth.get(r.parent, -1) + 1
        rows.append(("  " * depth[r.urn] + short_type(r.type), r.name))
    width = max(len(t) for t, _ in rows) + 2
    lines = [
        f"Plan for {run.project}/{run.stack} (offline: Pulumi mock runtime, no AWS calls)",
        "",
        f"  {'TYPE':<{width}}NAME",
    ]
    lines += [f"+ {t:<{width}}{n}" for t, n in rows]
    providers = sum(1 for r in run.resources if r.type.startswith("pulumi:providers:"))
    components = sum(1 for r in run.resources if not r.custom)
    resources = len(run.resources) - providers - components
    lines += [
        "",
        f"{len(run.resources)} to create: {resources} resources, {components} components, "
        f"{providers} providers",
    ]
    return "\n".join(lines)


def _cmd_plan(args: argparse.Namespace) -> int:
    try:
        project = Project.find()
        run = run_program(project, args.stack)
    except (ConfigError, ProjectError) as exc:
        print(f"pacs-kit plan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        json.dump(plan_document(run, args.dependencies), sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        print(plan_table(run))
    return EXIT_OK


def _cmd_build_layer(args: argparse.Namespace) -> int:
    interpreter = args.python or runtime_interpreter()
    if interpreter is None:
        print(
            f"warning: no python{LAMBDA_PYTHON} found: the layer ships without byte code and "
            "every cold start compiles it (pass --python)",
            file=sys.stderr,
        )
    try:
        built = build_layer(args.out, compile_with=interpreter)
    except LayerError as exc:
        print(f"pacs-kit build-layer: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{built.path}  sha256 {built.sha256}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pacs-kit", description="cloud-pacs-kit: plan, check and operate the PACS stack."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = commands.add_parser(
        "plan",
        help="show what `pulumi up` would create, offline (no Pulumi CLI, no AWS)",
        description="Run infra/__main__.py under Pulumi's mock runtime with Pulumi.<stack>.yaml.",
    )
    plan.add_argument("--stack", default="dev", help="stack name (reads Pulumi.<stack>.yaml)")
    plan.add_argument(
        "--json", action="store_true", help='print {"resources": [{urn, type, name, props}]}'
    )
    plan.add_argument(
        "--dependencies",
        action="store_true",
        help="with --json: add each resource's propertyDependencies (property -> URNs)",
    )
    plan.set_defaults(handler=_cmd_plan)
    check.add_commands(commands)
    validate.add_command(commands)
    deid.add_command(commands)
    export.add_command(commands)
    signature.add_commands(commands)
    pki.add_command(commands)
    gateway_cli.add_command(commands)
    sandbox_cli.add_command(commands)
    layer = commands.add_parser(
        "build-layer",
        help="build the functions' Lambda layer zip, reproducibly (run before `pulumi up`)",
        description=f"pip-install the pins of {REQUIREMENTS} for the functions' runtime and zip "
        "them with fixed timestamps and sorted entries.",
    )
    layer.add_argument(
        "--out", type=Path, default=REPO / LAYER_ZIP, help=f"zip to write (default {LAYER_ZIP})"
    )
    layer.add_argument(
        "--python",
        metavar="PATH",
        help=f"Python {LAMBDA_PYTHON} interpreter that byte-compiles the layer "
        f"(default: python{LAMBDA_PYTHON} on PATH, if any)",
    )
    layer.set_defaults(handler=_cmd_build_layer)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pacs-kit`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:  # `pacs-kit plan | head` closed the pipe: not an error
        sys.stderr.close()
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
