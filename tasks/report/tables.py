"""HTML tables whose numbers a test (or a script) can read back exactly.

Each number cell carries `data-stat="<table>|<key>|...|<column>"` and the raw value in
`data-value`, the key being the row's identifying columns: the page shows
"0.6234", the attribute keeps 0.62337662. Every text from data is escaped.
"""
from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from html import escape
from typing import Any, Sequence

KEY_SEPARATOR = "|"


def stat_key(*parts: Any) -> str:
    return KEY_SEPARATOR.join(str(p) for p in parts)


def shown(value: Any) -> str:
    """A value as a cell shows it: counts whole, other numbers to 4 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (float, Decimal)):
        return "—" if math.isnan(value) else f"{float(value):.4g}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def is_number(value: Any) -> bool:
    """Counts, measures and DuckDB DECIMALs (a literal like 0.5 in SQL is one)."""
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def number(key: str, value: Any, text: str | None = None, tag: str = "span") -> str:
    """One number with its data- attributes (a <span> unless `tag` says otherwise)."""
    exact = repr(value) if isinstance(value, float) else str(value)  # repr: the shortest text that reads back equal
    return (f'<{tag} class="num" data-stat="{escape(key)}" data-value="{escape(exact)}">'
            f'{escape(text if text is not None else shown(value))}</{tag}>')


def cell(name: str, key: Sequence[Any], column: str, value: Any) -> str:
    if is_number(value):
        return number(stat_key(name, *key, column), value, tag="td")
    return f"<td>{escape(shown(value))}</td>"


def table(name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key_columns: Sequence[str],
          *, extra: dict[str, list[str]] | None = None) -> str:
    """A table of query rows; `key_columns` name the columns that identify a row.
    `extra` adds columns of ready-made (already escaped) cells, one list per column."""
    if not rows:
        return f'<p class="empty" data-table-empty="{escape(name)}">no rows yet</p>'
    key_at = [list(columns).index(c) for c in key_columns]
    head = "".join(f"<th>{escape(c)}</th>" for c in [*columns, *(extra or {})])
    body = []
    for i, row in enumerate(rows):
        key = [row[k] for k in key_at]
        cells = "".join(cell(name, key, column, value) for column, value in zip(columns, row))
        cells += "".join(f"<td>{values[i]}</td>" for values in (extra or {}).values())
        body.append(f"<tr>{cells}</tr>")
    return (f'<table data-table="{escape(name)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')
