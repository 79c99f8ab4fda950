"""The learning check on a real model: does the optimizer fit a small fixed set?

    flock /tmp/thumbs-heavy.lock .venv/bin/python benchmarks/learning_check.py            # SmolLM2-135M, CPU
    .venv/bin/python benchmarks/learning_check.py --model tiny-llama --steps 4            # a quick smoke run
    .venv/bin/python benchmarks/learning_check.py --record                                # + benchmarks/quality.md

It separates "the optimizer works" from "it generalizes": DPO on 64 real HH pairs and
KTO on their 128 thumbs (the first HH rows of demo_data, a seeded fixed subset via
max_rows), a few dozen steps, then the train reward accuracy and margin over the last
pass through the set (from the run's metrics.jsonl: the numbers the trainer logs) next
to step 1's, where the policy is its reference (rewards 0, accuracy 0, ties wrong).
Well above 0.5 means the loss, gradients and optimizer do their job; whether held-out
pairs follow is what the evaluation and `thumbs compare` measure. The same check on
tiny-llama is tests/test_learning_check.py.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

from schemas.config import load_config
from schemas.train import TrainConfig
from tasks.train.snapshots import create_snapshot
from tasks.train.trainer import train
from tasks.warehouse.connection import connect

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "quality.md"


def prepare(home: Path, rows: int) -> dict:
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from test_trainer import ingest_hh_slice  # the tests' real warehouse: HH rows ingested and binarized

    ingest_hh_slice(home, rows=rows)
    with connect(home) as con:
        return {"dpo": create_snapshot(con, "pairs", home=home), "kto": create_snapshot(con, "feedback", home=home)}


def check(algo: str, snapshot, home: Path, args: argparse.Namespace) -> dict:
    rows = args.pairs * (1 if algo == "dpo" else 2)
    steps = args.steps or 2 * rows // args.batch_size  # two passes over the set
    beta = 0.1 if algo == "dpo" else args.kto_beta
    config = load_config(TrainConfig, None, [
        f"algo={algo}", f"model={args.model}", f"steps={steps}", f"batch_size={args.batch_size}", f"max_rows={rows}",
        f"max_length={args.max_length}", f"lr={args.lr}", f"beta={beta}", "warmup_steps=0", "eval_batches=0",
        "save_every=0", "device=cpu"])
    started = time.perf_counter()
    result = train(config, snapshot, home / "runs" / algo, home=home)
    history = [json.loads(line) for line in (Path(result["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    last = history[-max(1, rows // args.batch_size):]
    mean = lambda key, records: sum(r.get(key, 0.0) for r in records) / len(records)  # noqa: E731
    return {"algo": algo, "rows": rows, "steps": steps, "beta": beta, "step1_accuracy": history[0]["reward_accuracy"],
            "last_pass_accuracy": mean("reward_accuracy", last), "last_pass_margin": mean("reward_margin", last),
            "wall_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None, help="default: two passes over the set")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--kto-beta", type=float, default=0.1)
    parser.add_argument("--record", action="store_true", help=f"append the table to {RESULTS}")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="thumbs-learning-check-") as tmp:
        home = Path(tmp)
        snapshots = prepare(home, rows=args.pairs + args.pairs // 4)  # eval_fraction 0.1 leaves >= pairs to train
        results = [check(algo, snapshots[algo], home, args) for algo in ("dpo", "kto")]
    header = "| algo | rows | steps | β | accuracy at step 1 | accuracy, last pass | margin, last pass | wall s |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['algo']} | {r['rows']} | {r['steps']} | {r['beta']} | {r['step1_accuracy']:.3f} | "
              f"{r['last_pass_accuracy']:.3f} | {r['last_pass_margin']:.3f} | {r['wall_s']} |" for r in results]
    title = (f"## Learning check, {args.model} ({datetime.datetime.now().isoformat(timespec='minutes')}; "
             f"max_length {args.max_length}, lr {args.lr}, batch {args.batch_size}; "
             f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    table = "\n".join([title, "", *lines, ""])
    print(table)
    if args.record:
        with open(RESULTS, "a") as out:
            out.write("\n" + table)


if __name__ == "__main__":
    main()
