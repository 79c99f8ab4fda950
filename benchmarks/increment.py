"""Nightly increment benchmark: 10,000 new HH pairs on top of a warehouse of N pairs,
ingest + incremental binarize, against a full binarize of the same warehouse.

    .venv/bin/python benchmarks/increment.py                       # base 1,000,000 pairs
    .venv/bin/python benchmarks/increment.py --pairs 100000        # a smaller base
    .venv/bin/python benchmarks/increment.py --quick               # base 50,000, increment 2,000
    .venv/bin/python benchmarks/increment.py --pairs 10000000 --parts 10 --keep-base   # the 10M case

The base is benchmarks/ingest.py's input (build_input: the HH test files replicated,
each replica marked), in --parts files of N/parts pairs each, each part marked apart
(" [b<k>-<r>]") so no part repeats another: a warehouse grown by nightly files, as
users grow one. The increment is 10,000 more pairs marked " [new<r>]", so none is a
duplicate of the base. Steps, timed one by one (the plain Python API, no Prefect server):
  1. ingest the base's files, each followed by a binarize as a nightly run would (the
     first build full, the others incremental). With --keep-base the
     built home stays in benchmarks/.work/increment-base-<N>x<parts> and a later run
     starts at step 2 (a 10M base takes a long while to build; the increment is what
     is measured);
  2. on a copy of the base's warehouse: ingest the increment, binarize (incremental);
  3. binarize --full on the same staging, for the time a full build takes, and to
     check that both builds gave the same marts (row count and a hash over the rows);
     --skip-full leaves it out.
The night's binarize is also timed SQL file by SQL file (benchmarks/ingest.py,
profile_binarize), and its slowest are printed.
Times are wall seconds; `uptime` is printed with them: say how busy the machine was.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
from benchmarks.ingest import WORK, build_input, profile_binarize  # noqa: E402

MARTS = ("preference_pairs", "feedback", "feedback_ties")
BASE_RECORD = "base.json"  # in a built base's home: its parts and how long each step took


def marts_digest(con) -> dict[str, tuple[int, int]]:
    return {mart: con.execute(f"SELECT count(*), sum(hash(t)) FROM {mart} AS t").fetchone() for mart in MARTS}


def timed(seconds: dict[str, float], name: str, work):
    started = time.perf_counter()
    result = work()
    seconds[name] = time.perf_counter() - started
    return result


def build_base(parts: list[Path], home: Path) -> dict:
    """Step 1 in `home`: the parts ingested one by one, each followed by a binarize, as
    nightly runs grow a warehouse (the first build is full, the rest incremental); what
    it took. One full build over a 10M-row staging spilled over 30 GB of temporary
    files (RESULTS.md, run 7), which a warehouse grown night by night never needs."""
    from schemas.config import BinarizeConfig
    from tasks.binarize.marts import binarize
    from tasks.ingest.load import ingest_file
    from tasks.sources import bind_source
    from tasks.warehouse.connection import connect

    shutil.rmtree(home, ignore_errors=True)
    seconds: dict[str, float] = {}
    with connect(home) as con:
        for index, part in enumerate(parts):
            ingest = timed(seconds, f"ingest base part {index + 1}",
                           lambda: ingest_file(con, bind_source("hh"), part, f"bench-base-{index}"))
            built = timed(seconds, f"binarize base part {index + 1}", lambda: binarize(con, BinarizeConfig()))
            print(f"  base part {index + 1}/{len(parts)}: ingested {ingest.rows_loaded:,} rows in "
                  f"{seconds[f'ingest base part {index + 1}']:.1f} s, binarize ({built.mode}) "
                  f"{seconds[f'binarize base part {index + 1}']:.1f} s", file=sys.stderr)
    record = {"parts": [p.name for p in parts], "built_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "ingest base": sum(v for k, v in seconds.items() if k.startswith("ingest base part")),
              "binarize base": sum(v for k, v in seconds.items() if k.startswith("binarize base part")),
              "per part": seconds, "uptime": uptime()}
    (home / BASE_RECORD).write_text(json.dumps(record, indent=1))
    return record


def measure_increment(base_home: Path, increment: Path, run_home: Path, full: bool) -> dict:
    """Steps 2 and 3 on a copy of the base's warehouse (the archive stays where the base
    put it: raw.records names archived files by absolute path)."""
    from schemas.config import BinarizeConfig
    from tasks.binarize.marts import binarize
    from tasks.ingest.load import ingest_file
    from tasks.sources import bind_source
    from tasks.warehouse.connection import connect

    shutil.rmtree(run_home, ignore_errors=True)
    run_home.mkdir(parents=True)
    shutil.copyfile(base_home / "warehouse.duckdb", run_home / "warehouse.duckdb")
    seconds: dict[str, float] = {}
    with connect(run_home) as con:
        base_pairs = con.execute("SELECT count(*) FROM preference_pairs").fetchone()[0]
        loaded = timed(seconds, "ingest increment", lambda: ingest_file(con, bind_source("hh"), increment,
                                                                        "bench-new"))
        statements = profile_binarize()
        built = timed(seconds, "binarize increment", lambda: binarize(con, BinarizeConfig()))
        night_statements = dict(statements)
        incremental = marts_digest(con)
        if full:
            timed(seconds, "binarize --full", lambda: binarize(con, BinarizeConfig(), full=True))
        same = incremental == marts_digest(con) if full else None
    assert built.mode == "incremental", built.reason
    return {"seconds": seconds, "increment_loaded": loaded.rows_loaded, "rebuilt_keys": built.rebuilt_keys,
            "base_pairs": base_pairs, "pairs": incremental["preference_pairs"][0], "same_marts": same,
            "night_statements": night_statements}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000, help="pairs in the base warehouse")
    parser.add_argument("--parts", type=int, default=1, help="files the base is ingested from, N/parts pairs each")
    parser.add_argument("--increment", type=int, default=10_000, help="new pairs in the increment")
    parser.add_argument("--keep-base", action="store_true",
                        help="keep the built base (benchmarks/.work/increment-base-<N>x<parts>) for later runs")
    parser.add_argument("--skip-full", action="store_true", help="leave out step 3 (the full rebuild)")
    parser.add_argument("--quick", action="store_true", help="base 50,000, increment 2,000: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.increment = 50_000, 2_000
    if args.pairs % args.parts:
        parser.error(f"--pairs {args.pairs} does not split into {args.parts} equal parts")
    base_home = WORK / f"increment-base-{args.pairs}x{args.parts}"
    run_home = WORK / "increment-home"
    os.environ["THUMBS_HOME"] = str(run_home)
    load_before = uptime()
    if (base_home / BASE_RECORD).exists():
        base = json.loads((base_home / BASE_RECORD).read_text())
        print(f"base: built {base['built_at']} ({base['uptime']}), kept in {base_home}")
    else:
        size = args.pairs // args.parts
        parts = ([build_input(size)] if args.parts == 1
                 else [build_input(size, mark=f"b{k}-") for k in range(args.parts)])
        base = build_base(parts, base_home)
    increment = build_input(args.increment, mark="new")
    result = measure_increment(base_home, increment, run_home, full=not args.skip_full)
    load_after = uptime()
    shutil.rmtree(run_home, ignore_errors=True)
    if not args.keep_base:
        shutil.rmtree(base_home, ignore_errors=True)
    s = {"ingest base": base["ingest base"], "binarize base": base["binarize base"], **result["seconds"]}
    increment_total = s["ingest increment"] + s["binarize increment"]
    print(f"base {args.pairs:,} pairs in {args.parts} file(s) ({result['base_pairs']:,} preference pairs), "
          f"increment {args.increment:,} ({result['increment_loaded']:,} loaded, "
          f"{result['rebuilt_keys']:,} prompts rebuilt)")
    for name, value in s.items():
        print(f"  {name:<22} {value:8.2f} s")
    print(f"  increment (ingest + binarize) {increment_total:.2f} s = "
          f"{increment_total / (s['ingest base'] + s['binarize base']):.1%} of the base's route")
    if "binarize --full" in s:
        print(f"  incremental binarize {s['binarize increment']:.2f} s vs full binarize {s['binarize --full']:.2f} s "
              f"({s['binarize --full'] / s['binarize increment']:.1f}x); "
              f"incremental marts equal the full rebuild's: {result['same_marts']}")
    slowest = sorted(result["night_statements"].items(), key=lambda item: -item[1])[:6]
    print("  the night's binarize, slowest SQL: " + ", ".join(f"{name.split('/')[-1]} {sec:.2f} s"
                                                            for name, sec in slowest))
    print(f"  load before: {load_before}\n  load after:  {load_after}")


if __name__ == "__main__":
    main()
