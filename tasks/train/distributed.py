"""Several training processes, one model: everything the loop needs from torch.distributed,
here so that tasks/train/trainer.py stays one loop.

`thumbs train --nproc N` starts N copies of the trainer through torchrun
(launch_command); each reads its rank from torchrun's environment (Ranks.join). A
single process is the same code with world size 1: every helper is then a no-op.

What makes N processes give the single-process result (docs/distributed.md):
- Every rank plans the same micro-batches (the plan is seeded); each takes a contiguous
  slice of every global micro-batch (Ranks.shard). A rank whose slice is empty (an
  uneven last batch, fewer rows than ranks) forwards a stand-in row with share 0, so
  it still runs every forward, backward and collective the others run.
- Losses are means over a rank's rows; scaled by the rank's share of the global
  micro-batch and summed across ranks (gradients: all-reduce SUM) they are the global
  mean, whatever the slices' sizes. KTO's z0 is reduced the same way (objective.py).
- parallel=ddp keeps a full copy of the weights per rank and all-reduces the gradients
  once per optimizer step, after gradient accumulation. It is written by hand rather
  than with DistributedDataParallel: our forwards call the decoder and lm_head
  directly (tasks/train/logprobs.py), never the wrapper's forward that DDP hooks.
- parallel=fsdp shards each decoder layer with FSDP2 (fully_shard); the embeddings,
  final norm and lm_head (tied in most small models) stay replicated and are
  all-reduced like ddp.
- Rank 0 alone writes run files, states and the checkpoint; every rank resumes from the
  same state.pt, so every rank is at the same step and data position.

Hangs: the process group has a timeout (collective_timeout), after which a waiting
collective raises; torchrun ends the other ranks as soon as one exits with an error.
"""
from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist

from tasks.common.settings import ThumbsError
from tasks.train.checkpoints import load_trained_weights, trained_weights
from tasks.train.data import MicroBatch
from tasks.train.models import pick_device

BUCKET_ELEMENTS = 25_000_000  # gradients all-reduced per collective: ~100 MB of float32
# Ranks other than 0 wait while rank 0 computes the reference log-probs, which can take
# far longer than any collective should: that one wait has its own, long, timeout.
REFERENCE_WAIT = timedelta(hours=12)


@dataclass(frozen=True)
class Shard:
    """A rank's part of one global micro-batch."""

    micro: MicroBatch  # its rows (a stand-in row when it has none, so it still runs the forwards)
    share: float  # its rows / the global micro-batch's rows; 0 for a stand-in


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    parallel: str = "ddp"

    @property
    def main(self) -> bool:
        """The rank that writes files and reports progress."""
        return self.rank == 0

    @classmethod
    def join(cls, device_choice: str, parallel: str, timeout_s: int) -> tuple[Ranks, torch.device]:
        """This process's rank and device, the process group joined when torchrun started
        several: gloo on CPU, NCCL on CUDA with one device per LOCAL_RANK."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        device = pick_device(device_choice)
        if world == 1:
            return cls(parallel=parallel), device
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        signal.signal(signal.SIGTERM, _ended_by_launcher)
        if not dist.is_initialized():  # joined once per process, however many runs it trains
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                    timeout=timedelta(seconds=timeout_s),
                                    device_id=device if device.type == "cuda" else None)
        return cls(dist.get_rank(), dist.get_world_size(), parallel), device

    @property
    def sharded(self) -> bool:
        return self.world > 1 and self.parallel == "fsdp"

    def training_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict] | None:
        """(weights, AdamW state) for a resumable state, on rank 0 (None elsewhere). With
        fsdp every rank must call it: each layer's shards are gathered whole, keyed by
        parameter name, so a resumed run (of any number of processes) reshards them."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

            weights, moments = get_state_dict(model, optimizer,
                                              options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            return (weights, moments) if self.main else None
        return (trained_weights(model), optimizer.state_dict()) if self.main else None

    def load_training_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, weights: dict,
                            moments: dict) -> None:
        """What training_state gave, back into this rank's model and optimizer (its shards, with fsdp)."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

            set_state_dict(model, optimizer, model_state_dict=weights, optim_state_dict=moments,
                           options=StateDictOptions(full_state_dict=True))
            return
        load_trained_weights(model, weights)
        optimizer.load_state_dict(moments)  # also restores the param groups' current lr

    # --- data ------------------------------------------------------------------------------

    def shard(self, micro: MicroBatch) -> Shard:
        """Rows [start, end) of the micro-batch, slices differing in size by at most one."""
        n = len(micro.rows)
        start, end = n * self.rank // self.world, n * (self.rank + 1) // self.world
        if start == end:  # a stand-in: the first row, counted nowhere
            return Shard(MicroBatch(micro.rows[:1], micro.kl_partners[:1]), 0.0)
        return Shard(MicroBatch(micro.rows[start:end], micro.kl_partners[start:end]), (end - start) / n)

    # --- the model -----------------------------------------------------------------------------

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Every rank starts from rank 0's weights; with fsdp, each decoder layer sharded."""
        if self.world == 1:
            return model
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)
        if self.parallel == "fsdp":
            from torch.distributed.fsdp import fully_shard

            for layer in model.get_decoder().layers:
                fully_shard(layer)
        return model

    def accumulating(self, model: torch.nn.Module, last: bool):
        """FSDP reduces each layer's gradients in the backward: only in the step's last
        micro-batch's. (ddp reduces once, in sync_gradients.)"""
        if self.world == 1 or self.parallel != "fsdp":
            return nullcontext()
        return _gradient_sync(model, last)

    def sync_gradients(self, model: torch.nn.Module) -> None:
        """Sum the replicated parameters' gradients over the ranks, in buckets. Sharded ones
        were reduce-scattered in the backward as a mean over the ranks (FSDP's only mode
        on gloo, which lacks the pre-scaled sum): times the ranks, a sum too."""
        if self.world == 1:
            return
        for param in model.parameters():
            if param.grad is not None and is_sharded(param):
                param.grad.mul_(self.world)
        grads = [p.grad for p in model.parameters() if p.grad is not None and not is_sharded(p)]
        bucket: list[torch.Tensor] = []
        for grad in grads + [None]:
            if bucket and (grad is None or sum(g.numel() for g in bucket) + grad.numel() > BUCKET_ELEMENTS):
                flat = torch.cat([g.reshape(-1) for g in bucket])
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
                offset = 0
                for g in bucket:
                    g.copy_(flat[offset: offset + g.numel()].view_as(g))
                    offset += g.numel()
                bucket = []
            if grad is not None:
                bucket.append(grad)

    def clip_gradients(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        """clip_grad_norm_ over the whole model: with fsdp, the sharded layers' squared
        norms are summed over the ranks before the replicated ones are added."""
        params = [p for p in model.parameters() if p.grad is not None]
        if self.world == 1 or not any(is_sharded(p) for p in params):
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        sharded = torch.nn.utils.get_total_norm([p.grad for p in params if is_sharded(p)]).full_tensor()
        replicated = torch.nn.utils.get_total_norm([p.grad for p in params if not is_sharded(p)])
        norm = torch.linalg.vector_norm(torch.stack([sharded, replicated]))
        factor = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad.mul_(factor)
        return norm

    def full_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
        """The whole model's weights, gathered on rank 0 (None elsewhere); every rank must call it."""
        if self.world == 1 or self.parallel != "fsdp":
            return model.state_dict() if self.main else None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return full if self.main else None

    # --- results -----------------------------------------------------------------------------

    def combine(self, per_micro: list[tuple[float, dict[str, float]]], examples: int,
                tokens: int) -> tuple[list[dict[str, float]], int, int]:
        """Each micro-batch's metrics over the whole global micro-batch, and the examples
        and tokens of every rank. Counts (n_*) are summed; the rest are means weighted by
        share, which makes the loss exactly the global one (class-conditional means such
        as KTO's rewards_chosen are weighted by rows, not by rows of that class)."""
        if self.world == 1:
            return [metrics for _, metrics in per_micro], examples, tokens
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, (per_micro, examples, tokens))
        combined = []
        for index in range(len(per_micro)):
            parts = [(ranks_micro[index][0], ranks_micro[index][1]) for ranks_micro, _, _ in gathered]
            keys = sorted({k for share, metrics in parts if share for k in metrics})
            merged = {}
            for key in keys:
                present = [(share, metrics[key]) for share, metrics in parts if share and key in metrics]
                merged[key] = (sum(v for _, v in present) if key.startswith("n_") else
                               sum(s * v for s, v in present) / sum(s for s, _ in present))
            combined.append(merged)
        return combined, sum(g[1] for g in gathered), sum(g[2] for g in gathered)

    def from_main(self, value: Any) -> Any:
        """Rank 0's `value` on every rank; the others may wait for it for REFERENCE_WAIT."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=_long_wait_group())
        return box[0]


SINGLE = Ranks()  # one process: every helper a no-op


def leave() -> None:
    """Out of the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def ending() -> None:
    """This process is already ending with an error: from here on torchrun's SIGTERM
    (sent once it sees another process gone) must not cut short the line that says why."""
    if signal.getsignal(signal.SIGTERM) is _ended_by_launcher:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _ended_by_launcher(signum, frame) -> None:
    # torchrun sends SIGTERM to every other process once one has exited: without this
    # they would vanish without a word, and the run's only trace be torchrun's report.
    raise ThumbsError("stopped because another training process exited (its own error, if it had one, "
                      "comes first); run again with --resume to continue from the last saved state")


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def process_label() -> str:
    """'rank 1 of 2: ' under torchrun, '' for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return f"rank {os.environ.get('RANK', '0')} of {world}: " if world > 1 else ""


def error_line(exc: BaseException) -> str | None:
    """What a trainer process says when it fails: a ThumbsError's message; with several
    processes, any error in one line naming the rank (a failed collective: another rank
    stopped or hung). None: a single process's bug, left to show its traceback."""
    label = process_label()
    if isinstance(exc, ThumbsError):
        return label + str(exc)
    if not label:
        return None
    import traceback

    traceback.print_exc()  # into trainer.log; the line below is what the person reads
    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, dist.DistError) or "gloo" in first.lower() or "nccl" in first.lower():
        return (f"{label}a collective failed ({type(exc).__name__}: {first}): another process stopped "
                "or hung; rerun with --resume to continue from the last saved state")
    return f"{label}{type(exc).__name__}: {first}"


def is_sharded(param: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(param, DTensor)


@contextmanager
def _gradient_sync(model: torch.nn.Module, enabled: bool) -> Iterator[None]:
    layers = list(model.get_decoder().layers)
    for layer in layers:
        layer.set_requires_gradient_sync(enabled)
    yield


_WAIT_GROUP: list[Any] = []


def _long_wait_group():
    """A gloo group with REFERENCE_WAIT as its timeout, created once per process (by all ranks)."""
    if not _WAIT_GROUP:
        _WAIT_GROUP.append(dist.new_group(backend="gloo", timeout=REFERENCE_WAIT))
    return _WAIT_GROUP[0]


# --- the launcher side (tasks/train/tasks.py) ---------------------------------------------------

def processes_per_node(nproc: int | str) -> int:
    """A number, or "gpu": one process per visible GPU, one process where there is none
    (device=auto then trains on the CPU, as a single process would)."""
    if str(nproc) == "gpu":
        return max(1, torch.cuda.device_count())
    if not str(nproc).isdigit() or int(nproc) < 1:
        raise ThumbsError(f"--nproc {nproc}: expected a number of processes per node (>= 1), or gpu")
    return int(nproc)


def launch_command(trainer_args: Sequence[str], nproc: int | str, torchrun_options: Sequence[str] = ()) -> list[str]:
    """The trainer's command line: `python -m tasks.train.trainer ...`, or with several
    processes (processes_per_node > 1, or torchrun options such as --nnodes) the same
    module under torchrun. torchrun's rendezvous options pass through unchanged; one
    node without them rendezvous on a free local port (--standalone)."""
    trainer = ["-m", "tasks.train.trainer", *trainer_args]
    processes = processes_per_node(nproc)
    if processes == 1 and not torchrun_options:
        return [sys.executable, *trainer]
    options = list(torchrun_options)
    if not any(o.startswith(("--rdzv", "--nnodes", "--master")) for o in options):
        options.append("--standalone")
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}", *options, *trainer]
