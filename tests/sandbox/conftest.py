"""An in-process moto server for the sandbox's unit tests (the end-to-end tests start the real
emulator process instead, with its shims)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from pacs_kit.sandbox.emulate import Clients


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1; its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def clients(endpoint: str) -> Clients:
    return Clients(endpoint=endpoint)


def tls_only_policy(bucket: str) -> str:
    """The kit's DenyInsecureTransport statement alone, for ``bucket``."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )
