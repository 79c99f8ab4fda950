"""`thumbs runs` and `thumbs lineage`: what ran, and where a checkpoint came from.

Both read the published copy, so they answer at once even while a run writes."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tasks.train.checkpoints import read_manifest
from tasks.common.settings import ThumbsError
from tasks.warehouse.query import published_connection
from tasks.warehouse.connection import run_sql


def recent_runs(home: str | Path | None, limit: int) -> list[list]:
    with published_connection(home) as con:
        return [list(r) for r in run_sql(con, "statements/history/recent_runs.sql", {"limit": limit}).fetchall()]


def recent_checkpoints(home: str | Path | None, limit: int) -> list[list]:
    with published_connection(home) as con:
        rows = run_sql(con, "statements/history/recent_checkpoints.sql", {"limit": limit}).fetchall()
        return [list(r) for r in rows]


def snapshot_batches(snapshot_path: Path) -> list[str]:
    """The ingest batches whose rows a snapshot holds (read from its own files)."""
    batches: set[str] = set()
    for split in ("train", "eval"):
        table = pq.read_table(snapshot_path / f"{split}.parquet", columns=["batch_id"])
        batches.update(b for b in table["batch_id"].to_pylist() if b)
    return sorted(batches)


def lineage_lines(checkpoint: str, home: str | Path | None) -> list[str]:
    """checkpoint -> manifest (code, base model) -> snapshot (files) -> ingest runs -> source files."""
    with published_connection(home) as con:
        rows = run_sql(con, "statements/history/checkpoint.sql", {"checkpoint": checkpoint}).fetchall()
        if not rows:
            raise ThumbsError(f"no checkpoint '{checkpoint}' in the warehouse (see `thumbs runs`)")
        (checkpoint_id, run_id, algo, base_model, snapshot_id, path, parent, created_at,
         snapshot_path, snapshot_files, row_counts) = rows[0]
        batches = snapshot_batches(Path(snapshot_path)) if snapshot_path else []
        ingests = run_sql(con, "statements/history/batches.sql", {"batch_ids": batches}).fetchall()
    manifest = read_manifest(path)
    base = manifest.get("base_model", {})
    lines = [
        f"checkpoint {checkpoint_id}  ({algo}, created {created_at:%Y-%m-%d %H:%M:%S})",
        f"  path          {path}",
        f"  training run  {run_id}   code {manifest.get('code_version', '?')}",
        f"  base model    {base.get('name', base_model)}   weights sha256 {str(base.get('weights_sha256', '?'))[:16]}",
        f"  parent        {parent or '—'}",
        *([f"  adapter       LoRA r={a['r']} alpha={a['alpha']} on the base model, targets {', '.join(a['targets'])}"]
          if (a := manifest.get("adapter")) else []),
        f"└─ snapshot {snapshot_id}  {snapshot_path}",
    ]
    for name, digest in sorted(json.loads(snapshot_files or "{}").items()):
        lines.append(f"     {name:<14} sha256 {digest[:16]}")
    counts = json.loads(row_counts or "{}")
    for split, entry in counts.items():
        lines.append(f"     {split:<14} {entry.get('rows', 0)} rows  {entry.get('by_source', {})}")
    lines.append(f"   └─ {len(ingests)} source file load(s) in {len(batches)} ingest run(s)")
    for batch_id, source, file, sha, loaded, finished, options in ingests:
        lines.append(f"        {finished}  {source:<16} {file}  sha256 {sha[:16]}  ({loaded} rows, batch {batch_id[:8]})")
        lines += generation_lines(json.loads(options or "{}"))
    return lines


def generation_lines(options: dict) -> list[str]:
    """For a generated file (a synthetic source): what generated it."""
    if "generator_sha256" not in options:
        return []
    return [
        f"           generator  {options['generator_model']}   weights sha256 {options['generator_sha256'][:16]}",
        f"           templates  {options['templates_file']} [{options['template_set']}]"
        f"   sha256 {options['templates_sha256'][:16]}",
        f"           prompts    {options['prompts']} from {options['prompt_set']}"
        f"   set sha256 {options['prompt_set_sha256'][:16]}",
        f"           sampling   seed {options['seed']}, temperature {options['temperature']}, top_p {options['top_p']}, "
        f"max_new_tokens {options['max_new_tokens']}" + (f", rescored by {options['rescore']}" if options.get("rescore")
                                                          else ""),
    ]
