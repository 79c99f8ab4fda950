"""What a run carries from step to step: the policy, AdamW and its warmup + cosine
schedule, the steps taken and their metrics (TrainingState, saved to state.pt and
resumed from it), and where each step's metrics go (Reporter)."""
from __future__ import annotations

import json
import math
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from schemas.train import TrainConfig
from tasks.train import checkpoints as ckpt
from tasks.train.distributed import SINGLE, Ranks, is_sharded
from tasks.train.objective import Policy, mean_metrics

SUMMARY_KEYS = ("loss", "reward_accuracy", "reward_margin", "rewards_chosen", "rewards_rejected", "kl", "sft_nll")
Progress = Callable[[dict[str, Any]], None]


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warmup over warmup_steps, then cosine down to min_lr_ratio (nanoGPT's schedule).
    `step` counts optimizer steps already taken."""
    if step < config.warmup_steps:
        return (step + 1) / (config.warmup_steps + 1)
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # Weight decay on matrices only: decaying norms' gains and biases just shrinks them.
    params = [p for p in model.parameters() if p.requires_grad]
    # FSDP's sharded parameters (parallel=fsdp) cannot share a fused kernel with plain ones:
    # groups of each kind (just the plain one otherwise).
    kinds = sorted({is_sharded(p) for p in params})
    groups = [group for kind in kinds for group in (
        {"params": [p for p in params if p.dim() >= 2 and is_sharded(p) == kind], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2 and is_sharded(p) == kind], "weight_decay": 0.0})]
    # Fused: one kernel per parameter group instead of a loop of small ops (CPU and CUDA).
    return torch.optim.AdamW(groups, lr=config.lr, fused=device.type in ("cpu", "cuda"))


@dataclass
class TrainingState:
    """Everything a resumed run continues from: weights, AdamW moments, the schedule's
    position, the optimizer steps taken, the training seconds spent and every step's
    metrics (the RNGs are captured beside them when saved)."""

    policy: Policy
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: int = 0
    elapsed: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, policy: Policy, config: TrainConfig) -> TrainingState:
        """Step 0: fused AdamW over the policy, warmup + cosine schedule (lr_factor)."""
        optimizer = make_optimizer(policy.model, config, policy.device)
        return cls(policy, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config)))

    def resume(self, run_dir: Path, fingerprint: str, ranks: Ranks = SINGLE) -> None:
        """Continue from run_dir's saved state, if there is one (every rank reads the same file)."""
        saved = ckpt.load_state(run_dir, fingerprint)
        if saved is not None:
            ranks.load_training_state(self.policy.model, self.optimizer, saved["model"], saved["optimizer"])
            ckpt.restore_rng_and_schedule(saved, self.scheduler, self.policy.device)
            self.history, self.step, self.elapsed = saved["metrics"], saved["step"], saved["elapsed"]

    def save(self, run_dir: Path, fingerprint: str, ranks: Ranks = SINGLE) -> None:
        """state.pt, written by rank 0; with fsdp every rank first hands in its shards."""
        gathered = ranks.training_state(self.policy.model, self.optimizer)
        if gathered is None:
            return
        weights, moments = gathered
        ckpt.save_state(run_dir, ckpt.capture_training_state(
            fingerprint=fingerprint, step=self.step, elapsed=self.elapsed, metrics=self.history,
            weights=weights, moments=moments, scheduler=self.scheduler, device=self.policy.device))


@dataclass
class Reporter:
    """Where a run's progress goes: each step's record as one line of metrics.jsonl, and
    every event to `emit` (the parent process, in tasks.train.trainer.main)."""

    metrics_file: Path | None  # None: a rank other than 0, which logs nothing
    emit: Progress
    steps: int  # the run's, sent with each step event
    logged: InitVar[list[dict[str, Any]]]  # the steps a resumed state holds

    def __post_init__(self, logged: list[dict[str, Any]]) -> None:
        # Rewritten, not appended to: a resumed run drops the steps logged after its saved state.
        if self.metrics_file is None:
            return
        self.metrics_file.write_text("".join(json.dumps(r) + "\n" for r in logged))

    def step(self, record: dict[str, Any]) -> None:
        if self.metrics_file is None:
            return
        with open(self.metrics_file, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        self.emit({"event": "step", "steps": self.steps, **record})


def final_metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    """Train metrics averaged over the last 10 steps (one step is noisy), the last eval, throughput."""
    tail = [{k: r[k] for k in SUMMARY_KEYS if k in r} for r in history[-10:]]
    summary = {f"train_{k}": v for k, v in mean_metrics(tail).items()}
    evals = [r for r in history if "eval_loss" in r]
    if evals:
        summary.update({f"eval_{k}": evals[-1][f"eval_{k}"] for k in SUMMARY_KEYS if f"eval_{k}" in evals[-1]})
    summary["steps"] = history[-1]["step"]
    summary["samples_per_s"] = sum(r["samples_per_s"] for r in history) / len(history)
    summary["wall_time_s"] = history[-1]["elapsed"]
    return summary
