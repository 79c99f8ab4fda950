"""Offline PPO (`--algo ppo`): the loss against numbers worked by hand from its formula,
and the whole run on a tiny random Llama: the value head trains beside the policy, is
resumed with it, and stays out of the checkpoint, which loads with from_pretrained."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from tasks.common.settings import ThumbsError
from tasks.train.algorithms import LOSSES
from tasks.train.losses import ppo_loss
from tasks.train.trainer import train
from test_trainer import assert_same_run, crashed_at_step_3, metrics_lines, snapshots, tiny_config  # noqa: F401

# Two rows: row 0 desirable with two completion tokens, row 1 undesirable with one.
# β 0.5, GAE λ 0.5, both clip ranges 0.2, value weight 0.1.
HYPER = dict(beta=0.5, gae_lambda=0.5, clip_range=0.2, value_clip_range=0.2, value_coef=0.1)
OLD_TOKEN_LOGPS = [-1.0, -2.0, -1.5]
REFERENCE_LOGPS = [-3.5, -1.0]
OLD_VALUES = [0.2, 0.4, 0.1]
TOKEN_LOGPS = [-0.8, -2.0, -1.2]
VALUES = [0.5, 0.4, -0.2]
SEQUENCE = [0, 0, 1]


def hand_worked() -> dict[str, float]:
    """The loss and its pieces, from the formula, by hand."""
    # Final rewards: ±1 − β·KL with KL = Σ old log-probs − reference: row 0 −3 + 3.5 = 0.5, row 1 −1.5 + 1 = −0.5.
    reward_0, reward_1 = 1 - 0.5 * 0.5, -1 - 0.5 * -0.5  # 0.75, −0.75
    # GAE (γ 1, λ 0.5) over the old values; V after a row's last token is 0.
    a_01 = reward_0 + 0 - 0.4  # 0.35
    a_00 = (0 + 0.4 - 0.2) + 0.5 * a_01  # 0.375
    a_10 = reward_1 + 0 - 0.1  # −0.85
    advantages = [a_00, a_01, a_10]
    returns = [a + v for a, v in zip(advantages, OLD_VALUES)]  # 0.575, 0.75, −0.75
    ratios = [math.exp(0.2), 1.0, math.exp(0.3)]  # token 0 beyond 1.2, token 2 beyond too
    # token 0: A > 0, ratio clipped to 1.2 → −1.2·A; token 1: −A; token 2: A < 0, min takes the unclipped ratio·A
    policy_terms = [-1.2 * a_00, -a_01, -ratios[2] * a_10]
    # values: token 0 moves 0.3 from 0.2, clipped to 0.4; token 2 moves −0.3 from 0.1, clipped to −0.1
    value_terms = [0.5 * max((0.5 - returns[0]) ** 2, (0.4 - returns[0]) ** 2),
                   0.5 * (0.4 - returns[1]) ** 2,
                   0.5 * max((-0.2 - returns[2]) ** 2, (-0.1 - returns[2]) ** 2)]
    policy_loss, value_loss = sum(policy_terms) / 3, sum(value_terms) / 3
    return {"loss": policy_loss + 0.1 * value_loss, "policy_loss": policy_loss, "value_loss": value_loss,
            "advantage": sum(advantages) / 3, "a_01": a_01, "a_10": a_10, "ratio_2": ratios[2],
            "returns_2": returns[2]}


def ppo_inputs(**changes) -> dict:
    f64 = dict(dtype=torch.float64)
    inputs = dict(token_logps=torch.tensor(TOKEN_LOGPS, **f64, requires_grad=True),
                  old_token_logps=torch.tensor(OLD_TOKEN_LOGPS, **f64),
                  values=torch.tensor(VALUES, **f64, requires_grad=True), old_values=torch.tensor(OLD_VALUES, **f64),
                  token_sequence=torch.tensor(SEQUENCE), desirable=torch.tensor([True, False]),
                  reference_logps=torch.tensor(REFERENCE_LOGPS, **f64), **HYPER)
    inputs.update(changes)
    return inputs


def test_ppo_loss_and_metrics_match_the_hand_worked_case():
    expected = hand_worked()
    loss, metrics = ppo_loss(**ppo_inputs())
    assert loss.item() == pytest.approx(expected["loss"], rel=1e-12)
    assert metrics["policy_loss"] == pytest.approx(expected["policy_loss"], rel=1e-12)
    assert metrics["value_loss"] == pytest.approx(expected["value_loss"], rel=1e-12)
    assert metrics["advantage"] == pytest.approx(expected["advantage"], rel=1e-12)
    assert metrics["clip_fraction"] == pytest.approx(2 / 3)  # tokens 0 and 2 lie beyond 1 ± 0.2
    assert metrics["kl"] == pytest.approx(0.0)  # (0.5 + −0.5) / 2
    # β·(Σ current log-probs − reference): row 0 0.5·(−2.8 + 3.5), row 1 0.5·(−1.2 + 1)
    assert metrics["rewards_chosen"] == pytest.approx(0.35) and metrics["rewards_rejected"] == pytest.approx(-0.1)
    assert (metrics["n_desirable"], metrics["n_undesirable"]) == (1.0, 1.0)


def test_ppo_gradients_stop_where_the_clip_binds():
    expected = hand_worked()
    inputs = ppo_inputs()
    ppo_loss(**inputs)[0].backward()
    token_grad, value_grad = inputs["token_logps"].grad.tolist(), inputs["values"].grad.tolist()
    # d/dlogp of −ratio·A is −ratio·A; /3 for the mean. The clipped token 0 gets none.
    assert token_grad == pytest.approx([0.0, -expected["a_01"] / 3, -expected["ratio_2"] * expected["a_10"] / 3])
    # Value loss: token 0's clipped branch is the max, so its value gets no gradient; token 2's too;
    # token 1: 0.1 · (v − G) / 3.
    assert value_grad == pytest.approx([0.0, 0.1 * (0.4 - 0.75) / 3, 0.0])


def test_ppo_first_pass_is_a_policy_gradient_with_a_value_baseline():
    # ratio 1 and values at their first pass: nothing clips, loss = −mean A + weight · value error.
    inputs = ppo_inputs(token_logps=torch.tensor(OLD_TOKEN_LOGPS, dtype=torch.float64, requires_grad=True),
                        values=torch.tensor(OLD_VALUES, dtype=torch.float64, requires_grad=True))
    loss, metrics = ppo_loss(**inputs)
    advantages = [0.375, 0.35, -0.85]
    returns = [0.575, 0.75, -0.75]
    value_loss = sum(0.5 * (v - g) ** 2 for v, g in zip(OLD_VALUES, returns)) / 3
    assert loss.item() == pytest.approx(-sum(advantages) / 3 + 0.1 * value_loss, rel=1e-12)
    assert metrics["clip_fraction"] == 0.0


def test_ppo_refuses_tokens_that_do_not_make_one_run_per_row():
    with pytest.raises(ValueError, match="contiguous run"):
        ppo_loss(**ppo_inputs(token_sequence=torch.tensor([0, 1, 0])))
    with pytest.raises(ValueError, match="at least one token"):
        ppo_loss(**ppo_inputs(token_sequence=torch.tensor([0, 0, 0])))


def test_a_ppo_run_trains_policy_and_value_head_and_checkpoints_the_policy_alone(home, snapshots, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, "ppo", "steps=3", "ppo_epochs=2")
    result = train(config, snapshots["feedback"], home / "runs" / "ppo", home=home)
    before = load_file(tiny_llama_dir / "model.safetensors")
    after = load_file(Path(result["path"]) / "model.safetensors")
    assert before.keys() == after.keys()  # no value_head.* in the policy's weights
    assert any(not torch.equal(before[k], after[k]) for k in before)
    records = metrics_lines(result)
    assert [r["step"] for r in records] == [1, 2, 3]
    # The second pass over each batch takes its ratios against the first: some tokens move
    # past the clip range at lr 1e-3, and the value head, zero at the start, learns.
    assert any(r["clip_fraction"] > 0 for r in records)
    assert records[0]["value"] != 0.0 or records[-1]["value"] != 0.0
    assert {"policy_loss", "value_loss", "advantage", "kl", "eval_loss"} <= records[-1].keys()
    manifest = json.loads((Path(result["path"]) / "manifest.json").read_text())
    assert manifest["hyperparameters"]["clip_range"] == 0.2 and manifest["hyperparameters"]["ppo_epochs"] == 2
    model = AutoModelForCausalLM.from_pretrained(result["path"])
    assert not hasattr(model, "value_head")


def test_a_killed_ppo_run_resumes_to_the_uninterrupted_weights(home, snapshots, tiny_llama_dir):
    # The resumable state must hold the value head: without it, the resumed steps' advantages differ.
    config = tiny_config(tiny_llama_dir, "ppo", "steps=4", "save_every=2", "warmup_steps=1")
    uninterrupted = train(config, snapshots["feedback"], home / "runs" / "ppo-whole", home=home)

    run_dir = home / "runs" / "ppo-crashed"
    crashed_at_step_3(config, snapshots["feedback"], run_dir, home)
    state = torch.load(run_dir / "state.pt", weights_only=False)
    assert {"value_head.weight", "value_head.bias"} <= state["model"].keys()
    resumed = train(config, snapshots["feedback"], run_dir, home=home, resume=True)
    assert_same_run(resumed, uninterrupted)


def test_ppo_with_lora_is_refused_in_one_line(home, snapshots, tiny_llama_dir):
    config = tiny_config(tiny_llama_dir, "ppo", "lora_r=4")
    with pytest.raises(ThumbsError, match="value head"):
        train(config, snapshots["feedback"], home / "runs" / "ppo-lora", home=home)


def test_ppo_is_a_thumbs_algorithm_with_a_reference_and_a_value_head():
    spec = LOSSES["ppo"]
    assert spec.batch == "unpaired" and spec.needs_reference and spec.needs_value_head and not spec.needs_kl_rows
    assert [name for name, s in LOSSES.items() if s.needs_value_head] == ["ppo"]
