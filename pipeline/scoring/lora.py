"""Low-rank adapters (LoRA) for nn.Linear layers: train a few parameters, ship a small file,
merge into the base weights at load time so inference costs nothing extra."""

from __future__ import annotations

import math
import re

import torch
from torch import nn


class LoRALinear(nn.Module):
    """y = base(x) + (dropout(x) @ A^T @ B^T) * alpha / r, with base frozen and B starting at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.base(inputs) + (self.dropout(inputs) @ self.lora_a.T @ self.lora_b.T) * self.scale

    def delta(self) -> torch.Tensor:
        return (self.lora_b @ self.lora_a) * self.scale


def add_lora(model: nn.Module, pattern: str, rank: int, alpha: float, dropout: float) -> list[str]:
    """Wrap every nn.Linear whose qualified name matches `pattern`; returns the wrapped names."""
    wrapped: list[str] = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            qualified = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and re.search(pattern, qualified):
                setattr(module, child_name, LoRALinear(child, rank, alpha, dropout))
                wrapped.append(qualified)
    return wrapped


def merge_lora(model: nn.Module) -> None:
    """Fold every adapter into its base weight and put the plain nn.Linear back."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                with torch.no_grad():
                    child.base.weight += child.delta()
                setattr(module, child_name, child.base)


def apply_lora_deltas(model: nn.Module, deltas: dict[str, tuple[torch.Tensor, torch.Tensor, float]]) -> None:
    """Add saved adapters (name -> (A, B, scale)) to a plain model's Linear weights."""
    modules = dict(model.named_modules())
    for name, (lora_a, lora_b, scale) in deltas.items():
        linear = modules.get(name)
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"adapter targets {name!r}, which is not a Linear layer of the base model")
        with torch.no_grad():
            linear.weight += (lora_b @ lora_a) * scale
