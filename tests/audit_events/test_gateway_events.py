"""What the gateway logs, against docs/audit-events.md: the real process over DIMSE-TLS and
STOW-RS (every line of its output), plus the classes in-process for the events a live client
cannot provoke on demand (the spool sweeper, a C-STORE without a readable peer certificate,
an oversize STOW-RS part under a small limit)."""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pynetdicom import _config

from gateway.app import JsonFormatter
from gateway.dimse import CANNOT_UNDERSTAND, StorageSCP
from gateway.inbox import InboxWriter
from gateway.spool import Spool
from gateway.stow import StowServer
from lambdas.audit_events import GATEWAY
from lambdas.dicom_checks import DEFAULT_TRANSFER_SYNTAXES, default_sop_classes
from tests.audit_events.capture import assert_all_emitted, assert_conform, assert_no_phi, parse
from tests.gateway.conftest import INBOX, Gateway, Pki, alb_headers, stale_crl
from tests.lambdas.factory import PATIENT_NAME, ct, ct_bytes, encode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # PHI where a UID belongs
IMPLICIT_VR_LE = "1.2.840.10008.1.2"


def _storescu(storescu: str, certs: Pki, gateway: Gateway, client: str, path: Path) -> None:
    issued = certs.clients[client]
    subprocess.run(
        [storescu, "+tls", str(issued.key), str(issued.certificate), "+cf", str(certs.ca),
         "-aet", "CT_SCANNER_1", "-aec", "CLOUDPACS", "127.0.0.1", str(gateway.dimse_port),
         str(path)],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip


def _stow(port: int, headers: dict[str, str], *parts: bytes, body: bytes | None = None) -> int:
    boundary = uuid.uuid4().hex
    head = b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
    payload = b"".join(head + p + b"\r\n" for p in parts) + b"--" + boundary.encode() + b"--\r\n"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(
        "POST",
        "/studies",
        body=payload if body is None else body.replace(b"{B}", boundary.encode()),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            **headers,
        },
    )
    status = connection.getresponse().status
    connection.close()
    return status


def _cut_off_mid_body(port: int, headers: dict[str, str]) -> None:
    """Start a STOW-RS body, then reset the connection once the gateway is reading it."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        lines = [
            "POST /studies HTTP/1.1",
            "Host: 127.0.0.1",
            'Content-Type: multipart/related; type="application/dicom"; boundary=b',
            "Content-Length: 1000000",
            "Expect: 100-continue",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert b"100 Continue" in sock.recv(1024), "the gateway did not start reading the body"
        sock.sendall(b"--b\r\nContent-Type: application/dicom\r\n\r\nDICM")
        # SO_LINGER 0: close() sends RST, so the gateway's read fails instead of seeing EOF.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _reset_before_the_request(port: int) -> None:
    """Connect and reset without sending anything (a load balancer's aborted probe)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.fixture(scope="module")
def live_lines(
    start_gateway: Callable[..., Gateway],
    certs: Pki,
    storescu: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[str]:
    """Every line two real gateway processes print, through every path a client can take."""
    tmp = tmp_path_factory.mktemp("audit-gateway")
    instance = tmp / "phi.dcm"  # the factory's patient: name, ID, birth date
    instance.write_bytes(ct_bytes())
    alb = alb_headers(certs)
    # A sender UID that is no UID (patient data where a UID belongs) may never be logged.
    bad_uid = encode(ct(SOPInstanceUID=PATIENT_NAME), enforce=False)

    # Out-of-date CRL and development mode: both warnings, then every path that stores.
    lenient = start_gateway(
        crl=stale_crl(certs, tmp / "stale.crl"), extra=["--allow-missing-mtls-headers"]
    )
    _storescu(storescu, certs, lenient, "good", instance)
    _storescu(storescu, certs, lenient, "revoked", instance)
    _storescu(storescu, certs, lenient, "foreign", instance)
    assert _stow(lenient.http_port, alb, ct_bytes(), bad_uid) == 200
    assert _stow(lenient.http_port, {}, ct_bytes()) == 200  # no headers: development mode
    broken_body = b"--{B}\r\nContent-Type: application/dicom\r\n\r\nDICM"
    assert _stow(lenient.http_port, alb, body=broken_body) == 400
    _cut_off_mid_body(lenient.http_port, alb)
    _reset_before_the_request(lenient.http_port)
    assert lenient.stop() == 0

    # An inbox that does not exist: every write fails; and a production-mode refusal.
    failing = start_gateway("no-such-bucket")
    _storescu(storescu, certs, failing, "good", instance)
    assert _stow(failing.http_port, alb, ct_bytes(), bad_uid) == 409
    assert _stow(failing.http_port, {}, ct_bytes()) == 403
    assert failing.stop() == 0
    return lenient.lines + failing.lines


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def in_process_lines(s3: Any, certs: Pki, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The gateway's classes in this process, logging through the gateway's own formatter."""
    logger = logging.getLogger("gateway")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        # The sweeper finds a transfer cut off long ago.
        spool = Spool(tmp_path_factory.mktemp("audit-spool"))
        (spool.path / "tmpabandoned.dcm").write_bytes(b"partial")
        spool.sweep(now=time.time() + 3600)
        spool.close()

        # A C-STORE on an association whose peer certificate cannot be read (mutual TLS makes
        # this unreachable from outside; the guard exists in case that ever changes).
        inbox = InboxWriter(s3, INBOX)
        chunked = _config.STORE_RECV_CHUNKED_DATASET  # the SCP sets it process-wide
        try:
            scp = StorageSCP(
                inbox, ae_title="CLOUDPACS", sop_classes=[], transfer_syntaxes=[IMPLICIT_VR_LE]
            )
            no_socket = SimpleNamespace(
                request=SimpleNamespace(AffectedSOPInstanceUID=PATIENT_NAME),
                assoc=SimpleNamespace(dul=SimpleNamespace(socket=None)),
            )
            assert scp.on_store(no_socket) == CANNOT_UNDERSTAND
        finally:
            _config.STORE_RECV_CHUNKED_DATASET = chunked

        # A STOW-RS part over the limit (5 GiB in production; 1 KiB here).
        stow = StowServer(
            inbox,
            sop_classes=default_sop_classes(),
            transfer_syntaxes=DEFAULT_TRANSFER_SYNTAXES,
            max_instance_bytes=1024,
        )
        port = stow.start("127.0.0.1", 0)
        try:
            assert _stow(port, alb_headers(certs), ct_bytes()) == 409
        finally:
            stow.stop_accepting()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return handler.lines


@pytest.fixture(scope="module")
def gateway_lines(live_lines: list[str], in_process_lines: list[str]) -> list[str]:
    return live_lines + in_process_lines


def test_every_line_the_gateway_prints_is_a_json_event(live_lines: list[str]) -> None:
    # Its standard output is its CloudWatch log stream: a stray line (a traceback, a library's
    # own log) would reach the SIEM outside the schema.
    parse(live_lines)


def test_every_event_is_documented_with_its_fields_and_types(gateway_lines: list[str]) -> None:
    assert_conform(GATEWAY, parse(gateway_lines))


def test_every_documented_event_is_logged_by_a_scenario(gateway_lines: list[str]) -> None:
    assert_all_emitted(GATEWAY, parse(gateway_lines))


def test_no_event_carries_patient_data(gateway_lines: list[str]) -> None:
    assert_no_phi(gateway_lines)


def test_a_sender_value_that_is_no_uid_is_logged_as_such(gateway_lines: list[str]) -> None:
    stored = [e for e in parse(gateway_lines) if "sop_instance_uid" in e]
    assert {"dimse", "stow"} <= {e["channel"] for e in stored}
    assert any(e["sop_instance_uid"] == "(not a valid UID)" for e in stored)


def test_stored_events_name_the_sender(gateway_lines: list[str]) -> None:
    stored = [e for e in parse(gateway_lines) if e["message"] == "stored"]
    dimse = [e for e in stored if e["channel"] == "dimse"]
    assert dimse and all(e["calling_ae"] == "CT_SCANNER_1" for e in dimse)
    assert any(e["channel"] == "stow" and e["client_fingerprint"] for e in stored)
