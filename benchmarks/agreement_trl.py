"""Loss agreement with TRL: thumbs' KTO and DPO losses on a first step against TRL's
KTOTrainer and DPOTrainer, on the same model, batch and beta.

    .venv/bin/python benchmarks/agreement_trl.py                         # tiny-llama, 2-3 min
    .venv/bin/python benchmarks/agreement_trl.py --model smollm2-135m    # SmolLM2-135M-Instruct

(Times on a shared 2-core CPU. SmolLM2 runs 12 TRL first steps: 7 s each at low load,
29-111 s with other jobs on the cores; 27 min in all in RESULTS.md.)

TRL is a benchmark-only dependency (the `bench` extra): `pip install -c constraints.txt trl`.

The batch: the first `--pairs` HH-RLHF pairs of helpful-base (test) that thumbs' own
parser (tasks.sources.hh) loads and whose sequences fit `--max-tokens`, so neither side
truncates. DPO gets them as (prompt, chosen, rejected). KTO gets them unpaired: every
pair's chosen (desirable), then the rejected of the first `--kto-undesirable` pairs
(undesirable), so the batch is imbalanced and the lambda weights matter
(kto_lambdas(4, 2) = (1, 2); TRL gets desirable_weight=1, undesirable_weight=2).
float32 on CPU, beta = 0.1, no dropout, one step.

Three reference settings ("modes"):
- same: policy == reference, the real first step. Every reward is 0, so both losses are
  constants (KTO: mean of lambda/2; DPO: log 2) and only the log-prob metrics say
  anything about the forward passes.
- ref-perturbed / policy-perturbed: one of the two models gets seeded Gaussian noise
  (`--noise` x each weight tensor's std). Rewards are then non-zero and the losses
  depend on every log-prob. The KL estimate flips sign between the two modes, so one
  of them exercises z0 > 0 and the other the clamp at 0.

Each (mode, algorithm) runs TRL twice:
- raw: TRL as it is usually called, on conversational rows (prompt messages,
  assistant completion) in thumbs' batch order. Its chat-template tokenization scores
  one more token than thumbs (the "\\n" the template writes after <|im_end|>), and its
  KTO KL rows rotate the other way ((x_i, y_{i-1}) against (x_i, y_{i+1}), the pairing
  thumbs' mismatched_indices gives without a generator).
- aligned: the prompt rendered by the chat template as text (what thumbs tokenizes)
  and the bare reply (TRL appends EOS = <|im_end|>), and for KTO the rows in reverse
  order, so TRL's rotation yields exactly thumbs' mismatched pairs. The benchmark
  checks, token by token, that TRL then scores thumbs' sequences and KL rows.

TRL's side runs through TRL's machinery: KTOTrainer/DPOTrainer built with
bf16=False, use_cpu=True, max_steps=1, its own dataset preparation, collator, sampler,
reference model and fused log-prob head, on copies of the mode's models. Its loss is
what its compute_loss returns in train() for the first batch, its metrics what its log()
then reports; a compute_loss hook keeps the batch it scored and stops the step there
(backward and optimizer step cannot change the first loss). thumbs' side:
tasks.train.batching.ChatEncoder -> pad -> tasks.train.logprobs.sequence_logps -> LOSSES[algo]
(tasks.train.losses), lambdas from kto_lambdas, as tasks/train/objective.py does (padded, its
default). KL rows: mismatched_indices(n), the rotation; the trainer passes a seeded
generator instead (a random derangement per batch), which only changes which mismatched
pairs estimate z0. A third column, "thumbs on TRL's tokens", replays thumbs' log-probs
and losses on the exact sequences TRL scored: it accounts for the raw differences.

Pass: |thumbs - TRL| <= 1e-4 on every aligned case (with identical token ids and KL
pairs), and |thumbs on TRL's tokens - TRL| <= 1e-4 on every case. Exit status 1 otherwise.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import io
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(PROJECT_ROOT))
HH_DIR = PROJECT_ROOT.parent / "shared" / "data" / "hh-rlhf"

# No hub at run time; quiet progress bars.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

from tasks.train.batching import ChatEncoder, Encoded, pad  # noqa: E402
from tasks.train.logprobs import sequence_logps  # noqa: E402
from tasks.train.losses import LOSSES, kto_lambdas, mismatched_indices  # noqa: E402
from tasks.train.models import load_policy, load_tokenizer, resolve_model  # noqa: E402
from tasks.sources import hh  # noqa: E402
from tasks.sources.base import RowRejected  # noqa: E402

TOLERANCE = 1e-4
MODES = ("same", "ref-perturbed", "policy-perturbed")
# Noise that moves rewards (beta * log-ratio) to ~0.1-0.2 on these HH rows. A random tiny-llama
# predicts a near-uniform distribution that even noise as large as its weights barely changes.
DEFAULT_NOISE = {"tiny-llama": 1.0, "other": 0.03}
# thumbs metric name -> TRL's logged name
KTO_METRICS = {"kl": "kl", "rewards_chosen": "rewards/chosen", "rewards_rejected": "rewards/rejected",
               "reward_margin": "rewards/margins", "logps_chosen": "logps/chosen",
               "logps_rejected": "logps/rejected"}
DPO_METRICS = {"rewards_chosen": "rewards/chosen", "rewards_rejected": "rewards/rejected",
               "reward_margin": "rewards/margins", "reward_accuracy": "rewards/accuracies",
               "logps_chosen": "logps/chosen", "logps_rejected": "logps/rejected"}


# --- the batch ------------------------------------------------------------------------

@dataclass(frozen=True)
class Pair:
    prompt: tuple  # ((role, content), ...)
    chosen: str
    rejected: str
    line: int  # 0-based line in the HH file

    @property
    def messages(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.prompt]


@dataclass(frozen=True)
class Row:
    """One unpaired KTO row."""
    pair: int
    completion: str
    desirable: bool


def load_pairs(path: Path, n: int, encoder: ChatEncoder, max_tokens: int) -> list[Pair]:
    """The first n pairs of `path` that thumbs' HH parser loads, with a prompt seen once and
    every sequence within max_tokens (so neither side truncates)."""
    pairs: list[Pair] = []
    seen = set()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line_no, line in enumerate(handle):
            try:
                (staged,) = hh.parse(json.loads(line))
            except RowRejected:
                continue
            values = staged.values
            prompt = tuple((m["role"], m["content"]) for m in values["prompt"])
            if prompt in seen:
                continue
            pair = Pair(prompt, values["chosen"], values["rejected"], line_no)
            lengths = [len(encoder.encode(pair.messages, reply).input_ids) for reply in (pair.chosen, pair.rejected)]
            if max(lengths) > max_tokens:
                continue
            seen.add(prompt)
            pairs.append(pair)
            if len(pairs) == n:
                return pairs
    raise SystemExit(f"{path}: only {len(pairs)} pairs fit --max-tokens {max_tokens}; need {n}")


def kto_rows(pairs: list[Pair], n_undesirable: int) -> list[Row]:
    """Every pair's chosen, then the first pairs' rejected: a completion's neighbours in the
    batch (both rotation directions) never come from its own prompt."""
    return ([Row(i, p.chosen, True) for i, p in enumerate(pairs)]
            + [Row(i, p.rejected, False) for i, p in enumerate(pairs[:n_undesirable])])


# --- models ---------------------------------------------------------------------------

def perturb_(model, scale: float, seed: int):
    """Adds scale * std(W) * N(0, 1) noise to every weight tensor, seeded. A constant tensor
    (a random model's norm weights, all ones) has std 0 and stays as it is."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in model.named_parameters():  # tied weights are listed once
            if param.numel() > 1:
                noise = torch.randn(param.shape, generator=generator, dtype=param.dtype)
                param.add_(noise * (scale * param.std()))
    return model


def load_model(path: Path, perturbed: bool, args):
    model = load_policy(path, torch.device("cpu"), torch.float32)
    return perturb_(model, args.noise, args.seed) if perturbed else model


def mode_models(mode: str) -> tuple[bool, bool]:
    """(policy perturbed, reference perturbed)."""
    return {"same": (False, False), "ref-perturbed": (False, True), "policy-perturbed": (True, False)}[mode]


# --- thumbs' side ---------------------------------------------------------------------

def split(encoded: Encoded) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(encoded.input_ids[:encoded.prompt_length]), tuple(encoded.input_ids[encoded.prompt_length:])


def logps_of(model, encoded: list[Encoded], pad_token_id: int, grad: bool) -> torch.Tensor:
    """Summed completion log-probs as the trainer gets them (padded batch, float32 on CPU)."""
    with torch.set_grad_enabled(grad):
        summed, _ = sequence_logps(model, pad(encoded, pad_token_id))
    return summed


def thumbs_kto(policy, reference, main: list[Encoded], kl: list[Encoded], desirable: list[bool],
               lambdas: tuple[float, float], beta: float, pad_token_id: int) -> dict:
    """LOSSES['kto'] on these sequences: the policy forward with gradients like a training step,
    the KL rows and the reference without (the trainer caches reference log-probs)."""
    policy_logps = logps_of(policy, main, pad_token_id, grad=True)
    kl_policy = logps_of(policy, kl, pad_token_id, grad=False)
    reference_logps = logps_of(reference, main, pad_token_id, grad=False)
    kl_reference = logps_of(reference, kl, pad_token_id, grad=False)
    labels = torch.tensor(desirable, dtype=torch.bool)
    loss, metrics = LOSSES["kto"].fn(
        policy_logps=policy_logps, reference_logps=reference_logps, kl_policy_logps=kl_policy,
        kl_reference_logps=kl_reference, desirable=labels, beta=beta, lambda_d=lambdas[0], lambda_u=lambdas[1],
        kl_reduce=None)
    metrics = dict(metrics)
    metrics["logps_chosen"] = float(policy_logps.detach()[labels].double().mean())
    metrics["logps_rejected"] = float(policy_logps.detach()[~labels].double().mean())
    metrics["kl_unclamped"] = float((kl_policy - kl_reference).double().mean())
    return {"loss": float(loss.detach()), "metrics": metrics}


def thumbs_dpo(policy, reference, chosen: list[Encoded], rejected: list[Encoded], beta: float,
               pad_token_id: int) -> dict:
    """LOSSES['dpo']: one forward over all chosen then all rejected, as the trainer batches pairs."""
    n = len(chosen)
    policy_logps = logps_of(policy, chosen + rejected, pad_token_id, grad=True)
    reference_logps = logps_of(reference, chosen + rejected, pad_token_id, grad=False)
    loss, metrics = LOSSES["dpo"].fn(
        policy_chosen_logps=policy_logps[:n], policy_rejected_logps=policy_logps[n:],
        reference_chosen_logps=reference_logps[:n], reference_rejected_logps=reference_logps[n:], beta=beta)
    metrics = dict(metrics)
    metrics["logps_chosen"] = float(policy_logps.detach()[:n].double().mean())
    metrics["logps_rejected"] = float(policy_logps.detach()[n:].double().mean())
    return {"loss": float(loss.detach()), "metrics": metrics}


# --- TRL's side -----------------------------------------------------------------------

class FirstLossComputed(Exception):
    """Stops TRL's trainer once its first compute_loss has returned."""


def trl_run(algo: str, args, model_dir: Path, mode: str, models: tuple, records: list[dict], batch_size: int,
            kto_weights: tuple[float, float] | None) -> dict:
    """TRL's loss for its first step on `records`, the metrics it logs with it, and the batch it
    scored. TRL gets copies of the mode's (policy, reference): thumbs' models stay as they were.

    The step stops when TRL's compute_loss returns: the backward pass and the optimizer step
    that would follow cannot change the first loss (and took ~40% of TRL's time)."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    base_cls, config_cls = (KTOTrainer, KTOConfig) if algo == "kto" else (DPOTrainer, DPOConfig)

    class FirstStep(base_cls):
        """TRL's trainer; keeps the loss and the batch of its first compute_loss, then stops."""
        first: dict | None = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
            self.first = {"loss": float(loss.detach()),
                          "batch": {k: v.detach().cpu().clone() for k, v in inputs.items() if torch.is_tensor(v)}}
            raise FirstLossComputed

    policy = copy.deepcopy(models[0])
    # policy == reference: let TRL build its reference itself (loaded from the model directory).
    ref_model = copy.deepcopy(models[1]) if mode != "same" else None
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    extra = {}
    if algo == "kto":
        extra = {"desirable_weight": kto_weights[0], "undesirable_weight": kto_weights[1]}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="thumbs-trl-") as out_dir:
        config = config_cls(
            output_dir=out_dir, per_device_train_batch_size=batch_size, max_steps=1, logging_steps=1,
            bf16=False, fp16=False, use_cpu=True, report_to="none", save_strategy="no", seed=args.seed,
            beta=args.beta, max_length=None, train_sampling_strategy="sequential", disable_dropout=True,
            dataloader_num_workers=0, activation_checkpointing=False, **extra)
        trainer = FirstStep(model=policy, ref_model=ref_model, args=config,
                            train_dataset=Dataset.from_list(records), processing_class=tokenizer)
        with contextlib.suppress(FirstLossComputed):
            trainer.train()
    if trainer.first is None:
        raise SystemExit(f"TRL {algo}: the first step never reached compute_loss")
    # TRL's log() adds the metrics its compute_loss recorded (kl, rewards/..., logps/...); the
    # trainer's printer callback would echo them to stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.log({"loss": trainer.first["loss"]})
    seconds = time.perf_counter() - started
    print(f"  TRL {algo} {mode}: first loss in {seconds:.0f} s", file=sys.stderr, flush=True)
    return {"loss": trainer.first["loss"], "logs": trainer.state.log_history[-1], "batch": trainer.first["batch"],
            "seconds": seconds}


def trl_sequences(batch: dict, prefix: str = "") -> list[Encoded]:
    """The (prompt, completion) token ids of each row TRL scored, from its collated batch."""
    ids, attention, completion = (batch[prefix + k] for k in ("input_ids", "attention_mask", "completion_mask"))
    out = []
    for row in range(ids.shape[0]):
        n = int(attention[row].sum())
        mask = completion[row, :n].tolist()
        out.append(Encoded(ids[row, :n].tolist(), mask.index(1)))
    return out


# --- comparing inputs -----------------------------------------------------------------

@dataclass
class Inputs:
    """How TRL's scored sequences relate to thumbs' for the same rows."""
    rows: int = 0
    identical: int = 0
    tails: Counter = field(default_factory=Counter)  # TRL completion = thumbs completion + tail
    other: int = 0
    kl_identical: int | None = None
    kl_pairing: str | None = None  # e.g. "i->i+1"

    @property
    def all_identical(self) -> bool:
        return (self.identical == self.rows and not self.other
                and (self.kl_identical is None or self.kl_identical == self.rows))

    def describe(self, decode) -> str:
        text = f"{self.identical}/{self.rows} sequences token-identical"
        if self.tails:
            text += "; TRL adds " + ", ".join(f"{decode(list(t))!r} ({n}x)" for t, n in self.tails.items())
        if self.other:
            text += f"; {self.other} differ otherwise"
        if self.kl_identical is not None:
            text += f"; KL rows {self.kl_identical}/{self.rows} identical, pairing {self.kl_pairing}"
        return text


def compare_inputs(expected: list[Encoded], scored: list[Encoded], report: Inputs) -> list[int | None]:
    """Updates report with expected[j] vs scored[j]; returns the tail length of each row (None: other)."""
    tails = []
    for want, got in zip(expected, scored, strict=True):
        (wp, wc), (gp, gc) = split(want), split(got)
        report.rows += 1
        if (wp, wc) == (gp, gc):
            report.identical += 1
            tails.append(0)
        elif wp == gp and gc[:len(wc)] == wc:
            report.tails[gc[len(wc):]] += 1
            tails.append(len(gc) - len(wc))
        else:
            report.other += 1
            tails.append(None)
    return tails


def kl_pairing(order: list[int], scored_kl: list[Encoded], completions: dict[tuple, int],
               tail: int) -> dict[int, int | None]:
    """thumbs row -> the thumbs row whose completion TRL put in its KL row (tail tokens stripped)."""
    out = {}
    for j, seq in enumerate(scored_kl):
        completion = split(seq)[1]
        completion = completion[:len(completion) - tail] if tail else completion
        out[order[j]] = completions.get(completion)
    return out


def pairing_name(partners: dict[int, int | None], n: int) -> str:
    offsets = {(b - a) % n if b is not None else None for a, b in partners.items()}
    if offsets == {1}:
        return "i->i+1"
    if offsets == {n - 1}:
        return "i->i-1"
    return "irregular " + str(sorted(partners.items()))


# --- one mode -------------------------------------------------------------------------

def run_mode(mode: str, args, model_dir: Path, tokenizer, encoder: ChatEncoder, pairs: list[Pair]) -> list[dict]:
    pad_id = tokenizer.pad_token_id
    policy_perturbed, reference_perturbed = mode_models(mode)
    policy = load_model(model_dir, policy_perturbed, args)
    reference = load_model(model_dir, reference_perturbed, args)
    policy.train()  # as in a training step (no dropout in these models)
    reference.eval()
    results = []

    # KTO: thumbs' lambdas and loss; KL rows from mismatched_indices without a generator, the
    # rotation i -> i+1. (The trainer passes a seeded generator: a random derangement per batch.
    # Any derangement is a valid KTO pairing; the rotation is the one TRL's can be aligned with.)
    rows = kto_rows(pairs, args.kto_undesirable)
    n = len(rows)
    desirable = [r.desirable for r in rows]
    lambdas = kto_lambdas(sum(desirable), n - sum(desirable))
    partner = mismatched_indices(n).tolist()
    prompts = [pairs[r.pair].messages for r in rows]
    main = [encoder.encode(prompts[i], rows[i].completion) for i in range(n)]
    kl = [encoder.encode(prompts[i], rows[partner[i]].completion) for i in range(n)]
    if any(e.truncated for e in main + kl):
        raise SystemExit("a KTO sequence was truncated: the comparison assumes none is")
    for i in range(n):
        if rows[partner[i]].pair == rows[i].pair:
            raise SystemExit(f"KTO batch: row {i}'s KL completion comes from its own prompt")
    own = thumbs_kto(policy, reference, main, kl, desirable, lambdas, args.beta, pad_id)
    completions = {split(e)[1]: i for i, e in enumerate(main)}

    for variant in ("raw", "aligned"):
        if variant == "raw":
            order = list(range(n))
            records = [{"prompt": prompts[i], "completion": [{"role": "assistant", "content": rows[i].completion}],
                        "label": rows[i].desirable} for i in order]
        else:
            order = list(reversed(range(n)))  # TRL's (x_i, y_{i-1}) on reversed rows = thumbs' (x_i, y_{i+1})
            records = [{"prompt": render_prompt(tokenizer, prompts[i]), "completion": rows[i].completion,
                        "label": rows[i].desirable} for i in order]
        trl = trl_run("kto", args, model_dir, mode, (policy, reference), records, n, lambdas)
        scored, scored_kl = trl_sequences(trl["batch"]), trl_sequences(trl["batch"], "KL_")
        labels = trl["batch"]["label"].bool().tolist()
        if labels != [desirable[i] for i in order]:
            raise SystemExit(f"TRL KTO {variant}: batch labels {labels} are not the rows given, in order")
        report = Inputs()
        tails = compare_inputs([main[i] for i in order], scored, report)
        tail = tails[0] if len(set(tails)) == 1 and tails[0] is not None else 0
        partners = kl_pairing(order, scored_kl, completions, tail)
        report.kl_pairing = pairing_name(partners, n)
        report.kl_identical = sum(
            1 for j, i in enumerate(order)
            if partners[i] is not None and split(scored_kl[j]) == split(
                encoder.encode(prompts[i], rows[partners[i]].completion)) and partners[i] == partner[i])
        replay = thumbs_kto(policy, reference, scored, scored_kl, labels, lambdas, args.beta, pad_id)
        results.append(case("kto", mode, variant, own, replay, trl, report, tokenizer, KTO_METRICS,
                            extra={"lambdas": lambdas, "rows": n}))

    # DPO: the pairs as they are.
    chosen = [encoder.encode(p.messages, p.chosen) for p in pairs]
    rejected = [encoder.encode(p.messages, p.rejected) for p in pairs]
    own = thumbs_dpo(policy, reference, chosen, rejected, args.beta, pad_id)
    for variant in ("raw", "aligned"):
        if variant == "raw":
            records = [{"prompt": p.messages, "chosen": [{"role": "assistant", "content": p.chosen}],
                        "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs]
        else:
            records = [{"prompt": render_prompt(tokenizer, p.messages), "chosen": p.chosen, "rejected": p.rejected}
                       for p in pairs]
        trl = trl_run("dpo", args, model_dir, mode, (policy, reference), records, len(pairs), None)
        scored = trl_sequences(trl["batch"])
        report = Inputs()
        compare_inputs(chosen + rejected, scored, report)
        k = len(pairs)
        replay = thumbs_dpo(policy, reference, scored[:k], scored[k:], args.beta, pad_id)
        results.append(case("dpo", mode, variant, own, replay, trl, report, tokenizer, DPO_METRICS,
                            extra={"pairs": k}))
    return results


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """The prompt as thumbs' ChatEncoder tokenizes it: the chat template with the generation header."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def case(algo, mode, variant, own, replay, trl, report: Inputs, tokenizer, names, extra) -> dict:
    diff = abs(own["loss"] - trl["loss"])
    replay_diff = abs(replay["loss"] - trl["loss"])
    passed = replay_diff <= TOLERANCE and (variant == "raw" or (diff <= TOLERANCE and report.all_identical))
    metrics = {}
    for ours, theirs in names.items():
        metrics[theirs] = {"thumbs": own["metrics"].get(ours), "thumbs_on_trl_tokens": replay["metrics"].get(ours),
                           "trl": trl["logs"].get(theirs)}
    if "kl_unclamped" in own["metrics"]:
        metrics["kl before clamp"] = {"thumbs": own["metrics"]["kl_unclamped"],
                                      "thumbs_on_trl_tokens": replay["metrics"]["kl_unclamped"], "trl": None}
    return {"algo": algo, "mode": mode, "variant": variant, "thumbs_loss": own["loss"], "trl_loss": trl["loss"],
            "diff": diff, "replay_loss": replay["loss"], "replay_diff": replay_diff, "pass": passed,
            "inputs": report.describe(tokenizer.decode), "inputs_identical": report.all_identical,
            "metrics": metrics, "trl_seconds": round(trl["seconds"], 1), **extra}


# --- output ---------------------------------------------------------------------------

def fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.6f}" if abs(value) < 1e4 else f"{value:.4e}"


def print_tables(results: list[dict]) -> None:
    print("\n## losses (first step)\n")
    print("| mode | algo | TRL input | thumbs loss | TRL loss | abs diff | thumbs on TRL's tokens | abs diff | pass |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        verdict = "yes" if r["pass"] else "NO"
        if r["variant"] == "raw" and r["diff"] > TOLERANCE and r["pass"]:
            verdict = "yes (raw diff explained)"
        print(f"| {r['mode']} | {r['algo']} | {r['variant']} | {r['thumbs_loss']:.6f} | {r['trl_loss']:.6f} | "
              f"{r['diff']:.2e} | {r['replay_loss']:.6f} | {r['replay_diff']:.2e} | {verdict} |")
    print("\n## inputs TRL scored, against thumbs' sequences for the same rows\n")
    for r in results:
        print(f"- {r['mode']} {r['algo']} {r['variant']}: {r['inputs']}")
    print("\n## metrics (TRL's names; thumbs' rewards are beta * log-ratio, logps are summed log-probs)\n")
    print("| mode | algo | TRL input | metric | thumbs | thumbs on TRL's tokens | TRL | abs diff (TRL-thumbs) |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for r in results:
        for name, v in r["metrics"].items():
            diff = None if v["trl"] is None or v["thumbs"] is None else abs(v["trl"] - v["thumbs"])
            print(f"| {r['mode']} | {r['algo']} | {r['variant']} | {name} | {fmt(v['thumbs'])} | "
                  f"{fmt(v['thumbs_on_trl_tokens'])} | {fmt(v['trl'])} | "
                  f"{'-' if diff is None else f'{diff:.2e}'} |")


def environment() -> dict:
    import accelerate
    import datasets
    import transformers
    import trl

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "trl": trl.__version__,
            "accelerate": accelerate.__version__, "datasets": datasets.__version__,
            "cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny-llama", help="tiny-llama | smollm2-135m | a model directory")
    parser.add_argument("--pairs", type=int, default=4, help="HH pairs in the batch (DPO batch size)")
    parser.add_argument("--kto-undesirable", type=int, default=None,
                        help="how many of the pairs' rejected replies join the KTO batch (default pairs // 2)")
    parser.add_argument("--max-tokens", type=int, default=192, help="longest sequence allowed (none is truncated)")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--noise", type=float, default=None,
                        help="perturbed modes: noise std as a fraction of each weight tensor's std (default: "
                             "1.0 for tiny-llama, 0.03 otherwise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {MODES}")
    parser.add_argument("--hh-file", default="helpful-base.test.jsonl.gz")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.noise is None:
        args.noise = DEFAULT_NOISE.get(args.model, DEFAULT_NOISE["other"])
    if args.kto_undesirable is None:
        args.kto_undesirable = args.pairs // 2
    if args.pairs < 2 or not 2 <= args.kto_undesirable <= args.pairs:
        parser.error("need --pairs >= 2 and 2 <= --kto-undesirable <= --pairs (a KL row must never meet its "
                     "own prompt: with one rejected row it would sit next to its own chosen)")
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}")

    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    # TRL 1.16 itself still reads the property transformers 5 renamed (trl/models/utils.py).
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    model_dir = resolve_model(args.model)
    tokenizer = load_tokenizer(model_dir)
    # A KL row joins one row's prompt with another's reply: up to twice --max-tokens, never truncated.
    encoder = ChatEncoder(tokenizer, max_length=2 * args.max_tokens)
    pairs = load_pairs(HH_DIR / args.hh_file, args.pairs, encoder, args.max_tokens)
    env = environment()
    print(f"# loss agreement with TRL: model {args.model}, beta {args.beta}, {args.pairs} HH pairs "
          f"({args.hh_file} lines {[p.line for p in pairs]}), KTO batch {args.pairs} desirable + "
          f"{args.kto_undesirable} undesirable, noise {args.noise}, seed {args.seed}")
    print("# " + ", ".join(f"{k} {v}" for k, v in env.items()))

    results = []
    for mode in modes:
        results += run_mode(mode, args, model_dir, tokenizer, encoder, pairs)
    print_tables(results)
    elapsed = time.perf_counter() - started
    failed = [r for r in results if not r["pass"]]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed (tolerance {TOLERANCE:g}; "
          f"{elapsed:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "environment": env,
                                         "hh_lines": [p.line for p in pairs], "seconds": round(elapsed, 1),
                                         "results": results}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
