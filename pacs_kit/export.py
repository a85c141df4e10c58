"""``pacs-kit export`` and ``pacs-kit open``: encrypted export packages (issue #9).

``pacs-kit export --recipient CERT.pem [--deid [--option NAME]... --key-file K] [--sign-key KEY.pem
--sign-cert CERT.pem] --out DIR FILE...`` writes a package (:mod:`lambdas.export_package`): for
the input at position n (1, 2, ... on the command line) a Secure DICOM File ``DIR/<n>.p7m``, CMS
EnvelopedData of its Part 10 bytes (AES-256-CBC, RSA key transport to CERT.pem), and
``DIR/manifest.json`` with its detached signature ``DIR/manifest.json.p7s``. A refused input
leaves a gap in the numbering. With ``--deid`` each input is de-identified first by
:class:`lambdas.deid.engine.Deidentifier` (as ``pacs-kit deid`` does, with ``--option``) and the
de-identified bytes are packaged; without it the input's exact bytes are.

The manifest is signed with ``--sign-key``/``--sign-cert`` when given. Without them, export makes a
one-time EC P-256 key and self-signed certificate (CN "cloud-pacs-kit one-time export signer"):
that signature proves the members are the ones the manifest lists (integrity), not who made the
package (anyone can make such a key); a warning on stderr says so.

The package is built in a temporary directory next to DIR and renamed into place at the end: DIR
(which must not exist or be empty, and not be an input's directory) never holds a half-written
package. One line per input, in input order, once the package is in place: ``packaged IN ->
DIR/<n>.p7m`` or ``refused IN <code>`` (codes of :data:`lambdas.deid.engine.ERRORS`,
``unreadable``, ``not-part10``, ``duplicate`` for a SOP Instance UID already packaged,
``internal-error``); never a value from the data set. When no input is packaged, no package is
written. Exit 0 when every input was packaged, 1 when any was refused or failed (the others are
packaged and only they are listed), 2 on usage errors (recipient certificate missing, unreadable,
invalid, not valid now or not RSA; --option or --key-file without --deid; signing key not matching
its certificate; DIR not empty or an input's directory).

``pacs-kit open DIR --key KEY.pem --out OUT [--ca CA.pem]`` opens the package directory DIR, or a
package zipped into one file (what the export function writes, ``package.zip``): its entries are
checked first (only ``manifest.json``, ``manifest.json.p7s`` and ``<n>.p7m``, each once, as plain
files: no path, no ``..``, no directory or link; else ``refused DIR package-invalid``, exit 1) and
unpacked into a temporary directory, which is then opened as a directory is and removed. It
verifies the manifest signature (with ``--ca``, the signer certificate must chain to a CA of
CA.pem; without, the signer's subject is printed on stderr with "not checked against a CA"). A
manifest whose signature fails opens nothing. Then, for every member listed: decrypts it with
KEY.pem (RSA, the package's recipient), checks its SHA-256 and size against the manifest and
writes ``OUT/<SOPInstanceUID>.dcm`` through a temporary file and a rename. One line per member:
``opened DIR/<n>.p7m -> OUT/<uid>.dcm`` or ``refused DIR/<n>.p7m <code>`` (``missing``,
``decrypt-failed``, ``digest-mismatch``, ``not-in-manifest`` for an extra .p7m in DIR); a refused
member writes nothing. Exit 0 when every member verified and was written, 1 when the signature,
the manifest or any member failed, 2 on usage errors (DIR missing, key unreadable, not RSA or not
the recipient's, CA file unreadable, OUT the package directory).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import io
import os
import re
import shutil
import stat
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lambdas import export_package as pkg

if TYPE_CHECKING:
    from lambdas.dicom_signature import LocalSigner

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
DISTRIBUTION = "cloud-pacs-kit"
INTERNAL_ERROR = "internal-error"
# A SOP Instance UID used as a file name: digits and dots only.
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


class UsageError(ValueError):
    """A command line that cannot be carried out (exit 2)."""


def add_command(commands: Any) -> None:
    """Register ``export`` and ``open`` on the ``pacs-kit`` sub-command parser."""
    export = commands.add_parser(
        "export",
        help="write an encrypted export package (Secure DICOM Files, signed manifest)",
        description="Encrypt FILEs (optionally de-identified first) to a recipient certificate as "
        "Secure DICOM Files DIR/<n>.p7m, with a signed DIR/manifest.json.",
        usage="pacs-kit export --recipient CERT.pem [--deid [--option NAME]... --key-file K] "
        "[--sign-key KEY.pem --sign-cert CERT.pem] --out DIR FILE...",
    )
    export.add_argument("files", nargs="+", metavar="FILE", help="DICOM Part 10 files")
    export.add_argument(
        "--recipient",
        type=Path,
        required=True,
        metavar="CERT.pem",
        help="recipient certificate (RSA key): members are encrypted to it",
    )
    export.add_argument(
        "--deid", action="store_true", help="de-identify each input first (pacs-kit deid's engine)"
    )
    export.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME",
        help="with --deid: profile option (repeat), as for pacs-kit deid",
    )
    export.add_argument(
        "--key-file", type=Path, metavar="K", help="with --deid: the de-identification key file"
    )
    export.add_argument(
        "--sign-key", type=Path, metavar="KEY.pem", help="manifest signing key (RSA or EC)"
    )
    export.add_argument(
        "--sign-cert", type=Path, metavar="CERT.pem", help="certificate of --sign-key"
    )
    export.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="package directory (new or empty)"
    )
    export.set_defaults(handler=run_export)

    opener = commands.add_parser(
        "open",
        help="verify and decrypt an export package",
        description="Verify DIR's manifest signature and every member's digest, and decrypt the "
        "members into OUT/<SOPInstanceUID>.dcm.",
        usage="pacs-kit open DIR --key KEY.pem --out OUT [--ca CA.pem]",
    )
    opener.add_argument(
        "package", type=Path, metavar="DIR", help="the package directory, or the package's .zip"
    )
    opener.add_argument(
        "--key", type=Path, required=True, metavar="KEY.pem", help="recipient's RSA private key"
    )
    opener.add_argument(
        "--out", type=Path, required=True, metavar="OUT", help="directory for the .dcm files"
    )
    opener.add_argument(
        "--ca",
        type=Path,
        metavar="CA.pem",
        help="CA certificates the manifest signer must chain to",
    )
    opener.add_argument(
        "--signer-sha256",
        metavar="HEX",
        help="the SHA-256 fingerprint the manifest signer's certificate must have (learned out "
        "of band from the sender): pins the origin without a CA",
    )
    opener.set_defaults(handler=run_open)


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(command: str, message: str) -> None:
    sys.stderr.write(f"pacs-kit {command}: {message}\n")


def load_certificate(path: Path, what: str) -> x509.Certificate:
    """The first certificate of a PEM (or DER) file; UsageError naming ``what``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise UsageError(f"{path}: not a valid X.509 certificate ({what})") from exc


def load_private_key(path: Path, what: str) -> Any:
    """An unencrypted PEM private key; UsageError naming ``what``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise UsageError(f"{path}: encrypted private keys are not supported ({what})") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"{path}: not a valid PEM private key ({what})") from exc


def creator() -> dict[str, str]:
    """The kit and its installed version, for the manifest."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return {"name": DISTRIBUTION, "version": version(DISTRIBUTION)}
    except PackageNotFoundError:
        return {"name": DISTRIBUTION, "version": "unknown"}


@dataclass
class _Options:
    recipient: x509.Certificate
    signer: LocalSigner | None
    engine: Any
    inputs: list[Path]
    out: Path


def _export_options(args: argparse.Namespace) -> _Options:
    if not args.deid and args.option:
        raise UsageError("--option needs --deid")
    if not args.deid and args.key_file is not None:
        raise UsageError("--key-file needs --deid (without it the inputs are not de-identified)")
    if args.deid and args.key_file is None:
        raise UsageError("--deid needs --key-file (at least 32 random bytes)")
    if (args.sign_key is None) != (args.sign_cert is None):
        raise UsageError("--sign-key and --sign-cert go together")
    recipient = load_certificate(args.recipient, "recipient certificate")
    try:
        pkg.check_recipient(recipient)
    except pkg.PackageError as exc:
        why = {
            "recipient-not-rsa": "the recipient key is not RSA (CMS key transport here is RSA key "
            "transport): issue the recipient an RSA certificate",
            "recipient-weak-key": f"the recipient key is too short ({exc})",
            "recipient-not-for-encryption": "the certificate's key usage does not allow "
            "keyEncipherment: it is not certified to receive keys",
        }.get(exc.code, str(exc))
        raise UsageError(f"{args.recipient}: {why}") from exc
    now = dt.datetime.now(dt.UTC)
    if not recipient.not_valid_before_utc <= now <= recipient.not_valid_after_utc:
        raise UsageError(f"{args.recipient}: the recipient certificate is not valid now")
    signer = None
    if args.sign_key is not None:
        key = load_private_key(args.sign_key, "signing key")
        cert = load_certificate(args.sign_cert, "signing certificate")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise UsageError(f"{args.sign_key}: the signing key must be RSA or EC")
        try:
            pkg.check_key_pair(key, cert)
        except pkg.PackageError as exc:
            raise UsageError(f"{args.sign_key} is not the key of {args.sign_cert}") from exc
        from lambdas.dicom_signature import LocalSigner, SignatureError  # pydicom: only when used

        try:
            signer = LocalSigner(key, cert)
        except SignatureError as exc:
            raise UsageError(
                f"{args.sign_key}: {exc} (RSA of 2048 bits or more, EC P-256 or P-384)"
            ) from exc
    engine = None
    if args.deid:
        from lambdas.deid.engine import Deidentifier
        from lambdas.deid.keys import LocalKeyer
        from lambdas.deid.profile import options_from

        try:
            keyer = LocalKeyer.from_file(args.key_file)
        except OSError as exc:
            raise UsageError(f"cannot read the key file: {exc.strerror}") from exc
        except ValueError as exc:
            raise UsageError(f"key file {args.key_file}: {exc}") from exc
        try:
            engine = Deidentifier(keyer, options_from(args.option))
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    inputs = [Path(f) for f in args.files]
    out = args.out.resolve()
    if any(p.resolve().parent == out for p in inputs):
        raise UsageError("--out is the directory of an input: choose a new or empty directory")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {args.out} exists and is not an empty directory")
    return _Options(recipient, signer, engine, inputs, out)


def run_export(args: argparse.Namespace) -> int:
    """``pacs-kit export``."""
    try:
        opts = _export_options(args)
    except UsageError as exc:
        _err("export", str(exc))
        return EXIT_USAGE
    try:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            tempfile.mkdtemp(dir=opts.out.parent, prefix=f".{opts.out.name}.", suffix=".part")
        )
    except OSError as exc:
        _err("export", f"cannot create a directory next to {args.out}: {exc.strerror}")
        return EXIT_USAGE
    try:
        return _export_into(opts, tmp, args.out)
    finally:
        # Refused, failed or interrupted (Ctrl-C): no half-written package stays.
        shutil.rmtree(tmp, ignore_errors=True)


def _export_into(opts: _Options, tmp: Path, shown: Path) -> int:
    members: list[pkg.Member] = []
    lines: list[str] = []
    seen: set[str] = set()
    for n, path in enumerate(opts.inputs, start=1):
        name = f"{n}{pkg.MEMBER_SUFFIX}"
        try:
            code, member = package_file(path, tmp / name, opts.recipient, opts.engine, seen)
        except Exception as exc:  # noqa: BLE001 - a bug must not cost the other inputs
            _err("export", f"{path}: {type(exc).__name__}")
            code, member = INTERNAL_ERROR, None
        if member is None:
            lines.append(f"refused  {path}  {code}")
        else:
            members.append(member)
            lines.append(f"packaged  {path} -> {shown / name}")
    if not members:
        for line in lines:
            _out(line)
        _err("export", "no input was packaged: no package written")
        return EXIT_REFUSED
    signer = opts.signer
    if signer is None:
        signer = pkg.one_time_signer()
        _err(
            "export",
            "warning: no --sign-key/--sign-cert: the manifest is signed with a one-time key; "
            "its signature proves the members are those the manifest lists (integrity), not "
            "who made the package",
        )
    manifest = pkg.build_manifest(
        members, opts.recipient, creator=creator(), created=dt.datetime.now(dt.UTC)
    )
    _write(tmp / pkg.MANIFEST, manifest)
    _write(tmp / pkg.SIGNATURE, pkg.sign_detached(manifest, signer))
    try:
        tmp.replace(opts.out)  # rename(2) replaces an empty directory, never a full one
    except OSError as exc:
        _err("export", f"cannot move the package into {shown}: {exc.strerror}")
        return EXIT_USAGE
    _fsync_dir(opts.out.parent)
    for line in lines:
        _out(line)
    return EXIT_REFUSED if len(members) < len(opts.inputs) else EXIT_OK


def package_file(
    source: Path, target: Path, recipient: x509.Certificate, engine: Any, seen: set[str]
) -> tuple[str | None, pkg.Member | None]:
    """Encrypt one input (de-identified first with ``engine``) into ``target``: (None, its
    manifest entry), or (the refusal code, None). ``seen`` holds the SOP Instance UIDs packaged
    so far; a repeated one is refused (``duplicate``): open names outputs by it.

    Members are the input's exact bytes (or the de-identified ones): the signed manifest, which
    lists each member's SHA-256, authenticates them all. A DICOM digital signature inside a
    member, if wanted, is added before export (``pacs-kit sign``) and travels unchanged."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from lambdas.deid.engine import DeidError, quiet

    try:
        data = source.read_bytes()
    except OSError:
        return "unreadable", None
    if data[128:132] != b"DICM":
        return "not-part10", None
    try:
        with quiet():  # pydicom's warnings quote values: none on the terminal
            ds = pydicom.dcmread(io.BytesIO(data))
            if engine is not None:
                ds = engine.deidentify(ds)
                buffer = io.BytesIO()
                ds.save_as(buffer, enforce_file_format=True)
                data = buffer.getvalue()
    except DeidError as exc:
        return exc.code, None
    except (InvalidDicomError, EOFError):
        return "not-dicom", None
    except (ValueError, TypeError, KeyError, AttributeError):
        return "unsupported", None
    uids = {
        "sop_class_uid": _uid(ds.get("SOPClassUID")),
        "sop_instance_uid": _uid(ds.get("SOPInstanceUID")),
        "study_instance_uid": _uid(ds.get("StudyInstanceUID")),
        "series_instance_uid": _uid(ds.get("SeriesInstanceUID")),
        "transfer_syntax_uid": _uid(ds.file_meta.get("TransferSyntaxUID")),
    }
    instance = uids["sop_instance_uid"]
    if not _safe_uid(instance) or not uids["sop_class_uid"]:
        return "unsupported", None
    if instance in seen:
        return "duplicate", None
    _write(target, pkg.envelope(data, recipient))
    seen.add(instance)
    return None, pkg.Member.of(target.name, data, uids, deidentified=engine is not None)


def _uid(value: object) -> str:
    return str(value or "").strip().rstrip("\0")


def _safe_uid(uid: str) -> bool:
    return bool(_UID.fullmatch(uid)) and len(uid) <= 64


def _write(path: Path, data: bytes) -> None:
    with path.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def run_open(args: argparse.Namespace) -> int:
    """``pacs-kit open``."""
    package: Path = args.package
    try:
        is_zip = package.is_file()
        if not is_zip and not package.is_dir():
            raise UsageError(f"{package} is neither a package directory nor a .zip package")
        if args.out.resolve() == package.resolve():
            raise UsageError("--out is the package directory: choose another")
        key = load_private_key(args.key, "recipient key")
        if not isinstance(key, rsa.RSAPrivateKey):
            raise UsageError(f"{args.key}: the recipient key must be RSA (CMS key transport)")
        trusted = _load_cas(args.ca) if args.ca is not None else []
    except UsageError as exc:
        _err("open", str(exc))
        return EXIT_USAGE
    if not is_zip:
        return _open_directory(args, package, package, key, trusted)
    with tempfile.TemporaryDirectory(prefix=".pacs-kit-open.") as unpacked:
        try:
            extract_package(package, Path(unpacked))
        except pkg.PackageError as exc:
            _out(f"refused  {package}  {exc.code}")
            _err("open", f"{exc}: nothing opened")
            return EXIT_REFUSED
        return _open_directory(args, Path(unpacked), package, key, trusted)


# What a .zip package may hold, and nothing else: flat names, no directories, links or paths.
_ZIP_MEMBER = re.compile(r"[1-9][0-9]{0,8}\.p7m")
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}


def extract_package(archive: Path, into: Path) -> None:
    """Unpack a .zip package into the empty directory ``into`` after checking every entry:
    only ``manifest.json``, ``manifest.json.p7s`` and ``<n>.p7m``, each once, as regular files
    (no absolute path, no ``..``, no directory, no symbolic link), stored or deflated.
    PackageError ``package-invalid`` otherwise; then the package is checked as a directory is."""
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = zf.infolist()
            names = [e.filename for e in entries]
            if len(set(names)) != len(names):
                raise pkg.PackageError("package-invalid", "a zip entry is repeated")
            for entry in entries:
                name = entry.filename
                if name not in (pkg.MANIFEST, pkg.SIGNATURE) and not _ZIP_MEMBER.fullmatch(name):
                    raise pkg.PackageError("package-invalid", "unexpected zip entry name")
                mode = entry.external_attr >> 16
                if entry.is_dir() or stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                    raise pkg.PackageError("package-invalid", "a zip entry is not a regular file")
                if entry.compress_type not in _ZIP_METHODS:
                    raise pkg.PackageError("package-invalid", "unsupported zip compression")
            declared = sum(e.file_size for e in entries)
            # Encrypted members do not compress: a package that expands far beyond its own size
            # is a zip bomb, refused before any byte is written (zipfile refuses sizes that lie).
            if declared > 2 * archive.stat().st_size + 1024 * 1024:
                raise pkg.PackageError("package-invalid", "expands far beyond its own size")
            if declared > shutil.disk_usage(into).free:
                raise pkg.PackageError("package-invalid", "larger than the free space to unpack")
            for entry in entries:
                # The name is checked above: plain, so it stays inside ``into``.
                with zf.open(entry) as source, (into / entry.filename).open("xb") as target:
                    shutil.copyfileobj(source, target, 1024 * 1024)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise pkg.PackageError("package-invalid", "not a readable zip") from exc


def _open_directory(
    args: argparse.Namespace,
    package: Path,
    shown: Path,
    key: rsa.RSAPrivateKey,
    trusted: list[x509.Certificate],
) -> int:
    """Verify and open the package in the directory ``package``, naming it ``shown``."""
    try:
        manifest_bytes = (package / pkg.MANIFEST).read_bytes()
        p7s = (package / pkg.SIGNATURE).read_bytes()
    except OSError as exc:
        _out(f"refused  {shown}  manifest-missing")
        _err("open", f"cannot read the manifest or its signature: {exc.strerror}")
        return EXIT_REFUSED
    try:
        signer = pkg.verify_detached(manifest_bytes, p7s, trusted)
        manifest = pkg.parse_manifest(manifest_bytes)
        names = [m.sop_instance_uid for m in manifest.members]
        if not all(_safe_uid(u) for u in names) or len(set(names)) != len(names):
            raise pkg.PackageError("manifest-invalid", "SOP Instance UIDs unsafe or repeated")
    except pkg.PackageError as exc:
        _out(f"refused  {shown}  {exc.code}")
        _err("open", f"{exc}: nothing opened")
        return EXIT_REFUSED
    subject = _printable(signer.subject.rfc4514_string())
    signer_sha256 = pkg.fingerprint(signer)
    pinned = (args.signer_sha256 or "").replace(":", "").strip().lower()
    if pinned and pinned != signer_sha256:
        _out(f"refused  {shown}  signer-untrusted")
        _err("open", f"the manifest signer's SHA-256 is {signer_sha256}, not {pinned}")
        return EXIT_REFUSED
    if trusted:
        _err("open", f"manifest signed by {subject} (SHA-256 {signer_sha256}), chains to {args.ca}")
    elif pinned:
        _err("open", f"manifest signed by {subject}, the pinned signer (SHA-256 {signer_sha256})")
    else:
        _err(
            "open",
            f"warning: manifest signed by {subject} (SHA-256 {signer_sha256}): not checked "
            "against a CA or a pinned fingerprint: the members match the manifest, but anyone "
            "holding the recipient certificate could have made this package (use --ca or "
            "--signer-sha256 to know who did)",
        )
    try:
        pkg.check_key_pair(key, manifest.recipient)
    except pkg.PackageError:
        _err("open", f"{args.key} is not the key of this package's recipient: nothing opened")
        return EXIT_USAGE
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _err("open", f"cannot create {args.out}: {exc.strerror}")
        return EXIT_USAGE
    refused = 0
    listed = {m.file for m in manifest.members}
    for extra in sorted(p.name for p in package.glob(f"*{pkg.MEMBER_SUFFIX}")):
        if extra not in listed:
            refused += 1
            _out(f"refused  {shown / extra}  not-in-manifest")
    for member in manifest.members:
        source = package / member.file
        code = open_member(source, member, key, manifest.recipient, args.out)
        if code is None:
            _out(
                f"opened  {shown / member.file} -> {args.out / (member.sop_instance_uid + '.dcm')}"
            )
        else:
            refused += 1
            _out(f"refused  {shown / member.file}  {code}")
    return EXIT_REFUSED if refused else EXIT_OK


def _printable(text: str) -> str:
    """``text`` with control characters escaped: certificate subjects come from the package."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _load_cas(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the CA file {path}: {exc.strerror}") from exc
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise UsageError(f"{path}: no valid PEM certificate (--ca)") from exc


def open_member(
    source: Path,
    member: pkg.Member,
    key: rsa.RSAPrivateKey,
    recipient: x509.Certificate,
    out_dir: Path,
) -> str | None:
    """Decrypt, check and write one member as ``out_dir/<SOPInstanceUID>.dcm``: None when
    written, else the refusal code (nothing written)."""
    try:
        der = source.read_bytes()
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    try:
        data = pkg.open_envelope(der, key, recipient)
    except pkg.PackageError as exc:
        return exc.code
    if len(data) != member.size or hashlib.sha256(data).hexdigest() != member.sha256:
        return "digest-mismatch"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".open.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # link(2) never replaces: an existing OUT/<uid>.dcm is kept, this member refused.
            os.link(tmp, out_dir / f"{member.sop_instance_uid}.dcm")
        except FileExistsError:
            return "exists"
    finally:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()  # the temporary name (the output, once placed, is its link)
    return None
