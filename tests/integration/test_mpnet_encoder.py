"""The installed all-mpnet-base-v2 (`finsent model install`, which `make test` runs first) loads offline and encodes."""

from __future__ import annotations

import torch
from transformers import AutoModel, AutoTokenizer

from tests.support.mpnet import installed_mpnet


def test_the_installed_encoder_loads_offline_and_embeds_by_meaning() -> None:
    _, path = installed_mpnet()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    encoder = AutoModel.from_pretrained(path, local_files_only=True)
    sentences = ["The bank filed for bankruptcy protection", "The lender sought protection from its creditors",
                 "The team won the football match"]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert embeddings.shape == (3, 768)
    similar, unrelated = float(embeddings[0] @ embeddings[1]), float(embeddings[0] @ embeddings[2])
    assert similar > unrelated + 0.2, (similar, unrelated)
