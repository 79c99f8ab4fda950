"""The `binarize` flow: build `preference_pairs` and `feedback` from staging, incrementally
unless `full` (tasks/binarize/increments.py)."""
from __future__ import annotations

from prefect import flow

from schemas.config import BinarizeConfig
from tasks.binarize.marts import BinarizeResult
from tasks.binarize.tasks import binarize_task, report_binarize
from tasks.common.home import Home
from tasks.common.settings import release_failed_run
from tasks.lineage.lifecycle import run_lifecycle
from tasks.lineage.openlineage import table_dataset
from tasks.sources import staging_tables


@flow(name="binarize", on_failure=[release_failed_run])
def binarize_flow(config: BinarizeConfig | None = None, home: str | None = None,
                  full: bool = False) -> BinarizeResult:
    home = Home.of(home)
    config = config or BinarizeConfig()
    with run_lifecycle("binarize", config.model_dump(), home, lineage_events=True) as run:
        run.inputs += [table_dataset(home, table) for table in staging_tables()]
        run.announce(config.model_dump())
        result = binarize_task(config, home, full)
        run.outputs += [table_dataset(home, "preference_pairs", rows=sum(result.pairs.values())),
                        table_dataset(home, "feedback", rows=sum(result.feedback.values()))]
    report_binarize(config, result)
    return result
