"""LoRA on a tiny random Llama and real HH rows: the reference (adapters disabled) scores
exactly like the base model, DPO and KTO steps move the adapters and nothing else, the
merged export gives the adapter's logits, a crashed LoRA run resumes to the uninterrupted
one's adapter, and the DAG (train, evaluate, promote, lineage) takes an adapter checkpoint."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from test_nightly import watched  # noqa: F401
from test_trainer import (assert_same_run, crashed_at_step_3, ingest_hh_slice, run, snapshots,  # noqa: F401
                          tiny_config)
from tasks.common.settings import ThumbsError
from tasks.train import reference_cache
from tasks.train.batching import ChatEncoder
from tasks.train.checkpoints import read_manifest
from tasks.train.data import plan_data
from tasks.train.export import export_checkpoint
from tasks.train.losses import LOSSES
from tasks.train.models import load_policy, with_lora
from tasks.train.objective import Policy, objective_for
from tasks.train.state import TrainingState
from tasks.train.trainer import load_policy_of, load_reference, open_run, train, train_step

LORA = ("lora_r=4", "lora_alpha=8", "lora_dropout=0.0")
CPU = torch.device("cpu")


def encoded_pairs(snapshot, tokenizer, n: int = 6) -> dict:
    encoder = ChatEncoder(tokenizer, 128)
    rows = snapshot.split("train").to_pylist()[:n]
    return {f"{r['row_id']}:{side}": encoder.encode(r["prompt"], r[side])
            for r in rows for side in ("chosen", "rejected")}


def test_reference_with_adapters_disabled_is_the_base_model(home, snapshots, tiny_llama_dir):
    from transformers import AutoTokenizer

    sequences = encoded_pairs(snapshots["pairs"], AutoTokenizer.from_pretrained(tiny_llama_dir))
    policy = with_lora(load_policy(tiny_llama_dir, CPU), r=4, alpha=8, dropout=0.0, targets=None)
    with torch.no_grad():  # adapters away from their zero start, as after training
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)
    policy.train()
    loads = reference_cache.REFERENCE_LOADS
    common = dict(reference_dir=tiny_llama_dir, material={"test": 1}, device=CPU, batch_size=4)
    disabled = reference_cache.reference_logps(sequences, key="disabled", home=home / "a", adapted=policy, **common)
    assert reference_cache.REFERENCE_LOADS == loads  # no second model was loaded
    base = reference_cache.reference_logps(sequences, key="base", home=home / "b", **common)
    assert reference_cache.REFERENCE_LOADS == loads + 1
    assert disabled.logps == base.logps  # bit for bit
    assert policy.training  # back in train mode after the eval-mode reference forwards
    adapted = reference_cache.score(policy, sequences, device=CPU, batch_size=4)
    assert all(abs(adapted[k] - base.logps[k]) > 1e-4 for k in sequences)  # the adapters do act when enabled


@pytest.mark.parametrize("algo", ["dpo", "kto"])
def test_lora_steps_change_the_adapters_and_not_one_base_weight(algo, home, snapshots, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, algo, *LORA, "steps=2", "eval_batches=0", "lr=1e-2")
    snapshot = snapshots["pairs" if LOSSES[algo].batch == "paired" else "feedback"]
    started = open_run(config, snapshot, home / "runs" / algo, run_id=None, home=home, resume=False,
                       started=time.perf_counter())
    data = plan_data(snapshot, config, ChatEncoder(started.tokenizer, config.max_length), LOSSES[algo].needs_kl_rows)
    model = load_policy_of(started)
    objective = objective_for(config, data.trained_labels, *load_reference(started, data, lambda e: None, model))
    assert objective.reference_model["adapters_disabled"] is True
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    state = TrainingState.start(Policy(model.train(), CPU, config.packing, started.tokenizer.pad_token_id), config)
    for step in (1, 2):
        train_step(state, objective, data.train.for_step(step, config.grad_accum), config)
    after = dict(model.named_parameters())
    adapters = [k for k in before if "lora_" in k]
    assert adapters and all(after[k].requires_grad for k in adapters)
    assert all(not after[k].requires_grad and torch.equal(after[k], before[k]) for k in before if k not in adapters)
    assert any(not torch.equal(after[k], before[k]) for k in adapters if "lora_B" in k)


def test_lora_checkpoint_merged_export_loads_with_the_adapters_logits(home, snapshots, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, "dpo", *LORA, "steps=2", "eval_batches=0", "lr=1e-2")
    result = run(home, snapshots["pairs"], config, "lora")
    checkpoint = Path(result["path"])
    files = {p.name for p in checkpoint.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "manifest.json"} <= files
    assert not (checkpoint / "model.safetensors").exists()  # the adapter only: kilobytes, not the model
    manifest = read_manifest(checkpoint)
    assert manifest["adapter"]["type"] == "lora" and manifest["adapter"]["r"] == 4
    assert manifest["base_model"]["path"] == str(tiny_llama_dir)
    with pytest.raises(ThumbsError, match="--merge"):
        export_checkpoint(result["checkpoint_id"], merge=False, home=home)
    exported = export_checkpoint(result["checkpoint_id"], merge=True, home=home)
    assert exported == home / "exports" / result["checkpoint_id"]
    assert read_manifest(exported)["export"]["merged_adapter"] == manifest["adapter"]

    ids = torch.tensor([[1, 17, 230, 4021, 9, 77, 12]])
    with torch.no_grad():
        adapter_on = AutoModelForCausalLM.from_pretrained(checkpoint).eval()(input_ids=ids).logits  # peft follows it
        merged = AutoModelForCausalLM.from_pretrained(exported).eval()(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()(input_ids=ids).logits
    torch.testing.assert_close(merged, adapter_on, atol=1e-5, rtol=0)
    assert (adapter_on - base).abs().max() > 1e-3  # trained adapters: the comparison is not vacuous
    with pytest.raises(ThumbsError, match="already exists"):
        export_checkpoint(result["checkpoint_id"], merge=True, home=home)


def test_a_crashed_lora_run_resumes_to_the_uninterrupted_adapter(home, snapshots, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, "kto", *LORA, "lora_dropout=0.1", "steps=4", "save_every=2",
                         "warmup_steps=1", "eval_batches=0", "lr=1e-2")
    uninterrupted = run(home, snapshots["feedback"], config, "uninterrupted")

    run_dir = home / "runs" / "crashed"
    crashed_at_step_3(config, snapshots["feedback"], run_dir, home)
    saved = torch.load(run_dir / "state.pt", weights_only=False)["model"]
    assert saved and all("lora_" in k for k in saved)  # the state holds the adapter, not the frozen base
    resumed = train(config, snapshots["feedback"], run_dir, home=home, resume=True)
    assert read_manifest(resumed["path"])["training"]["resumed_at_step"] == 2
    assert_same_run(resumed, uninterrupted, weights="adapter_model.safetensors")


def test_qlora_without_bitsandbytes_is_one_clear_error(tiny_llama_dir):
    with pytest.raises(ThumbsError, match="^qlora=true: needs the bitsandbytes package"):
        with_lora(load_policy(tiny_llama_dir, CPU), r=4, alpha=8, dropout=0.0, targets=None, qlora=True)
    with pytest.raises(ThumbsError, match=r"^lora_targets=\['no_such_proj'\]"):
        with_lora(load_policy(tiny_llama_dir, CPU), r=4, alpha=8, dropout=0.0, targets=["no_such_proj"])


def test_nightly_trains_evaluates_and_promotes_a_lora_checkpoint(watched, home, prefect_harness, model_cache):
    from flows.cli import main as thumbs
    from flows.nightly import nightly_flow
    from tasks.lineage.history import lineage_lines
    from test_nightly import TRAINING

    report = nightly_flow(str(watched / "sources.yaml"), algo="kto", overrides=[*TRAINING, *LORA], home=str(home))
    assert report.trained and report.promoted and report.failed_step is None
    manifest = read_manifest(report.checkpoint_path)
    assert manifest["adapter"]["r"] == 4 and manifest["reference_model"]["adapters_disabled"] is True
    # evaluated against the base it adapts: a finite KL, measured on the eval pairs
    assert report.metrics["kl_to_reference"] >= 0 and report.metrics["eval_pairs"] > 0
    champion = home / "checkpoints" / "champion"
    assert champion.resolve() == Path(report.checkpoint_path).resolve()
    AutoModelForCausalLM.from_pretrained(champion)  # serving's load follows the adapter to its base
    lineage = "\n".join(lineage_lines("champion", home))
    assert "adapter       LoRA r=4 alpha=8.0" in lineage
    assert f"weights sha256 {manifest['base_model']['weights_sha256'][:16]}" in lineage

    out = home / "merged-champion"
    assert thumbs(["--home", str(home), "export", report.checkpoint_id, "--merge", "--out", str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert thumbs(["--home", str(home), "export", report.checkpoint_id, "--out", str(home / "again")]) == 1
