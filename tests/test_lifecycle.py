"""run_lifecycle: the lineage_runs row, OpenLineage events, publish, lock and interrupted runs."""
from __future__ import annotations

import json

import pytest

from tasks.common.home import Home
from tasks.common.settings import ThumbsError
from tasks.lineage.lifecycle import run_lifecycle
from tasks.lineage.openlineage import file_dataset, table_dataset
from tasks.lineage.runs import start_run
from tasks.warehouse.connection import connect
from tasks.warehouse.query import run_query


def runs(home) -> dict[str, str]:
    return dict(run_query("SELECT run_id, status FROM lineage_runs", home)[1])


def events(home) -> list[dict]:
    path = Home.of(home).openlineage
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_finished_run_is_completed_published_and_reported(home, prefect_harness):
    with run_lifecycle("train", {"lr": 1e-3}, home, lineage_events=True) as run:
        run.inputs += [file_dataset(home / "snapshots" / "s1.parquet", "snapshot", "snapshots/s1"),
                       table_dataset(home, "preference_pairs")]
        run.announce({"lr": 1e-3})
        run.outputs.append(file_dataset(home / "checkpoints" / "c1", "checkpoint", "checkpoints/c1", algo="kto"))
        run.metrics = {"train_loss": 0.5}
        assert not Home.of(home).published.exists()  # published when the run ends
    assert runs(home) == {run.run_id: "completed"}
    start, complete = events(home)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["facets"]["thumbs"]["config"] == {"lr": 1e-3}
    assert complete["run"]["facets"]["thumbs"]["metrics"] == {"train_loss": 0.5}
    # OpenLineage naming: files by absolute path in namespace `file`, tables as database.schema.table
    snapshot, table = complete["inputs"]
    assert (snapshot["namespace"], snapshot["name"]) == ("file", str(home / "snapshots" / "s1.parquet"))
    assert snapshot["facets"]["symlinks"]["identifiers"] == [{"namespace": "thumbs", "name": "snapshots/s1",
                                                              "type": "snapshot"}]
    assert table["namespace"].startswith("duckdb://") and table["namespace"].endswith(str(Home.of(home).warehouse))
    assert table["name"] == "warehouse.main.preference_pairs"
    [checkpoint] = complete["outputs"]
    assert checkpoint["facets"]["thumbs"] == {**checkpoint["facets"]["thumbs"], "kind": "checkpoint",
                                              "properties": {"algo": "kto"}}
    assert {e["job"]["name"] for e in (start, complete)} == {"train"}
    assert {e["job"]["namespace"] for e in (start, complete)} == {"thumbs"}


def test_a_failed_run_is_failed_published_and_names_its_inputs(home, prefect_harness):
    with pytest.raises(ThumbsError, match="no such checkpoint"):
        with run_lifecycle("evaluate", {}, home, lineage_events=True) as run:
            run.inputs.append(file_dataset(home / "checkpoints" / "c1", "checkpoint", "checkpoints/c1"))
            raise ThumbsError("no such checkpoint")
    assert runs(home) == {run.run_id: "failed"}
    [fail] = events(home)
    assert fail["eventType"] == "FAIL" and [d["name"] for d in fail["inputs"]] == [str(home / "checkpoints" / "c1")]
    assert fail["run"]["facets"]["errorMessage"]["message"] == "no such checkpoint"


def test_without_lineage_events_only_the_row_is_kept(home, prefect_harness):
    with pytest.raises(KeyboardInterrupt):
        with run_lifecycle("ingest", {"source": "hh"}, home):
            raise KeyboardInterrupt  # Ctrl-C fails the run too
    assert list(runs(home).values()) == ["failed"] and events(home) == []


def test_one_at_a_time_holds_the_lock_and_marks_killed_runs_interrupted(home, prefect_harness):
    with connect(home) as con:
        start_run(con, "nightly", {}, "killed-run")
    with run_lifecycle("nightly", {}, home, one_at_a_time=True) as run:
        with pytest.raises(ThumbsError, match="another nightly run is in progress"):
            with run_lifecycle("nightly", {}, home, one_at_a_time=True):
                pass
    assert runs(home) == {"killed-run": "interrupted", run.run_id: "completed"}
