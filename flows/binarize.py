"""The `binarize` flow: rebuild `preference_pairs` and `feedback` from staging."""
from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from schemas.config import BinarizeConfig
from tasks.binarize.marts import BinarizeResult, binarize
from tasks.lineage.runs import finish_run, new_run_id, start_run
from tasks.warehouse.publish import publish
from tasks.common.reports import binarize_markdown
from tasks.common.settings import release_failed_run
from tasks.warehouse.connection import connect


@task(name="binarize")
def binarize_task(config: BinarizeConfig, home: str | None) -> BinarizeResult:
    with connect(home) as con:
        run_id = start_run(con, "binarize", config.model_dump(), new_run_id())
        try:
            result = binarize(con, config)
        except BaseException:
            finish_run(con, run_id, "failed")
            raise
        finish_run(con, run_id, "completed")
        publish(con, home)
        return result


@flow(name="binarize", on_failure=[release_failed_run])
def binarize_flow(config: BinarizeConfig | None = None, home: str | None = None) -> BinarizeResult:
    config = config or BinarizeConfig()
    result = binarize_task(config, home)
    create_markdown_artifact(binarize_markdown(config, result), key="binarize-report",
                             description="feedback and preference_pairs rebuilt")
    return result
