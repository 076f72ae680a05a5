"""Calibration: ECE measures the confidence gap, temperature scaling recovers a known temperature,
and a calibrated artifact loads with its temperature and a version of its own."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pipeline.scoring.artifact import load_model, save_artifact
from pipeline.scoring.calibration import expected_calibration_error, fit_temperature
from pipeline.scoring.training import build_trainable_model
from pipeline.scoring.training_config import TrainingConfig


def _sampled(logits: torch.Tensor, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(1).tolist()


def test_labels_drawn_from_the_probabilities_are_calibrated_and_overconfidence_is_not() -> None:
    logits = torch.randn(20_000, 3, generator=torch.Generator().manual_seed(0)) * 2.0
    labels = _sampled(logits, 1)
    assert expected_calibration_error(torch.softmax(logits, dim=-1), labels) < 0.02
    assert expected_calibration_error(torch.softmax(logits * 3.0, dim=-1), labels) > 0.1


def test_temperature_scaling_recovers_the_temperature_of_overconfident_logits() -> None:
    logits = torch.randn(20_000, 3, generator=torch.Generator().manual_seed(2)) * 2.0
    labels = _sampled(logits, 3)
    assert abs(fit_temperature(logits * 2.5, labels) - 2.5) < 0.15
    assert abs(fit_temperature(logits, labels) - 1.0) < 0.06


def test_a_calibrated_artifact_divides_its_logits_and_has_its_own_version(tmp_path: Path) -> None:
    torch.manual_seed(4)
    model = build_trainable_model(TrainingConfig(lora_rank=2, lora_alpha=4.0)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)
    plain = save_artifact(model, tmp_path / "plain", {"lora_rank": 2, "lora_alpha": 4.0, "max_length": 64})
    scaled = save_artifact(model, tmp_path / "scaled", {"lora_rank": 2, "lora_alpha": 4.0, "max_length": 64}, temperature=2.0)
    assert plain != scaled
    assert json.loads((tmp_path / "scaled" / "finsent_model.json").read_text())["temperature"] == 2.0
    cpu = torch.device("cpu")
    raw, calibrated = load_model(tmp_path / "plain", cpu), load_model(tmp_path / "scaled", cpu)
    tokens = raw.tokenizer(["Profit fell", "Sales rose"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.allclose(calibrated.logits(tokens["input_ids"], tokens["attention_mask"]),
                              raw.logits(tokens["input_ids"], tokens["attention_mask"]) / 2.0, atol=1e-5)
