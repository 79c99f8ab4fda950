"""The loader on real HH rows and on every kind of bad input: each bad file gets a
one-line error naming the file (and row) and changes nothing; each bad row is
quarantined with its reason; rows read = loaded + duplicate + quarantined."""
from __future__ import annotations

import csv
import gzip
import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.ingest.load import CHUNK_ROWS, ingest_file
from tasks.common.settings import ThumbsError
from tasks.sources import bind_source
from tasks.warehouse.connection import connect
from samples import DEMO_HH_HARMLESS, DEMO_HH_HELPFUL, HH_QUIRK_LINES, hh_quirks

GOOD = {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?",
        "rejected": "\n\nHuman: Hi there\n\nAssistant: Go away."}
OTHER = {"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4.",
         "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5."}


def table_counts(con) -> dict[str, int]:
    names = ["raw.records", "staging.stg_hh__pairs", "quarantine", "ingest_runs"]
    return {n: con.table(n).count("*").fetchall()[0][0] for n in names}


def write_jsonl(path: Path, lines: list[bytes | str | dict]) -> Path:
    with open(path, "wb") as fh:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line)
            fh.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


def ingest(home: Path, path: Path, batch: str = "batch-1", **kwargs):
    with connect(home) as con:
        result = ingest_file(con, bind_source("hh"), path, batch, **kwargs)
        return result, table_counts(con)


def assert_accounted(result) -> None:
    assert result.rows_read == result.rows_loaded + result.rows_duplicate + result.rows_quarantined


def test_real_hh_file_loads_and_reingest_changes_nothing(home):
    path = hh_quirks("helpful-base")  # every quirk row of helpful-base: 2 identical, 4 empty rejected
    rows = len(HH_QUIRK_LINES["helpful-base"])
    first, counts = ingest(home, path)
    assert first.rows_read == rows
    assert first.rows_quarantined == first.reasons.total() > 0  # 2 identical + 4 empty rejected at least
    assert first.reasons["chosen and rejected are identical"] == 2
    assert_accounted(first)
    assert counts["raw.records"] == rows
    assert counts["staging.stg_hh__pairs"] == first.rows_loaded
    assert counts["quarantine"] == first.rows_quarantined

    again, counts_again = ingest(home, path, batch="batch-2")
    assert again.status == "skipped" and again.previous_batch == "batch-1"
    assert (again.rows_read, again.rows_loaded) == (0, 0)
    assert {k: v for k, v in counts_again.items() if k != "ingest_runs"} == \
           {k: v for k, v in counts.items() if k != "ingest_runs"}


def test_same_rows_in_another_file_are_duplicates(home, tmp_path):
    first, _ = ingest(home, write_jsonl(tmp_path / "a.jsonl", [GOOD, OTHER]))
    second, counts = ingest(home, write_jsonl(tmp_path / "b.jsonl", [OTHER, GOOD, GOOD]), batch="batch-2")
    assert (first.rows_loaded, second.rows_loaded, second.rows_duplicate) == (2, 0, 3)
    assert counts["staging.stg_hh__pairs"] == 2
    assert counts["raw.records"] == 5  # every row as read is kept


def test_two_threads_loading_the_same_rows_load_them_once(home, tmp_path):
    # Connections of one process share the database, so only the loader keeps staging's
    # row_key unique there (no index does): the same rows in two files, loaded from two
    # threads at once, are staged once and counted duplicates the second time.
    rows = gzip.decompress(DEMO_HH_HELPFUL.read_bytes())
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    paths[0].write_bytes(rows)
    paths[1].write_bytes(rows + b"\n")  # other bytes, the same rows
    start = threading.Barrier(2, timeout=60)

    def load(con, path: Path, batch: str):
        start.wait()
        return ingest_file(con, bind_source("hh"), path, batch)

    with connect(home) as first, connect(home) as second, ThreadPoolExecutor(2) as pool:
        results = list(pool.map(load, [first, second], paths, ["batch-a", "batch-b"]))
    loaded = sorted(result.rows_loaded for result in results)
    assert loaded[0] == 0 and loaded[1] > 150
    assert sorted(result.rows_duplicate for result in results) == [0, loaded[1]]
    with connect(home) as con:
        assert con.execute("SELECT count(*), count(DISTINCT row_key) FROM staging.stg_hh__pairs").fetchone() \
            == (loaded[1], loaded[1])


def test_bad_rows_are_quarantined_with_reasons(home, tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        GOOD,
        '{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: yo"',      # truncated JSON
        b'{"chosen": "caf\xe9", "rejected": "x"}',              # latin-1 byte
        '["a", "list"]',                                        # not an object
        {"chosen": GOOD["chosen"]},                             # missing field in a later row
        {"chosen": "\n\nHuman: Hi\n\nAssistant: ", "rejected": "\n\nHuman: Hi\n\nAssistant: no"},
        {"chosen": 42, "rejected": "x"},                        # wrong type
        "",                                                     # blank line: not a row
        OTHER,
    ])
    result, counts = ingest(home, path)
    assert_accounted(result)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (8, 2, 6)
    with connect(home) as con:
        rows = con.execute("SELECT row_number, reason FROM quarantine ORDER BY row_number").fetchall()
    reasons = dict(rows)
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3] == "not valid UTF-8 at byte 15"
    assert reasons[4] == "expected a JSON object, got list"
    assert reasons[5] == "missing field 'rejected'"
    assert reasons[6] == "empty chosen reply"
    assert reasons[7] == "field 'chosen' should be text, got int"
    assert counts["raw.records"] == 8


def test_giant_row_is_quarantined_not_loaded(home, tmp_path):
    huge = {"chosen": "\n\nHuman: Q\n\nAssistant: " + "a" * 3_000_000,
            "rejected": "\n\nHuman: Q\n\nAssistant: b"}
    path = write_jsonl(tmp_path / "huge.jsonl", [huge, GOOD])
    result, _ = ingest(home, path, max_row_bytes=1 << 20)
    assert result.reasons == {"row is 3.0 MB, over the 1 MiB row limit": 1}
    assert result.rows_loaded == 1
    roomy, _ = ingest(home, path, batch="batch-2", max_row_bytes=8 << 20)
    assert roomy.status == "skipped"  # same file content: the first load stands


def file_errors(home: Path, path: Path, match: str) -> None:
    with connect(home) as con:
        before = table_counts(con)
        with pytest.raises(ThumbsError, match=match) as err:
            ingest_file(con, bind_source("hh"), path, "batch-x")
        assert table_counts(con) == before, "a bad file must change nothing"
    message = str(err.value)
    assert "\n" not in message and str(path) in message


def test_missing_file(home, tmp_path):
    file_errors(home, tmp_path / "nope.jsonl", "no such file")


def test_directory_is_not_a_file(home, tmp_path):
    (tmp_path / "dir.jsonl").mkdir()
    file_errors(home, tmp_path / "dir.jsonl", "not a regular file")


def test_truncated_gzip_changes_nothing(home, tmp_path):
    whole = DEMO_HH_HARMLESS.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    file_errors(home, cut, r"corrupt or truncated gzip after row \d+")


def test_unknown_format(home, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    file_errors(home, path, r"unknown format '\.txt'")


def test_fake_parquet(home, tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("not parquet at all\n")
    file_errors(home, path, "not a Parquet file")


def test_first_row_without_required_column_fails_the_file(home, tmp_path):
    path = write_jsonl(tmp_path / "wrong.jsonl", [{"prompt": "p", "response": "r"}, GOOD])
    file_errors(home, path, r"row 1: missing column 'chosen' \(the file has: prompt, response\)")


def test_all_formats_load_the_same_rows(home, tmp_path):
    rows = [GOOD, OTHER]
    jsonl = write_jsonl(tmp_path / "rows.jsonl", rows)
    gz = tmp_path / "rows.jsonl.gz"
    with open(jsonl, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    csv_path = tmp_path / "rows.csv"
    pa_table = pa.Table.from_pylist(rows)
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa_table, csv_path)
    pq.write_table(pa_table, tmp_path / "rows.parquet")
    for i, path in enumerate([jsonl, gz, tmp_path / "rows.json", csv_path, tmp_path / "rows.parquet"]):
        result, counts = ingest(home, path, batch=f"b{i}")
        assert result.rows_read == 2, path
        assert result.rows_loaded + result.rows_duplicate == 2, path
        assert counts["staging.stg_hh__pairs"] == 2, path


def test_csv_row_with_wrong_field_count(home, tmp_path):
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerows([["chosen", "rejected"], [GOOD["chosen"], GOOD["rejected"]], [OTHER["chosen"]]])
    result, _ = ingest(home, path)
    assert result.reasons == {"row has 1 fields, the header has 2": 1}
    assert result.rows_loaded == 1


def test_log_user_ids_never_reach_the_warehouse(home, tmp_path):
    """raw.records and quarantine keep rows "as read", but with the user column pseudonymized;
    a row too broken to find its user column in is withheld, not stored."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    log = tmp_path / "log.jsonl"
    lines = (examples / "support-bot.jsonl").read_text().splitlines()[:20]
    log.write_text("\n".join(lines + ['{"user": "leaky.person@example.com", "broken']) + "\n")
    emails = {json.loads(line)["user"] for line in lines} | {"leaky.person@example.com"}
    binding = bind_source("log", mapping=examples / "support-bot.mapping.yaml", home=home)
    with connect(home) as con:
        result = ingest_file(con, binding, log, "batch-1")
        stored = con.execute("SELECT record FROM raw.records UNION ALL SELECT raw FROM quarantine").fetchall()
    assert result.rows_read == 21 and result.reasons["invalid JSON: Unterminated string starting at (column 38)"] == 1
    text = "\n".join(r[0] for r in stored)
    assert not [e for e in emails if e in text]
    assert text.count('"user": "u_') >= 19  # pseudonyms stand where the ids were


def load_everything(home: Path, path: Path):
    with connect(home) as con:
        result = ingest_file(con, bind_source("hh"), path, "batch-1")
        tables = {name: con.execute(f"SELECT * EXCLUDE (batch_id) FROM {name} ORDER BY row_number").fetchall()
                  for name in ("raw.records", "staging.stg_hh__pairs", "quarantine")}
    return result, tables


def test_worker_processes_load_what_the_loader_loads_alone(tmp_path, monkeypatch):
    """Big files parse in worker processes: the same rows, order and accounting as in-process.
    Small batches, so the file's rows spread over both workers and come back in order."""
    import tasks.ingest.load

    monkeypatch.setattr(tasks.ingest.load, "CHUNK_ROWS", 4)
    path = hh_quirks("helpful-base")
    runs = {}
    for workers in ("0", "2"):
        monkeypatch.setenv("THUMBS_INGEST_WORKERS", workers)
        runs[workers] = load_everything(tmp_path / f"home-{workers}", path)
    (alone, alone_tables), (parallel, parallel_tables) = runs["0"], runs["2"]
    assert alone.rows_read == len(HH_QUIRK_LINES["helpful-base"]) and \
        alone.reasons["chosen and rejected are identical"] == 2
    assert_accounted(alone)
    assert parallel == alone
    assert parallel_tables == alone_tables


def failing_redactor(record):
    raise ValueError("redactor bug")


def test_failing_worker_is_a_one_line_error_and_changes_nothing(home, tmp_path, monkeypatch):
    monkeypatch.setenv("THUMBS_INGEST_WORKERS", "2")
    path = write_jsonl(tmp_path / "rows.jsonl", [GOOD, OTHER])
    source = replace(bind_source("hh"), redact=failing_redactor)
    with connect(home) as con:
        before = table_counts(con)
        with pytest.raises(ThumbsError, match="nothing loaded, ingest worker failed: ValueError: redactor bug") as err:
            ingest_file(con, source, path, "batch-x")
        assert table_counts(con) == before
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_write_failing_on_a_later_chunk_rolls_back_the_whole_file(home, tmp_path):
    """Chunks are written on a thread of their own: a write failing there, after
    earlier chunks were written, still fails the file in one line and leaves nothing."""
    rows = [{"chosen": f"\n\nHuman: question {i}?\n\nAssistant: good answer {i}",
             "rejected": f"\n\nHuman: question {i}?\n\nAssistant: bad answer {i}"} for i in range(3 * CHUNK_ROWS)]
    rows[2 * CHUNK_ROWS + 7]["chosen"] = f"\n\nHuman: question {2 * CHUNK_ROWS + 7}?\n\nAssistant: poison"
    path = write_jsonl(tmp_path / "poisoned.jsonl", rows)
    with connect(home) as con:
        # the staging table as migrated, plus a rule only the poisoned row breaks
        con.execute("DROP TABLE staging.stg_hh__pairs")
        con.execute("CREATE TABLE staging.stg_hh__pairs (row_key UHUGEINT PRIMARY KEY, batch_id VARCHAR NOT NULL,"
                    " file_sha256 VARCHAR NOT NULL, row_number BIGINT NOT NULL,"
                    " prompt STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,"
                    " chosen VARCHAR NOT NULL CHECK (chosen <> 'poison'), rejected VARCHAR NOT NULL)")
        before = table_counts(con)
        with pytest.raises(ThumbsError, match="nothing loaded, the warehouse write failed: .*CHECK") as err:
            ingest_file(con, bind_source("hh"), path, "batch-p")
        assert table_counts(con) == before
        assert ingest_file(con, bind_source("hh"), write_jsonl(tmp_path / "fine.jsonl", [GOOD]), "batch-q").rows_loaded == 1
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_duckdb_memory_is_limited_and_configurable(tmp_path, monkeypatch):
    monkeypatch.delenv("THUMBS_DUCKDB_MEMORY", raising=False)
    with connect(tmp_path) as con:
        limit, spill = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    assert limit == "488.2 MiB" and spill == str(tmp_path / "warehouse.duckdb.tmp")  # 512 MB
    monkeypatch.setenv("THUMBS_DUCKDB_MEMORY", "2GB")
    with connect(tmp_path) as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "1.8 GiB"
    monkeypatch.setenv("THUMBS_DUCKDB_MEMORY", "lots")
    with pytest.raises(ThumbsError, match="THUMBS_DUCKDB_MEMORY.*'lots'"):
        with connect(tmp_path):
            pass


def test_a_column_name_with_a_newline_keeps_the_missing_column_error_on_one_line(home, tmp_path):
    # found by the property suite: the file's column names were listed raw
    path = write_jsonl(tmp_path / "odd-keys.jsonl", [{"rejected": "", "\n": None, "a,b": 1}, GOOD])
    file_errors(home, path, r"row 1: missing column 'chosen' \(the file has: rejected, '\\n', 'a,b'\)$")


def test_a_file_past_duckdbs_memory_limit_changes_nothing_and_says_which_knob(home, monkeypatch):
    # 10M HH pairs in one file ran out of the default 512 MB at commit; a 6 MB limit does
    # the same to the 200-row demo file.
    with connect(home) as con:
        before = table_counts(con)
    monkeypatch.setenv("THUMBS_DUCKDB_MEMORY", "6MB")
    with connect(home) as con:
        with pytest.raises(ThumbsError) as err:
            ingest_file(con, bind_source("hh"), DEMO_HH_HELPFUL, "batch-x")
    monkeypatch.delenv("THUMBS_DUCKDB_MEMORY")
    message = str(err.value)
    assert message.startswith(f"{DEMO_HH_HELPFUL}: nothing loaded") and "\n" not in message
    assert "Out of Memory" in message and "set THUMBS_DUCKDB_MEMORY higher" in message and "6MB" in message
    with connect(home) as con:
        assert table_counts(con) == before
