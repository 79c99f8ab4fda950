"""The ingest stage's Prefect tasks and report.

Kept apart from load.py: the parse workers import load.py in every worker process,
and importing Prefect there would cost each worker seconds and about 50 MB.
"""
from __future__ import annotations

import glob
from collections import Counter
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from tasks.common.home import Home
from tasks.common.markdown import table
from tasks.common.progress import file_progress
from tasks.common.retrying import IO_RETRIES
from tasks.common.settings import ThumbsError
from tasks.ingest.load import FileResult, ingest_file
from tasks.lineage.openlineage import table_dataset
from tasks.sources import bind_source
from tasks.warehouse.connection import connect


def expand_paths(paths: list[str]) -> list[Path]:
    """Globs expanded (for schedulers that pass patterns), order kept, repeats dropped.
    A glob that matches nothing is an error (the user named files that are not there);
    a plain path is kept as given, so a missing file fails its ingest naming the file."""
    unmatched = [p for p in paths if glob.has_magic(p) and not glob.glob(p)]
    if unmatched:
        raise ThumbsError(f"{unmatched[0]}: no file matches this pattern")
    return _unique(Path(m) for p in paths for m in (sorted(glob.glob(p)) if glob.has_magic(p) else [p]))


def watched_files(paths: list[str]) -> tuple[list[Path], list[str]]:
    """For a nightly run: (the files the watched patterns match now, each once; the patterns
    that match none). A folder waiting for its first export is normal, not an error."""
    matches = {p: sorted(glob.glob(p)) if glob.has_magic(p) else [p] * Path(p).is_file() for p in paths}
    return _unique(Path(m) for found in matches.values() for m in found), [p for p, m in matches.items() if not m]


def _unique(paths) -> list[Path]:
    return list(dict.fromkeys(paths))


@task(name="ingest-file", task_run_name="ingest {source} {path.name}", **IO_RETRIES)
def ingest_file_task(source: str, path: Path, batch_id: str, mapping: str | None, home: Home,
                     max_row_bytes: int, show_progress: bool) -> FileResult:
    binding = bind_source(source, mapping=mapping, home=home)
    size = path.stat().st_size if path.exists() else 0
    with connect(home) as con, file_progress(f"{binding.name} {path.name}", size, show_progress) as progress:
        return ingest_file(con, binding, path, batch_id, max_row_bytes=max_row_bytes, progress=progress)


def ingest_datasets(results: list[FileResult], home: Home) -> list[dict]:
    """The warehouse tables an ingest run wrote, as OpenLineage output datasets."""
    written = sum((r.loaded_by_table for r in results), Counter())
    written["raw.records"] = sum(r.rows_read for r in results if r.status == "loaded")
    written["quarantine"] = sum(r.rows_quarantined for r in results)
    return [table_dataset(home, table, rowsWritten=rows) for table, rows in sorted(written.items())]


def ingest_markdown(source: str, batch_id: str, results: list[FileResult]) -> str:
    files = table(
        ["file", "status", "read", "loaded", "duplicate", "quarantined", "sha256"],
        [[r.file, r.status if r.status == "loaded" else f"skipped (loaded by {r.previous_batch})",
          r.rows_read, r.rows_loaded, r.rows_duplicate, r.rows_quarantined, r.file_sha256[:12]]
         for r in results],
    )
    by_table = sum((r.loaded_by_table for r in results), Counter())
    reasons = sum((r.reasons for r in results), Counter())
    parts = [f"# ingest `{source}` — batch `{batch_id}`", files, "## loaded by staging table",
             table(["table", "rows"], [[t, n] for t, n in sorted(by_table.items())]) if by_table else "none"]
    parts += ["## quarantine reasons",
              table(["reason", "rows"], [[r, n] for r, n in reasons.most_common()]) if reasons else "none"]
    return "\n\n".join(parts)


def report_ingest(source: str, batch_id: str, results: list[FileResult]) -> None:
    create_markdown_artifact(ingest_markdown(source, batch_id, results), key="ingest-report",
                             description=f"ingest {source}: {len(results)} file(s)")
