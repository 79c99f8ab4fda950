"""What a comparison is and how its results read: its id, which snapshot each cell trains
on, and the table of cells (terminal and markdown).

A comparison's id is a hash of its cells' configs, the snapshots they train on and the
evaluation settings: running the same grid on the same data again gives the same id, so
the cells already in `experiments` under it are kept, not retrained (a killed comparison
resumes by running it again).

Metrics follow the evaluation's naming: a metric m may come with m_low and m_high (its
95% interval) and m_n (its sample size); the table prints "m [low, high]" when they are
there, and the value alone when they are not.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from schemas.compare import Cell
from tasks.train.algorithms import LOSSES

# The metrics of the table and the plots, in that order: what tells the algorithms apart.
# The win rate is there when the grid has a judge (evaluation.judge).
TABLE_METRICS = ("eval_reward_accuracy", "eval_reward_margin", "kl_to_reference", "mean_generated_length",
                 "win_rate_vs_reference")
CELL_FILE_VERSION = 1


def snapshot_key(cell: Cell) -> tuple[str, bool, tuple[str, ...] | None]:
    """(kind, one_per_prompt, sources): cells with the same key train on the same frozen snapshot."""
    config = cell.config
    sources = tuple(config.sources) if config.sources else None
    if LOSSES[config.algo].batch == "paired":
        return "pairs", False, sources
    return "feedback", config.one_per_prompt, sources


def comparison_id(cells: list[Cell], snapshot_ids: dict[str, str], evaluation: dict[str, Any]) -> str:
    material = {"version": CELL_FILE_VERSION, "evaluation": evaluation, "snapshots": snapshot_ids,
                "cells": {c.name: c.config.model_dump() for c in cells}}
    return "cmp-" + hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:12]


def format_value(metrics: dict[str, Any], name: str) -> str:
    """'0.62 [0.55, 0.69]' when the interval is there, '0.62' otherwise, '-' when absent."""
    value = metrics.get(name)
    if not isinstance(value, (int, float)):
        return "-"
    low, high = metrics.get(f"{name}_low"), metrics.get(f"{name}_high")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        return f"{value:.3g} [{low:.3g}, {high:.3g}]"
    return f"{value:.3g}"


def shown_metrics(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The TABLE_METRICS at least one row has."""
    return tuple(m for m in TABLE_METRICS if any(m in row["metrics"] for row in rows))


def table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(header, one row per cell): line, β, each shown metric with its interval, n, checkpoint."""
    metrics_shown = shown_metrics(rows)
    header = ["line", "beta", *metrics_shown, "n", "checkpoint"]
    body = []
    for row in sorted(rows, key=lambda r: (r["line"], r["beta"])):
        metrics = row["metrics"]
        n = metrics.get("eval_reward_accuracy_n", metrics.get("eval_pairs"))
        body.append([row["line"], f"{row['beta']:g}", *(format_value(metrics, m) for m in metrics_shown),
                     "-" if n is None else f"{n:g}", row["checkpoint_id"]])
    return header, body


def markdown(comparison: str, rows: list[dict[str, Any]], plots: list[str], notes: list[str]) -> str:
    """The comparison's Prefect artifact: the table, the shared-work notes and the plots."""
    header, body = table(rows)
    lines = [f"# Comparison `{comparison}`", "", *notes, "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    lines += ["", "Intervals are 95% where the evaluation reports them; n = eval pairs.", ""]
    lines += [f"- [{name}](file://{name})" for name in plots]
    return "\n".join(lines) + "\n"
