"""The `train` flow end to end under a real Prefect server: snapshot, training in a child
process, checkpoint row, lineage run and OpenLineage events; a failing child becomes a
one-line ThumbsError and a FAIL event."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from test_trainer import ingest_hh_slice
from tasks.train import checkpoints as ckpt
from tasks.common.settings import ThumbsError
from tasks.warehouse.connection import connect


def rows(home: Path, sql: str, params: dict | None = None) -> list[tuple]:
    """A query on the warehouse, its connection kept out of the test's frame: the failed
    run's traceback, which Prefect keeps to the end of the session, holds that frame."""
    with connect(home) as con:
        return con.execute(sql, params or {}).fetchall()


def events(home: Path) -> list[dict]:
    return [json.loads(line) for line in (home / "lineage" / "openlineage.jsonl").read_text().splitlines()]


def test_train_flow_end_to_end(prefect_harness, home, tiny_llama_dir):
    from flows.train import train_flow

    ingest_hh_slice(home, rows=24)
    overrides = [f"model={tiny_llama_dir}", "max_length=128", "batch_size=2", "steps=2", "eval_batches=1",
                 "device=cpu"]

    # A child that cannot start training: the flow fails with the child's own one-line error.
    with pytest.raises(ThumbsError, match="not a transformers model directory"):
        train_flow("dpo", overrides=[*overrides, f"model={home / 'no-such-model'}"], home=str(home))

    result = train_flow("dpo", overrides=overrides, home=str(home))

    path = Path(result["path"])
    assert path.parent == home / "checkpoints" and path.name == result["checkpoint_id"]
    assert [p.name for p in (home / "checkpoints").iterdir()] == [path.name]  # nothing partial, nothing from the failure
    AutoModelForCausalLM.from_pretrained(path)
    manifest = ckpt.read_manifest(path)
    assert manifest["snapshot_id"] == result["snapshot_id"] and manifest["algo"] == "dpo"
    assert manifest["metrics"] == result["metrics"] and result["metrics"]["steps"] == 2
    assert (Path(result["run_dir"]) / "metrics.jsonl").read_text().count("\n") == 2

    runs = dict(rows(home, "SELECT status, count(*) FROM lineage_runs WHERE flow = 'train' GROUP BY 1"))
    checkpoint = rows(home, "SELECT checkpoint_id, run_id, snapshot_id, path FROM checkpoints")
    snapshot_kind = rows(home, "SELECT kind FROM snapshots WHERE snapshot_id = $id", {"id": result["snapshot_id"]})[0]
    assert runs == {"failed": 1, "completed": 1}
    assert checkpoint == [(result["checkpoint_id"], result["run_id"], result["snapshot_id"], str(path))]
    assert snapshot_kind == ("pairs",)

    ours = [e for e in events(home) if e["run"]["runId"] == result["run_id"]]
    assert [e["eventType"] for e in ours] == ["START", "COMPLETE"]
    # named by OpenLineage's rule for files (namespace `file`, the path), thumbs' ids as symlinks
    [snapshot], [checkpoint] = ours[1]["inputs"], ours[1]["outputs"]
    assert (checkpoint["namespace"], checkpoint["name"]) == ("file", str(path))
    assert snapshot["facets"]["symlinks"]["identifiers"][0]["name"] == f"snapshots/{result['snapshot_id']}"
    assert checkpoint["facets"]["symlinks"]["identifiers"][0]["name"] == f"checkpoints/{result['checkpoint_id']}"
    assert ours[0]["run"]["facets"]["thumbs"]["config"]["algo"] == "dpo"
    assert ours[1]["run"]["facets"]["thumbs"]["metrics"] == result["metrics"]
    failed = [e for e in events(home) if e["run"]["runId"] != result["run_id"]]
    assert [e["eventType"] for e in failed] == ["START", "FAIL"]
    assert failed[1]["inputs"] == failed[0]["inputs"]  # the FAIL names the snapshot the run had taken
    assert "not a transformers model directory" in failed[1]["run"]["facets"]["errorMessage"]["message"]
