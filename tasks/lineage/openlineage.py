"""OpenLineage run events through the official client (openlineage-python).

Every event goes to THUMBS_HOME/lineage/openlineage.jsonl (the client's file
transport, one event per line: thumbs' own record, readable with `read_json`).
When the standard OpenLineage environment is set (OPENLINEAGE_URL, or
OPENLINEAGE_CONFIG, or OPENLINEAGE__TRANSPORT__*), each event also goes where it
says, e.g. HTTP to Marquez; a consumer that is down costs a warning line, never
the run. OPENLINEAGE_DISABLED=true stops that sending (the file is still kept).

Dataset names follow OpenLineage's naming rule (namespace = the datasource,
name = the dataset within it): files as namespace `file`, name the absolute path;
warehouse tables as namespace `duckdb://<host><warehouse file>`, name
`<database>.<schema>.<table>`. thumbs' own ids (`snapshots/<id>`,
`checkpoints/<id>`) ride along as a symlinks facet. What each facet holds:
docs/contract.md#openlineage-events.
"""
from __future__ import annotations

import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (DatasetFacet, RunFacet, error_message_run, job_type_job,
                                         processing_engine_run, symlinks_dataset)
from openlineage.client.transport.file import FileConfig, FileTransport

from tasks.common.home import Home, HomeLike
from tasks.common.settings import code_version

JOB_NAMESPACE = "thumbs"
PRODUCER = "https://github.com/thumbs-rlhf/thumbs"
FACET_SCHEMA = f"{PRODUCER}/blob/main/docs/contract.md#openlineage-events"
CONSUMER_ENV = ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG")


@attr.define
class ThumbsRunFacet(RunFacet):
    """`run.facets.thumbs`: what the run was asked to do (its config: training options,
    evaluation settings, binarize options) and what it measured, when it has."""
    config: dict[str, Any] = attr.field(factory=dict)
    metrics: dict[str, Any] | None = None
    code_version: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA


@attr.define
class ThumbsDatasetFacet(DatasetFacet):
    """`facets.thumbs` on a dataset: what thumbs knows of it (a snapshot's row counts and
    source files, a checkpoint's algorithm, base model and metrics)."""
    kind: str
    properties: dict[str, Any] = attr.field(factory=dict)

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA


def file_dataset(path: str | Path, kind: str, thumbs_id: str | None = None, **properties: Any) -> dict[str, Any]:
    """A file or folder (snapshot, checkpoint, evaluation, an ingested file)."""
    facets: dict[str, Any] = {"thumbs": ThumbsDatasetFacet(kind=kind, properties=properties)}
    if thumbs_id:
        facets["symlinks"] = symlinks_dataset.SymlinksDatasetFacet(identifiers=[
            symlinks_dataset.Identifier(namespace=JOB_NAMESPACE, name=thumbs_id, type=kind)])
    return {"namespace": "file", "name": str(Path(path).absolute()), "facets": facets}


def table_dataset(home: HomeLike, table: str, **properties: Any) -> dict[str, Any]:
    """A warehouse table or view, `schema.table` or `table` (schema main)."""
    warehouse = Home.of(home).warehouse.absolute()
    schema, _, name = table.rpartition(".")
    return {"namespace": f"duckdb://{socket.gethostname()}{warehouse}",
            "name": f"{warehouse.stem}.{schema or 'main'}.{name}",
            "facets": {"thumbs": ThumbsDatasetFacet(kind="table", properties=properties)}}


def emit_event(event_type: str, run_id: str, job: str, *, inputs: Iterable[dict] = (), outputs: Iterable[dict] = (),
               home: HomeLike = None, config: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
               error: BaseException | None = None) -> RunEvent:
    """One RunEvent (START, COMPLETE or FAIL) to the file, and to the configured consumer if any."""
    facets: dict[str, Any] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=code_version(), name="thumbs", openlineageAdapterVersion=_client_version()),
    }
    if config is not None or metrics is not None:
        facets["thumbs"] = ThumbsRunFacet(config=config or {}, metrics=metrics, code_version=code_version())
    if error is not None:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=str(error), programmingLanguage="python")
    event = RunEvent(
        eventType=RunState[event_type], eventTime=datetime.now(timezone.utc).isoformat(), producer=PRODUCER,
        run=Run(runId=run_id, facets=facets),
        job=Job(namespace=JOB_NAMESPACE, name=job, facets={"jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="THUMBS", jobType="FLOW")}),
        inputs=[InputDataset(d["namespace"], d["name"], facets=d["facets"]) for d in inputs],
        outputs=[OutputDataset(d["namespace"], d["name"], facets=d["facets"]) for d in outputs],
    )
    path = Home.of(home).openlineage
    path.parent.mkdir(parents=True, exist_ok=True)
    # The file transport appends the event as one line with one write: concurrent runs never interleave.
    OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(path), append=True))).emit(event)
    _send_to_consumer(event)
    return event


def _send_to_consumer(event: RunEvent) -> None:
    configured = any(os.environ.get(name) for name in CONSUMER_ENV) or \
        any(name.startswith("OPENLINEAGE__TRANSPORT") for name in os.environ)
    if not configured or os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return
    try:
        OpenLineageClient().emit(event)
    except Exception as exc:  # lineage is a record of the run, not a reason to fail it
        print(f"thumbs: warning: OpenLineage event not sent ({type(exc).__name__}: {exc})", file=sys.stderr)


def _client_version() -> str:
    from importlib.metadata import version

    return version("openlineage-python")
