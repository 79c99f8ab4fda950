"""Stanford Human Preferences (SHP): two Reddit comments on one post, one preferred.

A record holds the post (`history`), comments `human_ref_A`/`human_ref_B` with
ids `c_root_id_A`/`c_root_id_B` and net votes `score_A`/`score_B`, and `labels`:
1 means A is preferred, 0 means B is (docs/data-quirks.md#shp).
A and B come in no fixed order, so the row key uses the sorted comment ids: the
same pair with A and B swapped is the same row.

Texts are trimmed at both ends and otherwise kept as found: Reddit line breaks
arrived as runs of spaces and cannot be told apart from typed spaces, so they
are not rewritten.

score_ratio is the source's max(score)/min(score). When present it must be a
number >= 1 that agrees with the scores (a disagreement means the row was
corrupted, and the ratio becomes the pair's margin). When absent it is
recomputed from the scores, or left NULL if a score is not positive (the ratio
is then undefined). The min_score_ratio filter is applied at binarization.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from tasks.sources.base import PROMPT, Outcome, RowRejected, Source, Staged, StagingTable, content_key, require_text

TABLE = "staging.stg_shp__pairs"

A_PREFERRED, B_PREFERRED = 1, 0
# The source rounds score_ratio to 10 decimals.
RATIO_TOLERANCE = 1e-6


def parse(record: Mapping[str, Any]) -> Iterable[Outcome]:
    """One staged pair, or RowRejected with a reason analysts can group by."""
    post_id = require_text(record, "post_id").strip()
    history = require_text(record, "history").strip()
    comment_id_a = require_text(record, "c_root_id_A").strip()
    comment_id_b = require_text(record, "c_root_id_B").strip()
    comment_a = require_text(record, "human_ref_A").strip()
    comment_b = require_text(record, "human_ref_B").strip()
    score_a = require_score(record, "score_A")
    score_b = require_score(record, "score_B")
    label = require_label(record)

    if comment_id_a == comment_id_b:
        raise RowRejected("comments A and B are the same comment")
    if comment_a == comment_b:
        raise RowRejected("chosen and rejected are identical")
    score_ratio = checked_score_ratio(record.get("score_ratio"), score_a, score_b)

    if label == A_PREFERRED:
        chosen, rejected, chosen_score, rejected_score = comment_a, comment_b, score_a, score_b
    else:
        chosen, rejected, chosen_score, rejected_score = comment_b, comment_a, score_b, score_a

    row_key = content_key("shp", post_id, sorted((comment_id_a, comment_id_b)))
    values = {
        "post_id": post_id,
        "prompt": [{"role": "user", "content": history}],
        "chosen": chosen,
        "rejected": rejected,
        "chosen_score": chosen_score,
        "rejected_score": rejected_score,
        "score_ratio": score_ratio,
    }
    return (Staged(TABLE, row_key, values),)


def require_score(record: Mapping[str, Any], field: str) -> int:
    """record[field] as an int; a whole float (175.0, as pandas writes it) is accepted."""
    value = record.get(field)
    if value is None:
        raise RowRejected(f"missing field '{field}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowRejected(f"field '{field}' should be a whole number of votes")
    if isinstance(value, float):
        if not value.is_integer():
            raise RowRejected(f"field '{field}' should be a whole number of votes")
        return int(value)
    return value


def require_label(record: Mapping[str, Any]) -> int:
    """labels as 1 (A preferred) or 0 (B preferred)."""
    value = record.get("labels")
    if value is None:
        raise RowRejected("missing field 'labels'")
    if isinstance(value, bool) or value not in (A_PREFERRED, B_PREFERRED):
        raise RowRejected("field 'labels' should be 1 (A preferred) or 0 (B preferred)")
    return int(value)


def checked_score_ratio(value: Any, score_a: int, score_b: int) -> float | None:
    """The source's score_ratio, validated; recomputed from the scores when absent."""
    low, high = min(score_a, score_b), max(score_a, score_b)
    expected = high / low if low > 0 else None
    if value is None:
        return expected
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RowRejected("field 'score_ratio' should be a number")
    if value < 1:
        raise RowRejected("field 'score_ratio' should be at least 1")
    if expected is not None and abs(value - expected) > RATIO_TOLERANCE * expected:
        raise RowRejected("field 'score_ratio' disagrees with the scores")
    return float(value)


SOURCE = Source(
    name="shp",
    parse=parse,
    required_fields=("post_id", "history", "human_ref_A", "human_ref_B", "labels"),
    staging=[StagingTable(TABLE, {
        "post_id": "VARCHAR NOT NULL",
        "prompt": PROMPT,
        "chosen": "VARCHAR NOT NULL",
        "rejected": "VARCHAR NOT NULL",
        "chosen_score": "BIGINT",
        "rejected_score": "BIGINT",
        "score_ratio": "DOUBLE",
    })],
)
