"""Write ``ca.pem``: a CA certificate whose private key is thrown away as soon as it has signed.

The example stack (``Pulumi.dev.yaml``) trusts this CA at the edge so that ``pacs-kit plan`` shows
the whole edge. Nobody can issue a client certificate from it, so a stack deployed with it admits no
client: replace it with your own CA (``pacs-kit pki init``) or an ACM Private CA before real use.
Run it only to regenerate the file: ``.venv/bin/python examples/pki/make_example_ca.py``.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pacs_kit.pki import ca_certificate

OUT = Path(__file__).resolve().parent / "ca.pem"


def example_ca_pem(now: datetime.datetime) -> bytes:
    """A self-signed P-256 CA certificate (as ``pacs-kit pki init`` makes); its key never leaves
    this function."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cloud-pacs-kit example"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Example client CA (no private key exists)"),
        ]
    )
    return ca_certificate(key, name, now).public_bytes(serialization.Encoding.PEM)


if __name__ == "__main__":
    OUT.write_bytes(example_ca_pem(datetime.datetime.now(datetime.UTC)))
