"""DICOM Digital Signatures (PS3.3 C.12.1.1.3 Digital Signatures Macro, PS3.15 Annex C).

Creates and verifies the Digital Signatures Sequence (FFFA,FFFA) and its MAC Parameters Sequence
(4FFE,0001) in a ``pydicom.Dataset``, interoperable both ways with DCMTK's ``dcmsign``.

What is hashed (the "MAC byte stream", PS3.15 C + dcmsign's signature format):

- part A: the signed top-level elements (Data Elements Signed, ascending tag order), each encoded
  in explicit VR little endian: an ordinary element exactly as in the stream (tag, VR, length,
  even-padded value); a sequence as tag, ``SQ``, two reserved zero bytes and *no* length, then per
  item the item tag (FFFE,E000) without its length followed by the item's signable elements
  recursively, no item delimiter, and finally the sequence delimiter tag (FFFE,E0DD) without its
  length; encapsulated Pixel Data likewise, one item tag per fragment (Basic Offset Table included);
- part B: the signature's own Digital Signatures Sequence item attributes, in tag order, except
  Certificate of Signer, Signature, Certified Timestamp Type and Certified Timestamp.

By default every signable top-level element is signed: not group length (gggg,0000), not groups
below 0008 (File Meta, command), not Length to End (0008,0001), not the signature sequences
themselves (FFFA,FFFA) / (4FFE,0001), not Data Set Trailing Padding (FFFC,FFFC), not VR UN and not
a sequence holding a UN element (its encoding depends on the reader's dictionary).

Bytes: the MAC covers the *stored* value bytes (raw elements) and never pydicom's re-encoding of a
parsed value, which may differ (padding, number formatting). DCMTK trims trailing padding of text
values when it reads a file and pads with one character when it hashes (``LO "AB  "`` is hashed as
``"AB"``; ``UI`` trailing NULs become one NUL if the length is odd), so the verifier hashes text
values the same way, and the signer rewrites the values it signs in that form: a signed file
carries exactly the bytes it hashed, which any verifier (strict or trimming) recomputes.

Algorithms: the MAC is SHA-256, SHA-384 or SHA-512 (:data:`MAC_ALGORITHMS`). RIPEMD-160, MD5 and
SHA-1, which PS3.15 C.1 still lists, are never used to sign; a signature made with one of them is
reported ``unsupported`` (not ``valid``): they no longer resist collisions, and ``cryptography``
has no RIPEMD-160. RSA keys sign with RSASSA-PKCS1-v1_5 of the digest (PS3.15 C.1, "Base RSA
Digital Signature Profile"). ECDSA keys (P-256, P-384) write the DER ``ECDSA-Sig-Value``, padded
with one 00 byte to the even length of an OB value (the verifier reads the DER length and ignores
the pad), as dcmsign does; an odd-length DER certificate is padded and read the same way.
PS3.15 Annex C defines RSA profiles only (Base, Creator, Authorization, Structured Report RSA): an
ECDSA signature is reported with profile ``none (ECDSA P-256)``; it is verified like any other and
interoperates with dcmsign, but claims no DICOM profile. Only the Base RSA profile is claimed for
RSA signatures (the others add rules on which attributes are signed, not checked here).

Trust (:func:`verify_signatures`): the file embeds only the signer's certificate; issuers come
from ``trusted``. Each link must be signed by its issuer, valid at the verification time (``now``,
default the current time; Digital Signature DateTime is asserted by the signer and not certified,
so it cannot be trusted to move the validity window: this is what dcmsign/OpenSSL do too), an
issuer must be a CA (basicConstraints) allowed to sign certificates (keyUsage keyCertSign if
present), and the signer's certificate must be one for signing (:func:`signer_certificate_problem`:
not a CA, keyUsage digitalSignature or nonRepudiation if present, an extendedKeyUsage if present
that names a document-signing purpose, so a TLS client/server certificate of the same CA is no
signer, RSA of 2048 bits or more). A certificate listed in ``trusted`` is a trust anchor (a pinned
self-signed signer included). Trust is decided when verifying: once the signer's certificate
expires, its signatures are ``untrusted``. Revocation (CRL/OCSP) is not checked.

Parser differentials: a data set that repeats an element or is out of tag order, at any level
(:func:`element_order_problem`), makes every signature ``malformed``: pydicom keeps the last copy
of a repeated element and dcmtk the first, so what is shown and what was signed could differ.

Cost: the MAC stream is fed to the hash in chunks (large values are never joined or copied; values
pydicom deferred are read from the file as stored), each distinct set of signed elements is hashed
once per data set, and at most :data:`MAX_SIGNATURES` items are verified.

Implicit VR input: an ambiguous dictionary VR is resolved as dcmtk resolves it when it hashes
("US or SS" by Pixel Representation, native Pixel Data OW).

Exceptions and reports never carry values from the data set (tags and codes only).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol, cast

import pydicom
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import PersonName

# Stable error codes. Never rename.
ERRORS: dict[str, str] = {
    "not-dicom": "the input is not a DICOM Part 10 file",
    "not-explicit-little-endian": "the data set must be encoded (and read) as explicit VR little "
    "endian, native or encapsulated",
    "unsignable-tag": "a requested tag cannot be signed",
    "missing-tag": "a requested tag is not in the data set",
    "nothing-to-sign": "the data set has no signable element",
    "unsupported-mac": "the MAC algorithm is not one of SHA256, SHA384, SHA512",
    "unsupported-key": "the key is neither RSA (2048 bits or more) nor EC P-256/P-384",
    "key-certificate-mismatch": "the private key does not match the certificate's public key",
    "unknown-purpose": "the purpose is not an ASTM-sigpurpose code value",
    "big-endian": "big endian input is not signed: convert it to little endian first "
    "(e.g. dcmconv +te IN OUT)",
    "malformed-input": "the data set repeats an element or is out of tag order",
}

# Verdicts of :class:`SignatureReport`: stable strings.
VALID = "valid"  # the signature verifies and the signer's certificate chains to `trusted`
UNTRUSTED = "untrusted"  # the signature verifies, the certificate does not chain to `trusted`
INVALID = "invalid"  # the MAC or signature does not match: the signed data changed
UNSUPPORTED = "unsupported"  # a MAC, key, transfer syntax or certificate type we do not verify
MALFORMED = "malformed"  # the signature attributes are missing or unreadable

BASE_RSA_PROFILE = "Base RSA Digital Signature Profile"
CERTIFICATE_TYPE = "X509_1993_SIG"

MAC_ALGORITHMS: dict[str, hashes.HashAlgorithm] = {
    "SHA256": hashes.SHA256(),
    "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(),
}
# Listed by PS3.15 C.1 but broken or unavailable: reported "unsupported", never "valid".
WEAK_MAC_ALGORITHMS = frozenset({"RIPEMD160", "MD5", "SHA1"})

# PS3.16 CID 7007 (ASTM E1762), CodingSchemeDesignator "ASTM-sigpurpose".
PURPOSES: dict[str, str] = {
    "1": "Author's Signature",
    "2": "Coauthor's Signature",
    "3": "Co-participant's Signature",
    "4": "Transcriptionist/Recorder Signature",
    "5": "Verification Signature",
    "6": "Validation Signature",
    "7": "Consent Signature",
    "8": "Signature Witness Signature",
    "9": "Event Witness Signature",
    "10": "Identity Witness Signature",
    "11": "Consent Witness Signature",
    "12": "Interpreter Signature",
    "13": "Review Signature",
    "14": "Source Signature",
    "15": "Addendum Signature",
    "16": "Modification Signature",
    "17": "Administrative (Error/Edit) Signature",
    "18": "Timestamp Signature",
}

MAC_PARAMETERS_SEQUENCE = 0x4FFE0001
DIGITAL_SIGNATURES_SEQUENCE = 0xFFFAFFFA
PIXEL_DATA = 0x7FE00010
# Digital Signatures Sequence item attributes left out of part B of the MAC stream:
# Certificate of Signer, Signature, Certified Timestamp Type, Certified Timestamp.
_NOT_IN_SIGNATURE_ITEM_STREAM = frozenset({0x04000115, 0x04000120, 0x04000305, 0x04000310})
# Length to End, the MAC Parameters Sequence, Data Set Trailing Padding.
_NEVER_SIGNED = frozenset({0x00080001, MAC_PARAMETERS_SEQUENCE, 0xFFFCFFFC})

_ITEM = b"\xfe\xff\x00\xe0"  # (FFFE,E000), written without its length
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"  # (FFFE,E0DD), written without its length
_UNDEFINED_LENGTH = 0xFFFFFFFF
_LONG_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
# Text VRs whose trailing padding dcmtk trims (NULs for UI, spaces for the others).
_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR"}
    | {"UT"}
)
_MAX_CHAIN = 8


class SignatureError(ValueError):
    """A signature that cannot be made; ``code`` is stable (see :data:`ERRORS`)."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        self.code = code
        message = ERRORS.get(code, code)
        super().__init__(f"{code}: {message}" + (f" ({detail})" if detail else ""))


class Signer(Protocol):
    """Signs a MAC digest with a private key whose certificate is embedded in the signature."""

    @property
    def certificate(self) -> x509.Certificate:
        """The signer's X.509 certificate (embedded as Certificate of Signer)."""
        ...

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """RSA: PKCS#1 v1.5 signature of the prehashed digest; EC: DER ECDSA signature."""
        ...


class LocalSigner:
    """A private key held in memory (RSA of 2048 bits or more, EC P-256 or P-384) and its
    certificate; refuses a key that does not match the certificate."""

    def __init__(
        self,
        private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        certificate: x509.Certificate,
    ) -> None:
        if isinstance(private_key, rsa.RSAPrivateKey):
            if private_key.key_size < 2048:
                raise SignatureError("unsupported-key", f"RSA-{private_key.key_size}")
        elif isinstance(private_key, ec.EllipticCurvePrivateKey):
            if not isinstance(private_key.curve, ec.SECP256R1 | ec.SECP384R1):
                raise SignatureError("unsupported-key", private_key.curve.name)
        else:
            raise SignatureError("unsupported-key", type(private_key).__name__)
        if _spki(private_key.public_key()) != _spki(certificate.public_key()):
            raise SignatureError("key-certificate-mismatch")
        self._key = private_key
        self._certificate = certificate

    @classmethod
    def from_pem_files(
        cls, key_path: str | Path, cert_path: str | Path, password: bytes | None = None
    ) -> LocalSigner:
        """Load a PEM private key (optionally encrypted) and its PEM certificate."""
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SignatureError("unsupported-key", type(key).__name__)
        return cls(key, x509.load_pem_x509_certificate(Path(cert_path).read_bytes()))

    @property
    def certificate(self) -> x509.Certificate:
        """The signer's certificate."""
        return self._certificate

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """Sign a digest computed with ``algorithm``."""
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(digest, padding.PKCS1v15(), Prehashed(algorithm))
        return self._key.sign(digest, ec.ECDSA(Prehashed(algorithm)))


@dataclass(frozen=True)
class SignatureInfo:
    """What :func:`add_signature` added."""

    uid: str
    mac_id: int
    mac_algorithm: str
    time: str
    profile: str
    tags_signed: tuple[int, ...]
    # Top-level elements present but not signed (UN elements, sequences holding one, or left out
    # by ``tags``): what the signature does not protect. Tags only, never values.
    tags_unsigned: tuple[int, ...] = ()


@dataclass(frozen=True)
class SignatureReport:
    """One Digital Signatures Sequence item, checked. No value from the data set appears here."""

    uid: str
    signer: str  # RFC 4514 subject of the embedded certificate
    time: str  # Digital Signature DateTime, as asserted by the signer
    profile: str
    mac_algorithm: str
    key_algorithm: str  # "RSA", "ECDSA P-256"...
    tags_signed: int
    verdict: str  # VALID, UNTRUSTED, INVALID, UNSUPPORTED or MALFORMED
    reason: str
    # Coverage: top-level elements of the data set whose tag may be signed (is_signable_tag) but
    # that this signature does not list, as "(gggg,eeee)"; ``complete`` when there is none.
    # Known once the signature's parameters are read (empty and False before).
    tags_unsigned: tuple[str, ...] = ()
    complete: bool = False


# -- what may be signed ---------------------------------------------------------------------------


def is_signable_tag(tag: int) -> bool:
    """Whether PS3.3 C.12.1.1.3.1.1 (and dcmsign) allow ``tag`` in Data Elements Signed."""
    tag = Tag(tag)
    return not (
        tag.element == 0x0000
        or tag.group < 0x0008
        or tag.group == 0xFFFA
        or tag in _NEVER_SIGNED
        or tag.group == 0xFFFE
    )


def _is_signable(element: _Element) -> bool:
    if not is_signable_tag(element.tag) or element.vr == "UN":
        return False
    if element.vr == "SQ" and element.parsed is not None:
        return all(
            _is_signable(child)
            for item in element.parsed.value
            for child in _elements(item, None, None, ())
            if is_signable_tag(child.tag)
        )
    return True


# -- the MAC byte stream --------------------------------------------------------------------------


def _normalise_text(vr: str, value: bytes) -> bytes:
    """A value as DCMTK hashes it: trailing text padding trimmed, then padded to even length."""
    if vr in _TEXT_VRS:
        value = value.rstrip(b"\x00" if vr == "UI" else b" ")
    if len(value) % 2:
        value += _pad_byte(vr)
    return value


def _pad_byte(vr: str) -> bytes:
    return b"\x00" if vr in ("UI", "OB") else b" "


def _header(tag: BaseTag, vr: str, length: int) -> bytes:
    head = struct.pack("<HH", tag.group, tag.element) + vr.encode("ascii")
    if vr in _LONG_VRS:
        return head + struct.pack("<HL", 0, length)
    return head + struct.pack("<H", length)


@dataclass(frozen=True)
class _Element:
    """One element as the MAC sees it: the stored value bytes of a raw element (its stored VR
    included: a UN stays UN, as in dcmtk), where a deferred value lies in the source file, or the
    parsed element (sequences, encapsulated pixel data, values set in memory)."""

    tag: BaseTag
    vr: str
    stored: bytes | memoryview | None
    parsed: DataElement | None
    deferred: tuple[int, int] | None = None  # (offset, length) of a value left in the file


# What dcmtk makes of an ambiguous dictionary VR it cannot resolve from the data set
# (DcmVR::getValidEVR: "xs" -> US, "ox" -> OB, "lt" -> OW).
_AMBIGUOUS_FALLBACK = {"US or SS": "US", "OB or OW": "OB", "US or OW": "OW", "US or SS or OW": "OW"}


def _resolved_vr(
    raw: RawDataElement,
    ds: Dataset,
    charset: str | list[str] | None,
    ancestors: tuple[Dataset, ...],
) -> str:
    """The VR of an implicit VR element: the dictionary's, an ambiguous one resolved as dcmtk does
    when it hashes: "US or SS" by Pixel Representation, native Pixel Data and Overlay Data OW
    whatever Bits Allocated (PS3.5 A.1; dcmtk reads implicit VR pixels as OW, checked with
    dcmconv +ti and dcmdump), LUT Data by its descriptor (pydicom's correct_ambiguous_vr_element,
    whose rules agree), anything left as dcmtk's getValidEVR would."""
    # an empty copy: only the VR is wanted, and text need not decode
    vr = str(convert_raw_data_element(raw._replace(value=b"", length=0), ds=ds).VR)
    if " or " not in vr:
        return vr
    # ambiguous VRs are binary: the value (LUT Data's length) may decide
    probe = raw if raw.value is not None else raw._replace(value=b"", length=0)
    elem = convert_raw_data_element(probe, ds=ds)
    with contextlib.suppress(AttributeError, KeyError, ValueError, TypeError):
        vr = str(correct_ambiguous_vr_element(elem, ds, True, [ds, *ancestors]).VR)
    return _AMBIGUOUS_FALLBACK.get(vr, vr) if " or " in vr else vr


def _elements(
    ds: Dataset,
    charset: str | list[str] | None,
    source: _Source | None,
    ancestors: tuple[Dataset, ...],
) -> Iterator[_Element]:
    """The elements of ``ds`` in ascending tag order. Raw elements are not parsed in ``ds`` (only
    a copy, for the dictionary VR of implicit VR input), so ``ds`` keeps its raw bytes to write.
    A deferred value is located in ``source`` (read later, in chunks, as stored)."""
    little = ds.original_encoding[1] is not False
    for tag in sorted(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if (
            isinstance(raw, RawDataElement)
            and little
            and raw.length != _UNDEFINED_LENGTH
            and not raw.is_buffered
        ):
            vr = raw.VR or _resolved_vr(raw, ds, charset, ancestors)
            if vr != "SQ" and raw.value is not None:
                yield _Element(tag, vr, memoryview(raw.value), None)
                continue
            if vr != "SQ" and source is not None and raw.value_tell is not None:
                yield _Element(tag, vr, None, None, (raw.value_tell, raw.length))
                continue
        parsed = ds[tag]
        yield _Element(tag, parsed.VR, None, parsed)


Chunk = bytes | memoryview
_READ_CHUNK = 1 << 20


class _Source:
    """The stored bytes of a data set read from a file, for the values pydicom deferred."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp

    def chunks(self, offset: int, length: int) -> Iterator[bytes]:
        done = 0
        while done < length:
            self._fp.seek(offset + done)
            block = self._fp.read(min(_READ_CHUNK, length - done))
            if not block:
                raise ValueError("a deferred value runs past the end of the file")
            done += len(block)
            yield block

    def trimmed_length(self, offset: int, length: int, pad: bytes) -> int:
        """``length`` less the trailing ``pad`` bytes of the value at ``offset``."""
        end = length
        while end > 0:
            start = max(0, end - _READ_CHUNK)
            self._fp.seek(offset + start)
            block = self._fp.read(end - start).rstrip(pad)
            if block:
                return start + len(block)
            end = start
        return 0


def _encode(
    element: _Element,
    charset: str | list[str] | None,
    source: _Source | None,
    ancestors: tuple[Dataset, ...],
) -> Iterator[Chunk]:
    """One element in signature format (see the module docstring), as a stream of chunks: a large
    value is never copied whole. ``ancestors``: the data set holding the element, then its
    parents."""
    tag, vr, parsed = element.tag, element.vr, element.parsed
    tag_bytes = struct.pack("<HH", tag.group, tag.element)
    if parsed is not None and vr == "SQ":
        yield tag_bytes + b"SQ\x00\x00"
        for item in parsed.value:
            yield _ITEM
            for child in _elements(item, charset, source, ancestors):
                if is_signable_tag(child.tag):
                    yield from _encode(child, charset, source, (item, *ancestors))
        yield _SEQUENCE_DELIMITER
        return
    if parsed is not None and tag == PIXEL_DATA and parsed.is_undefined_length:
        # PS3.5 A.4: encapsulated Pixel Data is OB, whatever VR the file gave it (dcmtk agrees)
        yield tag_bytes + b"OB\x00\x00"
        for fragment in generate_fragments(parsed.value):
            yield _ITEM
            yield fragment
        yield _SEQUENCE_DELIMITER
        return
    if element.deferred is not None and source is not None:
        offset, length = element.deferred
        if vr in _TEXT_VRS:
            length = source.trimmed_length(offset, length, b"\x00" if vr == "UI" else b" ")
        yield _header(tag, vr, length + length % 2)
        yield from source.chunks(offset, length)
        if length % 2:
            yield _pad_byte(vr)
        return
    stored = element.stored
    if stored is not None and vr not in _TEXT_VRS and len(stored) % 2 == 0:
        yield _header(tag, vr, len(stored))
        yield stored  # binary values (pixels) as stored, no copy
        return
    value = (
        bytes(stored) if stored is not None else _pydicom_value(cast(DataElement, parsed), charset)
    )
    value = _normalise_text(vr, value)
    yield _header(tag, vr, len(value)) + value


def _pydicom_value(elem: DataElement, charset: str | list[str] | None) -> bytes:
    """The value bytes pydicom writes for a parsed element (explicit VR little endian)."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_data_element(fp, elem, charset)
    encoded = fp.getvalue()
    return encoded[12:] if elem.VR in _LONG_VRS else encoded[8:]


def _charset(ds: Dataset) -> str | list[str] | None:
    value = ds.get("SpecificCharacterSet")
    if value is None:
        return None
    return list(value) if isinstance(value, MultiValue) else str(value)


def _dataset_hash(
    ds: Dataset, tags: Sequence[int], algorithm: hashes.HashAlgorithm, source: _Source | None
) -> hashes.Hash:
    """Part A of the MAC stream (the signed elements) fed into a hash, chunk by chunk."""
    charset = _charset(ds)
    wanted = set(tags)
    h = hashes.Hash(algorithm)
    for element in _elements(ds, charset, source, ()):
        if element.tag in wanted:
            for chunk in _encode(element, charset, source, (ds,)):
                h.update(chunk)
    return h


def _add_signature_item(h: hashes.Hash, item: Dataset, charset: str | list[str] | None) -> bytes:
    """Part B of the MAC stream (the signature's own attributes) fed into ``h``; the digest."""
    for element in _elements(item, charset, None, ()):
        if element.tag not in _NOT_IN_SIGNATURE_ITEM_STREAM:
            for chunk in _encode(element, charset, None, (item,)):
                h.update(chunk)
    return h.finalize()


# -- signing --------------------------------------------------------------------------------------


def _check_explicit_little_endian(ds: Dataset) -> UID:
    """The MAC Calculation Transfer Syntax: the storage one when it is explicit VR little endian
    (encapsulated included, as dcmsign writes), refusing data sets stored or read otherwise."""
    meta = getattr(ds, "file_meta", None)
    tsuid = meta.get("TransferSyntaxUID") if meta is not None else None
    implicit, little = ds.original_encoding
    if implicit is True or little is False:
        raise SignatureError("not-explicit-little-endian", "as read: re-encode and re-read it")
    if tsuid is None:
        return ExplicitVRLittleEndian
    tsuid = UID(str(tsuid))
    if tsuid.is_implicit_VR or not tsuid.is_little_endian:
        raise SignatureError("not-explicit-little-endian")
    return ExplicitVRLittleEndian if tsuid.is_deflated else tsuid


def _normalise_in_place(ds: Dataset) -> None:
    """Rewrite text values as they are hashed, so the file carries exactly the signed bytes."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement):
            defined = raw.length != _UNDEFINED_LENGTH and not raw.is_buffered
            if tag == PIXEL_DATA and raw.length == _UNDEFINED_LENGTH and raw.VR != "OB":
                ds[tag] = raw._replace(VR="OB")  # encapsulated: hashed as OB, so written as OB
                continue
            if raw.VR in _TEXT_VRS and raw.value is not None and defined:
                value = _normalise_text(raw.VR, bytes(raw.value))
                if value != raw.value:
                    ds[tag] = raw._replace(value=value, length=len(value))
            if raw.VR != "SQ":
                continue  # binary values are hashed as stored: leave them raw
        elem = ds[tag]
        if tag == PIXEL_DATA and elem.is_undefined_length:
            elem.VR = "OB"
        elif elem.VR == "SQ":
            for item in elem.value:
                _normalise_in_place(item)
        elif elem.VR in _TEXT_VRS and elem.VR != "UI":
            # a value set in memory: only the last value can carry the trailing padding
            values = list(elem.value) if isinstance(elem.value, MultiValue) else [elem.value]
            last = values[-1] if values else None
            if isinstance(last, str | PersonName) and str(last) != str(last).rstrip(" "):
                values[-1] = str(last).rstrip(" ")
                elem.value = values if isinstance(elem.value, MultiValue) else values[0]


def _timestamp(now: datetime.datetime | None) -> str:
    """Digital Signature DateTime as dcmsign writes it: YYYYMMDDHHMMSS.FFFFFF+ZZZZ."""
    moment = now or datetime.datetime.now(datetime.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.strftime("%Y%m%d%H%M%S.%f%z")


def _items(ds: Dataset, tag: int) -> list[Dataset]:
    return list(ds[tag].value) if tag in ds else []


def add_signature(
    ds: Dataset,
    signer: Signer,
    *,
    mac_algorithm: str = "SHA256",
    tags: Sequence[int] | None = None,
    purpose: str | None = None,
    now: datetime.datetime | None = None,
) -> SignatureInfo:
    """Sign ``ds`` in place, adding one item to each of (4FFE,0001) and (FFFA,FFFA).

    ``ds`` must be stored (and, if read from a file, read) as explicit VR little endian, native or
    encapsulated: to sign any Part 10 file use :func:`sign_bytes`. ``tags`` (default: every
    signable top-level element) must name signable elements present in ``ds``. Text values are
    normalised in place (see the module docstring). ``purpose`` is an ASTM-sigpurpose code value
    (:data:`PURPOSES`, e.g. ``"1"`` Author's Signature).
    """
    algorithm = MAC_ALGORITHMS.get(mac_algorithm)
    if algorithm is None:
        raise SignatureError("unsupported-mac")
    if purpose is not None and purpose not in PURPOSES:
        raise SignatureError("unknown-purpose")
    mac_tsuid = _check_explicit_little_endian(ds)
    _normalise_in_place(ds)
    charset = _charset(ds)
    signable = [e.tag for e in _elements(ds, charset, None, ()) if _is_signable(e)]
    if tags is None:
        signed = signable
    else:
        signed = sorted({Tag(t) for t in tags})
        for tag in signed:
            if not is_signable_tag(tag):
                raise SignatureError("unsignable-tag", str(tag))
            if tag not in ds:
                raise SignatureError("missing-tag", str(tag))
            if tag not in signable:
                raise SignatureError("unsignable-tag", str(tag))
    if not signed:
        raise SignatureError("nothing-to-sign")

    existing = _items(ds, MAC_PARAMETERS_SEQUENCE) + _items(ds, DIGITAL_SIGNATURES_SEQUENCE)
    used = {int(item.MACIDNumber) for item in existing if "MACIDNumber" in item}
    mac_id = next(n for n in range(0x10000) if n not in used)

    certificate = signer.certificate
    sig_item = Dataset()
    sig_item.MACIDNumber = mac_id
    sig_item.DigitalSignatureUID = generate_uid()
    sig_item.DigitalSignatureDateTime = _timestamp(now)
    sig_item.CertificateType = CERTIFICATE_TYPE
    sig_item.CertificateOfSigner = certificate.public_bytes(serialization.Encoding.DER)
    if purpose is not None:
        code = Dataset()
        code.CodeValue = purpose
        code.CodingSchemeDesignator = "ASTM-sigpurpose"
        code.CodeMeaning = PURPOSES[purpose]
        sig_item.DigitalSignaturePurposeCodeSequence = DicomSequence([code])

    digest = _add_signature_item(_dataset_hash(ds, signed, algorithm, None), sig_item, charset)
    signature = signer.sign_digest(digest, algorithm)
    if len(signature) % 2:
        signature += b"\x00"  # OB is even; an ECDSA DER value may be odd
    sig_item.Signature = signature

    mac_item = Dataset()
    mac_item.MACIDNumber = mac_id
    mac_item.MACCalculationTransferSyntaxUID = mac_tsuid
    mac_item.MACAlgorithm = mac_algorithm
    mac_item.DataElementsSigned = list(signed)
    if MAC_PARAMETERS_SEQUENCE not in ds:
        ds.MACParametersSequence = DicomSequence()
    if DIGITAL_SIGNATURES_SEQUENCE not in ds:
        ds.DigitalSignaturesSequence = DicomSequence()
    ds.MACParametersSequence.append(mac_item)
    ds.DigitalSignaturesSequence.append(sig_item)
    return SignatureInfo(
        uid=str(sig_item.DigitalSignatureUID),
        mac_id=mac_id,
        mac_algorithm=mac_algorithm,
        time=str(sig_item.DigitalSignatureDateTime),
        profile=_profile(certificate.public_key(), mac_algorithm),
        tags_signed=tuple(int(t) for t in signed),
        tags_unsigned=tuple(int(t) for t in _uncovered(ds, signed)),
    )


def _uncovered(ds: Dataset, signed: Sequence[int]) -> list[BaseTag]:
    """Top-level elements whose tag may be signed but that ``signed`` leaves out."""
    listed = set(signed)
    return [Tag(t) for t in sorted(ds.keys()) if is_signable_tag(t) and t not in listed]


def _read(data: bytes) -> Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, struct.error) as error:
        raise SignatureError("not-dicom") from error


def _write(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def sign_bytes(
    data: bytes,
    signer: Signer,
    *,
    mac_algorithm: str = "SHA256",
    tags: Sequence[int] | None = None,
    purpose: str | None = None,
    now: datetime.datetime | None = None,
) -> bytes:
    """Sign a DICOM Part 10 file and return the signed file (see :func:`sign_part10`)."""
    signed, _ = sign_part10(
        data, signer, mac_algorithm=mac_algorithm, tags=tags, purpose=purpose, now=now
    )
    return signed


def sign_part10(
    data: bytes,
    signer: Signer,
    *,
    mac_algorithm: str = "SHA256",
    tags: Sequence[int] | None = None,
    purpose: str | None = None,
    now: datetime.datetime | None = None,
) -> tuple[bytes, SignatureInfo]:
    """Sign a DICOM Part 10 file: the signed file and what was signed (see
    :func:`add_signature`).

    Implicit VR or deflated input is re-encoded as explicit VR little endian first; the data set
    is then written and read back so that every element is hashed from the bytes that are written
    (existing signatures of re-encoded input no longer verify: re-encoding changes the signed
    bytes, PS3.15 A.2). Big endian input (retired since 2004) is refused with ``big-endian``: its
    byte-swapped re-encoding is not one pydicom can do faithfully for every VR. Input that repeats
    an element or is out of tag order is refused with ``malformed-input`` (which copy would be
    signed depends on the reader).
    """
    problem = element_order_problem(io.BytesIO(data))
    if problem is not None:
        raise SignatureError("malformed-input", problem)
    ds = _read(data)
    tsuid = UID(str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))
    if not tsuid.is_little_endian or ds.original_encoding[1] is False:
        raise SignatureError("big-endian")
    if tsuid.is_implicit_VR or tsuid.is_deflated:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = _read(_write(ds))
    info = add_signature(
        ds, signer, mac_algorithm=mac_algorithm, tags=tags, purpose=purpose, now=now
    )
    return _write(ds), info


# -- element order (parser differentials) ---------------------------------------------------------

ORDER_PROBLEM = "elements out of order or repeated"
DEPTH_PROBLEM = "sequences nested too deeply"
MAX_DEPTH = 64  # sequence levels; the deepest real SR content trees stay far below this
_ITEM_TAG, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


class _OrderError(Exception):
    pass


class _Cursor:
    """Reads a stream forward only (seeking when it can), counting its position."""

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        self.pos = 0
        self.seekable = fp.seekable()

    def read(self, n: int) -> bytes | None:
        """``n`` bytes, or None at a clean end of the stream (EOFError inside ``n``)."""
        data = self.fp.read(n)
        if not data:
            return None
        while len(data) < n:
            more = self.fp.read(n - len(data))
            if not more:
                raise EOFError
            data += more
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if self.seekable:
            self.fp.seek(n, io.SEEK_CUR)
        else:
            left = n
            while left > 0:
                block = self.fp.read(min(left, _READ_CHUNK))
                if not block:
                    raise EOFError
                left -= len(block)
        self.pos += n


class _Inflating(io.RawIOBase):
    """The inflated data set of a Deflated Explicit VR Little Endian file, read as a stream."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while len(self._buffer) < size and not self._inflater.eof:
            compressed = self._inflater.unconsumed_tail or self._fp.read(_READ_CHUNK)
            if not compressed:
                break
            self._buffer += self._inflater.decompress(compressed, _READ_CHUNK)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _is_sequence_vr(tag: int, vr: bytes | None) -> bool:
    if vr == b"SQ":
        return True
    if vr in (None, b"UN"):  # implicit VR, or UN that pydicom reads by its dictionary VR
        try:
            return bool(dictionary_VR(tag) == "SQ")
        except KeyError:
            return False
    return False


def _scan_data_set(
    cur: _Cursor, implicit: bool, end: int | None, depth: int, top: bool = False
) -> None:
    """Check one data set or item: tags strictly ascending, nested items likewise."""
    previous = -1
    while end is None or cur.pos < end:
        head = cur.read(8)
        if head is None:
            if top:
                return
            raise EOFError
        group, number = struct.unpack("<HH", head[:4])
        tag = group << 16 | number
        if tag == _ITEM_END and end is None and not top:
            return
        if group == 0xFFFE or tag <= previous:
            raise _OrderError(ORDER_PROBLEM)
        previous = tag
        vr: bytes | None = None
        if implicit:
            (length,) = struct.unpack("<L", head[4:])
        else:
            vr = head[4:6]
            if vr.decode("latin-1") in _LONG_VRS:
                extra = cur.read(4)
                if extra is None:
                    raise EOFError
                (length,) = struct.unpack("<L", extra)
            else:
                (length,) = struct.unpack("<H", head[6:])
        if length == _UNDEFINED_LENGTH:
            # a sequence, or encapsulated pixel data (items of bytes); UN: implicit VR inside
            fragments = tag == PIXEL_DATA or (vr is not None and vr not in (b"SQ", b"UN"))
            _scan_sequence(cur, implicit or vr == b"UN", None, depth + 1, fragments)
        elif _is_sequence_vr(tag, vr):
            _scan_sequence(cur, implicit or vr == b"UN", cur.pos + length, depth + 1, False)
        else:
            cur.skip(length)


def _scan_sequence(
    cur: _Cursor, implicit: bool, end: int | None, depth: int, fragments: bool
) -> None:
    if depth > MAX_DEPTH:
        raise _OrderError(DEPTH_PROBLEM)
    while end is None or cur.pos < end:
        head = cur.read(8)
        if head is None:
            raise EOFError
        tag_group, tag_number, length = struct.unpack("<HHL", head)
        tag = tag_group << 16 | tag_number
        if tag == _SEQUENCE_END and end is None:
            return
        if tag != _ITEM_TAG:
            raise _OrderError(ORDER_PROBLEM)
        if fragments:
            cur.skip(length)
        elif length == _UNDEFINED_LENGTH:
            _scan_data_set(cur, implicit, None, depth)
        else:
            _scan_data_set(cur, implicit, cur.pos + length, depth)


def element_order_problem(fp: BinaryIO) -> str | None:
    """Why the Part 10 file ``fp`` (read from its current position, its preamble first) is not
    in strict ascending tag order at every level; None when it is.

    A repeated element is a parser differential: pydicom keeps the last copy, dcmtk the first,
    so a forged copy could be shown while the signed one is hashed. Only element headers are
    read; values are skipped. Values that pydicom parses as sequences are checked (SQ, UN or
    implicit VR with a dictionary VR of SQ, undefined lengths); a private implicit VR element of
    defined length is opaque to every reader and is not looked into. Returns
    :data:`ORDER_PROBLEM`, :data:`DEPTH_PROBLEM` (deeper than :data:`MAX_DEPTH`), or None; a
    stream that ends early is not this function's concern (None).
    """
    cur = _Cursor(fp)
    try:
        header = cur.read(132)
        if header is None or header[128:] != b"DICM":
            return None
        tsuid = ""
        previous = -1
        while True:  # File Meta Information: explicit VR little endian, group 0002
            head = cur.read(8)
            if head is None:
                return None
            group, number = struct.unpack("<HH", head[:4])
            if group != 0x0002:
                break
            tag = group << 16 | number
            if tag <= previous:
                return ORDER_PROBLEM
            previous = tag
            if head[4:6].decode("latin-1") in _LONG_VRS:
                extra = cur.read(4)
                if extra is None:
                    return None
                (length,) = struct.unpack("<L", extra)
            else:
                (length,) = struct.unpack("<H", head[6:])
            value = cur.read(length) if length < 1024 else None
            if tag == 0x00020010 and value is not None:
                tsuid = value.rstrip(b"\x00 ").decode("ascii", "replace")
            elif value is None:
                cur.skip(length)
        uid = UID(tsuid)
        if uid.is_transfer_syntax and not uid.is_little_endian:
            return None  # big endian: refused by the signer, unsupported for verification
        if uid.is_deflated:
            cur = _Cursor(cast(BinaryIO, _Inflating(cast(BinaryIO, _Prefixed(head, fp)))))
        elif fp.seekable():
            fp.seek(-len(head), io.SEEK_CUR)
            cur = _Cursor(fp)
        else:
            cur = _Cursor(cast(BinaryIO, _Prefixed(head, fp)))
        _scan_data_set(cur, bool(uid.is_transfer_syntax and uid.is_implicit_VR), None, 0, True)
    except _OrderError as problem:
        return str(problem)
    except (EOFError, struct.error, UnicodeDecodeError, zlib.error):
        return None
    return None


class _Prefixed(io.RawIOBase):
    """``prefix`` then the rest of ``fp``: the data set's first header, already read."""

    def __init__(self, prefix: bytes, fp: BinaryIO) -> None:
        self._prefix = prefix
        self._fp = fp

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._fp.read(size)


# -- verification ---------------------------------------------------------------------------------


def _spki(key: object) -> bytes:
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _key_algorithm(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {_CURVES.get(key.curve.name, key.curve.name)}"
    return type(key).__name__


def _profile(key: object, mac_algorithm: str) -> str:
    """PS3.15 C.1 covers RSA with any of its six MACs; Annex C has no ECDSA profile."""
    if isinstance(key, rsa.RSAPublicKey) and (
        mac_algorithm in MAC_ALGORITHMS or mac_algorithm in WEAK_MAC_ALGORITHMS
    ):
        return BASE_RSA_PROFILE
    return f"none ({_key_algorithm(key)})"


def _der_length(signature: bytes) -> bytes:
    """A DER value (ECDSA signature, certificate) without the OB pad byte that may follow it."""
    if len(signature) < 2 or signature[0] != 0x30:
        return signature
    if signature[1] < 0x80:
        return signature[: 2 + signature[1]]
    size = signature[1] & 0x7F
    return signature[: 2 + size + int.from_bytes(signature[2 : 2 + size], "big")]


_PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _signature_matches(
    key: _PublicKey,
    algorithm: hashes.HashAlgorithm,
    digest: bytes,
    signature: bytes,
) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(algorithm))
        else:
            key.verify(_der_length(signature), digest, ec.ECDSA(Prehashed(algorithm)))
    except InvalidSignature:
        return False
    return True


def _valid_at(certificate: x509.Certificate, moment: datetime.datetime) -> bool:
    return certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc


def _extension(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> object | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer`` is a CA allowed to sign certificates and signed ``child``."""
    constraints = _extension(issuer, x509.BasicConstraints)
    if not isinstance(constraints, x509.BasicConstraints) or not constraints.ca:
        return False
    usage = _extension(issuer, x509.KeyUsage)
    if isinstance(usage, x509.KeyUsage) and not usage.key_cert_sign:
        return False
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# extendedKeyUsage purposes that make a certificate a document signer (RFC 5280 4.2.1.12,
# RFC 9336 id-kp-documentSigning); serverAuth/clientAuth alone make it a TLS certificate.
SIGNING_PURPOSES = frozenset(
    {
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        ExtendedKeyUsageOID.CODE_SIGNING,
        ExtendedKeyUsageOID.TIME_STAMPING,
        x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),  # id-kp-documentSigning
    }
)
MIN_RSA_BITS = 2048


def signer_certificate_problem(certificate: x509.Certificate) -> str | None:
    """Why ``certificate`` may not sign documents (DICOM signatures, export manifests); None when
    it may. The rule, whatever CA issued it:

    - not a CA (basicConstraints cA=TRUE is refused: a CA key signs certificates, not data);
    - keyUsage, if present, allows digitalSignature or nonRepudiation (contentCommitment);
    - extendedKeyUsage, if present, lists one of :data:`SIGNING_PURPOSES` (anyExtendedKeyUsage,
      emailProtection, codeSigning, timeStamping, documentSigning): a certificate restricted to
      serverAuth/clientAuth is a TLS identity, and a TLS key that signs a handshake must not also
      sign clinical data (``pacs-kit pki issue --kind signer`` certificates carry no EKU);
    - an RSA key has at least :data:`MIN_RSA_BITS` bits; an EC key is on P-256, P-384 or P-521.
    """
    constraints = _extension(certificate, x509.BasicConstraints)
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        return "signer certificate is a CA certificate (basicConstraints cA=TRUE)"
    usage = _extension(certificate, x509.KeyUsage)
    if isinstance(usage, x509.KeyUsage) and not (
        usage.digital_signature or usage.content_commitment
    ):
        return "signer certificate keyUsage allows neither digitalSignature nor nonRepudiation"
    purposes = _extension(certificate, x509.ExtendedKeyUsage)
    if isinstance(purposes, x509.ExtendedKeyUsage) and not (set(purposes) & SIGNING_PURPOSES):
        return (
            "signer certificate extendedKeyUsage has no document-signing purpose "
            "(a TLS certificate cannot sign)"
        )
    try:
        key = certificate.public_key()
    except ValueError:
        return "signer certificate key unreadable"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"signer certificate RSA key shorter than {MIN_RSA_BITS} bits"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _CURVES:
        return "signer certificate EC key not on P-256, P-384 or P-521"
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return "signer certificate key neither RSA nor EC"
    return None


def chain_problem(
    leaf: x509.Certificate, trusted: Sequence[x509.Certificate], moment: datetime.datetime
) -> str | None:
    """Why ``leaf`` does not chain to one of ``trusted`` at ``moment`` as a signer; None when it
    does.

    The leaf must first be a signer certificate (:func:`signer_certificate_problem`), even a
    pinned one; the path is built from ``trusted`` only (the leaf is the one certificate in the
    file); see the module docstring for the checks.
    """
    if not trusted:
        return "no trusted certificate given"
    problem = signer_certificate_problem(leaf)
    if problem is not None:
        return problem
    anchors = {c.fingerprint(hashes.SHA256()) for c in trusted}
    current = leaf
    for _ in range(_MAX_CHAIN):
        if not _valid_at(current, moment):
            return "certificate outside its validity period"
        if current.fingerprint(hashes.SHA256()) in anchors:
            return None
        issuer = next(
            (c for c in trusted if c.subject == current.issuer and _issued_by(current, c)), None
        )
        if issuer is None:
            return "no trusted issuer signed the certificate"
        current = issuer
    return "certificate chain too long"


MAX_SIGNATURES = 8  # signature items verified per data set; each may cost a pass over the data


def _source_of(ds: Dataset, given: BinaryIO | None) -> BinaryIO | None:
    """Where ``ds`` was read from: ``given``, else its open buffer, else its file (None when it
    was built in memory)."""
    if given is not None:
        return given
    buffer = getattr(ds, "buffer", None)
    if buffer is not None and not getattr(buffer, "closed", False) and buffer.seekable():
        return cast(BinaryIO, buffer)
    filename = getattr(ds, "filename", None)
    if isinstance(filename, str | Path) and Path(filename).is_file():
        return Path(filename).open("rb")  # closed by verify_signatures
    return None


def verify_signatures(
    ds: Dataset,
    *,
    trusted: Sequence[x509.Certificate] = (),
    now: datetime.datetime | None = None,
    source: BinaryIO | None = None,
) -> list[SignatureReport]:
    """Check every top-level Digital Signatures Sequence item of ``ds``; one report per item, in
    file order (an empty list when ``ds`` is unsigned).

    Verdicts: ``valid`` (the signature verifies and the certificate chains to ``trusted`` at
    ``now``), ``untrusted`` (it verifies, no chain: also whenever ``trusted`` is empty),
    ``invalid`` (it does not verify: a signed element changed or went missing), ``unsupported``
    (a MAC, key, transfer syntax or certificate type this module does not verify, or an item
    past the first :data:`MAX_SIGNATURES`), ``malformed`` (missing MAC Parameters item,
    unreadable certificate or attributes, or a data set that repeats an element or is out of tag
    order: every signature of such a file is malformed).

    ``source`` is the Part 10 file ``ds`` was read from (default: the file or buffer pydicom
    read); it is scanned for element order, and values pydicom deferred (``defer_size``) are
    hashed from it as stored, in chunks. Each distinct set of signed elements is hashed once.

    Signatures nested in sequence items (PS3.3 C.12.1.1.3, Figure C.12-1) are not checked. Raw
    sequences of ``ds`` are parsed in place (their items' values stay raw, as read).
    """
    moment = now or datetime.datetime.now(datetime.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    sig_items = _items(ds, DIGITAL_SIGNATURES_SEQUENCE)
    if not sig_items:
        return []
    fp = _source_of(ds, source)
    try:
        order = None
        if fp is not None:
            fp.seek(0)
            order = element_order_problem(fp)
        mac_items: dict[int, Dataset] = {}
        for item in _items(ds, MAC_PARAMETERS_SEQUENCE):
            if "MACIDNumber" in item:
                mac_items.setdefault(int(item.MACIDNumber), item)
        deferred = _Source(fp) if fp is not None and not _deflated(ds) else None
        context = _Context(ds, _charset(ds), trusted, moment, deferred, {})
        reports = []
        for number, sig_item in enumerate(sig_items):
            report = _verify_one(context, sig_item, mac_items)
            if order is not None and report.verdict != MALFORMED:
                report = replace(report, verdict=MALFORMED, reason=order)
            elif number >= MAX_SIGNATURES:
                reason = f"too many signatures: only the first {MAX_SIGNATURES} are verified"
                report = replace(report, verdict=UNSUPPORTED, reason=reason)
            reports.append(report)
        return reports
    finally:
        if fp is not None and fp is not source and fp is not getattr(ds, "buffer", None):
            fp.close()


def _deflated(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    tsuid = meta.get("TransferSyntaxUID") if meta is not None else None
    return tsuid is not None and UID(str(tsuid)).is_deflated


@dataclass
class _Context:
    """What every signature of one data set is verified against; ``hashed`` keeps part A of the
    MAC stream per (signed tags, MAC algorithm, MAC transfer syntax) for reuse across items."""

    ds: Dataset
    charset: str | list[str] | None
    trusted: Sequence[x509.Certificate]
    moment: datetime.datetime
    source: _Source | None
    hashed: dict[tuple[tuple[int, ...], str, str], hashes.Hash]

    def part_a(self, tags: Sequence[int], mac_algorithm: str, tsuid: str) -> hashes.Hash:
        key = (tuple(int(t) for t in tags), mac_algorithm, tsuid)
        if key not in self.hashed:
            algorithm = MAC_ALGORITHMS[mac_algorithm]
            self.hashed[key] = _dataset_hash(self.ds, tags, algorithm, self.source)
        return self.hashed[key].copy()


def _verify_one(
    context: _Context, sig_item: Dataset, mac_items: dict[int, Dataset]
) -> SignatureReport:
    """One signature's report; the fields fill in as the checks get further."""
    ds = context.ds
    report = SignatureReport(
        uid=str(sig_item.get("DigitalSignatureUID", "")),
        signer="",
        time=str(sig_item.get("DigitalSignatureDateTime", "")),
        profile="",
        mac_algorithm="",
        key_algorithm="",
        tags_signed=0,
        verdict="",
        reason="",
    )
    if sig_item.get("MACIDNumber") is None:
        return replace(report, verdict=MALFORMED, reason="signature item without MAC ID Number")
    mac_item = mac_items.get(int(sig_item.MACIDNumber))
    if mac_item is None:
        reason = "no MAC Parameters item with the signature's MAC ID Number"
        return replace(report, verdict=MALFORMED, reason=reason)
    mac_algorithm = str(mac_item.get("MACAlgorithm", ""))
    signed = mac_item.get("DataElementsSigned")
    if signed is None:
        tags = []
    else:
        tags = [Tag(t) for t in (signed if isinstance(signed, list | MultiValue) else [signed])]
    unsigned = tuple(str(t) for t in _uncovered(ds, tags))
    report = replace(
        report,
        mac_algorithm=mac_algorithm,
        tags_signed=len(tags),
        tags_unsigned=unsigned,
        complete=bool(tags) and not unsigned,
    )
    if sig_item.get("CertificateType") != CERTIFICATE_TYPE:
        reason = "certificate type is not X509_1993_SIG"
        return replace(report, verdict=UNSUPPORTED, reason=reason)
    try:
        der = _der_length(bytes(sig_item.CertificateOfSigner))
        certificate = x509.load_der_x509_certificate(der)
        key = certificate.public_key()
        signer = certificate.subject.rfc4514_string()
    except (AttributeError, ValueError, TypeError):
        reason = "Certificate of Signer missing or unreadable"
        return replace(report, verdict=MALFORMED, reason=reason)
    report = replace(
        report,
        signer=signer,
        key_algorithm=_key_algorithm(key),
        profile=_profile(key, mac_algorithm),
    )
    problem = _parameters_problem(sig_item, mac_item, tags, key)
    if problem is not None:
        return replace(report, verdict=problem[0], reason=problem[1])
    missing = [t for t in tags if t not in ds]
    if missing:
        return replace(report, verdict=INVALID, reason=f"signed element {missing[0]} is missing")
    tsuid = str(mac_item.get("MACCalculationTransferSyntaxUID", ""))
    try:
        h = context.part_a(tags, mac_algorithm, tsuid)
        digest = _add_signature_item(h, sig_item, context.charset)
    except ValueError:
        reason = "the signed elements cannot be encoded"
        return replace(report, verdict=MALFORMED, reason=reason)
    algorithm = MAC_ALGORITHMS[mac_algorithm]
    if not _signature_matches(cast(_PublicKey, key), algorithm, digest, bytes(sig_item.Signature)):
        reason = "signature does not match the signed data"
        return replace(report, verdict=INVALID, reason=reason)
    problem_text = chain_problem(certificate, context.trusted, context.moment)
    if problem_text is not None:
        return replace(report, verdict=UNTRUSTED, reason=problem_text)
    reason = "signature verified; certificate chains to a trusted certificate"
    return replace(report, verdict=VALID, reason=reason)


def _parameters_problem(
    sig_item: Dataset, mac_item: Dataset, tags: list[BaseTag], key: object
) -> tuple[str, str] | None:
    """(verdict, reason) when the signature's parameters cannot be verified; None when they can."""
    if not sig_item.get("Signature"):
        return MALFORMED, "no Signature"
    if not tags:
        return MALFORMED, "no Data Elements Signed"
    if tags != sorted(set(tags)) or not all(is_signable_tag(t) for t in tags):
        return MALFORMED, "Data Elements Signed not ascending or lists unsignable tags"
    if str(mac_item.get("MACAlgorithm", "")) not in MAC_ALGORITHMS:
        return UNSUPPORTED, "MAC algorithm not one of SHA256, SHA384, SHA512"
    tsuid = UID(str(mac_item.get("MACCalculationTransferSyntaxUID", "")))
    if not tsuid.is_transfer_syntax or tsuid.is_implicit_VR or not tsuid.is_little_endian:
        return UNSUPPORTED, "MAC calculation transfer syntax is not explicit VR little endian"
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) or (
        isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _CURVES
    ):
        return UNSUPPORTED, "key algorithm not RSA or ECDSA P-256/P-384/P-521"
    return None
