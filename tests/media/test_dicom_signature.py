"""DICOM Digital Signatures, interoperable with dcmtk's dcmsign (issue #9, part 1)."""

from __future__ import annotations

import datetime
import io
import struct
import subprocess
from pathlib import Path

import pydicom
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pydicom.data import get_testdata_file

from lambdas.dicom_signature import (
    BASE_RSA_PROFILE,
    LocalSigner,
    SignatureError,
    add_signature,
    sign_bytes,
    verify_signatures,
)
from tests.media.conftest import Pki

# explicit VR LE, implicit VR LE, encapsulated RLE, encapsulated JPEG 2000 (twice: 693_J2KI.dcm
# stores its encapsulated Pixel Data as OW with an odd-length fragment)
SOURCES = [
    "CT_small.dcm",
    "rtplan.dcm",
    "MR_small_RLE.dcm",
    "GDCMJ2K_TextGBR.dcm",
    "693_J2KI.dcm",
]
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
SOP_INSTANCE_UID = 0x00080018
PIXEL_DATA = 0x7FE00010
STUDY_DESCRIPTION = 0x00081030


def source(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path, f"pydicom test file {name} not available"
    return Path(path).read_bytes()


def signer(pki: Pki, kind: str) -> LocalSigner:
    identity = pki.signer(kind)
    return LocalSigner.from_pem_files(identity.key_path, identity.cert_path)


def dcmsign_verify(dcmsign: str, pki: Pki, path: Path) -> int:
    """dcmsign's exit code verifying every signature of ``path`` against the trusted CA."""
    return dcmsign_verified(dcmsign, pki, path)[0]


def dcmsign_verified(dcmsign: str, pki: Pki, path: Path) -> tuple[int, int]:
    """dcmsign's exit code and how many signatures it reports verified ``OK``: it exits 0 for an
    unsigned file too, so a pass must also count the signatures it checked."""
    command = [dcmsign, "--verify", "+cf", str(pki.ca.cert_path), str(path)]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    return result.returncode, (result.stdout + result.stderr).count("Signature Verification : OK")


def dcmsign_sign(dcmsign: str, pki: Pki, kind: str, src: Path, dst: Path, *mac: str) -> None:
    identity = pki.signer(kind)
    command = [dcmsign, "-q", "--sign", str(identity.key_path), str(identity.cert_path), "-pw"]
    command += [*(mac or ("+m2",)), str(src), str(dst)]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    assert result.returncode == 0, f"dcmsign --sign {src.name}: {result.stderr}"


def verdicts(path: Path, pki: Pki, trusted: list[x509.Certificate] | None = None) -> list[str]:
    """Our verdicts on ``path``, trusting the test CA unless told otherwise."""
    trust = [pki.ca.certificate] if trusted is None else trusted
    return [r.verdict for r in verify_signatures(pydicom.dcmread(path), trusted=trust)]


def our_signed(tmp_path: Path, pki: Pki, kind: str = "rsa", name: str = "CT_small.dcm") -> Path:
    out = tmp_path / f"ours_{kind}_{name}"
    out.write_bytes(sign_bytes(source(name), signer(pki, kind)))
    return out


def resave(path: Path, out: Path, **changes: object) -> Path:
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.save_as(out)
    return out


# -- interoperability -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_dcmsign_verifies_our_signature(
    dcmsign: str, pki: Pki, tmp_path: Path, kind: str, name: str
) -> None:
    out = our_signed(tmp_path, pki, kind, name)
    assert dcmsign_verified(dcmsign, pki, out) == (0, 1), (
        f"dcmsign rejects our {kind} signature of {name}"
    )
    assert verdicts(out, pki) == ["valid"]


@pytest.mark.parametrize("mac", ["SHA384", "SHA512"])
def test_dcmsign_verifies_our_other_mac_algorithms(
    dcmsign: str, pki: Pki, tmp_path: Path, mac: str
) -> None:
    out = tmp_path / "signed.dcm"
    out.write_bytes(sign_bytes(source("CT_small.dcm"), signer(pki, "rsa"), mac_algorithm=mac))
    assert dcmsign_verified(dcmsign, pki, out) == (0, 1), f"dcmsign rejects our {mac} signature"
    assert pydicom.dcmread(out).MACParametersSequence[0].MACAlgorithm == mac


@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_we_verify_dcmsign_signature(
    dcmsign: str, pki: Pki, tmp_path: Path, kind: str, name: str
) -> None:
    src = tmp_path / name
    src.write_bytes(source(name))
    out = tmp_path / "signed.dcm"
    dcmsign_sign(dcmsign, pki, kind, src, out)
    [report] = verify_signatures(pydicom.dcmread(out), trusted=[pki.ca.certificate])
    assert report.verdict == "valid", f"{kind}/{name}: {report.reason}"
    assert report.signer == pki.signer(kind).certificate.subject.rfc4514_string()
    assert report.mac_algorithm == "SHA256"
    assert report.profile == (BASE_RSA_PROFILE if kind == "rsa" else "none (ECDSA P-256)")
    assert report.key_algorithm == ("RSA" if kind == "rsa" else "ECDSA P-256")


def test_dcmsign_sha1_signature_is_unsupported(dcmsign: str, pki: Pki, tmp_path: Path) -> None:
    src = tmp_path / "ct.dcm"
    src.write_bytes(source("CT_small.dcm"))
    out = tmp_path / "signed.dcm"
    dcmsign_sign(dcmsign, pki, "rsa", src, out, "+ms")
    [report] = verify_signatures(pydicom.dcmread(out), trusted=[pki.ca.certificate])
    assert (report.verdict, report.mac_algorithm) == ("unsupported", "SHA1")
    assert report.profile == BASE_RSA_PROFILE


def test_a_stored_un_element_is_neither_signed_nor_rewritten(
    dcmsign: str, pki: Pki, tmp_path: Path
) -> None:
    """dcmtk keeps a UN element as UN and never signs it: so do we (its VR stays UN)."""
    ds = pydicom.dcmread(io.BytesIO(source("CT_small.dcm")))
    ds.StudyDescription = "STUDY DESC"
    data = io.BytesIO()
    ds.save_as(data)
    header = b"\x08\x00\x30\x10LO" + struct.pack("<H", 10)
    assert data.getvalue().count(header) == 1
    unknown = data.getvalue().replace(header, b"\x08\x00\x30\x10UN\x00\x00" + struct.pack("<L", 10))
    out = tmp_path / "signed.dcm"
    out.write_bytes(sign_bytes(unknown, signer(pki, "rsa")))
    signed = pydicom.dcmread(out)
    assert STUDY_DESCRIPTION not in list(signed.MACParametersSequence[0].DataElementsSigned)
    assert signed.get_item(STUDY_DESCRIPTION).VR == "UN"
    assert dcmsign_verified(dcmsign, pki, out) == (0, 1)


def test_text_set_in_memory_is_written_as_hashed(dcmsign: str, pki: Pki, tmp_path: Path) -> None:
    """Trailing padding of a value set in memory is trimmed before hashing and writing."""
    ds = pydicom.dcmread(io.BytesIO(source("CT_small.dcm")))
    ds.StudyDescription = "PADDED   "
    add_signature(ds, signer(pki, "ec"))
    out = tmp_path / "signed.dcm"
    ds.save_as(out)
    assert b"PADDED  " not in out.read_bytes()
    assert dcmsign_verified(dcmsign, pki, out) == (0, 1), "dcmsign rejects a signed in-memory value"
    assert verdicts(out, pki) == ["valid"]


# -- tampering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed_by", ["ours", "dcmsign"])
def test_both_reject_a_patient_name_changed_after_signing(
    dcmsign: str, pki: Pki, tmp_path: Path, signed_by: str
) -> None:
    if signed_by == "ours":
        signed = our_signed(tmp_path, pki)
    else:
        src = tmp_path / "ct.dcm"
        src.write_bytes(source("CT_small.dcm"))
        signed = tmp_path / "signed.dcm"
        dcmsign_sign(dcmsign, pki, "rsa", src, signed)
    tampered = resave(signed, tmp_path / "tampered.dcm", PatientName="Tampered^Name")
    assert dcmsign_verify(dcmsign, pki, tampered) != 0, "dcmsign accepts a changed PatientName"
    [report] = verify_signatures(pydicom.dcmread(tampered), trusted=[pki.ca.certificate])
    assert report.verdict == "invalid"
    assert "Tampered" not in repr(report), "the report carries a value from the data set"


def test_both_reject_a_byte_edit_of_the_patient_name(
    dcmsign: str, pki: Pki, tmp_path: Path
) -> None:
    signed = our_signed(tmp_path, pki, "ec")
    data = signed.read_bytes()
    name = str(pydicom.dcmread(signed).PatientName).encode()
    assert data.count(name) == 1, "the test needs the name once in the file"
    tampered = tmp_path / "tampered.dcm"
    tampered.write_bytes(data.replace(name, name[:-1] + b"X"))
    assert dcmsign_verify(dcmsign, pki, tampered) != 0, "dcmsign accepts an edited PatientName"
    assert verdicts(tampered, pki) == ["invalid"]


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm"])
def test_both_reject_a_changed_pixel_byte(
    dcmsign: str, pki: Pki, tmp_path: Path, name: str
) -> None:
    signed = our_signed(tmp_path, pki, "rsa", name)
    ds = pydicom.dcmread(signed)
    pixels = bytearray(ds.PixelData)
    pixels[-3] ^= 0x01  # in the last fragment of encapsulated data, in the image of native data
    ds.PixelData = bytes(pixels)
    tampered = tmp_path / "tampered.dcm"
    ds.save_as(tampered)
    assert dcmsign_verify(dcmsign, pki, tampered) != 0, f"dcmsign accepts changed pixels ({name})"
    assert verdicts(tampered, pki) == ["invalid"]


def test_a_removed_signed_element_is_invalid(pki: Pki, tmp_path: Path) -> None:
    ds = pydicom.dcmread(our_signed(tmp_path, pki))
    del ds.PatientID
    [report] = verify_signatures(ds, trusted=[pki.ca.certificate])
    assert (report.verdict, report.reason) == ("invalid", "signed element (0010,0020) is missing")


def test_an_unchanged_resave_stays_valid(dcmsign: str, pki: Pki, tmp_path: Path) -> None:
    resaved = resave(our_signed(tmp_path, pki), tmp_path / "resaved.dcm")
    assert dcmsign_verified(dcmsign, pki, resaved) == (0, 1)
    assert verdicts(resaved, pki) == ["valid"]


# -- trust ----------------------------------------------------------------------------------------


def test_a_certificate_from_another_ca_is_untrusted(pki: Pki, tmp_path: Path) -> None:
    signed = our_signed(tmp_path, pki)
    [report] = verify_signatures(pydicom.dcmread(signed), trusted=[pki.other_ca.certificate])
    assert (report.verdict, report.reason) == (
        "untrusted",
        "no trusted issuer signed the certificate",
    )


def test_without_trusted_certificates_a_good_signature_is_untrusted(
    pki: Pki, tmp_path: Path
) -> None:
    assert verdicts(our_signed(tmp_path, pki), pki, trusted=[]) == ["untrusted"]


def test_an_expired_certificate_is_untrusted(pki: Pki, tmp_path: Path) -> None:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3650)
    [report] = verify_signatures(
        pydicom.dcmread(our_signed(tmp_path, pki)), trusted=[pki.ca.certificate], now=later
    )
    assert (report.verdict, report.reason) == (
        "untrusted",
        "certificate outside its validity period",
    )


def test_a_pinned_signer_certificate_is_trusted(pki: Pki, tmp_path: Path) -> None:
    assert verdicts(our_signed(tmp_path, pki), pki, trusted=[pki.rsa.certificate]) == ["valid"]


# -- several signatures, subsets, purposes --------------------------------------------------------


def test_our_and_dcmsign_signatures_coexist(dcmsign: str, pki: Pki, tmp_path: Path) -> None:
    first = our_signed(tmp_path, pki, "rsa")
    second = tmp_path / "second.dcm"
    dcmsign_sign(dcmsign, pki, "ec", first, second)
    third = tmp_path / "third.dcm"
    third.write_bytes(sign_bytes(second.read_bytes(), signer(pki, "ec"), mac_algorithm="SHA512"))
    assert dcmsign_verified(dcmsign, pki, third) == (0, 3), (
        "dcmsign rejects one of three signatures"
    )
    assert verdicts(third, pki) == ["valid", "valid", "valid"]
    ds = pydicom.dcmread(third)
    ids = [int(item.MACIDNumber) for item in ds.MACParametersSequence]
    assert sorted(ids) == sorted(set(ids)), f"MAC ID Numbers reused: {ids}"


def test_subset_signature_covers_only_its_tags(dcmsign: str, pki: Pki, tmp_path: Path) -> None:
    tags = [PIXEL_DATA, PATIENT_ID, PATIENT_NAME, SOP_INSTANCE_UID]
    signed = tmp_path / "subset.dcm"
    signed.write_bytes(
        sign_bytes(source("CT_small.dcm"), signer(pki, "rsa"), tags=tags, purpose="1")
    )
    ds = pydicom.dcmread(signed)
    assert list(ds.MACParametersSequence[0].DataElementsSigned) == sorted(tags)
    purpose = ds.DigitalSignaturesSequence[0].DigitalSignaturePurposeCodeSequence[0]
    assert (purpose.CodeValue, purpose.CodingSchemeDesignator) == ("1", "ASTM-sigpurpose")
    assert dcmsign_verified(dcmsign, pki, signed) == (0, 1), "dcmsign rejects a subset signature"

    outside = resave(signed, tmp_path / "outside.dcm", StudyDescription="changed")
    assert dcmsign_verified(dcmsign, pki, outside) == (0, 1), (
        "an unsigned change broke dcmsign's verdict"
    )
    assert verdicts(outside, pki) == ["valid"]
    inside = resave(signed, tmp_path / "inside.dcm", PatientID="changed")
    assert verdicts(inside, pki) == ["invalid"]


def test_ecdsa_signatures_are_even_length_and_verify(pki: Pki) -> None:
    """DER ECDSA values are 70 to 72 bytes: odd ones are padded, and the pad is ignored."""
    ds = pydicom.dcmread(io.BytesIO(source("CT_small.dcm")))
    ec_signer = signer(pki, "ec")
    for _ in range(8):
        add_signature(ds, ec_signer)
    lengths = {len(item.Signature) % 2 for item in ds.DigitalSignaturesSequence}
    assert lengths == {0}
    assert {r.verdict for r in verify_signatures(ds, trusted=[pki.ca.certificate])} == {"valid"}


# -- malformed input and refusals -----------------------------------------------------------------


def test_a_signature_without_its_mac_item_is_malformed(pki: Pki, tmp_path: Path) -> None:
    ds = pydicom.dcmread(our_signed(tmp_path, pki))
    del ds.MACParametersSequence
    [report] = verify_signatures(ds, trusted=[pki.ca.certificate])
    assert report.verdict == "malformed"


def test_an_unreadable_certificate_is_malformed(pki: Pki, tmp_path: Path) -> None:
    ds = pydicom.dcmread(our_signed(tmp_path, pki))
    ds.DigitalSignaturesSequence[0].CertificateOfSigner = b"not a certificate"
    [report] = verify_signatures(ds, trusted=[pki.ca.certificate])
    assert report.verdict == "malformed"


def test_an_unsigned_data_set_has_no_reports() -> None:
    assert verify_signatures(pydicom.dcmread(io.BytesIO(source("CT_small.dcm")))) == []


def test_a_key_that_does_not_match_the_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(SignatureError) as raised:
        LocalSigner(ec.generate_private_key(ec.SECP256R1()), pki.ec.certificate)
    assert raised.value.code == "key-certificate-mismatch"


def test_an_unsignable_tag_is_refused_without_values(pki: Pki) -> None:
    ds = pydicom.dcmread(io.BytesIO(source("CT_small.dcm")))
    with pytest.raises(SignatureError) as raised:
        add_signature(ds, signer(pki, "rsa"), tags=[PATIENT_NAME, 0x00080001])
    assert raised.value.code == "unsignable-tag"
    assert str(ds.PatientName) not in str(raised.value)


def test_a_missing_tag_is_refused(pki: Pki) -> None:
    ds = pydicom.dcmread(io.BytesIO(source("CT_small.dcm")))
    with pytest.raises(SignatureError) as raised:
        add_signature(ds, signer(pki, "rsa"), tags=[0x00104000])  # Patient Comments: absent
    assert raised.value.code == "missing-tag"


def test_an_implicit_vr_data_set_is_refused_by_add_signature(pki: Pki) -> None:
    ds = pydicom.dcmread(io.BytesIO(source("rtplan.dcm")))
    with pytest.raises(SignatureError) as raised:
        add_signature(ds, signer(pki, "rsa"))
    assert raised.value.code == "not-explicit-little-endian"


@pytest.mark.parametrize("mac", ["SHA1", "MD5", "RIPEMD160"])
def test_weak_mac_algorithms_are_refused(pki: Pki, mac: str) -> None:
    with pytest.raises(SignatureError) as raised:
        sign_bytes(source("CT_small.dcm"), signer(pki, "rsa"), mac_algorithm=mac)
    assert raised.value.code == "unsupported-mac"


def test_non_dicom_input_is_refused(pki: Pki) -> None:
    with pytest.raises(SignatureError) as raised:
        sign_bytes(b"not dicom at all", signer(pki, "rsa"))
    assert raised.value.code == "not-dicom"
