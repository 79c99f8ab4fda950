"""Anthropic HH-RLHF: two whole transcripts per record, one pair of final replies.

A record is {"chosen": str, "rejected": str}: the same dialogue twice, turns
introduced by "\\n\\nHuman: " and "\\n\\nAssistant: ", ending in the preferred and
the dispreferred final assistant reply. The prompt is the shared dialogue before
those replies.

Where to split (docs/data-quirks.md#hh-rlhf, "Prefix mismatch"):
splitting both sides at their *last* "\\n\\nAssistant:" is wrong for rows where
the model wrote an extra "\\n\\nAssistant:" (or "\\n\\nHuman:") inside its final
reply (harmless-base 1254, 1688; helpful-base 168; ...). We split where chosen and
rejected first differ and go back to the start of the assistant turn holding that
point; whatever either model wrote after it, markers included, is its reply.

Whitespace: every turn and reply is trimmed at both ends. The format puts a space
after each marker (some rows have two), and stray spaces at a turn's end are not
content; left in, they would teach the policy to emit them.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from tasks.sources.base import (PROMPT, Message, Outcome, RowRejected, Source, Staged, StagingTable, content_key,
                                require_text)

TABLE = "staging.stg_hh__pairs"

HUMAN_MARKER = "\n\nHuman:"
ASSISTANT_MARKER = "\n\nAssistant:"
TURN_MARKER = re.compile(r"\n\n(Human|Assistant):")
ROLE_OF_SPEAKER = {"Human": "user", "Assistant": "assistant"}
# Human, Assistant, Human, ...: the usual dialogue (at most 25 human turns in the test files);
# a longer or non-alternating one takes the slower merge path.
ALTERNATING_SPEAKERS = ["Human", "Assistant"] * 500

IDENTICAL = "chosen and rejected are identical"
IDENTICAL_REPLIES = "chosen and rejected replies differ only in whitespace"
NO_HUMAN_TURN = "transcript has no human turn"
NOT_HUMAN_FIRST = "transcript does not start with a human turn"
DIFFER_BEFORE_FIRST_HUMAN = "prompts disagree: chosen and rejected differ before the first human turn"
DIFFER_IN_HUMAN_TURN = "prompts disagree: chosen and rejected differ inside a human turn"
EMPTY_CHOSEN = "empty chosen reply"
EMPTY_REJECTED = "empty rejected reply"


def parse(record: Mapping[str, Any]) -> Iterable[Outcome]:
    """One staged pair, or RowRejected with a reason analysts can group by."""
    chosen_text = require_text(record, "chosen")
    rejected_text = require_text(record, "rejected")
    if chosen_text == rejected_text:
        raise RowRejected(IDENTICAL)  # 2 rows in helpful-base, 32 in helpful-rejection-sampled

    reply_start = final_turn_start(chosen_text, rejected_text)
    prompt = parse_turns(chosen_text[:reply_start])
    chosen = final_reply(chosen_text, reply_start)
    rejected = final_reply(rejected_text, reply_start)
    if not chosen:
        raise RowRejected(EMPTY_CHOSEN)  # 4 rows in harmless-base
    if not rejected:
        raise RowRejected(EMPTY_REJECTED)  # 4 rows in helpful-base
    if chosen == rejected:
        raise RowRejected(IDENTICAL_REPLIES)

    row_key = content_key("hh", chosen_text, rejected_text)
    return (Staged(TABLE, row_key, {"prompt": prompt, "chosen": chosen, "rejected": rejected}),)


def first_difference(left: str, right: str, hint: int = 0) -> int:
    """Index of the first character where left and right differ (or the shorter length).

    Binary search over slice equality: each comparison is a C-level memcmp, so a
    row costs O(length) bytes compared in ~log2(length) Python steps instead of a
    Python loop over every character. `hint` is where the difference probably is
    (for HH, just after the last assistant marker): checked first, it leaves a few
    steps instead of a dozen. The answer does not depend on it.
    """
    shorter = min(len(left), len(right))
    hint = min(max(hint, 0), shorter)
    if not left.startswith(right[:hint]):
        equal_up_to, differs_before = 0, hint  # left[:equal_up_to] equal; left[:differs_before] not
    else:
        window = min(hint + 32, shorter)
        if left[hint:window] != right[hint:window]:
            equal_up_to, differs_before = hint, window
        elif left[window:shorter] == right[window:shorter]:
            return shorter
        else:
            equal_up_to, differs_before = window, shorter
    while differs_before - equal_up_to > 1:
        middle = (equal_up_to + differs_before) // 2
        if left[equal_up_to:middle] == right[equal_up_to:middle]:
            equal_up_to = middle
        else:
            differs_before = middle
    return equal_up_to


def final_turn_start(chosen_text: str, rejected_text: str) -> int:
    """Offset of the "\\n\\nAssistant:" that opens the final, differing replies.

    That is the first assistant marker after the last human marker before the
    divergence: a second "\\n\\nAssistant:" with no human turn between belongs to
    the same turn (the model wrote it; harmless-base 763 has one in its history).
    """
    divergence = first_difference(chosen_text, rejected_text,
                                  hint=chosen_text.rfind(ASSISTANT_MARKER) + len(ASSISTANT_MARKER))
    last_human = chosen_text.rfind(HUMAN_MARKER, 0, divergence)
    if last_human == -1:
        if HUMAN_MARKER not in chosen_text or HUMAN_MARKER not in rejected_text:
            raise RowRejected(NO_HUMAN_TURN)
        raise RowRejected(DIFFER_BEFORE_FIRST_HUMAN)
    reply_start = chosen_text.find(ASSISTANT_MARKER, last_human, divergence)
    if reply_start == -1:
        raise RowRejected(DIFFER_IN_HUMAN_TURN)
    return reply_start


def final_reply(transcript: str, reply_start: int) -> str:
    """The reply after the marker at reply_start, markers the model wrote included."""
    return transcript[reply_start + len(ASSISTANT_MARKER):].strip()


def parse_turns(dialogue: str) -> list[Message]:
    """The shared turns as messages, starting with a user turn and alternating roles.

    A marker of the same speaker as the turn it appears in is text, not a new
    turn: in 11 test rows an earlier assistant reply holds a second
    "\\n\\nAssistant:" (harmless-base 667, 763, 1319, 1849; helpful-base 355, 991,
    1132, 1307, 1355, 1683, 1847). Keeping it inside the turn keeps roles
    alternating and loses no text, as for the final replies.
    """
    pieces = TURN_MARKER.split(dialogue)  # [before, speaker, text, speaker, text, ...]
    if pieces[0].strip() or len(pieces) < 3 or pieces[1] != "Human":
        raise RowRejected(NOT_HUMAN_FIRST)
    speakers, texts = pieces[1::2], pieces[2::2]
    if speakers != ALTERNATING_SPEAKERS[: len(speakers)]:
        speakers, texts = merge_same_speaker_turns(speakers, texts)
    return [
        {"role": ROLE_OF_SPEAKER[speaker], "content": text.strip()}
        for speaker, text in zip(speakers, texts)
    ]


def merge_same_speaker_turns(speakers: list[str], texts: list[str]) -> tuple[list[str], list[str]]:
    """Fold each turn into the one before it when both have the same speaker."""
    merged_speakers: list[str] = []
    merged_texts: list[str] = []
    for speaker, text in zip(speakers, texts):
        if merged_speakers and merged_speakers[-1] == speaker:
            merged_texts[-1] += f"\n\n{speaker}:{text}"
        else:
            merged_speakers.append(speaker)
            merged_texts.append(text)
    return merged_speakers, merged_texts


SOURCE = Source(
    name="hh",
    parse=parse,
    required_fields=("chosen", "rejected"),
    staging=[StagingTable(TABLE, {"prompt": PROMPT, "chosen": "VARCHAR NOT NULL", "rejected": "VARCHAR NOT NULL"})],
    stage_sql="statements/load/hh_pairs.sql",  # the plain rows, at DuckDB's speed; the quirks stay here
)
