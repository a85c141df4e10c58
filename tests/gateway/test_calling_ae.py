"""The calling AE title is sender-chosen: the gateway keeps it only when it is a valid AE title."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gateway.dimse import loggable_ae_title
from lambdas.audit_events import TYPES, is_ae_title


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("CT_SCANNER_1", "CT_SCANNER_1"),
        ("  MR 3  ", "MR 3"),  # leading and trailing spaces are not significant
        (b"US_ROOM_2       ", "US_ROOM_2"),  # pynetdicom may hand bytes, space-padded
        ("A" * 16, "A" * 16),
        ("A" * 17, ""),  # longer than the VR allows
        ("CT\\1", ""),  # backslash: the VR excludes it
        ("CT\n1", ""),  # control character
        ("DOE^JOHN ÄÖ", ""),  # not ASCII
        ("   ", ""),
        (b"\xff\xfe", ""),
    ],
)
def test_only_valid_ae_titles_are_kept(raw: object, kept: str) -> None:
    assert loggable_ae_title(raw) == kept
    # What the gateway keeps is what the audit schema's type admits (or nothing at all).
    assert kept == "" or is_ae_title(kept)


def test_the_schema_type_refuses_what_the_gateway_drops() -> None:
    check = TYPES["ae-title"].check
    assert check("CT_SCANNER_1")
    for bad in ("", "A" * 17, "CT\\1", " CT", "CT\t1", 7):
        assert not check(bad), bad


class _Socket:
    def getpeercert(self, binary_form: bool = False) -> Any:
        return b"\x30\x03\x02\x01\x01" if binary_form else {"serialNumber": "01", "subject": ()}


def test_the_sender_carries_no_invalid_ae_title() -> None:
    from gateway.dimse import StorageSCP

    def event(title: object) -> Any:
        return SimpleNamespace(
            assoc=SimpleNamespace(
                dul=SimpleNamespace(socket=SimpleNamespace(socket=_Socket())),
                requestor=SimpleNamespace(ae_title=title),
            )
        )

    assert StorageSCP._sender(event("CT_SCANNER_1")).calling_ae == "CT_SCANNER_1"
    assert StorageSCP._sender(event("BAD\\TITLE")).calling_ae == ""
