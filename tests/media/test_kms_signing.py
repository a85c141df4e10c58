"""Signing through KMS: digests signed by the KMS key, a certification request signed through KMS,
and the kit's CA certifying the KMS key (issue #9). moto stands in for KMS with one named shim
(tests/media/moto_kms.py)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pydicom
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from moto import mock_aws
from pydicom.data import get_testdata_file

from lambdas.dicom_signature import VALID, sign_bytes, verify_signatures
from lambdas.kms_signing import KmsSigner, KmsSigningError
from pacs_kit.cli import main
from pacs_kit.pki import PkiError, _name, init_ca, issue, kms_csr, sign_csr
from tests.media.moto_kms import digest_signing

REGION = "us-east-1"
KEY_SPECS = ("RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384")


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("kms", region_name=REGION)


def signing_key(kms: Any, spec: str) -> str:
    metadata = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=spec)["KeyMetadata"]
    return str(metadata["KeyId"])


def kms_public_key(kms: Any, key_id: str) -> Any:
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])


def verify_prehashed(public_key: Any, signature: bytes, digest: bytes, algorithm: Any) -> None:
    """``cryptography``'s verdict on a signature of a precomputed digest."""
    prehashed = utils.Prehashed(algorithm)
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, digest, padding.PKCS1v15(), prehashed)
    else:
        public_key.verify(signature, digest, ec.ECDSA(prehashed))


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    init_ca(tmp_path / "ca")
    return tmp_path / "ca"


def test_moto_still_rehashes_a_digest(kms: Any) -> None:
    # The gap behind the shim: if this fails, moto signs digests right and the shim can go.
    key_id = signing_key(kms, "ECC_NIST_P256")
    digest = hashlib.sha256(b"stream").digest()
    signature = kms.sign(
        KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
    )["Signature"]
    with pytest.raises(InvalidSignature):
        verify_prehashed(kms_public_key(kms, key_id), signature, digest, hashes.SHA256())


@pytest.mark.parametrize("spec", KEY_SPECS)
def test_a_kms_signer_signs_the_digest_it_is_given(kms: Any, ca: Path, spec: str) -> None:
    key_id = signing_key(kms, spec)
    with digest_signing():
        csr = kms_csr(kms, key_id, _name("kms signer"))
        certificate = x509.load_pem_x509_certificate(
            sign_csr(ca, csr, ca / "signer.pem").certificate.read_bytes()
        )
        signer = KmsSigner(kms, key_id, certificate)
        algorithm = hashes.SHA384() if spec == "ECC_NIST_P384" else hashes.SHA256()
        digest = hashlib.new(algorithm.name, b"a large DICOM byte stream").digest()
        signature = signer.sign_digest(digest, algorithm)
    verify_prehashed(certificate.public_key(), signature, digest, algorithm)  # raises if wrong


def test_a_certificate_of_another_key_is_refused(kms: Any, ca: Path, tmp_path: Path) -> None:
    other = issue(ca, "someone else", "signer", tmp_path)
    certificate = x509.load_pem_x509_certificate(other.certificate.read_bytes())
    with pytest.raises(KmsSigningError) as refused:
        KmsSigner(kms, signing_key(kms, "ECC_NIST_P256"), certificate)
    assert refused.value.code == "key-certificate-mismatch"


def test_a_p256_key_does_not_sign_a_sha384_digest(kms: Any, ca: Path) -> None:
    key_id = signing_key(kms, "ECC_NIST_P256")
    with digest_signing():
        csr = kms_csr(kms, key_id, _name("kms signer"))
    certificate = x509.load_pem_x509_certificate(
        sign_csr(ca, csr, ca / "signer.pem").certificate.read_bytes()
    )
    with pytest.raises(KmsSigningError) as refused:
        KmsSigner(kms, key_id, certificate).sign_digest(b"\0" * 48, hashes.SHA384())
    assert refused.value.code == "unsupported-hash"


@pytest.mark.parametrize("spec", KEY_SPECS)
def test_the_kms_request_verifies_with_openssl(kms: Any, spec: str, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "openssl not found (apt package openssl)"
    key_id = signing_key(kms, spec)
    with digest_signing():
        csr = kms_csr(kms, key_id, _name("kms signer"))
    path = tmp_path / "request.pem"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    checked = subprocess.run(
        [openssl, "req", "-in", str(path), "-verify", "-noout"], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert csr.public_key().public_bytes(*spki) == kms_public_key(kms, key_id).public_bytes(*spki)


def test_the_ca_certifies_the_kms_key_as_a_signer(kms: Any, ca: Path) -> None:
    key_id = signing_key(kms, "RSA_2048")
    with digest_signing():
        csr = kms_csr(kms, key_id, _name("radiology signer"))
    issued = sign_csr(ca, csr, ca / "signer.pem")
    certificate = x509.load_pem_x509_certificate(issued.certificate.read_bytes())
    ca_certificate = x509.load_pem_x509_certificate((ca / "ca.pem").read_bytes())
    certificate.verify_directly_issued_by(ca_certificate)
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    assert certificate.subject == csr.subject


def test_a_request_whose_signature_fails_is_not_certified(kms: Any, ca: Path) -> None:
    key_id = signing_key(kms, "ECC_NIST_P256")
    # Without the shim moto signs the hash of the digest: the request's signature is wrong.
    with pytest.raises(PkiError, match="does not verify"):
        kms_csr(kms, key_id, _name("kms signer"))


def test_pki_csr_and_sign_csr_commands(kms: Any, ca: Path, tmp_path: Path) -> None:
    key_id = signing_key(kms, "ECC_NIST_P256")
    request, certificate = tmp_path / "signer.csr", tmp_path / "signer.pem"
    with digest_signing():
        args = ["pki", "csr", "--kms-key-id", key_id, "--name", "signer", "--out", str(request)]
        assert main([*args, "--region", REGION]) == 0
    args = ["pki", "sign-csr", "--ca", str(ca), "--csr", str(request), "--out", str(certificate)]
    assert main(args) == 0
    issued = x509.load_pem_x509_certificate(certificate.read_bytes())
    assert KmsSigner(kms, key_id, issued).certificate == issued
    assert main(["pki", "sign-csr", "--ca", str(ca), "--csr", str(tmp_path), "--out", "x"]) == 1


@pytest.mark.parametrize("spec", ("RSA_2048", "ECC_NIST_P256"))
def test_dcmsign_accepts_a_kms_signed_dicom_file(
    kms: Any, ca: Path, tmp_path: Path, spec: str
) -> None:
    dcmsign = shutil.which("dcmsign")
    assert dcmsign, "dcmsign not found: `make tools` installs dcmtk"
    key_id = signing_key(kms, spec)
    with digest_signing():
        csr = kms_csr(kms, key_id, _name("kms signer"))
        certificate = x509.load_pem_x509_certificate(
            sign_csr(ca, csr, ca / "signer.pem").certificate.read_bytes()
        )
        signed = sign_bytes(
            Path(str(get_testdata_file("CT_small.dcm"))).read_bytes(),
            KmsSigner(kms, key_id, certificate),
        )
    path = tmp_path / "signed.dcm"
    path.write_bytes(signed)
    checked = subprocess.run(
        [dcmsign, "--verify", "+cf", str(ca / "ca.pem"), str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (checked.stdout + checked.stderr).count("Signature Verification : OK") == 1
    trusted = [x509.load_pem_x509_certificate((ca / "ca.pem").read_bytes())]
    [report] = verify_signatures(pydicom.dcmread(path), trusted=trusted)
    assert report.verdict == VALID, report
