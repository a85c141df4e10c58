"""What every benchmark shares: machine facts, peak RSS, and its own results block in the doc."""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    import pydicom

    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM; {platform.platform()}; "
        f"Python {platform.python_version()}; pydicom {pydicom.__version__}"
    )


def peak_rss() -> float:
    """This process's peak RSS in MB. VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec and
    would report the parent's peak (the parent may have built a large input in memory)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def write_results(path: Path, benchmark: str, report: str) -> None:
    """Replace the results block of ``benchmark`` (between its two markers) in ``path``;
    the other benchmarks' blocks and all prose stay as they are."""
    start, end = f"<!-- results: {benchmark} -->", f"<!-- end results: {benchmark} -->"
    text = path.read_text() if path.exists() else ""
    if start not in text:
        text = f"{text.rstrip()}\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1] if end in rest else ""
    path.write_text(f"{head}{start}\n\n{report}\n\n{end}{tail}")


def sha256_floor(path: Path) -> None:
    """The floor of every streaming measurement: read the file in 1 MiB chunks and hash it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)


def parser(description: str) -> argparse.ArgumentParser:
    """A benchmark's command line: ``--write FILE`` and the hidden ``--child MODE PATH``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--write", type=Path, help="replace this benchmark's results in FILE")
    p.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    return p


def parse_or_run_child(
    cli: argparse.ArgumentParser, modes: Mapping[str, Callable[[Path], None]], warm: str
) -> argparse.Namespace | None:
    """The parsed arguments; or, when this process is a ``--child``, run its one measurement
    (after importing ``warm``: imports are not part of the throughput) and return None."""
    args = cli.parse_args()
    if not args.child:
        return args
    mode, path = args.child[0], Path(args.child[1])
    if mode != "floor":
        importlib.import_module(warm)
    run_child(modes, mode, path)
    return None


def run_child(modes: Mapping[str, Callable[[Path], None]], mode: str, path: Path) -> None:
    """In a fresh process: time ``modes[mode](path)``; print MiB/s and this process's peak RSS."""
    start = time.perf_counter()
    modes[mode](path)
    elapsed = time.perf_counter() - start
    print(json.dumps({"mb_per_s": path.stat().st_size / MIB / elapsed, "peak_rss_mb": peak_rss()}))


def measure_in_child(module: str, mode: str, path: Path) -> dict[str, float]:
    """Run one measurement of ``python -m module --child mode path``: its MiB/s and peak RSS."""
    out = subprocess.run(
        [sys.executable, "-m", module, "--child", mode, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout))
