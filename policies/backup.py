"""Backup: AWS Backup vaults locked in compliance mode and encrypted with a customer key, plans
that keep recovery points long enough and copy them to another region, and DynamoDB tables with
point-in-time recovery, customer-key encryption and a backup selection that covers them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity

from policies import controls as c
from policies.framework import (
    STRING_LIST,
    Finding,
    Meta,
    ResourceLike,
    Setting,
    Stack,
    customer_key,
    get,
    items,
    label,
    messages,
    parse_arn,
    resource_policy,
    stack_policy,
    truthy,
)

VAULT = "aws:backup/vault:Vault"
VAULT_LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
PLAN = "aws:backup/plan:Plan"
SELECTION = "aws:backup/selection:Selection"
TABLE = "aws:dynamodb/table:Table"

TAG_CONDITION_PREFIX = "aws:ResourceTag/"

MINIMUM_RETENTION = Setting(
    "minimumRetentionDays",
    "Least number of days a recovery point (and its copy in the other region) is kept",
    35,
    {"type": "integer", "minimum": 1},
)


def _region_of(value: Any) -> str | None:
    """The region field of an ARN, or None (not an ARN, or a global one)."""
    parsed = parse_arn(value)
    return parsed.region if parsed and parsed.region else None


def _region(resource: Any) -> str | None:
    """The region a resource lives in, from the first source that knows it.

    pulumi-aws 7 records a resource's `region` argument (always present in the outputs a stack
    check sees); an output ARN names it; the engine passes the resource's provider (whose
    `region` is the provider configuration). Offline, a plan holds only inputs and no provider: a
    vault is then placed by its KMS key, which AWS Backup requires to be in the vault's region.
    """
    props = resource.props
    region = props.get("region")
    if isinstance(region, str) and region:
        return region
    found = _region_of(props.get("arn"))
    if found:
        return found
    provider = getattr(resource, "provider", None)
    provider_region = provider.props.get("region") if provider is not None else None
    if isinstance(provider_region, str) and provider_region:
        return provider_region
    if resource.resource_type == VAULT:
        return _region_of(props.get("kmsKeyArn"))
    return None


def _vault_named(stack: Stack, name: Any) -> Any | None:
    found = [v for v in stack.of_type(VAULT) if v.props.get("name") == name]
    return found[0] if len(found) == 1 else None


def _vault_name_of(arn: Any) -> str | None:
    """The vault name at the end of a vault ARN (``...:backup-vault:<name>``)."""
    parsed = parse_arn(arn)
    if not parsed or not parsed.resource.startswith("backup-vault:"):
        return None
    return parsed.resource[len("backup-vault:") :] or None


def _days(value: Any) -> float | None:
    return None if value is None else float(value)


def _planned_retentions(stack: Stack, vault: Any) -> list[float]:
    """deleteAfter of every plan rule backing up into the vault and every copy action into it."""
    name = str(vault.props.get("name") or "")
    found: list[float] = []
    for plan in stack.of_type(PLAN):
        for rule in items(plan.props.get("rules")):
            if not isinstance(rule, Mapping):
                continue
            if rule.get("targetVaultName") == name:
                found += [d for d in [_days(get(rule, "lifecycle", "deleteAfter"))] if d]
            for copy in items(rule.get("copyActions")):
                if not isinstance(copy, Mapping):
                    continue
                if name and str(copy.get("destinationVaultArn", "")).endswith(
                    f":backup-vault:{name}"
                ):
                    found += [d for d in [_days(get(copy, "lifecycle", "deleteAfter"))] if d]
    return found


@stack_policy(
    Meta(
        id="aws-backup-vault-require-lock",
        description="Every AWS Backup vault is under a vault lock in compliance mode that keeps "
        "every recovery point for as long as the plans retain it.",
        practice=c.BACKUP_AND_DR,
        safeguard=c.DATA_BACKUP_PLAN,
        severity=Severity.CRITICAL,
        remediation="Declare aws.backup.VaultLockConfiguration for the vault (backup_vault_name) "
        "with changeable_for_days set (3 or more: the lock becomes immutable, compliance mode, "
        "after that grace period) and min_retention_days of at least minimumLockRetentionDays "
        "and of every lifecycle delete_after of the plan rules and copy actions into the vault "
        "(else a recovery point can be deleted before its planned end).",
        subjects=(VAULT,),
        settings=(
            Setting(
                "minimumLockRetentionDays",
                "Least minimum retention the vault lock enforces on every recovery point, in days",
                7,
                {"type": "integer", "minimum": 1},
            ),
        ),
    )
)
def require_vault_lock(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    minimum = int(config["minimumLockRetentionDays"])
    for vault in stack.of_type(VAULT):
        title = label(vault, "backup vault")
        locks = stack.attached(vault, VAULT_LOCK, "backupVaultName", "name")
        if not locks:
            yield vault, f"{title} must have a vault lock (VaultLockConfiguration)"
            continue
        lock = locks[0].props
        retention = _days(lock.get("minRetentionDays"))
        planned = max(_planned_retentions(stack, vault), default=0.0)
        yield from (
            (vault, m)
            for m in messages(
                (
                    # Without a grace period the lock stays in governance mode: anyone with
                    # backup:DeleteBackupVaultLockConfiguration can remove it.
                    lock.get("changeableForDays") is not None,
                    f"{title}: the vault lock must be in compliance mode (changeableForDays set)",
                ),
                (
                    retention is not None and retention >= minimum,
                    f"{title}: the vault lock's minRetentionDays is {retention}, must be at least "
                    f"{minimum}",
                ),
                (
                    _days(lock.get("maxRetentionDays")) in (None, 0.0)
                    or (_days(lock.get("maxRetentionDays")) or 0.0) >= planned,
                    f"{title}: the vault lock's maxRetentionDays is shorter than the plans keep "
                    f"recovery points ({planned:.0f} days): their backup jobs would fail",
                ),
                (
                    retention is None or retention >= planned,
                    f"{title}: the vault lock's minRetentionDays ({retention or 0:.0f}) is shorter "
                    f"than the plans keep recovery points ({planned:.0f} days): they could be "
                    "deleted early",
                ),
            )
        )


@resource_policy(
    Meta(
        id="aws-backup-vault-require-kms",
        description="Every AWS Backup vault encrypts recovery points with a customer-managed KMS "
        "key.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.HIGH,
        remediation="Set kms_key_arn on the aws.backup.Vault to the ARN of the stack's backup key "
        "in the vault's region (not the AWS-managed aws/backup key).",
        subjects=(VAULT,),
    )
)
def require_vault_kms(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if not customer_key(resource.props.get("kmsKeyArn"), "backup"):
        yield (
            f"{label(resource, 'backup vault')} must encrypt with a customer-managed KMS key "
            "(kmsKeyArn)"
        )


@resource_policy(
    Meta(
        id="aws-backup-vault-no-force-destroy",
        description="No AWS Backup vault can be destroyed with its recovery points.",
        practice=c.BACKUP_AND_DR,
        safeguard=c.DATA_BACKUP_PLAN,
        severity=Severity.HIGH,
        remediation="Remove force_destroy from the aws.backup.Vault (or set it False): recovery "
        "points expire by the plan's lifecycle, never by `pulumi destroy`.",
        subjects=(VAULT,),
    )
)
def vault_no_force_destroy(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    if truthy(resource.props.get("forceDestroy")):
        yield f"{label(resource, 'backup vault')}: forceDestroy must be false"


@stack_policy(
    Meta(
        id="aws-backup-plan-require-cross-region-copy",
        description="Every backup rule copies its recovery points to a vault of the stack in "
        "another region and keeps the copies for at least the minimum retention.",
        practice=c.BACKUP_AND_DR,
        safeguard=c.DISASTER_RECOVERY,
        severity=Severity.HIGH,
        remediation="Give every rule of the aws.backup.Plan a copy_action whose "
        "destination_vault_arn is the ARN of an aws.backup.Vault of the stack in the DR region "
        "(not the region of target_vault_name; the stack locks its vaults) and whose lifecycle "
        "delete_after is at least minimumRetentionDays.",
        subjects=(PLAN,),
        settings=(MINIMUM_RETENTION,),
    )
)
def require_cross_region_copy(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    minimum = int(config["minimumRetentionDays"])
    for plan in stack.of_type(PLAN):
        title = label(plan, "backup plan")
        for rule in items(plan.props.get("rules")):
            rule_name = f"{title}: rule {rule.get('ruleName', '?')}"
            target = rule.get("targetVaultName")
            # The recovery points are taken in the target vault's region, which is the plan's.
            vault = _vault_named(stack, target)
            source = (_region(vault) if vault is not None else None) or _region(plan)
            copies = items(rule.get("copyActions"))
            if not copies:
                yield plan, f"{rule_name} must copy recovery points to a vault in another region"
                continue
            if source is None:
                yield (
                    plan,
                    (
                        f"{rule_name}: the region of target vault {target} is unknown; declare the "
                        "vault (with its KMS key) in the stack so the copy can be checked"
                    ),
                )
                continue
            regions = {_region_of(a.get("destinationVaultArn")) for a in copies}
            if not regions - {None, source}:
                yield (
                    plan,
                    (f"{rule_name} copies only within {source}; copy to a vault in another region"),
                )
            for copy in copies:
                destination = copy.get("destinationVaultArn")
                if _vault_named(stack, _vault_name_of(destination)) is None:
                    yield (
                        plan,
                        (
                            f"{rule_name}: copies to {destination}, which is not a vault of the "
                            "stack; copy to the stack's (locked) DR vault"
                        ),
                    )
                if _region_of(destination) in (None, source):
                    continue
                kept = _days(get(copy, "lifecycle", "deleteAfter"))
                if kept is None:
                    yield (
                        plan,
                        (
                            f"{rule_name}: copies to {destination} must set a retention (lifecycle "
                            f"deleteAfter of at least {minimum} days)"
                        ),
                    )
                elif kept < minimum:
                    yield (
                        plan,
                        (
                            f"{rule_name}: copies to {destination} are kept {kept:.0f} days; "
                            f"deleteAfter must be at least {minimum}"
                        ),
                    )


@resource_policy(
    Meta(
        id="aws-backup-plan-require-retention",
        description="Every backup rule keeps its recovery points for a set retention of at least "
        "the minimum.",
        practice=c.BACKUP_AND_DR,
        safeguard=c.DATA_BACKUP_PLAN,
        severity=Severity.HIGH,
        remediation="Set lifecycle delete_after on every rule of the aws.backup.Plan to at least "
        "minimumRetentionDays (stack config backupRetentionDays): the retention of backups is "
        "part of the documented backup plan.",
        subjects=(PLAN,),
        settings=(MINIMUM_RETENTION,),
    )
)
def require_retention(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    minimum = int(config["minimumRetentionDays"])
    title = label(resource, "backup plan")
    for rule in items(resource.props.get("rules")):
        kept = _days(get(rule, "lifecycle", "deleteAfter"))
        rule_name = f"{title}: rule {rule.get('ruleName', '?')}"
        if kept is None:
            yield f"{rule_name} must set a retention (lifecycle deleteAfter ≥ {minimum} days)"
        elif kept < minimum:
            yield f"{rule_name} keeps recovery points {kept:.0f} days; must be at least {minimum}"


@resource_policy(
    Meta(
        id="aws-dynamodb-table-require-pitr",
        description="Every DynamoDB table (and replica) keeps point-in-time recovery for the "
        "whole recovery period.",
        practice=c.BACKUP_AND_DR,
        safeguard=c.DATA_BACKUP_PLAN,
        severity=Severity.HIGH,
        remediation="Set point_in_time_recovery enabled=True on the aws.dynamodb.Table (and "
        "point_in_time_recovery=True on every replica), leaving recovery_period_in_days unset "
        "(35 days) or at least minimumRecoveryPeriodDays.",
        subjects=(TABLE,),
        settings=(
            Setting(
                "minimumRecoveryPeriodDays",
                "Least point-in-time recovery period, in days (AWS keeps 1 to 35)",
                35,
                {"type": "integer", "minimum": 1, "maximum": 35},
            ),
        ),
    )
)
def require_pitr(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    title = label(resource, "table")
    minimum = int(config["minimumRecoveryPeriodDays"])
    period = _days(get(props, "pointInTimeRecovery", "recoveryPeriodInDays"))
    yield from messages(
        (
            truthy(get(props, "pointInTimeRecovery", "enabled")),
            f"{title} must enable point-in-time recovery",
        ),
        (
            period is None or period >= minimum,
            f"{title}: point-in-time recovery period is {period} days, must be at least {minimum}",
        ),
    )
    for replica in items(props.get("replicas")):
        if not truthy(get(replica, "pointInTimeRecovery")):
            yield (
                f"{title}: replica in {get(replica, 'regionName')} must enable point-in-time "
                "recovery"
            )


@resource_policy(
    Meta(
        id="aws-dynamodb-table-require-kms",
        description="Every DynamoDB table (and replica) is encrypted with a customer-managed KMS "
        "key.",
        practice=c.ENCRYPT_WITH_CUSTOMER_KEYS,
        safeguard=c.ENCRYPTION_AT_REST,
        severity=Severity.HIGH,
        remediation="Set server_side_encryption enabled=True with kms_key_arn the stack's data "
        "key on the aws.dynamodb.Table, and kms_key_arn (a key of the replica's region) on every "
        "replica: disabled means an AWS-owned key, enabled without a key the AWS-managed "
        "aws/dynamodb key.",
        subjects=(TABLE,),
    )
)
def require_table_kms(resource: ResourceLike, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    title = label(resource, "table")
    key = get(props, "serverSideEncryption", "kmsKeyArn")
    if not truthy(get(props, "serverSideEncryption", "enabled")):
        yield f"{title} must enable server-side encryption with a customer-managed KMS key"
    elif not customer_key(key, "dynamodb"):
        yield f"{title} must name a customer-managed KMS key (serverSideEncryption kmsKeyArn)"
    for replica in items(props.get("replicas")):
        if not customer_key(get(replica, "kmsKeyArn"), "dynamodb"):
            yield (
                f"{title}: replica in {get(replica, 'regionName')} must name a customer-managed "
                "KMS key (kmsKeyArn)"
            )


@resource_policy(
    Meta(
        id="aws-dynamodb-table-require-deletion-protection",
        description="Every DynamoDB table has deletion protection: it cannot be deleted (by "
        "`pulumi destroy`, a replacement or a DeleteTable call) without first turning it off.",
        practice=c.BACKUP_AND_DR,
        safeguard=c.INTEGRITY,
        severity=Severity.HIGH,
        remediation="Set deletion_protection_enabled=True on the aws.dynamodb.Table: deleting a "
        "table destroys its items and its point-in-time recovery history.",
        subjects=(TABLE,),
    )
)
def require_table_deletion_protection(
    resource: ResourceLike, config: Mapping[str, Any]
) -> Iterator[str]:
    if not truthy(resource.props.get("deletionProtectionEnabled")):
        yield f"{label(resource, 'table')} must set deletionProtectionEnabled true"


def _tags(resource: Any) -> dict[str, str]:
    """A resource's tags, with the provider's default tags when the outputs carry them."""
    found: dict[str, str] = {}
    for prop in ("tagsAll", "tags"):
        value = resource.props.get(prop)
        if isinstance(value, Mapping):
            found.update({str(k): str(v) for k, v in value.items()})
    return found


def _table_matches_arn(table: Any, pattern: str) -> bool:
    """Whether a selection's ARN pattern (``*`` wildcards) covers the table.

    A stack check sees the table's ARN; a plan holds only inputs, where the ARN is not computed
    yet: the pattern's resource part is then matched against ``table/<name>`` and its region and
    account, which a plan cannot know, are taken to match.
    """
    arn = table.props.get("arn")
    if isinstance(arn, str) and arn.startswith("arn:"):
        return fnmatchcase(arn, pattern)
    if pattern == "*":
        return True
    parsed = parse_arn(pattern)
    if not parsed or not fnmatchcase("dynamodb", parsed.service):
        return False
    return fnmatchcase(f"table/{table.props.get('name')}", parsed.resource)


def _tag_key(key: Any) -> str:
    text = str(key)
    return text[len(TAG_CONDITION_PREFIX) :] if text.startswith(TAG_CONDITION_PREFIX) else text


def _condition_holds(tags: Mapping[str, str], operator: str, entry: Any) -> bool:
    value = tags.get(_tag_key(get(entry, "key")))
    wanted = str(get(entry, "value"))
    if operator == "stringEquals":
        return value == wanted
    if operator == "stringLikes":
        return value is not None and fnmatchcase(value, wanted)
    if operator == "stringNotEquals":
        return value != wanted
    return value is None or not fnmatchcase(value, wanted)  # stringNotLikes


def _selects(selection: Any, table: Any) -> bool:
    """Whether a backup selection assigns the table to its plan.

    AWS Backup assigns a resource matching any of `resources` or any of `selectionTags`, that
    matches every one of `conditions` and none of `notResources`.
    """
    props = selection.props
    tags = _tags(table)
    by_arn = any(_table_matches_arn(table, str(p)) for p in items(props.get("resources")))
    by_tag = any(
        str(get(t, "type", default="STRINGEQUALS")).upper() == "STRINGEQUALS"
        and tags.get(_tag_key(get(t, "key"))) == str(get(t, "value"))
        for t in items(props.get("selectionTags"))
    )
    if not (by_arn or by_tag):
        return False
    for block in items(props.get("conditions")):
        for operator in ("stringEquals", "stringLikes", "stringNotEquals", "stringNotLikes"):
            for entry in items(get(block, operator)):
                if not _condition_holds(tags, operator, entry):
                    return False
    return not any(_table_matches_arn(table, str(p)) for p in items(props.get("notResources")))


@stack_policy(
    Meta(
        id="aws-backup-selection-covers-tables",
        description="Every DynamoDB table holding PHI, or tagged for a backup plan, is assigned "
        "to a backup plan by a backup selection.",
        practice=c.BACKUP_AND_DR,
        safeguard=c.DATA_BACKUP_PLAN,
        severity=Severity.HIGH,
        remediation="Tag the aws.dynamodb.Table with the DR component's backup tag "
        "(backup-plan=<plan name>) so the aws.backup.Selection's conditions match it, or widen "
        "the selection's resources/conditions. Only tables whose purpose tag is in "
        "transientPurposes and whose items expire by TTL (idempotency records) may stay out.",
        subjects=(TABLE,),
        settings=(
            Setting(
                "transientPurposes",
                "Values of the `purpose` tag of PHI tables whose items are transient by design "
                "(they expire by TTL; point-in-time recovery covers them) and need no backup plan",
                ["ingest-idempotency"],
                STRING_LIST,
            ),
            Setting(
                "selectionTagKey",
                "Tag key with which a table asks to join a backup plan",
                "backup-plan",
                {"type": "string"},
            ),
        ),
    )
)
def selection_covers_tables(stack: Stack, config: Mapping[str, Any]) -> Iterator[Finding]:
    selections = stack.of_type(SELECTION)
    transient = set(config["transientPurposes"])
    for table in stack.of_type(TABLE):
        tags = _tags(table)
        asks = config["selectionTagKey"] in tags
        phi = tags.get("data-classification") == "phi"
        # A PHI table stays out only when declared transient AND its items really expire.
        exempt = tags.get("purpose") in transient and truthy(get(table.props, "ttl", "enabled"))
        if not (asks or (phi and not exempt)):
            continue
        if not any(_selects(s, table) for s in selections):
            reason = "asks for a backup plan" if asks else "holds PHI"
            yield (
                table,
                (f"{label(table, 'table')} {reason} but no backup selection assigns it to a plan"),
            )


POLICIES = (
    require_vault_lock,
    require_vault_kms,
    vault_no_force_destroy,
    require_cross_region_copy,
    require_retention,
    require_pitr,
    require_table_kms,
    require_table_deletion_protection,
    selection_covers_tables,
)
