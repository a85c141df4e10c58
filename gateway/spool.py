"""The gateway's private scratch directory, through which every received instance passes.

``tempfile``'s default directory points here for the whole process, so pynetdicom's chunked
C-STORE files and STOW-RS parts that outgrow memory land in one place the gateway owns (mode
0700 under $TMPDIR). pynetdicom keeps the file of a transfer that was cut off (its temporary file
is made with ``delete=False`` and removed only after the handler ran): the sweeper removes data
set files nobody has written to for ``stale_seconds``. The health check fails when free space
runs low, so the load balancers take the task out of service before stores start failing.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger("gateway")

# pynetdicom names its C-STORE files NamedTemporaryFile(suffix=".dcm"): tmp*.dcm.
SPOOLED_PATTERN = "tmp*.dcm"
# Far beyond pynetdicom's network timeout (60 s): a transfer silent this long is dead.
STALE_SECONDS = 600.0
SWEEP_INTERVAL_SECONDS = 60.0
MIN_FREE_BYTES = 2 * 1024**3


class Spool:
    def __init__(
        self,
        parent: Path | None = None,
        *,
        stale_seconds: float = STALE_SECONDS,
        min_free_bytes: int = MIN_FREE_BYTES,
    ) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="gateway-spool-", dir=parent))
        self.stale_seconds = stale_seconds
        self.min_free_bytes = min_free_bytes
        self._previous_tempdir = tempfile.tempdir
        tempfile.tempdir = str(self.path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self, now: float | None = None) -> int:
        """Remove data set files untouched for ``stale_seconds``; returns how many."""
        cutoff = (now if now is not None else time.time()) - self.stale_seconds
        removed = 0
        for path in self.path.glob(SPOOLED_PATTERN):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # finished and removed meanwhile
        if removed:
            log.warning("removed abandoned transfers from the spool", extra={"files": removed})
        return removed

    def healthy(self) -> bool:
        return shutil.disk_usage(self.path).free >= self.min_free_bytes

    def start(self, interval: float = SWEEP_INTERVAL_SECONDS) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                self.sweep()

        self._thread = threading.Thread(target=loop, name="spool-sweeper", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        tempfile.tempdir = self._previous_tempdir
        shutil.rmtree(self.path, ignore_errors=True)
