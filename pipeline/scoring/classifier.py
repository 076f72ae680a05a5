"""The project's classifier: a base encoder (pipeline/scoring/base_model.py), mean pooling, a linear head.

Mean pooling is how all-MiniLM-L6-v2 was trained to summarise a sentence, so the head starts
from a meaningful sentence vector rather than an untrained [CLS] pooler.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from pipeline.scoring.layer_cache import run_upper_layers


class MeanPoolClassifier(nn.Module):
    def __init__(self, encoder: PreTrainedModel, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.classify(hidden, attention_mask)

    def forward_from_layer(self, states: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
        """Logits from the states entering layer `start` (cached frozen layers, pipeline/scoring/layer_cache.py)."""
        return self.classify(run_upper_layers(self.encoder, states, attention_mask, start), attention_mask)

    def classify(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(self.dropout(pooled))
