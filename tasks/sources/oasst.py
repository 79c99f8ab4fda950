"""OpenAssistant (OASST) message trees -> staging.stg_oasst__messages, one row per message.

Two export formats reach us (docs/data-quirks.md#oasst), told apart per record:

- the flat message table (HF `OpenAssistant/oasst1`): one message per record, every
  field present, null where unknown;
- the nested tree export (`en_100_tree.jsonl`): one tree per record,
  `{"message_tree_id", "tree_state", "prompt": Node}`, with `Node.replies` nested and
  null fields *omitted*, so every optional field has a default here.

row_key is the message_id: the two files overlap by 6 trees, and the loader skips a
row_key that is already present, so a message ingested from both loads once.

A bad node inside a tree is quarantined on its own (its `raw` is the node without its
replies, so the quarantine does not copy the subtree). Its replies are still parsed
and staged like any other node: they are valid messages, and the parent may arrive
later from the other export. Until it does, the SQL models drop them as messages
whose ancestor chain is incomplete. Only when the bad node has no message_id at all
are its direct replies quarantined too ("place in the tree is unknown"): staged with
no parent they would pass for roots. Every node is therefore exactly one outcome.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping

from tasks.sources.base import Outcome, Quarantined, RowRejected, Source, Staged, StagingTable, require_text

TABLE = "staging.stg_oasst__messages"

ROLES = {"prompter": "user", "assistant": "assistant"}


def parse(record: Mapping[str, Any]) -> Iterable[Outcome]:
    """Outcomes for one record of either format.

    Record-level problems raise RowRejected before anything is produced, so a
    rejected tree never leaves half of its nodes behind.
    """
    if not isinstance(record, Mapping):
        raise RowRejected(f"expected a JSON object (an OASST message or tree), got {type(record).__name__}")
    if "prompt" in record and "message_id" not in record:
        tree_id = require_text(record, "message_tree_id")
        root = record["prompt"]
        if not isinstance(root, Mapping):
            raise RowRejected(f"tree {tree_id}: 'prompt' should be a message node, got {type(root).__name__}")
        return _walk_tree(tree_id, root)
    if "message_id" in record:
        return [_staged(record, tree_id=_optional(record, "message_tree_id", str),
                        parent_id=_optional(record, "parent_id", str))]
    raise RowRejected("neither an OASST message (no 'message_id') nor a message tree (no 'prompt')")


_UNKNOWN_PARENT = object()  # the parent node had no usable message_id


def _walk_tree(tree_id: str, root: Mapping[str, Any]) -> Iterator[Outcome]:
    """Every node of a tree, parents before children, siblings in file order.

    An explicit stack rather than recursion: a deep tree must not hit Python's
    recursion limit (the shipped export nests 5 deep, other exports go deeper).
    """
    stack: list[tuple[Any, Any]] = [(root, None)]
    while stack:
        node, parent_id = stack.pop()
        if not isinstance(node, Mapping):
            yield Quarantined(f"tree {tree_id}: a reply should be a JSON object, got "
                              f"{type(node).__name__}", node)
            continue
        replies = node.get("replies", [])
        if not isinstance(replies, list):
            # The subtree cannot be walked: this node stands for all of it.
            yield Quarantined(f"tree {tree_id}: 'replies' should be a list, got "
                              f"{type(replies).__name__}", _without_replies(node))
            continue
        yield _node_outcome(tree_id, node, parent_id)
        own_id = node.get("message_id")
        children_parent = own_id if isinstance(own_id, str) and own_id.strip() else _UNKNOWN_PARENT
        stack.extend((reply, children_parent) for reply in reversed(replies))


def _node_outcome(tree_id: str, node: Mapping[str, Any], parent_id: Any) -> Outcome:
    if parent_id is _UNKNOWN_PARENT:
        # Staging it without a parent would make it look like a root.
        return Quarantined(f"tree {tree_id}: its parent node has no message_id, so its place "
                           "in the tree is unknown", _without_replies(node))
    try:
        return _staged(node, tree_id=tree_id, parent_id=_nested_parent(node, parent_id))
    except RowRejected as exc:
        return Quarantined(f"tree {tree_id}: {exc}", _without_replies(node))


def _nested_parent(node: Mapping[str, Any], structural_parent: str | None) -> str | None:
    """The parent is where the node sits in the tree; a parent_id that disagrees is an error."""
    declared = _optional(node, "parent_id", str)
    if declared is not None and declared != structural_parent:
        raise RowRejected(f"message {node.get('message_id')}: parent_id '{declared}' disagrees with the tree (nested under "
                          f"{structural_parent or 'nothing: it is the root'})")
    return structural_parent


def _staged(message: Mapping[str, Any], *, tree_id: str | None, parent_id: str | None) -> Staged:
    message_id = require_text(message, "message_id")
    try:
        values = {
            "message_id": message_id,
            "parent_id": parent_id,
            "message_tree_id": tree_id,
            "role": _role(message),
            "content": require_text(message, "text"),
            "rank": _rank(message),
            "deleted": _flag(message, "deleted"),
            "synthetic": _flag(message, "synthetic"),
            "review_result": _optional(message, "review_result", bool),
            "lang": _optional(message, "lang", str),
            "created_at": _utc(_optional(message, "created_date", str)),
        }
    except RowRejected as exc:
        raise RowRejected(f"message {message_id}: {exc}") from None
    return Staged(TABLE, message_id, values)


def _role(message: Mapping[str, Any]) -> str:
    role = require_text(message, "role")
    if role not in ROLES:
        raise RowRejected(f"unknown role '{role}' (expected 'prompter' or 'assistant')")
    return ROLES[role]


def _rank(message: Mapping[str, Any]) -> int | None:
    rank = message.get("rank")
    # bool is an int in Python; a true/false rank is a broken export, not rank 1/0.
    if rank is None or (isinstance(rank, int) and not isinstance(rank, bool)):
        return rank
    raise RowRejected(f"field 'rank' should be an integer or null, got {rank!r}")


def _flag(message: Mapping[str, Any], field: str) -> bool:
    """deleted/synthetic: omitted or null in the nested export means false."""
    value = _optional(message, field, bool)
    return bool(value)


def _optional(message: Mapping[str, Any], field: str, kind: type) -> Any:
    value = message.get(field)
    if value is None or isinstance(value, kind):
        return value
    raise RowRejected(f"field '{field}' should be {kind.__name__} or null, got {value!r}")


def _utc(text: str | None) -> datetime | None:
    """ISO-8601 (the flat export writes '+00:00' offsets) -> naive UTC, as TIMESTAMP stores it."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RowRejected(f"field 'created_date' is not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise RowRejected(f"field 'created_date' is not an ISO-8601 time in years 1-9999 UTC: {text!r}") from None
    return moment


def _without_replies(node: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in node.items() if key != "replies"}


SOURCE = Source(
    name="oasst",
    parse=parse,  # two layouts (flat, trees): its fields are checked per row
    staging=[StagingTable(TABLE, {
        "message_id": "VARCHAR NOT NULL",
        "parent_id": "VARCHAR",
        "message_tree_id": "VARCHAR",
        "role": "VARCHAR NOT NULL",  # user | assistant
        "content": "VARCHAR NOT NULL",
        "rank": "INTEGER",  # 0 = best among siblings
        "deleted": "BOOLEAN NOT NULL",
        "synthetic": "BOOLEAN NOT NULL",
        "review_result": "BOOLEAN",
        "lang": "VARCHAR",
        "created_at": "TIMESTAMP",
    })],
)
