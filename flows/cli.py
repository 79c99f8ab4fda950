"""The `thumbs` command line: each verb runs a Prefect flow (except `query`, which
only reads the published copy and should answer in milliseconds, not wait ~20 s
for a Prefect server)."""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from tasks.settings import ThumbsError

EPILOG = """examples:
  thumbs ingest hh data/hh-rlhf/*.jsonl.gz
  thumbs ingest log examples/support-bot.jsonl --mapping examples/support-bot.mapping.yaml
  thumbs binarize eval_fraction=0.05
  thumbs query "select source, label, count(*) from feedback group by all order by all"
  thumbs demo
"""


def _quiet_prefect(verbose: bool) -> None:
    # Run logs still reach the Prefect API/UI; the terminal shows our own summary
    # and one-line errors instead of Prefect's tracebacks. `-v` brings them back.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if i and all(isinstance(r[i], int) for r in rows) else "left")
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console().print(table)


def cmd_ingest(args: argparse.Namespace) -> int:
    from flows.ingest import ingest_flow

    results = ingest_flow(args.source, args.paths, mapping=args.mapping, home=args.home,
                          max_row_bytes=args.max_row_bytes, show_progress=True)
    rows = [[Path(r.file).name, r.status, r.rows_read, r.rows_loaded, r.rows_duplicate, r.rows_quarantined]
            for r in results]
    rows.append(["total", "", *[sum(r[i] for r in rows) for i in range(2, 6)]])
    _print_table(f"ingest {args.source}", ["file", "status", "read", "loaded", "duplicate", "quarantined"], rows)
    reasons = sum((r.reasons for r in results), Counter())
    if reasons:
        _print_table("quarantined rows by reason", ["reason", "rows"], [[k, v] for k, v in reasons.most_common(10)])
    for r in results:
        if r.status == "skipped":
            print(f"{r.file}: already loaded by batch {r.previous_batch} (same sha256): nothing changed")
    return 0


def cmd_binarize(args: argparse.Namespace) -> int:
    from flows.binarize import binarize_flow
    from schemas.config import BinarizeConfig, load_config

    _print_binarized(binarize_flow(load_config(BinarizeConfig, args.config, args.overrides), home=args.home))
    return 0


def _print_binarized(result) -> None:
    _print_table("preference_pairs", ["source", "split", "pairs"],
                 [[s, sp, n] for (s, sp), n in sorted(result.pairs.items())])
    _print_table("feedback", ["source", "label", "completions"],
                 [[s, "up" if lb else "down", n] for (s, lb), n in sorted(result.feedback.items())])
    if result.tied_completions:
        print(f"{result.tied_completions} completion(s) had as many up as down votes: left out of feedback")


def cmd_query(args: argparse.Namespace) -> int:
    from tasks.query import render, run_query

    columns, rows = run_query(args.sql, home=args.home)
    print(render(columns, rows, args.format))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import demo_flow
    from tasks.settings import thumbs_home

    result = demo_flow(home=args.home, show_progress=True)
    rows = [[source, len(files), *[sum(getattr(f, k) for f in files) for k in
             ("rows_read", "rows_loaded", "rows_duplicate", "rows_quarantined")]]
            for source, files in result.ingested.items()]
    _print_table("ingested", ["source", "files", "read", "loaded", "duplicate", "quarantined"], rows)
    _print_binarized(result.binarized)
    home = thumbs_home(args.home)
    print(f"\nwarehouse: {home / 'warehouse.duckdb'} (analysts' read-only copy: {home / 'published'})")
    print('try:  thumbs query "select * from label_balance"')
    print('      thumbs query "select * from quarantine_reasons"')
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thumbs", description="Human feedback in, aligned language models out.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="state directory (default: $THUMBS_HOME or ./.thumbs)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs and full tracebacks")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    ingest = verbs.add_parser("ingest", help="load feedback files of one source into the warehouse")
    ingest.add_argument("source", choices=["hh", "shp", "oasst", "log"])
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files or globs: JSONL, JSON, CSV, Parquet, .gz")
    ingest.add_argument("--mapping", help="log sources: the mapping YAML naming the log's columns")
    ingest.add_argument("--max-row-bytes", type=int, default=4 * 2**20,
                        help="rows larger than this are quarantined (default 4 MiB)")
    ingest.set_defaults(run=cmd_ingest)

    binarize = verbs.add_parser("binarize", help="rebuild preference_pairs and feedback from staging")
    binarize.add_argument("--config", help="YAML file of binarize options")
    binarize.add_argument("overrides", nargs="*", metavar="key=value",
                          help="eval_fraction, shp_min_score_ratio, oasst_thumbs, oasst_include_synthetic")
    binarize.set_defaults(run=cmd_binarize)

    query = verbs.add_parser("query", help="read-only SQL over the feedback tables")
    query.add_argument("sql")
    query.add_argument("--format", choices=["table", "csv", "json"], default="table")
    query.set_defaults(run=cmd_query)

    demo = verbs.add_parser("demo", help="the whole pipeline on the shipped data, on CPU")
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_prefect(args.verbose)
    try:
        return args.run(args)
    except ThumbsError as exc:
        if args.verbose:
            raise
        print(f"thumbs: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("thumbs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
