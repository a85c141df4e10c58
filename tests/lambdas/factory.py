"""Hostile and benign DICOM objects for the validator and pipeline tests, built with pydicom."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, generate_uid

# The PHI of every object this module builds; tests scan logs, index rows and metadata for them.
PATIENT_NAME = "Testpatient^Harriet"
PATIENT_ID = "MRN-4417-2201"
BIRTH_DATE = "19510704"
PHI_STRINGS = (PATIENT_NAME, "Testpatient", "Harriet", PATIENT_ID, BIRTH_DATE)


def ct(**changes: object) -> FileDataset:
    """pydicom's CT_small with our fake patient and fresh UIDs (so every call is a new instance)."""
    ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return ds


def encode(ds: Dataset, *, enforce: bool = True) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=enforce)
    return buffer.getvalue()


def ct_bytes(**changes: object) -> bytes:
    return encode(ct(**changes))


def with_preamble(data: bytes, start: bytes) -> bytes:
    """The same object with an executable/archive signature at the start of the preamble."""
    return start + data[len(start) :]


def deflate_bomb(inflated_bytes: int) -> bytes:
    """A Deflated Explicit VR LE object whose data set inflates to ``inflated_bytes`` of zeros."""
    ds = ct()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    header = encode_meta_only(ds)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    body = b"".join(compressor.compress(block) for _ in range(inflated_bytes // len(block)))
    return header + body + compressor.flush()


def encode_meta_only(ds: FileDataset) -> bytes:
    """Preamble, 'DICM' and the File Meta Information of ``ds``, nothing else."""
    buffer = io.BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(DicomFileLike(buffer), ds.file_meta, enforce_standard=True)
    return buffer.getvalue()


def big_endian_ct() -> bytes:
    """Explicit VR Big Endian: retired, so not in the default accepted list."""
    ds = ct()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=False, enforce_file_format=True)
    return buffer.getvalue()


def deflated_ct() -> bytes:
    ds = ct()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return encode(ds)


def without_meta() -> bytes:
    """Preamble + 'DICM' followed directly by the data set (no group 0002)."""
    ds = ct()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True, enforce_file_format=False)
    raw = buffer.getvalue()
    # dcmwrite without file meta writes no preamble: add the header around the bare data set.
    return b"\0" * 128 + b"DICM" + raw


def bare_dataset(ds: Dataset) -> bytes:
    """The data set alone, Explicit VR Little Endian, no preamble or File Meta."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True, enforce_file_format=False)
    return buffer.getvalue()


def with_phi_in_meta(**meta: str) -> bytes:
    """File Meta values that are patient data instead of UIDs, around a sound data set."""
    ds = ct()
    for keyword, value in meta.items():
        setattr(ds.file_meta, keyword, value)
    return encode_meta_only(ds) + bare_dataset(_without_meta(ds))


def _without_meta(ds: FileDataset) -> Dataset:
    bare = Dataset()
    bare.update(ds)
    return bare


def deflated_with_zip_appended() -> bytes:
    """A sound deflated object with a ZIP archive hidden after the end of its deflate stream."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("payload.txt", "not an image")
    return deflated_ct() + archive.getvalue()


def short_pixels() -> bytes:
    ds = ct()
    ds.Rows = ds.Rows + 8  # pixel data now too short for the declared geometry
    return encode(ds)


def truncated(fraction: float) -> bytes:
    data = ct_bytes()
    return data[: int(len(data) * fraction)]


HOSTILE: dict[str, tuple[str, Callable[[], bytes]]] = {
    "pe-polyglot": ("polyglot-preamble", lambda: with_preamble(ct_bytes(), b"MZ\x90\x00")),
    "elf-polyglot": ("polyglot-preamble", lambda: with_preamble(ct_bytes(), b"\x7fELF\x02\x01")),
    "macho-polyglot": ("polyglot-preamble", lambda: with_preamble(ct_bytes(), b"\xcf\xfa\xed\xfe")),
    "zip-polyglot": ("polyglot-preamble", lambda: with_preamble(ct_bytes(), b"PK\x03\x04")),
    "shebang-polyglot": ("polyglot-preamble", lambda: with_preamble(ct_bytes(), b"#!/bin/sh\n")),
    "not-dicom-text": ("not-dicom-part10", lambda: b"hello, this is not an image\n" * 10),
    "not-dicom-short": ("not-dicom-part10", lambda: b"DICM"),
    "no-dicm-prefix": ("not-dicom-part10", lambda: ct_bytes()[:128] + b"DICK" + ct_bytes()[132:]),
    "meta-missing": ("file-meta-missing", without_meta),
    "deflate-bomb": ("deflate-bomb", lambda: deflate_bomb(64 * 1024 * 1024)),
    "ts-unsupported": (
        "transfer-syntax-unsupported",
        big_endian_ct,
    ),
    "media-class-mismatch": (
        "media-storage-mismatch",
        lambda: encode(
            _with_meta(ct(), MediaStorageSOPClassUID="1.2.840.10008.5.1.4.1.1.4"), enforce=False
        ),
    ),
    "media-instance-mismatch": (
        "media-storage-mismatch",
        lambda: encode(_with_meta(ct(), MediaStorageSOPInstanceUID=generate_uid()), enforce=False),
    ),
    "uid-too-long": ("uid-malformed", lambda: encode(ct(StudyInstanceUID="1." + "2" * 64))),
    "uid-leading-zero": ("uid-malformed", lambda: encode(ct(SeriesInstanceUID="1.2.03.4"))),
    "uid-letters": ("uid-malformed", lambda: encode(ct(StudyInstanceUID="1.2.abc.4"))),
    "uid-empty": ("uid-missing", lambda: encode(ct(StudyInstanceUID=""))),
    "uid-absent": ("uid-missing", lambda: encode(_without(ct(), "SeriesInstanceUID"))),
    "patient-id-empty": ("patient-id-missing", lambda: encode(ct(PatientID=""))),
    "sop-class-not-allowed": ("sop-class-not-allowed", lambda: encode(_sop_class(ct(), "1.2.3.4"))),
    "truncated-half": ("truncated", lambda: truncated(0.5)),
    "truncated-end": ("truncated", lambda: truncated(0.99)),
    "short-pixel-data": ("pixel-data-length-mismatch", short_pixels),
    "deflated-zip-polyglot": ("trailing-data", deflated_with_zip_appended),
    "patient-id-too-long": ("patient-id-malformed", lambda: encode(ct(PatientID="X" * 5000))),
    "phi-as-transfer-syntax": (
        "file-meta-malformed",
        lambda: with_phi_in_meta(TransferSyntaxUID=PATIENT_NAME),
    ),
    "phi-as-media-instance": (
        "file-meta-malformed",
        lambda: with_phi_in_meta(MediaStorageSOPInstanceUID=f"{PATIENT_ID} {BIRTH_DATE}"),
    ),
}


def _with_meta(ds: FileDataset, **meta: str) -> FileDataset:
    for keyword, value in meta.items():
        setattr(ds.file_meta, keyword, value)
    return ds


def _without(ds: FileDataset, keyword: str) -> FileDataset:
    delattr(ds, keyword)
    return ds


def _sop_class(ds: FileDataset, uid: str) -> FileDataset:
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(uid)
    return ds
