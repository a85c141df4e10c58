"""moto fixtures for SIEM delivery: a real HTTP server on 127.0.0.1 and the stack's stream.

The moto shims (each a verified moto 5.2.5 gap) live in ``pacs_kit.sandbox.shims``, where the
sandbox's emulator applies them too; each function's docstring says the gap, what AWS does and what
the shim changes. The fixtures below apply them, by name, for one test:
``subscriptions_reach_every_destination``, ``binary_records_post_as_base64``,
``failed_deliveries_go_to_the_backup``, ``processors_run_before_delivery``.

What these tests do NOT prove end to end (moto's HTTP delivery is simpler than Firehose's):
- moto ignores the endpoint's HTTP status: a 4xx/5xx answer counts as delivered, so Firehose's
  retry-then-backup on a non-2xx response is not exercised (only a refused connection is);
- moto never sends the ``X-Amz-Firehose-Access-Key`` header (nor reads the Secrets Manager
  secret), so that the endpoint receives the SIEM's key is not proven; the stack's declaration of
  the secret is checked in tests/infra/test_audit.py instead.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pacs_kit.sandbox import shims

# Re-exported for the tests, which check the shims' error record and processors directly.
from pacs_kit.sandbox.shims import UNREACHABLE_ERROR_CODE as UNREACHABLE_ERROR_CODE
from pacs_kit.sandbox.shims import apply_processors as apply_processors


@pytest.fixture
def subscriptions_reach_every_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    shims.subscriptions_reach_every_destination(monkeypatch.setattr)


@pytest.fixture
def binary_records_post_as_base64(monkeypatch: pytest.MonkeyPatch) -> None:
    shims.binary_records_post_as_base64(monkeypatch.setattr)


@pytest.fixture
def failed_deliveries_go_to_the_backup(monkeypatch: pytest.MonkeyPatch) -> None:
    shims.failed_deliveries_go_to_the_backup(monkeypatch.setattr)


@pytest.fixture
def processors_run_before_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    shims.processors_run_before_delivery(monkeypatch.setattr)


@dataclass
class Received:
    """One request the SIEM endpoint received."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class SiemEndpoint:
    """A real HTTP server on the loopback interface that records what Firehose POSTs."""

    url: str
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def siem_endpoint() -> Iterator[SiemEndpoint]:
    endpoint = SiemEndpoint(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            endpoint.received.append(Received(self.path, dict(self.headers.items()), body))
            request_id = json.loads(body or b"{}").get("requestId", "")
            # Firehose's HTTP endpoint contract: 200 with the request id and a timestamp.
            answer = json.dumps({"requestId": request_id, "timestamp": 0}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads what was received, not the access log."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/siem/ingest"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/siem/ingest"
