"""From (prompt messages, completion) rows to tensors, with the prompt masked out of the loss.

A training sequence is exactly what generation would produce: the chat template
applied to the prompt with the generation header (`<|im_start|>assistant\\n` for
SmolLM2), then the completion's tokens, then the token that ends an assistant turn
(`<|im_end|>`, the token generation stops on). Only the completion and that
end-of-turn token count in the log-probs.

Batches come in two forms, both consumed by tasks/train/logprobs.py:
- PaddedBatch: [B, L] right-padded, with an attention mask;
- PackedBatch: every sequence concatenated into one row [1, T], position_ids
  restarting at 0 per sequence. transformers (5.x) reads those restarts as sequence
  boundaries and builds a block-diagonal causal mask (sdpa and eager), or varlen
  flash-attention, provided attention_mask is None and use_cache is False (with a
  KV cache it silently attends across sequences). No padding is computed at all.
  tasks/train/logprobs.py goes further and runs attention group by group (`groups`), so
  a [T, T] mask is never applied.

With share_prompts, sequences that have the same prompt (a pair's chosen and
rejected; KTO rows from one pair) form one group: the prompt once, then each
reply, every reply positioned right after the prompt (position_ids) and attending
to the prompt and to itself only. Their log-probs are those of separate
sequences; the prompt's layers just run once instead of once per reply.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import torch

Messages = Sequence[dict]  # [{"role": ..., "content": ...}, ...]


@dataclass(frozen=True)
class Encoded:
    """One tokenized example: input_ids[:prompt_length] is the prompt."""

    input_ids: list[int]
    prompt_length: int
    truncated: bool = False

    @property
    def completion_length(self) -> int:
        return len(self.input_ids) - self.prompt_length

    @property
    def completion_mask(self) -> list[bool]:
        return [False] * self.prompt_length + [True] * self.completion_length


def turn_end_ids(tokenizer) -> list[int]:
    """The tokens the chat template puts after an assistant reply, up to and including
    the EOS token (`<|im_end|>` for SmolLM2; its trailing newline is never generated)."""
    sentinel = "\x00THUMBS\x00"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": sentinel}], tokenize=False
    )
    after = rendered.split(sentinel, 1)[1]
    eos = tokenizer.eos_token
    if eos and eos in after:
        after = after[: after.index(eos) + len(eos)]
    elif eos:  # a template that never closes turns with EOS: generation ends on EOS anyway
        after = eos
    return tokenizer.encode(after, add_special_tokens=False)


@dataclass
class ChatEncoder:
    """encode_example with memory: each distinct prompt is rendered and tokenized once
    (a preference pair's prompt appears with two completions; KTO rows with more)."""

    tokenizer: object
    max_length: int
    _prompts: dict[tuple, list[int]] = field(default_factory=dict, repr=False)
    _turn_end: list[int] | None = field(default=None, repr=False)

    def prompt_ids(self, messages: Messages) -> list[int]:
        key = tuple((m["role"], m["content"]) for m in messages)
        if key not in self._prompts:
            self._prompts[key] = list(self.tokenizer.apply_chat_template(
                [{"role": role, "content": content} for role, content in key],
                add_generation_prompt=True, tokenize=True, return_dict=False,
            ))
        return self._prompts[key]

    def encode(self, messages: Messages, completion: str) -> Encoded:
        if self._turn_end is None:
            self._turn_end = turn_end_ids(self.tokenizer)
        prompt = self.prompt_ids(messages)
        reply = self.tokenizer.encode(completion, add_special_tokens=False) + self._turn_end
        return truncate(prompt, reply, self.max_length)


def truncate(prompt: list[int], reply: list[int], max_length: int) -> Encoded:
    """Fit prompt + reply into max_length, keeping the reply whole where possible.

    The prompt loses tokens from the left first (the oldest turns go, the most recent
    turn and the assistant header stay), but keeps at least min(len(prompt),
    max_length // 2) tokens so a reply is never scored without context; then the reply
    loses tokens from the right (its end-of-turn token among them).
    """
    if len(prompt) + len(reply) <= max_length:
        return Encoded(prompt + reply, len(prompt))
    if max_length < 2:
        raise ValueError(f"max_length={max_length}: need room for one prompt and one completion token")
    min_prompt = max(1, min(len(prompt), max_length // 2))
    prompt_keep = max(min_prompt, max_length - len(reply))
    prompt = prompt[len(prompt) - prompt_keep:]
    reply = reply[: max_length - len(prompt)]
    return Encoded(prompt + reply, len(prompt), truncated=True)


def encode_example(tokenizer, prompt_messages: Messages, completion: str, max_length: int) -> Encoded:
    """One example without a cache; for many rows, reuse one ChatEncoder."""
    return ChatEncoder(tokenizer, max_length).encode(prompt_messages, completion)


def bucket_batches(lengths: Sequence[int], batch_size: int, seed: int, shuffle: bool = True) -> list[list[int]]:
    """Indices grouped into batches of similar length, to cut padding.

    With shuffle: a seeded permutation, cut into windows of 50 batches, each window
    sorted by length and cut into batches, then the batch order shuffled; so batches
    are homogeneous in length but their contents and order vary with the seed
    (the LengthGroupedSampler recipe). Without: plain length order, longest first.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    order = list(range(len(lengths)))
    rng = random.Random(seed)
    if not shuffle:
        order.sort(key=lambda i: -lengths[i])
        return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start: start + window], key=lambda i: -lengths[i])
        batches += [chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@dataclass
class PaddedBatch:
    input_ids: torch.Tensor  # [B, L] long, right-padded
    attention_mask: torch.Tensor  # [B, L] long
    completion_mask: torch.Tensor  # [B, L] bool: tokens whose log-prob counts

    @property
    def n_sequences(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device) -> PaddedBatch:
        return PaddedBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.completion_mask)))


@dataclass(frozen=True)
class Group:
    """Attention within a packed row: `trunk` tokens from `start` attend causally among
    themselves; each branch (laid out after the trunk, one after another) attends to
    the whole trunk and causally to itself, never to another branch."""

    start: int
    trunk: int
    branches: tuple[int, ...] = ()


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [1, T] long, sequences back to back
    position_ids: torch.Tensor  # [1, T] long, restarting at 0 per sequence (per branch: after its trunk)
    completion_mask: torch.Tensor  # [1, T] bool: completion tokens
    cu_seqlens: torch.Tensor  # [g + 1] int32 group starts (without shared prompts: sequence starts, varlen layout)
    groups: tuple[Group, ...]
    # Scored tokens, in sequence order: hidden state at predictor[i] predicts token target[i] of
    # sequence scored_sequence[i]. Usually predictor = position - 1; a branch's first token
    # is predicted from the end of its trunk.
    predictor: torch.Tensor  # [N] long
    target: torch.Tensor  # [N] long
    scored_sequence: torch.Tensor  # [N] long
    n_sequences: int

    @property
    def sequence_index(self) -> torch.Tensor:
        """[1, T] which sequence each token belongs to (packed without shared prompts only)."""
        if any(group.branches for group in self.groups):
            raise ValueError("a shared prompt belongs to several sequences")
        lengths = self.cu_seqlens.diff().to(torch.long)
        ids = torch.arange(self.n_sequences, device=lengths.device).repeat_interleave(lengths)
        return ids.unsqueeze(0)

    def to(self, device: torch.device) -> PackedBatch:
        moved = {name: getattr(self, name).to(device) for name in
                 ("input_ids", "position_ids", "completion_mask", "cu_seqlens", "predictor", "target",
                  "scored_sequence")}
        return PackedBatch(groups=self.groups, n_sequences=self.n_sequences, **moved)


def _check(sequences: Sequence[Encoded]) -> None:
    if not sequences:
        raise ValueError("an empty batch")
    for seq in sequences:
        # The first token has no predecessor to predict it, so it must belong to the prompt.
        if seq.prompt_length < 1:
            raise ValueError("every sequence needs at least one prompt token")


def pad(sequences: Sequence[Encoded], pad_token_id: int) -> PaddedBatch:
    """Right padding. Masks come from lengths, never from pad_token_id: SmolLM2's pad
    token is <|im_end|>, which also ends every completion."""
    _check(sequences)
    width = max(len(s.input_ids) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    completion_mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, seq in enumerate(sequences):
        n = len(seq.input_ids)
        input_ids[row, :n] = torch.tensor(seq.input_ids, dtype=torch.long)
        attention_mask[row, :n] = 1
        completion_mask[row, seq.prompt_length:n] = True
    return PaddedBatch(input_ids, attention_mask, completion_mask)


def pack(sequences: Sequence[Encoded], share_prompts: bool = False) -> PackedBatch:
    """All sequences in one row, for a padding-free forward (see the module docstring);
    with share_prompts, each distinct prompt once, followed by its replies."""
    _check(sequences)
    members: dict[tuple[int, ...], list[int]] = {}
    for index, seq in enumerate(sequences):
        key = tuple(seq.input_ids[:seq.prompt_length]) if share_prompts else (index,)
        members.setdefault(key, []).append(index)
    input_ids: list[int] = []
    positions: list[int] = []
    completion: list[bool] = []
    groups: list[Group] = []
    scored: list[tuple[int, int, int]] = []  # (sequence, predictor, target)
    for indices in members.values():
        start = len(input_ids)
        if len(indices) == 1:  # a whole sequence, causal: the plain packed layout
            seq = sequences[indices[0]]
            input_ids += seq.input_ids
            positions += range(len(seq.input_ids))
            completion += seq.completion_mask
            scored += [(indices[0], start + t - 1, seq.input_ids[t]) for t in range(seq.prompt_length,
                                                                                      len(seq.input_ids))]
            groups.append(Group(start, len(seq.input_ids)))
            continue
        prompt_length = sequences[indices[0]].prompt_length
        input_ids += sequences[indices[0]].input_ids[:prompt_length]
        positions += range(prompt_length)
        completion += [False] * prompt_length
        for index in indices:
            reply = sequences[index].input_ids[prompt_length:]
            branch_start = len(input_ids)
            input_ids += reply
            positions += range(prompt_length, prompt_length + len(reply))
            completion += [True] * len(reply)
            predictors = [start + prompt_length - 1] + list(range(branch_start, branch_start + len(reply) - 1))
            scored += [(index, p, token) for p, token in zip(predictors, reply)]
        groups.append(Group(start, prompt_length, tuple(sequences[i].completion_length for i in indices)))
    scored.sort(key=lambda item: item[0])  # stable: each sequence's tokens stay in order
    starts = [g.start for g in groups] + [len(input_ids)]
    return PackedBatch(
        input_ids=torch.tensor([input_ids], dtype=torch.long),
        position_ids=torch.tensor([positions], dtype=torch.long),
        completion_mask=torch.tensor([completion], dtype=torch.bool),
        cu_seqlens=torch.tensor(starts, dtype=torch.int32),
        groups=tuple(groups),
        predictor=torch.tensor([p for _, p, _ in scored], dtype=torch.long),
        target=torch.tensor([t for _, _, t in scored], dtype=torch.long),
        scored_sequence=torch.tensor([s for s, _, _ in scored], dtype=torch.long),
        n_sequences=len(sequences),
    )
