"""DICOMweb STOW-RS (``POST /studies``) and ``GET /health`` behind the ALB.

The ALB terminates mutual TLS (verify mode) and passes the verified client certificate in
``X-Amzn-Mtls-Clientcert-*`` headers; a request without them did not come through the ALB's mTLS
listener and is refused, unless the local-development flag allows it. Each ``application/dicom``
part lands in the inbox like a C-STORE; the response is the standard DICOM JSON store response.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import logging
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pydicom
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.inbox import InboxWriter, Sender
from gateway.tls import fingerprint

log = logging.getLogger("gateway")

MTLS_SUBJECT = "X-Amzn-Mtls-Clientcert-Subject"
MTLS_SERIAL = "X-Amzn-Mtls-Clientcert-Serial-Number"
MTLS_LEAF = "X-Amzn-Mtls-Clientcert-Leaf"
DICOM_JSON = "application/dicom+json"
# PS3.18 failure reasons in the Failed SOP Sequence.
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000


class StowServer:
    """A threaded HTTP server; one thread per request, shut down gracefully."""

    def __init__(
        self,
        inbox: InboxWriter,
        *,
        allow_missing_mtls_headers: bool = False,
        max_request_bytes: int = 1024**3,
    ) -> None:
        self.inbox = inbox
        self.allow_missing_mtls_headers = allow_missing_mtls_headers
        self.max_request_bytes = max_request_bytes
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> int:
        server = self

        class Handler(_StowHandler):
            owner = server

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


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


def _uids(data: bytes) -> tuple[str, str]:
    ds = pydicom.dcmread(
        io.BytesIO(data), stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"]
    )
    return str(ds.SOPClassUID), str(ds.SOPInstanceUID)


def _reference(sop_class: str, sop_instance: str) -> dict[str, Any]:
    return {
        "00081150": {"vr": "UI", "Value": [sop_class]},
        "00081155": {"vr": "UI", "Value": [sop_instance]},
    }


class _StowHandler(BaseHTTPRequestHandler):
    owner: StowServer
    protocol_version = "HTTP/1.1"
    server_version = "cloud-pacs-gateway"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return  # access logs come from the ALB; ours are structured and PHI-free

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self._reply(HTTPStatus.OK, b'{"status":"ok"}', "application/json")
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"", "text/plain")

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        if not (path == "/studies" or path.startswith("/studies/")):
            self._reply(HTTPStatus.NOT_FOUND, b"", "text/plain")
            return
        sender = _sender_from_headers(self.headers)
        if sender is None:
            if not self.owner.allow_missing_mtls_headers:
                log.warning("stow refused: no verified client certificate headers")
                self._reply(HTTPStatus.FORBIDDEN, b"", "text/plain")
                return
            sender = Sender(channel="stow", subject="local-development", fingerprint="")
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > self.owner.max_request_bytes:
            self._reply(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length else HTTPStatus.LENGTH_REQUIRED,
                b"",
                "text/plain",
            )
            return
        content_type = self.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/related"):
            self._reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, b"", "text/plain")
            return
        body = self.rfile.read(length)
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        if not message.is_multipart():
            self._reply(HTTPStatus.BAD_REQUEST, b"", "text/plain")
            return
        stored: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for part in message.iter_parts():
            if part.get_content_type() != "application/dicom":
                failed.append({"00081197": {"vr": "US", "Value": [CANNOT_UNDERSTAND]}})
                continue
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                failed.append({"00081197": {"vr": "US", "Value": [CANNOT_UNDERSTAND]}})
                continue
            try:
                sop_class, sop_instance = _uids(data)
            except Exception:  # noqa: BLE001 - an unparsable part is a failed instance
                failed.append({"00081197": {"vr": "US", "Value": [CANNOT_UNDERSTAND]}})
                continue
            try:
                landed = self.owner.inbox.put(data, sender)
            except Exception as exc:  # noqa: BLE001 - not stored: say so, per instance
                log.error(
                    "stow failed: inbox write failed",
                    extra={"sop": sop_instance, "error": type(exc).__name__},
                )
                item = _reference(sop_class, sop_instance)
                item["00081197"] = {"vr": "US", "Value": [OUT_OF_RESOURCES]}
                failed.append(item)
                continue
            log.info(
                "stored",
                extra={
                    "channel": "stow",
                    "sop": sop_instance,
                    "key": landed.key,
                    "sha256": landed.sha256,
                    "size": landed.size,
                    "client_fingerprint": sender.fingerprint,
                },
            )
            stored.append(_reference(sop_class, sop_instance))
        response: dict[str, Any] = {}
        if stored:
            response["00081199"] = {"vr": "SQ", "Value": stored}
        if failed:
            response["00081198"] = {"vr": "SQ", "Value": failed}
        # PS3.18: 200 all stored, 202 some stored, 409 none stored.
        status = (
            HTTPStatus.OK
            if not failed
            else (HTTPStatus.ACCEPTED if stored else HTTPStatus.CONFLICT)
        )
        self._reply(status, json.dumps(response).encode(), DICOM_JSON)

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
