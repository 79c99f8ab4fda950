"""The learning check: does the optimizer work, apart from whether anything generalizes?

On a fixed set of 64 real HH pairs (128 thumbs for KTO), tiny-llama trained a few dozen
steps must fit what it sees: over its last pass through the set, train reward accuracy
reaches 0.75 or more and the margin 0.5 or more, from 0 at step 1 (the policy is then
its reference, so every reward is 0 and ties count as wrong); chance is 0.5. A
loss that is wired wrong (a sign, a detached reward, a swapped pair) fails this in
seconds, where a held-out metric would only say "nothing learned" after hours.
The same check on SmolLM2-135M is benchmarks/learning_check.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from tasks.train.snapshots import create_snapshot
from tasks.train.trainer import train
from tasks.warehouse.connection import connect
from test_trainer import ingest_hh_slice, tiny_config

PAIRS = 64
BATCH = 8


@pytest.fixture(scope="module")
def fixed_set(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("learning-check")
    ingest_hh_slice(home, rows=80)  # ~72 train pairs; max_rows picks a seeded, fixed 64
    with connect(home) as con:
        return {"home": home, "pairs": create_snapshot(con, "pairs", home=home),
                "feedback": create_snapshot(con, "feedback", home=home)}


# Two passes over the set; short sequences (the 49k-token vocabulary's logits dominate the
# cost of a 2-layer model) and no recomputation keep each run to seconds.
# KTO's signal per thumb is weaker than DPO's per pair: a larger β gives it larger early gradients.
@pytest.mark.parametrize("algo, rows, steps, beta", [("dpo", PAIRS, 16, 0.1), ("kto", 2 * PAIRS, 32, 0.5)])
def test_train_accuracy_and_margin_rise_well_above_chance(algo, rows, steps, beta, fixed_set, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, algo, f"steps={steps}", f"batch_size={BATCH}", f"max_rows={rows}",
                         f"beta={beta}", "eval_batches=0", "lr=3e-3", "max_length=64", "gradient_checkpointing=false")
    snapshot = fixed_set["pairs" if algo == "dpo" else "feedback"]
    result = train(config, snapshot, fixed_set["home"] / "runs" / algo, home=fixed_set["home"])
    history = [json.loads(line) for line in (Path(result["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    first, last_epoch = history[0], history[-(rows // BATCH):]  # the last pass over the fixed set
    accuracy = sum(r["reward_accuracy"] for r in last_epoch) / len(last_epoch)
    margin = sum(r["reward_margin"] for r in last_epoch if "reward_margin" in r) / len(last_epoch)
    assert first["reward_accuracy"] < 0.5 and abs(first["reward_margin"]) < 1e-3
    assert accuracy >= 0.75, f"{algo}: train accuracy {accuracy:.3f} after {steps} steps"
    assert margin > 0.5, f"{algo}: train margin {margin:.3f} after {steps} steps"
