"""What a training run feeds the model, in which order: a snapshot's rows, the sequences
scored from them (tokenized once, on demand), and the batch plan, every micro-batch of
the run fixed by the seed before the first step, so a resumed run sees the same data
in the same order.

Algorithms differ only in which sequences a batch holds:
- unpaired (KTO, SFT, CSFT; a `feedback` snapshot): each row's (x_i, y_i), and for
  KTO also the KL rows (x_i, y_m(i)) with m = mismatched_indices, so no completion
  is ever scored against its own prompt there;
- paired (DPO, IPO, SLiC; a `pairs` snapshot): each row's chosen and rejected.
CSFT writes the label into the text: CSFT_CONTROL_TOKENS[label] and a space are
prepended to the completion, so the control token is the first token(s) of the
assistant turn; at inference, start the assistant reply with "<|good|> ".
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from schemas.train import TrainConfig
from tasks.common.settings import ThumbsError
from tasks.train.batching import ChatEncoder, Encoded, bucket_batches
from tasks.train.losses import CSFT_CONTROL_TOKENS, mismatched_indices
from tasks.train.snapshots import Snapshot


@dataclass
class Rows:
    """One split of a snapshot; `replies` maps a field ('completion', or 'chosen' and
    'rejected') to its texts, already in training form (CSFT control token prepended)."""

    row_ids: list[str]
    prompts: list[list[dict]]
    replies: dict[str, list[str]]
    labels: list[bool] | None


def read_rows(snapshot: Snapshot, split: str, algo: str) -> Rows:
    table = snapshot.split(split)
    ids, prompts = table["row_id"].to_pylist(), table["prompt"].to_pylist()
    if snapshot.kind == "pairs":
        return Rows(ids, prompts, {"chosen": table["chosen"].to_pylist(),
                                   "rejected": table["rejected"].to_pylist()}, None)
    labels = [bool(v) for v in table["label"].to_pylist()]
    completions = table["completion"].to_pylist()
    if algo == "csft":
        completions = [f"{CSFT_CONTROL_TOKENS[label]} {text}" for label, text in zip(labels, completions)]
    return Rows(ids, prompts, {"completion": completions}, labels)


@dataclass(frozen=True)
class Seq:
    """A sequence to score: the prompt of row `prompt_row` with reply `field` of row `reply_row`."""

    prompt_row: int
    reply_row: int
    field: str


@dataclass
class Sequences:
    """Tokenizes sequences of one split on demand, each once."""

    rows: Rows
    encoder: ChatEncoder
    _memo: dict[Seq, Encoded] = field(default_factory=dict)

    def encoded(self, seq: Seq) -> Encoded:
        if seq not in self._memo:
            self._memo[seq] = self.encoder.encode(self.rows.prompts[seq.prompt_row],
                                                  self.rows.replies[seq.field][seq.reply_row])
        return self._memo[seq]

    def key(self, seq: Seq) -> str:
        """The reference cache's name for a sequence: stable row ids, not positions."""
        return f"{self.rows.row_ids[seq.prompt_row]}:{self.rows.row_ids[seq.reply_row]}:{seq.field}"

    def length(self, row: int) -> int:
        """Characters, a proxy for tokens good enough to bucket by: tokenizing every row of a
        large snapshot up front would cost minutes for rows a short run never reaches."""
        prompt = sum(len(message["content"]) for message in self.rows.prompts[row])
        return prompt + max(len(texts[row]) for texts in self.rows.replies.values())


@dataclass(frozen=True)
class MicroBatch:
    rows: tuple[int, ...]
    kl_partners: tuple[int, ...] = ()  # KTO: row i's KL completion comes from row kl_partners[k]

    def main_sequences(self, fields: list[str]) -> list[Seq]:
        # Paired: all chosen, then all rejected, so one forward yields both halves.
        return [Seq(r, r, f) for f in fields for r in self.rows]

    def kl_sequences(self) -> list[Seq]:
        return [Seq(r, partner, "completion") for r, partner in zip(self.rows, self.kl_partners)]


def plan_batches(rows: list[int], lengths: list[int], *, batch_size: int, n_batches: int, seed: int,
                 kl_rows: bool) -> list[MicroBatch]:
    """`n_batches` micro-batches over `rows`, epoch after epoch, each epoch length-bucketed
    and shuffled by (seed, epoch). KTO pairings are drawn here, up front, so the
    reference cache knows every KL row before training starts."""
    generator = torch.Generator().manual_seed(seed)
    plan: list[MicroBatch] = []
    epoch = 0
    while len(plan) < n_batches:
        for positions in bucket_batches(lengths, batch_size, seed=seed * 1_000_003 + epoch):
            if kl_rows and len(positions) < 2:
                continue  # one example has no mismatched partner for the KL estimate
            members = tuple(rows[p] for p in positions)
            partners = ()
            if kl_rows:
                partners = tuple(members[j] for j in mismatched_indices(len(members), generator).tolist())
            plan.append(MicroBatch(members, partners))
        epoch += 1
        if epoch > 1 and not plan:
            raise ThumbsError(f"no batch of >= 2 rows can be formed from {len(rows)} rows")
    return plan[:n_batches]


@dataclass
class Batches:
    """Micro-batches of one split, in the order they are trained or evaluated, and the
    sequences they index."""

    seqs: Sequences
    micro_batches: list[MicroBatch]

    def for_step(self, step: int, grad_accum: int) -> Batches:
        """The micro-batches optimizer step `step` (counted from 1) accumulates."""
        return Batches(self.seqs, self.micro_batches[(step - 1) * grad_accum: step * grad_accum])

    def sequences(self) -> dict[str, Encoded]:
        """Every sequence these batches score, by reference-cache key."""
        fields = list(self.seqs.rows.replies)
        return {self.seqs.key(seq): self.seqs.encoded(seq) for micro in self.micro_batches
                for seq in micro.main_sequences(fields) + micro.kl_sequences()}

    @property
    def examples(self) -> int:
        return sum(len(micro.rows) for micro in self.micro_batches)


@dataclass
class TrainingData:
    train: Batches
    eval: Batches  # empty when the eval split has fewer than 2 rows
    rows_trained: list[int]  # positions in the train split: all rows, or a seeded max_rows subset

    @property
    def trained_labels(self) -> list[bool] | None:
        labels = self.train.seqs.rows.labels
        return None if labels is None else [labels[r] for r in self.rows_trained]


def keep_desirable_fraction(rows: list[int], labels: list[bool], fraction: float, seed: int) -> list[int]:
    """`rows` with a seeded `fraction` of their desirable rows kept (rounded, at least one)
    and every undesirable row: the KTO paper's data ablation. The eval split is untouched."""
    desirable = [r for r in rows if labels[r]]
    keep = set(random.Random(seed + 2).sample(desirable, max(1, round(fraction * len(desirable))))) if desirable else set()
    return [r for r in rows if not labels[r] or r in keep]


def plan_data(snapshot: Snapshot, config: TrainConfig, encoder: ChatEncoder, kl_rows: bool) -> TrainingData:
    """Both splits' rows and their batch plans: steps * grad_accum micro-batches of the
    train split, at most eval_batches of a seeded sample of the eval split."""
    train_seqs = Sequences(read_rows(snapshot, "train", config.algo), encoder)
    eval_seqs = Sequences(read_rows(snapshot, "eval", config.algo), encoder)
    used = list(range(len(train_seqs.rows.row_ids)))
    if config.max_rows is not None and config.max_rows < len(used):
        used = sorted(random.Random(config.seed).sample(used, config.max_rows))
    if config.desirable_fraction < 1:
        used = keep_desirable_fraction(used, train_seqs.rows.labels, config.desirable_fraction, config.seed)
    if len(used) < (2 if kl_rows else 1):
        raise ThumbsError(f"{snapshot.path}: {len(used)} train row(s): too few to train {config.algo}")
    train_plan = plan_batches(used, [train_seqs.length(r) for r in used], batch_size=config.batch_size,
                              n_batches=config.steps * config.grad_accum, seed=config.seed, kl_rows=kl_rows)
    eval_count = len(eval_seqs.rows.row_ids)
    eval_used = sorted(random.Random(config.seed + 1).sample(
        range(eval_count), min(eval_count, config.eval_batches * config.batch_size)))
    eval_plan = plan_batches(eval_used, [eval_seqs.length(r) for r in eval_used], batch_size=config.batch_size,
                             n_batches=min(config.eval_batches, math.ceil(len(eval_used) / config.batch_size)),
                             seed=config.seed + 1, kl_rows=kl_rows) if len(eval_used) >= 2 else []
    return TrainingData(Batches(train_seqs, train_plan), Batches(eval_seqs, eval_plan), used)
