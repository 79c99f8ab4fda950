"""The `thumbs` command line: each verb runs a Prefect flow (except `query`, `runs`,
`lineage` and `report`, which only read the published copy and should answer at
once, not wait ~20 s for a Prefect server)."""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from tasks.common.settings import ThumbsError, first_line, release_frames
from tasks.sources import SOURCES
from tasks.train.algorithms import LOSSES

EPILOG = """examples:
  thumbs ingest hh data/hh-rlhf/*.jsonl.gz
  thumbs ingest log examples/support-bot.jsonl --mapping examples/support-bot.mapping.yaml
  thumbs binarize eval_fraction=0.05
  thumbs train --algo kto model=smollm2-135m steps=30
  thumbs train --algo dpo lora_r=16 lora_alpha=32
  thumbs export <checkpoint id> --merge
  thumbs train --algo dpo --nproc 2 device=cpu     (two processes under torchrun; --nproc gpu: one per GPU)
  thumbs query "select source, label, count(*) from feedback group by all order by all"
  thumbs synthesize rlcd --prompts prompts.jsonl --model smollm2-135m --n 200 temperature=0.7
  thumbs demo
  thumbs report --out site/
"""


def _quiet_prefect(verbose: bool) -> None:
    # Run logs still reach the Prefect API/UI; the terminal shows our own summary
    # and one-line errors instead of Prefect's tracebacks. `-v` brings them back.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not verbose:  # transformers' per-load "Loading weights" bars would bury our own progress
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if i and all(isinstance(r[i], int) for r in rows) else "left")
    for row in rows:  # as Text: cells hold user data, and rich reads "[name=x]" as markup
        table.add_row(*[Text(str(v)) for v in row])
    Console().print(table)


def format_metric(value: object) -> str:
    """A metric as a table shows it: a count without decimals, whether an int or a
    float holding one (a pair count averaged over equal batches, say); any other
    number to 4 places."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4f}"
    if isinstance(value, (int, float)):
        return str(int(value))
    return str(value)


def cmd_ingest(args: argparse.Namespace) -> int:
    from flows.ingest import ingest_flow

    results = ingest_flow(args.source, args.paths, mapping=args.mapping, home=args.home,
                          max_row_bytes=args.max_row_bytes, show_progress=True)
    _print_ingested(args.source, results)
    return 0


def _print_ingested(source: str, results) -> None:
    rows = [[Path(r.file).name, r.status, r.rows_read, r.rows_loaded, r.rows_duplicate, r.rows_quarantined]
            for r in results]
    rows.append(["total", "", *[sum(r[i] for r in rows) for i in range(2, 6)]])
    _print_table(f"ingest {source}", ["file", "status", "read", "loaded", "duplicate", "quarantined"], rows)
    reasons = sum((r.reasons for r in results), Counter())
    if reasons:
        _print_table("quarantined rows by reason", ["reason", "rows"], [[k, v] for k, v in reasons.most_common(10)])
    for r in results:
        if r.status == "skipped":
            print(f"{r.file}: already loaded by batch {r.previous_batch} (same sha256): nothing changed")


def cmd_synthesize(args: argparse.Namespace) -> int:
    from flows.synthesize import synthesize_flow
    from schemas.config import load_config
    from schemas.synthesize import RlcdConfig

    kind, *overrides = args.kind_and_overrides
    given = [f"{key}={value}" for key, value in (("model", args.model), ("n", args.n)) if value is not None]
    config = load_config(RlcdConfig, args.config, [*given, *overrides])
    result = synthesize_flow(kind, config, prompts_file=args.prompts, from_warehouse=args.from_warehouse,
                             where=args.where, home=args.home, show_progress=True)
    synthesis = result.synthesis
    print(f"{len(result.prompts.prompts)} prompts from {result.prompts.source}"
          + "".join(f"; {n} skipped: {why}" for why, n in result.prompts.skipped.items()))
    print(f"generated {synthesis.file} ({synthesis.chunks_done} chunk(s) generated, "
          f"{synthesis.chunks_resumed} resumed)")
    _print_ingested("rlcd", result.ingested)
    return 0


def cmd_binarize(args: argparse.Namespace) -> int:
    from flows.binarize import binarize_flow
    from schemas.config import BinarizeConfig, load_config

    _print_binarized(binarize_flow(load_config(BinarizeConfig, args.config, args.overrides), home=args.home,
                                   full=args.full))
    return 0


def _print_binarized(result) -> None:
    rebuilt = "" if result.rebuilt_keys is None else f", {result.rebuilt_keys} prompt(s) rebuilt"
    print(f"binarize: {result.reason} ({result.new_batches} new batch(es){rebuilt})")
    _print_table("preference_pairs", ["source", "split", "pairs"],
                 [[s, sp, n] for (s, sp), n in sorted(result.pairs.items())])
    _print_table("feedback", ["source", "label", "completions"],
                 [[s, "up" if lb else "down", n] for (s, lb), n in sorted(result.feedback.items())])
    if result.tied_completions:
        print(f"{result.tied_completions} completion(s) had as many up as down votes: left out of feedback")


def cmd_train(args: argparse.Namespace) -> int:
    from flows.train import train_flow

    result = train_flow(args.algo, args.config, args.overrides, home=args.home, resume=args.resume,
                        show_progress=True, nproc=args.nproc, torchrun_options=torchrun_options(args))
    metrics = result["metrics"]
    _print_table(f"trained {args.algo}: {result['checkpoint_id']}", ["metric", "value"],
                 [[k, format_metric(v)] for k, v in sorted(metrics.items())])
    if any(k.startswith("eval_") for k in metrics):
        print(f"eval_* above: the in-training eval batches, point estimates without intervals; "
              f"`thumbs evaluate {result['checkpoint_id']}` measures the eval split with 95% intervals")
    print(f"checkpoint: {result['path']}  (snapshot {result['snapshot_id']})")
    loader = "AutoModelForSequenceClassification" if LOSSES[args.algo].model == "reward_model" else "AutoModelForCausalLM"
    print(f"load it:    {loader}.from_pretrained({result['path']!r})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from flows.compare import compare_flow
    from tasks.compare.grid import table

    result = compare_flow(args.overrides, args.config, home=args.home)
    header, body = table(result["rows"])
    _print_table(f"comparison {result['comparison_id']}", header, body)
    for note in result["notes"]:
        print(note)
    print(f"plots: {', '.join(result['plots'])}")
    print(f"rows:  thumbs query \"select * from experiments where comparison_id = '{result['comparison_id']}'\"")
    return 0


def torchrun_options(args: argparse.Namespace) -> list[str]:
    """The rendezvous options given to `thumbs train`, as torchrun spells them."""
    names = ("nnodes", "node_rank", "rdzv_backend", "rdzv_endpoint", "rdzv_id", "master_addr", "master_port")
    return [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in names
            if getattr(args, name) is not None]


def add_launch_options(parser: argparse.ArgumentParser) -> None:
    """`thumbs train`'s multi-process options (docs/distributed.md)."""
    group = parser.add_argument_group("several processes (torchrun)")
    group.add_argument("--nproc", default="1", help="training processes per node: a number, or gpu (one per "
                                                     "visible GPU); gloo on CPU, NCCL on CUDA (default 1)")
    group.add_argument("--nnodes", help="nodes, or MIN:MAX (passed to torchrun)")
    group.add_argument("--node-rank", help="this node's rank without a rendezvous backend (passed to torchrun)")
    group.add_argument("--rdzv-backend", help="rendezvous backend, e.g. c10d (passed to torchrun)")
    group.add_argument("--rdzv-endpoint", help="host:port of the rendezvous (passed to torchrun)")
    group.add_argument("--rdzv-id", help="the job's id, equal on every node (passed to torchrun)")
    group.add_argument("--master-addr", help="rank 0's address with --node-rank (passed to torchrun)")
    group.add_argument("--master-port", help="rank 0's port with --node-rank (passed to torchrun)")


def cmd_query(args: argparse.Namespace) -> int:
    from tasks.warehouse.query import render, run_query

    columns, rows = run_query(args.sql, home=args.home)
    print(render(columns, rows, args.format))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import demo_flow

    _print_nightly(demo_flow(home=args.home, show_progress=True), args.home)
    return 0


def cmd_nightly(args: argparse.Namespace) -> int:
    from flows.nightly import nightly_flow
    from schemas.nightly import GateConfig

    gate = GateConfig(accuracy_tolerance=args.accuracy_tolerance, max_kl=args.max_kl)
    report = nightly_flow(args.sources, algo=args.algo, config_path=args.config, overrides=args.overrides,
                          gate_config=gate, force=args.force, home=args.home, show_progress=True)
    _print_nightly(report, args.home)
    return 0


def _print_nightly(report, home) -> None:
    from tasks.common.home import Home
    from tasks.lineage.nightly_report import unmatched_warnings

    home = Home.of(home)
    print(f"new data: {len(report.files_loaded)} file(s), {report.rows_loaded} rows loaded, "
          f"{report.rows_quarantined} quarantined; {report.files_skipped} file(s) already seen")
    for warning in unmatched_warnings(report):
        print(f"warning: {warning.replace('`', '')}")
    if report.skipped_training:
        print(f"training skipped: {report.skipped_training}")
    if report.training_reason:
        print(f"trained because: {report.training_reason}")
    if report.checkpoint_id:
        from tasks.evaluate.intervals import headline_names, with_interval

        champion = report.champion_metrics or {}
        _print_table(f"checkpoint {report.checkpoint_id}", ["metric", "new (95% interval, n)", "champion before"],
                     [[k, with_interval(report.metrics, k), with_interval(champion, k)]
                      for k in headline_names(report.metrics)])
        headline = report.decision_headline or ('PROMOTED to champion' if report.promoted else 'NOT promoted')
        print(f"{headline}: {report.decision}")
        print(f"checkpoint: {report.checkpoint_path}")
    print(f"champion:   {home.champion} (loads with from_pretrained)")
    print(f"warehouse:  {home.warehouse} (analysts: thumbs query \"select * from label_balance\")")
    print(f"plots:      {', '.join(report.plots) or '—'}")
    if report.report_path:
        print(f"report:     {report.report_path} (open it in a browser)")
    print("runs:       thumbs runs; thumbs lineage <checkpoint>; the Prefect UI (prefect server start) shows "
          "each run's report artifact")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from flows.evaluate import evaluate_flow
    from schemas.config import comma_list, load_config
    from schemas.nightly import EvaluationSettings
    from tasks.evaluate.intervals import headline_names, with_interval

    settings = load_config(EvaluationSettings, None, args.overrides)
    sources = comma_list(args.sources) or None
    result = evaluate_flow(args.checkpoint, home=args.home, eval_snapshot=args.eval_snapshot, sources=sources,
                           **settings.model_dump())
    _print_table(f"evaluation of {result['checkpoint_id']}", ["metric", "value (95% interval, n)"],
                 [[k, with_interval(result["metrics"], k)] for k in headline_names(result["metrics"])])
    print(f"eval pairs: snapshot {result['eval_snapshot_id']} (another model on the same pairs: "
          f"thumbs evaluate MODEL --eval-snapshot {result['eval_snapshot_id']})")
    for plot in result.get("plots", []):
        print(f"plot: {plot}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from tasks.lineage.history import recent_checkpoints, recent_runs

    _print_table("recent runs", ["run_id", "flow", "started_at", "status"], recent_runs(args.home, args.limit))
    _print_table("checkpoints", ["checkpoint_id", "algo", "snapshot_id", "created_at", "champion", "eval accuracy"],
                 recent_checkpoints(args.home, args.limit))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from tasks.lineage.history import lineage_lines

    print("\n".join(lineage_lines(args.checkpoint, args.home)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tasks.report.page import write_report

    print(f"report: {write_report(args.home, args.out)}  (one HTML file: open it in a browser, no server needed)")
def cmd_export(args: argparse.Namespace) -> int:
    from tasks.train.export import export_checkpoint

    path = export_checkpoint(args.checkpoint, merge=args.merge, out=args.out, home=args.home)
    print(f"exported:   {path}")
    print(f"load it:    AutoModelForCausalLM.from_pretrained({str(path)!r})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thumbs", description="Human feedback in, aligned language models out.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="state directory (default: $THUMBS_HOME or ./.thumbs)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs and full tracebacks")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    ingest = verbs.add_parser("ingest", help="load feedback files of one source into the warehouse")
    ingest.add_argument("source", choices=list(SOURCES))
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files or globs: JSONL, JSON, CSV, Parquet, .gz")
    ingest.add_argument("--mapping", help="log sources: the mapping YAML naming the log's columns")
    ingest.add_argument("--max-row-bytes", type=int, default=4 * 2**20,
                        help="rows larger than this are quarantined (default 4 MiB)")
    ingest.set_defaults(run=cmd_ingest)

    binarize = verbs.add_parser("binarize", help="rebuild preference_pairs and feedback from staging")
    binarize.add_argument("--config", help="YAML file of binarize options")
    binarize.add_argument("overrides", nargs="*", metavar="key=value",
                          help="eval_fraction, shp_min_score_ratio, oasst_thumbs, oasst_include_synthetic")
    binarize.add_argument("--full", action="store_true",
                          help="rebuild every mart row, not only the prompts touched since the last build")
    binarize.set_defaults(run=cmd_binarize)

    train = verbs.add_parser("train", help="train a policy from a snapshot of the warehouse")
    train.add_argument("--algo", required=True, choices=list(LOSSES))
    train.add_argument("--config", help="YAML file of training options")
    train.add_argument("--resume", action="store_true",
                       help="continue the last interrupted run with the same config and snapshot")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="model, reference, steps, batch_size, max_length, lr, beta, seed, device, sources, ...")
    add_launch_options(train)
    train.set_defaults(run=cmd_train)

    compare = verbs.add_parser("compare", help="train and evaluate a grid of algorithms x beta from one snapshot")
    compare.add_argument("--config", help="YAML file of training options for every cell")
    compare.add_argument("overrides", nargs="*", metavar="key=value",
                         help="algos=dpo,ipo,kto betas=0.01,0.1 'variants=[kto desirable_fraction=0.1]' "
                              "evaluation.max_pairs=500, and training options for every cell (steps=..., ...)")
    compare.set_defaults(run=cmd_compare)

    query = verbs.add_parser("query", help="read-only SQL over the feedback tables")
    query.add_argument("sql")
    query.add_argument("--format", choices=["table", "csv", "json"], default="table")
    query.set_defaults(run=cmd_query)

    nightly = verbs.add_parser("nightly", help="the whole DAG: ingest what is new, binarize, snapshot, train, "
                                                 "evaluate, promote")
    nightly.add_argument("--sources", required=True, help="sources.yaml: the files to watch, per source")
    nightly.add_argument("--algo", default="kto", choices=list(LOSSES))
    nightly.add_argument("--config", help="YAML file of training options")
    nightly.add_argument("--force", action="store_true", help="train even when nothing new arrived")
    nightly.add_argument("--accuracy-tolerance", type=float, default=0.02,
                         help="promote only if eval reward accuracy >= the champion's minus this")
    nightly.add_argument("--max-kl", type=float, default=25.0, help="promote only if KL to the reference is below")
    nightly.add_argument("overrides", nargs="*", metavar="key=value", help="training options, as for `train`")
    nightly.set_defaults(run=cmd_nightly)

    evaluate = verbs.add_parser("evaluate", help="metrics of a checkpoint on the eval split")
    evaluate.add_argument("checkpoint", help="a checkpoint id or directory")
    evaluate.add_argument("overrides", nargs="*", metavar="key=value",
                          help="evaluation settings: max_pairs=1000, generation_prompts=8, max_new_tokens=48, "
                               "kl_samples=4, seed=0, judge=CHECKPOINT (a reward model: adds the win rate)")
    on = evaluate.add_mutually_exclusive_group()
    on.add_argument("--sources", help="evaluate on the current pairs of these sources (comma-separated, e.g. "
                                      "hh,oasst) instead of those the checkpoint trained on")
    on.add_argument("--eval-snapshot", help="evaluate on this pairs snapshot (an id or a directory): the same "
                                            "pairs as an earlier evaluation")
    evaluate.set_defaults(run=cmd_evaluate)

    runs = verbs.add_parser("runs", help="recent flow runs and checkpoints")
    runs.add_argument("--limit", type=int, default=15)
    runs.set_defaults(run=cmd_runs)

    lineage = verbs.add_parser("lineage", help="a checkpoint's chain back to its source files")
    lineage.add_argument("checkpoint", help="a checkpoint id, or `champion`")
    lineage.set_defaults(run=cmd_lineage)

    report = verbs.add_parser("report", help="one self-contained HTML page: feedback, quarantine, runs, checkpoints")
    report.add_argument("--out", metavar="DIR", help="where to write report.html (default: THUMBS_HOME/report)")
    report.set_defaults(run=cmd_report)
    synthesize = verbs.add_parser("synthesize", help="make preference pairs with a model (RLCD) and ingest them")
    prompts = synthesize.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--prompts", help="a file of prompts (any ingest format; `prompt` or HH `chosen`)")
    prompts.add_argument("--from-warehouse", action="store_true", help="the prompts of feedback, fewest thumbs first")
    synthesize.add_argument("--where", help="trusted SQL filter over prompt, thumbs, sources (e.g. \"thumbs < 3\")")
    synthesize.add_argument("--model", help="generator: a preset or a model directory (default smollm2-135m)")
    synthesize.add_argument("--n", type=int, help="at most this many prompts")
    synthesize.add_argument("--config", help="YAML file of synthesis options")
    synthesize.add_argument("kind_and_overrides", nargs="+", metavar="rlcd [key=value ...]",
                            help="the kind (rlcd), then options: seed, temperature, top_p, max_new_tokens, batch_size, templates, template_set, "
                                 "max_reply_chars, rescore, chunk_rows, device")
    synthesize.set_defaults(run=cmd_synthesize)
    export = verbs.add_parser("export", help="a checkpoint as full weights that load with from_pretrained")
    export.add_argument("checkpoint", help="a checkpoint id or directory")
    export.add_argument("--merge", action="store_true", help="merge a LoRA adapter into its base (required for "
                                                             "adapter checkpoints)")
    export.add_argument("--out", help="the new directory (default: THUMBS_HOME/exports/<checkpoint id>)")
    export.set_defaults(run=cmd_export)

    demo = verbs.add_parser("demo", help="the whole pipeline on the shipped data, on CPU")
    demo.set_defaults(run=cmd_demo)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None):
    """parse_args, except that a verb's key=value words may come after its options too
    (`synthesize rlcd --n 5 seed=1`, `evaluate CKPT --sources hh max_pairs=300`): argparse
    fills a positional list only with the words before the first option, and calls the
    rest unrecognized."""
    args, unknown = parser.parse_known_args(argv)
    words = next((name for name in ("kind_and_overrides", "overrides") if hasattr(args, name)), None)
    if unknown and words and all("=" in w and not w.startswith("-") for w in unknown):
        setattr(args, words, getattr(args, words) + unknown)
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    _quiet_prefect(args.verbose)
    try:
        return args.run(args)
    except ThumbsError as exc:
        release_frames(exc)
        if args.verbose:
            raise
        print(f"thumbs: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        release_frames(exc)
        print("thumbs: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # A full disk, a read-only THUMBS_HOME, a warehouse error: still one line for
        # the person (the traceback with -v). Anything else is a bug: let it show.
        import duckdb

        release_frames(exc)  # a traceback prints from code and line numbers, not locals
        if args.verbose or not isinstance(exc, (OSError, duckdb.Error)):
            raise
        print(f"thumbs: error: {type(exc).__name__}: {first_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
