"""Frozen lower layers computed once: the states entering layer K, kept per text.

Training only the top layers of a 12-layer encoder (and LoRA there) leaves layers 0..K-1 and
the embeddings unchanged, so their output for a sentence is the same in every epoch and every
fold. Running them once and training from the cached states is what makes an mpnet fold take
minutes instead of half an hour on two CPU cores. `run_upper_layers` is the other half: the
encoder's own layers K.. on those states, with the encoder's own attention mask (and MPNet's
relative-position bias), so the result equals a full forward pass (tests/unit/test_layer_cache.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.masking_utils import create_bidirectional_mask

from pipeline.scoring.precision import autocast

Progress = Callable[[str, int, int], None]


def encoder_layers(encoder: PreTrainedModel) -> nn.ModuleList:
    """The stack of transformer layers (`encoder.layer` in BERT and MPNet)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(encoder).__name__} has no encoder.layer stack to split")
    return layers


def layer_count(encoder: PreTrainedModel) -> int:
    return len(encoder_layers(encoder))


def run_upper_layers(encoder: PreTrainedModel, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
    """Layers `start`.. of a BERT-style or MPNet encoder on the states entering layer `start`."""
    mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=hidden, attention_mask=attention_mask)
    # MPNet adds one relative-position bias, computed from the sequence shape, to every layer's attention.
    bias_of = getattr(encoder.encoder, "compute_position_bias", None)
    position_bias = bias_of(hidden) if bias_of is not None else None
    for layer in encoder_layers(encoder)[start:]:
        output = layer(hidden, mask, position_bias) if position_bias is not None else layer(hidden, mask)
        hidden = output[0] if isinstance(output, tuple) else output
    return hidden


class LowerStates:
    """States entering layer `start` for each text, computed without gradients in eval mode.

    Stored unpadded (tokens x hidden) in `dtype`; bf16 halves the memory (about 0.7 GB for
    14,000 sentences on mpnet) and matches the bf16 autocast the upper layers train in.
    """

    def __init__(self, encoder: PreTrainedModel, start: int, dtype: torch.dtype = torch.float32) -> None:
        if not 0 < start < layer_count(encoder):
            raise ValueError(f"cannot cache below layer {start} of a {layer_count(encoder)}-layer encoder")
        self.encoder = encoder
        self.start = start
        self.dtype = dtype
        self._states: dict[str, torch.Tensor] = {}

    def __getitem__(self, text: str) -> torch.Tensor:
        return self._states[text]

    def __len__(self) -> int:
        return len(self._states)

    @torch.inference_mode()
    def add(self, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
            progress: Progress | None = None, batch_size: int = 64) -> None:
        """Compute the states of the texts not cached yet (length-sorted batches, little padding)."""
        # Sorted by length, then text: a set's order changes with the hash seed, and batch composition
        # changes bf16 rounding, so an unsorted tie would make training differ from run to run.
        missing = sorted({text for text in texts if text not in self._states}, key=lambda text: (len(text), text))
        if not missing:
            return
        was_training = self.encoder.training
        self.encoder.eval()
        cast = autocast("cpu", torch.bfloat16 if self.dtype == torch.bfloat16 else None)
        batches = [missing[i:i + batch_size] for i in range(0, len(missing), batch_size)]
        for done, batch in enumerate(batches, start=1):
            tokens = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            with cast:
                output = self.encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                      output_hidden_states=True)
            states = output.hidden_states[self.start]
            for row, text in enumerate(batch):
                length = int(tokens["attention_mask"][row].sum())
                self._states[text] = states[row, :length].to(self.dtype).clone()
            if progress:
                progress(f"caching layers below {self.start}", done, len(batches))
        self.encoder.train(was_training)


def pad_states(states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch x longest x hidden) zero-padded states and their 0/1 attention mask."""
    width = max(state.shape[0] for state in states)
    hidden = torch.zeros((len(states), width, states[0].shape[1]), dtype=states[0].dtype)
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for row, state in enumerate(states):
        hidden[row, : state.shape[0]] = state
        mask[row, : state.shape[0]] = 1
    return hidden, mask
