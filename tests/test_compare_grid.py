"""The comparison grid without training: its cells, the table's intervals, and the KTO
paper's desirable_fraction ablation in the data selection."""
from __future__ import annotations

import pytest

from schemas.compare import load_grid
from schemas.train import TrainConfig
from tasks.common.settings import ThumbsError
from tasks.compare.grid import comparison_id, format_value, table
from tasks.train.data import keep_desirable_fraction


def test_cells_are_lines_times_betas_with_variants_last():
    grid, cells = load_grid(None, ["algos=dpo,kto", "betas=0.1,0.5", "variants=[kto desirable_fraction=0.1]",
                                   "steps=7", "evaluation.max_pairs=12"])
    assert [c.name for c in cells] == ["dpo beta=0.1", "dpo beta=0.5", "kto beta=0.1", "kto beta=0.5",
                                       "kto desirable_fraction=0.1 beta=0.1", "kto desirable_fraction=0.1 beta=0.5"]
    assert [(c.config.algo, c.config.beta, c.config.desirable_fraction, c.config.steps) for c in cells[3:]] == [
        ("kto", 0.5, 1.0, 7), ("kto", 0.1, 0.1, 7), ("kto", 0.5, 0.1, 7)]
    assert grid.evaluation.max_pairs == 12


@pytest.mark.parametrize("overrides, message", [
    (["algos=dpo,nope"], "not a policy algorithm"),
    (["algos=rm"], "not a policy algorithm"),
    (["algos=dpo", "variants=dpo desirable_fraction=0.1"], "desirable_fraction: only for algorithms trained on thumbs"),
    (["algos=dpo", "betas=0"], "beta must be > 0"),
    (["algos=dpo", "steps=0"], "steps"),
])
def test_a_bad_grid_fails_before_anything_trains(overrides, message):
    with pytest.raises(ThumbsError, match=message):
        load_grid(None, overrides)


def test_the_comparison_id_changes_with_the_data_not_with_a_rerun():
    _, cells = load_grid(None, ["algos=dpo", "betas=0.1"])
    same = comparison_id(cells, {"dpo beta=0.1": "s1"}, {"max_pairs": 8})
    assert same == comparison_id(cells, {"dpo beta=0.1": "s1"}, {"max_pairs": 8})
    assert same != comparison_id(cells, {"dpo beta=0.1": "s2"}, {"max_pairs": 8})


def test_the_table_prints_intervals_where_the_evaluation_has_them():
    assert format_value({"a": 0.625, "a_low": 0.5, "a_high": 0.75}, "a") == "0.625 [0.5, 0.75]"
    assert format_value({"a": 0.625}, "a") == "0.625"
    assert format_value({}, "a") == "-"
    header, body = table([
        {"line": "kto", "beta": 0.5, "checkpoint_id": "k", "metrics": {"eval_reward_accuracy": 0.5, "eval_pairs": 8}},
        {"line": "dpo", "beta": 0.1, "checkpoint_id": "d", "metrics": {
            "eval_reward_accuracy": 0.75, "eval_reward_accuracy_low": 0.5, "eval_reward_accuracy_high": 1.0,
            "eval_reward_accuracy_n": 8}}])
    assert header[:3] == ["line", "beta", "eval_reward_accuracy"] and header[-2:] == ["n", "checkpoint"]
    assert [row[:3] + row[-2:] for row in body] == [["dpo", "0.1", "0.75 [0.5, 1]", "8", "d"],
                                                    ["kto", "0.5", "0.5", "8", "k"]]


def test_desirable_fraction_keeps_that_share_of_desirables_and_every_undesirable():
    labels = [True] * 20 + [False] * 10
    kept = keep_desirable_fraction(list(range(30)), labels, 0.1, seed=0)
    assert sum(labels[r] for r in kept) == 2 and [r for r in kept if not labels[r]] == list(range(20, 30))
    assert kept == keep_desirable_fraction(list(range(30)), labels, 0.1, seed=0)  # seeded
    assert sum(labels[r] for r in keep_desirable_fraction(list(range(30)), labels, 0.01, seed=0)) == 1  # at least one
    assert TrainConfig(algo="kto", desirable_fraction=0.1).desirable_fraction == 0.1
