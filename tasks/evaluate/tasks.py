"""The evaluate stage's Prefect tasks: resolve the checkpoint → eval pairs snapshot →
evaluate → record, and the nightly gate's champion and promotion.

What an evaluation leaves:
- THUMBS_HOME/evaluations/<checkpoint_id>/: evaluation.json (metrics, settings,
  greedy replies) and loss.png, rewards.png, swapped in whole; in the checkpoint
  directory only its model card (README.md), rewritten with the metrics;
- `checkpoints.metrics` -> 'eval': the metrics plus eval_snapshot_id and settings,
  what the nightly gate reads back for the champion (tasks.evaluate.evaluation.same_protocol);
- a Prefect artifact with the metrics, the curves and a few greedy replies.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from schemas.nightly import GateConfig
from schemas.train import TrainConfig
from tasks.common.files import replaced_directory
from tasks.common.home import Home
from tasks.common.settings import ThumbsError, code_version
from tasks.evaluate import evaluation
from tasks.evaluate.intervals import headline_names, with_interval
from tasks.evaluate.plots import plot_curves
from tasks.report.model_card import update_model_card
from tasks.evaluate.promotion import (GateDecision, current_champion, gate, point_champion_alias, record_decision,
                                     what_changed)
from tasks.train.checkpoints import read_manifest
from tasks.train.models import PRESETS, is_model_dir, resolve_model
from tasks.train.snapshots import Snapshot, create_snapshot, load_snapshot
from tasks.warehouse.connection import connect, run_sql

RESULT_FILE = "evaluation.json"


@task(name="resolve-checkpoint", cache_policy=NO_CACHE)
def resolve_task(checkpoint: str, home: Home) -> tuple[str, dict[str, Any]]:
    """(checkpoint directory, manifest): a path, an id under checkpoints/, an id recorded in
    `checkpoints`, or a plain model directory or preset (evaluated as its own reference)."""
    candidates = [Path(checkpoint).expanduser(), home.checkpoints / checkpoint]
    found = next((p.resolve() for p in candidates if is_model_dir(p)), None)
    if found is None and checkpoint not in PRESETS:
        with connect(home) as con:
            row = run_sql(con, "statements/evaluation/checkpoint_path.sql", {"checkpoint_id": checkpoint}).fetchone()
        if row is None or not is_model_dir(Path(row[0])):
            raise ThumbsError(f"{checkpoint}: no such checkpoint (not a directory, not under "
                              f"{home.checkpoints}{', moved from ' + row[0] if row else ''}); "
                              "see `thumbs query \"select checkpoint_id, path from checkpoints\"`")
        found = Path(row[0])
    found = found or resolve_model(checkpoint)
    return str(found), evaluation.checkpoint_info(found)


@task(name="eval-snapshot", cache_policy=NO_CACHE)
def eval_snapshot_task(info: dict[str, Any], eval_snapshot: str | None, run_id: str, home: Home,
                       sources: list[str] | None = None) -> Snapshot:
    """The pairs snapshot to evaluate on: `eval_snapshot` (an id or a path) when given, so
    a champion is re-evaluated on exactly the candidate's pairs; else the current pairs of
    `sources`, or of the sources the checkpoint trained on (the same rows give the same
    snapshot id)."""
    if eval_snapshot and (Path(eval_snapshot) / "snapshot.json").is_file():
        return load_snapshot(eval_snapshot)
    with connect(home) as con:
        if eval_snapshot:
            row = run_sql(con, "statements/evaluation/snapshot.sql", {"snapshot_id": eval_snapshot}).fetchone()
            if row is None:
                raise ThumbsError(f"eval_snapshot={eval_snapshot}: no such snapshot in {home}")
            return load_snapshot(row[0])
        return create_snapshot(con, "pairs", sources=sources or info["hyperparameters"].get("sources"),
                               run_id=run_id, home=home)


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(checkpoint_dir: str, snapshot: Snapshot, settings: dict[str, Any], home: Home) -> dict[str, Any]:
    logger = get_run_logger()
    return evaluation.evaluate_checkpoint(checkpoint_dir, home=home, eval_snapshot=snapshot, progress=logger.info,
                                          **settings)


def write_evaluation_dir(result: dict[str, Any], info: dict[str, Any], home: Home) -> tuple[Path, list[Path]]:
    """evaluation.json and the PNGs, built beside evaluations/<id>/ and swapped in: a reader
    sees the previous evaluation or this one, each whole."""
    final = home.evaluations / result["checkpoint_id"]
    with replaced_directory(final, replace_existing=True) as scratch:
        run_dir = (info.get("training") or {}).get("run_dir")
        plots = plot_curves(Path(run_dir) / "metrics.jsonl", scratch, title=result["checkpoint_id"],
                            evaluation=result["metrics"]) if run_dir else []
        (scratch / RESULT_FILE).write_text(json.dumps({**result, "plots": [p.name for p in plots]}, indent=1,
                                                      sort_keys=True, default=str) + "\n")
    return final, [final / p.name for p in plots]


def evaluation_markdown(result: dict[str, Any], plots: list[Path]) -> str:
    rows = "\n".join(f"| {name} | {with_interval(result['metrics'], name)} |"
                     for name in headline_names(result["metrics"]))
    links = "\n".join(f"- [{p.name}](file://{p})" for p in plots) or "- no training curves (no metrics.jsonl)"
    replies = "\n".join(f"- **{g['prompt'][:80]}** → {g['reply'][:160]!r}" for g in result["generations"][:3])
    return (f"# Evaluation of `{result['checkpoint_id']}`\n\neval snapshot `{result['eval_snapshot_id']}`, "
            f"settings `{json.dumps(result['settings'])}`\n\n| metric | value [95% interval] n |\n|---|---|\n{rows}\n\n"
            f"## Curves\n{links}\n\n## Greedy replies (first 3)\n{replies}\n")


@task(name="record", cache_policy=NO_CACHE)
def record_task(result: dict[str, Any], info: dict[str, Any], run_id: str, home: Home) -> dict[str, Any]:
    """The evaluation directory, the checkpoint's metrics, the artifact."""
    result = {**result, "run_id": run_id, "code_version": code_version(),
              "evaluated_at": datetime.now(timezone.utc).isoformat()}
    directory, plots = write_evaluation_dir(result, info, home)
    # per_pair: what a later gate compares a new candidate against, pair by pair.
    recorded = {**result["metrics"], "eval_snapshot_id": result["eval_snapshot_id"], "settings": result["settings"],
                "evaluated_at": result["evaluated_at"], "run_id": run_id, "per_pair": result.get("per_pair")}
    with connect(home) as con:
        updated = run_sql(con, "statements/lineage/record_evaluation.sql", {
            "checkpoint_id": result["checkpoint_id"], "evaluation": json.dumps(recorded)}).fetchall()
    update_model_card(result["checkpoint_path"], home, evaluation=recorded)
    if not updated:
        get_run_logger().warning("%s is not in the checkpoints table: metrics kept in %s only",
                                 result["checkpoint_id"], directory / RESULT_FILE)
    key = "evaluation-" + re.sub(r"[^a-z0-9-]+", "-", result["checkpoint_id"].lower())
    create_markdown_artifact(evaluation_markdown(result, plots), key=key[:100],
                             description=f"eval metrics of {result['checkpoint_id']}")
    return {"path": str(directory), "plots": [str(p) for p in plots]}


@task(name="champion", cache_policy=NO_CACHE)
def champion_task(home: Home) -> dict[str, Any] | None:
    with connect(home) as con:
        return current_champion(con)


@task(name="what-changed", cache_policy=NO_CACHE)
def training_reason_task(champion: dict[str, Any] | None, config: TrainConfig, snapshot_id: str,
                         force: bool) -> tuple[bool, str]:
    """Whether to train, and why: what changed since the champion was trained (or why not)."""
    if champion is None:
        return True, "no champion yet"
    changes = what_changed(read_manifest(champion["path"]), config.model_dump(), snapshot_id, code_version())
    if changes or force:
        return True, "; ".join(changes) or "forced"
    return False, (f"champion {champion['checkpoint_id']} was trained on snapshot {snapshot_id} with these "
                   "options and this code: nothing new to learn")


@task(name="promote", cache_policy=NO_CACHE)
def promote_task(checkpoint: dict[str, Any], candidate: dict[str, float], champion: dict[str, Any] | None,
                 champion_eval: dict[str, float] | None, gate_config: GateConfig, run_id: str,
                 home: Home) -> GateDecision:
    decision = gate(candidate, champion_eval, gate_config)
    get_run_logger().info("%s: %s", decision.headline, decision.reason)
    with connect(home) as con:
        record_decision(con, checkpoint["checkpoint_id"], run_id, decision,
                        champion["checkpoint_id"] if champion else None)
    update_model_card(checkpoint["path"], home, gate={
        "promoted": decision.passed, "reason": decision.reason, "decided_at": datetime.now(timezone.utc).isoformat(),
        "previous_champion": champion["checkpoint_id"] if champion else None})
    if decision.passed:
        point_champion_alias(checkpoint["path"], home)
    return decision
