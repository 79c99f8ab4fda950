"""The `synthesize` flow: make preference pairs with a model, then ingest them.

`thumbs synthesize rlcd`: prompts (a file, or the warehouse's own) -> generation
records under THUMBS_HOME/synthetic/rlcd/ (resumable, tasks/generate/rlcd.py) ->
ingested as source `rlcd`, whose parser quarantines what the quality guards reject ->
the ingest run's options record what decided the rows, for `thumbs lineage`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from prefect import flow, task

from flows.ingest import ingest_flow
from schemas.synthesize import RlcdConfig
from tasks.common.home import Home
from tasks.common.settings import ThumbsError, release_failed_run
from tasks.generate.prompts import PromptSet, prompts_from_file, prompts_from_warehouse
from tasks.generate.rlcd import Synthesis, synthesize
from tasks.ingest.load import FileResult
from tasks.lineage.lifecycle import run_lifecycle


@dataclass
class SynthesisResult:
    synthesis: Synthesis | None  # None: only new prompts were asked for, and none was left
    prompts: PromptSet
    ingested: list[FileResult] = field(default_factory=list)


@task(name="synthesize-rlcd")
def synthesize_task(prompt_set: PromptSet, config: RlcdConfig, home: Home, show_progress: bool) -> Synthesis:
    return synthesize(prompt_set.prompts, config, home, prompt_source=prompt_set.source, progress=show_progress)


@task(name="record-generation-origin")
def record_origin_task(synthesis: Synthesis, results: list[FileResult], home: Home) -> None:
    import json

    from tasks.warehouse.connection import connect, run_sql

    with connect(home) as con:
        for result in results:
            run_sql(con, "statements/synthetic/record_origin.sql",
                    {"origin": json.dumps(synthesis.origin), "file_sha256": result.file_sha256})


def already_synthesized(home: Home) -> set[str]:
    """The prompts (canonical JSON) of every generation record ingested so far."""
    import json

    from tasks.warehouse.connection import connect, run_sql

    if not home.warehouse.exists():
        return set()
    with connect(home, read_only=True) as con:
        rows = run_sql(con, "statements/synthetic/synthesized_prompts.sql").fetchall()
    return {json.dumps(json.loads(text), sort_keys=True) for (text,) in rows if text}


def pick_prompts(prompts_file: str | None, from_warehouse: bool, where: str | None, config: RlcdConfig,
                 home: Home, only_new: bool) -> PromptSet:
    if (prompts_file is None) == (not from_warehouse):
        raise ThumbsError("thumbs synthesize rlcd: give either --prompts FILE or --from-warehouse")
    if where and not from_warehouse:
        raise ThumbsError("thumbs synthesize rlcd: --where filters --from-warehouse prompts only")
    if not only_new:
        return (prompts_from_file(prompts_file, config.n) if prompts_file
                else prompts_from_warehouse(home, where, config.n))
    import json

    every = prompts_from_file(prompts_file, None) if prompts_file else prompts_from_warehouse(home, where, None)
    done = already_synthesized(home)
    fresh = [p for p in every.prompts if json.dumps(p, sort_keys=True) not in done]
    if len(fresh) < len(every.prompts):
        every.skipped["already synthesized"] += len(every.prompts) - len(fresh)
    return PromptSet(fresh[:config.n], every.source, every.skipped)


@flow(name="synthesize", on_failure=[release_failed_run])
def synthesize_flow(kind: str, config: RlcdConfig, prompts_file: str | None = None, from_warehouse: bool = False,
                    where: str | None = None, only_new: bool = False, home: str | None = None,
                    show_progress: bool = False) -> SynthesisResult:
    """only_new: skip prompts already synthesized (what a nightly run wants)."""
    if kind != "rlcd":
        raise ThumbsError(f"thumbs synthesize {kind}: unknown kind (use: rlcd)")
    home = Home.of(home)
    run_config = {"kind": kind, "prompts": prompts_file, "from_warehouse": from_warehouse, "where": where,
                  **config.model_dump()}
    # Ingest and the origin inside the block: the lifecycle's closing publish then
    # carries the origin to the analysts' copy, which `thumbs lineage` reads.
    with run_lifecycle("synthesize", run_config, home):
        prompt_set = pick_prompts(prompts_file, from_warehouse, where, config, home, only_new)
        if only_new and not prompt_set.prompts:
            return SynthesisResult(None, prompt_set)
        synthesis = synthesize_task(prompt_set, config, home, show_progress)
        result = SynthesisResult(synthesis, prompt_set)
        result.ingested = ingest_flow("rlcd", [str(synthesis.file)], home=str(home), show_progress=show_progress)
        record_origin_task(synthesis, result.ingested, home)
    return result


def synthesize_watched(watched, home: Home, show_progress: bool = False) -> list[FileResult]:
    """A nightly run's step for a synthetic source of sources.yaml: pairs for the next
    `per_run` prompts not synthesized before (none left: nothing to do)."""
    from schemas.config import load_config

    config = load_config(RlcdConfig, None, [f"{k}={v}" for k, v in {**watched.options, "n": watched.per_run}.items()])
    from_warehouse = watched.prompts == "warehouse"
    result = synthesize_flow(watched.source, config, prompts_file=None if from_warehouse else watched.prompts,
                             from_warehouse=from_warehouse, only_new=True, home=str(home),
                             show_progress=show_progress)
    return result.ingested
