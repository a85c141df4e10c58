"""``pacs-kit pki``: a small private CA for the edge's mutual TLS (modalities, partners, gateway)
and for the signers of DICOM digital signatures.

- ``pki init --out DIR``: ``DIR/ca.pem`` and ``DIR/ca.key`` (EC P-256, 10 years, path length 0).
- ``pki issue --ca DIR --name NAME --kind client|server|signer [--san ...] --out DIR``:
  ``NAME.pem`` and ``NAME.key`` (EC P-256, 90 days by default, the key usage and extended key
  usage of its kind; a signer's key signs DICOM digital signatures: digitalSignature and
  nonRepudiation, no extended key usage).
- ``pki csr --kms-key-id ID --name NAME --out FILE``: a certification request for an asymmetric
  KMS key (RSA or EC), signed through KMS (``Sign`` of its digest): the private key never leaves
  KMS, and the request proves the requester can sign with it.
- ``pki sign-csr --ca DIR --csr FILE --out FILE [--days N]``: the CA issues a signer certificate
  for the request's public key once the request's signature verifies (the certificate that
  ``pacs-kit sign --kms-key-id`` embeds).
- ``pki crl --ca DIR --revoke SERIAL... --out FILE``: a CRL (30 days) signed by the CA, with
  every serial revoked so far (``DIR/revoked.json``) and a growing CRL number.

Private keys are written with mode 0600. Production can use AWS Private CA instead (the edge
accepts either a CA bundle or a Private CA ARN).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lambdas import der

CA_DAYS = 3650
LEAF_DAYS = 90
CRL_DAYS = 30
# The CA directory's record of revoked serials and the last CRL number.
REVOKED_LEDGER = "revoked.json"
KINDS = ("client", "server", "signer")
SIGNER_DAYS = 365
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class PkiError(ValueError):
    """A PKI request that cannot be fulfilled (missing CA, bad SAN, bad serial...)."""


@dataclass(frozen=True)
class Issued:
    certificate: Path
    key: Path
    serial: int


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cloud-pacs-kit"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def init_ca(out: Path, *, common_name: str = "cloud-pacs-kit private CA") -> Path:
    """Create a CA in ``out``; refuses to overwrite an existing CA key."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "ca.key").exists():
        raise PkiError(f"{out / 'ca.key'} exists; refusing to replace a CA")
    key = _new_key()
    cert = ca_certificate(key, _name(common_name), datetime.now(UTC))
    _write_key(out / "ca.key", key)
    _write_cert(out / "ca.pem", cert)
    return out / "ca.pem"


def ca_certificate(
    key: ec.EllipticCurvePrivateKey, name: x509.Name, now: datetime
) -> x509.Certificate:
    """A self-signed CA certificate: path length 0 (it issues leaves only), CA_DAYS valid."""
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
    content_commitment: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise PkiError(f"no usable CA in {ca_dir} (ca.pem, ca.key): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{ca_dir / 'ca.key'} is not an EC key")
    return cert, key


def _san(values: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for value in values:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            if not value or any(c.isspace() for c in value):
                raise PkiError(f"--san {value!r} is neither an IP address nor a DNS name") from None
            names.append(x509.DNSName(value))
    return names


def issue(
    ca_dir: Path,
    name: str,
    kind: str,
    out: Path,
    *,
    sans: list[str] | None = None,
    days: int = LEAF_DAYS,
    not_before: datetime | None = None,
) -> Issued:
    """Issue a leaf certificate and key for a ``client`` (modality), a ``server`` (gateway) or a
    ``signer`` (DICOM digital signatures)."""
    if kind not in KINDS:
        raise PkiError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if days <= 0:
        raise PkiError("--days must be positive")
    ca_cert, ca_key = load_ca(ca_dir)
    key = _new_key()
    builder = _leaf(ca_cert, ca_key, _name(name), key.public_key(), kind, days, not_before)
    san = _san(sans or ([name] if kind == "server" else []))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    out.mkdir(parents=True, exist_ok=True)
    _write_key(out / f"{name}.key", key)
    _write_cert(out / f"{name}.pem", cert)
    return Issued(out / f"{name}.pem", out / f"{name}.key", cert.serial_number)


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    public_key: Any,
    kind: str,
    days: int,
    not_before: datetime | None = None,
) -> x509.CertificateBuilder:
    """A leaf certificate of ``kind`` for ``public_key``, issued by the CA (not yet signed)."""
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if kind == "signer":  # signatures that must stand: non-repudiation, no TLS use
        return builder.add_extension(
            _key_usage(digital_signature=True, content_commitment=True), critical=True
        )
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if kind == "client" else ExtendedKeyUsageOID.SERVER_AUTH
    return builder.add_extension(_key_usage(digital_signature=True), critical=True).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=False
    )


# --- certification requests for KMS keys ------------------------------------------------------

# AlgorithmIdentifier OIDs of a request signed with KMS (RFC 4055 / RFC 5758).
_RSA_SIGNATURE_OIDS = {
    "sha256": "1.2.840.113549.1.1.11",
    "sha384": "1.2.840.113549.1.1.12",
    "sha512": "1.2.840.113549.1.1.13",
}
_ECDSA_SIGNATURE_OIDS = {
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
    "sha512": "1.2.840.10045.4.3.4",
}
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


def kms_csr(kms: Any, key_id: str, subject: x509.Name) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for the KMS key ``key_id``, signed through KMS (RFC 2986).

    ``cryptography`` signs requests only with a private key it holds, so the request is encoded
    here: CertificationRequestInfo (version 0, subject, the KMS public key, no attributes), its
    digest signed by KMS (``MessageType=DIGEST``), and the signature algorithm of the key (RSA:
    sha256WithRSAEncryption; EC: ecdsa-with-SHA256/384/512 by curve). ``cryptography`` parses
    the result and checks its signature, so a wrong encoding cannot pass.
    """
    from lambdas.kms_signing import KmsSigningError, public_key, sign_digest

    try:
        key = public_key(kms, key_id)
    except KmsSigningError as exc:
        raise PkiError(f"KMS key {key_id}: {exc}") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}.get(
            key.curve.name, ""
        )
        oid = _ECDSA_SIGNATURE_OIDS.get(name)
        algorithm_id = der.sequence(der.oid(oid)) if oid else b""
    else:
        name = "sha256"
        algorithm_id = der.sequence(der.oid(_RSA_SIGNATURE_OIDS[name]), der.null())
    if not algorithm_id:
        raise PkiError(f"KMS key {key_id}: unsupported curve")
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = der.sequence(der.integer(0), subject.public_bytes(), spki, der.tlv(der.context(0), b""))
    digest = hashes.Hash(_HASHES[name])
    digest.update(info)
    try:
        signature = sign_digest(kms, key_id, key, digest.finalize(), _HASHES[name])
    except KmsSigningError as exc:
        raise PkiError(f"KMS key {key_id}: {exc}") from None
    request = der.sequence(info, algorithm_id, der.bit_string(signature))
    csr = x509.load_der_x509_csr(request)
    if not csr.is_signature_valid:
        raise PkiError(f"KMS key {key_id}: the request's signature does not verify")
    return csr


def sign_csr(
    ca_dir: Path, csr: x509.CertificateSigningRequest, out: Path, *, days: int = SIGNER_DAYS
) -> Issued:
    """The CA issues a ``signer`` certificate for the request's key and subject, once the
    request's signature proves the requester holds (or can use) the private key."""
    if days <= 0:
        raise PkiError("--days must be positive")
    if not csr.is_signature_valid:
        raise PkiError("the request's signature does not verify: refusing to certify its key")
    ca_cert, ca_key = load_ca(ca_dir)
    cert = _leaf(ca_cert, ca_key, csr.subject, csr.public_key(), "signer", days).sign(
        ca_key, hashes.SHA256()
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_cert(out, cert)
    return Issued(out, Path(), cert.serial_number)


def crl(ca_dir: Path, revoked: list[int], out: Path, *, days: int = CRL_DAYS) -> Path:
    """A CRL signed by the CA revoking ``revoked`` and every serial revoked before.

    Revocations are cumulative: the CA directory keeps them in ``revoked.json`` with their
    revocation dates and the CRL number (RFC 5280 5.2.3), which grows with every CRL.
    """
    if days <= 0:
        raise PkiError("--days must be positive")
    ca_cert, ca_key = load_ca(ca_dir)
    now = datetime.now(UTC)
    ledger_path = ca_dir / REVOKED_LEDGER
    ledger = _read_ledger(ledger_path)
    dates: dict[int, str] = {int(e["serial"]): e["revoked_at"] for e in ledger["revoked"]}
    for serial in revoked:
        dates.setdefault(serial, now.isoformat(timespec="seconds"))
    number = int(ledger["crl_number"]) + 1
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=days))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, when in sorted(dates.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(datetime.fromisoformat(when))
            .build()
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    ledger_path.write_text(
        json.dumps(
            {
                "crl_number": number,
                "revoked": [{"serial": str(k), "revoked_at": v} for k, v in sorted(dates.items())],
            },
            indent=2,
        )
        + "\n"
    )
    return out


def _read_ledger(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"crl_number": 0, "revoked": []}
    try:
        ledger: dict[str, Any] = json.loads(path.read_text())
        int(ledger["crl_number"])
        for entry in ledger["revoked"]:
            int(entry["serial"])
            datetime.fromisoformat(entry["revoked_at"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PkiError(
            f"{path} is damaged ({type(exc).__name__}); restore it from backup"
        ) from None
    return ledger


def _serial(text: str) -> int:
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a serial number: {text!r}") from None


def add_command(commands: Any) -> None:
    """Register ``pki init|issue|crl`` on the ``pacs-kit`` sub-command parser."""
    pki = commands.add_parser("pki", help="private CA for the edge's mutual TLS")
    sub = pki.add_subparsers(dest="pki_command", required=True, metavar="ACTION")
    init = sub.add_parser("init", help="create a CA: DIR/ca.pem and DIR/ca.key")
    init.add_argument("--out", type=Path, required=True, metavar="DIR", help="new CA directory")
    init.set_defaults(handler=_run_init)
    leaf = sub.add_parser(
        "issue",
        help="issue DIR/NAME.pem and DIR/NAME.key",
        description="Prints the certificate, the key and the serial number (for `pki crl`).",
    )
    leaf.add_argument("--ca", type=Path, required=True, metavar="DIR", help="made by `pki init`")
    leaf.add_argument("--name", required=True, help="common name and file name")
    leaf.add_argument(
        "--kind",
        required=True,
        choices=KINDS,
        help="client: modalities and partners (clientAuth); server: the gateway (serverAuth); "
        "signer: DICOM digital signatures (digitalSignature, nonRepudiation)",
    )
    leaf.add_argument("--san", action="append", default=[], help="DNS name or IP (repeat)")
    leaf.add_argument("--days", type=int, default=LEAF_DAYS, help=f"validity (default {LEAF_DAYS})")
    leaf.add_argument("--out", type=Path, required=True, metavar="DIR")
    leaf.set_defaults(handler=_run_issue)
    request = sub.add_parser(
        "csr",
        help="write a certification request for a KMS signing key, signed through KMS",
        description="The private key never leaves KMS: KMS signs the request's digest. Give "
        "the request to `pki sign-csr`.",
    )
    request.add_argument("--kms-key-id", required=True, metavar="ID", help="key id, ARN or alias")
    request.add_argument("--name", required=True, help="the signer's common name")
    request.add_argument("--region", help="the key's region (default: the AWS configuration's)")
    request.add_argument("--out", type=Path, required=True, metavar="FILE", help="PEM request")
    request.set_defaults(handler=_run_csr)
    certify = sub.add_parser(
        "sign-csr",
        help="issue a signer certificate for a certification request",
        description="Prints the certificate and its serial number.",
    )
    certify.add_argument("--ca", type=Path, required=True, metavar="DIR", help="made by `pki init`")
    certify.add_argument("--csr", type=Path, required=True, metavar="FILE", help="PEM or DER")
    certify.add_argument(
        "--days", type=int, default=SIGNER_DAYS, help=f"validity (default {SIGNER_DAYS})"
    )
    certify.add_argument("--out", type=Path, required=True, metavar="FILE", help="PEM certificate")
    certify.set_defaults(handler=_run_sign_csr)
    revoke = sub.add_parser(
        "crl",
        help="write a CRL revoking the given serial numbers",
        description=(
            "Revocations are cumulative (DIR/revoked.json). Publish a new CRL before its next "
            "update: the stack refuses an expired one."
        ),
    )
    revoke.add_argument("--ca", type=Path, required=True, metavar="DIR")
    revoke.add_argument(
        "--revoke",
        type=_serial,
        nargs="*",
        default=[],
        metavar="SERIAL",
        help="serial numbers to add, decimal or 0x-prefixed hex (earlier ones stay revoked)",
    )
    revoke.add_argument(
        "--days", type=int, default=CRL_DAYS, help=f"until the next update (default {CRL_DAYS})"
    )
    revoke.add_argument("--out", type=Path, required=True, metavar="FILE")
    revoke.set_defaults(handler=_run_crl)


def _report(fn: Any) -> int:
    try:
        print(fn())
    except PkiError as exc:
        print(f"pacs-kit pki: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _run_init(args: argparse.Namespace) -> int:
    return _report(lambda: init_ca(args.out))


def _run_issue(args: argparse.Namespace) -> int:
    def run() -> str:
        issued = issue(args.ca, args.name, args.kind, args.out, sans=args.san, days=args.days)
        return f"{issued.certificate}  {issued.key}  serial {issued.serial}"

    return _report(run)


def _run_csr(args: argparse.Namespace) -> int:
    def run() -> str:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            kms = boto3.client("kms", region_name=args.region)
            csr = kms_csr(kms, args.kms_key_id, _name(args.name))
        except (BotoCoreError, ClientError) as exc:
            raise PkiError(f"KMS: {exc}") from None
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        return str(args.out)

    return _report(run)


def _run_sign_csr(args: argparse.Namespace) -> int:
    def run() -> str:
        try:
            data = args.csr.read_bytes()
        except OSError as exc:
            raise PkiError(f"cannot read {args.csr}: {exc.strerror}") from None
        try:
            csr = (
                x509.load_pem_x509_csr(data)
                if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_csr(data)
            )
        except ValueError:
            raise PkiError(f"{args.csr} is not a certification request (PEM or DER)") from None
        issued = sign_csr(args.ca, csr, args.out, days=args.days)
        return f"{issued.certificate}  serial {issued.serial}"

    return _report(run)


def _run_crl(args: argparse.Namespace) -> int:
    return _report(lambda: crl(args.ca, args.revoke, args.out, days=args.days))
