"""Run `thumbs ARGV...` (flows.cli.main, the real CLI and its Prefect flows) while
reporting where it is, so a test can SIGKILL it at a chosen point.

Events go one per line to $RELIABILITY_EVENTS as '<name>:<n>' (the n-th time
that point was reached). When '<name>:<n>' equals $RELIABILITY_PAUSE_AT the
process writes 'paused' and sleeps until it is killed. The wrappers only report
and pause; they call the real functions with the same arguments.

Points:
  file-start / file-committed   around tasks.ingest.ingest_file (one transaction per file)
  insert-raw_chunk, insert-quarantine_chunk, insert-staged_chunk
                                after each chunk insert inside that transaction
  publish-swap                  just before the analysts' copy is renamed into place
  binarize-model                after each SQL model binarize runs in its transaction
  (training points, e.g. snapshot-written / reference-cached / checkpoint-saved, go here)

$RELIABILITY_CHUNK_ROWS shrinks the loader's chunk so a small file spans
several chunks (a big file does the same in production).

`_killable.py --direct HOME SOURCE PATH...` skips Prefect and the CLI and does
what the ingest flow's file task does for each file (tasks.ingest.ingest_file in
one connection), for kills inside a file's transaction: the code path is the
same and the process starts in a second instead of four (no Prefect import).
"""
from __future__ import annotations

import os
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


def install_loader() -> None:
    import tasks.ingest

    if os.environ.get("RELIABILITY_CHUNK_ROWS"):
        tasks.ingest.CHUNK_ROWS = int(os.environ["RELIABILITY_CHUNK_ROWS"])
    wrap_after(tasks.ingest, "_insert", lambda con, view, *rest, **kw: f"insert-{view}")


def reported(ingest_file):
    def reported_ingest_file(*args, **kwargs):
        event("file-start")
        result = ingest_file(*args, **kwargs)
        event("file-committed")
        return result

    return reported_ingest_file


def install_flows() -> None:
    import flows.binarize
    import flows.ingest
    import tasks.binarize

    flows.ingest.ingest_file = reported(flows.ingest.ingest_file)

    # binarize-model: the SQL models run inside binarize()'s transaction (publish
    # also runs view models through the same run_sql; those are not counted).
    run_sql, binarize = tasks.binarize.run_sql, flows.binarize.binarize
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

    tasks.binarize.run_sql = reported_run_sql
    flows.binarize.binarize = reported_binarize

    replace = os.replace

    def reported_replace(src, dst, *args, **kwargs):
        target = os.fspath(dst)
        if os.path.basename(target) == "warehouse.duckdb" and os.path.basename(os.path.dirname(target)) == "published":
            event("publish-swap")
        return replace(src, dst, *args, **kwargs)

    os.replace = reported_replace


def direct(home: str, source: str, paths: list[str]) -> int:
    import uuid

    from tasks.ingest import ingest_file
    from tasks.sources import bind_source
    from tasks.warehouse import connect

    load = reported(ingest_file)
    batch_id = str(uuid.uuid4())
    for path in paths:
        with connect(home) as con:
            load(con, bind_source(source, home=home), path, batch_id)
    return 0


if __name__ == "__main__":
    install_loader()
    if sys.argv[1] == "--direct":
        event("started")
        code = direct(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        install_flows()
        from flows.cli import main

        event("started")
        code = main(sys.argv[1:])
    event("exited")
    sys.exit(code)
