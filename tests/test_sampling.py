"""The sampler on the tiny random Llama: seeded per row, batch-independent, KV cache right."""
from __future__ import annotations

import pytest
import torch

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from tasks.generate.sampling import Generation, SamplingSettings, encode_prompt, generate, load_generator

PROMPTS = [
    [{"role": "user", "content": "How do I boil an egg?"}],
    [{"role": "user", "content": "Tell me a long story about a dragon who learns to cook soup."},
     {"role": "assistant", "content": "Once upon a time."}, {"role": "user", "content": "Go on."}],
    "Plain text prompt",
    [{"role": "user", "content": "Hi"}],
]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    _, model, tokenizer = load_generator(str(tiny_llama_dir), device="cpu")
    return model, tokenizer


def test_same_seed_same_replies_whatever_the_batch(tiny):
    model, tokenizer = tiny
    settings = SamplingSettings(seed=7, temperature=1.0, top_p=0.9, max_new_tokens=6)
    one_by_one = generate(model, tokenizer, PROMPTS, settings=settings, batch_size=1)
    reversed_in_threes = generate(model, tokenizer, PROMPTS[::-1], settings=settings, batch_size=3)[::-1]
    assert one_by_one == reversed_in_threes
    assert all(isinstance(g, Generation) and g.token_count == 6 and g.truncated for g in one_by_one)
    other_seed = generate(model, tokenizer, PROMPTS[:1], settings=SamplingSettings(
        seed=8, temperature=1.0, top_p=0.9, max_new_tokens=6))
    assert other_seed[0] != one_by_one[0]


def test_keys_make_distinct_draws_of_one_prompt(tiny):
    model, tokenizer = tiny
    settings = SamplingSettings(seed=1, temperature=1.0, top_p=1.0, max_new_tokens=6)
    a, b = generate(model, tokenizer, [PROMPTS[0]] * 2, settings=settings, keys=["a", "b"])
    again = generate(model, tokenizer, [PROMPTS[0]], settings=settings, keys=["b"])[0]
    assert a.text != b.text and again == b


def test_greedy_with_cache_matches_full_forwards(tiny):
    """The left-padded, cached loop picks the tokens a plain argmax over whole
    sequences picks, for the longest and the shortest (most padded) prompt."""
    model, tokenizer = tiny
    settings = SamplingSettings(temperature=0, max_new_tokens=8)
    replies = generate(model, tokenizer, PROMPTS, settings=settings, batch_size=4)
    for prompt, reply in zip(PROMPTS, replies):
        ids = encode_prompt(tokenizer, prompt)
        expected = []
        with torch.no_grad():
            for _ in range(8):
                token = int(model(input_ids=torch.tensor([ids + expected])).logits[0, -1].argmax())
                if token in (tokenizer.eos_token_id,):
                    break
                expected.append(token)
        assert reply.token_count == len(expected)
        assert reply.text == tokenizer.decode(expected, skip_special_tokens=True).strip()
        assert reply.truncated == (len(expected) == 8)
