"""SIGKILL while a training run writes its snapshot, its reference log-prob cache,
its resumable state and its checkpoint, then `thumbs train --resume` again: the
warehouse equals an undisturbed run's, the weights are the undisturbed run's, and
no partial snapshot, cache, state or checkpoint is ever visible.

Each kill lands at a named point (see _killable.py) of the real CLI, talking to
the session's Prefect server; points inside the trainer child are reached because
_killable.py starts that child through itself. A kill takes the CLI and the
trainer child together (their process group), as losing the worker does.

One home goes through the chain of kills in the order a run reaches the points,
each kill interrupting the re-run of the one before (tiny-llama, DPO, 3 steps,
a resumable state after every step); the tests below check what it observed.
Once, between two kills, the reference cache is cut to half its bytes (what a
disk that lost its tail leaves): the next run must not use it.
"""
from __future__ import annotations

import gzip
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from samples import DEMO_HH_HELPFUL
from schemas.config import BinarizeConfig
from tasks.binarize.marts import binarize
from tasks.train.checkpoints import read_manifest
from tasks.ingest.load import ingest_file
from tasks.sources import bind_source
from tasks.warehouse.connection import connect

from .harness import Thumbs, compare, fingerprint, training_state_problems, visible, warehouse_rows

HH_ROWS = 24
# Short sequences and 3 steps: the run is seconds; 16 reference sequences in 4 batches
# leave room for a kill in the middle of the reference pass.
TRAIN_OPTIONS = ["max_length=64", "batch_size=2", "steps=3", "save_every=1", "eval_batches=1",
                 "warmup_steps=0", "lr=1e-3", "device=cpu", "reference_batch_size=4"]


@pytest.fixture(scope="module")
def hh_slice(tmp_path_factory) -> Path:
    """The first HH_ROWS HH pairs: one file for every home (ingest_runs records its path)."""
    path = tmp_path_factory.mktemp("hh-slice") / "hh-slice.jsonl"
    with gzip.open(DEMO_HH_HELPFUL, "rt") as src, open(path, "w") as out:
        out.writelines(itertools.islice(src, HH_ROWS))
    return path


def load_warehouse(home: Path, rows: Path) -> None:
    with connect(home) as con:
        ingest_file(con, bind_source("hh"), rows, "kill-tests")
        binarize(con, BinarizeConfig())


def train_argv(home: Path, model_dir: Path) -> list[str]:
    return ["--home", str(home), "train", "--algo", "dpo", "--resume", f"model={model_dir}", *TRAIN_OPTIONS]


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "model.safetensors")


def recorded_checkpoints(home: Path) -> list[str]:
    return [row[0] for row in warehouse_rows(home, "SELECT checkpoint_id FROM checkpoints")]


@dataclass
class CleanRun:
    tables: dict
    checkpoint: Path


@pytest.fixture(scope="module")
def clean_run(prefect_harness, hh_slice, tiny_llama_dir, tmp_path_factory) -> CleanRun:
    from flows.cli import main

    home = tmp_path_factory.mktemp("clean-train")
    load_warehouse(home, hh_slice)
    assert main(train_argv(home, tiny_llama_dir)) == 0
    (checkpoint,) = visible(home / "checkpoints")
    return CleanRun(fingerprint(home), checkpoint)


@dataclass
class Kill:
    name: str
    pause_at: str
    landed: bool = False
    seen: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)  # visible snapshot directories after the kill
    caches: list[str] = field(default_factory=list)  # visible reference cache files
    checkpoints: list[str] = field(default_factory=list)  # visible checkpoint directories
    recorded: list[str] = field(default_factory=list)  # rows in `checkpoints`
    state_steps: list[int] = field(default_factory=list)  # the step of every resumable state


@dataclass
class Chain:
    home: Path
    kills: list[Kill]
    tables: dict
    lineage_status: dict[str, int]
    recorded: list[str]
    checkpoints: list[Path]  # visible checkpoint directories at the end
    scratch: list[str]  # snapshot, checkpoint and state scratch left at the end


KILLS = [
    ("snapshot: train.parquet written, eval.parquet not yet", "snapshot-file-written:1"),
    ("snapshot: in place, not yet recorded", "snapshot-record:1"),
    ("reference cache: file written beside its name, not renamed", "reference-cache-swap:1"),
    ("state: step 2's state written beside state.pt, step 1's in place", "state-swap:2"),
    ("checkpoint: weights saved, no tokenizer, no manifest (after a truncated cache)", "checkpoint-weights-saved:1"),
    ("checkpoint: in place, the run not yet marked finished", "run-result:1"),
    ("checkpoint: the trainer finished, its row not yet recorded", "checkpoint-record:1"),
]
TRUNCATE_CACHE_BEFORE = "checkpoint-weights-saved:1"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def chain(clean_run, prefect_api_url, hh_slice, tiny_llama_dir, tmp_path_factory) -> Chain:
    from flows.cli import main

    home = tmp_path_factory.mktemp("killed-train")
    load_warehouse(home, hh_slice)
    events = home.parent / "train-events.txt"
    argv = train_argv(home, tiny_llama_dir)
    kills = []
    for name, pause_at in KILLS:
        if pause_at == TRUNCATE_CACHE_BEFORE:
            (cache,) = visible(home / "cache" / "reference")
            truncate(cache)
        thumbs = Thumbs(argv, events, prefect_api_url=prefect_api_url, pause_at=pause_at)
        thumbs.wait_for("paused", timeout=240)
        record = Kill(name, pause_at, landed=thumbs.kill(), seen=thumbs.seen())
        record.problems = training_state_problems(home)
        record.snapshots = [p.name for p in visible(home / "snapshots")]
        record.caches = [p.name for p in visible(home / "cache" / "reference")]
        record.checkpoints = [p.name for p in visible(home / "checkpoints")]
        record.recorded = recorded_checkpoints(home)
        record.state_steps = [torch.load(state, weights_only=False)["step"] for state in home.glob("runs/*/state.pt")]
        kills.append(record)

    assert main(argv) == 0
    lineage = dict(warehouse_rows(home, "SELECT status, count(*) FROM lineage_runs GROUP BY ALL"))
    scratch = [p.name for p in [*home.glob("snapshots/.*"), *home.glob("checkpoints/.*"),
                                *home.glob("runs/*/.state.pt.*")]]
    return Chain(home, kills, fingerprint(home), lineage, recorded_checkpoints(home),
                 visible(home / "checkpoints"), scratch)


def by_point(chain: Chain) -> dict[str, Kill]:
    return {kill.pause_at.split(":")[0]: kill for kill in chain.kills}


def test_every_kill_landed_at_its_point(chain):
    assert [k.name for k in chain.kills if not (k.landed and k.pause_at in k.seen and "paused" in k.seen)] == []


def test_nothing_half_written_is_visible_after_any_kill(chain):
    assert {k.name: k.problems for k in chain.kills if k.problems} == {}
    assert training_state_problems(chain.home) == []


def test_a_snapshot_appears_whole_or_not_at_all(chain):
    kills = by_point(chain)
    assert kills["snapshot-file-written"].snapshots == []
    assert len(kills["snapshot-record"].snapshots) == 1  # whole (checked above), recorded by the re-run


def test_a_reference_cache_appears_whole_or_not_at_all(chain):
    kills = by_point(chain)
    assert kills["reference-cache-swap"].caches == []
    assert len(kills["state-swap"].caches) == 1


def test_a_truncated_reference_cache_is_recomputed_not_used(chain):
    kills = by_point(chain)
    assert "reference-batch:1" in kills["checkpoint-weights-saved"].seen  # the truncated file: computed again
    assert "reference-batch:1" not in kills["run-result"].seen  # the file it rewrote: used as is
    # ... and every checkpoint trained on those log-probs has the clean run's weights (below).


def test_a_resumed_run_continues_from_the_last_whole_state(chain):
    kills = by_point(chain)
    assert kills["state-swap"].state_steps == [1]  # step 2's state never replaced step 1's
    assert kills["checkpoint-weights-saved"].state_steps == [2]


def test_a_checkpoint_appears_whole_or_not_at_all(chain):
    kills = by_point(chain)
    assert kills["checkpoint-weights-saved"].checkpoints == []
    assert all(k.recorded == [] for k in chain.kills)


def test_a_finished_but_unrecorded_checkpoint_is_recorded_not_trained_again(chain):
    # Killed before result.json, then before the row: each re-run took up the checkpoint
    # already on disk (tasks.train.checkpoints.finished_result) instead of training another.
    kills = by_point(chain)
    (written,) = kills["run-result"].checkpoints
    assert kills["checkpoint-record"].checkpoints == [written]
    assert chain.recorded == [written] and [p.name for p in chain.checkpoints] == [written]


def test_rerun_after_every_kill_equals_a_clean_run(chain, clean_run):
    result = compare(clean_run.tables, chain.tables)
    assert (result.lost, result.duplicated) == (0, 0), result.differing
    assert sum(chain.tables["checkpoints"].values()) == sum(chain.tables["snapshots"].values()) == 1
    (recorded,) = chain.recorded
    expected = read_manifest(clean_run.checkpoint)["metrics"]
    metrics = read_manifest(chain.home / "checkpoints" / recorded)["metrics"]
    learned = {k: v for k, v in expected.items() if k not in ("samples_per_s", "wall_time_s")}
    assert {k: metrics[k] for k in learned} == pytest.approx(learned, rel=1e-4, abs=1e-6)


def test_every_checkpoint_on_disk_has_the_clean_runs_weights(chain, clean_run):
    expected = weights(clean_run.checkpoint)
    assert chain.checkpoints
    for checkpoint in chain.checkpoints:
        actual = weights(checkpoint)
        assert actual.keys() == expected.keys()
        for name, tensor in expected.items():
            torch.testing.assert_close(actual[name], tensor, atol=1e-5, rtol=0, msg=f"{checkpoint.name} {name}")


def test_no_checkpoint_on_disk_is_left_unrecorded(chain):
    assert sorted(p.name for p in chain.checkpoints) == sorted(chain.recorded)


def test_a_rerun_removes_what_killed_writers_left_beside_their_final_names(chain):
    assert chain.scratch == []


def test_killed_runs_never_count_as_completed(chain):
    assert chain.lineage_status.get("completed") == 1
    assert sum(chain.lineage_status.values()) == len(KILLS) + 1
