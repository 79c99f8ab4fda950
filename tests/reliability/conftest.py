"""Fixtures of the reliability suite. Its summary line (bad inputs tried, faults
injected by kind, rows lost and duplicates over every comparison with a clean
run) is printed by tests/conftest.py, which pytest-xdist's controller loads too."""
from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from samples import shared_data, shared_shp
from .harness import fingerprint, sha256_file, write_jsonl

# Small chunks make a few thousand rows span several chunk inserts inside the
# file's transaction, as a big file does with the production chunk size.
KILL_CHUNK_ROWS = 1000


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness) -> str:
    """The session's Prefect server, for `thumbs` subprocesses (no ~20 s ephemeral start each)."""
    import prefect.settings

    return prefect.settings.PREFECT_API_URL.value()


def read_hh(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@dataclass(frozen=True)
class HHFiles:
    """Two HH files built from the real test splits, with duplicates within and across files."""

    a: Path
    b: Path
    raw_rows: dict[str, int]  # sha256 -> rows
    shp: tuple[str, ...]  # loaded first, so an analysts' copy exists before any kill

    @property
    def paths(self) -> list[str]:
        return [str(self.a), str(self.b)]


@pytest.fixture(scope="session")
def hh_files(tmp_path_factory) -> HHFiles:
    hh = shared_data("the whole HH-RLHF test files (7415 rows: kills must land inside files of several "
                     "chunks, a full disk must be too small for them)") / "hh-rlhf"
    harmless = read_hh(hh / "harmless-base.test.jsonl.gz")
    helpful = read_hh(hh / "helpful-base.test.jsonl.gz")
    rejection = read_hh(hh / "helpful-rejection-sampled.test.jsonl.gz")
    rng = random.Random(20240601)
    a_rows = harmless + helpful
    a_rows += rng.sample(a_rows, 150)  # the same rows again in the same file: duplicates
    b_rows = rejection + rng.sample(harmless + helpful, 250)  # rows file A already has
    folder = tmp_path_factory.mktemp("hh-kill-files")
    a = write_jsonl(folder / "nightly-a.jsonl", a_rows)
    b = write_jsonl(folder / "nightly-b.jsonl", b_rows)
    shp = tuple(sorted(str(p) for p in shared_shp().glob("*.jsonl")))
    return HHFiles(a, b, {sha256_file(a): len(a_rows), sha256_file(b): len(b_rows)}, shp)


@pytest.fixture(scope="session")
def clean_reference(hh_files, prefect_harness, tmp_path_factory):
    """The warehouse after undisturbed `thumbs ingest shp ...`, `thumbs ingest hh A B`, `thumbs binarize`.

    With the production chunk size: a run disturbed with small chunks must still match it.
    """
    from flows.cli import main

    home = tmp_path_factory.mktemp("clean-run")
    assert main(["--home", str(home), "ingest", "shp", *hh_files.shp]) == 0
    assert main(["--home", str(home), "ingest", "hh", *hh_files.paths]) == 0
    assert main(["--home", str(home), "binarize"]) == 0
    return fingerprint(home)
