"""Hostile CT objects for the de-identification tests: PHI markers planted where leaks hide.

Each marker is a unique string that occurs nowhere in pydicom's ``CT_small.dcm`` nor in anything a
de-identifier legitimately writes, so a marker found in an output file's bytes is a leak, never a
coincidence. Two studies of one patient exercise longitudinal consistency: study 2 has the same
PatientID and references study 1's SOP Instance UID.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import CTImageStorage, generate_uid

# marker name -> planted text. Latin-1 letters (ISO_IR 100) so the byte scan means something for
# both encodings; the SH values are at most 16 characters.
MARKERS: dict[str, str] = {
    "patient-name": "PHIMARK-NAME-7731",
    "patient-name-latin1": "Zoë7731",
    "patient-id": "PHIMARK-PID-7731",
    "other-patient-id": "PHIMARK-OPID-7731",
    "other-patient-issuer": "PHIMARK-OISS-7731",
    "address": "PHIMARK-ADDR-7731",
    "address-latin1": "Königstraße7731",
    "telephone": "PHIMARK-TEL-7731",
    "accession": "PHIMARK-ACC-7731",
    "referring-physician": "PHIMARK-REFP-7731",
    "institution-name": "PHIMARK-INST-7731",
    "institution-address": "PHIMARK-IADR-7731",
    "study-description": "PHIMARK-STDESC-7731",
    "series-description": "PHIMARK-SEDESC-7731",
    "image-comments": "PHIMARK-COMMENT-7731",
    "requested-procedure": "PHIMARK-REQPROC-7731",
    "scheduled-step-id": "PHIMARK-SPS-7731",
    "private-value": "PHIMARK-PRIV-7731",
    # Free prose the table has no row for, top level and nested in an unlisted code sequence.
    "step-comments": "PHIMARK-SPSCOMMENT-7731 call the patient at home",
    "protocol-comments": "PHIMARK-PROTCOMMENT-7731 per Dr Who",
    "birth-date": "19370412",
}
PRIVATE_CREATOR = "ACME 1.0"
PRIVATE_GROUP = 0x0009
# The ACME block's element holding a planted value. CT_small already has a GE block in (0009,0010),
# so ACME gets the next free block: (0009,0011), its element (0009,1101).
PRIVATE_ELEMENT = 0x01


def _base() -> FileDataset:
    return pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))


def hostile_ct(study: int = 1) -> FileDataset:
    """CT_small with every marker planted and fresh Study/Series/SOP Instance UIDs.

    ``study`` only goes into the study description: the patient is the same, so a second call is a
    second study of one patient.
    """
    ds = _base()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = f"{MARKERS['patient-name']}^{MARKERS['patient-name-latin1']}"
    ds.PatientID = MARKERS["patient-id"]
    ds.PatientBirthDate = MARKERS["birth-date"]
    other = Dataset()
    other.PatientID = MARKERS["other-patient-id"]
    other.IssuerOfPatientID = MARKERS["other-patient-issuer"]
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = [other]
    ds.PatientAddress = f"{MARKERS['address']}, {MARKERS['address-latin1']} 5, Hamburg"
    ds.PatientTelephoneNumbers = MARKERS["telephone"]
    ds.AccessionNumber = MARKERS["accession"]
    ds.ReferringPhysicianName = f"{MARKERS['referring-physician']}^Alex"
    ds.InstitutionName = MARKERS["institution-name"]
    ds.InstitutionAddress = MARKERS["institution-address"]
    ds.StudyDescription = f"{MARKERS['study-description']} study {study}"
    ds.SeriesDescription = MARKERS["series-description"]
    ds.ImageComments = MARKERS["image-comments"]
    request = Dataset()
    request.RequestedProcedureDescription = MARKERS["requested-procedure"]
    request.ScheduledProcedureStepID = MARKERS["scheduled-step-id"]
    request.RequestedProcedureID = "RP1"
    ds.RequestAttributesSequence = [request]
    ds.CommentsOnTheScheduledProcedureStep = MARKERS["step-comments"]
    protocol = Dataset()
    protocol.CodeValue = "P1"
    protocol.CodingSchemeDesignator = "99LOCAL"
    protocol.CodeMeaning = "CT HEAD ROUTINE"
    protocol.CommentsOnTheScheduledProcedureStep = MARKERS["protocol-comments"]
    ds.PerformedProtocolCodeSequence = [protocol]
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(PRIVATE_ELEMENT, "LO", MARKERS["private-value"])
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def two_studies() -> tuple[FileDataset, FileDataset]:
    """Two studies of one patient; study 2's ReferencedImageSequence points at study 1's image."""
    first = hostile_ct(1)
    second = hostile_ct(2)
    reference = Dataset()
    reference.ReferencedSOPClassUID = CTImageStorage
    reference.ReferencedSOPInstanceUID = first.SOPInstanceUID
    second.ReferencedImageSequence = [reference]
    return first, second


def burned_in_ct() -> FileDataset:
    """A CT that declares burned-in annotation: it must not be released."""
    ds = hostile_ct()
    ds.BurnedInAnnotation = "YES"
    return ds


def encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def leaked_markers(data: bytes) -> Iterator[str]:
    """The names (never the values) of the markers found in ``data``, in UTF-8 or Latin-1."""
    for name, marker in MARKERS.items():
        for codec in ("utf-8", "latin-1"):
            if marker.encode(codec) in data:
                yield f"{name} ({codec})"
