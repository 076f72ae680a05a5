"""Fine-tuning the project's models: LoRA adapters on a base encoder's upper layers, plus their
LayerNorms, biases and a mean-pooling head; AdamW with warm-up and linear decay; early stopping
on the validation macro-F1 with the best epoch kept.

Layers below `frozen_layers` never change, so their states are computed once per text
(pipeline/scoring/layer_cache.py) and shared by every epoch and fold. With `checkpoint`, the
state after each epoch is saved and an interrupted run resumes from the last finished epoch.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from pipeline.scoring.base_model import BASES
from pipeline.scoring.classifier import MeanPoolClassifier
from pipeline.scoring.dataset import UNLABELLED, Example
from pipeline.scoring.evaluation import ClassificationReport, classification_report
from pipeline.scoring.labels import LABELS
from pipeline.scoring.layer_cache import LowerStates, layer_count, pad_states
from pipeline.scoring.lora import add_lora
from pipeline.scoring.precision import autocast, resolve_precision
from pipeline.scoring.training_config import TrainingConfig


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    validation: ClassificationReport


@dataclass
class TrainingResult:
    model: MeanPoolClassifier
    tokenizer: PreTrainedTokenizerBase
    best_epoch: int
    history: list[EpochRecord] = field(default_factory=list)
    validation_logits: torch.Tensor | None = None
    """The best epoch's logits on the validation split (for temperature scaling)."""
    cache: LowerStates | None = None
    """The frozen layers' states, for the next fold to reuse."""


Progress = Callable[[str, int, int], None]
"""(stage, done, total) callback, e.g. a progress bar."""

Item = tuple[Any, int, tuple[float, float, float] | None]
"""(token ids or cached states, label, teacher probabilities): the first has a length; the label is
UNLABELLED for distillation-only headlines."""


def build_trainable_model(config: TrainingConfig, data_dir: Path | None = None) -> MeanPoolClassifier:
    base = BASES[config.base]
    encoder = AutoModel.from_pretrained(base.directory(data_dir), local_files_only=True)
    model = MeanPoolClassifier(encoder, len(LABELS))
    for name, parameter in model.named_parameters():
        trainable = name.startswith("head.") or "LayerNorm" in name or name.endswith(".bias")
        parameter.requires_grad = trainable and _layer_of(name, default=0 if config.frozen_layers == 0 else -1) >= config.frozen_layers
    targets = f"(?=encoder\\.layer\\.({'|'.join(str(i) for i in _upper_layers(encoder, config.frozen_layers))})\\.){base.lora_targets}"
    if not add_lora(model.encoder, targets, config.lora_rank, config.lora_alpha, config.lora_dropout):
        raise ValueError(f"no Linear layer of {base.name} above layer {config.frozen_layers} matches its LoRA targets")
    return model


def _layer_of(name: str, default: int) -> int:
    """The encoder layer a parameter belongs to; the head counts as the top, embeddings as `default`."""
    if name.startswith("head."):
        return 10**6
    match = re.search(r"encoder\.layer\.(\d+)\.", name)
    return int(match.group(1)) if match else default


def _upper_layers(encoder: PreTrainedModel, frozen: int) -> range:
    count = layer_count(encoder)
    if not 0 <= frozen < count:
        raise ValueError(f"frozen_layers {frozen}: the encoder has {count} layers (use 0..{count - 1})")
    return range(frozen, count)


class _Inputs:
    """Turns examples into model inputs: token ids (every layer trains) or cached lower states."""

    def __init__(self, model: MeanPoolClassifier, tokenizer: PreTrainedTokenizerBase, config: TrainingConfig,
                 cache: LowerStates | None, progress: Progress | None) -> None:
        self.model, self.tokenizer, self.config, self.cache, self.progress = model, tokenizer, config, cache, progress

    def items(self, examples: Sequence[Example]) -> list[Item]:
        if self.cache is None:
            ids = self.tokenizer([e.text for e in examples], truncation=True, max_length=self.config.max_length)["input_ids"]
            return [(row, e.label, e.soft) for row, e in zip(ids, examples, strict=True)]
        self.cache.add(self.tokenizer, [e.text for e in examples], self.config.max_length, self.progress)
        return [(self.cache[e.text], e.label, e.soft) for e in examples]

    def logits(self, batch: Sequence[Item]) -> torch.Tensor:
        if self.cache is None:
            input_ids, attention_mask = _pad_ids([ids for ids, _, _ in batch], self.tokenizer.pad_token_id or 0)
            return self.model(input_ids, attention_mask)
        states, attention_mask = pad_states([states for states, _, _ in batch])
        return self.model.forward_from_layer(states, attention_mask, self.cache.start)


def train_model(
    config: TrainingConfig, train: Sequence[Example], validation: Sequence[Example], progress: Progress | None = None,
    data_dir: Path | None = None, *, cache: LowerStates | None = None, checkpoint: Path | None = None,
) -> TrainingResult:
    """Train, early-stopping on `validation`. `cache`: lower states shared across calls (cross-validation
    folds); built here when the config freezes layers and none is given."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(BASES[config.base].directory(data_dir), local_files_only=True)
    model = build_trainable_model(config, data_dir)
    dtype = resolve_precision(config.precision, torch.device("cpu"))
    if not config.frozen_layers:
        cache = None
    elif cache is None or cache.start != config.frozen_layers:
        cache = LowerStates(model.encoder, config.frozen_layers, dtype or torch.float32)
    else:
        cache.encoder = model.encoder  # the same frozen weights, freshly loaded
    inputs = _Inputs(model, tokenizer, config, cache, progress)
    train_items, validation_items = inputs.items(train), inputs.items(validation)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, int(total_steps * config.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    )
    result = TrainingResult(model, tokenizer, best_epoch=0, cache=inputs.cache)
    state = _TrainingState(model, optimizer, scheduler, rng, _fingerprint(config, train, validation))
    first_epoch = state.resume(checkpoint, result)
    cast = autocast("cpu", dtype)
    for epoch in range(first_epoch, config.epochs + 1):
        if result.best_epoch and epoch - result.best_epoch > config.patience:
            break
        model.train()
        total_loss = 0.0
        batches = _length_bucketed_batches(train_items, config.batch_size, rng)
        for step, batch in enumerate(batches, start=1):
            with cast:
                logits = inputs.logits(batch)
            loss = batch_loss(logits.float(), batch, config.hard_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item()
            if progress:
                progress(f"epoch {epoch}/{config.epochs}", step, len(batches))
        validation_logits = _batched_logits(inputs, validation_items, cast)
        report = classification_report([label for _, label, _ in validation_items], validation_logits.argmax(dim=-1).tolist())
        result.history.append(EpochRecord(epoch, total_loss / max(1, len(batches)), report))
        if report.macro_f1 > max((r.validation.macro_f1 for r in result.history[:-1]), default=-1.0):
            result.best_epoch = epoch
            result.validation_logits = validation_logits
            state.keep_best()
        state.save(checkpoint, epoch, result)
    state.restore_best()
    model.eval()
    return result


def batch_loss(logits: torch.Tensor, batch: Sequence[Item], hard_weight: float) -> torch.Tensor:
    """Cross-entropy on the labels; with a teacher, mixed with the cross-entropy on its probabilities
    (`hard_weight` on the label, the rest on the teacher), and the teacher's alone for unlabelled text."""
    labels = torch.tensor([label for _, label, _ in batch])
    if all(soft is None for _, _, soft in batch):
        return nn.functional.cross_entropy(logits, labels)
    log_p = nn.functional.log_softmax(logits, dim=-1)
    labelled = labels != UNLABELLED
    hard = -log_p.gather(1, labels.clamp(min=0).unsqueeze(1)).squeeze(1) * labelled
    has_soft = torch.tensor([soft is not None for _, _, soft in batch])
    targets = torch.tensor([soft if soft is not None else (0.0, 0.0, 0.0) for _, _, soft in batch], dtype=log_p.dtype)
    soft_loss = -(targets * log_p).sum(dim=1)
    weight_hard = torch.where(has_soft, hard_weight, 1.0) * labelled
    weight_soft = torch.where(has_soft, torch.where(labelled, 1.0 - hard_weight, 1.0), 0.0)
    return (weight_hard * hard + weight_soft * soft_loss).mean()


@torch.no_grad()
def _batched_logits(inputs: _Inputs, items: Sequence[Item], cast: torch.autocast, batch_size: int = 128) -> torch.Tensor:
    inputs.model.eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
    logits = torch.zeros((len(items), len(LABELS)))
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        with cast:
            logits[indices] = inputs.logits([items[i] for i in indices]).float()
    return logits


class _TrainingState:
    """The trainable tensors, optimiser, schedule and random state: kept at the best epoch, and
    saved after each epoch so an interrupted run resumes where it stopped."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, rng: random.Random,
                 fingerprint: str) -> None:
        self.model, self.optimizer, self.scheduler, self.rng, self.fingerprint = model, optimizer, scheduler, rng, fingerprint
        self.best: dict[str, torch.Tensor] = {}

    def _trainable(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in self.model.named_parameters() if p.requires_grad}

    def keep_best(self) -> None:
        self.best = self._trainable()

    def restore_best(self) -> None:
        if self.best:
            self.model.load_state_dict(self.best, strict=False)

    def save(self, path: Path | None, epoch: int, result: TrainingResult) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save({
            "fingerprint": self.fingerprint, "epoch": epoch, "trainable": self._trainable(), "best": self.best,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "rng": self.rng.getstate(), "torch_rng": torch.get_rng_state(), "best_epoch": result.best_epoch,
            "validation_logits": result.validation_logits,
            "history": [(r.epoch, r.train_loss, r.validation) for r in result.history],
        }, partial)
        partial.replace(path)

    def resume(self, path: Path | None, result: TrainingResult) -> int:
        """The first epoch to run: 1, or the one after a matching checkpoint's."""
        if path is None or not path.exists():
            return 1
        try:
            saved = torch.load(path, weights_only=False)
        except (OSError, RuntimeError, EOFError, ValueError):
            print(f"ignoring unreadable checkpoint {path}", file=sys.stderr, flush=True)
            return 1
        if saved.get("fingerprint") != self.fingerprint:
            print(f"ignoring checkpoint {path}: it is of other data or settings", file=sys.stderr, flush=True)
            return 1
        self.model.load_state_dict(saved["trainable"], strict=False)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.rng.setstate(saved["rng"])
        torch.set_rng_state(saved["torch_rng"])
        self.best = saved["best"]
        result.best_epoch = saved["best_epoch"]
        result.validation_logits = saved["validation_logits"]
        result.history = [EpochRecord(epoch, loss, report) for epoch, loss, report in saved["history"]]
        print(f"resuming after epoch {saved['epoch']} from {path}", file=sys.stderr, flush=True)
        return int(saved["epoch"]) + 1


def _fingerprint(config: TrainingConfig, train: Sequence[Example], validation: Sequence[Example]) -> str:
    digest = hashlib.sha256(json.dumps(config.manifest(), sort_keys=True).encode())
    for part in (train, validation):
        for example in part:
            soft = "" if example.soft is None else ",".join(f"{p:.6f}" for p in example.soft)
            digest.update(f"{example.label}\t{soft}\t{example.text}\n".encode())
        digest.update(b"\x00")
    return digest.hexdigest()


@torch.inference_mode()
def predict_logits(model: nn.Module, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
                   batch_size: int = 64, precision: str = "fp32") -> torch.Tensor:
    """Logits of the full model (every layer run) in LABELS order, in `precision`."""
    model.eval()
    dtype = resolve_precision(precision, torch.device("cpu"))
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    logits = torch.zeros((len(texts), len(LABELS)))
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        tokens = tokenizer([texts[i] for i in indices], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with autocast("cpu", dtype):
            logits[indices] = model(tokens["input_ids"], tokens["attention_mask"]).float()
    return logits


def _length_bucketed_batches(items: list[Item], batch_size: int, rng: random.Random) -> list[list[Item]]:
    """Shuffle, then sort within pools of 50 batches so each batch pads little; batch order shuffled."""
    shuffled = items[:]
    rng.shuffle(shuffled)
    pool = batch_size * 50
    batches: list[list[Item]] = []
    for start in range(0, len(shuffled), pool):
        chunk = sorted(shuffled[start:start + pool], key=lambda item: len(item[0]))
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _pad_ids(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask
