"""Benchmark of the gateway's STOW-RS body path (multipart split + spool) against named baselines.

    python -m benchmarks.gateway_stow [--part-mib MIB] [--parts N] [--write docs/benchmarks.md]

One ``multipart/related`` body of N ``application/dicom`` parts of MIB each (random bytes: the
splitter never looks inside a part), read from a file in 1 MiB chunks as the gateway reads its
socket. Each measurement runs in a fresh process so its peak RSS is its own:

- floor: read the same body in the same chunks and SHA-256 it (the I/O and hashing any server does);
- ours: ``gateway.stow.body_chunks`` + ``MultipartReader``, each part spooled to a temporary file
  and read back as the inbox upload reads it;
- baseline: the standard library's ``email`` parser over the whole body in memory (what the gateway
  used first, and what a short STOW-RS implementation does).

Targets: peak RSS flat in the body size (<= 100 MB for a 512 MiB body) and >= 0.3x the floor's
throughput (the spool writes every part to disk and reads it back, which the floor does not; 0.3x
of this floor is still several times what a Fargate task's network delivers). Results are printed,
never asserted.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import (
    MIB,
    machine,
    measure_in_child,
    parse_or_run_child,
    parser,
    sha256_floor,
    write_results,
)

BOUNDARY = b"cloud-pacs-benchmark-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY.decode()}'


def make_body(path: Path, parts: int, part_bytes: int) -> int:
    """Write the body; returns its size."""
    block = hashlib.sha256(b"seed").digest() * (MIB // 32)  # 1 MiB, not all zeros
    with path.open("wb") as out:
        for _ in range(parts):
            out.write(b"--" + BOUNDARY + b"\r\nContent-Type: application/dicom\r\n\r\n")
            remaining = part_bytes
            while remaining:
                piece = block[: min(remaining, len(block))]
                out.write(piece)
                remaining -= len(piece)
            out.write(b"\r\n")
        out.write(b"--" + BOUNDARY + b"--\r\n")
    return path.stat().st_size


def ours(path: Path) -> None:
    from gateway.stow import MultipartReader, body_chunks

    size = path.stat().st_size
    reader = MultipartReader(BOUNDARY, 5 * 1024**3)
    with path.open("rb") as body:
        for chunk in body_chunks(body, {"Content-Length": str(size)}):
            for part in reader.feed(chunk):
                with part.file:  # the upload reads the spooled part back once
                    part.file.seek(0)
                    while part.file.read(MIB):
                        pass
    reader.close()


def baseline(path: Path) -> None:
    body = path.read_bytes()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + CONTENT_TYPE.encode() + b"\r\n\r\n" + body
    )
    for part in message.iter_parts():
        part.get_payload(decode=True)


MODES: dict[str, Callable[[Path], None]] = {
    "floor": sha256_floor,
    "ours": ours,
    "baseline": baseline,
}


def main() -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--part-mib", type=int, default=256)
    cli.add_argument("--parts", type=int, default=2)
    args = parse_or_run_child(cli, MODES, warm="gateway.stow")
    if args is None:
        return

    with tempfile.TemporaryDirectory() as scratch:
        body = Path(scratch) / "body.multipart"
        size = make_body(body, args.parts, args.part_mib * MIB)
        results = {mode: measure_in_child("benchmarks.gateway_stow", mode, body) for mode in MODES}
    floor_speed = results["floor"]["mb_per_s"]

    def row(label: str, mode: str, target: str) -> str:
        r = results[mode]
        ratio = "" if mode == "floor" else f"{r['mb_per_s'] / floor_speed:.2f}x, "
        return (
            f"| {label} | {r['mb_per_s']:.0f} MiB/s | {ratio}{r['peak_rss_mb']:.0f} MB RSS "
            f"| {target} |"
        )

    report = "\n".join(
        [
            f"Machine: {machine()}",
            f"Input: one body of {args.parts} parts x {args.part_mib} MiB ({size / MIB:.0f} MiB).",
            f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            "| measurement | throughput | ratio / memory | target |",
            "|---|---|---|---|",
            row("floor: read + SHA-256", "floor", ""),
            row("ours: streaming split + spool", "ours", ">= 0.3x, <= 100 MB"),
            row("baseline: stdlib email parser", "baseline", ""),
        ]
    )
    print(report)
    if args.write:
        write_results(args.write, "benchmarks/gateway_stow.py", report)


if __name__ == "__main__":
    main()
