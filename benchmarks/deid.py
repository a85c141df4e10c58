"""Benchmark of de-identification throughput against dicognito and pydicom/deid, in one run.

    python -m benchmarks.deid [--count N] [--rounds R] [--write docs/benchmarks.md]

Input: N CT instances (pydicom's ``CT_small.dcm`` with fresh UIDs) in a temporary directory. Each
tool reads every file, de-identifies it and writes the result to its own output directory:

- ours: ``lambdas.deid.engine.Deidentifier`` with a ``LocalKeyer`` (the full Table E.1-1, no
  option), written with ``pydicom.dcmwrite``;
- dicognito (PyPI): ``Anonymizer().anonymize(ds)``, written with ``Dataset.save_as``;
- pydicom/deid (PyPI): ``replace_identifiers`` with its default recipe (``DeidRecipe()``), which
  reads and saves each file itself; given all files in one call, its cheapest use.

The tools run interleaved for R rounds and each keeps its best round, so all see the same machine
state. Imports and one-time set-up (recipe parsing, table loading) are outside the timing.
Target (issue 8): ours >= 2x dicognito's files/s. Results are printed, never asserted.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import machine, parser, write_results

KEY = bytes(range(32))
TARGET = 2.0


def make_inputs(directory: Path, count: int) -> list[Path]:
    """``count`` copies of CT_small, each with fresh Study/Series/SOP Instance UIDs."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    directory.mkdir()
    template = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    paths = []
    for n in range(count):
        template.StudyInstanceUID = generate_uid()
        template.SeriesInstanceUID = generate_uid()
        template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = directory / f"ct{n:04d}.dcm"
        template.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


Runner = Callable[[list[Path], Path], None]


def ours() -> Runner:
    import pydicom

    from lambdas.deid.engine import Deidentifier
    from lambdas.deid.keys import LocalKeyer

    engine = Deidentifier(LocalKeyer(KEY))

    def run(paths: list[Path], out: Path) -> None:
        for path in paths:
            pydicom.dcmwrite(
                out / path.name,
                engine.deidentify(pydicom.dcmread(path)),
                enforce_file_format=True,
            )

    return run


def dicognito() -> Runner:
    import pydicom
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()

    def run(paths: list[Path], out: Path) -> None:
        for path in paths:
            ds = pydicom.dcmread(path)
            anonymizer.anonymize(ds)
            ds.save_as(out / path.name)

    return run


def pydicom_deid() -> Runner:
    from deid.config import DeidRecipe  # type: ignore[import-untyped]  # ships no types
    from deid.dicom import replace_identifiers  # type: ignore[import-untyped]

    recipe = DeidRecipe()  # the package's default recipe (deid.dicom)

    def run(paths: list[Path], out: Path) -> None:
        replace_identifiers(
            dicom_files=[str(p) for p in paths],
            deid=recipe,
            save=True,
            output_folder=str(out),
            overwrite=True,
        )

    return run


TOOLS: dict[str, Callable[[], Runner]] = {
    "ours": ours,
    "dicognito": dicognito,
    "pydicom/deid": pydicom_deid,
}


def bench(paths: list[Path], root: Path, rounds: int) -> dict[str, float]:
    """Best files/s of each tool over ``rounds`` interleaved rounds."""
    runners = {name: make() for name, make in TOOLS.items()}
    best: dict[str, float] = dict.fromkeys(runners, 0.0)
    for round_ in range(rounds):
        for name, run in runners.items():
            out = root / f"out-{name.replace('/', '-')}-{round_}"
            out.mkdir()
            start = time.perf_counter()
            run(paths, out)
            elapsed = time.perf_counter() - start
            written = sum(1 for _ in out.iterdir())
            if written != len(paths):
                raise SystemExit(f"{name} wrote {written} of {len(paths)} files")
            best[name] = max(best[name], len(paths) / elapsed)
    return best


def check_ours(paths: list[Path], root: Path) -> int:
    """Findings of ``lambdas.deid.verify`` on our first output: the speed is that of a full job."""
    import pydicom

    from lambdas.deid.verify import verify

    output = pydicom.dcmread(root / "out-ours-0" / paths[0].name)
    return len(verify(pydicom.dcmread(paths[0]), output))


def versions() -> str:
    from importlib.metadata import version

    return f"dicognito {version('dicognito')}, deid {version('deid')}"


def main() -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--count", type=int, default=500)
    cli.add_argument("--rounds", type=int, default=3)
    args = cli.parse_args()

    with tempfile.TemporaryDirectory(prefix="pacs-bench-deid-") as tmp:
        root = Path(tmp)
        paths = make_inputs(root / "in", args.count)
        size = paths[0].stat().st_size
        results = bench(paths, root, args.rounds)
        findings = check_ours(paths, root)

    ratio = results["ours"] / results["dicognito"]
    table = ["| tool | files/s | vs dicognito | target |", "|---|---|---|---|"]
    for name, rate in results.items():
        target = f">= {TARGET:.0f}x" if name == "ours" else ""
        table.append(f"| {name} | {rate:.0f} | {rate / results['dicognito']:.2f}x | {target} |")
    report = "\n".join(
        [
            f"Machine: {machine()}; {versions()}",
            f"Inputs: {args.count} CT instances of {size} bytes; best of {args.rounds} "
            "interleaved rounds, each reading and writing every file.",
            f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; `lambdas.deid.verify` findings on our "
            f"output: {findings}",
            "",
            *table,
            "",
            f"Ours / dicognito: {ratio:.2f}x (target >= {TARGET:.0f}x: "
            f"{'met' if ratio >= TARGET else 'not met'}).",
        ]
    )
    print(report)
    if args.write:
        write_results(args.write, "benchmarks/deid.py", report)


if __name__ == "__main__":
    main()
