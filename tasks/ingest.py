"""Load one file into the warehouse: raw rows, parsed staging rows, quarantine.

One file is one transaction. Either every row of it is accounted for
(rows read = loaded + duplicate + quarantined, recorded in ingest_runs) or, if
the file itself is bad, nothing of it is written and a ThumbsError names the
file, the row and the reason.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import Counter, deque
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import duckdb
import pyarrow as pa

from tasks.readers import DEFAULT_MAX_ROW_BYTES, LineBatch, Progress, RawRow, RowBatch, read_batches
from tasks.settings import ThumbsError, first_line
from tasks.sources.base import Parser, Quarantined, RowRejected, SourceBinding, Staged
from tasks.warehouse import rollback, run_sql

CHUNK_ROWS = 5_000  # rows per batch parsed and per insert: small enough that batches in flight stay a few MB
QUARANTINE_RAW_LIMIT = 65_536
PARALLEL_MIN_BYTES = 16 << 20  # files at least this big parse in worker processes ($THUMBS_INGEST_WORKERS overrides)

Redactor = Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclass
class FileResult:
    file: str
    file_sha256: str
    status: str  # loaded | skipped
    rows_read: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    loaded_by_table: Counter = field(default_factory=Counter)
    previous_batch: str | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError as exc:
        raise ThumbsError(f"{path}: no such file") from exc
    except PermissionError as exc:
        raise ThumbsError(f"{path}: cannot read the file (permission denied)") from exc
    except IsADirectoryError as exc:
        raise ThumbsError(f"{path}: not a regular file") from exc
    return digest.hexdigest()


@dataclass
class ParsedChunk:
    """One batch of a file's rows, parsed and laid out as Arrow tables for the load
    statements. Made by `parse_chunk`, in a worker process for big files."""

    raw: pa.Table | None = None
    quarantine: pa.Table | None = None
    staged: dict[str, pa.Table] = field(default_factory=dict)  # staging table -> its rows
    rows_read: int = 0  # outcomes, as counted in FileResult.rows_read
    reasons: Counter = field(default_factory=Counter)  # quarantine reason -> outcomes
    first_record: tuple[int, list[str]] | None = None  # row number and keys of the first readable row


def parse_chunk(parse: Parser, redact: Redactor | None, constants: Mapping[str, str],
                batch: LineBatch | RowBatch) -> ParsedChunk:
    """Read, redact and parse one batch; everything but the warehouse writes.

    Pure and deterministic, so the loader may run it in worker processes: the
    chunks come back in file order and the result is the same as in-process.
    """
    raw: dict[str, list] = {"row_number": [], "record": []}
    quarantine: dict[str, list] = {"row_number": [], "reason": [], "raw": []}
    staged: dict[str, dict[str, list]] = {}
    chunk = ParsedChunk()
    for row in batch.rows():
        if redact is not None:
            row = _redacted(row, redact)
        raw["row_number"].append(row.row_number)
        raw["record"].append(row.text)
        if row.error is None and chunk.first_record is None:
            chunk.first_record = (row.row_number, list(row.record))
        for outcome in _outcomes(parse, row):
            chunk.rows_read += 1
            if isinstance(outcome, Staged):
                columns = staged.get(outcome.table)
                if columns is None:
                    columns = staged[outcome.table] = {"row_key": [], "row_number": [],
                                                       **{name: [] for name in outcome.values}}
                columns["row_key"].append(outcome.row_key)
                columns["row_number"].append(row.row_number)
                for name, value in outcome.values.items():
                    columns[name].append(value)
            else:
                chunk.reasons[outcome.reason] += 1
                text = outcome.raw if isinstance(outcome.raw, str) \
                    else json.dumps(outcome.raw, ensure_ascii=False, default=str)
                quarantine["row_number"].append(row.row_number)
                quarantine["reason"].append(outcome.reason)
                quarantine["raw"].append(text[:QUARANTINE_RAW_LIMIT])
    file_constants = {"batch_id": constants["batch_id"], "file_sha256": constants["file_sha256"]}
    if raw["row_number"]:
        chunk.raw = _arrow(raw, {**file_constants, "source": constants["source"]})
    if quarantine["row_number"]:
        chunk.quarantine = _arrow(quarantine, {**file_constants, "source": constants["source"],
                                               "file": constants["file"]})
    chunk.staged = {table: _arrow(columns, file_constants) for table, columns in staged.items()}
    return chunk


def _load_chunk(con: duckdb.DuckDBPyConnection, chunk: ParsedChunk, result: FileResult) -> None:
    result.rows_read += chunk.rows_read
    result.rows_quarantined += chunk.reasons.total()
    result.reasons.update(chunk.reasons)
    if chunk.raw is not None:
        _insert(con, "raw_chunk", chunk.raw, "load/raw_records.sql")
    if chunk.quarantine is not None:
        _insert(con, "quarantine_chunk", chunk.quarantine, "load/quarantine.sql")
    for table, rows in chunk.staged.items():
        inserted = _insert(con, "staged_chunk", rows, f"load/{table.removeprefix('staging.')}.sql")
        result.rows_loaded += inserted
        result.rows_duplicate += rows.num_rows - inserted
        result.loaded_by_table[table] += inserted


def _insert(con: duckdb.DuckDBPyConnection, view: str, rows: pa.Table, sql_file: str) -> int:
    """Run a load/*.sql statement that reads `view`; the number of rows it inserted."""
    # As a stream that lets go of each batch once read: DuckDB holds what was
    # registered until COMMIT, so a registered Table (or Table.to_reader()) kept
    # every chunk of a big file in memory (GBs for a million HH rows).
    con.register(view, pa.RecordBatchReader.from_batches(rows.schema, iter(rows.to_batches())))
    try:
        return run_sql(con, sql_file).fetchone()[0]
    finally:
        con.unregister(view)


def _arrow(columns: Mapping[str, list], constants: Mapping[str, Any]) -> pa.Table:
    size = len(next(iter(columns.values())))
    data = {name: pa.array([value] * size, pa.string()) for name, value in constants.items()}
    data.update((name, _column(values)) for name, values in columns.items())
    return pa.table(data)


MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


def _column(values: list) -> pa.Array | list:
    """The Arrow array pyarrow would infer from `values`, built faster for the
    common kinds (inferring a type looks at every value, and did more than half
    of the Arrow conversion)."""
    kinds = set(map(type, values))
    if kinds == {str} or kinds == {str, type(None)}:
        return pa.array(values, pa.string())
    if kinds == {int} and min(values) >= -2**63 and max(values) < 2**63:
        return pa.array(values, pa.int64())
    if kinds == {list}:
        return _messages(values)
    return values


def _messages(prompts: list[list]) -> pa.Array | list:
    """Lists of {"role", "content"} messages as list<struct<role, content>>, from
    flat columns; anything else is left to pyarrow's inference."""
    offsets, roles, contents = [0], [], []
    for messages in prompts:
        for message in messages:
            if type(message) is not dict or len(message) != 2 or list(message) != ["role", "content"]:
                return prompts
            roles.append(message["role"])
            contents.append(message["content"])
        offsets.append(len(roles))
    if not roles or set(map(type, roles)) | set(map(type, contents)) != {str}:
        return prompts
    flat = pa.StructArray.from_arrays([pa.array(roles, pa.string()), pa.array(contents, pa.string())],
                                      fields=list(MESSAGE))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat)


def _check_required(path: Path, row_number: int, keys: list[str], required: Sequence[str]) -> None:
    missing = [name for name in required if name not in keys]
    if missing:
        have = ", ".join(keys[:12]) or "none"
        raise ThumbsError(
            f"{path}: row {row_number}: missing column '{missing[0]}' (the file has: {have})"
        )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    source: SourceBinding,
    path: str | Path,
    batch_id: str,
    *,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
    progress: Progress | None = None,
) -> FileResult:
    """Load `path` for `source` in one transaction; a file loaded before is skipped."""
    path = Path(path)
    sha = file_sha256(path)
    started_at = datetime.now(timezone.utc).replace(tzinfo=None)
    result = FileResult(file=str(path), file_sha256=sha, status="loaded")
    previous = run_sql(con, "load/previous_load.sql", {"source": source.name, "file_sha256": sha}).fetchone()
    con.execute("BEGIN TRANSACTION")
    try:
        if previous:
            result.status, result.previous_batch = "skipped", previous[0]
        else:
            _load_rows(con, source, path, sha, batch_id, result, max_row_bytes, progress)
        run_sql(con, "load/ingest_run.sql", {
            "batch_id": batch_id, "source": source.name, "file": str(path), "file_sha256": sha,
            "started_at": started_at, "rows_read": result.rows_read, "rows_loaded": result.rows_loaded,
            "rows_duplicate": result.rows_duplicate, "rows_quarantined": result.rows_quarantined,
            "status": result.status, "options": json.dumps(dict(source.options), default=str),
        })
        con.execute("COMMIT")
    except BaseException as exc:
        rollback(con)
        if isinstance(exc, duckdb.Error):
            raise ThumbsError(f"{path}: nothing loaded, the warehouse write failed: {first_line(exc)}") from exc
        raise
    return result


def _load_rows(con, source, path, sha, batch_id, result, max_row_bytes, progress) -> None:
    constants = {"batch_id": batch_id, "source": source.name, "file": str(path), "file_sha256": sha}
    work = partial(parse_chunk, source.parse, source.redact, constants)
    batches = read_batches(path, rows_per_batch=CHUNK_ROWS, max_row_bytes=max_row_bytes, progress=progress)
    checked = False
    # closing: on an error the worker processes stop now, not when the traceback is collected
    with closing(_in_order(work, batches, _workers(source, path))) as chunks:
        try:
            for chunk in chunks:
                if not checked and chunk.first_record is not None:
                    _check_required(path, *chunk.first_record, source.required_fields)
                    checked = True
                _load_chunk(con, chunk, result)
        except WorkerFailed as exc:
            raise ThumbsError(f"{path}: nothing loaded, {exc}") from exc


def _workers(source: SourceBinding, path: Path) -> int:
    """Worker processes to parse with: none for small files (starting one costs
    more than it saves) or parsers that cannot be sent to another process."""
    wanted = os.environ.get("THUMBS_INGEST_WORKERS")
    if wanted is not None:
        if not wanted.strip().isdigit():
            raise ThumbsError(f"THUMBS_INGEST_WORKERS must be a whole number, got '{wanted}'")
        workers = int(wanted)
    elif path.stat().st_size < PARALLEL_MIN_BYTES:
        return 0
    else:
        workers = os.cpu_count() or 1
    try:
        pickle.dumps((source.parse, source.redact))
    except Exception:  # e.g. a log source's parser closes over its mapping and key
        return 0
    return workers if workers > 1 else 0


def _in_order(work, batches, workers: int) -> Iterator[ParsedChunk]:
    """work(batch) for every batch, in order: in this process, or spread over
    `workers` worker processes with a few batches in flight (bounded, so memory stays flat)."""
    if not workers:
        yield from map(work, batches)
        return
    with _WorkerPool(workers, work) as pool:
        assigned: deque[int] = deque()  # the worker of each batch in flight, oldest first
        for number, batch in enumerate(batches):
            pool.submit(number % workers, batch)
            assigned.append(number % workers)
            if len(assigned) > 2 * workers:
                yield pool.result(assigned.popleft())
        while assigned:
            yield pool.result(assigned.popleft())


class _WorkerPool:
    """Processes that run one `work` function on batches, first in first out.

    Plain child interpreters fed over pipes, not multiprocessing: spawn would run
    the caller's main module again (a script without a __main__ guard would ingest
    twice), and fork would copy a process in the middle of DuckDB's threads. A
    thread per worker writes its batches, so a worker blocked on sending a result
    can never wait on us sending it the next batch.
    """

    def __init__(self, count: int, work) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}
        self.processes = [subprocess.Popen([sys.executable, "-c", "import tasks.ingest; tasks.ingest._serve()"],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                          for _ in range(count)]
        self.queues = [queue.SimpleQueue() for _ in range(count)]
        self.feeders = [threading.Thread(target=_feed, args=(process.stdin, jobs), daemon=True)
                        for process, jobs in zip(self.processes, self.queues)]
        for feeder, jobs in zip(self.feeders, self.queues):
            jobs.put(work)
            feeder.start()

    def submit(self, worker: int, batch) -> None:
        self.queues[worker].put(batch)

    def result(self, worker: int):
        ok, value = _receive(self.processes[worker].stdout)
        if not ok:
            raise WorkerFailed(f"ingest worker failed: {value}")
        return value

    def __enter__(self) -> _WorkerPool:
        return self

    def __exit__(self, *exc_info) -> None:
        for jobs in self.queues:
            jobs.put(None)
        for process in self.processes:
            if exc_info[0] is not None:
                process.kill()
            process.wait()
            process.stdout.close()


class WorkerFailed(Exception):
    """A worker raised (a bug, not a bad row: those are quarantined) or died."""


def _send(pipe, value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(len(data).to_bytes(8, "little"))
    pipe.write(data)
    pipe.flush()


def _receive(pipe):
    head = pipe.read(8)
    if len(head) < 8:
        raise WorkerFailed("ingest worker exited unexpectedly (see its error above)")
    return pickle.loads(pipe.read(int.from_bytes(head, "little")))


def _feed(pipe, jobs: queue.SimpleQueue) -> None:
    try:
        while (job := jobs.get()) is not None:
            _send(pipe, job)
    except OSError:
        pass  # the worker is gone; reading its result says so
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _serve() -> None:
    """A worker's loop: the work function, then batches until the pipe closes."""
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the results
    batches = sys.stdin.buffer
    work = _receive(batches)
    while True:
        try:
            batch = _receive(batches)
        except WorkerFailed:
            return  # the loader closed the pipe: no more batches
        try:
            outcome = (True, work(batch))
        except Exception as exc:  # a bug, not a bad row (those are quarantined): the loader raises it
            outcome = (False, f"{type(exc).__name__}: {exc}")
        _send(results, outcome)


WITHHELD = "[row withheld: it could not be parsed, so personal data in it could not be pseudonymized]"


def _redacted(row: RawRow, redact) -> RawRow:
    if row.record is None:
        return replace(row, text=WITHHELD)
    return replace(row, text=json.dumps(redact(row.record), ensure_ascii=False, default=str))


def _outcomes(parse: Parser, row: RawRow) -> list[Staged | Quarantined]:
    if row.error is not None:
        return [Quarantined(row.error, row.text)]
    try:
        return list(parse(row.record)) or [Quarantined("row holds nothing to load", row.text)]
    except RowRejected as exc:
        return [Quarantined(str(exc), row.text)]
    except Exception as exc:  # a parser bug must not lose the row: quarantine it, visibly
        return [Quarantined(f"parser error: {type(exc).__name__}: {exc}", row.text)]
