"""Reference log-probs, computed once and kept on disk.

The reference model is frozen, so log πref(y|x) of a sequence never changes:
computing it once per (reference weights, snapshot, tokenization) and reading it
back saves a forward per step and, more importantly, keeps the reference model
out of memory while the policy trains (it is loaded, run over every sequence the
run will need, and freed before the policy is loaded).

A cache file is THUMBS_HOME/cache/reference/<key>.pt, the key a hash of
- the reference weights' sha256 and the compute precision (bf16 on CUDA differs
  from float32 in the last digits),
- the snapshot_id (which rows, with which text),
- the tokenization: max_length, a digest of the tokenizer (vocabulary, chat
  template) and the text format (plain, or CSFT's control tokens).
Inside, entries are keyed per sequence: "<prompt row_id>:<reply row_id>:<field>".
The batch plan (seed, batch_size, steps) therefore does not need to be part of
the key: it only decides WHICH sequences a run needs, KTO's mismatched KL rows
among them, and a run whose plan asks for sequences the file lacks computes just
those and adds them. A second run with the same plan loads no model at all.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import torch

from tasks.train.batching import Encoded, pack
from tasks.train.logprobs import sequence_logps
from tasks.train.models import autocast_context, load_policy, weights_sha256
from tasks.common.files import replaced_file
from tasks.common.home import Home
from tasks.common.settings import ThumbsError

FORMAT_VERSION = 2  # 2: packed forwards with shared prompts (last float32 digits differ from 1)

# How many times a reference model was loaded in this process: tests assert a
# cache hit loads none.
REFERENCE_LOADS = 0


@dataclass(frozen=True)
class CacheResult:
    logps: dict[str, float]  # sequence key -> summed completion log-prob under the reference
    key: str
    path: Path
    computed: int  # sequences computed by this call (0 = a full hit, no model loaded)


def precision_of(device: torch.device) -> str:
    """The dtype reference forwards run in on `device` (mirrors models.autocast_context)."""
    return "bf16-autocast" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"


def tokenizer_digest(tokenizer) -> str:
    """Identifies a tokenization by what it does (vocabulary, special tokens, chat
    template), not by how its files are formatted, which differs between a base
    model and a checkpoint re-saved from it."""
    digest = hashlib.sha256()
    digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(json.dumps(tokenizer.all_special_tokens).encode())
    digest.update((tokenizer.chat_template or "").encode())
    return digest.hexdigest()[:16]


def cache_key(*, reference_sha256: str, snapshot_id: str, max_length: int, tokenizer: str, text_format: str,
              precision: str) -> tuple[str, dict]:
    material = {"format": FORMAT_VERSION, "reference_sha256": reference_sha256, "snapshot_id": snapshot_id,
                "max_length": max_length, "tokenizer": tokenizer, "text_format": text_format,
                "precision": precision}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20], material


def _read(path: Path, material: dict) -> dict[str, float]:
    if not path.exists():
        return {}
    try:
        stored = torch.load(path, weights_only=True)
    except Exception as exc:  # a corrupt or foreign file is recomputed, never trusted
        print(f"warning: {path}: unreadable reference cache, recomputing ({exc})", flush=True)
        return {}
    if stored.get("material") != material:
        return {}
    return dict(stored["logps"])


def plan_packs(sequences: Mapping[str, Encoded], batch_size: int) -> list[list[str]]:
    """The reference forwards: lists of keys, at most `batch_size` sequences each unless
    one prompt alone has more, a prompt's sequences always in the same forward so that
    pack(share_prompts=True) runs the prompt once for all of them (a KTO row's prompt
    serves its completion and its KL rows; a pair's, chosen and rejected). Largest
    prompt groups first: an out-of-memory error shows up on the first forward, not
    after an hour."""
    by_prompt: dict[tuple[int, ...], list[str]] = {}
    for key in sorted(sequences):
        encoded = sequences[key]
        by_prompt.setdefault(tuple(encoded.input_ids[:encoded.prompt_length]), []).append(key)
    groups = sorted(by_prompt.values(), key=lambda keys: (-sum(len(sequences[k].input_ids) for k in keys), keys))
    packs: list[list[str]] = []
    for keys in groups:
        if packs and len(packs[-1]) + len(keys) <= batch_size:
            packs[-1] += keys
        else:
            packs.append(list(keys))
    return packs


def score(model, sequences: Mapping[str, Encoded], *, device: torch.device, batch_size: int,
          on_batch: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Summed completion log-probs of `sequences` under `model`, forward-only, packed as
    plan_packs lays them out (no padding computed, each prompt forwarded once). The
    evaluation scores its policy with this too: the same sequences in the same packs
    give bit-identical log-probs, so a model scored against itself gives 0 exactly."""
    logps: dict[str, float] = {}
    with torch.no_grad():
        for keys in plan_packs(sequences, batch_size):
            batch = pack([sequences[k] for k in keys], share_prompts=True).to(device)
            with autocast_context(device):
                summed, _ = sequence_logps(model, batch)
            logps.update(zip(keys, summed.float().cpu().tolist()))
            if on_batch:
                on_batch(len(logps), len(sequences))
    return logps


@contextlib.contextmanager
def _reference_model(reference_dir: Path, device: torch.device, adapted=None) -> Iterator[torch.nn.Module]:
    """The reference, in eval mode: `adapted` (a LoRA policy, peft PeftModel) with its
    adapters disabled, which is exactly its base and no second copy in memory; else
    reference_dir, loaded now and freed after."""
    global REFERENCE_LOADS
    if adapted is not None:
        was_training = adapted.training
        adapted.eval()  # no dropout in reference forwards
        try:
            with adapted.disable_adapter():
                yield adapted
        finally:
            adapted.train(was_training)
        return
    REFERENCE_LOADS += 1
    model = load_policy(reference_dir, device)
    model.eval()
    model.requires_grad_(False)
    try:
        yield model
    finally:
        # Freed here, before the caller loads the policy: the two never share memory.
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def reference_logps(sequences: Mapping[str, Encoded], *, reference_dir: Path, key: str, material: dict,
                    device: torch.device, batch_size: int, home: str | Path | None = None,
                    on_batch: Callable[[int, int], None] | None = None, adapted=None) -> CacheResult:
    """log πref for every sequence in `sequences`, from the cache where present.

    Missing sequences are computed with the reference model (loaded only then; for a
    LoRA run `adapted`, the policy, with its adapters disabled), added to the cache
    file, and the file rewritten atomically. reference_dir is the weights either way
    (a LoRA policy's base), so LoRA and full fine-tuning from one base share the cache.
    """
    path = Home.of(home).reference_cache / f"{key}.pt"
    cached = _read(path, material)
    missing = {k: enc for k, enc in sequences.items() if k not in cached}
    if missing:
        with _reference_model(reference_dir, device, adapted) as model:
            cached.update(score(model, missing, device=device, batch_size=batch_size, on_batch=on_batch))
        with replaced_file(path) as scratch:  # readers see the old cache or the new one, never half of one
            torch.save({"material": material, "logps": cached}, scratch)
    bad = [k for k in sequences if not torch.isfinite(torch.tensor(cached[k]))]
    if bad:
        raise ThumbsError(f"{reference_dir}: the reference model gives a non-finite log-prob for {len(bad)} "
                          f"sequence(s), e.g. {bad[0]}: check the reference weights")
    return CacheResult({k: cached[k] for k in sequences}, key, path, len(missing))


def for_run(sequences: Mapping[str, Encoded], *, reference_dir: Path, reference_name: str, snapshot_id: str,
            max_length: int, tokenizer, text_format: str, device: torch.device, batch_size: int,
            home: str | Path | None = None, on_batch: Callable[[int, int], None] | None = None,
            adapted=None) -> tuple[dict[str, float], dict]:
    """A run's reference log-probs and what the manifest says about them."""
    started = time.perf_counter()
    key, material = cache_key(reference_sha256=weights_sha256(reference_dir), snapshot_id=snapshot_id,
                              max_length=max_length, tokenizer=tokenizer_digest(tokenizer),
                              text_format=text_format, precision=precision_of(device))
    result = reference_logps(sequences, reference_dir=reference_dir, key=key, material=material, device=device,
                             batch_size=batch_size, home=home, on_batch=on_batch, adapted=adapted)
    info = {"name": reference_name, "path": str(reference_dir), "weights_sha256": material["reference_sha256"],
            "cache_key": key, "cache": "hit" if result.computed == 0 else "miss", "computed": result.computed,
            "seconds": round(time.perf_counter() - started, 2), "adapters_disabled": adapted is not None}
    return result.logps, info
