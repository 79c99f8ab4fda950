"""Snapshots: the exact rows a training run learns from, frozen as Parquet.

Training reads a snapshot, never the live warehouse, so runs are reproducible and
never hold the warehouse lock while ingest or analysts work. A snapshot's id is a
hash of its rows (their content-hash ids and splits), so the same rows always give
the same snapshot, and a nightly run can tell "nothing new" by comparing ids.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.common.files import replaced_directory, writer_tag
from tasks.common.home import Home, HomeLike
from tasks.common.settings import ThumbsError
from tasks.warehouse.connection import query_arrow, run_sql

Kind = Literal["feedback", "pairs"]
SPLITS = ("train", "eval")


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    kind: Kind
    path: Path
    row_counts: dict
    files: dict[str, str]  # file name -> sha256

    def split(self, name: str) -> pa.Table:
        return pq.read_table(self.path / f"{name}.parquet")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _row_counts(rows: pa.Table, kind: Kind) -> dict:
    counts: dict = {}
    for split in SPLITS:
        part = rows.filter(pc.equal(rows["split"], split))
        by_source = Counter(part["source"].to_pylist())
        entry = {"rows": part.num_rows, "by_source": dict(sorted(by_source.items()))}
        if kind == "feedback":
            labels = part["label"].to_pylist()
            entry["desirable"] = sum(1 for v in labels if v)
            entry["undesirable"] = sum(1 for v in labels if not v)
            entry["by_source_label"] = {
                f"{s}:{'up' if lb else 'down'}": n
                for (s, lb), n in sorted(Counter(zip(part["source"].to_pylist(), labels)).items())}
        counts[split] = entry
    return counts


def snapshot_id_of(rows: pa.Table, kind: Kind) -> str:
    digest = hashlib.sha256(kind.encode())
    for row_id, split in zip(rows["row_id"].to_pylist(), rows["split"].to_pylist()):
        digest.update(f"{split}:{row_id}\n".encode())
    return digest.hexdigest()[:16]


def create_snapshot(
    con: duckdb.DuckDBPyConnection, kind: Kind, *, sources: Sequence[str] | None = None,
    one_per_prompt: bool = False, run_id: str | None = None, home: HomeLike = None,
) -> Snapshot:
    """Freeze the current rows of `feedback` (kind 'feedback') or `preference_pairs` ('pairs')."""
    params = {"sources": list(sources) if sources else None}
    if kind == "feedback":
        rows = query_arrow(con, "statements/snapshots/feedback_rows.sql",
                           {**params, "one_per_prompt": one_per_prompt})
    else:
        rows = query_arrow(con, "statements/snapshots/pair_rows.sql", params)
    if rows.num_rows == 0:
        raise ThumbsError(
            f"no {kind} rows to snapshot for sources {list(sources) if sources else 'all'}: "
            "run `thumbs ingest` and `thumbs binarize` first")
    snapshot_id = snapshot_id_of(rows, kind)
    final = Home.of(home).snapshots / snapshot_id
    # `con` holds the warehouse's writer lock, so no other process is writing a snapshot:
    # another process's scratch directory here is a killed writer's, as large as its rows.
    for stale in final.parent.glob(".*.partial"):
        if not stale.name.endswith(f".{writer_tag()}.partial"):
            shutil.rmtree(stale, ignore_errors=True)
    if not (final / "snapshot.json").exists():
        _write(rows, kind, snapshot_id, final, one_per_prompt, sources)
    snapshot = load_snapshot(final)
    run_sql(con, "statements/snapshots/record_snapshot.sql", {
        "snapshot_id": snapshot_id, "kind": kind, "path": str(final),
        "created_at": datetime.now(timezone.utc).replace(tzinfo=None), "run_id": run_id,
        "options": json.dumps({"sources": params["sources"], "one_per_prompt": one_per_prompt}),
        "row_counts": json.dumps(snapshot.row_counts), "files": json.dumps(snapshot.files),
    })
    return snapshot


def _write(rows: pa.Table, kind: Kind, snapshot_id: str, final: Path, one_per_prompt: bool,
           sources: Sequence[str] | None) -> None:
    # Written into a scratch directory and renamed into place: a reader (or a
    # killed run) never sees a snapshot with some of its files.
    with replaced_directory(final) as scratch:
        files = {}
        for split in SPLITS:
            part = rows.filter(pc.equal(rows["split"], split))
            pq.write_table(part, scratch / f"{split}.parquet")
            files[f"{split}.parquet"] = _sha256(scratch / f"{split}.parquet")
        manifest = {"snapshot_id": snapshot_id, "kind": kind, "one_per_prompt": one_per_prompt,
                    "sources": list(sources) if sources else None,
                    "created_at": datetime.now(timezone.utc).isoformat(),
                    "row_counts": _row_counts(rows, kind), "files": files}
        (scratch / "snapshot.json").write_text(json.dumps(manifest, indent=1))


def load_snapshot(path: str | Path) -> Snapshot:
    path = Path(path)
    try:
        manifest = json.loads((path / "snapshot.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ThumbsError(f"{path}: not a thumbs snapshot ({exc})") from exc
    for name, digest in manifest["files"].items():
        if _sha256(path / name) != digest:
            raise ThumbsError(f"{path / name}: snapshot file changed since it was written (sha256 mismatch)")
    return Snapshot(manifest["snapshot_id"], manifest["kind"], path, manifest["row_counts"], manifest["files"])
