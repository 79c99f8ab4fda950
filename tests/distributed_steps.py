"""One optimizer step of the real trainer on given global micro-batches, in however many
processes run this file: `python -m torch.distributed.run --nproc-per-node 2
tests/distributed_steps.py CASES.json OUT_DIR`, or `step_results(...)` in the test's own
process for the single-process result. Rank 0 saves, per case, the loss, the gradients
the optimizer was about to apply (summed over the ranks) and the updated weights.

A case: {"name", "algo", "packing", "parallel", "micro_batches": [[train row positions], ...],
"snapshot", "model", "home"}. KTO's KL partner of row k of a micro-batch is row k+1
(a rotation, as mismatched_indices without a generator)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from schemas.train import TrainConfig
from tasks.train.batching import ChatEncoder
from tasks.train.data import Batches, MicroBatch, Sequences, TrainingData, read_rows
from tasks.train.models import load_policy
from tasks.train.objective import Policy, objective_for
from tasks.train.snapshots import load_snapshot
from tasks.train.state import TrainingState
from tasks.train.trainer import load_reference, open_run, train_step


# Adam's first update is lr * g / (|g| + 1e-8): where a gradient is ~1e-9, float32 summation
# order alone moves it by a large part of lr. With this lr that stays under the tests' 1e-5,
# while a typical update (|g| >> 1e-8, so ~lr) is ten times that.
LR = 1e-4


def micro_batch(rows: list[int], kto: bool) -> MicroBatch:
    return MicroBatch(tuple(rows), tuple(rows[(k + 1) % len(rows)] for k in range(len(rows))) if kto else ())


def whole(tensor: torch.Tensor) -> torch.Tensor:
    """A sharded (fsdp) tensor gathered; a plain one as it is."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def step_result(case: dict, run_dir: Path) -> dict | None:
    """Train one step of `case`; what rank 0 saw (None on the other ranks)."""
    config = TrainConfig(algo=case["algo"], model=case["model"], packing=case["packing"], steps=1,
                         batch_size=max(len(m) for m in case["micro_batches"]),
                         grad_accum=len(case["micro_batches"]), max_length=96, lr=LR, warmup_steps=0,
                         device="cpu", collective_timeout=60, parallel=case["parallel"], save_every=0)
    snapshot = load_snapshot(case["snapshot"])
    run = open_run(config, snapshot, run_dir, run_id=None, home=case["home"], resume=False, started=0.0)
    encoder = ChatEncoder(run.tokenizer, config.max_length)
    seqs = Sequences(read_rows(snapshot, "train", config.algo), encoder)
    kto = config.algo == "kto"
    batch = Batches(seqs, [micro_batch(rows, kto) for rows in case["micro_batches"]])
    rows = sorted({r for m in case["micro_batches"] for r in m})
    data = TrainingData(batch, Batches(Sequences(read_rows(snapshot, "eval", config.algo), encoder), []), rows)
    objective = objective_for(config, data.trained_labels, *load_reference(run, data, lambda event: None))
    model = load_policy(run.model_dir, run.device, gradient_checkpointing=True)
    state = TrainingState.start(Policy(run.ranks.prepare(model.train()), run.device, config.packing,
                                       run.tokenizer.pad_token_id), config)
    grads: dict[str, torch.Tensor] = {}

    def keep_gradients(optimizer, args, kwargs) -> None:
        grads.update({n: p.grad.detach().clone() for n, p in state.policy.model.named_parameters()})

    state.optimizer.register_step_pre_hook(keep_gradients)
    done = train_step(state, objective, batch, config, run.ranks)
    # Every rank gathers sharded (fsdp) tensors; rank 0 keeps them.
    weights, grads = run.ranks.full_state_dict(state.policy.model), {n: whole(g) for n, g in grads.items()}
    if not run.ranks.main:
        return None
    return {"metrics": done.metrics, "grad_norm": done.grad_norm, "examples": done.examples,
            "grads": grads, "weights": weights}


def main(cases_file: str, out_dir: str) -> None:
    from tasks.train import distributed

    out = Path(out_dir)
    try:
        for case in json.loads(Path(cases_file).read_text()):
            result = step_result(case, out / "runs" / case["name"])
            if result is not None:
                torch.save(result, out / f"{case['name']}.pt")
    finally:
        distributed.leave()


if __name__ == "__main__":
    main(*sys.argv[1:])
