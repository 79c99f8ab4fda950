"""The trainer's fast path (packed rows, prompts shared between replies, attention group
by group, chunked log-probs, decoder layers recomputed in the backward) gives the losses
and gradients of a straightforward one (padded batch, eager attention, full-vocabulary
logits, KL rows forwarded separately, every activation kept); the reference pass's packed
forwards give the log-probs of sequences scored alone; and the CUDA-only branches (bf16
autocast, device placement) run as far as a CPU allows."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from schemas.train import TrainConfig
from tasks.train import models; from tasks.train import reference_cache
from tasks.train.batching import ChatEncoder, pack, pad
from tasks.train.logprobs import GROUP_ATTENTION, naive_sequence_logps
from tasks.train.losses import LOSSES
from tasks.common.settings import ThumbsError
from tasks.train.data import Batches, MicroBatch, Rows, Sequences
from tasks.train.objective import Objective, Policy, distributed_kl_mean
from tasks.train.state import TrainingState
from tasks.train.trainer import train_step

CPU = torch.device("cpu")
# Three prompts, two of them multi-turn; every prompt has a chosen and a rejected reply.
PROMPTS = [
    [{"role": "user", "content": "How do I boil an egg?"}],
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Another one, please, and say why you like it."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}],
]
CHOSEN = ["Put it in boiling water for eight minutes.", "Green, because it is calm.", "4."]
REJECTED = ["Eggs cannot be boiled.", "No.", "Five, or maybe twenty-two, it depends on the day of the week."]


def kto_setup(tokenizer, max_length: int = 64):
    """KTO rows as the benchmark lays them out: every pair's chosen, then its rejected,
    so a prompt appears twice in the batch and again in the KL rows. At max_length 64
    the longest rejected reply cuts its prompt short: that prompt is then not shared."""
    rows = Rows([str(i) for i in range(6)], PROMPTS + PROMPTS, {"completion": CHOSEN + REJECTED},
                [True] * 3 + [False] * 3)
    members = tuple(range(6))
    micro = MicroBatch(members, members[-1:] + members[:-1])  # KL: row i with row i-1's completion
    return Sequences(rows, ChatEncoder(tokenizer, max_length)), micro, {"lambda_d": 1.0, "lambda_u": 1.5,
                                                                        "kl_reduce": distributed_kl_mean}


def dpo_setup(tokenizer):
    rows = Rows(["a", "b", "c"], PROMPTS, {"chosen": CHOSEN, "rejected": REJECTED}, None)
    return Sequences(rows, ChatEncoder(tokenizer, 64)), MicroBatch((0, 1, 2)), {}


SETUPS = {"kto": kto_setup, "dpo": dpo_setup}


def all_sequences(seqs: Sequences, micro: MicroBatch):
    return micro.main_sequences(list(seqs.rows.replies)) + micro.kl_sequences()


def made_up_reference(seqs: Sequences, micro: MicroBatch) -> dict[str, float]:
    """Reference log-probs that make every reward non-zero and differ between rows."""
    return {seqs.key(s): -40.0 - 3.0 * i for i, s in enumerate(all_sequences(seqs, micro))}


def straightforward_inputs(model, micro: MicroBatch, seqs: Sequences, algo: str,
                           reference: dict[str, float], pad_token_id: int) -> dict:
    """What the loss needs, the obvious way: padded batches, full logits."""
    fields = list(seqs.rows.replies)
    main = micro.main_sequences(fields)
    logps, lengths = naive_sequence_logps(model, pad([seqs.encoded(s) for s in main], pad_token_id))

    def ref(sequences):
        return torch.tensor([reference[seqs.key(s)] for s in sequences], dtype=torch.float64)

    if algo == "dpo":
        n = len(micro.rows)
        return {"policy_chosen_logps": logps[:n], "policy_rejected_logps": logps[n:],
                "reference_chosen_logps": ref(main[:n]), "reference_rejected_logps": ref(main[n:])}
    kl = micro.kl_sequences()
    with torch.no_grad():
        kl_logps, _ = naive_sequence_logps(model, pad([seqs.encoded(s) for s in kl], pad_token_id))
    return {"policy_logps": logps, "reference_logps": ref(main), "kl_policy_logps": kl_logps,
            "kl_reference_logps": ref(kl), "lengths": lengths,
            "desirable": torch.tensor([seqs.rows.labels[r] for r in micro.rows])}


def loss_and_grads(model, inputs_of) -> tuple[float, dict[str, float], dict[str, torch.Tensor]]:
    model.zero_grad()
    loss, metrics = inputs_of()
    loss.backward()
    return float(loss.detach()), metrics, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir: Path):
    return models.load_tokenizer(tiny_llama_dir)


@pytest.mark.parametrize("checkpointing", [True, False])
@pytest.mark.parametrize("packing", [True, False])
@pytest.mark.parametrize("algo", ["kto", "dpo"])
def test_fast_path_equals_straightforward_path(tiny_llama_dir: Path, tokenizer, algo: str, packing: bool,
                                               checkpointing: bool):
    # float64, so that "equal" can be tight (attention kernels differ between the paths:
    # flash-style causal sdpa vs eager; the losses agree to ~1e-9 relative).
    fast_model = models.load_policy(tiny_llama_dir, CPU, torch.float64, gradient_checkpointing=checkpointing)
    fast_model.train()  # layers are recomputed in the backward in train mode only (no dropout in Llama)
    plain_model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float64,
                                                       attn_implementation="eager")
    assert fast_model.config._attn_implementation == GROUP_ATTENTION
    seqs, micro, extra = SETUPS[algo](tokenizer)
    reference = made_up_reference(seqs, micro)
    hyper = {"beta": 0.1, **extra}
    spec = LOSSES[algo]
    pad_id = tokenizer.pad_token_id

    def fast():
        inputs, _ = Objective(spec, hyper, reference).inputs(Policy(fast_model, CPU, packing, pad_id), micro, seqs)
        return spec.call(inputs)

    def plain():
        return spec.call({**hyper, **straightforward_inputs(plain_model, micro, seqs, algo, reference, pad_id)})

    fast_loss, fast_metrics, fast_grads = loss_and_grads(fast_model, fast)
    plain_loss, plain_metrics, plain_grads = loss_and_grads(plain_model, plain)
    assert fast_loss == pytest.approx(plain_loss, rel=1e-7, abs=1e-9)
    assert plain_loss != pytest.approx(0.6931, abs=1e-3)  # rewards are not all 0: the loss depends on them
    for key in plain_metrics:
        assert fast_metrics[key] == pytest.approx(plain_metrics[key], rel=1e-7, abs=1e-8), key
    assert fast_grads.keys() == plain_grads.keys() and fast_grads
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_packing_shares_each_prompt(tokenizer):
    """The fast path really is taken: a KTO batch from pairs forwards each prompt once."""
    seqs, micro, _ = kto_setup(tokenizer, max_length=256)
    encoded = [seqs.encoded(s) for s in micro.main_sequences(["completion"])]
    shared = pack(encoded, share_prompts=True)
    assert len(shared.groups) == 3 and all(len(g.branches) == 2 for g in shared.groups)
    prompts = sum(e.prompt_length for e in encoded[:3])
    assert shared.input_ids.shape[1] == sum(len(e.input_ids) for e in encoded) - prompts
    assert shared.target.numel() == sum(e.completion_length for e in encoded)


def test_packed_reference_pass_equals_padded_one(tiny_llama_dir: Path, tokenizer):
    """The reference cache's forwards (prompt groups packed together, each prompt once, at
    most batch_size sequences a forward) give each sequence's log-prob alone and padded."""
    seqs, micro, _ = kto_setup(tokenizer)
    sequences = {seqs.key(s): seqs.encoded(s) for s in all_sequences(seqs, micro)}
    packs = reference_cache.plan_packs(sequences, batch_size=5)
    assert sorted(k for keys in packs for k in keys) == sorted(sequences)
    prompt = {k: tuple(e.input_ids[:e.prompt_length]) for k, e in sequences.items()}
    assert len(packs) > 1 and all(len(keys) <= 5 for keys in packs)
    # Prompts are shared (the one prompt truncated by its long reply only with itself).
    assert sum(len({prompt[k] for k in keys}) for keys in packs) < len(sequences) - 4
    for keys in packs:  # a prompt's sequences never straddle two forwards
        assert not any(prompt[k] == prompt[other] for k in keys for other in sequences if other not in keys)
    model = models.load_policy(tiny_llama_dir, CPU, torch.float64).eval()
    packed = reference_cache.score(model, sequences, device=CPU, batch_size=5)
    with torch.no_grad():
        alone = {k: float(naive_sequence_logps(model, pad([e], tokenizer.pad_token_id))[0][0])
                 for k, e in sequences.items()}
    assert packed.keys() == alone.keys()
    for key in alone:  # the cache keeps float32: equal to its resolution
        assert packed[key] == pytest.approx(alone[key], rel=1e-7), key


def test_cuda_branches_run_on_cpu(tiny_llama_dir: Path, tokenizer, monkeypatch: pytest.MonkeyPatch):
    """What CUDA runs, on CPU: bf16 autocast around the forwards (forced on for CPU here),
    float32 log-probs out of it, placement on an explicit device, a fused AdamW step."""
    assert models.compute_dtype(CPU) is None  # never bf16 on these CPUs by default
    monkeypatch.setattr(models, "compute_dtype", lambda device: torch.bfloat16)
    with models.autocast_context(CPU):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    model = models.load_policy(tiny_llama_dir, models.pick_device("cpu"))
    assert next(model.parameters()).device == CPU and next(model.parameters()).dtype == torch.float32
    seqs, micro, extra = kto_setup(tokenizer)
    config = TrainConfig(algo="kto", model=str(tiny_llama_dir), batch_size=6, max_length=64, lr=1e-3,
                         device="cpu", packing=True)
    policy = Policy(model, CPU, True, tokenizer.pad_token_id)
    state = TrainingState.start(policy, config)  # a fused AdamW (make_optimizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    objective = Objective(LOSSES["kto"], {"beta": 0.1, **extra}, made_up_reference(seqs, micro))
    inputs, _ = objective.inputs(policy, micro, seqs)
    assert inputs["policy_logps"].dtype == torch.float32  # normalized in float32 under bf16
    done = train_step(state, objective, Batches(seqs, [micro]), config)
    assert done.examples == 6 and done.grad_norm > 0
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    if not torch.cuda.is_available():
        with pytest.raises(ThumbsError, match="no CUDA device"):
            models.pick_device("cuda")
