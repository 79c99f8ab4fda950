"""`thumbs report`: one self-contained HTML file from the analysts' published copy.

No server, no network: the CSS is inline, the charts are inline SVG (charts.py),
there is no script. Sections: headline numbers, feedback volume and label balance
over time per source, quarantine reasons, pairs per prompt, ingest runs, training
runs with their loss and reward curves (each run's metrics.jsonl), checkpoints with
their evaluation (intervals when recorded) and gate decisions, and the comparison
results once `thumbs compare` has written a row to `experiments`.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import duckdb

from tasks.common.files import replaced_file
from tasks.common.home import Home, HomeLike
from tasks.common.settings import ThumbsError, code_version
from tasks.report.charts import bar_chart, line_chart
from tasks.report.tables import is_number, number, stat_key, table
from tasks.warehouse.connection import run_sql
from tasks.warehouse.query import published_connection

REPORT_FILE = "report.html"
ROW_LIMIT = 200  # rows per table: the report stays a few MB however long the history
CURVE_LIMIT = 10  # checkpoints whose training curves are drawn, newest first
HEADLINE_METRICS = ("eval_reward_accuracy", "eval_reward_margin", "kl_to_reference", "mean_generated_length")
LOSS_KEYS = ("loss",)
REWARD_KEYS = ("rewards_chosen", "rewards_rejected", "reward_margin")

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem}
.card .num{display:block;font-size:1.5rem;font-weight:600}
.chart{max-width:100%;height:auto;display:block}.grid{stroke:#eee}
.tick,.legend{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}
.empty,.note{color:#777}.yes{color:#2a7a2a;font-weight:600}.no{color:#a33}
details{margin:.4rem 0}summary{cursor:pointer}
"""


def default_report_path(home: HomeLike = None) -> Path:
    return Home.of(home).root / "report" / REPORT_FILE


def write_report(home: HomeLike = None, out_dir: str | Path | None = None) -> Path:
    """Render the report from the published copy into `out_dir`/report.html (default
    THUMBS_HOME/report/), written beside and renamed into place."""
    home = Home.of(home)
    target = Path(out_dir) / REPORT_FILE if out_dir else default_report_path(home)
    with published_connection(home) as con:
        html = render_report(con, home)
    try:
        with replaced_file(target) as scratch:
            scratch.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ThumbsError(f"{target}: cannot write the report ({exc.strerror or exc})") from exc
    return target


def render_report(con: duckdb.DuckDBPyConnection, home: Home) -> str:
    checkpoints = _rows(con, "checkpoints.sql", {"limit": ROW_LIMIT})
    sections = [
        _headline(con),
        _feedback_over_time(con),
        _quarantine(con),
        _pairs_per_prompt(con),
        _ingest(con),
        _training(con, checkpoints),
        _checkpoints(con, checkpoints),
    ]
    experiments = _rows(con, "experiments.sql", {"limit": ROW_LIMIT})
    if experiments[1]:
        sections.append(_experiments(experiments))
    contents = " · ".join(f'<a href="#{anchor}">{escape(title)}</a>' for anchor, title, _ in sections)
    body = "".join(f'<section id="{anchor}"><h2>{escape(title)}</h2>{html}</section>'
                   for anchor, title, html in sections)
    generated = datetime.now(timezone.utc)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>thumbs report</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f'<body><h1>thumbs report</h1><p class="note">generated {generated:%Y-%m-%d %H:%M:%S} UTC from '
            f'<code>{escape(str(home.published))}</code>, code {escape(code_version())}</p><nav>{contents}</nav>'
            f'{body}</body></html>\n')


def _rows(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
          ) -> tuple[list[str], list[tuple]]:
    cursor = run_sql(con, f"statements/report/{name}", params)
    return [d[0] for d in cursor.description], cursor.fetchall()


Section = tuple[str, str, str]  # anchor, title, HTML


def _section(anchor: str, title: str, *body: str) -> Section:
    return anchor, title, "".join(body)


def _headline(con) -> Section:
    columns, rows = _rows(con, "totals.sql")
    cards = "".join(f'<div class="card">{number(stat_key("totals", c), v)}{escape(c.replace("_", " "))}</div>'
                    for c, v in zip(columns, rows[0]))
    return _section("totals", "In the warehouse", f'<div class="cards">{cards}</div>')


def _feedback_over_time(con) -> Section:
    _, rows = _rows(con, "feedback_by_day.sql")
    days = sorted({day for _, day, _, _ in rows})
    index = {day: i for i, day in enumerate(days)}
    volume: dict[str, list] = {}
    balance: dict[str, list] = {}
    for source, day, completions, up_share in rows:
        volume.setdefault(source, []).append((index[day], completions))
        balance.setdefault(source, []).append((index[day], up_share))
    labels = {i: day.isoformat() for day, i in index.items()}
    return _section(
        "feedback", "Feedback over time, per source",
        "<h3>Rated completions per day (by ingest day)</h3>",
        line_chart("feedback_volume", volume, y_label="completions", x_labels=labels),
        "<h3>Share of thumbs up per day</h3>",
        line_chart("label_balance", balance, y_label="thumbs-up share", x_labels=labels, y_range=(0.0, 1.0)),
        "<h3>Label balance per source and split</h3>",
        table("label_balance", *_rows(con, "label_balance.sql"), ["source", "split"]))


def _quarantine(con) -> Section:
    columns, rows = _rows(con, "quarantine_reasons.sql")
    bars = [(f"{source}: {reason}", count) for source, reason, count, *_ in rows[:20]]
    return _section("quarantine", "Quarantined rows, by reason",
                    bar_chart("quarantine_reasons", bars, x_label="rows"),
                    table("quarantine_reasons", columns, rows[:ROW_LIMIT], ["source", "reason"]))


def _pairs_per_prompt(con) -> Section:
    columns, rows = _rows(con, "pairs_per_prompt.sql")
    bars = [(f"{source}: {pairs} pair(s)", prompts) for source, pairs, prompts in rows[:30]]
    return _section("pairs", "Pairs per prompt",
                    bar_chart("pairs_per_prompt", bars, x_label="prompts"),
                    table("pairs_per_prompt", columns, rows, ["source", "pairs_per_prompt"]))


def _ingest(con) -> Section:
    return _section("ingest", "Ingest runs",
                    "<h3>Per source, over all runs</h3>",
                    table("ingest_summary", *_rows(con, "ingest_summary.sql"), ["source"]),
                    f"<h3>Files, newest first (at most {ROW_LIMIT})</h3>",
                    table("ingest_runs", *_rows(con, "ingest_runs.sql", {"limit": ROW_LIMIT}), ["batch_id", "file"]))


def _training(con, checkpoints: tuple[list[str], list[tuple]]) -> Section:
    runs = table("training_runs", *_rows(con, "training_runs.sql", {"limit": ROW_LIMIT}), ["run_id"])
    curves = []
    columns, rows = checkpoints
    for row in rows[:CURVE_LIMIT]:
        record = dict(zip(columns, row))
        steps = _step_metrics(record["path"])
        ident = record["checkpoint_id"]
        if not steps:
            curves.append(f'<p class="note">{escape(ident)}: no per-step metrics on disk</p>')
            continue
        curves.append(f"<h3>{escape(ident)} ({escape(record['algo'])}, {len(steps)} steps)</h3>"
                      + line_chart(f"loss|{ident}", _curves(steps, LOSS_KEYS), y_label="loss")
                      + line_chart(f"rewards|{ident}", _curves(steps, REWARD_KEYS), y_label="implicit reward"))
    return _section("training", "Training runs", runs, *curves)


def _step_metrics(checkpoint_path: str) -> list[dict[str, Any]]:
    """The steps the trainer logged (metrics.jsonl in the run directory the manifest names)."""
    from tasks.evaluate.plots import read_metrics

    try:
        manifest = json.loads((Path(checkpoint_path) / "manifest.json").read_text())
        run_dir = (manifest.get("training") or {}).get("run_dir")
        return read_metrics(Path(run_dir) / "metrics.jsonl") if run_dir else []
    except (OSError, json.JSONDecodeError):
        return []  # a checkpoint or run directory removed since: the table still lists it


def _curves(steps: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, list]:
    series = {}
    for key in keys:
        for name in (key, f"eval_{key}"):
            points = [(s["step"], s[name]) for s in steps if is_number(s.get(name))]
            if points:
                series[name] = points
    return series


def metric_with_interval(key: Sequence[Any], evaluation: dict[str, Any], name: str) -> str:
    """`m`, and `[m_low, m_high] n=m_n` when the evaluation recorded an interval; `key`
    is the row's stat key prefix (table name, then the columns that identify the row)."""
    value = evaluation.get(name)
    if not is_number(value):
        return "—"
    parts = [number(stat_key(*key, name), value)]
    low, high, n = (evaluation.get(f"{name}_{s}") for s in ("low", "high", "n"))
    if is_number(low) and is_number(high):
        parts.append(f' <span class="note">[{number(stat_key(*key, name + "_low"), low)}, '
                     f'{number(stat_key(*key, name + "_high"), high)}]</span>')
    if is_number(n):
        parts.append(f' <span class="note">n={number(stat_key(*key, name + "_n"), n)}</span>')
    return "".join(parts)


def _metric_columns(key_of, records: list[dict[str, Any]], evaluations: list[dict[str, Any]]) -> dict[str, list[str]]:
    """One extra column per headline metric, each cell with its interval when recorded."""
    return {name: [metric_with_interval(key_of(r), e, name) for r, e in zip(records, evaluations)]
            for name in HEADLINE_METRICS}


def _checkpoints(con, checkpoints: tuple[list[str], list[tuple]]) -> Section:
    columns, rows = checkpoints
    shown_columns = ["checkpoint_id", "algo", "base_model", "snapshot_id", "created_at", "champion"]
    records = [dict(zip(columns, row)) for row in rows]
    evaluations = [json.loads(r["evaluation"]) if r["evaluation"] else {} for r in records]
    extra = _metric_columns(lambda r: ("checkpoints", r["checkpoint_id"]), records, evaluations)
    listing = table("checkpoints", shown_columns, [[r[c] for c in shown_columns] for r in records],
                    ["checkpoint_id"], extra=extra)
    details = []
    for record, evaluation in zip(records, evaluations):
        names = sorted(k for k, v in evaluation.items() if is_number(v) and not k.endswith(("_low", "_high", "_n"))
                       and k not in HEADLINE_METRICS)
        if names:
            key = ("checkpoints", record["checkpoint_id"])
            items = "".join(f"<tr><td>{escape(n)}</td><td>{metric_with_interval(key, evaluation, n)}</td></tr>"
                            for n in names)
            details.append(f"<details><summary>{escape(record['checkpoint_id'])}: every evaluation metric</summary>"
                           f"<table>{items}</table></details>")
    promotions = table("promotions", *_rows(con, "promotions.sql", {"limit": ROW_LIMIT}),
                       ["checkpoint_id", "decided_at"])
    return _section("checkpoints", "Checkpoints, evaluations and gate decisions", listing, *details,
                    "<h3>Gate decisions, newest first</h3>", promotions)


def _experiments(experiments: tuple[list[str], list[tuple]]) -> Section:
    columns, rows = experiments
    shown_columns = [c for c in columns if c != "metrics"]
    records = [dict(zip(columns, row)) for row in rows]
    evaluations = [json.loads(r["metrics"]) for r in records]
    extra = _metric_columns(lambda r: ("experiments", r["comparison_id"], r["cell"]), records, evaluations)
    listing = table("experiments", shown_columns, [[r[c] for c in shown_columns] for r in records],
                    ["comparison_id", "cell"], extra=extra)
    return _section("experiments", "Comparisons (thumbs compare), newest first", listing)