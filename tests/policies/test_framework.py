"""The helpers the domains share (policies/framework.py): what scopes an anonymous Allow, what a
TLS-only policy is, how resources are named in messages, what a plaintext secret is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from policies.framework import (
    customer_key,
    label,
    pins,
    plaintext_secrets,
    secret_in_text,
    statements,
)
from tests.policies.conftest import Judge
from tests.policies.mutations import Snapshot, statement

POLICY = "aws:s3/bucketPolicy:BucketPolicy"
NO_PUBLIC_ALLOW = "aws-s3-bucket-policy-no-public-allow"
TLS_ONLY = "aws-s3-bucket-require-tls-only-policy"
DERIVED = "arn:aws:s3:::pacs-dev-123456789012-us-east-1-derived/*"


def _anonymous_read(snapshot: Snapshot, condition: dict[str, Any]) -> None:
    with snapshot.policy(POLICY, "imaging-derived-policy") as doc:
        doc["Statement"].append(
            {
                "Sid": "ConditionalRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": DERIVED,
                "Condition": condition,
            }
        )


# --- anonymous allows: only a condition that pins the account scopes them ----------------------


@pytest.mark.parametrize(
    "condition",
    [
        # Every account but this one: the opposite of a scope.
        {"StringNotEquals": {"aws:SourceAccount": "123456789012"}},
        # Any account at all.
        {"StringLike": {"aws:PrincipalAccount": "*"}},
        # A request without the key (an anonymous one) satisfies IfExists.
        {"StringEqualsIfExists": {"aws:SourceAccount": "123456789012"}},
        # Under StringLike a '*' spans colons: any account's ARN can end in this one's id.
        {"StringLike": {"aws:SourceArn": "arn:aws:logs:*:123456789012:*"}},
        # ArnLike with the account field itself a wildcard.
        {"ArnLike": {"aws:SourceArn": "arn:aws:logs:us-east-1:*:*"}},
        # ForAllValues holds of a request without the key.
        {"ForAllValues:StringEquals": {"aws:PrincipalOrgID": "o-abcdef1234"}},
        # Null tests presence, not value.
        {"Null": {"aws:SourceAccount": "false"}},
        # An empty value.
        {"StringEquals": {"aws:SourceAccount": ""}},
    ],
    ids=[
        "not-equals",
        "like-star",
        "if-exists",
        "string-like-arn",
        "arn-like-any-account",
        "for-all-values",
        "null",
        "empty",
    ],
)
def test_conditions_that_do_not_pin_the_account_are_refused(
    snapshot: Snapshot, judge: Judge, condition: dict[str, Any]
) -> None:
    _anonymous_read(snapshot, condition)
    report = judge(snapshot, NO_PUBLIC_ALLOW)
    assert [f.message for f in report.findings] == [
        "statement ConditionalRead allows Principal '*' unconditionally"
    ]
    assert report.blocking


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEquals": {"aws:SourceAccount": "123456789012"}},
        {"StringEquals": {"aws:PrincipalOrgID": "o-abcdef1234"}},
        # ArnLike matches each ARN field on its own: this admits only CloudWatch Logs resources
        # of account 123456789012.
        {"ArnLike": {"aws:SourceArn": "arn:aws:logs:us-east-1:123456789012:*"}},
        {"ArnLike": {"aws:SourceArn": "arn:aws:logs:*:123456789012:log-group:*"}},
        {"ArnEquals": {"aws:SourceArn": "arn:aws:logs:us-east-1:123456789012:log-group:x"}},
    ],
    ids=["source-account", "org-id", "arn-like-account", "arn-like-any-region", "arn-equals"],
)
def test_conditions_that_pin_the_account_scope_an_anonymous_allow(
    snapshot: Snapshot, judge: Judge, condition: dict[str, Any]
) -> None:
    _anonymous_read(snapshot, condition)
    assert not judge(snapshot, NO_PUBLIC_ALLOW).findings


def test_pins_needs_a_positive_operator_and_fixed_values() -> None:
    def one(condition: dict[str, Any]) -> Any:
        doc = {"Statement": [{"Effect": "Allow", "Principal": "*", "Condition": condition}]}
        return statements(doc)[0]

    keys = ("aws:principalaccount",)
    assert pins(one({"StringEquals": {"aws:PrincipalAccount": ["111122223333"]}}), keys)
    assert pins(one({"ForAnyValue:StringEquals": {"aws:PrincipalAccount": "1"}}), keys)
    assert not pins(one({"StringEquals": {"aws:PrincipalAccount": ["1", "2?"]}}), keys)
    assert not pins(one({"StringEquals": {"aws:PrincipalAccount": []}}), keys)
    assert not pins(one({"StringEquals": {"aws:ResourceAccount": "1"}}), keys)
    # The ARN exemption is for aws:SourceArn only.
    assert not pins(one({"ArnLike": {"aws:PrincipalAccount": "arn:aws:iam::111122223333:*"}}), keys)


# --- TLS-only policies --------------------------------------------------------------------------


def test_a_negated_secure_transport_condition_does_not_make_a_policy_tls_only(
    snapshot: Snapshot, judge: Judge
) -> None:
    assert not judge(snapshot, TLS_ONLY).findings
    with snapshot.policy(POLICY, "imaging-derived-policy") as doc:
        # This denies every request made WITH TLS: it is not the TLS-only statement.
        statement(doc, "DenyInsecureTransport")["Condition"] = {
            "StringNotEquals": {"aws:SecureTransport": "false"}
        }
    assert [f.message for f in judge(snapshot, TLS_ONLY).findings] == [
        "bucket pacs-dev-123456789012-us-east-1-derived: policy must deny s3:* when "
        "aws:SecureTransport is false"
    ]


def test_actions_of_a_tls_deny_match_case_insensitively(snapshot: Snapshot, judge: Judge) -> None:
    with snapshot.policy(POLICY, "imaging-derived-policy") as doc:
        statement(doc, "DenyInsecureTransport")["Action"] = "S3:*"
    assert not judge(snapshot, TLS_ONLY).findings


# --- names and keys -----------------------------------------------------------------------------


@dataclass
class _Resource:
    name: str
    props: dict[str, Any] = field(default_factory=dict)
    resource_type: str = "aws:test/thing:Thing"
    urn: str = "urn:test"


def test_label_tries_the_identities_then_the_name_tag_then_the_logical_name() -> None:
    tagged = _Resource("logical", {"tags": {"Name": "tagged"}})
    assert label(tagged, "VPC") == "VPC tagged"
    assert label(_Resource("logical"), "VPC") == "VPC logical"
    named = _Resource("logical", {"name": "", "namePrefix": "prefix-", "tags": {"Name": "t"}})
    assert label(named, "queue", "name", "namePrefix") == "queue prefix-"
    assert label(_Resource("l", {"name": "n", "bucket": "b"}), "bucket", "bucket") == "bucket b"
    assert label(_Resource("l", {"name": "n"}), "role") == "role n"


def test_customer_key() -> None:
    assert customer_key("arn:aws:kms:us-east-1:123456789012:key/abc", "s3")
    assert not customer_key(None, "s3")
    assert not customer_key("", "s3")
    assert not customer_key("alias/aws/s3", "s3")
    assert not customer_key("arn:aws:kms:us-east-1:123456789012:alias/aws/sqs", "sqs")
    assert customer_key("alias/aws/s3", "sqs")


# --- plaintext secrets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("PACS_TLS_KEY", "-----BEGIN PRIVATE KEY-----\nMIIE...", "key material"),
        ("UPLOAD", "AKIAIOSFODNN7EXAMPLE", "an AWS access key id"),
        ("AWS", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "an AWS secret access key"),
        ("UPSTREAM", "postgres://pacs:pw@db:5432/pacs", "a URL with a password"),
        ("CI", "ghp_" + "a1B2" * 9, "a service token"),
        # Names: words, pairs, camelCase, run-together words and a trailing KEY.
        ("PACS_DB_PASSWORD", "hunter2", "a literal secret"),
        ("partnerApiKey", "3f2c1a", "a literal secret"),
        ("DBPASSWORD", "hunter2", "a literal secret"),
        ("GATEWAY_TLS_KEY", "abc", "a literal secret"),
        ("KEY", "abc", "a literal secret"),
        ("MYTOKEN", "abc", "a literal secret"),
    ],
)
def test_plaintext_secrets_name_the_variable_and_kind_never_the_value(
    name: str, value: str, kind: str
) -> None:
    found = plaintext_secrets({name: value})
    assert found == [f"{name} holds {kind}"]
    assert value not in found[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATA_KEY", "arn:aws:kms:us-east-1:123456789012:key/abc"),
        ("PACS_SIGNING_KEY_ARN", "arn:aws:kms:us-east-1:123456789012:key/abc"),
        ("DB_SECRET_NAME", "pacs/db"),
        ("PACS_API_TOKEN_TTL", "3600"),
        ("API_KEY", "alias/pacs-api"),
        ("DB_PASSWORD", "/aws/reference/secretsmanager/pacs-db"),
        ("PACS_BUILD_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("EMPTY_PASSWORD", ""),
        ("NOTHING_SECRET", None),
        # Public PEM material: a certificate's 40-character last line is not a secret key.
        (
            "CLIENT_CA",
            "-----BEGIN CERTIFICATE-----\nMIIB\nAbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd\n"
            "-----END CERTIFICATE-----",
        ),
    ],
)
def test_references_and_public_values_are_not_secrets(name: str, value: Any) -> None:
    assert plaintext_secrets({name: value}) == []


def test_secret_in_text_reads_command_lines() -> None:
    assert secret_in_text("run --key -----BEGIN EC PRIVATE KEY-----") == "key material"
    assert secret_in_text("run --id AKIAIOSFODNN7EXAMPLE") == "an AWS access key id"
    assert secret_in_text("gateway --port 2762 --tls") is None
