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
