"""The `train` flow: snapshot → train (in its own process) → record (tasks/train/tasks.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from prefect import flow

from tasks.common.home import Home
from tasks.common.settings import release_failed_run
from tasks.lineage.lifecycle import run_lifecycle
from tasks.lineage.tracking import track_training
from tasks.train.checkpoints import METRICS, checkpoint_dataset, snapshot_dataset
from tasks.train.tasks import progress_bar, record_task, run_directory, snapshot_task, train_config, train_task


@flow(name="train", on_failure=[release_failed_run])
def train_flow(algo: str, config_path: str | None = None, overrides: Sequence[str] = (), home: str | None = None,
               resume: bool = False, show_progress: bool = False, nproc: int | str = 1,
               torchrun_options: Sequence[str] = ()) -> dict[str, Any]:
    """Train `algo` on a fresh snapshot; {checkpoint_id, path, snapshot_id, metrics, run_id, run_dir}.

    resume=True continues the latest interrupted run with the same config and snapshot
    (from its last saved state) instead of starting over. nproc > 1 ("gpu": one per
    visible GPU) trains with that many processes per node under torchrun, with
    torchrun_options (--nnodes, --rdzv-endpoint, ...) passed through (docs/distributed.md).
    """
    config = train_config(algo, config_path, list(overrides))
    home = Home.of(home)
    with run_lifecycle("train", config.model_dump(), home, lineage_events=True) as run:
        snapshot = snapshot_task(config, run.run_id, home)
        run.inputs.append(snapshot_dataset(snapshot))
        run.announce(config.model_dump())
        run_dir = run_directory(config, snapshot, run.run_id, home, resume)
        with progress_bar(show_progress, config.steps) as on_event:
            result = train_task(config, snapshot, run_dir, run.run_id, home, resume, on_event, nproc,
                                torchrun_options)
        manifest = record_task(result, run.run_id, home)
        run.outputs.append(checkpoint_dataset(manifest, Path(result["path"])))
        run.metrics = result["metrics"]
        if config.tracking == "mlflow":
            track_training(manifest, Path(result["path"]), Path(result["run_dir"]) / METRICS, home)
    return {"checkpoint_id": result["checkpoint_id"], "path": result["path"], "snapshot_id": snapshot.snapshot_id,
            "metrics": result["metrics"], "run_id": run.run_id, "run_dir": result["run_dir"]}
