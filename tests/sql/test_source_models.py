"""Each source's SQL models (int_<source>__pairs / __votes), which binarize finds
through the source registry and unions into int_pairs and int_votes."""
from __future__ import annotations

import re

import pytest

from schemas.config import BinarizeConfig
from tasks.binarize.marts import SOURCE_MODELS, binarize, source_models
from tasks.common.settings import WAREHOUSE_SQL
from tasks.sources import SOURCES
from tasks.warehouse.connection import connect

PROMPT = 'STRUCT("role" VARCHAR, "content" VARCHAR)[]'
PAIR_COLUMNS = [("source", "VARCHAR"), ("prompt", PROMPT), ("prompt_key", "UHUGEINT"), ("chosen", "VARCHAR"),
                ("rejected", "VARCHAR"), ("margin", "DOUBLE"), ("batch_id", "VARCHAR")]
STAGING_ROW = ("staging_row", "BIGINT")  # the row's place in its table: incremental builds read by it
VOTE_COLUMNS = [("source", "VARCHAR"), ("prompt", PROMPT), ("prompt_key", "UHUGEINT"), ("completion", "VARCHAR"),
                ("vote", "INTEGER"), ("pair_id", "VARCHAR"), ("batch_id", "VARCHAR")]


def test_every_source_has_a_model_and_every_model_a_source():
    pairs, votes = source_models("pairs"), source_models("votes")
    assert {"int_hh__pairs", "int_log__pairs", "int_oasst__pairs", "int_shp__pairs"} <= set(pairs)
    assert {"int_log__votes", "int_oasst__votes"} <= set(votes)
    files = sorted(path.stem for path in (WAREHOUSE_SQL / SOURCE_MODELS).glob("int_*__*.sql")
                   if re.fullmatch(r"int_\w+__(pairs|votes)", path.stem))
    assert files == sorted(pairs + votes)  # a model named after no registered source would never run
    for source in SOURCES:
        assert f"int_{source}__pairs" in pairs or f"int_{source}__votes" in votes, source


def test_each_model_gives_the_shape_int_pairs_and_int_votes_union(home):
    with connect(home) as con:
        binarize(con, BinarizeConfig())
        for name in source_models("pairs"):
            columns = [tuple(row[:2]) for row in con.execute(f"DESCRIBE {name}").fetchall()]
            assert columns[:7] == PAIR_COLUMNS, name
            assert columns[7:] in ([STAGING_ROW], [("votes_from_pair", "BOOLEAN"), STAGING_ROW]), name
        for name in source_models("votes"):
            assert [tuple(row[:2]) for row in con.execute(f"DESCRIBE {name}").fetchall()] == VOTE_COLUMNS + [
                STAGING_ROW], name


@pytest.mark.parametrize("min_ratio, kept", [(None, [1.5, 3.0, None]), (2.0, [3.0])])
def test_shp_min_score_ratio_reaches_the_shp_model(home, min_ratio, kept):
    with connect(home) as con:
        for key, ratio in (("s1", 1.5), ("s2", 3.0), ("s3", None)):  # no ratio: a score was not positive
            con.execute("INSERT INTO staging.stg_shp__pairs VALUES (thumbs_row_key_of($key), 'b1', 'sha', 1, 'post',"
                        " [{'role': 'user', 'content': 'Which?'}], $key || 'a', $key || 'b', 3, 2, $ratio,"
                        " thumbs_prompt_key([{'role': 'user', 'content': 'Which?'}]))",
                        {"key": key, "ratio": ratio})
        binarize(con, BinarizeConfig(shp_min_score_ratio=min_ratio))
        margins = [row[0] for row in con.execute("SELECT margin FROM preference_pairs ORDER BY margin").fetchall()]
    assert margins == kept


def test_a_source_model_without_the_prompt_key_is_refused_by_name(home, tmp_path, monkeypatch):
    import shutil

    import tasks.binarize.marts as marts
    from tasks.common.settings import ThumbsError

    models = tmp_path / "warehouse"
    shutil.copytree(WAREHOUSE_SQL, models)
    hh_model = models / SOURCE_MODELS / "int_hh__pairs.sql"
    hh_model.write_text(hh_model.read_text().replace("prompt, prompt_key,", "prompt,"))
    monkeypatch.setattr(marts, "WAREHOUSE_SQL", models)
    monkeypatch.setattr("tasks.warehouse.connection.WAREHOUSE_SQL", models)
    with connect(home) as con, pytest.raises(ThumbsError, match=r"int_hh__pairs.sql: select prompt_key \("):
        binarize(con, BinarizeConfig())
