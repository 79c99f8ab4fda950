"""Presets, model directories, devices."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from fixtures_models import model_cache, smollm2_dir, tiny_llama_dir  # noqa: F401
from tasks.train import models
from tasks.train.models import (
    autocast_context,
    load_policy,
    load_tokenizer,
    pick_device,
    resolve_model,
    weights_sha256,
)
from tasks.common.settings import ThumbsError


def test_smollm2_conversion(smollm2_dir: Path, model_cache: Path):
    """First in the file: the tiny-llama preset then takes its tokenizer from here
    instead of parsing the GGUF again."""
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config
    started = time.perf_counter()
    assert resolve_model("smollm2-135m", model_cache) == smollm2_dir
    assert time.perf_counter() - started < 0.5  # found, not converted again

    model = load_policy(smollm2_dir, torch.device("cpu")).eval()
    assert model.dtype == torch.float32
    assert abs(sum(p.numel() for p in model.parameters()) - 134_515_008) < 100_000
    tokenizer = load_tokenizer(smollm2_dir)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    reply = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in reply  # a real pretrained model, Q/K un-permuted correctly


def test_tiny_llama_builds_and_loads(tiny_llama_dir: Path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert model.config.model_type == "llama"
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (64, 2)
    assert model.config.vocab_size == 49152
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert "quantization_config" not in json.loads((tiny_llama_dir / "config.json").read_text())


def test_tiny_llama_is_deterministic(tiny_llama_dir: Path, model_cache: Path, tmp_path: Path):
    again = tmp_path / "again"
    models._build_tiny_llama(again, model_cache)
    assert weights_sha256(again) == weights_sha256(tiny_llama_dir)


def test_tokenizer_has_pad_and_chat_template(tiny_llama_dir: Path):
    tokenizer = load_tokenizer(tiny_llama_dir)
    assert tokenizer.pad_token is not None
    assert tokenizer.eos_token == "<|im_end|>"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                         tokenize=False)
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_local_directory_is_returned_as_is(tiny_llama_dir: Path):
    assert resolve_model(str(tiny_llama_dir), Path("/nonexistent")) == tiny_llama_dir


def test_directory_without_config_is_an_error_naming_it(tmp_path: Path):
    with pytest.raises(ThumbsError, match=str(tmp_path)):
        resolve_model(str(tmp_path), tmp_path / "cache")
    with pytest.raises(ThumbsError, match="tiny-llama"):  # the message lists the presets
        resolve_model("no-such-model", tmp_path / "cache")


def test_weights_sha256_follows_the_weights(tiny_llama_dir: Path, tmp_path: Path):
    with pytest.raises(ThumbsError, match="safetensors"):
        weights_sha256(tmp_path)
    model = load_policy(tiny_llama_dir, torch.device("cpu"))
    with torch.no_grad():
        model.model.norm.weight.add_(1.0)
    model.save_pretrained(tmp_path / "changed")
    assert weights_sha256(tmp_path / "changed") != weights_sha256(tiny_llama_dir)


def _fake_builder(calls: list, fail: bool = False):
    def build(target: Path, cache_dir: Path) -> None:
        calls.append(target)
        target.mkdir()
        (target / "model.safetensors").write_bytes(b"half")
        time.sleep(0.2)
        if fail:
            raise KeyboardInterrupt("killed mid-conversion")
        (target / "config.json").write_text("{}")
    return build


def test_a_killed_build_leaves_no_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls: list = []
    monkeypatch.setitem(models.PRESETS, "tiny-llama", _fake_builder(calls, fail=True))
    with pytest.raises(KeyboardInterrupt):
        resolve_model("tiny-llama", tmp_path)
    assert not (tmp_path / "tiny-llama").exists()
    # A SIGKILL leaves its tmp dir behind: the next build clears it.
    (tmp_path / ".tiny-llama.tmp-999-dead").mkdir()
    monkeypatch.setitem(models.PRESETS, "tiny-llama", _fake_builder(calls))
    assert (resolve_model("tiny-llama", tmp_path) / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_concurrent_resolves_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls: list = []
    monkeypatch.setitem(models.PRESETS, "tiny-llama", _fake_builder(calls))
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(resolve_model("tiny-llama", tmp_path)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == [tmp_path / "tiny-llama"] * 3


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ThumbsError, match="expected auto, cpu or cuda"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ThumbsError, match="no CUDA device"):
            pick_device("cuda")


def test_autocast_is_a_no_op_on_cpu():
    a = torch.randn(8, 8)
    with autocast_context(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ a).dtype == torch.float32
    # The CUDA branch is reachable without a GPU: it must not crash, and must not
    # switch CPU autocast on.
    with autocast_context(torch.device("cuda")):
        assert (a @ a).dtype == torch.float32
