"""`thumbs query`: read-only SQL over the published copy, safe to run at any time."""
from __future__ import annotations

import csv
import io
import json
from contextlib import contextmanager
from typing import Any, Iterator

import duckdb

from tasks.common.home import Home, HomeLike
from tasks.common.settings import ThumbsError

# Read-only file, no file system access but reading the raw archive that
# raw.records is a view over (no COPY TO, ATTACH, read_csv of other files,
# INSTALL), and the settings locked so a query cannot undo any of it. Set in this
# order after opening: DuckDB takes allowed_directories only while external
# access is still on, and nothing once the configuration is locked.
NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
LOCK_DOWN = ("SET allowed_directories = $allowed", "SET enable_external_access = false",
             "SET lock_configuration = true")
FORMATS = ("table", "csv", "json")


@contextmanager
def published_connection(home: HomeLike = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A locked-down read-only connection to the analysts' copy."""
    home = Home.of(home)
    path = home.published
    if not path.exists():
        raise ThumbsError(f"{path}: nothing published yet; run `thumbs ingest` or `thumbs demo` first")
    try:
        con = duckdb.connect(str(path), read_only=True, config=NO_EXTENSIONS)
    except duckdb.Error as exc:
        raise ThumbsError(f"{path}: cannot open the published warehouse ({exc})") from exc
    try:
        for statement in LOCK_DOWN:
            con.execute(statement, {"allowed": [f"{home.raw_archive}/"]} if "$allowed" in statement else None)
        yield con
    finally:
        con.close()


def run_query(sql: str, home: HomeLike = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    with published_connection(home) as con:
        return _fetch(con, sql)


# Queries read: SELECT (with DESCRIBE, SHOW, SUMMARIZE, which DuckDB parses as
# SELECT) and EXPLAIN. Everything else is refused before it runs, temp objects too.
READ_STATEMENTS = {"StatementType.SELECT", "StatementType.EXPLAIN"}


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    try:
        kinds = [str(statement.type) for statement in con.extract_statements(sql)]
        refused = [k for k in kinds if k not in READ_STATEMENTS]
        if refused:
            raise ThumbsError(f"query refused: only SELECT, DESCRIBE, SHOW, SUMMARIZE and EXPLAIN may run here, "
                              f"not {refused[0].removeprefix('StatementType.')}")
        cursor = con.execute(sql)
        if cursor.description is None:
            return [], []
        return [d[0] for d in cursor.description], cursor.fetchall()
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        raise ThumbsError(f"query refused: {message}") from exc


def _plain(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.loads(json.dumps(value, default=str, ensure_ascii=False))
    return value


def render(columns: list[str], rows: list[tuple[Any, ...]], fmt: str, max_width: int = 60) -> str:
    if fmt == "json":
        return json.dumps([{c: _plain(v) for c, v in zip(columns, row)} for row in rows],
                          default=str, ensure_ascii=False, indent=1)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([json.dumps(v, default=str, ensure_ascii=False)
                             if isinstance(v, (dict, list)) else v for v in row])
        return out.getvalue().rstrip("\n")
    if fmt != "table":
        raise ThumbsError(f"unknown format '{fmt}' (use one of: {', '.join(FORMATS)})")
    cells = [[_cell(v, max_width) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def _cell(value: Any, max_width: int) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
