"""``pacs-kit sign`` and ``pacs-kit verify-signature``: contracts, exit codes, interop (#9)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from moto import mock_aws
from pydicom.data import get_testdata_file

from pacs_kit.cli import main
from pacs_kit.pki import Issued, _name, init_ca, issue, kms_csr, sign_csr
from tests.media.moto_kms import digest_signing


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root / "ca")
    init_ca(root / "other")
    return {
        "ca": root / "ca" / "ca.pem",
        "ca_dir": root / "ca",
        "signer": issue(root / "ca", "radiology signer", "signer", root / "signers"),
        "stranger": issue(root / "other", "stranger", "signer", root / "strangers"),
    }


@pytest.fixture
def ct(tmp_path: Path) -> Path:
    path = tmp_path / "ct.dcm"
    shutil.copyfile(str(get_testdata_file("CT_small.dcm")), path)
    return path


def sign(signer: Issued, source: Path, target: Path) -> int:
    key = ["--key", str(signer.key), "--cert", str(signer.certificate)]
    return main(["sign", *key, str(source), str(target)])


def test_a_signed_file_is_valid_for_its_ca_and_for_dcmsign(
    pki: dict[str, Any], ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "signed.dcm"
    assert sign(pki["signer"], ct, out) == 0
    assert f"signed {ct} -> {out}" in capsys.readouterr().out
    dcmsign = shutil.which("dcmsign")
    assert dcmsign, "dcmsign not found: `make tools` installs dcmtk"
    checked = subprocess.run(
        [dcmsign, "--verify", "+cf", str(pki["ca"]), str(out)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (checked.stdout + checked.stderr).count("Signature Verification : OK") == 1
    assert main(["verify-signature", "--ca", str(pki["ca"]), str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{out}  signer=") and "verdict=valid" in line
    assert "CN=radiology signer" in line and "mac=SHA256" in line and "time=" in line
    assert list(tmp_path.glob(".sign.*")) == [], "a temporary file was left behind"


def test_without_a_trusted_ca_nothing_is_valid(
    pki: dict[str, Any], ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "signed.dcm"
    assert sign(pki["stranger"], ct, out) == 0
    capsys.readouterr()
    assert main(["verify-signature", str(out)]) == 1
    assert "verdict=untrusted" in capsys.readouterr().out
    assert main(["verify-signature", "--ca", str(pki["ca"]), str(out)]) == 1  # another CA


def test_every_file_needs_a_valid_signature(
    pki: dict[str, Any], ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "signed.dcm"
    assert sign(pki["signer"], ct, out) == 0
    capsys.readouterr()
    assert main(["verify-signature", "--ca", str(pki["ca"]), str(out), str(ct)]) == 1
    assert f"{ct}  unsigned" in capsys.readouterr().out


def test_a_file_altered_after_signing_is_invalid(
    pki: dict[str, Any], ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "signed.dcm"
    assert sign(pki["signer"], ct, out) == 0
    data = bytearray(out.read_bytes())
    data[-2000] ^= 0x01  # a bit of the pixel data
    out.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify-signature", "--ca", str(pki["ca"]), str(out)]) == 1
    assert "verdict=invalid" in capsys.readouterr().out


def test_json_reports_each_file_and_signature(
    pki: dict[str, Any], ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "signed.dcm"
    assert sign(pki["signer"], ct, out) == 0
    capsys.readouterr()
    assert main(["verify-signature", "--json", "--ca", str(pki["ca"]), str(out), str(ct)]) == 1
    signed, unsigned = json.loads(capsys.readouterr().out)
    assert signed["state"] == "signed" and signed["valid"] is True
    [report] = signed["signatures"]
    assert report["verdict"] == "valid" and report["signer"].startswith("CN=radiology signer")
    assert unsigned == {"file": str(ct), "state": "unsigned", "valid": False, "signatures": []}


def test_dcmsign_signatures_are_verified(
    pki: dict[str, Any], ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dcmsign = shutil.which("dcmsign")
    assert dcmsign, "dcmsign not found: `make tools` installs dcmtk"
    signer, out = pki["signer"], tmp_path / "dcmtk.dcm"
    made = subprocess.run(
        [dcmsign, "--sign", str(signer.key), str(signer.certificate), "+m2", str(ct), str(out)],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert main(["verify-signature", "--ca", str(pki["ca"]), str(out)]) == 0
    assert "verdict=valid" in capsys.readouterr().out


def test_usage_errors_exit_2(pki: dict[str, Any], ct: Path, tmp_path: Path) -> None:
    signer, stranger = pki["signer"], pki["stranger"]
    mismatched = ["sign", "--key", str(signer.key), "--cert", str(stranger.certificate)]
    assert main([*mismatched, str(ct), str(tmp_path / "x.dcm")]) == 2
    assert sign(signer, ct, ct) == 2, "signing a file onto itself"
    missing = ["sign", "--key", str(tmp_path / "none.key"), "--cert", str(signer.certificate)]
    assert main([*missing, str(ct), str(tmp_path / "x.dcm")]) == 2
    assert main(["verify-signature", "--ca", str(tmp_path / "none.pem"), str(ct)]) == 2
    assert not (tmp_path / "x.dcm").exists()


def test_a_file_that_is_not_dicom_is_not_signed(pki: dict[str, Any], tmp_path: Path) -> None:
    text = tmp_path / "notes.dcm"
    text.write_text("not a DICOM file")
    assert sign(pki["signer"], text, tmp_path / "x.dcm") == 1
    assert not (tmp_path / "x.dcm").exists()


def test_sign_with_a_kms_key(
    pki: dict[str, Any], ct: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws(), digest_signing():
        kms = boto3.client("kms", region_name="us-east-1")
        key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"][
            "KeyId"
        ]
        csr = kms_csr(kms, key_id, _name("kms signer"))
        cert = sign_csr(pki["ca_dir"], csr, tmp_path / "kms.pem").certificate
        out = tmp_path / "kms-signed.dcm"
        args = ["sign", "--kms-key-id", key_id, "--cert", str(cert), str(ct), str(out)]
        assert main(args) == 0
    assert main(["verify-signature", "--ca", str(pki["ca"]), str(out)]) == 0
    assert x509.load_pem_x509_certificate(cert.read_bytes()).subject == _name("kms signer")
