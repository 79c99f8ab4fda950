"""Summed log-probs of completions, without full-vocabulary logits for the whole batch.

log π(y|x) = Σ_t log softmax(W h_t)[y_{t+1}] over completion tokens only. The naive
path materializes [B, L, V] float32 logits (49152 vocab x 512 tokens x 8 sequences
= 800 MB) and autograd keeps them, and their log-softmax, for the backward. Here the
decoder's hidden states are gathered at completion positions only, then sent through
lm_head CHUNK positions at a time; each chunk runs under activation checkpointing,
so the backward recomputes that chunk's logits instead of keeping every chunk's.
Peak extra memory: one chunk's logits, chunk_size x V x 4 bytes (x3 for softmax
and gradients), whatever the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import AttentionInterface

from tasks.train.batching import Group, PackedBatch, PaddedBatch

DEFAULT_CHUNK_SIZE = 512
GROUP_ATTENTION = "thumbs_groups"


def group_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                    packed_groups: tuple[Group, ...] | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers attention for packed rows, one group (tasks.train.batching.Group) at a time:
    a packed row of T tokens costs the sum of its groups' attention instead of T x T
    masked attention, and branches see their shared prompt. Without `packed_groups`
    (padded batches, generation) it is transformers' sdpa attention, mask and all."""
    if packed_groups is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    # Grouped-query attention: repeat the key/value heads once for the whole row
    # (on CPU faster than sdpa's enable_gqa).
    repeats = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, repeats), repeat_kv(value, repeats)
    pieces = []
    for group in packed_groups:
        first = group.branches[0] if group.branches else 0
        end = group.start + group.trunk + first
        pieces.append(F.scaled_dot_product_attention(
            query[:, :, group.start:end], key[:, :, group.start:end], value[:, :, group.start:end],
            dropout_p=dropout, scale=scaling, is_causal=True))
        trunk = slice(group.start, group.start + group.trunk)
        for length in group.branches[1:]:
            if length == 0:
                continue
            branch = slice(end, end + length)
            # The branch sees the whole trunk, and its own earlier tokens.
            mask = torch.ones(length, group.trunk + length, dtype=torch.bool, device=query.device)
            mask[:, group.trunk:] = torch.ones(length, length, dtype=torch.bool, device=query.device).tril()
            pieces.append(F.scaled_dot_product_attention(
                query[:, :, branch], torch.cat([key[:, :, trunk], key[:, :, branch]], dim=2),
                torch.cat([value[:, :, trunk], value[:, :, branch]], dim=2),
                attn_mask=mask, dropout_p=dropout, scale=scaling))
            end += length
    return torch.cat(pieces, dim=2).transpose(1, 2).contiguous(), None


# Registered under its own name, with sdpa's mask builder so padded batches keep their
# masks; models.load_policy selects it.
AttentionInterface.register(GROUP_ATTENTION, group_attention)
AttentionMaskInterface.register(GROUP_ATTENTION, sdpa_mask)


def decoder_hidden_states(model, batch: PaddedBatch | PackedBatch) -> torch.Tensor:
    """Final hidden states [B, L, H] (after the last norm), without calling lm_head.

    use_cache=False matters for packed batches: with a KV cache, transformers skips its
    position_ids-based sequence separation and tokens attend across sequences. A model
    whose attention is group_attention gets the packed row's groups (other attention
    implementations get transformers' block-diagonal mask; shared prompts need groups).
    """
    decoder = model.get_decoder()
    if isinstance(batch, PackedBatch):
        groups = {"packed_groups": batch.groups} if model.config._attn_implementation == GROUP_ATTENTION else {}
        if not groups and any(group.branches for group in batch.groups):
            raise ValueError(f"shared prompts need attn_implementation={GROUP_ATTENTION!r}")
        out = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids,
                      attention_mask=None, use_cache=False, **groups)
    else:
        out = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    return out.last_hidden_state


def _targets(batch: PaddedBatch | PackedBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(positions predicting a completion token [2, N] as (row, col) of hidden states,
    the token each predicts [N], and the sequence it belongs to [N])."""
    if isinstance(batch, PackedBatch):
        return torch.stack([torch.zeros_like(batch.predictor), batch.predictor]), batch.target, batch.scored_sequence
    # Position t predicts token t+1.
    scored = batch.completion_mask[:, 1:]
    rows, cols = scored.nonzero(as_tuple=True)
    tokens = batch.input_ids[:, 1:][rows, cols]
    return torch.stack([rows, cols]), tokens, rows


def _chunk_logps(lm_head: torch.nn.Module, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    # float32 for the normalizer even under bf16 autocast: a 49152-way logsumexp in
    # bf16 loses the small differences between policy and reference.
    logits = lm_head(hidden)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


@dataclass
class CompletionTokens:
    """Per completion token, in the batch's order (a sequence's tokens are contiguous and
    in order): its log-prob, the sequence it belongs to, and the hidden state that
    predicted it (a value head reads the same positions)."""

    logps: torch.Tensor  # [N] float32 (float64 for a float64 model)
    sequence: torch.Tensor  # [N] long
    hidden: torch.Tensor  # [N, H]
    n_sequences: int

    def summed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed completion log-probs [n_seq], completion token counts [n_seq] long)."""
        summed = torch.zeros(self.n_sequences, dtype=self.logps.dtype, device=self.logps.device)
        counts = torch.zeros(self.n_sequences, dtype=torch.long, device=self.logps.device)
        return (summed.index_add(0, self.sequence, self.logps),
                counts.index_add(0, self.sequence, torch.ones_like(self.sequence)))


def completion_tokens(
    model,
    batch: PaddedBatch | PackedBatch,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    checkpoint_chunks: bool = True,
) -> CompletionTokens:
    """Each completion token's log-prob under the model, with its sequence and hidden state.

    The model must be Llama-like: get_decoder() returns the final-normed hidden states
    and lm_head is the whole head (no logit scaling or soft-capping, as Gemma 2 or
    Cohere add). Gradients flow to the model's parameters when grad is enabled; under
    torch.no_grad() (reference model) no chunk is checkpointed or kept.
    """
    for knob in ("final_logit_softcapping", "logit_scale"):
        if getattr(model.config, knob, None):
            raise NotImplementedError(f"{type(model).__name__} post-processes its logits ({knob}); "
                                      "sequence_logps would skip that")
    hidden = decoder_hidden_states(model, batch)
    (rows, cols), tokens, sequence = _targets(batch)
    selected = hidden[rows, cols]  # [N, H]: completion positions only
    lm_head = model.get_output_embeddings()
    pieces = []
    for start in range(0, selected.shape[0], chunk_size):
        h, y = selected[start: start + chunk_size], tokens[start: start + chunk_size]
        if checkpoint_chunks and torch.is_grad_enabled() and h.requires_grad:
            pieces.append(checkpoint(_chunk_logps, lm_head, h, y, use_reentrant=False))
        else:
            pieces.append(_chunk_logps(lm_head, h, y))
    token_logps = torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
    return CompletionTokens(token_logps, sequence, selected, batch.n_sequences)


def sequence_logps(model, batch: PaddedBatch | PackedBatch, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed completion log-probs [n_seq], completion token counts [n_seq] long):
    completion_tokens (same options), summed per sequence."""
    return completion_tokens(model, batch, **options).summed()


def naive_sequence_logps(model, batch: PaddedBatch | PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference implementation: full logits -> log_softmax -> gather -> masked sum.
    Kept for tests and memory comparisons; do not train with it."""
    if isinstance(batch, PackedBatch):
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
        sequence = batch.sequence_index[:, 1:]
    else:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
        sequence = torch.arange(batch.n_sequences, device=logits.device)[:, None].expand_as(batch.input_ids[:, 1:])
    logps = logits[:, :-1].log_softmax(-1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    mask = batch.completion_mask[:, 1:]
    summed = torch.zeros(batch.n_sequences, dtype=logps.dtype, device=logits.device)
    summed = summed.index_add(0, sequence[mask], logps[mask])
    counts = torch.zeros(batch.n_sequences, dtype=torch.long, device=logits.device).index_add(
        0, sequence[mask], torch.ones_like(sequence[mask]))
    return summed, counts
