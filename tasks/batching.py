"""From (prompt messages, completion) rows to tensors, with the prompt masked out of the loss.

A training sequence is exactly what generation would produce: the chat template
applied to the prompt with the generation header (`<|im_start|>assistant\\n` for
SmolLM2), then the completion's tokens, then the token that ends an assistant turn
(`<|im_end|>`, the token generation stops on). Only the completion and that
end-of-turn token count in the log-probs.

Batches come in two forms, both consumed by tasks/logprobs.py:
- PaddedBatch: [B, L] right-padded, with an attention mask;
- PackedBatch: every sequence concatenated into one row [1, T], position_ids
  restarting at 0 per sequence. transformers (5.x) reads those restarts as sequence
  boundaries and builds a block-diagonal causal mask (sdpa and eager), or varlen
  flash-attention, provided attention_mask is None and use_cache is False (with a
  KV cache it silently attends across sequences). No padding is computed at all.
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


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [1, T] long, sequences back to back
    position_ids: torch.Tensor  # [1, T] long, restarting at 0 per sequence
    completion_mask: torch.Tensor  # [1, T] bool
    cu_seqlens: torch.Tensor  # [n + 1] int32 sequence starts (flash-attention varlen layout)

    @property
    def n_sequences(self) -> int:
        return self.cu_seqlens.numel() - 1

    @property
    def sequence_index(self) -> torch.Tensor:
        """[1, T] which sequence each token belongs to."""
        lengths = self.cu_seqlens.diff().to(torch.long)
        ids = torch.arange(self.n_sequences, device=lengths.device).repeat_interleave(lengths)
        return ids.unsqueeze(0)

    def to(self, device: torch.device) -> PackedBatch:
        return PackedBatch(*(t.to(device) for t in
                             (self.input_ids, self.position_ids, self.completion_mask, self.cu_seqlens)))


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


def pack(sequences: Sequence[Encoded]) -> PackedBatch:
    """All sequences in one row, for a padding-free forward (see the module docstring)."""
    _check(sequences)
    lengths = [len(s.input_ids) for s in sequences]
    input_ids = torch.tensor([t for s in sequences for t in s.input_ids], dtype=torch.long)
    position_ids = torch.cat([torch.arange(n) for n in lengths])
    completion_mask = torch.tensor([m for s in sequences for m in s.completion_mask], dtype=torch.bool)
    cu_seqlens = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu_seqlens[1:] = torch.tensor(lengths).cumsum(0)
    return PackedBatch(input_ids[None], position_ids[None], completion_mask[None], cu_seqlens)
