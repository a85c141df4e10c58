"""A named moto shim: KMS ``Sign`` with ``MessageType=DIGEST``.

The gap (moto 5.2, verified by ``test_moto_still_rehashes_a_digest``): moto ignores MessageType and
signs SHA-256 of the bytes it is given, so a DIGEST request gets a signature over the hash of the
digest. AWS signs the given digest as is (KMS API reference, Sign: "DIGEST ... KMS skips the
hashing step"). The product sends DIGEST because a DICOM signature's byte stream exceeds Sign's
4096-byte message limit; bending it to moto would mean a product that fails on AWS. So the tests
sign through this shim: a DIGEST request is signed, prehashed, with the private key moto keeps for
the KMS key. RAW requests go to moto unchanged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from moto.kms.responses import KmsResponse

SHIM_NAME = "kms_sign_honours_message_type_digest"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}


def _sign_digest(response: KmsResponse) -> str:
    key = response.kms_backend.describe_key(response._get_param("KeyId"))
    algorithm = str(response._get_param("SigningAlgorithm"))
    message = response._get_param("Message")
    digest = message.encode() if isinstance(message, str) else bytes(message)
    hash_algorithm = _HASHES[algorithm[-7:]]()
    prehashed = utils.Prehashed(hash_algorithm)
    private = cast(Any, key.private_key).private_key  # moto's wrapper around a cryptography key
    if isinstance(private, rsa.RSAPrivateKey):
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=padding.PSS.MAX_LENGTH)
            if algorithm.startswith("RSASSA_PSS")
            else padding.PKCS1v15()
        )
        signature = private.sign(digest, pad, prehashed)
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        signature = private.sign(digest, ec.ECDSA(prehashed))
    else:  # pragma: no cover - moto has no other signing keys
        raise TypeError(type(private).__name__)
    return json.dumps(
        {
            "KeyId": key.arn,
            "Signature": base64.b64encode(signature).decode(),
            "SigningAlgorithm": algorithm,
        }
    )


@contextmanager
def digest_signing() -> Iterator[None]:
    """Within the block, moto's KMS ``Sign`` honours ``MessageType=DIGEST`` (module doc)."""
    original = KmsResponse.sign

    def sign(self: KmsResponse) -> str:
        if self._get_param("MessageType") == "DIGEST":
            return _sign_digest(self)
        return original(self)

    KmsResponse.sign = sign  # type: ignore[method-assign]
    try:
        yield
    finally:
        KmsResponse.sign = original  # type: ignore[method-assign]
