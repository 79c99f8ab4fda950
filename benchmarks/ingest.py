"""Ingest benchmark: HH-RLHF replicated to N pairs, gzip JSONL to `feedback` and
`preference_pairs`, against the usual `datasets` route, in the same run.

    .venv/bin/python benchmarks/ingest.py            # 1,000,000 pairs
    .venv/bin/python benchmarks/ingest.py --quick    # 50,000 pairs, a smoke run
    .venv/bin/python benchmarks/ingest.py --pairs 10000000 --routes thumbs   # the 10M case

Three cases in one run: the full route (thumbs against `datasets` num_proc=1 and 2),
and, inside the thumbs route, the nightly increment: --increment new pairs (10,000;
replicas marked apart from the base file's, so all new) ingested and binarized on the
warehouse the full route built. At --pairs 10000000 the script builds the 10M file
on disk first (about 5 GB gzip; minutes).

Routes, each in its own subprocess so peak RSS is its own:
- thumbs: a fresh THUMBS_HOME, `ingest_file(con, bind_source("hh"), ...)` then
  `binarize(con, BinarizeConfig())`: the plain Python API. No Prefect server: its
  ~20 s start is not ingest work.
- peer: `datasets.load_dataset("json")` on the same file, `.map` each row to
  prompt/chosen/rejected (split at the last "\\n\\nAssistant:", as community code
  does), unpair into (prompt, completion, label) with a batched map, write Parquet.
  Fresh cache dir; num_proc=1 (the usual route) and num_proc=2.

pairs/s = input pairs / wall seconds of the work (imports excluded for both).
Peak RSS = the larger of the process's own ru_maxrss and the sampled sum over its
process tree (workers included); DuckDB's native memory is in RSS.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"
HH_DIR = PROJECT_ROOT.parent / "shared" / "data" / "hh-rlhf"
HH_FILES = ("harmless-base.test.jsonl.gz", "helpful-base.test.jsonl.gz",
            "helpful-rejection-sampled.test.jsonl.gz")
ASSISTANT = "\n\nAssistant:"


# --- input ------------------------------------------------------------------

def with_marker(transcript: str, marker: str) -> str:
    """The transcript with `marker` at the end of its first human turn.

    Chosen and rejected get the same marker at the same place, so a replica parses
    exactly as its original but hashes differently (dedup cannot shortcut it).
    """
    end = transcript.find(ASSISTANT)
    end = len(transcript) if end == -1 else end
    return transcript[:end] + marker + transcript[end:]


def build_input(pairs: int, mark: str = "r") -> Path:
    """benchmarks/.work/hh-<pairs>.jsonl.gz, built once: the three HH test files
    concatenated and replicated, replica r marked " [r<r>]" (" [<mark><r>]": the
    increment's pairs are marked "n", so none is a duplicate of the base file's)."""
    path = WORK / (f"hh-{pairs}.jsonl.gz" if mark == "r" else f"hh-{pairs}-{mark}.jsonl.gz")
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    originals = []
    for name in HH_FILES:
        with gzip.open(HH_DIR / name, "rt", encoding="utf-8") as fh:
            originals += [json.loads(line) for line in fh if line.strip()]
    partial = path.with_suffix(".partial")
    started = time.perf_counter()
    with gzip.open(partial, "wt", encoding="utf-8", compresslevel=6) as out:
        for index in range(pairs):
            replica, record = divmod(index, len(originals))
            marker = f" [{mark}{replica}]"
            row = originals[record]
            out.write(json.dumps({"chosen": with_marker(row["chosen"], marker),
                                  "rejected": with_marker(row["rejected"], marker)},
                                 ensure_ascii=False) + "\n")
    partial.rename(path)
    print(f"built {path} ({path.stat().st_size / 1e6:.0f} MB, {pairs:,} pairs) "
          f"in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


# --- routes (each runs in a child process) ----------------------------------

def route_thumbs(path: Path, scratch: Path, increment: Path | None = None) -> dict:
    os.environ["THUMBS_HOME"] = str(scratch / "home")
    sys.path.insert(0, str(PROJECT_ROOT))
    from schemas.config import BinarizeConfig
    from tasks.binarize.marts import binarize
    from tasks.ingest.load import ingest_file
    from tasks.sources import bind_source
    from tasks.warehouse.connection import connect

    profile = profile_ingest()
    started = time.perf_counter()
    with connect() as con:
        loaded = ingest_file(con, bind_source("hh"), path, "bench-1")
        ingest_profile = {name: round(seconds, 1) for name, seconds in profile.items()}
        ingested = time.perf_counter()
        ingest_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        built = binarize(con, BinarizeConfig())
        finished = time.perf_counter()
        counts = dict(con.execute(
            "SELECT 'pairs', count(*) FROM preference_pairs UNION ALL "
            "SELECT 'feedback', count(*) FROM feedback UNION ALL "
            "SELECT 'raw', count(*) FROM raw.records").fetchall())
        nightly = increment and nightly_increment(con, increment, binarize, BinarizeConfig())
    return {
        "seconds": finished - started,
        "sections": {"ingest_file": ingested - started, "binarize": finished - ingested},
        "ingest_ru_maxrss_mb": ingest_rss, "raw_records": counts["raw"], "increment": nightly,
        "ingest_profile": ingest_profile,
        "rows_read": loaded.rows_read, "rows_loaded": loaded.rows_loaded,
        "rows_duplicate": loaded.rows_duplicate, "rows_quarantined": loaded.rows_quarantined,
        "reasons": dict(loaded.reasons), "pairs_out": counts["pairs"], "labeled_out": counts["feedback"],
        "labeled_up": sum(n for (_, label), n in built.feedback.items() if label),
    }


def _timed(spent: dict[str, float], original, key):
    """`original`, adding each call's wall seconds to spent[key(args)]."""
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            name = key(args)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - began
    return wrapper


def profile_ingest() -> dict[str, float]:
    """Seconds spent in each step of ingest_file, by wrapping the loader's steps
    (the wrappers time and call the real functions): where an ingest's time goes."""
    import tasks.ingest.in_duckdb as in_duckdb
    import tasks.ingest.load as load

    spent: dict[str, float] = {}
    steps = {load: ("file_sha256", "archive_file", "_check_first_record", "parse_chunk", "_load_chunk",
                    "_load_in_duckdb", "_load_rows", "_keep_raw_rows"),
             in_duckdb: ("line_table", "staged_by_sql", "create_raw_view")}
    for module, names in steps.items():
        for name in names:
            setattr(module, name, _timed(spent, getattr(module, name), lambda args, name=name: name))
    return spent


def profile_binarize() -> dict[str, float]:
    """Seconds spent in each SQL file binarize runs (models and statements), by wrapping
    run_sql where binarize calls it: where a build's time goes."""
    import tasks.binarize.increments as increments
    import tasks.binarize.marts as marts

    spent: dict[str, float] = {}
    for module in (marts, increments):
        module.run_sql = _timed(spent, module.run_sql, lambda args: args[1])
    return spent


def nightly_increment(con, path: Path, binarize, config) -> dict:
    """The nightly case: a file of new pairs ingested and binarized on the built warehouse,
    binarize called as the nightly calls it."""
    from tasks.ingest.load import ingest_file
    from tasks.sources import bind_source

    started = time.perf_counter()
    loaded = ingest_file(con, bind_source("hh"), path, "bench-2")
    ingested = time.perf_counter()
    binarize(con, config)
    return {"seconds": time.perf_counter() - started,
            "sections": {"ingest_file": ingested - started, "binarize": time.perf_counter() - ingested},
            "rows_read": loaded.rows_read, "rows_loaded": loaded.rows_loaded,
            "rows_duplicate": loaded.rows_duplicate, "rows_quarantined": loaded.rows_quarantined}


def split_at_last_assistant(row: dict) -> dict:
    """The common community split: the prompt runs to the last "\\n\\nAssistant:" of chosen."""
    chosen = row["chosen"]
    prompt = chosen[: chosen.rfind(ASSISTANT) + len(ASSISTANT)]
    return {"prompt": prompt, "chosen": chosen[len(prompt):], "rejected": row["rejected"][len(prompt):]}


def unpair(batch: dict) -> dict:
    """Each pair becomes two labeled rows: chosen is desirable, rejected is not."""
    size = len(batch["prompt"])
    return {"prompt": batch["prompt"] * 2, "completion": batch["chosen"] + batch["rejected"],
            "label": [True] * size + [False] * size}


def route_peer(path: Path, scratch: Path, num_proc: int) -> dict:
    import datasets

    datasets.disable_progress_bars()
    cache = scratch / "hf-cache"
    started = time.perf_counter()
    proc = num_proc if num_proc > 1 else None
    raw = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache),
                                num_proc=proc)
    loaded = time.perf_counter()
    pairs = raw.map(split_at_last_assistant, remove_columns=raw.column_names, num_proc=proc)
    mapped = time.perf_counter()
    labeled = pairs.map(unpair, batched=True, remove_columns=pairs.column_names, num_proc=proc)
    unpaired = time.perf_counter()
    labeled.to_parquet(str(scratch / "labeled.parquet"))
    return {
        "seconds": time.perf_counter() - started,
        "sections": {"load_dataset": loaded - started, "map_split": mapped - loaded,
                     "map_unpair": unpaired - mapped, "to_parquet": time.perf_counter() - unpaired},
        # the equal-work line: this route checks nothing, so everything read is "loaded"
        "rows_read": len(raw), "rows_loaded": len(pairs), "rows_duplicate": 0, "rows_quarantined": 0,
        "pairs_out": len(pairs), "labeled_out": len(labeled),
        "labeled_up": len(pairs),
    }


def run_child(args: argparse.Namespace) -> None:
    path, scratch = Path(args.input), Path(args.scratch)
    if args.child == "thumbs":
        result = route_thumbs(path, scratch, Path(args.increment_file) if args.increment_file else None)
    else:
        result = route_peer(path, scratch, args.num_proc)
    result["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# --- driver -----------------------------------------------------------------

def measure(route: str, path: Path, num_proc: int = 1, env: dict | None = None,
            increment: Path | None = None) -> dict:
    """Run one route in a fresh subprocess with a fresh scratch dir; sample its tree's RSS."""
    import psutil

    scratch = WORK / f"scratch-{route}-{num_proc}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    command = [sys.executable, __file__, "--child", route, "--input", str(path),
               "--scratch", str(scratch), "--num-proc", str(num_proc)] \
        + (["--increment-file", str(increment)] if increment and route == "thumbs" else [])
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    watched = psutil.Process(child.pid)
    peak_tree = 0
    while child.poll() is None:
        try:
            tree = [watched] + watched.children(recursive=True)
            peak_tree = max(peak_tree, sum(_rss(p) for p in tree))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.1)  # a few /proc reads per sample: cheap, and short peaks still show
    output = child.stdout.read()
    if child.returncode != 0:
        raise SystemExit(f"{route} route failed (exit {child.returncode})")
    result = json.loads(output.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = max(result["ru_maxrss_mb"], peak_tree / 2**20)
    result["disk_mb"] = sum(f.stat().st_size for f in scratch.rglob("*") if f.is_file()) / 1e6
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def _rss(process) -> int:
    try:
        return process.memory_info().rss
    except Exception:  # a worker that just exited
        return 0


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    names = ("duckdb", "pyarrow", "datasets", "psutil")
    return {"python": platform.python_version(), **{name: installed(name) for name in names}}


def table(pairs: int, results: dict[str, dict]) -> str:
    peers = [results[label]["seconds"] if label in results else None for label in PEERS]
    lines = [f"{'route':<30} {'seconds':>8} {'pairs/s':>9} {'peak RSS MB':>12} {'vs peer1':>9} {'vs peer2':>9}"]
    for route, result in results.items():
        ratios = " ".join(f"{peer / result['seconds']:8.2f}x" if peer else f"{'-':>9}" for peer in peers)
        lines.append(f"{route:<30} {result['seconds']:8.1f} {pairs / result['seconds']:9,.0f} "
                     f"{result['peak_rss_mb']:12,.0f} {ratios}")
    return "\n".join(lines)


def equal_work(results: dict[str, dict]) -> str:
    """What each route did with the same input: the rows behind every speed above."""
    lines = [f"{'route':<30} {'read':>10} {'loaded':>10} {'quarant.':>9} {'dupl.':>7} {'pairs':>10} {'labeled':>10}"]
    for route, r in results.items():
        lines.append(f"{route:<30} {r['rows_read']:10,} {r['rows_loaded']:10,} {r['rows_quarantined']:9,} "
                     f"{r['rows_duplicate']:7,} {r['pairs_out']:10,} {r['labeled_out']:10,}")
    return "\n".join(lines)


def increment_line(pairs: int, thumbs: dict) -> str:
    nightly = thumbs["increment"]
    sections = {k: round(v, 1) for k, v in nightly["sections"].items()}
    return (f"nightly increment: {nightly['rows_read']:,} new pairs on a {pairs:,}-pair warehouse: "
            f"{nightly['seconds']:.1f} s ({sections}) = {nightly['seconds'] / thumbs['seconds']:.1%} of the full "
            f"route (target <= 5%); loaded {nightly['rows_loaded']:,}, quarantined {nightly['rows_quarantined']:,}, "
            f"duplicates {nightly['rows_duplicate']:,}")


PEERS = ("peer (datasets, num_proc=1)", "peer (datasets, num_proc=2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 pairs: a smoke run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per route; the median is reported")
    parser.add_argument("--routes", default="thumbs,peer1,peer2",
                        help="comma-separated subset of thumbs, peer1, peer2, and thumbs-inproc "
                             "(thumbs with parsing in-process, THUMBS_INGEST_WORKERS=0)")
    parser.add_argument("--increment", type=int, default=10_000,
                        help="new pairs for the nightly increment case, on the built warehouse (0: skip)")
    parser.add_argument("--increment-file", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("thumbs", "peer"), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--num-proc", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    pairs = 50_000 if args.quick else args.pairs
    path = build_input(pairs)
    print(f"input {path.name}: {pairs:,} pairs, {path.stat().st_size / 1e6:.0f} MB gzip; "
          f"load before: {os.getloadavg()[0]:.2f}; {json.dumps(versions())}", file=sys.stderr)
    increment = build_input(args.increment, mark="n") if args.increment else None
    wanted = args.routes.split(",")
    plan = {"thumbs": ("thumbs (ingest_file+binarize)", "thumbs", 1, {}),
            "peer1": ("peer (datasets, num_proc=1)", "peer", 1, {}),
            "peer2": ("peer (datasets, num_proc=2)", "peer", 2, {}),
            "thumbs-inproc": ("thumbs, parse in-process", "thumbs", 1, {"THUMBS_INGEST_WORKERS": "0"})}
    runs: dict[str, list[dict]] = {plan[key][0]: [] for key in plan if key in wanted}
    for attempt in range(args.repeat):  # interleaved, so load drifts hit every route alike
        for key in wanted:
            label, route, num_proc, env = plan[key]
            result = measure(route, path, num_proc, env, increment)
            runs[label].append(result)
            print(f"[{attempt + 1}/{args.repeat}] {label}: {result['seconds']:.1f} s, "
                  f"{result['peak_rss_mb']:.0f} MB, sections "
                  f"{ {k: round(v, 1) for k, v in result['sections'].items()} }, "
                  f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    medians = {label: _median_run(results) for label, results in runs.items()}
    print(table(pairs, medians))
    print(equal_work(medians))
    for label, result in medians.items():
        print(f"{label}: " + json.dumps({k: v for k, v in result.items() if k not in ("sections",)}))
    thumbs = medians.get("thumbs (ingest_file+binarize)")
    if thumbs and thumbs.get("increment"):
        print(increment_line(pairs, thumbs))
    if thumbs:
        print(f"raw.records: {thumbs['raw_records']:,} rows = rows read {thumbs['rows_read']:,}")
    print(f"load after: {os.getloadavg()}")


def _median_run(results: list[dict]) -> dict:
    ordered = sorted(results, key=lambda r: r["seconds"])
    median = dict(ordered[len(ordered) // 2])
    median["all_seconds"] = [round(r["seconds"], 1) for r in results]
    median["all_peak_rss_mb"] = [round(r["peak_rss_mb"]) for r in results]
    return median


if __name__ == "__main__":
    main()
