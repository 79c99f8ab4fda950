"""The mapping file of a business feedback log: which of the file's columns hold what.

A company's chat log has its own column names; the mapping (YAML, see the
"Business-log mapping" section of docs/contract.md) says which column is the
prompt, the reply, the rating, and so on. Two shapes exist:

- rated replies: `completion` + `rating` (+ a `rating:` section saying how to read it);
- A/B pairs: `completion_a` + `completion_b` + `winner`.

`load_mapping` turns every problem into one ThumbsError line naming the file,
because a mapping is written by hand and read by the person who wrote it.
"""
from __future__ import annotations

import difflib
import reprlib
import re
from pathlib import Path
from typing import Annotated, Iterable, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator

from tasks.common.settings import ThumbsError
from tasks.sources.record_path import is_path, parse_path

# Quote what the author wrote, but briefly: a YAML alias bomb expands to gigabytes.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 1, 3, 3, 40, 40

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
RATED_COLUMNS = ("completion", "rating")
PAIRWISE_COLUMNS = ("completion_a", "completion_b", "winner")

# A column name as written in the file's header; strict so a YAML number or
# boolean (`prompt: yes` parses as True) is caught rather than silently coerced.
ColumnName = Annotated[str, Strict(), Field(min_length=1)]
Stars = Annotated[float, Strict(), Field(ge=1, le=5)]


class Columns(BaseModel):
    """Our field name -> the file's column name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Optional[ColumnName] = None
    timestamp: Optional[ColumnName] = None
    conversation_id: Optional[ColumnName] = None
    user_id: Optional[ColumnName] = None
    prompt: ColumnName
    completion: Optional[ColumnName] = None
    rating: Optional[ColumnName] = None
    model_version: Optional[ColumnName] = None
    completion_a: Optional[ColumnName] = None
    completion_b: Optional[ColumnName] = None
    winner: Optional[ColumnName] = None

    @field_validator("*")
    @classmethod
    def _paths_parse(cls, column: Optional[str], info) -> Optional[str]:
        # `$.a.b` reaches into nested records (tasks/sources/record_path.py). The user id
        # stays a plain column: it is pseudonymized in place before the record is stored.
        if column is not None and is_path(column):
            if info.field_name == "user_id":
                raise ValueError("columns.user_id must be a top-level column, not a path")
            parse_path(column)
        return column


class RatingRule(BaseModel):
    """How to read the rating column: thumbs forms, or 1-5 stars with two thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["thumbs", "stars"] = "thumbs"
    up_at_least: Optional[Stars] = None
    down_at_most: Optional[Stars] = None

    @model_validator(mode="after")
    def _thresholds_fit_kind(self) -> "RatingRule":
        given = self.up_at_least is not None or self.down_at_most is not None
        if self.kind == "thumbs" and given:
            raise ValueError("rating: up_at_least/down_at_most apply only to kind: stars")
        if self.kind == "stars":
            if self.up_at_least is None or self.down_at_most is None:
                raise ValueError(
                    "rating: kind: stars needs both up_at_least and down_at_most (e.g. 4 and 2)"
                )
            if self.up_at_least <= self.down_at_most:
                raise ValueError(
                    f"rating: up_at_least ({self.up_at_least:g}) must be greater than "
                    f"down_at_most ({self.down_at_most:g})"
                )
        return self


class Mapping(BaseModel):
    """A whole mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Strict()]
    columns: Columns
    rating: RatingRule = RatingRule()

    @field_validator("name")
    @classmethod
    def _name_is_a_source_suffix(cls, name: str) -> str:
        # The name becomes the warehouse source `log:<name>` and appears in row keys.
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"name '{name}' should be lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        return name

    @model_validator(mode="after")
    def _one_shape(self) -> "Mapping":
        rated = [f for f in RATED_COLUMNS if getattr(self.columns, f) is not None]
        pairwise = [f for f in PAIRWISE_COLUMNS if getattr(self.columns, f) is not None]
        if rated and pairwise:
            raise ValueError(
                "columns: map either completion + rating or completion_a + completion_b + winner, "
                f"not both (got {', '.join(rated + pairwise)})"
            )
        if not rated and not pairwise:
            raise ValueError(
                "columns: map either completion + rating (rated replies) "
                "or completion_a + completion_b + winner (A/B pairs)"
            )
        wanted = RATED_COLUMNS if rated else PAIRWISE_COLUMNS
        missing = [f for f in wanted if getattr(self.columns, f) is None]
        if missing:
            raise ValueError(f"columns: {', '.join(wanted)} go together; missing {', '.join(missing)}")
        if pairwise and "rating" in self.model_fields_set:
            raise ValueError("rating: an A/B mapping (completion_a/completion_b/winner) takes no rating section")
        return self

    @property
    def pairwise(self) -> bool:
        return self.columns.winner is not None


def required_columns(mapping: Mapping) -> list[str]:
    """The file columns the mapping names (a path's first step), each once, in mapping
    order: all must exist."""
    named = (getattr(mapping.columns, field) for field in Columns.model_fields)
    return list(dict.fromkeys(parse_path(column).top_level if is_path(column) else column
                              for column in named if column is not None))


def check_columns(mapping: Mapping, present: Iterable[str], file: str | Path) -> None:
    """Fail a whole file whose header (or first record) lacks a mapped column:
    every row would fail, and one line says so better than N quarantined rows."""
    present = [str(column) for column in present]
    missing = [column for column in required_columns(mapping) if column not in present]
    if missing:
        have = ", ".join(repr(c) for c in present) or "no columns"
        raise ThumbsError(
            f"{file}: column {', '.join(repr(c) for c in missing)} named by mapping "
            f"'{mapping.name}' is not in the file, which has {have}"
        )


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; ThumbsError('<file>: <problem>') otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ThumbsError(f"{path}: mapping file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ThumbsError(f"{path}: cannot read the mapping file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ThumbsError(f"{path}: invalid YAML {_yaml_problem(exc)}") from None
    if data is None:
        raise ThumbsError(f"{path}: the mapping file is empty; it needs `name` and `columns`")
    if not isinstance(data, dict):
        raise ThumbsError(
            f"{path}: the mapping should be a YAML mapping with `name` and `columns`, "
            f"not a {type(data).__name__}"
        )
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        found = list(dict.fromkeys(_describe(error) for error in exc.errors()))
        problems = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
        raise ThumbsError(f"{path}: {problems}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"at line {mark.line + 1}: {problem}" if mark is not None else f"({problem})"


def _describe(error) -> str:
    """One pydantic error as a phrase a mapping author can act on."""
    where = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(error["loc"][:-1])
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"unknown key '{where}' ({hint})"
    if kind == "missing":
        if where == "columns.prompt":
            return "missing key 'columns.prompt' (the column holding the user's message or conversation)"
        return f"missing key '{where}'"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return f"{where}: {error['msg'].lower()}, got {_SHORT.repr(error['input'])}" if where else error["msg"]


def _known_keys(parent: tuple) -> list[str]:
    model = {(): Mapping, ("columns",): Columns, ("rating",): RatingRule}.get(tuple(parent), Mapping)
    return list(model.model_fields)
