"""What the Lambda functions are packaged from: their Python version, code files and layer zip.

The program (``infra/components/ingest.py``) and ``pacs-kit build-layer`` (``pacs_kit/layer.py``)
read the same constants, so the layer is always built for the runtime the functions declare.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# pydicom 3.0.x declares support up to Python 3.12; the functions and the layer both follow it.
LAMBDA_PYTHON = "3.12"
LAMBDA_RUNTIME = f"python{LAMBDA_PYTHON}"
LAMBDA_ARCHITECTURE = "arm64"
# The pip platform tag of that architecture (Amazon Linux 2023's glibc is newer than 2.17).
LAYER_PLATFORM = "manylinux2014_aarch64"

CODE_PACKAGE = "lambdas"
# Data files the code reads with importlib.resources (PS3.15 Table E.1-1 of lambdas/deid/).
DATA_SUFFIXES = (".tsv",)
REQUIREMENTS = Path(CODE_PACKAGE) / "requirements.txt"
LAYER_ZIP = Path("build") / "lambda-layer.zip"


def lambda_sources(root: Path = REPO) -> dict[str, Path]:
    """Every ``lambdas/**/*.py`` and data file by its path inside the function zip, sorted.

    Listing files explicitly (rather than archiving the folder) keeps ``__pycache__`` and editor
    leftovers out of the package, so the code hash changes only when the code does.
    """
    package = root / CODE_PACKAGE
    files = sorted(
        p
        for p in package.rglob("*")
        if p.suffix in (".py", *DATA_SUFFIXES) and p.is_file() and "__pycache__" not in p.parts
    )
    return {p.relative_to(root).as_posix(): p for p in files}
