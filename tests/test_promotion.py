"""The gate's decisions and what makes a nightly run retrain, worked case by case: the
paired comparison on given per-pair outcomes (refused below the tolerance, promoted
above it, "not measurable" when the interval is too wide), and its row in `promotions`."""
from __future__ import annotations

import math

from schemas.nightly import GateConfig
from tasks.evaluate.promotion import gate, what_changed

GATE = GateConfig(accuracy_tolerance=0.02, max_kl=5.0)


def test_first_checkpoint_needs_only_a_finite_kl_within_the_bound():
    assert gate({"eval_reward_accuracy": 0.1, "kl_to_reference": 4.9}, None, GATE).passed
    at_chance = gate({"eval_reward_accuracy": 0.5, "eval_reward_accuracy_low": 0.3, "eval_reward_accuracy_high": 0.7,
                      "eval_reward_accuracy_n": 24, "kl_to_reference": 1.0}, None, GATE)
    assert at_chance.passed and at_chance.verdict == "first"
    assert "0.500 [0.300, 0.700] on 24 pairs (not distinguishable from chance, 0.5)" in at_chance.reason
    refused = gate({"eval_reward_accuracy": 0.9, "kl_to_reference": 5.1}, None, GATE)
    assert not refused.passed and "exceeds the bound 5" in refused.reason


def per_pair(correct: list[bool]) -> dict[str, list]:
    """Given per-pair outcomes: a pair is ranked right when chosen 1.0 beats rejected 0.5."""
    return {"row_ids": [f"r{i}" for i in range(len(correct))], "groups": list(range(len(correct))),
            "chosen": [1.0 if c else 0.0 for c in correct], "rejected": [0.5] * len(correct)}


def evaluated(correct: list[bool], kl: float = 1.0) -> dict:
    return {"eval_reward_accuracy": sum(correct) / len(correct), "kl_to_reference": kl, "per_pair": per_pair(correct)}


# The champion ranks 120 of 200 pairs right.
CHAMPION = evaluated([True] * 120 + [False] * 80)


def test_a_candidate_worse_beyond_the_tolerance_is_refused():
    # Right on 30 fewer pairs: difference -0.15, interval about ±0.05 around it, all below -0.02.
    decision = gate(evaluated([True] * 90 + [False] * 110), CHAMPION, GATE)
    assert not decision.passed and decision.verdict == "worse"
    assert decision.difference.estimate == -0.15 and decision.difference.high < -0.02
    assert decision.reason.startswith("worse: the whole interval is below 0")
    assert "-0.150 [" in decision.reason and "paired bootstrap on 200 pairs" in decision.reason
    assert decision.headline == "NOT promoted: worse than the champion"


def test_a_candidate_better_on_the_same_pairs_is_promoted():
    decision = gate(evaluated([True] * 150 + [False] * 50), CHAMPION, GATE)
    assert decision.passed and decision.verdict == "better" and decision.difference.low > 0
    assert "+0.150 [" in decision.reason


def test_no_measurable_difference_within_the_tolerance_is_promoted_and_said_so():
    # One pair of 1000 flipped to wrong: difference -0.001, interval inside [-0.02, 0].
    champion = evaluated([True] * 600 + [False] * 400)
    decision = gate(evaluated([True] * 599 + [False] * 401), champion, GATE)
    assert decision.passed and decision.verdict == "not_worse"
    assert decision.reason.startswith("no measurable difference, and not worse beyond the tolerance 0.02")
    assert decision.headline.startswith("PROMOTED: no measurable difference")


def test_too_few_pairs_to_tell_is_refused_as_not_measurable():
    # 20 pairs, the two disagree on 10: mean difference 0, interval far wider than the tolerance.
    champion = evaluated([False] * 5 + [True] * 10 + [False] * 5)
    decision = gate(evaluated([True] * 10 + [False] * 10), champion, GATE)
    assert not decision.passed and decision.verdict == "unmeasurable"
    assert "not measurable on 20 pairs" in decision.reason
    assert decision.difference.low < -0.02 and decision.difference.high > 0


def test_the_gate_compares_only_the_same_pairs():
    other = evaluated([True] * 120 + [False] * 80)
    other["per_pair"]["row_ids"][0] = "elsewhere"
    assert gate(evaluated([True] * 200), other, GATE).verdict == "not_comparable"
    without = {k: v for k, v in CHAMPION.items() if k != "per_pair"}
    refused = gate(evaluated([True] * 200), without, GATE)
    assert not refused.passed and "no per-pair results" in refused.reason


def test_the_decision_and_its_interval_are_recorded(home):
    from tasks.evaluate.promotion import record_decision
    from tasks.warehouse.connection import connect

    decision = gate(evaluated([True] * 90 + [False] * 110), CHAMPION, GATE)
    with connect(home) as con:
        record_decision(con, "ckpt-new", "run-1", decision, "ckpt-old")
        row = con.execute("SELECT promoted, verdict, metric, difference, difference_low, difference_high, pairs, "
                          "tolerance, reason FROM promotions").fetchone()
    assert row[:4] == (False, "worse", "eval_reward_accuracy", -0.15)
    assert row[4] == decision.difference.low and row[5] == decision.difference.high
    assert row[6:8] == (200, 0.02) and row[8] == decision.reason


def test_missing_or_nan_metrics_never_promote():
    assert not gate({"eval_reward_accuracy": math.nan, "kl_to_reference": 0.0}, None, GATE).passed
    assert not gate({"kl_to_reference": 0.0}, None, GATE).passed


MANIFEST = {"snapshot_id": "snap-a", "code_version": "abc123",
            "config": {"algo": "kto", "steps": 4, "lr": 1e-3, "beta": 0.1}}


def test_same_snapshot_options_and_code_means_nothing_to_retrain():
    assert what_changed(MANIFEST, {"algo": "kto", "steps": 4, "lr": 1e-3}, "snap-a", "abc123") == []


def test_each_change_is_named():
    changes = what_changed(MANIFEST, {"algo": "kto", "steps": 8, "lr": 1e-3}, "snap-b", "def456")
    assert changes == ["snapshot snap-a -> snap-b", "training options steps 4 -> 8", "code abc123 -> def456"]


def test_an_option_the_champion_did_not_have_counts_as_a_change():
    assert what_changed(MANIFEST, {"steps": 4, "packing": True}, "snap-a", "abc123") == \
        ["training options packing None -> True"]
