"""Interoperability: OpenSSL opens our members and verifies our manifest signature."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pydicom
import pytest

from tests.export.conftest import Pki, export, openssl


@pytest.fixture
def package(pki: Pki, inputs: list[Path], tmp_path: Path) -> Path:
    out = tmp_path / "pkg"
    assert export(pki, out, inputs, signer=pki.rsa_signer) == 0
    return out


def test_openssl_decrypts_each_member_to_the_exact_input_bytes(
    pki: Pki, inputs: list[Path], package: Path, tmp_path: Path
) -> None:
    for n, source in enumerate(inputs, start=1):
        target = tmp_path / f"{n}.dcm"
        done = openssl(
            "cms", "-decrypt", "-inform", "DER", "-binary", "-in", package / f"{n}.p7m",
            "-inkey", pki.recipient.key_pem, "-recip", pki.recipient.cert_pem, "-out", target,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        assert target.read_bytes() == source.read_bytes(), f"member {n}"


def test_openssl_decrypts_a_deidentified_member_to_the_manifest_digest(
    pki: Pki, inputs: list[Path], tmp_path: Path, key_file: Path
) -> None:
    out = tmp_path / "pkg"
    assert export(pki, out, inputs[:1], "--deid", "--key-file", key_file) == 0
    [member] = json.loads((out / "manifest.json").read_bytes())["members"]
    target = tmp_path / "deid.dcm"
    done = openssl(
        "cms", "-decrypt", "-inform", "DER", "-binary", "-in", out / "1.p7m",
        "-inkey", pki.recipient.key_pem, "-recip", pki.recipient.cert_pem, "-out", target,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    data = target.read_bytes()
    assert hashlib.sha256(data).hexdigest() == member["sha256"]
    assert pydicom.dcmread(target).SOPInstanceUID == member["sop_instance_uid"]
    assert data != inputs[0].read_bytes()


def test_members_use_aes_256_cbc_and_rsa_key_transport(package: Path) -> None:
    done = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", package / "1.p7m")
    assert done.returncode == 0, done.stderr.decode()
    text = done.stdout.decode()
    assert "pkcs7-envelopedData" in text
    assert "aes-256-cbc (2.16.840.1.101.3.4.1.42)" in text
    assert "rsaEncryption" in text


@pytest.mark.parametrize("signer", ["rsa_signer", "ec_signer"])
def test_openssl_verifies_the_manifest_signature_against_the_ca(
    pki: Pki, inputs: list[Path], tmp_path: Path, signer: str
) -> None:
    out = tmp_path / "pkg"
    assert export(pki, out, inputs, signer=getattr(pki, signer)) == 0
    done = verify(out, "-CAfile", pki.ca.cert_pem)
    assert done.returncode == 0, done.stderr.decode()


def test_openssl_rejects_the_signature_after_the_manifest_changed(pki: Pki, package: Path) -> None:
    manifest = package / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"size": ', b'"size": 1'))
    done = verify(package, "-CAfile", pki.ca.cert_pem)
    assert done.returncode != 0, "openssl accepted an altered manifest"


def test_openssl_rejects_a_signer_outside_the_ca(
    pki: Pki, inputs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "pkg"
    assert export(pki, out, inputs, signer=pki.untrusted_signer) == 0
    assert verify(out, "-CAfile", pki.ca.cert_pem).returncode != 0


def test_openssl_verifies_a_one_time_signer_with_noverify(
    pki: Pki, inputs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "pkg"
    assert export(pki, out, inputs) == 0
    done = verify(out, "-noverify")
    assert done.returncode == 0, done.stderr.decode()
    manifest = out / "manifest.json"
    manifest.write_bytes(manifest.read_bytes() + b" ")
    assert verify(out, "-noverify").returncode != 0, "accepted an altered manifest"


def verify(package: Path, *trust: str | Path) -> subprocess.CompletedProcess[bytes]:
    return openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-in", package / "manifest.json.p7s",
        "-content", package / "manifest.json", "-purpose", "any", *trust, "-out", "/dev/null",
    )  # fmt: skip
