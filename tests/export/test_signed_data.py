"""The manifest signature the kit encodes itself (lambdas/der.py, export_package.sign_detached):
its CMS structure, and one signing path for a key in memory and a KMS key (RSA and EC), each
checked by openssl and by verify_detached."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from moto import mock_aws

from lambdas import der
from lambdas import export_package as pkg
from lambdas.dicom_signature import LocalSigner
from lambdas.kms_signing import KmsSigner
from pacs_kit.pki import _name, init_ca, kms_csr, sign_csr
from tests.export.conftest import Pki, openssl
from tests.media.moto_kms import digest_signing

MANIFEST = b'{"members": []}\n'
WHEN = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def _signer_info(p7s: bytes) -> list[der.Reader]:
    signed_data = der.Reader(p7s).children()[1].children()[0]
    return signed_data.children()[-1].children()[0].children()


def test_the_signed_attributes_are_a_sorted_der_set_with_the_signing_time(pki: Pki) -> None:
    p7s = pkg.sign_detached(MANIFEST, LocalSigner(pki.ec_signer.key, pki.ec_signer.cert), now=WHEN)
    info = _signer_info(p7s)
    assert info[0].integer() == 1, "SignerInfo version 1: IssuerAndSerialNumber"
    issuer, serial = info[1].children()
    assert issuer.raw == pki.ec_signer.cert.issuer.public_bytes()
    assert serial.integer() == pki.ec_signer.cert.serial_number
    attributes = info[3].expect(der.context(0)).children()
    encodings = [a.raw for a in attributes]
    assert encodings == sorted(encodings), "DER SET OF: encodings in ascending order"
    values = {a.children()[0].oid(): a.children()[1].children()[0] for a in attributes}
    assert values["1.2.840.113549.1.9.3"].oid() == "1.2.840.113549.1.7.1"  # id-data
    assert values["1.2.840.113549.1.9.4"].value == hashlib.sha256(MANIFEST).digest()
    assert values["1.2.840.113549.1.9.5"].value == b"260506070809Z"  # signingTime, UTCTime
    assert info[4].children()[0].oid() == "1.2.840.10045.4.3.2"  # ecdsa-with-SHA256


def test_an_rsa_signer_names_sha256_with_rsa_encryption(pki: Pki) -> None:
    p7s = pkg.sign_detached(MANIFEST, LocalSigner(pki.rsa_signer.key, pki.rsa_signer.cert))
    algorithm = _signer_info(p7s)[4].children()
    assert algorithm[0].oid() == "1.2.840.113549.1.1.11"
    assert algorithm[1].raw == der.null(), "RSA signature algorithms carry NULL parameters"


def test_the_certificate_is_embedded_and_the_content_detached(pki: Pki) -> None:
    p7s = pkg.sign_detached(MANIFEST, LocalSigner(pki.rsa_signer.key, pki.rsa_signer.cert))
    fields = der.Reader(p7s).children()[1].children()[0].children()
    assert fields[0].integer() == 1
    assert len(fields[2].children()) == 1, "encapContentInfo without eContent"
    [embedded] = fields[3].expect(der.context(0)).children()
    assert x509.load_der_x509_certificate(embedded.raw) == pki.rsa_signer.cert


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws(), digest_signing():
        yield boto3.client("kms", region_name="us-east-1")


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256"])
def test_a_kms_signer_signs_the_manifest_as_a_local_key_does(
    kms: Any, tmp_path: Path, spec: str
) -> None:
    key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=spec)["KeyMetadata"]["KeyId"]
    ca = tmp_path / "ca"
    ca_pem = init_ca(ca)
    csr = kms_csr(kms, key_id, _name("kms export signer"))
    cert_path = sign_csr(ca, csr, tmp_path / "signer.pem").certificate
    signer = KmsSigner(kms, key_id, x509.load_pem_x509_certificate(cert_path.read_bytes()))
    p7s = pkg.sign_detached(MANIFEST, signer)
    trusted = x509.load_pem_x509_certificates(ca_pem.read_bytes())
    assert pkg.verify_detached(MANIFEST, p7s, trusted) == signer.certificate
    (tmp_path / "manifest.json").write_bytes(MANIFEST)
    (tmp_path / "manifest.json.p7s").write_bytes(p7s)
    done = openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-content", tmp_path / "manifest.json",
        "-in", tmp_path / "manifest.json.p7s", "-CAfile", ca_pem, "-purpose", "any",
        "-out", "/dev/null",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.parametrize(
    ("value", "encoding"),
    [(0, "020100"), (127, "02017f"), (128, "02020080"), (256, "02020100"), (-1, "0201ff"),
     (-128, "020180"), (-129, "0202ff7f")],
)  # fmt: skip
def test_integers_take_the_fewest_octets(value: int, encoding: str) -> None:
    assert der.integer(value).hex() == encoding
    assert der.Reader(der.integer(value)).integer() == value


def test_long_lengths_and_oids_round_trip() -> None:
    content = bytes(300)
    encoded = der.octet_string(content)
    assert encoded[:4] == bytes([0x04, 0x82, 0x01, 0x2C])
    assert der.Reader(encoded).value == content
    assert der.Reader(der.oid("1.2.840.113549.1.9.16.2.47")).oid() == "1.2.840.113549.1.9.16.2.47"


def test_a_set_of_sorts_and_a_sequence_keeps_order() -> None:
    a, b = der.integer(2), der.integer(1)
    assert der.set_of(a, b) == der.set_of(b, a) == der.tlv(der.SET, b + a)
    assert der.sequence(a, b) == der.tlv(der.SEQUENCE, a + b)


def test_utc_time_refuses_years_it_cannot_hold() -> None:
    with pytest.raises(der.DerError):
        der.utc_time(dt.datetime(2050, 1, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x05\x02\x01", b"\x30\x80", b"\x1f\x01\x00"])
def test_the_reader_refuses_what_is_not_der(data: bytes) -> None:
    with pytest.raises(der.DerError):
        der.Reader(data).children()
