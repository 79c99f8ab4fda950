"""Markdown for Prefect artifacts: what a run did, for the person reading the UI."""
from __future__ import annotations

from collections import Counter

from schemas.config import BinarizeConfig
from tasks.binarize.marts import BinarizeResult
from tasks.ingest.load import FileResult


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def ingest_markdown(source: str, batch_id: str, results: list[FileResult]) -> str:
    files = _table(
        ["file", "status", "read", "loaded", "duplicate", "quarantined", "sha256"],
        [[r.file, r.status if r.status == "loaded" else f"skipped (loaded by {r.previous_batch})",
          r.rows_read, r.rows_loaded, r.rows_duplicate, r.rows_quarantined, r.file_sha256[:12]]
         for r in results],
    )
    by_table = sum((r.loaded_by_table for r in results), Counter())
    reasons = sum((r.reasons for r in results), Counter())
    parts = [f"# ingest `{source}` — batch `{batch_id}`", files, "## loaded by staging table",
             _table(["table", "rows"], [[t, n] for t, n in sorted(by_table.items())]) if by_table else "none"]
    parts += ["## quarantine reasons",
              _table(["reason", "rows"], [[r, n] for r, n in reasons.most_common()]) if reasons else "none"]
    return "\n\n".join(parts)


def binarize_markdown(config: BinarizeConfig, result: BinarizeResult) -> str:
    pairs = _table(["source", "split", "pairs"], [[s, sp, n] for (s, sp), n in sorted(result.pairs.items())])
    thumbs = _table(["source", "label", "completions"],
                    [[s, "up" if lb else "down", n] for (s, lb), n in sorted(result.feedback.items())])
    return "\n\n".join([
        "# binarize", f"config: `{config.model_dump()}`", "## preference_pairs", pairs, "## feedback", thumbs,
        f"tied completions (as many up as down votes, left out): {result.tied_completions}",
    ])


def nightly_markdown(report) -> str:
    """The nightly run's report: what was new, what trained, promoted or not and why."""
    lines = [f"# nightly run `{report.run_id}`"]
    if report.failed_step:
        lines.append(f"**FAILED at step `{report.failed_step}`**: {report.error}\n\n"
                     "The warehouse is as the last finished step left it; the champion is unchanged.")
    lines.append("## new data")
    lines.append(f"{len(report.files_loaded)} new file(s), {report.rows_loaded} rows loaded, "
                 f"{report.rows_quarantined} quarantined; {report.files_skipped} file(s) already seen.")
    lines += [f"- `{f}`" for f in report.files_loaded]
    lines.append("## training")
    if report.skipped_training:
        lines.append(f"skipped: {report.skipped_training}")
    elif report.trained:
        lines.append(f"checkpoint `{report.checkpoint_id}` from snapshot `{report.snapshot_id}`; "
                     f"trained because: {report.training_reason}")
    if report.metrics:
        names = sorted(k for k, v in report.metrics.items() if isinstance(v, (int, float)))
        champion = report.champion_metrics or {}
        lines.append(_table(["metric", "new", f"champion {report.champion_before or '(none)'}"],
                            [[n, f"{report.metrics[n]:.4f}",
                              f"{champion[n]:.4f}" if isinstance(champion.get(n), (int, float)) else "—"]
                             for n in names]))
        lines += [f"![curve]({p})" for p in report.plots]
    if report.decision is not None:
        lines.append("## promotion")
        lines.append(f"**{'promoted to champion' if report.promoted else 'not promoted'}**: {report.decision}")
    return "\n\n".join(lines)
