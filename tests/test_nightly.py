"""The nightly DAG end to end on tiny-llama under a real Prefect server: first run
promotes, a run with nothing new skips training, a new log file in the watched
folder is the only thing ingested and trains a new checkpoint, a checkpoint that
fails the gate is kept but not promoted, and a run killed during training resumes."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from fixtures_models import model_cache  # noqa: F401  (session fixture: where presets are built)
from flows.nightly import nightly_flow
from schemas.nightly import GateConfig
from tasks.train.checkpoints import read_manifest
from tasks.lineage.history import lineage_lines
from tasks.warehouse.query import run_query
from tasks.common.settings import PROJECT_ROOT, ThumbsError

TRAINING = ["model=tiny-llama", "steps=4", "batch_size=4", "max_length=128", "eval_batches=1",
            "save_every=2", "warmup_steps=1", "device=cpu", "lr=1e-3"]


def query(home: Path, sql: str):
    return run_query(sql, home)[1]


@pytest.fixture()
def watched(tmp_path: Path) -> Path:
    """A sources.yaml watching a folder of HH rows and a folder of support-bot logs."""
    (tmp_path / "hh").mkdir()
    (tmp_path / "logs").mkdir()
    with gzip.open(PROJECT_ROOT / "demo_data/hh-rlhf/helpful-base.test.head200.jsonl.gz", "rt") as src:
        rows = [next(src) for _ in range(48)]
    (tmp_path / "hh" / "part-1.jsonl").write_text("".join(rows))
    lines = (PROJECT_ROOT / "examples/support-bot.jsonl").read_text().splitlines()
    (tmp_path / "logs" / "day-1.jsonl").write_text("\n".join(lines[:100]) + "\n")
    (tmp_path / "sources.yaml").write_text(
        "sources:\n"
        "  - {source: hh, paths: ['hh/*.jsonl']}\n"
        f"  - {{source: log, paths: ['logs/*.jsonl'], mapping: '{PROJECT_ROOT / 'examples/support-bot.mapping.yaml'}'}}\n"
        "binarize: {eval_fraction: 0.25}\n"
        "evaluation: {max_pairs: 8, generation_prompts: 2, max_new_tokens: 8, kl_samples: 2}\n")
    return tmp_path


def run(watched: Path, home: Path, **kwargs):
    return nightly_flow(str(watched / "sources.yaml"), algo="kto", overrides=TRAINING, home=str(home), **kwargs)


def test_nightly_promotes_then_skips_then_picks_up_a_new_file(watched, home, prefect_harness, model_cache):
    first = run(watched, home)
    assert first.trained and first.promoted and first.failed_step is None
    assert len(first.files_loaded) == 2
    champion = home / "checkpoints" / "champion"
    assert champion.resolve() == Path(first.checkpoint_path).resolve()
    AutoModelForCausalLM.from_pretrained(champion)  # the alias is what serving loads
    assert {"eval_reward_accuracy", "kl_to_reference"} <= set(first.metrics)
    lineage = "\n".join(lineage_lines("champion", home))  # checkpoint -> snapshot -> ingest runs -> files
    base_sha = read_manifest(first.checkpoint_path)["base_model"]["weights_sha256"]
    assert lineage.startswith(f"checkpoint {first.checkpoint_id}") and f"weights sha256 {base_sha[:16]}" in lineage
    assert f"snapshot {first.snapshot_id}" in lineage
    for loaded in first.files_loaded:
        assert f"{loaded}  sha256 {hashlib.sha256(Path(loaded).read_bytes()).hexdigest()[:16]}" in lineage

    second = run(watched, home)
    assert not second.trained and second.files_loaded == [] and second.files_skipped == 2
    assert "nothing new to learn" in second.skipped_training
    assert second.champion_before == first.checkpoint_id

    new_log = watched / "logs" / "day-2.jsonl"
    lines = (PROJECT_ROOT / "examples/support-bot.jsonl").read_text().splitlines()
    new_log.write_text("\n".join(lines[100:]) + "\n")
    third = run(watched, home)
    assert third.files_loaded == [str(new_log)]
    assert third.trained and third.checkpoint_id not in (None, first.checkpoint_id)
    assert third.training_reason.startswith(f"snapshot {first.snapshot_id} -> {third.snapshot_id}")
    assert third.snapshot_id != first.snapshot_id
    decisions = query(home, "select checkpoint_id, promoted from promotions order by decided_at")
    assert [d[0] for d in decisions] == [first.checkpoint_id, third.checkpoint_id]
    # The second decision compared the two on the same eval pairs: verdict, interval and n recorded.
    gates = query(home, "select verdict, difference_low, difference, difference_high, pairs from promotions "
                        "order by decided_at")
    assert gates[0][0] == "first" and gates[0][1:] == (None, None, None, None)
    assert gates[1][0] in ("better", "not_worse", "worse", "unmeasurable")
    assert gates[1][1] <= gates[1][2] <= gates[1][3] and gates[1][4] == third.metrics["eval_pairs"]
    assert third.decision_headline.split(":")[0] in ("PROMOTED", "NOT promoted")
    assert f"paired bootstrap on {gates[1][4]} pairs" in third.decision
    runs = query(home, "select status, count(*) from lineage_runs where flow = 'nightly' group by all")
    assert dict(runs) == {"completed": 3}


def test_checkpoint_failing_the_gate_is_kept_not_promoted(watched, home, prefect_harness, model_cache):
    report = run(watched, home, gate_config=GateConfig(max_kl=1e-12))
    assert report.trained and not report.promoted
    assert "exceeds the bound" in report.decision
    assert Path(report.checkpoint_path, "manifest.json").exists()  # kept on disk
    assert query(home, "select promoted from checkpoints")[0][0] is False
    assert query(home, "select promoted, reason from promotions")[0][0] is False
    assert not (home / "checkpoints" / "champion").exists()


def test_failure_names_the_step_and_leaves_champion_alone(watched, home, prefect_harness, model_cache):
    # A log file without the mapped columns fails whole, so the ingest step fails.
    (watched / "logs" / "day-0.jsonl").write_text(json.dumps({"text": "no mapped columns here"}) + "\n")
    with pytest.raises(ThumbsError, match=r"failed at step 'ingest': .*day-0\.jsonl: row 1: missing column 'id'"):
        run(watched, home)
    assert query(home, "select status from lineage_runs where flow = 'nightly'") == [("failed",)]
    assert not (home / "checkpoints" / "champion").exists()


def test_watched_pattern_matching_nothing_is_a_warning(watched, home, prefect_harness, model_cache, capsys):
    """A folder waiting for its first export is the normal state, not a failure: the
    other sources still run and the summary says which pattern found nothing."""
    from flows.cli import _print_nightly
    from tasks.lineage.nightly_report import nightly_markdown

    sources = watched / "sources.yaml"
    sources.write_text(sources.read_text().replace("logs/*.jsonl", "nowhere/*.jsonl"))
    report = run(watched, home)
    assert report.failed_step is None and report.trained
    assert report.unmatched_patterns == [str(watched / "nowhere/*.jsonl")]
    assert report.files_loaded == [str(watched / "hh" / "part-1.jsonl")]
    assert query(home, "select distinct source from ingest_runs") == [("hh",)]
    assert f"warning: `{watched / 'nowhere/*.jsonl'}` matches no file yet" in nightly_markdown(report)
    _print_nightly(report, str(home))
    assert f"warning: {watched / 'nowhere/*.jsonl'} matches no file yet" in capsys.readouterr().out


def test_second_nightly_at_once_refuses(watched, home):
    from tasks.common.locks import exclusive_run

    with exclusive_run("nightly", home):
        with pytest.raises(ThumbsError, match="another nightly run is in progress"):
            run(watched, home)


def test_killed_during_training_resumes(watched, home, prefect_harness, model_cache):
    """SIGKILL the whole process group once a resumable state exists; the next run resumes."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "THUMBS_HOME": str(home)}
    slow = [o if not o.startswith("steps=") else "steps=24" for o in TRAINING]
    argv = [sys.executable, "-m", "flows", "nightly", "--sources", str(watched / "sources.yaml"), *slow]
    child = subprocess.Popen(argv, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while not list((home / "runs").glob("*/state.pt")):
            assert child.poll() is None, "the run ended before a resumable state was written"
            assert time.monotonic() < deadline, "no resumable state within 240 s"
            time.sleep(0.5)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert not [p for p in (home / "checkpoints").glob("*") if not p.name.startswith(".")], "no checkpoint yet"

    report = nightly_flow(str(watched / "sources.yaml"), algo="kto", overrides=slow, home=str(home))
    manifest = read_manifest(report.checkpoint_path)
    assert manifest["training"]["resumed_at_step"] >= 2
    statuses = dict(query(home, "select status, count(*) from lineage_runs where flow = 'nightly' group by all"))
    assert statuses == {"interrupted": 1, "completed": 1}
    shutil.rmtree(home / "runs", ignore_errors=True)
