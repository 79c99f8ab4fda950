"""The pieces train() is read from, each on its own: the batch plan a step takes
(Batches, TrainingData), the loss's hyperparameters (objective_for), the run's setup
(open_run), where metrics go (Reporter) and the state a resumed run continues from
(TrainingState). The whole loop is tests/test_trainer.py's."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from schemas.train import TrainConfig
from tasks.common.settings import ThumbsError
from tasks.train import checkpoints as ckpt
from tasks.train.batching import ChatEncoder
from tasks.train.data import Batches, MicroBatch, Rows, Sequences, TrainingData
from tasks.train.losses import LOSSES
from tasks.train.models import load_policy, load_tokenizer
from tasks.train.objective import Objective, Policy, objective_for
from tasks.train.snapshots import Snapshot
from tasks.train.state import Reporter, TrainingState
from tasks.train.trainer import open_run, train_step

CPU = torch.device("cpu")
PROMPTS = [[{"role": "user", "content": "Name a colour."}], [{"role": "user", "content": "What is 2 + 2?"}],
           [{"role": "user", "content": "Say hi."}]]
COMPLETIONS = ["Green.", "Five.", "Hi!"]
LABELS = [True, False, True]


def kto_rows() -> Rows:
    return Rows(["a", "b", "c"], PROMPTS, {"completion": COMPLETIONS}, LABELS)


@pytest.fixture(scope="module")
def encoder(tiny_llama_dir: Path) -> ChatEncoder:
    return ChatEncoder(load_tokenizer(tiny_llama_dir), 64)


def test_a_step_takes_its_grad_accum_micro_batches_in_plan_order(encoder):
    plan = [MicroBatch((0, 1)), MicroBatch((2,)), MicroBatch((1, 2)), MicroBatch((0,)), MicroBatch((2, 0))]
    batches = Batches(Sequences(kto_rows(), encoder), plan)
    assert batches.for_step(1, 2).micro_batches == plan[0:2]
    assert batches.for_step(2, 2).micro_batches == plan[2:4]
    assert batches.for_step(3, 2).micro_batches == plan[4:]
    assert batches.for_step(2, 1).micro_batches == [plan[1]]
    assert batches.for_step(2, 2).examples == 3 and batches.examples == 8


def test_the_planned_sequences_are_every_main_and_kl_sequence_by_cache_key(encoder):
    seqs = Sequences(kto_rows(), encoder)
    batches = Batches(seqs, [MicroBatch((0, 1), (1, 0)), MicroBatch((0, 2), (2, 0))])
    planned = batches.sequences()
    # Row "a"'s own completion appears in both micro-batches: scored once.
    assert sorted(planned) == ["a:a:completion", "a:b:completion", "a:c:completion", "b:a:completion",
                               "b:b:completion", "c:a:completion", "c:c:completion"]
    assert planned["b:a:completion"] == encoder.encode(PROMPTS[1], COMPLETIONS[0])


def test_the_labels_trained_are_those_of_the_rows_trained(encoder):
    empty = Batches(Sequences(kto_rows(), encoder), [])
    assert TrainingData(empty, empty, [2, 1]).trained_labels == [True, False]
    pairs = Rows(["a"], PROMPTS[:1], {"chosen": ["Green."], "rejected": ["No."]}, None)
    paired = Batches(Sequences(pairs, encoder), [])
    assert TrainingData(paired, paired, [0]).trained_labels is None


def test_kto_weights_come_from_the_trained_labels_unless_set():
    config = TrainConfig(algo="kto", beta=0.2)
    objective = objective_for(config, [True, False, False, False], {}, None)
    assert objective.hyperparameters == {"beta": 0.2, "lambda_d": 3.0, "lambda_u": 1.0}  # 1 up, 3 down
    assert objective.hyper["kl_reduce"] is not None  # passed to the loss, not recorded
    fixed = objective_for(config.model_copy(update={"lambda_d": 1.5}), [True, False, False, False], {}, None)
    assert fixed.hyperparameters["lambda_d"] == 1.5 and fixed.hyperparameters["lambda_u"] == 1.0


def test_dpo_label_smoothing_is_passed_to_the_loss_only_when_set():
    plain = objective_for(TrainConfig(algo="dpo"), None, {}, None)
    assert "label_smoothing" not in plain.spec.inputs and "label_smoothing" not in plain.hyper
    smoothed = objective_for(TrainConfig(algo="dpo", label_smoothing=0.1), None, {}, None)
    assert "label_smoothing" in smoothed.spec.inputs and smoothed.hyperparameters["label_smoothing"] == 0.1
    assert "label_smoothing" not in LOSSES["dpo"].inputs  # the registry's entry is left as it is


def test_reporter_rewrites_what_a_resumed_state_logged_then_appends_each_step(tmp_path: Path):
    metrics_file = tmp_path / "metrics.jsonl"
    metrics_file.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n')  # step 3 came after the saved state
    events: list[dict] = []
    log = Reporter(metrics_file, events.append, 5, [{"step": 1}, {"step": 2}])
    assert metrics_file.read_text() == '{"step": 1}\n{"step": 2}\n'
    log.step({"step": 3, "loss": 0.5})
    assert [json.loads(line) for line in metrics_file.read_text().splitlines()][-1] == {"step": 3, "loss": 0.5}
    assert events == [{"event": "step", "steps": 5, "step": 3, "loss": 0.5}]


def test_open_run_writes_run_json_and_refuses_another_runs_state(home: Path, tiny_llama_dir: Path):
    config = TrainConfig(algo="sft", model=str(tiny_llama_dir), device="cpu")
    snapshot = Snapshot(path=home / "snap", snapshot_id="snap-1", kind="feedback", files={}, row_counts={})
    run_dir = home / "runs" / "r1"
    run = open_run(config, snapshot, run_dir, run_id=None, home=home, resume=False, started=0.0)
    assert run.run_id == "r1" and run.reference_dir == run.model_dir == tiny_llama_dir
    assert json.loads((run_dir / ckpt.RUN_INFO).read_text())["fingerprint"] == run.fingerprint
    ckpt.save_state(run_dir, {"fingerprint": run.fingerprint, "step": 1})
    other = config.model_copy(update={"lr": 1.0})
    with pytest.raises(ThumbsError, match="fingerprints differ"):
        open_run(other, snapshot, run_dir, run_id=None, home=home, resume=True, started=0.0)


def test_a_resumed_state_continues_with_the_same_weights_moments_and_schedule(tmp_path: Path, tiny_llama_dir,
                                                                             encoder):
    config = TrainConfig(algo="sft", model=str(tiny_llama_dir), steps=4, warmup_steps=1, lr=1e-3, device="cpu")
    objective = objective_for(config, LABELS, {}, None)
    batch = Batches(Sequences(kto_rows(), encoder), [MicroBatch((0, 1, 2))])

    def fresh() -> TrainingState:
        torch.manual_seed(0)
        return TrainingState.start(Policy(load_policy(tiny_llama_dir, CPU).train(), CPU, True, 0), config)

    state = fresh()
    done = train_step(state, objective, batch, config)
    assert state.step == 1 and done.lr == pytest.approx(1e-3 / 2)  # warmup: (0 + 1) / (1 + 1)
    state.elapsed, state.history = 1.5, [{"step": 1, "loss": done.metrics["loss"]}]
    state.save(tmp_path, "fp")
    resumed = fresh()
    resumed.resume(tmp_path, "fp")
    assert (resumed.step, resumed.elapsed, resumed.history) == (1, 1.5, state.history)
    assert resumed.scheduler.get_last_lr() == state.scheduler.get_last_lr()
    train_step(state, objective, batch, config)
    train_step(resumed, objective, batch, config)  # the AdamW moments and lr shape this update
    for (name, weight), (_, again) in zip(state.policy.model.named_parameters(),
                                          resumed.policy.model.named_parameters()):
        torch.testing.assert_close(again, weight, msg=name)
