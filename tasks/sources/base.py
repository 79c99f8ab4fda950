"""The contract every source follows: its declaration, its staging tables, its parser.

A source is one module of this package declaring `SOURCE = Source(...)`: its
name, its parser (or, for a source configured by a mapping file, how to make
one), the fields a file must have, and the staging tables its rows go to, with
their columns. tasks/sources/__init__.py finds the modules; docs/add-a-source.md
walks through a new one.

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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from tasks.common.settings import ThumbsError
from tasks.warehouse.connection import column_names

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


# A prompt: the conversation before the reply, as {role, content} messages.
PROMPT = "STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL"
# The columns the loader fills in every staging table, ahead of the parser's values.
# row_key is unique without an index: the loader skips a key already present
# (warehouse/migrations/012_staging_without_index.sql says why).
LOADER_COLUMNS = {"row_key": "UHUGEINT NOT NULL", "batch_id": "VARCHAR NOT NULL",
                  "file_sha256": "VARCHAR NOT NULL", "row_number": "BIGINT NOT NULL"}
# The columns the loader derives in SQL from the parser's values, after them: a
# table with a prompt also stores its key (warehouse/macros/split.sql), so that
# binarize finds a prompt's rows and split without hashing the prompt again.
DERIVED_COLUMNS = {"prompt_key": ("prompt", "UHUGEINT", "thumbs_prompt_key(prompt)")}  # name: (from, type, SQL)
_TABLE_NAME = re.compile(r"staging\.stg_[a-z0-9_]+__[a-z0-9_]+")
_COLUMN_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class StagingTable:
    """A table a source's parser fills: `staging.stg_<source>__<entity>`.

    `columns` are the parser's values (Staged.values) as name -> DuckDB type; the
    loader adds LOADER_COLUMNS in front and the DERIVED_COLUMNS of those values
    behind, and creates the table when it does not exist (create_staging_tables). The
    tables of the first sources were created by migrations; a test
    (tests/sources/test_registry.py) keeps their declarations equal to them.
    """

    name: str
    columns: Mapping[str, str]

    def __post_init__(self) -> None:
        # Names are put into SQL text (DDL and the staging insert), so only plain ones are declared.
        if not _TABLE_NAME.fullmatch(self.name):
            raise ValueError(f"staging table '{self.name}': expected staging.stg_<source>__<entity>, "
                             "lowercase letters, digits and _")
        filled = [*LOADER_COLUMNS, *DERIVED_COLUMNS]
        bad = [name for name in self.columns if not _COLUMN_NAME.fullmatch(name) or name in filled]
        if bad:
            raise ValueError(f"staging table '{self.name}': column '{bad[0]}' is not a plain lowercase name "
                             f"or is one the loader fills ({', '.join(filled)})")

    @property
    def quoted(self) -> str:
        """The name as a quoted SQL identifier, e.g. "staging"."stg_hh__pairs"."""
        return ".".join(f'"{part}"' for part in self.name.split("."))

    @property
    def derived(self) -> dict[str, str]:
        """The loader-derived columns this table has, as name -> the SQL computing it."""
        return {name: sql for name, (origin, _, sql) in DERIVED_COLUMNS.items() if origin in self.columns}

    def create_statement(self) -> str:
        columns = {**LOADER_COLUMNS, **self.columns,
                   **{name: DERIVED_COLUMNS[name][1] for name in self.derived}}
        return (f"CREATE TABLE IF NOT EXISTS {self.quoted} ("
                + ", ".join(f'"{name}" {kind}' for name, kind in columns.items()) + ")")

    def add_column_statements(self, name: str) -> list[str]:
        """Give a table made before derived column `name` was declared that column, filled."""
        return [f'ALTER TABLE {self.quoted} ADD COLUMN "{name}" {DERIVED_COLUMNS[name][1]}',
                f'UPDATE {self.quoted} SET "{name}" = {self.derived[name]}']


def create_staging_tables(con: Any, tables: Iterable[StagingTable]) -> None:
    """Create the tables that do not exist (a new source's come from its declaration, not
    a migration), and give one made before a derived column was declared (a later
    source's, ingested by an earlier version) that column. Only then: filling it on
    every ingest and binarize would be a scan for nothing. `con`: a DuckDB connection."""
    for table in tables:
        con.execute(table.create_statement())
        for column in table.derived.keys() - column_names(con, *table.name.split(".")):
            for statement in table.add_column_statements(column):
                con.execute(statement)


@dataclass(frozen=True)
class SourceBinding:
    """A source ready to ingest: its warehouse name, parser, required columns and
    the staging tables its parser may fill."""

    name: str  # 'hh', 'shp', 'oasst', 'log:<name>'
    parse: Parser
    required_fields: Sequence[str] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    # For sources carrying personal data: the record as it may be stored in
    # raw.records and quarantine. Rows that cannot be parsed are then withheld.
    redact: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    tables: Sequence[StagingTable] = ()
    stage_sql: str | None = None  # see Source.stage_sql


@dataclass(frozen=True)
class Source:
    """A source's declaration: a source module's `SOURCE`.

    Either `parse` (a parser that needs nothing but the record) or `bind_mapping`
    (for a source whose files are described by a mapping file, as business logs
    are: (mapping file, THUMBS_HOME) -> the binding, parser and all).
    `required_fields` are checked on a file's first readable row, so a file of
    the wrong source fails at once instead of quarantining every row.
    """

    name: str
    staging: Sequence[StagingTable]
    parse: Parser | None = None
    required_fields: Sequence[str] = ()
    bind_mapping: Callable[[str | Path, str | Path | None], SourceBinding] | None = None
    # Optional: a statement of warehouse/ that parses the plain rows of a JSON Lines
    # file in DuckDB, as `parse` would, for the source's one staging table (see
    # warehouse/statements/load/hh_pairs.sql: `staged`, row_key and the table's
    # columns for each line; the rows it does not stage go to `parse`).
    stage_sql: str | None = None
    # A synthetic source's files are made by `thumbs synthesize <name>` from prompts,
    # not collected: sources.yaml then names prompts and a per-run count, not paths.
    synthetic: bool = False

    def __post_init__(self) -> None:
        if (self.parse is None) == (self.bind_mapping is None):
            raise ValueError(f"source '{self.name}': declare either parse or bind_mapping")

    @property
    def needs_mapping(self) -> bool:
        return self.bind_mapping is not None

    def bind(self, mapping: str | Path | None = None, home: str | Path | None = None) -> SourceBinding:
        if self.bind_mapping is None:
            return SourceBinding(self.name, self.parse, tuple(self.required_fields), tables=tuple(self.staging),
                                 stage_sql=self.stage_sql)
        if mapping is None:
            raise ThumbsError(f"thumbs ingest {self.name}: --mapping MAP.yaml is required "
                              "(it names the file's columns)")
        return self.bind_mapping(mapping, home)


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
