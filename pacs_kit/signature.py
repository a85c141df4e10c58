"""``pacs-kit sign`` and ``pacs-kit verify-signature``: DICOM digital signatures (issue #9).

``pacs-kit sign --key KEY.pem --cert CERT.pem IN OUT`` (or ``--kms-key-id ID --cert CERT.pem``)
adds a Digital Signatures Sequence item (PS3.15 Annex C, :mod:`lambdas.dicom_signature`) to the
Part 10 file IN and writes OUT atomically (a temporary file in OUT's directory, renamed). With a
local key the signature is made here; with ``--kms-key-id`` KMS signs the digest and the key
never leaves KMS (the certificate must certify the KMS key: ``pacs-kit pki csr`` / ``sign-csr``).
``--mac`` chooses the MAC (SHA256 default), ``--tag gggg,eeee`` (repeat) signs only those
elements, ``--purpose N`` records an ASTM signature purpose. Prints ``signed IN -> OUT  <uid>``
(the Digital Signature UID), and warns on stderr, naming tags only, when elements are left
unsigned (UN elements, sequences holding one, or not chosen with ``--tag``). Big endian input is
refused (``big-endian``: convert it first, ``dcmconv +te``). Exit 0 signed, 1 the file could
not be signed (not DICOM, big endian, an unsignable or missing tag, KMS refused), 2 usage
errors (missing or unreadable key or certificate, key and certificate do not match, IN is OUT).

``pacs-kit verify-signature [--ca CA.pem] [--json] FILE...`` prints one line per signature:
``FILE  signer=<subject>  time=<DigitalSignatureDateTime>  profile=<profile>  mac=<MAC>
covers=<N>/<M>  verdict=<verdict>`` (``--json``: one object per file with its signatures, the
unsigned tags listed in ``tags_unsigned``). ``covers``: N elements signed of the N+k top-level
elements that may be signed (k present but unsigned: they could have been added or changed).
Control characters of a certificate subject are printed escaped (``\\x0a``). Verdicts:
``valid`` (verifies and the signer's certificate chains to a certificate of ``--ca``),
``untrusted`` (verifies; no chain, or no ``--ca``), ``invalid`` (altered after signing),
``unsupported``, ``malformed``; a file without signatures prints ``FILE  unsigned``. Exit 0 only
when every FILE carries at least one ``valid`` signature, 1 otherwise, 2 on usage errors (an
unreadable or empty ``--ca``). A file that cannot be read (deeply nested sequences included) is
reported and the next one checked. Nothing printed is a value of the data set: signers are the
certificates' subjects.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _tag(text: str) -> int:
    group, sep, element = text.strip("()").partition(",")
    try:
        if not sep:
            raise ValueError
        return (int(group, 16) << 16) | int(element, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a tag gggg,eeee: {text!r}") from None


def add_commands(commands: Any) -> None:
    """Register ``sign`` and ``verify-signature`` on the ``pacs-kit`` sub-command parser."""
    sign = commands.add_parser(
        "sign",
        help="add a DICOM digital signature (PS3.15 Annex C) with a local or KMS key",
        description="Sign IN into OUT: a Digital Signatures Sequence item with the signer's "
        "certificate, verifiable by any DICOM tool (e.g. dcmsign --verify).",
        usage="pacs-kit sign (--key KEY.pem | --kms-key-id ID) --cert CERT.pem [--mac NAME] "
        "[--tag gggg,eeee]... [--purpose N] IN OUT",
    )
    key = sign.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", type=Path, metavar="KEY.pem", help="the signer's private key (PEM)")
    key.add_argument("--kms-key-id", metavar="ID", help="an asymmetric KMS signing key")
    sign.add_argument(
        "--cert", type=Path, required=True, metavar="CERT.pem", help="the signer's certificate"
    )
    sign.add_argument("--region", help="with --kms-key-id: the key's region")
    sign.add_argument("--mac", default="SHA256", help="SHA256 (default), SHA384 or SHA512")
    sign.add_argument(
        "--tag",
        type=_tag,
        action="append",
        metavar="gggg,eeee",
        help="sign only these top-level elements (repeat; default: every signable element)",
    )
    sign.add_argument("--purpose", metavar="N", help="ASTM E1762 signature purpose code (1-18)")
    sign.add_argument("input", type=Path, metavar="IN")
    sign.add_argument("output", type=Path, metavar="OUT")
    sign.set_defaults(handler=run_sign)

    verify = commands.add_parser(
        "verify-signature",
        help="check the DICOM digital signatures of files (exit 0 only if each has a valid one)",
        description="Verify every Digital Signatures Sequence item; with --ca, a signature is "
        "valid only if its signer's certificate chains to one of the CA certificates.",
    )
    verify.add_argument(
        "--ca", type=Path, metavar="CA.pem", help="trusted CA certificates (PEM, one or more)"
    )
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.add_argument("files", type=Path, nargs="+", metavar="FILE")
    verify.set_defaults(handler=run_verify)


def _usage(command: str, message: str) -> int:
    sys.stderr.write(f"pacs-kit {command}: {message}\n")
    return EXIT_USAGE


def _signer(args: argparse.Namespace) -> Any:
    """The signer of ``args``; ValueError (usage) naming what is wrong."""
    from cryptography import x509

    from lambdas.dicom_signature import LocalSigner, SignatureError

    try:
        certificate = x509.load_pem_x509_certificate(args.cert.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {args.cert}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"{args.cert} is not a PEM certificate") from None
    if args.key is not None:
        try:
            return LocalSigner.from_pem_files(args.key, args.cert)
        except OSError as exc:
            raise ValueError(f"cannot read {args.key}: {exc.strerror}") from None
        except (SignatureError, ValueError, TypeError) as exc:
            raise ValueError(f"{args.key}: {exc}") from None
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from lambdas.kms_signing import KmsSigner, KmsSigningError

    try:
        kms = boto3.client("kms", region_name=args.region)
        return KmsSigner(kms, args.kms_key_id, certificate)
    except (BotoCoreError, ClientError, KmsSigningError) as exc:
        raise ValueError(f"KMS key {args.kms_key_id}: {exc}") from None


def run_sign(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from lambdas.deid.engine import quiet
    from lambdas.dicom_signature import SignatureError, sign_part10
    from lambdas.kms_signing import KmsSigningError

    if args.input.resolve() == args.output.resolve():
        return _usage("sign", "IN and OUT are the same file: write the signed copy elsewhere")
    try:
        signer = _signer(args)
    except ValueError as exc:
        return _usage("sign", str(exc))
    try:
        data = args.input.read_bytes()
    except OSError as exc:
        sys.stderr.write(f"pacs-kit sign: cannot read {args.input}: {exc.strerror}\n")
        return EXIT_FAILED
    try:
        with quiet():
            signed, info = sign_part10(
                data, signer, mac_algorithm=args.mac.upper(), tags=args.tag, purpose=args.purpose
            )
    except (SignatureError, KmsSigningError) as exc:
        sys.stderr.write(f"pacs-kit sign: {args.input}: {exc}\n")
        return EXIT_FAILED
    except (BotoCoreError, ClientError) as exc:
        sys.stderr.write(f"pacs-kit sign: KMS: {exc}\n")
        return EXIT_FAILED
    except (ValueError, TypeError, KeyError, AttributeError, EOFError, RecursionError) as exc:
        # pydicom's messages may quote values: the type only.
        sys.stderr.write(f"pacs-kit sign: {args.input}: not signable ({type(exc).__name__})\n")
        return EXIT_FAILED
    try:
        _write_atomically(args.output, signed)
    except OSError as exc:
        sys.stderr.write(f"pacs-kit sign: cannot write {args.output}: {exc.strerror}\n")
        return EXIT_FAILED
    if info.tags_unsigned:
        tags = " ".join(_tag_text(t) for t in info.tags_unsigned)
        sys.stderr.write(
            f"pacs-kit sign: warning: {len(info.tags_unsigned)} element(s) left unsigned "
            f"(UN, holding UN, or not chosen): {tags}\n"
        )
    sys.stdout.write(f"signed {args.input} -> {args.output}  {info.uid}\n")
    return EXIT_OK


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped (``\\x0a``): a
    certificate subject is chosen by whoever made the certificate and must not forge lines or
    drive the terminal."""
    return "".join(
        c if c.isprintable() else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        for c in text
    )


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sign.", suffix=".part")
    placed = False
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
        placed = True
    finally:
        if not placed:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()


def load_trusted(path: Path | None) -> list[Any]:
    """The ``--ca`` certificates (none without the flag); ValueError when unusable."""
    if path is None:
        return []
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"{path} holds no PEM certificate") from None
    return certificates


def file_reports(path: Path, trusted: list[Any]) -> tuple[str, list[Any]]:
    """(state, reports) of one file: state ``signed``, ``unsigned``, ``not-dicom`` or
    ``malformed`` (nested too deeply to read)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from lambdas.deid.engine import quiet
    from lambdas.dicom_signature import verify_signatures

    try:
        with quiet(), path.open("rb") as fp:
            # large values stay in the file and are hashed from it in chunks
            ds = pydicom.dcmread(fp, defer_size=DEFER_SIZE)
            reports = verify_signatures(ds, trusted=trusted, source=fp)
    except RecursionError:
        return "malformed", []
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError):
        return "not-dicom", []
    return ("signed" if reports else "unsigned"), reports


DEFER_SIZE = 1 << 20  # values above 1 MiB are read when hashed, in chunks, never kept


def run_verify(args: argparse.Namespace) -> int:
    from lambdas.dicom_signature import VALID

    try:
        trusted = load_trusted(args.ca)
    except ValueError as exc:
        return _usage("verify-signature", str(exc))
    documents = []
    all_valid = True
    for path in args.files:
        state, reports = file_reports(path, trusted)
        all_valid = all_valid and any(r.verdict == VALID for r in reports)
        if args.json:
            documents.append(
                {
                    "file": str(path),
                    "state": state,
                    "valid": any(r.verdict == VALID for r in reports),
                    "signatures": [r.__dict__ for r in reports],
                }
            )
            continue
        if not reports:
            sys.stdout.write(f"{path}  {state}\n")
        for r in reports:
            sys.stdout.write(
                f"{path}  signer={printable(r.signer)}  time={printable(r.time)}  "
                f"profile={r.profile}  mac={printable(r.mac_algorithm)}  "
                f"covers={r.tags_signed}/{r.tags_signed + len(r.tags_unsigned)}  "
                f"verdict={r.verdict}" + (f"  ({r.reason})" if r.reason else "") + "\n"
            )
    if args.json:
        sys.stdout.write(json.dumps(documents, indent=2) + "\n")
    if not trusted and not args.json:
        sys.stderr.write(
            "pacs-kit verify-signature: no --ca: no signature can be valid, only untrusted\n"
        )
    return EXIT_OK if all_valid else EXIT_FAILED
