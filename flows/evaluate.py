"""The `evaluate` flow: resolve the checkpoint → eval pairs snapshot → evaluate → record.

Metrics and their names: tasks/evaluate/evaluation.py; what a run leaves on disk and in
the warehouse: tasks/evaluate/tasks.py. The warehouse is opened only briefly (to find or
freeze the eval snapshot, then to record), never while models run. Evaluation runs in
this process: it is short (about a minute for SmolLM2-135M on CPU), has no state worth
resuming, and holds one model at a time; a GPU work pool can still run the whole flow
on a GPU worker.
"""
from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.common.home import Home
from tasks.common.settings import release_failed_run
from tasks.evaluate import evaluation
from tasks.evaluate.tasks import eval_snapshot_task, evaluate_task, record_task, resolve_task
from tasks.lineage.lifecycle import run_lifecycle
from tasks.lineage.openlineage import file_dataset
from tasks.lineage.tracking import track_evaluation
from tasks.train.checkpoints import snapshot_dataset


@flow(name="evaluate", on_failure=[release_failed_run])
def evaluate_flow(checkpoint: str, home: str | None = None, eval_snapshot: str | None = None,
                  max_pairs: int = evaluation.DEFAULTS["max_pairs"],
                  generation_prompts: int = evaluation.DEFAULTS["generation_prompts"],
                  max_new_tokens: int = evaluation.DEFAULTS["max_new_tokens"],
                  kl_samples: int = evaluation.DEFAULTS["kl_samples"], seed: int = evaluation.DEFAULTS["seed"],
                  device: str = "auto", max_length: int | None = None,
                  judge: str | None = evaluation.DEFAULTS["judge"],
                  sources: list[str] | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint (id or path) on the eval split.

    Returns {checkpoint_id, metrics, plots, eval_snapshot_id, settings, path, run_id, per_pair};
    metrics (each mean with m_low, m_high, m_n) are named in tasks/evaluate/evaluation.py;
    per_pair holds each eval pair's rewards, what the gate compares pair by pair. To compare two checkpoints, evaluate the
    second with eval_snapshot=<the first's eval_snapshot_id>. max_length defaults to the
    checkpoint's training max_length (a base model's baseline: pass the checkpoint's).
    judge: a reward-model checkpoint (id or path) that judges the checkpoint's replies
    against its reference's: adds win_rate_vs_reference with its interval.
    sources: evaluate on the current pairs of these sources rather than those the
    checkpoint trained on (e.g. a model trained on synthetic:rlcd pairs, judged on hh).
    """
    home = Home.of(home)
    settings = {"max_pairs": max_pairs, "generation_prompts": generation_prompts, "max_new_tokens": max_new_tokens,
                "kl_samples": kl_samples, "seed": seed, "device": device, "max_length": max_length}
    config = {"checkpoint": checkpoint, "eval_snapshot": eval_snapshot, "judge": judge, "sources": sources,
              **settings}
    with run_lifecycle("evaluate", config, home, lineage_events=True) as run:
        checkpoint_dir, info = resolve_task(checkpoint, home)
        run.inputs.append(file_dataset(checkpoint_dir, "checkpoint", f"checkpoints/{info['checkpoint_id']}",
                                       algo=info["algo"]))
        snapshot = eval_snapshot_task(info, eval_snapshot, run.run_id, home, sources)
        run.inputs.append(snapshot_dataset(snapshot))
        if judge:
            judge_dir, judge_info = resolve_task(judge, home)
            settings["judge"] = judge_dir
            run.inputs.append(file_dataset(judge_dir, "checkpoint", f"checkpoints/{judge_info['checkpoint_id']}",
                                           algo=judge_info["algo"]))
        run.announce(settings)
        result = evaluate_task(checkpoint_dir, snapshot, settings, home)
        recorded = record_task(result, info, run.run_id, home)
        run.outputs.append(file_dataset(recorded["path"], "evaluation", f"evaluations/{result['checkpoint_id']}",
                                        evalSnapshotId=snapshot.snapshot_id, settings=result["settings"]))
        run.metrics = result["metrics"]
        if info.get("config", {}).get("tracking") == "mlflow":  # info: the manifest, or a base model's stand-in
            track_evaluation(result["checkpoint_id"], result["metrics"], [*recorded["plots"], recorded["path"]], home)
    return {"checkpoint_id": result["checkpoint_id"], "metrics": result["metrics"], "plots": recorded["plots"],
            "eval_snapshot_id": snapshot.snapshot_id, "settings": result["settings"], "path": recorded["path"],
            "run_id": run.run_id, "per_pair": result.get("per_pair")}
