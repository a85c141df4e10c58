"""The research-copy function against moto: archived instances → de-identified copies in derived.

Instances reach the archive through the real ingest function; the archive's notifications (the
instance and its signed sidecar) reach the research queue as in the stack.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pydicom
import pytest
from pydicom.dataset import Dataset

from infra.iam_documents import LINKAGE_ATTRIBUTES
from lambdas import settings as env
from lambdas.audit_events import RESEARCH, problems
from lambdas.deid.engine import Deidentifier
from lambdas.research_copy import is_instance_key, review_key
from lambdas.settings import ResearchSettings, SettingsError, parse_research_projects
from tests.lambdas.conftest import (
    REGION,
    Stack,
    deliver,
    deliver_research,
    put_inbox,
    receive,
    s3_client,
)
from tests.lambdas.factory import PATIENT_ID, PHI_STRINGS, ct, encode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

LUNG_CT = {
    "name": "lung-ct",
    "match": {"Modality": ["ct"], "BodyPartExamined": ["CHEST", "lung"]},
    "options": ["retain-long-modified-dates"],
}
BRAIN_MR = {"name": "brain-mr", "match": {"Modality": ["MR"]}}


@pytest.fixture
def research(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack with two projects configured and linkage off (the default)."""
    monkeypatch.setenv(env.RESEARCH_PROJECTS, json.dumps([LUNG_CT, BRAIN_MR]))
    return stack


@pytest.fixture
def linked(research: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv(env.LINKAGE_TABLE, research.linkage_table)
    return research


def chest_ct(**changes: object) -> Dataset:
    return ct(BodyPartExamined="Chest", **changes)


def archive(stack: Stack, *datasets: Dataset) -> list[dict[str, Any]]:
    """Ingest ``datasets``; the research queue's messages that their archiving produced."""
    for i, ds in enumerate(datasets):
        put_inbox(stack, f"incoming/{i}.dcm", encode(ds))
    assert deliver(stack, receive(stack)) == [], "ingest failed a record"
    return receive(stack, queue_url=stack.research_queue_url)


def derived_versions(stack: Stack) -> list[dict[str, Any]]:
    listed = s3_client().list_object_versions(Bucket=stack.derived)
    return list(listed.get("Versions", []))


def review_versions(stack: Stack) -> list[dict[str, Any]]:
    listed = s3_client().list_object_versions(Bucket=stack.quarantine, Prefix="research-review/")
    return list(listed.get("Versions", []))


def archived_key(ds: Dataset) -> str:
    return (
        f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}.dcm"
    )


def linkage_items(stack: Stack) -> list[dict[str, Any]]:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    return list(dynamodb.scan(TableName=stack.linkage_table)["Items"])


@pytest.fixture
def research_log(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the research-copy function logs (its Powertools JSON stream)."""
    from lambdas import research as function

    stream = io.StringIO()
    monkeypatch.setattr(function.logger.registered_handler, "stream", stream)
    return stream


def held_events(log: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("message") == "research-held"]


def review_record(stack: Stack, version: dict[str, Any]) -> dict[str, Any]:
    obj = s3_client().get_object(
        Bucket=stack.quarantine, Key=version["Key"], VersionId=version["VersionId"]
    )
    return dict(json.loads(obj["Body"].read()))


def test_a_matching_ct_lands_deidentified_in_the_projects_prefix(research: Stack) -> None:
    source = chest_ct()
    assert deliver_research(research, archive(research, source)) == []

    [copy] = derived_versions(research)
    key = copy["Key"]
    prefix, _, rest = key.partition("/studies/")
    assert prefix == "derived/lung-ct", f"derived key {key} is not under the project's prefix"
    s3 = s3_client()
    obj = s3.get_object(Bucket=research.derived, Key=key, ChecksumMode="ENABLED")
    data = obj["Body"].read()
    for phi in (*PHI_STRINGS, str(source.SOPInstanceUID), str(source.StudyInstanceUID)):
        assert phi.encode() not in data, f"derived object {key} carries {phi!r}"
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.PatientIdentityRemoved == "YES"
    uids = (out.StudyInstanceUID, out.SeriesInstanceUID, out.SOPInstanceUID)
    assert all(str(u).startswith("2.25.") for u in uids), uids
    assert rest == f"{uids[0]}/series/{uids[1]}/instances/{uids[2]}.dcm"
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"  # the project's option
    assert obj["ServerSideEncryption"] == "aws:kms" and obj["SSEKMSKeyId"] == research.data_key
    assert obj["ContentType"] == "application/dicom"
    assert obj["ChecksumSHA256"], f"derived object {key} has no SHA-256 checksum"
    archived = s3.head_object(Bucket=research.archive, Key=archived_key(source))
    # Only the project: no pointer back to the identified archive object.
    assert obj["Metadata"] == {"project": "lung-ct"}
    assert archived["VersionId"] not in json.dumps(obj["Metadata"])


def test_an_instance_no_rule_matches_is_not_copied(research: Stack) -> None:
    # A CT without BodyPartExamined (a keyword absent from the data set never matches); a PET.
    unmatched = ct()
    assert "BodyPartExamined" not in unmatched
    pet = ct(Modality="PT", BodyPartExamined="CHEST")
    assert deliver_research(research, archive(research, unmatched, pet)) == []
    assert derived_versions(research) == [], "an unrouted instance was copied"
    assert review_versions(research) == []


def test_every_matching_project_gets_its_copy(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_ct = {"name": "all-ct", "match": {"Modality": ["CT"]}}
    monkeypatch.setenv(env.RESEARCH_PROJECTS, json.dumps([LUNG_CT, every_ct]))
    assert deliver_research(stack, archive(stack, chest_ct())) == []
    projects = sorted(v["Key"].split("/")[1] for v in derived_versions(stack))
    assert projects == ["all-ct", "lung-ct"]


def test_two_projects_copies_of_one_instance_cannot_be_joined(
    linked: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The project is the engine's domain: its UIDs and pseudonyms differ from another project's,
    # so two projects' data sets share no key to join on; linkage records are per project.
    every_ct = {"name": "all-ct", "match": {"Modality": ["CT"]}, "options": LUNG_CT["options"]}
    monkeypatch.setenv(env.RESEARCH_PROJECTS, json.dumps([LUNG_CT, every_ct]))
    assert deliver_research(linked, archive(linked, chest_ct())) == []
    s3 = s3_client()
    copies = {}
    for version in derived_versions(linked):
        body = s3.get_object(Bucket=linked.derived, Key=version["Key"])["Body"].read()
        copies[version["Key"].split("/")[1]] = pydicom.dcmread(io.BytesIO(body))
    lung, every = copies["lung-ct"], copies["all-ct"]
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "PatientID"):
        assert lung[keyword].value != every[keyword].value, f"both projects share {keyword}"
    assert lung.StudyDate != every.StudyDate, "both projects share the date offset"
    linked_sops = sorted(i["deid_sop_instance_uid"]["S"] for i in linkage_items(linked))
    assert linked_sops == sorted([lung.SOPInstanceUID, every.SOPInstanceUID])


def test_a_projects_copies_are_consistent_across_runs(research: Stack) -> None:
    # Two instances of one study, each message its own invocation: one de-identified study.
    source = chest_ct()
    messages = archive(research, source, chest_ct(StudyInstanceUID=source.StudyInstanceUID))
    for message in messages:
        assert deliver_research(research, [message]) == []
    studies = {v["Key"].split("/studies/")[1].split("/")[0] for v in derived_versions(research)}
    assert len(derived_versions(research)) == 2 and len(studies) == 1, studies


def message_key(message: dict[str, Any]) -> str:
    [record] = json.loads(message["Body"])["Records"]
    return unquote_plus(str(record["s3"]["object"]["key"]))  # S3 events URL-encode keys


class CountingKms:
    """The function's KMS client, counting GenerateMac calls per message."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.macs: list[bytes] = []

    def generate_mac(self, **kwargs: Any) -> Any:
        self.macs.append(kwargs["Message"])
        return self.client.generate_mac(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_kms_macs_are_cached_within_an_invocation_not_across(
    research: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdas import research as function

    source = chest_ct()
    messages = archive(
        research,
        source,
        chest_ct(StudyInstanceUID=source.StudyInstanceUID),
        chest_ct(StudyInstanceUID=source.StudyInstanceUID),
    )
    instances = [m for m in messages if is_instance_key(message_key(m))]
    assert len(instances) == 3, "expected one message per archived instance"
    kms = CountingKms(function.runtime().copier.kms)
    monkeypatch.setattr(function.runtime().copier, "kms", kms)
    study = f"uid:{source.StudyInstanceUID}".encode()

    def study_macs() -> int:
        return sum(1 for m in kms.macs if m.endswith(study))

    assert deliver_research(research, instances[:2]) == []  # one invocation, two instances
    assert study_macs() == 1, "the study UID was MAC'd once per instance, not per invocation"
    assert deliver_research(research, instances[2:]) == []  # the next invocation
    assert study_macs() == 2, "a MAC outlived its invocation"
    assert len(derived_versions(research)) == 3


def test_a_burned_in_instance_leaves_only_a_review_record(research: Stack) -> None:
    source = chest_ct(BurnedInAnnotation="YES")
    assert deliver_research(research, archive(research, source)) == []

    assert derived_versions(research) == [], "an instance with burned-in text reached derived"
    [record] = review_versions(research)
    key = archived_key(source)
    s3 = s3_client()
    archived = s3.head_object(Bucket=research.archive, Key=key)
    assert record["Key"] == review_key("lung-ct", key, archived["VersionId"])
    digest = hashlib.sha256(f"{key}\0{archived['VersionId']}".encode()).hexdigest()
    assert record["Key"] == f"research-review/lung-ct/{digest}.json"
    obj = s3.get_object(Bucket=research.quarantine, Key=record["Key"])
    assert json.loads(obj["Body"].read()) == {
        "project": "lung-ct",
        "reason": "burned-in-annotation",
        "archive_key": key,
        "archive_version_id": archived["VersionId"],
    }
    assert obj["ServerSideEncryption"] == "aws:kms" and obj["SSEKMSKeyId"] == research.data_key


def test_a_copy_the_leak_check_fails_is_held_not_released(
    linked: Stack, research_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an engine that (by a bug) keeps the patient's name in its output
    deidentify = Deidentifier.deidentify

    def leaky(self: Deidentifier, ds: Dataset) -> Dataset:
        out = deidentify(self, ds)
        out.PatientName = ds.PatientName
        return out

    monkeypatch.setattr(Deidentifier, "deidentify", leaky)
    source = chest_ct()
    # WHEN its instance is routed to a project
    assert deliver_research(linked, archive(linked, source)) == []

    # THEN nothing is released: no copy, no linkage record; a review record says why
    assert derived_versions(linked) == [], "a copy that fails the leak check reached derived"
    assert linkage_items(linked) == [], "a linkage record was written for a copy never released"
    [version] = review_versions(linked)
    record = review_record(linked, version)
    archived = s3_client().head_object(Bucket=linked.archive, Key=archived_key(source))
    assert record["reason"] == "verification-failed"
    assert record["archive_key"] == archived_key(source)
    assert record["archive_version_id"] == archived["VersionId"]
    assert "value-retained (0010,0010)" in record["findings"]
    [held] = held_events(research_log)
    assert held["reason"] == "verification-failed" and held["review_key"] == version["Key"]
    assert "value-retained (0010,0010)" in held["findings"]
    assert problems(RESEARCH, held) == []
    for phi in PHI_STRINGS:
        assert phi not in json.dumps(record), f"the review record carries {phi!r}"
        assert phi not in research_log.getvalue(), f"the research log carries {phi!r}"


def test_a_corrected_rearchive_is_held_and_the_copy_kept(
    research: Stack, research_log: io.StringIO
) -> None:
    # GIVEN an instance whose copy is in derived
    source = chest_ct()
    assert deliver_research(research, archive(research, source)) == []
    [copy] = derived_versions(research)
    # WHEN a corrected version of it is archived under the same key (a non-identifying attribute
    # changed, so its de-identified copy differs under the same de-identified UIDs)
    source.SeriesNumber = int(source.SeriesNumber or 0) + 1
    key = archived_key(source)
    s3_client().put_object(
        Bucket=research.archive, Key=key, Body=encode(source), ChecksumAlgorithm="SHA256"
    )
    corrected = s3_client().head_object(Bucket=research.archive, Key=key)["VersionId"]
    [message] = receive(research, queue_url=research.research_queue_url)
    # What S3 sends for a versioned bucket and moto leaves out (tests/lambdas/conftest.py): without
    # it, idempotency would answer this version's notification from the first one's record.
    body = json.loads(message["Body"])
    body["Records"][0]["s3"]["object"]["versionId"] = corrected
    message["Body"] = json.dumps(body)

    # THEN the record is not failed (no retry to the DLQ), the copy stands, a person reviews
    assert deliver_research(research, [message]) == [], "a corrected re-archive was retried"
    assert derived_versions(research) == [copy], "the existing copy was overwritten"
    [version] = review_versions(research)
    assert review_record(research, version) == {
        "project": "lung-ct",
        "reason": "conflicting-copy",
        "archive_key": key,
        "archive_version_id": corrected,
    }
    [held] = held_events(research_log)
    assert held["reason"] == "conflicting-copy" and "findings" not in held
    assert problems(RESEARCH, held) == []


def test_a_redelivered_message_has_one_effect(research: Stack) -> None:
    messages = archive(research, chest_ct(), chest_ct(BurnedInAnnotation="YES"))
    assert deliver_research(research, messages) == []
    sqs = boto3.client("sqs", region_name=REGION)
    for m in messages:  # at-least-once delivery: the same notifications again
        sqs.send_message(QueueUrl=research.research_queue_url, MessageBody=m["Body"])
    assert (
        deliver_research(research, receive(research, queue_url=research.research_queue_url)) == []
    )
    assert len(derived_versions(research)) == 1, "a redelivered message wrote another copy"
    assert len(review_versions(research)) == 1, "a redelivered message wrote another record"


def test_the_idempotency_record_maps_no_source_to_a_copy(linked: Stack) -> None:
    # The table is shared with ingest: a de-identified UID or derived key next to the source's
    # would be a re-identification map outside the linkage table.
    source = chest_ct()
    assert (
        deliver_research(linked, archive(linked, source, chest_ct(BurnedInAnnotation="YES"))) == []
    )
    [copy] = derived_versions(linked)
    deid_sop = copy["Key"].rsplit("/", 1)[1].removesuffix(".dcm")
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    items = dynamodb.scan(TableName=linked.idempotency_table)["Items"]
    assert items, "no idempotency record was written"
    stored = json.dumps(items)
    for leak in ("2.25.", "derived/", deid_sop, "research-review/"):
        assert leak not in stored, f"the idempotency table holds {leak!r}"
    results = [json.loads(i["data"]["S"]) for i in items if "data" in i]
    assert {"copies": 1, "held": 0} in results and {"copies": 0, "held": 1} in results


def test_a_retry_idempotency_does_not_catch_writes_nothing_new(linked: Stack) -> None:
    # A crash after the writes, before the idempotency record completes: the record is retried.
    messages = archive(linked, chest_ct(), chest_ct(BurnedInAnnotation="YES"))
    assert deliver_research(linked, messages) == []
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for item in dynamodb.scan(TableName=linked.idempotency_table)["Items"]:
        dynamodb.delete_item(TableName=linked.idempotency_table, Key={"id": item["id"]})
    sqs = boto3.client("sqs", region_name=REGION)
    for m in messages:
        sqs.send_message(QueueUrl=linked.research_queue_url, MessageBody=m["Body"])
    assert deliver_research(linked, receive(linked, queue_url=linked.research_queue_url)) == []
    assert len(derived_versions(linked)) == 1, "a retried record wrote another copy"
    assert len(review_versions(linked)) == 1, "a retried record wrote another review record"
    assert len(linkage_items(linked)) == 1


def test_linkage_off_writes_no_linkage_record(research: Stack) -> None:
    assert deliver_research(research, archive(research, chest_ct())) == []
    assert len(derived_versions(research)) == 1
    assert linkage_items(research) == [], "linkage is off, yet the linkage table was written"


def test_linkage_on_stores_the_original_identifiers_encrypted(linked: Stack) -> None:
    source = chest_ct(IssuerOfPatientID="HOSPITAL-A")
    assert deliver_research(linked, archive(linked, source)) == []

    [copy] = derived_versions(linked)
    deid_sop = copy["Key"].rsplit("/", 1)[1].removesuffix(".dcm")
    [item] = linkage_items(linked)
    # The attributes the research role's PutItem condition allows (infra/iam_documents.py).
    assert set(item) == set(LINKAGE_ATTRIBUTES)
    assert item["project"] == {"S": "lung-ct"}
    assert item["deid_sop_instance_uid"] == {"S": deid_sop}
    assert PATIENT_ID.encode() not in item["ciphertext"]["B"]
    kms = boto3.client("kms", region_name=REGION)
    plaintext = kms.decrypt(
        CiphertextBlob=item["ciphertext"]["B"],
        KeyId=linked.linkage_key,
        EncryptionContext={"project": "lung-ct", "deid_sop_instance_uid": deid_sop},
    )["Plaintext"]
    assert json.loads(plaintext) == {
        "patient_id": PATIENT_ID,
        "issuer_of_patient_id": "HOSPITAL-A",
        "study_instance_uid": str(source.StudyInstanceUID),
        "series_instance_uid": str(source.SeriesInstanceUID),
        "sop_instance_uid": str(source.SOPInstanceUID),
    }


def test_sidecars_and_test_events_are_ignored(research: Stack) -> None:
    messages = archive(research, chest_ct())
    keys = [r["s3"]["object"]["key"] for m in messages for r in json.loads(m["Body"])["Records"]]
    assert any(k.endswith(".manifest.json") for k in keys), "no sidecar event to ignore"
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(
        QueueUrl=research.research_queue_url, MessageBody=json.dumps({"Event": "s3:TestEvent"})
    )
    messages += receive(research, queue_url=research.research_queue_url)
    assert deliver_research(research, messages) == []
    [copy] = derived_versions(research)
    assert copy["Key"].endswith(".dcm")
    assert not is_instance_key("studies/1/series/2/instances/3.dcm.manifest.json")
    assert is_instance_key("studies/1/series/2/instances/3.dcm")


def test_a_message_that_is_no_s3_event_fails_alone(research: Stack) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=research.research_queue_url, MessageBody="not an s3 event")
    messages = receive(research, queue_url=research.research_queue_url)
    assert len(deliver_research(research, messages)) == 1


# --- the environment contract ---------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    return {
        env.ARCHIVE_BUCKET: "archive",
        env.DERIVED_BUCKET: "derived",
        env.QUARANTINE_BUCKET: "quarantine",
        env.DATA_KEY_ARN: "arn:data",
        env.PSEUDONYM_KEY_ARN: "arn:hmac",
        env.IDEMPOTENCY_TABLE: "idempotency",
        **extra,
    }


def test_settings_default_to_no_projects_and_linkage_off() -> None:
    settings = ResearchSettings.from_env(_env())
    assert settings.projects == () and not settings.linkage and settings.linkage_key_arn == ""


def test_settings_parse_a_project() -> None:
    raw = json.dumps(
        [{**LUNG_CT, "options": ["clean-descriptors", "retain-safe-private"],
          "safePrivate": ["GEMS_ACQU_01:0x1b", "SIEMENS CSA HEADER:1010"]}]
    )  # fmt: skip
    [project] = parse_research_projects(raw)
    assert project.name == "lung-ct"
    assert dict(project.match) == {
        "Modality": frozenset({"ct"}),
        "BodyPartExamined": frozenset({"chest", "lung"}),
    }
    assert project.options == ("retain-safe-private", "clean-descriptors")
    assert project.safe_private == {("GEMS_ACQU_01", 0x1B), ("SIEMENS CSA HEADER", 0x10)}


def test_linkage_needs_its_key() -> None:
    with pytest.raises(SettingsError, match=env.LINKAGE_KEY_ARN):
        ResearchSettings.from_env(_env(**{env.LINKAGE_TABLE: "linkage"}))
    settings = ResearchSettings.from_env(
        _env(**{env.LINKAGE_TABLE: "linkage", env.LINKAGE_KEY_ARN: "arn:linkage"})
    )
    assert settings.linkage and settings.linkage_key_arn == "arn:linkage"


@pytest.mark.parametrize(
    "project",
    [
        {"name": "Lung", "match": {"Modality": ["CT"]}},
        {"name": "x", "match": {"Modality": ["CT"]}},
        {"name": "lung", "match": {}},
        {"name": "lung", "match": {"Modality": []}},
        {"name": "lung", "match": {"Modality": "CT"}},
        {"name": "lung", "match": {"not a keyword": ["CT"]}},
        {"name": "lung", "match": {"Modality": ["CT"]}, "options": ["retain-everything"]},
        {
            "name": "lung",
            "match": {"Modality": ["CT"]},
            "options": ["retain-long-full-dates", "retain-long-modified-dates"],
        },
        {"name": "lung", "match": {"Modality": ["CT"]}, "safePrivate": ["no-element"]},
        {"name": "lung", "match": {"Modality": ["CT"]}, "route": "all"},
    ],
)
def test_malformed_projects_are_refused(project: dict[str, Any]) -> None:
    with pytest.raises(SettingsError):
        parse_research_projects(json.dumps([project]))


def test_project_names_are_unique() -> None:
    with pytest.raises(SettingsError, match="unique"):
        parse_research_projects(json.dumps([BRAIN_MR, BRAIN_MR]))


def test_an_unknown_dicom_keyword_stops_the_function_at_start(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = {"name": "typo", "match": {"Modallity": ["CT"]}}
    monkeypatch.setenv(env.RESEARCH_PROJECTS, json.dumps([project]))
    from lambdas.research import Runtime

    with pytest.raises(SettingsError, match="Modallity"):
        Runtime.from_environment()
