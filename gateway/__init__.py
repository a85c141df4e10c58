"""The DICOM gateway: DIMSE C-STORE over mutual TLS and DICOMweb STOW-RS into the inbox bucket."""
