"""Paths into nested records, for mappings of exported logs whose fields are not
top-level columns: `$.output.content`, `$.choices[0].message.content`,
`$.scores[name=user-feedback].value`.

A mapping value that starts with `$` is a path; anything else is a plain column
name, so existing mappings (and CSV headers that contain dots) read as before.
Steps: `.key`, `[N]` (the N-th list element, from 0) and `[field=value]` (the
first list element whose `field` equals `value` as text: a Langfuse trace keeps
its scores as a list of {name, value} objects). A JSON document held as text (a
CSV export's cell) is parsed when a path steps into it.

Kept free of pydantic: the ingest workers import it (see tasks/sources/log.py).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[([A-Za-z_][\w-]*)=([^\]]+)\]")
MISSING = object()  # the path leads nowhere in this record (not the same as a JSON null)


@dataclass(frozen=True)
class RecordPath:
    text: str
    steps: tuple[tuple[str, ...], ...]  # ("key", name) | ("index", "3") | ("match", field, value)

    @property
    def top_level(self) -> str:
        """The record's own column this path starts from: the one a file must have."""
        return self.steps[0][1]

    def find(self, record: Mapping[str, Any]) -> Any:
        """The value at the path, or MISSING when some step finds nothing."""
        value: Any = record
        for step in self.steps:
            value = _json_text(value)
            if step[0] == "key":
                value = value.get(step[1], MISSING) if isinstance(value, Mapping) else MISSING
            elif step[0] == "index":
                position = int(step[1])
                value = value[position] if isinstance(value, list) and position < len(value) else MISSING
            else:
                _, field, wanted = step
                value = next((item for item in value if isinstance(item, Mapping) and str(item.get(field)) == wanted),
                             MISSING) if isinstance(value, list) else MISSING
            if value is MISSING:
                return MISSING
        return value


@lru_cache(maxsize=256)
def parse_path(text: str) -> RecordPath:
    """`$.a[0].b` -> RecordPath; ValueError naming the problem otherwise."""
    if not text.startswith("$"):
        raise ValueError(f"'{text}' is not a path: paths start with '$.'")
    steps, position = [], 1
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise ValueError(f"path '{text}': cannot read '{text[position:]}' "
                             "(steps are .key, [N] or [field=value])")
        key, index, field, wanted = match.groups()
        steps.append(("key", key) if key else ("index", index) if index else ("match", field, wanted))
        position = match.end()
    if not steps or steps[0][0] != "key":
        raise ValueError(f"path '{text}' should start with a column name, as in $.column")
    return RecordPath(text, tuple(steps))


def is_path(column: str) -> bool:
    return column.startswith("$")


def _json_text(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
