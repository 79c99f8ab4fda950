"""Chat-template tokenization, truncation, length buckets, padding and packing."""
from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from tasks.train.batching import ChatEncoder, Encoded, bucket_batches, encode_example, pack, pad, truncate, turn_end_ids
from tasks.train.models import load_tokenizer

PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir: Path):
    return load_tokenizer(tiny_llama_dir)


def test_sequence_is_what_generation_produces(tokenizer):
    encoded = encode_example(tokenizer, PROMPT, "Blue, like the sky.", max_length=256)
    header = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert encoded.input_ids[:encoded.prompt_length] == list(header)
    assert encoded.input_ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    # The same tokens as the template renders for the whole conversation, minus the
    # newline after <|im_end|> that generation never emits.
    whole = tokenizer.apply_chat_template(PROMPT + [{"role": "assistant", "content": "Blue, like the sky."}],
                                          tokenize=True, return_dict=False)
    assert list(whole) == encoded.input_ids + tokenizer.encode("\n", add_special_tokens=False)
    completion = [t for t, m in zip(encoded.input_ids, encoded.completion_mask) if m]
    assert tokenizer.decode(completion) == "Blue, like the sky.<|im_end|>"
    assert not encoded.truncated


def test_turn_end_is_im_end(tokenizer):
    assert tokenizer.convert_ids_to_tokens(turn_end_ids(tokenizer)) == ["<|im_end|>"]


def test_each_prompt_is_tokenized_once(tokenizer, monkeypatch: pytest.MonkeyPatch):
    encoder = ChatEncoder(tokenizer, max_length=256)
    renders = []
    original = tokenizer.apply_chat_template
    monkeypatch.setattr(tokenizer, "apply_chat_template", lambda *a, **k: renders.append(1) or original(*a, **k))
    first = encoder.encode(PROMPT, "Red.")
    second = encoder.encode([dict(m) for m in PROMPT], "Green.")  # equal, not the same object
    assert first.input_ids[:first.prompt_length] == second.input_ids[:second.prompt_length]
    assert len(renders) == 2  # the turn-end probe, then the prompt once


def test_encoding_a_snapshot_is_fast(tokenizer):
    prompts = [[{"role": "user", "content": f"Question {i}: " + "words " * (i % 50)}] for i in range(200)]
    encoder = ChatEncoder(tokenizer, max_length=512)
    started = time.perf_counter()
    for row in range(4000):
        encoder.encode(prompts[row % 200], f"Answer {row}, " + "more " * (row % 30))
    assert time.perf_counter() - started < 10  # ~1 s here; generous for loaded CI machines


def test_truncation_keeps_the_completion_and_the_latest_turns():
    prompt, reply = list(range(100)), list(range(1000, 1010))
    kept = truncate(prompt, reply, max_length=40)
    assert kept.input_ids == prompt[-30:] + reply and kept.prompt_length == 30 and kept.truncated
    assert truncate(prompt, reply, 200) == Encoded(prompt + reply, 100)


def test_truncation_cuts_a_long_completion_from_the_right():
    prompt, reply = list(range(30)), list(range(1000, 1100))
    kept = truncate(prompt, reply, max_length=40)
    assert kept.prompt_length == 20  # the prompt keeps half the window
    assert kept.input_ids == prompt[-20:] + reply[:20]
    short_prompt = truncate(list(range(5)), reply, max_length=40)
    assert short_prompt.input_ids == list(range(5)) + reply[:35]


def test_truncated_encoding_still_ends_with_the_assistant_header(tokenizer):
    long_prompt = [{"role": "user", "content": "blah " * 300}, {"role": "user", "content": "Last question?"}]
    encoded = encode_example(tokenizer, long_prompt, "Short answer.", max_length=64)
    assert len(encoded.input_ids) <= 64 and encoded.truncated
    assert tokenizer.decode(encoded.input_ids).endswith(
        "Last question?<|im_end|>\n<|im_start|>assistant\nShort answer.<|im_end|>")


def test_bucket_batches_are_deterministic_and_cover_every_row():
    lengths = [random.Random(i).randint(5, 500) for i in range(1000)]
    batches = bucket_batches(lengths, batch_size=8, seed=7)
    assert batches == bucket_batches(lengths, batch_size=8, seed=7)
    assert batches != bucket_batches(lengths, batch_size=8, seed=8)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert all(len(batch) == 8 for batch in batches)

    def padding(groups):
        return sum(max(lengths[i] for i in g) * len(g) - sum(lengths[i] for i in g) for g in groups)

    unbucketed = [list(range(i, i + 8)) for i in range(0, 1000, 8)]
    assert padding(batches) < padding(unbucketed) / 5


def test_bucket_batches_without_shuffle_go_longest_first():
    batches = bucket_batches([3, 9, 1, 7, 5], batch_size=2, seed=0, shuffle=False)
    assert batches == [[1, 3], [4, 0], [2]]


def _examples() -> list[Encoded]:
    return [Encoded([5, 6, 7, 8, 9], 3), Encoded([10, 11, 12], 1), Encoded([13, 14, 15, 16], 2)]


def test_pad_masks_come_from_lengths():
    batch = pad(_examples(), pad_token_id=2)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9], [10, 11, 12, 2, 2], [13, 14, 15, 16, 2]]
    assert batch.attention_mask.tolist() == [[1] * 5, [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]
    assert batch.completion_mask.int().tolist() == [[0, 0, 0, 1, 1], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0]]


def test_pack_restarts_positions_per_sequence():
    batch = pack(_examples())
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3]]
    assert batch.completion_mask.int().tolist() == [[0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1]]
    assert batch.cu_seqlens.tolist() == [0, 5, 8, 12]
    assert batch.sequence_index.tolist() == [[0] * 5 + [1] * 3 + [2] * 4]


def test_a_sequence_without_prompt_is_refused():
    with pytest.raises(ValueError, match="prompt token"):
        pack([Encoded([1, 2], 0)])


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_forward_equals_separate_forwards(tiny_llama_dir: Path, attention: str):
    """transformers builds a block-diagonal causal mask from position_ids restarts when
    attention_mask is None and no KV cache is in use: nothing leaks across sequences."""
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation=attention).eval()
    generator = torch.Generator().manual_seed(0)
    examples = [Encoded(torch.randint(3, 49152, (n,), generator=generator).tolist(), 1) for n in (9, 1, 17, 4)]
    batch = pack(examples)
    with torch.no_grad():
        packed = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits[0]
        separate = torch.cat([model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0]
                              for e in examples])
    torch.testing.assert_close(packed, separate, atol=1e-5, rtol=0)
