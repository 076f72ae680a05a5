"""Classification reports: per-class precision/recall/F1, accuracy, macro-F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pipeline.scoring.labels import LABELS


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationReport:
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]
    """Rows are true labels, columns predictions, both in LABELS order."""
    count: int

    def to_json(self) -> dict[str, object]:
        return asdict(self) | {"labels": list(LABELS)}

    def render(self) -> str:
        lines = [f"{'':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
        for label, scores in self.per_class.items():
            lines.append(f"{label:<10}{scores.precision:>10.3f}{scores.recall:>10.3f}{scores.f1:>10.3f}{scores.support:>10}")
        lines.append(f"\naccuracy {self.accuracy:.4f}   macro-F1 {self.macro_f1:.4f}   ({self.count} examples)")
        lines.append("\nconfusion (rows true, columns predicted): " + " ".join(f"{label[:3]:>5}" for label in LABELS))
        for label, row in zip(LABELS, self.confusion, strict=True):
            lines.append(f"  {label:<10}" + "".join(f"{count:>6}" for count in row))
        return "\n".join(lines)


def classification_report(truth: Sequence[int], predicted: Sequence[int]) -> ClassificationReport:
    size = len(LABELS)
    confusion = [[0] * size for _ in range(size)]
    for actual, guess in zip(truth, predicted, strict=True):
        confusion[actual][guess] += 1
    per_class: dict[str, ClassScores] = {}
    for index, label in enumerate(LABELS):
        true_positive = confusion[index][index]
        predicted_count = sum(confusion[row][index] for row in range(size))
        support = sum(confusion[index])
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassScores(precision, recall, f1, support)
    correct = sum(confusion[i][i] for i in range(size))
    count = len(truth)
    return ClassificationReport(
        accuracy=correct / count if count else 0.0,
        macro_f1=sum(scores.f1 for scores in per_class.values()) / size,
        per_class=per_class,
        confusion=confusion,
        count=count,
    )
