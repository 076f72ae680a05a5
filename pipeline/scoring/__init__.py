"""Sentiment scoring: the model (shipped adapter on packaged MiniLM, or any local HF classifier),
the batched Scorer, training and evaluation."""

import os

# Nothing may be fetched from a hub at run time. huggingface_hub reads these once, when it is
# first imported, and every submodule here imports transformers: set them before any of that.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
