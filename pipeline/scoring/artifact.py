"""Saving and loading models: the project's LoRA artifact on one of its base encoders
(pipeline/scoring/base_model.py), or any local Hugging Face sequence-classification directory
with a label mapping.

The project's artifact is a directory with `finsent_model.json` (labels, base, adapter shape,
calibration temperature, training record) and `adapter.safetensors` (LoRA matrices plus the few full tensors trained:
LayerNorms, biases, the head). Loading merges the adapters into the base weights, so inference
runs a plain encoder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from pipeline.errors import UserError
from pipeline.scoring.base_model import MINILM, BaseEncoder, base_by_source
from pipeline.scoring.classifier import MeanPoolClassifier
from pipeline.scoring.labels import LABELS, canonical_label
from pipeline.scoring.lora import LoRALinear, apply_lora_deltas
from pipeline.scoring.model_choice import SHIPPED_MODELS

ARTIFACT_FORMAT = "finsent-lora-v1"
MANIFEST = "finsent_model.json"
WEIGHTS = "adapter.safetensors"
SHIPPED_MODEL_DIR = SHIPPED_MODELS["fast"]


@dataclass
class LoadedModel:
    """A classifier whose `logits()` columns are in LABELS order, whatever the model's own order."""

    module: nn.Module
    tokenizer: PreTrainedTokenizerBase
    version: str
    max_length: int
    kind: str
    label_order: tuple[int, ...] = (0, 1, 2)
    temperature: float = 1.0
    """Calibration (pipeline/scoring/calibration.py): logits are divided by it."""
    base: str = ""
    """A finsent artifact's base encoder key (minilm, mpnet); empty for a Hugging Face directory."""

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "finsent":
            raw = self.module(input_ids=input_ids, attention_mask=attention_mask)
        else:
            raw = self.module(input_ids=input_ids, attention_mask=attention_mask).logits
        raw = raw[:, list(self.label_order)] if self.label_order != (0, 1, 2) else raw
        return raw / self.temperature if self.temperature != 1.0 else raw


def save_artifact(model: MeanPoolClassifier, out_dir: Path, manifest: dict[str, Any], base: BaseEncoder = MINILM,
                  temperature: float = 1.0) -> str:
    """Write the adapter and manifest; returns the model version (derived from the weights and the
    calibration temperature, named after the base)."""
    tensors: dict[str, torch.Tensor] = {}
    targets: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            tensors[f"lora.{name}.a"] = module.lora_a.detach().contiguous()
            tensors[f"lora.{name}.b"] = module.lora_b.detach().contiguous()
            targets.append(name)
    for name, parameter in model.named_parameters():
        if parameter.requires_grad and ".lora_" not in name:
            tensors[f"param.{name.replace('.base.', '.')}"] = parameter.detach().contiguous()
    digest = hashlib.sha256()
    for key in sorted(tensors):
        digest.update(key.encode())
        digest.update(tensors[key].float().numpy().tobytes())
    if temperature != 1.0:
        digest.update(f"temperature={temperature!r}".encode())
    version = f"finsent-{base.key}-lora-{digest.hexdigest()[:12]}"
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / WEIGHTS))
    full_manifest = {"format": ARTIFACT_FORMAT, "version": version, "base": base.source, "labels": list(LABELS),
                     "pooling": "mean", "temperature": temperature, "lora_targets": targets, **manifest}
    (out_dir / MANIFEST).write_text(json.dumps(full_manifest, indent=2) + "\n", encoding="utf-8")
    return version


def load_model(path: Path | None, device: torch.device, label_names: Sequence[str] | None = None,
               data_dir: Path | None = None) -> LoadedModel:
    """The shipped model (path None), a finsent artifact dir, or a Hugging Face classifier dir.
    `data_dir` (FINSENT_DATA_DIR) is where an installed base encoder lives."""
    directory = path or SHIPPED_MODEL_DIR
    if (directory / MANIFEST).exists():
        return _load_finsent(directory, device, data_dir)
    if (directory / "config.json").exists():
        return _load_hugging_face(directory, device, label_names)
    raise UserError(
        f"model directory {str(directory)!r} holds neither {MANIFEST} (a finsent model) nor config.json "
        "(a Hugging Face model): point FINSENT_MODEL at a model directory, or set it to fast or accurate"
    )


def _load_finsent(directory: Path, device: torch.device, data_dir: Path | None) -> LoadedModel:
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise UserError(f"{directory / MANIFEST}: unknown format {manifest.get('format')!r}, expected {ARTIFACT_FORMAT}")
    base_encoder = base_by_source(str(manifest.get("base", MINILM.source)))
    base = base_encoder.directory(data_dir)
    encoder = AutoModel.from_pretrained(base, local_files_only=True)
    model = MeanPoolClassifier(encoder, len(LABELS))
    tensors = load_file(str(directory / WEIGHTS))
    scale = float(manifest["lora_alpha"]) / int(manifest["lora_rank"])
    deltas = {
        name: (tensors[f"lora.{name}.a"], tensors[f"lora.{name}.b"], scale) for name in manifest["lora_targets"]
    }
    full = {key[len("param."):]: value for key, value in tensors.items() if key.startswith("param.")}
    missing = set(full) - set(model.state_dict())
    if missing:
        raise UserError(f"{directory / WEIGHTS} does not fit the base model (unknown tensors {sorted(missing)[:3]})")
    model.load_state_dict(full, strict=False)
    apply_lora_deltas(model, deltas)
    model.eval().to(device)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    return LoadedModel(model, tokenizer, manifest["version"], int(manifest.get("max_length", 256)), "finsent",
                       temperature=float(manifest.get("temperature", 1.0)), base=base_encoder.key)


def _load_hugging_face(directory: Path, device: torch.device, label_names: Sequence[str] | None) -> LoadedModel:
    try:
        model = AutoModelForSequenceClassification.from_pretrained(directory, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as error:
        raise UserError(f"model directory {str(directory)!r} cannot be loaded as a classifier: {error}") from None
    names = list(label_names) if label_names else [model.config.id2label[i] for i in range(model.config.num_labels)]
    order = _label_order(names, directory)
    model.eval().to(device)
    max_length = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    return LoadedModel(model, tokenizer, f"hf:{directory.name}:{_fingerprint(directory)}", max_length, "hf", order)


def _label_order(names: Sequence[str], directory: Path) -> tuple[int, ...]:
    canonical = [canonical_label(str(name)) for name in names]
    if sorted(c for c in canonical if c) != sorted(LABELS) or len(canonical) != 3:
        raise UserError(
            f"model in {directory} has labels {list(names)}, which do not map onto negative/neutral/positive: "
            "set FINSENT_MODEL_LABELS to its label names in output order, e.g. positive,negative,neutral"
        )
    return tuple(canonical.index(label) for label in LABELS)


def _fingerprint(directory: Path) -> str:
    """Short hash of the config and weight files (size and head), so a changed model gets a new version."""
    digest = hashlib.sha256()
    for file in sorted(directory.iterdir()):
        if file.suffix in (".json", ".safetensors", ".bin"):
            digest.update(file.name.encode())
            digest.update(str(file.stat().st_size).encode())
            with file.open("rb") as handle:
                digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:12]
