"""Precision and recall of the risk-event tags (pipeline/scoring/risk_events.py) on a labelled sample.

The shipped sample (bench/data/risk_sample.csv) was written for the project: invented companies,
one line per headline, its true categories separated by '|', none for a benign headline. Pass
--data FILE to measure on your own labelled headlines (same columns: text,tags).

    python bench/risk_tags.py [--data FILE]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.scoring.risk_events import TAXONOMY, RiskTagger

SAMPLE = Path(__file__).with_name("data") / "risk_sample.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SAMPLE)
    arguments = parser.parse_args()
    with arguments.data.open(encoding="utf-8", newline="") as handle:
        rows = [(row["text"], {tag for tag in row["tags"].split("|") if tag}) for row in csv.DictReader(handle)]
    tagger = RiskTagger()
    true_positive, false_positive, false_negative = Counter[str](), Counter[str](), Counter[str]()
    any_hit = any_true = any_both = benign_flagged = benign = 0
    for text, truth in rows:
        found = set(tagger.tag(text).tags)
        for tag in found & truth:
            true_positive[tag] += 1
        for tag in found - truth:
            false_positive[tag] += 1
        for tag in truth - found:
            false_negative[tag] += 1
        any_hit += bool(found)
        any_true += bool(truth)
        any_both += bool(found) and bool(truth)
        if not truth:
            benign += 1
            benign_flagged += bool(found)
    print(f"{len(rows)} headlines from {arguments.data.name}: {any_true} with events, {benign} benign")
    print(f"{'category':<22}{'precision':>10}{'recall':>8}{'support':>9}")
    for category in TAXONOMY:
        tp, fp, fn = true_positive[category.name], false_positive[category.name], false_negative[category.name]
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        print(f"{category.name:<22}{precision:>10.2f}{recall:>8.2f}{tp + fn:>9}")
    tp, fp, fn = sum(true_positive.values()), sum(false_positive.values()), sum(false_negative.values())
    print(f"{'all tags (micro)':<22}{tp / (tp + fp):>10.2f}{tp / (tp + fn):>8.2f}{tp + fn:>9}")
    print(f"{'any event (article)':<22}{any_both / any_hit:>10.2f}{any_both / any_true:>8.2f}{any_true:>9}")
    print(f"benign headlines tagged: {benign_flagged} of {benign}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
