"""The gate's decisions and what makes a nightly run retrain, worked case by case."""
from __future__ import annotations

import math

from schemas.nightly import GateConfig
from tasks.evaluate.promotion import gate, what_changed

GATE = GateConfig(accuracy_tolerance=0.02, max_kl=5.0)


def test_first_checkpoint_needs_only_a_finite_kl_within_the_bound():
    assert gate({"eval_reward_accuracy": 0.1, "kl_to_reference": 4.9}, None, GATE).passed
    refused = gate({"eval_reward_accuracy": 0.9, "kl_to_reference": 5.1}, None, GATE)
    assert not refused.passed and "exceeds the bound 5" in refused.reason


def test_accuracy_may_trail_the_champion_by_the_tolerance_and_no_more():
    champion = {"eval_reward_accuracy": 0.60, "kl_to_reference": 1.0}
    assert gate({"eval_reward_accuracy": 0.585, "kl_to_reference": 1.0}, champion, GATE).passed  # 0.60 - 0.02 = 0.58
    refused = gate({"eval_reward_accuracy": 0.575, "kl_to_reference": 1.0}, champion, GATE)
    assert not refused.passed and "below the champion's 0.6000" in refused.reason


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
