"""Lineage: rows in `lineage_runs`, one per flow run (the OpenLineage events that go
with them: tasks/lineage/openlineage.py)."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import duckdb

from tasks.common.settings import code_version
from tasks.warehouse.connection import run_sql


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
