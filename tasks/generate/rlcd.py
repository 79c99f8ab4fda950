"""RLCD generation: prompts in, a file of generation records out, resumable.

For each prompt the generator writes a reply under the positive suffix and one under
the negative suffix of one template pair (templates/rlcd.yaml, or the user's file).
The records go to a JSON Lines file under THUMBS_HOME/synthetic/rlcd/, which is then
ingested as source `rlcd` like any file: the parser (tasks/sources/rlcd.py) applies
the quality guards, so every record is counted as loaded, duplicate or quarantined.

Resuming: the work is cut into chunks of `chunk_rows` prompts, each written to
work/<run key>/chunk-NNNNN.jsonl atomically once done; a rerun skips the chunks
already there. The run key hashes everything that decides the rows (generator
weights, templates file, set, prompt set, sampling settings), and each row's replies
depend only on (seed, its prompt, its side), so a resumed run writes the same rows
an uninterrupted one would, none twice.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from schemas.synthesize import RlcdConfig
from tasks.common.files import replaced_file
from tasks.common.home import Home
from tasks.common.settings import SHIPPED_ROOT, ThumbsError
from tasks.generate.sampling import SamplingSettings, generate, prompt_key, row_seed

DEFAULT_TEMPLATES = SHIPPED_ROOT / "templates" / "rlcd.yaml"
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class TemplatePair:
    name: str
    positive: str
    negative: str


@dataclass(frozen=True)
class Templates:
    path: Path
    sha256: str
    pairs: tuple[TemplatePair, ...]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_templates(path: str | Path | None, template_set: str) -> Templates:
    """One set of contrast pairs from a templates YAML: {set: [{name, positive, negative}]}."""
    path = Path(path) if path else DEFAULT_TEMPLATES
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThumbsError(f"{path}: cannot read the templates file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ThumbsError(f"{path}: invalid YAML ({first_problem(exc)})") from exc
    if not isinstance(loaded, dict) or template_set not in loaded:
        sets = ", ".join(loaded) if isinstance(loaded, dict) else "none"
        raise ThumbsError(f"{path}: no template set '{template_set}' (sets: {sets})")
    pairs = []
    for number, entry in enumerate(loaded[template_set] or [], start=1):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) and entry[k].strip()
                                                  for k in ("name", "positive", "negative")):
            raise ThumbsError(f"{path}: {template_set} pair {number}: expected name, positive and negative texts")
        pairs.append(TemplatePair(entry["name"], entry["positive"].strip(), entry["negative"].strip()))
    if not pairs:
        raise ThumbsError(f"{path}: template set '{template_set}' has no pairs")
    return Templates(path.resolve(), file_sha256(path), tuple(pairs))


def first_problem(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def with_suffix(prompt: Messages, suffix: str) -> Messages:
    """The prompt with the context suffix added to its last user turn."""
    last_user = max(i for i, m in enumerate(prompt) if m["role"] == "user")
    return [dict(m, content=f"{m['content']}\n\n{suffix}") if i == last_user else dict(m)
            for i, m in enumerate(prompt)]


def prompt_set_sha256(prompts: list[Messages]) -> str:
    return hashlib.sha256(json.dumps(prompts, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def run_key(config: RlcdConfig, generator_sha: str, templates: Templates, prompts_sha: str) -> str:
    decides = {"generator": generator_sha, "templates": templates.sha256, "set": config.template_set,
               "prompts": prompts_sha, "seed": config.seed, "temperature": config.temperature,
               "top_p": config.top_p, "max_new_tokens": config.max_new_tokens, "rescore": config.rescore,
               "max_reply_chars": config.max_reply_chars, "chunk_rows": config.chunk_rows}
    return hashlib.sha256(json.dumps(decides, sort_keys=True).encode()).hexdigest()[:16]


def synthetic_dir(home: Home) -> Path:
    return Path(home) / "synthetic" / "rlcd"


def _chunks(prompts: list[Messages], size: int) -> Iterator[tuple[int, list[Messages]]]:
    for number, start in enumerate(range(0, len(prompts), size)):
        yield number, prompts[start:start + size]


def generate_chunk(model, tokenizer, prompts: list[Messages], templates: Templates, config: RlcdConfig,
                   origin: dict[str, Any], scorer=None, progress: bool = False) -> list[dict[str, Any]]:
    """The generation records of one chunk of prompts."""
    settings = SamplingSettings(seed=config.seed, temperature=config.temperature, top_p=config.top_p,
                                max_new_tokens=config.max_new_tokens)
    keys = [prompt_key(prompt) for prompt in prompts]
    pairs = [templates.pairs[row_seed(config.seed, key) % len(templates.pairs)] for key in keys]
    contexts = [with_suffix(p, pair.positive) for p, pair in zip(prompts, pairs)]
    contexts += [with_suffix(p, pair.negative) for p, pair in zip(prompts, pairs)]
    side_keys = [f"{key}\0positive" for key in keys] + [f"{key}\0negative" for key in keys]
    replies = generate(model, tokenizer, contexts, settings=settings, keys=side_keys,
                       batch_size=config.batch_size, progress=progress)
    positive, negative = replies[:len(prompts)], replies[len(prompts):]
    records = []
    for prompt, pair, pos, neg in zip(prompts, pairs, positive, negative):
        records.append({
            "prompt": prompt, "template_pair": pair.name,
            "positive_context": pair.positive, "negative_context": pair.negative,
            "positive_reply": pos.text, "negative_reply": neg.text,
            "positive_tokens": pos.token_count, "negative_tokens": neg.token_count,
            "positive_truncated": pos.truncated, "negative_truncated": neg.truncated,
            "max_reply_chars": config.max_reply_chars, **origin,
        })
    if scorer is not None:
        scores = scorer([r["prompt"] for r in records for _ in (0, 1)],
                        [r[side] for r in records for side in ("positive_reply", "negative_reply")])
        for record, pos_score, neg_score in zip(records, scores[0::2], scores[1::2]):
            record["positive_score"], record["negative_score"] = pos_score, neg_score
    return records


@dataclass(frozen=True)
class Synthesis:
    file: Path  # the generation records, ready to ingest as source rlcd
    origin: dict[str, Any]  # what decided them: recorded in the ingest run's options
    chunks_done: int  # chunks generated by this run
    chunks_resumed: int  # chunks found done by an earlier run


def synthesize(prompts: list[Messages], config: RlcdConfig, home: Home, *, prompt_source: str,
               progress: bool = False) -> Synthesis:
    """Generate (or finish generating) the records for these prompts; returns the file."""
    from tasks.generate.sampling import load_generator
    from tasks.train.models import weights_sha256

    if not prompts:
        raise ThumbsError(f"{prompt_source}: no prompts to synthesize from")
    templates = load_templates(config.templates, config.template_set)
    model_dir, model, tokenizer = load_generator(config.model, config.device)
    generator_sha = weights_sha256(model_dir)
    prompts_sha = prompt_set_sha256(prompts)
    key = run_key(config, generator_sha, templates, prompts_sha)
    origin = {"generator_model": config.model, "generator_sha256": generator_sha,
              "templates_file": str(templates.path), "templates_sha256": templates.sha256,
              "template_set": config.template_set, "prompt_set": prompt_source, "prompt_set_sha256": prompts_sha,
              "prompts": len(prompts), "seed": config.seed, "temperature": config.temperature,
              "top_p": config.top_p, "max_new_tokens": config.max_new_tokens, "rescore": config.rescore}
    work = synthetic_dir(home) / "work" / key
    scorer = reward_scorer(config.rescore, config.device) if config.rescore else None
    done = resumed = 0
    for number, chunk in _chunks(prompts, config.chunk_rows):
        target = work / f"chunk-{number:05d}.jsonl"
        if target.is_file():
            resumed += 1
            continue
        records = generate_chunk(model, tokenizer, chunk, templates, config, origin, scorer, progress)
        with replaced_file(target) as scratch:
            scratch.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records),
                               encoding="utf-8")
        done += 1
    final = synthetic_dir(home) / f"rlcd-{key}.jsonl"
    with replaced_file(final) as scratch, open(scratch, "wb") as out:
        for chunk_file in sorted(work.glob("chunk-*.jsonl")):
            out.write(chunk_file.read_bytes())
    return Synthesis(final, origin, done, resumed)


def reward_scorer(checkpoint: str, device: str = "auto"):
    """RLCD-Rescore: a function scoring (prompt, reply) pairs with a reward model saved
    as a transformers sequence-classification model (one logit: the reward)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from tasks.train.models import autocast_context, load_tokenizer, pick_device

    path = Path(checkpoint)
    if not (path / "config.json").is_file():
        raise ThumbsError(f"rescore={checkpoint}: not a transformers model directory (no config.json)")
    target = pick_device(device)
    model = AutoModelForSequenceClassification.from_pretrained(path).to(target).eval()
    tokenizer = load_tokenizer(path)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id

    def score(prompts: list[Messages], replies: list[str]) -> list[float]:
        texts = [tokenizer.apply_chat_template(p + [{"role": "assistant", "content": r}], tokenize=False)
                 for p, r in zip(prompts, replies)]
        scores: list[float] = []
        with torch.no_grad(), autocast_context(target):
            for start in range(0, len(texts), 8):
                batch = tokenizer(texts[start:start + 8], return_tensors="pt", padding=True,
                                  add_special_tokens=False).to(target)
                scores += model(**batch).logits[:, 0].float().tolist()
        return scores

    return score
