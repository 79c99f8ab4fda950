"""Every malformed file of corpus.CASES gets the outcome it is owed: a one-line error
naming the file (and row) with the warehouse unchanged, or quarantine with a reason
and every row accounted for, or a clean load that keeps hostile text byte for byte.

Loads go through tasks.ingest.load.ingest_file (what the ingest flow's file task runs);
a few representatives also go through the `thumbs` CLI to see the printed line.
"""
from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from flows.cli import main
from tasks.ingest.load import ingest_file
from tasks.common.settings import ThumbsError
from tasks.sources import bind_source
from tasks.warehouse.connection import connect

from . import ledger
from .corpus import CASES, EXAMPLES, Case, FileError, Loads, Real
from .harness import count_rows

STAGING = ["staging.stg_hh__pairs", "staging.stg_shp__pairs", "staging.stg_oasst__messages",
           "staging.stg_log__ratings", "staging.stg_log__pairs"]


@pytest.fixture(scope="module")
def real() -> Real:
    return Real()


def materialize(case: Case, real: Real, folder: Path) -> tuple[Path, Path | None]:
    path = folder / case.filename
    path.write_bytes(case.build(real))
    if not case.mapping:
        return path, None
    if isinstance(case.mapping, str):
        return path, EXAMPLES / f"{case.mapping}.mapping.yaml"
    mapping = folder / "broken.mapping.yaml"
    mapping.write_bytes(case.mapping(real))
    return path, mapping


def user_ids(path: Path) -> set[str]:
    """The raw user ids a log file holds (they must never be stored)."""
    found = set()
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        for user in ("user", "email"):
            marker = f'"{user}": "'
            start = line.find(marker)
            if start >= 0:
                found.add(line[start + len(marker):].split('"', 1)[0])
    return {u for u in found if u and not u.startswith("u_")}


def strings(value) -> list[str]:
    """Every string inside staged rows (prompts are lists of role/content structs)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in strings(item)]
    return []


def params() -> list:
    return [pytest.param(case, id=case.name, marks=[pytest.mark.xfail(strict=True, reason=f"product bug: {case.bug}")]
                         if case.bug else []) for case in CASES]


@pytest.mark.parametrize("case", params())
def test_malformed_file(case: Case, real, home, tmp_path):
    ledger.bad_input(case.name)
    path, mapping = materialize(case, real, tmp_path)
    before = count_rows(home) if (home / "warehouse.duckdb").exists() else None
    expect = case.expect
    try:
        binding = bind_source(case.source, mapping=mapping, home=home)
        with connect(home) as con:
            result = ingest_file(con, binding, path, "batch-bad")
    except ThumbsError as exc:
        assert isinstance(expect, FileError), f"unexpected file error: {exc}"
        message = str(exc)
        assert "\n" not in message and len(message) < 600, f"not one short line ({len(message)} chars)"
        assert str(mapping if expect.names_mapping else path) in message
        if expect.row is not None:
            assert f"row {expect.row}:" in message
        assert re.search(expect.reason, message), message
        if before is not None:
            assert count_rows(home) == before, "a bad file must change nothing"
        return
    assert not isinstance(expect, FileError), f"expected a file error, got {result}"
    assert result.rows_read == result.rows_loaded + result.rows_duplicate + result.rows_quarantined
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        quarantined = con.execute("SELECT row_number, reason, raw FROM quarantine ORDER BY ALL").fetchall()
        raw_rows = con.execute("SELECT record FROM raw.records").fetchall()
        staged = [row for table in STAGING for row in con.execute(f"SELECT * FROM {table}").fetchall()]
    finally:
        con.close()
    assert len(quarantined) == result.rows_quarantined
    assert len(staged) == result.rows_loaded
    if isinstance(expect, Loads):
        assert (result.rows_loaded, result.rows_duplicate, result.rows_quarantined) == \
               (expect.loaded, expect.duplicate, 0), quarantined
        stored = set(strings(staged))
        for text in expect.texts:
            assert text in stored or any(text in s for s in stored), f"{text!r} did not come back byte for byte"
    else:
        if expect.loaded is not None:
            assert result.rows_loaded == expect.loaded
        assert result.rows_duplicate == expect.duplicate
        if expect.every_reason_in:
            assert quarantined and result.rows_loaded == 0
            assert all(any(r in reason for r in expect.every_reason_in) for _, reason, _ in quarantined), quarantined
        else:
            assert len(quarantined) == len(expect.rows), quarantined
            for row_number, reason in expect.rows:
                assert any(n == row_number and reason in got for n, got, _ in quarantined), \
                    f"row {row_number}: no quarantine reason containing {reason!r}; got {quarantined}"
    if case.source == "log":
        stored = "\n".join([r[0] for r in raw_rows] + [q[2] or "" for q in quarantined])
        assert not [u for u in user_ids(path) if u in stored], "a raw user id was stored"


CLI_CASES = ["hh-gzip-without-trailer", "shp-first-row-missing-human_ref_B", "log-first-row-missing-rating-column",
             "mapping-typo-in-a-key", "oasst-tree-node-without-id"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_prints_one_line_naming_file_row_and_reason(name, real, home, tmp_path, prefect_harness, capsys):
    case = next(c for c in CASES if c.name == name)
    path, mapping = materialize(case, real, tmp_path)
    argv = ["--home", str(home), "ingest", case.source, str(path)] + (["--mapping", str(mapping)] if mapping else [])
    code = main(argv)
    out, err = capsys.readouterr()
    if isinstance(case.expect, FileError):
        named = mapping if case.expect.names_mapping else path
        assert code == 1 and err.startswith(f"thumbs: error: {named}: ") and err.count("\n") == 1, err
        if case.expect.row:
            assert f"row {case.expect.row}:" in err
    else:
        assert code == 0 and err == ""
        for _, reason in case.expect.rows:
            assert reason in out or reason[:20] in out
