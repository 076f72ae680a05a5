"""A finsent artifact on the installed all-mpnet-base-v2: saved small, named after its base, loaded back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.errors import UserError
from pipeline.scoring.artifact import MANIFEST, WEIGHTS, load_model, save_artifact
from pipeline.scoring.base_model import MPNET
from pipeline.scoring.lora import LoRALinear
from pipeline.scoring.model_choice import SHIPPED_MODELS
from pipeline.scoring.scorer import Scorer
from pipeline.scoring.training import build_trainable_model
from pipeline.scoring.training_config import TrainingConfig
from tests.support.mpnet import installed_mpnet

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return installed_mpnet()[0]


def test_an_mpnet_artifact_round_trips_and_stays_small(data_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = build_trainable_model(TrainingConfig(base="mpnet", lora_rank=16, lora_alpha=32.0, max_length=64), data_dir)
    adapted = [module for module in model.modules() if isinstance(module, LoRALinear)]
    assert len(adapted) == 12 * 6, "q, k, v, o and both feed-forward projections of every layer"
    for module in adapted:
        torch.nn.init.normal_(module.lora_b, std=0.02)
    torch.nn.init.normal_(model.head.weight, std=0.5)
    model.eval()
    version = save_artifact(model, tmp_path, {"lora_rank": 16, "lora_alpha": 32.0, "max_length": 64}, MPNET)
    assert version.startswith("finsent-mpnet-lora-")
    assert json.loads((tmp_path / MANIFEST).read_text())["base"] == MPNET.source
    assert (tmp_path / WEIGHTS).stat().st_size < 20_000_000, "the accurate model's adapter must fit the 20 MB budget"

    loaded = load_model(tmp_path, CPU, data_dir=data_dir)
    tokens = loaded.tokenizer(["Shares plunge after profit warning", "Board approves dividend"], padding=True,
                              return_tensors="pt")
    with torch.inference_mode():
        expected = model(tokens["input_ids"], tokens["attention_mask"])
        actual = loaded.logits(tokens["input_ids"], tokens["attention_mask"])
    assert torch.allclose(actual, expected, atol=1e-4)
    scored = Scorer(loaded, CPU).score_texts(["Acme files for bankruptcy"])
    assert scored[0].p_negative + scored[0].p_neutral + scored[0].p_positive == pytest.approx(1.0, abs=1e-5)


def test_the_shipped_accurate_model_loads_calibrated_and_refuses_int8(data_dir: Path) -> None:
    loaded = load_model(SHIPPED_MODELS["accurate"], CPU, data_dir=data_dir)
    assert loaded.version.startswith("finsent-mpnet-lora-") and loaded.base == "mpnet"
    assert loaded.temperature > 1.0, "fitted on the validation split: the raw model was over-confident"
    scores = Scorer(loaded, CPU).score_texts(["Operating profit fell sharply and the company issued a profit warning",
                                              "Net sales rose 25% to a record and the outlook was raised"])
    assert [score.label for score in scores] == ["negative", "positive"]
    with pytest.raises(UserError, match="int8 ruins the mpnet model"):
        Scorer(load_model(SHIPPED_MODELS["accurate"], CPU, data_dir=data_dir), CPU, quantize_int8=True)
