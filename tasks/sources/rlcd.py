"""RLCD: preference pairs the generator model writes itself (synthetic source kind).

RLCD (Yang et al. 2023, arXiv 2307.12950): for each prompt the model writes one reply
with a positive context (a suffix asking for, e.g., a harmless reply) and one with the
negative context of the same template pair; the positive reply is chosen. With
RLCD-Rescore a reward model scores both replies and the higher one is chosen instead.

A record is one generation record, as `thumbs synthesize rlcd` writes it
(tasks/generate/rlcd.py): the prompt, the template pair and its suffixes, both replies
with their token counts and truncation flags, the seed and sampling settings, the
generator's weights sha256, the templates file's sha256, the prompt set, and, when
rescored, both scores. The whole record lands in raw.records; the pair in staging.
In the marts its source is `synthetic:rlcd` (int_rlcd__pairs.sql).

The quality guards are this parser's rejections, so each guarded row is counted and
quarantined with its reason like any bad row of any source.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from tasks.sources.base import PROMPT, Outcome, RowRejected, Source, Staged, StagingTable, content_key, require_text

TABLE = "staging.stg_rlcd__pairs"
MARTS_SOURCE = "synthetic:rlcd"

EMPTY = "empty reply"
TRUNCATED = "truncated reply (hit max_new_tokens)"
OVER_CAP = "reply over the length cap"
IDENTICAL = "identical positive and negative replies"
ECHO = "reply echoes the context suffix"
NO_PROMPT = "prompt has no user turn"


def _guard(side: str, reply: str, truncated: bool, record: Mapping[str, Any], cap: int) -> None:
    if not reply.strip():
        raise RowRejected(f"{EMPTY} ({side})")
    if truncated:
        raise RowRejected(f"{TRUNCATED} ({side})")
    if len(reply) > cap:
        raise RowRejected(f"{OVER_CAP} ({side})")
    # A reply that repeats either suffix is answering the instruction, not the prompt.
    for suffix in (record["positive_context"], record["negative_context"]):
        core = suffix.strip().strip("()").strip().lower()
        if core and core in reply.lower():
            raise RowRejected(f"{ECHO} ({side})")


def parse(record: Mapping[str, Any]) -> Iterable[Outcome]:
    prompt = record.get("prompt")
    if not isinstance(prompt, list) or not any(isinstance(m, dict) and m.get("role") == "user" for m in prompt):
        raise RowRejected(NO_PROMPT)
    positive = require_text(record, "positive_reply", allow_empty=True)
    negative = require_text(record, "negative_reply", allow_empty=True)
    require_text(record, "positive_context")
    require_text(record, "negative_context")
    cap = int(record.get("max_reply_chars") or 4000)
    _guard("positive", positive, bool(record.get("positive_truncated")), record, cap)
    _guard("negative", negative, bool(record.get("negative_truncated")), record, cap)
    if positive.strip() == negative.strip():
        raise RowRejected(IDENTICAL)

    scores = record.get("positive_score"), record.get("negative_score")
    if None not in scores:  # RLCD-Rescore: the reward model decides, not the context
        margin = float(scores[0]) - float(scores[1])
        chosen, rejected = (positive, negative) if margin >= 0 else (negative, positive)
        labeled_by, margin = "rescore", abs(margin)
    else:
        chosen, rejected, labeled_by, margin = positive, negative, "context", None
    values = {
        "prompt": [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt],
        "chosen": chosen.strip(), "rejected": rejected.strip(),
        "template_pair": str(record.get("template_pair", "")), "labeled_by": labeled_by, "margin": margin,
        "generator_sha256": str(record.get("generator_sha256", "")),
        "templates_sha256": str(record.get("templates_sha256", "")),
    }
    return (Staged(TABLE, content_key("rlcd", prompt, positive, negative), values),)


SOURCE = Source(
    name="rlcd",
    parse=parse,
    synthetic=True,
    required_fields=("prompt", "positive_context", "negative_context", "positive_reply", "negative_reply"),
    staging=[StagingTable(TABLE, {
        "prompt": PROMPT, "chosen": "VARCHAR NOT NULL", "rejected": "VARCHAR NOT NULL",
        "template_pair": "VARCHAR NOT NULL", "labeled_by": "VARCHAR NOT NULL", "margin": "DOUBLE",
        "generator_sha256": "VARCHAR NOT NULL", "templates_sha256": "VARCHAR NOT NULL"})],
)
