"""Forward-pass planning: the cheapest cut of length-sorted windows under the budget, and the
forward cost fitted from timed passes."""

from __future__ import annotations

import itertools
import random

import pytest

from pipeline.scoring.packing import ForwardCost, MeasuredForwardCost, plan_passes

CPU_LIKE = ForwardCost(fixed_s=0.010, per_token_s=100e-6)  # a pass costs 100 tokens' worth


def _modelled_seconds(lengths: list[int], passes: list[range], cost: ForwardCost) -> float:
    return sum(cost.seconds(len(span), lengths[span[-1]]) for span in passes)


def _every_plan(lengths: list[int], token_budget: int, max_rows: int) -> list[list[range]]:
    """Every cut of the positions into consecutive passes that respects the limits."""
    plans = []
    for cuts in itertools.product([False, True], repeat=len(lengths) - 1):
        starts = [0, *(index + 1 for index, cut in enumerate(cuts) if cut), len(lengths)]
        spans = [range(a, b) for a, b in itertools.pairwise(starts)]
        if all(len(span) <= max_rows and (len(span) == 1 or len(span) * lengths[span[-1]] <= token_budget) for span in spans):
            plans.append(spans)
    return plans


def test_the_plan_covers_every_window_once_in_order_within_the_limits() -> None:
    generator = random.Random(3)
    lengths = sorted(generator.choice([9, 12, 14, 15, 40, 88, 128, 700]) for _ in range(300))
    passes = plan_passes(lengths, token_budget=4096, max_rows=128, cost=CPU_LIKE)
    assert [position for span in passes for position in span] == list(range(len(lengths)))
    for span in passes:
        assert len(span) <= 128
        assert len(span) == 1 or len(span) * lengths[span[-1]] <= 4096


def test_the_plan_is_the_cheapest_of_every_possible_cut() -> None:
    generator = random.Random(11)
    for _ in range(40):
        lengths = sorted(generator.randint(5, 60) for _ in range(generator.randint(1, 11)))
        cost = ForwardCost(fixed_s=generator.choice([0.0005, 0.005, 0.05]), per_token_s=100e-6)
        budget, max_rows = generator.choice([(4096, 128), (200, 4), (120, 3)])
        chosen = _modelled_seconds(lengths, plan_passes(lengths, budget, max_rows, cost), cost)
        best = min(_modelled_seconds(lengths, plan, cost) for plan in _every_plan(lengths, budget, max_rows))
        assert chosen == pytest.approx(best)


def test_a_cheap_pass_keeps_a_long_window_from_padding_the_headlines() -> None:
    """The case that made this module: one body in a small batch padded every headline to its length."""
    lengths = [9, 11, 12, 12, 13, 13, 13, 14, 14, 14, 14, 14, 15, 16, 38, 49, 72, 81]
    passes = plan_passes(lengths, token_budget=4096, max_rows=128, cost=CPU_LIKE)
    assert len(passes) > 1
    assert max(lengths[span[-1]] for span in passes if 0 in span) <= 16
    assert _modelled_seconds(lengths, passes, CPU_LIKE) < 0.6 * CPU_LIKE.seconds(len(lengths), max(lengths))


def test_where_passes_are_dear_against_tokens_padding_is_cheaper_than_a_pass() -> None:
    """A GPU: a pass costs 10,000 tokens' worth, so 7,000 tokens of padding stay in one pass,
    and only far more padding than that is worth a second."""
    gpu_like = ForwardCost(fixed_s=0.003, per_token_s=0.3e-6)
    lengths = [12] * 50 + [40] * 20 + [120] * 5
    assert len(plan_passes(lengths, token_budget=1 << 19, max_rows=32768, cost=gpu_like)) == 1
    lengths = [12] * 500 + [120] * 5
    assert plan_passes(lengths, token_budget=1 << 19, max_rows=32768, cost=gpu_like) == [range(0, 500), range(500, 505)]


def test_a_window_longer_than_the_budget_goes_alone() -> None:
    passes = plan_passes([10, 10, 900], token_budget=512, max_rows=128, cost=CPU_LIKE)
    assert passes[-1] == range(2, 3)


def test_plan_passes_refuses_unsorted_lengths_and_plans_nothing_for_nothing() -> None:
    with pytest.raises(ValueError, match="ascending"):
        plan_passes([20, 10], 4096, 128, CPU_LIKE)
    assert plan_passes([], 4096, 128, CPU_LIKE) == []


def test_the_fitted_cost_recovers_a_linear_timing() -> None:
    truth = ForwardCost(fixed_s=0.011, per_token_s=113e-6)
    fitted = ForwardCost.fitted([(tokens, truth.seconds(1, tokens)) for tokens in (16, 128, 512, 2048)])
    assert fitted.fixed_s == pytest.approx(0.011)
    assert fitted.per_token_s == pytest.approx(113e-6)
    with pytest.raises(ValueError, match="two sizes"):
        ForwardCost.fitted([(100, 0.02), (100, 0.021)])


def test_the_measured_cost_keeps_its_prior_until_passes_of_different_sizes_were_timed() -> None:
    prior = ForwardCost(fixed_s=0.010, per_token_s=100e-6)
    truth = ForwardCost(fixed_s=0.004, per_token_s=50e-6)
    measured = MeasuredForwardCost(prior, refit_every=4, min_samples=4)
    for _ in range(20):
        measured.observe(256, truth.seconds(1, 256))
    assert measured.current == prior, "one size alone gives no slope"
    for tokens in (16, 64, 1024, 4096):
        measured.observe(tokens, truth.seconds(1, tokens))
    assert measured.current.fixed_s == pytest.approx(0.004)
    assert measured.current.per_token_s == pytest.approx(50e-6)
