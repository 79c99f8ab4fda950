"""Model fixtures, shared by every test that needs a real model.

Import them into a test module (pytest then offers them to its tests):

    from fixtures_models import model_cache, tiny_llama_dir, smollm2_dir  # noqa: F401

Presets are built once per session: into $THUMBS_MODEL_CACHE when it is set (a
developer who wants conversions to survive between runs sets it), else into one
directory under the session's pytest tmp dir, never the real home. Every module
that imports the fixtures resolves to that same directory, and resolve_model
finds the preset already built there.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.train.models import resolve_model


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Also exported as $THUMBS_MODEL_CACHE for the session, so code under test that
    resolves presets with the default cache (the trainer) uses these builds and never
    writes to the real ~/.cache."""
    if explicit := os.environ.get("THUMBS_MODEL_CACHE"):
        yield Path(explicit)
        return
    # A fixed name under the session base dir rather than mktemp: modules that each
    # import this fixture get their own fixture instance but share the directory.
    path = tmp_path_factory.getbasetemp() / "thumbs-model-cache"
    path.mkdir(exist_ok=True)
    os.environ["THUMBS_MODEL_CACHE"] = str(path)
    try:
        yield path
    finally:
        os.environ.pop("THUMBS_MODEL_CACHE", None)


@pytest.fixture(scope="session")
def tiny_llama_dir(model_cache: Path) -> Path:
    """A random 2-layer Llama (hidden 64) with the SmolLM2 tokenizer: trains in seconds."""
    return resolve_model("tiny-llama", model_cache)


@pytest.fixture(scope="session")
def smollm2_dir(model_cache: Path) -> Path:
    """The real SmolLM2-135M-Instruct, converted from the GGUF (~30 s the first time)."""
    return resolve_model("smollm2-135m", model_cache)


@pytest.fixture(scope="session")
def ending_llama_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-llama whose replies end by themselves after a few tokens (the random one
    never says <|im_end|>): untied lm_head, every token's logit scaled down, and the
    end-of-turn logit made 12 x one hidden unit, so it wins on about a third of steps.
    For tests of what happens to finished, empty and truncated replies."""
    import torch
    from transformers import AutoModelForCausalLM

    from tasks.train.models import load_tokenizer

    target = tmp_path_factory.mktemp("ending-llama")
    tokenizer = load_tokenizer(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    model.config.tie_word_embeddings = False
    weights = model.get_input_embeddings().weight.detach().clone() * 0.1
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    weights[end_of_turn] = 0.0
    weights[end_of_turn, 0] = 12.0
    model.lm_head.weight = torch.nn.Parameter(weights)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
