"""Findings of the independent review of DICOM digital signatures (issue #9): signer certificates,
element order, cost bounds, implicit VR, coverage, deferred values, output hygiene."""

from __future__ import annotations

import copy
import datetime
import io
import shutil
import struct
import subprocess
from pathlib import Path

import pydicom
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

import lambdas.dicom_signature as signature_module
from lambdas.dicom_signature import (
    MALFORMED,
    MAX_SIGNATURES,
    ORDER_PROBLEM,
    UNSUPPORTED,
    UNTRUSTED,
    VALID,
    LocalSigner,
    SignatureError,
    element_order_problem,
    sign_bytes,
    sign_part10,
    signer_certificate_problem,
    verify_signatures,
)
from pacs_kit.cli import main
from pacs_kit.pki import init_ca, issue
from tests.certificates import identity
from tests.lambdas.signing import repeated_patient_name, with_large_text
from tests.media.conftest import Pki
from tests.media.test_dicom_signature import dcmsign_sign, dcmsign_verified, signer, source

NOW = datetime.datetime.now(datetime.UTC)


def reports(data: bytes, pki: Pki) -> list[signature_module.SignatureReport]:
    return verify_signatures(pydicom.dcmread(io.BytesIO(data)), trusted=[pki.ca.certificate])


# -- 1. only signer certificates sign -------------------------------------------------------------


@pytest.mark.parametrize(("kind", "verdict"), [("client", UNTRUSTED), ("server", UNTRUSTED)])
def test_a_tls_certificate_of_the_kits_ca_is_not_a_signer(
    tmp_path: Path, kind: str, verdict: str
) -> None:
    # GIVEN a TLS certificate (EKU clientAuth/serverAuth) issued by the kit's CA
    init_ca(tmp_path / "ca")
    tls = issue(tmp_path / "ca", f"{kind}.example", kind, tmp_path / kind)
    trusted = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.pem").read_bytes())
    signed = sign_bytes(
        source("CT_small.dcm"), LocalSigner.from_pem_files(tls.key, tls.certificate)
    )
    [report] = verify_signatures(pydicom.dcmread(io.BytesIO(signed)), trusted=[trusted])
    assert report.verdict == verdict, report
    assert "extendedKeyUsage" in report.reason


def test_a_signer_certificate_of_the_kits_ca_is_valid(tmp_path: Path) -> None:
    init_ca(tmp_path / "ca")
    issued = issue(tmp_path / "ca", "signer one", "signer", tmp_path / "signer")
    trusted = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.pem").read_bytes())
    signer_ = LocalSigner.from_pem_files(issued.key, issued.certificate)
    signed = sign_bytes(source("CT_small.dcm"), signer_)
    [report] = verify_signatures(pydicom.dcmread(io.BytesIO(signed)), trusted=[trusted])
    assert report.verdict == VALID, report


def test_a_ca_certificate_is_not_a_signer(pki: Pki) -> None:
    # GIVEN a sub-CA without keyUsage (so only basicConstraints can refuse it)
    sub_ca = identity("Sub CA", issuer=pki.ca, ca=True, usage="any")
    signed = sign_bytes(source("CT_small.dcm"), LocalSigner(sub_ca.key, sub_ca.certificate))
    [report] = reports(signed, pki)
    assert report.verdict == UNTRUSTED and "CA certificate" in report.reason, report


class _WeakRsaSigner:
    """An RSA-1024 signer, which LocalSigner refuses to build: made by hand here."""

    def __init__(self, pki: Pki) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(pki.ca.certificate.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=1))
            .sign(pki.ca.key, hashes.SHA256())  # type: ignore[arg-type]
        )

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        return self.key.sign(digest, padding.PKCS1v15(), Prehashed(algorithm))


def test_an_rsa_key_under_2048_bits_is_not_a_signer(pki: Pki) -> None:
    signed = sign_bytes(source("CT_small.dcm"), _WeakRsaSigner(pki))
    [report] = reports(signed, pki)
    assert report.verdict == UNTRUSTED and "2048" in report.reason, report


def test_the_signer_rule_is_public_for_other_signers(pki: Pki) -> None:
    assert signer_certificate_problem(pki.rsa.certificate) is None
    assert signer_certificate_problem(pki.ca.certificate) is not None


# -- 2. element order -----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_repeated_signed_element_makes_the_signature_malformed(pki: Pki, where: str) -> None:
    signed = sign_bytes(source("CT_small.dcm"), signer(pki, "ec"))
    if where == "before":
        forged = repeated_patient_name(signed)
    else:  # the forged copy after the original: pydicom shows it, the signature covered the first
        marker = b"\x10\x00\x10\x00PN"
        at = signed.index(marker)
        (length,) = struct.unpack("<H", signed[at + 6 : at + 8])
        end = at + 8 + length
        forged = signed[:end] + marker + b"\x0c\x00EVIL^MALLORY" + signed[end:]
    [report] = reports(forged, pki)
    assert (report.verdict, report.reason) == (MALFORMED, ORDER_PROBLEM), report


def test_elements_out_of_order_inside_an_item_are_found() -> None:
    ds = pydicom.dcmread(io.BytesIO(source("CT_small.dcm")))
    code = Dataset()
    code.CodeValue = "AB"
    code.CodeMeaning = "CD"
    ds.ProcedureCodeSequence = Sequence([code])
    buffer = io.BytesIO()
    ds.save_as(buffer)
    data = buffer.getvalue()
    first, second = b"\x08\x00\x00\x01SH\x02\x00AB", b"\x08\x00\x04\x01LO\x02\x00CD"
    assert element_order_problem(io.BytesIO(data)) is None
    swapped = data.replace(first + second, second + first)
    assert swapped != data
    assert element_order_problem(io.BytesIO(swapped)) == ORDER_PROBLEM


def test_sign_refuses_a_repeated_element(pki: Pki) -> None:
    with pytest.raises(SignatureError) as caught:
        sign_bytes(repeated_patient_name(source("CT_small.dcm")), signer(pki, "ec"))
    assert caught.value.code == "malformed-input"


# -- 3. bounded cost ------------------------------------------------------------------------------


def test_signature_items_past_the_cap_are_unsupported_and_the_data_is_hashed_once(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one signature copied MAX_SIGNATURES + 2 times (the review's dos.py)
    ds = pydicom.dcmread(io.BytesIO(sign_bytes(source("CT_small.dcm"), signer(pki, "rsa"))))
    item = ds.DigitalSignaturesSequence[0]
    ds.DigitalSignaturesSequence = Sequence(
        [copy.deepcopy(item) for _ in range(MAX_SIGNATURES + 2)]
    )
    buffer = io.BytesIO()
    ds.save_as(buffer)
    calls = []
    original = signature_module._dataset_hash

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(signature_module, "_dataset_hash", counting)
    verdicts = [r.verdict for r in reports(buffer.getvalue(), pki)]
    assert verdicts == [VALID] * MAX_SIGNATURES + [UNSUPPORTED] * 2
    assert len(calls) == 1, "the signed elements were hashed more than once"


# -- 4. implicit VR (SC_rgb_small_odd: 8-bit Pixel Data, which dcmtk reads as OW) ----------


@pytest.mark.parametrize("name", ["MR_small_implicit.dcm", "rtplan.dcm"])
def test_dcmsign_signatures_of_implicit_vr_files_are_valid(
    dcmsign: str, pki: Pki, tmp_path: Path, name: str
) -> None:
    # MR_small_implicit holds ambiguous "US or SS" and "OB or OW" elements
    src, out = tmp_path / name, tmp_path / f"signed_{name}"
    src.write_bytes(source(name))
    dcmsign_sign(dcmsign, pki, "rsa", src, out)
    assert [r.verdict for r in reports(out.read_bytes(), pki)] == [VALID]


@pytest.mark.parametrize(
    "name", ["MR_small_implicit.dcm", "CT_small.dcm", "SC_rgb_small_odd.dcm", "rtdose.dcm"]
)
def test_our_signature_survives_conversion_to_implicit_vr(
    dcmsign: str, pki: Pki, tmp_path: Path, name: str
) -> None:
    dcmconv = shutil.which("dcmconv")
    assert dcmconv, "dcmconv not found: `make tools` installs dcmtk"
    ours, implicit = tmp_path / "ours.dcm", tmp_path / "implicit.dcm"
    ours.write_bytes(sign_bytes(source(name), signer(pki, "ec")))
    subprocess.run([dcmconv, "+ti", str(ours), str(implicit)], check=True, capture_output=True)
    assert pydicom.dcmread(implicit).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert dcmsign_verified(dcmsign, pki, implicit) == (0, 1)
    assert [r.verdict for r in reports(implicit.read_bytes(), pki)] == [VALID]


# -- 5. coverage ----------------------------------------------------------------------------------


def test_a_report_says_what_the_signature_leaves_out(pki: Pki) -> None:
    data = source("CT_small.dcm")
    [whole] = reports(sign_bytes(data, signer(pki, "ec")), pki)
    assert whole.complete and whole.tags_unsigned == ()
    part, info = sign_part10(data, signer(pki, "ec"), tags=[0x00100010])
    [subset] = reports(part, pki)
    assert subset.verdict == VALID and not subset.complete
    assert "(0010,0020)" in subset.tags_unsigned and "(0010,0010)" not in subset.tags_unsigned
    assert 0x00100020 in info.tags_unsigned


def test_sign_prints_the_uid_and_verify_prints_coverage(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "ct.dcm", tmp_path / "signed.dcm"
    src.write_bytes(source("CT_small.dcm"))
    key = ["--key", str(pki.ec.key_path), "--cert", str(pki.ec.cert_path)]
    assert main(["sign", *key, "--tag", "0010,0010", str(src), str(out)]) == 0
    captured = capsys.readouterr()
    [uid] = [r.uid for r in verify_signatures(pydicom.dcmread(out))]
    assert captured.out.strip() == f"signed {src} -> {out}  {uid}"
    assert "left unsigned" in captured.err and "(0010,0020)" in captured.err
    assert "CompressedSamples" not in captured.err  # tags only, never values
    main(["verify-signature", "--ca", str(pki.ca.cert_path), str(out)])
    total = sum(1 for e in pydicom.dcmread(src) if signature_module.is_signable_tag(e.tag))
    assert f"covers=1/{total}" in capsys.readouterr().out


# -- 6. deferred values ---------------------------------------------------------------------------


def test_a_deferred_value_is_hashed_as_stored(pki: Pki, tmp_path: Path) -> None:
    # GIVEN a 300 KB UT that pydicom would re-encode differently (the review's deferred.py)
    path = tmp_path / "large.dcm"
    path.write_bytes(sign_bytes(with_large_text(source("CT_small.dcm")), signer(pki, "ec")))
    with path.open("rb") as fp:
        ds = pydicom.dcmread(fp, defer_size=1024)
        [report] = verify_signatures(ds, trusted=[pki.ca.certificate], source=fp)
    assert report.verdict == VALID, report


# -- 7. output hygiene ----------------------------------------------------------------------------


def test_a_subject_with_control_characters_is_printed_escaped(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spoof = identity("x\nfake.dcm  verdict=valid\x1b[2K", issuer=pki.ca)
    path = tmp_path / "spoof.dcm"
    path.write_bytes(sign_bytes(source("CT_small.dcm"), LocalSigner(spoof.key, spoof.certificate)))
    main(["verify-signature", "--ca", str(pki.ca.cert_path), str(path)])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out, out
    assert "\\x0afake.dcm" in out


def test_deeply_nested_sequences_are_malformed_and_the_next_file_is_checked(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = sign_bytes(source("CT_small.dcm"), signer(pki, "ec"))
    depth = 3000
    opening = (
        b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    ) * depth
    closing = (b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00") * depth
    at = signed.index(b"\xe0\x7f\x10\x00O")
    deep, good = tmp_path / "deep.dcm", tmp_path / "good.dcm"
    deep.write_bytes(signed[:at] + opening + closing + signed[at:])
    good.write_bytes(signed)
    assert main(["verify-signature", "--ca", str(pki.ca.cert_path), str(deep), str(good)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{deep}  malformed"
    assert lines[1].startswith(f"{good}  signer=") and "verdict=valid" in lines[1]


# -- 9. big endian --------------------------------------------------------------------------------


def test_big_endian_input_is_refused_with_a_clear_code(pki: Pki) -> None:
    with pytest.raises(SignatureError) as caught:
        sign_bytes(source("MR_small_bigendian.dcm"), signer(pki, "ec"))
    assert caught.value.code == "big-endian"
