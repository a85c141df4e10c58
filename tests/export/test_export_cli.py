"""``pacs-kit export``: outputs, manifest, de-identification, exit codes, atomicity."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from lambdas import export_package as pkg
from pacs_kit import export as export_cli
from tests.certificates import identity, write
from tests.export.conftest import Party, Pki, export, usage_error


def decrypt(pki: Pki, member: Path) -> bytes:
    key = pki.recipient.key
    assert isinstance(key, rsa.RSAPrivateKey)
    return pkcs7.pkcs7_decrypt_der(member.read_bytes(), pki.recipient.cert, key, [])


def test_export_writes_members_manifest_and_signature_only(
    pki: Pki, inputs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pkg"
    assert export(pki, out, inputs, signer=pki.rsa_signer) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "1.p7m",
        "2.p7m",
        "manifest.json",
        "manifest.json.p7s",
    ]
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"packaged  {inputs[0]} -> {out / '1.p7m'}",
        f"packaged  {inputs[1]} -> {out / '2.p7m'}",
    ]
    assert not list(tmp_path.glob(".pkg.*")), "a temporary directory remained"


def test_manifest_lists_digests_uids_recipient_and_creator(
    pki: Pki, inputs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "pkg"
    assert export(pki, out, inputs, signer=pki.rsa_signer) == 0
    raw = (out / "manifest.json").read_bytes()
    doc = json.loads(raw)
    assert raw == (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    assert doc["format"] == pkg.FORMAT and doc["version"] == 1
    assert doc["creator"]["name"] == "cloud-pacs-kit" and doc["creator"]["version"]
    assert doc["created"].endswith("Z")
    assert doc["recipient"]["sha256"] == pkg.fingerprint(pki.recipient.cert)
    assert doc["recipient"]["serial"] == format(pki.recipient.cert.serial_number, "x")
    assert doc["recipient"]["subject"] == "CN=test recipient"
    for n, (member, source) in enumerate(zip(doc["members"], inputs, strict=True), start=1):
        data = source.read_bytes()
        ds = pydicom.dcmread(source)
        assert member == {
            "file": f"{n}.p7m",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "sop_class_uid": ds.SOPClassUID,
            "sop_instance_uid": ds.SOPInstanceUID,
            "study_instance_uid": ds.StudyInstanceUID,
            "series_instance_uid": ds.SeriesInstanceUID,
            "transfer_syntax_uid": ds.file_meta.TransferSyntaxUID,
            "deidentified": False,
        }
        assert decrypt(pki, out / member["file"]) == data


def test_deid_packages_deidentified_members(
    pki: Pki, inputs: list[Path], tmp_path: Path, key_file: Path
) -> None:
    out = tmp_path / "pkg"
    code = export(pki, out, inputs, "--deid", "--key-file", key_file, signer=pki.ec_signer)
    assert code == 0
    doc = json.loads((out / "manifest.json").read_bytes())
    for member, source in zip(doc["members"], inputs, strict=True):
        original = pydicom.dcmread(source)
        data = decrypt(pki, out / member["file"])
        assert str(original.PatientName).encode() not in data, member["file"]
        ds = pydicom.dcmread(io.BytesIO(data))
        assert member["deidentified"] is True
        assert member["sop_instance_uid"] == ds.SOPInstanceUID != original.SOPInstanceUID
        assert member["study_instance_uid"] == ds.StudyInstanceUID != original.StudyInstanceUID
        assert member["sha256"] == hashlib.sha256(data).hexdigest()


def test_refused_input_is_reported_and_not_packaged(
    pki: Pki, inputs: list[Path], tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    burned = inputs[0].parent / "burned.dcm"
    ds = pydicom.dcmread(inputs[0])
    ds.BurnedInAnnotation = "YES"
    ds.save_as(burned)
    out = tmp_path / "pkg"
    files = [inputs[0], burned, inputs[1]]
    assert export(pki, out, files, "--deid", "--key-file", key_file) == 1
    captured = capsys.readouterr()
    assert f"refused  {burned}  burned-in-annotation" in captured.out.splitlines()
    assert "one-time" in captured.err and "integrity" in captured.err
    doc = json.loads((out / "manifest.json").read_bytes())
    assert [m["file"] for m in doc["members"]] == ["1.p7m", "3.p7m"]
    assert sorted(p.name for p in out.glob("*.p7m")) == ["1.p7m", "3.p7m"]


def test_duplicate_and_non_dicom_inputs_are_refused(
    pki: Pki, inputs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = Path(shutil.copyfile(inputs[0], inputs[0].parent / "copy.dcm"))
    text = inputs[0].parent / "notes.txt"
    text.write_text("not dicom")
    out = tmp_path / "pkg"
    assert export(pki, out, [inputs[0], copy, text]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert f"refused  {copy}  duplicate" in lines
    assert f"refused  {text}  not-part10" in lines


def test_nothing_packaged_writes_no_package(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not dicom")
    out = tmp_path / "out" / "pkg"
    assert export(pki, out, [text]) == 1
    assert not out.exists()
    assert not list(out.parent.iterdir()), "a temporary directory remained"


def test_failure_mid_way_leaves_no_half_written_package(
    pki: Pki, inputs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    honest = pkg.envelope

    def failing(data: bytes, recipient: object) -> bytes:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C after the first member was written
        return honest(data, recipient)  # type: ignore[arg-type]

    monkeypatch.setattr(pkg, "envelope", failing)
    parent = tmp_path / "exports"
    out = parent / "pkg"
    with pytest.raises(KeyboardInterrupt):
        export(pki, out, inputs)
    assert not out.exists()
    assert not list(parent.iterdir()), "a temporary directory remained"


def test_failing_signature_leaves_an_existing_empty_dir_empty(
    pki: Pki, inputs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pkg, "sign_detached", broken)
    out = tmp_path / "pkg"
    out.mkdir()
    with pytest.raises(OSError):
        export(pki, out, inputs)
    assert out.is_dir() and not list(out.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "pkg"]


def test_exports_into_an_existing_empty_directory(
    pki: Pki, inputs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "pkg"
    out.mkdir()
    assert export(pki, out, inputs) == 0
    assert (out / "manifest.json.p7s").is_file()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--option", "retain-uids"], "--option needs --deid"),
        (["--deid"], "--deid needs --key-file"),
        (["--key-file", "KEY"], "--key-file needs --deid"),
        (["--deid", "--key-file", "KEY", "--option", "no-such-option"], "no-such-option"),
        (["--sign-key", "SIGNKEY"], "go together"),
        (["--sign-key", "OTHERKEY", "--sign-cert", "SIGNCERT"], "is not the key of"),
    ],
)
def test_usage_errors_exit_2(
    pki: Pki,
    inputs: list[Path],
    tmp_path: Path,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    names = {
        "KEY": str(key_file),
        "SIGNKEY": str(pki.rsa_signer.key_pem),
        "OTHERKEY": str(pki.ec_signer.key_pem),
        "SIGNCERT": str(pki.rsa_signer.cert_pem),
    }
    out = tmp_path / "pkg"
    assert export(pki, out, inputs, *[names.get(e, e) for e in extra]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_recipient_must_be_rsa(
    pki: Pki, inputs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export(pki, tmp_path / "pkg", inputs, recipient=pki.ec_recipient) == 2
    assert "not RSA" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("made", "needle"),
    [
        ({"algorithm": "rsa", "rsa_bits": 1024, "usage": "recipient"}, "too short"),
        ({"algorithm": "rsa", "usage": "signer"}, "keyEncipherment"),
    ],
    ids=["rsa-1024", "signing-only"],
)
def test_recipient_key_must_be_strong_and_for_encryption(
    pki: Pki,
    inputs: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    made: dict[str, Any],
    needle: str,
) -> None:
    weak = Party(write(identity("weak", issuer=pki.ca.identity, **made), tmp_path, "weak"))
    assert export(pki, tmp_path / "pkg", inputs, recipient=weak) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "pkg").exists()


@pytest.mark.parametrize("content", [None, b"not a certificate"])
def test_missing_or_invalid_recipient_certificate(
    pki: Pki, inputs: list[Path], tmp_path: Path, content: bytes | None
) -> None:
    cert = tmp_path / "recipient.pem"
    if content is not None:
        cert.write_bytes(content)
    argv = ["export", "--recipient", str(cert), "--out", str(tmp_path / "pkg"), str(inputs[0])]
    assert usage_error(argv) == 2


def test_out_not_empty_or_an_input_directory(pki: Pki, inputs: list[Path], tmp_path: Path) -> None:
    assert export(pki, inputs[0].parent, inputs) == 2
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    assert export(pki, full, inputs) == 2
    assert sorted(p.name for p in full.iterdir()) == ["x"]


def test_cli_contract_requires_recipient_and_out(inputs: list[Path]) -> None:
    assert usage_error(["export", "--out", "x", str(inputs[0])]) == 2
    assert export_cli.EXIT_USAGE == 2
