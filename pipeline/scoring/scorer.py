"""Batched sentiment scoring of articles.

Why it is faster than `pipeline("text-classification")` in a loop: texts are tokenized in one
call, cut into model-sized chunks, sorted by length and cut into forward passes under a token
budget wherever the measured cost of a pass says padding would cost more (pipeline/scoring/packing.py);
inference runs under `torch.inference_mode`, with bf16 autocast where the hardware has it
(pipeline/scoring/precision.py) and optional dynamic int8 on CPU.

Long text is never silently cut. Headline and body are tokenized together and split into
consecutive windows of at most the model's length (minus its special tokens), overlapping by
OVERLAP_TOKENS; the article's probabilities are the mean of its windows' probabilities weighted
by each window's token count. A headline-only article is one window.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from consumers.schema import NewsItem
from pipeline.errors import UserError
from pipeline.scoring.artifact import LoadedModel, load_model
from pipeline.scoring.labels import LABELS, NEGATIVE, NEUTRAL, POSITIVE
from pipeline.scoring.lanes import ModelLanes
from pipeline.scoring.model_choice import ModelChoice, choose_model
from pipeline.scoring.packing import ForwardCost, MeasuredForwardCost, plan_passes
from pipeline.scoring.precision import autocast, resolve_precision

OVERLAP_TOKENS = 16
INT8_BREAKS = {"mpnet": "accuracy on its PhraseBank training sentences 0.96 -> 0.64 in bench/scoring.py"}
"""Bases whose dynamic int8 quantization was measured to destroy accuracy, with the measurement."""
DEFAULT_TOKEN_BUDGET = 4096
DEFAULT_MAX_BATCH = 128
CUDA_MEMORY_SHARE = 0.5
"""Share of the GPU's free memory the scorer's activations may take (the rest: other processes, fragmentation)."""
CUDA_MAX_TOKEN_BUDGET = 1 << 19
CUDA_ROWS_PER_TOKEN = 1 / 16
"""On CUDA a micro-batch holds up to budget / 16 rows: full GPUs on headlines, not thousands of tiny rows."""
PRIOR_COSTS = {"cpu": ForwardCost(fixed_s=0.010, per_token_s=100e-6), "cuda": ForwardCost(fixed_s=0.003, per_token_s=0.3e-6)}
"""Forward costs assumed until the scorer has timed its own passes (pipeline/scoring/packing.py).
CPU: the fast model in bf16 on 2 cores, measured (11 ms for 1 row, 113 us per further token);
CUDA: a few milliseconds of kernel launches against well under a microsecond per token, so
that passes are filled rather than cut."""


@dataclass(frozen=True)
class ArticleScore:
    p_negative: float
    p_neutral: float
    p_positive: float
    chunks: int

    @property
    def sentiment(self) -> float:
        return self.p_positive - self.p_negative

    @property
    def label(self) -> str:
        probabilities = (self.p_negative, self.p_neutral, self.p_positive)
        return LABELS[max(range(3), key=probabilities.__getitem__)]


@dataclass(frozen=True)
class EncodedTexts:
    """Texts cut into model windows: `chunks[i]` (token ids with special tokens) belongs to text
    `owners[i]`; `passes` lists the chunk indices of each forward pass, planned with the tokens."""

    texts: int
    chunks: list[list[int]]
    owners: list[int]
    passes: list[list[int]]


def cuda_token_budget(free_bytes: int, hidden_size: int, heads: int, max_length: int) -> int:
    """Tokens per forward pass that fit in CUDA_MEMORY_SHARE of `free_bytes`, from what one token
    holds at the peak of an inference layer in 16-bit: about 12 hidden-sized activations (input,
    Q, K, V, attention output, the 4x feed-forward, residuals) and its row of attention scores per
    head (scores and softmax) over the longest window."""
    per_token = 2 * (12 * hidden_size + 2 * heads * max_length)
    return max(DEFAULT_TOKEN_BUDGET, min(CUDA_MAX_TOKEN_BUDGET, int(free_bytes * CUDA_MEMORY_SHARE / per_token)))


def _encoder_shape(module: torch.nn.Module) -> tuple[int, int]:
    """Hidden size and attention heads of the first submodule with a transformers config."""
    for child in module.modules():
        config = getattr(child, "config", None)
        if config is not None and hasattr(config, "hidden_size"):
            return int(config.hidden_size), int(getattr(config, "num_attention_heads", 12))
    return 768, 12


def choose_device(setting: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; anything else is taken as given."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def _special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a single text ([CLS] / [SEP], <s> / </s>, ...)."""
    bare = tokenizer("finance", add_special_tokens=False)["input_ids"]
    full = tokenizer("finance", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    raise ValueError("cannot locate the text between the tokenizer's special tokens")


class Scorer:
    def __init__(
        self,
        model: LoadedModel,
        device: torch.device,
        *,
        token_budget: int | None = DEFAULT_TOKEN_BUDGET,
        max_batch: int | None = None,
        quantize_int8: bool = False,
        precision: str = "fp32",
    ) -> None:
        """`token_budget` None sizes the micro-batches from the GPU's free memory on CUDA
        (cuda_token_budget), else DEFAULT_TOKEN_BUDGET."""
        self.model = model
        self.device = device
        if token_budget is None and device.type == "cuda":
            free_bytes, _ = torch.cuda.mem_get_info(device)
            token_budget = cuda_token_budget(free_bytes, *_encoder_shape(model.module), model.max_length)
        self.token_budget = token_budget or DEFAULT_TOKEN_BUDGET
        self.max_batch = max_batch or (
            int(self.token_budget * CUDA_ROWS_PER_TOKEN) if device.type == "cuda" else DEFAULT_MAX_BATCH)
        self.forward_cost = MeasuredForwardCost(PRIOR_COSTS.get(device.type, PRIOR_COSTS["cpu"]))
        """What a pass costs here, from the passes run so far: it decides where passes are cut."""
        self._pin_memory = device.type == "cuda"
        """Page-locked host tensors: the copy to the GPU runs asynchronously, overlapping the previous batch."""
        if quantize_int8:
            if device.type != "cpu":
                raise ValueError("dynamic int8 quantization runs on the CPU only")
            if model.base in INT8_BREAKS:
                raise UserError(f"FINSENT_MODEL_QUANTIZE=int8 ruins the {model.base} model ({INT8_BREAKS[model.base]}): "
                                "drop int8 (bf16 is faster where the CPU has AMX or AVX512-BF16), or use FINSENT_MODEL=fast")
            model.module = torch.ao.quantization.quantize_dynamic(
                model.module, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
            )
        self.quantized = quantize_int8
        self.autocast_dtype = resolve_precision(precision, device, quantized=quantize_int8)
        self._prefix, self._suffix = _special_tokens(model.tokenizer)
        self._window = model.max_length - len(self._prefix) - len(self._suffix)
        self._pad_id = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
        self.choice: ModelChoice | None = None
        """How Scorer.load picked the model (None when built from a LoadedModel)."""
        self.lanes = ModelLanes()
        """How many batches may be scored at once, each in a thread of its own (pipeline/scoring/lanes.py)."""

    @classmethod
    def load(
        cls,
        model_path: Path | None = None,
        device: str = "auto",
        *,
        threads: int | None = None,
        quantize_int8: bool = False,
        label_names: Sequence[str] | None = None,
        token_budget: int | None = None,
        precision: str = "auto",
        data_dir: Path | None = None,
        model: str = "auto",
        lanes: int = 0,
    ) -> Scorer:
        """`model` is FINSENT_MODEL (fast, accurate, auto or a directory) and `model_path` FINSENT_MODEL_PATH
        (pipeline/scoring/model_choice.py); `data_dir` is where an installed base encoder lives;
        `lanes` is FINSENT_MODEL_LANES, `threads` FINSENT_TORCH_THREADS (pipeline/scoring/lanes.py)."""
        chosen = choose_device(device)
        if chosen.type == "cpu":
            torch.set_num_threads(threads or os.cpu_count() or 1)
        choice = choose_model(model, model_path, chosen.type, data_dir, int8=quantize_int8)
        scorer = cls(load_model(choice.directory, chosen, label_names, data_dir), chosen, quantize_int8=quantize_int8,
                     token_budget=token_budget, precision=precision)
        scorer.choice = choice
        scorer.lanes = ModelLanes.for_device(chosen, threads, lanes)
        return scorer

    @property
    def precision(self) -> str:
        """What the model runs in: fp32, int8 (dynamic, fp32 activations), bf16 or fp16."""
        if self.quantized:
            return "int8"
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    @property
    def version(self) -> str:
        return self.model.version + ("+int8" if self.quantized else "")

    def score_items(self, items: Sequence[NewsItem]) -> list[ArticleScore]:
        return self.score_texts([item.text for item in items])

    def score_texts(self, texts: Sequence[str]) -> list[ArticleScore]:
        return self.score_encoded(self.encode(texts))

    def encode(self, texts: Sequence[str]) -> EncodedTexts:
        """The tokenizer's half of scoring, kept apart so that it can run in another thread while
        the model scores the previous batch (the worker does that)."""
        if not texts:
            return EncodedTexts(0, [], [], [])
        chunks, owners = self._chunk(texts)
        return EncodedTexts(len(texts), chunks, owners, self._plan(chunks))

    def score_encoded(self, encoded: EncodedTexts) -> list[ArticleScore]:
        """The model's half: every window through the model, then each text's windows averaged."""
        if not encoded.texts:
            return []
        chunks, owners = encoded.chunks, encoded.owners
        probabilities = self._probabilities(chunks, encoded.passes)
        totals = torch.zeros((encoded.texts, len(LABELS)), dtype=torch.float64)
        weights = torch.zeros(encoded.texts, dtype=torch.float64)
        counts = [0] * encoded.texts
        for chunk, owner, row in zip(chunks, owners, probabilities, strict=True):
            totals[owner] += row.double() * len(chunk)
            weights[owner] += len(chunk)
            counts[owner] += 1
        averaged = (totals / weights.clamp(min=1).unsqueeze(1)).tolist()
        return [
            ArticleScore(p[NEGATIVE], p[NEUTRAL], p[POSITIVE], count) for p, count in zip(averaged, counts, strict=True)
        ]

    def _chunk(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """Token windows with special tokens added, and the text index each belongs to."""
        tokenizer = self.model.tokenizer
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        chunks: list[list[int]] = []
        owners: list[int] = []
        step = max(1, self._window - OVERLAP_TOKENS)
        for owner, ids in enumerate(encoded):
            starts = range(0, max(1, len(ids) - OVERLAP_TOKENS), step) if len(ids) > self._window else [0]
            for start in starts:
                chunks.append(self._prefix + ids[start:start + self._window] + self._suffix)
                owners.append(owner)
        return chunks, owners

    @torch.inference_mode()
    def _probabilities(self, chunks: list[list[int]], passes: list[list[int]] | None = None) -> torch.Tensor:
        """Each window's label probabilities, pass by pass (`passes` None: planned here); every
        pass is timed into `forward_cost` (the copy back to the CPU waits for the device)."""
        result = torch.empty((len(chunks), len(LABELS)), dtype=torch.float32)
        for batch in self._plan(chunks) if passes is None else passes:
            started = time.perf_counter()
            input_ids, attention_mask = self._padded([chunks[index] for index in batch])
            if self._pin_memory:
                input_ids, attention_mask = input_ids.pin_memory(), attention_mask.pin_memory()
            input_ids = input_ids.to(self.device, non_blocking=True)
            attention_mask = attention_mask.to(self.device, non_blocking=True)
            with self._autocast():
                logits = self.model.logits(input_ids, attention_mask)
            result[batch] = torch.softmax(logits.float(), dim=-1).cpu()
            self.forward_cost.observe(input_ids.numel(), time.perf_counter() - started)
        return result

    def _padded(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids and their mask, filled in one vectorised step (a GPU batch has thousands of rows)."""
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        mask = np.arange(int(lengths.max())) < lengths[:, None]
        ids = np.full(mask.shape, self._pad_id, dtype=np.int64)
        ids[mask] = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
        return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))

    def _plan(self, chunks: list[list[int]]) -> list[list[int]]:
        """Chunk indices per forward pass: length-sorted, cut where it saves time (packing.py)."""
        order = sorted(range(len(chunks)), key=lambda index: len(chunks[index]))
        lengths = [len(chunks[index]) for index in order]
        spans = plan_passes(lengths, self.token_budget, self.max_batch, self.forward_cost.current)
        return [[order[position] for position in span] for span in spans]

    def _autocast(self) -> torch.autocast:
        return autocast(self.device.type, self.autocast_dtype)
