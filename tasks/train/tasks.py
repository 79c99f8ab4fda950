"""The train stage's Prefect tasks: snapshot → train (in its own process) → record.

Kept apart from snapshots.py and checkpoints.py: the trainer child process imports
those, and importing Prefect there would cost it seconds for nothing.

The warehouse is opened only briefly, to freeze a snapshot and later to record the
checkpoint: training reads the snapshot's Parquet files and never holds the warehouse
lock, so ingest and analysts carry on meanwhile. Training runs in a child process
(`python -m tasks.train.trainer`), the unit a GPU worker picks up; its progress comes
back as JSON lines on stdout, its log goes to runs/<id>/trainer.log.
"""
from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from schemas.config import load_config
from schemas.train import TrainConfig
from tasks.common.home import Home
from tasks.common.progress import enabled
from tasks.common.retrying import IO_RETRIES
from tasks.common.settings import PROJECT_ROOT, ThumbsError
from tasks.train import checkpoints as ckpt
from tasks.train.algorithms import LOSSES
from tasks.train.distributed import launch_command
from tasks.train.snapshots import Snapshot, create_snapshot
from tasks.train.trainer import PROTOCOL
from tasks.warehouse.connection import connect, run_sql


def train_config(algo: str, config_path: str | None, overrides: Sequence[str]) -> TrainConfig:
    """The config file and overrides, with `algo` from the command line; a file or override
    naming another algorithm is a mistake worth stopping for."""
    config = load_config(TrainConfig, config_path, [*overrides, f"algo={algo}"])
    named = load_config(TrainConfig, config_path, overrides)
    if "algo" in named.model_fields_set and named.algo != algo:
        raise ThumbsError(f"--algo {algo} disagrees with algo={named.algo} in the config or overrides")
    return config


@task(name="snapshot", cache_policy=NO_CACHE, **IO_RETRIES)
def snapshot_task(config: TrainConfig, run_id: str, home: Home) -> Snapshot:
    kind = "pairs" if LOSSES[config.algo].batch == "paired" else "feedback"
    with connect(home) as con:
        return create_snapshot(con, kind, sources=config.sources, one_per_prompt=config.one_per_prompt,
                               run_id=run_id, home=home)


def run_directory(config: TrainConfig, snapshot: Snapshot, run_id: str, home: Home, resume: bool) -> Path:
    """runs/<run_id>, or with resume the latest interrupted run with this config and snapshot."""
    if resume:
        interrupted = ckpt.find_resumable(ckpt.run_fingerprint(config, snapshot.snapshot_id), home)
        if interrupted is not None:
            return interrupted
        get_run_logger().info("no interrupted run with this config and snapshot: starting a new one")
    return home.runs / run_id


def _child_error(events: list[dict], log_file: Path, returncode: int) -> str:
    # The first error: with several processes, the others' failures follow from it.
    for event in events:
        if event.get("event") == "error":
            return event["message"]
    if returncode < 0:
        return f"the trainer was killed (signal {-returncode}); run again with resume to continue"
    lines = [ln.strip() for ln in log_file.read_text(errors="replace").splitlines() if ln.strip()]
    return f"the trainer failed: {lines[-1] if lines else f'exit status {returncode}'} (log: {log_file})"


@task(name="train", cache_policy=NO_CACHE)
def train_task(config: TrainConfig, snapshot: Snapshot, run_dir: Path, run_id: str, home: Home, resume: bool,
               on_event: Callable[[dict], None] | None = None, nproc: int | str = 1,
               torchrun_options: Sequence[str] = ()) -> dict[str, Any]:
    """Run tasks.train.trainer in a child process (under torchrun, `nproc` of them per
    node: tasks/train/distributed.py), relaying its progress; its result, or a ThumbsError."""
    logger = get_run_logger()
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "config.json"
    config_file.write_text(json.dumps(config.model_dump(), indent=1) + "\n")
    command = launch_command(["--config", str(config_file), "--snapshot", str(snapshot.path), "--run-dir",
                              str(run_dir), "--run-id", run_id, "--home", str(home), *(["--resume"] if resume else [])],
                             nproc, torchrun_options)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    log_file = run_dir / "trainer.log"
    events: list[dict] = []
    every = max(1, config.steps // 20)
    with open(log_file, "ab") as log:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, cwd=PROJECT_ROOT, env=env, text=True)
        assert child.stdout is not None
        for line in child.stdout:
            if not line.startswith(PROTOCOL):
                log.write(line.encode())  # stray prints of libraries: kept in the log
                continue
            event = json.loads(line[len(PROTOCOL):])
            events.append(event)
            if on_event:
                on_event(event)
            if event.get("event") == "step" and (event["step"] % every == 0 or event["step"] == config.steps):
                logger.info("step %d/%d loss %.4f reward_accuracy %s %.2f samples/s", event["step"], config.steps,
                            event["loss"], event.get("reward_accuracy", "-"), event["samples_per_s"])
        returncode = child.wait()
    if returncode != 0:
        raise ThumbsError(_child_error(events, log_file, returncode))
    done = [e for e in events if e.get("event") == "done"]
    if not done or not done[-1].get("finished"):
        raise ThumbsError(f"the trainer stopped without a checkpoint (log: {log_file})")
    return done[-1]


@task(name="record", cache_policy=NO_CACHE)
def record_task(result: dict[str, Any], run_id: str, home: Home) -> dict[str, Any]:
    """The checkpoint's row in `checkpoints`; its manifest."""
    manifest = ckpt.read_manifest(result["path"])
    with connect(home) as con:
        ckpt.record_checkpoint(con, manifest, Path(result["path"]), run_id)
    return manifest


@task(name="train-on-deployment", cache_policy=NO_CACHE)
def train_on_deployment(deployment: str, algo: str, config_path: str | None, overrides: list[str],
                        home: Home) -> dict[str, Any]:
    """Run training as a deployment (e.g. on the gpu pool) and wait for its checkpoint."""
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters={"algo": algo, "config_path": config_path, "overrides": overrides,
                                                 "home": str(home), "resume": True}, timeout=None)
    if not run.state or not run.state.is_completed():
        raise ThumbsError(f"training deployment {deployment} ended {run.state.name if run.state else 'unknown'} "
                          f"(flow run {run.id})")
    with connect(home) as con:
        rows = run_sql(con, "statements/promotion/checkpoint_of_run.sql", {"run_id": str(run.id)}).fetchall()
    if not rows:
        raise ThumbsError(f"training deployment {deployment} finished but recorded no checkpoint (flow run {run.id})")
    return {"checkpoint_id": rows[0][0], "path": rows[0][1]}


@contextmanager
def progress_bar(show: bool, total_hint: int) -> Iterator[Callable[[dict], None] | None]:
    """A terminal bar with loss, reward accuracy and samples/s; None when not interactive."""
    if not enabled(show):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[stats]}"))
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        reference = bar.add_task("reference", total=None, stats="", visible=False)
        training = bar.add_task("train", total=total_hint, stats="")

        def on_event(event: dict) -> None:
            kind = event.get("event")
            if kind == "reference":
                bar.update(reference, visible=True, total=event["total"], completed=event["done"],
                           stats="reference log-probs")
            elif kind == "start":
                bar.update(training, total=event["steps"], completed=event["step"])
            elif kind == "step":
                accuracy = event.get("reward_accuracy")
                stats = f"loss {event['loss']:.4f}" + (f"  acc {accuracy:.2f}" if accuracy is not None else "")
                bar.update(training, completed=event["step"], stats=f"{stats}  {event['samples_per_s']:.1f} samples/s")

        yield on_event
