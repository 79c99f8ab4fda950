"""`thumbs report` on a warehouse a real nightly run built (tiny-llama, HH rows, a support
log with a row whose rating and file name are HTML), opened in headless Chromium:
loads without console errors, every chart draws its points, every number on the page
equals the warehouse's, text from data stays text. The model card of the checkpoint
parses with huggingface_hub's ModelCard.

Screenshot: always in the test's tmp dir; also $THUMBS_ARTIFACTS/report.png when that
is set, else ./artifacts/report.png when $CI is set (CI keeps that folder).
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from huggingface_hub import ModelCard

from fixtures_models import model_cache  # noqa: F401  (session fixture: where presets are built)
from tasks.common.home import Home
from tasks.common.settings import PROJECT_ROOT
from tasks.evaluate.plots import read_metrics
from tasks.lineage.nightly_report import nightly_markdown
from tasks.report.model_card import update_model_card
from tasks.report.page import render_report
from tasks.warehouse.query import run_query

HOSTILE = "<img src=x onerror=alert(1)>"
TRAINING = ["model=tiny-llama", "steps=4", "batch_size=4", "max_length=128", "eval_batches=1",
            "warmup_steps=1", "device=cpu", "lr=1e-3"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness, model_cache):  # noqa: F811
    """One nightly run: ingest, binarize, train, evaluate, promote, and the report it writes."""
    from flows.nightly import nightly_flow

    watched = tmp_path_factory.mktemp("watched")
    home = tmp_path_factory.mktemp("report-home")
    with gzip.open(PROJECT_ROOT / "demo_data/hh-rlhf/helpful-base.test.head200.jsonl.gz", "rt") as src:
        (watched / "hh.jsonl").write_text("".join(next(src) for _ in range(40)))
    lines = (PROJECT_ROOT / "examples/support-bot.jsonl").read_text().splitlines()[:60]
    hostile = json.loads(lines[0]) | {"id": "evt_hostile", "feedback": HOSTILE}
    (watched / f"day-{HOSTILE}.jsonl").write_text("\n".join([*lines, json.dumps(hostile)]) + "\n")
    mapping = PROJECT_ROOT / "examples/support-bot.mapping.yaml"
    (watched / "sources.yaml").write_text(
        "sources:\n  - {source: hh, paths: ['hh.jsonl']}\n"
        f"  - {{source: log, paths: ['day-*.jsonl'], mapping: '{mapping}'}}\n"
        "binarize: {eval_fraction: 0.25}\n"
        "evaluation: {max_pairs: 8, generation_prompts: 2, max_new_tokens: 8, kl_samples: 2}\n")
    report = nightly_flow(str(watched / "sources.yaml"), algo="kto", overrides=TRAINING, home=str(home))
    assert report.promoted and report.report_path
    return home, report


class FetchingTags(HTMLParser):
    """Tags that would load something: scripts, stylesheets, images, frames, a src, a link off the page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        links = [value for name, value in attrs if name == "href" and not (value or "").startswith("#")]
        if tag in ("script", "link", "img", "iframe", "object", "embed") or "src" in dict(attrs) or links:
            self.found.append(tag)


def query(home: Path, sql: str) -> list[tuple]:
    return run_query(sql, home)[1]


def browser_path() -> str:
    found = os.environ.get("THUMBS_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium in CI: .ci/run installs Debian's chromium with apt-get")
        pytest.skip("no chromium found (apt-get install chromium, or set THUMBS_CHROMIUM to a Chrome binary)")
    return found


def test_nightly_writes_a_self_contained_report_and_links_it(built):
    home, report = built
    page = Path(report.report_path)
    assert page == home / "report" / "report.html"
    html = page.read_text()
    fetching = FetchingTags()
    fetching.feed(html)
    assert fetching.found == [] and "url(" not in html  # nothing to fetch: no script, stylesheet, image or font
    assert f"file://{page}" in nightly_markdown(report)


def test_report_in_chromium_matches_the_warehouse(built, tmp_path):
    from playwright.sync_api import sync_playwright

    home, report = built
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path())
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
            page.goto(Path(report.report_path).as_uri())
            charts = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('svg.chart')].map(
                s => [s.dataset.chart, {w: s.getBoundingClientRect().width, h: s.getBoundingClientRect().height,
                                       points: s.querySelectorAll('.point, .bar').length}]))""")
            stats = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-stat]')].map(
                e => [e.dataset.stat, e.dataset.value]))""")
            text, images = page.inner_text("body"), page.locator("img").count()
            page.screenshot(path=tmp_path / "report.png", full_page=True)
        finally:
            browser.close()
    keep = os.environ.get("THUMBS_ARTIFACTS") or (PROJECT_ROOT / "artifacts" if os.environ.get("CI") else None)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "report.png", Path(keep) / "report.png")

    assert errors == []
    assert HOSTILE in text and images == 0  # the hostile rating and file name show as text, never as an <img>
    checkpoint = report.checkpoint_id
    steps = read_metrics(Path(json.loads((Path(report.checkpoint_path) / "manifest.json").read_text())
                              ["training"]["run_dir"]) / "metrics.jsonl")
    expected_points = {
        "feedback_volume": query(home, "select count(*) from (select distinct source, day from feedback_daily)")[0][0],
        "label_balance": query(home, "select count(*) from (select distinct source, day from feedback_daily)")[0][0],
        "quarantine_reasons": query(home, "select count(*) from quarantine_reasons")[0][0],
        "pairs_per_prompt": query(home, "select count(*) from pairs_per_prompt")[0][0],
        f"loss|{checkpoint}": sum("loss" in s for s in steps) + sum("eval_loss" in s for s in steps),
    }
    assert f"rewards|{checkpoint}" in charts
    for name, chart in charts.items():
        assert chart["w"] > 0 and chart["h"] > 0 and chart["points"] > 0, name
    assert {name: charts[name]["points"] for name in expected_points} == expected_points

    def number(key: str) -> float:
        return float(stats[key])

    totals = query(home, "select count(*), count(*) filter (where label) from feedback")[0]
    assert (number("totals|feedback"), number("totals|thumbs_up")) == totals
    assert number("totals|quarantined") == query(home, "select count(*) from quarantine")[0][0] >= 1
    for source, split, up, down, share in query(home, "select * from label_balance"):
        columns = ("thumbs_up", "thumbs_down", "up_share")
        assert [number(f"label_balance|{source}|{split}|{column}") for column in columns] == [up, down, share]
    for source, reason, rows, _, _ in query(home, "select * from quarantine_reasons"):
        assert number(f"quarantine_reasons|{source}|{reason}|rows") == rows
    for source, pairs, prompts in query(home, "select * from pairs_per_prompt"):
        assert number(f"pairs_per_prompt|{source}|{pairs}|prompts") == prompts
    for source, *counts in query(home, "select source, rows_read, rows_loaded, rows_duplicate, rows_quarantined "
                                       "from ingest_summary"):
        assert [number(f"ingest_summary|{source}|{c}") for c in
                ("rows_read", "rows_loaded", "rows_duplicate", "rows_quarantined")] == counts
    accuracy, kl = query(home, "select metrics->'eval'->>'eval_reward_accuracy', metrics->'eval'->>'kl_to_reference' "
                               "from checkpoints")[0]
    assert number(f"checkpoints|{checkpoint}|eval_reward_accuracy") == float(accuracy)
    assert number(f"checkpoints|{checkpoint}|kl_to_reference") == float(kl)


def test_intervals_and_comparisons_render_when_present(built, tmp_path):
    """Evaluations with m_low/m_high/m_n and the rows `thumbs compare` writes to `experiments`
    show up; with no comparison yet the report does not mention comparisons."""
    home, report = built
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(home / "published" / "warehouse.duckdb", copy)
    con = duckdb.connect(str(copy))
    try:
        assert 'id="experiments"' not in render_report(con, Home.of(home))
        con.execute("""UPDATE checkpoints SET metrics = json_merge_patch(metrics,
                       '{"eval": {"eval_reward_accuracy_low": 0.25, "eval_reward_accuracy_high": 0.75,
                                  "eval_reward_accuracy_n": 8}}')""")
        con.execute("""INSERT INTO experiments VALUES ('grid-1', 'dpo-beta0.1', 'dpo', 'dpo', 0.1, 'ck-1', '/ck-1',
                       's1', 's2', NULL, '{}', '{"eval_reward_accuracy": 0.5, "eval_reward_accuracy_low": 0.3,
                       "eval_reward_accuracy_high": 0.7, "eval_reward_accuracy_n": 24}', now())""")
        html = render_report(con, Home.of(home))
    finally:
        con.close()
    assert f'data-stat="checkpoints|{report.checkpoint_id}|eval_reward_accuracy_low" data-value="0.25"' in html
    assert f'data-stat="checkpoints|{report.checkpoint_id}|eval_reward_accuracy_n" data-value="8"' in html
    assert 'id="experiments"' in html
    cell = "experiments|grid-1|dpo-beta0.1"
    assert f'data-stat="{cell}|beta" data-value="0.1"' in html
    assert f'data-stat="{cell}|eval_reward_accuracy" data-value="0.5"' in html
    assert f'data-stat="{cell}|eval_reward_accuracy_high" data-value="0.7"' in html
    assert f'data-stat="{cell}|eval_reward_accuracy_n" data-value="24"' in html


def test_report_before_anything_is_published_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "flows", "--home", str(tmp_path), "report"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert done.returncode == 1
    assert done.stderr.startswith("thumbs: error: ") and "nothing published yet" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_checkpoint_model_card_parses_and_follows_evaluation_and_gate(built, tmp_path):
    home, report = built
    card = ModelCard.load(Path(report.checkpoint_path) / "README.md")
    data = card.data.to_dict()
    assert "base_model" not in data  # tiny-llama: random weights, on no hub
    assert data["datasets"] == ["Anthropic/hh-rlhf"] and data["license"] == "apache-2.0"
    assert {"thumbs", "kto"} <= set(data["tags"])
    recorded = json.loads(query(home, "select metrics->'eval' from checkpoints")[0][0])
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {k: recorded[k] for k in ("eval_reward_accuracy", "eval_reward_margin", "kl_to_reference",
                                                "mean_generated_length")}
    assert "**promoted to champion**" in card.content and "no champion yet" in card.content
    sources = {f["source"] for f in data["thumbs"]["source_files"]}
    assert sources == {"hh", "log:support-bot"}
    assert "| log:support-bot | your own feedback log" in card.content and "MIT, © 2022 Anthropic" in card.content
    assert not list(Path(report.checkpoint_path).glob(".README.md.*"))  # rewritten by rename, nothing left beside

    copy = tmp_path / "checkpoint"  # an evaluation with an interval (the evaluate stage's m_low, m_high, m_n)
    copy.mkdir()
    for name in ("manifest.json", "README.md"):
        shutil.copy(Path(report.checkpoint_path) / name, copy / name)
    update_model_card(copy, home, evaluation={**recorded, "eval_reward_accuracy_low": 0.25,
                                              "eval_reward_accuracy_high": 0.75, "eval_reward_accuracy_n": 8})
    card = ModelCard.load(copy / "README.md")
    accuracy = next(r for r in card.data.eval_results if r.metric_type == "eval_reward_accuracy")
    assert accuracy.metric_args == {"low": 0.25, "high": 0.75, "n": 8}
    assert f"| eval_reward_accuracy | {recorded['eval_reward_accuracy']:.4g} [0.25, 0.75] n=8 |" in card.content
    assert "**promoted to champion**" in card.content  # the decision merged before is kept

    model_dir = tmp_path / "plain-model"  # not a thumbs checkpoint: never written
    model_dir.mkdir()
    assert update_model_card(model_dir, home, evaluation={"eval_reward_accuracy": 1.0}) is None
    assert list(model_dir.iterdir()) == []
