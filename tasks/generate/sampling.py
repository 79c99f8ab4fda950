"""Batched, seeded sampling from a causal LM: many prompts, one KV cache per batch.

Used wherever thumbs makes text with a model: synthetic sources (tasks/sources/rlcd.py)
and win rates. Our own decoding loop rather than model.generate because generate has
one RNG for the whole batch: a row's reply would depend on its neighbours. Here every
row draws from its own torch.Generator seeded from (seed, the row's key), so a reply
depends only on the model, the prompt, the settings and that key: not on the batch
size, the row's position or what else was asked.

Batches are left-padded (the new tokens of every row then sit in the same column)
and decoded with the KV cache: the prompt runs once, then one token per step. Prompts
are sorted by length before batching so little of a batch is padding; results come
back in the caller's order. Rounding differs slightly between batch shapes; the
sampling (Gumbel-max, see _pick) makes a reply change only when two tokens' perturbed
scores tie within that rounding, which our tests have not seen happen.

On CUDA, forwards run under bf16 autocast (tasks.train.models.autocast_context); on
CPU in float32 (bf16 is ~500x slower on these CPUs).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence, Union

import torch

from tasks.common.progress import rows_progress
from tasks.train.models import autocast_context

Messages = list[dict[str, str]]
Prompt = Union[Messages, str]


@dataclass(frozen=True)
class Generation:
    """One reply: its text (special tokens dropped, trimmed), the tokens generated
    (the end-of-turn token not counted) and whether it stopped at max_new_tokens
    instead of ending by itself."""

    text: str
    token_count: int
    truncated: bool


@dataclass(frozen=True)
class SamplingSettings:
    """What decides a reply besides the model, the prompt and its key; recorded with
    every generated row. temperature 0 means greedy."""

    seed: int = 0
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 128


def row_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one row, from the run's seed and the row's key."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def prompt_key(prompt: Prompt) -> str:
    """A prompt's default key: its content, so equal prompts get equal replies."""
    return json.dumps(prompt, ensure_ascii=False, sort_keys=True)


def encode_prompt(tokenizer, prompt: Prompt) -> list[int]:
    """Chat messages through the tokenizer's chat template, ending where the assistant
    speaks next; plain text as it is."""
    if isinstance(prompt, str):
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def _stop_ids(tokenizer) -> set[int]:
    stops = {tokenizer.eos_token_id}
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if end_of_turn is not None:
        stops.add(end_of_turn)
    return {token for token in stops if token is not None}


def _nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(candidate probabilities, their token ids), most likely first, with the
    candidates outside the smallest set reaching top_p zeroed (the first is always kept).

    A full sort of a 49k vocabulary costs more than a small model's forward on CPU, so
    the candidates are the top k for k = 64, 256, ... until they hold top_p of every
    row's mass: the same set a full sort gives, since the nucleus is a prefix of it."""
    vocab = probs.shape[-1]
    k = min(64, vocab)
    while True:
        top, ids = probs.topk(k, dim=-1) if k < vocab else probs.sort(-1, descending=True)
        if k == vocab or bool((top.sum(-1) >= top_p).all()):
            break
        k = vocab if k * 4 > vocab // 4 else k * 4
    outside = top.cumsum(-1) - top >= top_p
    return top.masked_fill(outside, 0.0), ids


def _pick(logits: torch.Tensor, settings: SamplingSettings, generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row: greedy at temperature 0, else top-p sampling by the Gumbel-max
    trick (argmax of log-probability plus Gumbel noise drawn from the row's own generator).

    Gumbel-max rather than an inverse CDF: rounding differs a little between batch
    shapes, and an inverse CDF over near-equal probabilities flips to a neighbouring
    token on a tiny change, while the perturbed maximum changes only when its lead
    (typically of order 1) is within rounding error."""
    if settings.temperature <= 0:
        return logits.argmax(-1)
    logp = (logits / settings.temperature).log_softmax(-1)
    if settings.top_p < 1:
        candidates, ids = _nucleus(logp.exp(), settings.top_p)
        keep = torch.zeros_like(logp, dtype=torch.bool).scatter(-1, ids, candidates > 0)
        logp = logp.masked_fill(~keep, float("-inf"))
    vocab = logp.shape[-1]
    uniform = torch.stack([torch.rand(vocab, generator=g, device=g.device) for g in generators])
    gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-20)))
    return (logp + gumbel.to(logp.dtype)).argmax(-1)


@torch.no_grad()
def _generate_batch(model, prompts: list[list[int]], seeds: list[int], settings: SamplingSettings,
                    pad_id: int, stops: set[int]) -> list[tuple[list[int], bool]]:
    device = next(model.parameters()).device
    width = max(len(ids) for ids in prompts)
    input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    stop_ids = torch.tensor(sorted(stops), device=device)
    rows = len(prompts)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    steps: list[torch.Tensor] = []
    with autocast_context(device):
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
        for _ in range(settings.max_new_tokens):
            token = _pick(out.logits[:, -1].float(), settings, generators)
            token = torch.where(done, pad_id, token)
            steps.append(token)
            done |= torch.isin(token, stop_ids)
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype, device=device)], dim=1)
            positions = positions[:, -1:] + 1
            out = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions,
                        past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
    results = []
    for row, finished in zip(torch.stack(steps, 1).tolist(), done.tolist()):
        end = next((i for i, token in enumerate(row) if token in stops), None)
        results.append((row[:end] if end is not None else row, not finished))
    return results


def generate(model, tokenizer, prompts: Sequence[Prompt], *, settings: SamplingSettings = SamplingSettings(),
             keys: Sequence[str] | None = None, batch_size: int = 8, progress: bool = False) -> list[Generation]:
    """One reply per prompt, in the prompts' order.

    keys: each row's identity for its seed (default: the prompt itself); give
    distinct keys to draw several replies to one prompt.
    """
    if keys is None:
        keys = [prompt_key(prompt) for prompt in prompts]
    if len(keys) != len(prompts):
        raise ValueError(f"{len(keys)} keys for {len(prompts)} prompts")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected at least 1")
    encoded = [encode_prompt(tokenizer, prompt) for prompt in prompts]
    seeds = [row_seed(settings.seed, key) for key in keys]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = _stop_ids(tokenizer)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    results: list[Generation | None] = [None] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        with rows_progress("generating", len(prompts), progress) as advance:
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                replies = _generate_batch(model, [encoded[i] for i in batch], [seeds[i] for i in batch],
                                          settings, pad_id, stops)
                for i, (tokens, truncated) in zip(batch, replies):
                    text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
                    results[i] = Generation(text, len(tokens), truncated)
                if advance:
                    advance(len(batch))
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


def load_generator(name_or_path: str, device: str = "auto"):
    """(model directory, model in eval mode, tokenizer) for a preset name or a local
    transformers directory, on CUDA when present."""
    from tasks.train.models import load_policy, load_tokenizer, pick_device, resolve_model

    path = resolve_model(name_or_path)
    model = load_policy(path, pick_device(device)).eval()
    return path, model, load_tokenizer(path)
