"""Optional experiment tracking in MLflow (`tracking=mlflow`), for teams whose runs
are compared there: a training run becomes an MLflow run (named by its checkpoint id)
with the training options as params, every step's metrics, the final metrics, and
the checkpoint's manifest and model card as artifacts; its evaluation later adds the
evaluation metrics and plots to the same MLflow run.

Where: MLFLOW_TRACKING_URI when set (a server, a database), else a SQLite store at
THUMBS_HOME/mlflow.db with artifacts under THUMBS_HOME/mlruns. (MLflow 3 refuses its
old ./mlruns file store by default, in maintenance mode; SQLite is what it advises.)
MLflow is an extra (`pip install 'thumbs[mlflow]'`), imported only when tracking is on.
thumbs' own tables stay the record; MLflow gets a copy.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

from tasks.common.home import Home, HomeLike
from tasks.common.settings import ThumbsError

EXPERIMENT = "thumbs"
CHECKPOINT_TAG = "thumbs.checkpoint_id"
MAX_PARAM_LENGTH = 500  # MLflow's limit on a param value


def track_training(manifest: dict[str, Any], checkpoint: Path, metrics_file: Path, home: HomeLike) -> str:
    """Log a finished training run; returns the MLflow run id."""
    from mlflow.entities import Metric, Param, RunTag

    client, experiment_id = _client(home)
    run = client.create_run(experiment_id, run_name=manifest["checkpoint_id"], tags={
        CHECKPOINT_TAG: manifest["checkpoint_id"], "thumbs.run_id": manifest["run_id"],
        "thumbs.snapshot_id": manifest["snapshot_id"], "thumbs.algo": manifest["algo"],
        "thumbs.base_model": manifest["base_model"]["name"], "thumbs.code_version": manifest["code_version"]})
    run_id = run.info.run_id
    params = [Param(key, str(value)[:MAX_PARAM_LENGTH]) for key, value in sorted(manifest["config"].items())]
    now = int(time.time() * 1000)
    steps = [json.loads(line) for line in metrics_file.read_text().splitlines()] if metrics_file.is_file() else []
    metrics = [Metric(key, float(value), now, record["step"])
               for record in steps for key, value in record.items() if key != "step" and _number(value)]
    final_step = steps[-1]["step"] if steps else 0
    metrics += [Metric(f"final_{key}", float(value), now, final_step)
                for key, value in manifest["metrics"].items() if _number(value)]
    for batch in _batches(params, 100):
        client.log_batch(run_id, params=batch)
    for batch in _batches(metrics, 1000):
        client.log_batch(run_id, metrics=batch)
    client.log_batch(run_id, tags=[RunTag("thumbs.checkpoint_path", str(checkpoint))])
    for name in ("manifest.json", "README.md"):  # README.md: the model card, when written
        if (checkpoint / name).is_file():
            client.log_artifact(run_id, str(checkpoint / name))
    client.set_terminated(run_id)
    return run_id


def track_evaluation(checkpoint_id: str, metrics: dict[str, Any], artifacts: Iterable[str | Path],
                     home: HomeLike) -> str | None:
    """Add an evaluation to the MLflow run of its checkpoint; None when that checkpoint
    was not trained with tracking=mlflow (nothing to add to)."""
    from mlflow.entities import Metric

    client, experiment_id = _client(home)
    found = client.search_runs([experiment_id], filter_string=f"tags.`{CHECKPOINT_TAG}` = '{checkpoint_id}'",
                               max_results=1)
    if not found:
        return None
    run_id = found[0].info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(key, float(value), now, 0)
                                      for key, value in metrics.items() if _number(value)])
    for artifact in artifacts:
        if Path(artifact).is_file():
            client.log_artifact(run_id, str(artifact), artifact_path="evaluation")
    return run_id


def tracking_uri(home: HomeLike) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Home.of(home).root.absolute() / 'mlflow.db'}"


def _client(home: HomeLike):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ThumbsError("tracking=mlflow needs MLflow: pip install 'thumbs[mlflow]'") from None
    client = MlflowClient(tracking_uri=tracking_uri(home))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return client, experiment.experiment_id
    local = None if os.environ.get("MLFLOW_TRACKING_URI") else (Home.of(home).root.absolute() / "mlruns").as_uri()
    return client, client.create_experiment(EXPERIMENT, artifact_location=local)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
