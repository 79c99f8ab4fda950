"""Do the models get better? The papers' comparison on a real model, as one `thumbs compare`.

    flock /tmp/thumbs-heavy.lock .venv/bin/python benchmarks/quality.py            # CPU, ~2 h (see below)
    .venv/bin/python benchmarks/quality.py --tiny                                  # a minute: proves it runs
    .venv/bin/python benchmarks/quality.py --steps 1000 --max-length 512 --eval-pairs 1000   # a GPU

What runs: SmolLM2-135M-Instruct (the `smollm2-135m` preset, as `thumbs demo` loads it),
trained on Anthropic HH-RLHF from ../shared/data (THUMBS_SHARED_DATA, or --data): every
file of hh-rlhf/ ingested and binarized by thumbs (the eval split is held out by prompt,
so no cell trains on an eval pair), then `compare_flow` (flows/compare.py) with
DPO, IPO and KTO at three values of β, plus KTO with 90% of its desirable rows dropped
(`variants=[kto desirable_fraction=0.1]`), every cell from the same snapshots with the
reference log-probs computed once, evaluated on the same held-out pairs. The device is
`auto`: unchanged on a GPU, where larger --steps/--max-length/--eval-pairs fit.

The CPU budget (about 2 h on 2 cores for 12 cells, ~10 min a cell): max_length 256
(most HH turns fit; longer ones are truncated, the same for every cell), batch 8, 60 steps
(480 examples a cell), lr 1e-5 with 6 warm-up steps, 300 eval pairs (a 95% interval of
about ±0.055 on accuracy) and a short generation pass (8 prompts, 32 tokens, 2 samples
for the KL). Measured on 2 cores (benchmarks/quality.md, 2026-12-06): a DPO or IPO cell
takes about 12.5 min (10.5 of training, 2 of evaluation), a KTO cell about 7, the judge
about 12; the whole grid with its judge about 2 h 15 min on a quiet machine.

Then, for the two pair cells with the best held-out accuracy, the same evaluation on
300 pairs each trained on (`--seen-pairs`): held-out accuracy against pairs seen, with intervals.
`--finished-of CMP_ID` reports a stopped comparison's finished cells the same way.

Writes: the comparison table and notes on stdout and in <home>/comparisons/<id>/
(comparison.md, one PNG per metric against β); the rows in `experiments`; with
--record, the table appended to benchmarks/quality.md with the machine's load.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

TINY_ROWS = 120  # --tiny: HH rows ingested from one file


def ingest_hh(home: Path, data: Path, tiny: bool) -> None:
    """Every HH file of the shared data (--tiny: the first TINY_ROWS of one), ingested and binarized."""
    import gzip
    import itertools

    from schemas.config import BinarizeConfig
    from tasks.binarize.marts import binarize
    from tasks.common.settings import ThumbsError
    from tasks.ingest.load import ingest_file
    from tasks.sources import bind_source
    from tasks.warehouse.connection import connect

    files = sorted((data / "hh-rlhf").glob("*.jsonl.gz"))
    if not files:
        raise ThumbsError(f"{data / 'hh-rlhf'}: no *.jsonl.gz; point --data (or THUMBS_SHARED_DATA) at the shared data")
    home.mkdir(parents=True, exist_ok=True)
    if tiny:
        sliced = home / "hh-tiny.jsonl"
        with gzip.open(files[0], "rt") as src, open(sliced, "w") as out:
            out.writelines(itertools.islice(src, TINY_ROWS))
        files = [sliced]
    with connect(home) as con:
        for path in files:
            ingest_file(con, bind_source("hh"), path, "quality-benchmark")
        binarize(con, BinarizeConfig())


def training_overrides(args: argparse.Namespace) -> list[str]:
    """What every cell and the judge share: model, budget and schedule."""
    return [f"model={args.model}", f"steps={args.steps}", f"batch_size={args.batch_size}",
            f"max_length={args.max_length}", f"lr={args.lr}", f"warmup_steps={max(1, args.steps // 10)}",
            "eval_batches=4", "save_every=20", "device=auto"]


def reward_model_judge(home, args: argparse.Namespace) -> dict:
    """The judge: `thumbs train --algo rm` on the same pairs and budget, evaluated by its
    pairwise accuracy on the held-out pairs. Trained once per home (judge.json keeps its
    path and metrics), so a resumed benchmark reuses it."""
    from flows.evaluate import evaluate_flow
    from flows.train import train_flow

    marker = home.root / "judge.json"
    if marker.exists():
        return json.loads(marker.read_text())
    started = time.perf_counter()
    trained = train_flow("rm", overrides=training_overrides(args), home=str(home))
    evaluated = evaluate_flow(trained["path"], home=str(home), max_pairs=args.eval_pairs, device="auto")
    judge = {"path": trained["path"], "checkpoint_id": trained["checkpoint_id"], "metrics": evaluated["metrics"],
             "minutes": round((time.perf_counter() - started) / 60, 1)}
    marker.write_text(json.dumps(judge, indent=1, default=str))
    return judge


def grid(args: argparse.Namespace, judge: dict | None) -> list[str]:
    return [f"algos={','.join(args.algos)}", f"betas={','.join(map(str, args.betas))}",
            "variants=[kto desirable_fraction=0.1]", *training_overrides(args),
            f"evaluation.max_pairs={args.eval_pairs}", f"evaluation.generation_prompts={args.generation_prompts}",
            "evaluation.max_new_tokens=32", "evaluation.kl_samples=2"] + (
            [f"evaluation.judge={judge['path']}"] if judge else [])


def seen_against_held_out(home, rows: list[dict], count: int) -> list[str]:
    """For the two pair cells with the best held-out accuracy, the same evaluation on
    `count` pairs the cell trained on (the first of its batch plan): whether a cell fits
    what it saw while the held-out pairs stay near chance. One line per cell."""
    import pyarrow.parquet as pq

    from schemas.train import TrainConfig
    from tasks.compare.grid import format_value
    from tasks.evaluate.evaluation import evaluate_checkpoint
    from tasks.train.algorithms import LOSSES
    from tasks.train.batching import ChatEncoder
    from tasks.train.data import plan_data
    from tasks.train.models import load_tokenizer, resolve_model
    from tasks.train.snapshots import Snapshot, load_snapshot

    paired = [r for r in rows if LOSSES[r["algo"]].batch == "paired"]
    lines = []
    for row in sorted(paired, key=lambda r: -r["metrics"]["eval_reward_accuracy"])[:2]:
        config = TrainConfig(**row["config"])
        trained_on = load_snapshot(home.snapshots / row["snapshot_id"])
        encoder = ChatEncoder(load_tokenizer(resolve_model(config.model)), config.max_length)
        plan = plan_data(trained_on, config, encoder, kl_rows=False).train.micro_batches
        seen = list(dict.fromkeys(r for micro in plan for r in micro.rows))[:count]
        seen_dir = home.root / "seen-pairs" / row["checkpoint_id"]
        seen_dir.mkdir(parents=True, exist_ok=True)
        pq.write_table(trained_on.split("train").take(seen), seen_dir / "eval.parquet")
        # the training snapshot's id: these rows are its rows, so its cached reference log-probs apply
        snapshot = Snapshot(trained_on.snapshot_id, "pairs", seen_dir, {}, {})
        result = evaluate_checkpoint(row["checkpoint_path"], home=home, eval_snapshot=snapshot, max_pairs=count,
                                     generation_prompts=1, max_new_tokens=1, kl_samples=1, device=config.device)
        lines.append(f"{row['line']} β={row['beta']:g}: held-out accuracy "
                     f"{format_value(row['metrics'], 'eval_reward_accuracy')} "
                     f"(n={row['metrics'].get('eval_reward_accuracy_n')}); on pairs it trained on "
                     f"{format_value(result['metrics'], 'eval_reward_accuracy')} (n={len(seen)})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=PROJECT_ROOT / "benchmarks" / ".work" / "quality-home",
                        help="THUMBS_HOME of the benchmark (kept: run again to resume a killed comparison)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get(
        "THUMBS_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--algos", nargs="+", default=["dpo", "ipo", "kto"])
    parser.add_argument("--betas", nargs="+", type=float, default=[0.05, 0.1, 0.3])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--eval-pairs", type=int, default=300)
    parser.add_argument("--generation-prompts", type=int, default=8)
    parser.add_argument("--tiny", action="store_true",
                        help="prove it runs: 120 HH rows, 2 steps, 1 beta, 8 eval pairs (numbers meaningless)")
    parser.add_argument("--no-judge", action="store_true",
                        help="skip the reward model (and so the cells' win rates against their reference)")
    parser.add_argument("--seen-pairs", type=int, default=300,
                        help="pairs trained on to score the two best pair cells on, beside their held-out accuracy "
                             "(0: skip)")
    parser.add_argument("--finished-of", metavar="COMPARISON_ID",
                        help="train nothing: the table, plots and seen-pairs check of the cells of this comparison "
                             "in --home that have finished (e.g. one stopped before its last cell)")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/quality.md")
    args = parser.parse_args()
    if args.tiny:
        args.steps, args.batch_size, args.max_length, args.eval_pairs = 2, 2, 128, 8
        args.betas, args.generation_prompts = [0.1], 2
        args.home = args.home.with_name(args.home.name + "-tiny")

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows.compare import compare_flow
    from tasks.common.home import Home
    from tasks.compare.grid import format_value, shown_metrics, table
    from tasks.compare.tasks import finished_cells_task
    from tasks.evaluate.plots import plot_against_beta

    home = Home.of(args.home)
    judge_file = home.root / "judge.json"
    judge = json.loads(judge_file.read_text()) if args.finished_of and judge_file.exists() else None
    load_before, started = os.getloadavg(), time.perf_counter()
    if args.finished_of:
        rows, comparison_id, trained = finished_cells_task.fn(args.finished_of, home), args.finished_of, 0
        notes = [f"the cells of comparison {comparison_id} finished so far, reported without running it"]
        plots = [str(p) for p in plot_against_beta(rows, shown_metrics(rows), home.root / "comparisons" / comparison_id,
                                                   title=comparison_id)]
    else:
        if not home.warehouse.exists():
            ingest_hh(home.root, args.data, args.tiny)
        judge = None if args.no_judge else reward_model_judge(home, args)
        result = compare_flow(grid(args, judge), home=str(home))
        rows, notes, comparison_id, plots = result["rows"], result["notes"], result["comparison_id"], result["plots"]
        trained = len(result["trained"])
    minutes = (time.perf_counter() - started) / 60
    header, body = table(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    summary = (f"{len(rows)} cell(s), {trained} trained by this run in {minutes:.1f} min on {platform.node()} "
               f"({os.cpu_count()} cores; load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after)"
               + ("" if args.finished_of else f"; grid: {' '.join(grid(args, judge))}"))
    if judge:
        summary += (f"\n\nJudge: reward model `{judge['checkpoint_id']}` ({judge['minutes']} min), pairwise accuracy "
                    f"on the held-out pairs {format_value(judge['metrics'], 'eval_reward_accuracy')} "
                    f"(n={judge['metrics'].get('eval_reward_accuracy_n')})")
    seen = seen_against_held_out(home, rows, args.seen_pairs) if args.seen_pairs else []
    print("\n".join(lines))
    print("\n".join(notes + seen))
    print(summary)
    print(f"plots: {', '.join(plots)}")
    if args.record:
        with open(PROJECT_ROOT / "benchmarks" / "quality.md", "a") as out:
            out.write(f"\n## {datetime.date.today()} `{comparison_id}`\n\n{summary}\n\n"
                      + "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes + seen) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
