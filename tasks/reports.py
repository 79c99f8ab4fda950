"""Markdown for Prefect artifacts: what a run did, for the person reading the UI."""
from __future__ import annotations

from collections import Counter

from schemas.config import BinarizeConfig
from tasks.binarize import BinarizeResult
from tasks.ingest import FileResult


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
