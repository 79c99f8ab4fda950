"""Training with several processes (torchrun, gloo on CPU) gives the single-process result:
the same loss, gradients and updated weights on the same global batch, for KTO and DPO,
packed and padded, when one rank's slice is all desirable, and when the last micro-batch
is uneven or leaves a rank without rows. A killed rank ends the run with one error line
in bounded time, and --resume continues it. Every launch has a timeout: a hang fails."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from distributed_steps import step_result
from fixtures_models import model_cache, tiny_llama_dir  # noqa: F401
from tasks.common.settings import PROJECT_ROOT
from tasks.train.data import read_rows
from tasks.train.distributed import launch_command
from tasks.train.trainer import PROTOCOL
from test_trainer import snapshots, tiny_config  # noqa: F401  (fixtures and helpers)

TOLERANCE = 1e-5
LAUNCH_TIMEOUT = 120  # seconds; a hang fails the test instead of the suite


def torchrun(nproc: int, *args: str, timeout: float = LAUNCH_TIMEOUT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(Path(__file__).parent)]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
                           "--standalone", *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def cases(snapshots, tiny_llama_dir, tmp_path_factory) -> list[dict]:  # noqa: F811
    """Global micro-batches, each case one optimizer step (a micro-batch per accumulation)."""
    home = tmp_path_factory.mktemp("distributed-home")
    labels = read_rows(snapshots["feedback"], "train", "kto").labels
    up = [i for i, label in enumerate(labels) if label]
    down = [i for i, label in enumerate(labels) if not label]
    # Rank 0 of 2 gets rows 0-1 of the first micro-batch: both desirable.
    kto_even = [[up[0], up[1], down[0], up[2]], [down[1], up[3], down[2], down[3]]]
    kto_uneven = [[up[0], up[1], down[0], up[2]], [down[1], up[3], down[2]]]  # 3 rows: 1 and 2 per rank
    dpo_uneven = [[0, 1, 2, 3], [4, 5, 6]]
    base = {"model": str(tiny_llama_dir), "home": str(home)}
    return [
        {**base, "name": f"{algo}-{'packed' if packing else 'padded'}", "algo": algo, "packing": packing,
         "snapshot": str(snapshots["feedback" if algo == "kto" else "pairs"].path),
         "micro_batches": kto_even if algo == "kto" else [[0, 1, 2, 3], [4, 5, 6, 7]]}
        for algo in ("kto", "dpo") for packing in (True, False)
    ] + [
        {**base, "name": "kto-uneven", "algo": "kto", "packing": True, "micro_batches": kto_uneven,
         "snapshot": str(snapshots["feedback"].path)},
        {**base, "name": "dpo-uneven", "algo": "dpo", "packing": True, "micro_batches": dpo_uneven,
         "snapshot": str(snapshots["pairs"].path)},
        # Two rows on three ranks: the third has none and runs a stand-in row.
        {**base, "name": "kto-empty-rank", "algo": "kto", "packing": True, "micro_batches": [kto_uneven[0][:2]],
         "snapshot": str(snapshots["feedback"].path)},
    ]


def assert_same_step(single: dict, multi: dict, name: str) -> None:
    assert multi["examples"] == single["examples"], name
    assert multi["metrics"]["loss"] == pytest.approx(single["metrics"]["loss"], abs=TOLERANCE), name
    assert multi["grad_norm"] == pytest.approx(single["grad_norm"], abs=TOLERANCE), name
    for what in ("grads", "weights"):
        assert multi[what].keys() == single[what].keys()
        for param, value in single[what].items():
            torch.testing.assert_close(multi[what][param], value, atol=TOLERANCE, rtol=0, msg=f"{name} {what} {param}")


@pytest.mark.parametrize("nproc", [2, 3])
def test_several_processes_take_the_single_process_step(nproc, cases, tmp_path):
    chosen = cases if nproc == 2 else [c for c in cases if "uneven" in c["name"] or "empty" in c["name"]]
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps(chosen))
    launched = torchrun(nproc, str(Path(__file__).parent / "distributed_steps.py"), str(cases_file), str(tmp_path))
    assert launched.returncode == 0, launched.stderr[-3000:]
    for case in chosen:
        single = step_result(case, tmp_path / "single" / case["name"])
        assert_same_step(single, torch.load(tmp_path / f"{case['name']}.pt", weights_only=False), case["name"])
