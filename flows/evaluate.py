"""The `evaluate` flow: resolve the checkpoint → eval pairs snapshot → evaluate → record.

Metrics and their names: tasks/evaluate/evaluation.py. The warehouse is opened only briefly
(to find or freeze the eval snapshot, then to record), never while models run.
Evaluation runs in this process: it is short (about a minute for SmolLM2-135M on
CPU), has no state worth resuming, and holds one model at a time; a GPU work pool
can still run the whole flow on a GPU worker.

What it leaves:
- THUMBS_HOME/evaluations/<checkpoint_id>/: evaluation.json (metrics, settings,
  greedy replies) and loss.png, rewards.png, swapped in whole; the checkpoint
  directory itself is never written;
- `checkpoints.metrics` -> 'eval': the metrics plus eval_snapshot_id and settings,
  what the nightly gate reads back for the champion (tasks.evaluate.evaluation.same_protocol);
- a `lineage_runs` row (flow 'evaluate'), OpenLineage START/COMPLETE/FAIL events
  with the checkpoint and the eval snapshot as inputs, and a Prefect artifact.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.evaluate import evaluation
from tasks.train.checkpoints import checkpoints_dir, snapshot_dataset
from tasks.lineage.runs import dataset, emit_event, failure_recorded, finish_run, new_run_id, start_run
from tasks.train.models import PRESETS, resolve_model
from tasks.evaluate.plots import plot_curves
from tasks.warehouse.publish import publish
from tasks.common.settings import ThumbsError, code_version, release_failed_run, thumbs_home
from tasks.train.snapshots import Snapshot, create_snapshot, load_snapshot
from tasks.warehouse.connection import connect, run_sql

JOB = "evaluate"
RESULT_FILE = "evaluation.json"


def evaluations_dir(home: str | Path | None = None) -> Path:
    return thumbs_home(home) / "evaluations"


@task(name="resolve-checkpoint", cache_policy=NO_CACHE)
def resolve_task(checkpoint: str, home: str) -> tuple[str, dict[str, Any]]:
    """(checkpoint directory, manifest): a path, an id under checkpoints/, an id recorded in
    `checkpoints`, or a plain model directory or preset (evaluated as its own reference)."""
    candidates = [Path(checkpoint).expanduser(), checkpoints_dir(home) / checkpoint]
    found = next((p.resolve() for p in candidates if (p / "config.json").is_file()), None)
    if found is None and checkpoint not in PRESETS:
        with connect(home) as con:
            row = run_sql(con, "statements/evaluation/checkpoint_path.sql", {"checkpoint_id": checkpoint}).fetchone()
        if row is None or not (Path(row[0]) / "config.json").is_file():
            raise ThumbsError(f"{checkpoint}: no such checkpoint (not a directory, not under "
                              f"{checkpoints_dir(home)}{', moved from ' + row[0] if row else ''}); "
                              "see `thumbs query \"select checkpoint_id, path from checkpoints\"`")
        found = Path(row[0])
    found = found or resolve_model(checkpoint)
    return str(found), evaluation.checkpoint_info(found)


@task(name="eval-snapshot", cache_policy=NO_CACHE)
def eval_snapshot_task(info: dict[str, Any], eval_snapshot: str | None, run_id: str, home: str) -> Snapshot:
    """The pairs snapshot to evaluate on: `eval_snapshot` (an id or a path) when given, so
    a champion is re-evaluated on exactly the candidate's pairs; else the current pairs of
    the sources the checkpoint trained on (the same rows give the same snapshot id)."""
    if eval_snapshot and (Path(eval_snapshot) / "snapshot.json").is_file():
        return load_snapshot(eval_snapshot)
    with connect(home) as con:
        if eval_snapshot:
            row = run_sql(con, "statements/evaluation/snapshot.sql", {"snapshot_id": eval_snapshot}).fetchone()
            if row is None:
                raise ThumbsError(f"eval_snapshot={eval_snapshot}: no such snapshot in {home}")
            return load_snapshot(row[0])
        return create_snapshot(con, "pairs", sources=info["hyperparameters"].get("sources"), run_id=run_id,
                               home=home)


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(checkpoint_dir: str, snapshot: Snapshot, settings: dict[str, Any], home: str) -> dict[str, Any]:
    logger = get_run_logger()
    return evaluation.evaluate_checkpoint(checkpoint_dir, home=home, eval_snapshot=snapshot, progress=logger.info,
                                          **settings)


def write_evaluation_dir(result: dict[str, Any], info: dict[str, Any], home: str) -> tuple[Path, list[Path]]:
    """evaluation.json and the PNGs, built beside evaluations/<id>/ and swapped in: a reader
    sees the previous evaluation or this one, each whole."""
    final = evaluations_dir(home) / result["checkpoint_id"]
    scratch = final.with_name(f".{final.name}.{os.getpid()}.partial")
    retired = final.with_name(f".{final.name}.{os.getpid()}.old")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        run_dir = (info.get("training") or {}).get("run_dir")
        plots = plot_curves(Path(run_dir) / "metrics.jsonl", scratch, title=result["checkpoint_id"],
                            evaluation=result["metrics"]) if run_dir else []
        (scratch / RESULT_FILE).write_text(json.dumps({**result, "plots": [p.name for p in plots]}, indent=1,
                                                      sort_keys=True, default=str) + "\n")
        if final.exists():
            os.rename(final, retired)
        os.rename(scratch, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return final, [final / p.name for p in plots]


def report_markdown(result: dict[str, Any], plots: list[Path]) -> str:
    rows = "\n".join(f"| {name} | {result['metrics'][name]:.4g} |" for name in evaluation.METRIC_NAMES)
    links = "\n".join(f"- [{p.name}](file://{p})" for p in plots) or "- no training curves (no metrics.jsonl)"
    replies = "\n".join(f"- **{g['prompt'][:80]}** → {g['reply'][:160]!r}" for g in result["generations"][:3])
    return (f"# Evaluation of `{result['checkpoint_id']}`\n\neval snapshot `{result['eval_snapshot_id']}`, "
            f"settings `{json.dumps(result['settings'])}`\n\n| metric | value |\n|---|---|\n{rows}\n\n"
            f"## Curves\n{links}\n\n## Greedy replies (first 3)\n{replies}\n")


@task(name="record", cache_policy=NO_CACHE)
def record_task(result: dict[str, Any], info: dict[str, Any], run_id: str, home: str) -> dict[str, Any]:
    """The evaluation directory, the checkpoint's metrics, the finished run, the artifact."""
    result = {**result, "run_id": run_id, "code_version": code_version(),
              "evaluated_at": datetime.now(timezone.utc).isoformat()}
    directory, plots = write_evaluation_dir(result, info, home)
    recorded = {**result["metrics"], "eval_snapshot_id": result["eval_snapshot_id"], "settings": result["settings"],
                "evaluated_at": result["evaluated_at"], "run_id": run_id}
    with connect(home) as con:
        updated = run_sql(con, "statements/lineage/record_evaluation.sql", {
            "checkpoint_id": result["checkpoint_id"], "evaluation": json.dumps(recorded)}).fetchall()
        finish_run(con, run_id, "completed")
        publish(con, home)
    if not updated:
        get_run_logger().warning("%s is not in the checkpoints table: metrics kept in %s only",
                                 result["checkpoint_id"], directory / RESULT_FILE)
    key = "evaluation-" + re.sub(r"[^a-z0-9-]+", "-", result["checkpoint_id"].lower())
    create_markdown_artifact(report_markdown(result, plots), key=key[:100],
                             description=f"eval metrics of {result['checkpoint_id']}")
    return {"path": str(directory), "plots": [str(p) for p in plots]}


@flow(name="evaluate", on_failure=[release_failed_run])
def evaluate_flow(checkpoint: str, home: str | None = None, eval_snapshot: str | None = None,
                  max_pairs: int = evaluation.DEFAULTS["max_pairs"],
                  generation_prompts: int = evaluation.DEFAULTS["generation_prompts"],
                  max_new_tokens: int = evaluation.DEFAULTS["max_new_tokens"],
                  kl_samples: int = evaluation.DEFAULTS["kl_samples"], seed: int = evaluation.DEFAULTS["seed"],
                  device: str = "auto", max_length: int | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint (id or path) on the eval split.

    Returns {checkpoint_id, metrics, plots, eval_snapshot_id, settings, path, run_id};
    metrics are named in tasks/evaluate/evaluation.py. To compare two checkpoints, evaluate the
    second with eval_snapshot=<the first's eval_snapshot_id>. max_length defaults to the
    checkpoint's training max_length (a base model's baseline: pass the checkpoint's).
    """
    home = str(thumbs_home(home))
    settings = {"max_pairs": max_pairs, "generation_prompts": generation_prompts, "max_new_tokens": max_new_tokens,
                "kl_samples": kl_samples, "seed": seed, "device": device, "max_length": max_length}
    run_id = new_run_id()
    with connect(home) as con:
        start_run(con, JOB, {"checkpoint": checkpoint, "eval_snapshot": eval_snapshot, **settings}, run_id)
    inputs: list[dict] = []
    with failure_recorded(run_id, JOB, inputs, home):
        checkpoint_dir, info = resolve_task(checkpoint, home)
        inputs.append(dataset(f"checkpoints/{info['checkpoint_id']}", path=checkpoint_dir, algo=info["algo"]))
        snapshot = eval_snapshot_task(info, eval_snapshot, run_id, home)
        inputs.append(snapshot_dataset(snapshot))
        emit_event("START", run_id, JOB, inputs=inputs, home=home, facets={"settings": settings})
        result = evaluate_task(checkpoint_dir, snapshot, settings, home)
        recorded = record_task(result, info, run_id, home)
    emit_event("COMPLETE", run_id, JOB, inputs=inputs, home=home, outputs=[dataset(
        f"evaluations/{result['checkpoint_id']}", path=recorded["path"], metrics=result["metrics"],
        evalSnapshotId=snapshot.snapshot_id, settings=result["settings"])])
    return {"checkpoint_id": result["checkpoint_id"], "metrics": result["metrics"], "plots": recorded["plots"],
            "eval_snapshot_id": snapshot.snapshot_id, "settings": result["settings"], "path": recorded["path"],
            "run_id": run_id}
