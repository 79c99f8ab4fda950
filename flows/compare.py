"""The `compare` flow: a grid of algorithms × β (and variant lines) trained from shared
snapshots and shared reference log-probs, evaluated on the same eval pairs, written to
`experiments`, a table, plots and an artifact (tasks/compare/tasks.py).

Cells run as mapped Prefect tasks one at a time (max_workers=1): each trains in its own
child process and holds the device alone. Run the flow on the GPU pool's deployment to
train there. Running a killed comparison again resumes it: cells with an experiments row
are kept, the interrupted one continues from its saved state.
"""
from __future__ import annotations

from typing import Any, Sequence

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from schemas.compare import load_grid
from tasks.common.home import Home
from tasks.common.settings import ThumbsError, release_failed_run
from tasks.compare import grid
from tasks.compare.tasks import cell_task, finished_cells_task, reference_task, report_task, snapshots_task
from tasks.lineage.lifecycle import run_lifecycle


@flow(name="compare", on_failure=[release_failed_run], task_runner=ThreadPoolTaskRunner(max_workers=1))
def compare_flow(overrides: Sequence[str] = (), config_path: str | None = None,
                 home: str | None = None) -> dict[str, Any]:
    """Train and evaluate every cell of the grid the overrides describe (schemas/compare.py).

    Returns {comparison_id, rows (one per cell), trained (cells trained by this run),
    reference (the shared reference pass), plots, markdown, run_id}.
    """
    grid_config, cells = load_grid(config_path, list(overrides))
    home = Home.of(home)
    with run_lifecycle("compare", {"overrides": list(overrides), "config_path": config_path}, home,
                       one_at_a_time=True) as run:
        snapshots, eval_snapshot = snapshots_task(cells, run.run_id, home)
        comparison_id = grid.comparison_id(cells, {c.name: snapshots[c.name].snapshot_id for c in cells}
                                           | {"eval": eval_snapshot.snapshot_id}, grid_config.evaluation.model_dump())
        finished = {row["cell"] for row in finished_cells_task(comparison_id, home)}
        todo = [c for c in cells if c.name not in finished]
        reference = reference_task(todo, snapshots, eval_snapshot, grid_config.evaluation, home) if todo else None
        futures = cell_task.map(todo, [snapshots[c.name] for c in todo], unmapped(eval_snapshot),
                                unmapped(grid_config.evaluation), unmapped(comparison_id), unmapped(run.run_id),
                                unmapped(home))
        for future in futures:
            future.wait()
        states = [future.state for future in futures]
        rows = finished_cells_task(comparison_id, home)
        failed = [c.name for c, state in zip(todo, states) if not state.is_completed()]
        notes = [f"{len(cells)} cells, {len(finished)} kept from an earlier run, {len(todo) - len(failed)} trained now"
                 + (f", {len(failed)} failed: {', '.join(failed)}" if failed else ""),
                 f"eval pairs: snapshot `{eval_snapshot.snapshot_id}`, {grid_config.evaluation.max_pairs} at most",
                 "reference log-probs: " + ("none needed" if reference is None else
                                            f"{reference['sequences']} sequences, {reference['computed']} computed "
                                            f"once before the cells ({reference['groups']} cache file(s))")]
        report = report_task(comparison_id, rows, notes, home) if rows else {"plots": [], "markdown": None}
        if failed:
            first = next(s for s in states if not s.is_completed())
            raise ThumbsError(f"comparison {comparison_id}: {len(failed)} cell(s) failed ({failed[0]}: "
                              f"{first.message}); run it again to resume, finished cells are kept")
        run.metrics = {"cells": len(rows), "trained": len(todo)}
    return {"comparison_id": comparison_id, "rows": rows, "trained": [c.name for c in todo], "reference": reference,
            "plots": report["plots"], "markdown": report["markdown"], "run_id": run.run_id, "notes": notes}
