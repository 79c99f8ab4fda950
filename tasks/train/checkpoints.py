"""What a training run leaves on disk, and how it is written so a crash never leaves half of it.

- The final checkpoint: THUMBS_HOME/checkpoints/<checkpoint_id>/, loadable by
  AutoModelForCausalLM.from_pretrained (safetensors, config, tokenizer) plus
  manifest.json: everything needed to say where the weights came from. A LoRA
  run's holds its adapter (peft's adapter_config.json + adapter_model.safetensors)
  instead of full weights; from_pretrained follows it to the base the manifest names.
- The run directory: THUMBS_HOME/runs/<run_id>/ with run.json (config and
  fingerprint), metrics.jsonl, trainer.log, state.pt, the resumable training
  state rewritten every `save_every` steps, result.json once the checkpoint is
  written and recorded.json once its row is in `checkpoints`.

Both are written beside their final name and renamed into place: a reader, a
resumed run or a nightly job never sees a partial checkpoint or state. What a
killed writer leaves beside the final name is removed by the next writer.
"""
from __future__ import annotations

import hashlib
import json
import random
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import torch

from schemas.train import RUNTIME_FIELDS, TrainConfig
from tasks.lineage.openlineage import file_dataset
from tasks.common.files import replaced_directory, replaced_file, write_json_atomically, writer_gone
from tasks.common.home import Home, HomeLike
from tasks.common.settings import ThumbsError
from tasks.report.model_card import write_model_card
from tasks.warehouse.connection import run_sql

MANIFEST = "manifest.json"
STATE = "state.pt"
RUN_INFO = "run.json"
RESULT = "result.json"
RECORDED = "recorded.json"
METRICS = "metrics.jsonl"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_checkpoint_id(algo: str, now: datetime | None = None) -> str:
    """`<algo>-<UTC yyyymmddThhmmss>-<6 hex>`: sorts by time, and two runs finishing
    in the same second still get different ids."""
    return f"{algo}-{(now or utc_now()):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def remove_abandoned_scratch(home: HomeLike = None) -> None:
    """Checkpoint directories a killed writer left half-written (model-sized each).
    Other runs may be writing theirs right now: only a dead writer's are removed."""
    root = Home.of(home).checkpoints
    for scratch in root.glob(".*.partial") if root.is_dir() else []:
        # .<checkpoint id>.<writer tag>.partial: the id has no dots, a host name may.
        if writer_gone(scratch.name[1: -len(".partial")].partition(".")[2]):
            shutil.rmtree(scratch, ignore_errors=True)


def write_checkpoint(model, tokenizer, manifest: dict[str, Any], home: HomeLike = None,
                     state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Weights (`state_dict` when given: gathered from sharded ranks), tokenizer, manifest
    and model card (README.md) into checkpoints/<id>/, all or nothing."""
    final = Home.of(home).checkpoints / manifest["checkpoint_id"]
    if final.exists():
        raise ThumbsError(f"{final}: a checkpoint with this id already exists")
    remove_abandoned_scratch(home)
    with replaced_directory(final) as scratch:
        # state_dict only when given: a peft model's save_pretrained passes extra keywords on
        model.save_pretrained(scratch, safe_serialization=True, **({"state_dict": state_dict} if state_dict else {}))
        tokenizer.save_pretrained(scratch)
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        write_model_card(scratch, manifest, home)
    return final


def read_manifest(checkpoint_dir: str | Path) -> dict[str, Any]:
    path = Path(checkpoint_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ThumbsError(f"{path}: not a thumbs checkpoint manifest ({exc})") from exc


def parent_checkpoint_of(model_dir: Path) -> str | None:
    """A run that starts from a thumbs checkpoint names it as its parent."""
    manifest = model_dir / MANIFEST
    if manifest.is_file():
        return json.loads(manifest.read_text()).get("checkpoint_id")
    return None


def build_manifest(*, checkpoint_id: str, run_id: str, config: TrainConfig, hyperparameters: dict[str, Any],
                   base_model: dict[str, Any], reference_model: dict[str, Any] | None, snapshot,
                   rows_trained: int, code_version: str, metrics: dict[str, Any], training: dict[str, Any],
                   parent_checkpoint: str | None, adapter: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest (docs/contract.md, Checkpoint): flat keys a script can read without a schema."""
    return {
        "manifest_version": 1,
        "checkpoint_id": checkpoint_id,
        "created_at": utc_now().isoformat(),
        "run_id": run_id,
        "algo": config.algo,
        "config": config.model_dump(),  # the options as given (hyperparameters adds the derived ones)
        "hyperparameters": hyperparameters,
        "base_model": base_model,  # name, path, weights_sha256
        "reference_model": reference_model,  # None for reference-free algorithms (SFT, CSFT, SLiC)
        "snapshot_id": snapshot.snapshot_id,
        "snapshot_kind": snapshot.kind,
        "snapshot_path": str(snapshot.path),
        "snapshot_files": dict(snapshot.files),  # file name -> sha256
        "snapshot_row_counts": snapshot.row_counts,  # per split: rows, by_source, per label
        "rows_trained": rows_trained,
        "code_version": code_version,
        "metrics": metrics,
        "training": training,
        "parent_checkpoint": parent_checkpoint,
        "adapter": adapter,  # None for full weights; a LoRA checkpoint's adapter (adapter_of)
    }


def adapter_of(model) -> dict[str, Any] | None:
    """What the manifest says about a LoRA policy's adapter (None for full weights). The
    checkpoint then holds the adapter only; base_model names the weights it applies to."""
    peft_config = getattr(model, "peft_config", None)
    if not peft_config:
        return None
    lora = peft_config["default"]
    return {"type": "lora", "r": lora.r, "alpha": lora.lora_alpha, "dropout": lora.lora_dropout,
            "targets": sorted(lora.target_modules), "files": ["adapter_config.json", "adapter_model.safetensors"],
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def record_checkpoint(con: duckdb.DuckDBPyConnection, manifest: dict[str, Any], path: Path,
                      run_id: str | None = None) -> None:
    """One row in `checkpoints`, the table analysts join to lineage_runs and snapshots,
    then recorded.json in the run directory: until then a resumed run records this
    checkpoint instead of training again (see find_resumable). Recording twice (killed
    between the two) keeps the first row."""
    run_sql(con, "statements/lineage/record_checkpoint.sql", {
        "checkpoint_id": manifest["checkpoint_id"], "run_id": run_id or manifest["run_id"],
        "algo": manifest["algo"], "base_model": manifest["base_model"]["name"],
        "snapshot_id": manifest["snapshot_id"], "path": str(path),
        "metrics": json.dumps(manifest["metrics"]), "parent_checkpoint": manifest["parent_checkpoint"],
        "created_at": datetime.fromisoformat(manifest["created_at"]).astimezone(timezone.utc).replace(tzinfo=None),
    })
    run_dir = Path(manifest.get("training", {}).get("run_dir") or "")
    if (run_dir / RESULT).is_file():
        write_json_atomically(run_dir / RECORDED, {"checkpoint_id": manifest["checkpoint_id"]})


def snapshot_dataset(snapshot) -> dict[str, Any]:
    """The snapshot (a Parquet file) as an OpenLineage input dataset."""
    return file_dataset(snapshot.path, "snapshot", f"snapshots/{snapshot.snapshot_id}", rows=snapshot.kind,
                        files=dict(snapshot.files), rowCounts=snapshot.row_counts)


def checkpoint_dataset(manifest: dict[str, Any], path: Path) -> dict[str, Any]:
    """The checkpoint (a folder) as an OpenLineage output dataset."""
    return file_dataset(path, "checkpoint", f"checkpoints/{manifest['checkpoint_id']}", algo=manifest["algo"],
                        baseModel=manifest["base_model"], metrics=manifest["metrics"])


# --- the resumable run state -------------------------------------------------------------

def run_fingerprint(config: TrainConfig, snapshot_id: str) -> str:
    """What must be equal for a stored state to continue this run: every setting
    that changes what is learned (not e.g. the device), and the snapshot."""
    learning = {k: v for k, v in config.model_dump().items() if k not in RUNTIME_FIELDS}
    text = json.dumps({"config": learning, "snapshot_id": snapshot_id}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def capture_training_state(*, fingerprint: str, step: int, elapsed: float, metrics: list[dict],
                           weights: dict[str, Any], moments: dict[str, Any], scheduler,
                           device: torch.device) -> dict[str, Any]:
    """Everything a resumed run needs to continue exactly: weights and AdamW moments (as
    Ranks.training_state gives them), the schedule's position, every RNG, and the
    metrics logged so far."""
    return {
        "fingerprint": fingerprint, "step": step, "elapsed": elapsed, "metrics": metrics,
        "model": weights, "optimizer": moments, "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None},
    }


def trained_weights(model) -> dict[str, torch.Tensor]:
    """The weights a run changes: a LoRA policy's adapter only (its base is the frozen
    model it was loaded from), else all of them."""
    if getattr(model, "peft_config", None):
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(model)
    return model.state_dict()


def load_trained_weights(model, weights: dict[str, torch.Tensor]) -> None:
    if getattr(model, "peft_config", None):
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, weights)
        if result.unexpected_keys:
            raise ThumbsError(f"saved state: adapter weights this run's adapters lack: {result.unexpected_keys[:3]}")
    else:
        model.load_state_dict(weights)


def restore_rng_and_schedule(state: dict[str, Any], scheduler, device: torch.device) -> None:
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    if device.type == "cuda" and state["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def save_state(run_dir: Path, state: dict[str, Any]) -> Path:
    """torch.save to a temporary file, fsync, rename over the previous state."""
    target = run_dir / STATE
    # One run writes a run directory at a time, so another temporary state here is a
    # killed writer's: model-sized (weights and AdamW moments), not left to pile up.
    for stale in run_dir.glob(f".{STATE}.*.tmp"):
        stale.unlink(missing_ok=True)
    with replaced_file(target) as scratch:
        torch.save(state, scratch)
    return target


def _mismatch(path: Path) -> ThumbsError:
    return ThumbsError(f"{path}: this state belongs to a run with another config or snapshot "
                       "(fingerprints differ); start a new run instead of resuming")


def check_resumable(run_dir: Path, fingerprint: str) -> None:
    """Cheap check from run.json that a saved state in run_dir belongs to this run."""
    info_file = run_dir / RUN_INFO
    if (run_dir / STATE).exists() and info_file.exists():
        if json.loads(info_file.read_text()).get("fingerprint") != fingerprint:
            raise _mismatch(run_dir / STATE)


def load_state(run_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    path = run_dir / STATE
    if not path.exists():
        return None
    # Our own file, holding optimizer state and RNG states (numpy-free): full unpickling.
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != fingerprint:
        raise _mismatch(path)
    return state


def _unrecorded_result(run_dir: Path) -> Path | None:
    """result.json of a run whose whole checkpoint was never recorded (killed in between)."""
    if not (run_dir / RESULT).is_file() or (run_dir / RECORDED).exists():
        return None
    try:
        checkpoint = json.loads((run_dir / RESULT).read_text()).get("path")
    except (OSError, json.JSONDecodeError):
        return None
    return run_dir / RESULT if checkpoint and (Path(checkpoint) / MANIFEST).is_file() else None


def finished_result(run_dir: Path, home: HomeLike = None) -> dict[str, Any] | None:
    """What a finished run returned: its result.json, or, when a kill landed between the
    checkpoint's rename and result.json, the result rebuilt from that checkpoint (so the
    run is not trained again beside a whole checkpoint nobody records)."""
    if (run_dir / RESULT).is_file():
        return json.loads((run_dir / RESULT).read_text())
    root = Home.of(home).checkpoints
    for manifest_file in root.glob(f"*/{MANIFEST}") if root.is_dir() else []:
        try:
            manifest = json.loads(manifest_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if manifest.get("training", {}).get("run_dir") == str(run_dir):
            result = {"finished": True, "checkpoint_id": manifest["checkpoint_id"], "path": str(manifest_file.parent),
                      "metrics": manifest["metrics"], "snapshot_id": manifest["snapshot_id"], "run_dir": str(run_dir),
                      "reference_cache": (manifest.get("reference_model") or {}).get("cache")}
            write_json_atomically(run_dir / RESULT, result)
            return result
    return None


def find_resumable(fingerprint: str, home: HomeLike = None) -> Path | None:
    """The most recent interrupted run directory with this fingerprint: one with a saved
    state and no result, or one whose checkpoint was written but never recorded (resuming
    it records that checkpoint rather than training again, see finished_result)."""
    candidates = []
    root = Home.of(home).runs
    for info_file in root.glob(f"*/{RUN_INFO}") if root.is_dir() else []:
        run_dir = info_file.parent
        try:
            info = json.loads(info_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if info.get("fingerprint") != fingerprint:
            continue
        progress = _unrecorded_result(run_dir)
        if progress is None and (run_dir / STATE).exists() and not (run_dir / RESULT).exists():
            progress = run_dir / STATE
        if progress is not None:
            candidates.append((progress.stat().st_mtime, run_dir))
    return max(candidates)[1] if candidates else None

