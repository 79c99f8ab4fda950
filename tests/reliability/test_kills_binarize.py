"""SIGKILL inside an incremental binarize: the marts, the tied completions and the
watermark stay as the last build left them, and the next build takes the new
batch in and equals a full rebuild. The real CLI in a subprocess (_killable.py),
killed where it pauses: after the last SQL statement binarize runs, every mart
row replaced but not committed, and after a random one."""
from __future__ import annotations

import random

import duckdb

from flows.cli import main
from samples import DEMO_HH_HARMLESS, DEMO_HH_HELPFUL

from .harness import Thumbs

TABLES = ("preference_pairs", "feedback", "feedback_ties", "binarize_batches", "binarize_builds")


def state(home) -> dict[str, tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return {table: con.execute(f"SELECT count(*), sum(hash(t)) FROM {table} AS t").fetchone()
                for table in TABLES[:3]} | {
               table: con.execute(f"SELECT count(*) FROM {table}").fetchone() for table in TABLES[3:]}
    finally:
        con.close()


def test_a_killed_incremental_binarize_changes_nothing_and_the_next_one_catches_up(
        tmp_path, prefect_api_url):
    home = tmp_path / "home"
    binarize = ["--home", str(home), "binarize"]
    assert main(["--home", str(home), "ingest", "hh", str(DEMO_HH_HELPFUL)]) == 0
    assert main(binarize) == 0
    assert main(["--home", str(home), "ingest", "hh", str(DEMO_HH_HARMLESS)]) == 0
    before = state(home)

    # How many SQL statements an incremental build runs here: a build on a copy.
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "warehouse.duckdb").write_bytes((home / "warehouse.duckdb").read_bytes())
    dry = Thumbs(["--home", str(copy), "binarize"], tmp_path / "dry.events", prefect_api_url=prefect_api_url)
    assert dry.finish() == 0
    statements = sum(event.startswith("binarize-model:") for event in dry.seen())
    assert statements > 10

    for number, pause_at in enumerate([statements, random.Random(20240601).randint(1, statements - 1)]):
        killed = Thumbs(binarize, tmp_path / f"kill-{number}.events", prefect_api_url=prefect_api_url,
                        pause_at=f"binarize-model:{pause_at}")
        killed.wait_for("paused")
        assert killed.kill()
        assert state(home) == before, f"killed after statement {pause_at}"

    assert main(binarize) == 0
    caught_up = state(home)
    assert caught_up["binarize_batches"] == (2,) and caught_up["preference_pairs"][0] > before["preference_pairs"][0]
    assert main(binarize + ["--full"]) == 0
    rebuilt = state(home)
    assert {t: rebuilt[t] for t in TABLES[:3]} == {t: caught_up[t] for t in TABLES[:3]}
