"""The `binarize` flow: rebuild `preference_pairs` and `feedback` from staging."""
from __future__ import annotations

from prefect import flow

from schemas.config import BinarizeConfig
from tasks.binarize.marts import BinarizeResult
from tasks.binarize.tasks import binarize_task, report_binarize
from tasks.common.home import Home
from tasks.common.settings import release_failed_run
from tasks.lineage.lifecycle import run_lifecycle


@flow(name="binarize", on_failure=[release_failed_run])
def binarize_flow(config: BinarizeConfig | None = None, home: str | None = None) -> BinarizeResult:
    home = Home.of(home)
    config = config or BinarizeConfig()
    with run_lifecycle("binarize", config.model_dump(), home):
        result = binarize_task(config, home)
    report_binarize(config, result)
    return result
