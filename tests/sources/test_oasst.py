"""The OASST parser on real rows of both exports: the shipped slices (demo_data/ORIGIN.md)
and, where present, the whole files, reconciled with docs/data-quirks.md#oasst."""
from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from tasks.sources import oasst
from tasks.sources.base import Quarantined, RowRejected, Staged
from samples import DEMO_OASST_TREES, OASST_QUIRKS, read_records, shared_data

HONEYCOMB = "d26fa28e-63bb-481a-a7ba-bfe1afeeea59"  # the smallest tree of the export: 3 nodes
EYES = "ea201f57-d24a-40f3-a0a7-ad15b893e538"  # 9 nodes, 4 levels, no synthetic node
SHIPPED_OVERLAP_TREES = {  # trees in both shipped slices
    "330fc1cf-53dd-4d67-8201-2782df947dd5", "5103ab92-666b-45ef-b7f7-6a990a1c744c",
    "f7a53981-0bfd-4595-8ca2-bae2c3b64345",
}
OVERLAP_TREES = SHIPPED_OVERLAP_TREES | {  # docs/data-quirks.md: trees present in both whole files
    "90632573-79ad-42f9-9b96-e09117985e21", "c79045d6-a800-40f8-bfd7-5b078f19023f",
    "eb5ce270-2d63-40fb-9558-790d409ae16c",
}


@dataclass(frozen=True)
class Exports:
    """A flat and a tree export, with what they hold counted on their raw JSON."""

    flat: list[dict[str, Any]]
    trees: list[dict[str, Any]]
    messages: int
    roles: dict[str, int]
    flat_trees: int
    flat_roots: int
    deleted: int
    review_results: dict[bool | None, int]
    assistant_ranks: dict[int | None, int]
    orphans: int
    nodes: int
    synthetic: dict[tuple[str, bool], int]
    ranked_nodes: int
    overlap_trees: set[str]
    overlap_messages: int


@pytest.fixture(scope="module", params=["shipped slices", "whole files"])
def exports(request) -> Exports:
    if request.param == "shipped slices":
        return Exports(read_records(OASST_QUIRKS), read_records(DEMO_OASST_TREES), messages=95,
                       roles={"user": 35, "assistant": 60}, flat_trees=11, flat_roots=8, deleted=5,
                       review_results={True: 88, False: 7}, assistant_ranks={0: 20, 1: 20, 2: 11, None: 9},
                       orphans=3, nodes=327, synthetic={("user", True): 3, ("assistant", True): 9},
                       ranked_nodes=177, overlap_trees=SHIPPED_OVERLAP_TREES, overlap_messages=37)
    folder = shared_data("the whole OASST files, to reconcile with the counts of docs/data-quirks.md") / "oasst"
    return Exports(read_records(folder / "oasst1-en-validation.jsonl"), read_records(folder / "en_100_tree.jsonl"),
                   messages=2022, roles={"user": 779, "assistant": 1243}, flat_trees=191, flat_roots=188,
                   deleted=40, review_results={True: 1956, False: 53, None: 13},
                   assistant_ranks={0: 418, 1: 416, 2: 284, 3: 14, 4: 1, None: 110}, orphans=3, nodes=1167,
                   synthetic={("user", True): 5, ("assistant", True): 17}, ranked_nodes=641,
                   overlap_trees=OVERLAP_TREES, overlap_messages=73)


def outcomes(recs: list[dict[str, Any]]) -> list:
    return [outcome for record in recs for outcome in oasst.parse(record)]


def flat_records() -> list[dict[str, Any]]:
    """The shipped flat messages; their first lines are the whole file's."""
    return read_records(OASST_QUIRKS)


def tree(tree_id: str) -> dict[str, Any]:
    return next(r for r in read_records(DEMO_OASST_TREES) if r["message_tree_id"] == tree_id)


def message(message_id: str, parent_id: str | None, role: str, content: str, rank: int | None,
            *, synthetic: bool = False, tree_id: str = HONEYCOMB,
            created_at: datetime | None = None) -> Staged:
    return Staged(oasst.TABLE, message_id, {
        "message_id": message_id, "parent_id": parent_id, "message_tree_id": tree_id,
        "role": role, "content": content, "rank": rank, "deleted": False,
        "synthetic": synthetic, "review_result": True, "lang": "en", "created_at": created_at,
    })


# --- golden rows ------------------------------------------------------------------


def test_small_tree_gives_one_row_per_node():
    assert list(oasst.parse(tree(HONEYCOMB))) == [
        message(HONEYCOMB, None, "user", "Who invented the honeycomb?", None, synthetic=True),
        message("40bdd64a-1c1c-43fe-bf25-7af18bc04cf0", HONEYCOMB, "assistant",
                "Honeycombs are a natural phenomenon. They are formed by bees using their "
                "specialized glands. The bees use the honeycomb to store their honey and pollen.",
                0, synthetic=True),
        message("f4c9cb3b-1ef0-4af3-a029-9be7b5b4f2af", HONEYCOMB, "assistant",
                "Honeycombs are a natural phenomenon. They are formed by bees using their "
                "specialized glands. The bees use the honeycomb to store honey and pollen.",
                1, synthetic=True),
    ]


def test_deep_tree_walks_parents_before_children_in_file_order():
    rows = [(o.row_key, o.values["parent_id"], o.values["role"], o.values["rank"])
            for o in oasst.parse(tree(EYES))]
    assert rows == [
        (EYES, None, "user", None),
        ("2318748d-8f4c-48a0-a828-8eff5a7b7950", EYES, "assistant", 0),
        ("daed19ee-f4e8-4c2a-9690-aebc09d2893a", "2318748d-8f4c-48a0-a828-8eff5a7b7950", "user", None),
        ("24e027d1-e043-4320-af17-327622eb7ed5", "daed19ee-f4e8-4c2a-9690-aebc09d2893a", "assistant", 0),
        ("4a7f68b2-2986-4d81-a4ec-89322577a857", "daed19ee-f4e8-4c2a-9690-aebc09d2893a", "assistant", 1),
        ("8a325ada-ed6f-4699-aac3-8a05ff52d228", EYES, "assistant", 1),
        ("13b05b60-8090-44d1-92f8-c1a0c8c84995", "8a325ada-ed6f-4699-aac3-8a05ff52d228", "user", None),
        ("d4aaa7f1-2033-4bbf-8611-2889f8f31154", "13b05b60-8090-44d1-92f8-c1a0c8c84995", "assistant", 0),
        ("0b39aac7-1aa6-43a2-b1a6-a122bdf63481", "13b05b60-8090-44d1-92f8-c1a0c8c84995", "assistant", 1),
    ]


def test_flat_message_maps_fields_and_time():
    root = flat_records()[0]
    tree_id = "e0cf4fa2-e944-44fb-b502-11f155062092"
    assert list(oasst.parse(root)) == [
        message(tree_id, None, "user", "What do you think about ChatGPT?", None, tree_id=tree_id,
                created_at=datetime(2023, 2, 7, 17, 29, 24, 727400)),
    ]


def test_created_date_with_an_offset_becomes_naive_utc():
    root = dict(flat_records()[0], created_date="2023-02-07T18:29:24+01:00")
    [staged] = oasst.parse(root)
    assert staged.values["created_at"] == datetime(2023, 2, 7, 17, 29, 24)


# --- whole files --------------------------------------------------------------------


def test_validation_file_counts(exports):
    staged = outcomes(exports.flat)
    assert len(staged) == exports.messages and all(isinstance(o, Staged) for o in staged)
    values = [o.values for o in staged]
    assert Counter(v["role"] for v in values) == exports.roles
    assert len({v["message_tree_id"] for v in values}) == exports.flat_trees
    assert sum(v["parent_id"] is None for v in values) == exports.flat_roots
    assert sum(v["deleted"] for v in values) == exports.deleted
    assert Counter(v["review_result"] for v in values) == exports.review_results
    assert Counter(v["rank"] for v in values if v["role"] == "assistant") == exports.assistant_ranks
    ids = {v["message_id"] for v in values}
    assert sum(v["parent_id"] is not None and v["parent_id"] not in ids for v in values) == exports.orphans


def test_tree_file_counts(exports):
    staged = outcomes(exports.trees)
    assert len(staged) == exports.nodes and all(isinstance(o, Staged) for o in staged)
    values = [o.values for o in staged]
    assert sum(v["parent_id"] is None for v in values) == len(exports.trees)
    assert Counter((v["role"], v["synthetic"]) for v in values if v["synthetic"]) == exports.synthetic
    assert sum(v["rank"] is not None for v in values) == exports.ranked_nodes
    assert all(v["created_at"] is None and v["deleted"] is False for v in values)
    # Every nested node belongs to its record's tree and hangs under a node of it.
    by_id = {v["message_id"]: v for v in values}
    assert all(by_id[v["parent_id"]]["message_tree_id"] == v["message_tree_id"]
               for v in values if v["parent_id"] is not None)


def test_the_two_files_overlap_by_six_trees(exports):
    flat = {o.row_key: o.values for o in outcomes(exports.flat)}
    nested = {o.row_key: o.values for o in outcomes(exports.trees)}
    common = flat.keys() & nested.keys()
    assert {flat[key]["message_tree_id"] for key in common} == exports.overlap_trees
    assert common == {key for key, v in nested.items() if v["message_tree_id"] in exports.overlap_trees}
    assert len(common) == exports.overlap_messages
    # The same message parses to the same row from either export, except for what
    # the tree export lacks (created_date), so deduplicating by message_id loses nothing.
    assert all({**nested[key], "created_at": None} == {**flat[key], "created_at": None}
               for key in common)


# --- bad nodes and records ----------------------------------------------------------


def test_bad_node_is_quarantined_alone_and_its_replies_still_load():
    record = copy.deepcopy(tree(EYES))
    middle = record["prompt"]["replies"][0]["replies"][0]  # daed19ee, a prompter with 2 replies
    del middle["text"]
    result = list(oasst.parse(record))
    assert len(result) == 9
    bad = result[2]
    assert isinstance(bad, Quarantined)
    assert bad.reason == f"tree {EYES}: message daed19ee-f4e8-4c2a-9690-aebc09d2893a: missing field 'text'"
    assert bad.raw == {k: v for k, v in middle.items() if k != "replies"}
    assert [o.values["parent_id"] for o in result[3:5]] == ["daed19ee-f4e8-4c2a-9690-aebc09d2893a"] * 2
    assert all(isinstance(o, Staged) for o in result[:2] + result[3:])


def test_node_without_id_takes_its_direct_replies_to_quarantine():
    record = copy.deepcopy(tree(EYES))
    del record["prompt"]["replies"][0]["message_id"]  # 2318748d: reply daed19ee, 2 below it
    result = list(oasst.parse(record))
    assert [type(o).__name__ for o in result] == ["Staged"] + ["Quarantined"] * 2 + ["Staged"] * 6
    assert result[1].reason == f"tree {EYES}: missing field 'message_id'"
    assert result[2].reason == (f"tree {EYES}: its parent node has no message_id, so its place "
                                "in the tree is unknown")
    # daed19ee's own replies know their parent: staged, and orphans until it loads.
    assert [o.values["parent_id"] for o in result[3:5]] == ["daed19ee-f4e8-4c2a-9690-aebc09d2893a"] * 2


def test_malformed_replies_and_parent_ids():
    record = copy.deepcopy(tree(HONEYCOMB))
    first, second = record["prompt"]["replies"]
    first["parent_id"] = "somewhere-else"
    record["prompt"]["replies"].append("not a node")
    second["replies"] = {"oops": 1}
    reasons = [o.reason for o in oasst.parse(record) if isinstance(o, Quarantined)]
    assert reasons == [
        f"tree {HONEYCOMB}: message {first['message_id']}: parent_id 'somewhere-else' "
        f"disagrees with the tree (nested under {HONEYCOMB})",
        f"tree {HONEYCOMB}: 'replies' should be a list, got dict",
        f"tree {HONEYCOMB}: a reply should be a JSON object, got str",
    ]


@pytest.mark.parametrize("change, reason", [
    ({"message_id": None}, "missing field 'message_id'"),
    ({"text": None}, "missing field 'text'"),
    ({"text": "  "}, "field 'text' is empty"),
    ({"role": "moderator"}, "unknown role 'moderator' (expected 'prompter' or 'assistant')"),
    ({"rank": 1.5}, "field 'rank' should be an integer or null, got 1.5"),
    ({"rank": True}, "field 'rank' should be an integer or null, got True"),
    ({"rank": "1"}, "field 'rank' should be an integer or null, got '1'"),
    ({"deleted": "no"}, "field 'deleted' should be bool or null, got 'no'"),
    ({"review_result": 1}, "field 'review_result' should be bool or null, got 1"),
    ({"created_date": "yesterday"}, "field 'created_date' is not an ISO-8601 time: 'yesterday'"),
])
def test_bad_flat_message_is_rejected(change, reason):
    record = {**flat_records()[1], **change}
    with pytest.raises(RowRejected) as raised:
        oasst.parse(record)  # raised at the call, before any row is produced
    assert str(raised.value).endswith(reason)


@pytest.mark.parametrize("record, reason", [
    (["a", "list"], "expected a JSON object (an OASST message or tree), got list"),
    ({"hello": 1}, "neither an OASST message (no 'message_id') nor a message tree (no 'prompt')"),
    ({"prompt": {}}, "missing field 'message_tree_id'"),
    ({"message_tree_id": "t", "prompt": "hi"}, "tree t: 'prompt' should be a message node, got str"),
])
def test_unusable_record_is_rejected(record, reason):
    with pytest.raises(RowRejected, match=None) as raised:
        oasst.parse(record)
    assert str(raised.value) == reason


def test_deep_tree_needs_no_recursion():
    depth = 5000  # far past Python's default recursion limit
    root: dict[str, Any] = {"message_id": "m0", "text": "hi", "role": "prompter", "replies": []}
    node = root
    for i in range(1, depth):
        child = {"message_id": f"m{i}", "text": "hi", "role": "assistant" if i % 2 else "prompter",
                 "replies": []}
        node["replies"].append(child)
        node = child
    result = list(oasst.parse({"message_tree_id": "m0", "prompt": root}))
    assert len(result) == depth and result[-1].values["parent_id"] == f"m{depth - 2}"
