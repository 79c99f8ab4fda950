"""Analysts query while pipelines write; two ingests start at once.

Readers: a separate process runs `thumbs query` in a loop (tasks.warehouse.query.run_query,
and the CLI every tenth round) for as long as the writers run. Writers: two real
`thumbs ingest hh A B` processes started together, then `thumbs binarize`; and,
apart, a `thumbs nightly` run that ingests, binarizes, trains (tiny-llama),
evaluates and promotes. Nothing may fail, every published copy a reader sees must
be whole, the second ingest must wait (not fail), and the result must equal a clean run.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from tasks.ingest.load import ingest_file
from tasks.warehouse.publish import publish
from tasks.warehouse.query import run_query
from tasks.common.settings import PROJECT_ROOT, ThumbsError
from tasks.sources import bind_source
from tasks.warehouse.connection import connect

from . import ledger
from .conftest import KILL_CHUNK_ROWS
from .harness import Thumbs, compare, fingerprint, partial_state_problems, published_problems, subprocess_env

READER = Path(__file__).with_name("_reader.py")


def test_readers_and_two_writers_at_once(hh_files, clean_reference, prefect_api_url, tmp_path):
    from flows.cli import main

    home = tmp_path / "home"
    assert main(["--home", str(home), "ingest", "shp", *hh_files.shp]) == 0  # something to read from the start
    stop, report = tmp_path / "stop", tmp_path / "reader.json"
    reader = subprocess.Popen([sys.executable, str(READER), str(home), str(stop), str(report)], cwd=PROJECT_ROOT,
                              env=subprocess_env(prefect_api_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        ingest = ["--home", str(home), "ingest", "hh", *hh_files.paths]
        first = Thumbs(ingest, tmp_path / "first.events", prefect_api_url=prefect_api_url)
        second = Thumbs(ingest, tmp_path / "second.events", prefect_api_url=prefect_api_url)
        ledger.fault("concurrent writer")
        codes = [first.finish(), second.finish()]
        binarize = Thumbs(["--home", str(home), "binarize"], tmp_path / "binarize.events",
                          prefect_api_url=prefect_api_url)
        codes.append(binarize.finish())
        time.sleep(0.5)  # a few reads of the final copy
    finally:
        stop.touch()
        reader_out, reader_err = reader.communicate(timeout=120)
    seen = json.loads(report.read_text())

    for writer, code in zip((first, second, binarize), codes):
        assert code == 0 and "Traceback" not in writer.stderr, writer.stderr[-2000:]
    assert seen["error_count"] == 0, seen["errors"]
    assert seen["inconsistent"] == []
    assert seen["rounds"] >= 20 and seen["cli_runs"] >= 2, seen
    assert len(seen["versions"]) >= 3, "readers should have seen the copy change while writers ran"

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        statuses = con.execute("SELECT file, list(status ORDER BY status) FROM ingest_runs "
                               "WHERE source = 'hh' GROUP BY ALL").fetchall()
    finally:
        con.close()
    assert sorted(s for _, s in statuses) == [["loaded", "skipped"], ["loaded", "skipped"]], statuses
    result = compare(clean_reference, fingerprint(home))
    assert (result.lost, result.duplicated) == (0, 0), result.differing


def test_a_writer_that_cannot_get_the_lock_gives_up_with_a_clear_message(hh_files, tmp_path):
    home = tmp_path / "home"
    with connect(home) as con:
        for path in hh_files.shp:
            ingest_file(con, bind_source("shp"), path, "seed")
        publish(con, home)
    before = fingerprint(home)
    holder = Thumbs(["--direct", str(home), "hh", str(hh_files.a)], tmp_path / "holder.events",
                    prefect_api_url=None, pause_at="insert-staged_by_sql:1", chunk_rows=KILL_CHUNK_ROWS)
    try:
        holder.wait_for("paused")
        started = time.monotonic()
        with pytest.raises(ThumbsError) as refused:
            with connect(home, wait_seconds=1.5):
                pass
        ledger.fault("lock timeout")
        waited = time.monotonic() - started
        # Analysts are not blocked by the writer holding the lock.
        assert run_query("SELECT count(*) FROM ingest_runs", home)[1] == [(3,)]
    finally:
        holder.kill()
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{home / 'warehouse.duckdb'}: the warehouse is busy")
    assert "another thumbs run is writing it" in message and 1.4 < waited < 30
    assert partial_state_problems(home, hh_files.raw_rows) + published_problems(home) == []
    result = compare(before, fingerprint(home))
    assert (result.lost, result.duplicated) == (0, 0), result.differing


def test_readers_while_a_nightly_run_ingests_and_trains(hh_files, prefect_api_url, tiny_llama_dir, tmp_path):
    from flows.cli import main

    home = tmp_path / "home"
    assert main(["--home", str(home), "ingest", "shp", *hh_files.shp]) == 0  # something to read from the start
    sources = tmp_path / "sources.yaml"
    # Evaluation cut to a few pairs and tokens: the readers must overlap training, not wait for generation.
    sources.write_text(yaml.safe_dump({
        "sources": [{"source": "hh", "paths": hh_files.paths}],
        "evaluation": {"max_pairs": 4, "generation_prompts": 1, "max_new_tokens": 4, "kl_samples": 1}}))
    stop, report = tmp_path / "stop", tmp_path / "reader.json"
    reader = subprocess.Popen([sys.executable, str(READER), str(home), str(stop), str(report)], cwd=PROJECT_ROOT,
                              env=subprocess_env(prefect_api_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        nightly = Thumbs(["--home", str(home), "nightly", "--sources", str(sources), "--algo", "dpo",
                          f"model={tiny_llama_dir}", "max_length=64", "batch_size=2", "steps=2", "eval_batches=1",
                          "max_rows=16", "device=cpu"], tmp_path / "nightly.events", prefect_api_url=prefect_api_url)
        ledger.fault("concurrent writer")
        code = nightly.finish()
        time.sleep(0.5)  # a few reads of the final copy
    finally:
        stop.touch()
        reader.communicate(timeout=120)
    seen = json.loads(report.read_text())

    assert code == 0 and "Traceback" not in nightly.stderr, nightly.stderr[-2000:]
    assert seen["error_count"] == 0, seen["errors"]
    assert seen["inconsistent"] == []
    assert seen["rounds"] >= 20 and seen["cli_runs"] >= 2, seen
    checkpoints_seen = {version[-1] for version in seen["versions"]}
    assert checkpoints_seen == {0, 1}, "readers should have read on through training into the recorded checkpoint"
    assert run_query("SELECT count(*) FROM checkpoints", home)[1] == [(1,)]
