"""The RLCD synthetic source: guards, templates, determinism, resume after a kill, the
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
from tasks.sources.base import RowRejected, Staged
from tasks.warehouse.connection import connect

PROMPTS = [[{"role": "user", "content": f"Question {i}: how should I plan a {topic}?"}]
           for i, topic in enumerate(["garden", "trip", "party", "budget", "week", "move", "meal", "talk"])]


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


def test_flow_lands_pairs_in_the_marts_with_lineage(prefect_harness, home, tmp_path, ending_llama_dir):
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

    from tasks.lineage.history import generation_lines

    lines = "\n".join(generation_lines(origin))
    assert origin["generator_sha256"][:16] in lines and origin["templates_sha256"][:16] in lines

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
