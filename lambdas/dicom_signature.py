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
present), and the signer's keyUsage, if present, must allow digitalSignature or nonRepudiation.
A certificate listed in ``trusted`` is a trust anchor (a pinned self-signed signer included).
Revocation (CRL/OCSP) is not checked.

Exceptions and reports never carry values from the data set (tags and codes only).
"""

from __future__ import annotations

import datetime
import io
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, cast

import pydicom
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
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
            for child in _elements(item, None)
            if is_signable_tag(child.tag)
        )
    return True


# -- the MAC byte stream --------------------------------------------------------------------------


def _normalise_text(vr: str, value: bytes) -> bytes:
    """A value as DCMTK hashes it: trailing text padding trimmed, then padded to even length."""
    if vr in _TEXT_VRS:
        value = value.rstrip(b"\x00" if vr == "UI" else b" ")
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB") else b" "
    return value


def _header(tag: BaseTag, vr: str, length: int) -> bytes:
    head = struct.pack("<HH", tag.group, tag.element) + vr.encode("ascii")
    if vr in _LONG_VRS:
        return head + struct.pack("<HL", 0, length)
    return head + struct.pack("<H", length)


@dataclass(frozen=True)
class _Element:
    """One element as the MAC sees it: the stored value bytes of a raw element (its stored VR
    included: a UN stays UN, as in dcmtk), or the parsed element (sequences, encapsulated pixel
    data, values set in memory)."""

    tag: BaseTag
    vr: str
    stored: bytes | None
    parsed: DataElement | None


def _elements(ds: Dataset, charset: str | list[str] | None) -> Iterator[_Element]:
    """The elements of ``ds`` in ascending tag order. Raw elements are not parsed in ``ds`` (only
    a copy, for the dictionary VR of implicit VR input), so ``ds`` keeps its raw bytes to write."""
    little = ds.original_encoding[1] is not False
    for tag in sorted(ds.keys()):
        raw = ds.get_item(tag)
        if (
            isinstance(raw, RawDataElement)
            and little
            and raw.value is not None
            and raw.length != _UNDEFINED_LENGTH
            and not raw.is_buffered
        ):
            vr = raw.VR or convert_raw_data_element(raw, encoding=charset, ds=ds).VR
            if vr != "SQ":
                yield _Element(tag, vr, bytes(raw.value), None)
                continue
        parsed = ds[tag]
        yield _Element(tag, parsed.VR, None, parsed)


def _encode(element: _Element, charset: str | list[str] | None) -> bytes:
    """One element in signature format (see the module docstring)."""
    tag, vr, parsed = element.tag, element.vr, element.parsed
    tag_bytes = struct.pack("<HH", tag.group, tag.element)
    if parsed is not None and vr == "SQ":
        parts = [tag_bytes, b"SQ\x00\x00"]
        for item in parsed.value:
            parts.append(_ITEM)
            parts.extend(
                _encode(child, charset)
                for child in _elements(item, charset)
                if is_signable_tag(child.tag)
            )
        parts.append(_SEQUENCE_DELIMITER)
        return b"".join(parts)
    if parsed is not None and tag == PIXEL_DATA and parsed.is_undefined_length:
        # PS3.5 A.4: encapsulated Pixel Data is OB, whatever VR the file gave it (dcmtk agrees)
        parts = [tag_bytes, b"OB\x00\x00"]
        for fragment in generate_fragments(parsed.value):
            parts += [_ITEM, fragment]
        parts.append(_SEQUENCE_DELIMITER)
        return b"".join(parts)
    # _elements yields either the stored bytes or the parsed element
    stored = element.stored
    value = stored if stored is not None else _pydicom_value(cast(DataElement, parsed), charset)
    value = _normalise_text(vr, value)
    return _header(tag, vr, len(value)) + value


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


def _dataset_stream(ds: Dataset, tags: Sequence[int]) -> bytes:
    charset = _charset(ds)
    wanted = set(tags)
    return b"".join(_encode(e, charset) for e in _elements(ds, charset) if e.tag in wanted)


def _signature_item_stream(item: Dataset, charset: str | list[str] | None) -> bytes:
    return b"".join(
        _encode(e, charset)
        for e in _elements(item, charset)
        if e.tag not in _NOT_IN_SIGNATURE_ITEM_STREAM
    )


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
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
    signable = [e.tag for e in _elements(ds, charset) if _is_signable(e)]
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

    stream = _dataset_stream(ds, signed) + _signature_item_stream(sig_item, charset)
    signature = signer.sign_digest(_digest(algorithm, stream), algorithm)
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
    )


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
    """Sign a DICOM Part 10 file and return the signed file (see :func:`add_signature`).

    Implicit VR, big endian or deflated input is re-encoded as explicit VR little endian first;
    the data set is then written and read back so that every element is hashed from the bytes
    that are written (existing signatures of re-encoded input no longer verify: re-encoding
    changes the signed bytes, PS3.15 A.2).
    """
    ds = _read(data)
    tsuid = UID(str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))
    if tsuid.is_implicit_VR or not tsuid.is_little_endian or tsuid.is_deflated:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = _read(_write(ds))
    add_signature(ds, signer, mac_algorithm=mac_algorithm, tags=tags, purpose=purpose, now=now)
    return _write(ds)


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


def chain_problem(
    leaf: x509.Certificate, trusted: Sequence[x509.Certificate], moment: datetime.datetime
) -> str | None:
    """Why ``leaf`` does not chain to one of ``trusted`` at ``moment``; None when it does.

    The path is built from ``trusted`` only (the leaf is the one certificate in the file); see the
    module docstring for the checks.
    """
    if not trusted:
        return "no trusted certificate given"
    usage = _extension(leaf, x509.KeyUsage)
    if isinstance(usage, x509.KeyUsage) and not (
        usage.digital_signature or usage.content_commitment
    ):
        return "signer certificate keyUsage allows neither digitalSignature nor nonRepudiation"
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


def verify_signatures(
    ds: Dataset,
    *,
    trusted: Sequence[x509.Certificate] = (),
    now: datetime.datetime | None = None,
) -> list[SignatureReport]:
    """Check every top-level Digital Signatures Sequence item of ``ds``; one report per item, in
    file order (an empty list when ``ds`` is unsigned).

    Verdicts: ``valid`` (the signature verifies and the certificate chains to ``trusted`` at
    ``now``), ``untrusted`` (it verifies, no chain: also whenever ``trusted`` is empty),
    ``invalid`` (it does not verify: a signed element changed or went missing), ``unsupported``
    (a MAC, key, transfer syntax or certificate type this module does not verify), ``malformed``
    (missing MAC Parameters item, unreadable certificate or attributes).

    Signatures nested in sequence items (PS3.3 C.12.1.1.3, Figure C.12-1) are not checked. Raw
    sequences of ``ds`` are parsed in place (their items' values stay raw, as read).
    """
    moment = now or datetime.datetime.now(datetime.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    mac_items: dict[int, Dataset] = {}
    for item in _items(ds, MAC_PARAMETERS_SEQUENCE):
        if "MACIDNumber" in item:
            mac_items.setdefault(int(item.MACIDNumber), item)
    charset = _charset(ds)
    return [
        _verify_one(ds, sig_item, mac_items, charset, trusted, moment)
        for sig_item in _items(ds, DIGITAL_SIGNATURES_SEQUENCE)
    ]


def _verify_one(
    ds: Dataset,
    sig_item: Dataset,
    mac_items: dict[int, Dataset],
    charset: str | list[str] | None,
    trusted: Sequence[x509.Certificate],
    moment: datetime.datetime,
) -> SignatureReport:
    """One signature's report; the fields fill in as the checks get further."""
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
    report = replace(report, mac_algorithm=mac_algorithm, tags_signed=len(tags))
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
    algorithm = MAC_ALGORITHMS[mac_algorithm]
    missing = [t for t in tags if t not in ds]
    if missing:
        return replace(report, verdict=INVALID, reason=f"signed element {missing[0]} is missing")
    try:
        stream = _dataset_stream(ds, tags) + _signature_item_stream(sig_item, charset)
    except ValueError:
        reason = "the signed elements cannot be encoded"
        return replace(report, verdict=MALFORMED, reason=reason)
    digest = _digest(algorithm, stream)
    if not _signature_matches(cast(_PublicKey, key), algorithm, digest, bytes(sig_item.Signature)):
        reason = "signature does not match the signed data"
        return replace(report, verdict=INVALID, reason=reason)
    problem_text = chain_problem(certificate, trusted, moment)
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
