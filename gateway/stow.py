"""DICOMweb STOW-RS (``POST /studies[/{StudyInstanceUID}]``) and ``GET /health`` behind the ALB.

The ALB terminates mutual TLS (verify mode) and passes the verified client certificate in
``X-Amzn-Mtls-Clientcert-*`` headers; a request without them did not come through the ALB's mTLS
listener and is refused, unless the local-development flag allows it. Each ``application/dicom``
part lands in the inbox like a C-STORE; the response is the standard DICOM JSON store response
(PS3.18 10.5.3, failure reasons of Table I.2-2).

The body is streamed: ``python-multipart`` splits it as it arrives (``Content-Length`` or
chunked), each part is spooled to a temporary file under $TMPDIR (memory only while small) and
goes to the inbox as soon as its closing boundary is read, so a request costs at most one part of
disk and a few MiB of memory however large it is.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

import pydicom
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydicom.errors import InvalidDicomError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from gateway.inbox import MAX_SINGLE_PUT_BYTES, InboxWriter, Sender
from gateway.tls import fingerprint
from gateway.uids import loggable

log = logging.getLogger("gateway")

MTLS_SUBJECT = "X-Amzn-Mtls-Clientcert-Subject"
MTLS_SERIAL = "X-Amzn-Mtls-Clientcert-Serial-Number"
MTLS_LEAF = "X-Amzn-Mtls-Clientcert-Leaf"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
# PS3.18 Table I.2-2: Failure Reason (0008,1197) values.
PROCESSING_FAILURE = 0x0110  # also: the instance is not of the study the URL names
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
# Tags of the response (PS3.18 Table 10.5.3-2).
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILURE_REASON = "00081197"
REFERENCED_SOP_CLASS = "00081150"
REFERENCED_SOP_INSTANCE = "00081155"

READ_CHUNK = 1024 * 1024
SPOOL_IN_MEMORY_BYTES = 8 * 1024 * 1024  # smaller parts never touch the disk
MAX_PART_HEADER_BYTES = 16 * 1024
MAX_PREAMBLE_BYTES = 64 * 1024
# An idle or stalled client is dropped after this long; graceful shutdown waits no longer.
SOCKET_TIMEOUT_SECONDS = 60


class _JsonErrorsHTTPServer(ThreadingHTTPServer):
    """The standard server, except that a client's connection failing outside a request's body
    (a reset while the request line is read) is one JSON event like any other loss, not
    socketserver's banner and traceback on stderr (stderr is the gateway's log stream)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            log.warning("stow connection lost", extra={"stored": 0})
            return
        super().handle_error(request, client_address)


class StowServer:
    """A threaded HTTP server, one thread per connection; stopping lets running requests end."""

    def __init__(
        self,
        inbox: InboxWriter,
        *,
        sop_classes: Collection[str],
        transfer_syntaxes: Collection[str],
        allow_missing_mtls_headers: bool = False,
        max_instance_bytes: int = MAX_SINGLE_PUT_BYTES,
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        self.inbox = inbox
        self.sop_classes = frozenset(sop_classes)
        self.transfer_syntaxes = frozenset(transfer_syntaxes)
        self.allow_missing_mtls_headers = allow_missing_mtls_headers
        self.max_instance_bytes = min(max_instance_bytes, MAX_SINGLE_PUT_BYTES)
        self.healthy = healthy
        self.httpd: ThreadingHTTPServer | None = None
        self._requests = 0  # STOW-RS requests being served
        self._idle = threading.Condition()

    def start(self, host: str, port: int) -> int:
        server = self

        class Handler(_StowHandler):
            owner = server

        self.httpd = _JsonErrorsHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True  # idle keep-alive connections do not hold the exit
        threading.Thread(target=self.httpd.serve_forever, name="stow-accept", daemon=True).start()
        return int(self.httpd.server_address[1])

    def stop_accepting(self) -> None:
        """Close the listening socket; requests being served go on."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.socket.close()

    def drain(self, deadline: float) -> int:
        """Wait until no request is being served or ``deadline`` (``time.monotonic()``) passes;
        returns how many were still running."""
        with self._idle:
            while self._requests and (remaining := deadline - time.monotonic()) > 0:
                self._idle.wait(remaining)
            return self._requests

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        with self._idle:
            self._requests += 1
        try:
            yield
        finally:
            with self._idle:
                self._requests -= 1
                self._idle.notify_all()


def _sender_from_headers(headers: Any) -> Sender | None:
    subject = headers.get(MTLS_SUBJECT)
    serial = headers.get(MTLS_SERIAL)
    if not subject or not serial:
        return None
    leaf = headers.get(MTLS_LEAF)
    digest = ""
    if leaf:
        try:
            cert = x509.load_pem_x509_certificate(urllib.parse.unquote(leaf).encode())
            digest = fingerprint(cert.public_bytes(Encoding.DER))
        except ValueError:
            return None
    return Sender(channel="stow", subject=subject, fingerprint=digest, serial=serial)


class BodyError(Exception):
    """The request body cannot be read as framed: the status to answer with."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def body_chunks(rfile: io.BufferedIOBase, headers: Any) -> Iterator[bytes]:
    """The request body as it arrives: ``Content-Length`` or ``Transfer-Encoding: chunked``."""
    coding = (headers.get("Transfer-Encoding") or "").strip().lower()
    if coding:
        if coding != "chunked":
            raise BodyError(HTTPStatus.NOT_IMPLEMENTED, f"transfer coding {coding!r}")
        yield from _chunked(rfile)
        return
    raw = headers.get("Content-Length")
    if raw is None:
        raise BodyError(HTTPStatus.LENGTH_REQUIRED, "no Content-Length")
    try:
        remaining = int(raw)
    except ValueError:
        raise BodyError(HTTPStatus.BAD_REQUEST, "malformed Content-Length") from None
    if remaining < 0:
        raise BodyError(HTTPStatus.BAD_REQUEST, "malformed Content-Length")
    yield from _exactly(rfile, remaining)


def _exactly(rfile: io.BufferedIOBase, remaining: int) -> Iterator[bytes]:
    while remaining:
        data = rfile.read(min(remaining, READ_CHUNK))
        if not data:
            raise BodyError(HTTPStatus.BAD_REQUEST, "body ended early")
        remaining -= len(data)
        yield data


def _chunked(rfile: io.BufferedIOBase) -> Iterator[bytes]:
    while True:
        line = rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise BodyError(HTTPStatus.BAD_REQUEST, "malformed chunk size line")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BodyError(HTTPStatus.BAD_REQUEST, "malformed chunk size") from None
        if size < 0:
            raise BodyError(HTTPStatus.BAD_REQUEST, "malformed chunk size")
        if size == 0:
            while rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields: nothing of ours
            return
        yield from _exactly(rfile, size)
        if rfile.readline(3) not in (b"\r\n", b"\n"):
            raise BodyError(HTTPStatus.BAD_REQUEST, "malformed chunk end")


@dataclass
class Part:
    """One body part, spooled: its headers (lower-case names) and its content."""

    headers: dict[str, str] = field(default_factory=dict)
    # Closed by whoever takes the part (the handler) or by MultipartReader.close().
    file: IO[bytes] = field(
        default_factory=lambda: tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_IN_MEMORY_BYTES
        )
    )
    size: int = 0
    too_large: bool = False


class MultipartReader:
    """Feeds ``python-multipart`` and hands out each part once its closing boundary is read."""

    def __init__(self, boundary: bytes, max_part_bytes: int) -> None:
        self.max_part_bytes = max_part_bytes
        self.finished: list[Part] = []
        self.ended = False
        self._delimiter = b"--" + boundary
        self._lead: bytes | None = b""  # None once the first delimiter is found
        self._part: Part | None = None
        self._name = bytearray()
        self._value = bytearray()
        self._header_bytes = 0
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._begin,
                "on_header_field": self._header_name,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_part_data": self._data,
                "on_part_end": self._end,
                "on_end": self._done,
            },
        )

    def feed(self, data: bytes) -> list[Part]:
        """Parse ``data``; returns the parts it completed (the caller owns and closes them)."""
        if self._lead is not None:
            # RFC 2046 allows a preamble before the first delimiter; the parser does not.
            lead = self._lead + data
            at = 0 if lead.startswith(self._delimiter) else lead.find(b"\n" + self._delimiter)
            if at < 0:
                if len(lead) > MAX_PREAMBLE_BYTES:
                    raise MultipartParseError("no multipart boundary")
                self._lead = lead
                return []
            self._lead = None
            data = lead[at if at == 0 else at + 1 :]
        self._parser.write(data)
        done, self.finished = self.finished, []
        return done

    def close(self) -> None:
        """At the end of the body: raise if it ended before its closing delimiter."""
        self.discard()
        if not self.ended:
            raise MultipartParseError("body ended before the closing boundary")

    def discard(self) -> None:
        """Drop the part being read, if any (a body cut short, or any error)."""
        if self._part is not None:
            self._part.file.close()
            self._part = None

    def _begin(self) -> None:
        self._part = Part()
        self._header_bytes = 0

    def _header_name(self, data: bytes, start: int, end: int) -> None:
        self._grow_header(end - start)
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._grow_header(end - start)
        self._value += data[start:end]

    def _grow_header(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise MultipartParseError("part headers too large")

    def _header_end(self) -> None:
        assert self._part is not None
        name = self._name.decode("latin-1").strip().lower()
        self._part.headers[name] = self._value.decode("latin-1").strip()
        self._name.clear()
        self._value.clear()

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert part is not None
        if part.too_large:
            return
        part.size += end - start
        if part.size > self.max_part_bytes:
            part.too_large = True
            part.file.truncate(0)  # read on to the next boundary, keep nothing
            return
        part.file.write(data[start:end])

    def _end(self) -> None:
        assert self._part is not None
        self.finished.append(self._part)
        self._part = None

    def _done(self) -> None:
        self.ended = True


def _reference(sop_class: str, sop_instance: str) -> dict[str, Any]:
    return {
        REFERENCED_SOP_CLASS: {"vr": "UI", "Value": [sop_class]},
        REFERENCED_SOP_INSTANCE: {"vr": "UI", "Value": [sop_instance]},
    }


def _failure(reason: int, item: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**(item or {}), FAILURE_REASON: {"vr": "US", "Value": [reason]}}


@dataclass
class StoreResponse:
    """The Store Instances Response being built (PS3.18 10.5.3)."""

    stored: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def status(self) -> HTTPStatus:
        # 200 all stored, 202 some stored, 409 none stored.
        if not self.failed:
            return HTTPStatus.OK
        return HTTPStatus.ACCEPTED if self.stored else HTTPStatus.CONFLICT

    def body(self) -> bytes:
        document: dict[str, Any] = {}
        if self.stored:
            document[REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": self.stored}
        if self.failed:
            document[FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": self.failed}
        return json.dumps(document).encode()


@dataclass(frozen=True)
class _Header:
    sop_class: str
    sop_instance: str
    study: str
    transfer_syntax: str


def _read_header(file: IO[bytes]) -> _Header:
    """The UIDs the response and the checks need; pixel data and large values stay unread."""
    file.seek(0)
    ds = pydicom.dcmread(
        file,
        stop_before_pixels=True,
        defer_size=1024,
        specific_tags=["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"],
    )
    return _Header(
        sop_class=str(ds.SOPClassUID),
        sop_instance=str(ds.SOPInstanceUID),
        study=str(ds.get("StudyInstanceUID", "")),
        transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
    )


class _StowHandler(BaseHTTPRequestHandler):
    owner: StowServer
    protocol_version = "HTTP/1.1"
    server_version = "cloud-pacs-gateway"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        return  # access logs come from the ALB; ours are structured and PHI-free

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            if self.owner.healthy():
                self._reply(HTTPStatus.OK, b'{"status":"ok"}', "application/json")
            else:  # out of scratch space: let the load balancers route around this task
                body = b'{"status":"low on scratch space"}'
                self._reply(HTTPStatus.SERVICE_UNAVAILABLE, body, "application/json")
        else:
            self._refuse(HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:
        segments = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        if segments[0] != "studies" or len(segments) > 2:
            self._refuse(HTTPStatus.NOT_FOUND)
            return
        study = urllib.parse.unquote(segments[1]) if len(segments) == 2 else None
        sender = _sender_from_headers(self.headers)
        if sender is None:
            if not self.owner.allow_missing_mtls_headers:
                log.warning("stow refused: no verified client certificate headers")
                self._refuse(HTTPStatus.FORBIDDEN)
                return
            sender = Sender(channel="stow", subject="local-development", fingerprint="")
        media, options = parse_options_header(self.headers.get("Content-Type", ""))
        boundary = options.get(b"boundary")
        if media.lower() != b"multipart/related" or not boundary:
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            return
        kind = options.get(b"type", b"").lower()
        if kind and kind != DICOM.encode():
            # application/dicom+json and +xml bodies carry metadata and bulk data separately.
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            return
        with self.owner.serving():
            self._store_body(boundary, sender, study)

    def _store_body(self, boundary: bytes, sender: Sender, study: str | None) -> None:
        reader = MultipartReader(boundary, self.owner.max_instance_bytes)
        response = StoreResponse()
        try:
            try:
                for chunk in body_chunks(self.rfile, self.headers):
                    for part in reader.feed(chunk):
                        self._store_part(part, sender, study, response)
            except BaseException:
                reader.discard()  # the first error is the one to answer
                raise
            reader.close()
        except (BodyError, MultipartParseError) as exc:
            status = exc.status if isinstance(exc, BodyError) else HTTPStatus.BAD_REQUEST
            log.warning(
                "stow body unreadable",
                extra={"status": int(status), "stored": len(response.stored)},
            )
            if not response.stored:
                self._refuse(status)
                return
            # Instances before the damage are in the inbox already: say so, and fail the rest.
            response.failed.append(_failure(CANNOT_UNDERSTAND))
            self.close_connection = True  # the body's framing is lost
        except OSError:
            log.warning("stow connection lost", extra={"stored": len(response.stored)})
            self.close_connection = True
            return
        self._reply(response.status(), response.body(), DICOM_JSON)

    def _store_part(
        self, part: Part, sender: Sender, study: str | None, response: StoreResponse
    ) -> None:
        with part.file:
            failure = self._check_part(part)
            if failure is not None:
                response.failed.append(failure)
                return
            try:
                header = _read_header(part.file)
            except (InvalidDicomError, ValueError, KeyError, AttributeError, EOFError, OSError):
                response.failed.append(_failure(CANNOT_UNDERSTAND))
                return
            item = _reference(header.sop_class, header.sop_instance)
            refusal = self._refusal(header, study)
            if refusal is not None:
                response.failed.append(_failure(refusal, item))
                return
            try:
                landed = self.owner.inbox.put(part.file, sender)
            except Exception as exc:  # noqa: BLE001 - not stored: say so, per instance
                log.error(
                    "store failed: inbox write failed",
                    extra={
                        "channel": "stow",
                        "sop_instance_uid": loggable(header.sop_instance),
                        "reason": type(exc).__name__,
                    },
                )
                response.failed.append(_failure(OUT_OF_RESOURCES, item))
                return
        log.info(
            "stored",
            extra={
                "channel": "stow",
                "sop_instance_uid": loggable(header.sop_instance),
                "key": landed.key,
                "sha256": landed.sha256,
                "size": landed.size,
                "client_fingerprint": sender.fingerprint,
            },
        )
        response.stored.append(item)

    def _check_part(self, part: Part) -> dict[str, Any] | None:
        media, _ = parse_options_header(part.headers.get("content-type", ""))
        coding = part.headers.get("content-transfer-encoding", "binary").lower()
        if media.lower() != DICOM.encode() or coding not in ("binary", "8bit", "7bit"):
            return _failure(CANNOT_UNDERSTAND)
        if part.too_large:
            log.warning("stow part too large", extra={"size": part.size})
            return _failure(OUT_OF_RESOURCES)
        return None

    def _refusal(self, header: _Header, study: str | None) -> int | None:
        """The ingest validator's SOP class and transfer syntax lists, and the URL's study."""
        if header.sop_class not in self.owner.sop_classes:
            return SOP_CLASS_NOT_SUPPORTED
        if header.transfer_syntax not in self.owner.transfer_syntaxes:
            return TRANSFER_SYNTAX_NOT_SUPPORTED
        if study is not None and header.study != study:
            return PROCESSING_FAILURE
        return None

    def _refuse(self, status: HTTPStatus) -> None:
        # The body may be unread: the connection cannot carry another request.
        self.close_connection = True
        self._reply(status, b"", "text/plain")

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
