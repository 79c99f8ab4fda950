"""Nightly increment benchmark: 10,000 new HH pairs on top of a warehouse of N pairs,
ingest + incremental binarize, against a full binarize of the same warehouse.

    .venv/bin/python benchmarks/increment.py                       # base 1,000,000 pairs
    .venv/bin/python benchmarks/increment.py --pairs 100000        # a smaller base
    .venv/bin/python benchmarks/increment.py --quick               # base 50,000, increment 2,000

The base file is benchmarks/ingest.py's (build_input: the HH test files replicated,
each replica marked); the increment is 10,000 more pairs marked " [new<r>]", so none
is a duplicate of the base. Steps, timed one by one in one process on one home
(the plain Python API, no Prefect server):
  1. ingest the base, binarize (full: the first build);
  2. ingest the increment, binarize (incremental);
  3. binarize --full on the same staging, for the time a full build takes, and to
     check that both builds gave the same marts (row count and a hash over the rows).
Times are wall seconds; `uptime` is printed with them: say how busy the machine was.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
from benchmarks.ingest import WORK, build_input  # noqa: E402

MARTS = ("preference_pairs", "feedback", "feedback_ties")


def marts_digest(con) -> dict[str, tuple[int, int]]:
    return {mart: con.execute(f"SELECT count(*), sum(hash(t)) FROM {mart} AS t").fetchone() for mart in MARTS}


def run(base: Path, increment: Path, home: Path) -> dict:
    os.environ["THUMBS_HOME"] = str(home)
    from schemas.config import BinarizeConfig
    from tasks.binarize.marts import binarize
    from tasks.ingest.load import ingest_file
    from tasks.sources import bind_source
    from tasks.warehouse.connection import connect

    seconds: dict[str, float] = {}

    def timed(name, work):
        started = time.perf_counter()
        result = work()
        seconds[name] = time.perf_counter() - started
        return result

    with connect() as con:
        timed("ingest base", lambda: ingest_file(con, bind_source("hh"), base, "bench-base"))
        timed("binarize base (full)", lambda: binarize(con, BinarizeConfig()))
        loaded = timed("ingest increment", lambda: ingest_file(con, bind_source("hh"), increment, "bench-new"))
        built = timed("binarize increment", lambda: binarize(con, BinarizeConfig()))
        incremental = marts_digest(con)
        timed("binarize --full", lambda: binarize(con, BinarizeConfig(), full=True))
        full = marts_digest(con)
    assert built.mode == "incremental", built.reason
    return {"seconds": seconds, "increment_loaded": loaded.rows_loaded, "rebuilt_keys": built.rebuilt_keys,
            "pairs": incremental["preference_pairs"][0], "same_marts": incremental == full}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000, help="pairs in the base warehouse")
    parser.add_argument("--increment", type=int, default=10_000, help="new pairs in the increment")
    parser.add_argument("--quick", action="store_true", help="base 50,000, increment 2,000: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.increment = 50_000, 2_000
    base, increment = build_input(args.pairs), build_input(args.increment, mark="new")
    home = WORK / "increment-home"
    shutil.rmtree(home, ignore_errors=True)
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    result = run(base, increment, home)
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    shutil.rmtree(home, ignore_errors=True)
    s = result["seconds"]
    increment_total = s["ingest increment"] + s["binarize increment"]
    print(f"base {args.pairs:,} pairs, increment {args.increment:,} "
          f"({result['increment_loaded']:,} loaded, {result['rebuilt_keys']:,} prompts rebuilt)")
    for name, value in s.items():
        print(f"  {name:<22} {value:8.2f} s")
    print(f"  increment (ingest + binarize) {increment_total:.2f} s = "
          f"{increment_total / (s['ingest base'] + s['binarize base (full)']):.1%} of the base's full route; "
          f"incremental binarize {s['binarize increment']:.2f} s vs full binarize {s['binarize --full']:.2f} s "
          f"({s['binarize --full'] / s['binarize increment']:.1f}x)")
    print(f"  incremental marts equal the full rebuild's: {result['same_marts']}")
    print(f"  load before: {load_before}\n  load after:  {load_after}")


if __name__ == "__main__":
    main()
