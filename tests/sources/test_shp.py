"""The SHP parser on 31 real rows: the first lines of SHP's askphysics test, validation
and train files. SHP's license is unclear, so they are not shipped: these tests run
where the fuller samples are (see samples.py)."""
from __future__ import annotations

import pytest

from samples import read_records, shared_shp
from tasks.sources import shp
from tasks.sources.base import RowRejected, Staged, content_key

SHP_FILES = {
    "askphysics_test.head16.jsonl": 16,
    "askphysics_validation.head7.jsonl": 7,
    "askphysics_train.head8.jsonl": 8,
}
SWAPPED_FIELDS = ("c_root_id", "created_at_utc", "score", "human_ref")


@pytest.fixture(scope="module")
def shp_rows() -> dict[str, list[dict]]:
    folder = shared_shp()
    return {name: read_records(folder / name) for name in SHP_FILES}


@pytest.fixture()
def validation_rows(shp_rows) -> list[dict]:
    return shp_rows["askphysics_validation.head7.jsonl"]


def staged_pair(record: dict) -> Staged:
    (outcome,) = shp.parse(record)
    assert isinstance(outcome, Staged) and outcome.table == "staging.stg_shp__pairs"
    return outcome


def swapped(record: dict) -> dict:
    """The same pair with comments A and B exchanged."""
    result = dict(record, labels=1 - record["labels"])
    for field in SWAPPED_FIELDS:
        result[f"{field}_A"], result[f"{field}_B"] = record[f"{field}_B"], record[f"{field}_A"]
    return result


def test_every_shipped_row_parses_and_the_preferred_comment_scores_higher(shp_rows):
    keys = set()
    for name, expected_rows in SHP_FILES.items():
        assert len(shp_rows[name]) == expected_rows
        for record in shp_rows[name]:
            pair = staged_pair(record)
            keys.add(pair.row_key)
            # SHP's selection rule: the preferred comment has the higher score,
            # so a label read the wrong way round shows up here.
            assert pair.values["chosen_score"] > pair.values["rejected_score"]
            assert pair.values["score_ratio"] == record["score_ratio"]
            assert pair.values["prompt"] == [{"role": "user", "content": record["history"].strip()}]
    assert len(keys) == 31


def test_label_one_prefers_comment_a(validation_rows):
    record = validation_rows[0]
    assert record["labels"] == 1
    pair = staged_pair(record)
    assert pair.row_key == content_key("shp", "o40wgz", ["h2eu12o", "h2f2un9"])
    assert pair.values == {
        "post_id": "o40wgz",
        "prompt": [{"role": "user", "content": record["history"]}],
        "chosen": record["human_ref_A"],
        "rejected": record["human_ref_B"],
        "chosen_score": 102,
        "rejected_score": 5,
        "score_ratio": 20.4,
    }


def test_label_zero_prefers_comment_b(validation_rows):
    record = validation_rows[3]
    pair = staged_pair(record)
    assert pair.row_key == content_key("shp", "o2te2a", ["h285io3", "h28qv7q"])
    assert pair.values["post_id"] == "o2te2a"
    assert pair.values["prompt"][0]["content"].startswith(
        "If your penis filled fit into the leaky hole at the bottom of a boat, could you pee out that hole?"
    )
    # The backslashes are in the source text: kept as found.
    assert "slpt\\_they\\_say\\_you\\_learn" in pair.values["prompt"][0]["content"]
    assert pair.values["chosen"] == (
        "I believe in r/theydidthemath someone actually asked this and it was answered? I’ll see if I can"
        " find the link  Edit: here’s the link -"
        " https://www.reddit.com/r/theydidthemath/comments/o105q2/request_how_long_would_it_take_to_remove"
        "_a_leak/?utm_source=share&utm_medium=ios_app&utm_name=iossmf"
    )
    assert pair.values["rejected"] == "You can pee underwater, so you can pee through the hole in theory."
    assert (pair.values["chosen_score"], pair.values["rejected_score"]) == (17, 5)
    assert pair.values["score_ratio"] == 3.4


@pytest.mark.parametrize("index", range(7))
def test_swapping_a_and_b_gives_the_same_row(validation_rows, index):
    record = validation_rows[index]
    assert staged_pair(swapped(record)) == staged_pair(record)


def test_missing_score_ratio_is_recomputed_from_the_scores(validation_rows):
    record = dict(validation_rows[6])  # scores 11 and 140, score_ratio 12.7272727273
    del record["score_ratio"]
    assert staged_pair(record).values["score_ratio"] == 140 / 11
    assert staged_pair(dict(record, score_ratio=None)).values["score_ratio"] == 140 / 11


def test_missing_score_ratio_with_a_non_positive_score_is_null(validation_rows):
    record = dict(validation_rows[0], score_B=0, score_ratio=None)
    assert staged_pair(record).values["score_ratio"] is None


def test_whole_float_scores_are_read_as_integers(validation_rows):
    pair = staged_pair(dict(validation_rows[0], score_A=102.0, score_B=5.0))
    assert (pair.values["chosen_score"], pair.values["rejected_score"]) == (102, 5)
    assert all(isinstance(pair.values[column], int) for column in ("chosen_score", "rejected_score"))


def drop(field: str):
    return lambda record: {key: value for key, value in record.items() if key != field}


def replace(**changes):
    return lambda record: dict(record, **changes)


@pytest.mark.parametrize(
    "change, reason",
    [
        (drop("post_id"), "missing field 'post_id'"),
        (drop("history"), "missing field 'history'"),
        (drop("c_root_id_B"), "missing field 'c_root_id_B'"),
        (drop("human_ref_A"), "missing field 'human_ref_A'"),
        (drop("score_B"), "missing field 'score_B'"),
        (drop("labels"), "missing field 'labels'"),
        (replace(human_ref_B="   "), "field 'human_ref_B' is empty"),
        (replace(history=""), "field 'history' is empty"),
        (replace(post_id=12345), "field 'post_id' should be text, got int"),
        (replace(labels=2), "field 'labels' should be 1 (A preferred) or 0 (B preferred)"),
        (replace(labels="1"), "field 'labels' should be 1 (A preferred) or 0 (B preferred)"),
        (replace(labels=True), "field 'labels' should be 1 (A preferred) or 0 (B preferred)"),
        (replace(score_A=102.5), "field 'score_A' should be a whole number of votes"),
        (replace(score_B="5"), "field 'score_B' should be a whole number of votes"),
        (replace(score_A=True), "field 'score_A' should be a whole number of votes"),
        (replace(score_ratio=0.5), "field 'score_ratio' should be at least 1"),
        (replace(score_ratio="20.4"), "field 'score_ratio' should be a number"),
        (replace(score_ratio=float("nan")), "field 'score_ratio' should be a number"),
        (replace(score_ratio=2.0), "field 'score_ratio' disagrees with the scores"),
        (replace(c_root_id_B="h2f2un9"), "comments A and B are the same comment"),
        (lambda record: dict(record, human_ref_B=record["human_ref_A"] + " "),
         "chosen and rejected are identical"),
    ],
)
def test_bad_records_are_rejected_with_a_stable_reason(validation_rows, change, reason):
    with pytest.raises(RowRejected) as rejected:
        shp.parse(change(validation_rows[0]))
    assert str(rejected.value) == reason
