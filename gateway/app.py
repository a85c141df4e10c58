"""``pacs-kit gateway``: run the DIMSE-TLS Storage SCP and the STOW-RS endpoint until SIGTERM."""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
from botocore.config import Config

from gateway.dimse import StorageSCP
from gateway.inbox import InboxWriter
from gateway.spool import Spool
from gateway.stow import StowServer
from gateway.tls import Revocations, server_context
from lambdas.dicom_checks import DEFAULT_TRANSFER_SYNTAXES, default_sop_classes

log = logging.getLogger("gateway")
_RECORD_FIELDS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; only what the code passes explicitly (never dataset values)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"level": record.levelname, "message": record.getMessage()}
        doc.update({k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS})
        return json.dumps(doc, default=str)


def _tls_material(args: argparse.Namespace) -> dict[str, Path]:
    """Paths of the TLS material; PEM text from environment variables goes to a private
    directory under $TMPDIR (the container's one writable path), readable by this user only."""
    paths: dict[str, Path] = {}
    private: Path | None = None
    for name in ("tls_cert", "tls_key", "client_ca", "crl"):
        path, variable = getattr(args, name), getattr(args, f"{name}_env")
        if path is not None:
            paths[name] = path
        elif variable is not None:
            text = os.environ.get(variable, "")
            if "-----BEGIN" not in text:
                raise ValueError(f"environment variable {variable} holds no PEM ({name})")
            if private is None:
                private = Path(tempfile.mkdtemp(prefix="gateway-tls-"))
                atexit.register(shutil.rmtree, private, True)
            paths[name] = private / f"{name}.pem"
            descriptor = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
    return paths


def run(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO lines describe datasets
    # Python warnings go to stderr, which is the log stream too, and may quote data set values
    # (pydicom's do: "Invalid value for VR UI: '<whatever the sender put there>'").
    warnings.simplefilter("ignore")
    if args.allow_missing_mtls_headers:
        log.warning("STOW-RS accepts requests without client certificates: local development only")

    # Handlers first: a SIGTERM that arrives while the listeners start must still stop us cleanly.
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signum})
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    s3 = boto3.session.Session().client(
        "s3", endpoint_url=args.endpoint_url, config=Config(retries={"mode": "standard"})
    )
    inbox = InboxWriter(s3, args.inbox_bucket, kms_key_id=args.kms_key_id)
    try:
        material = _tls_material(args)
        context = server_context(
            material["tls_cert"], material["tls_key"], material["client_ca"], minimum=args.tls_min
        )
        revocations = (
            Revocations.load(material["crl"], material["client_ca"]) if "crl" in material else None
        )
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"pacs-kit gateway: TLS material unusable: {exc}\n")
        return 2
    if revocations is not None and revocations.out_of_date():
        log.warning(
            "the CRL is past its next update: it still revokes what it lists; publish a new one",
            extra={"next_update": revocations.next_update},
        )
    # After the TLS material: its private directory must not be swept with the spool.
    spool = Spool()
    spool.start()
    # What the ingest validator accepts (the stack passes its lists; else the validator's own):
    # refused here, the sender keeps the instance.
    sop_classes = frozenset(args.sop_class) or default_sop_classes()
    syntaxes = tuple(args.transfer_syntax) or DEFAULT_TRANSFER_SYNTAXES
    scp = StorageSCP(
        inbox, ae_title=args.ae_title, sop_classes=sop_classes, transfer_syntaxes=syntaxes
    )
    dimse_port = scp.start(args.host, args.dimse_port, context, revocations)
    stow = StowServer(
        inbox,
        sop_classes=sop_classes,
        transfer_syntaxes=syntaxes,
        allow_missing_mtls_headers=args.allow_missing_mtls_headers,
        healthy=spool.healthy,
    )
    http_port = stow.start(args.host, args.http_port) if args.http_port is not None else None
    log.info("listening", extra={"dimse_port": dimse_port, "http_port": http_port})

    while not stopping.wait(0.5):  # wake regularly so the signal handlers get to run
        pass
    # Graceful: both listeners stop accepting at once, then running requests and associations
    # finish against one deadline (below ECS's stop timeout), then the process exits.
    deadline = time.monotonic() + args.drain_seconds
    scp.stop_accepting()
    stow.stop_accepting()
    unfinished = stow.drain(deadline)
    aborted = scp.drain(deadline)
    spool.close()
    log.info("stopped", extra={"aborted_associations": aborted, "unfinished_requests": unfinished})
    return 0
