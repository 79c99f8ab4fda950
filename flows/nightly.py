"""The nightly DAG: ingest what is new, binarize, snapshot, train, evaluate, promote.

Each step is a flow or task of its own, so a failure leaves the warehouse as the
last finished step left it and the champion untouched; the run's report names the
step that failed and why.
"""
from __future__ import annotations

from typing import Sequence

from prefect import flow

from flows.binarize import binarize_flow
from flows.evaluate import evaluate_flow
from flows.ingest import ingest_flow
from flows.synthesize import synthesize_watched
from flows.train import train_flow
from schemas.nightly import GateConfig, load_sources
from tasks.common.home import Home
from tasks.common.settings import ThumbsError, first_line, release_failed_run
from tasks.evaluate.promotion import recorded_metrics_on
from tasks.evaluate.tasks import champion_task, promote_task, training_reason_task
from tasks.ingest.tasks import watched_files
from tasks.lineage.lifecycle import run_lifecycle
from tasks.lineage.nightly_report import NightlyReport, report_nightly
from tasks.report.tasks import report_task
from tasks.train.tasks import snapshot_task, train_config, train_on_deployment


@flow(name="nightly", on_failure=[release_failed_run])
def nightly_flow(sources_file: str, algo: str = "kto", config_path: str | None = None,
                 overrides: Sequence[str] = (), gate_config: GateConfig | None = None, force: bool = False,
                 train_deployment: str | None = None, home: str | None = None,
                 show_progress: bool = False) -> NightlyReport:
    home = Home.of(home)
    gate_config, sources = gate_config or GateConfig(), load_sources(sources_file)
    config, evaluation_settings = train_config(algo, config_path, list(overrides)), sources.evaluation.model_dump()
    run_config = {"sources_file": sources_file, "train": config.model_dump(), "gate": gate_config.model_dump(),
                  "force": force}
    with run_lifecycle("nightly", run_config, home, one_at_a_time=True) as run:
        report, step = NightlyReport(run_id=run.run_id), "ingest"
        try:
            for watched in sources.sources:
                if watched.prompts:  # a synthetic source: this run's share of new prompts
                    report.count_ingested(synthesize_watched(watched, home, show_progress))
                    continue
                files, unmatched = watched_files(watched.paths)
                report.unmatched_patterns += unmatched
                if files:
                    report.count_ingested(ingest_flow(watched.source, [str(f) for f in files],
                                                      mapping=watched.mapping, home=str(home),
                                                      show_progress=show_progress))
            step = "binarize"
            binarize_flow(sources.binarize, home=str(home))
            step = "snapshot"
            report.snapshot_id = snapshot_task(config, run.run_id, home).snapshot_id
            champion = champion_task(home)
            report.champion_before = champion["checkpoint_id"] if champion else None
            train, why = training_reason_task(champion, config, report.snapshot_id, force)
            if not train:
                report.skipped_training = why
            else:
                report.training_reason, step = why, "train"
                if train_deployment:
                    trained = train_on_deployment(train_deployment, algo, config_path, list(overrides), home)
                else:
                    trained = train_flow(algo, config_path, list(overrides), home=str(home), resume=True,
                                         show_progress=show_progress)
                report.trained, report.checkpoint_id = True, trained["checkpoint_id"]
                report.checkpoint_path = trained["path"]
                step = "evaluate"
                evaluated = evaluate_flow(trained["checkpoint_id"], home=str(home), **evaluation_settings)
                report.metrics, report.plots = evaluated["metrics"], evaluated.get("plots", [])
                champion_eval = None
                if champion:  # compared on the same eval pairs: re-evaluated when measured on others
                    champion_eval = recorded_metrics_on(champion, evaluated) or \
                        evaluate_flow(champion["checkpoint_id"], home=str(home),
                                      eval_snapshot=evaluated["eval_snapshot_id"], **evaluation_settings)
                    champion_eval = {**champion_eval.get("metrics", champion_eval),
                                     "per_pair": champion_eval.get("per_pair")}
                    report.champion_metrics = {k: v for k, v in champion_eval.items() if k != "per_pair"}
                step = "promote"
                decision = promote_task(trained, {**report.metrics, "per_pair": evaluated["per_pair"]}, champion,
                                        champion_eval, gate_config, run.run_id, home)
                report.promoted, report.decision = decision.passed, decision.reason
                report.decision_headline = decision.headline
        except Exception as exc:
            report.failed_step, report.error = step, first_line(exc)
        report.report_path = report_task(home)
        report_nightly(report)
        if report.failed_step:
            raise ThumbsError(f"nightly run failed at step '{report.failed_step}': {report.error} "
                              "(warehouse consistent, champion unchanged)")
    return report
