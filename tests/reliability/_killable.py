"""Run `thumbs ARGV...` (flows.cli.main, the real CLI and its Prefect flows) while
reporting where it is, so a test can SIGKILL it at a chosen point.

Events go one per line to $RELIABILITY_EVENTS as '<name>:<n>' (the n-th time
that point was reached). When '<name>:<n>' equals $RELIABILITY_PAUSE_AT the
process writes 'paused' and sleeps until it is killed. The wrappers only report
and pause; they call the real functions with the same arguments.

Points:
  file-start / file-committed   around tasks.ingest.load.ingest_file (one transaction per file)
  insert-raw_chunk, insert-quarantine_chunk, insert-staged_chunk
                                after each chunk insert inside that transaction
  insert-staged_by_sql          after the rows a source's SQL parsed from one batch of lines
                                are staged (an INSERT a batch; the rows left to the Python
                                parser come after the last, in chunks)
  publish-swap                  just before the analysts' copy is renamed into place
  binarize-model                after each SQL model binarize runs in its transaction
  snapshot-file-written         after each Parquet file of a snapshot is written (scratch dir)
  snapshot-swap                 just before a snapshot's directory is renamed into place
  snapshot-record               just before a snapshot's row is inserted
  checkpoint-record             just before a checkpoint's row is inserted (the trainer is done)
In the trainer child (`python -m tasks.train.trainer`, which the train flow starts; it is
started through this file instead, so the points below work there too):
  reference-batch               after each batch of reference log-probs is computed
  reference-cache-swap          just before the reference cache file replaces the old one
  state-swap                    just before a resumable state.pt replaces the previous one
  checkpoint-weights-saved      after save_pretrained wrote the weights (no tokenizer, no manifest)
  checkpoint-swap               just before the checkpoint directory is renamed into place
  run-result                    just before result.json (the run is finished) is written

$RELIABILITY_CHUNK_ROWS shrinks the loader's chunk so a small file spans
several chunks (a big file does the same in production).

`_killable.py --direct HOME SOURCE PATH...` skips Prefect and the CLI and does
what the ingest flow's file task does for each file (tasks.ingest.load.ingest_file in
one connection), for kills inside a file's transaction: the code path is the
same and the process starts in a second instead of four (no Prefect import).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

EVENTS = open(os.environ["RELIABILITY_EVENTS"], "a", buffering=1, encoding="utf-8")
PAUSE_AT = os.environ.get("RELIABILITY_PAUSE_AT", "")
REACHED: Counter = Counter()


def event(name: str) -> None:
    REACHED[name] += 1
    tag = f"{name}:{REACHED[name]}"
    EVENTS.write(tag + "\n")
    if tag == PAUSE_AT:
        EVENTS.write("paused\n")
        time.sleep(3600)


def wrap_after(module, attribute: str, name_of) -> None:
    original = getattr(module, attribute)

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        event(name_of(*args, **kwargs))
        return result

    setattr(module, attribute, wrapper)


def wrap_before(module, attribute: str, name_of) -> None:
    """Report name_of(args) (when not None) before calling the original."""
    original = getattr(module, attribute)

    def wrapper(*args, **kwargs):
        name = name_of(*args, **kwargs)
        if name:
            event(name)
        return original(*args, **kwargs)

    setattr(module, attribute, wrapper)


def install_loader() -> None:
    import tasks.ingest.in_duckdb
    import tasks.ingest.load

    if os.environ.get("RELIABILITY_CHUNK_ROWS"):
        tasks.ingest.load.CHUNK_ROWS = int(os.environ["RELIABILITY_CHUNK_ROWS"])
    wrap_after(tasks.ingest.load, "_insert", lambda con, view, *rest, **kw: f"insert-{view}")
    wrap_after(tasks.ingest.in_duckdb, "staged_by_sql", lambda *args, **kwargs: "insert-staged_by_sql")


def reported(ingest_file):
    def reported_ingest_file(*args, **kwargs):
        event("file-start")
        result = ingest_file(*args, **kwargs)
        event("file-committed")
        return result

    return reported_ingest_file


def install_flows() -> None:
    import tasks.binarize.marts
    import tasks.binarize.tasks
    import tasks.ingest.tasks

    tasks.ingest.tasks.ingest_file = reported(tasks.ingest.tasks.ingest_file)

    # binarize-model: the SQL models run inside binarize()'s transaction (publish
    # also runs view models through the same run_sql; those are not counted).
    run_sql, binarize = tasks.binarize.marts.run_sql, tasks.binarize.tasks.binarize
    inside = []

    def reported_run_sql(*args, **kwargs):
        result = run_sql(*args, **kwargs)
        if inside:
            event("binarize-model")
        return result

    def reported_binarize(*args, **kwargs):
        inside.append(True)
        try:
            return binarize(*args, **kwargs)
        finally:
            inside.clear()

    tasks.binarize.marts.run_sql = reported_run_sql
    tasks.binarize.tasks.binarize = reported_binarize
    report_renames()


def install_training_flow() -> None:
    import pyarrow.parquet
    import tasks.train.checkpoints
    import tasks.train.snapshots
    import tasks.train.tasks

    write_table = pyarrow.parquet.write_table

    def reported_write_table(table, where, *args, **kwargs):
        result = write_table(table, where, *args, **kwargs)
        if os.path.basename(os.path.dirname(os.path.dirname(os.fspath(where)))) == "snapshots":
            event("snapshot-file-written")
        return result

    pyarrow.parquet.write_table = reported_write_table
    wrap_before(tasks.train.snapshots, "run_sql", lambda con, relative, *rest, **kw:
                "snapshot-record" if relative == "statements/snapshots/record_snapshot.sql" else None)
    wrap_before(tasks.train.checkpoints, "record_checkpoint", lambda *args, **kwargs: "checkpoint-record")
    # The trainer child runs through this file too, so its points can be reached.
    tasks.train.tasks.subprocess = TrainerThroughDriver()


class TrainerThroughDriver:
    """tasks.train.tasks's `subprocess` module, except that `python -m tasks.train.trainer ARGS`
    becomes `python _killable.py --trainer ARGS`."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(command, *args, **kwargs):
        if list(command[1:3]) == ["-m", "tasks.train.trainer"]:
            command = [command[0], os.path.abspath(__file__), "--trainer", *command[3:]]
        return subprocess.Popen(command, *args, **kwargs)


def swap_point(target: str) -> str | None:
    """The point a rename onto `target` reaches: the moment a written file or
    directory gets its final name."""
    name, parent = os.path.basename(target), os.path.dirname(target)
    if name == "warehouse.duckdb" and os.path.basename(parent) == "published":
        return "publish-swap"
    if os.path.basename(parent) == "snapshots":
        return "snapshot-swap"
    if os.path.basename(parent) == "checkpoints":
        return "checkpoint-swap"
    if os.path.basename(parent) == "reference" and os.path.basename(os.path.dirname(parent)) == "cache":
        return "reference-cache-swap"
    if name == "state.pt":
        return "state-swap"
    if name == "result.json":
        return "run-result"
    return None


def report_renames() -> None:
    for attribute in ("replace", "rename"):
        original = getattr(os, attribute)

        def reported(src, dst, *args, _original=original, **kwargs):
            point = swap_point(os.fspath(dst))
            if point:
                event(point)
            return _original(src, dst, *args, **kwargs)

        setattr(os, attribute, reported)


def install_trainer() -> None:
    import tasks.train.reference_cache
    import transformers

    wrap_after(tasks.train.reference_cache, "sequence_logps", lambda *args, **kwargs: "reference-batch")
    wrap_after(transformers.PreTrainedModel, "save_pretrained", lambda *args, **kwargs: "checkpoint-weights-saved")
    report_renames()


def direct(home: str, source: str, paths: list[str]) -> int:
    import uuid

    from tasks.ingest.load import ingest_file
    from tasks.sources import bind_source
    from tasks.warehouse.connection import connect

    load = reported(ingest_file)
    batch_id = str(uuid.uuid4())
    for path in paths:
        with connect(home) as con:
            load(con, bind_source(source, home=home), path, batch_id)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--trainer":
        install_trainer()
        from tasks.train.trainer import main as train_main

        sys.exit(train_main(sys.argv[2:]))
    install_loader()
    if sys.argv[1] == "--direct":
        event("started")
        code = direct(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        install_flows()
        if {"train", "nightly", "demo"} & set(sys.argv[1:]):  # not for others: it imports torch (seconds)
            install_training_flow()
        from flows.cli import main

        event("started")
        code = main(sys.argv[1:])
    event("exited")
    sys.exit(code)
