"""The compare stage's Prefect tasks: snapshots → shared reference log-probs → one task per
cell (train in the trainer's child process, record, evaluate, experiments row) → table,
plots and artifact.

A cell's run directory is runs/<comparison_id>-<cell hash>, fixed by the cell: a cell
killed mid-training resumes from its saved state, one whose checkpoint exists is not
trained again, and one with an experiments row is not even started.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from schemas.compare import Cell
from schemas.nightly import EvaluationSettings
from tasks.common.files import replaced_file
from tasks.common.home import Home
from tasks.common.retrying import IO_RETRIES
from tasks.compare import grid
from tasks.evaluate import evaluation
from tasks.evaluate.plots import plot_against_beta
from tasks.evaluate.tasks import record_task as record_evaluation
from tasks.train.snapshots import Snapshot, create_snapshot
from tasks.train.tasks import record_task as record_checkpoint
from tasks.train.tasks import train_task
from tasks.warehouse.connection import connect, run_sql


@task(name="snapshots", cache_policy=NO_CACHE, **IO_RETRIES)
def snapshots_task(cells: list[Cell], run_id: str, home: Home) -> tuple[dict[str, Snapshot], Snapshot]:
    """({cell name: the snapshot it trains on}, the pairs snapshot every cell is evaluated on),
    each distinct snapshot frozen once."""
    frozen: dict[tuple, Snapshot] = {}
    with connect(home) as con:
        for key in sorted({grid.snapshot_key(c) for c in cells} | {("pairs", False, None)}, key=repr):
            kind, one_per_prompt, sources = key
            frozen[key] = create_snapshot(con, kind, sources=sources, one_per_prompt=one_per_prompt, run_id=run_id,
                                          home=home)
    return {c.name: frozen[grid.snapshot_key(c)] for c in cells}, frozen[("pairs", False, None)]


@task(name="finished-cells", cache_policy=NO_CACHE)
def finished_cells_task(comparison_id: str, home: Home) -> list[dict[str, Any]]:
    """The comparison's rows in `experiments`: the cells a resumed comparison keeps."""
    with connect(home) as con:
        cursor = run_sql(con, "statements/compare/cells.sql", {"comparison_id": comparison_id})
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, values)) for values in cursor.fetchall()]
    for row in rows:
        row["config"], row["metrics"] = json.loads(row["config"]), json.loads(row["metrics"])
    return rows


@task(name="shared-reference", cache_policy=NO_CACHE)
def reference_task(cells: list[Cell], snapshots: dict[str, Snapshot], eval_snapshot: Snapshot,
                   settings: EvaluationSettings, home: Home) -> dict[str, Any]:
    from tasks.compare.reference import shared_reference  # torch: imported when a grid runs, not at CLI start

    logger = get_run_logger()
    shared = shared_reference(cells, snapshots, eval_snapshot, settings, home)
    logger.info("reference log-probs: %d sequences in %d cache file(s), %d computed now",
                shared["sequences"], shared["groups"], shared["computed"])
    return shared


def cell_run_dir(comparison_id: str, cell: Cell, home: Home) -> Path:
    return home.runs / f"{comparison_id}-{hashlib.sha256(cell.name.encode()).hexdigest()[:10]}"


@task(name="cell", cache_policy=NO_CACHE, task_run_name="cell {cell.name}")
def cell_task(cell: Cell, snapshot: Snapshot, eval_snapshot: Snapshot, settings: EvaluationSettings,
              comparison_id: str, run_id: str, home: Home) -> dict[str, Any]:
    """Train the cell (resuming its run directory), record its checkpoint, evaluate it on the
    grid's eval pairs, and write its experiments row; the row."""
    logger = get_run_logger()
    config = cell.config
    result = train_task.fn(config, snapshot, cell_run_dir(comparison_id, cell, home), run_id, home, True)
    manifest = record_checkpoint.fn(result, run_id, home)
    evaluated = evaluation.evaluate_checkpoint(result["path"], home=home, eval_snapshot=eval_snapshot,
                                               device=config.device, progress=logger.info, **settings.model_dump())
    record_evaluation.fn(evaluated, manifest, run_id, home)
    row = {"comparison_id": comparison_id, "cell": cell.name, "line": cell.line, "algo": config.algo,
           "beta": cell.beta, "checkpoint_id": result["checkpoint_id"], "checkpoint_path": result["path"],
           "snapshot_id": snapshot.snapshot_id, "eval_snapshot_id": eval_snapshot.snapshot_id, "run_id": run_id,
           "config": config.model_dump(), "metrics": {**evaluated["metrics"], "train": result["metrics"],
                                                      "reference_cache": result.get("reference_cache"),
                                                      "eval_reference_computed": evaluated["reference"]["computed"]}}
    with connect(home) as con:
        run_sql(con, "statements/compare/record_cell.sql", {
            **row, "config": json.dumps(row["config"]), "metrics": json.dumps(row["metrics"]),
            "finished_at": datetime.now(timezone.utc).replace(tzinfo=None)})
    logger.info("cell %s: %s", cell.name, grid.format_value(evaluated["metrics"], "eval_reward_accuracy"))
    return row


@task(name="report", cache_policy=NO_CACHE)
def report_task(comparison_id: str, rows: list[dict[str, Any]], notes: list[str], home: Home) -> dict[str, Any]:
    """The plots (comparisons/<id>/<metric>.png) and the markdown artifact; their paths."""
    out_dir = home.root / "comparisons" / comparison_id
    plots = plot_against_beta(rows, grid.shown_metrics(rows), out_dir, title=comparison_id)
    text = grid.markdown(comparison_id, rows, [str(p) for p in plots], notes)
    with replaced_file(out_dir / "comparison.md") as scratch:
        scratch.write_text(text)
    artifact = create_markdown_artifact(text, key=comparison_id, description=f"comparison {comparison_id}")
    return {"plots": [str(p) for p in plots], "markdown": str(out_dir / "comparison.md"), "artifact": str(artifact)}
