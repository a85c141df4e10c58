"""De-identification per DICOM PS3.15 Annex E (issue #8), for the Lambda and ``pacs-kit deid``.

- :mod:`lambdas.deid.profile`: Table E.1-1 (``table_e1_1.tsv``) and the options, as data.
- :mod:`lambdas.deid.keys`: the secret behind every pseudonym (a local key or the stack's KMS key).
- :mod:`lambdas.deid.engine`: applies the profile to a ``pydicom.Dataset``.
- :mod:`lambdas.deid.pixels`: Clean Pixel Data, redacting configured rectangles of native pixels.
- :mod:`lambdas.deid.verify`: checks an output against its input (what must be gone is gone).
"""
