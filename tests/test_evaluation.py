"""Evaluation on a tiny Llama trained a few KTO steps on real HH rows: metrics are finite
and in range, reward accuracy equals a hand computation, evaluating twice gives the
same numbers, a model measured against itself has zero KL, and the flow records
everything (evaluation dir with PNGs, checkpoints.metrics, lineage, OpenLineage)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from samples import DEMO_OASST_TREES
from schemas.config import BinarizeConfig
from tasks.binarize.marts import binarize
from tasks.ingest.load import ingest_file
from tasks.sources import bind_source
from tasks.train.batching import encode_example, pad
from tasks.train.checkpoints import read_manifest, record_checkpoint
from tasks.evaluate.evaluation import INTERVAL_METRICS, METRIC_NAMES, evaluate_checkpoint, same_protocol
from tasks.train.logprobs import sequence_logps
from tasks.common.settings import ThumbsError
from tasks.train.snapshots import create_snapshot
from tasks.train.trainer import train
from tasks.warehouse.connection import connect
from test_trainer import ingest_hh_slice, tiny_config

# Small enough for seconds per evaluation, large enough that every code path runs.
SMALL = {"max_pairs": 4, "generation_prompts": 2, "max_new_tokens": 8, "kl_samples": 2, "device": "cpu"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> dict:
    """A warehouse of 120 real HH rows (~12 eval pairs), its pairs snapshot, and a KTO
    checkpoint trained 4 steps at a high lr (rewards far from 0), recorded in `checkpoints`."""
    home = tmp_path_factory.mktemp("eval-home")
    ingest_hh_slice(home, rows=120)
    with connect(home) as con:
        feedback, pairs = create_snapshot(con, "feedback", home=home), create_snapshot(con, "pairs", home=home)
    result = train(tiny_config(tiny_llama_dir, "kto", "steps=4", "eval_every=2"), feedback, home / "runs" / "kto",
                   home=home)
    with connect(home) as con:
        record_checkpoint(con, read_manifest(result["path"]), Path(result["path"]))
    return {"home": home, "pairs": pairs, "checkpoint": Path(result["path"]), "id": result["checkpoint_id"]}


@pytest.fixture(scope="module")
def evaluated(trained) -> dict:
    """The checkpoint evaluated once; the flow test evaluates it again and must agree."""
    return evaluate_checkpoint(trained["checkpoint"], home=trained["home"], eval_snapshot=trained["pairs"], **SMALL)


def without_time(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "eval_wall_time_s"}


def test_metrics_are_finite_in_range(trained, evaluated):
    metrics = evaluated["metrics"]
    assert set(metrics) == set(METRIC_NAMES)
    assert 0.0 <= metrics["eval_reward_accuracy"] <= 1.0
    assert metrics["eval_pairs"] == SMALL["max_pairs"]
    assert metrics["kl_samples"] == SMALL["generation_prompts"] * SMALL["kl_samples"]
    assert 0 <= metrics["mean_generated_length"] <= SMALL["max_new_tokens"]
    assert 0.0 <= metrics["generation_truncated_fraction"] <= 1.0
    assert metrics["eval_reward_margin"] == pytest.approx(
        metrics["eval_rewards_chosen"] - metrics["eval_rewards_rejected"], abs=1e-9)
    assert metrics["eval_rewards_chosen"] != 0.0  # trained: the policy moved away from its reference
    assert evaluated["eval_snapshot_id"] == trained["pairs"].snapshot_id
    assert evaluated["reference"]["computed"] > 0


def test_every_mean_has_its_interval_and_n(evaluated):
    metrics = evaluated["metrics"]
    for name in INTERVAL_METRICS:
        assert metrics[f"{name}_low"] <= metrics[name] <= metrics[f"{name}_high"], name
    assert metrics["eval_reward_accuracy_n"] == metrics["eval_pairs"] == SMALL["max_pairs"]
    assert metrics["kl_to_reference_n"] == metrics["kl_samples"]
    assert metrics["mean_generated_length_n"] == metrics["generation_prompts"]
    per_pair = evaluated["per_pair"]
    assert len(per_pair["row_ids"]) == len(per_pair["groups"]) == SMALL["max_pairs"]
    right = sum(c > r for c, r in zip(per_pair["chosen"], per_pair["rejected"]))
    assert metrics["eval_reward_accuracy"] == right / SMALL["max_pairs"]


def test_reward_accuracy_equals_a_hand_computation_on_four_pairs(trained, evaluated, tiny_llama_dir):
    result = evaluated  # max_pairs=4: the first four eval pairs by row_id
    manifest = read_manifest(trained["checkpoint"])
    beta, max_length = manifest["hyperparameters"]["beta"], manifest["hyperparameters"]["max_length"]
    policy = AutoModelForCausalLM.from_pretrained(trained["checkpoint"])
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    from tasks.train.models import load_tokenizer

    tokenizer = load_tokenizer(trained["checkpoint"])
    rows = sorted(trained["pairs"].split("eval").to_pylist(), key=lambda r: r["row_id"])[:4]

    def logp(model, row: dict, side: str) -> float:  # one sequence per forward: no batching at all
        encoded = encode_example(tokenizer, row["prompt"], row[side], max_length)
        with torch.no_grad():
            return float(sequence_logps(model, pad([encoded], tokenizer.pad_token_id))[0][0])

    margins = [beta * ((logp(policy, r, "chosen") - logp(reference, r, "chosen"))
                       - (logp(policy, r, "rejected") - logp(reference, r, "rejected"))) for r in rows]
    assert min(abs(m) for m in margins) > 1e-4, "a near-tie would make the comparison ill-posed"
    assert result["metrics"]["eval_reward_accuracy"] == sum(m > 0 for m in margins) / 4
    assert result["metrics"]["eval_reward_margin"] == pytest.approx(sum(margins) / 4, abs=1e-4)


def test_a_model_against_itself_has_zero_kl_and_zero_rewards(trained, tiny_llama_dir):
    # The base model directory as a "checkpoint": no manifest, so it is its own reference.
    result = evaluate_checkpoint(tiny_llama_dir, home=trained["home"], eval_snapshot=trained["pairs"],
                                 max_length=128, **SMALL)
    metrics = result["metrics"]
    assert metrics["kl_to_reference"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["eval_reward_margin"] == pytest.approx(0.0, abs=1e-5)
    assert metrics["mean_generated_length"] > 0
    assert result["settings"]["max_length"] == 128


def test_evaluate_flow_records_metrics_plots_and_lineage(trained, evaluated, prefect_harness):
    from flows.evaluate import evaluate_flow

    home, checkpoint_id = trained["home"], trained["id"]
    manifest_sha = hashlib.sha256((trained["checkpoint"] / "manifest.json").read_bytes()).hexdigest()
    result = evaluate_flow(checkpoint_id, home=str(home), **SMALL)

    assert result["checkpoint_id"] == checkpoint_id
    assert result["eval_snapshot_id"] == trained["pairs"].snapshot_id  # same sources, same rows: same snapshot
    assert all(name in result["metrics"] for name in ("eval_reward_accuracy", "eval_reward_margin",
                                                      "kl_to_reference", "mean_generated_length"))
    directory = home / "evaluations" / checkpoint_id
    saved = json.loads((directory / "evaluation.json").read_text())
    assert saved["metrics"] == result["metrics"]
    # Determinism: the same checkpoint, snapshot and settings give the same numbers bit for
    # bit (and the same replies), and this second evaluation ran no reference model.
    assert without_time(result["metrics"]) == without_time(evaluated["metrics"])
    assert saved["generations"] == evaluated["generations"]
    assert saved["reference"]["computed"] == 0
    assert same_protocol(saved, evaluated)
    assert sorted(Path(p).name for p in result["plots"]) == ["loss.png", "rewards.png"]
    for plot in result["plots"]:
        data = Path(plot).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    # The checkpoint directory is left as it was; no stray scratch directories remain.
    assert hashlib.sha256((trained["checkpoint"] / "manifest.json").read_bytes()).hexdigest() == manifest_sha
    assert [p.name for p in (home / "evaluations").iterdir()] == [checkpoint_id]

    with connect(home, read_only=True) as con:
        metrics = json.loads(con.execute("SELECT metrics FROM checkpoints WHERE checkpoint_id = ?",
                                         [checkpoint_id]).fetchone()[0])
        runs = con.execute("SELECT status FROM lineage_runs WHERE run_id = ?", [result["run_id"]]).fetchall()
    assert metrics["eval"]["eval_reward_accuracy"] == result["metrics"]["eval_reward_accuracy"]
    assert metrics["eval"]["eval_snapshot_id"] == result["eval_snapshot_id"]
    assert metrics["eval"]["per_pair"] == result["per_pair"]  # what a later gate compares pair by pair
    assert "train_loss" in metrics  # the training metrics beside it are kept
    assert runs == [("completed",)]

    events = [json.loads(line) for line in (home / "lineage" / "openlineage.jsonl").read_text().splitlines()]
    mine = [e for e in events if e["run"]["runId"] == result["run_id"]]
    assert [e["eventType"] for e in mine] == ["START", "COMPLETE"]
    thumbs_id = lambda dataset: dataset["facets"]["symlinks"]["identifiers"][0]["name"]  # noqa: E731
    assert {thumbs_id(d) for d in mine[0]["inputs"]} == {f"checkpoints/{checkpoint_id}",
                                                     f"snapshots/{result['eval_snapshot_id']}"}
    assert thumbs_id(mine[1]["outputs"][0]) == f"evaluations/{checkpoint_id}"
    assert mine[1]["run"]["facets"]["thumbs"]["metrics"] == result["metrics"]

    # A checkpoint that does not exist: a one-line error, a failed run and a FAIL event.
    with pytest.raises(ThumbsError, match="no-such-checkpoint: no such checkpoint"):
        evaluate_flow("no-such-checkpoint", home=str(home))
    last = json.loads((home / "lineage" / "openlineage.jsonl").read_text().splitlines()[-1])
    assert last["eventType"] == "FAIL" and last["job"]["name"] == "evaluate"


def test_cli_evaluates_on_other_sources_and_again_on_the_same_pairs(prefect_harness, tmp_path, tiny_llama_dir,
                                                                     capsys):
    # A model trained on one source (e.g. synthetic:rlcd) is judged on another's pairs;
    # a second model (its base) then on exactly those pairs.
    from flows.cli import main as thumbs
    from tasks.train.snapshots import load_snapshot

    home = tmp_path / "home"
    ingest_hh_slice(home, rows=120)
    with connect(home) as con:
        ingest_file(con, bind_source("oasst"), DEMO_OASST_TREES, "oasst-batch")
        binarize(con, BinarizeConfig())
    settings = [f"{k}={v}" for k, v in SMALL.items() if k != "device"]
    assert thumbs(["--home", str(home), "evaluate", str(tiny_llama_dir), "--sources", "oasst", *settings]) == 0
    printed = capsys.readouterr().out
    snapshot_id = printed.split("eval pairs: snapshot ")[1].split()[0]
    with connect(home, read_only=True) as con:
        (path,) = con.execute("SELECT path FROM snapshots WHERE snapshot_id = ?", [snapshot_id]).fetchone()
    snapshot = load_snapshot(path)
    assert set(snapshot.split("eval").column("source").to_pylist()) == {"oasst"}
    assert set(snapshot.split("train").column("source").to_pylist()) == {"oasst"}
    accuracy = next(line for line in printed.splitlines() if "eval_reward_accuracy" in line)

    assert thumbs(["--home", str(home), "evaluate", str(tiny_llama_dir), "--eval-snapshot", snapshot_id,
                   *settings]) == 0
    again = capsys.readouterr().out
    assert f"eval pairs: snapshot {snapshot_id} " in again
    assert next(line for line in again.splitlines() if "eval_reward_accuracy" in line) == accuracy
