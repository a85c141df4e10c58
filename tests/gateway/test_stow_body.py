"""The STOW-RS body readers on their own: HTTP framing and multipart splitting, byte by byte."""

from __future__ import annotations

import io
from http import HTTPStatus

import pytest
from python_multipart.exceptions import MultipartParseError

from gateway.stow import BodyError, MultipartReader, Part, body_chunks

BOUNDARY = b"a1b2c3"


def multipart(*parts: tuple[bytes, bytes], preamble: bytes = b"") -> bytes:
    body = preamble
    for content_type, data in parts:
        body += b"--" + BOUNDARY + b"\r\nContent-Type: " + content_type + b"\r\n\r\n" + data
        body += b"\r\n"
    return body + b"--" + BOUNDARY + b"--\r\n"


def read_all(reader: MultipartReader, body: bytes, step: int) -> list[tuple[Part, bytes]]:
    parts: list[tuple[Part, bytes]] = []
    for i in range(0, len(body), step):
        for part in reader.feed(body[i : i + step]):
            part.file.seek(0)
            parts.append((part, part.file.read()))
            part.file.close()
    reader.close()
    return parts


@pytest.mark.parametrize("step", [1, 7, 4096])
def test_parts_come_out_whole_however_the_body_is_cut(step: int) -> None:
    # Payloads that contain CRLFs and boundary look-alikes must survive unchanged.
    first = b"\r\n--a1b2c\r\n" + bytes(range(256)) * 40
    second = b"--" + BOUNDARY + b"x" + b"\r\n" * 3
    body = multipart((b"application/dicom", first), (b"application/dicom", second))
    parts = read_all(MultipartReader(BOUNDARY, 1 << 20), body, step)
    assert [data for _, data in parts] == [first, second]
    assert [p.headers["content-type"] for p, _ in parts] == ["application/dicom"] * 2
    assert [p.size for p, _ in parts] == [len(first), len(second)]


def test_a_preamble_before_the_first_boundary_is_skipped() -> None:
    body = multipart((b"application/dicom", b"DATA"), preamble=b"This is a preamble.\r\n")
    [(_, data)] = read_all(MultipartReader(BOUNDARY, 1 << 20), body, 5)
    assert data == b"DATA"


def test_a_body_without_any_boundary_is_refused_early() -> None:
    reader = MultipartReader(BOUNDARY, 1 << 20)
    with pytest.raises(MultipartParseError):
        for _ in range(100):
            reader.feed(b"x" * 1024)


def test_a_part_over_the_limit_is_flagged_and_kept_off_disk() -> None:
    body = multipart((b"application/dicom", b"y" * 5000), (b"application/dicom", b"small"))
    (big, big_data), (_, small_data) = read_all(MultipartReader(BOUNDARY, 4096), body, 1000)
    assert big.too_large and big_data == b""
    assert small_data == b"small"


def test_a_body_cut_before_the_closing_boundary_is_an_error() -> None:
    body = multipart((b"application/dicom", b"DATA"))[:-12]
    reader = MultipartReader(BOUNDARY, 1 << 20)
    assert reader.feed(body) == []  # the part's end was never seen: it is not handed out
    with pytest.raises(MultipartParseError):
        reader.close()


def test_oversized_part_headers_are_refused() -> None:
    body = b"--" + BOUNDARY + b"\r\nX-Filler: " + b"z" * 20000 + b"\r\n\r\nDATA"
    with pytest.raises(MultipartParseError):
        MultipartReader(BOUNDARY, 1 << 20).feed(body)


def test_chunked_transfer_coding_is_decoded_with_extensions_and_trailers() -> None:
    wire = (
        b"4;name=value\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n"
        b"0\r\nX-Trailer: t\r\n\r\n"
    )
    chunks = body_chunks(io.BytesIO(wire), {"Transfer-Encoding": "chunked"})
    assert b"".join(chunks) == b"Wikipedia in \r\n\r\nchunks."


@pytest.mark.parametrize(
    ("headers", "wire", "status"),
    [
        ({"Transfer-Encoding": "chunked"}, b"zz\r\nabc", HTTPStatus.BAD_REQUEST),
        ({"Transfer-Encoding": "chunked"}, b"5\r\nabc", HTTPStatus.BAD_REQUEST),
        ({"Transfer-Encoding": "chunked"}, b"3\r\nabcXY", HTTPStatus.BAD_REQUEST),
        ({"Transfer-Encoding": "gzip"}, b"", HTTPStatus.NOT_IMPLEMENTED),
        ({}, b"abc", HTTPStatus.LENGTH_REQUIRED),
        ({"Content-Length": "ten"}, b"abc", HTTPStatus.BAD_REQUEST),
        ({"Content-Length": "-1"}, b"abc", HTTPStatus.BAD_REQUEST),
        ({"Content-Length": "10"}, b"abc", HTTPStatus.BAD_REQUEST),
    ],
)
def test_broken_framing_names_the_status_to_answer(
    headers: dict[str, str], wire: bytes, status: HTTPStatus
) -> None:
    with pytest.raises(BodyError) as error:
        b"".join(body_chunks(io.BytesIO(wire), headers))
    assert error.value.status == status


def test_content_length_reads_exactly_the_body_and_no_further() -> None:
    wire = io.BytesIO(b"0123456789NEXT REQUEST")
    assert b"".join(body_chunks(wire, {"Content-Length": "10"})) == b"0123456789"
    assert wire.read() == b"NEXT REQUEST"
