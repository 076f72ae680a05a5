"""The number format the model runs in: the choice rules, and bf16 agreeing with fp32 on the shipped model."""

from __future__ import annotations

import pytest
import torch

from pipeline.scoring import precision
from pipeline.scoring.precision import resolve_precision
from pipeline.scoring.scorer import Scorer

CPU = torch.device("cpu")
HEADLINES = [
    "Acme Corp shares plunge after it cuts its full-year profit forecast",
    "Regulator fines Globex $2 billion over accounting irregularities",
    "Initech reports record quarterly revenue, raises dividend",
    "Umbrella Group to hold annual general meeting on May 4",
    "Hooli recalls 400,000 vehicles over faulty brakes",
    "Stark Industries wins $5 billion defence contract",
    "Wayne Enterprises names new chief financial officer",
    "Soylent files for bankruptcy protection after lenders pull credit lines",
]


@pytest.mark.parametrize("native", [True, False])
def test_auto_takes_bf16_on_a_cpu_only_where_it_is_native(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU) == (torch.bfloat16 if native else None)
    assert resolve_precision("bf16", CPU) == torch.bfloat16, "asked for, bf16 runs (emulated where not native)"
    assert resolve_precision("fp32", CPU) is None


def test_int8_never_combines_with_bf16() -> None:
    assert resolve_precision("auto", CPU, quantized=True) is None
    assert resolve_precision("bf16", CPU, quantized=True) is None


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one of auto, fp32, bf16"):
        resolve_precision("fp8", CPU)


def test_bf16_gives_the_shipped_models_labels_within_a_hundredth() -> None:
    fp32 = Scorer.load(None, "cpu", precision="fp32", model="fast")
    bf16 = Scorer.load(None, "cpu", precision="bf16", model="fast")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert fp32.version == bf16.version, "the precision is a runtime choice, like the GPU's: scores stay one model's"
    exact, fast = fp32.score_texts(HEADLINES), bf16.score_texts(HEADLINES)
    assert [score.label for score in fast] == [score.label for score in exact]
    worst = max(abs(a - b) for x, y in zip(exact, fast, strict=True)
                for a, b in zip((x.p_negative, x.p_neutral, x.p_positive), (y.p_negative, y.p_neutral, y.p_positive), strict=True))
    assert worst <= 0.03, worst
