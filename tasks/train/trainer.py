"""The training loop. Read `train` top to bottom: the run's setup (config, device,
models), the data and its batch plan (tasks/train/data.py), the reference log-probs
and the loss (tasks/train/objective.py), policy, optimizer and resumed state
(tasks/train/state.py), then one loop with eval, logging and resumable state inline,
then the checkpoint. Algorithms differ only in which sequences a batch holds
(tasks/train/data.py) and which loss LOSSES[algo] is called with. Several processes
(torchrun) run this same loop, each on its slice of every micro-batch; what that takes
is in tasks/train/distributed.py (Ranks), called from here at the few places it matters.

Run in its own process by tasks/train/tasks.py (train_task): `python -m tasks.train.trainer --config ...`
prints one JSON line per event (prefixed PROTOCOL) on stdout; see `main`.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from schemas.train import TrainConfig
from tasks.common.settings import ThumbsError, code_version
from tasks.train import checkpoints as ckpt
from tasks.train import distributed, reference_cache
from tasks.train.batching import ChatEncoder
from tasks.train.data import Batches, TrainingData, plan_data
from tasks.train.distributed import SINGLE, Ranks
from tasks.train.losses import LOSSES
from tasks.train.models import (is_adapter_dir, load_policy, load_reward_model, load_tokenizer, resolve_model,
                                weights_sha256, with_lora, with_value_head, without_value_head)
from tasks.train.objective import Objective, Policy, mean_metrics, objective_for
from tasks.train.snapshots import Snapshot, load_snapshot
from tasks.train.state import Progress, Reporter, TrainingState, final_metrics

PROTOCOL = "@thumbs "  # stdout lines the parent process parses; anything else is just logged
TIMING_KEYS = ("samples_per_s", "tokens_per_s", "elapsed", "step_time")


# --- the run's setup ---------------------------------------------------------------------

@dataclass
class Run:
    """What one training run is, fixed before its first step."""

    config: TrainConfig
    snapshot: Snapshot
    run_dir: Path
    run_id: str
    home: str | Path | None
    fingerprint: str  # what a saved state must match to be resumed (ckpt.run_fingerprint)
    device: torch.device
    ranks: Ranks  # this process among the training processes (one: rank 0 of 1)
    model_dir: Path
    reference_dir: Path  # the policy's own starting weights unless config.reference names others
    tokenizer: Any  # the policy's; it encodes everything, so the reference must share it
    started: float  # time.perf_counter() when train() was called


def open_run(config: TrainConfig, snapshot: Snapshot, run_dir: Path, *, run_id: str | None,
             home: str | Path | None, resume: bool, started: float) -> Run:
    """The process group joined (several processes), run.json written, seeds set, device
    and models resolved; refuses a state saved by another config or snapshot, and a
    reference whose tokenizer differs from the policy's."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = ckpt.run_fingerprint(config, snapshot.snapshot_id)
    if resume:  # refuse a mismatched state now, before an hour of reference log-probs
        ckpt.check_resumable(run_dir, fingerprint)
    ranks, device = Ranks.join(config.device, config.parallel, config.collective_timeout)
    if ranks.main:
        ckpt.write_json_atomically(run_dir / ckpt.RUN_INFO, {"fingerprint": fingerprint, "config": config.model_dump(),
                                                            "snapshot_id": snapshot.snapshot_id})
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    model_dir = resolve_model(config.model)
    reference_dir = resolve_model(config.reference) if config.reference else model_dir
    tokenizer = load_tokenizer(model_dir)
    if reference_dir != model_dir and load_tokenizer(reference_dir).get_vocab() != tokenizer.get_vocab():
        raise ThumbsError(f"reference {reference_dir}: its tokenizer differs from the policy's ({model_dir})")
    return Run(config, snapshot, run_dir, run_id or run_dir.name, home, fingerprint, device, ranks, model_dir,
               reference_dir, tokenizer, started)


def load_policy_of(run: Run):
    """The model to train: the run's model (with a reward head for a reward model, with a
    value head for PPO), under LoRA adapters when lora_r > 0."""
    config = run.config
    if LOSSES[config.algo].model == "reward_model":
        if config.lora_r:
            raise ThumbsError("lora_r: LoRA trains policies; a reward model (algo rm) trains in full (lora_r=0)")
        return load_reward_model(run.model_dir, run.device, run.tokenizer.pad_token_id,
                                 gradient_checkpointing=config.gradient_checkpointing)
    model = load_policy(run.model_dir, run.device, gradient_checkpointing=config.gradient_checkpointing)
    if LOSSES[config.algo].needs_value_head:
        if config.lora_r:
            raise ThumbsError(f"lora_r: {config.algo} trains a value head beside the policy, which the adapter state "
                              "does not hold; train it in full (lora_r=0)")
        return with_value_head(model)
    if not config.lora_r:
        return model
    if is_adapter_dir(run.model_dir):
        raise ThumbsError(f"model={config.model}: a LoRA checkpoint; `thumbs export {config.model} --merge` "
                          "it and train new adapters on the export")
    return with_lora(model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                     targets=config.lora_targets, qlora=config.qlora)


def load_reference(run: Run, data: TrainingData, emit: Progress, adapted=None) -> tuple[dict[str, float], dict | None]:
    """Reference log-probs of every sequence of both plans, and what the manifest says about
    them: cached, else computed now with the reference model, which is freed before
    returning, or with `adapted` (a LoRA policy) with its adapters disabled. Nothing for
    the reference-free losses. Computed by rank 0 alone, once; the other ranks wait for
    its result."""
    if not LOSSES[run.config.algo].needs_reference:
        return {}, None
    if not run.ranks.main:
        return run.ranks.from_main(None)
    config = run.config
    return run.ranks.from_main(reference_cache.for_run(
        {**data.train.sequences(), **data.eval.sequences()}, reference_dir=run.reference_dir,
        reference_name=config.reference or config.model, snapshot_id=run.snapshot.snapshot_id,
        max_length=config.max_length, tokenizer=run.tokenizer, device=run.device, home=run.home,
        text_format="csft" if config.algo == "csft" else "plain", batch_size=config.reference_batch_size,
        on_batch=lambda done, total: emit({"event": "reference", "done": done, "total": total}), adapted=adapted))


# --- one step, and an eval ---------------------------------------------------------------

@dataclass
class StepDone:
    metrics: dict[str, float]  # averaged over the step's micro-batches
    lr: float  # the step was taken with
    grad_norm: float
    examples: int
    tokens: int  # of the sequences scored, padding excluded


def train_step(state: TrainingState, objective: Objective, batch: Batches, config: TrainConfig,
               ranks: Ranks = SINGLE) -> StepDone:
    """Optimizer step state.step + 1: forward and backward over this rank's slice of each
    of the batch's micro-batches (gradients accumulated, then summed over the ranks),
    clipping, the update (objective.epochs of them, PPO's passes over the batch), the
    schedule's next lr. Metrics are averaged over the passes; grad_norm is the last
    pass's. Refuses to update on a non-finite loss or norm."""
    step, lr = state.step + 1, state.scheduler.get_last_lr()[0]
    per_micro, tokens, examples = [], 0, 0
    # PPO updates several times per batch (objective.epochs), each pass's ratios taken
    # against the first pass's log-probs, kept per micro-batch; every other loss once.
    first_pass: list[dict[str, torch.Tensor]] = [{} for _ in batch.micro_batches]
    for _ in range(objective.epochs):
        for index, micro in enumerate(batch.micro_batches):
            mine = ranks.shard(micro)
            with ranks.accumulating(state.policy.model, last=index == len(batch.micro_batches) - 1):
                loss, metrics, n_tokens = objective.loss(state.policy, mine.micro, batch.seqs, mine.share,
                                                         first_pass[index])
                if not torch.isfinite(loss):
                    raise ThumbsError(f"step {step}: the {config.algo} loss is {float(loss)} (not finite); stopped "
                                      f"before updating the weights. Lower lr (now {config.lr}) or beta, or check "
                                      "the data")
                (loss * mine.share / len(batch.micro_batches)).backward()
            per_micro.append((mine.share, {"loss": float(loss.detach()), **metrics}))
            if mine.share:
                tokens, examples = tokens + n_tokens, examples + len(mine.micro.rows)
        ranks.sync_gradients(state.policy.model)
        grad_norm = ranks.clip_gradients(state.policy.model, config.max_grad_norm)
        if not torch.isfinite(grad_norm):
            raise ThumbsError(f"step {step}: the gradient norm is {float(grad_norm)} (not finite); stopped before "
                              f"updating the weights. Lower lr (now {config.lr}) or beta, or check the data")
        state.optimizer.step()
        state.optimizer.zero_grad(set_to_none=True)
    micro_metrics, examples, tokens = ranks.combine(per_micro, examples // objective.epochs,
                                                    tokens // objective.epochs)
    state.scheduler.step()
    state.step = step
    if state.policy.device.type == "cuda":
        torch.cuda.synchronize()  # honest timings: wait for the queued kernels
    return StepDone(mean_metrics(micro_metrics), lr, float(grad_norm), examples, tokens)


def evaluate(policy: Policy, objective: Objective, batches: Batches, ranks: Ranks = SINGLE) -> dict[str, float]:
    policy.model.eval()
    results = []
    with torch.no_grad():
        for micro in batches.micro_batches:
            mine = ranks.shard(micro)
            loss, metrics, _ = objective.loss(policy, mine.micro, batches.seqs, mine.share)
            results.append((mine.share, {"loss": float(loss), **metrics}))
    policy.model.train()
    combined, _, _ = ranks.combine(results, 0, 0)
    return {f"eval_{k}": v for k, v in mean_metrics(combined).items()}


# --- the run -----------------------------------------------------------------------------

def train(config: TrainConfig, snapshot: Snapshot, run_dir: Path, *, home: str | Path | None = None,
          run_id: str | None = None, resume: bool = False, progress: Progress | None = None,
          session_steps: int | None = None) -> dict[str, Any]:
    """Train, write the checkpoint, return {checkpoint_id, path, metrics, ...}.

    resume=True continues from run_dir/state.pt when there is one. session_steps stops
    this process after that many steps (state saved, `finished` False), e.g. to fit a
    scheduler's time slot; a later resume=True call carries on.
    """
    emit, started, spec = progress or (lambda event: None), time.perf_counter(), LOSSES[config.algo]
    if snapshot.kind != ("pairs" if spec.batch == "paired" else "feedback"):
        raise ThumbsError(f"{snapshot.path}: a {snapshot.kind} snapshot cannot train {config.algo} "
                          f"({spec.batch} batches)")
    if resume and (finished := ckpt.finished_result(run_dir, home)):  # nothing to redo
        return finished
    run = open_run(config, snapshot, run_dir, run_id=run_id, home=home, resume=resume, started=started)
    emit = emit if run.ranks.main else (lambda event: None)  # one voice: rank 0 reports progress
    # Data: every micro-batch of the run, fixed by the seed; the loss, with the reference
    # log-probs of every planned sequence (computed before the policy takes the memory).
    # With LoRA and no other reference named, the reference is the policy's base (adapters
    # disabled), so the policy is loaded first; a full policy only once the reference is freed.
    data = plan_data(snapshot, config, ChatEncoder(run.tokenizer, config.max_length), spec.needs_kl_rows)
    adapted = load_policy_of(run) if config.lora_r and not config.reference else None
    objective = objective_for(config, data.trained_labels, *load_reference(run, data, emit, adapted))
    # The policy (decoder layers recomputed in the backward unless gradient_checkpointing
    # is off), AdamW and its schedule; resumed: their saved state and the metrics so far.
    model = adapted if adapted is not None else load_policy_of(run)
    policy = Policy(run.ranks.prepare(model.train()), run.device, config.packing, run.tokenizer.pad_token_id)
    state = TrainingState.start(policy, config)
    if resume:
        state.resume(run_dir, run.fingerprint, run.ranks)
    log = Reporter(run_dir / ckpt.METRICS if run.ranks.main else None, emit, config.steps, state.history)
    start_step, elapsed_before, session_start = state.step, state.elapsed, time.perf_counter()
    setup_seconds = round(session_start - started, 2)
    emit({"event": "start", "step": start_step, "steps": config.steps, "run_dir": str(run_dir),
          "setup_s": setup_seconds, "reference": objective.reference_model})

    while state.step < config.steps:
        step_start = time.perf_counter()
        done = train_step(state, objective, data.train.for_step(state.step + 1, config.grad_accum), config, run.ranks)
        step_time = time.perf_counter() - step_start
        state.elapsed = elapsed_before + time.perf_counter() - session_start
        record = {"step": state.step, **done.metrics, "lr": done.lr, "grad_norm": done.grad_norm,
                  "samples_per_s": done.examples / step_time, "tokens_per_s": done.tokens / step_time,
                  "step_time": step_time, "elapsed": state.elapsed}
        last = state.step == config.steps
        if data.eval.micro_batches and (last or (config.eval_every and state.step % config.eval_every == 0)):
            record.update(evaluate(policy, objective, data.eval, run.ranks))
        state.history.append(record)
        log.step(record)
        if not last and config.save_every and state.step % config.save_every == 0:
            state.save(run_dir, run.fingerprint, run.ranks)
        if not last and session_steps is not None and state.step - start_step >= session_steps:
            state.save(run_dir, run.fingerprint, run.ranks)
            return {"finished": False, "step": state.step, "run_dir": str(run_dir)}
    return write_checkpoint(run, state, objective, data, resumed_at_step=start_step, setup_s=setup_seconds)


def write_checkpoint(run: Run, state: TrainingState, objective: Objective, data: TrainingData, *,
                     resumed_at_step: int, setup_s: float) -> dict[str, Any]:
    """The checkpoint (weights + tokenizer + manifest, renamed into place in one go), then
    result.json; the resumable state it supersedes is removed. Rank 0 writes; every rank
    takes part in gathering sharded weights."""
    without_value_head(state.policy.model)  # PPO's critic trains beside the policy; the checkpoint is the policy
    weights = run.ranks.full_state_dict(state.policy.model)
    if not run.ranks.main:
        return {"finished": True, "rank": run.ranks.rank}
    config, model_dir, reference = run.config, run.model_dir, objective.reference_model
    checkpoint_id = ckpt.new_checkpoint_id(config.algo)
    same_as_reference = reference is not None and run.reference_dir == model_dir
    base_sha256 = reference["weights_sha256"] if same_as_reference else weights_sha256(model_dir)
    metrics = final_metrics(state.history)
    manifest = ckpt.build_manifest(
        checkpoint_id=checkpoint_id, run_id=run.run_id, config=config,
        hyperparameters={**config.model_dump(), **objective.hyperparameters},
        base_model={"name": config.model, "path": str(model_dir), "weights_sha256": base_sha256},
        reference_model=reference, snapshot=run.snapshot, rows_trained=len(data.rows_trained),
        code_version=code_version(), metrics=metrics, parent_checkpoint=ckpt.parent_checkpoint_of(model_dir),
        adapter=ckpt.adapter_of(state.policy.model),
        training={"run_dir": str(run.run_dir), "steps": config.steps, "resumed_at_step": resumed_at_step or None,
                  "examples_seen": data.train.examples, "device": str(run.device),
                  "processes": run.ranks.world, "parallel": run.ranks.parallel if run.ranks.world > 1 else None,
                  "setup_s": setup_s, "total_s": round(time.perf_counter() - run.started, 2)})
    path = ckpt.write_checkpoint(state.policy.model, run.tokenizer, manifest, run.home, state_dict=weights)
    result = {"finished": True, "checkpoint_id": checkpoint_id, "path": str(path), "metrics": metrics,
              "snapshot_id": run.snapshot.snapshot_id, "run_dir": str(run.run_dir),
              "reference_cache": reference and reference["cache"]}
    ckpt.write_json_atomically(run.run_dir / ckpt.RESULT, result)
    (run.run_dir / ckpt.STATE).unlink(missing_ok=True)  # the checkpoint supersedes it
    return result


# --- the process entry point (tasks/train/tasks.py runs this) ----------------------------------

def _say(event: dict[str, Any]) -> None:
    sys.stdout.write(PROTOCOL + json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.train.trainer", description="Train one thumbs run.")
    parser.add_argument("--config", required=True, help="TrainConfig as JSON or YAML")
    parser.add_argument("--snapshot", required=True, help="the snapshot directory")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--home", default=None)
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--session-steps", type=int, default=None)
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    from schemas.config import load_config

    hf_logging.disable_progress_bar()  # per-file load bars would drown the log; progress is ours

    try:
        config = load_config(TrainConfig, args.config)
        result = train(config, load_snapshot(args.snapshot), args.run_dir, home=args.home, run_id=args.run_id,
                       resume=args.resume, progress=_say, session_steps=args.session_steps)
    except Exception as exc:
        # One line naming the process, so that torchrun's other processes, ended
        # because this one failed, do not bury the cause; a bug in one process still
        # leaves its traceback in the log.
        distributed.ending()
        message = distributed.error_line(exc)
        if message is None:
            raise
        _say({"event": "error", "message": message})
        print(f"error: {message}", file=sys.stderr)
        return 2
    finally:
        distributed.leave()
    if distributed.is_main_process():  # the others' results are rank 0's
        _say({"event": "done", **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
