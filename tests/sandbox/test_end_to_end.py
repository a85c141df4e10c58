"""End to end: the sandbox stack up in the emulator, DICOM through it, the controls hold, down.

One emulator for the module (bringing it up deploys ~290 resources): the tests read what one
`pacs-kit sandbox up` + `ingest --samples` produced, in the order an operator would look. The
sandbox stack has a research project (ct-research: CT, with linkage), so the ingest also made a
de-identified research copy of the CT study.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import pydicom
import pytest
from botocore.exceptions import ClientError

from lambdas.deid.verify import verify
from lambdas.manifest import SIDECAR_SUFFIX, parse_sidecar, sidecar_document
from pacs_kit.program import Project, run_program
from pacs_kit.sandbox import server
from pacs_kit.sandbox.checks import run_checks
from pacs_kit.sandbox.cli import type_counts, up
from pacs_kit.sandbox.lambda_runtime import Invocation
from pacs_kit.sandbox.operate import (
    IDENTIFYING,
    FileOutcome,
    audit_events,
    ingest,
    role_session,
    run_schedules,
    verify_research_copies,
    verify_signatures,
)
from pacs_kit.sandbox.samples import Sample, samples
from pacs_kit.sandbox.state import SandboxState

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@dataclass
class Sandbox:
    state: SandboxState
    state_dir: Path
    emulator: server.Emulator
    samples: list[Sample]
    outcomes: list[FileOutcome]
    invocations: list[Invocation]
    # (access key, secret, token) of every AWS client the handlers created
    credentials: set[tuple[str, str, str | None]]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    state_dir = tmp_path_factory.mktemp("sandbox")
    lines: list[str] = []
    state = up("sandbox", state_dir, lines.append)
    emulator = server.running(state_dir)
    assert emulator is not None, "the emulator is not running after up"
    try:
        sample_set = samples()
        credentials: set[tuple[str, str, str | None]] = set()

        def record(client: Any) -> None:
            frozen = client._request_signer._credentials.get_frozen_credentials()
            credentials.add((frozen.access_key, frozen.secret_key, frozen.token))

        outcomes, invocations = ingest(
            state, [(s.label, s.body) for s in sample_set], client_shims=[record]
        )
        yield Sandbox(state, state_dir, emulator, sample_set, outcomes, invocations, credentials)
    finally:
        server.stop(state_dir)


def test_every_resource_type_of_the_stack_is_created_or_reported_not_emulated(
    sandbox: Sandbox,
) -> None:
    plan = run_program(Project.find(), "sandbox", config=sandbox.state.config)
    declared = {r.type for r in plan.resources if r.custom and not r.type.startswith("pulumi:")}
    counts = type_counts(sandbox.state)
    assert set(counts) == declared
    for r in sandbox.state.resources:
        if r.status == "not-emulated":
            assert r.notes and r.notes[0], f"{r.type} {r.name} is not emulated without a reason"
    created = sum(c["created"] for c in counts.values())
    assert created >= 0.95 * sum(sum(c.values()) for c in counts.values())


def test_the_trust_store_is_reported_not_emulated_with_the_reason(sandbox: Sandbox) -> None:
    stores = sandbox.state.of_type("aws:lb/trustStore:TrustStore")
    assert stores and all(s.status == "not-emulated" for s in stores)
    assert "trust store" in stores[0].notes[0].lower()


def test_the_studies_are_archived_and_the_hostile_files_quarantined_with_their_reasons(
    sandbox: Sandbox,
) -> None:
    for sample, outcome in zip(sandbox.samples, sandbox.outcomes, strict=True):
        assert outcome.outcome == sample.expected, sample.label
        if sample.reason:
            assert sample.reason in outcome.reasons, sample.label
    archive = sandbox.state.admin().client("s3", sandbox.state.region)
    bucket = sandbox.state.outputs["buckets"]["archive"]
    for outcome in sandbox.outcomes:
        if outcome.archive_key:
            head = archive.head_object(Bucket=bucket, Key=outcome.archive_key)
            assert head["ObjectLockMode"] == "COMPLIANCE", outcome.archive_key
            assert head["ServerSideEncryption"] == "aws:kms", outcome.archive_key


def test_each_function_ran_with_credentials_of_its_own_role(sandbox: Sandbox) -> None:
    names = [sandbox.state.outputs["functions"][f] for f in ("ingest", "research")]
    assert {i.function for i in sandbox.invocations} == set(names)
    assert sandbox.credentials, "the handler created no AWS client"
    assert sandbox.state.admin_access_key_id not in {c[0] for c in sandbox.credentials}
    identities = set()
    with server.iam_paused(sandbox.state.endpoint):
        for key, secret, token in sandbox.credentials:
            sts = boto3.session.Session(
                aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token
            ).client("sts", region_name=sandbox.state.region, endpoint_url=sandbox.state.endpoint)
            identities.add(sts.get_caller_identity()["Arn"])
    account = sandbox.state.account_id
    assert identities == {
        f"arn:aws:sts::{account}:assumed-role/{_role_arn(sandbox, n).rsplit('/', 1)[-1]}/{n}"
        for n in names
    }


def _role_arn(sandbox: Sandbox, function: str) -> str:
    """The execution role of the function named ``function``."""
    return str(
        next(
            f.outputs["role"]
            for f in sandbox.state.created("aws:lambda/function:Function")
            if f.outputs["name"] == function
        )
    )


def test_manifest_signatures_verify_with_the_public_key_and_in_the_verify_function(
    sandbox: Sandbox,
) -> None:
    archived = [o.archive_key for o in sandbox.outcomes if o.archive_key]
    assert len(archived) == 2
    checks = verify_signatures(sandbox.state, archived)
    assert [c.valid for c in checks] == [True, True], [c.detail for c in checks]
    runs = run_schedules(sandbox.state)
    results = [r.result for r in runs if r.function == sandbox.state.outputs["functions"]["verify"]]
    assert results == [{"checked": 2, "failed": 0}]


def test_object_lock_refuses_even_the_administrator_a_delete(sandbox: Sandbox) -> None:
    s3 = sandbox.state.admin().client("s3", sandbox.state.region)
    bucket = sandbox.state.outputs["buckets"]["archive"]
    key = next(o.archive_key for o in sandbox.outcomes if o.archive_key)
    version = s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.head_object(Bucket=bucket, Key=key, VersionId=version)["ContentLength"] > 0


def test_the_ingest_role_is_denied_a_delete_by_iam(sandbox: Sandbox) -> None:
    functions = sandbox.state.created("aws:lambda/function:Function")
    ingest_fn = next(
        f for f in functions if f.outputs["name"] == sandbox.state.outputs["functions"]["ingest"]
    )
    with server.iam_paused(sandbox.state.endpoint):  # Lambda's assumption of the role
        session = role_session(sandbox.state, ingest_fn.outputs["role"], "e2e-delete")
    s3 = session.client("s3", endpoint_url=sandbox.state.endpoint)
    bucket = sandbox.state.outputs["buckets"]["inbox"]
    key = sandbox.outcomes[0].key
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=key)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # ... while the same role may read it (the denial is the grant's, not a broken session).
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0


def test_an_audit_event_reaches_the_siem_sink_over_https(sandbox: Sandbox) -> None:
    uids = {o.sop_instance_uid for o in sandbox.outcomes if o.outcome == "archived"}
    events = server.siem_events(sandbox.state_dir)
    archived = [e for e in events if isinstance(e, dict) and e.get("message") == "archived"]
    assert {e.get("sop_instance_uid") for e in archived} >= uids
    assert sandbox.emulator.siem_url.startswith("https://127.0.0.1:")
    assert not any("CompressedSamples" in json.dumps(e) for e in events), "a patient name left"


def test_down_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    emulator = server.start(tmp_path)
    assert server.running(tmp_path) is not None
    assert server.stop(tmp_path)
    with pytest.raises(ProcessLookupError):
        os.kill(emulator.pid, 0)
    for url in (emulator.endpoint, emulator.siem_url):
        parsed = urlparse(url)
        with socket.socket() as probe:
            assert probe.connect_ex((parsed.hostname, parsed.port)) != 0, url
    assert server.running(tmp_path) is None
    assert not server.stop(tmp_path)


def test_the_providers_default_tags_reach_the_resources(sandbox: Sandbox) -> None:
    clients = sandbox.state.admin()
    bucket = sandbox.state.outputs["buckets"]["archive"]
    s3_tags = clients.client("s3", sandbox.state.region).get_bucket_tagging(Bucket=bucket)
    tags = {t["Key"]: t["Value"] for t in s3_tags["TagSet"]}
    assert tags["managed-by"] == "pulumi" and tags["stack"] == "sandbox", tags
    key = sandbox.state.outputs["keyArns"]["archive"]
    kms_tags = clients.client("kms", sandbox.state.region).list_resource_tags(KeyId=key)["Tags"]
    assert {"TagKey": "managed-by", "TagValue": "pulumi"} in kms_tags


# What the sample studies carry that must never leave the datasets (pydicom's test files).
PHI = ("CompressedSamples", "1CT1", "4MR1")


def test_no_patient_data_in_anything_the_sandbox_wrote_or_logged(sandbox: Sandbox) -> None:
    for path in sorted(p for p in sandbox.state_dir.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", "replace")
        assert not [v for v in PHI if v in text], path
    logs = sandbox.state.admin().client("logs", sandbox.state.region)
    for invocation in sandbox.invocations:
        assert not [v for v in PHI if v in "\n".join(invocation.log_lines)]
    logged = {}
    for group in logs.describe_log_groups()["logGroups"]:
        events = logs.filter_log_events(logGroupName=group["logGroupName"])["events"]
        logged[group["logGroupName"]] = "\n".join(e["message"] for e in events)
        assert not [v for v in PHI if v in logged[group["logGroupName"]]], group["logGroupName"]
    ingest_logs = logged[f"/aws/lambda/{sandbox.state.outputs['functions']['ingest']}"]
    assert '"archived"' in ingest_logs and '"quarantined"' in ingest_logs  # what was searched


def _forged_instance(sandbox: Sandbox, sign_with: str, body: bytes) -> str:
    """An extra archive key whose sidecar claims the CT study's manifest, signed by ``sign_with``;
    its object holds ``body``."""
    state = sandbox.state
    s3 = state.admin().client("s3", state.region)
    kms = state.admin().client("kms", state.region)
    bucket = state.outputs["buckets"]["archive"]
    original = next(o.archive_key for o in sandbox.outcomes if o.archive_key)
    sidecar = parse_sidecar(
        s3.get_object(Bucket=bucket, Key=original + SIDECAR_SUFFIX)["Body"].read()
    )
    key = f"{original.rsplit('/', 1)[0]}/1.2.3.999.dcm"
    version = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")[
        "VersionId"
    ]
    manifest = dataclasses.replace(sidecar.manifest, key=key, version_id=version)
    signed = manifest.canonical()
    signature = kms.sign(
        KeyId=sign_with, Message=signed, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
    )["Signature"]
    s3.put_object(
        Bucket=bucket,
        Key=key + SIDECAR_SUFFIX,
        Body=sidecar_document(signed, signature, sign_with),
        ChecksumAlgorithm="SHA256",
    )
    return key


def test_a_sidecar_signed_by_another_key_is_refused(sandbox: Sandbox) -> None:
    kms = sandbox.state.admin().client("kms", sandbox.state.region)
    other = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    original = next(o for o in sandbox.samples if o.expected == "archived").body
    key = _forged_instance(sandbox, other, original)
    [check] = verify_signatures(sandbox.state, [key])
    assert not check.valid and "not the stack's" in check.detail


def test_an_object_that_differs_from_its_signed_manifest_is_refused(sandbox: Sandbox) -> None:
    signing = sandbox.state.outputs["keyArns"]["signing"]
    key = _forged_instance(sandbox, signing, b"DICM but not the signed bytes")
    [check] = verify_signatures(sandbox.state, [key])
    assert not check.valid and "differs from its manifest" in check.detail


# --- research copies (issue 8): the sandbox stack's ct-research project, linkage on -------------


@dataclass
class ResearchCopy:
    key: str
    body: bytes
    copy: pydicom.Dataset
    original: pydicom.Dataset


def _dataset(body: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(body))


@pytest.fixture(scope="module")
def ct_copy(sandbox: Sandbox) -> ResearchCopy:
    """The one copy under derived/ct-research/ and the archived CT instance it came from."""
    state = sandbox.state
    s3 = state.admin().client("s3", state.region)
    derived = state.outputs["buckets"]["derived"]
    listed = s3.list_objects_v2(Bucket=derived, Prefix="derived/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert len(keys) == 1 and keys[0].startswith("derived/ct-research/"), keys
    body = s3.get_object(Bucket=derived, Key=keys[0])["Body"].read()
    ct = next(o for o in sandbox.outcomes if o.label.startswith("CT_small"))
    archive = state.outputs["buckets"]["archive"]
    original = s3.get_object(Bucket=archive, Key=ct.archive_key)["Body"].read()
    return ResearchCopy(keys[0], body, _dataset(body), _dataset(original))


def _research_events(sandbox: Sandbox) -> list[dict[str, Any]]:
    research = sandbox.state.outputs["functions"]["research"]
    return audit_events(i for i in sandbox.invocations if i.function == research)


def test_the_ct_study_is_copied_under_its_project_with_keyed_uids(ct_copy: ResearchCopy) -> None:
    uids = [str(ct_copy.copy[k].value) for k in ("StudyInstanceUID", "SeriesInstanceUID")]
    uids.append(str(ct_copy.copy.SOPInstanceUID))
    assert all(u.startswith("2.25.") for u in uids), uids
    assert ct_copy.key == (
        f"derived/ct-research/studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}.dcm"
    )
    assert uids[2] != str(ct_copy.original.SOPInstanceUID)


def test_the_copy_passes_verify_with_its_projects_options(ct_copy: ResearchCopy) -> None:
    options = ["retain-long-modified-dates", "clean-descriptors"]  # Pulumi.sandbox.yaml
    assert verify(ct_copy.original, ct_copy.copy, options=options) == []


def test_no_identifying_value_of_the_original_is_in_the_copys_bytes(ct_copy: ResearchCopy) -> None:
    values = {k: str(ct_copy.original.get(k, "") or "").strip() for k in IDENTIFYING}
    present = {k: v for k, v in values.items() if v}
    assert {"PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID"} <= set(present)
    assert [k for k, v in present.items() if v.encode() in ct_copy.body] == []


def test_the_research_function_reports_the_copy_and_the_mr_not_routed(sandbox: Sandbox) -> None:
    by_label = {o.label.split(" ")[0]: o.sop_instance_uid for o in sandbox.outcomes}
    events = _research_events(sandbox)
    copied = [e for e in events if e.get("message") == "research-copied"]
    assert [(e["project"], e["options"], e["sop_instance_uid"], e["linked"]) for e in copied] == [
        (
            "ct-research",
            ["retain-long-modified-dates", "clean-descriptors"],
            by_label["CT_small.dcm"],
            True,
        )
    ]
    not_routed = [e for e in events if e.get("message") == "research-not-routed"]
    assert [e["sop_instance_uid"] for e in not_routed] == [by_label["MR_small.dcm"]]


def test_the_linkage_row_decrypts_to_the_original_sop_instance_uid(
    sandbox: Sandbox, ct_copy: ResearchCopy
) -> None:
    state = sandbox.state
    clients = state.admin()
    deid_sop = str(ct_copy.copy.SOPInstanceUID)
    table = state.outputs["research"]["linkageTable"]
    rows = clients.client("dynamodb", state.region).scan(TableName=table)["Items"]
    assert [(r["deid_sop_instance_uid"]["S"], r["project"]["S"]) for r in rows] == [
        (deid_sop, "ct-research")
    ]
    plaintext = clients.client("kms", state.region).decrypt(
        CiphertextBlob=rows[0]["ciphertext"]["B"],
        EncryptionContext={"project": "ct-research", "deid_sop_instance_uid": deid_sop},
    )["Plaintext"]
    assert json.loads(plaintext)["sop_instance_uid"] == str(ct_copy.original.SOPInstanceUID)


def test_verify_research_copies_checks_the_copy_and_the_routing(sandbox: Sandbox) -> None:
    checks = verify_research_copies(sandbox.state, sandbox.outcomes, sandbox.invocations)
    assert [(c.outcome, c.project, c.passed) for c in checks] == [
        ("copied", "ct-research", True),
        ("not-routed", None, True),
    ], [c.detail for c in checks]
    assert "linkage record decrypts to the original" in checks[0].detail


def test_verify_research_copies_fails_a_copy_that_kept_an_identifier(
    sandbox: Sandbox, ct_copy: ResearchCopy
) -> None:
    # GIVEN the copy replaced behind the function's back by one that kept the PatientID
    state = sandbox.state
    s3 = state.admin().client("s3", state.region)
    derived = state.outputs["buckets"]["derived"]
    leaky = ct_copy.copy.copy()
    leaky.PatientID = ct_copy.original.PatientID
    buffer = io.BytesIO()
    leaky.save_as(buffer, enforce_file_format=True)
    s3.put_object(Bucket=derived, Key=ct_copy.key, Body=buffer.getvalue())
    try:
        # WHEN the copies are checked THEN the CT copy fails, naming the keyword, not the value
        checks = verify_research_copies(state, sandbox.outcomes, sandbox.invocations)
        [copied] = [c for c in checks if c.outcome == "copied"]
        assert not copied.passed and "PatientID" in copied.detail, copied.detail
        assert str(ct_copy.original.PatientID) not in copied.detail
    finally:
        s3.put_object(Bucket=derived, Key=ct_copy.key, Body=ct_copy.body)


def _research_session(sandbox: Sandbox, name: str) -> boto3.session.Session:
    role = _role_arn(sandbox, sandbox.state.outputs["functions"]["research"])
    with server.iam_paused(sandbox.state.endpoint):  # Lambda's assumption of the role
        return role_session(sandbox.state, role, name)


def test_the_research_role_is_denied_a_delete_of_its_copy(
    sandbox: Sandbox, ct_copy: ResearchCopy
) -> None:
    s3 = _research_session(sandbox, "e2e-research-delete").client(
        "s3", endpoint_url=sandbox.state.endpoint
    )
    derived = sandbox.state.outputs["buckets"]["derived"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=derived, Key=ct_copy.key)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # ... while the same role may read its copy back (the denial is the grant's).
    assert s3.head_object(Bucket=derived, Key=ct_copy.key)["ContentLength"] == len(ct_copy.body)


# Not here: that the research role cannot read the linkage table. moto authorises DynamoDB only on
# '*', so the sandbox re-grants the role's idempotency-table GetItem on '*'
# (sandbox-moto-resource-star-shim) and moto could not refuse it; tests/infra/test_research.py
# proves the PutItem-only grant on the plan.


def test_the_linkage_table_passes_the_table_live_checks(sandbox: Sandbox) -> None:
    table = sandbox.state.outputs["research"]["linkageTable"]
    with server.iam_paused(sandbox.state.endpoint):
        checks = [c for c in run_checks(sandbox.state) if c.resource == table]
    # (the reidentification role shares the table's name: its checks are not the table's)
    verdicts = {c.id.rsplit("/", 1)[-1]: c.passed for c in checks if "/table-" in c.id}
    assert verdicts == {
        "table-encryption": True,
        "table-point-in-time-recovery": True,
        "table-deletion-protection": True,
    }, [(c.id, c.detail) for c in checks]
