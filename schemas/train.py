"""The training configuration: one flat set of plain values, overridable as `key=value`.

Defaults are a CPU demo that finishes in minutes on SmolLM2-135M; a GPU run
raises `steps`, `batch_size` and `max_length`. Load with
`schemas.config.load_config(TrainConfig, yaml_path, ["steps=100", ...])`.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.train.algorithms import LOSSES

Algo = Literal[tuple(LOSSES)]  # the registry's names, in its order

# Fields that change how a run executes but not what it learns: a run may be
# resumed with different values of these (e.g. on another device).
# gradient_checkpointing only trades memory for time: the recomputed activations are the same.
RUNTIME_FIELDS = frozenset({"device", "save_every", "eval_every", "eval_batches", "reference_batch_size",
                            "gradient_checkpointing", "tracking", "parallel", "collective_timeout"})


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algo: Algo = "kto"
    model: str = Field("smollm2-135m", description="a preset (smollm2-135m, tiny-llama) or a local model directory")
    reference: str | None = Field(None, description="reference model; None = the same as `model`")

    # Optimisation. batch_size counts examples (a KTO row, a DPO pair) per forward;
    # an optimizer step sees batch_size * grad_accum of them.
    steps: int = Field(30, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(512, ge=8, description="prompt + completion tokens per sequence")
    lr: float = Field(5e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(3, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr * min_lr_ratio")
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    packing: bool = Field(True, description="one padding-free row per forward, each shared prompt forwarded once; "
                                            "False = a padded batch (the straightforward path)")
    gradient_checkpointing: bool = Field(
        True, description="keep only each decoder layer's input and recompute the layer in the backward: "
                          "a fraction of the activation memory for ~1/3 more compute")

    # LoRA (docs/contract.md#lora-adapters): low-rank adapters on the frozen base, through peft.
    # The reference is then the base itself (adapters disabled): no second model in memory.
    lora_r: int = Field(0, ge=0, description="adapter rank; 0 = full fine-tuning")
    lora_alpha: float = Field(16.0, gt=0, description="adapter scale: updates are multiplied by lora_alpha / lora_r")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapters' input")
    lora_targets: list[str] | None = Field(
        None, description="module names to adapt, e.g. [q_proj, v_proj]; None = every linear layer but lm_head")
    qlora: bool = Field(False, description="4-bit base under the adapters; needs bitsandbytes and CUDA")
    # Several processes (`thumbs train --nproc N`; docs/distributed.md): the same result as one.
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp", description="ddp: a full copy of the weights per process; fsdp: decoder layers sharded (FSDP2)")
    collective_timeout: int = Field(600, ge=1, description="seconds a process waits in a collective before the run "
                                                           "stops with an error (a hung or lost process)")

    # Data.
    sources: list[str] | None = Field(None, description="None = every source in the warehouse")
    max_rows: int | None = Field(None, ge=2, description="train on a seeded subset of this many rows")
    one_per_prompt: bool = Field(False, description="KTO: one completion per prompt (the paper's 1-y-per-x)")
    desirable_fraction: float = Field(
        1.0, gt=0, le=1, description="thumbs algorithms: train on this seeded share of the desirable rows "
                                     "(the KTO paper's ablation: 0.1 drops 90% of them); undesirable rows all kept")

    # Losses.
    beta: float = Field(0.1, gt=0)
    lambda_d: float | None = Field(None, gt=0, description="KTO; None = from the label counts (kto_lambdas)")
    lambda_u: float | None = Field(None, gt=0, description="KTO; None = from the label counts (kto_lambdas)")
    label_smoothing: float = Field(0.0, ge=0, le=0.5, description="DPO: conservative-DPO label noise")
    ppo_epochs: int = Field(2, ge=1, description="PPO: passes over each batch per step, the ratios taken against "
                                                 "the first")
    clip_range: float = Field(0.2, gt=0, lt=1, description="PPO: the ratio is clipped to 1 ± clip_range")
    value_clip_range: float = Field(0.2, gt=0, description="PPO: a value moves at most this far from its first pass")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="PPO: GAE's λ (γ = 1)")
    value_coef: float = Field(0.1, ge=0, description="PPO: the value loss's weight")

    # Evaluation and state.
    eval_every: int = Field(0, ge=0, description="steps between evals on the eval split; 0 = only at the end")
    eval_batches: int = Field(4, ge=0, description="batches of the eval split per eval; 0 = no eval")
    save_every: int = Field(25, ge=0, description="steps between resumable states; 0 = never")
    reference_batch_size: int = Field(16, ge=1, description="sequences per reference forward when caching")
    tracking: Literal["none", "mlflow"] = Field(
        "none", description="mlflow: also log params, step metrics, the evaluation and artifacts to MLflow "
                            "(MLFLOW_TRACKING_URI, else THUMBS_HOME/mlflow.db; docs/contract.md#experiment-tracking)")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        spec = LOSSES[self.algo]
        if spec.needs_kl_rows and self.batch_size < 2:
            raise ValueError(f"batch_size: {self.algo.upper()} needs >= 2 examples per batch for its KL reference point")
        if self.one_per_prompt and spec.batch != "unpaired":
            raise ValueError(f"one_per_prompt: only for algorithms trained on thumbs, not {self.algo}")
        if self.desirable_fraction < 1 and spec.batch != "unpaired":
            raise ValueError(f"desirable_fraction: only for algorithms trained on thumbs, not {self.algo}")
        if self.qlora and not self.lora_r:
            raise ValueError("qlora: trains adapters on a 4-bit base; set lora_r > 0 too")
        return self

