"""Sandbox handlers for the data plane: S3, KMS, IAM, DynamoDB, SQS, SNS, Secrets Manager, Backup.

Each handler creates one Pulumi resource in the emulator (moto) through boto3, applying every input
that has a meaning in AWS, and returns pulumi-aws's id for the type with the outputs AWS derives
(the same keys :class:`pacs_kit.program.PlanMocks` derives offline, with the emulator's values).
A security-relevant input the emulator stores but does not enforce, or drops, is reported with
``ctx.note``; a resource the emulator cannot represent raises :class:`NotEmulated`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pacs_kit.sandbox.emulate import Context, Created, Handler, NotEmulated

_POLICY_NOT_EVALUATED = (
    "resource policy stored, not evaluated by moto (it enforces identity policies only)"
)


# --- small conversions ------------------------------------------------------------------------


def _int(value: Any) -> int:
    """A Pulumi number (a float under the mock runtime) as the int AWS wants."""
    return int(value)


def _str(value: Any) -> str:
    """A scalar attribute as AWS's string form (SQS/SNS attributes are all strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _tag_list(tags: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """Pulumi's tag map as AWS's ``[{Key, Value}]``."""
    return [{"Key": str(k), "Value": str(v)} for k, v in (tags or {}).items()]


def _present(inputs: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The inputs among ``keys`` that are set (not None)."""
    return {k: inputs[k] for k in keys if inputs.get(k) is not None}


def _policy_text(policy: Any) -> str:
    """A policy input (a JSON string, or a document) as JSON text."""
    return policy if isinstance(policy, str) else json.dumps(policy)


def _named(ctx: Context, inputs: Mapping[str, Any]) -> str:
    """The resource's name: ``name``, else ``namePrefix`` + the Pulumi name."""
    return str(inputs.get("name") or f"{inputs.get('namePrefix') or ''}{ctx.name}")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# --- S3 -----------------------------------------------------------------------------------------

_BUCKET_INPUTS = ("bucket", "bucketPrefix", "objectLockEnabled", "tags", "forceDestroy", "region")


def _bucket(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucket:Bucket: CreateBucket (+ location, Object Lock) and its tags; id = name."""
    name = inputs.get("bucket") or f"{inputs.get('bucketPrefix') or ctx.name}-sandbox"
    s3 = ctx.client("s3")
    request: dict[str, Any] = {"Bucket": name}
    if ctx.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
    if inputs.get("objectLockEnabled"):
        request["ObjectLockEnabledForBucket"] = True
    s3.create_bucket(**request)
    if inputs.get("tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tag_list(inputs["tags"])})
    region = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
    return name, {
        "bucket": name,
        "arn": f"arn:aws:s3:::{name}",
        "region": region,
        "bucketDomainName": f"{name}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
    }


def _bucket_versioning(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketVersioning:BucketVersioning: PutBucketVersioning; id = bucket."""
    bucket = inputs["bucket"]
    config = inputs.get("versioningConfiguration") or {}
    status = config.get("status", "Enabled")
    if status == "Disabled":
        # pulumi-aws: "Disabled" on a new bucket means never versioned; there is nothing to put.
        return bucket, {}
    request: dict[str, Any] = {"Status": status}
    if config.get("mfaDelete"):
        request["MFADelete"] = config["mfaDelete"]
        if config["mfaDelete"] == "Enabled":
            ctx.note("MFA delete not enforced by moto: it stores the flag, deletes need no MFA")
    extra = _present(inputs, "mfa", "expectedBucketOwner")
    ctx.client("s3").put_bucket_versioning(
        Bucket=bucket,
        VersioningConfiguration=request,
        **({"MFA": extra["mfa"]} if "mfa" in extra else {}),
        **(
            {"ExpectedBucketOwner": extra["expectedBucketOwner"]}
            if "expectedBucketOwner" in extra
            else {}
        ),
    )
    return bucket, {}


def _object_lock(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketObjectLockConfiguration: PutObjectLockConfiguration; id = bucket."""
    bucket = inputs["bucket"]
    config: dict[str, Any] = {"ObjectLockEnabled": inputs.get("objectLockEnabled") or "Enabled"}
    retention = (inputs.get("rule") or {}).get("defaultRetention")
    if retention:
        default: dict[str, Any] = {"Mode": retention["mode"]}
        if retention.get("days") is not None:
            default["Days"] = _int(retention["days"])
        if retention.get("years") is not None:
            default["Years"] = _int(retention["years"])
        config["Rule"] = {"DefaultRetention": default}
    request: dict[str, Any] = {"Bucket": bucket, "ObjectLockConfiguration": config}
    if inputs.get("token"):
        request["Token"] = inputs["token"]
    ctx.client("s3").put_object_lock_configuration(**request)
    ctx.note(
        "object lock retention can be shortened by moto's PutObjectRetention (AWS refuses for "
        "COMPLIANCE); version deletes under retention are refused as in AWS"
    )
    return bucket, {}


def _sse_rule(ctx: Context, rule: Mapping[str, Any]) -> dict[str, Any]:
    """One server-side encryption rule in S3's shape."""
    default = rule.get("applyServerSideEncryptionByDefault") or {}
    by_default: dict[str, Any] = {"SSEAlgorithm": default.get("sseAlgorithm", "AES256")}
    if default.get("kmsMasterKeyId"):
        by_default["KMSMasterKeyID"] = default["kmsMasterKeyId"]
    out: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": by_default}
    if rule.get("bucketKeyEnabled") is not None:
        out["BucketKeyEnabled"] = bool(rule["bucketKeyEnabled"])
    if rule.get("blockedEncryptionTypes"):
        out["BlockedEncryptionTypes"] = {"EncryptionType": list(rule["blockedEncryptionTypes"])}
        ctx.note(
            "blockedEncryptionTypes "
            f"{list(rule['blockedEncryptionTypes'])} not enforced by moto: it drops the field "
            "and accepts SSE-C uploads"
        )
    return out


def _bucket_encryption(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketServerSideEncryptionConfiguration: PutBucketEncryption; id = bucket."""
    bucket = inputs["bucket"]
    rules = [_sse_rule(ctx, rule) for rule in inputs.get("rules") or []]
    if len(rules) > 1:
        # moto keeps a single <Rule>; AWS accepts only one rule per bucket as well.
        ctx.note("only the first encryption rule is kept by moto")
    ctx.client("s3").put_bucket_encryption(
        Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules}
    )
    return bucket, {}


def _public_access_block(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketPublicAccessBlock: PutPublicAccessBlock; id = bucket."""
    bucket = inputs["bucket"]
    ctx.client("s3").put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": bool(inputs.get("blockPublicAcls")),
            "IgnorePublicAcls": bool(inputs.get("ignorePublicAcls")),
            "BlockPublicPolicy": bool(inputs.get("blockPublicPolicy")),
            "RestrictPublicBuckets": bool(inputs.get("restrictPublicBuckets")),
        },
    )
    ctx.note("public access block stored, not enforced by moto (public policies/ACLs accepted)")
    return bucket, {}


def _ownership_controls(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketOwnershipControls: PutBucketOwnershipControls; id = bucket."""
    bucket = inputs["bucket"]
    ownership = (inputs.get("rule") or {})["objectOwnership"]
    ctx.client("s3").put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": ownership}]}
    )
    return bucket, {}


def _bucket_policy(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketPolicy:BucketPolicy: PutBucketPolicy; id = bucket."""
    bucket = inputs["bucket"]
    policy = _policy_text(inputs["policy"])
    ctx.client("s3").put_bucket_policy(Bucket=bucket, Policy=policy)
    # The emulator runs with shims.bucket_policies_are_stored_not_evaluated: moto's own check
    # ignores principals and conditions (it would refuse every object request to the bucket).
    ctx.note("bucket policy stored, not evaluated by the emulator (IAM enforcement decides)")
    return bucket, {}


def _statements(policy: str) -> list[dict[str, Any]]:
    """A policy document's statements as a list."""
    statements = json.loads(policy).get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _lifecycle_filter(flt: Mapping[str, Any] | None, legacy_prefix: Any) -> dict[str, Any]:
    """A lifecycle rule's filter in S3's shape; no filter (or ``{}``) is the whole bucket."""
    flt = flt or {}
    and_ = flt.get("and")
    if and_:
        out: dict[str, Any] = {}
        if and_.get("prefix") is not None:
            out["Prefix"] = and_["prefix"]
        if and_.get("tags"):
            out["Tags"] = _tag_list(and_["tags"])
        for key in ("objectSizeGreaterThan", "objectSizeLessThan"):
            if and_.get(key) is not None:
                out[key[0].upper() + key[1:]] = _int(and_[key])
        return {"And": out}
    if flt.get("tag"):
        return {"Tag": {"Key": flt["tag"]["key"], "Value": flt["tag"]["value"]}}
    for key in ("objectSizeGreaterThan", "objectSizeLessThan"):
        if flt.get(key) is not None:
            return {key[0].upper() + key[1:]: _int(flt[key])}
    prefix = flt.get("prefix")
    if prefix is None:
        prefix = legacy_prefix
    # An empty <Filter/> means "every object" in AWS; moto needs it spelled as an empty prefix.
    return {"Prefix": prefix or ""}


def _lifecycle_transition(item: Mapping[str, Any], noncurrent: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"StorageClass": item["storageClass"]}
    if noncurrent:
        if item.get("noncurrentDays") is not None:
            out["NoncurrentDays"] = _int(item["noncurrentDays"])
        if item.get("newerNoncurrentVersions") is not None:
            out["NewerNoncurrentVersions"] = _int(item["newerNoncurrentVersions"])
    else:
        if item.get("days") is not None:
            out["Days"] = _int(item["days"])
        if item.get("date"):
            out["Date"] = item["date"]
    return out


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One pulumi-aws lifecycle rule in S3's shape."""
    out: dict[str, Any] = {
        "ID": rule["id"],
        "Status": rule.get("status", "Enabled"),
        "Filter": _lifecycle_filter(rule.get("filter"), rule.get("prefix")),
    }
    expiration = rule.get("expiration")
    if expiration:
        exp: dict[str, Any] = {}
        if expiration.get("days") is not None:
            exp["Days"] = _int(expiration["days"])
        if expiration.get("date"):
            exp["Date"] = expiration["date"]
        if expiration.get("expiredObjectDeleteMarker") is not None:
            exp["ExpiredObjectDeleteMarker"] = bool(expiration["expiredObjectDeleteMarker"])
        out["Expiration"] = exp
    if rule.get("transitions"):
        out["Transitions"] = [_lifecycle_transition(t, False) for t in rule["transitions"]]
    if rule.get("noncurrentVersionTransitions"):
        out["NoncurrentVersionTransitions"] = [
            _lifecycle_transition(t, True) for t in rule["noncurrentVersionTransitions"]
        ]
    nve = rule.get("noncurrentVersionExpiration")
    if nve:
        ncv: dict[str, Any] = {}
        if nve.get("noncurrentDays") is not None:
            ncv["NoncurrentDays"] = _int(nve["noncurrentDays"])
        if nve.get("newerNoncurrentVersions") is not None:
            ncv["NewerNoncurrentVersions"] = _int(nve["newerNoncurrentVersions"])
        out["NoncurrentVersionExpiration"] = ncv
    abort = rule.get("abortIncompleteMultipartUpload")
    if abort and abort.get("daysAfterInitiation") is not None:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": _int(abort["daysAfterInitiation"])
        }
    return out


def _bucket_lifecycle(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketLifecycleConfiguration: PutBucketLifecycleConfiguration; id = bucket."""
    bucket = inputs["bucket"]
    request: dict[str, Any] = {
        "Bucket": bucket,
        "LifecycleConfiguration": {"Rules": [_lifecycle_rule(r) for r in inputs["rules"]]},
    }
    if inputs.get("transitionDefaultMinimumObjectSize"):
        request["TransitionDefaultMinimumObjectSize"] = inputs["transitionDefaultMinimumObjectSize"]
    ctx.client("s3").put_bucket_lifecycle_configuration(**request)
    ctx.note("lifecycle rules stored, never run by moto (no expiration or transition happens)")
    return bucket, {}


def _logging_delivery_statement(target: str, prefix: str) -> dict[str, Any]:
    """The statement moto looks for on a logging target (logging.s3 may PutObject there)."""
    return {
        "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{target}/{prefix}*",
    }


def _bucket_logging(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketLogging:BucketLogging: PutBucketLogging; id = bucket.

    moto refuses PutBucketLogging unless the *target's* bucket policy (or ACL) already lets the
    logging service write; AWS makes no such check at configuration time (with BucketOwnerEnforced
    it grants through the target's policy, which may be put later). The program puts the target's
    policy in its own resource, in no fixed order with this one; when moto refuses for that reason
    only, the target gets a temporary policy with just moto's expected statement, the logging is
    put, and the target's previous policy (or none) is restored: the end state is the program's.
    """
    bucket, target = inputs["bucket"], inputs["targetBucket"]
    prefix = inputs.get("targetPrefix") or ""
    enabled: dict[str, Any] = {"TargetBucket": target, "TargetPrefix": prefix}
    if inputs.get("targetGrants"):
        enabled["TargetGrants"] = [_logging_grant(g) for g in inputs["targetGrants"]]
    key_format = inputs.get("targetObjectKeyFormat")
    if key_format:
        enabled["TargetObjectKeyFormat"] = _key_format(key_format)
    status = {"LoggingEnabled": enabled}
    s3 = ctx.client("s3")
    try:
        s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus=status)
    except ClientError as exc:
        if _error_code(exc) != "InvalidTargetBucketForLogging" or "permissions" not in str(exc):
            raise
        _put_logging_through_temporary_policy(s3, bucket, target, prefix, status)
    ctx.note("access logging configured; moto delivers no server access log records")
    return bucket, {}


def _put_logging_through_temporary_policy(
    s3: Any, bucket: str, target: str, prefix: str, status: dict[str, Any]
) -> None:
    """Put logging while the target briefly carries moto's expected statement, then restore."""
    try:
        previous: str | None = s3.get_bucket_policy(Bucket=target)["Policy"]
    except ClientError as exc:
        if _error_code(exc) != "NoSuchBucketPolicy":
            raise
        previous = None
    temporary = {
        "Version": "2012-10-17",
        "Statement": [_logging_delivery_statement(target, prefix)],
    }
    s3.put_bucket_policy(Bucket=target, Policy=json.dumps(temporary))
    try:
        s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus=status)
    finally:
        if previous is None:
            s3.delete_bucket_policy(Bucket=target)
        else:
            s3.put_bucket_policy(Bucket=target, Policy=previous)


def _logging_grant(grant: Mapping[str, Any]) -> dict[str, Any]:
    grantee = grant.get("grantee") or {}
    out: dict[str, Any] = {"Type": grantee.get("type")}
    for key, aws_key in (("id", "ID"), ("uri", "URI"), ("emailAddress", "EmailAddress")):
        if grantee.get(key):
            out[aws_key] = grantee[key]
    return {"Grantee": out, "Permission": grant.get("permission")}


def _key_format(key_format: Mapping[str, Any]) -> dict[str, Any]:
    if key_format.get("partitionedPrefix"):
        source = key_format["partitionedPrefix"].get("partitionDateSource")
        return {"PartitionedPrefix": {"PartitionDateSource": source}}
    return {"SimplePrefix": {}}


def _notification_filter(item: Mapping[str, Any]) -> dict[str, Any]:
    rules = [
        {"Name": name, "Value": item[key]}
        for key, name in (("filterPrefix", "prefix"), ("filterSuffix", "suffix"))
        if item.get(key)
    ]
    return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}


def _notification_targets(
    items: Iterable[Mapping[str, Any]], arn_key: str, aws_arn_key: str
) -> list[dict[str, Any]]:
    return [
        {
            **({"Id": item["id"]} if item.get("id") else {}),
            aws_arn_key: item[arn_key],
            "Events": list(item["events"]),
            **_notification_filter(item),
        }
        for item in items
    ]


def _bucket_notification(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketNotification: PutBucketNotificationConfiguration; id = bucket."""
    bucket = inputs["bucket"]
    config: dict[str, Any] = {}
    if inputs.get("queues"):
        config["QueueConfigurations"] = _notification_targets(
            inputs["queues"], "queueArn", "QueueArn"
        )
    if inputs.get("topics"):
        config["TopicConfigurations"] = _notification_targets(
            inputs["topics"], "topicArn", "TopicArn"
        )
    if inputs.get("lambdaFunctions"):
        config["LambdaFunctionConfigurations"] = _notification_targets(
            inputs["lambdaFunctions"], "lambdaFunctionArn", "LambdaFunctionArn"
        )
    if inputs.get("eventbridge"):
        config["EventBridgeConfiguration"] = {}
    ctx.client("s3").put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=config
    )
    return bucket, {}


def _replication_filter(flt: Mapping[str, Any] | None, legacy_prefix: Any) -> dict[str, Any]:
    flt = flt or {}
    and_ = flt.get("and")
    if and_:
        out: dict[str, Any] = {}
        if and_.get("prefix") is not None:
            out["Prefix"] = and_["prefix"]
        if and_.get("tags"):
            out["Tags"] = _tag_list(and_["tags"])
        return {"And": out}
    if flt.get("tag"):
        return {"Tag": {"Key": flt["tag"]["key"], "Value": flt["tag"]["value"]}}
    return {"Prefix": flt.get("prefix") or legacy_prefix or ""}


def _replication_destination(dest: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Bucket": dest["bucket"]}
    if dest.get("storageClass"):
        out["StorageClass"] = dest["storageClass"]
    if dest.get("account"):
        out["Account"] = dest["account"]
    if dest.get("accessControlTranslation"):
        out["AccessControlTranslation"] = {"Owner": dest["accessControlTranslation"]["owner"]}
    encryption = dest.get("encryptionConfiguration")
    if encryption:
        out["EncryptionConfiguration"] = {"ReplicaKmsKeyID": encryption["replicaKmsKeyId"]}
    rtc = dest.get("replicationTime")
    if rtc:
        out["ReplicationTime"] = {
            "Status": rtc["status"],
            "Time": {"Minutes": _int((rtc.get("time") or {}).get("minutes", 15))},
        }
    metrics = dest.get("metrics")
    if metrics:
        out["Metrics"] = {"Status": metrics["status"]}
        if metrics.get("eventThreshold"):
            out["Metrics"]["EventThreshold"] = {
                "Minutes": _int(metrics["eventThreshold"]["minutes"])
            }
    return out


def _replication_rule(ctx: Context, rule: Mapping[str, Any]) -> dict[str, Any]:
    """One pulumi-aws replication rule in S3's (V2, filter-based) shape."""
    out: dict[str, Any] = {
        "Status": rule["status"],
        "Filter": _replication_filter(rule.get("filter"), rule.get("prefix")),
        "Destination": _replication_destination(rule["destination"]),
        "DeleteMarkerReplication": {
            "Status": (rule.get("deleteMarkerReplication") or {}).get("status", "Disabled")
        },
    }
    if rule.get("id"):
        out["ID"] = rule["id"]
    if rule.get("priority") is not None:
        out["Priority"] = _int(rule["priority"])
    criteria = rule.get("sourceSelectionCriteria")
    if criteria:
        sel: dict[str, Any] = {}
        if criteria.get("sseKmsEncryptedObjects"):
            sel["SseKmsEncryptedObjects"] = {"Status": criteria["sseKmsEncryptedObjects"]["status"]}
        if criteria.get("replicaModifications"):
            sel["ReplicaModifications"] = {"Status": criteria["replicaModifications"]["status"]}
        out["SourceSelectionCriteria"] = sel
    if rule.get("existingObjectReplication"):
        out["ExistingObjectReplication"] = {"Status": rule["existingObjectReplication"]["status"]}
    if out["DeleteMarkerReplication"]["Status"] == "Enabled":
        ctx.note("deleteMarkerReplication Enabled stored, but moto reads it back as Disabled")
    return out


def _bucket_replication(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketReplicationConfig: PutBucketReplication; id = bucket."""
    bucket = inputs["bucket"]
    request: dict[str, Any] = {
        "Bucket": bucket,
        "ReplicationConfiguration": {
            "Role": inputs["role"],
            "Rules": [_replication_rule(ctx, r) for r in inputs["rules"]],
        },
    }
    if inputs.get("token"):
        request["Token"] = inputs["token"]
    s3 = ctx.client("s3")
    s3.put_bucket_replication(**request)
    stored = s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]
    sent = request["ReplicationConfiguration"]["Rules"]
    dropped = sorted(
        {path for old, new in zip(sent, stored["Rules"], strict=False) for path in _lost(old, new)}
    )
    if dropped:
        ctx.note(f"replication rule fields not kept by moto: {', '.join(dropped)}")
    ctx.note(
        "replication configuration stored, not performed by moto: no object is copied, "
        "replica KMS encryption and RTC/metrics are not exercised"
    )
    return bucket, {}


def _lost(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Dotted paths of what ``sent`` holds and the read-back ``stored`` lacks."""
    if isinstance(sent, Mapping):
        if not isinstance(stored, Mapping):
            return [path or "."]
        return [
            lost
            for key, value in sent.items()
            for lost in (
                _lost(value, stored[key], f"{path}.{key}".lstrip("."))
                if key in stored
                else [f"{path}.{key}".lstrip(".")]
            )
        ]
    return []


_OBJECT_FIELDS = {
    "contentType": "ContentType",
    "cacheControl": "CacheControl",
    "contentDisposition": "ContentDisposition",
    "contentEncoding": "ContentEncoding",
    "contentLanguage": "ContentLanguage",
    "serverSideEncryption": "ServerSideEncryption",
    "kmsKeyId": "SSEKMSKeyId",
    "storageClass": "StorageClass",
    "websiteRedirect": "WebsiteRedirectLocation",
    "objectLockMode": "ObjectLockMode",
    "objectLockRetainUntilDate": "ObjectLockRetainUntilDate",
    "objectLockLegalHoldStatus": "ObjectLockLegalHoldStatus",
    "acl": "ACL",
    "checksumAlgorithm": "ChecksumAlgorithm",
}


def _object_body(inputs: Mapping[str, Any]) -> bytes:
    """The object's bytes from ``content``, ``contentBase64`` or a file ``source``."""
    if inputs.get("content") is not None:
        return str(inputs["content"]).encode()
    if inputs.get("contentBase64") is not None:
        return base64.b64decode(str(inputs["contentBase64"]))
    source = inputs.get("source")
    path = getattr(source, "path", None)
    if isinstance(path, str):
        return Path(path).read_bytes()
    if source is not None:
        raise NotEmulated(f"object source {type(source).__name__} is not a file asset")
    return b""


def _bucket_object(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:s3/bucketObjectv2:BucketObjectv2: PutObject; id = key."""
    request: dict[str, Any] = {
        "Bucket": inputs["bucket"],
        "Key": inputs["key"],
        "Body": _object_body(inputs),
    }
    for key, aws_key in _OBJECT_FIELDS.items():
        if inputs.get(key) is not None:
            request[aws_key] = inputs[key]
    if inputs.get("metadata"):
        request["Metadata"] = {str(k): str(v) for k, v in inputs["metadata"].items()}
    if inputs.get("tags"):
        request["Tagging"] = "&".join(f"{k}={v}" for k, v in inputs["tags"].items())
    if inputs.get("bucketKeyEnabled") is not None:
        request["BucketKeyEnabled"] = bool(inputs["bucketKeyEnabled"])
    put: dict[str, Any] = ctx.client("s3").put_object(**request)
    outputs: dict[str, Any] = {"etag": str(put.get("ETag", "")).strip('"')}
    outputs["versionId"] = put.get("VersionId") or ""
    if put.get("ServerSideEncryption"):
        outputs["serverSideEncryption"] = put["ServerSideEncryption"]
    return inputs["key"], outputs


# --- KMS ----------------------------------------------------------------------------------------

_KEY_INPUTS = (
    "description",
    "keyUsage",
    "customerMasterKeySpec",
    "policy",
    "enableKeyRotation",
    "rotationPeriodInDays",
    "deletionWindowInDays",
    "isEnabled",
    "multiRegion",
    "tags",
    "bypassPolicyLockoutSafetyCheck",
)


def _kms_key(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:kms/key:Key: CreateKey (+ rotation, enablement); id = key id."""
    request: dict[str, Any] = {
        "KeyUsage": inputs.get("keyUsage") or "ENCRYPT_DECRYPT",
        "KeySpec": inputs.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT",
    }
    if inputs.get("description") is not None:
        request["Description"] = inputs["description"]
    if inputs.get("policy"):
        request["Policy"] = _policy_text(inputs["policy"])
        ctx.note("key policy stored, not evaluated by moto (grants are checked against '*')")
    if inputs.get("bypassPolicyLockoutSafetyCheck") is not None:
        request["BypassPolicyLockoutSafetyCheck"] = bool(inputs["bypassPolicyLockoutSafetyCheck"])
    if inputs.get("multiRegion") is not None:
        request["MultiRegion"] = bool(inputs["multiRegion"])
    if inputs.get("tags"):
        request["Tags"] = [{"TagKey": k, "TagValue": str(v)} for k, v in inputs["tags"].items()]
    kms = ctx.client("kms")
    metadata = kms.create_key(**request)["KeyMetadata"]
    key_id = metadata["KeyId"]
    if inputs.get("enableKeyRotation"):
        rotation: dict[str, Any] = {"KeyId": key_id}
        period = inputs.get("rotationPeriodInDays")
        if period is not None:
            rotation["RotationPeriodInDays"] = _int(period)
            ctx.note(f"rotation period {_int(period)} days accepted but not stored by moto")
        kms.enable_key_rotation(**rotation)
        ctx.note("key rotation flag stored; moto never rotates key material")
    if inputs.get("isEnabled") is False:
        kms.disable_key(KeyId=key_id)
    return key_id, {"keyId": key_id, "arn": metadata["Arn"]}


def _kms_alias(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:kms/alias:Alias: CreateAlias; id = alias name."""
    name = inputs.get("name") or f"{inputs.get('namePrefix') or 'alias/'}{ctx.name}"
    kms = ctx.client("kms")
    kms.create_alias(AliasName=name, TargetKeyId=inputs["targetKeyId"])
    key_arn = kms.describe_key(KeyId=inputs["targetKeyId"])["KeyMetadata"]["Arn"]
    region_account = key_arn.split(":key/")[0]
    return name, {"name": name, "arn": f"{region_account}:{name}", "targetKeyArn": key_arn}


# --- IAM ----------------------------------------------------------------------------------------

_ROLE_INPUTS = (
    "name",
    "namePrefix",
    "path",
    "description",
    "assumeRolePolicy",
    "permissionsBoundary",
    "maxSessionDuration",
    "tags",
    "inlinePolicies",
    "managedPolicyArns",
    "forceDetachPolicies",
)


_POLICY_FIELDS = {"path": "Path", "description": "Description"}
_ROLE_FIELDS = {**_POLICY_FIELDS, "permissionsBoundary": "PermissionsBoundary"}


def _copy_set(
    request: dict[str, Any], inputs: Mapping[str, Any], fields: Mapping[str, str]
) -> None:
    """Copy each input that is set into ``request`` under its API name."""
    for key, api_key in fields.items():
        if inputs.get(key):
            request[api_key] = inputs[key]


def _role(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:iam/role:Role: CreateRole (trust, boundary, session) + inline/managed policies."""
    name = _named(ctx, inputs)
    request: dict[str, Any] = {
        "RoleName": name,
        "AssumeRolePolicyDocument": _policy_text(inputs["assumeRolePolicy"]),
    }
    _copy_set(request, inputs, _ROLE_FIELDS)
    if inputs.get("maxSessionDuration") is not None:
        request["MaxSessionDuration"] = _int(inputs["maxSessionDuration"])
    if inputs.get("tags"):
        request["Tags"] = _tag_list(inputs["tags"])
    iam = ctx.client("iam")
    role = iam.create_role(**request)["Role"]
    for inline in inputs.get("inlinePolicies") or []:
        if inline.get("policy"):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=inline.get("name") or ctx.name,
                PolicyDocument=_policy_text(inline["policy"]),
            )
    for arn in inputs.get("managedPolicyArns") or []:
        _attach(iam, name, arn)
    if inputs.get("permissionsBoundary"):
        ctx.note("permissions boundary stored; moto's IAM enforcement does not evaluate boundaries")
    return name, {
        "name": name,
        "arn": role["Arn"],
        "uniqueId": role["RoleId"],
        "createDate": str(role["CreateDate"]),
    }


def _attach(iam: Any, role: str, policy_arn: str) -> None:
    """AttachRolePolicy; an AWS-managed policy moto did not load cannot be represented."""
    try:
        iam.attach_role_policy(RoleName=role, PolicyArn=policy_arn)
    except ClientError as exc:
        if _error_code(exc) == "NoSuchEntity" and ":iam::aws:policy/" in policy_arn:
            raise NotEmulated(
                f"AWS managed policy {policy_arn} is not loaded in moto (start it with "
                "MOTO_IAM_LOAD_MANAGED_POLICIES=true)"
            ) from exc
        raise


def _role_policy(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:iam/rolePolicy:RolePolicy: PutRolePolicy; id = ``role:name``."""
    role = inputs["role"]
    name = _named(ctx, inputs)
    ctx.client("iam").put_role_policy(
        RoleName=role, PolicyName=name, PolicyDocument=_policy_text(inputs["policy"])
    )
    return f"{role}:{name}", {"name": name}


def _role_policy_attachment(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:iam/rolePolicyAttachment: AttachRolePolicy; id = ``role/policyArn``."""
    role, arn = inputs["role"], inputs["policyArn"]
    _attach(ctx.client("iam"), role, arn)
    return f"{role}/{arn}", {}


def _policy(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:iam/policy:Policy: CreatePolicy; id = ARN."""
    name = _named(ctx, inputs)
    request: dict[str, Any] = {
        "PolicyName": name,
        "PolicyDocument": _policy_text(inputs["policy"]),
    }
    _copy_set(request, inputs, _POLICY_FIELDS)
    if inputs.get("tags"):
        request["Tags"] = _tag_list(inputs["tags"])
    policy = ctx.client("iam").create_policy(**request)["Policy"]
    return policy["Arn"], {
        "arn": policy["Arn"],
        "name": name,
        "policyId": policy["PolicyId"],
        "attachmentCount": policy.get("AttachmentCount", 0),
    }


# --- DynamoDB -----------------------------------------------------------------------------------

_TABLE_INPUTS = (
    "name",
    "hashKey",
    "rangeKey",
    "attributes",
    "billingMode",
    "readCapacity",
    "writeCapacity",
    "globalSecondaryIndexes",
    "localSecondaryIndexes",
    "pointInTimeRecovery",
    "serverSideEncryption",
    "deletionProtectionEnabled",
    "ttl",
    "streamEnabled",
    "streamViewType",
    "tableClass",
    "tags",
)


def _key_schema(hash_key: str, range_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


def _projection(index: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ProjectionType": index.get("projectionType", "ALL")}
    if index.get("nonKeyAttributes"):
        out["NonKeyAttributes"] = list(index["nonKeyAttributes"])
    return out


def _gsi(index: Mapping[str, Any], provisioned: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "IndexName": index["name"],
        "KeySchema": _key_schema(index["hashKey"], index.get("rangeKey")),
        "Projection": _projection(index),
    }
    if provisioned:
        out["ProvisionedThroughput"] = {
            "ReadCapacityUnits": _int(index.get("readCapacity") or 0),
            "WriteCapacityUnits": _int(index.get("writeCapacity") or 0),
        }
    return out


def _table_request(ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """CreateTable's request from the table's inputs."""
    billing = inputs.get("billingMode") or "PROVISIONED"
    provisioned = billing == "PROVISIONED"
    request: dict[str, Any] = {
        "TableName": inputs["name"],
        "KeySchema": _key_schema(inputs["hashKey"], inputs.get("rangeKey")),
        "AttributeDefinitions": [
            {"AttributeName": a["name"], "AttributeType": a["type"]} for a in inputs["attributes"]
        ],
        "BillingMode": billing,
    }
    if provisioned:
        request["ProvisionedThroughput"] = {
            "ReadCapacityUnits": _int(inputs.get("readCapacity") or 0),
            "WriteCapacityUnits": _int(inputs.get("writeCapacity") or 0),
        }
    if inputs.get("globalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [
            _gsi(i, provisioned) for i in inputs["globalSecondaryIndexes"]
        ]
    if inputs.get("localSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = [
            {
                "IndexName": i["name"],
                "KeySchema": _key_schema(inputs["hashKey"], i["rangeKey"]),
                "Projection": _projection(i),
            }
            for i in inputs["localSecondaryIndexes"]
        ]
    sse = inputs.get("serverSideEncryption") or {}
    if sse.get("enabled"):
        spec: dict[str, Any] = {"Enabled": True, "SSEType": "KMS"}
        if sse.get("kmsKeyArn"):
            spec["KMSMasterKeyId"] = sse["kmsKeyArn"]
        request["SSESpecification"] = spec
    if inputs.get("streamEnabled"):
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": inputs.get("streamViewType") or "NEW_AND_OLD_IMAGES",
        }
    if inputs.get("deletionProtectionEnabled") is not None:
        request["DeletionProtectionEnabled"] = bool(inputs["deletionProtectionEnabled"])
    if inputs.get("tableClass"):
        request["TableClass"] = inputs["tableClass"]
    if inputs.get("tags"):
        request["Tags"] = _tag_list(inputs["tags"])
    return request


def _table(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:dynamodb/table:Table: CreateTable + PITR + TTL; id = name."""
    ddb = ctx.client("dynamodb")
    table = ddb.create_table(**_table_request(ctx, inputs))["TableDescription"]
    name = table["TableName"]
    pitr = inputs.get("pointInTimeRecovery") or {}
    if pitr.get("enabled"):
        spec: dict[str, Any] = {"PointInTimeRecoveryEnabled": True}
        if pitr.get("recoveryPeriodInDays") is not None:
            spec["RecoveryPeriodInDays"] = _int(pitr["recoveryPeriodInDays"])
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification=spec)
    ttl = inputs.get("ttl") or {}
    if ttl.get("enabled"):
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["attributeName"]},
        )
        ctx.note("TTL stored; moto never expires items")
    outputs: dict[str, Any] = {"name": name, "arn": table["TableArn"]}
    if table.get("LatestStreamArn"):
        outputs.update(streamArn=table["LatestStreamArn"], streamLabel=table["LatestStreamLabel"])
    return name, outputs


# --- SQS ----------------------------------------------------------------------------------------

_QUEUE_ATTRIBUTES = {
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
    "redrivePolicy": "RedrivePolicy",
    "redriveAllowPolicy": "RedriveAllowPolicy",
    "policy": "Policy",
    "fifoQueue": "FifoQueue",
    "contentBasedDeduplication": "ContentBasedDeduplication",
    "deduplicationScope": "DeduplicationScope",
    "fifoThroughputLimit": "FifoThroughputLimit",
}


def _queue(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:sqs/queue:Queue: CreateQueue with every attribute; id = queue URL."""
    name, attributes = _named_with_attributes(ctx, inputs, _QUEUE_ATTRIBUTES, "fifoQueue")
    request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if inputs.get("tags"):
        request["tags"] = {str(k): str(v) for k, v in inputs["tags"].items()}
    sqs = ctx.client("sqs")
    url = sqs.create_queue(**request)["QueueUrl"]
    stored = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    _note_stored_attributes(ctx, "queue", attributes, stored)
    return url, {"name": name, "url": url, "arn": stored["QueueArn"]}


def _named_with_attributes(
    ctx: Context, inputs: dict[str, Any], table: Mapping[str, str], fifo: str
) -> tuple[str, dict[str, str]]:
    """A queue's or topic's name and its attributes in the API's names (FIFO only when true)."""
    name = _named(ctx, inputs)
    attributes = {
        aws_key: _str(inputs[key])
        for key, aws_key in table.items()
        if inputs.get(key) is not None and not (key == fifo and not inputs[key])
    }
    return str(name), attributes


def _note_stored_attributes(
    ctx: Context, kind: str, attributes: Mapping[str, str], stored: Mapping[str, str]
) -> None:
    """Note what moto dropped of the attributes, and what it stores but never acts on."""
    for aws_key in attributes:
        if aws_key not in stored:
            ctx.note(f"{kind} attribute {aws_key} not stored by moto (silently dropped)")
    if "KmsMasterKeyId" in attributes:
        ctx.note(f"{kind} KMS key stored; moto keeps messages unencrypted and never calls KMS")
    if "Policy" in attributes:
        ctx.note(_POLICY_NOT_EVALUATED)


def _queue_policy(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:sqs/queuePolicy:QueuePolicy: SetQueueAttributes(Policy); id = queue URL."""
    url = inputs["queueUrl"]
    ctx.client("sqs").set_queue_attributes(
        QueueUrl=url, Attributes={"Policy": _policy_text(inputs["policy"])}
    )
    ctx.note(_POLICY_NOT_EVALUATED)
    return url, {}


def _redrive_allow_policy(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:sqs/redriveAllowPolicy: SetQueueAttributes(RedriveAllowPolicy); id = queue URL."""
    url = inputs["queueUrl"]
    attributes = {"RedriveAllowPolicy": _policy_text(inputs["redriveAllowPolicy"])}
    sqs = ctx.client("sqs")
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    stored = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    if "RedriveAllowPolicy" not in stored:
        raise NotEmulated(
            "moto drops the RedriveAllowPolicy attribute (SetQueueAttributes accepts it, "
            "GetQueueAttributes never returns it): any queue could name this one as its DLQ"
        )
    return url, {}


# --- SNS ----------------------------------------------------------------------------------------

_TOPIC_ATTRIBUTES = {
    "displayName": "DisplayName",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "policy": "Policy",
    "deliveryPolicy": "DeliveryPolicy",
    "signatureVersion": "SignatureVersion",
    "tracingConfig": "TracingConfig",
    "fifoTopic": "FifoTopic",
    "contentBasedDeduplication": "ContentBasedDeduplication",
    "archivePolicy": "ArchivePolicy",
}


def _topic(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:sns/topic:Topic: CreateTopic with its attributes; id = ARN."""
    name, attributes = _named_with_attributes(ctx, inputs, _TOPIC_ATTRIBUTES, "fifoTopic")
    request: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if inputs.get("tags"):
        request["Tags"] = _tag_list(inputs["tags"])
    sns = ctx.client("sns")
    arn = sns.create_topic(**request)["TopicArn"]
    stored = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    _note_stored_attributes(ctx, "topic", attributes, stored)
    return arn, {"name": name, "arn": arn, "owner": ctx.account_id}


def _topic_policy(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:sns/topicPolicy:TopicPolicy: SetTopicAttributes(Policy); id = topic ARN."""
    arn = inputs["arn"]
    ctx.client("sns").set_topic_attributes(
        TopicArn=arn, AttributeName="Policy", AttributeValue=_policy_text(inputs["policy"])
    )
    ctx.note(_POLICY_NOT_EVALUATED)
    return arn, {"owner": ctx.account_id}


# --- Secrets Manager ----------------------------------------------------------------------------


def _secret(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:secretsmanager/secret:Secret: CreateSecret (+ resource policy); id = ARN."""
    name = _named(ctx, inputs)
    request: dict[str, Any] = {"Name": name}
    if inputs.get("description"):
        request["Description"] = inputs["description"]
    if inputs.get("kmsKeyId"):
        request["KmsKeyId"] = inputs["kmsKeyId"]
        ctx.note("secret KMS key stored; moto never encrypts the value with it")
    if inputs.get("tags"):
        request["Tags"] = _tag_list(inputs["tags"])
    if inputs.get("replicas"):
        request["AddReplicaRegions"] = [
            {"Region": r["region"], **({"KmsKeyId": r["kmsKeyId"]} if r.get("kmsKeyId") else {})}
            for r in inputs["replicas"]
        ]
        request["ForceOverwriteReplicaSecret"] = bool(inputs.get("forceOverwriteReplicaSecret"))
    sm = ctx.client("secretsmanager")
    arn = sm.create_secret(**request)["ARN"]
    if inputs.get("policy"):
        sm.put_resource_policy(SecretId=arn, ResourcePolicy=_policy_text(inputs["policy"]))
        ctx.note(_POLICY_NOT_EVALUATED)
    return arn, {"arn": arn, "name": name}


# --- AWS Backup ---------------------------------------------------------------------------------


def _vault(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:backup/vault:Vault: CreateBackupVault; id = name."""
    request: dict[str, Any] = {"BackupVaultName": inputs["name"]}
    if inputs.get("kmsKeyArn"):
        request["EncryptionKeyArn"] = inputs["kmsKeyArn"]
    if inputs.get("tags"):
        request["BackupVaultTags"] = {str(k): str(v) for k, v in inputs["tags"].items()}
    vault = ctx.client("backup").create_backup_vault(**request)
    name = vault["BackupVaultName"]
    return name, {"name": name, "arn": vault["BackupVaultArn"], "recoveryPoints": 0}


def _vault_lock(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:backup/vaultLockConfiguration: PutBackupVaultLockConfiguration; id = vault name."""
    name = inputs["backupVaultName"]
    request: dict[str, Any] = {"BackupVaultName": name}
    for key, aws_key in (
        ("minRetentionDays", "MinRetentionDays"),
        ("maxRetentionDays", "MaxRetentionDays"),
        ("changeableForDays", "ChangeableForDays"),
    ):
        if inputs.get(key) is not None:
            request[aws_key] = _int(inputs[key])
    backup = ctx.client("backup")
    backup.put_backup_vault_lock_configuration(**request)
    vault = backup.describe_backup_vault(BackupVaultName=name)
    return name, {"backupVaultArn": vault["BackupVaultArn"]}


def _backup_lifecycle(lifecycle: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, aws_key in (
        ("coldStorageAfter", "MoveToColdStorageAfterDays"),
        ("deleteAfter", "DeleteAfterDays"),
    ):
        if (lifecycle or {}).get(key) is not None:
            out[aws_key] = _int(lifecycle[key])  # type: ignore[index]
    if (lifecycle or {}).get("optInToArchiveForSupportedResources") is not None:
        out["OptInToArchiveForSupportedResources"] = bool(
            lifecycle["optInToArchiveForSupportedResources"]  # type: ignore[index]
        )
    return out


def _backup_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One pulumi-aws backup rule in AWS Backup's shape."""
    out: dict[str, Any] = {
        "RuleName": rule["ruleName"],
        "TargetBackupVaultName": rule["targetVaultName"],
    }
    for key, aws_key in (
        ("schedule", "ScheduleExpression"),
        ("scheduleExpressionTimezone", "ScheduleExpressionTimezone"),
    ):
        if rule.get(key):
            out[aws_key] = rule[key]
    for key, aws_key in (
        ("startWindow", "StartWindowMinutes"),
        ("completionWindow", "CompletionWindowMinutes"),
    ):
        if rule.get(key) is not None:
            out[aws_key] = _int(rule[key])
    if rule.get("enableContinuousBackup") is not None:
        out["EnableContinuousBackup"] = bool(rule["enableContinuousBackup"])
    if rule.get("lifecycle"):
        out["Lifecycle"] = _backup_lifecycle(rule["lifecycle"])
    if rule.get("recoveryPointTags"):
        out["RecoveryPointTags"] = {str(k): str(v) for k, v in rule["recoveryPointTags"].items()}
    if rule.get("copyActions"):
        out["CopyActions"] = [
            {
                "DestinationBackupVaultArn": c["destinationVaultArn"],
                **({"Lifecycle": _backup_lifecycle(c["lifecycle"])} if c.get("lifecycle") else {}),
            }
            for c in rule["copyActions"]
        ]
    return out


def _backup_plan(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:backup/plan:Plan: CreateBackupPlan; id = the plan's id."""
    plan: dict[str, Any] = {
        "BackupPlanName": inputs["name"],
        "Rules": [_backup_rule(r) for r in inputs["rules"]],
    }
    if inputs.get("advancedBackupSettings"):
        plan["AdvancedBackupSettings"] = [
            {"ResourceType": s["resourceType"], "BackupOptions": dict(s["backupOptions"])}
            for s in inputs["advancedBackupSettings"]
        ]
    request: dict[str, Any] = {"BackupPlan": plan}
    if inputs.get("tags"):
        request["BackupPlanTags"] = {str(k): str(v) for k, v in inputs["tags"].items()}
    created = ctx.client("backup").create_backup_plan(**request)
    ctx.note("backup plan stored; moto never runs a backup job or a copy action")
    return created["BackupPlanId"], {
        "arn": created["BackupPlanArn"],
        "version": created["VersionId"],
        "name": inputs["name"],
    }


def _backup_selection(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:backup/selection:Selection: moto 5.2.5 has no CreateBackupSelection."""
    raise NotEmulated(
        "moto 5.2.5's AWS Backup implements no backup selections (CreateBackupSelection is "
        "missing); the plan and vaults are created, the table selection is not"
    )


# --- account-wide detectors (optional config) ---------------------------------------------------


def _analyzer(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:accessanalyzer/analyzer:Analyzer: moto 5.2.5 has no IAM Access Analyzer."""
    raise NotEmulated("moto 5.2.5 has no IAM Access Analyzer (accessanalyzer) service")


def _detector(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:guardduty/detector:Detector: CreateDetector; id = detector id."""
    request: dict[str, Any] = {"Enable": bool(inputs.get("enable", True))}
    if inputs.get("findingPublishingFrequency"):
        request["FindingPublishingFrequency"] = inputs["findingPublishingFrequency"]
    if inputs.get("tags"):
        request["Tags"] = {str(k): str(v) for k, v in inputs["tags"].items()}
    if inputs.get("datasources"):
        ctx.note("detector datasources not applied: pulumi-aws deprecates them for features")
    detector_id = ctx.client("guardduty").create_detector(**request)["DetectorId"]
    ctx.note("GuardDuty detector stored; moto produces no findings")
    arn = f"arn:aws:guardduty:{ctx.region}:{ctx.account_id}:detector/{detector_id}"
    return detector_id, {"arn": arn, "accountId": ctx.account_id}


def _detector_feature(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:guardduty/detectorFeature: UpdateDetector(Features); id = ``detectorId/name``."""
    detector_id, name = inputs["detectorId"], inputs["name"]
    feature: dict[str, Any] = {"Name": name, "Status": inputs["status"]}
    if inputs.get("additionalConfigurations"):
        feature["AdditionalConfiguration"] = [
            {"Name": c["name"], "Status": c["status"]} for c in inputs["additionalConfigurations"]
        ]
    guardduty = ctx.client("guardduty")
    features = guardduty.get_detector(DetectorId=detector_id).get("Features") or []
    others = [f for f in features if f.get("Name") != name]
    guardduty.update_detector(DetectorId=detector_id, Features=[*others, feature])
    return f"{detector_id}/{name}", {}


def _security_hub(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:securityhub/account:Account: EnableSecurityHub; id = account id."""
    hub = ctx.client("securityhub")
    hub.enable_security_hub(
        EnableDefaultStandards=bool(inputs.get("enableDefaultStandards", True)),
        ControlFindingGenerator=inputs.get("controlFindingGenerator") or "SECURITY_CONTROL",
    )
    described = hub.describe_hub()
    wanted_auto = bool(inputs.get("autoEnableControls", True))
    if described.get("AutoEnableControls") != wanted_auto:
        ctx.note(f"autoEnableControls {wanted_auto} not stored by moto (it always reports True)")
    wanted_generator = inputs.get("controlFindingGenerator") or "SECURITY_CONTROL"
    if described.get("ControlFindingGenerator") != wanted_generator:
        ctx.note(f"controlFindingGenerator {wanted_generator} not stored by moto")
    ctx.note("Security Hub enabled in moto; it runs no controls and produces no findings")
    return ctx.account_id, {"arn": described["HubArn"]}


def _standards_subscription(ctx: Context, inputs: dict[str, Any]) -> Created:
    """aws:securityhub/standardsSubscription: moto 5.2.5 has no BatchEnableStandards."""
    raise NotEmulated(
        "moto 5.2.5's Security Hub implements no standards subscriptions (BatchEnableStandards "
        f"is missing): {inputs.get('standardsArn')} is not subscribed"
    )


HANDLERS: dict[str, Handler] = {
    "aws:s3/bucket:Bucket": _bucket,
    "aws:s3/bucketVersioning:BucketVersioning": _bucket_versioning,
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration": _object_lock,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        _bucket_encryption
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _public_access_block,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _ownership_controls,
    "aws:s3/bucketPolicy:BucketPolicy": _bucket_policy,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _bucket_lifecycle,
    "aws:s3/bucketLogging:BucketLogging": _bucket_logging,
    "aws:s3/bucketNotification:BucketNotification": _bucket_notification,
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig": _bucket_replication,
    "aws:s3/bucketObjectv2:BucketObjectv2": _bucket_object,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:iam/role:Role": _role,
    "aws:iam/rolePolicy:RolePolicy": _role_policy,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _role_policy_attachment,
    "aws:iam/policy:Policy": _policy,
    "aws:dynamodb/table:Table": _table,
    "aws:sqs/queue:Queue": _queue,
    "aws:sqs/queuePolicy:QueuePolicy": _queue_policy,
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": _redrive_allow_policy,
    "aws:sns/topic:Topic": _topic,
    "aws:sns/topicPolicy:TopicPolicy": _topic_policy,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:backup/vault:Vault": _vault,
    "aws:backup/vaultLockConfiguration:VaultLockConfiguration": _vault_lock,
    "aws:backup/plan:Plan": _backup_plan,
    "aws:backup/selection:Selection": _backup_selection,
    "aws:accessanalyzer/analyzer:Analyzer": _analyzer,
    "aws:guardduty/detector:Detector": _detector,
    "aws:guardduty/detectorFeature:DetectorFeature": _detector_feature,
    "aws:securityhub/account:Account": _security_hub,
    "aws:securityhub/standardsSubscription:StandardsSubscription": _standards_subscription,
}
