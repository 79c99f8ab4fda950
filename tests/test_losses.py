"""Every loss against numbers worked by hand from the papers' formulas.

Expected values are arithmetic on literals (math.exp / math.log), never a call
to the function under test.
"""
from __future__ import annotations

import inspect
import math

import pytest
import torch

from tasks.train.losses import (
    CSFT_CONTROL_TOKENS,
    LOSSES,
    csft_loss,
    dpo_loss,
    ipo_loss,
    kto_lambdas,
    kto_loss,
    mismatched_indices,
    sft_loss,
    slic_loss,
)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def t(*values, dtype=torch.float64, grad=False) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, requires_grad=grad)


def flags(*values: bool) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool)


# A mixed KTO batch, worked by hand (β = 0.1):
#   r   = policy − reference = [1, −1, 1, −2], labels [D, U, U, D]
#   KL rows: kl_policy − kl_reference = [1, 0, 1, 1] ⇒ z0 = max(0, 0.75) = 0.75
POLICY = (-10.0, -12.0, -8.0, -20.0)
REFERENCE = (-11.0, -11.0, -9.0, -18.0)
KL_POLICY = (-15.0, -14.0, -13.0, -12.0)
KL_REFERENCE = (-16.0, -14.0, -14.0, -13.0)
LABELS = (True, False, False, True)


def mixed_batch(grad=False, **kwargs):
    policy = t(*POLICY, grad=grad)
    kl_policy = t(*KL_POLICY, grad=grad)
    loss, metrics = kto_loss(policy, t(*REFERENCE), kl_policy, t(*KL_REFERENCE), flags(*LABELS), **kwargs)
    return loss, metrics, policy, kl_policy


def test_kto_mixed_batch_z0_values_and_loss():
    loss, metrics, _, _ = mixed_batch(beta=0.1)
    values = [
        sig(0.1 * (1 - 0.75)),     # desirable, r = 1
        sig(0.1 * (0.75 - (-1))),  # undesirable, r = −1
        sig(0.1 * (0.75 - 1)),     # undesirable, r = 1
        sig(0.1 * (-2 - 0.75)),    # desirable, r = −2
    ]
    assert metrics["kl"] == pytest.approx(0.75)
    assert loss.item() == pytest.approx(sum(1 - v for v in values) / 4, rel=1e-12)
    assert metrics["n_desirable"] == 2 and metrics["n_undesirable"] == 2
    assert metrics["rewards_chosen"] == pytest.approx((0.1 * 1 + 0.1 * -2) / 2)
    assert metrics["rewards_rejected"] == pytest.approx((0.1 * -1 + 0.1 * 1) / 2)
    assert metrics["reward_margin"] == pytest.approx(-0.05 - 0.0)
    # right side of z0: ex0 (1 > 0.75) and ex1 (−1 < 0.75) yes; ex2 (1 < 0.75) and ex3 (−2 > 0.75) no
    assert metrics["reward_accuracy"] == pytest.approx(0.5)


def test_kto_lambda_weighting():
    loss, _, _, _ = mixed_batch(beta=0.1, lambda_d=2.0, lambda_u=0.5)
    expected = (
        (2.0 - 2.0 * sig(0.1 * (1 - 0.75)))
        + (0.5 - 0.5 * sig(0.1 * (0.75 + 1)))
        + (0.5 - 0.5 * sig(0.1 * (0.75 - 1)))
        + (2.0 - 2.0 * sig(0.1 * (-2 - 0.75)))
    ) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_kto_z0_clamped_at_zero_when_mismatched_mean_is_negative():
    # KL rows r = [−3, −1] ⇒ mean −2 ⇒ z0 = 0
    loss, metrics = kto_loss(t(-5.0, -7.0), t(-6.0, -6.0), t(-9.0, -9.0), t(-6.0, -8.0), flags(True, False), beta=0.5)
    assert metrics["kl"] == 0.0
    expected = ((1 - sig(0.5 * (1 - 0))) + (1 - sig(0.5 * (0 - (-1))))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_kto_z0_has_no_gradient_and_policy_gradient_matches_hand_derivative():
    beta, z0, n = 0.1, 0.75, 4
    loss, _, policy, kl_policy = mixed_batch(grad=True, beta=beta, lambda_d=2.0, lambda_u=0.5)
    loss.backward()
    assert kl_policy.grad is None or torch.all(kl_policy.grad == 0)

    def dsig(s: float) -> float:
        return sig(s) * (1 - sig(s))

    # desirable: d(λ_D − λ_D σ(β(r − z0)))/dr = −λ_D β σ'(β(r − z0))
    # undesirable: d(λ_U − λ_U σ(β(z0 − r)))/dr = +λ_U β σ'(β(z0 − r)); each divided by n for the mean
    expected = [
        -2.0 * beta * dsig(beta * (1 - z0)) / n,
        +0.5 * beta * dsig(beta * (z0 - (-1))) / n,
        +0.5 * beta * dsig(beta * (z0 - 1)) / n,
        -2.0 * beta * dsig(beta * (-2 - z0)) / n,
    ]
    assert policy.grad.tolist() == pytest.approx(expected, rel=1e-10)


def test_kto_all_desirable_batch():
    # r = [2, −1]; KL rows [0.5, 1.5] ⇒ z0 = 1
    loss, metrics = kto_loss(t(-8.0, -11.0), t(-10.0, -10.0), t(-4.5, -3.5), t(-5.0, -5.0), flags(True, True), beta=0.2)
    expected = ((1 - sig(0.2 * (2 - 1))) + (1 - sig(0.2 * (-1 - 1)))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert metrics["n_undesirable"] == 0 and "rewards_rejected" not in metrics and "reward_margin" not in metrics
    assert metrics["rewards_chosen"] == pytest.approx((0.2 * 2 + 0.2 * -1) / 2)


def test_kto_all_undesirable_batch():
    # r = [2, −1], z0 = 1 as above; λ_U = 3
    loss, metrics = kto_loss(t(-8.0, -11.0), t(-10.0, -10.0), t(-4.5, -3.5), t(-5.0, -5.0), flags(False, False),
                             beta=0.2, lambda_u=3.0)
    expected = ((3 - 3 * sig(0.2 * (1 - 2))) + (3 - 3 * sig(0.2 * (1 - (-1))))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert metrics["n_desirable"] == 0 and "rewards_chosen" not in metrics
    assert metrics["reward_accuracy"] == pytest.approx(0.5)  # only r = −1 sits below z0 = 1


def test_kto_kl_reduce_is_applied_to_the_mean_before_the_clamp():
    seen = []

    def other_device_says_3(local: torch.Tensor) -> torch.Tensor:
        seen.append(local.item())
        return (local + 3.0) / 2  # an all-reduce-mean with one other device

    # local KL rows r = [−2, 0] ⇒ local mean −1; reduced (−1 + 3)/2 = 1 ⇒ z0 = 1
    # (clamping first would give (0 + 3)/2 = 1.5)
    loss, metrics = kto_loss(t(-5.0, -5.0), t(-5.0, -5.0), t(-3.0, -2.0), t(-1.0, -2.0), flags(True, False),
                             beta=0.1, kl_reduce=other_device_says_3)
    assert seen == [-1.0]
    assert metrics["kl"] == pytest.approx(1.0)
    assert loss.item() == pytest.approx(((1 - sig(0.1 * (0 - 1))) + (1 - sig(0.1 * (1 - 0)))) / 2, rel=1e-12)


def test_kto_without_kl_rows_uses_z0_zero_and_still_calls_kl_reduce():
    calls = []
    loss, metrics = kto_loss(t(-4.0), t(-5.0), t(), t(), flags(True), beta=0.1,
                             kl_reduce=lambda local: calls.append(local.item()) or local)
    assert calls == [0.0]  # every rank joins the collective, even a rank with no KL rows
    assert metrics["kl"] == 0.0
    assert loss.item() == pytest.approx(1 - sig(0.1 * 1), rel=1e-12)


def test_kto_rejects_empty_and_mismatched_batches():
    with pytest.raises(ValueError, match="empty"):
        kto_loss(t(), t(), t(), t(), flags())
    with pytest.raises(ValueError, match="lengths differ"):
        kto_loss(t(1.0, 2.0), t(1.0), t(), t(), flags(True, False))


@pytest.mark.parametrize(
    ("n_desirable", "n_undesirable", "expected"),
    [(1, 10, (10.0, 1.0)), (10, 1, (1.0, 10.0)), (1, 1, (1.0, 1.0)), (7, 7, (1.0, 1.0)), (300, 400, (4 / 3, 1.0))],
)
def test_kto_lambdas_put_the_weighted_ratio_in_the_papers_interval(n_desirable, n_undesirable, expected):
    lambda_d, lambda_u = kto_lambdas(n_desirable, n_undesirable)
    assert (lambda_d, lambda_u) == pytest.approx(expected)
    assert 1.0 - 1e-12 <= lambda_d * n_desirable / (lambda_u * n_undesirable) <= 4 / 3
    assert min(lambda_d, lambda_u) == 1.0


def test_kto_lambdas_papers_example_and_zero_counts():
    lambda_d, lambda_u = kto_lambdas(100, 1000)  # 1:10 ⇒ λ_U = 1, λ_D ∈ [10, 10.33]
    assert lambda_u == 1.0 and 10.0 <= lambda_d <= 10.0 + 1 / 3
    assert kto_lambdas(0, 5) == (1.0, 1.0)
    assert kto_lambdas(5, 0) == (1.0, 1.0)
    assert kto_lambdas(0, 0) == (1.0, 1.0)
    with pytest.raises(ValueError):
        kto_lambdas(-1, 3)


# DPO pairs (β = 0.1): chosen r = [1, −1], rejected r = [−1, 0] ⇒ h = [2, −1]
DPO_ARGS = (t(-5.0, -9.0), t(-7.0, -6.0), t(-6.0, -8.0), t(-6.0, -6.0))


def test_dpo():
    loss, metrics = dpo_loss(*DPO_ARGS, beta=0.1)
    expected = (-math.log(sig(0.1 * 2)) - math.log(sig(0.1 * -1))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert metrics["rewards_chosen"] == pytest.approx((0.1 - 0.1) / 2)
    assert metrics["rewards_rejected"] == pytest.approx((-0.1 + 0.0) / 2)
    assert metrics["reward_margin"] == pytest.approx(0.05)
    assert metrics["reward_accuracy"] == pytest.approx(0.5)
    assert metrics["n_pairs"] == 2


def test_dpo_label_smoothing():
    loss, _ = dpo_loss(*DPO_ARGS, beta=0.1, label_smoothing=0.1)
    expected = (
        (-0.9 * math.log(sig(0.2)) - 0.1 * math.log(sig(-0.2)))
        + (-0.9 * math.log(sig(-0.1)) - 0.1 * math.log(sig(0.1)))
    ) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError):
        dpo_loss(*DPO_ARGS, label_smoothing=0.7)


def test_ipo_uses_length_averaged_logps():
    # averaged chosen r = [4/2, −3/3] = [2, −1]; rejected r = [0/4, 4/2] = [0, 2] ⇒ h = [2, −3]; 1/(2β) = 5
    loss, metrics = ipo_loss(t(-10.0, -30.0), t(-20.0, -8.0), t(-14.0, -27.0), t(-20.0, -12.0), beta=0.1,
                             chosen_lengths=t(2.0, 3.0), rejected_lengths=t(4.0, 2.0))
    assert loss.item() == pytest.approx(((2 - 5) ** 2 + (-3 - 5) ** 2) / 2, rel=1e-12)
    assert metrics["reward_accuracy"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="tokens"):
        ipo_loss(t(-1.0), t(-1.0), t(-1.0), t(-1.0), chosen_lengths=t(0.0), rejected_lengths=t(1.0))


def test_slic_hinge_plus_sft_and_its_gradient():
    # margins πc − πr = [2, −1]; δ = 1 ⇒ hinge [0, 2]; NLL = (4 + 10)/(2 + 5) = 2
    chosen = t(-4.0, -10.0, grad=True)
    loss, metrics = slic_loss(chosen, t(-6.0, -9.0), beta=1.0, sft_weight=0.1, chosen_lengths=t(2.0, 5.0))
    assert loss.item() == pytest.approx((0 + 2) / 2 + 0.1 * 2, rel=1e-12)
    assert metrics["sft_nll"] == pytest.approx(2.0)
    assert metrics["reward_accuracy"] == pytest.approx(0.5)
    loss.backward()
    # hinge: 0 where inactive, −1/n where active; NLL: −λ / Σlengths for each chosen row
    assert chosen.grad.tolist() == pytest.approx([-0.1 / 7, -0.5 - 0.1 / 7], rel=1e-12)


def test_sft_on_desirable_rows_token_averaged():
    loss, metrics = sft_loss(t(-6.0, -20.0, -3.0), flags(True, False, True), lengths=t(3.0, 10.0, 1.0))
    assert loss.item() == pytest.approx((6 + 3) / (3 + 1), rel=1e-12)
    assert metrics["tokens"] == 4 and metrics["n_desirable"] == 2 and metrics["n_undesirable"] == 1
    everything, _ = sft_loss(t(-6.0, -20.0, -3.0), lengths=t(3.0, 10.0, 1.0))
    assert everything.item() == pytest.approx(29 / 14, rel=1e-12)


def test_sft_without_desirable_rows_is_a_zero_that_backpropagates():
    policy = t(-6.0, -20.0, grad=True)
    loss, _ = sft_loss(policy, flags(False, False), lengths=t(3.0, 10.0))
    assert loss.item() == 0.0
    loss.backward()
    assert policy.grad.tolist() == [0.0, 0.0]


def test_csft_trains_on_every_row_and_names_its_control_tokens():
    loss, metrics = csft_loss(t(-6.0, -20.0, -3.0), flags(True, False, True), lengths=t(3.0, 10.0, 1.0))
    assert loss.item() == pytest.approx((6 + 20 + 3) / (3 + 10 + 1), rel=1e-12)
    assert metrics["n_undesirable"] == 1
    assert CSFT_CONTROL_TOKENS == {True: "<|good|>", False: "<|bad|>"}


EXTREMES = (1e4, -1e4, -1e30, 0.0)


@pytest.mark.parametrize("name", ["kto", "dpo", "ipo", "slic", "sft", "csft"])
def test_extreme_logps_give_finite_losses_and_gradients(name):
    f32 = dict(dtype=torch.float32)
    policy = torch.tensor(EXTREMES, **f32, requires_grad=True)
    other = torch.tensor((-1e4, 1e4, 0.0, -1e30), **f32)
    lengths = torch.tensor((1.0, 3.0, 7.0, 2.0), **f32)
    desirable = flags(True, False, True, False)
    if name == "kto":
        loss, _ = kto_loss(policy, other, policy[[1, 2, 3, 0]], other, desirable)
    elif name == "dpo":
        loss, _ = dpo_loss(policy, other, other, policy, beta=0.5)
    elif name == "ipo":  # quadratic: stays finite while the averaged gap is far below ~1e19
        small = torch.tensor((1e4, -1e4, 1e4, -1e4), **f32, requires_grad=True)
        policy = small
        loss, _ = ipo_loss(small, -small, -small, small, chosen_lengths=lengths, rejected_lengths=lengths)
    elif name == "slic":
        loss, _ = slic_loss(policy, other, chosen_lengths=lengths)
    elif name == "sft":
        loss, _ = sft_loss(policy, desirable, lengths=lengths)
    else:
        loss, _ = csft_loss(policy, desirable, lengths=lengths)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(policy.grad).all()


@pytest.mark.parametrize("n", [0, 1])
def test_mismatched_indices_without_a_valid_pair_is_empty(n):
    out = mismatched_indices(n)
    assert out.dtype == torch.long and out.numel() == 0


def test_mismatched_indices_rotation_and_pair():
    assert mismatched_indices(2).tolist() == [1, 0]
    assert mismatched_indices(2, torch.Generator().manual_seed(0)).tolist() == [1, 0]
    assert mismatched_indices(5).tolist() == [1, 2, 3, 4, 0]  # odd n: the middle is not its own pair


@pytest.mark.parametrize("n", range(2, 10))
def test_mismatched_indices_random_is_a_reproducible_derangement(n):
    for seed in range(20):
        out = mismatched_indices(n, torch.Generator().manual_seed(seed))
        assert sorted(out.tolist()) == list(range(n))  # every completion used once
        assert all(j != i for i, j in enumerate(out.tolist()))
        assert out.tolist() == mismatched_indices(n, torch.Generator().manual_seed(seed)).tolist()


def test_registry_is_complete_and_describes_each_batch():
    assert set(LOSSES) == {"kto", "dpo", "ipo", "slic", "sft", "csft", "ppo", "rm"}
    assert {name: spec.batch for name, spec in LOSSES.items()} == {
        "kto": "unpaired", "sft": "unpaired", "csft": "unpaired", "dpo": "paired", "ipo": "paired", "slic": "paired",
        "ppo": "unpaired", "rm": "paired",
    }
    assert {name for name, spec in LOSSES.items() if spec.model == "reward_model"} == {"rm"}
    assert {name for name, spec in LOSSES.items() if spec.needs_reference} == {"kto", "dpo", "ipo", "ppo"}
    assert {name for name, spec in LOSSES.items() if spec.needs_kl_rows} == {"kto"}
    for spec in LOSSES.values():
        parameters = inspect.signature(spec.fn).parameters
        required = {p for p, v in parameters.items() if v.default is inspect.Parameter.empty}
        assert set(spec.inputs) <= set(parameters), spec
        assert required <= set(spec.inputs), spec


def test_registry_call_passes_the_named_inputs():
    available = {
        "policy_chosen_logps": DPO_ARGS[0], "policy_rejected_logps": DPO_ARGS[1],
        "reference_chosen_logps": DPO_ARGS[2], "reference_rejected_logps": DPO_ARGS[3], "beta": 0.1,
    }
    loss, _ = LOSSES["dpo"].call(available)
    assert loss.item() == pytest.approx((-math.log(sig(0.2)) - math.log(sig(-0.1))) / 2, rel=1e-12)
    with pytest.raises(KeyError, match="chosen_lengths"):
        LOSSES["ipo"].call(available)
