"""Encrypted export packages (issue #9): Secure DICOM Files with a signed manifest.

A package is a directory of

- ``<n>.p7m``: one Secure DICOM File per instance (PS3.10 Section 7.4, PS3.15 Annex D media
  security): CMS EnvelopedData (RFC 5652) whose content is the DICOM Part 10 file's bytes,
  encrypted with AES-256-CBC under a random content key that is transported to the recipient's
  X.509 certificate with RSA (RSAES-PKCS1-v1_5: the only key transport cryptography's
  ``PKCS7EnvelopeBuilder`` offers; it has no RSAES-OAEP and no key agreement, so the recipient
  key must be RSA). ``openssl cms -decrypt -inform DER -binary`` opens it;
- ``manifest.json`` (:func:`build_manifest`): canonical JSON listing, per member, the SHA-256 and
  size of its plaintext Part 10 bytes and its UIDs, with the creator, the creation time and the
  recipient certificate;
- ``manifest.json.p7s``: a detached CMS SignedData (DER, SHA-256, signer certificate embedded) over
  the manifest's exact bytes (:func:`sign_detached`), checkable with ``openssl cms -verify
  -binary -inform DER -content manifest.json``. It is encoded here (:mod:`lambdas.der`) around
  one ``sign_digest`` call of a :class:`lambdas.dicom_signature.Signer`, so a key in memory
  (``LocalSigner``) and a KMS key (``lambdas.kms_signing.KmsSigner``, ``MessageType=DIGEST``)
  sign the same way: ``cryptography``'s ``PKCS7SignatureBuilder`` needs the private key itself.

The manifest signature protects the members through their digests: a member swapped, altered,
removed or added no longer matches the signed list. Who made the package is proven only when the
signer certificate chains to a CA the recipient trusts; a one-time signer (:func:`one_time_signer`)
proves integrity only.

cryptography has no API to verify CMS SignedData, and no ASN.1 library is a dependency, so
:func:`verify_detached` reads the DER it needs with a minimal reader (:class:`lambdas.der.Reader`):
the embedded certificates and the one SignerInfo (issuer and serial, digest algorithm, signed
attributes, signature algorithm, signature). It checks that the content type attribute is id-data,
that the messageDigest attribute equals SHA-256(manifest), and the signature over the DER
``SET OF`` signed attributes (RFC 5652 Section 5.4) with the signer certificate's key
(RSASSA-PKCS1-v1_5 or ECDSA, SHA-256); with trusted CAs, that the signer certificate chains to one
of them now.

Pure functions over bytes and ``cryptography`` objects: no AWS, no Pulumi, no pydicom (the
one-time signer imports ``LocalSigner`` when it is made). Exceptions are :class:`PackageError`
with a stable ``code`` and never carry values from a data set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from lambdas import der

if TYPE_CHECKING:
    from lambdas.dicom_signature import LocalSigner, Signer

FORMAT = "cloud-pacs-kit/export-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.p7s"
MEMBER_SUFFIX = ".p7m"
CONTENT_ENCRYPTION = "aes-256-cbc"
KEY_TRANSPORT = "rsaes-pkcs1-v1_5"
ONE_TIME_SIGNER_CN = "cloud-pacs-kit one-time export signer"
# A one-time signer's key is discarded: its certificate only has to outlive later checks.
ONE_TIME_SIGNER_DAYS = 3650

# Stable error codes (CLI output, audit events). Never rename.
ERRORS: dict[str, str] = {
    "recipient-not-rsa": "the recipient certificate's key is not RSA: CMS key transport here "
    "is RSA",
    "key-mismatch": "the private key does not belong to the certificate",
    "key-unsupported": "the private key is neither RSA nor EC",
    "decrypt-failed": "the member cannot be decrypted with this key",
    "signature-malformed": "the manifest signature is not a detached CMS SignedData this kit reads",
    "signature-invalid": "the manifest signature does not verify over the manifest",
    "signer-untrusted": "the signer certificate does not chain to a trusted CA",
    "manifest-invalid": "the manifest is not a valid export manifest",
    "package-invalid": "the .zip is not a package: only manifest.json, manifest.json.p7s and "
    "<n>.p7m, each once, as plain files",
}

_ID_DATA = "1.2.840.113549.1.7.1"
_ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_ID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_ID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_ID_SIGNING_TIME = "1.2.840.113549.1.9.5"
_ID_SHA256 = "2.16.840.1.101.3.4.2.1"
# RSASSA-PKCS1-v1_5: CMS names it by the key (rsaEncryption) or with the hash (RFC 4055).
_RSA_PKCS1 = {"1.2.840.113549.1.1.1", "1.2.840.113549.1.1.11"}
_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
_SHA256_WITH_RSA = "1.2.840.113549.1.1.11"


class PackageError(ValueError):
    """A package that cannot be made or opened; ``code`` is stable (see :data:`ERRORS`)."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        super().__init__(f"{code}: {message or ERRORS.get(code, code)}")


@dataclass(frozen=True)
class Member:
    """One packaged instance as the manifest lists it (digest and size of the plaintext)."""

    file: str
    sha256: str
    size: int
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    deidentified: bool

    @classmethod
    def of(cls, file: str, data: bytes, uids: Mapping[str, str], *, deidentified: bool) -> Member:
        """The member ``file`` holding the Part 10 bytes ``data`` with the given UIDs (keys as
        the field names: ``sop_class_uid``, ``sop_instance_uid``, ...)."""
        return cls(
            file=file,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            sop_class_uid=uids["sop_class_uid"],
            sop_instance_uid=uids["sop_instance_uid"],
            study_instance_uid=uids["study_instance_uid"],
            series_instance_uid=uids["series_instance_uid"],
            transfer_syntax_uid=uids["transfer_syntax_uid"],
            deidentified=deidentified,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "sop_class_uid": self.sop_class_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "transfer_syntax_uid": self.transfer_syntax_uid,
            "deidentified": self.deidentified,
        }


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: what :func:`parse_manifest` checked."""

    created: str
    creator: Mapping[str, str]
    recipient: x509.Certificate
    members: tuple[Member, ...]


MIN_RSA_BITS = 2048


def check_recipient(certificate: x509.Certificate) -> None:
    """PackageError unless the certificate's key may receive a content key: ``recipient-not-rsa``
    (CMS key transport here is RSA), ``recipient-weak-key`` (below 2048 bits), or
    ``recipient-not-for-encryption`` (a KeyUsage extension without keyEncipherment: the key is
    certified for something else, e.g. signing only)."""
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise PackageError("recipient-not-rsa")
    if public.key_size < MIN_RSA_BITS:
        raise PackageError("recipient-weak-key", f"{public.key_size} bits: at least {MIN_RSA_BITS}")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_encipherment:
        raise PackageError("recipient-not-for-encryption")


def check_key_pair(key: object, certificate: x509.Certificate) -> None:
    """PackageError ``key-mismatch`` unless ``key`` is the private key of ``certificate``."""
    public = getattr(key, "public_key", None)
    if public is None:
        raise PackageError("key-unsupported")
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if public().public_bytes(*raw) != certificate.public_key().public_bytes(*raw):
        raise PackageError("key-mismatch")


def envelope(data: bytes, recipient: x509.Certificate) -> bytes:
    """``data`` as a DER CMS EnvelopedData for ``recipient`` (AES-256-CBC, RSA key transport)."""
    check_recipient(recipient)
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(data)
        .add_recipient(recipient)
        .set_content_encryption_algorithm(algorithms.AES256)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def open_envelope(enveloped: bytes, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> bytes:
    """The content of the DER EnvelopedData ``enveloped`` for the recipient ``certificate`` and
    its ``key``; PackageError ``key-mismatch`` or ``decrypt-failed``."""
    check_key_pair(key, certificate)
    try:
        return pkcs7.pkcs7_decrypt_der(enveloped, certificate, key, [])
    except ValueError as exc:
        raise PackageError("decrypt-failed") from exc


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lower-case hex."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def build_manifest(
    members: Sequence[Member],
    recipient: x509.Certificate,
    *,
    creator: Mapping[str, str],
    created: dt.datetime,
) -> bytes:
    """The canonical manifest: JSON with sorted keys, two-space indent, UTF-8, trailing newline.

    ``recipient`` carries the certificate (PEM) besides its subject, serial (lower-case hex) and
    SHA-256 fingerprint: opening needs it to find the recipient's key transport record.
    """
    document = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "creator": dict(creator),
        "created": created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "encryption": {"content": CONTENT_ENCRYPTION, "key_transport": KEY_TRANSPORT},
        "recipient": {
            "subject": recipient.subject.rfc4514_string(),
            "serial": format(recipient.serial_number, "x"),
            "sha256": fingerprint(recipient),
            "certificate": recipient.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        },
        "members": [m.as_dict() for m in members],
    }
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def _member(entry: Any) -> Member:
    """One manifest entry, every field of its declared type (TypeError otherwise)."""
    member = Member(**entry)
    for name, value in vars(member).items():
        expected = int if name == "size" else bool if name == "deidentified" else str
        if type(value) is not expected:
            raise TypeError(f"member field {name} is not {expected.__name__}")
    return member


def parse_manifest(data: bytes) -> Manifest:
    """The manifest's recipient and members; PackageError ``manifest-invalid`` when it is not a
    manifest of this format (only call it on a manifest whose signature verified)."""
    try:
        doc = json.loads(data.decode("utf-8"))
        if doc["format"] != FORMAT or doc["version"] != FORMAT_VERSION:
            raise PackageError("manifest-invalid", "unknown manifest format or version")
        recipient = x509.load_pem_x509_certificate(doc["recipient"]["certificate"].encode())
        if doc["recipient"]["sha256"] != fingerprint(recipient):
            raise PackageError("manifest-invalid", "recipient fingerprint mismatch")
        members = tuple(_member(m) for m in doc["members"])
        creator = {str(k): str(v) for k, v in doc["creator"].items()}
        created = str(doc["created"])
    except PackageError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PackageError("manifest-invalid") from exc
    names = [m.file for m in members]
    if len(set(names)) != len(names) or any(
        "/" in n or "\\" in n or not n.endswith(MEMBER_SUFFIX) or n.startswith(".") for n in names
    ):
        raise PackageError("manifest-invalid", "member file names are not plain, unique .p7m")
    return Manifest(created=created, creator=creator, recipient=recipient, members=members)


def sign_detached(manifest: bytes, signer: Signer, *, now: dt.datetime | None = None) -> bytes:
    """A detached DER CMS SignedData over ``manifest`` (RFC 5652), signed by ``signer``.

    SignedData version 1 with the SHA-256 digest algorithm, an id-data encapsulated content
    without eContent (detached), the signer's certificate in ``certificates``, and one version 1
    SignerInfo naming it by issuer and serial number. Its signed attributes (contentType id-data,
    signingTime ``now``, messageDigest SHA-256(manifest)) are a DER SET OF, and the signature is
    made over their encoding with the SET tag (RFC 5652 5.4): SHA-256 of it goes to
    ``signer.sign_digest``. The signature algorithm follows the certificate's key:
    sha256WithRSAEncryption (RSASSA-PKCS1-v1_5) or ecdsa-with-SHA256.
    """
    certificate = signer.certificate
    public = certificate.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        signature_algorithm = der.sequence(der.oid(_SHA256_WITH_RSA), der.null())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        signature_algorithm = der.sequence(der.oid(_ECDSA_SHA256))
    else:
        raise PackageError("key-unsupported", "the signer's key is neither RSA nor EC")
    when = now or dt.datetime.now(dt.UTC)
    attributes = [
        der.sequence(der.oid(_ID_CONTENT_TYPE), der.set_of(der.oid(_ID_DATA))),
        der.sequence(der.oid(_ID_SIGNING_TIME), der.set_of(der.utc_time(when))),
        der.sequence(
            der.oid(_ID_MESSAGE_DIGEST),
            der.set_of(der.octet_string(hashlib.sha256(manifest).digest())),
        ),
    ]
    signed_attrs = der.set_of(*attributes)
    signature = signer.sign_digest(hashlib.sha256(signed_attrs).digest(), hashes.SHA256())
    # Parameters of SHA-256 absent (RFC 5754 2: "implementations MUST accept" both, SHOULD omit).
    sha256 = der.sequence(der.oid(_ID_SHA256))
    signer_info = der.sequence(
        der.integer(1),
        der.sequence(certificate.issuer.public_bytes(), der.integer(certificate.serial_number)),
        sha256,
        der.set_of(*attributes, tag=der.context(0)),  # [0] IMPLICIT: the same SET OF, re-tagged
        signature_algorithm,
        der.octet_string(signature),
    )
    signed_data = der.sequence(
        der.integer(1),
        der.set_of(sha256),
        der.sequence(der.oid(_ID_DATA)),  # no eContent: detached
        der.tlv(der.context(0), certificate.public_bytes(serialization.Encoding.DER)),
        der.set_of(signer_info),
    )
    return der.sequence(der.oid(_ID_SIGNED_DATA), der.tlv(der.context(0), signed_data))


def one_time_signer(now: dt.datetime | None = None) -> LocalSigner:
    """A signer with a fresh EC P-256 key and its self-signed certificate (CN
    :data:`ONE_TIME_SIGNER_CN`); the key lives only in the returned object.

    A signature by it proves that the members are the ones the manifest lists (integrity), not
    who made the package: anyone can make such a signer.
    """
    from lambdas.dicom_signature import LocalSigner

    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ONE_TIME_SIGNER_CN)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate a verifier's clock skew
        .not_valid_after(now + dt.timedelta(days=ONE_TIME_SIGNER_DAYS))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return LocalSigner(key, cert)


def verify_detached(
    manifest: bytes, p7s: bytes, trusted: Sequence[x509.Certificate] = ()
) -> x509.Certificate:
    """The signer certificate of the detached CMS SignedData ``p7s`` when it signs ``manifest``.

    With ``trusted`` CA certificates, the signer certificate must also chain to one of them now
    (other embedded certificates may serve as intermediates; any key usage of the signer is
    accepted, as ``openssl cms -verify -purpose any`` does). Without, the signer is not checked.
    PackageError ``signature-malformed``, ``signature-invalid`` or ``signer-untrusted``.
    """
    try:
        signed = _read_signed_data(p7s)
        signer = _signer_certificate(signed)
    except PackageError:
        raise
    except (ValueError, IndexError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        # der.DerError, too few fields, or an embedded certificate cryptography cannot load
        raise PackageError("signature-malformed", type(exc).__name__) from exc
    if signed.digest_algorithm != _ID_SHA256:
        raise PackageError("signature-malformed", "the digest algorithm is not SHA-256")
    if signed.content_type != _ID_DATA:
        raise PackageError("signature-invalid", "the signed content type is not id-data")
    if signed.message_digest != hashlib.sha256(manifest).digest():
        raise PackageError("signature-invalid", "the manifest digest does not match")
    public = signer.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey) and signed.signature_algorithm in _RSA_PKCS1:
            public.verify(
                signed.signature, signed.signed_attrs, padding.PKCS1v15(), hashes.SHA256()
            )
        elif (
            isinstance(public, ec.EllipticCurvePublicKey)
            and signed.signature_algorithm == _ECDSA_SHA256
        ):
            public.verify(signed.signature, signed.signed_attrs, ec.ECDSA(hashes.SHA256()))
        else:
            raise PackageError("signature-malformed", "unsupported signature algorithm")
    except InvalidSignature as exc:
        raise PackageError("signature-invalid") from exc
    if trusted:
        _check_chain(signer, signed.certificates, trusted)
    return signer


def _check_chain(
    signer: x509.Certificate,
    embedded: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
) -> None:
    if any(signer == ca for ca in trusted):
        return  # the signer itself is trusted (e.g. a one-time signer handed over beforehand)
    # A CA-issued signer must be a signer: not a CA, not a TLS-only certificate, no weak key
    # (the rule of DICOM signatures). Imported here: the rest of this module needs no pydicom.
    from lambdas.dicom_signature import signer_certificate_problem

    if signer_certificate_problem(signer) is not None:
        raise PackageError("signer-untrusted", "the certificate is not a signing certificate")
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store(list(trusted)))
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
    )
    intermediates = [c for c in embedded if c != signer]
    try:
        builder.build_client_verifier().verify(signer, intermediates)
    except verification.VerificationError as exc:
        raise PackageError("signer-untrusted") from exc


@dataclass(frozen=True)
class _SignedData:
    certificates: tuple[x509.Certificate, ...]
    content_type: str
    digest_algorithm: str
    message_digest: bytes
    # The signed attributes re-tagged as the DER SET OF the signature covers (RFC 5652 5.4).
    signed_attrs: bytes
    signature_algorithm: str
    signature: bytes
    issuer: bytes
    serial: int


def _read_signed_data(p7s: bytes) -> _SignedData:
    top = der.Reader(p7s, 0).expect(0x30)
    if top.end != len(p7s):
        raise PackageError("signature-malformed", "trailing bytes")
    content_type, wrapped = top.children()[:2]
    if content_type.oid() != _ID_SIGNED_DATA:
        raise PackageError("signature-malformed", "not a SignedData")
    [signed_data] = wrapped.expect(0xA0).children()
    fields = signed_data.expect(0x30).children()
    # version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos
    encap = fields[2].expect(0x30).children()
    if len(encap) != 1:
        raise PackageError("signature-malformed", "the signature is not detached")
    certificates: list[x509.Certificate] = []
    for field in fields[3:-1]:
        if field.tag == 0xA0:
            for cert in field.children():
                try:
                    certificates.append(x509.load_der_x509_certificate(cert.raw))
                except ValueError as exc:
                    raise PackageError("signature-malformed", "bad certificate") from exc
    signer_infos = fields[-1].expect(0x31).children()
    if len(signer_infos) != 1:
        raise PackageError("signature-malformed", "expected exactly one signer")
    info = signer_infos[0].expect(0x30).children()
    # version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature, [1]...
    if len(info) < 6 or info[3].tag != 0xA0:
        raise PackageError("signature-malformed", "no signed attributes")
    sid = info[1].expect(0x30).children()  # IssuerAndSerialNumber (version 1 SignerInfo)
    if len(sid) != 2:
        raise PackageError("signature-malformed", "signer not named by issuer and serial")
    attrs: dict[str, list[der.Reader]] = {}
    for attr in info[3].children():
        attr_type, values = attr.expect(0x30).children()[:2]
        oid = attr_type.oid()
        if oid in attrs:
            raise PackageError("signature-malformed", "repeated signed attribute")
        attrs[oid] = values.expect(0x31).children()
    try:
        [content_type_attr] = attrs[_ID_CONTENT_TYPE]
        [digest_attr] = attrs[_ID_MESSAGE_DIGEST]
    except (KeyError, ValueError) as exc:
        raise PackageError("signature-malformed", "content type or digest missing") from exc
    raw_attrs = info[3].raw
    return _SignedData(
        certificates=tuple(certificates),
        content_type=content_type_attr.oid(),
        digest_algorithm=info[2].expect(0x30).children()[0].oid(),
        message_digest=digest_attr.expect(0x04).value,
        signed_attrs=b"\x31" + raw_attrs[1:],
        signature_algorithm=info[4].expect(0x30).children()[0].oid(),
        signature=info[5].expect(0x04).value,
        issuer=sid[0].expect(0x30).raw,
        serial=sid[1].integer(),
    )


def _signer_certificate(signed: _SignedData) -> x509.Certificate:
    for cert in signed.certificates:
        issuer = cert.issuer.public_bytes()
        if cert.serial_number == signed.serial and issuer == signed.issuer:
            return cert
    raise PackageError("signature-malformed", "the signer certificate is not embedded")
