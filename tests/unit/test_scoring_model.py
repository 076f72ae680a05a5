"""Model plumbing on the real packaged MiniLM: LoRA merging, the artifact round trip, the Scorer's
chunking and batching rules, label mapping and the classification report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.errors import UserError
from pipeline.scoring.artifact import _label_order, load_model, save_artifact
from pipeline.scoring.evaluation import classification_report
from pipeline.scoring.lora import LoRALinear, add_lora, merge_lora
from pipeline.scoring.scorer import Scorer
from pipeline.scoring.training import build_trainable_model
from pipeline.scoring.training_config import TrainingConfig

CPU = torch.device("cpu")


def test_merged_lora_computes_what_the_adapter_computed() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    add_lora(model, r"^(0|2)$", rank=2, alpha=4.0, dropout=0.0)
    for module in model.modules():
        if isinstance(module, LoRALinear):
            torch.nn.init.normal_(module.lora_b)
    inputs = torch.randn(5, 8)
    expected = model(inputs)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert torch.allclose(model(inputs), expected, atol=1e-5)


@pytest.fixture(scope="module")
def random_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A finsent artifact with non-trivial random adapters and head, plus the in-memory model it came from."""
    torch.manual_seed(1)
    config = TrainingConfig(lora_rank=4, lora_alpha=8.0, max_length=64)
    model = build_trainable_model(config)
    for module in model.modules():
        if isinstance(module, LoRALinear):
            torch.nn.init.normal_(module.lora_b, std=0.02)
    torch.nn.init.normal_(model.head.weight, std=0.5)
    model.eval()
    directory = tmp_path_factory.mktemp("artifact")
    save_artifact(model, directory, {"lora_rank": 4, "lora_alpha": 8.0, "max_length": 64})
    return directory, model


def test_artifact_round_trip_reproduces_the_trained_model(random_artifact: tuple[Path, torch.nn.Module]) -> None:
    directory, original = random_artifact
    loaded = load_model(directory, CPU)
    tokens = loaded.tokenizer(["Shares plunge after profit warning", "Board approves dividend"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = original(tokens["input_ids"], tokens["attention_mask"])
        actual = loaded.logits(tokens["input_ids"], tokens["attention_mask"])
    assert torch.allclose(actual, expected, atol=1e-4)
    assert loaded.version.startswith("finsent-minilm-lora-")
    assert (directory / "adapter.safetensors").stat().st_size < 2_000_000


def test_batched_scoring_equals_one_by_one(random_artifact: tuple[Path, torch.nn.Module]) -> None:
    scorer = Scorer(load_model(random_artifact[0], CPU), CPU, token_budget=256)
    texts = ["Profit falls", "Company X reports record quarterly revenue and raises its outlook for the year", "Neutral note", "a " * 40]
    together = scorer.score_texts(texts)
    alone = [scorer.score_texts([text])[0] for text in texts]
    for batched, single in zip(together, alone, strict=True):
        assert batched.p_negative == pytest.approx(single.p_negative, abs=1e-4)
        assert batched.p_positive == pytest.approx(single.p_positive, abs=1e-4)
        assert batched.p_negative + batched.p_neutral + batched.p_positive == pytest.approx(1.0, abs=1e-5)


def test_long_text_is_chunked_and_averaged_by_token_count(random_artifact: tuple[Path, torch.nn.Module]) -> None:
    scorer = Scorer(load_model(random_artifact[0], CPU), CPU)
    long_text = " ".join(f"sentence {i} about revenue growth and costs." for i in range(60))
    (score,) = scorer.score_texts([long_text])
    assert score.chunks > 1, "a text longer than the window must be split, never cut"
    chunks, owners = scorer._chunk([long_text])
    assert len(chunks) == score.chunks and set(owners) == {0}
    probabilities = scorer._probabilities(chunks)
    weights = torch.tensor([len(chunk) for chunk in chunks], dtype=torch.float32)
    expected = (probabilities * weights.unsqueeze(1)).sum(0) / weights.sum()
    assert score.p_negative == pytest.approx(float(expected[0]), abs=1e-5)
    assert score.p_positive == pytest.approx(float(expected[2]), abs=1e-5)
    (short,) = scorer.score_texts(["Short headline"])
    assert short.chunks == 1


def test_hugging_face_label_names_map_onto_ours() -> None:
    assert _label_order(["positive", "negative", "neutral"], Path("m")) == (1, 2, 0)
    assert _label_order(["NEG", "NEU", "POS"], Path("m")) == (0, 1, 2)
    with pytest.raises(UserError, match="FINSENT_MODEL_LABELS"):
        _label_order(["LABEL_0", "LABEL_1", "LABEL_2"], Path("m"))


def test_missing_model_directory_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="point FINSENT_MODEL at a model directory"):
        load_model(tmp_path, CPU)


def test_classification_report_on_hand_counted_predictions() -> None:
    truth = [0, 0, 1, 1, 1, 2, 2, 2]
    predicted = [0, 1, 1, 1, 2, 2, 2, 0]
    report = classification_report(truth, predicted)
    assert report.confusion == [[1, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert report.accuracy == pytest.approx(5 / 8)
    assert report.per_class["negative"].precision == pytest.approx(1 / 2)
    assert report.per_class["neutral"].recall == pytest.approx(2 / 3)
    assert report.per_class["positive"].f1 == pytest.approx(2 / 3)
    assert report.macro_f1 == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)


def test_padded_batches_hold_each_row_then_padding(random_artifact: tuple[Path, torch.nn.Module]) -> None:
    scorer = Scorer(load_model(random_artifact[0], CPU), CPU)
    rows = [[5, 6, 7], [8], [9, 10]]
    ids, mask = scorer._padded(rows)
    pad = scorer._pad_id
    assert ids.tolist() == [[5, 6, 7], [8, pad, pad], [9, 10, pad]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert ids.dtype == mask.dtype == torch.long


def test_scoring_in_two_halves_equals_scoring_at_once(random_artifact: tuple[Path, torch.nn.Module]) -> None:
    """The worker tokenizes in one thread and runs the model in another: the same result."""
    scorer = Scorer(load_model(random_artifact[0], CPU), CPU)
    texts = ["Profit falls", " ".join(["costs rise"] * 80), "Record revenue"]
    assert scorer.score_encoded(scorer.encode(texts)) == scorer.score_texts(texts)
    assert scorer.score_encoded(scorer.encode([])) == []


def test_the_cuda_token_budget_grows_with_free_memory_within_bounds() -> None:
    from pipeline.scoring.scorer import CUDA_MAX_TOKEN_BUDGET, DEFAULT_TOKEN_BUDGET, cuda_token_budget

    gib = 1 << 30
    small, large = cuda_token_budget(2 * gib, 768, 12, 512), cuda_token_budget(16 * gib, 768, 12, 512)
    assert DEFAULT_TOKEN_BUDGET < small < large <= CUDA_MAX_TOKEN_BUDGET
    # 16 GiB free, half of it at 2 * (12 * 768 + 2 * 12 * 512) bytes a token:
    assert large == int(8 * gib / (2 * (12 * 768 + 2 * 12 * 512)))
    assert cuda_token_budget(100 * gib, 768, 12, 512) == CUDA_MAX_TOKEN_BUDGET
    assert cuda_token_budget(1 << 20, 768, 12, 512) == DEFAULT_TOKEN_BUDGET


def test_passes_are_planned_with_the_tokens_and_each_one_is_timed(random_artifact: tuple[Path, torch.nn.Module]) -> None:
    """The plan travels in EncodedTexts (made in the worker's prepare thread); the model's thread
    only runs it and times each pass into the measured forward cost."""
    scorer = Scorer(load_model(random_artifact[0], CPU), CPU)
    timed: list[tuple[int, float]] = []
    scorer.forward_cost.observe = lambda tokens, seconds: timed.append((tokens, seconds))  # type: ignore[method-assign]
    texts = ["Profit falls"] * 12 + [" ".join(["costs rise"] * 40)]
    encoded = scorer.encode(texts)
    assert sorted(index for batch in encoded.passes for index in batch) == list(range(len(encoded.chunks)))
    assert len(encoded.passes) == 2, "one long window must not pad twelve headlines to its length"
    scorer.score_encoded(encoded)
    widths = [max(len(encoded.chunks[index]) for index in batch) for batch in encoded.passes]
    assert [tokens for tokens, _ in timed] == [len(batch) * width for batch, width in zip(encoded.passes, widths, strict=True)]
    assert all(seconds > 0 for _, seconds in timed)
