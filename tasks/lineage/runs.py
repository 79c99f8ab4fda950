"""Lineage: rows in `lineage_runs`, and OpenLineage run events in a JSONL file.

The events follow the OpenLineage RunEvent shape (eventType START/COMPLETE/FAIL,
run, job, inputs, outputs) so any OpenLineage consumer (Marquez, DataHub) can
replay THUMBS_HOME/lineage/openlineage.jsonl.
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

import duckdb

from tasks.common.home import Home, HomeLike
from tasks.common.settings import code_version
from tasks.warehouse.connection import run_sql

NAMESPACE = "thumbs"
PRODUCER = "https://github.com/thumbs-rlhf/thumbs"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_run_id() -> str:
    """The Prefect flow run id when inside a flow (so runs join to the Prefect UI), else a UUID."""
    try:
        from prefect.runtime import flow_run

        if flow_run.id:
            return str(flow_run.id)
    except Exception:  # outside Prefect: any failure here just means "no flow run"
        pass
    return str(uuid.uuid4())


def start_run(con: duckdb.DuckDBPyConnection, flow: str, config: dict[str, Any], run_id: str | None = None) -> str:
    run_id = run_id or new_run_id()
    run_sql(con, "statements/lineage/start_run.sql", {
        "run_id": run_id, "flow": flow, "started_at": _now(), "code_version": code_version(),
        "config": json.dumps(config, default=str),
    })
    return run_id


def mark_interrupted(con: duckdb.DuckDBPyConnection, flow: str) -> None:
    """Only call while holding the flow's run lock: then no other run of it is alive."""
    run_sql(con, "statements/lineage/mark_interrupted.sql", {"flow": flow, "now": _now()})


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, status: str) -> None:
    run_sql(con, "statements/lineage/finish_run.sql", {"finished_at": _now(), "status": status, "run_id": run_id})


def dataset(name: str, **facets: Any) -> dict[str, Any]:
    return {"namespace": NAMESPACE, "name": name, "facets": facets}


def emit_event(
    event_type: str, run_id: str, job: str, *, inputs: Iterable[dict] = (), outputs: Iterable[dict] = (),
    home: HomeLike = None, facets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one OpenLineage RunEvent to THUMBS_HOME/lineage/openlineage.jsonl."""
    event = {
        "eventType": event_type,
        "eventTime": datetime.now(timezone.utc).isoformat(),
        "run": {"runId": run_id, "facets": facets or {}},
        "job": {"namespace": NAMESPACE, "name": job, "facets": {}},
        "inputs": list(inputs),
        "outputs": list(outputs),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
    }
    path = Home.of(home).openlineage
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(event, default=str) + "\n"
    # One write() of one line in append mode: concurrent writers never interleave within a line.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)
    return event
