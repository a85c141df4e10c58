"""The minimal DER (ITU-T X.690) the kit encodes and reads itself, in one place.

``cryptography`` builds certificates and requests only with a private key it holds and has no API
for CMS SignedData, and no ASN.1 library is a dependency. So the few structures the kit makes
through KMS (a PKCS#10 request, ``pacs_kit.pki.kms_csr``; a detached CMS SignedData,
``lambdas.export_package.sign_detached``) are encoded with the helpers below, and the one it reads
(a SignedData, ``lambdas.export_package.verify_detached``) with :class:`Reader`. Whatever is
made here is then parsed by ``cryptography`` or ``openssl`` in the tests, so a wrong encoding
cannot pass unnoticed.

Definite lengths only, single-byte tags only: DER allows nothing else for what the kit handles.
Standard library only (``infra`` and the functions may both import it).
"""

from __future__ import annotations

import datetime as dt

# Universal tags (X.690 8.1.2) and the context-specific constructed ones CMS uses.
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
UTC_TIME = 0x17
SEQUENCE = 0x30
SET = 0x31


def context(number: int) -> int:
    """The tag of a constructed, context-specific ``[number]`` (e.g. 0xA0 for ``[0]``)."""
    return 0xA0 | number


class DerError(ValueError):
    """Bytes that are not the DER this module reads; the message names what is wrong."""


# --- encoding ---------------------------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV (definite length)."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted form (``1.2.840.113549.1.7.2``)."""
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytearray([first * 40 + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return tlv(OBJECT_IDENTIFIER, bytes(body))


def integer(value: int) -> bytes:
    """An INTEGER in the fewest two's-complement octets."""
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def null() -> bytes:
    """NULL (e.g. the parameters of sha256WithRSAEncryption)."""
    return tlv(NULL, b"")


def octet_string(content: bytes) -> bytes:
    """An OCTET STRING."""
    return tlv(OCTET_STRING, content)


def bit_string(content: bytes) -> bytes:
    """A BIT STRING of whole octets (no unused bits)."""
    return tlv(BIT_STRING, b"\x00" + content)


def sequence(*items: bytes) -> bytes:
    """A SEQUENCE of already encoded items, in order."""
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items: bytes, tag: int = SET) -> bytes:
    """A SET OF: DER orders the encodings ascending as octet strings (X.690 11.6), so the
    signature over CMS signed attributes does not depend on the order they were made in.
    ``tag`` replaces the SET tag for an IMPLICIT SET OF (``[0] IMPLICIT SignedAttributes``)."""
    return tlv(tag, b"".join(sorted(items)))


def utc_time(when: dt.datetime) -> bytes:
    """UTCTime ``YYMMDDHHMMSSZ`` (years 1950-2049, as RFC 5652 signingTime requires there)."""
    utc = when.astimezone(dt.UTC)
    if not 1950 <= utc.year <= 2049:
        raise DerError("UTCTime holds the years 1950 to 2049 only")
    return tlv(UTC_TIME, utc.strftime("%y%m%d%H%M%SZ").encode("ascii"))


# --- reading ----------------------------------------------------------------------------------


class Reader:
    """A DER TLV at ``start`` of ``data``: tag, content bounds, end (definite lengths only)."""

    def __init__(self, data: bytes, start: int = 0) -> None:
        try:
            self.tag = data[start]
            if self.tag & 0x1F == 0x1F:
                raise DerError("multi-byte tags are not expected")
            first = data[start + 1]
            pos = start + 2
            if first < 0x80:
                length = first
            elif first == 0x80 or first > 0x84:
                raise DerError("indefinite or huge length")
            else:
                count = first & 0x7F
                if pos + count > len(data):
                    raise DerError("truncated")
                length = int.from_bytes(data[pos : pos + count], "big")
                pos += count
        except IndexError as exc:
            raise DerError("truncated") from exc
        self.data, self.start, self.content, self.end = data, start, pos, pos + length
        if self.end > len(data):
            raise DerError("truncated")

    @property
    def raw(self) -> bytes:
        """The whole TLV."""
        return self.data[self.start : self.end]

    @property
    def value(self) -> bytes:
        """The content octets."""
        return self.data[self.content : self.end]

    def children(self) -> list[Reader]:
        """The TLVs inside a constructed value, in order."""
        items, pos = [], self.content
        while pos < self.end:
            item = Reader(self.data, pos)
            items.append(item)
            pos = item.end
        if pos != self.end:
            raise DerError("overlong element")
        return items

    def expect(self, tag: int) -> Reader:
        """This TLV, or DerError when its tag is not ``tag``."""
        if self.tag != tag:
            raise DerError(f"tag {self.tag:#04x}, expected {tag:#04x}")
        return self

    def oid(self) -> str:
        """The dotted form of an OBJECT IDENTIFIER."""
        self.expect(OBJECT_IDENTIFIER)
        body = self.value
        if not body or body[-1] & 0x80:
            raise DerError("empty or truncated OID")
        arcs: list[int] = []
        value = 0
        for byte in body:
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        first = min(arcs[0] // 40, 2)
        return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])

    def integer(self) -> int:
        """The value of an INTEGER."""
        return int.from_bytes(self.expect(INTEGER).value, "big", signed=True)
