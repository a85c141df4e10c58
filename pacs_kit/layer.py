"""The functions' Lambda layer: pinned pure-Python dependencies in a byte-for-byte reproducible zip.

pip installs exactly the wheels ``lambdas/requirements.txt`` pins, for the functions' runtime and
architecture (``infra/packaging.py``), without resolving anything else. What the functions never
import at run time is pruned (pydicom's bundled test data, console scripts, byte code), and the zip
is written with sorted entries, one timestamp and one file mode, so the same pins give the same
bytes and Pulumi sees a new layer only when a dependency really changed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from infra import packaging

# The earliest time a zip entry can carry.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--
COMPRESS_LEVEL = 9
# Lambda adds <layer>/python to sys.path for Python runtimes.
LAYER_ROOT = "python"
# Paths (under the pip target) nothing imports at run time.
PRUNED: tuple[str, ...] = (
    "bin",  # console scripts, whose shebang names the build machine's interpreter
    "pydicom/data/test_files",
    "pydicom/data/charset_files",
)
_PIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!-]*$")


class LayerError(RuntimeError):
    """The layer cannot be built: unpinned requirements, or pip failed."""


@dataclass(frozen=True)
class Layer:
    """A built layer zip and its SHA-256."""

    path: Path
    sha256: str


def read_pins(requirements: Path) -> list[str]:
    """The ``name==version`` lines of a requirements file; anything looser is refused."""
    try:
        lines = requirements.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LayerError(f"cannot read {requirements}: {exc}") from exc
    pins = []
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not _PIN_RE.match(line):
            raise LayerError(
                f"{requirements}:{number}: {line!r} is not an exact pin (name==version); "
                "the layer must be reproducible"
            )
        pins.append(line)
    if not pins:
        raise LayerError(f"{requirements} pins no packages")
    return pins


def install(requirements: Path, target: Path) -> None:
    """pip-install exactly the pinned wheels for the functions' runtime into ``target``."""
    read_pins(requirements)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        packaging.LAYER_PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        packaging.LAMBDA_PYTHON,
        "--no-compile",
        "--disable-pip-version-check",
        "--quiet",
        "-r",
        str(requirements),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise LayerError("pip install failed:\n" + "\n".join(detail))


def prune(target: Path) -> None:
    """Remove what nothing imports at run time, and every byte-code cache."""
    for relative in PRUNED:
        path = target / relative
        if path.is_dir():
            shutil.rmtree(path)
    for cache in sorted(target.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    for compiled in target.rglob("*.py[co]"):
        compiled.unlink()


def write_zip(source: Path, out: Path, *, root: str = LAYER_ROOT) -> str:
    """Zip ``source`` under ``root/`` reproducibly; returns the zip's SHA-256."""
    files = sorted((p.relative_to(source).as_posix(), p) for p in source.rglob("*") if p.is_file())
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name, path in files:
            info = zipfile.ZipInfo(f"{root}/{name}", date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so that the mode below is what Lambda extracts
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=COMPRESS_LEVEL)
    partial.replace(out)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def runtime_interpreter() -> str | None:
    """A local interpreter of the functions' Python version (``python3.12``), if there is one."""
    return shutil.which(f"python{packaging.LAMBDA_PYTHON}")


def precompile(target: Path, interpreter: str) -> None:
    """Byte-compile the layer with the runtime's own Python version.

    Lambda mounts layers read-only, so without shipped byte code every cold start compiles
    pydicom's data dictionaries again (about 0.3 s, docs/benchmarks.md). Hash-based, unchecked
    byte code (PEP 552) carries no timestamps, so the zip stays reproducible.
    """
    probe = subprocess.run(
        [interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    version = probe.stdout.strip()
    if probe.returncode != 0 or version != packaging.LAMBDA_PYTHON:
        raise LayerError(
            f"{interpreter} is Python {version or '?'}; byte code for the functions must be "
            f"compiled by Python {packaging.LAMBDA_PYTHON}"
        )
    command = [interpreter, "-m", "compileall", "-q", "-j", "1"]
    # Record the path Lambda mounts the layer at, not this build's temporary directory: the
    # byte code then names real files in tracebacks and does not change from build to build.
    command += ["-s", str(target), "-p", f"/opt/{LAYER_ROOT}"]
    command += ["--invalidation-mode", "unchecked-hash", str(target)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LayerError("compileall failed:\n" + (result.stderr or result.stdout)[-2000:])


def build_layer(
    out: Path,
    requirements: Path = packaging.REPO / packaging.REQUIREMENTS,
    *,
    compile_with: str | None = None,
) -> Layer:
    """Build the layer zip at ``out`` from ``requirements``, byte-compiled if an interpreter of
    the runtime's version is given."""
    with tempfile.TemporaryDirectory(prefix="pacs-layer-") as tmp:
        target = Path(tmp) / "site"
        install(requirements, target)
        prune(target)
        if compile_with:
            precompile(target, compile_with)
        digest = write_zip(target, out)
    return Layer(path=out, sha256=digest)
