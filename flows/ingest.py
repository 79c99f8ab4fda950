"""The `ingest` flow: load files of one source into the warehouse, then publish."""
from __future__ import annotations

import glob
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from tasks.common.retrying import IO_RETRIES
from tasks.ingest.load import FileResult, ingest_file
from tasks.lineage.runs import finish_run, new_run_id, start_run
from tasks.common.progress import file_progress
from tasks.warehouse.publish import publish
from tasks.ingest.readers import DEFAULT_MAX_ROW_BYTES
from tasks.common.reports import ingest_markdown
from tasks.common.settings import ThumbsError, release_failed_run
from tasks.sources import bind_source
from tasks.warehouse.connection import connect


def expand_paths(paths: list[str]) -> list[Path]:
    """Globs expanded (for schedulers that pass patterns), order kept, repeats dropped."""
    found: list[Path] = []
    for pattern in paths:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise ThumbsError(f"{pattern}: no file matches this pattern")
        found += [Path(m) for m in matches if Path(m) not in found]
    return found


@task(name="ingest-file", task_run_name="ingest {source} {path.name}", **IO_RETRIES)
def ingest_file_task(source: str, path: Path, batch_id: str, mapping: str | None, home: str | None,
                     max_row_bytes: int, show_progress: bool) -> FileResult:
    binding = bind_source(source, mapping=mapping, home=home)
    size = path.stat().st_size if path.exists() else 0
    with connect(home) as con, file_progress(f"{binding.name} {path.name}", size, show_progress) as progress:
        return ingest_file(con, binding, path, batch_id, max_row_bytes=max_row_bytes, progress=progress)


@task(name="publish", **IO_RETRIES)
def publish_task(home: str | None) -> str:
    with connect(home) as con:
        return str(publish(con, home))


@flow(name="ingest", on_failure=[release_failed_run])
def ingest_flow(source: str, paths: list[str], mapping: str | None = None, home: str | None = None,
                max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, show_progress: bool = False) -> list[FileResult]:
    files = expand_paths(paths)
    batch_id = new_run_id()
    config = {"source": source, "paths": [str(p) for p in files], "mapping": mapping}
    with connect(home) as con:
        start_run(con, "ingest", config, batch_id)
    status = "failed"
    try:
        results = [ingest_file_task(source, path, batch_id, mapping, home, max_row_bytes, show_progress)
                   for path in files]
        status = "completed"
    finally:
        with connect(home) as con:
            finish_run(con, batch_id, status)
        publish_task(home)
    create_markdown_artifact(ingest_markdown(source, batch_id, results), key="ingest-report",
                             description=f"ingest {source}: {len(results)} file(s)")
    return results
