"""The report as a Prefect task, for the nightly run."""
from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.common.home import Home
from tasks.common.retrying import IO_RETRIES
from tasks.common.settings import ThumbsError, first_line
from tasks.report.page import write_report
from tasks.warehouse.connection import connect
from tasks.warehouse.publish import publish


@task(name="report", cache_policy=NO_CACHE, **IO_RETRIES)
def report_task(home: Home) -> str | None:
    """Publish, so the page shows this run's own gate decision (the run's lifecycle
    publishes only when the run ends), then write THUMBS_HOME/report/report.html.
    A report that cannot be written is a warning: the run's data and champion stand."""
    try:
        with connect(home) as con:
            publish(con, home)
        return str(write_report(home))
    except ThumbsError as exc:
        get_run_logger().warning("no report written: %s", first_line(exc))
        return None
