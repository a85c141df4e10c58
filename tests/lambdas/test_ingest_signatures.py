"""Digital signatures of arriving objects: verified on ingest, recorded, decided by the policy."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from lambdas import settings as env
from lambdas.dicom_signature import sign_bytes
from tests.lambdas.conftest import Stack, deliver, put_inbox, receive
from tests.lambdas.factory import ct, encode
from tests.lambdas.signing import (
    CA_NAME,
    SIGNER_NAME,
    other_authority,
    repeated_patient_name,
    signed,
    tampered,
    trusted_authority,
    with_large_text,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def events(stack: Stack) -> Any:
    """The ingest audit events logged while the test runs (parsed)."""
    import lambdas.ingest as ingest

    stream = io.StringIO()
    handler = ingest.logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]

    def parsed() -> list[dict[str, Any]]:
        lines = stream.getvalue().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{") and "outcome" in line]

    yield parsed
    handler.setStream(previous)  # type: ignore[attr-defined]


def configure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, policy: str | None, *, trust: bool = True
) -> None:
    """The function's environment as the stack sets it (the runtime is built on first use)."""
    if policy is not None:
        monkeypatch.setenv(env.SIGNATURE_POLICY, policy)
    if trust:
        bundle = tmp_path / "ca-bundle.pem"
        bundle.write_text(trusted_authority().ca_pem)
        monkeypatch.setenv(env.SIGNATURE_TRUST_BUNDLE, str(bundle))


def ingest_one(stack: Stack, body: bytes, events: Any) -> dict[str, Any]:
    put_inbox(stack, "incoming/signed.dcm", body)
    assert deliver(stack, receive(stack)) == []
    [event] = events()
    return event


def instance() -> bytes:
    return encode(ct(StudyDescription="Chest CT"))


def test_a_valid_trusted_signature_is_archived_with_its_verdict(
    stack: Stack, events: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, tmp_path, None)
    event = ingest_one(stack, signed(instance()), events)
    assert event["outcome"] == "archived", event
    [signature] = event["signatures"]
    assert signature["verdict"] == "valid"
    assert signature["mac_algorithm"] == "SHA256"
    assert signature["key_algorithm"] == "ECDSA P-256"
    assert signature["signer_sha256"] == trusted_authority().signer_sha256
    assert set(signature) == {
        "uid",
        "verdict",
        "mac_algorithm",
        "key_algorithm",
        "profile",
        "signer_sha256",
        "complete",
    }
    assert signature["complete"] is True


def test_a_tampered_signed_object_is_quarantined_by_default(
    stack: Stack, events: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, tmp_path, None)
    event = ingest_one(stack, tampered(signed(instance())), events)
    assert event["outcome"] == "quarantined", event
    assert [r["code"] for r in event["reasons"]] == ["signature-invalid"]
    assert [s["verdict"] for s in event["signatures"]] == ["invalid"]


def test_a_tampered_signed_object_is_archived_under_record(
    stack: Stack, events: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, tmp_path, "record")
    event = ingest_one(stack, tampered(signed(instance())), events)
    assert event["outcome"] == "archived", event
    assert [s["verdict"] for s in event["signatures"]] == ["invalid"]


def test_an_unsigned_object_is_archived_by_default_without_signatures(
    stack: Stack, events: Any
) -> None:
    event = ingest_one(stack, instance(), events)
    assert event["outcome"] == "archived", event
    assert "signatures" not in event


def test_a_signature_without_trust_anchors_is_untrusted_and_archived(
    stack: Stack, events: Any
) -> None:
    event = ingest_one(stack, signed(instance()), events)
    assert event["outcome"] == "archived", event
    assert [s["verdict"] for s in event["signatures"]] == ["untrusted"]


def test_an_unsigned_object_is_quarantined_under_require_valid(
    stack: Stack, events: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, tmp_path, "require-valid")
    event = ingest_one(stack, instance(), events)
    assert event["outcome"] == "quarantined", event
    assert [r["code"] for r in event["reasons"]] == ["signature-missing"]


def test_a_signer_of_another_ca_is_quarantined_under_require_valid(
    stack: Stack, events: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, tmp_path, "require-valid")
    event = ingest_one(stack, signed(instance(), other_authority()), events)
    assert event["outcome"] == "quarantined", event
    assert [r["code"] for r in event["reasons"]] == ["signature-untrusted"]
    assert [s["verdict"] for s in event["signatures"]] == ["untrusted"]
    assert event["signatures"][0]["signer_sha256"] == other_authority().signer_sha256


def test_a_valid_signature_passes_require_valid(
    stack: Stack, events: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, tmp_path, "require-valid")
    event = ingest_one(stack, signed(instance()), events)
    assert event["outcome"] == "archived", event


def test_no_event_names_the_signer_or_its_ca(
    stack: Stack, events: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, tmp_path, None)
    for n, body in enumerate((signed(instance()), tampered(signed(instance())))):
        put_inbox(stack, f"incoming/signed-{n}.dcm", body)
    assert deliver(stack, receive(stack)) == []
    logged = json.dumps(events())
    assert len(events()) == 2
    for name in (SIGNER_NAME, CA_NAME, "Signing", "Radiologist"):
        assert name not in logged, f"ingest audit event names {name!r}"


def test_require_valid_without_a_trust_bundle_stops_the_function_at_start_up() -> None:
    variables = {
        name: "x"
        for name in (
            env.ARCHIVE_BUCKET,
            env.QUARANTINE_BUCKET,
            env.DATA_KEY_ARN,
            env.SIGNING_KEY_ARN,
            env.PSEUDONYM_KEY_ARN,
            env.INDEX_TABLE,
            env.IDEMPOTENCY_TABLE,
        )
    }
    with pytest.raises(env.SettingsError, match=env.SIGNATURE_TRUST_BUNDLE):
        env.IngestSettings.from_env({**variables, env.SIGNATURE_POLICY: "require-valid"})
    with pytest.raises(env.SettingsError, match=env.SIGNATURE_POLICY):
        env.IngestSettings.from_env({**variables, env.SIGNATURE_POLICY: "reject"})


def test_a_valid_subset_signature_is_quarantined_as_incomplete_under_require_valid(
    stack: Stack, events: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a valid signature of the Study Description alone: the rest could be anything
    configure(monkeypatch, tmp_path, "require-valid")
    body = sign_bytes(instance(), trusted_authority().signer, tags=[0x00081030])
    event = ingest_one(stack, body, events)
    assert event["outcome"] == "quarantined", event
    assert [r["code"] for r in event["reasons"]] == ["signature-incomplete"]
    assert [(s["verdict"], s["complete"]) for s in event["signatures"]] == [("valid", False)]


@pytest.mark.parametrize("sign", [False, True], ids=["unsigned", "signed"])
def test_a_repeated_element_is_quarantined_signed_or_not(
    stack: Stack, events: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sign: bool
) -> None:
    # GIVEN a forged Patient Name placed before the original (dcmtk shows the first copy)
    configure(monkeypatch, tmp_path, "record")
    body = signed(instance()) if sign else instance()
    event = ingest_one(stack, repeated_patient_name(body), events)
    assert event["outcome"] == "quarantined", event
    assert [r["code"] for r in event["reasons"]] == ["duplicate-element"]


def test_a_large_deferred_value_is_hashed_as_stored(
    stack: Stack, events: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a signed UT of 300 KB (deferred on ingest) that pydicom would re-encode differently
    configure(monkeypatch, tmp_path, None)
    event = ingest_one(stack, signed(with_large_text(instance())), events)
    assert event["outcome"] == "archived", event
    assert [s["verdict"] for s in event["signatures"]] == ["valid"]
