"""`thumbs compare` end to end under the Prefect harness on tiny-llama: a 2x2 grid writes
its experiments rows, plots and artifact from snapshots and reference log-probs made
once; a comparison whose second cell's trainer is killed resumes without retraining
the first."""
from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from test_trainer import ingest_hh_slice
from tasks.common.settings import ThumbsError
from tasks.train import reference_cache
from tasks.warehouse.connection import connect

TINY = ["max_length=128", "batch_size=2", "steps=2", "eval_batches=1", "device=cpu", "evaluation.max_pairs=6",
        "evaluation.generation_prompts=2", "evaluation.max_new_tokens=6", "evaluation.kl_samples=2"]


def experiments(home: Path) -> list[tuple]:
    with connect(home) as con:
        return con.execute("SELECT cell, line, algo, beta, checkpoint_id, metrics FROM experiments ORDER BY cell").fetchall()


def test_a_grid_trains_every_cell_from_shared_snapshots_and_reference(prefect_harness, home, tiny_llama_dir):
    from prefect.artifacts import Artifact

    from flows.compare import compare_flow

    ingest_hh_slice(home, rows=24)
    loads_before = reference_cache.REFERENCE_LOADS
    result = compare_flow(["algos=dpo,kto", "betas=0.1,0.5", f"model={tiny_llama_dir}", *TINY], home=str(home))

    rows = experiments(home)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("dpo beta=0.1", "dpo", "dpo", 0.1), ("dpo beta=0.5", "dpo", "dpo", 0.5),
        ("kto beta=0.1", "kto", "kto", 0.1), ("kto beta=0.5", "kto", "kto", 0.5)]
    assert len({r[4] for r in rows}) == 4 and all((home / "checkpoints" / r[4]).is_dir() for r in rows)
    metrics = [json.loads(r[5]) for r in rows]
    # Every cell is evaluated on the same eval pairs, with the evaluation's metrics.
    assert len({m["eval_pairs"] for m in metrics}) == 1 and metrics[0]["eval_pairs"] >= 2
    # ... with their intervals, which the table prints as "value [low, high]".
    assert all(m["eval_reward_accuracy_low"] <= m["eval_reward_accuracy"] <= m["eval_reward_accuracy_high"]
               for m in metrics)
    assert {r["eval_snapshot_id"] for r in result["rows"]} == {result["rows"][0]["eval_snapshot_id"]}
    # Reference log-probs: one pass before the cells, one model load per cache file (the
    # pairs snapshot's and the feedback snapshot's); every trainer found all it needed
    # cached, and each evaluation computed only its own policy samples (2 prompts x 2).
    assert result["reference"]["groups"] == 2 and result["reference"]["computed"] == result["reference"]["sequences"]
    assert all(m["reference_cache"] == "hit" for m in metrics)
    assert all(m["eval_reference_computed"] <= 4 for m in metrics)
    assert result["reference"]["loads"] == 2
    # The flow process loaded the reference for the shared pass and at most once per cell
    # evaluation (the tiny random model's samples may repeat across cells: then cached).
    assert 2 <= reference_cache.REFERENCE_LOADS - loads_before <= 2 + len(rows)
    # The plots (one per metric, a line per algorithm) and the artifact with the table.
    assert sorted(Path(p).name for p in result["plots"]) == sorted(
        f"{m}.png" for m in ("eval_reward_accuracy", "eval_reward_margin", "kl_to_reference", "mean_generated_length"))
    assert all(Path(p).read_bytes().startswith(b"\x89PNG") for p in result["plots"])
    artifact = Artifact.get(result["comparison_id"])
    assert artifact is not None and "| kto | 0.5 |" in artifact.data and "dpo" in artifact.data
    kto_row = next(line for line in artifact.data.splitlines() if line.startswith("| kto | 0.5 |"))
    assert kto_row.count("[") >= 2  # accuracy and margin with their intervals

    # The same grid again: nothing to train, the same rows.
    again = compare_flow(["algos=dpo,kto", "betas=0.1,0.5", f"model={tiny_llama_dir}", *TINY], home=str(home))
    assert again["comparison_id"] == result["comparison_id"] and again["trained"] == []
    assert experiments(home) == rows


def _kill_trainer_of(run_dir_suffix: str, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the trainer child process training into runs/*<suffix> once it has started."""
    me = psutil.Process()
    while not stop.is_set():
        for child in me.children(recursive=True):
            try:
                command = child.cmdline()
            except psutil.Error:
                continue
            if "tasks.train.trainer" in command and any(a.endswith(run_dir_suffix) for a in command):
                time.sleep(0.5)
                child.send_signal(signal.SIGKILL)
                killed.append(child.pid)
                return
        time.sleep(0.05)


def test_a_comparison_killed_in_its_second_cell_resumes_without_retraining_the_first(
        prefect_harness, home, tiny_llama_dir):
    from flows.compare import compare_flow

    ingest_hh_slice(home, rows=24)
    grid = ["algos=dpo", "betas=0.1,0.5", f"model={tiny_llama_dir}", *TINY]
    second = "-" + hashlib.sha256(b"dpo beta=0.5").hexdigest()[:10]
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_trainer_of, args=(second, stop, killed), daemon=True)
    killer.start()
    try:
        with pytest.raises(ThumbsError, match="1 cell\\(s\\) failed.*run it again to resume"):
            compare_flow(grid, home=str(home))
    finally:
        stop.set()
        killer.join()
    assert killed, "the second cell's trainer was never seen running"
    [(first_cell, *_, first_checkpoint, _)] = experiments(home)
    assert first_cell == "dpo beta=0.1"

    result = compare_flow(grid, home=str(home))
    assert result["trained"] == ["dpo beta=0.5"]
    rows = experiments(home)
    assert [r[0] for r in rows] == ["dpo beta=0.1", "dpo beta=0.5"]
    assert rows[0][4] == first_checkpoint  # kept, not retrained
    assert sorted(p.name for p in (home / "checkpoints").iterdir()) == sorted(r[4] for r in rows)
