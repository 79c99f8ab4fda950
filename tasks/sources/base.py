"""The contract every source parser follows.

A parser turns one record (a dict, as read from a file by tasks.ingest.readers) into
outcomes: staged rows for a staging table, or quarantined parts with a reason.
Most sources give one outcome per record; an OASST tree gives one per message.
Every outcome is one "row read" in the ingest accounting:
rows read = loaded + duplicate + quarantined.

Parsers are pure: no I/O, no warehouse, no clock. They are tested on real rows.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


class RowRejected(Exception):
    """Raised by a parser for a record that cannot be loaded; str(exc) is the reason."""


@dataclass(frozen=True)
class Staged:
    """A row for `table` (a staging table name, e.g. 'staging.stg_hh__pairs').

    `values` holds the table's columns except row_key, batch_id, file_sha256 and
    row_number, which the loader fills in. `row_key` is the row's identity ("the
    same row" has the same one); the loader stores 128 bits of its sha256.
    """

    table: str
    row_key: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Quarantined:
    """A part of a record that cannot be loaded (e.g. one bad node of an OASST tree)."""

    reason: str
    raw: Any


Outcome = Union[Staged, Quarantined]
Parser = Callable[[Mapping[str, Any]], Iterable[Outcome]]


@dataclass(frozen=True)
class SourceBinding:
    """A source ready to ingest: its warehouse name, parser and required columns."""

    name: str  # 'hh', 'shp', 'oasst', 'log:<name>'
    parse: Parser
    required_fields: Sequence[str] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    # For sources carrying personal data: the record as it may be stored in
    # raw.records and quarantine. Rows that cannot be parsed are then withheld.
    redact: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None


def content_key(*parts: Any) -> str:
    """A stable hash of the parts: the identity of "the same row".

    Text is hashed as UTF-8 behind its length (so ("ab", "c") != ("a", "bc")) and
    a type tag; anything else as canonical JSON. Hashing JSON of long texts cost
    more than the rest of the HH parser together.
    """
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            tag, data = b"s", part.encode("utf-8", "surrogatepass")
        else:
            tag = b"j"
            data = json.dumps(part, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
        digest.update(tag + len(data).to_bytes(8, "little"))
        digest.update(data)  # apart: joined, every text would be copied once more
    return digest.hexdigest()


def require_text(record: Mapping[str, Any], field: str, *, allow_empty: bool = False) -> str:
    """record[field] as a string, or RowRejected naming what is wrong."""
    if field not in record or record[field] is None:
        raise RowRejected(f"missing field '{field}'")
    value = record[field]
    if not isinstance(value, str):
        raise RowRejected(f"field '{field}' should be text, got {type(value).__name__}")
    if not allow_empty and (not value or value.isspace()):  # what `not value.strip()` means, without a copy
        raise RowRejected(f"field '{field}' is empty")
    return value
