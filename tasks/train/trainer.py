"""The training loop. Read `train` top to bottom: config, rows, tokenization, batch
plan, reference log-probs, policy and optimizer, then one loop with eval, logging
and resumable state inline, then the checkpoint.

Algorithms differ only in which sequences a batch holds and which loss
LOSSES[algo] is called with:
- unpaired (KTO, SFT, CSFT; a `feedback` snapshot): each row's (x_i, y_i), and for
  KTO also the KL rows (x_i, y_m(i)) with m = mismatched_indices, so no completion
  is ever scored against its own prompt there;
- paired (DPO, IPO, SLiC; a `pairs` snapshot): each row's chosen and rejected.
CSFT writes the label into the text: CSFT_CONTROL_TOKENS[label] and a space are
prepended to the completion, so the control token is the first token(s) of the
assistant turn; at inference, start the assistant reply with "<|good|> ".

Run in its own process by flows/train.py: `python -m tasks.train.trainer --config ...`
prints one JSON line per event (prefixed PROTOCOL) on stdout; see `main`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from schemas.train import TrainConfig
from tasks.train import checkpoints as ckpt
from tasks.train import reference_cache
from tasks.train.batching import ChatEncoder, Encoded, bucket_batches, pack, pad
from tasks.train.logprobs import sequence_logps
from tasks.train.losses import CSFT_CONTROL_TOKENS, LOSSES, LossSpec, kto_lambdas, mismatched_indices
from tasks.train.models import autocast_context, load_policy, load_tokenizer, pick_device, resolve_model, weights_sha256
from tasks.common.settings import ThumbsError, code_version
from tasks.train.snapshots import Snapshot, load_snapshot

PROTOCOL = "@thumbs "  # stdout lines the parent process parses; anything else is just logged
TIMING_KEYS = ("samples_per_s", "tokens_per_s", "elapsed", "step_time")
SUMMARY_KEYS = ("loss", "reward_accuracy", "reward_margin", "rewards_chosen", "rewards_rejected", "kl", "sft_nll")
Progress = Callable[[dict[str, Any]], None]


# --- rows, sequences and the batch plan --------------------------------------------------

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


# --- forward passes and the loss ---------------------------------------------------------

def distributed_kl_mean(local: torch.Tensor) -> torch.Tensor:
    """KTO's z0 averages the KL estimate over every device's batch (design.md); no-op alone."""
    if not (dist.is_available() and dist.is_initialized()):
        return local
    reduced = local.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)  # AVG is NCCL-only; SUM / size works on gloo too
    return reduced / dist.get_world_size()


def policy_logps(model, encoded: list[Encoded], device: torch.device, packing: bool,
                 pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch = pack(encoded, share_prompts=True) if packing else pad(encoded, pad_token_id)
    with autocast_context(device):
        return sequence_logps(model, batch.to(device))


def loss_inputs(model, micro: MicroBatch, seqs: Sequences, spec: LossSpec, reference: dict[str, float],
                hyper: dict[str, Any], device: torch.device, packing: bool, pad_token_id: int) -> tuple[dict, int]:
    """The keyword arguments LOSSES[algo] asks for, and the tokens forwarded to get them."""
    fields = list(seqs.rows.replies)
    main = micro.main_sequences(fields)
    encoded = [seqs.encoded(s) for s in main]
    logps, lengths = policy_logps(model, encoded, device, packing, pad_token_id)
    tokens = sum(len(e.input_ids) for e in encoded)

    def ref(sequences: list[Seq]) -> torch.Tensor:
        return torch.tensor([reference[seqs.key(s)] for s in sequences], dtype=torch.float32, device=device)

    inputs: dict[str, Any] = dict(hyper)
    if spec.batch == "paired":
        n = len(micro.rows)
        inputs.update(policy_chosen_logps=logps[:n], policy_rejected_logps=logps[n:],
                      chosen_lengths=lengths[:n], rejected_lengths=lengths[n:])
        if spec.needs_reference:
            inputs.update(reference_chosen_logps=ref(main[:n]), reference_rejected_logps=ref(main[n:]))
        return inputs, tokens
    inputs.update(policy_logps=logps, lengths=lengths, desirable=torch.tensor(
        [seqs.rows.labels[r] for r in micro.rows], dtype=torch.bool, device=device))
    if spec.needs_reference:
        inputs["reference_logps"] = ref(main)
    if spec.needs_kl_rows:
        kl = micro.kl_sequences()
        kl_encoded = [seqs.encoded(s) for s in kl]
        # z0 is detached in the loss, so the KL rows need no graph: a forward-only pass.
        with torch.no_grad():
            inputs["kl_policy_logps"], _ = policy_logps(model, kl_encoded, device, packing, pad_token_id)
        inputs["kl_reference_logps"] = ref(kl)
        tokens += sum(len(e.input_ids) for e in kl_encoded)
    return inputs, tokens


def mean_metrics(items: list[dict[str, float]]) -> dict[str, float]:
    """Average each metric over the micro-batches that report it (a class-specific metric
    is absent from batches without that class, and must not count as 0)."""
    keys = sorted({k for item in items for k in item})
    return {k: sum(i[k] for i in items if k in i) / sum(1 for i in items if k in i) for k in keys}


@dataclass
class StepDone:
    metrics: dict[str, float]  # averaged over the step's micro-batches
    grad_norm: float
    examples: int
    tokens: int  # of the sequences scored, padding excluded


def train_step(model, optimizer: torch.optim.Optimizer, micro_batches: list[MicroBatch], seqs: Sequences,
               spec: LossSpec, reference: dict[str, float], hyper: dict[str, Any], config: TrainConfig,
               device: torch.device, pad_token_id: int, step: int) -> StepDone:
    """One optimizer step: forward and backward over `micro_batches` (gradients
    accumulated), clipping, the update. Refuses to update on a non-finite loss or norm."""
    micro_metrics, tokens, examples = [], 0, 0
    for micro in micro_batches:
        inputs, n_tokens = loss_inputs(model, micro, seqs, spec, reference, hyper, device, config.packing,
                                       pad_token_id)
        loss, metrics = spec.call(inputs)
        if not torch.isfinite(loss):
            raise ThumbsError(f"step {step}: the {config.algo} loss is {float(loss)} (not finite); stopped "
                              f"before updating the weights. Lower lr (now {config.lr}) or beta, or check the data")
        (loss / len(micro_batches)).backward()
        micro_metrics.append({"loss": float(loss.detach()), **metrics})
        tokens, examples = tokens + n_tokens, examples + len(micro.rows)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    if not torch.isfinite(grad_norm):
        raise ThumbsError(f"step {step}: the gradient norm is {float(grad_norm)} (not finite); stopped before "
                          f"updating the weights. Lower lr (now {config.lr}) or beta, or check the data")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()  # honest timings: wait for the queued kernels
    return StepDone(mean_metrics(micro_metrics), float(grad_norm), examples, tokens)


def evaluate(model, plan: list[MicroBatch], seqs: Sequences, spec: LossSpec, reference: dict[str, float],
             hyper: dict[str, Any], device: torch.device, packing: bool, pad_token_id: int) -> dict[str, float]:
    model.eval()
    results = []
    with torch.no_grad():
        for micro in plan:
            inputs, _ = loss_inputs(model, micro, seqs, spec, reference, hyper, device, packing, pad_token_id)
            loss, metrics = spec.call(inputs)
            results.append({"loss": float(loss), **metrics})
    model.train()
    return {f"eval_{k}": v for k, v in mean_metrics(results).items()}


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
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    # Fused: one kernel per parameter group instead of a loop of small ops (CPU and CUDA).
    return torch.optim.AdamW(groups, lr=config.lr, fused=device.type in ("cpu", "cuda"))


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


# --- the run -----------------------------------------------------------------------------

def train(config: TrainConfig, snapshot: Snapshot, run_dir: Path, *, home: str | Path | None = None,
          run_id: str | None = None, resume: bool = False, progress: Progress | None = None,
          session_steps: int | None = None) -> dict[str, Any]:
    """Train, write the checkpoint, return {checkpoint_id, path, metrics, ...}.

    resume=True continues from run_dir/state.pt when there is one. session_steps stops
    this process after that many steps (state saved, `finished` False), e.g. to fit a
    scheduler's time slot; a later resume=True call carries on.
    """
    emit = progress or (lambda event: None)
    started = time.perf_counter()
    spec = LOSSES[config.algo]
    if snapshot.kind != ("pairs" if spec.batch == "paired" else "feedback"):
        raise ThumbsError(f"{snapshot.path}: a {snapshot.kind} snapshot cannot train {config.algo} "
                          f"({spec.batch} batches)")
    if resume and (finished := ckpt.finished_result(run_dir, home)):  # nothing to redo
        return finished
    run_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = ckpt.run_fingerprint(config, snapshot.snapshot_id)
    if resume:  # refuse a mismatched state now, before an hour of reference log-probs
        ckpt.check_resumable(run_dir, fingerprint)
    ckpt.write_json_atomically(run_dir / ckpt.RUN_INFO, {"fingerprint": fingerprint, "config": config.model_dump(),
                                                        "snapshot_id": snapshot.snapshot_id})
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True

    # Models and tokenizer. The policy's tokenizer encodes everything, so the reference must share it.
    model_dir = resolve_model(config.model)
    reference_dir = resolve_model(config.reference) if config.reference else model_dir
    tokenizer = load_tokenizer(model_dir)
    if reference_dir != model_dir and load_tokenizer(reference_dir).get_vocab() != tokenizer.get_vocab():
        raise ThumbsError(f"reference {reference_dir}: its tokenizer differs from the policy's ({model_dir})")

    # Rows and tokenization.
    train_rows, eval_rows = read_rows(snapshot, "train", config.algo), read_rows(snapshot, "eval", config.algo)
    train_seqs = Sequences(train_rows, ChatEncoder(tokenizer, config.max_length))
    eval_seqs = Sequences(eval_rows, ChatEncoder(tokenizer, config.max_length))
    used = list(range(len(train_rows.row_ids)))
    if config.max_rows is not None and config.max_rows < len(used):
        used = sorted(random.Random(config.seed).sample(used, config.max_rows))
    if len(used) < (2 if spec.needs_kl_rows else 1):
        raise ThumbsError(f"{snapshot.path}: {len(used)} train row(s): too few to train {config.algo}")

    # The batch plan: every micro-batch of the run, fixed by the seed before any training.
    train_plan = plan_batches(used, [train_seqs.length(r) for r in used], batch_size=config.batch_size,
                              n_batches=config.steps * config.grad_accum, seed=config.seed,
                              kl_rows=spec.needs_kl_rows)
    eval_used = sorted(random.Random(config.seed + 1).sample(
        range(len(eval_rows.row_ids)), min(len(eval_rows.row_ids), config.eval_batches * config.batch_size)))
    eval_plan = plan_batches(eval_used, [eval_seqs.length(r) for r in eval_used], batch_size=config.batch_size,
                             n_batches=min(config.eval_batches, math.ceil(len(eval_used) / config.batch_size)),
                             seed=config.seed + 1,
                             kl_rows=spec.needs_kl_rows) if len(eval_used) >= 2 else []

    hyper: dict[str, Any] = {"beta": config.beta, "kl_reduce": distributed_kl_mean}
    if config.algo == "kto":
        labels = [train_rows.labels[r] for r in used]
        auto_d, auto_u = kto_lambdas(sum(labels), len(labels) - sum(labels))
        hyper.update(lambda_d=config.lambda_d or auto_d, lambda_u=config.lambda_u or auto_u)
    if config.algo == "dpo" and config.label_smoothing:
        # dpo_loss takes label_smoothing as a keyword the registry does not pass by default.
        spec = dataclasses.replace(spec, inputs=spec.inputs + ("label_smoothing",))
        hyper["label_smoothing"] = config.label_smoothing

    # Reference log-probs for every sequence of both plans: cached, else computed now
    # with the reference model, which is freed before the policy is loaded.
    reference: dict[str, float] = {}
    reference_info: dict[str, Any] | None = None
    if spec.needs_reference:
        needed = {seqs.key(seq): seqs.encoded(seq) for seqs, plan in ((train_seqs, train_plan), (eval_seqs, eval_plan))
                  for micro in plan for seq in micro.main_sequences(list(seqs.rows.replies)) + micro.kl_sequences()}
        reference, reference_info = reference_cache.for_run(
            needed, reference_dir=reference_dir, reference_name=config.reference or config.model,
            snapshot_id=snapshot.snapshot_id, max_length=config.max_length, tokenizer=tokenizer,
            text_format="csft" if config.algo == "csft" else "plain", device=device,
            batch_size=config.reference_batch_size, home=home,
            on_batch=lambda done, total: emit({"event": "reference", "done": done, "total": total}))

    # Policy (decoder layers recomputed in the backward unless gradient_checkpointing is off),
    # optimizer (fused AdamW), warmup + cosine schedule.
    model = load_policy(model_dir, device, gradient_checkpointing=config.gradient_checkpointing)
    model.train()
    optimizer = make_optimizer(model, config, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))

    # Resume: weights, optimizer moments, schedule position, RNG and the metrics so far.
    history: list[dict[str, Any]] = []
    start_step, elapsed_before = 0, 0.0
    state = ckpt.load_state(run_dir, fingerprint) if resume else None
    if state is not None:
        ckpt.restore_training_state(state, model, optimizer, scheduler, device)
        history, start_step, elapsed_before = state["metrics"], state["step"], state["elapsed"]
    metrics_file = run_dir / ckpt.METRICS
    metrics_file.write_text("".join(json.dumps(r) + "\n" for r in history))  # drop steps after the state
    setup_seconds = round(time.perf_counter() - started, 2)
    emit({"event": "start", "step": start_step, "steps": config.steps, "run_dir": str(run_dir),
          "setup_s": setup_seconds, "reference": reference_info})

    def save(step: int, elapsed: float) -> None:
        ckpt.save_state(run_dir, ckpt.capture_training_state(
            fingerprint=fingerprint, step=step, elapsed=elapsed, metrics=history, model=model,
            optimizer=optimizer, scheduler=scheduler, device=device))

    pad_id = tokenizer.pad_token_id
    session_start = time.perf_counter()
    for step in range(start_step + 1, config.steps + 1):
        step_start = time.perf_counter()
        lr = scheduler.get_last_lr()[0]
        done = train_step(model, optimizer, train_plan[(step - 1) * config.grad_accum: step * config.grad_accum],
                          train_seqs, spec, reference, hyper, config, device, pad_id, step)
        scheduler.step()
        step_time = time.perf_counter() - step_start
        elapsed = elapsed_before + time.perf_counter() - session_start
        record = {"step": step, **done.metrics, "lr": lr, "grad_norm": done.grad_norm,
                  "samples_per_s": done.examples / step_time, "tokens_per_s": done.tokens / step_time,
                  "step_time": step_time, "elapsed": elapsed}
        if eval_plan and ((config.eval_every and step % config.eval_every == 0) or step == config.steps):
            record.update(evaluate(model, eval_plan, eval_seqs, spec, reference, hyper, device, config.packing,
                                   pad_id))
        history.append(record)
        with open(metrics_file, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        emit({"event": "step", "steps": config.steps, **record})
        if step < config.steps and config.save_every and step % config.save_every == 0:
            save(step, elapsed)
        if session_steps is not None and step - start_step >= session_steps and step < config.steps:
            save(step, elapsed)
            return {"finished": False, "step": step, "run_dir": str(run_dir)}

    # The checkpoint: weights + tokenizer + manifest, renamed into place in one go.
    checkpoint_id = ckpt.new_checkpoint_id(config.algo)
    same_as_reference = reference_info is not None and reference_dir == model_dir
    base_sha256 = reference_info["weights_sha256"] if same_as_reference else weights_sha256(model_dir)
    hyperparameters = {**config.model_dump(), **{k: v for k, v in hyper.items() if k != "kl_reduce"}}
    metrics = final_metrics(history)
    manifest = ckpt.build_manifest(
        checkpoint_id=checkpoint_id, run_id=run_id or run_dir.name, config=config, hyperparameters=hyperparameters,
        base_model={"name": config.model, "path": str(model_dir), "weights_sha256": base_sha256},
        reference_model=reference_info, snapshot=snapshot, rows_trained=len(used), code_version=code_version(),
        metrics=metrics, parent_checkpoint=ckpt.parent_checkpoint_of(model_dir),
        training={"run_dir": str(run_dir), "steps": config.steps, "resumed_at_step": start_step or None,
                  "examples_seen": sum(len(m.rows) for m in train_plan), "device": str(device),
                  "setup_s": setup_seconds, "total_s": round(time.perf_counter() - started, 2)})
    path = ckpt.write_checkpoint(model, tokenizer, manifest, home)
    result = {"finished": True, "checkpoint_id": checkpoint_id, "path": str(path), "metrics": metrics,
              "snapshot_id": snapshot.snapshot_id, "run_dir": str(run_dir),
              "reference_cache": reference_info and reference_info["cache"]}
    ckpt.write_json_atomically(run_dir / ckpt.RESULT, result)
    (run_dir / ckpt.STATE).unlink(missing_ok=True)  # the checkpoint supersedes it
    return result


# --- the process entry point (flows/train.py runs this) ----------------------------------

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
    except ThumbsError as exc:
        _say({"event": "error", "message": str(exc)})
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _say({"event": "done", **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
