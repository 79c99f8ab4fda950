"""The malformed-input corpus: every case is a file built from real rows of
demo_data/, examples/ or (SHP) the fuller samples (see samples.py), broken in
one way, with the outcome thumbs owes the person who ingests it:

- FileError: the file cannot be loaded; one line naming the file (and the row
  where it broke, when there is one) and the reason; the warehouse unchanged.
- Quarantine: the bad rows land in `quarantine` with their reason, the good
  ones load, rows read = loaded + duplicate + quarantined.
- Loads: nothing to quarantine (empty files, hostile but valid text, duplicates);
  the text must come back byte for byte.

Built in code rather than checked in, so the corpus stays small and readable.
"""
from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import random
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from samples import DEMO_HH_HELPFUL, DEMO_OASST_TREES, OASST_QUIRKS, shared_shp
from tasks.common.settings import PROJECT_ROOT

EXAMPLES = PROJECT_ROOT / "examples"
HOSTILE_SQL = "'); DROP TABLE raw.records; -- $source ? %s {batch_id} \\' \" ;DELETE FROM feedback"
CONTROL = "nul\x00 esc\x1b[31mred\x1b[0m bell\x07 ls\u2028ps\u2029 cr\r tab\t del\x7f zwj\u200d rtl\u202e"


@dataclass(frozen=True)
class FileError:
    reason: str  # regex searched in the message
    row: int | None = None  # "row N" must appear
    names_mapping: bool = False  # the mapping file, not the data file, is named


@dataclass(frozen=True)
class Quarantine:
    rows: tuple[tuple[int, str], ...] = ()  # (row_number, reason substring), one per quarantined part
    loaded: int | None = None
    duplicate: int = 0
    every_reason_in: tuple[str, ...] = ()  # instead of rows: all rows quarantined, reasons among these


@dataclass(frozen=True)
class Loads:
    loaded: int
    duplicate: int = 0
    texts: tuple[str, ...] = ()  # must appear verbatim in the staged rows


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # hh | shp | oasst | log  (mapping cases are log cases with a broken mapping)
    filename: str
    build: Callable[["Real"], bytes]
    expect: FileError | Quarantine | Loads
    mapping: str | Callable[["Real"], bytes] = ""  # 'support-bot' / 'ab-test', or the bytes of a broken one
    bug: str = ""  # an open product bug this case shows: the test is xfail strict until it is fixed
    found: str = ""  # a product bug this case found, since fixed: the case keeps it fixed


class Real:
    """Real rows to break."""

    @cached_property
    def hh(self) -> list[dict]:
        with gzip.open(DEMO_HH_HELPFUL, "rt", encoding="utf-8") as fh:
            rows = [json.loads(next(fh)) for _ in range(40)]
        return [r for r in rows if r["chosen"] != r["rejected"]][:6]

    @cached_property
    def shp(self) -> list[dict]:
        lines = (shared_shp() / "askphysics_validation.head7.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    @cached_property
    def oasst(self) -> list[dict]:
        with open(OASST_QUIRKS, encoding="utf-8") as fh:  # its first lines are the full file's
            return [json.loads(next(fh)) for _ in range(6)]

    @cached_property
    def tree(self) -> dict:
        with open(DEMO_OASST_TREES, encoding="utf-8") as fh:
            for line in fh:
                tree = json.loads(line)
                if any(reply["replies"] for reply in tree["prompt"]["replies"]):
                    return tree
        raise AssertionError("no tree with grandchildren")

    @cached_property
    def log(self) -> list[dict]:
        lines = (EXAMPLES / "support-bot.jsonl").read_text(encoding="utf-8").splitlines()[:6]
        return [json.loads(line) for line in lines]

    @cached_property
    def ab(self) -> list[list[str]]:
        with open(EXAMPLES / "ab-test.csv", newline="", encoding="utf-8") as fh:
            return list(csv.reader(fh))[:6]  # header + 5 rows

    def mapping(self, name: str) -> str:
        return (EXAMPLES / f"{name}.mapping.yaml").read_text(encoding="utf-8")


# --- helpers -----------------------------------------------------------------------

def jsonl(*rows) -> bytes:
    out = []
    for row in rows:
        out.append(row if isinstance(row, bytes) else (row if isinstance(row, str) else json.dumps(row)).encode())
    return b"\n".join(out) + b"\n"


def with_(row: dict, **changes) -> dict:
    changed = copy.deepcopy(row)
    for key, value in changes.items():
        if value is DROP:
            changed.pop(key)
        else:
            changed[key] = value
    return changed


DROP = object()


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def cut(data: bytes, keep: float) -> bytes:
    return data[: int(len(data) * keep)]


def hh_reply(row: dict, chosen_reply: str, rejected_reply: str) -> dict:
    """The row with its final replies replaced (the prompt stays)."""
    marker = "\n\nAssistant:"
    prefix = row["chosen"][: row["chosen"].rfind(marker) + len(marker)]
    return {"chosen": prefix + " " + chosen_reply, "rejected": prefix + " " + rejected_reply}


def tree_node(message_id, role, text, replies=(), **extra) -> dict:
    node = {"message_id": message_id, "role": role, "text": text, "replies": list(replies)}
    node.update(extra)
    return node


def deep_tree(depth: int) -> str:
    """A valid tree `depth` messages deep, as JSON text (json.dumps would recurse too deep)."""
    opening = "".join(f'{{"message_id": "m{level}", "role": "{"prompter" if level % 2 else "assistant"}", '
                      f'"text": "turn {level}", "rank": 0, "replies": [' for level in range(1, depth + 1))
    return '{"message_tree_id": "m1", "tree_state": "ready_for_export", "prompt": ' + opening + "]}" * depth + "}"


def alias_bomb(levels: int) -> bytes:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return ("\n".join(lines) + f"\nname: bomb\ncolumns: *l{levels - 1}\n").encode()


def support_bot_mapping_with(old: str, new: str) -> Callable[[Real], bytes]:
    def build(real: Real) -> bytes:
        text = real.mapping("support-bot")
        assert old in text
        return text.replace(old, new).encode("utf-8")
    return build


def random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# --- the corpus ----------------------------------------------------------------------

LOG_QUESTION_ENDS_WITH_ASSISTANT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]

CASES: list[Case] = [
    # HH-RLHF ----------------------------------------------------------------------------
    Case("hh-truncated-last-row", "hh", "cut.jsonl",
         lambda r: jsonl(*r.hh[:3]) + json.dumps(r.hh[3]).encode()[:200],
         Quarantine(((4, "invalid JSON"),), loaded=3)),
    Case("hh-gzip-without-trailer", "hh", "no-trailer.jsonl.gz",
         lambda r: gzip.compress(jsonl(*r.hh[:4]))[:-8],
         FileError(r"corrupt or truncated gzip after row \d+")),
    Case("hh-gzip-magic-then-garbage", "hh", "garbage.jsonl.gz",
         lambda r: b"\x1f\x8b\x08\x00" + random_bytes(1, 4000),
         FileError(r"corrupt or truncated gzip after row 0")),
    Case("hh-latin1-row", "hh", "latin1.jsonl",
         lambda r: jsonl(r.hh[0], json.dumps(hh_reply(r.hh[1], "Caf\u00e9 cr\u00e8me", "Non"), ensure_ascii=False)
                         .encode("latin-1"), r.hh[2]),
         Quarantine(((2, "not valid UTF-8 at byte"),), loaded=2)),
    Case("hh-utf16-file", "hh", "utf16.jsonl",
         lambda r: (json.dumps(r.hh[0]) + "\n" + json.dumps(r.hh[1]) + "\n").encode("utf-16"),
         Quarantine(loaded=0, every_reason_in=("not valid UTF-8", "invalid JSON"))),
    Case("hh-utf8-bom", "hh", "bom.jsonl",
         lambda r: b"\xef\xbb\xbf" + jsonl(*r.hh[:2]),
         Loads(2),
         found="a UTF-8 byte-order mark at the start of a JSONL file quarantines row 1 as "
             "'invalid JSON: Unexpected UTF-8 BOM'; the CSV reader strips it (utf-8-sig), JSONL/JSON should too"),
    Case("hh-chosen-is-a-list", "hh", "list.jsonl",
         lambda r: jsonl(r.hh[0], with_(r.hh[1], chosen=["\n\nHuman: hi", "\n\nAssistant: yo"]), r.hh[2]),
         Quarantine(((2, "field 'chosen' should be text, got list"),), loaded=2)),
    Case("hh-rejected-null", "hh", "null.jsonl",
         lambda r: jsonl(r.hh[0], with_(r.hh[1], rejected=None)),
         Quarantine(((2, "missing field 'rejected'"),), loaded=1)),
    Case("hh-nan-literal", "hh", "nan.jsonl",
         lambda r: jsonl(r.hh[0], '{"chosen": NaN, "rejected": "x"}'),
         Quarantine(((2, "field 'chosen' should be text, got float"),), loaded=1)),
    Case("hh-csv-header-without-rejected", "hh", "header.csv",
         lambda r: csv_bytes([["chosen", "notes"], [r.hh[0]["chosen"], "n"]]),
         FileError(r"missing column 'rejected' \(the file has: chosen, notes\)", row=1)),
    Case("hh-duplicated-rows", "hh", "dups.jsonl",
         lambda r: jsonl(r.hh[0], r.hh[1], r.hh[0], r.hh[0]),
         Loads(2, duplicate=2)),
    Case("hh-giant-row-default-limit", "hh", "giant.jsonl.gz",
         lambda r: gzip.compress(jsonl(r.hh[0], hh_reply(r.hh[1], "a" * (4_700_000), "b"))),
         Quarantine(((2, "over the 4 MiB row limit"),), loaded=1)),
    Case("hh-empty-file", "hh", "empty.jsonl", lambda r: b"", Loads(0)),
    Case("hh-empty-gzip", "hh", "empty.jsonl.gz", lambda r: gzip.compress(b""), Loads(0)),
    Case("hh-blank-lines-only", "hh", "blank.jsonl", lambda r: b"\n\n   \n\r\n\t\n", Loads(0)),
    Case("hh-csv-lines-inside-jsonl", "hh", "mixed.jsonl",
         lambda r: jsonl(r.hh[0], "chosen,rejected", '"Human: a","Human: b"', r.hh[1]),
         Quarantine(((2, "invalid JSON"), (3, "invalid JSON")), loaded=2)),
    Case("hh-json-array-on-a-jsonl-line", "hh", "array-line.jsonl",
         lambda r: jsonl(json.dumps(r.hh[:2]), r.hh[2]),
         Quarantine(((1, "expected a JSON object, got list"),), loaded=1)),
    Case("hh-jsonl-named-json", "hh", "lines.json", lambda r: jsonl(*r.hh[:2]), Loads(2)),
    Case("hh-json-array-truncated", "hh", "array-cut.json",
         lambda r: json.dumps(r.hh[:3], indent=1).encode()[:-40],
         FileError(r"invalid JSON at line \d+, column \d+")),
    Case("hh-json-array-with-a-string", "hh", "array-mixed.json",
         lambda r: json.dumps(["just text", r.hh[0]]).encode(),
         Quarantine(((1, "expected a JSON object, got str"),), loaded=1)),
    Case("hh-parquet-truncated", "hh", "cut.parquet",
         lambda r: cut(parquet_bytes(pa.Table.from_pylist(r.hh[:4])), 0.6),
         FileError(r"not a readable Parquet file|corrupt Parquet")),
    Case("hh-parquet-integer-columns", "hh", "ints.parquet",
         lambda r: parquet_bytes(pa.table({"chosen": [1, 2], "rejected": [3, 4]})),
         Quarantine(((1, "field 'chosen' should be text, got int"), (2, "field 'chosen' should be text, got int")),
                    loaded=0)),
    Case("hh-csv-unclosed-quote", "hh", "quote.csv",
         lambda r: csv_bytes([["chosen", "rejected"], [r.hh[0]["chosen"], r.hh[0]["rejected"]]])
         + b'"\n\nHuman: never closed,\n\nAssistant: x\n',
         Quarantine(((2, "the header has 2"),), loaded=1)),
    Case("hh-no-extension", "hh", "hh-export", lambda r: jsonl(r.hh[0]),
         FileError(r"unknown format 'no extension'")),
    Case("hh-binary-garbage", "hh", "garbage.jsonl", lambda r: random_bytes(2, 3000),
         Quarantine(loaded=0, every_reason_in=("not valid UTF-8", "invalid JSON"))),
    Case("hh-top-level-number", "hh", "number.jsonl", lambda r: jsonl("42", r.hh[0]),
         Quarantine(((1, "expected a JSON object, got int"),), loaded=1)),
    Case("hh-nested-too-deeply", "hh", "deep.jsonl",
         lambda r: jsonl('{"chosen": ' + "[" * 100_000 + "]" * 100_000 + ', "rejected": "x"}', r.hh[0]),
         Quarantine(((1, "nested too deeply"),), loaded=1)),
    Case("hh-assistant-first", "hh", "assistant-first.jsonl",
         lambda r: jsonl({"chosen": "\n\nAssistant: I start\n\nHuman: ok\n\nAssistant: good",
                          "rejected": "\n\nAssistant: I start\n\nHuman: ok\n\nAssistant: bad"}, r.hh[0]),
         Quarantine(((1, "does not start with a human turn"),), loaded=1)),
    Case("hh-prompts-disagree", "hh", "disagree.jsonl",
         lambda r: jsonl({"chosen": "\n\nHuman: one question\n\nAssistant: a",
                          "rejected": "\n\nHuman: another question\n\nAssistant: b"}, r.hh[0]),
         Quarantine(((1, "prompts disagree"),), loaded=1)),
    Case("hh-control-characters", "hh", "control.jsonl",
         lambda r: jsonl(hh_reply(r.hh[0], CONTROL, "plain")),
         Loads(1, texts=(CONTROL,))),
    Case("hh-sql-fragments", "hh", "sql.jsonl",
         lambda r: jsonl(hh_reply(r.hh[0], HOSTILE_SQL, "no"), {"chosen": "\n\nHuman: " + HOSTILE_SQL
                         + "\n\nAssistant: a", "rejected": "\n\nHuman: " + HOSTILE_SQL + "\n\nAssistant: b"}),
         Loads(2, texts=(HOSTILE_SQL,))),
    Case("hh-lone-surrogate", "hh", "surrogate.jsonl",
         lambda r: jsonl(r.hh[0], '{"chosen": "\\n\\nHuman: hi \\ud800\\n\\nAssistant: a", '
                                  '"rejected": "\\n\\nHuman: hi \\ud800\\n\\nAssistant: b"}', r.hh[1]),
         Quarantine(((2, "surrogate"),), loaded=2),
         found="a JSON row holding an escaped lone surrogate (\\ud800) crashes the whole file with "
             "UnicodeEncodeError ('surrogates not allowed') when the chunk goes to Arrow: no file/row "
             "named, a traceback instead of a one-line error, and the good rows are not loaded"),

    # SHP --------------------------------------------------------------------------------
    Case("shp-labels-as-text", "shp", "labels.jsonl",
         lambda r: jsonl(r.shp[0], with_(r.shp[1], labels="1")),
         Quarantine(((2, "field 'labels' should be 1 (A preferred) or 0 (B preferred)"),), loaded=1)),
    Case("shp-fractional-score", "shp", "score.jsonl",
         lambda r: jsonl(r.shp[0], with_(r.shp[1], score_A=12.5)),
         Quarantine(((2, "field 'score_A' should be a whole number of votes"),), loaded=1)),
    Case("shp-first-row-missing-human_ref_B", "shp", "missing-first.jsonl",
         lambda r: jsonl(with_(r.shp[0], human_ref_B=DROP), r.shp[1]),
         FileError(r"missing column 'human_ref_B'", row=1)),
    Case("shp-later-row-missing-human_ref_B", "shp", "missing-later.jsonl",
         lambda r: jsonl(r.shp[0], r.shp[1], with_(r.shp[2], human_ref_B=DROP)),
         Quarantine(((3, "missing field 'human_ref_B'"),), loaded=2)),
    Case("shp-same-comment-twice", "shp", "same.jsonl",
         lambda r: jsonl(with_(r.shp[0], c_root_id_B=r.shp[0]["c_root_id_A"]), r.shp[1]),
         Quarantine(((1, "comments A and B are the same comment"),), loaded=1)),
    Case("shp-score-ratio-disagrees", "shp", "ratio.jsonl",
         lambda r: jsonl(with_(r.shp[0], score_ratio=99.0), r.shp[1]),
         Quarantine(((1, "field 'score_ratio' disagrees with the scores"),), loaded=1)),
    Case("shp-score-ratio-nan", "shp", "ratio-nan.jsonl",
         lambda r: jsonl(json.dumps(with_(r.shp[0], score_ratio=float("nan"))), r.shp[1]),
         Quarantine(((1, "field 'score_ratio' should be a number"),), loaded=1)),
    Case("shp-swapped-duplicate", "shp", "swapped.jsonl",
         lambda r: jsonl(r.shp[0], with_(r.shp[0], c_root_id_A=r.shp[0]["c_root_id_B"],
                                         c_root_id_B=r.shp[0]["c_root_id_A"], human_ref_A=r.shp[0]["human_ref_B"],
                                         human_ref_B=r.shp[0]["human_ref_A"], score_A=r.shp[0]["score_B"],
                                         score_B=r.shp[0]["score_A"], labels=1 - r.shp[0]["labels"])),
         Loads(1, duplicate=1)),
    Case("shp-truncated", "shp", "cut.jsonl",
         lambda r: cut(jsonl(*r.shp[:4]), 0.9),
         Quarantine(((4, "invalid JSON"),), loaded=3)),
    Case("shp-scores-as-text", "shp", "text-scores.csv",
         lambda r: csv_bytes([list(r.shp[0]), [str(v) for v in r.shp[0].values()]]),
         Quarantine(((1, "field 'score_A' should be a whole number of votes"),), loaded=0)),
    Case("shp-html-and-sql", "shp", "hostile.jsonl",
         lambda r: jsonl(with_(r.shp[0], history="<script>alert(1)</script> " + HOSTILE_SQL)),
         Loads(1, texts=("<script>alert(1)</script> " + HOSTILE_SQL,))),

    # OASST ------------------------------------------------------------------------------
    Case("oasst-rank-is-boolean", "oasst", "rank.jsonl",
         lambda r: jsonl(r.oasst[0], with_(r.oasst[1], rank=True)),
         Quarantine(((2, "field 'rank' should be an integer or null"),), loaded=1)),
    Case("oasst-unknown-role", "oasst", "role.jsonl",
         lambda r: jsonl(with_(r.oasst[0], role="moderator"), r.oasst[1]),
         Quarantine(((1, "unknown role 'moderator'"),), loaded=1)),
    Case("oasst-text-null", "oasst", "text.jsonl",
         lambda r: jsonl(r.oasst[0], with_(r.oasst[1], text=None)),
         Quarantine(((2, "missing field 'text'"),), loaded=1)),
    Case("oasst-created-date-garbage", "oasst", "date.jsonl",
         lambda r: jsonl(with_(r.oasst[0], created_date="last tuesday"), r.oasst[1]),
         Quarantine(((1, "not an ISO-8601 time"),), loaded=1)),
    Case("oasst-neither-message-nor-tree", "oasst", "neither.jsonl",
         lambda r: jsonl({"hello": "world"}, r.oasst[0]),
         Quarantine(((1, "neither an OASST message"),), loaded=1)),
    Case("oasst-duplicated-message-id", "oasst", "dup.jsonl",
         lambda r: jsonl(r.oasst[0], r.oasst[1], with_(r.oasst[0], text="edited later")),
         Loads(2, duplicate=1)),
    Case("oasst-tree-replies-not-a-list", "oasst", "replies.jsonl",
         lambda r: jsonl({**r.tree, "prompt": {**r.tree["prompt"], "replies": "none"}}),
         Quarantine(((1, "'replies' should be a list, got str"),), loaded=0)),
    Case("oasst-tree-node-without-id", "oasst", "orphans.jsonl",
         lambda r: jsonl({**r.tree, "prompt": {**r.tree["prompt"], "replies": [
             tree_node(None, "assistant", "lost", [tree_node("child-1", "prompter", "orphan")])]}}),
         Quarantine(((1, "missing field 'message_id'"), (1, "place in the tree is unknown")), loaded=1)),
    Case("oasst-tree-prompt-is-text", "oasst", "prompt-text.jsonl",
         lambda r: jsonl({**r.tree, "prompt": "What is love?"}),
         Quarantine(((1, "'prompt' should be a message node, got str"),), loaded=0)),
    Case("oasst-tree-nested-too-deeply", "oasst", "deep-tree.jsonl",
         lambda r: jsonl(deep_tree(3000), r.oasst[0]),
         Quarantine(((1, "nested too deeply"),), loaded=1)),
    Case("oasst-mixed-formats", "oasst", "mixed.jsonl",
         lambda r: jsonl(r.oasst[0], r.tree, "message_id,text", r.oasst[1]),
         Quarantine(((3, "invalid JSON"),))),

    # business logs ------------------------------------------------------------------------
    Case("log-first-row-missing-rating-column", "log", "no-rating.jsonl",
         lambda r: jsonl(with_(r.log[0], feedback=DROP), r.log[1]),
         FileError(r"missing column 'feedback'", row=1), mapping="support-bot"),
    Case("log-unknown-rating", "log", "rating.jsonl",
         lambda r: jsonl(r.log[0], with_(r.log[1], feedback="meh")),
         Quarantine(((2, "unrecognised thumbs rating 'meh'"),), loaded=1), mapping="support-bot"),
    Case("log-unparseable-timestamp", "log", "time.jsonl",
         lambda r: jsonl(with_(r.log[0], created_at="yesterday, 5pm"), r.log[1]),
         Quarantine(((1, "unparseable timestamp"),), loaded=1), mapping="support-bot"),
    Case("log-prompt-ends-with-assistant", "log", "prompt.jsonl",
         lambda r: jsonl(with_(r.log[0], question=LOG_QUESTION_ENDS_WITH_ASSISTANT), r.log[1]),
         Quarantine(((1, "the last message must be the user's"),), loaded=1), mapping="support-bot"),
    Case("log-duplicated-event-id", "log", "dup-id.jsonl",
         lambda r: jsonl(r.log[0], r.log[1], with_(r.log[0], answer="a re-sent, edited event")),
         Loads(2, duplicate=1), mapping="support-bot"),
    Case("log-user-is-an-object", "log", "user-object.jsonl",
         lambda r: jsonl(r.log[0], with_(r.log[1], user={"email": r.log[1]["user"]})),
         Quarantine(((2, "should be text or a number, got dict"),), loaded=1), mapping="support-bot"),
    Case("log-invalid-json-with-a-user-id", "log", "broken.jsonl",
         lambda r: jsonl(r.log[0], json.dumps(r.log[1])[:-30]),
         Quarantine(((2, "invalid JSON"),), loaded=1), mapping="support-bot"),
    Case("log-rating-wrong-type", "log", "rating-type.jsonl",
         lambda r: jsonl(with_(r.log[0], feedback=["up"]), with_(r.log[1], feedback=7)),
         Quarantine(((1, "unrecognised thumbs rating"), (2, "unrecognised thumbs rating '7'")), loaded=0),
         mapping="support-bot"),
    Case("log-sql-and-control-characters", "log", "hostile.jsonl",
         lambda r: jsonl(with_(r.log[0], question=HOSTILE_SQL, answer=CONTROL)),
         Loads(1, texts=(HOSTILE_SQL, CONTROL)), mapping="support-bot"),
    Case("log-lone-surrogate", "log", "surrogate.jsonl",
         lambda r: jsonl(r.log[0], json.dumps(r.log[1])[:-1] + ', "answer": "bad \\udc80 text"}'),
         Quarantine(((2, "surrogate"),), loaded=1), mapping="support-bot",
         found="a log row whose answer holds an escaped lone surrogate crashes the file with UnicodeEncodeError"),
    Case("ab-tie", "log", "tie.csv",
         lambda r: csv_bytes(r.ab[:2] + [r.ab[2][:-1] + ["tie"]]),
         Quarantine(((2, "no winner"),), loaded=1), mapping="ab-test"),
    Case("ab-latin1-row", "log", "latin1.csv",
         lambda r: csv_bytes(r.ab[:2]) + ",".join(r.ab[2][:6] + ["caf\u00e9?", "r\u00e9ponse a", "b", "A"])
         .encode("latin-1") + b"\n",
         Quarantine(((2, "not valid UTF-8"),), loaded=1), mapping="ab-test"),
    Case("ab-extra-field", "log", "extra.csv",
         lambda r: csv_bytes(r.ab[:2] + [r.ab[2] + ["surplus"]]),
         Quarantine(((2, "row has 11 fields, the header has 10"),), loaded=1), mapping="ab-test"),
    Case("ab-same-completions", "log", "same.csv",
         lambda r: csv_bytes([r.ab[0], r.ab[1][:7] + [r.ab[1][7], r.ab[1][7], "A"]]),
         Quarantine(((1, "hold the same completion"),), loaded=0), mapping="ab-test"),
    Case("ab-empty-csv", "log", "empty.csv", lambda r: b"", Loads(0), mapping="ab-test"),

    # mapping files --------------------------------------------------------------------------
    Case("mapping-empty", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError("the mapping file is empty", names_mapping=True), mapping=lambda r: b""),
    Case("mapping-invalid-yaml", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError(r"invalid YAML at line \d+", names_mapping=True),
         mapping=lambda r: b"name: x\ncolumns: {prompt: question, completion: [answer\n"),
    Case("mapping-is-a-list", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError("should be a YAML mapping", names_mapping=True), mapping=lambda r: b"- name\n- columns\n"),
    Case("mapping-typo-in-a-key", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError("did you mean 'completion'", names_mapping=True),
         mapping=support_bot_mapping_with("  completion: answer", "  compleiton: answer")),
    Case("mapping-column-is-a-number", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError(r"columns\.prompt", names_mapping=True),
         mapping=support_bot_mapping_with("prompt: question", "prompt: 5")),
    Case("mapping-both-shapes", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError("not both", names_mapping=True),
         mapping=support_bot_mapping_with("  completion: answer", "  completion: answer\n  winner: answer")),
    Case("mapping-stars-thresholds-inverted", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError("must be greater than", names_mapping=True),
         mapping=support_bot_mapping_with("kind: thumbs", "kind: stars\n  up_at_least: 2\n  down_at_most: 4")),
    Case("mapping-name-escapes-the-source", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError("should be lowercase letters", names_mapping=True),
         mapping=support_bot_mapping_with("name: support-bot", "name: ../../etc/passwd")),
    Case("mapping-latin1", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError("cannot read the mapping file", names_mapping=True),
         mapping=lambda r: r.mapping("support-bot").replace("name: support-bot", "name: caf\u00e9")
         .encode("latin-1", "replace")),
    Case("mapping-binary-garbage", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError("mapping", names_mapping=True), mapping=lambda r: random_bytes(3, 500)),
    Case("mapping-yaml-alias-bomb", "log", "log.jsonl", lambda r: jsonl(*r.log[:2]),
         FileError("columns", names_mapping=True), mapping=lambda r: alias_bomb(6),
         found="a mapping whose `columns` is a YAML alias bomb gets an error message holding the repr "
             "of the expanded input: a 400-byte file gives a 3.8 MB message at 6 levels and "
             "~3 GB (minutes, or out of memory) at 9; the error should quote a short prefix"),
]

assert len({case.name for case in CASES}) == len(CASES)
