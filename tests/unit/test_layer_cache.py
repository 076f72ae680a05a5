"""The frozen-layer cache on the real packaged MiniLM: training from cached states computes what
the full model computes, and an interrupted training run resumes to the same weights."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from pipeline.scoring.base_model import MINILM
from pipeline.scoring.dataset import Example
from pipeline.scoring.layer_cache import LowerStates, pad_states, run_upper_layers
from pipeline.scoring.lora import LoRALinear
from pipeline.scoring.training import build_trainable_model, train_model
from pipeline.scoring.training_config import TrainingConfig

TEXTS = ["Profit fell sharply in the third quarter.", "Shares rose", "The regulator fined the bank for misreporting."]


@pytest.mark.parametrize("start", [1, 3, 5])
def test_upper_layers_on_cached_states_equal_the_full_forward_pass(start: int) -> None:
    encoder = AutoModel.from_pretrained(MINILM.directory(), local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(MINILM.directory(), local_files_only=True)
    tokens = tokenizer(TEXTS, padding=True, return_tensors="pt")
    cache = LowerStates(encoder, start)
    cache.add(tokenizer, TEXTS, 64)
    states, mask = pad_states([cache[text] for text in TEXTS])
    with torch.no_grad():
        full = encoder(**tokens).last_hidden_state
        upper = run_upper_layers(encoder, states, mask, start)
    assert torch.equal(mask, tokens["attention_mask"])
    assert torch.allclose(upper * mask.unsqueeze(-1), full * mask.unsqueeze(-1), atol=1e-5)


def test_classifier_from_a_layer_equals_the_classifier_on_tokens() -> None:
    torch.manual_seed(3)
    model = build_trainable_model(TrainingConfig(frozen_layers=4, lora_rank=4, lora_alpha=8.0)).eval()
    for module in model.modules():
        if isinstance(module, LoRALinear):
            torch.nn.init.normal_(module.lora_b, std=0.05)
    tokenizer = AutoTokenizer.from_pretrained(MINILM.directory(), local_files_only=True)
    tokens = tokenizer(TEXTS, padding=True, return_tensors="pt")
    cache = LowerStates(model.encoder, 4)
    cache.add(tokenizer, TEXTS, 64)
    states, mask = pad_states([cache[text] for text in TEXTS])
    with torch.no_grad():
        assert torch.allclose(model.forward_from_layer(states, mask, 4), model(tokens["input_ids"], tokens["attention_mask"]), atol=1e-5)


def test_frozen_layers_get_no_adapters_and_no_trainable_tensors() -> None:
    model = build_trainable_model(TrainingConfig(frozen_layers=4))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".layer.4." in name or ".layer.5." in name or name.startswith("head.") for name in trainable)
    adapted = [name for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    assert len(adapted) == 12 and all(".layer.4." in name or ".layer.5." in name for name in adapted)
    with pytest.raises(ValueError, match="frozen_layers 6"):
        build_trainable_model(TrainingConfig(frozen_layers=6))


def _examples(count: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    words = {0: ["fell", "plunged", "cut", "lost"], 1: ["met", "said", "moved", "held"], 2: ["rose", "jumped", "raised", "gained"]}
    return [Example(f"Company {i} {rng.choice(words[i % 3])} {rng.choice(['sales', 'profit', 'its outlook'])}", i % 3, "small.csv")
            for i in range(count)]


class _Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path: Path) -> None:
    config = TrainingConfig(frozen_layers=4, epochs=3, patience=3, precision="fp32", lora_rank=4, lora_alpha=8.0)
    train, validation = _examples(48, 1), _examples(12, 2)
    uninterrupted = train_model(config, train, validation)

    checkpoint = tmp_path / "checkpoint.pt"

    def stop_in_epoch_2(stage: str, done: int, _total: int) -> None:
        if stage.startswith("epoch 2/") and done == 1:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_model(config, train, validation, stop_in_epoch_2, checkpoint=checkpoint)
    assert checkpoint.exists()
    stages: list[str] = []
    resumed = train_model(config, train, validation, lambda stage, _d, _t: stages.append(stage), checkpoint=checkpoint)
    assert not any(stage.startswith("epoch 1/") for stage in stages), "the finished epoch is not run again"
    assert [r.epoch for r in resumed.history] == [r.epoch for r in uninterrupted.history]
    expected = dict(uninterrupted.model.named_parameters())
    for name, parameter in resumed.model.named_parameters():
        if parameter.requires_grad:
            assert torch.allclose(parameter, expected[name], atol=1e-6), name


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = TrainingConfig(frozen_layers=5, epochs=1, precision="fp32", lora_rank=2, lora_alpha=4.0)
    checkpoint = tmp_path / "checkpoint.pt"
    train_model(config, _examples(24, 1), _examples(6, 2), checkpoint=checkpoint)
    train_model(config, _examples(24, 3), _examples(6, 2), checkpoint=checkpoint)
    assert "ignoring checkpoint" in capsys.readouterr().err
