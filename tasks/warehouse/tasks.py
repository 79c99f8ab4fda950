"""The warehouse stage's Prefect task: refresh the analysts' copy."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.common.home import Home
from tasks.common.retrying import IO_RETRIES
from tasks.warehouse.connection import connect
from tasks.warehouse.publish import publish


@task(name="publish", **IO_RETRIES)
def publish_task(home: Home) -> Path:
    with connect(home) as con:
        return publish(con, home)
