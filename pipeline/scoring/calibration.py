"""Whether a model's probabilities mean what they say, and one parameter to make them.

The alert statistics add up p_negative, so a model that says 0.9 should be right nine times in
ten. Expected calibration error (ECE) measures the gap: confidence against accuracy in equal-width
bins, weighted by bin size. Temperature scaling (Guo et al., 2017) divides the logits by one
scalar T fitted on the validation split by likelihood; it changes no label, only how sure the
model says it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def expected_calibration_error(probabilities: torch.Tensor, labels: Sequence[int], bins: int = 15) -> float:
    """ECE of the top-label confidence over `bins` equal-width bins."""
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == torch.tensor(list(labels))).double()
    edges = torch.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += float(inside.double().mean()) * abs(float(confidence[inside].double().mean()) - float(correct[inside].mean()))
    return error


def fit_temperature(logits: torch.Tensor, labels: Sequence[int]) -> float:
    """The T > 0 minimising the negative log-likelihood of softmax(logits / T), by L-BFGS on log T."""
    targets = torch.tensor(list(labels))
    logits = logits.detach().double()
    log_t = torch.zeros(1, dtype=torch.double, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))
