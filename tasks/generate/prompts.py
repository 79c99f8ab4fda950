"""Prompts to generate from: a file in any format ingest reads, or the warehouse.

A file's row gives its prompt as `prompt` (chat messages, or text for one user
turn) or, for HH-style rows, as the dialogue of `chosen` before its final
assistant reply. Prompts are deduplicated in file order; rows without a usable
prompt are counted by reason, never silently dropped.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.common.home import Home
from tasks.common.settings import ThumbsError
from tasks.ingest.readers import read_batches
from tasks.sources.base import RowRejected
from tasks.sources.hh import ASSISTANT_MARKER, parse_turns

Messages = list[dict[str, str]]


@dataclass
class PromptSet:
    prompts: list[Messages]
    source: str  # the file (with its sha256) or the warehouse query, for lineage
    skipped: Counter = field(default_factory=Counter)  # reason -> rows


def prompt_of(record: dict[str, Any]) -> Messages:
    prompt = record.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return [{"role": "user", "content": prompt.strip()}]
    if isinstance(prompt, list) and prompt:
        if not all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") in
                   ("system", "user", "assistant") for m in prompt):
            raise RowRejected("prompt is not a list of {role, content} messages")
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    elif isinstance(record.get("chosen"), str) and ASSISTANT_MARKER in record["chosen"]:
        transcript = record["chosen"]
        messages = parse_turns(transcript[:transcript.rfind(ASSISTANT_MARKER)])
    else:
        raise RowRejected("no prompt: expected a `prompt` field or an HH `chosen` transcript")
    if messages[-1]["role"] != "user":
        raise RowRejected("prompt does not end with a user turn")
    return messages


def prompts_from_file(path: str | Path, limit: int | None) -> PromptSet:
    from tasks.generate.rlcd import file_sha256

    path = Path(path)
    prompts: dict[str, Messages] = {}
    skipped: Counter = Counter()
    for batch in read_batches(path, rows_per_batch=1000):
        for row in batch.rows():
            if limit is not None and len(prompts) >= limit:
                break
            try:
                if row.record is None:
                    raise RowRejected(row.error or "unreadable row")
                prompt = prompt_of(row.record)
            except RowRejected as exc:
                skipped[str(exc)] += 1
                continue
            key = json.dumps(prompt, sort_keys=True)
            if key in prompts:
                skipped["duplicate prompt"] += 1
            else:
                prompts[key] = prompt
    return PromptSet(list(prompts.values()), f"{path.resolve()} sha256 {file_sha256(path)}", skipped)


def prompts_from_warehouse(home: Home, where: str | None, limit: int | None) -> PromptSet:
    """Distinct prompts of `feedback`, fewest thumbs first. `where` is trusted SQL
    (the operator's own filter over prompt, thumbs and sources), put into the query
    text; the limit is bound."""
    from tasks.warehouse.connection import connect, read_sql

    text = read_sql("statements/synthetic/prompts.sql").replace("{where}", f"({where})" if where else "true")
    import duckdb

    with connect(home, read_only=True) as con:
        try:
            rows = con.execute(text, {"limit": limit if limit is not None else 2**62}).fetchall()
        except duckdb.Error as exc:
            raise ThumbsError(f"--where {where!r}: {str(exc).splitlines()[0]}") from exc
    prompts = [[{"role": m["role"], "content": m["content"]} for m in prompt] for (prompt,) in rows]
    return PromptSet(prompts, f"warehouse feedback where {where or 'true'}")
