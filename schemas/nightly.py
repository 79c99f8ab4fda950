"""What a nightly run reads: the sources to watch and the promotion gate."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.config import BinarizeConfig
from tasks.common.settings import ThumbsError
from tasks.sources import SOURCES

SourceName = Literal[tuple(SOURCES)]  # the registry's names
MAPPED_SOURCES = [name for name, source in SOURCES.items() if source.needs_mapping]


class WatchedSource(BaseModel):
    """One source and the files (paths or globs) to pick new data up from."""

    model_config = ConfigDict(extra="forbid")

    source: SourceName
    paths: list[str] = Field(default_factory=list)
    mapping: str | None = None
    # A synthetic source (rlcd): each run makes pairs for `per_run` prompts of `prompts`
    # (a prompts file, or `warehouse`) not synthesized before; `options` as for
    # `thumbs synthesize` (model, temperature, ...).
    prompts: str | None = None
    per_run: int | None = Field(None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _mapping_for_logs(self) -> "WatchedSource":
        if SOURCES[self.source].needs_mapping != (self.mapping is not None):
            raise ValueError(f"a `{'`/`'.join(MAPPED_SOURCES)}` source needs `mapping`, "
                             f"and only a {' or '.join(MAPPED_SOURCES)} source takes one")
        return self

    @model_validator(mode="after")
    def _prompts_for_synthetic(self) -> "WatchedSource":
        if SOURCES[self.source].synthetic:
            if not self.prompts or not self.per_run or self.paths:
                raise ValueError(f"a synthetic source ({self.source}) takes `prompts` and `per_run`, not `paths`")
        elif not self.paths or self.prompts or self.per_run or self.options:
            raise ValueError(f"source {self.source} takes `paths` (at least one), not prompts/per_run/options")
        return self


class EvaluationSettings(BaseModel):
    """How much evaluation each nightly checkpoint gets (see tasks/evaluate/evaluation.py).
    Generation dominates its cost on CPU: fewer prompts or tokens make it cheaper."""

    model_config = ConfigDict(extra="forbid")

    # The whole eval split up to this many pairs: at 1000 a 0.05 accuracy difference is visible.
    max_pairs: int = Field(1000, ge=1)
    generation_prompts: int = Field(8, ge=1)
    max_new_tokens: int = Field(48, ge=1)
    kl_samples: int = Field(4, ge=1)
    seed: int = 0
    judge: str | None = Field(None, description="a reward-model checkpoint (id or path, `thumbs train --algo rm`): "
                                                "adds win_rate_vs_reference, judged on the generation prompts")


class SourcesFile(BaseModel):
    """sources.yaml: relative paths are relative to the file itself."""

    model_config = ConfigDict(extra="forbid")

    sources: list[WatchedSource] = Field(min_length=1)
    binarize: BinarizeConfig = BinarizeConfig()
    evaluation: EvaluationSettings = EvaluationSettings()


class GateConfig(BaseModel):
    """When a new checkpoint may replace the champion."""

    model_config = ConfigDict(extra="forbid")

    # The new checkpoint's eval reward accuracy may trail the champion's by at most this.
    accuracy_tolerance: float = Field(0.02, ge=0, le=1)
    # Monte-Carlo KL to the reference, in nats per completion: a policy drifting
    # further than this is rejected however well it ranks pairs.
    max_kl: float = Field(25.0, gt=0)


def load_sources(path: str | Path) -> SourcesFile:
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThumbsError(f"{path}: cannot read the sources file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ThumbsError(f"{path}: invalid YAML ({exc})") from exc
    try:
        sources = SourcesFile.model_validate(loaded)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "sources"
        raise ThumbsError(f"{path}: {where}: {first['msg']}") from exc
    base = path.resolve().parent
    for entry in sources.sources:
        entry.paths = [p if Path(p).is_absolute() else str(base / p) for p in entry.paths]
        if entry.mapping and not Path(entry.mapping).is_absolute():
            entry.mapping = str(base / entry.mapping)
        if entry.prompts and entry.prompts != "warehouse" and not Path(entry.prompts).is_absolute():
            entry.prompts = str(base / entry.prompts)
    return sources
