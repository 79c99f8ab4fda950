"""The `ingest` flow: load files of one source into the warehouse, then publish."""
from __future__ import annotations

from prefect import flow

from tasks.common.home import Home
from tasks.common.settings import release_failed_run
from tasks.ingest.load import FileResult
from tasks.ingest.readers import DEFAULT_MAX_ROW_BYTES
from tasks.ingest.tasks import expand_paths, ingest_datasets, ingest_file_task, report_ingest
from tasks.lineage.lifecycle import run_lifecycle
from tasks.lineage.openlineage import file_dataset


@flow(name="ingest", on_failure=[release_failed_run])
def ingest_flow(source: str, paths: list[str], mapping: str | None = None, home: str | None = None,
                max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, show_progress: bool = False) -> list[FileResult]:
    files = expand_paths(paths)
    home = Home.of(home)
    config = {"source": source, "paths": [str(p) for p in files], "mapping": mapping}
    with run_lifecycle("ingest", config, home, lineage_events=True) as run:
        run.inputs += [file_dataset(path, "source file", source=source) for path in files]
        run.announce(config)
        results = [ingest_file_task(source, path, run.run_id, mapping, home, max_row_bytes, show_progress)
                   for path in files]
        run.outputs += ingest_datasets(results, home)
    report_ingest(source, run.run_id, results)
    return results
