"""``pacs-kit validate [--json] FILE...``: the ingest validator, offline, for people and CI.

One line per file; with ``--json`` one JSON object per line, exactly
``{"path", "verdict", "reasons": [{"code", "message"}], "sha256", "size", "sop_instance_uid",
"study_instance_uid"}``. Exit 0 when every file is accepted, 1 when any is rejected, 2 on usage
errors. A file that cannot be opened is a rejected verdict (code ``unreadable``), not a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def add_command(commands: Any) -> None:
    """Register ``validate`` on the ``pacs-kit`` sub-command parser."""
    parser = commands.add_parser(
        "validate",
        help="validate DICOM files exactly as the ingest pipeline does",
        description="Verdict per file: accepted, or rejected with stable reason codes.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--max-object-mib",
        type=int,
        default=4096,
        metavar="MIB",
        help="size cap in MiB (the stack's ingestMaxObjectMiB; default 4096)",
    )
    parser.add_argument(
        "--transfer-syntax",
        action="append",
        default=[],
        metavar="UID",
        help="accepted transfer syntax (repeat; default: the built-in list)",
    )
    parser.add_argument(
        "--sop-class",
        action="append",
        default=[],
        metavar="UID",
        help="allowed SOP class (repeat; default: every current storage SOP class)",
    )
    parser.set_defaults(handler=run)


def verdict_document(path: Path, inspection: Any) -> dict[str, Any]:
    """The ``--json`` line for one file."""
    return {
        "path": str(path),
        "verdict": "accepted" if inspection.accepted else "rejected",
        "reasons": [{"code": r.code, "message": r.message} for r in inspection.reasons],
        "sha256": inspection.sha256_hex,
        "size": inspection.size,
        "sop_instance_uid": inspection.sop_instance_uid,
        "study_instance_uid": inspection.study_instance_uid,
    }


def verdict_line(doc: dict[str, Any]) -> str:
    """The human line for one file."""
    if doc["verdict"] == "accepted":
        return f"accepted  {doc['path']}  sha256={doc['sha256']}  sop={doc['sop_instance_uid']}"
    reasons = "; ".join(f"{r['code']}: {r['message']}" for r in doc["reasons"])
    return f"rejected  {doc['path']}  {reasons}"


def run(args: argparse.Namespace) -> int:
    # Imported here so `pacs-kit plan` never pays for (or depends on) pydicom.
    from lambdas.dicom_checks import ValidationPolicy, inspect_file

    if args.max_object_mib <= 0:
        print("pacs-kit validate: --max-object-mib must be a positive integer", file=sys.stderr)
        return EXIT_USAGE
    policy = ValidationPolicy.from_lists(
        max_object_bytes=args.max_object_mib * 1024 * 1024,
        max_inflated_bytes=ValidationPolicy().max_inflated_bytes,
        transfer_syntaxes=args.transfer_syntax,
        sop_classes=args.sop_class,
    )
    rejected = 0
    for path in args.files:
        doc = verdict_document(path, inspect_file(path, policy))
        rejected += doc["verdict"] == "rejected"
        line = json.dumps(doc, sort_keys=False) if args.json else verdict_line(doc)
        print(line, flush=True)
    return EXIT_REJECTED if rejected else EXIT_OK
