"""Live fixtures on 127.0.0.1: a moto S3 server as the inbox, a CA, and real gateway processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from moto.server import ThreadedMotoServer

from pacs_kit import pki

REGION = "us-east-1"
INBOX = "pacs-live-inbox"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=INBOX)
    client.put_bucket_versioning(Bucket=INBOX, VersioningConfiguration={"Status": "Enabled"})
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def s3(s3_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass(frozen=True)
class Pki:
    root: Path
    ca: Path
    server_cert: Path
    server_key: Path
    crl: Path
    clients: dict[str, pki.Issued]  # good, foreign, expired, revoked


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("live-pki")
    ca_dir, foreign_dir = root / "ca", root / "foreign"
    pki.init_ca(ca_dir)
    pki.init_ca(foreign_dir, common_name="someone else's CA")
    server = pki.issue(ca_dir, "gateway", "server", ca_dir, sans=["127.0.0.1", "localhost"])
    long_ago = datetime.now(UTC) - timedelta(days=200)
    clients = {
        "good": pki.issue(ca_dir, "modality", "client", ca_dir),
        "foreign": pki.issue(foreign_dir, "intruder", "client", foreign_dir),
        "expired": pki.issue(ca_dir, "retired", "client", ca_dir, not_before=long_ago, days=30),
        "revoked": pki.issue(ca_dir, "stolen", "client", ca_dir),
    }
    crl = pki.crl(ca_dir, [clients["revoked"].serial], root / "revoked.crl")
    return Pki(root, ca_dir / "ca.pem", server.certificate, server.key, crl, clients)


@dataclass
class Gateway:
    process: subprocess.Popen[str]
    dimse_port: int
    http_port: int
    lines: list[str] = field(default_factory=list)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=20)
        self.lines.extend(out.splitlines())
        return self.process.returncode


def _wait_listening(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"gateway exited early: {out}\n{err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gateway did not start listening")


@pytest.fixture(scope="session")
def start_gateway(s3_endpoint: str, certs: Pki) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(
        bucket: str = INBOX,
        *,
        from_environment: bool = False,
        extra: Sequence[str] = (),
        crl: Path | None = None,
    ) -> Gateway:
        dimse, http = free_port(), free_port()
        material = {
            "tls-cert": certs.server_cert,
            "tls-key": certs.server_key,
            "client-ca": certs.ca,
            "client-crl": crl or certs.crl,
        }
        env = {**os.environ, **CREDENTIALS}
        if from_environment:
            # The container's way (infra/components/edge.py): PEM text in variables, python -m.
            entry = [sys.executable, "-m", "gateway", "gateway"]
            tls = []
            for option, path in material.items():
                variable = "PACS_GATEWAY_" + option.upper().replace("-", "_")
                env[variable] = path.read_text()
                tls += [f"--{option}-env", variable]
        else:
            entry = [sys.executable, "-m", "pacs_kit.cli", "gateway"]
            tls = [f"--{o}" if o != "client-crl" else "--crl" for o in material]
            tls = [x for pair in zip(tls, map(str, material.values()), strict=True) for x in pair]
        command = [
            *entry, "--host", "127.0.0.1",
            "--dimse-port", str(dimse), "--http-port", str(http), *tls,
            "--inbox-bucket", bucket, "--endpoint-url", s3_endpoint, *extra,
        ]  # fmt: skip
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        _wait_listening(process, dimse)
        _wait_listening(process, http)
        gateway = Gateway(process, dimse, http)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        if gateway.process.poll() is None:
            gateway.process.kill()


@pytest.fixture(scope="session")
def gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    return start_gateway()


@pytest.fixture(scope="session")
def storescu() -> str:
    path = shutil.which("storescu")
    if path is None:
        pytest.fail("dcmtk's storescu is missing: `make test` installs it (apt-get install dcmtk)")
    return path


def stale_crl(certs: Pki, path: Path) -> Path:
    """A CRL of the test CA revoking the "revoked" client, ten days past its next update."""
    ca_cert = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    ca_key = load_pem_private_key((certs.root / "ca" / "ca.key").read_bytes(), None)
    now = datetime.now(UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - timedelta(days=40))
        .next_update(now - timedelta(days=10))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(certs.clients["revoked"].serial)
            .revocation_date(now - timedelta(days=40))
            .build()
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    path.write_bytes(crl.public_bytes(Encoding.PEM))
    return path


def alb_headers(certs: Pki) -> dict[str, str]:
    """What the ALB adds in mTLS verify mode for the "good" client (the leaf is URL-encoded PEM)."""
    good = certs.clients["good"]
    cert = x509.load_pem_x509_certificate(good.certificate.read_bytes())
    return {
        "X-Amzn-Mtls-Clientcert-Subject": cert.subject.rfc4514_string(),
        "X-Amzn-Mtls-Clientcert-Serial-Number": format(cert.serial_number, "X"),
        "X-Amzn-Mtls-Clientcert-Issuer": cert.issuer.rfc4514_string(),
        "X-Amzn-Mtls-Clientcert-Leaf": urllib.parse.quote(good.certificate.read_text()),
    }
