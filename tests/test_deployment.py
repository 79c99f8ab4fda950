"""prefect.yaml works: `prefect deploy` registers the train deployment with a real
Prefect server, and a process worker started elsewhere picks the run up, runs
the train flow from this checkout and completes it, writing to the THUMBS_HOME of
its own environment (as prefect.yaml says workers do).

The server is the session's (tests/conftest.py, a real uvicorn process); the
deploy and the worker are the `prefect` CLI in subprocesses, as an operator runs them.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from transformers import AutoModelForCausalLM

from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from reliability.harness import warehouse_rows
from tasks.train.checkpoints import read_manifest
from tasks.common.settings import PROJECT_ROOT
from test_trainer import ingest_hh_slice

PREFECT = str(Path(sys.executable).with_name("prefect"))
DEPLOYMENT = "train-gpu"  # the deployment the nightly flow hands training to (train/train-gpu)


def prefect_env(api_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "THUMBS_HOME"}
    return {**env, "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING", "PYTHONDONTWRITEBYTECODE": "1", **extra}


def prefect_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run([PREFECT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    return done


def test_a_process_worker_runs_the_deployed_train_flow(prefect_harness, home, tiny_llama_dir, tmp_path):
    import prefect.settings
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.workers.process import ProcessWorker

    api_url = prefect.settings.PREFECT_API_URL.value()
    pool = f"thumbs-test-{uuid.uuid4().hex[:8]}"
    ingest_hh_slice(home, rows=24)
    env = prefect_env(api_url)

    # What `prefect work-pool create <pool> --type process` does.
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process",
                                               base_job_template=ProcessWorker.get_default_base_job_template()))
    prefect_cli("--no-prompt", "deploy", "--name", DEPLOYMENT, "--pool", pool, env=env, cwd=PROJECT_ROOT,
                timeout=180)

    parameters = {"algo": "dpo", "resume": False,
                  "overrides": [f"model={tiny_llama_dir}", "max_length=64", "batch_size=2", "steps=2",
                                "eval_batches=1", "device=cpu"]}
    flow_run = run_deployment(f"train/{DEPLOYMENT}", parameters=parameters, timeout=0)
    # Started outside the checkout: the deployment, not the worker's directory, says where the code is.
    worker = prefect_cli("worker", "start", "--pool", pool, "--run-once", "--limit", "1", "--no-prompt",
                         env=prefect_env(api_url, THUMBS_HOME=str(home)), cwd=tmp_path, timeout=300)

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state is not None and state.is_completed(), (state, worker.stdout[-3000:], worker.stderr[-3000:])
    checkpoints = warehouse_rows(home, "SELECT checkpoint_id, run_id, path FROM checkpoints")
    runs = warehouse_rows(home, "SELECT run_id, status FROM lineage_runs WHERE flow = 'train'")
    ((checkpoint_id, run_id, path),) = checkpoints
    assert runs == [(str(flow_run.id), "completed")] and run_id == str(flow_run.id)
    assert Path(path).parent == home / "checkpoints"
    assert read_manifest(path)["checkpoint_id"] == checkpoint_id
    AutoModelForCausalLM.from_pretrained(path)
