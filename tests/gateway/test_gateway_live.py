"""The gateway for real on 127.0.0.1: dcmtk's storescu over mutual TLS, STOW-RS, refusals."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pydicom
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from lambdas.dicom_checks import ValidationPolicy, inspect_stream
from tests.gateway.conftest import INBOX, Gateway, Pki, alb_headers, stale_crl
from tests.lambdas.factory import big_endian_ct, ct_bytes, encode

CT_SMALL = Path(str(get_testdata_file("CT_small.dcm")))


def inbox_keys(s3: Any, bucket: str = INBOX) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def store(storescu: str, certs: Pki, gateway: Gateway, client: str | None, *files: Path) -> Any:
    tls = []
    if client is not None:
        issued = certs.clients[client]
        tls = ["+tls", str(issued.key), str(issued.certificate), "+cf", str(certs.ca)]
    return subprocess.run(
        [storescu, "-v", *tls, "-aet", "CT_SCANNER_1", "-aec", "CLOUDPACS", "127.0.0.1",
         str(gateway.dimse_port), *map(str, files)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def test_storescu_stores_over_mutual_tls_into_the_inbox(
    storescu: str, certs: Pki, gateway: Gateway, s3: Any
) -> None:
    before = inbox_keys(s3)
    result = store(storescu, certs, gateway, "good", CT_SMALL)
    assert result.returncode == 0, result.stdout + result.stderr
    [key] = inbox_keys(s3) - before
    assert key.startswith("incoming/") and key.endswith(".dcm")
    head = s3.head_object(Bucket=INBOX, Key=key)
    meta = head["Metadata"]
    assert head["ServerSideEncryption"] == "aws:kms"
    assert meta["channel"] == "dimse" and meta["calling-ae"] == "CT_SCANNER_1"
    client_der = x509.load_pem_x509_certificate(
        certs.clients["good"].certificate.read_bytes()
    ).public_bytes(Encoding.DER)
    assert meta["client-fingerprint"] == hashlib.sha256(client_der).hexdigest()
    assert "commonName=modality" in meta["client-subject"]
    body = s3.get_object(Bucket=INBOX, Key=key)["Body"].read()
    assert meta["sha256"] == hashlib.sha256(body).hexdigest()
    landed = inspect_stream([body], ValidationPolicy())
    assert landed.accepted, landed.reasons  # what the gateway lands, ingest accepts
    assert landed.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"


@pytest.mark.parametrize("client", ["foreign", "expired", "revoked", None])
def test_untrusted_clients_are_refused_and_write_nothing(
    storescu: str, certs: Pki, gateway: Gateway, s3: Any, client: str | None
) -> None:
    before = inbox_keys(s3)
    result = store(storescu, certs, gateway, client, CT_SMALL)
    assert result.returncode != 0, f"{client or 'plain TCP'} was accepted"
    assert inbox_keys(s3) == before


def test_a_silent_connection_delays_nobody(storescu: str, certs: Pki, gateway: Gateway) -> None:
    """Connections that never start TLS (a port scan, a stuck client) must not block the
    listener: the handshake runs in each connection's own thread, with a deadline."""
    silent = [socket.create_connection(("127.0.0.1", gateway.dimse_port)) for _ in range(3)]
    try:
        started = time.monotonic()
        result = store(storescu, certs, gateway, "good", CT_SMALL)
        assert result.returncode == 0, result.stdout + result.stderr
        assert time.monotonic() - started < 30, "the store waited for the silent connections"
    finally:
        for connection in silent:
            connection.close()


def test_an_out_of_date_crl_keeps_revoking_without_locking_everyone_out(
    storescu: str, certs: Pki, start_gateway: Any, tmp_path: Path
) -> None:
    """OpenSSL's own CRL check would refuse every client once the CRL is past its next update."""
    crl = stale_crl(certs, tmp_path / "stale.crl")
    lenient = start_gateway(crl=crl)
    assert store(storescu, certs, lenient, "good", CT_SMALL).returncode == 0
    assert store(storescu, certs, lenient, "revoked", CT_SMALL).returncode != 0
    assert lenient.stop() == 0
    assert any("past its next update" in line for line in lenient.lines)
    assert any("client certificate revoked" in line for line in lenient.lines)


def _handshake(certs: Pki, port: int, maximum: ssl.TLSVersion) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = maximum
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_verify_locations(cafile=str(certs.ca))
    good = certs.clients["good"]
    context.load_cert_chain(str(good.certificate), str(good.key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.do_handshake()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")  # old TLS on purpose
def test_tls_older_than_1_2_is_refused(certs: Pki, gateway: Gateway) -> None:
    _handshake(certs, gateway.dimse_port, ssl.TLSVersion.TLSv1_2)  # the same client, TLS 1.2: OK
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(certs, gateway.dimse_port, ssl.TLSVersion.TLSv1_1)
    # The server's protocol_version alert, not a client unable to speak TLS 1.1 at all.
    assert "PROTOCOL_VERSION" in str(refused.value).upper(), refused.value


def test_a_failed_inbox_write_fails_the_c_store(
    storescu: str, certs: Pki, start_gateway: Any
) -> None:
    broken = start_gateway("no-such-bucket")
    result = store(storescu, certs, broken, "good", CT_SMALL)
    assert result.returncode != 0, "a C-STORE that was not stored must not succeed"
    output = result.stdout + result.stderr
    assert "Refused: OutOfResources" in output, output


def _multipart(boundary: str, parts: list[bytes]) -> bytes:
    delimiter = b"--" + boundary.encode()
    head = delimiter + b"\r\nContent-Type: application/dicom\r\n\r\n"
    return b"".join(head + p + b"\r\n" for p in parts) + delimiter + b"--\r\n"


def _stow(
    gateway: Gateway,
    parts: list[bytes],
    headers: dict[str, str],
    *,
    path: str = "/studies",
    body: bytes | None = None,
    chunk: int | None = None,
) -> tuple[int, Any]:
    """POST a STOW-RS request; ``chunk`` sends it with chunked transfer coding."""
    boundary = uuid.uuid4().hex
    payload = (
        _multipart(boundary, parts) if body is None else body.replace(b"{B}", boundary.encode())
    )
    connection = http.client.HTTPConnection("127.0.0.1", gateway.http_port, timeout=60)
    connection.putrequest("POST", path)
    for name, value in {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
        **headers,
    }.items():
        connection.putheader(name, value)
    if chunk is None:
        connection.putheader("Content-Length", str(len(payload)))
        connection.endheaders(payload)
    else:
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for i in range(0, len(payload), chunk):
            piece = payload[i : i + chunk]
            connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        connection.send(b"0\r\n\r\n")
    response = connection.getresponse()
    content = response.read()
    connection.close()
    if response.headers.get("Content-Type") == "application/dicom+json":
        return response.status, json.loads(content)
    return response.status, None


def test_stow_rs_stores_two_instances_and_answers_dicom_json(
    certs: Pki, gateway: Gateway, s3: Any
) -> None:
    before = inbox_keys(s3)
    first, second = ct_bytes(), ct_bytes()
    status, response = _stow(gateway, [first, second], alb_headers(certs))
    assert status == 200
    referenced = response["00081199"]["Value"]
    assert len(referenced) == 2 and "00081198" not in response
    assert {r["00081150"]["Value"][0] for r in referenced} == {"1.2.840.10008.5.1.4.1.1.2"}
    new = inbox_keys(s3) - before
    assert len(new) == 2
    bodies = {s3.get_object(Bucket=INBOX, Key=k)["Body"].read() for k in new}
    assert bodies == {first, second}
    assert {s3.head_object(Bucket=INBOX, Key=k)["Metadata"]["channel"] for k in new} == {"stow"}


def test_stow_rs_reports_an_unreadable_part_as_failed(certs: Pki, gateway: Gateway) -> None:
    status, response = _stow(gateway, [ct_bytes(), b"not dicom"], alb_headers(certs))
    assert status == 202
    assert len(response["00081199"]["Value"]) == 1
    assert response["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]


def test_stow_rs_without_the_albs_client_certificate_headers_is_refused(
    gateway: Gateway, s3: Any
) -> None:
    before = inbox_keys(s3)
    status, _ = _stow(gateway, [ct_bytes()], {})
    assert status == 403
    assert inbox_keys(s3) == before


def test_stow_rs_streams_a_large_chunked_upload_into_the_inbox(
    certs: Pki, gateway: Gateway, s3: Any
) -> None:
    """A 24 MiB multi-frame instance, sent in 1 MiB chunks: spooled to disk, stored unchanged."""
    frames, side = 3, 2048
    big = ct_bytes(
        Rows=side, Columns=side, NumberOfFrames=frames, PixelData=bytes(side * side * 2 * frames)
    )
    before = inbox_keys(s3)
    status, response = _stow(gateway, [big, ct_bytes()], alb_headers(certs), chunk=1 << 20)
    assert status == 200, response
    assert len(response["00081199"]["Value"]) == 2
    new = inbox_keys(s3) - before
    bodies = {s3.get_object(Bucket=INBOX, Key=k)["Body"].read() for k in new}
    assert big in bodies
    for key in new:
        assert s3.head_object(Bucket=INBOX, Key=key, ChecksumMode="ENABLED")["ChecksumSHA256"]


def test_stow_rs_refuses_what_ingest_would_refuse_with_the_standards_reasons(
    certs: Pki, gateway: Gateway, s3: Any
) -> None:
    study = "1.2.826.0.1.3680043.8.498.11"
    unknown_class = "1.2.826.0.1.3680043.8.498.99"
    parts = [
        ct_bytes(SOPClassUID=unknown_class, StudyInstanceUID=study),
        big_endian_ct(),
        ct_bytes(),  # another study than the URL names
    ]
    ds = pydicom.dcmread(io.BytesIO(parts[0]))
    ds.file_meta.MediaStorageSOPClassUID = unknown_class
    parts[0] = encode(ds)
    before = inbox_keys(s3)
    status, response = _stow(gateway, parts, alb_headers(certs), path=f"/studies/{study}")
    assert status == 409 and "00081199" not in response
    reasons = [f["00081197"]["Value"][0] for f in response["00081198"]["Value"]]
    assert reasons == [0x0122, 0xC122, 0x0110]
    assert inbox_keys(s3) == before


def test_a_gateway_given_the_stacks_lists_refuses_the_rest_on_both_channels(
    storescu: str, certs: Pki, start_gateway: Any, s3: Any
) -> None:
    """An MR-only stack (ingestSopClasses): a CT is refused by DIMSE and by STOW-RS alike."""
    mr_only = start_gateway(extra=["--sop-class", "1.2.840.10008.5.1.4.1.1.4"])
    before = inbox_keys(s3)
    result = store(storescu, certs, mr_only, "good", CT_SMALL)
    assert result.returncode != 0, "no presentation context for CT may be accepted"
    assert "presentation context" in (result.stdout + result.stderr).lower(), result.stdout
    status, response = _stow(mr_only, [ct_bytes()], alb_headers(certs))
    assert status == 409
    assert response["00081198"]["Value"][0]["00081197"]["Value"] == [0x0122]
    assert inbox_keys(s3) == before
    assert mr_only.stop() == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        # cut before the closing boundary: the part's end was never seen
        (b"--{B}\r\nContent-Type: application/dicom\r\n\r\nDICM", 400),
        (b"no boundary at all", 400),
    ],
)
def test_stow_rs_refuses_a_broken_body_and_writes_nothing(
    certs: Pki, gateway: Gateway, s3: Any, body: bytes, status: int
) -> None:
    before = inbox_keys(s3)
    assert _stow(gateway, [], alb_headers(certs), body=body)[0] == status
    assert inbox_keys(s3) == before


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        ({"Transfer-Encoding": "gzip"}, 501),  # a transfer coding we do not decode
        ({}, 411),  # neither Content-Length nor chunked
    ],
)
def test_stow_rs_answers_framing_it_cannot_read_with_its_own_status(
    certs: Pki, gateway: Gateway, framing: dict[str, str], status: int
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.http_port, timeout=30)
    connection.putrequest("POST", "/studies", skip_accept_encoding=True)
    headers = {
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=b',
        **alb_headers(certs),
        **framing,
    }
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == status
    assert response.getheader("Connection") == "close"
    connection.close()


def test_stow_rs_accepts_a_multipart_preamble(certs: Pki, gateway: Gateway) -> None:
    instance = ct_bytes()
    body = b"preamble, ignored\r\n" + _multipart("{B}", [instance])
    status, response = _stow(gateway, [], alb_headers(certs), body=body)
    assert status == 200 and len(response["00081199"]["Value"]) == 1


def test_health_endpoint_answers_for_the_target_group(gateway: Gateway) -> None:
    url = f"http://127.0.0.1:{gateway.http_port}/health"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200


def test_sigterm_shuts_down_gracefully(start_gateway: Any) -> None:
    short_lived = start_gateway()
    assert short_lived.stop() == 0
    assert any('"stopped"' in line for line in short_lived.lines)
    assert all("Traceback" not in line for line in short_lived.lines)


def test_sigterm_lets_a_running_association_finish_its_c_stores(
    certs: Pki, start_gateway: Any, s3: Any
) -> None:
    """ECS's SIGTERM: no new associations, but the one in flight stores and is released."""
    draining = start_gateway()
    good = certs.clients["good"]
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.load_cert_chain(str(good.certificate), str(good.key))
    ae = AE(ae_title="CT_SCANNER_2")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        "127.0.0.1", draining.dimse_port, ae_title="CLOUDPACS", tls_args=(context, "127.0.0.1")
    )
    assert assoc.is_established
    before = inbox_keys(s3)
    draining.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the listening socket closes first
        try:
            socket.create_connection(("127.0.0.1", draining.dimse_port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the gateway still accepts connections after SIGTERM")
    status = assoc.send_c_store(pydicom.dcmread(io.BytesIO(ct_bytes())))
    assert status.Status == 0x0000
    assoc.release()
    assert draining.process.wait(timeout=30) == 0
    assert len(inbox_keys(s3) - before) == 1


def test_the_containers_way_tls_material_from_environment_variables(
    storescu: str, certs: Pki, start_gateway: Any, s3: Any
) -> None:
    """`python -m gateway gateway --tls-cert-env ...` exactly as the ECS task runs it."""
    container = start_gateway(from_environment=True)
    before = inbox_keys(s3)
    assert store(storescu, certs, container, "good", CT_SMALL).returncode == 0
    assert len(inbox_keys(s3) - before) == 1
    assert store(storescu, certs, container, "revoked", CT_SMALL).returncode != 0
    assert container.stop() == 0
