"""`thumbs synthesize rlcd` options: YAML and/or key=value, like every config."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RlcdConfig(BaseModel):
    """How RLCD pairs are generated (tasks/generate/rlcd.py). Everything that changes
    the rows is recorded with every row and keys the resumable work directory."""

    model_config = ConfigDict(extra="forbid")

    model: str = "smollm2-135m"  # a preset or a local transformers directory
    n: int | None = Field(None, ge=1, description="at most this many prompts (None: all)")
    seed: int = 0
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(8, ge=1)
    templates: str | None = Field(None, description="a templates YAML (default: the shipped templates/rlcd.yaml)")
    template_set: str = "harmlessness"
    max_reply_chars: int = Field(2000, ge=1, description="longer replies are quarantined")
    rescore: str | None = Field(None, description="a reward model checkpoint: label by its scores (RLCD-Rescore)")
    chunk_rows: int = Field(32, ge=1, description="prompts per resumable chunk")
    device: str = "auto"
