"""`thumbs export CHECKPOINT --merge`: a checkpoint as one self-contained model directory.

A LoRA checkpoint holds an adapter that needs its base to run; exporting it merges
the adapter into the base's weights (W + alpha/r * B A, peft's merge_and_unload) and
writes full safetensors, config and tokenizer, loadable by from_pretrained with no
peft and no thumbs. A full checkpoint is copied as is (nothing to merge). The
manifest goes along, marked with what was exported, so `thumbs lineage` and a run
started from the export still name the checkpoint it came from.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from tasks.common.files import replaced_directory
from tasks.common.home import Home, HomeLike
from tasks.common.settings import ThumbsError
from tasks.train.checkpoints import MANIFEST, read_manifest, utc_now
from tasks.train.models import is_adapter_dir, is_model_dir, load_policy, load_tokenizer


def find_checkpoint(checkpoint: str, home: HomeLike = None) -> Path:
    """A checkpoint directory, or an id under THUMBS_HOME/checkpoints."""
    for candidate in (Path(checkpoint).expanduser(), Home.of(home).checkpoints / checkpoint):
        if is_model_dir(candidate) and (candidate / MANIFEST).is_file():
            return candidate.resolve()
    raise ThumbsError(f"{checkpoint}: no such checkpoint (not a checkpoint directory, not an id under "
                      f"{Home.of(home).checkpoints})")


def export_checkpoint(checkpoint: str, *, merge: bool, out: str | Path | None = None,
                      home: HomeLike = None) -> Path:
    """Write the checkpoint's full weights to `out` (default THUMBS_HOME/exports/<id>),
    all or nothing; refuses to overwrite. An adapter checkpoint needs merge=True."""
    source = find_checkpoint(checkpoint, home)
    manifest = read_manifest(source)
    adapter = is_adapter_dir(source)
    if adapter and not merge:
        raise ThumbsError(f"{source}: a LoRA adapter checkpoint; `thumbs export {checkpoint} --merge` writes "
                          "the adapter merged into its base")
    target = Path(out).expanduser() if out else Home.of(home).exports / manifest["checkpoint_id"]
    if target.exists():
        raise ThumbsError(f"{target}: already exists; remove it or pass another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    with replaced_directory(target) as scratch:
        if adapter:
            model = load_policy(source, torch.device("cpu"))  # base + adapter, merged
            model.save_pretrained(scratch, safe_serialization=True)
            load_tokenizer(source).save_pretrained(scratch)
        else:
            for file in source.iterdir():
                if file.is_file() and file.name != MANIFEST:
                    shutil.copy2(file, scratch / file.name)
        exported = {**manifest, "adapter": None,
                    "export": {"from": str(source), "merged_adapter": manifest.get("adapter") if adapter else None,
                               "created_at": utc_now().isoformat()}}
        (scratch / MANIFEST).write_text(json.dumps(exported, indent=2, sort_keys=True, default=str) + "\n")
    return target
