"""The long jobs behind `finsent train` and `finsent eval`, with progress bars and JSON reports."""

from __future__ import annotations

import dataclasses
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

from pipeline.errors import UserError
from pipeline.scoring.artifact import MANIFEST, save_artifact
from pipeline.scoring.base_model import BASES
from pipeline.scoring.calibration import expected_calibration_error, fit_temperature
from pipeline.scoring.dataset import Example, deduplicate, read_labelled_csv, stratified_folds, stratified_split
from pipeline.scoring.evaluation import ClassificationReport, classification_report
from pipeline.scoring.labels import LABELS
from pipeline.scoring.layer_cache import LowerStates
from pipeline.scoring.scorer import ArticleScore, Scorer
from pipeline.scoring.training import TrainingResult, predict_logits, train_model
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


@dataclass(frozen=True)
class Distillation:
    """Learning from a teacher model's probabilities: `teacher` is a model directory (for a
    cross-validation, the fold models of the teacher's own cross-validation, fold1..foldK, made
    with --save-fold-models), `unlabelled` extra texts that train on the teacher alone."""

    teacher: Path
    unlabelled: list[Example]
    unlabelled_files: tuple[Path, ...] = ()

    def describe(self) -> list[dict[str, object]]:
        """The unlabelled files, as `TrainingData.describe` does the labelled ones (the manifest records both)."""
        return TrainingData(self.unlabelled_files, self.unlabelled).describe()


def train_and_save(
    data: TrainingData, config: TrainingConfig, out_dir: Path, validation_fraction: float, validate_on: str, command: str,
    data_dir: Path | None = None, distillation: Distillation | None = None,
) -> tuple[str, ClassificationReport]:
    """Train on everything but a validation split of `validate_on` (the target domain), which
    drives early stopping, fits the calibration temperature and is reported; the other files
    train in full. An interrupted run resumes from `out_dir/.training-checkpoint.pt`."""
    torch.manual_seed(config.seed)
    target = [e for e in data.examples if e.source == validate_on]
    if not target:
        raise ValueError(f"no examples from {validate_on}")
    train, validation = stratified_split(target, validation_fraction, config.seed)
    train += [e for e in data.examples if e.source != validate_on]
    if distillation is not None:
        teacher = _teacher(distillation.teacher, data_dir)
        train = taught(teacher, train + distillation.unlabelled)
        config = dataclasses.replace(config, teacher=teacher.version)
    checkpoint = out_dir / ".training-checkpoint.pt"
    bar = _Bar()
    result = train_model(config, train, validation, bar, data_dir, checkpoint=checkpoint)
    bar.close()
    report = result.history[result.best_epoch - 1].validation
    calibration = _calibration(result.validation_logits, [e.label for e in validation])
    manifest: dict[str, Any] = {
        "lora_rank": config.lora_rank,
        "lora_alpha": config.lora_alpha,
        "max_length": config.max_length,
        "training": {
            "config": config.manifest(),
            "data": data.describe(),
            **({"unlabelled": distillation.describe()} if distillation is not None and distillation.unlabelled_files else {}),
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
        "calibration": calibration,
    }
    version = save_artifact(result.model, out_dir, manifest, BASES[config.base], temperature=calibration["temperature"])
    checkpoint.unlink(missing_ok=True)
    return version, report


def _calibration(logits: torch.Tensor | None, labels: list[int]) -> dict[str, float]:
    """The temperature fitted on validation logits, and the ECE there before and after it."""
    if logits is None or not labels:
        return {"temperature": 1.0}
    temperature = fit_temperature(logits, labels)
    return {
        "temperature": round(temperature, 4),
        "validation_ece": round(expected_calibration_error(torch.softmax(logits, dim=-1), labels), 4),
        "validation_ece_scaled": round(expected_calibration_error(torch.softmax(logits / temperature, dim=-1), labels), 4),
    }


def cross_validate(
    data: TrainingData, config: TrainingConfig, folds: int, on_file: str, validation_fraction: float,
    report_path: Path | None = None, data_dir: Path | None = None, *, distillation: Distillation | None = None,
    save_fold_models: Path | None = None,
) -> dict[str, Any]:
    """K folds over the examples of `on_file`; examples of the other files always train.

    Each fold holds out 1/K of `on_file` for testing, early-stops and fits the calibration
    temperature on a validation split of the rest of `on_file` (as `train_and_save` does), and is scored on its held-out part only, in
    fp32 and in bf16, with the calibration error before and after scaling; the figures are mean
    and standard deviation. With `report_path`, the report is rewritten after every fold, each
    fold checkpoints after every epoch, and a rerun with the same data, configuration and K
    resumes where the last one stopped: a long CPU run can span sessions.

    `save_fold_models` keeps each fold's model (DIR/foldN, with the digest of its held-out part), so
    a student's cross-validation can learn, in each fold, from a teacher that never saw that fold
    (`distillation`); a teacher fold whose held-out part differs is refused.
    """
    target = [e for e in data.examples if e.source == on_file]
    others = [e for e in data.examples if e.source != on_file]
    if not target:
        raise ValueError(f"no examples from {on_file}")
    if distillation is not None:
        config = dataclasses.replace(config, teacher=str(distillation.teacher))
    header = {"folds": folds, "evaluated_on": on_file, "config": config.manifest(), "data": data.describe()}
    if distillation is not None and distillation.unlabelled_files:
        header["unlabelled"] = distillation.describe()
    results = _completed_folds(report_path, header)
    if results:
        print(f"resuming: folds {', '.join(str(r['fold']) for r in results)} already in {report_path}", file=sys.stderr, flush=True)
    parts = stratified_folds(target, folds, config.seed)
    cache: LowerStates | None = None
    for index, held_out in enumerate(parts):
        if any(r["fold"] == index + 1 for r in results):
            continue
        rest = [e for i, part in enumerate(parts) if i != index for e in part]
        train, validation = stratified_split(rest, validation_fraction, config.seed + index)
        train += others
        if distillation is not None:
            teacher = _fold_teacher(distillation.teacher, index + 1, folds, held_out, data_dir)
            train = taught(teacher, train + distillation.unlabelled)
        checkpoint = report_path.with_name(f"{report_path.name}.fold{index + 1}.pt") if report_path else None
        bar = _Bar(f"fold {index + 1}/{folds} ")
        result = train_model(config, train, validation, bar, data_dir, cache=cache, checkpoint=checkpoint)
        bar.close()
        cache = result.cache
        fold = _score_fold(result, held_out, validation, config.max_length)
        results.append({"fold": index + 1, "best_epoch": result.best_epoch, **fold})
        if save_fold_models is not None:
            fold_record = {"fold": index + 1, "folds": folds, "held_out_sha256": _digest(held_out)}
            save_artifact(result.model, save_fold_models / f"fold{index + 1}",
                          {"lora_rank": config.lora_rank, "lora_alpha": config.lora_alpha, "max_length": config.max_length,
                           "training": {"config": config.manifest(), "cross_validation": fold_record}},
                          BASES[config.base], temperature=fold["temperature"])
        print(f"fold {index + 1}/{folds}: accuracy {fold['accuracy']:.4f} macro-F1 {fold['macro_f1']:.4f} "
              f"(bf16 {fold['bf16']['accuracy']:.4f} / {fold['bf16']['macro_f1']:.4f}; best epoch {result.best_epoch})",
              file=sys.stderr, flush=True)
        if report_path is not None:
            write_json(report_path, _cv_summary(header, results))
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
    return _cv_summary(header, results)


def taught(teacher: Scorer, examples: Sequence[Example]) -> list[Example]:
    """The examples with the teacher's probabilities attached (its calibrated ones)."""
    scores = _scored(teacher, examples, f"teacher {teacher.version}")
    return [dataclasses.replace(example, soft=(s.p_negative, s.p_neutral, s.p_positive))
            for example, s in zip(examples, scores, strict=True)]


def _scored(scorer: Scorer, examples: Sequence[Example], stage: str, batch_size: int = 256) -> list[ArticleScore]:
    """The scorer's scores of the examples' texts, in chunks under a progress bar."""
    scores: list[ArticleScore] = []
    with tqdm(total=len(examples), desc=stage, unit="text", file=sys.stderr, mininterval=1.0) as bar:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            scores.extend(scorer.score_texts([e.text for e in chunk]))
            bar.update(len(chunk))
    return scores


def _teacher(directory: Path, data_dir: Path | None) -> Scorer:
    return Scorer.load(directory, data_dir=data_dir)


def _fold_teacher(directory: Path, fold: int, folds: int, held_out: Sequence[Example], data_dir: Path | None) -> Scorer:
    """Fold `fold`'s teacher, refused unless it was trained without exactly this fold's held-out part."""
    fold_dir = directory / f"fold{fold}"
    try:
        record = json.loads((fold_dir / MANIFEST).read_text(encoding="utf-8"))["training"]["cross_validation"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"--teacher {directory}: no fold model {fold_dir.name} of a {folds}-fold cross-validation; make them "
                        f"with finsent train --folds {folds} --save-fold-models {directory}") from None
    if record.get("folds") != folds or record.get("held_out_sha256") != _digest(held_out):
        raise UserError(f"--teacher {fold_dir}: its held-out fold differs from this one (other data, seed or number of folds): "
                        "a teacher that saw this fold would leak its labels; rebuild the fold models on the same data")
    return _teacher(fold_dir, data_dir)


def _digest(examples: Sequence[Example]) -> str:
    return hashlib.sha256("\n".join(sorted(e.text for e in examples)).encode()).hexdigest()


def _score_fold(result: TrainingResult, held_out: Sequence[Example], validation: Sequence[Example],
                max_length: int) -> dict[str, Any]:
    """The held-out part's report in fp32, its bf16 twin, and calibration with the validation temperature."""
    texts, labels = [e.text for e in held_out], [e.label for e in held_out]
    logits = predict_logits(result.model, result.tokenizer, texts, max_length)
    bf16 = predict_logits(result.model, result.tokenizer, texts, max_length, precision="bf16")
    report = classification_report(labels, logits.argmax(dim=-1).tolist())
    bf16_report = classification_report(labels, bf16.argmax(dim=-1).tolist())
    calibration = _calibration(result.validation_logits, [e.label for e in validation])
    temperature = calibration["temperature"]
    return {
        **report.to_json(),
        "bf16": {"accuracy": bf16_report.accuracy, "macro_f1": bf16_report.macro_f1,
                 "max_abs_probability_delta": round(float((torch.softmax(bf16, -1) - torch.softmax(logits, -1)).abs().max()), 4)},
        "temperature": temperature,
        "ece": round(expected_calibration_error(torch.softmax(logits, dim=-1), labels), 4),
        "ece_scaled": round(expected_calibration_error(torch.softmax(logits / temperature, dim=-1), labels), 4),
    }


def _cv_summary(header: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    def spread(values: list[float]) -> tuple[float, float]:
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    accuracy, accuracy_std = spread([r["accuracy"] for r in results])
    f1, f1_std = spread([r["macro_f1"] for r in results])
    with_extras = [r for r in results if "bf16" in r]
    extras: dict[str, Any] = {}
    if with_extras:
        extras = {
            "bf16_accuracy_mean": spread([r["bf16"]["accuracy"] for r in with_extras])[0],
            "bf16_macro_f1_mean": spread([r["bf16"]["macro_f1"] for r in with_extras])[0],
            "ece_mean": spread([r["ece"] for r in with_extras])[0],
            "ece_scaled_mean": spread([r["ece_scaled"] for r in with_extras])[0],
        }
    return {
        **header,
        "complete": len(results) == header["folds"],
        "accuracy_mean": accuracy, "accuracy_std": accuracy_std,
        "macro_f1_mean": f1, "macro_f1_std": f1_std,
        **extras,
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


def evaluate_scorer(scorer: Scorer, examples: Sequence[Example]) -> tuple[ClassificationReport, float]:
    """The classification report of the scorer's labels, and the expected calibration error of its probabilities."""
    scores = _scored(scorer, examples, "evaluating")
    labels = [e.label for e in examples]
    probabilities = torch.tensor([[s.p_negative, s.p_neutral, s.p_positive] for s in scores])
    return (classification_report(labels, [LABELS.index(s.label) for s in scores]),
            expected_calibration_error(probabilities, labels))


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
