"""The sandbox's emulator: a moto server and a local HTTPS SIEM sink, outliving one CLI call.

``python -m pacs_kit.sandbox.server --state-dir DIR`` runs in the foreground: it applies the named
moto shims (``pacs_kit.sandbox.shims``), starts moto's ``ThreadedMotoServer`` on 127.0.0.1 and an
HTTPS "SIEM sink" on 127.0.0.1 (TLS from a CA generated at start into ``DIR/siem-tls/``), then
writes ``DIR/emulator.json``. The sink stores every Firehose HTTP endpoint delivery as
``DIR/siem/<n>.json`` and answers as Firehose expects. SIGTERM/SIGINT stop both servers, remove
``emulator.json`` and exit 0.

The CLI uses the library API: ``start`` spawns that process detached (its output goes to
``DIR/emulator.log``), ``running`` finds it, ``stop`` ends it and checks its ports are closed,
``enforce_iam`` switches moto's IAM enforcement, ``siem_events`` decodes what the sink received.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import fcntl
import gzip
import http.client
import http.server
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from pacs_kit import pki

STATE_FILE = "emulator.json"
LOG_FILE = "emulator.log"
TLS_DIR = "siem-tls"
SIEM_DIR = "siem"
SIEM_PATH = "/siem"
HOST = "127.0.0.1"
# A moto-api page that is cheap to serve: the health check.
HEALTH_PATH = "/moto-api/config"
# moto's IAM enforcement: authorise every request (0 free actions) or none (inf).
_IAM_ON, _IAM_OFF = "0", "inf"
_LOG_TAIL_LINES = 30
_MODULE = "pacs_kit.sandbox.server"

log = logging.getLogger(_MODULE)


class EmulatorError(RuntimeError):
    """The emulator could not be started, reached or stopped; the message says why."""


@dataclass(frozen=True)
class Emulator:
    """A running emulator: its process, moto's endpoint and the SIEM sink's URL and CA."""

    pid: int
    endpoint: str
    siem_url: str
    ca_file: str

    def to_json(self) -> dict[str, Any]:
        """The ``emulator.json`` document."""
        return {
            "pid": self.pid,
            "endpoint": self.endpoint,
            "siemUrl": self.siem_url,
            "caFile": self.ca_file,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Emulator:
        """Read an ``emulator.json`` document (KeyError/TypeError/ValueError if malformed)."""
        return cls(
            pid=int(data["pid"]),
            endpoint=str(data["endpoint"]),
            siem_url=str(data["siemUrl"]),
            ca_file=str(data["caFile"]),
        )

    @property
    def ports(self) -> tuple[int, int]:
        """moto's port and the SIEM sink's port."""
        return _port(self.endpoint), _port(self.siem_url)


def _port(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"no port in {url}")
    return port


# --- the foreground process -------------------------------------------------------------------


@dataclass(frozen=True)
class SinkTls:
    """The SIEM sink's TLS material: the CA its clients trust, and its server certificate."""

    ca_file: Path
    certificate: Path
    key: Path


def make_sink_tls(tls_dir: Path) -> SinkTls:
    """A fresh CA and a server certificate for 127.0.0.1 in ``tls_dir`` (replacing any old ones).

    The CA's key is deleted once the certificate is issued: nothing else is ever signed with it.
    """
    shutil.rmtree(tls_dir, ignore_errors=True)
    ca_file = pki.init_ca(tls_dir, common_name="cloud-pacs-kit sandbox SIEM CA")
    issued = pki.issue(tls_dir, "siem", "server", tls_dir, sans=[HOST])
    (tls_dir / "ca.key").unlink()
    return SinkTls(ca_file, issued.certificate, issued.key)


class _SinkHandler(http.server.BaseHTTPRequestHandler):
    """Firehose's HTTP endpoint contract: store the request, answer its id and a timestamp."""

    server: SiemSink

    def do_POST(self) -> None:
        if not self.path.startswith(SIEM_PATH):
            self._answer(404, {"error": f"not found: {self.path}"})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            request = json.loads(body)
            request_id = str(request["requestId"])
        except (ValueError, KeyError, TypeError):
            self._answer(400, {"error": "not a Firehose delivery request"})
            return
        stored = self.server.store(body)
        log.info("SIEM sink: delivery %s stored as %s", request_id, stored.name)
        self._answer(200, {"requestId": request_id, "timestamp": int(time.time() * 1000)})

    def do_GET(self) -> None:
        """The health check: proves the sink answers over TLS."""
        self._answer(200, {"status": "ok"})

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        answer = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("SIEM sink: %s", format % args)


class SiemSink(http.server.ThreadingHTTPServer):
    """An HTTPS server on loopback storing every delivery as ``<n>.json`` in ``out``.

    The TLS handshake runs in each request's thread, so a silent client cannot block the others.
    """

    daemon_threads = True

    def __init__(self, out: Path, tls: SinkTls) -> None:
        super().__init__((HOST, 0), _SinkHandler)
        self.out = out
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(tls.certificate, tls.key)
        self._lock = threading.Lock()
        self._count = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(30)
        with self._context.wrap_socket(request, server_side=True) as tls:
            super().finish_request(tls, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        log.warning("SIEM sink: request from %s failed: %r", client_address, exc)

    def store(self, body: bytes) -> Path:
        """Write one delivery atomically; numbering starts at 1."""
        with self._lock:
            self._count += 1
            path = self.out / f"{self._count}.json"
        _write_atomically(path, body)
        return path


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def serve(state_dir: Path) -> int:
    """Run the emulator in the foreground until SIGTERM/SIGINT; returns the exit status."""
    # Imported here: moto is heavy, and the CLI's other paths never need it.
    from moto.server import ThreadedMotoServer

    from pacs_kit.sandbox import shims

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    state_dir.mkdir(parents=True, exist_ok=True)
    state_file = state_dir / STATE_FILE
    shims.apply_all(setattr)
    # AWS-managed policies (AWSLambdaVPCAccessExecutionRole, the AWS Backup service policies)
    # exist in every account; moto loads them only when asked, before its IAM backend starts.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    for name, reason in shims.SHIMS:
        log.info("moto shim %s: %s", name, reason)

    tls = make_sink_tls(state_dir / TLS_DIR)
    # moto's Firehose HTTP delivery posts with `requests`, which reads this at each request: the
    # emulator's process trusts the sink's CA (and only it; the sandbox never posts elsewhere).
    os.environ["REQUESTS_CA_BUNDLE"] = str(tls.ca_file)
    siem_dir = state_dir / SIEM_DIR
    shutil.rmtree(siem_dir, ignore_errors=True)  # a fresh emulator: earlier deliveries are gone
    siem_dir.mkdir()
    sink = SiemSink(siem_dir, tls)
    sink_thread = threading.Thread(target=sink.serve_forever, name="siem-sink", daemon=True)
    sink_thread.start()
    moto = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    emulator: Emulator | None = None
    try:
        moto.start()
        host, port = moto.get_host_and_port()
        emulator = Emulator(
            pid=os.getpid(),
            endpoint=f"http://{host}:{port}",
            siem_url=f"https://{HOST}:{sink.port}{SIEM_PATH}",
            ca_file=str(tls.ca_file),
        )
        _write_atomically(state_file, json.dumps(emulator.to_json(), indent=2).encode() + b"\n")
        log.info("emulator ready: %s", json.dumps(emulator.to_json()))
        while not stop.wait(0.5):
            pass
    finally:
        if moto._server is not None:
            moto.stop()
            moto._server.server_close()  # stop() leaves the listening socket open
        sink.shutdown()
        sink.server_close()
        sink_thread.join(timeout=5)
        if emulator is not None and _read_state(state_file) == emulator:
            state_file.unlink(missing_ok=True)
        log.info("emulator stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m pacs_kit.sandbox.server --state-dir DIR``."""
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True, metavar="DIR")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serve(args.state_dir)


# --- the library API --------------------------------------------------------------------------

# Emulators this process started: kept so they are reaped (no zombie) and never garbage-collected
# while running (Popen warns when it is).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _read_state(state_file: Path) -> Emulator | None:
    try:
        return Emulator.from_json(json.loads(state_file.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # damaged or half-written: treated as absent


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if this process started it (so it is not a zombie)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to signal
    return True


def _is_emulator(pid: int) -> bool:
    """Whether ``pid`` runs this module (guards against a reused pid in a stale state file)."""
    proc = Path("/proc")
    if not (proc / "self").exists():
        return True  # no procfs: trust the pid
    try:
        cmdline = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return _MODULE.encode() in cmdline


def _answers(url: str, *, ca_file: str | None = None, timeout: float = 2.0) -> bool:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return int(response.status) < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except (OSError, http.client.HTTPException):
        return False


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _log_tail(state_dir: Path) -> str:
    try:
        lines = (state_dir / LOG_FILE).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty log)"


def running(state_dir: Path) -> Emulator | None:
    """The emulator of ``state_dir``: its state file is present, its pid alive, moto answers."""
    emulator = _read_state(state_dir / STATE_FILE)
    if emulator is None or not _alive(emulator.pid):
        return None
    if not _answers(emulator.endpoint + HEALTH_PATH):
        return None
    return emulator


def start(state_dir: Path, timeout: float = 30) -> Emulator:
    """Start the emulator for ``state_dir`` in the background (or return the one running).

    Waits for ``emulator.json`` and for both servers to answer; on failure, kills the process and
    raises EmulatorError quoting the tail of ``emulator.log``.
    """
    state_dir = state_dir.resolve()
    existing = running(state_dir)
    if existing is not None:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    state_file = state_dir / STATE_FILE
    state_file.unlink(missing_ok=True)  # stale: its process is gone or does not answer
    with (state_dir / LOG_FILE).open("wb") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", _MODULE, "--state-dir", str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[child.pid] = child
    try:
        emulator = _wait_ready(child, state_dir, timeout)
    except BaseException:  # not ready, or interrupted (Ctrl-C, SIGTERM): no orphan emulator
        _kill(child.pid)
        child.wait(timeout=5)
        del _children[child.pid]
        state_file.unlink(missing_ok=True)
        raise
    return emulator


def _wait_ready(child: subprocess.Popen[bytes], state_dir: Path, timeout: float) -> Emulator:
    """The emulator ``child`` announces once both of its servers answer."""
    state_file = state_dir / STATE_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise EmulatorError(
                f"the emulator exited with status {child.returncode}; "
                f"{state_dir / LOG_FILE} ends with:\n{_log_tail(state_dir)}"
            )
        emulator = _read_state(state_file)
        if (
            emulator is not None
            and emulator.pid == child.pid
            and _answers(emulator.endpoint + HEALTH_PATH)
            and _answers(emulator.siem_url, ca_file=emulator.ca_file)
        ):
            return emulator
        time.sleep(0.1)
    raise EmulatorError(
        f"the emulator was not ready within {timeout:g} s; "
        f"{state_dir / LOG_FILE} ends with:\n{_log_tail(state_dir)}"
    )


def _kill(pid: int) -> None:
    """SIGKILL the emulator's process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop(state_dir: Path, timeout: float = 10) -> bool:
    """Stop the emulator of ``state_dir``; False if none was running (idempotent).

    SIGTERM, then SIGKILL if it has not exited within ``timeout``; then checks that its ports are
    closed (EmulatorError if one still answers).
    """
    state_file = state_dir.resolve() / STATE_FILE
    emulator = _read_state(state_file)
    if emulator is None:
        return False
    stopped = False
    if _alive(emulator.pid) and _is_emulator(emulator.pid):
        os.kill(emulator.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(emulator.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(emulator.pid):
            log.warning("emulator %d ignored SIGTERM for %g s: killing it", emulator.pid, timeout)
            _kill(emulator.pid)
            deadline = time.monotonic() + 5
            while _alive(emulator.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        stopped = True
    if _alive(emulator.pid) and _is_emulator(emulator.pid):
        raise EmulatorError(f"the emulator (pid {emulator.pid}) did not exit")
    state_file.unlink(missing_ok=True)
    still_open = [p for p in emulator.ports if _port_open(p)]
    if stopped and still_open:
        raise EmulatorError(f"ports {still_open} still answer after the emulator stopped")
    return stopped


def enforce_iam(endpoint: str, on: bool) -> None:
    """Switch moto's IAM enforcement (identity policies of users and assumed roles) on or off."""
    request = urllib.request.Request(
        endpoint.rstrip("/") + "/moto-api/reset-auth",
        data=(_IAM_ON if on else _IAM_OFF).encode("ascii"),
        # Not urllib's default form type: moto reads the raw body, which Flask empties for forms.
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise EmulatorError(f"could not switch IAM enforcement at {endpoint}: {exc}") from exc
    if answer.get("status") != "ok":
        raise EmulatorError(f"moto refused to switch IAM enforcement: {answer}")


@contextlib.contextmanager
def exclusive(state_dir: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """One sandbox command at a time on ``state_dir`` (``on_wait`` is called if it must wait).

    Two ``up`` on one directory would start two emulators of which ``down`` stops one, and
    :func:`iam_paused` switches enforcement off for the whole emulator: a ``status`` pausing it
    while an ``ingest`` runs its handlers would let them act unenforced. The lock is the
    directory itself (``flock`` on its descriptor), so ``down`` can remove the directory while
    holding it; a command that waited then finds no sandbox and says so.
    """
    if not state_dir.is_dir():  # no sandbox here: the command will say so
        yield
        return
    descriptor = os.open(state_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


@contextlib.contextmanager
def iam_paused(endpoint: str) -> Iterator[None]:
    """IAM enforcement off for the block: where an AWS service, not a caller, acts.

    The sandbox's administrator stands in for AWS services that assume a role by its service
    trust (Lambda for a function's execution role, ECS for the gateway's task role); with
    enforcement on, moto judges that AssumeRole against the trust policy with the administrator
    as the principal, and refuses it. moto 5.2.5 also answers every Lambda API request with
    SignatureDoesNotMatch under enforcement. The data plane (what the roles then do) runs with
    enforcement back on.
    """
    enforce_iam(endpoint, False)
    try:
        yield
    finally:
        enforce_iam(endpoint, True)


def _messages(data: bytes) -> list[str]:
    """The log messages in one delivered record, whichever processors the stream ran."""
    if data.startswith(b"\x1f\x8b"):  # no Decompression processor: CloudWatch Logs' gzip
        data = gzip.decompress(data)
    text = data.decode("utf-8")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("logEvents"), list):
        return [str(e["message"]) for e in document["logEvents"]]  # Decompression only
    if document is not None:
        return [text]  # one record, not a subscription envelope
    return [line for line in text.splitlines() if line]  # message extraction: one a line


def siem_events(state_dir: Path) -> list[dict[str, Any]]:
    """Every log event the SIEM sink received, oldest first.

    Each delivery's records carry base64 data: CloudWatch Logs' subscription envelope after the
    Decompression processor (the http stream), newline-separated messages after message
    extraction, or a raw record. A message that is a JSON object is returned parsed (the gateway's
    structured audit events); any other message as ``{"message": text}``.
    """
    siem_dir = state_dir / SIEM_DIR
    if not siem_dir.is_dir():
        return []
    deliveries = sorted(
        (p for p in siem_dir.glob("*.json") if p.stem.isdigit()), key=lambda p: int(p.stem)
    )
    events: list[dict[str, Any]] = []
    for path in deliveries:
        for record in json.loads(path.read_bytes()).get("records", []):
            try:
                data = base64.b64decode(record["data"], validate=True)
            except (KeyError, binascii.Error) as exc:
                raise EmulatorError(f"{path}: a record without base64 data ({exc})") from exc
            for message in _messages(data):
                try:
                    parsed = json.loads(message)
                except ValueError:
                    parsed = None
                events.append(parsed if isinstance(parsed, dict) else {"message": message})
    return events


if __name__ == "__main__":
    sys.exit(main())
