"""The gateway's live fixtures (tests/gateway/conftest.py), shared with the audit event tests:
a moto S3 server as the inbox, the test PKI, real gateway processes, dcmtk's storescu."""

from __future__ import annotations

from tests.gateway.conftest import certs, s3, s3_endpoint, start_gateway, storescu

__all__ = ["certs", "s3", "s3_endpoint", "start_gateway", "storescu"]
