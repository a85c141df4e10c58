"""DIMSE Storage SCP on a mutually authenticated TLS socket (pynetdicom).

A C-STORE is answered Success only after the inbox write returned: a failed write answers
"Out of Resources" (0xA700), so the modality keeps the instance and sends it again.

Received data sets go to a temporary file as their fragments arrive (pynetdicom's chunked
receive), never whole into memory, and stream from there to S3: a multi-gigabyte multi-frame
instance costs disk under $TMPDIR, not the task's memory. pynetdicom deletes the file once the
handler has answered.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterable
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from gateway.inbox import InboxWriter, Sender
from gateway.tls import fingerprint, subject_text

log = logging.getLogger("gateway")
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000


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

    def start(self, host: str, port: int, context: ssl.SSLContext) -> int:
        """Listen in background threads; returns the bound port."""
        self.server = self.ae.start_server(
            (host, port),
            block=False,
            ssl_context=context,
            evt_handlers=[(evt.EVT_C_STORE, self.on_store)],
        )
        return int(self.server.server_address[1])

    def stop(self, drain_seconds: float = 0.0) -> int:
        """Stop accepting associations; let running ones finish for up to ``drain_seconds``,
        then abort the rest (their unanswered C-STOREs are resent by the modality). Returns how
        many were aborted."""
        if self.server is None:
            return 0
        self.server.shutdown()
        deadline = time.monotonic() + drain_seconds
        while self.server.active_associations and time.monotonic() < deadline:
            time.sleep(0.1)
        running = list(self.server.active_associations)
        for assoc in running:
            assoc.abort()
        return len(running)

    def on_store(self, event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        try:
            sender = self._sender(event)
        except (OSError, ValueError, AttributeError):
            log.warning("store refused: no verified client certificate", extra={"sop": uid})
            return CANNOT_UNDERSTAND
        try:
            with event.dataset_path.open("rb") as received:
                landed = self.inbox.put(received, sender)
        except Exception as exc:  # noqa: BLE001 - any failure to land durably must not be Success
            log.error(
                "store failed: inbox write failed",
                extra={"sop": uid, "error": type(exc).__name__, "channel": "dimse"},
            )
            return OUT_OF_RESOURCES
        log.info(
            "stored",
            extra={
                "channel": "dimse",
                "sop": uid,
                "key": landed.key,
                "sha256": landed.sha256,
                "size": landed.size,
                "calling_ae": sender.calling_ae,
                "client_fingerprint": sender.fingerprint,
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
            calling_ae=str(event.assoc.requestor.ae_title).strip(),
        )
