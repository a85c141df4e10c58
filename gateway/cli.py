"""The ``pacs-kit gateway`` command line (light: the server modules load only when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.tls import TLS_VERSIONS
from gateway.uids import is_uid

# Below ECS's 120 s stop timeout (infra/components/edge.py): the process exits before SIGKILL.
DRAIN_SECONDS = 100.0

# (option, metavar, description) of each piece of TLS material.
TLS_MATERIAL = (
    ("tls-cert", "CERT", "the DICOM TLS listener's certificate chain"),
    ("tls-key", "KEY", "its private key"),
    ("client-ca", "CA_BUNDLE", "CA certificates client certificates must chain to"),
    ("crl", "FILE", "a CRL: client certificates it revokes are refused"),
)


def _uid(text: str) -> str:
    if not is_uid(text):
        raise argparse.ArgumentTypeError(f"not a DICOM UID (digits and dots, <= 64): {text!r}")
    return text


def add_command(commands: Any) -> None:
    """Register ``gateway`` on the ``pacs-kit`` sub-command parser."""
    p = commands.add_parser(
        "gateway",
        help="run the DICOM gateway: C-STORE over mutual TLS and STOW-RS into the inbox",
        description="Credentials and region come from the usual AWS environment.",
    )
    p.add_argument("--dimse-port", type=int, required=True, metavar="PORT")
    # Each piece of TLS material comes from a file, or (in the container, from Secrets Manager)
    # from an environment variable holding the PEM text.
    for option, metavar, what in TLS_MATERIAL:
        group = p.add_mutually_exclusive_group(required=option != "crl")
        flag = "--crl" if option == "crl" else f"--{option}"
        group.add_argument(
            flag, type=Path, metavar=metavar, dest=option.replace("-", "_"), help=what
        )
        group.add_argument(
            f"--{'client-crl' if option == 'crl' else option}-env",
            metavar="VAR",
            dest=f"{option.replace('-', '_')}_env",
            help=f"{what}: PEM text in environment variable VAR",
        )
    p.add_argument("--inbox-bucket", required=True, metavar="BUCKET")
    p.add_argument("--http-port", type=int, metavar="PORT", help="STOW-RS and /health")
    p.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (an emulator)")
    p.add_argument("--ae-title", default="CLOUDPACS", metavar="TITLE")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    p.add_argument("--tls-min", choices=sorted(TLS_VERSIONS), default="1.2")
    p.add_argument(
        "--sop-class",
        type=_uid,
        action="append",
        default=[],
        metavar="UID",
        help="accept this storage SOP class (repeat; default: the ingest validator's list)",
    )
    p.add_argument(
        "--transfer-syntax",
        type=_uid,
        action="append",
        default=[],
        metavar="UID",
        help="accept this transfer syntax (repeat; default: the ingest validator's list)",
    )
    p.add_argument("--kms-key-id", metavar="KEY", help="SSE-KMS key (default: the bucket's)")
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=DRAIN_SECONDS,
        metavar="S",
        help=f"on SIGTERM, how long running associations may finish (default {DRAIN_SECONDS:g})",
    )
    p.add_argument(
        "--allow-missing-mtls-headers",
        action="store_true",
        help="LOCAL DEVELOPMENT ONLY: accept STOW-RS without the ALB's client-certificate headers",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from gateway.app import run

    return run(args)
