"""Verify on receipt: the one DICOM validator of the ingest function and ``pacs-kit validate``.

The input is read exactly once, as a stream of chunks: every byte goes through SHA-256 and into a
spool (memory up to a few MiB, then a temporary file), so a multi-gigabyte multi-frame object never
sits in memory. pydicom parses the spool with large values deferred: pixel data is located and
measured, never loaded.

Every failure is a :class:`Reason` with a stable ``code`` (the quarantine reason) and a message that
names what is wrong. Messages never quote element values: UIDs and sizes only, no patient data.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import warnings
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import pydicom
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from lambdas import dicom_signature as signatures
from lambdas.settings import DEFAULT_SIGNATURE_POLICY

# pydicom's own log and warning messages may quote element values (names, IDs): keep them in.
logging.getLogger("pydicom").disabled = True

# Stable reason codes (quarantine tags, audit events, `pacs-kit validate --json`). Never rename.
REASONS: dict[str, str] = {
    "unreadable": "the object could not be read at all",
    "too-large": "the object exceeds the configured size cap",
    "not-dicom-part10": "no DICOM Part 10 header (128-byte preamble + 'DICM')",
    "polyglot-preamble": "executable or archive signature in the preamble (CVE-2019-11687)",
    "file-meta-missing": "no File Meta Information (group 0002)",
    "file-meta-malformed": "File Meta Information incomplete or inconsistent",
    "transfer-syntax-unsupported": "transfer syntax not in the accepted list",
    "deflate-bomb": "deflated data set inflates past the cap",
    "media-storage-mismatch": "File Meta SOP Class/Instance UID differs from the data set",
    "uid-missing": "a required UID is absent or empty",
    "uid-malformed": "a required UID breaks the UI syntax (digits and dots, <= 64 chars)",
    "patient-id-missing": "PatientID is absent or empty",
    "sop-class-not-allowed": "SOP Class not in the storage allow-list",
    "truncated": "data or an element length runs past the end of the object",
    "pixel-module-incomplete": "Pixel Data without the attributes that size it",
    "pixel-data-length-mismatch": "native Pixel Data length disagrees with the image attributes",
    "parse-error": "the data set cannot be parsed",
    "trailing-data": "bytes after the end of a deflated data set (a hidden second file)",
    "patient-id-malformed": "PatientID or IssuerOfPatientID longer than its VR (LO) allows",
    "conflicting-duplicate": "SOP Instance UID already archived with different content",
    "signature-invalid": "a digital signature (FFFA,FFFA) no longer matches the data it signed",
    "signature-missing": "no digital signature, and the stack requires a valid one",
    "signature-untrusted": "signed, but no signature is valid and chains to the trust bundle",
    "duplicate-element": "an element is repeated or out of tag order (readers disagree on it)",
    "signature-incomplete": "a valid signature exists, but none covers every element",
}

# Transfer syntaxes accepted by default: the lossless and common lossy image encodings. Video and
# retired syntaxes are opt-in through configuration.
DEFAULT_TRANSFER_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless, Non-Hierarchical (Process 14)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless, SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless Only
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.5",  # RLE Lossless
)

# Not storage of an instance, although their names say "Storage".
_NOT_INSTANCE_STORAGE = ("Storage Commitment", "Media Storage Directory Storage")


@cache
def default_sop_classes() -> frozenset[str]:
    """Every current (non-retired) Storage SOP Class in the PS3.6 edition pydicom ships."""
    from pydicom._uid_dict import UID_dictionary

    return frozenset(
        uid
        for uid, (name, kind, _info, retired, _keyword) in UID_dictionary.items()
        if kind == "SOP Class"
        and "Storage" in name
        and not retired
        and not any(name.startswith(prefix) for prefix in _NOT_INSTANCE_STORAGE)
    )


# Signatures that make the preamble an executable or an archive: a file that is both valid DICOM
# and, say, a Windows program (CVE-2019-11687). TIFF headers are deliberately absent: DICOM-TIFF
# dual-personality files are a standard WSI practice.
_PREAMBLE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a Windows PE/DOS executable (MZ)"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"PK\x07\x08", "a ZIP archive"),
    (b"#!", "a script (shebang)"),
)
_PREAMBLE = 128
_HEADER = _PREAMBLE + 4

_UNDEFINED = 0xFFFFFFFF
_LO_MAX = 64
# Explicit VRs that can never hold a sequence (SQ, UN and implicit None are looked at).
_SCALAR_VRS = frozenset(
    (
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FD",
        "FL",
        "IS",
        "LO",
        "LT",
        "OB",
        "OD",
        "OF",
        "OL",
        "OV",
        "OW",
        "PN",
        "SH",
        "SL",
        "SS",
        "ST",
        "SV",
        "TM",
        "UC",
        "UI",
        "UL",
        "UR",
        "US",
        "UT",
        "UV",
    )
)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float
_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_REQUIRED_META = ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")

CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024
# Values longer than this stay on disk (pixel data, large private blobs); never needed for checks.
DEFER = 256 * 1024
# The deflate check stops inflating as soon as either limit is passed.
MAX_INFLATE_RATIO = 200
_RATIO_FLOOR = 4 * 1024 * 1024  # tiny data sets compress extremely well; judge ratio after this


@dataclass(frozen=True)
class Reason:
    """Why an object is refused: a stable code and a message naming what is wrong."""

    code: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in REASONS:
            raise ValueError(f"unknown reason code {self.code!r}")


@dataclass(frozen=True)
class ValidationPolicy:
    """What the validator accepts; every knob of the stack's ingest configuration."""

    max_object_bytes: int = 4 * 1024**3
    max_inflated_bytes: int = 256 * 1024**2
    transfer_syntaxes: frozenset[str] = frozenset(DEFAULT_TRANSFER_SYNTAXES)
    sop_classes: frozenset[str] = field(default_factory=default_sop_classes)
    spool_dir: str | None = None  # None: the platform's temp dir (/tmp on Lambda)
    # What digital signatures decide (lambdas/settings.py SIGNATURE_POLICIES) and the CA
    # certificates they must chain to for the verdict "valid".
    signature_policy: str = DEFAULT_SIGNATURE_POLICY
    trusted_signers: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_lists(
        cls,
        *,
        max_object_bytes: int,
        max_inflated_bytes: int,
        transfer_syntaxes: Iterable[str] = (),
        sop_classes: Iterable[str] = (),
        signature_policy: str = DEFAULT_SIGNATURE_POLICY,
        trust_pem: str = "",
    ) -> ValidationPolicy:
        """A policy where empty lists mean the built-in defaults; ``trust_pem`` is a PEM bundle."""
        ts = frozenset(transfer_syntaxes) or frozenset(DEFAULT_TRANSFER_SYNTAXES)
        sops = frozenset(sop_classes) or default_sop_classes()
        trusted = tuple(x509.load_pem_x509_certificates(trust_pem.encode())) if trust_pem else ()
        return cls(
            max_object_bytes,
            max_inflated_bytes,
            ts,
            sops,
            signature_policy=signature_policy,
            trusted_signers=trusted,
        )


# MAC algorithms logged by name (PS3.15 C.1's list); any other value read from a file is "other".
_KNOWN_MACS = frozenset(signatures.MAC_ALGORITHMS) | signatures.WEAK_MAC_ALGORITHMS


@dataclass(frozen=True)
class SignatureFact:
    """One Digital Signatures Sequence item as verified: what the audit event records.

    The signer is named by its certificate's SHA-256 only (never its subject: logs carry no
    names); ``signer_sha256`` is None when the certificate cannot be read.
    """

    uid: str  # Digital Signature UID, or NOT_A_UID
    verdict: str  # lambdas/dicom_signature.py: valid, untrusted, invalid, unsupported, malformed
    mac_algorithm: str = ""
    key_algorithm: str = ""
    profile: str = ""
    signer_sha256: str | None = None
    # Whether the signature covers every top-level element whose tag may be signed; None when
    # not known (the signature's parameters could not be read).
    complete: bool | None = None

    def as_dict(self) -> dict[str, str | bool]:
        """The audit event's ``signatures[]`` element: empty values are left out."""
        return {k: v for k, v in self.__dict__.items() if v or v is False}


@dataclass(frozen=True)
class Inspection:
    """Outcome of reading one object: its digest and size, its identity, and any reasons to refuse.

    ``patient_id`` is PHI: it exists only to be keyed into a pseudonym and is kept out of ``repr``.
    """

    size: int
    sha256: bytes | None
    reasons: tuple[Reason, ...]
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    transfer_syntax_uid: str | None = None
    patient_id: str | None = field(default=None, repr=False)
    issuer_of_patient_id: str | None = field(default=None, repr=False)
    # One per Digital Signatures Sequence item, in file order; empty for an unsigned object.
    signatures: tuple[SignatureFact, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.reasons

    @property
    def sha256_hex(self) -> str | None:
        return self.sha256.hex() if self.sha256 is not None else None

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)


class _Rejected(Exception):
    """Stops inspection early: the object cannot be examined any further."""

    def __init__(self, *reasons: Reason) -> None:
        super().__init__(", ".join(r.code for r in reasons))
        self.reasons = reasons


# --- reading -------------------------------------------------------------------------------


@dataclass
class _Spool:
    file: IO[bytes]
    size: int
    sha256: bytes


def _spool(chunks: Iterable[bytes], policy: ValidationPolicy) -> _Spool:
    """Hash every byte once and keep them: in memory while small, then in a temporary file."""
    digest = hashlib.sha256()
    size = 0
    spool: IO[bytes] = io.BytesIO()
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > policy.max_object_bytes:
                raise _Rejected(_too_large(policy))
            digest.update(chunk)
            if size > SPOOL_IN_MEMORY and isinstance(spool, io.BytesIO):
                on_disk = tempfile.TemporaryFile(dir=policy.spool_dir)  # noqa: SIM115 - closed by the caller
                on_disk.write(spool.getbuffer())
                spool.close()
                spool = on_disk
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return _Spool(spool, size, digest.digest())


def _too_large(policy: ValidationPolicy) -> Reason:
    return Reason("too-large", f"object is larger than the cap of {policy.max_object_bytes} bytes")


def file_chunks(path: Path, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Read a file as the ingest function reads an S3 body: sequentially, in chunks."""
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def inspect_file(path: Path, policy: ValidationPolicy) -> Inspection:
    """Inspect a local file; a file that cannot be opened is a refusal, not an exception."""
    try:
        declared = path.stat().st_size
        return inspect_stream(file_chunks(path), policy, declared_size=declared)
    except OSError as exc:
        reason = Reason("unreadable", f"cannot read the file: {exc.strerror or type(exc).__name__}")
        return Inspection(size=0, sha256=None, reasons=(reason,))


def inspect_stream(
    chunks: Iterable[bytes], policy: ValidationPolicy, *, declared_size: int | None = None
) -> Inspection:
    """Read ``chunks`` once, hash them, and decide whether they form an acceptable DICOM object.

    ``declared_size`` (an S3 ``ContentLength``) lets an oversize object be refused unread.
    """
    if declared_size is not None and declared_size > policy.max_object_bytes:
        return Inspection(size=declared_size, sha256=None, reasons=(_too_large(policy),))
    try:
        spool = _spool(chunks, policy)
    except _Rejected as rejected:
        return Inspection(size=declared_size or 0, sha256=None, reasons=rejected.reasons)
    with spool.file:
        facts: dict[str, Any] = {}
        try:
            reasons = _examine(spool, policy, facts)
        except _Rejected as rejected:
            reasons = list(rejected.reasons)
    return Inspection(size=spool.size, sha256=spool.sha256, reasons=tuple(reasons), **facts)


# --- checks --------------------------------------------------------------------------------


@contextmanager
def quiet_pydicom(reading: int | None = None, writing: int | None = None) -> Iterator[None]:
    """Run pydicom without its warnings (they quote element values: names, IDs) and, when given,
    with these reading and writing validation modes (``pydicom.config.IGNORE``, ``WARN``,
    ``RAISE``); the previous modes come back afterwards. The one place the kit silences pydicom."""
    settings = pydicom_config.settings
    previous = settings.reading_validation_mode, settings.writing_validation_mode
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if reading is not None:
                settings.reading_validation_mode = reading
            if writing is not None:
                settings.writing_validation_mode = writing
            yield
    finally:
        settings.reading_validation_mode, settings.writing_validation_mode = previous


def _examine(spool: _Spool, policy: ValidationPolicy, facts: dict[str, Any]) -> list[Reason]:
    fp = spool.file
    header = fp.read(_HEADER)
    if len(header) < _HEADER:
        raise _Rejected(
            Reason(
                "not-dicom-part10",
                f"object is {spool.size} bytes, shorter than the 132-byte Part 10 header",
            )
        )
    reasons: list[Reason] = []
    preamble = header[:_PREAMBLE]
    for signature, what in _PREAMBLE_SIGNATURES:
        if preamble.startswith(signature):
            reasons.append(
                Reason(
                    "polyglot-preamble",
                    f"the preamble starts like {what}; a DICOM file that is also a program or "
                    "archive is refused (CVE-2019-11687); the preamble should be 128 zero bytes",
                )
            )
            break
    if header[_PREAMBLE:] != b"DICM":
        reasons.append(Reason("not-dicom-part10", "no 'DICM' prefix at byte offset 128"))
        raise _Rejected(*reasons)

    meta, meta_end = _read_meta(fp)
    try:
        with quiet_pydicom(pydicom_config.WARN):
            ts = _check_meta(meta, policy, reasons)
    except _Rejected:
        raise
    except Exception:  # noqa: BLE001 - a value of group 0002 that cannot be decoded
        raise _Rejected(
            Reason("file-meta-malformed", "the File Meta Information cannot be decoded")
        ) from None
    facts["transfer_syntax_uid"] = ts
    size_bound = spool.size
    if ts == DeflatedExplicitVRLittleEndian:
        fp.seek(meta_end)
        size_bound = _check_inflation(fp, policy)  # raises on a bomb

    fp.seek(0)
    order = signatures.element_order_problem(cast(BinaryIO, fp))
    if order == signatures.ORDER_PROBLEM:
        # pydicom keeps the last copy of a repeated element, dcmtk the first: what is checked
        # here and what a viewer shows could differ, signed or not.
        raise _Rejected(
            *reasons, Reason("duplicate-element", f"the data set's {order}, at some level")
        )
    if order is not None:
        raise _Rejected(*reasons, Reason("parse-error", f"the data set's {order}"))
    fp.seek(0)
    try:
        with quiet_pydicom(pydicom_config.RAISE):
            ds = pydicom.dcmread(fp, defer_size=DEFER)
    except EOFError:
        raise _Rejected(*reasons, _truncated("the data set ends inside an element")) from None
    except Exception as exc:  # noqa: BLE001 - every parser failure is a verdict, never a crash
        raise _Rejected(*reasons, _parse_error(exc)) from None

    try:
        # Structure strictly (a sequence that ends early raises); values leniently (a too-long
        # LO value is everyday reality and not a reason to refuse an image).
        with quiet_pydicom(pydicom_config.RAISE):
            _check_structure(ds, size_bound, reasons)
        with quiet_pydicom(pydicom_config.WARN):
            _check_identity(ds, meta, policy, reasons, facts)
            _check_pixels(ds, UID(str(ts)), reasons)
            # Last: the data set is known to parse; deferred values are read from the open spool.
            _check_signatures(ds, policy, reasons, facts)
    except _Rejected:
        raise
    except EOFError:
        raise _Rejected(*reasons, _truncated("a sequence ends early")) from None
    except Exception as exc:  # noqa: BLE001 - see above
        raise _Rejected(*reasons, _parse_error(exc)) from None
    return reasons


NOT_A_UID = "(not a valid UID)"


def loggable_uid(value: str) -> str:
    """A UID for a log line, only if it is one: an arbitrary string could be anything, even PHI."""
    return value if UID(value).is_valid else NOT_A_UID


def _quoted_uid(value: str) -> str:
    """A UID for a message, only if it is one, with its name when pydicom knows it."""
    uid = UID(value)
    return f"{value} ({uid.name})" if uid.is_valid else NOT_A_UID


def _truncated(where: str) -> Reason:
    return Reason("truncated", f"object is truncated: {where}")


def _parse_error(exc: BaseException) -> Reason:
    # The exception's own text may quote values: name its type only.
    return Reason("parse-error", f"pydicom cannot parse the data set ({type(exc).__name__})")


def _read_meta(fp: IO[bytes]) -> tuple[FileMetaDataset, int]:
    """Group 0002 as pydicom reads it (Explicit VR Little Endian right after 'DICM')."""
    fp.seek(_HEADER)
    try:
        with quiet_pydicom(pydicom_config.RAISE):
            raw = read_dataset(
                cast(BinaryIO, fp),
                is_implicit_VR=False,
                is_little_endian=True,
                stop_when=lambda tag, _vr, _length: tag.group != 0x0002,
            )
            meta = FileMetaDataset(raw)
    except Exception:  # noqa: BLE001 - any failure in group 0002 is a malformed header
        raise _Rejected(
            Reason("file-meta-malformed", "the File Meta Information cannot be parsed")
        ) from None
    return meta, fp.tell()


def _check_meta(
    meta: FileMetaDataset, policy: ValidationPolicy, reasons: list[Reason]
) -> str | None:
    if len(meta) == 0:
        raise _Rejected(
            *reasons, Reason("file-meta-missing", "no File Meta Information after 'DICM'")
        )
    missing = [k for k in _REQUIRED_META if not str(meta.get(k, "") or "").strip()]
    if missing:
        reasons.append(
            Reason("file-meta-malformed", f"File Meta Information lacks {', '.join(missing)}")
        )
    for keyword in _REQUIRED_META:
        value = str(meta.get(keyword, "") or "").strip()
        if value and not UID(value).is_valid:
            reasons.append(
                Reason("file-meta-malformed", f"{keyword} is not a valid UID (UI syntax)")
            )
    ts = str(meta.get("TransferSyntaxUID", "") or "").strip() or None
    if ts is None:
        # Without a transfer syntax the data set cannot be decoded reliably.
        raise _Rejected(*reasons)
    if ts not in policy.transfer_syntaxes:
        reasons.append(
            Reason(
                "transfer-syntax-unsupported",
                f"transfer syntax {_quoted_uid(ts)} is not accepted; accepted: "
                f"{len(policy.transfer_syntaxes)} configured UIDs",
            )
        )
        raise _Rejected(*reasons)
    return ts


def _check_inflation(fp: IO[bytes], policy: ValidationPolicy) -> int:
    """Inflate a Deflated data set chunk by chunk, stopping as soon as it looks like a bomb.

    Returns the inflated size (the bound for element lengths). Never holds more than one chunk.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    fed = inflated = 0
    while True:
        data = inflater.unconsumed_tail or fp.read(CHUNK)
        if not data:
            break
        if not inflater.unconsumed_tail:
            fed += len(data)
        try:
            out = inflater.decompress(data, CHUNK)
        except zlib.error:
            raise _Rejected(
                Reason("parse-error", "the deflated data set is not a valid deflate stream")
            ) from None
        inflated += len(out)
        consumed = fed - len(inflater.unconsumed_tail)
        if inflated > policy.max_inflated_bytes or (
            inflated > _RATIO_FLOOR and inflated > MAX_INFLATE_RATIO * max(consumed, 1)
        ):
            raise _Rejected(
                Reason(
                    "deflate-bomb",
                    f"the deflated data set inflates past {inflated} bytes from {consumed} "
                    f"(cap {policy.max_inflated_bytes} bytes, ratio {MAX_INFLATE_RATIO}:1)",
                )
            )
        if inflater.eof:
            break
    inflated += len(inflater.flush())
    if not inflater.eof:
        raise _Rejected(_truncated("the deflated data set ends before its deflate stream does"))
    trailing = inflater.unused_data + fp.read(2)
    # PS3.5 A.5: an odd-length deflated stream is padded with one null byte. Anything else would
    # be ignored by pydicom and could carry a second file (a DICOM/ZIP polyglot).
    if trailing not in (b"", b"\x00"):
        raise _Rejected(Reason("trailing-data", "bytes follow the end of the deflated data set"))
    return inflated


def _stored(ds: Dataset) -> list[DataElement | RawDataElement]:
    """Top-level elements as stored (``values()`` never converts or triggers a deferred read)."""
    return list(ds.values())


def _check_structure(ds: Dataset, bound: int, reasons: list[Reason]) -> None:
    """One pass over the top level: every element ends inside the object, every sequence parses.

    Nested elements lie inside their parent's bytes, so top-level lengths bound them too.
    """
    for elem in _stored(ds):
        if isinstance(elem, RawDataElement) and elem.length != _UNDEFINED:
            if elem.value is None:
                if elem.value_tell + elem.length > bound:
                    raise _Rejected(
                        *reasons,
                        _truncated(f"element {elem.tag} declares {elem.length} bytes past the end"),
                    )
                if elem.VR != "SQ":
                    continue  # deferred: large, on disk, never needed
                # A large sequence (e.g. per-frame functional groups) is read and parsed too.
            elif len(elem.value) < elem.length:
                raise _Rejected(
                    *reasons,
                    _truncated(
                        f"element {elem.tag} declares {elem.length} bytes, "
                        f"{len(elem.value)} present"
                    ),
                )
            elif elem.VR in _SCALAR_VRS:
                continue  # the common case, decided without a call
        _parse_sequence(ds, elem)


def _parse_sequence(ds: Dataset, elem: DataElement | RawDataElement) -> None:
    if isinstance(elem, RawDataElement):
        if not _may_be_sequence(elem):
            return
        elem = ds[elem.tag]
    if elem.VR == "SQ":
        for item in elem.value:
            _walk(item)


def _walk(ds: Dataset) -> None:
    """Parse the sequences nested in an item; scalar values stay raw (checked by length)."""
    for elem in _stored(ds):
        if isinstance(elem, RawDataElement) and elem.value is None and elem.length:
            continue
        _parse_sequence(ds, elem)


def _may_be_sequence(elem: RawDataElement) -> bool:
    if elem.VR is not None:
        return elem.VR in ("SQ", "UN")
    if elem.length == _UNDEFINED:
        return True
    try:
        return bool(dictionary_VR(elem.tag) == "SQ")
    except KeyError:  # private or unknown tag in implicit VR: opaque bytes
        return False


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    return str(value).strip()


def _check_identity(
    ds: Dataset,
    meta: FileMetaDataset,
    policy: ValidationPolicy,
    reasons: list[Reason],
    facts: dict[str, Any],
) -> None:
    for keyword in _REQUIRED_UIDS:
        value = _text(ds, keyword)
        if not value:
            state = "absent" if value is None else "empty"
            reasons.append(Reason("uid-missing", f"{keyword} is {state}"))
        elif not UID(value).is_valid:
            reasons.append(
                Reason(
                    "uid-malformed",
                    f"{keyword} is not a valid UID: digits and dots, no leading zeros, "
                    f"at most 64 characters (got {len(value)} characters)",
                )
            )
        else:
            facts[_snake(keyword)] = value

    sop_class = facts.get("sop_class_uid")
    sop_instance = facts.get("sop_instance_uid")
    if sop_class and meta.get("MediaStorageSOPClassUID") not in (None, sop_class):
        reasons.append(
            Reason(
                "media-storage-mismatch",
                f"MediaStorageSOPClassUID {_quoted_uid(str(meta.MediaStorageSOPClassUID))} "
                f"differs from SOPClassUID {sop_class}",
            )
        )
    if sop_instance and meta.get("MediaStorageSOPInstanceUID") not in (None, sop_instance):
        reasons.append(
            Reason(
                "media-storage-mismatch",
                "MediaStorageSOPInstanceUID differs from SOPInstanceUID",
            )
        )
    if sop_class and sop_class not in policy.sop_classes:
        name = UID(sop_class).name
        reasons.append(
            Reason(
                "sop-class-not-allowed",
                f"SOP Class {sop_class} ({name}) is not in the storage allow-list",
            )
        )

    patient_id = _text(ds, "PatientID")
    issuer = _text(ds, "IssuerOfPatientID") or None
    if not patient_id:
        reasons.append(Reason("patient-id-missing", "PatientID is absent or empty"))
    elif len(patient_id) > _LO_MAX or len(issuer or "") > _LO_MAX:
        # Also keeps the pseudonym's MAC input far below KMS GenerateMac's 4096-byte limit.
        reasons.append(
            Reason(
                "patient-id-malformed",
                f"PatientID or IssuerOfPatientID is longer than {_LO_MAX} characters (VR LO)",
            )
        )
    else:
        facts["patient_id"] = patient_id
        facts["issuer_of_patient_id"] = issuer


def _snake(keyword: str) -> str:
    return {
        "SOPClassUID": "sop_class_uid",
        "SOPInstanceUID": "sop_instance_uid",
        "StudyInstanceUID": "study_instance_uid",
        "SeriesInstanceUID": "series_instance_uid",
    }[keyword]


def _check_pixels(ds: Dataset, ts: UID, reasons: list[Reason]) -> None:
    present = [tag for tag in _PIXEL_TAGS if tag in ds]
    if not present:
        return  # structured reports, waveforms, documents carry no pixels
    elem = ds.get_item(present[0], keep_deferred=True)
    if ts.is_encapsulated and present[0] == 0x7FE00010:
        # Compressed frames have no expected length; the parser found the sequence delimiter
        # (a missing one is truncation). Decoding each frame is the viewer's job, not ingest's.
        return
    if isinstance(elem, RawDataElement):
        undefined, actual = elem.length == _UNDEFINED, elem.length
    else:  # small values were decoded by the walk
        value = elem.value if elem is not None else None
        undefined = bool(getattr(elem, "is_undefined_length", False))
        actual = len(value) if isinstance(value, bytes | bytearray) else 0
    if undefined:
        reasons.append(
            Reason("pixel-data-length-mismatch", "native Pixel Data has an undefined length")
        )
        return
    try:
        expected = get_expected_length(ds, unit="bytes")
    except (AttributeError, KeyError, TypeError, ValueError):
        reasons.append(
            Reason(
                "pixel-module-incomplete",
                "Pixel Data is present but Rows, Columns, Samples per Pixel or Bits Allocated "
                "is missing or invalid",
            )
        )
        return
    # A value of odd length is padded with one byte to keep element lengths even.
    if actual not in (expected, expected + expected % 2):
        reasons.append(
            Reason(
                "pixel-data-length-mismatch",
                f"Pixel Data holds {actual} bytes; Rows x Columns x Samples x Bits Allocated x "
                f"Frames gives {expected}",
            )
        )


def _signer_sha256(item: Dataset) -> str | None:
    """SHA-256 of the DER certificate of the signer (its fingerprint), None if unreadable."""
    try:
        data = bytes(item.CertificateOfSigner)
        if len(data) % 2 == 0 and data.endswith(b"\x00"):
            try:  # an odd-length DER certificate is padded with one zero byte (OB value)
                certificate = x509.load_der_x509_certificate(data[:-1])
            except ValueError:
                certificate = x509.load_der_x509_certificate(data)
        else:
            certificate = x509.load_der_x509_certificate(data)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return certificate.fingerprint(hashes.SHA256()).hex()


def _signature_facts(ds: Dataset, policy: ValidationPolicy) -> tuple[SignatureFact, ...]:
    items = list(ds[signatures.DIGITAL_SIGNATURES_SEQUENCE].value)
    try:
        reports = signatures.verify_signatures(ds, trusted=policy.trusted_signers)
    except Exception:  # noqa: BLE001 - a verifier failure is a malformed signature, never a crash
        return tuple(SignatureFact(NOT_A_UID, signatures.MALFORMED) for _ in items or [None])
    facts = []
    for item, report in zip(items, reports, strict=False):
        mac = report.mac_algorithm
        facts.append(
            SignatureFact(
                uid=loggable_uid(report.uid),
                verdict=report.verdict,
                mac_algorithm=mac if not mac or mac in _KNOWN_MACS else "other",
                key_algorithm=report.key_algorithm,
                profile=report.profile,
                signer_sha256=_signer_sha256(item),
                complete=report.complete if report.tags_signed else None,
            )
        )
    return tuple(facts)


def _check_signatures(
    ds: Dataset, policy: ValidationPolicy, reasons: list[Reason], facts: dict[str, Any]
) -> None:
    """Verify the Digital Signatures Sequence, record each verdict, apply the signature policy.

    ``reject-invalid``: an ``invalid`` signature (the signed data changed) is a reason;
    ``require-valid``: so is the absence of any ``valid`` one (``signature-missing`` when unsigned,
    ``signature-untrusted`` when signed and nothing is invalid), and the absence of a valid one
    that is also complete (``signature-incomplete``: a valid signature of a few elements proves
    nothing about the others, which could have been added or replaced); ``record``: never a
    reason.
    ``unsupported`` and ``malformed`` signatures are recorded only: they prove nothing either way
    (and never count as valid).
    """
    found = _signature_facts(ds, policy) if signatures.DIGITAL_SIGNATURES_SEQUENCE in ds else ()
    if found:
        facts["signatures"] = found
    if policy.signature_policy == "record":
        return
    verdicts = [f.verdict for f in found]
    invalid = verdicts.count(signatures.INVALID)
    if invalid:
        reasons.append(
            Reason(
                "signature-invalid",
                f"{invalid} of {len(found)} digital signatures do not match the data they sign: "
                "the object changed after it was signed",
            )
        )
    if policy.signature_policy != "require-valid":
        return
    if signatures.VALID in verdicts:
        if not any(f.verdict == signatures.VALID and f.complete for f in found):
            reasons.append(
                Reason(
                    "signature-incomplete",
                    "no valid digital signature covers every element of the object "
                    "(ingestSignaturePolicy require-valid)",
                )
            )
        return
    if not found:
        reasons.append(
            Reason(
                "signature-missing",
                "the object carries no digital signature (FFFA,FFFA); the stack requires a "
                "valid one (ingestSignaturePolicy require-valid)",
            )
        )
    elif not invalid:
        reasons.append(
            Reason(
                "signature-untrusted",
                f"none of {len(found)} digital signatures is valid and chains to the trust "
                "bundle (verdicts: " + ", ".join(sorted(set(verdicts))) + ")",
            )
        )
