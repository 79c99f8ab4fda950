"""A reward-model checkpoint (`thumbs train --algo rm`) as an evaluation and as a judge.

Its metric is pairwise accuracy on the eval split: the share of eval pairs whose chosen
reply it scores above the rejected one (ties wrong), with the same names, intervals and
per-pair record as a policy's implicit-reward accuracy (tasks/evaluate/evaluation.py), so
the gate and every table read it alike. As a judge (`judge=CHECKPOINT`) it scores two
replies to each eval prompt; the win rate is the share of prompts where the candidate's
reply scores higher, a tie counting one half, with its bootstrap interval over prompts.
The judge encodes with its own tokenizer: it need not share the policy's.
"""
from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import torch

from tasks.evaluate.intervals import bootstrap_mean
from tasks.train.batching import ChatEncoder, Encoded
from tasks.train.models import load_reward_model, load_tokenizer
from tasks.train.objective import Policy
from tasks.train.snapshots import Snapshot


def score_all(model, encoded: list[Encoded], *, pad_token_id: int, device: torch.device,
              batch_size: int) -> list[float]:
    """Each sequence's reward, in the trainer's forward (Policy.scores), batch by batch."""
    scorer, scores = Policy(model, device, packing=False, pad_token_id=pad_token_id), []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            scores += scorer.scores(encoded[start:start + batch_size]).tolist()
    return scores


class Judge:
    """A reward-model checkpoint scoring (prompt, reply) texts; `close` frees it."""

    def __init__(self, checkpoint_dir: str | Path, device: torch.device, *, max_length: int, batch_size: int):
        self.path = Path(checkpoint_dir)
        self.tokenizer = load_tokenizer(self.path)
        self.encoder = ChatEncoder(self.tokenizer, max_length)
        self.model = load_reward_model(self.path, device, self.tokenizer.pad_token_id).eval()
        self.device, self.batch_size = device, batch_size

    def scores(self, prompts: list[list[dict]], replies: list[str]) -> list[float]:
        encoded = [self.encoder.encode(prompt, reply) for prompt, reply in zip(prompts, replies)]
        return score_all(self.model, encoded, pad_token_id=self.tokenizer.pad_token_id, device=self.device,
                         batch_size=self.batch_size)

    def close(self) -> None:
        del self.model
        gc.collect()


def win_rate(candidate_scores: list[float], baseline_scores: list[float], seed: int) -> dict[str, float]:
    """win_rate_vs_reference (and _low, _high, _n): per prompt 1 when the candidate's reply
    scores higher, 0.5 on a tie, 0 when lower."""
    outcomes = [1.0 if c > b else 0.5 if c == b else 0.0 for c, b in zip(candidate_scores, baseline_scores)]
    return bootstrap_mean(outcomes, seed=seed).named("win_rate_vs_reference")


def evaluate_reward_model(checkpoint_dir: Path, info: dict[str, Any], eval_snapshot: Snapshot, *, max_pairs: int,
                          seed: int, device: torch.device, batch_size: int, max_length: int) -> dict[str, Any]:
    """{checkpoint_id, metrics, eval_snapshot_id, settings, reference (None), generations ([]),
    per_pair}: the evaluate_checkpoint result of a reward model."""
    from tasks.evaluate.evaluation import eval_pairs, pair_metrics, per_pair_record, prompt_groups

    started = time.perf_counter()
    pairs = eval_pairs(eval_snapshot, max_pairs)
    judge = Judge(checkpoint_dir, device, max_length=max_length, batch_size=batch_size)
    try:
        prompts = [row["prompt"] for row in pairs]
        chosen = judge.scores(prompts, [row["chosen"] for row in pairs])
        rejected = judge.scores(prompts, [row["rejected"] for row in pairs])
    finally:
        judge.close()
    metrics = {**pair_metrics(chosen, rejected, prompt_groups(pairs), seed),
               "eval_wall_time_s": time.perf_counter() - started}
    return {"checkpoint_id": info["checkpoint_id"], "checkpoint_path": str(checkpoint_dir), "metrics": metrics,
            "eval_snapshot_id": eval_snapshot.snapshot_id,
            "settings": {"max_pairs": max_pairs, "seed": seed, "max_length": max_length},
            "reference": None, "generations": [], "per_pair": per_pair_record(pairs, chosen, rejected)}
