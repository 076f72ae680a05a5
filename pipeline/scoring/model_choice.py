"""Which model the worker scores with: FINSENT_MODEL=fast|accurate|auto|<directory>.

- fast: MiniLM-L6 with a LoRA adapter (pipeline/scoring/models/fast), installed with finsent.
- accurate: all-mpnet-base-v2 with a LoRA adapter (pipeline/scoring/models/accurate), on the
  base weights `finsent model install` puts under FINSENT_DATA_DIR.
- auto (the default): accurate on CUDA, where it costs little; fast on a CPU, where the accurate
  model is several times slower (bench/scoring.py measures both). On CUDA without the accurate
  model's base installed, auto takes the fast model and says so.
- a directory: a finsent artifact or a Hugging Face classifier (FINSENT_MODEL_PATH, the older
  name, still works).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError

MODELS_DIR = Path(__file__).parent / "models"
SHIPPED_MODELS = {"fast": MODELS_DIR / "fast", "accurate": MODELS_DIR / "accurate"}
MODEL_NAMES = ("auto", *SHIPPED_MODELS)


@dataclass(frozen=True)
class ModelChoice:
    directory: Path
    name: str
    """fast, accurate, or path."""
    reason: str
    """Why this one, for the worker's model_loaded log line."""


def choose_model(setting: str, legacy_path: Path | None, device_type: str, data_dir: Path | None) -> ModelChoice:
    """The model directory for FINSENT_MODEL (`setting`) and FINSENT_MODEL_PATH (`legacy_path`) on a device."""
    if legacy_path is not None:
        if setting != "auto":
            raise UserError(f"FINSENT_MODEL={setting} and FINSENT_MODEL_PATH={str(legacy_path)!r} are both set: keep one")
        return ModelChoice(legacy_path, "path", "FINSENT_MODEL_PATH")
    if setting in SHIPPED_MODELS:
        return ModelChoice(SHIPPED_MODELS[setting], setting, f"FINSENT_MODEL={setting}")
    if setting != "auto":
        return ModelChoice(Path(setting).expanduser(), "path", "FINSENT_MODEL is a directory")
    if device_type != "cuda":
        return ModelChoice(SHIPPED_MODELS["fast"], "fast", f"auto on {device_type}: the fast model")
    if not accurate_base_installed(data_dir):
        return ModelChoice(SHIPPED_MODELS["fast"], "fast",
                           "auto on cuda: the accurate model's base is not installed (finsent model install), so the fast model")
    return ModelChoice(SHIPPED_MODELS["accurate"], "accurate", "auto on cuda: the accurate model")


def accurate_base_installed(data_dir: Path | None) -> bool:
    from pipeline.scoring.base_model import MPNET

    try:
        MPNET.directory(data_dir)
    except UserError:
        return False
    return True
