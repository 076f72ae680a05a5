"""The long jobs behind `finsent train` and `finsent eval`, with progress bars and JSON reports."""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pipeline.scoring.artifact import save_artifact
from pipeline.scoring.base_model import BASES
from pipeline.scoring.dataset import Example, deduplicate, read_labelled_csv, stratified_folds, stratified_split
from pipeline.scoring.evaluation import ClassificationReport, classification_report
from pipeline.scoring.labels import LABELS
from pipeline.scoring.scorer import Scorer
from pipeline.scoring.training import evaluate, train_model
from pipeline.scoring.training_config import TrainingConfig


@dataclass(frozen=True)
class TrainingData:
    files: tuple[Path, ...]
    examples: list[Example]

    def describe(self) -> list[dict[str, object]]:
        return [
            {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
             "examples": sum(1 for e in self.examples if e.source == path.name)}
            for path in self.files
        ]


def load_training_data(files: Sequence[Path]) -> TrainingData:
    examples: list[Example] = []
    for path in files:
        examples.extend(read_labelled_csv(path))
    return TrainingData(tuple(files), deduplicate(examples))


class _Bar:
    """One tqdm bar per stage (epoch), on stderr."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self._stage: str | None = None
        self._bar: tqdm | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=total, desc=f"{self._prefix}{stage}", unit="batch", file=sys.stderr, mininterval=1.0)
        assert self._bar is not None
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def train_and_save(
    data: TrainingData, config: TrainingConfig, out_dir: Path, validation_fraction: float, validate_on: str, command: str,
    data_dir: Path | None = None,
) -> tuple[str, ClassificationReport]:
    """Train on everything but a validation split of `validate_on` (the target domain), which
    drives early stopping and is reported; the other files train in full."""
    torch.manual_seed(config.seed)
    target = [e for e in data.examples if e.source == validate_on]
    if not target:
        raise ValueError(f"no examples from {validate_on}")
    train, validation = stratified_split(target, validation_fraction, config.seed)
    train += [e for e in data.examples if e.source != validate_on]
    bar = _Bar()
    result = train_model(config, train, validation, bar, data_dir)
    bar.close()
    report = result.history[result.best_epoch - 1].validation
    manifest: dict[str, Any] = {
        "lora_rank": config.lora_rank,
        "lora_alpha": config.lora_alpha,
        "max_length": config.max_length,
        "training": {
            "config": config.manifest(),
            "data": data.describe(),
            "train_examples": len(train),
            "validation_examples": len(validation),
            "validation_fraction": validation_fraction,
            "validated_on": validate_on,
            "best_epoch": result.best_epoch,
            "history": [
                {"epoch": r.epoch, "train_loss": round(r.train_loss, 5), "accuracy": round(r.validation.accuracy, 5),
                 "macro_f1": round(r.validation.macro_f1, 5)}
                for r in result.history
            ],
            "command": command,
        },
        "validation": report.to_json(),
    }
    version = save_artifact(result.model, out_dir, manifest, BASES[config.base])
    return version, report


def cross_validate(
    data: TrainingData, config: TrainingConfig, folds: int, on_file: str, validation_fraction: float,
    report_path: Path | None = None, data_dir: Path | None = None,
) -> dict[str, Any]:
    """K folds over the examples of `on_file`; examples of the other files always train.

    Each fold holds out 1/K of `on_file` for testing, early-stops on a validation split of the
    rest, and is scored on its held-out part only; the figures are mean and standard deviation.
    With `report_path`, the report is rewritten after every fold and a rerun with the same data,
    configuration and K resumes after the folds already in it: a long CPU run can span sessions.
    """
    target = [e for e in data.examples if e.source == on_file]
    others = [e for e in data.examples if e.source != on_file]
    if not target:
        raise ValueError(f"no examples from {on_file}")
    header = {"folds": folds, "evaluated_on": on_file, "config": config.manifest(), "data": data.describe()}
    results = _completed_folds(report_path, header)
    if results:
        print(f"resuming: folds {', '.join(str(r['fold']) for r in results)} already in {report_path}", file=sys.stderr, flush=True)
    parts = stratified_folds(target, folds, config.seed)
    for index, held_out in enumerate(parts):
        if any(r["fold"] == index + 1 for r in results):
            continue
        rest = [e for i, part in enumerate(parts) if i != index for e in part] + others
        train, validation = stratified_split(rest, validation_fraction, config.seed + index)
        bar = _Bar(f"fold {index + 1}/{folds} ")
        result = train_model(config, train, validation, bar, data_dir)
        bar.close()
        report = evaluate(result.model, result.tokenizer, held_out, config.max_length)
        results.append({"fold": index + 1, "best_epoch": result.best_epoch, **report.to_json()})
        print(f"fold {index + 1}/{folds}: accuracy {report.accuracy:.4f} macro-F1 {report.macro_f1:.4f} "
              f"(best epoch {result.best_epoch})", file=sys.stderr, flush=True)
        if report_path is not None:
            write_json(report_path, _cv_summary(header, results))
    return _cv_summary(header, results)


def _cv_summary(header: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    accuracies = [r["accuracy"] for r in results]
    f1s = [r["macro_f1"] for r in results]
    return {
        **header,
        "complete": len(results) == header["folds"],
        "accuracy_mean": statistics.mean(accuracies), "accuracy_std": statistics.stdev(accuracies) if len(results) > 1 else 0.0,
        "macro_f1_mean": statistics.mean(f1s), "macro_f1_std": statistics.stdev(f1s) if len(results) > 1 else 0.0,
        "per_fold": sorted(results, key=lambda r: r["fold"]),
    }


def _completed_folds(report_path: Path | None, header: dict[str, Any]) -> list[dict[str, Any]]:
    """Folds of an earlier run of the same cross-validation; none when anything differs."""
    if report_path is None or not report_path.exists():
        return []
    try:
        earlier = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if any(earlier.get(key) != value for key, value in json.loads(json.dumps(header)).items()):
        return []
    return list(earlier.get("per_fold", []))


def evaluate_scorer(scorer: Scorer, examples: Sequence[Example], batch_size: int = 256) -> ClassificationReport:
    predicted: list[int] = []
    with tqdm(total=len(examples), desc="evaluating", unit="text", file=sys.stderr, mininterval=1.0) as bar:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            predicted.extend(LABELS.index(score.label) for score in scorer.score_texts([e.text for e in chunk]))
            bar.update(len(chunk))
    return classification_report([e.label for e in examples], predicted)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
