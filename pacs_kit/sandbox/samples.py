"""The demo's sample set: two real studies from pydicom's test files and three hostile files.

Each sample carries the outcome the ingest pipeline must reach and, for a refusal, the reason
code (README, reason table), so the demo and the end-to-end test can tell a right answer from a
wrong one. File names carry no patient data: they become nothing but labels here, since the
sandbox uploads under random inbox keys as the gateway does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom.data import get_testdata_file

PREAMBLE = 128


@dataclass(frozen=True)
class Sample:
    """A file to ingest and what must become of it."""

    label: str
    body: bytes
    expected: str  # archived | quarantined
    reason: str | None = None  # the quarantine reason code expected


def _testdata(name: str) -> bytes:
    path = get_testdata_file(name)
    if path is None:  # pydicom ships these two in its wheel; None means a broken install
        raise FileNotFoundError(f"pydicom's test file {name} is missing")
    return Path(str(path)).read_bytes()


def samples() -> list[Sample]:
    """CT and MR studies that must be archived, and three files that must be quarantined."""
    ct = _testdata("CT_small.dcm")
    mr = _testdata("MR_small.dcm")
    # A Windows executable header in the preamble: the file is a valid DICOM and a runnable
    # program at once (CVE-2019-11687), a known way to smuggle malware into an archive.
    polyglot = b"MZ\x90\x00".ljust(PREAMBLE, b"\x00") + ct[PREAMBLE:]
    return [
        Sample("CT_small.dcm (pydicom)", ct, "archived"),
        Sample("MR_small.dcm (pydicom)", mr, "archived"),
        Sample("PE/DICOM polyglot", polyglot, "quarantined", "polyglot-preamble"),
        Sample(
            "plain text named .dcm",
            b"this is not an image\n" * 8,
            "quarantined",
            "not-dicom-part10",
        ),
        Sample("CT cut mid-pixel-data", ct[: len(ct) // 2], "quarantined", "truncated"),
    ]
