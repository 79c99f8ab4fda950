"""Training curves as PNG, from a run's metrics.jsonl (one JSON object per step, as
tasks/train/trainer.py writes it: `loss`, `reward_accuracy`, `reward_margin`, ... and, on
steps that evaluated, the same names prefixed `eval_`).

Drawn on matplotlib's Agg canvas through the object API, not pyplot: no display,
no global figure state, safe inside a Prefect worker thread.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

SMOOTHING = 5  # steps in the moving average drawn over the noisy per-step values


def read_metrics(metrics_file: Path) -> list[dict[str, Any]]:
    """Step records; lines a crash left half-written are skipped, not fatal."""
    records = []
    for line in metrics_file.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [s for s, _ in points], [v for _, v in points]


def _moving_average(values: list[float], window: int) -> list[float]:
    return [sum(values[max(0, i - window + 1): i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(values))]


def _panel(axes, records: list[dict[str, Any]], key: str, label: str, final: float | None = None) -> None:
    steps, values = _series(records, key)
    if steps:
        axes.plot(steps, values, color="tab:blue", alpha=0.3, linewidth=1, label=f"train {label}")
        axes.plot(steps, _moving_average(values, SMOOTHING), color="tab:blue", linewidth=2,
                  label=f"train (mean of {SMOOTHING} steps)")
    eval_steps, eval_values = _series(records, f"eval_{key}")
    if eval_steps:
        axes.plot(eval_steps, eval_values, "o", color="tab:orange", label=f"eval {label} (training)")
    if final is not None and steps:
        # The evaluation's own number at the checkpoint's step. It is measured on the fixed
        # eval pairs, while KTO's training accuracy counts thumbs on the right side of z0.
        axes.plot([steps[-1]], [final], "*", markersize=14, color="tab:red", label="thumbs evaluate (eval pairs)")
    axes.set_xlabel("step")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(label)
    axes.grid(alpha=0.3)
    if steps or eval_steps:
        axes.legend(fontsize=8)


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)  # attaches the Agg canvas: PNG without any GUI backend
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    return path


def plot_curves(metrics_file: Path, out_dir: Path, *, title: str,
                evaluation: dict[str, float] | None = None) -> list[Path]:
    """loss.png and rewards.png (reward accuracy and margin) in out_dir; [] when the run
    left no step records (e.g. a base model, or a deleted run directory)."""
    if not metrics_file.is_file():
        return []
    records = read_metrics(metrics_file)
    if not records:
        return []
    evaluation = evaluation or {}
    out_dir.mkdir(parents=True, exist_ok=True)

    loss = Figure(figsize=(7, 4))
    _panel(loss.add_subplot(1, 1, 1), records, "loss", "loss")
    loss.suptitle(f"{title}: loss")

    rewards = Figure(figsize=(11, 4))
    _panel(rewards.add_subplot(1, 2, 1), records, "reward_accuracy", "reward accuracy",
           evaluation.get("eval_reward_accuracy"))
    _panel(rewards.add_subplot(1, 2, 2), records, "reward_margin", "reward margin (β-scaled)",
           evaluation.get("eval_reward_margin"))
    rewards.suptitle(f"{title}: implicit rewards")
    return [_save(loss, out_dir / "loss.png"), _save(rewards, out_dir / "rewards.png")]


def plot_against_beta(rows: list[dict[str, Any]], metrics: tuple[str, ...], out_dir: Path, *,
                      title: str) -> list[Path]:
    """One PNG per metric (<metric>.png) in out_dir: the metric against β (log scale), one
    line per `line` of the rows, a band between m_low and m_high where the metrics have
    them. rows: {line, beta, metrics}, as the `experiments` table holds them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = sorted({row["line"] for row in rows})
    paths = []
    for metric in metrics:
        figure = Figure(figsize=(7, 4.5))
        axes = figure.add_subplot(1, 1, 1)
        drawn = False
        for index, line in enumerate(lines):
            points = sorted((r["beta"], r["metrics"]) for r in rows
                            if r["line"] == line and isinstance(r["metrics"].get(metric), (int, float)))
            if not points:
                continue
            color = f"C{index % 10}"
            betas = [beta for beta, _ in points]
            axes.plot(betas, [m[metric] for _, m in points], "o-", color=color, label=line)
            bands = [(beta, m[f"{metric}_low"], m[f"{metric}_high"]) for beta, m in points
                     if isinstance(m.get(f"{metric}_low"), (int, float))
                     and isinstance(m.get(f"{metric}_high"), (int, float))]
            if bands:
                axes.fill_between([b for b, _, _ in bands], [lo for _, lo, _ in bands], [hi for _, _, hi in bands],
                                  color=color, alpha=0.2, linewidth=0)
                # and a bar at each β: a band needs two βs, a single-β grid still shows its intervals
                axes.vlines([b for b, _, _ in bands], [lo for _, lo, _ in bands], [hi for _, _, hi in bands],
                            color=color, alpha=0.6)
            drawn = True
        if metric == "eval_reward_accuracy":
            axes.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
        axes.set_xscale("log")
        axes.set_xlabel("β")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3, which="both")
        if drawn:
            axes.legend(fontsize=8)
        figure.suptitle(f"{title}: {metric} (bands: 95% interval where reported)")
        paths.append(_save(figure, out_dir / f"{metric}.png"))
    return paths
