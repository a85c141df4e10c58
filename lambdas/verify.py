"""Verify function: re-read archived instances, recompute SHA-256, check the signed manifest.

Scheduled daily over a random sample of the index (``PACS_VERIFY_SAMPLE_SIZE``), or invoked with
``{"sop_instance_uids": [...]}`` for specific instances. One structured event per instance:
``verified`` or ``integrity-failure`` with the failed checks (no PHI: UIDs and digests only).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdas.dicom_checks import CHUNK, loggable_uid
from lambdas.manifest import ManifestError, parse_sidecar
from lambdas.settings import VerifySettings

logger = Logger(service="pacs-verify")
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@dataclass
class Verdict:
    sop_instance_uid: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Verifier:
    """Checks one index row against the archive and the signing key."""

    def __init__(self, settings: VerifySettings, *, s3: Any, kms: Any, dynamodb: Any) -> None:
        self.settings = settings
        self.s3 = s3
        self.kms = kms
        self.dynamodb = dynamodb

    def sample(self, size: int) -> list[dict[str, Any]]:
        """About ``size`` archived rows from a random point of the table's hash order."""
        rows: dict[str, dict[str, Any]] = {}
        start: dict[str, Any] | None = {"sop_instance_uid": {"S": f"2.25.{secrets.randbits(64)}"}}
        wrapped = False
        while len(rows) < size:
            kwargs: dict[str, Any] = {"TableName": self.settings.index_table, "Limit": size}
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = self.dynamodb.scan(**kwargs)
            for item in page.get("Items", []):
                if item["status"]["S"] == "archived":
                    rows[item["sop_instance_uid"]["S"]] = item
            start = page.get("LastEvaluatedKey")
            if start is None:
                if wrapped:
                    break
                wrapped = True  # continue from the beginning of the table once
        return list(rows.values())[:size]

    def row(self, sop_instance_uid: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=self.settings.index_table,
            Key={"sop_instance_uid": {"S": sop_instance_uid}},
            ConsistentRead=True,
        ).get("Item")
        return item if isinstance(item, dict) else None

    def verify(self, row: dict[str, Any]) -> Verdict:
        uid = row["sop_instance_uid"]["S"]
        verdict = Verdict(uid)
        if row.get("status", {}).get("S") != "archived":
            verdict.problems.append("index row is not archived")
            return verdict
        bucket, key = row["archive_bucket"]["S"], row["archive_key"]["S"]
        version = row["archive_version_id"]["S"]
        obj = self.s3.get_object(Bucket=bucket, Key=key, VersionId=version)
        digest = hashlib.sha256()
        size = 0
        for chunk in obj["Body"].iter_chunks(CHUNK):
            digest.update(chunk)
            size += len(chunk)
        sha256 = digest.hexdigest()
        if sha256 != row["sha256"]["S"]:
            verdict.problems.append("object SHA-256 differs from the index")

        sidecar_obj = self.s3.get_object(
            Bucket=bucket, Key=row["sidecar_key"]["S"], VersionId=row["sidecar_version_id"]["S"]
        )
        try:
            sidecar = parse_sidecar(sidecar_obj["Body"].read())
            manifest = sidecar.manifest
        except ManifestError as exc:
            verdict.problems.append(f"sidecar: {exc}")
            return verdict
        expected = {
            "bucket": bucket,
            "key": key,
            "version_id": version,
            "sha256": sha256,
            "size": size,
            "sop_instance_uid": uid,
        }
        for name, value in expected.items():
            if getattr(manifest, name) != value:
                verdict.problems.append(f"manifest {name} differs from the archived object")
        try:
            valid = self.kms.verify(
                KeyId=self.settings.signing_key_arn,
                Message=sidecar.manifest_bytes,
                MessageType="RAW",
                Signature=sidecar.signature,
                SigningAlgorithm=sidecar.signing_algorithm,
            ).get("SignatureValid", False)
        except self.kms.exceptions.KMSInvalidSignatureException:
            valid = False  # how KMS answers a bad signature (moto returns SignatureValid=false)
        if not valid:
            verdict.problems.append("manifest signature does not verify")
        return verdict


def _verifier() -> Verifier:
    session = boto3.session.Session()
    return Verifier(
        VerifySettings.from_env(),
        s3=session.client("s3", config=BOTO_CONFIG),
        kms=session.client("kms", config=BOTO_CONFIG),
        dynamodb=session.client("dynamodb", config=BOTO_CONFIG),
    )


def run(verifier: Verifier, event: dict[str, Any]) -> dict[str, Any]:
    """Verify the requested instances (or a sample) and log one event per instance."""
    requested = event.get("sop_instance_uids")
    if requested:
        rows = []
        for uid in requested:
            row = verifier.row(str(uid))
            if row is None:
                # The UID comes from the invocation: logged only if it is one.
                logger.error(
                    "integrity-failure",
                    extra={
                        "sop_instance_uid": loggable_uid(str(uid)),
                        "problems": ["no index row"],
                    },
                )
            else:
                rows.append(row)
        missing = len(requested) - len(rows)
    else:
        rows = verifier.sample(verifier.settings.sample_size)
        missing = 0
    failed = missing
    for row in rows:
        try:
            verdict = verifier.verify(row)
        except ClientError as exc:
            # A missing version, a denied read: an integrity failure of this row, not of the run.
            code = exc.response.get("Error", {}).get("Code", "unknown")
            verdict = Verdict(row["sop_instance_uid"]["S"], [f"cannot read the archive: {code}"])
        if verdict.ok:
            logger.info("verified", extra={"sop_instance_uid": verdict.sop_instance_uid})
        else:
            failed += 1
            logger.error(
                "integrity-failure",
                extra={"sop_instance_uid": verdict.sop_instance_uid, "problems": verdict.problems},
            )
    return {"checked": len(rows) + missing, "failed": failed}


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run(_verifier(), event or {})
