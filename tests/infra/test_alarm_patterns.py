"""Each security alarm's metric filter matches the CloudTrail events it is for, and not their peers.

The patterns are evaluated by ``tests/infra/filter_patterns.py`` (exactly the syntax they use, with
its own tests below); the events are trimmed CloudTrail records with the fields the patterns read.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.components.audit import (
    ASSUME_ROLE_EVENTS,
    BREAK_GLASS_ALARM,
    DLQ_DELETED_ALARM,
    SECURITY_ALARMS,
    break_glass_filter,
    dlq_deleted_filter,
)
from tests.infra.filter_patterns import PatternError, matches

BREAK_GLASS_ROLE = "arn:aws:iam::123456789012:role/pacs-dev-break-glass"
DLQ = "pacs-dev-ingest-dlq"
DLQ_URL = f"https://sqs.us-east-1.amazonaws.com/123456789012/{DLQ}"
OPERATOR = {
    "type": "AssumedRole",
    "arn": "arn:aws:sts::123456789012:assumed-role/pacs-dev-imaging-operator/alice",
}


def event(**fields: Any) -> dict[str, Any]:
    """A CloudTrail record: an IAM role's management call unless the fields say otherwise."""
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/x"},
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "eventType": "AwsApiCall",
        "awsRegion": "us-east-1",
    }
    for key, value in fields.items():
        record[key] = value
    return record


ROOT = {"type": "Root", "arn": "arn:aws:iam::123456789012:root"}

# alarm -> (events that MUST match, events that MUST NOT match)
CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "root-account-use": (
        [event(userIdentity=ROOT, eventSource="iam.amazonaws.com", eventName="CreateUser")],
        [
            event(),
            # AWS acting for the root user (invokedBy) and AWS's own service events are not use.
            event(userIdentity={**ROOT, "invokedBy": "support.amazonaws.com"}),
            event(userIdentity=ROOT, eventType="AwsServiceEvent"),
        ],
    ),
    "unauthorized-api-calls": (
        [
            event(errorCode="AccessDenied"),
            event(errorCode="AccessDeniedException"),
            event(errorCode="Client.UnauthorizedOperation"),
        ],
        [event(), event(errorCode="NoSuchKey"), event(errorCode="ThrottlingException")],
    ),
    "iam-policy-changes": (
        [
            event(eventSource="iam.amazonaws.com", eventName=name)
            for name in (
                "PutRolePolicy",
                "AttachRolePolicy",
                "DeleteRolePermissionsBoundary",
                "UpdateAssumeRolePolicy",
                "CreatePolicyVersion",
            )
        ],
        [
            event(eventSource="iam.amazonaws.com", eventName="GetRolePolicy"),
            event(eventSource="iam.amazonaws.com", eventName="ListRoles"),
            # Same name, another service: not an IAM policy change.
            event(eventSource="s3.amazonaws.com", eventName="PutBucketPolicy"),
        ],
    ),
    "kms-key-disable-or-deletion": (
        [
            event(eventSource="kms.amazonaws.com", eventName="DisableKey"),
            event(eventSource="kms.amazonaws.com", eventName="ScheduleKeyDeletion"),
        ],
        [
            event(eventSource="kms.amazonaws.com", eventName="Decrypt"),
            event(eventSource="kms.amazonaws.com", eventName="EnableKey"),
        ],
    ),
    "cloudtrail-changes": (
        [
            event(eventSource="cloudtrail.amazonaws.com", eventName=name)
            for name in ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors")
        ],
        [
            event(eventSource="cloudtrail.amazonaws.com", eventName="LookupEvents"),
            event(eventSource="cloudtrail.amazonaws.com", eventName="GetTrailStatus"),
        ],
    ),
    "s3-policy-or-object-lock-changes": (
        [
            event(eventName=name)
            for name in (
                "PutBucketPolicy",
                "DeleteBucketPolicy",
                "PutObjectLockConfiguration",
                "PutObjectRetention",
                "PutBucketPublicAccessBlock",
            )
        ],
        [
            event(eventName="PutObject"),
            event(eventName="GetBucketPolicy"),
            event(eventSource="iam.amazonaws.com", eventName="PutRolePolicy"),
        ],
    ),
    "console-login-without-mfa": (
        [
            event(
                eventSource="signin.amazonaws.com",
                eventName="ConsoleLogin",
                userIdentity={"type": "IAMUser", "userName": "alice"},
                additionalEventData={"MFAUsed": "No"},
                responseElements={"ConsoleLogin": "Success"},
            )
        ],
        [
            event(
                eventSource="signin.amazonaws.com",
                eventName="ConsoleLogin",
                userIdentity={"type": "IAMUser", "userName": "alice"},
                additionalEventData={"MFAUsed": "Yes"},
                responseElements={"ConsoleLogin": "Success"},
            ),
            # A failed sign-in is not a session (the unauthorized alarm's peers watch failures).
            event(
                eventSource="signin.amazonaws.com",
                eventName="ConsoleLogin",
                userIdentity={"type": "IAMUser", "userName": "alice"},
                additionalEventData={"MFAUsed": "No"},
                responseElements={"ConsoleLogin": "Failure"},
            ),
            # Federated sign-ins carry the IdP's MFA, not AWS's: out of this alarm's scope.
            event(
                eventSource="signin.amazonaws.com",
                eventName="ConsoleLogin",
                userIdentity={"type": "AssumedRole"},
                additionalEventData={"MFAUsed": "No"},
                responseElements={"ConsoleLogin": "Success"},
            ),
        ],
    ),
    BREAK_GLASS_ALARM: (
        [
            event(
                eventSource="sts.amazonaws.com",
                eventName=name,
                requestParameters={"roleArn": BREAK_GLASS_ROLE, "roleSessionName": "alice"},
            )
            for name in ASSUME_ROLE_EVENTS
        ],
        [
            event(
                eventSource="sts.amazonaws.com",
                eventName="AssumeRole",
                requestParameters={"roleArn": BREAK_GLASS_ROLE.replace("break-glass", "viewer")},
            ),
            event(eventSource="sts.amazonaws.com", eventName="GetCallerIdentity"),
        ],
    ),
}
CASES[DLQ_DELETED_ALARM] = (
    [
        event(
            eventSource="sqs.amazonaws.com",
            eventName=name,
            userIdentity=OPERATOR,
            requestParameters={"queueUrl": DLQ_URL},
        )
        for name in ("DeleteMessage", "DeleteMessageBatch", "PurgeQueue")
    ],
    [
        # Receiving (looking at) a message, or deleting from another queue, is not the alarm's.
        event(
            eventSource="sqs.amazonaws.com",
            eventName="ReceiveMessage",
            userIdentity=OPERATOR,
            requestParameters={"queueUrl": DLQ_URL},
        ),
        event(
            eventSource="sqs.amazonaws.com",
            eventName="DeleteMessage",
            userIdentity=OPERATOR,
            requestParameters={"queueUrl": DLQ_URL.replace("-dlq", "")},
        ),
        # SQS itself moving messages back during a redrive is a service, not a person.
        event(
            eventSource="sqs.amazonaws.com",
            eventName="DeleteMessage",
            userIdentity={"type": "AWSService", "invokedBy": "sqs.amazonaws.com"},
            requestParameters={"queueUrl": DLQ_URL},
        ),
    ],
)
PATTERNS = {
    **{name: alarm.pattern for name, alarm in SECURITY_ALARMS.items()},
    BREAK_GLASS_ALARM: break_glass_filter(BREAK_GLASS_ROLE),
    DLQ_DELETED_ALARM: dlq_deleted_filter(DLQ),
}


def test_every_alarm_has_sample_events() -> None:
    assert set(CASES) == set(PATTERNS)


@pytest.mark.parametrize("alarm", sorted(PATTERNS))
def test_alarm_pattern_matches_its_events(alarm: str) -> None:
    must, _ = CASES[alarm]
    for sample in must:
        assert matches(PATTERNS[alarm], sample), f"{alarm}: misses {sample}"


@pytest.mark.parametrize("alarm", sorted(PATTERNS))
def test_alarm_pattern_ignores_its_peers(alarm: str) -> None:
    _, must_not = CASES[alarm]
    for sample in must_not:
        assert not matches(PATTERNS[alarm], sample), f"{alarm}: fires on {sample}"


# --------------------------------------------------------------------------- the evaluator itself


@pytest.mark.parametrize(
    ("pattern", "record", "expected"),
    [
        ('{ $.a = "x" }', {"a": "x"}, True),
        ('{ $.a = "x" }', {"a": "y"}, False),
        ("{ $.a = x }", {"a": "x"}, True),
        ('{ $.a.b = "x*" }', {"a": {"b": "xyz"}}, True),
        ('{ $.a = "*z" }', {"a": "xyz"}, True),
        ('{ $.a = "*z" }', {"a": "zy"}, False),
        ('{ $.a != "x" }', {"a": "y"}, True),
        ('{ $.a != "x" }', {}, False),
        ("{ $.a NOT EXISTS }", {}, True),
        ("{ $.a NOT EXISTS }", {"a": 1}, False),
        ('{ ($.a = "x") || ($.b = "y") }', {"b": "y"}, True),
        ('{ ($.a = "x") && ($.b = "y") }', {"b": "y"}, False),
        ('{ ($.a = "x") && (($.b = "y") || ($.b = "z")) }', {"a": "x", "b": "z"}, True),
        ('{ $.a = "x" }', {"a": {"nested": "x"}}, False),
    ],
)
def test_evaluator(pattern: str, record: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, record) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        '$.a = "x"',  # not a JSON pattern
        '{ $.a = "x" && $.b = "y" || $.c = "z" }',  # mixed without parentheses
        "{ $.a > 3 }",  # numeric comparison: not covered
        "{ $.a IS TRUE }",
        '{ $.a[0] = "x" }',
        '{ ($.a = "x" }',
    ],
)
def test_evaluator_refuses_syntax_it_does_not_cover(pattern: str) -> None:
    with pytest.raises(PatternError):
        matches(pattern, {"a": "x"})
