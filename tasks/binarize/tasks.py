"""The binarize stage's Prefect task and report."""
from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from schemas.config import BinarizeConfig
from tasks.binarize.marts import BinarizeResult, binarize
from tasks.common.home import Home
from tasks.common.markdown import table
from tasks.warehouse.connection import connect


@task(name="binarize")
def binarize_task(config: BinarizeConfig, home: Home, full: bool = False) -> BinarizeResult:
    with connect(home) as con:
        return binarize(con, config, full)


def binarize_markdown(config: BinarizeConfig, result: BinarizeResult) -> str:
    pairs = table(["source", "split", "pairs"], [[s, sp, n] for (s, sp), n in sorted(result.pairs.items())])
    thumbs = table(["source", "label", "completions"],
                   [[s, "up" if lb else "down", n] for (s, lb), n in sorted(result.feedback.items())])
    return "\n\n".join([
        "# binarize", f"config: `{config.model_dump()}`", f"build: {result.reason}", "## preference_pairs", pairs, "## feedback", thumbs,
        f"tied completions (as many up as down votes, left out): {result.tied_completions}",
    ])


def report_binarize(config: BinarizeConfig, result: BinarizeResult) -> None:
    create_markdown_artifact(binarize_markdown(config, result), key="binarize-report",
                             description="feedback and preference_pairs built")
