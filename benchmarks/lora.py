"""LoRA against full fine-tuning and against TRL with peft: the same model, rows, batch,
max_length, beta, lr and optimizer, on one machine in one run.

    flock /tmp/thumbs-heavy.lock .venv/bin/python benchmarks/lora.py            # CPU: SmolLM2-135M
    flock /tmp/thumbs-heavy.lock .venv/bin/python benchmarks/lora.py --record   # + append to RESULTS.md

Three sides per algorithm, each in its own subprocess (benchmarks/train_vs_trl.py's
workers, so rows, timing, the reference pass and peak memory are counted as there):
- `full`: thumbs fine-tuning every weight (its TrainConfig defaults);
- `lora`: thumbs with LoRA adapters (lora_r/lora_alpha/lora_dropout, every linear layer
  but lm_head); its reference pass is the policy with adapters disabled;
- `trl-peft`: TRL's KTOTrainer/DPOTrainer given the same adapters as peft_config
  (TRL's reference is then its policy with adapters disabled too, run in every step).
Figures: samples/s and peak memory (CPU: the worker's peak RSS; CUDA:
torch.cuda.max_memory_allocated) with the ratios lora/full and lora/trl-peft. On CUDA
the same command runs unchanged (bf16 autocast on both sides). TRL is a benchmark-only
dependency (`pip install -c constraints.txt trl datasets`); without it the TRL side is
reported as not measured and the other two still run.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_vs_trl import machine, matmul_peak, print_and_record, run_worker  # noqa: E402

SIDES = ("full", "lora", "trl-peft")


def measure(side: str, algo: str, model_dir: Path, args, lora: list[str]) -> dict:
    """(samples/s, s/step, peak memory bytes) of one side, from train_vs_trl's worker."""
    worker_args = argparse.Namespace(**{**vars(args), "thumbs_option": lora if side != "full" else []})
    result = run_worker("thumbs" if side != "trl-peft" else "trl", algo, model_dir, worker_args)
    step = sum(result["step_times"]) / len(result["step_times"])
    return {"s_per_step": step, "samples_per_s": result["samples"] / step, "peak_memory": result["peak_memory"]}


def table(model: str, rows: dict[str, dict[str, dict | None]]) -> str:
    lines = [f"| {model} | side | s/step | samples/s | peak mem GiB |", "|---|---|---|---|---|"]
    for algo, sides in rows.items():
        for side in SIDES:
            f = sides.get(side)
            lines.append(f"| {algo} | {side} | " + (f"{f['s_per_step']:.2f} | {f['samples_per_s']:.3f} | "
                                                   f"{f['peak_memory'] / 2 ** 30:.2f} |" if f else
                                                   "not measured | | |"))
        for other in ("full", "trl-peft"):
            if sides.get("lora") and sides.get(other):
                lo, ot = sides["lora"], sides[other]
                lines.append(f"| {algo} | lora / {other} | | {lo['samples_per_s'] / ot['samples_per_s']:.2f}x | "
                             f"{lo['peak_memory'] / ot['peak_memory']:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default="kto,dpo")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=2, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=float, default=32.0)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    parser.add_argument("--note", default="", help="a line to record with the results")
    args = parser.parse_args()

    from tasks.train.models import resolve_model

    device = torch.device(args.device)
    header = machine(device, args.threads, matmul_peak(device, args.threads))
    print(header, file=sys.stderr)
    lora = [f"lora_r={args.lora_r}", f"lora_alpha={args.lora_alpha}", f"lora_dropout={args.lora_dropout}"]
    have_trl = importlib.util.find_spec("trl") is not None and importlib.util.find_spec("datasets") is not None
    model_dir = resolve_model(args.model)
    rows = {algo: {side: measure(side, algo, model_dir, args, lora) if side != "trl-peft" or have_trl else None
                   for side in SIDES} for algo in args.algos.split(",")}
    report = [f"### LoRA: {header}", "",
              f"batch {args.batch}, max_length {args.max_length}, beta {args.beta}, lr {args.lr}, {args.warmup} "
              f"warm-up + {args.steps} timed steps, device {device.type}; LoRA r={args.lora_r} "
              f"alpha={args.lora_alpha} dropout={args.lora_dropout} on every linear layer but lm_head"
              + ("" if have_trl else "; TRL+peft not measured: trl/datasets not installed here")
              + (f". {args.note}" if args.note else ""), "", table(args.model, rows), ""]
    print_and_record(report, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
