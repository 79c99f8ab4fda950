"""The training algorithms: name -> how the trainer calls its loss.

`LOSSES` is the one list of algorithms. The CLI's `--algo` choices and
`TrainConfig.algo` are derived from it, so this module must not import torch
(the CLI builds its parser, `thumbs query` included, before any verb runs):
each entry names its loss function in tasks/train/losses.py instead of holding
it. Adding an algorithm is one pure function there and one line here
(docs/add-a-loss.md).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Literal

LOSS_MODULE = "tasks.train.losses"


@dataclass(frozen=True)
class LossSpec:
    """How the trainer calls a loss: `inputs` names the keyword arguments it supplies.

    Unpaired batches offer policy_logps, reference_logps, kl_policy_logps,
    kl_reference_logps, desirable, lengths; paired batches offer
    {policy,reference}_{chosen,rejected}_logps, chosen_lengths,
    rejected_lengths; hyperparameters (beta, lambda_d, ...) and kl_reduce come
    from the config and the trainer. A loss asking for token_logps (PPO) gets, over
    every completion token of the batch: token_logps and values (a value head on the
    policy's hidden states), old_token_logps and old_values (the step's first pass,
    detached; the trainer makes ppo_epochs passes per step) and token_sequence. A `reward_model` trains a scalar head
    (AutoModelForSequenceClassification, num_labels=1) instead of the language
    model, and its paired batches offer chosen_scores and rejected_scores.
    """

    function: str  # the loss's name in tasks/train/losses.py
    batch: Literal["unpaired", "paired"]
    inputs: tuple[str, ...]
    model: Literal["causal_lm", "reward_model"] = "causal_lm"

    @property
    def fn(self) -> Callable[..., tuple[Any, dict[str, float]]]:
        return getattr(importlib.import_module(LOSS_MODULE), self.function)

    @property
    def needs_reference(self) -> bool:
        return any(name.startswith(("reference_", "kl_reference_")) for name in self.inputs)

    @property
    def needs_value_head(self) -> bool:
        """Whether the policy gets a value head and the loss per-token inputs (PPO)."""
        return "token_logps" in self.inputs

    @property
    def needs_kl_rows(self) -> bool:
        """Whether the batch must also hold the mismatched (x_i, y_j) rows."""
        return "kl_policy_logps" in self.inputs

    def call(self, available: dict[str, object]) -> tuple[Any, dict[str, float]]:
        fn = self.fn
        missing = [name for name in self.inputs if name not in available]
        if missing:
            raise KeyError(f"{fn.__name__} needs {missing}, which the batch does not provide")
        return fn(**{name: available[name] for name in self.inputs})


_UNPAIRED = ("policy_logps", "reference_logps", "kl_policy_logps", "kl_reference_logps", "desirable")
_PAIRED = ("policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps", "reference_rejected_logps")

LOSSES: dict[str, LossSpec] = {
    "kto": LossSpec("kto_loss", "unpaired", _UNPAIRED + ("beta", "lambda_d", "lambda_u", "kl_reduce")),
    "dpo": LossSpec("dpo_loss", "paired", _PAIRED + ("beta",)),
    "ipo": LossSpec("ipo_loss", "paired", _PAIRED + ("beta", "chosen_lengths", "rejected_lengths")),
    "slic": LossSpec("slic_loss", "paired", ("policy_chosen_logps", "policy_rejected_logps", "beta", "chosen_lengths")),
    "sft": LossSpec("sft_loss", "unpaired", ("policy_logps", "desirable", "lengths")),
    "csft": LossSpec("csft_loss", "unpaired", ("policy_logps", "desirable", "lengths")),
    "ppo": LossSpec("ppo_loss", "unpaired", ("token_logps", "old_token_logps", "values", "old_values", "token_sequence",
                                             "desirable", "reference_logps", "beta", "clip_range", "value_clip_range",
                                             "gae_lambda", "value_coef")),
    "rm": LossSpec("bradley_terry_loss", "paired", ("chosen_scores", "rejected_scores"), model="reward_model"),
}
