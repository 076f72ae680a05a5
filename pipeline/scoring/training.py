"""Fine-tuning the project's model: LoRA adapters on the packaged MiniLM, plus its LayerNorms,
biases and a mean-pooling head; AdamW with warm-up and linear decay; early stopping on the
validation macro-F1 with the best epoch kept."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from pipeline.scoring.base_model import BASES
from pipeline.scoring.classifier import MeanPoolClassifier
from pipeline.scoring.dataset import Example
from pipeline.scoring.evaluation import ClassificationReport, classification_report
from pipeline.scoring.labels import LABELS
from pipeline.scoring.lora import add_lora
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


Progress = Callable[[str, int, int], None]
"""(stage, done, total) callback, e.g. a progress bar."""


def build_trainable_model(config: TrainingConfig, data_dir: Path | None = None) -> MeanPoolClassifier:
    base = BASES[config.base]
    encoder = AutoModel.from_pretrained(base.directory(data_dir), local_files_only=True)
    model = MeanPoolClassifier(encoder, len(LABELS))
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith("head.") or "LayerNorm" in name or name.endswith(".bias")
    if not add_lora(model.encoder, base.lora_targets, config.lora_rank, config.lora_alpha, config.lora_dropout):
        raise ValueError(f"no Linear layer of {base.name} matches its LoRA targets {base.lora_targets!r}")
    return model


def train_model(
    config: TrainingConfig, train: Sequence[Example], validation: Sequence[Example], progress: Progress | None = None,
    data_dir: Path | None = None,
) -> TrainingResult:
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(BASES[config.base].directory(data_dir), local_files_only=True)
    model = build_trainable_model(config, data_dir)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    encoded = _encode(tokenizer, train, config.max_length)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, int(total_steps * config.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    )
    loss_function = nn.CrossEntropyLoss()
    result = TrainingResult(model, tokenizer, best_epoch=0)
    best_state: dict[str, torch.Tensor] | None = None
    best_f1 = -1.0
    for epoch in range(1, config.epochs + 1):
        model.train()
        total_loss = 0.0
        batches = _length_bucketed_batches(encoded, config.batch_size, rng)
        for step, batch in enumerate(batches, start=1):
            input_ids, attention_mask, labels = _collate(batch, tokenizer.pad_token_id)
            loss = loss_function(model(input_ids, attention_mask), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item()
            if progress:
                progress(f"epoch {epoch}/{config.epochs}", step, len(batches))
        report = evaluate(model, tokenizer, validation, config.max_length)
        result.history.append(EpochRecord(epoch, total_loss / max(1, len(batches)), report))
        if report.macro_f1 > best_f1:
            best_f1, result.best_epoch = report.macro_f1, epoch
            best_state = copy.deepcopy({k: v for k, v in model.state_dict().items()})
        elif epoch - result.best_epoch >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


@torch.inference_mode()
def predict_labels(model: nn.Module, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
                   batch_size: int = 64) -> list[int]:
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    predictions = [0] * len(texts)
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        tokens = tokenizer([texts[i] for i in indices], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        logits = model(tokens["input_ids"], tokens["attention_mask"])
        for index, label in zip(indices, logits.argmax(dim=-1).tolist(), strict=True):
            predictions[index] = label
    return predictions


def evaluate(model: nn.Module, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], max_length: int) -> ClassificationReport:
    predicted = predict_labels(model, tokenizer, [e.text for e in examples], max_length)
    return classification_report([e.label for e in examples], predicted)


def _encode(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], max_length: int) -> list[tuple[list[int], int]]:
    ids = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)["input_ids"]
    return list(zip(ids, (e.label for e in examples), strict=True))


def _length_bucketed_batches(encoded: list[tuple[list[int], int]], batch_size: int,
                             rng: random.Random) -> list[list[tuple[list[int], int]]]:
    """Shuffle, then sort within pools of 50 batches so each batch pads little; batch order shuffled."""
    shuffled = encoded[:]
    rng.shuffle(shuffled)
    pool = batch_size * 50
    batches: list[list[tuple[list[int], int]]] = []
    for start in range(0, len(shuffled), pool):
        chunk = sorted(shuffled[start:start + pool], key=lambda item: len(item[0]))
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _collate(batch: list[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, _) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask, torch.tensor([label for _, label in batch])
