"""Bootstrap intervals against cases worked by hand.

Two values {0, 1}: a resample's mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4,
so the 2.5th percentile is 0 and the 97.5th is 1. Eight values, four 1s and four 0s:
a resample of all zeros has probability (1/2)^8 = 1/256 < 2.5%, so the interval is
inside (0, 1); the same values in two prompts of four (all 1s, all 0s) resample like
the two-value case: [0, 1]. Many coin flips: the normal approximation ±1.96·√(p(1−p)/n).
"""
from __future__ import annotations

import math

import pytest

from tasks.common.settings import ThumbsError
from tasks.evaluate.intervals import bootstrap_mean, paired_difference


def test_two_values_give_the_whole_range():
    interval = bootstrap_mean([0.0, 1.0])
    assert (interval.estimate, interval.low, interval.high, interval.n) == (0.5, 0.0, 1.0, 2)


def test_grouped_items_resample_together():
    values = [1.0] * 4 + [0.0] * 4
    independent = bootstrap_mean(values)
    assert 0.0 < independent.low < 0.5 < independent.high < 1.0
    by_prompt = bootstrap_mean(values, groups=["a"] * 4 + ["b"] * 4)
    assert (by_prompt.low, by_prompt.high, by_prompt.n) == (0.0, 1.0, 8)


def test_many_coin_flips_match_the_normal_approximation():
    n = 400
    interval = bootstrap_mean([1.0, 0.0] * (n // 2))
    half_width = 1.96 * math.sqrt(0.25 / n)  # 0.049
    assert interval.low == pytest.approx(0.5 - half_width, abs=0.01)
    assert interval.high == pytest.approx(0.5 + half_width, abs=0.01)


def test_constant_values_have_no_width_and_the_seed_fixes_the_interval():
    assert bootstrap_mean([0.7] * 5).named("m") == {"m": 0.7, "m_low": 0.7, "m_high": 0.7, "m_n": 5}
    values = [0.1, 0.5, 0.2, 0.9, 0.4]
    assert bootstrap_mean(values, seed=3) == bootstrap_mean(values, seed=3)


def test_paired_difference_cancels_what_the_items_share():
    # Hard and easy items: each model's accuracy alone is uncertain, but the candidate
    # is right on every item the champion gets right plus two more.
    champion = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    candidate = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    difference = paired_difference(candidate, champion)
    assert difference.estimate == pytest.approx(0.2)
    assert difference.low >= 0.0  # never negative: no item got worse
    with pytest.raises(ThumbsError, match="3 candidate values vs 2"):
        paired_difference([1.0, 0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ThumbsError, match="at least one value"):
        bootstrap_mean([])
