"""Distillation's contracts: the loss mixes label and teacher as documented, and unlabelled texts
are read from a text or headline column."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.errors import UserError
from pipeline.scoring.dataset import UNLABELLED, read_unlabelled_csv
from pipeline.scoring.training import batch_loss

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 0.0, 3.0]])
TEACHER = (0.7, 0.2, 0.1)


def _soft_ce(row: int, target: tuple[float, float, float]) -> torch.Tensor:
    return -(torch.tensor(target) * torch.log_softmax(LOGITS[row], dim=-1)).sum()


def test_without_a_teacher_the_loss_is_plain_cross_entropy() -> None:
    batch = [(None, 0, None), (None, 1, None), (None, 2, None)]
    assert torch.allclose(batch_loss(LOGITS, batch, 0.5), torch.nn.functional.cross_entropy(LOGITS, torch.tensor([0, 1, 2])))


def test_labelled_text_mixes_label_and_teacher_and_unlabelled_text_learns_from_the_teacher_alone() -> None:
    batch = [(None, 0, TEACHER), (None, UNLABELLED, TEACHER), (None, 2, None)]
    hard = torch.nn.functional.cross_entropy(LOGITS, torch.tensor([0, 0, 2]), reduction="none")
    expected = (0.25 * hard[0] + 0.75 * _soft_ce(0, TEACHER) + _soft_ce(1, TEACHER) + hard[2]) / 3
    assert torch.allclose(batch_loss(LOGITS, batch, 0.25), expected)


def test_hard_weight_one_ignores_the_teacher_on_labelled_text() -> None:
    batch = [(None, 0, TEACHER), (None, 2, (0.0, 0.0, 1.0))]
    logits = LOGITS[[0, 2]]
    assert torch.allclose(batch_loss(logits, batch, 1.0), torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])))


def test_unlabelled_texts_come_from_a_text_or_headline_column(tmp_path: Path) -> None:
    news = tmp_path / "news.csv"
    news.write_text("published_at,ticker,headline\n2020-01-01,ACME,Acme recalls 1m cars\n2020-01-02,ACME,\n"
                    "2020-01-02,ACMF,Acme  recalls 1m cars\n", encoding="utf-8")
    examples = read_unlabelled_csv(news)
    assert [(e.text, e.label, e.labelled) for e in examples] == [("Acme recalls 1m cars", UNLABELLED, False)], \
        "empty rows skipped, a headline repeated by another feed read once"
    other = tmp_path / "other.csv"
    other.write_text("title\nsomething\n", encoding="utf-8")
    with pytest.raises(UserError, match="text or headline column"):
        read_unlabelled_csv(other)
