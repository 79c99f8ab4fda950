"""An analyst: `thumbs query` in a loop until a stop file appears, then a JSON report.

usage: _reader.py HOME STOP_FILE REPORT_FILE

Each round runs the consistency query through tasks.warehouse.query.run_query (what
`thumbs query` runs) and, every tenth round, the CLI itself in-process. A
published copy must always be whole: the accounting holds within it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time

from flows.cli import main
from tasks.warehouse.query import run_query

CONSISTENCY = """
SELECT (SELECT coalesce(sum(rows_read), 0) FROM ingest_runs),
       (SELECT coalesce(sum(rows_loaded + rows_duplicate + rows_quarantined), 0) FROM ingest_runs),
       (SELECT count(*) FROM quarantine),
       (SELECT coalesce(sum(rows_quarantined), 0) FROM ingest_runs WHERE status = 'loaded'),
       (SELECT count(*) FROM feedback),
       (SELECT count(*) FROM preference_pairs),
       (SELECT count(*) FROM checkpoints)
"""
ANALYST = "SELECT source, label, count(*) FROM feedback GROUP BY ALL ORDER BY ALL"


def run(home: str, stop: str, report: str) -> None:
    errors, inconsistent, versions = [], [], set()
    rounds = cli_runs = 0
    started = time.monotonic()
    while not os.path.exists(stop):
        rounds += 1
        try:
            (row,) = run_query(CONSISTENCY, home)[1]
            read, accounted, quarantined, expected_quarantined, *_ = row
            versions.add(row)
            if read != accounted or quarantined != expected_quarantined:
                inconsistent.append(row)
            run_query(ANALYST, home)
        except Exception as exc:  # any error is a reader failure: record it, keep reading
            errors.append(f"{type(exc).__name__}: {exc}")
        if rounds % 10 == 0:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["--home", home, "query", ANALYST, "--format", "json"])
            cli_runs += 1
            if code != 0:
                errors.append(f"thumbs query exited {code}: {err.getvalue().strip()}")
    with open(report, "w", encoding="utf-8") as fh:
        json.dump({"rounds": rounds, "cli_runs": cli_runs, "errors": errors[:20], "error_count": len(errors),
                   "inconsistent": inconsistent[:20], "versions": sorted(versions),
                   "seconds": time.monotonic() - started}, fh)


if __name__ == "__main__":
    run(*sys.argv[1:4])
