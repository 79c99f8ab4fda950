"""The nightly DAG: ingest what is new, binarize, snapshot, train, evaluate, promote.

Each step is a flow or task of its own, so a failure leaves the warehouse as the
last finished step left it and the champion untouched; the run's report names the
step that failed and why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.binarize import binarize_flow
from flows.evaluate import evaluate_flow
from flows.ingest import ingest_flow
from flows.train import snapshot_task, train_config, train_flow
from schemas.nightly import GateConfig, load_sources
from tasks.lineage.runs import finish_run, mark_interrupted, new_run_id, start_run
from tasks.common.locks import exclusive_run
from tasks.warehouse.publish import publish
from tasks.train.checkpoints import read_manifest
from tasks.evaluate.promotion import current_champion, gate, point_champion_alias, record_decision, what_changed
from tasks.common.reports import nightly_markdown
from tasks.common.settings import ThumbsError, code_version, release_failed_run, thumbs_home
from tasks.warehouse.connection import connect, run_sql


@dataclass
class NightlyReport:
    run_id: str
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    snapshot_id: str | None = None
    champion_before: str | None = None
    trained: bool = False
    skipped_training: str | None = None  # why training was skipped
    training_reason: str | None = None  # what changed since the champion was trained
    checkpoint_id: str | None = None
    checkpoint_path: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    champion_metrics: dict[str, Any] | None = None
    plots: list[str] = field(default_factory=list)
    promoted: bool = False
    decision: str | None = None
    failed_step: str | None = None
    error: str | None = None


@task(name="champion", cache_policy=NO_CACHE)
def champion_task(home: str) -> dict[str, Any] | None:
    with connect(home) as con:
        return current_champion(con)


@task(name="promote", cache_policy=NO_CACHE)
def promote_task(checkpoint: dict[str, Any], candidate: dict[str, float], champion: dict[str, Any] | None,
                 champion_eval: dict[str, float] | None, gate_config: GateConfig, run_id: str, home: str):
    decision = gate(candidate, champion_eval, gate_config)
    with connect(home) as con:
        record_decision(con, checkpoint["checkpoint_id"], run_id, decision,
                        champion["checkpoint_id"] if champion else None)
    if decision.passed:
        point_champion_alias(checkpoint["path"], home)
    return decision


@task(name="train-on-deployment", cache_policy=NO_CACHE)
def train_on_deployment(deployment: str, algo: str, config_path: str | None, overrides: list[str],
                        home: str) -> dict[str, Any]:
    """Run training as a deployment (e.g. on the gpu pool) and wait for its checkpoint."""
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters={"algo": algo, "config_path": config_path, "overrides": overrides,
                                                 "home": home, "resume": True}, timeout=None)
    if not run.state or not run.state.is_completed():
        raise ThumbsError(f"training deployment {deployment} ended {run.state.name if run.state else 'unknown'} "
                          f"(flow run {run.id})")
    with connect(home) as con:
        rows = run_sql(con, "statements/promotion/checkpoint_of_run.sql", {"run_id": str(run.id)}).fetchall()
    if not rows:
        raise ThumbsError(f"training deployment {deployment} finished but recorded no checkpoint (flow run {run.id})")
    return {"checkpoint_id": rows[0][0], "path": rows[0][1]}


@flow(name="nightly", on_failure=[release_failed_run])
def nightly_flow(sources_file: str, algo: str = "kto", config_path: str | None = None,
                 overrides: Sequence[str] = (), gate_config: GateConfig | None = None, force: bool = False,
                 train_deployment: str | None = None, home: str | None = None,
                 show_progress: bool = False) -> NightlyReport:
    home = str(thumbs_home(home))
    gate_config = gate_config or GateConfig()
    sources = load_sources(sources_file)
    config = train_config(algo, config_path, list(overrides))
    run_id = new_run_id()
    report = NightlyReport(run_id=run_id)
    step = "lock"
    with exclusive_run("nightly", home):
        with connect(home) as con:
            mark_interrupted(con, "nightly")
            start_run(con, "nightly", {"sources_file": sources_file, "train": config.model_dump(),
                                       "gate": gate_config.model_dump(), "force": force}, run_id)
        try:
            step = "ingest"
            for watched in sources.sources:
                for result in ingest_flow(watched.source, watched.paths, mapping=watched.mapping, home=home,
                                          show_progress=show_progress):
                    if result.status == "loaded":
                        report.files_loaded.append(result.file)
                        report.rows_loaded += result.rows_loaded
                        report.rows_quarantined += result.rows_quarantined
                    else:
                        report.files_skipped += 1
            step = "binarize"
            binarize_flow(sources.binarize, home=home)
            step = "snapshot"
            report.snapshot_id = snapshot_task(config, run_id, home).snapshot_id
            champion = champion_task(home)
            report.champion_before = champion["checkpoint_id"] if champion else None
            changes = what_changed(read_manifest(champion["path"]), config.model_dump(), report.snapshot_id,
                                   code_version()) if champion else ["no champion yet"]
            if not changes and not force:
                report.skipped_training = (f"champion {champion['checkpoint_id']} was trained on snapshot "
                                           f"{report.snapshot_id} with these options and this code: "
                                           "nothing new to learn")
            else:
                report.training_reason = "forced" if not changes else "; ".join(changes)
                step = "train"
                if train_deployment:
                    trained = train_on_deployment(train_deployment, algo, config_path, list(overrides), home)
                else:
                    trained = train_flow(algo, config_path, list(overrides), home=home, resume=True,
                                         show_progress=show_progress)
                report.trained = True
                report.checkpoint_id, report.checkpoint_path = trained["checkpoint_id"], trained["path"]
                step = "evaluate"
                evaluation = evaluate_flow(trained["checkpoint_id"], home=home, **sources.evaluation.model_dump())
                report.metrics, report.plots = evaluation["metrics"], evaluation.get("plots", [])
                if champion:
                    # Compare on the same eval pairs: re-evaluate the champion when its
                    # recorded evaluation used another eval snapshot.
                    recorded = champion["metrics"].get("eval", {})
                    if recorded.get("eval_snapshot_id") == evaluation["eval_snapshot_id"]:
                        report.champion_metrics = recorded
                    else:
                        report.champion_metrics = evaluate_flow(champion["checkpoint_id"], home=home,
                                                                 eval_snapshot=evaluation["eval_snapshot_id"],
                                                                 **sources.evaluation.model_dump())["metrics"]
                step = "promote"
                decision = promote_task({"checkpoint_id": trained["checkpoint_id"], "path": trained["path"]},
                                        report.metrics, champion, report.champion_metrics, gate_config, run_id, home)
                report.promoted, report.decision = decision.passed, decision.reason
        except Exception as exc:
            report.failed_step, report.error = step, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        with connect(home) as con:
            finish_run(con, run_id, "failed" if report.failed_step else "completed")
            publish(con, home)
        create_markdown_artifact(nightly_markdown(report), key="nightly-report",
                                 description="what was new, what trained, promoted or not and why")
    if report.failed_step:
        raise ThumbsError(f"nightly run failed at step '{report.failed_step}': {report.error} "
                          "(warehouse consistent, champion unchanged)")
    return report
