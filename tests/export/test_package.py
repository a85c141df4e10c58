"""The reusable core: envelopes, manifests and the detached-signature reader."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from lambdas import export_package as pkg
from lambdas.dicom_signature import LocalSigner
from tests.export.conftest import Pki

MANIFEST = b'{"members": []}\n'


def test_envelope_round_trip(pki: Pki) -> None:
    der = pkg.envelope(b"\0DICM" * 1000, pki.recipient.cert)
    key = pki.recipient.key
    assert isinstance(key, rsa.RSAPrivateKey)
    assert pkg.open_envelope(der, key, pki.recipient.cert) == b"\0DICM" * 1000


def test_envelope_refuses_an_ec_recipient(pki: Pki) -> None:
    with pytest.raises(pkg.PackageError) as caught:
        pkg.envelope(b"x", pki.ec_recipient.cert)
    assert caught.value.code == "recipient-not-rsa"


def test_open_envelope_with_another_key(pki: Pki) -> None:
    der = pkg.envelope(b"x", pki.recipient.cert)
    other = pki.other_recipient.key
    assert isinstance(other, rsa.RSAPrivateKey)
    with pytest.raises(pkg.PackageError) as caught:
        pkg.open_envelope(der, other, pki.recipient.cert)
    assert caught.value.code == "key-mismatch"
    with pytest.raises(pkg.PackageError) as caught:
        pkg.open_envelope(der, other, pki.other_recipient.cert)
    assert caught.value.code == "decrypt-failed"


@pytest.mark.parametrize("signer", ["rsa_signer", "ec_signer"])
def test_sign_and_verify(pki: Pki, signer: str) -> None:
    party = getattr(pki, signer)
    p7s = pkg.sign_detached(MANIFEST, LocalSigner(party.key, party.cert))
    assert pkg.verify_detached(MANIFEST, p7s, [pki.ca.cert]) == party.cert
    assert pkg.verify_detached(MANIFEST, p7s) == party.cert


def test_verify_refuses_other_content(pki: Pki) -> None:
    p7s = pkg.sign_detached(MANIFEST, LocalSigner(pki.rsa_signer.key, pki.rsa_signer.cert))
    with pytest.raises(pkg.PackageError) as caught:
        pkg.verify_detached(MANIFEST + b" ", p7s)
    assert caught.value.code == "signature-invalid"


def test_verify_refuses_a_forged_signature_value(pki: Pki) -> None:
    p7s = bytearray(
        pkg.sign_detached(MANIFEST, LocalSigner(pki.rsa_signer.key, pki.rsa_signer.cert))
    )
    p7s[-10] ^= 0x01  # the RSA signature is the SignerInfo's last field
    with pytest.raises(pkg.PackageError) as caught:
        pkg.verify_detached(MANIFEST, bytes(p7s))
    assert caught.value.code == "signature-invalid"


@pytest.mark.parametrize("cut", [0, 1, 10, 200])
def test_verify_refuses_truncated_der(pki: Pki, cut: int) -> None:
    p7s = pkg.sign_detached(MANIFEST, LocalSigner(pki.ec_signer.key, pki.ec_signer.cert))
    with pytest.raises(pkg.PackageError) as caught:
        pkg.verify_detached(MANIFEST, p7s[:cut])
    assert caught.value.code == "signature-malformed"


def test_verify_refuses_an_envelope_as_signature(pki: Pki) -> None:
    with pytest.raises(pkg.PackageError) as caught:
        pkg.verify_detached(MANIFEST, pkg.envelope(MANIFEST, pki.recipient.cert))
    assert caught.value.code == "signature-malformed"


def test_one_time_signer_is_self_signed_ec(pki: Pki) -> None:
    signer = pkg.one_time_signer()
    cert = signer.certificate
    assert cert.subject == cert.issuer
    assert pkg.ONE_TIME_SIGNER_CN in cert.subject.rfc4514_string()
    p7s = pkg.sign_detached(MANIFEST, signer)
    assert pkg.verify_detached(MANIFEST, p7s, [cert]) == cert
    with pytest.raises(pkg.PackageError) as caught:
        pkg.verify_detached(MANIFEST, p7s, [pki.ca.cert])
    assert caught.value.code == "signer-untrusted"


def test_manifest_round_trip(pki: Pki) -> None:
    uids = {
        "sop_class_uid": "1.2",
        "sop_instance_uid": "1.2.3",
        "study_instance_uid": "1.2.4",
        "series_instance_uid": "1.2.5",
        "transfer_syntax_uid": "1.2.840.10008.1.2.1",
    }
    member = pkg.Member.of("1.p7m", b"data", uids, deidentified=False)
    assert member.sha256 == hashlib.sha256(b"data").hexdigest()
    created = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    raw = pkg.build_manifest(
        [member], pki.recipient.cert, creator={"name": "k", "version": "1"}, created=created
    )
    assert raw.endswith(b"}\n")
    parsed = pkg.parse_manifest(raw)
    assert parsed.members == (member,)
    assert parsed.recipient == pki.recipient.cert
    assert parsed.created == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("bad", [b"", b"[]", b'{"format": "x", "version": 1}'])
def test_parse_manifest_refuses_other_documents(bad: bytes) -> None:
    with pytest.raises(pkg.PackageError) as caught:
        pkg.parse_manifest(bad)
    assert caught.value.code == "manifest-invalid"
