"""``pacs-kit deid``: de-identify DICOM files offline with the functions' engine (issue #8).

``pacs-kit deid --key-file K [--domain NAME] [--option NAME]... [--safe-private CREATOR:ELEMENT]...
[--pixel-rules FILE] [--verify] --out DIR FILE...`` writes one output per input under DIR, named
``<de-identified SOPInstanceUID>.dcm`` (never the input's name, which may carry identifiers, e.g.
``DOE_JOHN_MRN123.dcm``). Each output is written to a temporary file in DIR and renamed into place,
so DIR never holds a half-written file. One line per input: ``deidentified IN -> OUT`` (the only
record of which output came from which input) or ``refused IN <code>`` (stable codes of
:data:`lambdas.deid.engine.ERRORS`, or ``duplicate`` for an input whose output another input of the
run already wrote; never a value from the file). DIR must not be the directory of an input.

``--domain NAME``: the recipient or project; pseudonyms and UIDs differ between domains, so data
sets de-identified under different domains cannot be joined (default empty: no domain).

``--pixel-rules FILE``: a JSON list of Clean Pixel Data rules (:mod:`lambdas.deid.pixels`); objects
otherwise refused as burned-in are released when one matches and its rectangles were blanked.

``--verify``: each written output is read back and checked against its input by
:func:`lambdas.deid.verify.verify` (same options and safe-private list) and, when dicom3tools'
``dciodvfy`` is installed, for IOD errors the input did not have (``iod-error-added``; without
dciodvfy a warning says that part is skipped) before it is renamed into place. Any finding refuses
that input (``refused IN verification-failed``, one ``IN: code tag`` line per finding, never a
value) and its output is removed: an unverified output never remains.

An unexpected failure on one input is ``refused IN internal-error`` (its exception type on
stderr) and the other inputs still go through.

``pacs-kit deid profile [--option NAME]... [--json]`` prints the effective action of every row of
PS3.15 Table E.1-1, in table order; with ``--json`` exactly
``[{"tag": "(0010,0010)", "keyword": "PatientName", "action": "Z"}, ...]``.

Exit 0 when every input was de-identified (and verified), 1 when any was refused, failed
verification or failed unexpectedly, 2 on usage errors (missing or short key file, unknown
option, malformed --safe-private, unreadable or invalid --pixel-rules, --out the directory of an
input).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
PROFILE_WORD = "profile"
VERIFICATION_FAILED = "verification-failed"
DUPLICATE = "duplicate"
INTERNAL_ERROR = "internal-error"
# A de-identified SOP Instance UID, used as a file name: digits and dots only.
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def add_command(commands: Any) -> None:
    """Register ``deid`` (and ``deid profile``) on the ``pacs-kit`` sub-command parser."""
    parser = commands.add_parser(
        "deid",
        help="de-identify DICOM files (PS3.15 Annex E, keyed pseudonyms); `deid profile` "
        "prints the effective table",
        description="De-identify FILEs into DIR with the Basic Application Level Confidentiality "
        "Profile and the chosen options, or (`deid profile`) print the effective action per "
        "attribute of Table E.1-1.",
        usage="pacs-kit deid [--key-file K] [--domain NAME] [--option NAME]... "
        "[--safe-private CREATOR:ELEMENT]... [--pixel-rules FILE] [--verify] --out DIR FILE...\n"
        "       pacs-kit deid profile [--option NAME]... [--json]",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="inputs (or the word `profile`)")
    parser.add_argument(
        "--key-file",
        type=Path,
        metavar="K",
        help="file of at least 32 random bytes: the secret behind pseudonyms and UIDs",
    )
    parser.add_argument(
        "--domain",
        default="",
        metavar="NAME",
        help="recipient or project: data sets de-identified under different domains cannot be "
        "joined",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME",
        help="profile option (repeat): retain-safe-private, retain-uids, retain-device-identity, "
        "retain-institution-identity, retain-patient-characteristics, retain-long-full-dates, "
        "retain-long-modified-dates, clean-descriptors, clean-structured-content, clean-graphics",
    )
    parser.add_argument(
        "--safe-private",
        action="append",
        default=[],
        metavar="CREATOR:ELEMENT",
        help="private element retain-safe-private may keep: creator string and element in hex "
        "(its low byte counts), e.g. 'GEMS_ACQU_01:1b' (repeat)",
    )
    parser.add_argument(
        "--pixel-rules",
        type=Path,
        metavar="FILE",
        help="Clean Pixel Data rules, a JSON list of {manufacturer, model, rows, columns, "
        "rectangles: [[x, y, width, height], ...]} (null fields match anything): objects that "
        "would be refused as burned-in are released when a rule matches, with its rectangles "
        "blanked (native pixel data only)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check every output against its input for leaks (retained values, names and free "
        "text, private tags, UIDs, identity flags) and, with dicom3tools' dciodvfy installed, for "
        "IOD errors the input lacked, before keeping it; a finding fails that input (exit 1), "
        "removes its output and is printed as `IN: code tag`",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output directory (not an input's): outputs are named <de-identified "
        "SOPInstanceUID>.dcm",
    )
    parser.add_argument("--json", action="store_true", help="with `profile`: JSON output")
    parser.set_defaults(handler=run)


def parse_safe_private(values: list[str]) -> frozenset[tuple[str, int]]:
    """``CREATOR:ELEMENT`` pairs; ValueError naming the malformed one."""
    pairs = set()
    for value in values:
        creator, sep, element = value.rpartition(":")
        try:
            number = int(element, 16)
        except ValueError:
            number = -1
        if not sep or not creator.strip() or not 0 <= number <= 0xFFFF:
            raise ValueError(f"--safe-private {value!r}: expected CREATOR:ELEMENT (hex)")
        pairs.add((creator.strip(), number & 0xFF))
    return frozenset(pairs)


def profile_document(options: list[str]) -> list[dict[str, str]]:
    """The ``deid profile --json`` document."""
    from lambdas.deid.profile import options_from, profile

    return [
        {"tag": r.tag, "keyword": r.keyword, "action": r.action}
        for r in profile(options_from(options))
    ]


def _usage(message: str) -> int:
    sys.stderr.write(f"pacs-kit deid: {message}\n")
    return EXIT_USAGE


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    if args.files[0] == PROFILE_WORD:
        return run_profile(args)
    return run_deid(args)


def run_profile(args: argparse.Namespace) -> int:
    if len(args.files) > 1:
        return _usage("`deid profile` takes no FILE arguments")
    try:
        doc = profile_document(args.option)
    except ValueError as exc:
        return _usage(str(exc))
    if args.json:
        _out(json.dumps(doc))
        return EXIT_OK
    from lambdas.deid.profile import options_from, profile

    rules = profile(options_from(args.option))
    width = max(len(r.tag) for r in rules) + 2
    _out(f"{'TAG':<{width}}{'ACTION':<8}NAME")
    for r in rules:
        _out(f"{r.tag:<{width}}{r.action:<8}{r.name}")
    return EXIT_OK


def run_deid(args: argparse.Namespace) -> int:
    # Imported here so `pacs-kit plan` never pays for (or depends on) pydicom.
    from lambdas.deid.engine import Deidentifier, quiet
    from lambdas.deid.keys import LocalKeyer
    from lambdas.deid.profile import options_from

    if args.key_file is None:
        return _usage("--key-file is required (at least 32 random bytes)")
    if args.out is None:
        return _usage("--out DIR is required")
    try:
        keyer = LocalKeyer.from_file(args.key_file)
    except OSError as exc:
        return _usage(f"cannot read the key file: {exc.strerror}")
    except ValueError as exc:
        return _usage(f"key file {args.key_file}: {exc}")
    try:
        pixel_rules = load_pixel_rules(args.pixel_rules)
    except OSError as exc:
        return _usage(f"cannot read {args.pixel_rules}: {exc.strerror}")
    except ValueError as exc:
        return _usage(f"{args.pixel_rules}: {exc}")
    try:
        options = options_from(args.option)
        safe_private = parse_safe_private(args.safe_private)
        engine = Deidentifier(
            keyer, options, safe_private, pixel_rules=pixel_rules, domain=args.domain
        )
    except ValueError as exc:
        return _usage(str(exc))
    check: Callable[[Path, Any, Path, Any], list[Any]] | None = None
    if args.verify:
        from lambdas.deid.verify import DCIODVFY

        iod = shutil.which(DCIODVFY) is not None
        if not iod:
            sys.stderr.write(
                f"pacs-kit deid: {DCIODVFY} not found (dicom3tools): outputs are checked for "
                "leaks, not for IOD errors their input lacked\n"
            )
        check = output_check(options, safe_private, iod=iod)
    inputs = [Path(f) for f in args.files]
    out_dir = args.out.resolve()
    if any(p.resolve().parent == out_dir for p in inputs):
        return _usage("--out is the directory of an input: choose a separate output directory")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _usage(f"cannot create {args.out}: {exc.strerror}")
    refused = 0
    written: set[Path] = set()
    for path in inputs:
        findings: list[Any] = []
        try:
            with quiet():  # pydicom's warnings quote values: none on the terminal
                code, target = deidentify_file(
                    engine, path, args.out, check=check, findings=findings, taken=written
                )
        except Exception as exc:  # noqa: BLE001 - a bug must not cost the other inputs their outputs
            sys.stderr.write(f"pacs-kit deid: {path}: {type(exc).__name__}\n")
            code, target = INTERNAL_ERROR, None
        if code is None and target is not None:
            written.add(target)
            _out(f"deidentified  {path} -> {target}")
        else:
            refused += 1
            _out(f"refused  {path}  {code}")
            for finding in findings:
                _out(f"{path}: {finding.code} {finding.tag}")
    return EXIT_REFUSED if refused else EXIT_OK


def load_pixel_rules(path: Path | None) -> tuple[Any, ...]:
    """The ``--pixel-rules`` file's rules (none without the flag); OSError or ValueError."""
    if path is None:
        return ()
    from lambdas.deid.pixels import load_rules

    return load_rules(path.read_text(encoding="utf-8"))


def output_name(out: Any) -> str | None:
    """``<de-identified SOPInstanceUID>.dcm``; None when the UID is no safe file name."""
    uid = str(out.get("SOPInstanceUID", "") or "").strip()
    return f"{uid}.dcm" if _UID.fullmatch(uid) and len(uid) <= 64 else None


def deidentify_file(
    engine: Any,
    source: Path,
    out_dir: Path,
    *,
    check: Callable[[Path, Any, Path, Any], list[Any]] | None = None,
    findings: list[Any] | None = None,
    taken: set[Path] | None = None,
) -> tuple[str | None, Path | None]:
    """De-identify one file atomically into ``out_dir``, named after its de-identified SOP
    Instance UID: (None, the output) when written, else (the refusal code, None).

    An output already in ``taken`` (written by an earlier input of the run) is not overwritten:
    ``duplicate``.

    With ``check`` (:func:`output_check`: input path and data set, written path and data set ->
    findings), the written temporary file is read back and checked before the rename; on any
    finding it is removed, the findings are appended to ``findings`` and the code is
    ``verification-failed``. Whatever happens (even an interrupt), no temporary file remains.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from lambdas.deid.engine import DeidError

    try:
        ds = pydicom.dcmread(source)
    except (InvalidDicomError, OSError, EOFError):
        return "not-dicom", None
    except (ValueError, TypeError, KeyError, AttributeError):
        return "unsupported", None
    try:
        out = engine.deidentify(ds)
    except DeidError as exc:
        return exc.code, None
    name = output_name(out)
    if name is None:
        return "unsupported", None
    target = out_dir / name
    if taken is not None and target in taken:
        return DUPLICATE, None
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".deid.", suffix=".part")
    placed = False
    try:
        with os.fdopen(fd, "wb") as fh:
            out.save_as(fh, enforce_file_format=True)
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            # What was written, not the in-memory copy: an encoding problem is a finding too.
            found = check(source, ds, Path(tmp), pydicom.dcmread(tmp))
            if found:
                if findings is not None:
                    findings.extend(found)
                return VERIFICATION_FAILED, None
        Path(tmp).replace(target)
        placed = True
    except (OSError, ValueError, TypeError, AttributeError, KeyError, InvalidDicomError):
        return "unsupported", None
    finally:
        if not placed:  # refused, failed or interrupted (Ctrl-C): no partial file stays
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
    return None, target


def output_check(
    options: Any, safe_private: frozenset[tuple[str, int]], *, iod: bool
) -> Callable[[Path, Any, Path, Any], list[Any]]:
    """``--verify``'s check of one written output against its input: leaks
    (:func:`lambdas.deid.verify.verify`) and, with ``iod``, the dciodvfy errors the output has
    and the input had not (:func:`lambdas.deid.verify.iod_errors_added`)."""
    from lambdas.deid.verify import iod_errors_added, verify

    def check(source: Path, original: Any, written: Path, output: Any) -> list[Any]:
        found = verify(original, output, options=options, safe_private=safe_private)
        if iod:
            found += iod_errors_added(source, written)
        return found

    return check
