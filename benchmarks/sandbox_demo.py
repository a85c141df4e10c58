"""Benchmark of the sandbox (issue 7): each phase of `pacs-kit sandbox demo`, against its floor.

    python -m benchmarks.sandbox_demo [--runs N] [--write docs/benchmarks.md]

- floor: the same program run under Pulumi's mock runtime with the plan's mocks (what
  `pacs-kit plan --stack sandbox` does: no emulator, no AWS call);
- ours: emulator start, deployment of every resource into it (the floor's program run plus the
  boto3 creates), ingest of the demo's five files (landing as the gateway role, the event source
  mapping, the ingest function under its role), the verify run, the live checks, teardown.

Target: `make demo` under 5 minutes on 2 cores from a fresh clone, `.venv` setup included (that
part is pip's and is measured by hand in the results' note). Results are printed, never asserted.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import machine, parser, peak_rss, write_results
from pacs_kit.program import Project, run_program
from pacs_kit.sandbox import server
from pacs_kit.sandbox.checks import run_checks
from pacs_kit.sandbox.cli import tear_down, up
from pacs_kit.sandbox.operate import ingest, run_schedules
from pacs_kit.sandbox.samples import samples

STACK = "sandbox"
PHASES = ("deploy (start + create + IAM on)", "ingest 5 files", "verify run", "live checks", "down")


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def one_demo(state_dir: Path) -> dict[str, float]:
    """The demo's phases, timed (seconds)."""
    times: dict[str, float] = {}
    times[PHASES[0]], state = _timed(lambda: up(STACK, state_dir, lambda _line: None))
    try:
        files = [(s.label, s.body) for s in samples()]
        times[PHASES[1]], _ = _timed(lambda: ingest(state, files))
        times[PHASES[2]], _ = _timed(lambda: run_schedules(state))

        def checks() -> Any:
            with server.iam_paused(state.endpoint):
                return run_checks(state)

        times[PHASES[3]], _ = _timed(checks)
    finally:
        times[PHASES[4]], _ = _timed(lambda: tear_down(state_dir))
    return times


def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--runs", type=int, default=3)
    args = cli.parse_args()
    project = Project.find()
    plans = [_timed(lambda: run_program(project, STACK))[0] for _ in range(args.runs)]
    demos = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as state_dir:
            demos.append(one_demo(Path(state_dir)))
    resources = sum(1 for r in run_program(project, STACK).resources if r.custom)
    rows = [f"| floor: the program under the plan's mocks | {statistics.median(plans):.1f} s |"]
    for phase in PHASES:
        rows.append(f"| {phase} | {statistics.median(d[phase] for d in demos):.1f} s |")
    total = statistics.median(sum(d.values()) for d in demos)
    rows.append(f"| **sandbox demo, all phases** | **{total:.1f} s** |")
    report = "\n".join(
        [
            f"Machine: {machine()}",
            f"Run: {datetime.now(UTC):%Y-%m-%d}, median of {args.runs}; stack `{STACK}`, "
            f"{resources} resources and providers; peak RSS of this process {peak_rss():.0f} MB.",
            "",
            "| phase | time |",
            "|---|---|",
            *rows,
        ]
    )
    print(report)
    if args.write:
        write_results(args.write, "benchmarks/sandbox_demo.py", report)


if __name__ == "__main__":
    main()
