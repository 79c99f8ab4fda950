"""Ready mappings for the usual feedback exporters (docs/bring-your-own-logs.md):
a Langfuse trace export, OpenAI-style chat completion logs, a star-rating CSV.
Each shipped example ingests into a real warehouse with every row accounted for
(read = loaded + duplicate + quarantined) and the documented outcome; the paths
they rely on (`$.a[0].b`, `$.scores[name=x].value`) are tested on their own."""
from __future__ import annotations

from collections import Counter

import pytest

from schemas.mapping import load_mapping, required_columns
from tasks.common.settings import PROJECT_ROOT, ThumbsError
from tasks.ingest.load import ingest_file
from tasks.sources import bind_source
from tasks.sources.record_path import MISSING, parse_path
from tasks.warehouse.connection import connect

EXAMPLES = PROJECT_ROOT / "examples"

TRACE = {
    "id": "t1",
    "input": '[{"role": "user", "content": "hi"}]',  # a CSV export keeps JSON as text
    "output": {"role": "assistant", "content": "hello"},
    "scores": [{"name": "latency-ok", "value": 1}, {"name": "user-feedback", "value": 0}],
    "choices": [{"message": {"content": "first"}}, {"message": {"content": "second"}}],
}


@pytest.mark.parametrize("path, expected", [
    ("$.id", "t1"),
    ("$.output.content", "hello"),
    ("$.scores[name=user-feedback].value", 0),
    ("$.scores[name=latency-ok].value", 1),
    ("$.choices[1].message.content", "second"),
    ("$.input[0].content", "hi"),
    ("$.scores[name=thumbs].value", MISSING),
    ("$.choices[2].message.content", MISSING),
    ("$.output.content.text", MISSING),
    ("$.nowhere", MISSING),
])
def test_path_finds_nested_values(path, expected):
    assert parse_path(path).find(TRACE) == expected


@pytest.mark.parametrize("path, problem", [
    ("$", "should start with a column name"),
    ("$[0]", "should start with a column name"),
    ("$.output..content", r"cannot read '\.\.content'"),
    ("$.scores[name=]", r"cannot read '\[name=\]'"),
    ("$.a b", "cannot read ' b'"),
])
def test_bad_paths_are_refused(path, problem):
    with pytest.raises(ValueError, match=problem):
        parse_path(path)


def test_bad_path_in_a_mapping_is_one_line_naming_the_file(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("name: x\ncolumns: {prompt: q, completion: '$.out..put', rating: r}\n")
    with pytest.raises(ThumbsError, match=r"m\.yaml: .*path '\$\.out\.\.put': cannot read") as err:
        load_mapping(mapping)
    assert "\n" not in str(err.value)
    mapping.write_text("name: x\ncolumns: {prompt: q, completion: a, rating: r, user_id: '$.user.email'}\n")
    with pytest.raises(ThumbsError, match="user_id must be a top-level column"):
        load_mapping(mapping)


def test_a_file_needs_the_top_level_column_of_each_path():
    mapping = load_mapping(EXAMPLES / "openai-chat-logs.mapping.yaml")
    assert required_columns(mapping) == ["id", "created", "metadata", "user", "messages", "choices", "model"]


# file, mapping, (loaded, duplicate, quarantined), labels up/down/neutral, quarantine reasons
EXPECTED = {
    "langfuse": (
        "langfuse-traces.jsonl", "langfuse.mapping.yaml", (39, 1, 5), (21, 18, 0),
        {"path '$.scores[name=user-feedback].value' finds nothing in this row": 4,
         "column '$.output.content' (completion) is empty": 1},
    ),
    "openai-chat": (
        "openai-chat-logs.jsonl", "openai-chat-logs.mapping.yaml", (36, 0, 4), (22, 14, 0),
        {"column '$.metadata.thumbs' (rating) is empty": 3,
         "the prompt in column 'messages' ends with a message from the assistant; "
         "the last message must be the user's": 1},
    ),
    "star-survey": (
        "star-ratings.csv", "star-ratings.mapping.yaml", (38, 0, 2), (28, 7, 3),
        {"column 'stars' (rating) is empty": 1, "star rating '7' in column 'stars' is outside 1-5": 1},
    ),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_ready_mapping_ingests_its_example(name, home):
    file, mapping, (loaded, duplicate, quarantined), (up, down, neutral), reasons = EXPECTED[name]
    binding = bind_source("log", mapping=str(EXAMPLES / mapping), home=home)
    assert binding.name == f"log:{name}"
    with connect(home) as con:
        result = ingest_file(con, binding, EXAMPLES / file, "batch-1")
        labels = Counter(dict(con.execute(
            "SELECT coalesce(label::VARCHAR, 'neutral'), count(*) FROM staging.stg_log__ratings "
            "WHERE log_name = $name GROUP BY ALL", {"name": name}).fetchall()))
        again = ingest_file(con, binding, EXAMPLES / file, "batch-2")
    assert (result.rows_loaded, result.rows_duplicate, result.rows_quarantined) == (loaded, duplicate, quarantined)
    assert result.rows_read == loaded + duplicate + quarantined
    assert dict(result.reasons) == reasons
    assert (labels["true"], labels["false"], labels["neutral"]) == (up, down, neutral)
    assert again.status == "skipped"  # the same export a second time changes nothing
