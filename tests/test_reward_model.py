"""`--algo rm`: the Bradley-Terry loss against numbers worked by hand, a reward model
trained on real HH pairs that loads with AutoModelForSequenceClassification and is
evaluated by its pairwise accuracy with an interval, and that same checkpoint judging a
policy's replies against its reference's (the win rate, with its interval)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from tasks.evaluate.evaluation import evaluate_checkpoint
from tasks.evaluate.reward_model import Judge, win_rate
from tasks.train.checkpoints import read_manifest
from tasks.train.losses import LOSSES, bradley_terry_loss
from tasks.train.models import load_tokenizer
from tasks.train.snapshots import create_snapshot
from tasks.train.trainer import train
from tasks.warehouse.connection import connect
from test_trainer import ingest_hh_slice, tiny_config


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_bradley_terry_loss_metrics_and_gradient_by_hand():
    # Scores: chosen [2, 0], rejected [1, 1] => differences [1, -1].
    chosen = torch.tensor([2.0, 0.0], dtype=torch.float64, requires_grad=True)
    rejected = torch.tensor([1.0, 1.0], dtype=torch.float64)
    loss, metrics = bradley_terry_loss(chosen, rejected)
    assert loss.item() == pytest.approx((-math.log(sig(1)) - math.log(sig(-1))) / 2, rel=1e-12)
    assert metrics == pytest.approx({"rewards_chosen": 1.0, "rewards_rejected": 1.0, "reward_margin": 0.0,
                                     "reward_accuracy": 0.5, "n_pairs": 2.0})
    loss.backward()  # d/d chosen_i of -log σ(d_i) / n = -(1 - σ(d_i)) / 2
    assert chosen.grad.tolist() == pytest.approx([-(1 - sig(1)) / 2, -(1 - sig(-1)) / 2], rel=1e-12)


def test_win_rate_counts_ties_as_half():
    rate = win_rate([3.0, 1.0, 2.0, 0.0], [1.0, 1.0, 5.0, -1.0], seed=0)
    assert rate["win_rate_vs_reference"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert rate["win_rate_vs_reference_n"] == 4
    assert 0.0 <= rate["win_rate_vs_reference_low"] <= 0.625 <= rate["win_rate_vs_reference_high"] <= 1.0


def test_rm_is_a_paired_algorithm_on_a_reward_head():
    assert LOSSES["rm"].batch == "paired" and LOSSES["rm"].model == "reward_model"
    assert not LOSSES["rm"].needs_reference


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> dict:
    home = tmp_path_factory.mktemp("rm-home")
    ingest_hh_slice(home, rows=80)
    with connect(home) as con:
        pairs, feedback = create_snapshot(con, "pairs", home=home), create_snapshot(con, "feedback", home=home)
    result = train(tiny_config(tiny_llama_dir, "rm", "steps=3", "batch_size=4", "lr=1e-3"), pairs,
                   home / "runs" / "rm", home=home)
    return {"home": home, "pairs": pairs, "feedback": feedback, "result": result}


def test_rm_trains_and_loads_as_a_sequence_classifier(reward_model):
    result = reward_model["result"]
    manifest = read_manifest(result["path"])
    assert manifest["algo"] == "rm" and manifest["reference_model"] is None
    assert manifest["snapshot_id"] == reward_model["pairs"].snapshot_id  # same snapshot lineage as every run
    assert {"train_loss", "train_reward_accuracy", "eval_reward_accuracy"} <= set(result["metrics"])
    tokenizer = load_tokenizer(Path(result["path"]))
    model = AutoModelForSequenceClassification.from_pretrained(result["path"])
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    # Loaded the ordinary way, it scores a padded batch as the judge does.
    prompt = [{"role": "user", "content": "How do I boil an egg?"}]
    replies = ["Put it in boiling water for eight minutes.", "No."]
    judge = Judge(result["path"], torch.device("cpu"), max_length=128, batch_size=2)
    expected = judge.scores([prompt, prompt], replies)
    # The same token ids, padded by the tokenizer on its own side and pooled by transformers.
    ids = [judge.encoder.encode(prompt, r).input_ids for r in replies]
    batch = tokenizer.pad({"input_ids": ids}, return_tensors="pt")
    with torch.no_grad():
        scores = model(**batch).logits[:, 0].tolist()
    assert scores == pytest.approx(expected, abs=1e-4)


def test_rm_evaluation_is_pairwise_accuracy_with_an_interval(reward_model):
    evaluated = evaluate_checkpoint(reward_model["result"]["path"], home=reward_model["home"],
                                    eval_snapshot=reward_model["pairs"], device="cpu")
    metrics, n = evaluated["metrics"], len(reward_model["pairs"].split("eval"))
    assert metrics["eval_pairs"] == metrics["eval_reward_accuracy_n"] == n  # the whole eval split (< 1000)
    per_pair = evaluated["per_pair"]
    right = sum(c > r for c, r in zip(per_pair["chosen"], per_pair["rejected"]))
    assert metrics["eval_reward_accuracy"] == pytest.approx(right / n)
    assert metrics["eval_reward_accuracy_low"] <= metrics["eval_reward_accuracy"] <= \
        metrics["eval_reward_accuracy_high"]


def test_a_judge_gives_a_win_rate_against_the_reference(reward_model, tiny_llama_dir):
    home = reward_model["home"]
    policy = train(tiny_config(tiny_llama_dir, "kto", "steps=2"), reward_model["feedback"], home / "runs" / "kto",
                   home=home)
    evaluated = evaluate_checkpoint(policy["path"], home=home, eval_snapshot=reward_model["pairs"], max_pairs=4,
                                    generation_prompts=3, max_new_tokens=6, kl_samples=1, device="cpu",
                                    judge=reward_model["result"]["path"])
    metrics = evaluated["metrics"]
    assert metrics["win_rate_vs_reference_n"] == 3
    outcomes = [1.0 if g["judge_score"] > g["reference_judge_score"] else
                0.5 if g["judge_score"] == g["reference_judge_score"] else 0.0 for g in evaluated["generations"]]
    assert metrics["win_rate_vs_reference"] == pytest.approx(sum(outcomes) / 3)
    assert evaluated["settings"]["judge"] == reward_model["result"]["path"]
    assert all("reference_reply" in g for g in evaluated["generations"])
