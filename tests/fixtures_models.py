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
