"""How a micro-batch becomes a loss: the policy's forwards (Policy), then the keyword
arguments LOSSES[algo] asks for, filled from those log-probs, the reference log-probs
and the hyperparameters (Objective)."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from schemas.train import TrainConfig
from tasks.train.batching import Encoded, pack, pad
from tasks.train.data import MicroBatch, Seq, Sequences
from tasks.train.logprobs import completion_tokens, sequence_logps
from tasks.train.losses import LOSSES, LossSpec, Metrics, kto_lambdas
from tasks.train.models import autocast_context


def distributed_kl_mean(local: torch.Tensor, share: float | None = None) -> torch.Tensor:
    """KTO's z0 averages the KL estimate over every device's batch (docs/contract.md,
    loss formulas); a no-op in a single process. `share` is this device's part of the
    global micro-batch (tasks/train/distributed.py): the means weighted by it sum to the
    mean over every KL row, as one process would compute it. Without it, the devices
    count equally."""
    if not (dist.is_available() and dist.is_initialized()):
        return local
    reduced = local.detach().clone() * (share if share is not None else 1 / dist.get_world_size())
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)  # AVG is NCCL-only; SUM works on gloo too
    return reduced


@dataclass
class Policy:
    """The model being trained and how its forwards run: one packed row with shared prompts,
    or a padded batch (the straightforward path)."""

    model: torch.nn.Module
    device: torch.device
    packing: bool
    pad_token_id: int

    def logps(self, encoded: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each sequence's summed completion log-prob, and its completion length."""
        batch = pack(encoded, share_prompts=True) if self.packing else pad(encoded, self.pad_token_id)
        with autocast_context(self.device):
            return sequence_logps(self.model, batch.to(self.device))

    def tokens_and_values(self, encoded: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(each completion token's log-prob, the value head's estimate at the position
        predicting it, the sequence it belongs to), float32, over every token of the batch."""
        batch = pack(encoded, share_prompts=True) if self.packing else pad(encoded, self.pad_token_id)
        with autocast_context(self.device):
            tokens = completion_tokens(self.model, batch.to(self.device))
            values = self.model.value_head(tokens.hidden).squeeze(-1)
        return tokens.logps, values.float(), tokens.sequence

    def scores(self, encoded: list[Encoded]) -> torch.Tensor:
        """A reward model's score of each sequence: its head at the last token that is not
        padding. Always a padded batch, since the head pools one position per row, and
        float32, since the loss takes differences of scores."""
        batch = pad(encoded, self.pad_token_id).to(self.device)
        with autocast_context(self.device):
            scores = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        return scores[:, 0].float()


@dataclass
class Objective:
    """LOSSES[algo], the hyperparameters it is called with, and the reference log-probs of
    every planned sequence by cache key (empty, and no reference_model, for the
    reference-free losses)."""

    spec: LossSpec
    hyper: dict[str, Any]
    reference: dict[str, float] = field(default_factory=dict)
    reference_model: dict[str, Any] | None = None  # the manifest's reference_model: name, weights, cache
    epochs: int = 1  # passes over each batch per optimizer step's batch (PPO's ppo_epochs)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The plain values among `hyper`, as the manifest records them."""
        return {k: v for k, v in self.hyper.items() if k != "kl_reduce"}

    def loss(self, policy: Policy, micro: MicroBatch, seqs: Sequences, share: float = 1.0,
             first_pass: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, Metrics, int]:
        """The micro-batch's loss and metrics, and the tokens forwarded to get them. With
        several processes `micro` is this one's slice, `share` its part of the global
        micro-batch (KTO's z0 is reduced with it). first_pass (PPO): the micro-batch's
        detached token log-probs and values from the step's first pass, filled by that
        pass when empty; None: this pass is the first (an eval)."""
        inputs, tokens = self.inputs(policy, micro, seqs, first_pass)
        if "kl_reduce" in inputs:
            inputs["kl_reduce"] = functools.partial(distributed_kl_mean, share=share)
        return *self.spec.call(inputs), tokens

    def inputs(self, policy: Policy, micro: MicroBatch, seqs: Sequences,
               first_pass: dict[str, torch.Tensor] | None = None) -> tuple[dict[str, Any], int]:
        """The keyword arguments LOSSES[algo] asks for, and the tokens forwarded to get them."""
        main = micro.main_sequences(list(seqs.rows.replies))
        encoded = [seqs.encoded(s) for s in main]
        tokens = sum(len(e.input_ids) for e in encoded)
        if self.spec.model == "reward_model":  # paired: all chosen, then all rejected
            scores, n = policy.scores(encoded), len(micro.rows)
            return {**self.hyper, "chosen_scores": scores[:n], "rejected_scores": scores[n:]}, tokens

        def ref(sequences: list[Seq]) -> torch.Tensor:
            return torch.tensor([self.reference[seqs.key(s)] for s in sequences], dtype=torch.float32,
                                device=policy.device)

        inputs: dict[str, Any] = dict(self.hyper)
        if self.spec.needs_value_head:  # unpaired, per token
            token_logps, values, sequence = policy.tokens_and_values(encoded)
            if first_pass is None:
                first_pass = {}
            if not first_pass:
                first_pass.update(token_logps=token_logps.detach(), values=values.detach())
            inputs.update(token_logps=token_logps, values=values, token_sequence=sequence,
                          old_token_logps=first_pass["token_logps"], old_values=first_pass["values"],
                          reference_logps=ref(main), desirable=torch.tensor(
                              [seqs.rows.labels[r] for r in micro.rows], dtype=torch.bool, device=policy.device))
            return inputs, tokens
        logps, lengths = policy.logps(encoded)
        if self.spec.batch == "paired":
            n = len(micro.rows)
            inputs.update(policy_chosen_logps=logps[:n], policy_rejected_logps=logps[n:],
                          chosen_lengths=lengths[:n], rejected_lengths=lengths[n:])
            if self.spec.needs_reference:
                inputs.update(reference_chosen_logps=ref(main[:n]), reference_rejected_logps=ref(main[n:]))
            return inputs, tokens
        inputs.update(policy_logps=logps, lengths=lengths, desirable=torch.tensor(
            [seqs.rows.labels[r] for r in micro.rows], dtype=torch.bool, device=policy.device))
        if self.spec.needs_reference:
            inputs["reference_logps"] = ref(main)
        if self.spec.needs_kl_rows:
            kl = micro.kl_sequences()
            kl_encoded = [seqs.encoded(s) for s in kl]
            # z0 is detached in the loss, so the KL rows need no graph: a forward-only pass.
            with torch.no_grad():
                inputs["kl_policy_logps"], _ = policy.logps(kl_encoded)
            inputs["kl_reference_logps"] = ref(kl)
            tokens += sum(len(e.input_ids) for e in kl_encoded)
        return inputs, tokens


def objective_for(config: TrainConfig, trained_labels: list[bool] | None, reference: dict[str, float],
                  reference_model: dict[str, Any] | None) -> Objective:
    """LOSSES[config.algo] with its hyperparameters: beta; for KTO, lambda_d and lambda_u,
    from the labels of the rows trained unless set; for PPO, its clip ranges, λ, value
    weight and passes per step; for DPO, label_smoothing when set."""
    spec = LOSSES[config.algo]
    hyper: dict[str, Any] = {"beta": config.beta, "kl_reduce": distributed_kl_mean}
    if config.algo == "kto":
        auto_d, auto_u = kto_lambdas(sum(trained_labels), len(trained_labels) - sum(trained_labels))
        hyper.update(lambda_d=config.lambda_d or auto_d, lambda_u=config.lambda_u or auto_u)
    if spec.needs_value_head:
        hyper.update(clip_range=config.clip_range, value_clip_range=config.value_clip_range,
                     gae_lambda=config.gae_lambda, value_coef=config.value_coef)
    if config.algo == "dpo" and config.label_smoothing:
        # dpo_loss takes label_smoothing as a keyword the registry does not pass by default.
        spec = dataclasses.replace(spec, inputs=spec.inputs + ("label_smoothing",))
        hyper["label_smoothing"] = config.label_smoothing
    return Objective(spec, hyper, reference, reference_model, epochs=config.ppo_epochs if spec.needs_value_head else 1)


def mean_metrics(items: list[dict[str, float]]) -> dict[str, float]:
    """Average each metric over the micro-batches that report it (a class-specific metric
    is absent from batches without that class, and must not count as 0)."""
    keys = sorted({k for item in items for k in item})
    return {k: sum(i[k] for i in items if k in i) / sum(1 for i in items if k in i) for k in keys}
