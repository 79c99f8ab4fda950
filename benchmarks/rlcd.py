"""`thumbs synthesize rlcd` on HH prompts with the real SmolLM2-135M-Instruct on CPU.

Runs the CLI verb itself (a Prefect flow, generation, ingest) in a fresh THUMBS_HOME,
then reads the warehouse: rows generated, kept, quarantined by reason, generation
rows/s (replies per second: two per prompt), and three example pairs.

    python benchmarks/rlcd.py --prompts 200            # the recorded run
    python benchmarks/rlcd.py --prompts 20 max_new_tokens=64   # a quick check

HH prompts: the first N distinct prompts of the shipped harmless-base demo slice
(demo_data/), or of ../shared/data's full test file when --shared is given.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.common.settings import PROJECT_ROOT  # noqa: E402

DEMO_PROMPTS = PROJECT_ROOT / "demo_data" / "hh-rlhf" / "harmless-base.test.head200.jsonl.gz"
SHARED_PROMPTS = PROJECT_ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base.test.jsonl.gz"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--shared", action="store_true", help="prompts from ../shared/data's full file")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--home", help="THUMBS_HOME (default: a fresh temporary one)")
    parser.add_argument("overrides", nargs="*", help="synthesis options, e.g. max_new_tokens=96")
    args = parser.parse_args()

    home = Path(args.home or tempfile.mkdtemp(prefix="thumbs-rlcd-bench-"))
    prompts = SHARED_PROMPTS if args.shared else DEMO_PROMPTS
    command = [sys.executable, "-m", "flows", "--home", str(home), "synthesize", "rlcd", "--prompts", str(prompts),
               "--model", args.model, "--n", str(args.prompts), "device=cpu", *args.overrides]
    print(f"load before: {load_average()}  ({platform.processor() or platform.machine()}, {os.cpu_count()} cpus)")
    print("$ " + " ".join(command[1:]))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    seconds = time.perf_counter() - started
    print(f"load after: {load_average()}")
    if done.returncode:
        return done.returncode

    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    read, loaded, quarantined = con.execute(
        "SELECT sum(rows_read), sum(rows_loaded), sum(rows_quarantined) FROM ingest_runs WHERE source = 'rlcd'"
    ).fetchone()
    reasons = con.execute("SELECT reason, count(*) FROM quarantine WHERE source = 'rlcd' GROUP BY 1 ORDER BY 2 DESC"
                          ).fetchall()
    records = [json.loads(r) for (r,) in con.execute(
        "SELECT record FROM raw.records WHERE source = 'rlcd' ORDER BY row_number").fetchall()]
    kept = con.execute("SELECT prompt, chosen, rejected, template_pair FROM staging.stg_rlcd__pairs "
                       "ORDER BY row_number LIMIT 3").fetchall()
    tokens = sum(r["positive_tokens"] + r["negative_tokens"] for r in records)
    print(f"\nprompts {args.prompts}: rows generated {read}, kept {loaded}, quarantined {quarantined}")
    for reason, count in reasons:
        print(f"  quarantined: {count:4d}  {reason}")
    print(f"wall time {seconds:.1f} s (model load, Prefect and ingest included): {2 * read / seconds:.2f} replies/s, "
          f"{read / seconds:.2f} pairs/s, {tokens / seconds:.1f} generated tokens/s")
    for prompt, chosen, rejected, pair in kept:
        print(f"\n--- {pair}\nprompt:   {prompt[-1]['content'][:200]!r}\nchosen:   {chosen[:300]!r}\n"
              f"rejected: {rejected[:300]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
