"""The RLCD synthetic source (its parser and guards: tests/sources/test_rlcd.py): templates, determinism, resume after a kill, the
flow into the marts, lineage and the nightly option. Generation uses tiny-llama made
to end its replies (fixtures_models.ending_llama_dir): gibberish, but real
generation, real files, a real warehouse and a real Prefect server."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures_models import ending_llama_dir, model_cache, tiny_llama_dir  # noqa: F401
from schemas.synthesize import RlcdConfig
from tasks.common.home import Home
from tasks.common.settings import PROJECT_ROOT, ThumbsError
from tasks.generate.rlcd import DEFAULT_TEMPLATES, load_templates, synthesize, with_suffix
from tasks.sources import rlcd
from tasks.warehouse.connection import connect

PROMPTS = [[{"role": "user", "content": f"Question {i}: how should I plan a {topic}?"}]
           for i, topic in enumerate(["garden", "trip", "party", "budget", "week", "move", "meal", "talk"])]


def test_shipped_templates_and_a_bad_file(tmp_path):
    for name in ("harmlessness", "helpfulness"):
        templates = load_templates(None, name)
        assert templates.path == DEFAULT_TEMPLATES.resolve() and len(templates.pairs) >= 3
    bad = tmp_path / "mine.yaml"
    bad.write_text("harmlessness:\n  - name: x\n    positive: be good\n")
    with pytest.raises(ThumbsError, match=r"mine.yaml: harmlessness pair 1: expected name, positive and negative"):
        load_templates(bad, "harmlessness")
    with pytest.raises(ThumbsError, match="no template set 'kindness'"):
        load_templates(None, "kindness")
    prompt = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert with_suffix(prompt, "(s)")[2]["content"] == "c\n\n(s)" and with_suffix(prompt, "(s)")[0] == prompt[0]


def config(model: Path, **changes) -> RlcdConfig:
    # top_p=1: the random model's nucleus is most of the vocabulary, a sort per step;
    # test_sampling covers top-p.
    return RlcdConfig(**{"model": str(model), "max_new_tokens": 8, "chunk_rows": 2, "device": "cpu",
                         "temperature": 1.0, "top_p": 1.0, **changes})


def test_same_seed_same_rows_whatever_the_batch_size(tmp_path, ending_llama_dir):
    one = synthesize(PROMPTS[:3], config(ending_llama_dir, batch_size=1), Home.of(tmp_path / "a"), prompt_source="t")
    six = synthesize(PROMPTS[:3], config(ending_llama_dir, batch_size=6), Home.of(tmp_path / "b"), prompt_source="t")
    assert one.file.read_bytes() == six.file.read_bytes()
    rows = [json.loads(line) for line in one.file.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == PROMPTS[:3]
    assert rows[0]["generator_sha256"] == one.origin["generator_sha256"] and rows[0]["seed"] == 0
    other = synthesize(PROMPTS[:3], config(ending_llama_dir, seed=1), Home.of(tmp_path / "c"), prompt_source="t")
    assert other.file.read_bytes() != one.file.read_bytes()


KILLABLE = """
import sys, json
from pathlib import Path
from schemas.synthesize import RlcdConfig
from tasks.common.home import Home
from tasks.generate.rlcd import synthesize
config = RlcdConfig.model_validate_json(sys.argv[1])
synthesize(json.loads(sys.argv[2]), config, Home.of(sys.argv[3]), prompt_source="t")
"""


def test_killed_synthesis_resumes_without_duplicates(tmp_path, ending_llama_dir):
    """SIGKILL once the first chunk is on disk (the second is being generated); the rerun
    keeps that chunk, generates the rest, and ends with the rows of an unkilled run."""
    settings = config(ending_llama_dir, chunk_rows=1, max_new_tokens=16)
    home = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", KILLABLE, settings.model_dump_json(), json.dumps(PROMPTS[:3]),
                              str(home)], cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    deadline = time.monotonic() + 240
    while not list(home.glob("synthetic/rlcd/work/*/chunk-00000.jsonl")):
        assert child.poll() is None and time.monotonic() < deadline, "the child ended before writing a chunk"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    [first] = home.glob("synthetic/rlcd/work/*/chunk-00000.jsonl")
    assert not list(home.glob("synthetic/rlcd/*.jsonl")), "killed before the final file"
    written = first.stat().st_mtime_ns

    resumed = synthesize(PROMPTS[:3], settings, Home.of(home), prompt_source="t")
    assert resumed.chunks_resumed >= 1 and resumed.chunks_done + resumed.chunks_resumed == 3
    assert first.stat().st_mtime_ns == written  # kept, not generated again
    whole = synthesize(PROMPTS[:3], settings, Home.of(tmp_path / "whole"), prompt_source="t")
    assert resumed.file.read_bytes() == whole.file.read_bytes()
    assert len(resumed.file.read_text().splitlines()) == 3


def rows(home: Path, sql: str) -> list[tuple]:
    with connect(home) as con:
        return con.execute(sql).fetchall()


def test_flow_lands_pairs_in_the_marts_with_lineage(prefect_harness, home, tmp_path, tiny_llama_dir,
                                                    ending_llama_dir):
    from flows.binarize import binarize_flow
    from flows.synthesize import synthesize_flow
    from schemas.config import BinarizeConfig

    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS)
                            + json.dumps({"text": "no prompt here"}) + "\n")
    settings = config(ending_llama_dir, max_new_tokens=12, max_reply_chars=60, chunk_rows=8, batch_size=16)
    result = synthesize_flow("rlcd", settings, prompts_file=str(prompts_file), home=str(home))
    assert len(result.prompts.prompts) == 8 and sum(result.prompts.skipped.values()) == 1
    [ingested] = result.ingested
    assert ingested.rows_read == 8 and ingested.rows_loaded + ingested.rows_quarantined == 8
    assert ingested.rows_loaded >= 1, "the ending model should leave some pairs"
    quarantined = rows(home, "SELECT reason FROM quarantine WHERE source = 'rlcd'")
    assert len(quarantined) == ingested.rows_quarantined
    assert all(r.split(" (")[0] in (rlcd.EMPTY, rlcd.TRUNCATED.split(" (")[0], rlcd.OVER_CAP, rlcd.IDENTICAL,
                                    rlcd.ECHO) for (r,) in quarantined)

    binarize_flow(BinarizeConfig(eval_fraction=0.0), home=str(home))
    assert rows(home, "SELECT count(*) FROM preference_pairs WHERE source = 'synthetic:rlcd'") == \
        [(ingested.rows_loaded,)]
    assert rows(home, "SELECT label, count(*) FROM feedback WHERE source = 'synthetic:rlcd' GROUP BY 1 ORDER BY 1") \
        == [(False, ingested.rows_loaded), (True, ingested.rows_loaded)]
    [(options,)] = rows(home, "SELECT options FROM ingest_runs WHERE source = 'rlcd'")
    origin = json.loads(options)
    assert origin["generator_sha256"] == result.synthesis.origin["generator_sha256"]
    assert origin["templates_sha256"] == load_templates(None, "harmlessness").sha256
    assert str(prompts_file.resolve()) in origin["prompt_set"]

    # A checkpoint trained on these pairs alone leads back to the generator, templates and prompts.
    from flows.train import train_flow
    from tasks.lineage.history import lineage_lines

    trained = train_flow("dpo", overrides=[f"model={tiny_llama_dir}", "max_length=96", "batch_size=2", "steps=1",
                                           "eval_batches=0", "device=cpu", "sources=[synthetic]"], home=str(home))
    lines = "\n".join(lineage_lines(trained["checkpoint_id"], home))
    assert "synthetic:rlcd" in lines
    for shown in (f"generator  {settings.model}", origin["generator_sha256"][:16], origin["templates_sha256"][:16],
                  origin["prompt_set_sha256"][:16], str(prompts_file.resolve())):
        assert shown in lines

    # Same prompts, same seed: the same file, already loaded; nothing changes.
    again = synthesize_flow("rlcd", settings, prompts_file=str(prompts_file), home=str(home))
    assert again.synthesis.file == result.synthesis.file and again.ingested[0].status == "skipped"


def test_nightly_option_synthesizes_new_prompts_per_run(prefect_harness, home, tmp_path, ending_llama_dir):
    from flows.synthesize import synthesize_watched
    from schemas.nightly import load_sources

    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS[:5]))
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(f"sources:\n  - source: rlcd\n    prompts: prompts.jsonl\n    per_run: 3\n"
                            f"    options: {{model: {ending_llama_dir}, max_new_tokens: 8, device: cpu}}\n")
    [watched] = load_sources(sources_file).sources
    assert watched.prompts == str(tmp_path / "prompts.jsonl")
    read = [sum(r.rows_read for r in synthesize_watched(watched, Home.of(home))) for _ in range(3)]
    assert read == [3, 2, 0]  # the next prompts each run, then nothing left
    assert rows(home, "SELECT count(*) FROM raw.records WHERE source = 'rlcd'") == [(5,)]

    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - source: rlcd\n    paths: [x.jsonl]\n")
    with pytest.raises(ThumbsError, match="takes `prompts` and `per_run`, not `paths`"):
        load_sources(bad)


def test_rescore_labels_by_a_reward_model(tmp_path, tiny_llama_dir, ending_llama_dir):
    """RLCD-Rescore with a tiny random LlamaForSequenceClassification saved to disk: both
    replies carry its scores, and the parser lets the scores pick the chosen reply."""
    from transformers import AutoConfig, LlamaForSequenceClassification

    from tasks.generate.rlcd import reward_scorer
    from tasks.train.models import load_tokenizer

    reward_dir = tmp_path / "reward-model"
    reward_config = AutoConfig.from_pretrained(tiny_llama_dir, num_labels=1)
    LlamaForSequenceClassification(reward_config).save_pretrained(reward_dir)
    load_tokenizer(tiny_llama_dir).save_pretrained(reward_dir)

    made = synthesize(PROMPTS[:2], config(ending_llama_dir, rescore=str(reward_dir)), Home.of(tmp_path / "h"),
                      prompt_source="t")
    records = [json.loads(line) for line in made.file.read_text().splitlines()]
    score = reward_scorer(str(reward_dir), "cpu")
    for r in records:
        assert [r["positive_score"], r["negative_score"]] == pytest.approx(
            score([r["prompt"]] * 2, [r["positive_reply"], r["negative_reply"]]), abs=1e-5)
        assert r["positive_score"] != r["negative_score"]
    with pytest.raises(ThumbsError, match="not a transformers model directory"):
        reward_scorer(str(tmp_path / "nothing"))
