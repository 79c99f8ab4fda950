"""Chunked log-probs equal the naive full-logits path, without its memory."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from tasks.train.batching import Encoded, pack, pad
from tasks.train.logprobs import _chunk_logps, naive_sequence_logps, sequence_logps

VOCAB = 49152


def _examples(lengths_and_prompts, seed: int = 0) -> list[Encoded]:
    generator = torch.Generator().manual_seed(seed)
    return [Encoded(torch.randint(3, VOCAB, (n,), generator=generator).tolist(), p) for n, p in lengths_and_prompts]


EXAMPLES = _examples([(12, 5), (30, 10), (7, 6), (19, 1)])


@pytest.fixture(scope="module")
def model64(tiny_llama_dir: Path):
    """float64 so that "equal" can mean 1e-5 absolute on sums of ~300 nats and on
    gradients; float32 is checked separately with a relative tolerance."""
    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float64)


def _value_and_grads(model, fn, batch):
    model.zero_grad()
    summed, counts = fn(model, batch)
    # Unequal weights per sequence, as a loss would give them.
    (summed * torch.arange(1, len(summed) + 1, dtype=summed.dtype)).sum().backward()
    return summed.detach(), counts, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("form", ["padded", "packed"])
@pytest.mark.parametrize("checkpointed", [True, False])
def test_chunked_equals_naive_in_value_and_gradient(model64, form: str, checkpointed: bool):
    batch = pad(EXAMPLES, pad_token_id=2) if form == "padded" else pack(EXAMPLES)

    def chunked(model, b):  # chunk of 7 positions: several chunks, a ragged last one
        return sequence_logps(model, b, chunk_size=7, checkpoint_chunks=checkpointed)

    value, counts, grads = _value_and_grads(model64, chunked, batch)
    naive_value, naive_counts, naive_grads = _value_and_grads(model64, naive_sequence_logps, batch)
    assert counts.tolist() == naive_counts.tolist() == [7, 20, 1, 18]
    torch.testing.assert_close(value, naive_value, atol=1e-5, rtol=0)
    assert grads.keys() == naive_grads.keys() and len(grads) > 0
    for name in grads:
        torch.testing.assert_close(grads[name], naive_grads[name], atol=1e-5, rtol=0, msg=name)


def test_float32_padded_packed_and_separate_agree(tiny_llama_dir: Path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():
        padded, _ = sequence_logps(model, pad(EXAMPLES, pad_token_id=2))
        packed, _ = sequence_logps(model, pack(EXAMPLES))
        separate = torch.cat([sequence_logps(model, pack([e]))[0] for e in EXAMPLES])
        naive, _ = naive_sequence_logps(model, pad(EXAMPLES, pad_token_id=2))
    for other in (packed, separate, naive):
        torch.testing.assert_close(padded, other, atol=1e-4, rtol=1e-6)


def test_prompt_and_padding_contribute_nothing(model64):
    with torch.no_grad():
        alone, _ = sequence_logps(model64, pack(EXAMPLES[2:3]))
        # More padding, and padding with a different token, change nothing.
        batch = pad(EXAMPLES, pad_token_id=2)
        wider = pad(EXAMPLES + [Encoded([3] * 60, 59)], pad_token_id=7)
        a, _ = sequence_logps(model64, batch)
        b, _ = sequence_logps(model64, wider)
        torch.testing.assert_close(a, b[:4], atol=1e-9, rtol=0)
        torch.testing.assert_close(a[2:3], alone, atol=1e-9, rtol=0)
        # A sequence whose only completion token is the last one scores exactly that
        # token: log p(last | everything before).
        tokens = EXAMPLES[2].input_ids
        logits = model64(input_ids=torch.tensor([tokens])).logits[0, -2]
        torch.testing.assert_close(alone[0], logits.log_softmax(-1)[tokens[-1]], atol=1e-9, rtol=0)


def test_gradient_reaches_prompt_conditioning_but_not_prompt_scores(model64):
    """Changing a prompt token changes the completion's log-prob (it is context) while
    the count of scored tokens stays the completion length."""
    first = Encoded(EXAMPLES[1].input_ids, 10)
    changed = Encoded([EXAMPLES[1].input_ids[0] + 1] + EXAMPLES[1].input_ids[1:], 10)
    with torch.no_grad():
        a, counts = sequence_logps(model64, pack([first, changed]))
    assert counts.tolist() == [20, 20] and a[0] != a[1]


def test_no_grad_keeps_nothing(tiny_llama_dir: Path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():
        summed, _ = sequence_logps(model, pack(EXAMPLES))
    assert summed.grad_fn is None


def _saved_bytes(fn) -> int:
    """Bytes autograd keeps for the backward: the memory a training step holds."""
    total = 0

    def keep(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        fn()
    return total


def test_chunks_do_not_keep_full_vocabulary_logits(tiny_llama_dir: Path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    examples = _examples([(128, 32)] * 4, seed=1)
    batch = pad(examples, pad_token_id=2)
    full_logits = 4 * 128 * VOCAB * 4  # [B, L, V] float32: 100 MB
    naive = _saved_bytes(lambda: naive_sequence_logps(model, batch)[0].sum().backward())
    chunked = _saved_bytes(lambda: sequence_logps(model, batch, chunk_size=64)[0].sum().backward())
    assert naive > 2 * full_logits  # logits and their log-softmax
    assert chunked < full_logits / 10


def test_half_precision_logits_are_normalized_in_float32():
    """What runs on CUDA under bf16 autocast, checked on CPU with a bf16 head."""
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 1000, bias=False)
    hidden, tokens = torch.randn(5, 16), torch.randint(0, 1000, (5,))
    exact = _chunk_logps(head, hidden, tokens)
    half = _chunk_logps(head.to(torch.bfloat16), hidden.to(torch.bfloat16), tokens)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, exact, atol=0.1, rtol=0.02)
