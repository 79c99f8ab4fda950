"""Business feedback logs: one event per rated reply or per A/B comparison,
columns named by a mapping file (schemas/mapping.py). Records come from JSON
(typed), CSV (all strings) or Parquet (numpy values); each reader accepts all.

- prompt: a string (one user message), or a list of {role, content} messages,
  given as a list or as JSON text (CSV). Roles: system, user, assistant; the
  aliases human/prompter -> user and bot/ai/model -> assistant are accepted
  because exported chat logs use them. System messages may only come first and
  the last message must be the user's: the rated reply answers it. A string
  that merely starts with '[' but is not a JSON list of objects is plain text.
- rating, kind thumbs: up/down, thumbs_up/thumbs_down (also "thumbs up",
  "thumbs-up"), +1/-1, 1/0, true/false (any case), 👍/👎 with or without
  variation selector or skin tone.
- rating, kind stars: a number 1-5; >= up_at_least is up, <= down_at_most is
  down, between is neutral: loaded with label NULL and counted, never trained on.
- winner (A/B): a or b, any case. A tie (tie/both/none/neither/draw/equal)
  carries no preference and is rejected with that reason.
- timestamp: ISO-8601 (naive means UTC) or unix seconds/ms/µs/ns, told apart
  by magnitude; stored as naive UTC.
- user_id: replaced by a keyed pseudonym (tasks/sources/pseudonym.py); the raw id is
  never in the staged values, nor in the row key.
- Optional columns (event_id aside) may be empty in a row: stored as NULL. A
  mapped column absent from a record is rejected: the file does not match.
- A mapping value starting with `$` is a path into a nested record
  (tasks/sources/record_path.py), for exports such as Langfuse traces or
  OpenAI-style chat logs; a path that finds nothing rejects the row.
"""
from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from tasks.sources.pseudonym import load_key, pseudonymize
from tasks.sources.record_path import MISSING, is_path, parse_path
from tasks.sources.base import (PROMPT, Message, Parser, RowRejected, Source, SourceBinding, Staged, StagingTable,
                                content_key)

if TYPE_CHECKING:  # pydantic, which schemas.mapping needs, would double the CLI's start-up: imported when binding
    from schemas.mapping import Mapping as LogMapping

RATINGS_TABLE = "staging.stg_log__ratings"
PAIRS_TABLE = "staging.stg_log__pairs"

ROLE_ALIASES = {"system": "system", "user": "user", "assistant": "assistant", "human": "user",
                "prompter": "user", "bot": "assistant", "ai": "assistant", "model": "assistant"}
THUMBS_WORDS = {
    "up": True, "thumbs_up": True, "thumbsup": True, "true": True, "👍": True,
    "down": False, "thumbs_down": False, "thumbsdown": False, "false": False, "👎": False,
}
THUMBS_NUMBERS = {1.0: True, 0.0: False, -1.0: False}
TIE_WORDS = {"tie", "both", "none", "neither", "draw", "equal"}
# Variation selectors and Fitzpatrick skin tones: 👍🏽 and 👍️ are still 👍.
EMOJI_MODIFIERS = re.compile("[\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")
EPOCH = datetime(1970, 1, 1)


def bind(mapping_file: str | Path, home: str | Path | None) -> SourceBinding:
    """The binding for one log: its mapping file names the columns, the warehouse's
    pseudonym key (tasks/sources/pseudonym.py) hides its user ids."""
    from schemas.mapping import load_mapping, required_columns

    mapping = load_mapping(mapping_file)
    key = load_key(home)
    return SourceBinding(f"log:{mapping.name}", make_parser(mapping, key), tuple(required_columns(mapping)),
                         {"mapping": str(mapping_file)}, redact=make_redactor(mapping, key), tables=SOURCE.staging)


def make_parser(mapping: LogMapping, key: bytes) -> Parser:
    """A parser for one log: record -> [Staged] or RowRejected with a one-sentence reason."""

    def parse(record: Mapping[str, Any]) -> list[Staged]:
        # Eager (a list, not a generator) so RowRejected raises at the call.
        if mapping.pairwise:
            return [_pair(mapping, key, record)]
        return [_rating(mapping, key, record)]

    return parse


def make_redactor(mapping: LogMapping, key: bytes) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The record as stored in raw.records and quarantine: the user column pseudonymized.

    docs/contract.md#live-warehouse-only: user identifiers are pseudonymized before they reach the
    warehouse, and "as read" copies are part of the warehouse too.
    """
    column = mapping.columns.user_id

    def redact(record: Mapping[str, Any]) -> dict[str, Any]:
        stored = dict(record)
        if column is not None and column in stored and not _blank(stored[column]):
            stored[column] = pseudonymize(str(stored[column]).strip(), key)
        return stored

    return redact


def _rating(mapping: LogMapping, key: bytes, record: Mapping[str, Any]) -> Staged:
    columns = mapping.columns
    common = _common(mapping, key, record)
    completion = _text(record, columns.completion, "completion")
    raw = _cell(record, columns.rating)
    if _blank(raw):
        raise RowRejected(f"column '{columns.rating}' (rating) is empty")
    if mapping.rating.kind == "stars":
        label = _stars(raw, columns.rating, mapping.rating.up_at_least, mapping.rating.down_at_most)
    else:
        label = _thumbs(raw, columns.rating)
    values = {**common, "completion": completion, "rating_raw": _as_text(raw), "label": label}
    return Staged(RATINGS_TABLE, _row_key(mapping, values, "completion", "rating_raw"), values)


def _pair(mapping: LogMapping, key: bytes, record: Mapping[str, Any]) -> Staged:
    columns = mapping.columns
    common = _common(mapping, key, record)
    completion_a = _text(record, columns.completion_a, "completion A")
    completion_b = _text(record, columns.completion_b, "completion B")
    if completion_a.strip() == completion_b.strip():
        raise RowRejected(
            f"columns '{columns.completion_a}' and '{columns.completion_b}' hold the same "
            "completion, so there is no preference"
        )
    winner = _winner(_cell(record, columns.winner), columns.winner)
    chosen, rejected = (completion_a, completion_b) if winner == "a" else (completion_b, completion_a)
    values = {**common, "chosen": chosen, "rejected": rejected}
    return Staged(PAIRS_TABLE, _row_key(mapping, values, "chosen", "rejected"), values)


def _common(mapping: LogMapping, key: bytes, record: Mapping[str, Any]) -> dict[str, Any]:
    """The columns both staging tables share."""
    columns = mapping.columns
    event_id = _identifier(record, columns.event_id)
    if columns.event_id is not None and event_id is None:
        raise RowRejected(f"column '{columns.event_id}' (event id) is empty")
    user_id = _identifier(record, columns.user_id)
    return {
        "log_name": mapping.name,
        "event_id": event_id,
        "event_at": _timestamp(record, columns.timestamp),
        "conversation_id": _identifier(record, columns.conversation_id),
        "user_pseudonym": None if user_id is None else pseudonymize(user_id, key),
        "model_version": _identifier(record, columns.model_version),
        "prompt": _prompt(_cell(record, columns.prompt), columns.prompt),
    }


def _row_key(mapping: LogMapping, values: dict[str, Any], *reply_fields: str) -> str:
    # The log's own event id is its identity; the name prefix keeps two logs'
    # ids apart. Without one, identical events load once. The pseudonym (not the
    # raw id) goes into the hash: an unkeyed hash of a raw id could be reversed.
    if values["event_id"] is not None:
        return f"{mapping.name}:{values['event_id']}"
    event_at = values["event_at"].isoformat() if values["event_at"] else None
    identity = [values[f] for f in ("conversation_id", "user_pseudonym", "model_version")]
    return content_key(
        "log", mapping.name, values["prompt"], *(values[f] for f in reply_fields), event_at, *identity
    )


# --- reading one cell -------------------------------------------------------

def _cell(record: Mapping[str, Any], column: str) -> Any:
    if is_path(column):
        value = parse_path(column).find(record)
        if value is MISSING:
            raise RowRejected(f"path '{column}' finds nothing in this row")
        return _plain(value)
    if column not in record:
        raise RowRejected(f"column '{column}' is missing from this row")
    return _plain(record[column])


def _plain(value: Any) -> Any:
    """Python values from numpy/pandas ones; NaN and NaT (a pandas empty cell) -> None."""
    if type(value).__module__ == "numpy":
        value = value.tolist()
    if isinstance(value, (float, datetime)) and value != value:
        return None
    return value


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _text(record: Mapping[str, Any], column: str, what: str) -> str:
    value = _cell(record, column)
    if _blank(value):
        raise RowRejected(f"column '{column}' ({what}) is empty")
    if not isinstance(value, str):
        raise RowRejected(f"column '{column}' ({what}) should be text, got {type(value).__name__}")
    return value


def _identifier(record: Mapping[str, Any], column: str | None) -> str | None:
    """An optional id-like column as text (JSON and Parquet give ids as numbers too)."""
    if column is None:
        return None
    value = _cell(record, column)
    if _blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # pandas turns an int column with gaps into floats
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value).strip()
    raise RowRejected(f"column '{column}' should be text or a number, got {type(value).__name__}")


# --- prompt -----------------------------------------------------------------

def _prompt(value: Any, column: str) -> list[Message]:
    if _blank(value):
        raise RowRejected(f"column '{column}' (prompt) is empty")
    if isinstance(value, str):
        messages = _json_messages(value)
        if messages is None:
            return [{"role": "user", "content": value}]
        value = messages
    if not isinstance(value, (list, tuple)):
        raise RowRejected(
            f"column '{column}' (prompt) should be text or a list of messages, got {type(value).__name__}"
        )
    return _messages(list(value), column)


def _json_messages(text: str) -> list | None:
    """The message list a CSV cell holds as JSON, or None when the text is just text."""
    if not text.lstrip().startswith("["):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if isinstance(parsed, list) and parsed and all(isinstance(m, dict) for m in parsed):
        return parsed
    return None


def _messages(items: list, column: str) -> list[Message]:
    if not items:
        raise RowRejected(f"column '{column}' (prompt) is an empty list of messages")
    messages: list[Message] = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise RowRejected(f"message {number} in column '{column}' is not a {{role, content}} object")
        role = ROLE_ALIASES.get(str(item.get("role", "")).strip().lower())
        if role is None:
            raise RowRejected(
                f"message {number} in column '{column}' has role '{item.get('role')}'; "
                "expected system, user or assistant"
            )
        content = item.get("content")
        if not isinstance(content, str) or not content.strip():
            raise RowRejected(f"message {number} in column '{column}' has no text content")
        if role == "system" and any(m["role"] != "system" for m in messages):
            raise RowRejected(f"message {number} in column '{column}' is a system message mid-conversation")
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise RowRejected(
            f"the prompt in column '{column}' ends with a message from the {messages[-1]['role']}; "
            "the last message must be the user's"
        )
    return messages


# --- ratings and winners ----------------------------------------------------

def _thumbs(value: Any, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = EMOJI_MODIFIERS.sub("", value).strip().lower() if isinstance(value, str) else value
    number = _number(text)  # 1, "+1", "-1", "0", 1.0 ...
    if number in THUMBS_NUMBERS:
        return THUMBS_NUMBERS[number]
    word = re.sub(r"[\s_-]+", "_", text) if isinstance(text, str) else None
    if word in THUMBS_WORDS:
        return THUMBS_WORDS[word]
    raise RowRejected(
        f"unrecognised thumbs rating '{_as_text(value)}' in column '{column}' "
        "(expected up/down, 👍/👎, +1/-1, 1/0 or true/false)"
    )


def _stars(value: Any, column: str, up_at_least: float, down_at_most: float) -> bool | None:
    number = _number(value)
    if number is None:
        raise RowRejected(f"star rating '{_as_text(value)}' in column '{column}' is not a number")
    if not 1 <= number <= 5:
        raise RowRejected(f"star rating '{_as_text(value)}' in column '{column}' is outside 1-5")
    if number >= up_at_least:
        return True
    if number <= down_at_most:
        return False
    return None  # neutral band: kept and counted, excluded from training


def _number(value: Any) -> float | None:
    """A finite number from a number or numeric text (CSV), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _winner(value: Any, column: str) -> str:
    if _blank(value):
        raise RowRejected(f"column '{column}' (winner) is empty")
    text = _as_text(value).strip().lower()
    if text in ("a", "b"):
        return text
    if text in TIE_WORDS:
        raise RowRejected(f"no winner: column '{column}' says '{_as_text(value)}', and a tie carries no preference")
    raise RowRejected(f"unrecognised winner '{_as_text(value)}' in column '{column}' (expected a or b)")


# --- timestamps -------------------------------------------------------------

def _timestamp(record: Mapping[str, Any], column: str | None) -> datetime | None:
    """Naive UTC, from ISO-8601 text, a datetime, or unix seconds/ms/µs/ns."""
    if column is None:
        return None
    value = _cell(record, column)
    if _blank(value):
        return None
    try:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime.combine(value, time())
        elif _number(value) is not None:
            moment = _from_epoch(_number(value))
        else:
            moment = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise RowRejected(
            f"unparseable timestamp '{_as_text(value)}' in column '{column}' "
            "(expected ISO-8601 or unix seconds/milliseconds)"
        )
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise RowRejected(f"unparseable timestamp '{_as_text(value)}' in column '{column}' "
                              "(outside the years 1-9999 in UTC)") from None
    return moment


def _from_epoch(number: float) -> datetime:
    # Seconds until the year 5138, then ms, µs, ns: the units never overlap in
    # any plausible date range, so magnitude decides.
    for per_second in (1, 1_000, 1_000_000, 1_000_000_000):
        if abs(number) < 1e11 * per_second:
            break
    return EPOCH + timedelta(microseconds=round(number * 1_000_000 / per_second))


# The columns both staging tables share (_common).
_EVENT_COLUMNS = {
    "log_name": "VARCHAR NOT NULL",
    "event_id": "VARCHAR",
    "event_at": "TIMESTAMP",
    "conversation_id": "VARCHAR",
    "user_pseudonym": "VARCHAR",
    "model_version": "VARCHAR",
    "prompt": PROMPT,
}

SOURCE = Source(
    name="log",
    bind_mapping=bind,
    staging=[
        StagingTable(RATINGS_TABLE, {**_EVENT_COLUMNS, "completion": "VARCHAR NOT NULL", "rating_raw": "VARCHAR NOT NULL",
                                     "label": "BOOLEAN"}),  # label NULL: neutral, kept and counted, not trained on
        StagingTable(PAIRS_TABLE, {**_EVENT_COLUMNS, "chosen": "VARCHAR NOT NULL", "rejected": "VARCHAR NOT NULL"}),
    ],
)
