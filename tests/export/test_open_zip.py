"""``pacs-kit open PACKAGE.zip``: a zipped package (the export function's package.zip) opens as its
directory does, and a zip holding anything but the package's plain files opens nothing."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.export.conftest import Pki, export, open_package


@pytest.fixture
def package(pki: Pki, inputs: list[Path], tmp_path: Path) -> Path:
    out = tmp_path / "pkg"
    assert export(pki, out, inputs, signer=pki.rsa_signer) == 0
    return out


def zipped(directory: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(directory.iterdir()):
            zf.write(path, path.name)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return target


def test_a_zipped_package_opens_to_the_input_bytes(
    pki: Pki, package: Path, inputs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = zipped(package, tmp_path / "package.zip")
    out = tmp_path / "out"
    assert open_package(archive, pki.recipient.key_pem, out, ca=pki.ca.cert_pem) == 0
    assert sorted(p.read_bytes() for p in out.iterdir()) == sorted(p.read_bytes() for p in inputs)
    lines = capsys.readouterr().out.splitlines()
    assert all(line.startswith(f"opened  {archive}/") for line in lines), lines


def test_a_deflated_zip_opens_too(pki: Pki, package: Path, tmp_path: Path) -> None:
    archive = tmp_path / "package.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package.iterdir()):
            zf.write(path, path.name)
    assert open_package(archive, pki.recipient.key_pem, tmp_path / "out", ca=pki.ca.cert_pem) == 0


@pytest.mark.parametrize(
    "name",
    ["../1.p7m", "/tmp/1.p7m", "sub/1.p7m", "run.sh", "0.p7m", "manifest.json.bak", "1.p7m/"],
)
def test_an_unexpected_entry_opens_nothing(
    pki: Pki, package: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = zipped(package, tmp_path / "package.zip", {name: b"x"})
    out = tmp_path / "out"
    assert open_package(archive, pki.recipient.key_pem, out) == 1
    assert capsys.readouterr().out == f"refused  {archive}  package-invalid\n"
    assert not out.exists(), "nothing is written"
    assert not (tmp_path / "run.sh").exists() and not Path("/tmp/1.p7m").exists()


def test_a_repeated_entry_opens_nothing(pki: Pki, package: Path, tmp_path: Path) -> None:
    archive = zipped(package, tmp_path / "package.zip")
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(archive, "a") as zf,
    ):
        zf.writestr("1.p7m", b"another first member")
    assert open_package(archive, pki.recipient.key_pem, tmp_path / "out") == 1


def test_a_symbolic_link_entry_opens_nothing(pki: Pki, package: Path, tmp_path: Path) -> None:
    archive = zipped(package, tmp_path / "package.zip")
    link = zipfile.ZipInfo("9.p7m")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(link, "/etc/passwd")
    assert open_package(archive, pki.recipient.key_pem, tmp_path / "out") == 1


def test_a_file_that_is_no_zip_opens_nothing(pki: Pki, tmp_path: Path) -> None:
    source = get_testdata_file("CT_small.dcm")
    assert source is not None
    assert open_package(Path(source), pki.recipient.key_pem, tmp_path / "out") == 1


def test_an_altered_member_in_a_zip_is_refused(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    member = package / "1.p7m"
    data = bytearray(member.read_bytes())
    data[-20] ^= 0x01
    member.write_bytes(bytes(data))
    archive = zipped(package, tmp_path / "package.zip")
    assert open_package(archive, pki.recipient.key_pem, tmp_path / "out") == 1
    assert f"refused  {archive}/1.p7m  " in capsys.readouterr().out


def test_the_unpacked_copy_is_removed(pki: Pki, package: Path, tmp_path: Path) -> None:
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob(".pacs-kit-open.*"))
    archive = zipped(package, tmp_path / "package.zip")
    assert open_package(archive, pki.recipient.key_pem, tmp_path / "out") == 0
    assert set(Path(tempfile.gettempdir()).glob(".pacs-kit-open.*")) == before


def test_a_zip_bomb_is_refused_before_unpacking(
    pki: Pki, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A member of zeros deflates ~1000:1; encrypted members never do.
    archive = tmp_path / "package.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package.iterdir()):
            zf.write(path, path.name)
        zf.writestr("9.p7m", b"\0" * (64 * 1024 * 1024))
    out = tmp_path / "out"
    assert open_package(archive, pki.recipient.key_pem, out) == 1
    assert capsys.readouterr().out == f"refused  {archive}  package-invalid\n"
    assert not out.exists()
