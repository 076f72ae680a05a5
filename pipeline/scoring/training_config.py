"""Hyper-parameters of `finsent train` (kept free of torch so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TrainingConfig:
    base: str = "minilm"
    """The encoder to adapt: minilm (the fast model) or mpnet (the accurate one; `finsent model install`)."""
    frozen_layers: int = 0
    """Encoder layers below this one (and the embeddings) stay frozen and are run once per text
    (pipeline/scoring/layer_cache.py); LoRA, LayerNorms and biases train above it."""
    precision: str = "auto"
    """fp32, bf16, or auto: bf16 autocast where the CPU or GPU does it natively (pipeline/scoring/precision.py)."""
    epochs: int = 6
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.1
    max_length: int = 128
    patience: int = 2
    seed: int = 13
    hard_weight: float = 0.5
    """With a teacher (distillation): the weight of the label in a labelled example's loss; the rest
    goes to the teacher's probabilities. Unlabelled text learns from the teacher alone."""
    teacher: str = ""
    """The teacher model's version (or, in cross-validation, its fold models' directory); empty: none."""

    def manifest(self) -> dict[str, object]:
        return asdict(self)
