"""SIGKILL during ingest, publish and binarize, then re-run: the warehouse equals a
clean run's, no row is lost or duplicated, and nothing half-written is ever visible.

The killed processes run through _killable.py, which reports where it is and
can stop at a named point so the kill lands exactly there. Kills at flow level
(between files, during publish, during binarize) kill the real CLI
(flows.cli.main), talking to the session's Prefect server (PREFECT_API_URL)
instead of starting an ephemeral one each (~20 s). Kills inside one file's
transaction kill `_killable.py --direct`, which runs the flow's file task body
(tasks.ingest.load.ingest_file) without importing Prefect: same code path, a
second to start instead of four.

One home goes through a chain of kills, the way a nightly job that keeps being
killed would; the tests below check what the chain observed.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import KILL_CHUNK_ROWS
from .harness import (MARTS, Thumbs, compare, fingerprint, partial_state_problems, published_problems,
                      sha256_file, warehouse_rows)

SEED = int(os.environ.get("RELIABILITY_SEED", "20240601"))


@dataclass
class Kill:
    name: str
    pause_at: str = ""
    landed: bool = False
    seen: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    published_before: str | None = None  # sha256 of the analysts' copy before the kill
    published_after: str | None = None
    marts_kept: bool | None = None


@dataclass
class Chain:
    home: Path
    kills: list[Kill]
    final: dict
    lineage_status: dict[str, int]
    stray_publish_files: list[str]


def _published_sha(home: Path) -> str | None:
    path = home / "published" / "warehouse.duckdb"
    return sha256_file(path) if path.exists() else None


@pytest.fixture(scope="module")
def chain(hh_files, clean_reference, prefect_api_url, tmp_path_factory) -> Chain:
    from flows.cli import main

    rng = random.Random(SEED)
    home = tmp_path_factory.mktemp("killed-home")
    events = home.parent / "events.txt"
    ingest = ["--home", str(home), "ingest", "hh", *hh_files.paths]
    ingest_direct = ["--direct", str(home), "hh", *hh_files.paths]
    binarize = ["--home", str(home), "binarize"]
    kills: list[Kill] = []

    def kill(name: str, argv: list[str], *, pause_at: str = "", after: str = "", delay: float = 0.0,
             check_marts: bool = False) -> None:
        record = Kill(name, pause_at, published_before=_published_sha(home))
        marts_before = fingerprint(home, MARTS) if check_marts else None
        thumbs = Thumbs(argv, events, prefect_api_url=prefect_api_url, pause_at=pause_at,
                        chunk_rows=KILL_CHUNK_ROWS)
        if pause_at:
            thumbs.wait_for("paused")
        else:
            thumbs.wait_for(after)
            time.sleep(delay)
        record.landed = thumbs.kill()
        record.seen = thumbs.seen()
        record.problems = partial_state_problems(home, hh_files.raw_rows) + published_problems(home)
        record.published_after = _published_sha(home)
        if check_marts:
            record.marts_kept = fingerprint(home, MARTS) == marts_before
        kills.append(record)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tasks.ingest.load.CHUNK_ROWS", KILL_CHUNK_ROWS)
        assert main(["--home", str(home), "ingest", "shp", *hh_files.shp]) == 0  # an analysts' copy exists

        kill("file A: the rows DuckDB parsed staged, the parser's rows not yet", ingest_direct,
             pause_at="insert-staged_by_sql:1")
        kill("file A: after the rows its parser staged", ingest_direct,
             pause_at="insert-staged_chunk:1")
        kill("file A: at a random moment of its load", ingest_direct, after="file-start:1",
             delay=rng.uniform(0.05, 0.4))
        kill("between files: A committed, B not started", ingest, pause_at="file-committed:1")
        kill("file B: after its parser's quarantined rows", ingest_direct,
             pause_at="insert-quarantine_chunk:1")
        kill("publish: new copy built, not yet swapped in", ingest, pause_at="publish-swap:1")

        assert main(ingest) == 0
        assert main(binarize + ["eval_fraction=0.3"]) == 0  # marts to keep through the next kill
        kill("binarize: inside its transaction, after a random model", binarize,
             pause_at=f"binarize-model:{rng.randint(1, 7)}", check_marts=True)
        kill("binarize: committed, publish not yet swapped", binarize, pause_at="publish-swap:1")

        assert main(binarize) == 0
    lineage = dict(warehouse_rows(home, "SELECT status, count(*) FROM lineage_runs GROUP BY ALL"))
    stray = sorted(p.name for p in (home / "published").iterdir() if p.name != "warehouse.duckdb")
    return Chain(home, kills, fingerprint(home), lineage, stray)


def test_every_kill_landed_inside_a_running_thumbs(chain):
    paused = [k for k in chain.kills if k.pause_at]
    assert len(chain.kills) == 8
    assert [k.name for k in paused if not (k.landed and "paused" in k.seen)] == []
    assert all(k.pause_at in k.seen for k in paused)


def test_nothing_half_written_is_visible_after_any_kill(chain):
    problems = {k.name: k.problems for k in chain.kills if k.problems}
    assert problems == {}


def test_analysts_copy_is_untouched_by_a_kill_before_its_swap(chain):
    for kill in chain.kills:
        assert kill.published_before is not None, kill.name
        assert kill.published_after == kill.published_before, kill.name


def test_kill_inside_binarize_keeps_the_previous_marts(chain):
    inside = [k for k in chain.kills if k.marts_kept is not None]
    assert inside and all(k.marts_kept for k in inside)


def test_rerun_after_every_kill_equals_a_clean_run(chain, clean_reference):
    result = compare(clean_reference, chain.final)
    assert (result.lost, result.duplicated) == (0, 0), result.differing
    assert sum(chain.final["raw.records"].values()) == sum(clean_reference["raw.records"].values()) > 7000


def test_killed_runs_never_count_as_completed(chain):
    # Flow runs: 4 finished in-process (shp, hh, 2 binarize) + 2 killed only while publishing,
    # after they had recorded their (finished) work; 2 were killed mid-work and must not read
    # 'completed' (they stay 'running' until something marks them). The --direct kills run no
    # flow, so they leave no lineage row.
    assert chain.lineage_status.get("completed") == 6
    assert sum(chain.lineage_status.values()) == 8


def test_a_killed_publish_leaves_no_stray_files(chain):
    assert chain.stray_publish_files == []
