"""Labelled sentences for training and evaluation: CSV files with columns text,label."""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.scoring.labels import LABELS, canonical_label


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    source: str
    """File the example came from; splits are stratified by source and label."""
    soft: tuple[float, float, float] | None = None
    """A teacher model's probabilities (LABELS order), for distillation; None without a teacher."""

    @property
    def labelled(self) -> bool:
        """Unlabelled headlines (label UNLABELLED) train on their teacher's probabilities only."""
        return self.label != UNLABELLED


UNLABELLED = -1


def read_unlabelled_csv(path: Path) -> list[Example]:
    """Texts without labels, for distillation: a CSV with a `text` or `headline` column, each distinct
    text once (a news file repeats headlines across feeds), in file order."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{path}: not a readable file; expected a CSV with a text or headline column") from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            column = next((name for name in ("text", "headline") if name in (reader.fieldnames or [])), None)
            if column is None:
                raise UserError(f"{path}: expected a CSV header with a text or headline column (found {reader.fieldnames})")
            texts = [(row.get(column) or "").strip() for row in reader]
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text; save it as UTF-8 CSV") from None
    examples = deduplicate([Example(text, UNLABELLED, path.name) for text in texts if text])
    if not examples:
        raise UserError(f"{path}: no texts")
    return examples


def read_labelled_csv(path: Path) -> list[Example]:
    """Read text,label rows; a bad file or row fails with the file, line and the fix."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a CSV file with columns text,label") from None
    examples: list[Example] = []
    with handle:
        reader = csv.DictReader(handle)
        try:
            fields = reader.fieldnames
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text; save it as UTF-8 CSV") from None
        if fields is None or not {"text", "label"} <= set(fields):
            raise UserError(f"{path}: expected a CSV header with columns text,label (found {fields})")
        try:
            for row in reader:
                label = canonical_label(row.get("label") or "")
                text = (row.get("text") or "").strip()
                if label is None:
                    raise UserError(
                        f"{path} line {reader.line_num}: label {row.get('label')!r} is not one of {', '.join(LABELS)}"
                    )
                if text:
                    examples.append(Example(text, LABELS.index(label), path.name))
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text; save it as UTF-8 CSV") from None
    if not examples:
        raise UserError(f"{path}: no labelled rows")
    return examples


def deduplicate(examples: Sequence[Example]) -> list[Example]:
    """Drop repeated texts (keeping the first label seen) so a sentence never sits on both sides of a split."""
    seen: set[str] = set()
    unique: list[Example] = []
    for example in examples:
        key = " ".join(example.text.lower().split())
        if key not in seen:
            seen.add(key)
            unique.append(example)
    return unique


def _strata(examples: Sequence[Example]) -> dict[tuple[str, int], list[Example]]:
    groups: dict[tuple[str, int], list[Example]] = defaultdict(list)
    for example in examples:
        groups[(example.source, example.label)].append(example)
    return groups


def stratified_split(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(rest, held_out) with `fraction` of every (source, label) group held out."""
    rng = random.Random(seed)
    rest: list[Example] = []
    held_out: list[Example] = []
    for key in sorted(_strata(examples)):
        group = list(_strata(examples)[key])
        rng.shuffle(group)
        cut = round(len(group) * fraction)
        held_out.extend(group[:cut])
        rest.extend(group[cut:])
    rng.shuffle(rest)
    return rest, held_out


def stratified_folds(examples: Sequence[Example], folds: int, seed: int) -> list[list[Example]]:
    """Partition into `folds` parts with the same label mix in each."""
    rng = random.Random(seed)
    parts: list[list[Example]] = [[] for _ in range(folds)]
    offset = 0
    groups = _strata(examples)
    for key in sorted(groups):
        group = list(groups[key])
        rng.shuffle(group)
        for index, example in enumerate(group):
            parts[(index + offset) % folds].append(example)
        offset += len(group)
    return parts
