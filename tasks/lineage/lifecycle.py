"""One flow run's lifecycle, the same for every flow: a `lineage_runs` row from start to
finish, OpenLineage START/COMPLETE/FAIL events for the runs that produce datasets, a
fresh analysts' copy at the end, and for flows that allow one run at a time, the lock
and the marking of runs a kill left 'running'.

    with run_lifecycle("train", config, home, lineage_events=True) as run:
        snapshot = snapshot_task(...)
        run.inputs.append(snapshot_dataset(snapshot))
        run.announce(config)
        ...
        run.outputs.append(checkpoint_dataset(...))
        run.metrics = result["metrics"]

Datasets are named by OpenLineage's convention (tasks/lineage/openlineage.py).
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from tasks.common.home import Home, HomeLike
from tasks.common.locks import exclusive_run
from tasks.common.settings import ThumbsError
from tasks.lineage.openlineage import emit_event
from tasks.lineage.runs import finish_run, mark_interrupted, new_run_id, start_run
from tasks.warehouse.connection import connect
from tasks.warehouse.tasks import publish_task


@dataclass
class Run:
    """The run a flow is in; the flow appends the datasets it read and wrote as it learns them."""
    run_id: str
    job: str
    home: Home
    lineage_events: bool
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    metrics: dict[str, Any] | None = None  # sent with COMPLETE

    def announce(self, config: dict[str, Any]) -> None:
        """The START event with the run's config, sent once the inputs are known (a FAIL
        before it still names whatever inputs were appended by then)."""
        emit_event("START", self.run_id, self.job, inputs=self.inputs, home=self.home, config=config)


@contextmanager
def run_lifecycle(job: str, config: dict[str, Any], home: HomeLike, *, lineage_events: bool = False,
                  one_at_a_time: bool = False) -> Iterator[Run]:
    """The `lineage_runs` row (started now, 'completed' or 'failed' when the block ends,
    Ctrl-C included), then a publish so analysts see what the run left, committed work of
    a failed run included. With lineage_events, FAIL or COMPLETE (with `outputs`) after
    that. With one_at_a_time, THUMBS_HOME/<job>.lock is held for the block, and earlier
    runs of `job` still 'running' are marked interrupted: holding the lock, none is alive."""
    home = Home.of(home)
    with ExitStack() as held:
        if one_at_a_time:
            held.enter_context(exclusive_run(job, home))
        run = Run(new_run_id(), job, home, lineage_events)
        with connect(home) as con:
            if one_at_a_time:
                mark_interrupted(con, job)
            start_run(con, job, config, run.run_id)
        try:
            yield run
            with connect(home) as con:
                finish_run(con, run.run_id, "completed")
            publish_task(home)
        except BaseException as exc:
            with connect(home) as con:
                finish_run(con, run.run_id, "failed")
            _publish_after_failure(home)
            if lineage_events:
                emit_event("FAIL", run.run_id, job, inputs=run.inputs, home=home, error=exc)
            raise
    if lineage_events:
        emit_event("COMPLETE", run.run_id, job, inputs=run.inputs, outputs=run.outputs, home=home,
                   metrics=run.metrics)


def _publish_after_failure(home: Home) -> None:
    # The run's own error is the one to report: a publish that fails too (say, on the
    # same full disk) leaves the previous analysts' copy whole, and is not worth raising.
    try:
        publish_task(home)
    except ThumbsError:
        pass
