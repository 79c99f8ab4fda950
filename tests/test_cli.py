"""The command line end to end under a real Prefect server: ingest every source,
binarize, query; counts reconcile with the files; re-running changes nothing;
analysts' queries cannot write. HH and OASST rows are the shipped ones; SHP rows
cannot be shipped, so the SHP file is three pairs in SHP's format, in our own words
(the SHP parser meets real rows in tests/sources/test_shp.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import format_metric, main
from tasks.warehouse.query import run_query
from tasks.common.settings import PROJECT_ROOT
from samples import DEMO_DATA, HH_QUIRK_LINES, OASST_QUIRKS, hh_quirks

EXAMPLES = PROJECT_ROOT / "examples"
# One post, three comments: (text, net votes, written at). As SHP selects its pairs,
# the preferred comment scores higher and was written later.
SHP_COMMENTS = {"c1": ("Boil the water first, then add the pasta.", 12, 400),
                "c2": ("Add the pasta to cold water and heat both.", 5, 160), "c3": ("Skip the salt.", 2, 100)}


def shp_pair(a: str, b: str) -> dict:
    (text_a, score_a, created_a), (text_b, score_b, created_b) = SHP_COMMENTS[a], SHP_COMMENTS[b]
    return {"post_id": "p1", "domain": "askcooking_test", "upvote_ratio": 0.97,
            "history": "How do I cook dry pasta?", "c_root_id_A": a, "c_root_id_B": b,
            "created_at_utc_A": created_a, "created_at_utc_B": created_b, "score_A": score_a, "score_B": score_b,
            "human_ref_A": text_a, "human_ref_B": text_b, "labels": int(score_a > score_b),
            "seconds_difference": float(abs(created_a - created_b)),
            "score_ratio": round(max(score_a, score_b) / min(score_a, score_b), 10)}


def write_shp_file(folder: Path) -> Path:
    path = folder / "askcooking_test.jsonl"
    pairs = [shp_pair("c1", "c2"), shp_pair("c3", "c1"), shp_pair("c2", "c3")]  # A, B, A preferred
    path.write_text("".join(json.dumps(pair) + "\n" for pair in pairs), encoding="utf-8")
    return path


def query(home, sql):
    return run_query(sql, home)[1]


def thumbs(home, *argv) -> int:
    return main(["--home", str(home), *argv])


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, prefect_harness):
    """One warehouse with every source ingested and binarized through the CLI."""
    home = tmp_path_factory.mktemp("cli-home")
    hh = [*sorted(str(p) for p in (DEMO_DATA / "hh-rlhf").glob("*.jsonl.gz")),
          *(str(hh_quirks(name)) for name in HH_QUIRK_LINES)]
    oasst = [*sorted(str(p) for p in (DEMO_DATA / "oasst").glob("*.jsonl")), str(OASST_QUIRKS)]
    shp = [str(write_shp_file(tmp_path_factory.mktemp("shp")))]
    commands = [
        ["ingest", "hh", *hh],
        ["ingest", "oasst", *oasst],
        ["ingest", "shp", *shp],
        ["ingest", "log", str(EXAMPLES / "support-bot.jsonl"), "--mapping", str(EXAMPLES / "support-bot.mapping.yaml")],
        ["ingest", "log", str(EXAMPLES / "ab-test.csv"), "--mapping", str(EXAMPLES / "ab-test.mapping.yaml")],
        ["binarize"],
    ]
    for argv in commands:
        assert thumbs(home, *argv) == 0, argv
    return home, commands


def table_counts(home) -> dict[str, int]:
    names = ["feedback", "preference_pairs", "quarantine"]
    counts = {n: query(home, f"select count(*) from {n}")[0][0] for n in names}
    counts["by_label"] = query(home, "select source, label, count(*) from feedback group by all order by all")
    return counts


def test_counts_reconcile_with_the_files(loaded):
    home, _ = loaded
    runs = query(home, "select source, sum(rows_read), sum(rows_loaded), sum(rows_duplicate), "
                       "sum(rows_quarantined) from ingest_runs group by all order by all")
    got = {r[0]: r[1:] for r in runs}
    # HH: 2 x 200 demo rows (1 empty reply each) + the 70 quirk rows (34 chosen == rejected,
    # 8 empty replies, of which 2 are demo rows again); 2 more quirk rows are demo rows: duplicates.
    assert got["hh"] == (470, 424, 2, 44)
    # OASST: 327 tree + 95 flat messages; the 3 shared trees' 37 messages load once.
    assert got["oasst"] == (422, 385, 37, 0)
    assert got["shp"] == (3, 3, 0, 0)
    # Our example logs: see examples/README.md.
    assert got["log:support-bot"] == (200, 194, 1, 5)
    assert got["log:ab-test"] == (60, 55, 0, 5)
    for read, loaded_rows, duplicate, quarantined in got.values():
        assert read == loaded_rows + duplicate + quarantined
    assert query(home, "select count(*) from quarantine")[0][0] == sum(r[3] for r in got.values())
    # HH thumbs: every loaded pair gives one up and one down.
    by_label = dict(((s, lb), n) for s, lb, n in query(
        home, "select source, label, count(*) from feedback group by all"))
    assert by_label[("hh", True)] == by_label[("hh", False)] == 424


def test_splits_never_share_a_prompt(loaded):
    home, _ = loaded
    shared = query(home, "select count(*) from (select to_json(prompt) from feedback "
                         "group by 1 having count(distinct split) > 1)")[0][0]
    assert shared == 0
    fraction = query(home, "select avg((split = 'eval')::int) from preference_pairs")[0][0]
    assert 0.07 < fraction < 0.13  # eval_fraction defaults to 0.1


def test_rerunning_every_ingest_changes_no_count(loaded):
    home, commands = loaded
    before = table_counts(home)
    for argv in commands:
        assert thumbs(home, *argv) == 0
    assert table_counts(home) == before
    statuses = query(home, "select status, count(*) from ingest_runs group by all order by all")
    assert dict(statuses)["skipped"] == dict(statuses)["loaded"]


def test_query_formats(loaded, capsys):
    home, _ = loaded
    assert thumbs(home, "query", "select source, count(*) as n from preference_pairs group by all order by all",
                  "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["source"] for r in rows} == {"hh", "oasst", "shp", "log:ab-test"}
    assert thumbs(home, "query", "select 1 as a, 'x,y' as b", "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines() == ["a,b", '1,"x,y"']


@pytest.mark.parametrize("statement", [
    "insert into feedback select * from feedback",
    "update feedback set label = not label",
    "delete from quarantine",
    "create table stolen as select 1",
    "drop table feedback",
    "attach '/tmp/other.duckdb' as other",
    "copy feedback to '/tmp/feedback.csv'",
    "install httpfs",
    "set enable_external_access = true",
    "pragma enable_profiling",
    "select * from read_csv('/etc/passwd')",
])
def test_query_cannot_write(loaded, statement, capsys):
    home, _ = loaded
    before = query(home, "select count(*) from feedback")
    assert thumbs(home, "query", statement) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("thumbs: error: query refused:") and "\n" not in err
    assert query(home, "select count(*) from feedback") == before


def test_bad_mapping_is_one_line_error(tmp_path, home, prefect_harness, capsys):
    mapping = tmp_path / "map.yaml"
    mapping.write_text((EXAMPLES / "support-bot.mapping.yaml").read_text().replace("rating: feedback", "rating: stars_given"))
    code = thumbs(home, "ingest", "log", str(EXAMPLES / "support-bot.jsonl"), "--mapping", str(mapping))
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert "support-bot.jsonl" in err and "row 1" in err and "stars_given" in err


def test_missing_file_is_one_line_error(home, prefect_harness, capsys):
    assert thumbs(home, "ingest", "hh", str(home / "missing.jsonl.gz")) == 1
    assert capsys.readouterr().err.strip() == f"thumbs: error: {home / 'missing.jsonl.gz'}: no such file"


def test_failing_command_prints_only_its_error(tmp_path, home, prefect_harness):
    """The whole stderr of a failing `thumbs` process is its one error line: no
    "nanobind: leaked instance" lines after it from DuckDB objects alive at exit."""
    from prefect.settings import PREFECT_API_URL

    missing = tmp_path / "nonexistent.jsonl"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "THUMBS_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "flows", "ingest", "hh", str(missing)], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stderr.splitlines()) == (1, [f"thumbs: error: {missing}: no such file"])


def test_query_before_anything_is_published(home, capsys):
    assert thumbs(home, "query", "select 1") == 1
    assert "nothing published yet" in capsys.readouterr().err


@pytest.mark.parametrize("value, shown", [
    (32, "32"), (32.0, "32"), (0.0, "0"), (0.8125, "0.8125"), (-1.23456, "-1.2346"), (float("nan"), "nan"),
    ("kto", "kto"),
])
def test_metrics_print_counts_as_integers(value, shown):
    assert format_metric(value) == shown


def test_tables_print_user_data_literally(capsys):
    """Quarantine reasons and file names are user data: rich must not read "[name=x]"
    or "[bold]" in them as markup (a Langfuse path's selector vanished from the table)."""
    from flows.cli import _print_table

    _print_table("reasons", ["reason", "rows"], [["path '$.scores[name=user-feedback].value' finds nothing", 4],
                                                 ["[bold]not bold[/bold]", 1]])
    out = capsys.readouterr().out
    assert "$.scores[name=user-feedback].value" in out and "[bold]not bold[/bold]" in out
