"""What a nightly run did: new data, what trained and why, promoted or not and why;
returned by the nightly flow and posted as its Prefect artifact."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect.artifacts import create_markdown_artifact

from tasks.common.markdown import table
from tasks.evaluate.intervals import headline_names, with_interval
from tasks.ingest.load import FileResult


@dataclass
class NightlyReport:
    run_id: str
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: int = 0
    unmatched_patterns: list[str] = field(default_factory=list)  # watched, but no file there yet
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
    decision: str | None = None  # the gate's reason, worded from the paired interval
    decision_headline: str | None = None  # e.g. "NOT promoted: the difference ... is not measurable"
    failed_step: str | None = None
    error: str | None = None
    report_path: str | None = None  # the HTML report (thumbs report) written at the end of the run

    def count_ingested(self, results: list[FileResult]) -> None:
        for result in results:
            if result.status == "loaded":
                self.files_loaded.append(result.file)
                self.rows_loaded += result.rows_loaded
                self.rows_quarantined += result.rows_quarantined
            else:
                self.files_skipped += 1


def unmatched_warnings(report: NightlyReport) -> list[str]:
    return [f"`{pattern}` matches no file yet; its source was skipped this run"
            for pattern in report.unmatched_patterns]


def nightly_markdown(report: NightlyReport) -> str:
    lines = [f"# nightly run `{report.run_id}`"]
    if report.failed_step:
        lines.append(f"**FAILED at step `{report.failed_step}`**: {report.error}\n\n"
                     "The warehouse is as the last finished step left it; the champion is unchanged.")
    lines.append("## new data")
    lines.append(f"{len(report.files_loaded)} new file(s), {report.rows_loaded} rows loaded, "
                 f"{report.rows_quarantined} quarantined; {report.files_skipped} file(s) already seen.")
    lines += [f"- `{f}`" for f in report.files_loaded]
    lines += [f"- warning: {warning}" for warning in unmatched_warnings(report)]
    lines.append("## training")
    if report.skipped_training:
        lines.append(f"skipped: {report.skipped_training}")
    elif report.trained:
        lines.append(f"checkpoint `{report.checkpoint_id}` from snapshot `{report.snapshot_id}`; "
                     f"trained because: {report.training_reason}")
    if report.metrics:
        champion = report.champion_metrics or {}
        lines.append(table(["metric (95% interval, n)", "new", f"champion {report.champion_before or '(none)'}"],
                           [[n, with_interval(report.metrics, n), with_interval(champion, n)]
                            for n in headline_names(report.metrics)]))
        lines += [f"![curve]({p})" for p in report.plots]
    if report.decision is not None:
        lines.append("## promotion")
        headline = report.decision_headline or ('promoted to champion' if report.promoted else 'not promoted')
        lines.append(f"**{headline}**: {report.decision}")
    if report.report_path:
        lines.append(f"## report\n\n[{report.report_path}](file://{report.report_path}): feedback, quarantine, "
                     "runs, checkpoints and gate decisions on one page")
    return "\n\n".join(lines)


def report_nightly(report: NightlyReport) -> None:
    create_markdown_artifact(nightly_markdown(report), key="nightly-report",
                             description="what was new, what trained, promoted or not and why")
