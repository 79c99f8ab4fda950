"""The training loop on a tiny random Llama and a slice of real HH rows: it learns, it is
deterministic, a crashed run resumed equals an uninterrupted one, the reference model is
run once per reference+snapshot, and a diverging run stops with a clear error."""
from __future__ import annotations

import gzip
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from samples import DEMO_HH_HELPFUL
from schemas.config import BinarizeConfig, load_config
from schemas.train import TrainConfig
from tasks.train import reference_cache
from tasks.binarize.marts import binarize
from tasks.ingest.load import ingest_file
from tasks.common.settings import ThumbsError
from tasks.train.snapshots import Snapshot, create_snapshot
from tasks.sources import bind_source
from tasks.train.algorithms import LOSSES
from tasks.train.data import plan_batches, read_rows
from tasks.train.objective import distributed_kl_mean
from tasks.train.trainer import TIMING_KEYS, train
from tasks.warehouse.connection import connect

HH_ROWS = 40  # -> ~36 train / ~4 eval pairs, twice as many thumbs


def ingest_hh_slice(home: Path, rows: int = HH_ROWS) -> None:
    """A real warehouse: the first `rows` (at most 200) HH pairs ingested and binarized."""
    home.mkdir(parents=True, exist_ok=True)
    sliced = home / "hh-slice.jsonl"
    with gzip.open(DEMO_HH_HELPFUL, "rt") as src, open(sliced, "w") as out:
        out.writelines(itertools.islice(src, rows))
    with connect(home) as con:
        ingest_file(con, bind_source("hh"), sliced, "test-batch")
        binarize(con, BinarizeConfig())


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Snapshot]:
    """Snapshots of that warehouse: 'feedback', 'pairs' and 'feedback_one' (one y per x)."""
    home = tmp_path_factory.mktemp("hh-warehouse")
    ingest_hh_slice(home)
    with connect(home) as con:
        return {"feedback": create_snapshot(con, "feedback", home=home),
                "pairs": create_snapshot(con, "pairs", home=home),
                "feedback_one": create_snapshot(con, "feedback", one_per_prompt=True, home=home)}


def tiny_config(model_dir: Path, algo: str, *overrides: str) -> TrainConfig:
    base = [f"algo={algo}", f"model={model_dir}", "max_length=128", "batch_size=2", "steps=2", "eval_batches=1",
            "warmup_steps=0", "lr=1e-3", "save_every=0", "device=cpu"]
    return load_config(TrainConfig, None, [*base, *overrides])


def run(home: Path, snapshot: Snapshot, config: TrainConfig, name: str, **kwargs) -> dict:
    return train(config, snapshot, home / "runs" / name, home=home, **kwargs)


def snapshot_for(snapshots: dict[str, Snapshot], algo: str) -> Snapshot:
    return snapshots["pairs" if LOSSES[algo].batch == "paired" else "feedback"]


def metrics_lines(result: dict) -> list[dict]:
    return [json.loads(line) for line in (Path(result["run_dir"]) / "metrics.jsonl").read_text().splitlines()]


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


@pytest.mark.parametrize("algo", ["kto", "dpo"])
def test_a_few_steps_change_the_weights_and_log_every_step(algo, home, snapshots, tiny_llama_dir):
    result = run(home, snapshot_for(snapshots, algo), tiny_config(tiny_llama_dir, algo), algo)
    before = load_file(tiny_llama_dir / "model.safetensors")
    after = load_file(Path(result["path"]) / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(t).all() for t in after.values())
    records = metrics_lines(result)
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        assert {"loss", "reward_accuracy", "lr", "samples_per_s", "tokens_per_s", "elapsed"} <= record.keys()
    assert "eval_loss" in records[-1] and "eval_reward_accuracy" in records[-1]
    if algo == "kto":  # the KL reference point comes from mismatched rows, logged as `kl`
        assert "kl" in records[0]


def test_loss_falls_when_overfitting_eight_pairs(home, snapshots, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, "dpo", "max_rows=8", "batch_size=4", "steps=8", "lr=3e-3",
                         "eval_batches=0")
    losses = [r["loss"] for r in metrics_lines(run(home, snapshots["pairs"], config, "overfit"))]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at step 1
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0]


class SimulatedCrash(Exception):
    pass


def crashed_at_step_3(config: TrainConfig, snapshot: Snapshot, run_dir: Path, home: Path) -> None:
    """Train until step 3's update is logged, then crash: the saved state is step 2's
    (save_every=2), so a resume redoes step 3."""
    def crash_at_step_3(event: dict) -> None:
        if event.get("event") == "step" and event["step"] == 3:
            raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        train(config, snapshot, run_dir, home=home, progress=crash_at_step_3)


def assert_same_run(resumed: dict, uninterrupted: dict, weights: str = "model.safetensors") -> None:
    """The resumed run's weights and logged metrics are the uninterrupted run's."""
    expected = load_file(Path(uninterrupted["path"]) / weights)
    actual = load_file(Path(resumed["path"]) / weights)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, atol=1e-5, rtol=0)
    assert without_timing(metrics_lines(resumed)) == without_timing(metrics_lines(uninterrupted))


def test_same_seed_same_run_and_a_crashed_run_resumed_equals_an_uninterrupted_one(home, snapshots, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, "dpo", "steps=4", "save_every=2", "lr=1e-3", "warmup_steps=1")
    uninterrupted = run(home, snapshots["pairs"], config, "uninterrupted")

    run_dir = home / "runs" / "crashed"
    crashed_at_step_3(config, snapshots["pairs"], run_dir, home)
    # Determinism: the same seed gave the same losses and metrics up to the crash.
    before_crash = without_timing(metrics_lines({"run_dir": run_dir}))
    assert before_crash == without_timing(metrics_lines(uninterrupted))[:3]
    assert len({r["loss"] for r in before_crash}) == 3  # not a vacuous comparison
    assert (run_dir / "state.pt").exists()
    resumed = train(config, snapshots["pairs"], run_dir, home=home, resume=True)

    manifest = json.loads((Path(resumed["path"]) / "manifest.json").read_text())
    assert manifest["training"]["resumed_at_step"] == 2
    assert not (run_dir / "state.pt").exists()  # superseded by the checkpoint
    assert_same_run(resumed, uninterrupted)


def test_session_steps_stops_with_a_state_and_resume_finishes(home, snapshots, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, "kto", "steps=2", "eval_batches=0")
    run_dir = home / "runs" / "sliced"
    first = train(config, snapshots["feedback"], run_dir, home=home, session_steps=1)
    assert first == {"finished": False, "step": 1, "run_dir": str(run_dir)}
    other = tiny_config(tiny_llama_dir, "kto", "steps=2", "eval_batches=0", "lr=2e-3")
    with pytest.raises(ThumbsError, match="another config or snapshot"):
        train(other, snapshots["feedback"], run_dir, home=home, resume=True)
    second = train(config, snapshots["feedback"], run_dir, home=home, resume=True)
    assert second["finished"] and [r["step"] for r in metrics_lines(second)] == [1, 2]


def test_reference_model_runs_once_per_reference_and_snapshot(home, snapshots, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, "kto", "steps=1", "eval_batches=0")
    loads = reference_cache.REFERENCE_LOADS
    first = run(home, snapshots["feedback"], config, "first")
    assert first["reference_cache"] == "miss" and reference_cache.REFERENCE_LOADS == loads + 1
    second = run(home, snapshots["feedback"], config, "second")
    assert second["reference_cache"] == "hit" and reference_cache.REFERENCE_LOADS == loads + 1
    third = run(home, snapshots["feedback_one"], config, "third")
    assert third["reference_cache"] == "miss" and reference_cache.REFERENCE_LOADS == loads + 2

    def key_of(result: dict) -> str:
        return json.loads((Path(result["path"]) / "manifest.json").read_text())["reference_model"]["cache_key"]

    assert key_of(first) == key_of(second) != key_of(third)
    assert sorted(p.stem for p in (home / "cache" / "reference").glob("*.pt")) == sorted({key_of(first), key_of(third)})


def test_a_diverging_run_stops_with_the_step_and_value(home, snapshots, tiny_llama_dir):
    # lr=1e30 overflows the weights on the first update; step 2's gradients are NaN.
    config = tiny_config(tiny_llama_dir, "kto", "steps=3", "lr=1e30", "eval_batches=0")
    with pytest.raises(ThumbsError, match=r"^step 2: the (kto loss|gradient norm) is nan \(not finite\)"):
        run(home, snapshots["feedback"], config, "diverging")
    assert not (home / "checkpoints").exists() or not any((home / "checkpoints").iterdir())


def test_packed_batches_score_like_padded_ones(home, snapshots, tiny_llama_dir):
    # Reference log-probs are computed on padded batches; at step 1 the policy equals the
    # reference, so a packed forward must reproduce them: DPO's first loss is exactly log 2.
    config = tiny_config(tiny_llama_dir, "dpo", "steps=1", "packing=true", "eval_batches=0")
    first = metrics_lines(run(home, snapshots["pairs"], config, "packed"))[0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-4)


def test_kto_plan_never_pairs_a_completion_with_its_own_prompt():
    rows = list(range(10, 31))
    lengths = [len(str(r)) * (r % 7) for r in rows]
    plan = plan_batches(rows, lengths, batch_size=4, n_batches=12, seed=3, kl_rows=True)
    assert len(plan) == 12
    assert plan == plan_batches(rows, lengths, batch_size=4, n_batches=12, seed=3, kl_rows=True)
    for micro in plan:
        assert len(micro.rows) >= 2
        assert sorted(micro.kl_partners) == sorted(micro.rows)  # a permutation of the batch
        assert all(prompt != reply for prompt, reply in zip(micro.rows, micro.kl_partners))


def test_csft_writes_the_label_into_the_completion(snapshots):
    rows = read_rows(snapshots["feedback"], "train", "csft")
    plain = read_rows(snapshots["feedback"], "train", "kto")
    for label, text, original in zip(rows.labels, rows.replies["completion"], plain.replies["completion"]):
        assert text == ("<|good|> " if label else "<|bad|> ") + original


def test_kl_estimate_is_averaged_over_the_process_group(tmp_path):
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert float(distributed_kl_mean(torch.tensor(0.25))) == 0.25
    finally:
        torch.distributed.destroy_process_group()
    assert float(distributed_kl_mean(torch.tensor(0.5))) == 0.5


def test_config_errors_are_one_line():
    with pytest.raises(ThumbsError, match="lrr"):
        load_config(TrainConfig, None, ["lrr=1e-5"])
    with pytest.raises(ThumbsError, match="KTO needs >= 2"):
        load_config(TrainConfig, None, ["algo=kto", "batch_size=1"])
    assert load_config(TrainConfig, None, ["algo=dpo", "sources=[hh, oasst]"]).sources == ["hh", "oasst"]
