"""`pacs-kit pki`: certificates that openssl accepts, with the right usages, and a working CRL."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID


@pytest.fixture(autouse=True, scope="module")
def openssl() -> None:
    """The independent verifier: missing, the tests fail (`make test` installs it), never skip."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing: `make test` installs it (apt-get install openssl)")


def pacs_kit(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pacs_kit.cli", "pki", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    assert pacs_kit("init", "--out", root).returncode == 0
    return root


def issue(ca: Path, name: str, kind: str, *extra: str) -> tuple[Path, x509.Certificate]:
    result = pacs_kit("issue", "--ca", ca, "--name", name, "--kind", kind, "--out", ca, *extra)
    assert result.returncode == 0, result.stderr
    path = ca / f"{name}.pem"
    return path, x509.load_pem_x509_certificate(path.read_bytes())


def test_issued_certificates_verify_with_openssl(ca: Path) -> None:
    server, _ = issue(ca, "gw", "server", "--san", "127.0.0.1", "--san", "gateway.internal")
    client, _ = issue(ca, "ct-scanner-1", "client")
    for leaf, purpose in ((server, "sslserver"), (client, "sslclient")):
        result = subprocess.run(
            ["openssl", "verify", "-purpose", purpose, "-CAfile", ca / "ca.pem", leaf],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0 and ": OK" in result.stdout, result.stdout + result.stderr


def test_leaf_certificates_are_short_lived_and_single_purpose(ca: Path) -> None:
    _, cert = issue(ca, "short", "client")
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days <= 91
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_keys_are_private_to_their_owner(ca: Path) -> None:
    issue(ca, "secret", "client")
    for key in (ca / "ca.key", ca / "secret.key"):
        assert key.stat().st_mode & 0o077 == 0, f"{key} is readable by others"


def test_a_ca_is_never_overwritten(ca: Path) -> None:
    before = (ca / "ca.key").read_bytes()
    result = pacs_kit("init", "--out", ca)
    assert result.returncode == 1 and "refusing" in result.stderr
    assert (ca / "ca.key").read_bytes() == before


def test_a_revoked_certificate_fails_openssl_crl_checks(ca: Path) -> None:
    leaf, cert = issue(ca, "stolen", "client")
    crl = ca / "revoked.crl"
    assert (
        pacs_kit("crl", "--ca", ca, "--revoke", str(cert.serial_number), "--out", crl).returncode
        == 0
    )
    result = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", ca / "ca.pem", "-CRLfile", crl, leaf],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "revoked" in (result.stdout + result.stderr).lower()
    loaded = x509.load_pem_x509_crl(crl.read_bytes())
    assert loaded.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert loaded.next_update_utc is not None and loaded.next_update_utc > datetime.now(UTC)


def test_revocations_accumulate_and_each_crl_has_a_higher_number(tmp_path: Path) -> None:
    assert pacs_kit("init", "--out", tmp_path).returncode == 0
    (first, a), (second, b) = (
        issue(tmp_path, "lost-1", "client"),
        issue(tmp_path, "lost-2", "client"),
    )
    crls = [tmp_path / "1.crl", tmp_path / "2.crl"]
    assert pacs_kit("crl", "--ca", tmp_path, "--revoke", str(a.serial_number), "--out", crls[0])
    result = pacs_kit(
        "crl", "--ca", tmp_path, "--revoke", hex(b.serial_number), "--days", "14", "--out", crls[1]
    )
    assert result.returncode == 0, result.stderr
    older, newer = (x509.load_pem_x509_crl(c.read_bytes()) for c in crls)
    assert {r.serial_number for r in newer} == {a.serial_number, b.serial_number}
    numbers = [c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
               for c in (older, newer)]  # fmt: skip
    assert numbers[1] > numbers[0]
    assert newer.next_update_utc is not None and newer.last_update_utc is not None
    assert 13 <= (newer.next_update_utc - newer.last_update_utc).days <= 14
    # The first revocation keeps its date; openssl refuses both leaves with the newer CRL.
    assert newer.get_revoked_certificate_by_serial_number(a.serial_number).revocation_date_utc == (
        older.get_revoked_certificate_by_serial_number(a.serial_number).revocation_date_utc
    )
    for leaf in (first, second):
        check = subprocess.run(
            ["openssl", "verify", "-crl_check", "-CAfile", tmp_path / "ca.pem",
             "-CRLfile", crls[1], leaf],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert check.returncode != 0 and "revoked" in (check.stdout + check.stderr).lower()


@pytest.mark.parametrize(
    "args",
    [
        ["issue", "--ca", "/nonexistent", "--name", "x", "--kind", "client", "--out", "/tmp"],
        ["issue", "--name", "x", "--kind", "robot", "--ca", "/tmp", "--out", "/tmp"],
    ],
)
def test_bad_requests_fail_with_a_message(args: list[str]) -> None:
    result = pacs_kit(*args)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr
