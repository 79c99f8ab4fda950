"""The final checkpoint: loadable by transformers, its manifest true to the snapshot and
the base model, its `checkpoints` row true to the manifest, and never half-written."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from test_trainer import run, snapshots, tiny_config  # noqa: F401  (fixtures and helpers)
from tasks.train import checkpoints as ckpt
from tasks.lineage.runs import finish_run, start_run
from tasks.train.models import weights_sha256
from tasks.common.settings import ThumbsError, code_version
from tasks.warehouse.connection import connect


@pytest.fixture(scope="module")
def trained(tmp_path_factory, snapshots, tiny_llama_dir) -> tuple[Path, dict]:
    home = tmp_path_factory.mktemp("checkpoint-home")
    result = run(home, snapshots["feedback"], tiny_config(tiny_llama_dir, "kto", "steps=1"), "run-1")
    return home, result


def test_checkpoint_loads_with_transformers(trained):
    home, result = trained
    path = Path(result["path"])
    assert path.parent == home / "checkpoints"
    assert re.fullmatch(r"kto-\d{8}T\d{6}-[0-9a-f]{6}", path.name)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert (path / "model.safetensors").is_file()
    ids = tokenizer("Hello", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
    assert [p.name for p in (home / "checkpoints").iterdir()] == [path.name]  # no partial directory left


def test_manifest_agrees_with_the_snapshot_and_base_model(trained, snapshots, tiny_llama_dir):
    _, result = trained
    manifest = ckpt.read_manifest(result["path"])
    snapshot = snapshots["feedback"]
    assert manifest["checkpoint_id"] == Path(result["path"]).name == result["checkpoint_id"]
    assert manifest["algo"] == "kto" and manifest["hyperparameters"]["steps"] == 1
    assert manifest["hyperparameters"]["lambda_d"] == manifest["hyperparameters"]["lambda_u"] == 1.0  # balanced HH
    assert manifest["snapshot_id"] == snapshot.snapshot_id
    assert manifest["snapshot_row_counts"] == snapshot.row_counts
    assert manifest["snapshot_row_counts"]["train"]["by_source_label"] == {
        "hh:down": snapshot.row_counts["train"]["undesirable"], "hh:up": snapshot.row_counts["train"]["desirable"]}
    files = {name: hashlib.sha256((snapshot.path / name).read_bytes()).hexdigest() for name in snapshot.files}
    assert manifest["snapshot_files"] == files == snapshot.files
    assert manifest["base_model"] == {"name": str(tiny_llama_dir), "path": str(tiny_llama_dir),
                                      "weights_sha256": weights_sha256(tiny_llama_dir)}
    assert manifest["reference_model"]["weights_sha256"] == weights_sha256(tiny_llama_dir)
    assert manifest["code_version"] == code_version()
    assert manifest["parent_checkpoint"] is None
    assert manifest["metrics"]["steps"] == 1 and "train_loss" in manifest["metrics"]
    assert manifest["created_at"].endswith("+00:00")


def test_checkpoint_row_agrees_with_the_manifest(trained):
    home, result = trained
    manifest = ckpt.read_manifest(result["path"])
    with connect(home) as con:
        start_run(con, "train", manifest["hyperparameters"], "flow-run-1")
        ckpt.record_checkpoint(con, manifest, Path(result["path"]), "flow-run-1")
        finish_run(con, "flow-run-1", "completed")
        row = con.execute("SELECT checkpoint_id, run_id, algo, base_model, snapshot_id, path, metrics, promoted, "
                          "parent_checkpoint FROM checkpoints").fetchall()
        status = con.execute("SELECT status FROM lineage_runs WHERE run_id = 'flow-run-1'").fetchone()
    assert row == [(manifest["checkpoint_id"], "flow-run-1", "kto", manifest["base_model"]["name"],
                    manifest["snapshot_id"], result["path"], json.dumps(manifest["metrics"]), False, None)]
    assert status == ("completed",)


def test_a_checkpoint_from_a_checkpoint_names_its_parent(trained):
    _, result = trained
    assert ckpt.parent_checkpoint_of(Path(result["path"])) == result["checkpoint_id"]


def test_a_failed_write_leaves_nothing_behind(trained, tmp_path):
    _, result = trained
    model = AutoModelForCausalLM.from_pretrained(result["path"])
    manifest = {"checkpoint_id": "kto-20260101T000000-abcdef"}
    with pytest.raises(AttributeError):  # dies after the weights are written, before the tokenizer
        ckpt.write_checkpoint(model, None, manifest, tmp_path)
    assert list((tmp_path / "checkpoints").iterdir()) == []
    existing = ckpt.write_checkpoint(model, AutoTokenizer.from_pretrained(result["path"]), manifest, tmp_path)
    with pytest.raises(ThumbsError, match="already exists"):
        ckpt.write_checkpoint(model, None, manifest, tmp_path)
    assert {"config.json", "manifest.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in existing.iterdir()}


def test_resumable_state_is_found_by_fingerprint(tmp_path, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, "kto")
    fingerprint = ckpt.run_fingerprint(config, "snap-1")
    assert ckpt.run_fingerprint(config.model_copy(update={"device": "cuda", "save_every": 5}), "snap-1") == fingerprint
    assert ckpt.run_fingerprint(config.model_copy(update={"lr": 1.0}), "snap-1") != fingerprint
    assert ckpt.run_fingerprint(config, "snap-2") != fingerprint
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    ckpt.write_json_atomically(run_dir / ckpt.RUN_INFO, {"fingerprint": fingerprint})
    assert ckpt.find_resumable(fingerprint, tmp_path) is None  # no state yet
    ckpt.save_state(run_dir, {"fingerprint": fingerprint, "step": 3})
    assert ckpt.find_resumable(fingerprint, tmp_path) == run_dir
    assert ckpt.load_state(run_dir, fingerprint)["step"] == 3
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # no temp file left
    (run_dir / ckpt.RESULT).write_text("{}")
    assert ckpt.find_resumable(fingerprint, tmp_path) is None  # finished runs are not resumed
