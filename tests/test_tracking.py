"""Optional MLflow tracking (`tracking=mlflow`) with a real local MLflow store: a
tiny training run and its evaluation become one MLflow run, found by
`mlflow.search_runs`, with the options as params, every step's metrics, the
evaluation's metrics and the artifacts; without the option nothing is logged."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow", reason="MLflow is an extra: pip install 'thumbs[mlflow]'")

from fixtures_models import model_cache, tiny_llama_dir  # noqa: E402,F401
from test_trainer import ingest_hh_slice  # noqa: E402


def test_training_and_evaluation_land_in_one_mlflow_run(prefect_harness, home, tiny_llama_dir, monkeypatch):
    from flows.evaluate import evaluate_flow
    from flows.train import train_flow
    from tasks.lineage.tracking import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ingest_hh_slice(home, rows=24)
    common = [f"model={tiny_llama_dir}", "max_length=128", "batch_size=2", "steps=3", "eval_batches=1", "device=cpu"]
    untracked = train_flow("dpo", overrides=common, home=str(home))
    trained = train_flow("dpo", overrides=[*common, "tracking=mlflow", "seed=1"], home=str(home))
    evaluated = evaluate_flow(trained["checkpoint_id"], home=str(home), max_pairs=4, generation_prompts=1,
                              max_new_tokens=4, kl_samples=1, device="cpu")

    mlflow.set_tracking_uri(tracking_uri(home))
    assert tracking_uri(home) == f"sqlite:///{home / 'mlflow.db'}"
    runs = mlflow.search_runs(experiment_names=["thumbs"])
    assert list(runs["tags.thumbs.checkpoint_id"]) == [trained["checkpoint_id"]]  # the untracked run is not there
    assert untracked["checkpoint_id"] not in set(runs["tags.mlflow.runName"])
    [run] = runs.to_dict("records")
    assert run["params.algo"] == "dpo" and run["params.steps"] == "3" and run["params.tracking"] == "mlflow"
    assert run["metrics.eval_reward_accuracy"] == pytest.approx(evaluated["metrics"]["eval_reward_accuracy"])
    assert run["metrics.final_train_loss"] == pytest.approx(trained["metrics"]["train_loss"])

    client = mlflow.tracking.MlflowClient(tracking_uri(home))
    history = client.get_metric_history(run["run_id"], "loss")
    logged = [json.loads(line) for line in (Path(trained["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [(m.step, m.value) for m in history] == [(r["step"], pytest.approx(r["loss"])) for r in logged]
    artifacts = {a.path for a in client.list_artifacts(run["run_id"])}
    assert "manifest.json" in artifacts
    assert {Path(a.path).name for a in client.list_artifacts(run["run_id"], "evaluation")} >= {
        Path(p).name for p in evaluated["plots"]}
    assert (home / "mlruns").is_dir()  # artifacts under THUMBS_HOME
