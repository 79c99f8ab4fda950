"""Run configurations: YAML files and/or `key=value` overrides, validated by pydantic."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks.common.settings import ThumbsError

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class BinarizeConfig(BaseModel):
    """How staging becomes the `feedback` and `preference_pairs` marts."""

    model_config = ConfigDict(extra="forbid")

    eval_fraction: float = Field(0.1, ge=0.0, le=1.0)
    shp_min_score_ratio: float | None = Field(None, ge=1.0)
    oasst_thumbs: Literal["best_worst", "best_rest"] = "best_worst"
    oasst_include_synthetic: bool = False


def comma_list(value: Any) -> Any:
    """'dpo,ipo' (a CLI value, or one YAML reads as one string) -> ['dpo', 'ipo']; a number -> [it]; lists unchanged."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (int, float)):
        return [value]
    return value


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """['lr=1e-5', 'sources=[hh, oasst]'] -> {'lr': 1e-05, 'sources': ['hh', 'oasst']}.

    Values are read as YAML scalars/flow lists, the same typing a config file gets.
    """
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ThumbsError(f"override '{item}': expected key=value")
        try:
            values[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ThumbsError(f"override '{item}': value is not valid YAML ({exc})") from exc
    return values


def load_config(
    model: type[ConfigT], path: str | Path | None = None, overrides: Sequence[str] = ()
) -> ConfigT:
    """A config from an optional YAML file, then `key=value` overrides on top."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ThumbsError(f"{path}: cannot read config ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise ThumbsError(f"{path}: invalid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ThumbsError(f"{path}: expected a mapping of key: value")
        values.update(loaded)
    values.update(parse_overrides(overrides))
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        source = f"{path}: " if path else ""
        raise ThumbsError(f"{source}{where}: {first['msg']}") from exc
