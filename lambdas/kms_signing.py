"""Signing with an asymmetric KMS key: the private key never leaves KMS (issue #9).

:class:`KmsSigner` is a :class:`lambdas.dicom_signature.Signer`: the caller hashes (a DICOM
signature's byte stream may be hundreds of megabytes, KMS ``Sign`` takes at most 4096 bytes of
message) and KMS signs the digest (``MessageType=DIGEST``). The certificate embedded in signatures
is issued by the kit's CA for the KMS public key (``pacs-kit pki csr`` builds a certification
request signed through KMS, ``pacs-kit pki sign-csr`` issues it), and the signer refuses a
certificate whose public key is not the KMS key's.

KMS returns what the standard needs without conversion: RSASSA-PKCS1-v1_5 signatures (the Base
RSA Digital Signature Profile) and DER-encoded ECDSA signatures.

No Pulumi and no pacs_kit imports here: this module runs in the Lambda functions.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# KMS SigningAlgorithm per key type and hash (AWS KMS API reference, Sign).
_RSA = {
    "sha256": "RSASSA_PKCS1_V1_5_SHA_256",
    "sha384": "RSASSA_PKCS1_V1_5_SHA_384",
    "sha512": "RSASSA_PKCS1_V1_5_SHA_512",
}
_ECDSA = {"sha256": "ECDSA_SHA_256", "sha384": "ECDSA_SHA_384", "sha512": "ECDSA_SHA_512"}
# KMS signs ECC_NIST_P256 keys with SHA-256 only, P-384 with SHA-384, P-521 with SHA-512.
_CURVE_HASH = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}


class KmsSigningError(ValueError):
    """A KMS key that cannot sign as asked; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


def signing_algorithm(public_key: Any, algorithm: hashes.HashAlgorithm) -> str:
    """The KMS ``SigningAlgorithm`` for ``public_key`` and the hash of the digest."""
    name = algorithm.name
    if isinstance(public_key, rsa.RSAPublicKey) and name in _RSA:
        return _RSA[name]
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        expected = _CURVE_HASH.get(public_key.curve.name)
        if expected == name:
            return _ECDSA[name]
        raise KmsSigningError(
            "unsupported-hash",
            f"KMS signs {public_key.curve.name} keys with {expected}, not {name}",
        )
    raise KmsSigningError("unsupported-key", f"no KMS signing algorithm for {name} and this key")


def sign_digest(kms: Any, key_id: str, public_key: Any, digest: bytes, algorithm: Any) -> bytes:
    """KMS ``Sign`` of a precomputed ``digest`` (``MessageType=DIGEST``)."""
    if len(digest) != algorithm.digest_size:
        size = algorithm.digest_size
        raise KmsSigningError("bad-digest", f"{algorithm.name}: {size} bytes, not {len(digest)}")
    response = kms.sign(
        KeyId=key_id,
        Message=digest,
        MessageType="DIGEST",
        SigningAlgorithm=signing_algorithm(public_key, algorithm),
    )
    return bytes(response["Signature"])


def public_key(kms: Any, key_id: str) -> Any:
    """The KMS key's public key (``GetPublicKey``), refused unless it is a signing key."""
    response = kms.get_public_key(KeyId=key_id)
    if response.get("KeyUsage") not in (None, "SIGN_VERIFY"):
        raise KmsSigningError("not-a-signing-key", f"key usage is {response.get('KeyUsage')}")
    return serialization.load_der_public_key(bytes(response["PublicKey"]))


def _same_key(a: Any, b: Any) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(a.public_bytes(*spki) == b.public_bytes(*spki))


class KmsSigner:
    """Signs digests with a KMS key; embeds ``certificate``, which must certify that key."""

    def __init__(self, kms: Any, key_id: str, certificate: x509.Certificate) -> None:
        self._kms = kms
        self._key_id = key_id
        self._public_key = public_key(kms, key_id)
        if not _same_key(self._public_key, certificate.public_key()):
            raise KmsSigningError(
                "key-certificate-mismatch",
                "the certificate's public key is not the KMS key's (issue it with `pacs-kit pki "
                "csr` and `pacs-kit pki sign-csr`)",
            )
        self._certificate = certificate

    @property
    def certificate(self) -> x509.Certificate:
        """The signer's certificate, embedded in every signature."""
        return self._certificate

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """RSASSA-PKCS1-v1_5 or DER ECDSA signature of ``digest``, made by KMS."""
        return sign_digest(self._kms, self._key_id, self._public_key, digest, algorithm)

    def __repr__(self) -> str:
        return f"KmsSigner({self._key_id!r})"
