"""Which model the worker scores with: FINSENT_MODEL=fast|accurate|auto|<directory>.

- fast: MiniLM-L6 with a LoRA adapter (pipeline/scoring/models/fast), installed with finsent.
- accurate: all-mpnet-base-v2 with a LoRA adapter (pipeline/scoring/models/accurate), on the
  base weights `finsent model install` puts under FINSENT_DATA_DIR.
- auto (the default): the accurate model wherever it runs natively fast: on CUDA, and on a CPU with
  bf16 instructions (AMX or AVX512-BF16), where bench/scoring.py measured it at 212 headlines/s on
  2 cores, orders of magnitude above a real news flow; it is 1.5 points more accurate than the
  fast model distilled from it (both meet the real-news alert targets, bench/alerts_real.py). The
  fast model elsewhere: on a CPU without native bf16 the
  accurate model runs in fp32 at a seventh of the fast model's speed; and wherever the accurate
  model's base is not installed (`finsent model install`), saying so.
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


def choose_model(setting: str, legacy_path: Path | None, device_type: str, data_dir: Path | None,
                 *, int8: bool = False) -> ModelChoice:
    """The model directory for FINSENT_MODEL (`setting`) and FINSENT_MODEL_PATH (`legacy_path`) on a device;
    `int8` (FINSENT_MODEL_QUANTIZE=int8) keeps auto on the fast model, the only one int8 does not ruin."""
    if legacy_path is not None:
        if setting != "auto":
            raise UserError(f"FINSENT_MODEL={setting} and FINSENT_MODEL_PATH={str(legacy_path)!r} are both set: keep one")
        return ModelChoice(legacy_path, "path", "FINSENT_MODEL_PATH")
    if setting in SHIPPED_MODELS:
        return ModelChoice(SHIPPED_MODELS[setting], setting, f"FINSENT_MODEL={setting}")
    if setting != "auto":
        return ModelChoice(Path(setting).expanduser(), "path", "FINSENT_MODEL is a directory")
    if int8:
        return ModelChoice(SHIPPED_MODELS["fast"], "fast", "auto with FINSENT_MODEL_QUANTIZE=int8: the fast model "
                                                           "(int8 ruins the accurate one)")
    if not accurate_base_installed(data_dir):
        return ModelChoice(SHIPPED_MODELS["fast"], "fast",
                           "auto: the accurate model's base is not installed (finsent model install), so the fast model")
    if device_type == "cuda":
        return ModelChoice(SHIPPED_MODELS["accurate"], "accurate", "auto on cuda: the accurate model")
    if device_type == "cpu" and _cpu_has_native_bf16():
        return ModelChoice(SHIPPED_MODELS["accurate"], "accurate", "auto on a CPU with native bf16: the accurate model")
    return ModelChoice(SHIPPED_MODELS["fast"], "fast",
                       f"auto on {device_type} without native bf16: the fast model (the accurate one would run in fp32)")


def _cpu_has_native_bf16() -> bool:
    from pipeline.scoring import precision

    return precision.cpu_has_native_bf16()


def accurate_base_installed(data_dir: Path | None) -> bool:
    from pipeline.scoring.base_model import MPNET

    try:
        MPNET.directory(data_dir)
    except UserError:
        return False
    return True
