"""DIMSE Storage SCP on a mutually authenticated TLS socket (pynetdicom).

A C-STORE is answered Success only after the inbox write returned: a failed write answers
"Out of Resources" (0xA700), so the modality keeps the instance and sends it again.

Received data sets go to a temporary file as their fragments arrive (pynetdicom's chunked
receive), never whole into memory, and stream from there to S3: a multi-gigabyte multi-frame
instance costs disk under $TMPDIR, not the task's memory. pynetdicom deletes the file once the
handler has answered (the spool sweeper, gateway/spool.py, removes what aborted transfers leave).

The TLS handshake runs in each connection's own thread with a deadline, never in the thread that
accepts connections (pynetdicom's default): a client that connects and says nothing delays
nobody. After it, the client certificate is checked against the CRL (:class:`Revocations`).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from gateway.inbox import InboxWriter, Sender
from gateway.tls import Revocations, fingerprint, subject_text
from gateway.uids import loggable

log = logging.getLogger("gateway")
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
HANDSHAKE_TIMEOUT_SECONDS = 20.0
# DICOM PS3.5 Table 6.2-1, VR AE (lambdas/audit_events.py documents the same type; the image does
# not carry that module).
AE_TITLE_MAX_LENGTH = 16


def loggable_ae_title(raw: object) -> str:
    """The calling AE title if it is a valid one (trimmed), else "": the sender chose it, so any
    other string (control characters, a backslash, a long free text) is neither logged nor stored.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            return ""
    value = str(raw).strip(" ")
    if not 0 < len(value) <= AE_TITLE_MAX_LENGTH:
        return ""
    if any(not " " <= c <= "~" or c == "\\" for c in value):
        return ""
    return value


class RefusedConnection(Exception):
    """A TLS connection the gateway will not serve; the message is safe to log."""


class TlsAssociationServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with the handshake moved out of the accepting thread."""

    revocations: Revocations | None = None

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        # Plain accept: wrapping here (pynetdicom's way) handshakes in the accepting thread.
        assert self.socket is not None
        client, address = self.socket.accept()
        return client, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            tls = self._admit(request)
        except (RefusedConnection, OSError) as exc:
            reason = str(exc) if isinstance(exc, RefusedConnection) else _tls_reason(exc)
            log.warning("dimse connection refused", extra={"reason": reason})
            self.shutdown_request(request)
            return
        super().process_request_thread(tls, client_address)

    def _admit(self, raw: socket.socket) -> ssl.SSLSocket:
        if self.ssl_context is None:
            raise RefusedConnection("no TLS context")
        blocking = raw.gettimeout()
        raw.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        tls = self.ssl_context.wrap_socket(raw, server_side=True)  # handshakes here, or raises
        tls.settimeout(blocking)
        der = tls.getpeercert(binary_form=True)
        if not der:
            raise RefusedConnection("no client certificate")
        if self.revocations is not None and self.revocations.revokes(der):
            raise RefusedConnection(f"client certificate revoked ({fingerprint(der)})")
        return tls

    def shutdown(self) -> None:
        # pynetdicom's own shutdown also unregisters from AE.start_server's list, which this
        # server (made with AE.make_server) is not on.
        socketserver.BaseServer.shutdown(self)
        self.server_close()


def _tls_reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or type(exc).__name__}"
    if isinstance(exc, TimeoutError):
        return "TLS: no handshake within the deadline"
    return f"connection: {type(exc).__name__}"


class StorageSCP:
    """Accepts the storage SOP classes and transfer syntaxes the ingest validator accepts."""

    def __init__(
        self,
        inbox: InboxWriter,
        *,
        ae_title: str,
        sop_classes: Iterable[str],
        transfer_syntaxes: Iterable[str],
    ) -> None:
        self.inbox = inbox
        # Process-wide, and this process is the gateway: every C-STORE is received to a file.
        _config.STORE_RECV_CHUNKED_DATASET = True
        self.ae = AE(ae_title=ae_title)
        syntaxes = list(transfer_syntaxes)
        for uid in sorted(sop_classes):
            self.ae.add_supported_context(uid, syntaxes)
        self.ae.add_supported_context(Verification)
        self.server: Any = None

    def start(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext,
        revocations: Revocations | None = None,
    ) -> int:
        """Listen in background threads; returns the bound port."""
        server = self.ae.make_server(
            (host, port),
            ssl_context=context,
            evt_handlers=[(evt.EVT_C_STORE, self.on_store)],
            server_class=TlsAssociationServer,
        )
        assert isinstance(server, TlsAssociationServer)
        server.revocations = revocations
        threading.Thread(target=server.serve_forever, name="dimse-accept", daemon=True).start()
        self.server = server
        return int(server.server_address[1])

    def stop_accepting(self) -> None:
        """Close the listening socket; running associations go on."""
        if self.server is not None:
            self.server.shutdown()

    def drain(self, deadline: float) -> int:
        """Wait until the running associations end or ``deadline`` (``time.monotonic()``) passes,
        then abort the rest (their unanswered C-STOREs are resent by the modality). Returns how
        many were aborted."""
        if self.server is None:
            return 0
        while self.server.active_associations and time.monotonic() < deadline:
            time.sleep(0.1)
        running = list(self.server.active_associations)
        for assoc in running:
            assoc.abort()
        return len(running)

    def on_store(self, event: Any) -> int:
        uid = loggable(str(event.request.AffectedSOPInstanceUID))
        try:
            sender = self._sender(event)
        except (OSError, ValueError, AttributeError):
            log.warning(
                "store refused: no verified client certificate",
                extra={"channel": "dimse", "sop_instance_uid": uid},
            )
            return CANNOT_UNDERSTAND
        try:
            with event.dataset_path.open("rb") as received:
                landed = self.inbox.put(received, sender)
        except Exception as exc:  # noqa: BLE001 - any failure to land durably must not be Success
            log.error(
                "store failed: inbox write failed",
                extra={"channel": "dimse", "sop_instance_uid": uid, "reason": type(exc).__name__},
            )
            return OUT_OF_RESOURCES
        log.info(
            "stored",
            extra={
                "channel": "dimse",
                "sop_instance_uid": uid,
                "key": landed.key,
                "sha256": landed.sha256,
                "size": landed.size,
                "client_fingerprint": sender.fingerprint,
                # Sender-chosen: logged only when it is a valid AE title (see _sender).
                **({"calling_ae": sender.calling_ae} if sender.calling_ae else {}),
            },
        )
        return SUCCESS

    @staticmethod
    def _sender(event: Any) -> Sender:
        sock = event.assoc.dul.socket.socket
        der = sock.getpeercert(binary_form=True)
        if not der:
            raise ValueError("no client certificate")
        peer = sock.getpeercert() or {}
        serial = str(peer.get("serialNumber", ""))
        return Sender(
            channel="dimse",
            subject=subject_text(peer),
            fingerprint=fingerprint(der),
            serial=serial,
            calling_ae=loggable_ae_title(event.assoc.requestor.ae_title),
        )
