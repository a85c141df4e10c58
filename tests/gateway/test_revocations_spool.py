"""The gateway's CRL check and its scratch spool, without the network."""

from __future__ import annotations

import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gateway.inbox import InboxWriter
from gateway.spool import Spool
from gateway.stow import StowServer
from gateway.tls import Revocations
from tests.infra import certificates


def leaf_of(issuer: certificates.Authority, serial: int) -> bytes:
    """A certificate with ``serial`` issued in ``issuer``'s name (the CRL check looks at the
    issuer and serial only; the handshake verified the signature)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(certificates.NOW - certificates.DAY)
        .not_valid_after(certificates.NOW + certificates.DAY)
        .sign(issuer.key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def test_a_crl_revokes_its_serials_of_its_own_issuer_only(tmp_path: Path) -> None:
    ca, other = certificates.authority("client CA"), certificates.authority("other CA")
    bundle = Path(certificates.write(tmp_path / "ca.pem", ca.pem, other.pem))
    crl = Path(certificates.write(tmp_path / "crl.pem", certificates.crl(ca, (4711,))))
    revocations = Revocations.load(crl, bundle)
    assert revocations.revokes(leaf_of(ca, 4711))
    assert not revocations.revokes(leaf_of(ca, 4712))
    assert not revocations.revokes(leaf_of(other, 4711)), "another CA's serial 4711 is not revoked"


def test_an_out_of_date_crl_still_revokes_and_says_it_is_out_of_date(tmp_path: Path) -> None:
    ca = certificates.authority("client CA")
    bundle = Path(certificates.write(tmp_path / "ca.pem", ca.pem))
    stale = certificates.crl(ca, (4711,), next_update=certificates.NOW - certificates.DAY)
    revocations = Revocations.load(Path(certificates.write(tmp_path / "crl.pem", stale)), bundle)
    assert revocations.out_of_date()
    assert revocations.revokes(leaf_of(ca, 4711))


def test_a_crl_not_signed_by_a_trusted_ca_is_refused(tmp_path: Path) -> None:
    ca = certificates.authority("client CA")
    impostor = certificates.Authority(ca.certificate, certificates.authority("x").key)
    bundle = Path(certificates.write(tmp_path / "ca.pem", ca.pem))
    forged = Path(certificates.write(tmp_path / "crl.pem", certificates.crl(impostor)))
    with pytest.raises(ValueError, match="not signed by a CA"):
        Revocations.load(forged, bundle)


@pytest.fixture
def spool(tmp_path: Path) -> Any:
    s = Spool(tmp_path, stale_seconds=600)
    yield s
    s.close()


def test_temporary_files_of_the_process_land_in_the_spool(spool: Spool) -> None:
    with tempfile.NamedTemporaryFile(suffix=".dcm") as handle:
        assert Path(handle.name).parent == spool.path
    assert spool.path.stat().st_mode & 0o077 == 0, "the spool holds PHI: owner only"


def test_the_sweeper_removes_abandoned_transfers_only(spool: Spool) -> None:
    abandoned, running, other = (spool.path / n for n in ("tmpa.dcm", "tmpb.dcm", "notes.txt"))
    for path in (abandoned, running, other):
        path.write_bytes(b"DICM")
    hour_ago = time.time() - 3600
    os.utime(abandoned, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    assert spool.sweep() == 1
    assert not abandoned.exists() and running.exists() and other.exists()


def test_closing_the_spool_removes_it_and_restores_tempfile(tmp_path: Path) -> None:
    before = tempfile.gettempdir()
    s = Spool(tmp_path)
    (s.path / "tmpx.dcm").write_bytes(b"x")
    s.close()
    assert not s.path.exists()
    assert tempfile.gettempdir() == before


def test_health_fails_when_scratch_space_runs_low(tmp_path: Path) -> None:
    roomy = Spool(tmp_path, min_free_bytes=1)
    cramped = Spool(tmp_path, min_free_bytes=1 << 62)
    try:
        assert roomy.healthy() and not cramped.healthy()
        server = StowServer(
            InboxWriter(None, "unused"),
            sop_classes=(),
            transfer_syntaxes=(),
            healthy=cramped.healthy,
        )
        port = server.start("127.0.0.1", 0)
        try:
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10)
            assert answer.value.code == 503
        finally:
            server.stop_accepting()
    finally:
        cramped.close()
        roomy.close()
