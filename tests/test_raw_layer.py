"""The raw layer: a JSON Lines file is archived once under THUMBS_HOME/raw by its
sha256 and raw.records reads it there, giving back every row as the ingest read it
(row numbers, text), in the live warehouse and in the analysts' published copy.
Files DuckDB would read differently keep their rows as table rows; warehouses from
before migration 006 keep theirs."""
from __future__ import annotations

import gzip
import hashlib
import json

import duckdb
import pytest

from tasks.common.home import Home
from tasks.ingest.load import ingest_file
from tasks.sources import bind_source
from tasks.warehouse.connection import connect, migrate
from tasks.warehouse.publish import publish
from tasks.warehouse.query import run_query
from samples import DEMO_HH_HARMLESS

GOOD = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}


def raw_rows(con) -> list[tuple]:
    return con.execute("SELECT source, file_sha256, row_number, record FROM raw.records "
                       "ORDER BY file_sha256, row_number").fetchall()


def test_real_hh_file_is_archived_once_and_read_back_row_for_row(home):
    lines = gzip.decompress(DEMO_HH_HARMLESS.read_bytes()).decode().splitlines()
    sha = hashlib.sha256(DEMO_HH_HARMLESS.read_bytes()).hexdigest()
    with connect(home) as con:
        result = ingest_file(con, bind_source("hh"), DEMO_HH_HARMLESS, "b1")
        assert result.rows_read == len(lines) == 200
        assert raw_rows(con) == [("hh", sha, n, line) for n, line in enumerate(lines, 1)]
        assert con.execute("SELECT count(*) FROM raw.stored_records").fetchone() == (0,)  # no second copy
        again = ingest_file(con, bind_source("hh"), DEMO_HH_HARMLESS, "b2")
        assert again.status == "skipped" and len(raw_rows(con)) == 200
        publish(con, home)
    archived = list(Home.of(home).raw_archive.rglob("*.jsonl.gz"))
    assert [p.name for p in archived] == [f"{sha}.jsonl.gz"]
    assert archived[0].read_bytes() == DEMO_HH_HARMLESS.read_bytes()
    # what `thumbs query` answers: the published copy, which had no raw.records before
    assert run_query("SELECT count(*) FROM raw.records", home)[1] == [(result.rows_read,)]


def test_blank_lines_bom_and_crlf_are_numbered_as_the_reader_numbers_them(home, tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\r\n\n   \n"
                     + b'{"chosen": "\\\\x1e a|b", "rejected": 1}\n' + b"not json")
    with connect(home) as con:
        result = ingest_file(con, bind_source("hh"), path, "b1")
        assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 1, 2)
        rows = [(n, record) for _, _, n, record in raw_rows(con)]
        assert rows == [(1, json.dumps(GOOD)), (4, '{"chosen": "\\\\x1e a|b", "rejected": 1}'), (5, "not json")]
        assert con.execute("SELECT count(*) FROM raw.files").fetchone() == (1,)  # read from the archive


def test_a_file_duckdb_reads_differently_keeps_its_rows_as_table_rows(home, tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"chosen": "caf\xe9"}\n')  # row 2 is not UTF-8
    with connect(home) as con:
        result = ingest_file(con, bind_source("hh"), path, "b1")
        assert (result.rows_read, result.rows_quarantined) == (2, 1)
        assert con.execute("SELECT count(*) FROM raw.files").fetchone() == (0,)
        assert [n for _, _, n, _ in raw_rows(con)] == [1, 2]
        assert con.execute("SELECT count(*) FROM raw.stored_records").fetchone() == (2,)



def test_a_raw_separator_byte_in_a_row_leaves_no_row_unaccounted(home, tmp_path):
    # byte 30 is the field separator DuckDB reads archived lines with: a row starting
    # with it read as empty and vanished from the accounting (found by the property
    # suite with the first line below)
    path = tmp_path / "separator.jsonl"
    path.write_bytes(b"\x1el\xf6\xf8\n\n" + b"\x1e" + json.dumps(GOOD).encode() + b"\n" + json.dumps(GOOD).encode()
                     + b"\n")
    with connect(home) as con:
        result = ingest_file(con, bind_source("hh"), path, "b1")
        assert (result.rows_read, result.rows_loaded, result.rows_duplicate, result.rows_quarantined) == (3, 1, 0, 2)  # JSON allows no byte 30 before a value
        assert [n for _, _, n, _ in raw_rows(con)] == [1, 3, 4]
        assert con.execute("SELECT count(*) FROM staging.stg_hh__pairs").fetchone() == (1,)

def test_raw_rows_of_a_warehouse_from_before_migration_006_stay_queryable(home):
    con = duckdb.connect(str(Home.of(home).warehouse))
    migrate(con, until="005_row_keys")
    con.execute("INSERT INTO raw.records VALUES ('old', 'hh', 'abc', 1, '{}')")
    con.close()
    with connect(home) as con:  # migrates to 006
        assert raw_rows(con) == [("hh", "abc", 1, "{}")]
        ingest_file(con, bind_source("hh"), DEMO_HH_HARMLESS, "b1")
        assert con.execute("SELECT count(*) FROM raw.records").fetchone() == (201,)


def test_lines_of_only_unicode_whitespace_are_blank_on_both_routes(home, tmp_path):
    # The reader skips a line that Python's str.isspace calls blank; DuckDB's regex \s
    # knows fewer characters (not \v, \x1c, U+3000, ...), and read such lines as rows.
    path = tmp_path / "spaces.jsonl"
    path.write_bytes("\t\n\v\n\x1c \n\u3000\u2028\n".encode() + json.dumps(GOOD).encode() + b"\n\x0c\n")
    with connect(home) as con:
        result = ingest_file(con, bind_source("hh"), path, "b1")
        assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (1, 1, 0)
        assert [n for _, _, n, _ in raw_rows(con)] == [5]
        assert con.execute("SELECT count(*) FROM raw.files").fetchone() == (1,)  # read from the archive


def pair(i: int) -> dict:
    return {"chosen": f"\n\nHuman: Hi {i}\n\nAssistant: Hello!", "rejected": f"\n\nHuman: Hi {i}\n\nAssistant: Go away."}


def staged_state(con) -> tuple:
    staging = con.execute("SELECT row_key, row_number, prompt, chosen, rejected FROM staging.stg_hh__pairs "
                          "ORDER BY row_number").fetchall()
    quarantine = con.execute("SELECT row_number, reason FROM quarantine ORDER BY row_number").fetchall()
    return staging, quarantine, [(n, r) for _, _, n, r in raw_rows(con)]


def test_a_file_staged_batch_by_batch_equals_it_staged_at_once(tmp_path, monkeypatch):
    # DuckDB stages a file in batches of lines; duplicates, quirks and blank lines that
    # cross batch borders must come out as they do in one batch.
    lines = gzip.decompress(DEMO_HH_HARMLESS.read_bytes()).splitlines()
    path = tmp_path / "repeats.jsonl"
    path.write_bytes(b"\n".join(lines + [b"", b"  "] + lines[:20]) + b"\n")
    import tasks.ingest.in_duckdb as in_duckdb

    outcomes = []
    for batch in (in_duckdb.LINE_BATCH, 7):
        monkeypatch.setattr(in_duckdb, "LINE_BATCH", batch)
        with connect(tmp_path / f"home-{batch}") as con:
            result = ingest_file(con, bind_source("hh"), path, "b1")
            outcomes.append(((result.rows_read, result.rows_loaded, result.rows_duplicate, result.rows_quarantined),
                             staged_state(con), con.execute("SELECT count(*) FROM raw.files").fetchone()))
    assert outcomes[0] == outcomes[1]
    counts, (staging, _, raw), archived = outcomes[0]
    assert counts[0] == 220 and counts[2] == 20 and sum(counts[1:]) == 220
    assert len(staging) == counts[1] and len(raw) == 220 and archived == (1,)


def test_a_line_duckdb_reads_differently_late_in_a_file_sends_it_whole_to_the_python_route(home, tmp_path,
                                                                                          monkeypatch):
    # Batches before the carriage return were already staged by DuckDB: they are rolled
    # back, and the Python route loads the file once.
    import tasks.ingest.in_duckdb as in_duckdb

    monkeypatch.setattr(in_duckdb, "LINE_BATCH", 3)
    rows = [json.dumps(pair(i)).encode() for i in range(10)]
    rows[8] = rows[8][:-1] + b', "note": "a\rb"}'  # a raw carriage return: not JSON, and DuckDB would split there
    path = tmp_path / "late-cr.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    with connect(home) as con:
        result = ingest_file(con, bind_source("hh"), path, "b1")
        assert (result.rows_read, result.rows_loaded, result.rows_duplicate, result.rows_quarantined) == (10, 9, 0, 1)
        staging, quarantine, raw = staged_state(con)
        assert [n for _, n, *_ in staging] == [1, 2, 3, 4, 5, 6, 7, 8, 10]
        assert [n for n, _ in quarantine] == [9]
        assert [n for n, _ in raw] == list(range(1, 11))
        assert con.execute("SELECT count(*) FROM ingest_runs").fetchone() == (1,)


@pytest.mark.parametrize("route", ["duckdb", "python"])
def test_a_row_repeated_inside_a_batch_keeps_its_first_line(home, tmp_path, route):
    # One batch of 6,000 lines is several Arrow record batches, which DuckDB's threads
    # stage at once: the copy kept must still be the first in the file, on both routes,
    # and the later ones the duplicates (the fault suite's clean-run comparison found
    # the first version of the batch stream keeping either). No index catches a repeat:
    # the insert statements keep the first of a key themselves.
    unique = [json.dumps(pair(i)).encode() for i in range(3000)]
    if route == "python":  # a carriage return (JSON whitespace) in a line sends the file to the Python parser
        unique[0] = b"{\r" + unique[0][1:]
    path = tmp_path / "repeats-in-batch.jsonl"
    path.write_bytes(b"\n".join(unique + unique[::-1]) + b"\n")
    with connect(home) as con:
        result = ingest_file(con, bind_source("hh"), path, "b1")
        assert (result.rows_read, result.rows_loaded, result.rows_duplicate) == (6000, 3000, 3000)
        staged = [n for _, n, *_ in staged_state(con)[0]]
        assert staged == list(range(1, 3001))
        archived = con.execute("SELECT count(*) FROM raw.files").fetchone()[0]
        assert archived == (1 if route == "duckdb" else 0)


def test_read_ahead_gives_items_in_order_then_the_error_and_stops_its_thread_when_left():
    import threading

    from tasks.ingest.in_duckdb import read_ahead

    def items():
        yield from range(5)
        raise ValueError("line 6: broken")

    got = []
    try:
        for item in read_ahead(items()):
            got.append(item)
    except ValueError as exc:
        got.append(str(exc))
    assert got == [0, 1, 2, 3, 4, "line 6: broken"]
    endless = read_ahead(iter(int, 1))  # never ends
    assert [next(endless) for _ in range(3)] == [0, 0, 0]
    endless.close()  # the caller stops early (e.g. its INSERT failed): the thread ends, nothing waits
    assert not [t for t in threading.enumerate() if t.name == "thumbs-read-ahead"]
