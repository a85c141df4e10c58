"""``pacs-kit open``: verified round trips and refusals of altered packages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from pacs_kit.cli import main
from tests.certificates import identity, write
from tests.export.conftest import Party, Pki, export, open_package, usage_error


@pytest.fixture
def package(pki: Pki, inputs: list[Path], tmp_path: Path) -> Path:
    out = tmp_path / "pkg"
    assert export(pki, out, inputs, signer=pki.rsa_signer) == 0
    return out


def outputs(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_open_round_trips_to_identical_bytes(
    pki: Pki, inputs: list[Path], package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "opened"
    assert open_package(package, pki.recipient.key_pem, out, ca=pki.ca.cert_pem) == 0
    for source in inputs:
        uid = pydicom.dcmread(source).SOPInstanceUID
        assert (out / f"{uid}.dcm").read_bytes() == source.read_bytes(), source.name
    assert len(outputs(out)) == len(inputs), "a temporary file remained"
    assert "chains to" in capsys.readouterr().err


def test_open_without_ca_names_the_signer_and_says_unchecked(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert open_package(package, pki.recipient.key_pem, tmp_path / "opened") == 0
    err = capsys.readouterr().err
    assert "CN=test rsa-signer" in err and "not checked against a CA" in err


def test_open_one_time_signed_package(pki: Pki, inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    assert export(pki, out, inputs) == 0
    assert open_package(out, pki.recipient.key_pem, tmp_path / "opened") == 0
    assert len(outputs(tmp_path / "opened")) == 2
    # A one-time signer chains to no CA.
    assert open_package(out, pki.recipient.key_pem, tmp_path / "o2", ca=pki.ca.cert_pem) == 1
    assert outputs(tmp_path / "o2") == []


def test_altered_member_byte_is_refused(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    member = package / "1.p7m"
    data = bytearray(member.read_bytes())
    data[-40] ^= 0x01  # inside the encrypted content: CBC garbles a block
    member.write_bytes(bytes(data))
    out = tmp_path / "opened"
    assert open_package(package, pki.recipient.key_pem, out) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"refused  {member}  ") for line in lines), lines
    assert len(outputs(out)) == 1, "the unaltered member is still opened, the altered one not"


def test_altered_manifest_opens_nothing(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = package / "manifest.json"
    doc = json.loads(manifest.read_bytes())
    doc["members"][0]["size"] += 1
    manifest.write_bytes((json.dumps(doc, sort_keys=True, indent=2) + "\n").encode())
    out = tmp_path / "opened"
    assert open_package(package, pki.recipient.key_pem, out) == 1
    assert f"refused  {package}  signature-invalid" in capsys.readouterr().out
    assert outputs(out) == []


def test_swapped_members_are_refused(pki: Pki, package: Path, tmp_path: Path) -> None:
    one, two = package / "1.p7m", package / "2.p7m"
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b)
    two.write_bytes(a)
    out = tmp_path / "opened"
    assert open_package(package, pki.recipient.key_pem, out) == 1
    assert outputs(out) == []


def test_missing_member_is_refused(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (package / "2.p7m").unlink()
    out = tmp_path / "opened"
    assert open_package(package, pki.recipient.key_pem, out) == 1
    assert f"refused  {package / '2.p7m'}  missing" in capsys.readouterr().out.splitlines()
    assert len(outputs(out)) == 1


def test_extra_member_is_reported(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copyfile(package / "1.p7m", package / "3.p7m")
    assert open_package(package, pki.recipient.key_pem, tmp_path / "opened") == 1
    assert f"refused  {package / '3.p7m'}  not-in-manifest" in capsys.readouterr().out


def test_wrong_key_opens_nothing(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "opened"
    assert open_package(package, pki.other_recipient.key_pem, out) == 2
    assert "not the key of this package's recipient" in capsys.readouterr().err
    assert outputs(out) == []


def test_non_rsa_key_is_a_usage_error(pki: Pki, package: Path, tmp_path: Path) -> None:
    assert open_package(package, pki.ec_signer.key_pem, tmp_path / "opened") == 2


def test_signer_outside_the_ca_opens_nothing(
    pki: Pki, inputs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "pkg"
    assert export(pki, package, inputs, signer=pki.untrusted_signer) == 0
    out = tmp_path / "opened"
    assert open_package(package, pki.recipient.key_pem, out, ca=pki.ca.cert_pem) == 1
    assert f"refused  {package}  signer-untrusted" in capsys.readouterr().out
    assert outputs(out) == []
    assert open_package(package, pki.recipient.key_pem, out, ca=pki.other_ca.cert_pem) == 0


def test_replaced_signature_by_another_signer_over_another_manifest_is_refused(
    pki: Pki, inputs: list[Path], tmp_path: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert export(pki, first, inputs[:1], signer=pki.rsa_signer) == 0
    assert export(pki, second, inputs[1:], signer=pki.rsa_signer) == 0
    shutil.copyfile(second / "manifest.json.p7s", first / "manifest.json.p7s")
    assert open_package(first, pki.recipient.key_pem, tmp_path / "o") == 1
    assert outputs(tmp_path / "o") == []


def test_missing_manifest_is_refused(pki: Pki, package: Path, tmp_path: Path) -> None:
    (package / "manifest.json.p7s").unlink()
    assert open_package(package, pki.recipient.key_pem, tmp_path / "o") == 1


def test_open_usage_errors(pki: Pki, package: Path, tmp_path: Path) -> None:
    key = pki.recipient.key_pem
    assert open_package(tmp_path / "nope", key, tmp_path / "o") == 2
    assert open_package(package, tmp_path / "nope.pem", tmp_path / "o") == 2
    assert open_package(package, key, package) == 2
    assert open_package(package, key, tmp_path / "o", ca=tmp_path / "nope.pem") == 2
    assert usage_error(["open", str(package), "--out", str(tmp_path / "o")]) == 2


def test_a_pinned_signer_fingerprint_is_enforced(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lambdas.export_package import fingerprint

    argv = ["open", str(package), "--key", str(pki.recipient.key_pem)]
    right = fingerprint(pki.rsa_signer.cert)
    assert main([*argv, "--out", str(tmp_path / "a"), "--signer-sha256", right.upper()]) == 0
    assert "the pinned signer" in capsys.readouterr().err
    wrong = "00" * 32
    assert main([*argv, "--out", str(tmp_path / "b"), "--signer-sha256", wrong]) == 1
    assert "signer-untrusted" in capsys.readouterr().out
    assert outputs(tmp_path / "b") == []


def test_without_ca_or_pin_the_signer_fingerprint_is_printed_with_a_warning(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lambdas.export_package import fingerprint

    assert open_package(package, pki.recipient.key_pem, tmp_path / "opened") == 0
    err = capsys.readouterr().err
    assert "warning:" in err and fingerprint(pki.rsa_signer.cert) in err


def test_an_existing_output_file_is_never_overwritten(
    pki: Pki, inputs: list[Path], package: Path, tmp_path: Path
) -> None:
    out = tmp_path / "opened"
    out.mkdir()
    uid = pydicom.dcmread(inputs[0]).SOPInstanceUID
    (out / f"{uid}.dcm").write_bytes(b"precious")
    assert open_package(package, pki.recipient.key_pem, out) == 1
    assert (out / f"{uid}.dcm").read_bytes() == b"precious"
    assert len(outputs(out)) == len(inputs), "the other members are still opened, no temporary"


@pytest.mark.parametrize("cut", [10, 200, -40])
def test_a_malformed_signature_is_refused_not_a_crash(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], cut: int
) -> None:
    p7s = package / "manifest.json.p7s"
    data = p7s.read_bytes()
    p7s.write_bytes(data[:cut] + b"\xff" * 3 + data[cut + 3 :])
    assert open_package(package, pki.recipient.key_pem, tmp_path / "opened") == 1
    assert outputs(tmp_path / "opened") == []
    assert "refused" in capsys.readouterr().out


def test_a_manifest_member_of_the_wrong_type_is_malformed(package: Path) -> None:
    from lambdas.export_package import PackageError, parse_manifest

    doc = json.loads((package / "manifest.json").read_bytes())
    parse_manifest(json.dumps(doc).encode())  # the genuine one parses
    for field, value in (("file", ["1.p7m"]), ("size", "12"), ("deidentified", 0)):
        broken = json.loads(json.dumps(doc))
        broken["members"][0][field] = value
        with pytest.raises(PackageError) as refused:
            parse_manifest(json.dumps(broken).encode())
        assert refused.value.code == "manifest-invalid", field


def test_a_tls_certificate_of_the_ca_does_not_sign_a_manifest(
    pki: Pki, inputs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A modality's client certificate from the same CA: it may authenticate, not sign.
    client = Party(
        write(
            identity("modality", issuer=pki.ca.identity, usage="tls-client"),
            tmp_path,
            "modality",
        )
    )
    out = tmp_path / "pkg"
    assert export(pki, out, inputs, signer=client) == 0
    capsys.readouterr()
    assert open_package(out, pki.recipient.key_pem, tmp_path / "opened", ca=pki.ca.cert_pem) == 1
    assert "signer-untrusted" in capsys.readouterr().out
    assert outputs(tmp_path / "opened") == []
