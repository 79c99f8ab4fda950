"""The RLCD parser: which reply is chosen, and every quality guard's quarantine reason."""
from __future__ import annotations

import pytest

from tasks.sources import rlcd
from tasks.sources.base import RowRejected, Staged


def record(**changes) -> dict:
    base = {"prompt": [{"role": "user", "content": "How do I fix a bike tyre?"}],
            "template_pair": "kind-vs-hurtful", "positive_context": "(Answer kindly.)",
            "negative_context": "(Answer rudely.)", "positive_reply": "Patch the tube.",
            "negative_reply": "Figure it out.", "positive_truncated": False, "negative_truncated": False,
            "max_reply_chars": 40, "generator_sha256": "g" * 64, "templates_sha256": "t" * 64}
    return {**base, **changes}


def rejection(**changes) -> str:
    with pytest.raises(RowRejected) as caught:
        rlcd.parse(record(**changes))
    return str(caught.value)


def test_positive_reply_is_chosen_unless_rescored():
    [staged] = rlcd.parse(record())
    assert isinstance(staged, Staged) and staged.table == rlcd.TABLE
    assert (staged.values["chosen"], staged.values["rejected"], staged.values["labeled_by"]) == \
        ("Patch the tube.", "Figure it out.", "context")
    [rescored] = rlcd.parse(record(positive_score=-1.0, negative_score=0.5))  # the reward model disagrees
    assert (rescored.values["chosen"], rescored.values["labeled_by"], rescored.values["margin"]) == \
        ("Figure it out.", "rescore", 1.5)


def test_every_guard_quarantines_with_its_reason():
    assert rejection(negative_reply="  ") == "empty reply (negative)"
    assert rejection(positive_truncated=True) == "truncated reply (hit max_new_tokens) (positive)"
    assert rejection(positive_reply="x" * 41) == "reply over the length cap (positive)"
    assert rejection(negative_reply=" Patch the tube. ") == "identical positive and negative replies"
    assert rejection(negative_reply="Sure. Answer rudely. Done.") == "reply echoes the context suffix (negative)"
    assert rejection(prompt=[]) == "prompt has no user turn"
