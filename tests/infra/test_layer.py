"""The Lambda layer: exact pins, pruned test data, and the same bytes from every build."""

from __future__ import annotations

import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from infra import packaging
from pacs_kit.layer import Layer, LayerError, build_layer, read_pins, write_zip
from tests.conftest import REPO

PYPI = "https://pypi.org/simple/pydicom/"


def pypi_unreachable() -> str | None:
    """Why PyPI cannot be reached, or None when it can."""
    try:
        with urllib.request.urlopen(PYPI, timeout=10):
            return None
    except (urllib.error.URLError, OSError) as exc:
        return str(exc)


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layer, Layer]:
    out = tmp_path_factory.mktemp("layer")
    try:
        first = build_layer(out / "first.zip")
    except LayerError:
        reason = pypi_unreachable()
        if reason is not None:
            pytest.skip(f"PyPI is unreachable ({reason}); the layer cannot be built here")
        raise
    return first, build_layer(out / "second.zip")


def test_two_builds_are_byte_identical(two_builds: tuple[Layer, Layer]) -> None:
    first, second = two_builds
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256


def test_layer_holds_the_runtime_dependencies_under_python(
    two_builds: tuple[Layer, Layer],
) -> None:
    names = zipfile.ZipFile(two_builds[0].path).namelist()
    assert all(n.startswith("python/") for n in names), "Lambda imports only from python/"
    for package in ("pydicom", "aws_lambda_powertools", "jmespath"):
        assert f"python/{package}/__init__.py" in names, f"{package} missing from the layer"
    assert "python/typing_extensions.py" in names
    assert not [n for n in names if n.startswith(("python/boto3/", "python/botocore/"))], (
        "boto3 comes with the Lambda runtime"
    )


def test_layer_has_no_test_data_byte_code_or_scripts(two_builds: tuple[Layer, Layer]) -> None:
    names = zipfile.ZipFile(two_builds[0].path).namelist()
    assert not [n for n in names if "test_files" in n or "charset_files" in n]
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if n.startswith("python/bin/")]


def test_layer_pins_the_versions_of_the_requirements(two_builds: tuple[Layer, Layer]) -> None:
    names = zipfile.ZipFile(two_builds[0].path).namelist()
    for pin in read_pins(REPO / packaging.REQUIREMENTS):
        name, version = pin.split("==")
        dist = f"python/{name.replace('-', '_')}-{version}.dist-info/METADATA"
        assert dist in names, f"{pin} is not what the layer holds"


def test_requirements_are_exact_pins_of_pydicom_3_0_and_powertools_3() -> None:
    pins = dict(p.split("==") for p in read_pins(REPO / packaging.REQUIREMENTS))
    assert pins["pydicom"].startswith("3.0."), pins
    assert pins["aws-lambda-powertools"].startswith("3."), pins
    assert "boto3" not in pins and "botocore" not in pins, "the runtime provides boto3"


@pytest.mark.parametrize(
    "line", ["pydicom>=3.0", "pydicom", "pydicom==3.*", "-e .", "pydicom ~= 3.0.2"]
)
def test_loose_requirements_are_refused(tmp_path: Path, line: str) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"# pinned\njmespath==1.1.0\n{line}\n")
    with pytest.raises(LayerError, match="not an exact pin"):
        read_pins(requirements)


def test_zip_entries_are_sorted_with_fixed_time_and_mode(tmp_path: Path) -> None:
    source = tmp_path / "site"
    (source / "b").mkdir(parents=True)
    (source / "b" / "z.py").write_text("z = 1\n")
    (source / "a.py").write_text("a = 1\n")
    (source / "a.py").chmod(0o700)
    first = write_zip(source, tmp_path / "one.zip")
    (source / "a.py").touch()  # a newer mtime must not change the zip
    second = write_zip(source, tmp_path / "two.zip")
    assert first == second
    infos = zipfile.ZipFile(tmp_path / "one.zip").infolist()
    assert [i.filename for i in infos] == ["python/a.py", "python/b/z.py"]
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
        assert info.external_attr >> 16 == 0o100644, info.filename


def test_byte_code_is_compiled_only_by_the_runtimes_python(tmp_path: Path) -> None:
    import sys

    if f"{sys.version_info[0]}.{sys.version_info[1]}" == packaging.LAMBDA_PYTHON:
        pytest.skip("this interpreter is the runtime's version")
    with pytest.raises(LayerError, match=f"must be compiled by Python {packaging.LAMBDA_PYTHON}"):
        build_layer(tmp_path / "layer.zip", compile_with=sys.executable)


def test_precompiled_layer_is_reproducible_and_carries_byte_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stand in this interpreter's version for the runtime's: the same code path a machine with
    # python3.12 takes, checked with the Python that is here.
    import sys

    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    monkeypatch.setattr(packaging, "LAMBDA_PYTHON", version)
    try:
        first = build_layer(tmp_path / "a.zip", compile_with=sys.executable)
    except LayerError as exc:
        if "compile" in str(exc) or pypi_unreachable() is None:
            raise
        pytest.skip("PyPI is unreachable; the layer cannot be built here")
    second = build_layer(tmp_path / "b.zip", compile_with=sys.executable)
    assert first.sha256 == second.sha256, "hash-based byte code must keep the zip reproducible"
    tag = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"
    names = zipfile.ZipFile(first.path).namelist()
    assert f"python/pydicom/__pycache__/_private_dict.{tag}.pyc" in names
