"""Alignment losses as pure functions over per-example SUMMED log-probs.

Inputs are 1-D float tensors, one value per example: log π(y|x) summed over
the completion tokens (sequence level, as in the KTO and DPO papers). Pass
float32: a bf16 sum over hundreds of tokens keeps ~3 digits, and rewards are
differences of two such sums. Each loss returns `(loss, metrics)`: a scalar
tensor and detached floats under names shared by all losses (reward_accuracy,
reward_margin, rewards_chosen, rewards_rejected, kl, n_desirable,
n_undesirable, n_pairs). A metric about a class the batch lacks is left out
rather than logged as 0, which would lie once averaged over steps.

`LOSSES` (tasks/train/algorithms.py, torch-free) maps an algorithm name to its
`LossSpec`, which names its function here. Adding an algorithm is one function
here plus one line there (docs/add-a-loss.md).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from tasks.train.algorithms import LOSSES, LossSpec  # noqa: F401 (the trainer's one import of its losses)

Tensor = torch.Tensor
Metrics = dict[str, float]

# CSFT's control tokens: the data side prepends them to the completion; at
# inference the completion is started with the True one.
CSFT_CONTROL_TOKENS: dict[bool, str] = {True: "<|good|>", False: "<|bad|>"}


def _batch_size(what: str, *, allow_empty: bool = False, **tensors: Tensor) -> int:
    """The common, non-zero length of 1-D tensors; a ValueError saying what is wrong otherwise."""
    sizes = {}
    for name, tensor in tensors.items():
        if tensor.dim() != 1:
            raise ValueError(f"{what}: {name} must be 1-D (one value per example), got shape {tuple(tensor.shape)}")
        sizes[name] = tensor.shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{what}: one value per example expected, but the lengths differ: {sizes}")
    if not allow_empty and 0 in sizes.values():
        raise ValueError(f"{what}: empty batch, nothing to learn from (the trainer should skip it)")
    return next(iter(sizes.values()))


def _positive(lengths: Tensor, name: str) -> None:
    if bool((lengths <= 0).any()):
        raise ValueError(f"{name} must count completion tokens (> 0); a 0 means an empty completion reached the loss")


def _mean(values: Tensor) -> float:
    return float(values.detach().double().mean())


def _pair_metrics(chosen_rewards: Tensor, rejected_rewards: Tensor) -> Metrics:
    chosen, rejected = chosen_rewards.detach(), rejected_rewards.detach()
    return {
        "rewards_chosen": _mean(chosen),
        "rewards_rejected": _mean(rejected),
        "reward_margin": _mean(chosen - rejected),
        "reward_accuracy": _mean((chosen > rejected).double()),
        "n_pairs": float(chosen.numel()),
    }


def _thumb_metrics(scaled_rewards: Tensor, desirable: Tensor) -> Metrics:
    """The thumbs losses' counts and their rewards per class (β·r, detached); the margin when both are there."""
    metrics = {"n_desirable": float(desirable.sum()), "n_undesirable": float((~desirable).sum())}
    if desirable.any():
        metrics["rewards_chosen"] = _mean(scaled_rewards[desirable])
    if (~desirable).any():
        metrics["rewards_rejected"] = _mean(scaled_rewards[~desirable])
    if desirable.any() and (~desirable).any():
        metrics["reward_margin"] = metrics["rewards_chosen"] - metrics["rewards_rejected"]
    return metrics


def mismatched_indices(n: int, generator: torch.Generator | None = None) -> Tensor:
    """j = out[i]: the completion paired with prompt i in KTO's KL rows, never i itself.

    Without a generator, a rotation by one (i -> i+1 mod n): TRL's old reversal
    paired the middle of an odd batch with itself (trl#1911); a rotation has no
    fixed point for any n >= 2. With a generator, a uniformly random
    derangement (rejection sampling, ~e draws). Either way a permutation, so the
    KL rows use every completion of the batch once: matched and mismatched rows
    share one support (trl#1402). n < 2 has no valid pair: the result is empty,
    and kto_loss then falls back to z0 = 0.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n < 2:
        return torch.empty(0, dtype=torch.long)
    if generator is None:
        return torch.roll(torch.arange(n), -1)
    while True:
        permutation = torch.randperm(n, generator=generator)
        if bool((permutation != torch.arange(n)).all()):
            return permutation


def kto_lambdas(n_desirable: int, n_undesirable: int) -> tuple[float, float]:
    """(λ_D, λ_U) with λ_D·n_D / (λ_U·n_U) = 1, the low end of the KTO paper's [1, 4/3].

    The majority class keeps weight 1 and the minority is weighted up, as in the
    paper's example (1:10 ⇒ λ_U = 1, λ_D = 10 ∈ [10, 10.33]); 10:1 gives (1, 10).
    Both are >= 1, so the common class keeps the step size of a balanced set.
    A zero count leaves the ratio undefined and the absent class never enters a
    loss: (1, 1).
    """
    if n_desirable < 0 or n_undesirable < 0:
        raise ValueError(f"label counts must be >= 0, got n_desirable={n_desirable}, n_undesirable={n_undesirable}")
    if n_desirable == 0 or n_undesirable == 0:
        return 1.0, 1.0
    majority = max(n_desirable, n_undesirable)
    return majority / n_desirable, majority / n_undesirable


def kto_loss(policy_logps: Tensor, reference_logps: Tensor, kl_policy_logps: Tensor, kl_reference_logps: Tensor,
             desirable: Tensor, beta: float = 0.1, lambda_d: float = 1.0, lambda_u: float = 1.0,
             *, kl_reduce: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Metrics]:
    """KTO (Ethayarajh et al., ICML 2024): mean over the batch of λ_y − v(x, y).

    r = log πθ(y|x) − log πref(y|x). The reference point z0 is the mean of r over
    the KL rows (x_i, y_j), j != i (see mismatched_indices), detached, passed
    through `kl_reduce` (the trainer's all-reduce-mean across devices; identity
    by default), then clamped at 0. The clamp follows the reduction, as in the
    authors' HALOs code: clamping per device first biases z0 upwards. z0 has no
    gradient: the paper holds the reference point fixed, and HALOs#4 explains
    how back-propagating a shared KL can push a desirable example down.

    No KL rows (one example on this device): the local mean is taken as 0, its
    value at initialisation (policy = reference), i.e. KTO with z0 = 0, and
    kl_reduce is still called so every rank joins the same collective. Keep
    >= 2 examples per device: a rank's 0 pulls the reduced mean down.
    All-desirable or all-undesirable batches need nothing special: z0 comes
    from the KL rows, not from the other class. An empty batch is a ValueError.
    """
    _batch_size("KTO", policy_logps=policy_logps, reference_logps=reference_logps, desirable=desirable)
    _batch_size("KTO KL rows", allow_empty=True, kl_policy_logps=kl_policy_logps, kl_reference_logps=kl_reference_logps)
    desirable = desirable.to(torch.bool)
    rewards = policy_logps - reference_logps
    with torch.no_grad():
        kl_rewards = (kl_policy_logps - kl_reference_logps).detach()
        local_kl = kl_rewards.mean() if kl_rewards.numel() else kl_rewards.new_zeros(())
        reduced_kl = kl_reduce(local_kl) if kl_reduce is not None else local_kl
        z0 = torch.as_tensor(reduced_kl).to(rewards.dtype).clamp(min=0).detach()

    # The paper's value v(x, y): a gain above z0 for desirable y, a loss below it for undesirable y.
    value = torch.where(desirable, lambda_d * torch.sigmoid(beta * (rewards - z0)),
                        lambda_u * torch.sigmoid(beta * (z0 - rewards)))
    weight = torch.where(desirable, lambda_d, lambda_u).to(rewards.dtype)
    loss = (weight - value).mean()

    scaled = beta * rewards.detach()
    # Accuracy is read against z0, the point v is centred on: right side = v above λ/2.
    right_side = torch.where(desirable, rewards.detach() > z0, rewards.detach() < z0)
    return loss, {"kl": float(z0), "reward_accuracy": _mean(right_side.double()), **_thumb_metrics(scaled, desirable)}


def dpo_loss(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor, reference_chosen_logps: Tensor,
             reference_rejected_logps: Tensor, beta: float = 0.1,
             *, label_smoothing: float = 0.0) -> tuple[Tensor, Metrics]:
    """DPO (Rafailov et al. 2023, eq. 7): −log σ(β·h), h = r(x, y_w) − r(x, y_l).

    label_smoothing ε > 0 is conservative DPO (labels flipped with probability
    ε): −(1−ε)·log σ(βh) − ε·log σ(−βh). logsigmoid stays finite for any |βh|.
    """
    _batch_size("DPO", policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                reference_chosen_logps=reference_chosen_logps, reference_rejected_logps=reference_rejected_logps)
    if not 0.0 <= label_smoothing <= 0.5:
        raise ValueError(f"label_smoothing is a label-noise probability in [0, 0.5], got {label_smoothing}")
    chosen_rewards = policy_chosen_logps - reference_chosen_logps
    rejected_rewards = policy_rejected_logps - reference_rejected_logps
    logits = beta * (chosen_rewards - rejected_rewards)
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return losses.mean(), _pair_metrics(beta * chosen_rewards, beta * rejected_rewards)


def ipo_loss(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor, reference_chosen_logps: Tensor,
             reference_rejected_logps: Tensor, beta: float = 0.1,
             *, chosen_lengths: Tensor, rejected_lengths: Tensor) -> tuple[Tensor, Metrics]:
    """IPO (Azar et al. 2023, eq. 17): (h − 1/(2β))², β playing the paper's τ.

    h is the log-ratio difference on length-AVERAGED log-probs, as the KTO paper
    runs this baseline: the sums are divided here by the token counts. The loss
    is quadratic and unbounded: an averaged gap beyond ~1e19 overflows float32.
    """
    _batch_size("IPO", policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                reference_chosen_logps=reference_chosen_logps, reference_rejected_logps=reference_rejected_logps,
                chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
    _positive(chosen_lengths, "chosen_lengths")
    _positive(rejected_lengths, "rejected_lengths")
    chosen_rewards = (policy_chosen_logps - reference_chosen_logps) / chosen_lengths
    rejected_rewards = (policy_rejected_logps - reference_rejected_logps) / rejected_lengths
    loss = ((chosen_rewards - rejected_rewards - 1 / (2 * beta)) ** 2).mean()
    return loss, _pair_metrics(beta * chosen_rewards, beta * rejected_rewards)


def _token_nll(logps: Tensor, lengths: Tensor) -> Tensor:
    # One average over all tokens of the rows, as ordinary LM fine-tuning does:
    # a long completion weighs by its length, not as one example.
    return -logps.sum() / lengths.sum()


def slic_loss(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor, beta: float = 1.0,
              *, sft_weight: float = 0.1, chosen_lengths: Tensor) -> tuple[Tensor, Metrics]:
    """SLiC-HF (Zhao et al. 2023): max(0, δ − (log πθ(y_w|x) − log πθ(y_l|x))) + λ·NLL(y_w).

    β is the margin δ; the defaults δ = 1, λ = 0.1 are the HALOs baseline's.
    The hinge is on summed log-probs, the regulariser the token-averaged NLL of
    the chosen completions. No reference model: the "rewards" in the metrics
    are the policy log-probs, SLiC's calibration score.
    """
    _batch_size("SLiC", policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                chosen_lengths=chosen_lengths)
    _positive(chosen_lengths, "chosen_lengths")
    hinge = (beta - (policy_chosen_logps - policy_rejected_logps)).clamp(min=0)
    nll = _token_nll(policy_chosen_logps, chosen_lengths)
    metrics = _pair_metrics(policy_chosen_logps, policy_rejected_logps)
    metrics["sft_nll"] = float(nll.detach())
    return hinge.mean() + sft_weight * nll, metrics


def _sft_metrics(nll: Tensor, lengths: Tensor, desirable: Tensor | None) -> Metrics:
    metrics = {"sft_nll": float(nll.detach()), "tokens": float(lengths.sum())}
    if desirable is not None:
        metrics.update(n_desirable=float(desirable.sum()), n_undesirable=float((~desirable).sum()))
    return metrics


def sft_loss(policy_logps: Tensor, desirable: Tensor | None = None, *, lengths: Tensor) -> tuple[Tensor, Metrics]:
    """SFT on the desirable completions (desirable=None: every row), token-averaged NLL.

    A batch without desirable rows gives a zero loss that still backpropagates
    (zero gradients), so a step over it is a no-op rather than a crash.
    """
    n = _batch_size("SFT", policy_logps=policy_logps, lengths=lengths)
    _positive(lengths, "lengths")
    if desirable is None:
        desirable_rows = torch.ones(n, dtype=torch.bool, device=policy_logps.device)
    else:
        _batch_size("SFT", policy_logps=policy_logps, desirable=desirable)
        desirable = desirable_rows = desirable.to(torch.bool)
    if not desirable_rows.any():
        return policy_logps.sum() * 0.0, _sft_metrics(policy_logps.new_zeros(()), lengths[desirable_rows], desirable)
    nll = _token_nll(policy_logps[desirable_rows], lengths[desirable_rows])
    return nll, _sft_metrics(nll, lengths[desirable_rows], desirable)


def csft_loss(policy_logps: Tensor, desirable: Tensor, *, lengths: Tensor) -> tuple[Tensor, Metrics]:
    """Conditional SFT (Korbak et al. 2023; a KTO-paper baseline): SFT NLL over every row.

    The label lives in the text, not in the loss: the data side prepends
    CSFT_CONTROL_TOKENS[label] to the completion, so these log-probs include
    it. `desirable` only feeds the counts.
    """
    _batch_size("CSFT", policy_logps=policy_logps, desirable=desirable, lengths=lengths)
    _positive(lengths, "lengths")
    nll = _token_nll(policy_logps, lengths)
    return nll, _sft_metrics(nll, lengths, desirable.to(torch.bool))


def bradley_terry_loss(chosen_scores: Tensor, rejected_scores: Tensor) -> tuple[Tensor, Metrics]:
    """A reward model's Bradley-Terry loss (Ouyang et al. 2022, eq. 1): −log σ(r(x, y_w) − r(x, y_l)).

    The scores are the reward head's outputs, not log-probs; the "rewards" in the metrics
    are those scores, and reward_accuracy is the share of pairs ranked right.
    """
    _batch_size("Bradley-Terry", chosen_scores=chosen_scores, rejected_scores=rejected_scores)
    losses = -F.logsigmoid(chosen_scores - rejected_scores)
    return losses.mean(), _pair_metrics(chosen_scores, rejected_scores)


def _advantages(final_rewards: list[float], values: list[float], sequence: list[int],
                gae_lambda: float) -> list[float]:
    """GAE (Schulman et al. 2016) with γ = 1 per sequence: δ_t = r_t + V_{t+1} − V_t, the
    reward at the sequence's last token (0 before it), V after the last token 0, and
    A_t = δ_t + λ·A_{t+1}. Tokens of a sequence must be contiguous and in order."""
    advantages = [0.0] * len(values)
    running = next_value = 0.0
    for i in reversed(range(len(values))):
        last = i == len(values) - 1 or sequence[i + 1] != sequence[i]
        if last:
            running = next_value = 0.0
        delta = (final_rewards[sequence[i]] if last else 0.0) + next_value - values[i]
        running = delta + gae_lambda * running
        advantages[i], next_value = running, values[i]
    return advantages


def ppo_loss(token_logps: Tensor, old_token_logps: Tensor, values: Tensor, old_values: Tensor,
             token_sequence: Tensor, desirable: Tensor, reference_logps: Tensor, beta: float = 0.1,
             *, clip_range: float = 0.2, value_clip_range: float = 0.2, gae_lambda: float = 0.95,
             value_coef: float = 0.1) -> tuple[Tensor, Metrics]:
    """Offline PPO, the KTO paper's baseline: PPO's clipped objective (Schulman et al.
    2017) with a value head, on thumbs rows as the episodes, reward +1 for a desirable
    completion and −1 for an undesirable one.

    Per completion token t (inputs are 1-D over all tokens of the batch, `token_sequence`
    naming each one's row): ρ_t = exp(log πθ − log πold) against the policy at the
    step's first pass (old_*, no gradient), advantages A_t by GAE over the old values,
    returns G_t = A_t + V_old. The final reward is ±1 − β·KL, KL = log πold(y|x) −
    log πref(y|x) summed over the sequence (the reference cache holds sequence sums, so
    the penalty is paid at the end rather than per token).
    loss = mean_t −min(ρ_t A_t, clip(ρ_t, 1 ± clip_range) A_t)
         + value_coef · mean_t ½ max((V_t − G_t)², (V_old + clip(V_t − V_old, ± value_clip_range) − G_t)²).
    Means are over every token of the batch. Advantages are not whitened.
    """
    n = _batch_size("PPO", desirable=desirable, reference_logps=reference_logps)
    _batch_size("PPO tokens", token_logps=token_logps, old_token_logps=old_token_logps, values=values,
                old_values=old_values, token_sequence=token_sequence)
    sequence = token_sequence.tolist()
    runs = 1 + sum(a != b for a, b in zip(sequence, sequence[1:]))
    if runs != len(set(sequence)) or set(sequence) != set(range(n)):
        raise ValueError("PPO: each row's tokens must be one contiguous run, every row with at least one token")
    desirable = desirable.to(torch.bool)
    old_token_logps, old_values = old_token_logps.detach(), old_values.detach()
    with torch.no_grad():
        old_logps = old_token_logps.new_zeros(n).index_add(0, token_sequence, old_token_logps)
        kl = old_logps - reference_logps
        final_rewards = torch.where(desirable, 1.0, -1.0).to(kl.dtype) - beta * kl
        advantages = torch.tensor(_advantages(final_rewards.tolist(), old_values.tolist(), sequence, gae_lambda),
                                  dtype=token_logps.dtype, device=token_logps.device)
        returns = advantages + old_values
    ratio = torch.exp(token_logps - old_token_logps)
    policy_loss = -torch.minimum(ratio * advantages,
                                 ratio.clamp(1 - clip_range, 1 + clip_range) * advantages).mean()
    clipped_values = old_values + (values - old_values).clamp(-value_clip_range, value_clip_range)
    value_loss = 0.5 * torch.maximum((values - returns) ** 2, (clipped_values - returns) ** 2).mean()

    with torch.no_grad():
        logps = token_logps.detach().new_zeros(n).index_add(0, token_sequence, token_logps.detach())
        scaled = beta * (logps - reference_logps)
        clipped = ((ratio.detach() - 1).abs() > clip_range).double()
    metrics: Metrics = {"policy_loss": float(policy_loss.detach()), "value_loss": float(value_loss.detach()),
                        "clip_fraction": _mean(clipped), "kl": _mean(kl), "advantage": _mean(advantages),
                        "value": _mean(values.detach()), **_thumb_metrics(scaled, desirable)}
    return policy_loss + value_coef * value_loss, metrics
