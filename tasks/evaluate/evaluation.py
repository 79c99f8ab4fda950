"""Evaluation of a checkpoint on the eval split: what the nightly gate compares.

Metric names are a contract (the gate in tasks/evaluate/promotion.py and analysts reading
`checkpoints.metrics->'eval'` rely on them); add new ones, never rename:

- eval_reward_accuracy: over the first `max_pairs` eval pairs of a `pairs`
  snapshot (by row_id), the fraction with r(x, y_chosen) > r(x, y_rejected), where
  r(x, y) = β·(log πθ(y|x) − log πref(y|x)) summed over completion tokens (the
  end-of-turn token included, as in training) and β is the checkpoint's. Ties count
  as wrong, so the reference model itself scores ~0, not 0.5.
- eval_reward_margin: mean of r_chosen − r_rejected over those pairs.
- eval_rewards_chosen, eval_rewards_rejected: mean r of each side; eval_pairs: how many.
- kl_to_reference: Monte-Carlo KL(πθ ‖ πref) in nats per completion: the mean over
  samples y ~ πθ(·|x) of Σ_t [log πθ(y_t|x, y<t) − log πref(y_t|x, y<t)], with
  `kl_samples` replies sampled per prompt from the full softmax (temperature 1, no
  top-k/top-p: transformers' generate defaults to top_k=50, a different distribution
  that would bias the estimate), each prompt seeded by (seed, its position) so a
  prompt's samples do not depend on which other prompts are evaluated. Greedy
  replies are the policy's mode, not samples from it, and would bias it too. Replies stop at the
  end-of-turn token or after `max_new_tokens`: the estimate is the exact KL of
  that truncated reply distribution. Unbiased but noisy, and a single value can be
  negative: kl_to_reference_stderr is its standard error; kl_samples the count.
- mean_generated_length: mean tokens of the greedy reply (end-of-turn token
  excluded) to the first `generation_prompts` distinct eval prompts (by row_id);
  generation_truncated_fraction: the share that hit `max_new_tokens` unfinished.
- eval_wall_time_s: seconds this evaluation took.

Intervals: every mean above (accuracy, margin, rewards, KL, length, truncated fraction) is
also stored as m_low, m_high, its seeded 95% bootstrap interval, and m_n, how many samples
it was measured on (tasks/evaluate/intervals.py). Pairs resample by prompt (pairs sharing a
prompt move together), KL samples by prompt, replies one by one. `per_pair` in the result
keeps each pair's rewards, so the gate can compare two checkpoints pair by pair.
max_pairs defaults to 1000: the whole eval split up to that cap, enough that a 0.05
difference in accuracy lies outside the noise of a paired comparison.

Two evaluations are comparable only when `same_protocol` says so: the same eval
snapshot id and the same settings (pairs, prompts, tokens, samples, seed, max_length).

Memory: the policy is loaded, scores the pairs, generates and scores its own
samples, and is freed; only then does the reference run, and only over what the
reference cache lacks (tasks/train/reference_cache.py: the eval pairs are keyed as the
trainer keys them, so a DPO run's cache on the same snapshot is reused; samples are
keyed by their token ids). So at most one model is in memory at any time.
"""
from __future__ import annotations

import gc
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from schemas.nightly import EvaluationSettings
from schemas.train import TrainConfig
from tasks.train import reference_cache
from tasks.train.batching import ChatEncoder, Encoded, truncate
from tasks.train.checkpoints import MANIFEST, read_manifest
from tasks.train.models import autocast_context, load_policy, load_tokenizer, pick_device, resolve_model, weights_sha256
from tasks.common.settings import ThumbsError
from tasks.evaluate.intervals import bootstrap_mean
from tasks.evaluate.reward_model import Judge, evaluate_reward_model, win_rate
from tasks.train.algorithms import LOSSES
from tasks.train.snapshots import Snapshot

# Means over eval samples: each also stored as m_low, m_high (its seeded 95% bootstrap
# interval, tasks/evaluate/intervals.py) and m_n (the samples it was measured on).
INTERVAL_METRICS = ("eval_reward_accuracy", "eval_reward_margin", "eval_rewards_chosen", "eval_rewards_rejected",
                    "kl_to_reference", "mean_generated_length", "generation_truncated_fraction")
METRIC_NAMES = (
    "eval_reward_accuracy", "eval_reward_margin", "eval_rewards_chosen", "eval_rewards_rejected", "eval_pairs",
    "kl_to_reference", "kl_to_reference_stderr", "kl_samples", "mean_generated_length",
    "generation_truncated_fraction", "generation_prompts", "eval_wall_time_s",
    *(f"{name}_{part}" for name in INTERVAL_METRICS for part in ("low", "high", "n")),
)
# CPU-sized defaults: SmolLM2-135M evaluates in about a minute beside a nightly training run.
DEFAULTS = EvaluationSettings().model_dump()
Progress = Callable[[str], None]


# --- what is evaluated, against what -------------------------------------------------------

def checkpoint_info(checkpoint_dir: Path) -> dict[str, Any]:
    """The manifest; for a plain model directory (a base model), a stand-in that makes
    the model its own reference, so its evaluation is the baseline (KL 0, rewards 0)."""
    if (checkpoint_dir / MANIFEST).is_file():
        return read_manifest(checkpoint_dir)
    defaults = TrainConfig.model_fields
    return {"checkpoint_id": checkpoint_dir.name, "algo": None, "reference_model": None,
            "base_model": {"name": str(checkpoint_dir), "path": str(checkpoint_dir)},
            "hyperparameters": {"beta": defaults["beta"].default, "max_length": defaults["max_length"].default,
                                "reference_batch_size": defaults["reference_batch_size"].default, "sources": None}}


def reference_of(info: dict[str, Any], checkpoint_dir: Path) -> tuple[Path, str | None]:
    """(reference directory, the weights sha256 training used or None). Reference-free
    algorithms (SFT, CSFT, SLiC) are measured against the model they started from."""
    if info["algo"] is None:
        return checkpoint_dir, None
    used = info.get("reference_model") or info["base_model"]
    path = Path(used.get("path") or "")
    if not (path / "config.json").is_file():  # moved model cache: a preset name still resolves
        path = resolve_model(used["name"])
    return path, used.get("weights_sha256")


# --- the fixed eval subsets -----------------------------------------------------------------

def eval_pairs(snapshot: Snapshot, max_pairs: int) -> list[dict[str, Any]]:
    """The first `max_pairs` eval pairs by row_id: every checkpoint meets the same ones."""
    if snapshot.kind != "pairs":
        raise ThumbsError(f"{snapshot.path}: a {snapshot.kind} snapshot; evaluation needs a pairs snapshot")
    rows = sorted(snapshot.split("eval").to_pylist(), key=lambda r: r["row_id"])
    if not rows:
        raise ThumbsError(f"{snapshot.path}: the eval split has no pairs; binarize with a larger eval_fraction")
    return rows[:max_pairs]


def eval_prompts(snapshot: Snapshot, count: int) -> list[list[dict]]:
    """The first `count` distinct eval prompts by row_id."""
    prompts, seen = [], set()
    for row in sorted(snapshot.split("eval").to_pylist(), key=lambda r: r["row_id"]):
        key = json.dumps(row["prompt"], sort_keys=True)
        if key not in seen and len(prompts) < count:
            seen.add(key)
            prompts.append(row["prompt"])
    return prompts


# --- scoring and sampling -------------------------------------------------------------------

def generate(model, prompt: list[int], *, device: torch.device, max_new_tokens: int, eos_token_id: int,
             samples: int, seed: int) -> tuple[list[int], list[list[int]]]:
    """(the greedy reply, `samples` replies drawn from softmax(logits)), each up to and
    including the end-of-turn token.

    Our own decoding loop rather than model.generate: the prompt is run once and its KV
    cache copied into 1 + samples rows that decode together (generate would run the
    prompt again per call and per sample), and sampling draws from the raw softmax with
    a seeded generator, free of generate's defaults (top_k=50) and of the global RNG.
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    rows = 1 + samples
    steps: list[torch.Tensor] = []
    with torch.no_grad(), autocast_context(device):
        out = model(input_ids=torch.tensor([prompt], device=device), use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(rows)
        logits = out.logits[:, -1].float().expand(rows, -1)
        done = torch.zeros(rows, dtype=torch.bool, device=device)
        for _ in range(max_new_tokens):
            drawn = torch.multinomial(logits[1:].softmax(-1), 1, generator=generator).squeeze(-1)
            token = torch.where(done, eos_token_id, torch.cat([logits[:1].argmax(-1), drawn]))
            steps.append(token)
            done |= token == eos_token_id
            if bool(done.all()):
                break
            # Every row has the same length (no padding), so positions follow from the cache.
            out = model(input_ids=token[:, None], past_key_values=cache, use_cache=True, logits_to_keep=1)
            logits = out.logits[:, -1].float()
    replies = []
    for row in torch.stack(steps, 1).tolist():
        replies.append(row[: row.index(eos_token_id) + 1] if eos_token_id in row else row)
    return replies[0], replies[1:]


def sample_key(encoded: Encoded) -> str:
    """Cache key of a sampled sequence: its tokens say everything the reference needs."""
    digest = hashlib.sha256(json.dumps([encoded.prompt_length, encoded.input_ids]).encode()).hexdigest()
    return f"sample:{digest[:32]}"


def prompt_groups(rows: list[dict[str, Any]]) -> list[int]:
    """For each row, the index of its prompt among the distinct prompts: the unit the
    bootstrap resamples, since pairs sharing a prompt are not independent."""
    seen: dict[str, int] = {}
    return [seen.setdefault(json.dumps(row["prompt"], sort_keys=True), len(seen)) for row in rows]


def pair_metrics(chosen: list[float], rejected: list[float], groups: list[int] | None = None,
                 seed: int = 0) -> dict[str, float]:
    """chosen/rejected: rewards (β-scaled implicit ones, or a reward model's), one per
    pair; groups: each pair's prompt (None = every pair its own). Ties count as wrong."""
    metrics: dict[str, float] = {"eval_pairs": len(chosen)}
    for name, values in (("eval_reward_accuracy", [float(c > r) for c, r in zip(chosen, rejected)]),
                         ("eval_reward_margin", [c - r for c, r in zip(chosen, rejected)]),
                         ("eval_rewards_chosen", chosen), ("eval_rewards_rejected", rejected)):
        metrics.update(bootstrap_mean(values, groups, seed=seed).named(name))
    return metrics


def per_pair_record(rows: list[dict[str, Any]], chosen: list[float], rejected: list[float]) -> dict[str, list]:
    """What the gate needs to compare two checkpoints pair by pair (a paired bootstrap):
    each eval pair's id, prompt group and both rewards."""
    return {"row_ids": [row["row_id"] for row in rows], "groups": prompt_groups(rows),
            "chosen": chosen, "rejected": rejected}


def kl_estimate(policy_logps: list[float], reference_logps: list[float]) -> tuple[float, float]:
    """(mean of log πθ(y|x) − log πref(y|x) over y ~ πθ, its standard error)."""
    diffs = [p - r for p, r in zip(policy_logps, reference_logps)]
    mean = sum(diffs) / len(diffs)
    variance = sum((d - mean) ** 2 for d in diffs) / max(1, len(diffs) - 1)
    return mean, math.sqrt(variance / len(diffs))


# --- the evaluation -------------------------------------------------------------------------

def evaluate_checkpoint(checkpoint_dir: str | Path, *, home: str | Path | None, eval_snapshot: Snapshot,
                        max_pairs: int = DEFAULTS["max_pairs"],
                        generation_prompts: int = DEFAULTS["generation_prompts"],
                        max_new_tokens: int = DEFAULTS["max_new_tokens"], kl_samples: int = DEFAULTS["kl_samples"],
                        seed: int = DEFAULTS["seed"], device: str = "auto", batch_size: int | None = None,
                        max_length: int | None = None, progress: Progress | None = None,
                        judge: str | Path | None = DEFAULTS["judge"]) -> dict[str, Any]:
    """{checkpoint_id, metrics (METRIC_NAMES), eval_snapshot_id, settings, reference, generations, per_pair}.

    max_length defaults to the checkpoint's training max_length; set it to evaluate a base
    model on the same truncation as a checkpoint trained from it. judge: a reward-model
    checkpoint directory; the greedy replies of the checkpoint and of its reference are
    scored by it, adding win_rate_vs_reference (tasks/evaluate/reward_model.py). A
    reward-model checkpoint itself is evaluated by its pairwise accuracy alone."""
    say = progress or (lambda message: None)
    started = time.perf_counter()
    checkpoint_dir = Path(checkpoint_dir)
    info = checkpoint_info(checkpoint_dir)
    hyper = info["hyperparameters"]
    beta, max_length = float(hyper["beta"]), int(max_length or hyper["max_length"])
    batch_size = batch_size or int(hyper.get("reference_batch_size") or 16)
    if min(max_pairs, generation_prompts, max_new_tokens, kl_samples, batch_size) < 1:
        raise ThumbsError("max_pairs, generation_prompts, max_new_tokens, kl_samples, batch_size: must be >= 1")
    target = pick_device(device)
    if info["algo"] is not None and LOSSES[info["algo"]].model == "reward_model":
        return evaluate_reward_model(checkpoint_dir, info, eval_snapshot, max_pairs=max_pairs, seed=seed,
                                     device=target, batch_size=batch_size, max_length=max_length)
    reference_dir, trained_sha = reference_of(info, checkpoint_dir)
    reference_sha = weights_sha256(reference_dir)
    if trained_sha and reference_sha != trained_sha:
        raise ThumbsError(f"{reference_dir}: the reference weights changed since {info['checkpoint_id']} was "
                          "trained (sha256 differs from its manifest); KL and rewards would measure another model")

    tokenizer = load_tokenizer(checkpoint_dir)
    encoder = ChatEncoder(tokenizer, max_length)
    pairs = eval_pairs(eval_snapshot, max_pairs)
    pair_seqs = {f"{row['row_id']}:{row['row_id']}:{side}": encoder.encode(row["prompt"], row[side])
                 for row in pairs for side in ("chosen", "rejected")}
    prompt_messages = eval_prompts(eval_snapshot, generation_prompts)
    prompts = [truncate(encoder.prompt_ids(p), [], max(1, max_length - max_new_tokens)).input_ids
               for p in prompt_messages]
    eos = tokenizer.eos_token_id

    say(f"policy: {len(pair_seqs)} pair sequences, {len(prompts)} prompts x (1 greedy + {kl_samples} samples)")
    model = load_policy(checkpoint_dir, target)
    model.eval()
    model.requires_grad_(False)
    try:
        greedy, sampled = [], []
        for i, prompt in enumerate(prompts):  # seeded per prompt: its replies depend on nothing else
            best, drawn = generate(model, prompt, device=target, max_new_tokens=max_new_tokens, eos_token_id=eos,
                                   samples=kl_samples, seed=seed * 1_000_003 + i)
            greedy.append(best)
            sampled += [Encoded(prompt + reply, len(prompt)) for reply in drawn]
        say(f"generated in {time.perf_counter() - started:.1f}s; scoring {len(pair_seqs) + len(sampled)} sequences")
        sample_keys = [sample_key(s) for s in sampled]
        needed = {**pair_seqs, **dict(zip(sample_keys, sampled))}
        # Scored in the reference cache's packed forwards: the same sequences in the same
        # packs, so a model scored against itself gives 0 exactly.
        policy = reference_cache.score(model, needed, device=target, batch_size=batch_size)
    finally:
        del model  # freed before the reference is loaded: never two models at once
        gc.collect()
        if target.type == "cuda":
            torch.cuda.empty_cache()

    say(f"policy done at {time.perf_counter() - started:.1f}s; reference log-probs (cached where known)")
    key, material = reference_cache.cache_key(
        reference_sha256=reference_sha, snapshot_id=eval_snapshot.snapshot_id, max_length=max_length,
        tokenizer=reference_cache.tokenizer_digest(tokenizer), text_format="plain",
        precision=reference_cache.precision_of(target))
    cached = reference_cache.reference_logps(needed, reference_dir=reference_dir, key=key, material=material,
                                             device=target, batch_size=batch_size, home=home)
    reference = cached.logps

    def reward(k: str) -> float:
        return beta * (policy[k] - reference[k])

    chosen = [reward(f"{r['row_id']}:{r['row_id']}:chosen") for r in pairs]
    rejected = [reward(f"{r['row_id']}:{r['row_id']}:rejected") for r in pairs]
    metrics: dict[str, Any] = pair_metrics(chosen, rejected, prompt_groups(pairs), seed)
    policy_logps, reference_logps = [policy[k] for k in sample_keys], [reference[k] for k in sample_keys]
    kl, kl_stderr = kl_estimate(policy_logps, reference_logps)
    sample_prompt = [i // kl_samples for i in range(len(sample_keys))]  # a prompt's samples resample together
    metrics.update(bootstrap_mean([p - r for p, r in zip(policy_logps, reference_logps)], sample_prompt,
                                  seed=seed).named("kl_to_reference"))
    lengths = [len(reply) - (reply[-1:] == [eos]) for reply in greedy]
    metrics.update(bootstrap_mean(lengths, seed=seed).named("mean_generated_length"))
    metrics.update(bootstrap_mean([float(reply[-1:] != [eos]) for reply in greedy], seed=seed)
                   .named("generation_truncated_fraction"))
    metrics.update(kl_to_reference=kl, kl_to_reference_stderr=kl_stderr, kl_samples=len(sample_keys),
                   generation_prompts=len(prompts), eval_wall_time_s=time.perf_counter() - started)
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise ThumbsError(f"{checkpoint_dir}: evaluation gave non-finite {', '.join(bad)}; check the weights")
    result = {
        "checkpoint_id": info["checkpoint_id"], "checkpoint_path": str(checkpoint_dir), "metrics": metrics,
        "eval_snapshot_id": eval_snapshot.snapshot_id,
        "settings": {"max_pairs": max_pairs, "generation_prompts": generation_prompts, "max_new_tokens": max_new_tokens,
                     "kl_samples": kl_samples, "seed": seed, "beta": beta, "max_length": max_length},
        "reference": {"path": str(reference_dir), "weights_sha256": reference_sha, "cache_key": key,
                      "computed": cached.computed},
        "generations": [{"prompt": messages[-1]["content"], "reply": tokenizer.decode(reply, skip_special_tokens=True)}
                        for messages, reply in zip(prompt_messages, greedy)],
        "per_pair": per_pair_record(pairs, chosen, rejected),
    }
    if judge:
        say(f"judge {judge}: the reference's greedy replies, then both sides scored")
        result["metrics"].update(judged_win_rate(result, prompt_messages, prompts, reference_dir, Path(judge),
                                                 device=target, max_new_tokens=max_new_tokens, eos=eos, seed=seed,
                                                 max_length=max_length, batch_size=batch_size))
        result["settings"]["judge"] = str(judge)
    return result


def judged_win_rate(result: dict[str, Any], prompt_messages: list[list[dict]], prompts: list[list[int]],
                    reference_dir: Path, judge_dir: Path, *, device: torch.device, max_new_tokens: int, eos: int,
                    seed: int, max_length: int, batch_size: int) -> dict[str, float]:
    """win_rate_vs_reference: the checkpoint's greedy reply against its reference's on each
    generation prompt, judged by a reward model; each generation gains both replies' scores.
    One model in memory at a time: the reference generates and is freed, then the judge."""
    tokenizer = load_tokenizer(reference_dir)
    model = load_policy(reference_dir, device).eval()
    try:  # the same decoding loop and per-prompt seed as the checkpoint's replies
        replies = [generate(model, prompt, device=device, max_new_tokens=max_new_tokens, eos_token_id=eos, samples=1,
                            seed=seed * 1_000_003 + i)[0] for i, prompt in enumerate(prompts)]
    finally:
        del model
        gc.collect()
    baseline = [tokenizer.decode(reply, skip_special_tokens=True) for reply in replies]
    judge = Judge(judge_dir, device, max_length=max_length, batch_size=batch_size)
    try:
        candidate_scores = judge.scores(prompt_messages, [g["reply"] for g in result["generations"]])
        baseline_scores = judge.scores(prompt_messages, baseline)
    finally:
        judge.close()
    for generation, reply, mine, theirs in zip(result["generations"], baseline, candidate_scores, baseline_scores):
        generation.update(reference_reply=reply, judge_score=mine, reference_judge_score=theirs)
    return win_rate(candidate_scores, baseline_scores, seed)


def same_protocol(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two evaluations (evaluate_checkpoint results, or the `eval` entries
    recorded in checkpoints.metrics) measured the same pairs and prompts the same way.
    β is not compared: it belongs to each checkpoint."""
    fields = ("max_pairs", "generation_prompts", "max_new_tokens", "kl_samples", "seed", "max_length")
    settings_a, settings_b = a.get("settings") or {}, b.get("settings") or {}
    if a.get("eval_snapshot_id") is None or a.get("eval_snapshot_id") != b.get("eval_snapshot_id"):
        return False
    return all(settings_a.get(f) == settings_b.get(f) for f in fields)
