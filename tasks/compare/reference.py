"""The grid's reference log-probs, computed once before any cell trains.

Every cell's trainer reads its reference log-probs from the reference cache
(tasks/train/reference_cache.py), keyed by (reference weights, snapshot, tokenization,
precision). Cells of a grid share most sequences (DPO and IPO at every β score the same
pairs; KTO cells the same thumbs), but not all: a desirable_fraction variant draws other
batches and other KL partners. So the union of every cell's planned sequences (train and
eval plans) and of the grid's eval pairs, as the evaluation keys them, is gathered per
cache key and scored in one pass with the reference loaded once per key; each cell's
trainer and evaluation then find every pair sequence cached and load no reference for them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from schemas.compare import Cell
from schemas.nightly import EvaluationSettings
from tasks.evaluate.evaluation import eval_pairs
from tasks.train import reference_cache
from tasks.train.algorithms import LOSSES
from tasks.train.batching import ChatEncoder, Encoded
from tasks.train.data import plan_data
from tasks.train.models import load_tokenizer, pick_device, resolve_model
from tasks.train.snapshots import Snapshot


@dataclass
class _Group:
    """Sequences that share one cache file: one reference, snapshot, tokenization, device."""

    reference_dir: Path
    reference_name: str
    snapshot_id: str
    max_length: int
    text_format: str
    device: str
    tokenizer: object
    sequences: dict[str, Encoded] = field(default_factory=dict)


def _group(groups: dict[tuple, _Group], cell: Cell, snapshot_id: str, text_format: str, tokenizers: dict) -> _Group:
    config = cell.config
    reference_name = config.reference or config.model
    reference_dir = resolve_model(reference_name)
    model_dir = resolve_model(config.model)
    if model_dir not in tokenizers:
        tokenizers[model_dir] = load_tokenizer(model_dir)
    key = (str(reference_dir), snapshot_id, config.max_length, text_format, config.device, str(model_dir))
    if key not in groups:
        groups[key] = _Group(reference_dir, reference_name, snapshot_id, config.max_length, text_format,
                             config.device, tokenizers[model_dir])
    return groups[key]


def shared_reference(cells: list[Cell], snapshots: dict[str, Snapshot], eval_snapshot: Snapshot,
                     evaluation: EvaluationSettings, home: str | Path,
                     on_batch: Callable[[int, int], None] | None = None) -> dict:
    """Score every sequence any cell will ask the reference for; {groups, sequences, computed,
    loads (reference models loaded: at most one per group)}.

    `snapshots` maps a cell's name to the snapshot it trains on."""
    groups: dict[tuple, _Group] = {}
    tokenizers: dict = {}
    pairs = eval_pairs(eval_snapshot, evaluation.max_pairs)
    for cell in cells:
        config, spec = cell.config, LOSSES[cell.config.algo]
        if spec.needs_reference:
            snapshot = snapshots[cell.name]
            text_format = "csft" if config.algo == "csft" else "plain"
            group = _group(groups, cell, snapshot.snapshot_id, text_format, tokenizers)
            data = plan_data(snapshot, config, ChatEncoder(group.tokenizer, config.max_length), spec.needs_kl_rows)
            group.sequences.update(data.train.sequences())
            group.sequences.update(data.eval.sequences())
        # The evaluation keys the eval pairs as the trainer keys a pairs snapshot's rows.
        group = _group(groups, cell, eval_snapshot.snapshot_id, "plain", tokenizers)
        encoder = ChatEncoder(group.tokenizer, config.max_length)
        group.sequences.update({f"{row['row_id']}:{row['row_id']}:{side}": encoder.encode(row["prompt"], row[side])
                                for row in pairs for side in ("chosen", "rejected")})
    computed, loads_before = 0, reference_cache.REFERENCE_LOADS
    batch_size = max(c.config.reference_batch_size for c in cells)  # how many per forward: not in the key
    for group in groups.values():
        # The same helpers the trainer and the evaluation call, with the same inputs: the same cache key.
        _, info = reference_cache.for_run(
            group.sequences, reference_dir=group.reference_dir, reference_name=group.reference_name,
            snapshot_id=group.snapshot_id, max_length=group.max_length, tokenizer=group.tokenizer,
            text_format=group.text_format, device=pick_device(group.device), batch_size=batch_size, home=home,
            on_batch=on_batch)
        computed += info["computed"]
    return {"groups": len(groups), "sequences": sum(len(g.sequences) for g in groups.values()),
            "computed": computed, "loads": reference_cache.REFERENCE_LOADS - loads_before}
