"""A comparison grid (`thumbs compare`): algorithms × β, plus variant lines, every cell a
TrainConfig. Written as key=value like any config:

    thumbs compare algos=dpo,ipo,kto betas=0.01,0.1,0.3 'variants=[kto desirable_fraction=0.1]' steps=200

The grid's own keys are the fields below; every other key is a training option given to
every cell (steps, model, max_length, ...). A variant is an algorithm and its own
overrides, drawn as one more line of the plots (the KTO paper's data ablations:
`kto desirable_fraction=0.1`, `kto one_per_prompt=true`).
"""
from __future__ import annotations

from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.config import comma_list, load_config, parse_overrides
from schemas.nightly import EvaluationSettings
from schemas.train import TrainConfig
from tasks.common.settings import ThumbsError
from tasks.train.algorithms import LOSSES


class CompareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algos: list[str] = Field(default_factory=lambda: ["dpo", "ipo", "kto"], min_length=0)
    betas: list[float] = Field(default_factory=lambda: [0.01, 0.1, 0.3, 0.5, 0.9], min_length=1)
    variants: list[str] = Field(default_factory=list, description="'<algo> key=value ...': one more line each")
    evaluation: EvaluationSettings = EvaluationSettings()

    @field_validator("algos", "betas", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return comma_list(value)

    @field_validator("variants", mode="before")
    @classmethod
    def _one_variant(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("algos")
    @classmethod
    def _known(cls, algos: list[str]) -> list[str]:
        policies = [name for name, spec in LOSSES.items() if spec.model == "causal_lm"]
        unknown = [a for a in algos if a not in policies]
        if unknown:  # a reward model is a judge (evaluation.judge), not a policy with implicit rewards
            raise ValueError(f"{unknown}: not a policy algorithm; choose from {', '.join(policies)}")
        return algos

    @field_validator("betas")
    @classmethod
    def _positive(cls, betas: list[float]) -> list[float]:
        if any(b <= 0 for b in betas):
            raise ValueError(f"every beta must be > 0, got {betas}")
        return betas


class Line(BaseModel):
    """One line of the plots: an algorithm and the overrides that set it apart."""

    name: str
    algo: str
    overrides: list[str]


class Cell(BaseModel):
    """One training run of the grid and its evaluation."""

    name: str  # "<line> beta=<β>": unique in the grid, the experiments row's key
    line: str
    beta: float
    config: TrainConfig


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the grid's own key=value items, the training options for every cell)."""
    grid_keys = set(CompareConfig.model_fields) | {f"evaluation.{k}" for k in EvaluationSettings.model_fields}
    grid, train = [], []
    for item in overrides:
        (grid if item.partition("=")[0].strip() in grid_keys else train).append(item)
    return grid, train


def load_grid(config_path: str | None, overrides: Sequence[str]) -> tuple[CompareConfig, list[Cell]]:
    """The grid and its cells, each cell's TrainConfig (the YAML at config_path, then the
    training overrides, the line's, its algo and β) validated now: a bad option fails
    before anything trains. `evaluation.max_pairs=500` sets an evaluation setting."""
    grid_items, train_items = split_overrides(overrides)
    evaluation = {k.split(".", 1)[1]: v for k, v in parse_overrides(
        [i for i in grid_items if i.startswith("evaluation.")]).items()}
    grid_items = [i for i in grid_items if not i.startswith("evaluation.")]
    grid = load_config(CompareConfig, None, grid_items)
    if evaluation:
        grid = grid.model_copy(update={"evaluation": EvaluationSettings(**{**grid.evaluation.model_dump(),
                                                                         **evaluation})})
    lines = [Line(name=a, algo=a, overrides=[]) for a in grid.algos]
    for variant in grid.variants:
        algo, *extra = variant.split()
        if algo not in LOSSES or LOSSES[algo].model != "causal_lm" or not extra:
            raise ThumbsError(f"variant '{variant}': expected '<algo> key=value ...' with an algorithm of "
                              f"{', '.join(LOSSES)}")
        lines.append(Line(name=variant, algo=algo, overrides=extra))
    if not lines:
        raise ThumbsError("the grid is empty: give algos=... or variants=...")
    cells = []
    for line in lines:
        for beta in grid.betas:
            config = load_config(TrainConfig, config_path, [*train_items, *line.overrides, f"algo={line.algo}",
                                                     f"beta={beta}"])
            cells.append(Cell(name=f"{line.name} beta={beta:g}", line=line.name, beta=beta, config=config))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ThumbsError(f"the grid names a cell twice: {sorted({n for n in names if names.count(n) > 1})}")
    return grid, cells
