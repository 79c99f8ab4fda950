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
    # Rank 0 of 2 gets rows 0-1 of the first micro-batch: both desirable. The second
    # micro-batch has 3 rows: 1 and 2 per rank (on 3 ranks, 1 each).
    kto_batches = [[up[0], up[1], down[0], up[2]], [down[1], up[3], down[2]]]
    dpo_batches = [[0, 1, 2, 3], [4, 5, 6]]
    base = {"model": str(tiny_llama_dir), "home": str(home)}

    def case(name: str, algo: str, packing: bool, micro_batches: list[list[int]], parallel: str = "ddp") -> dict:
        return {**base, "name": name, "algo": algo, "packing": packing, "micro_batches": micro_batches,
                "parallel": parallel, "snapshot": str(snapshots["feedback" if algo == "kto" else "pairs"].path)}

    return [case(f"{algo}-{'packed' if packing else 'padded'}", algo, packing,
                 kto_batches if algo == "kto" else dpo_batches)
            for algo in ("kto", "dpo") for packing in (True, False)] + [
        # FSDP2: decoder layers sharded, the rest replicated; the same step.
        case("fsdp-kto", "kto", True, kto_batches, "fsdp"),
        case("fsdp-dpo", "dpo", False, dpo_batches, "fsdp"),
        # Two rows: on three ranks the third has none and runs a stand-in row.
        case("kto-two-rows", "kto", True, [kto_batches[0][:2]]),
    ]


def assert_same_step(single: dict, multi: dict, name: str) -> None:
    assert multi["examples"] == single["examples"], name
    assert multi["metrics"]["loss"] == pytest.approx(single["metrics"]["loss"], abs=TOLERANCE), name
    assert multi["grad_norm"] == pytest.approx(single["grad_norm"], abs=TOLERANCE), name
    for what in ("grads", "weights"):
        assert multi[what].keys() == single[what].keys()
        for param, value in single[what].items():
            torch.testing.assert_close(multi[what][param], value, atol=TOLERANCE, rtol=0, msg=f"{name} {what} {param}")


@pytest.fixture(scope="module")
def single_process(cases, tmp_path_factory) -> dict[str, dict]:
    runs = tmp_path_factory.mktemp("single-process")
    return {case["name"]: step_result(case, runs / case["name"]) for case in cases}


@pytest.mark.parametrize("nproc", [2, 3])
def test_several_processes_take_the_single_process_step(nproc, cases, single_process, tmp_path):
    chosen = cases if nproc == 2 else [c for c in cases if c["name"] in ("kto-packed", "dpo-padded", "fsdp-kto",
                                                                          "kto-two-rows")]
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps(chosen))
    started = time.perf_counter()
    launched = torchrun(nproc, str(Path(__file__).parent / "distributed_steps.py"), str(cases_file), str(tmp_path))
    print(f"{nproc} processes, {len(chosen)} steps: {time.perf_counter() - started:.1f} s")
    assert launched.returncode == 0, launched.stderr[-6000:]
    for case in chosen:
        multi = torch.load(tmp_path / f"{case['name']}.pt", weights_only=False)
        assert_same_step(single_process[case["name"]], multi, case["name"])


def trainer_args(config_file: Path, snapshot, run_dir: Path, home: Path, *extra: str) -> list[str]:
    return ["--config", str(config_file), "--snapshot", str(snapshot.path), "--run-dir", str(run_dir),
            "--home", str(home), *extra]


def tiny_config_file(folder: Path, model_dir: Path, algo: str, *overrides: str) -> Path:
    """tiny_config's TrainConfig as the --config file the trainer processes read."""
    config_file = folder / "config.json"
    config_file.write_text(tiny_config(model_dir, algo, *overrides).model_dump_json())
    return config_file


def events_of(output: str) -> list[dict]:
    return [json.loads(line[len(PROTOCOL):]) for line in output.splitlines() if line.startswith(PROTOCOL)]


def test_a_killed_rank_ends_every_process_with_one_error_and_resume_finishes(snapshots, tiny_llama_dir,  # noqa: F811
                                                                            tmp_path):
    config_file = tiny_config_file(tmp_path, tiny_llama_dir, "dpo", "steps=10", "batch_size=4", "save_every=2",
                                   "eval_batches=0", "collective_timeout=60")
    run_dir, home = tmp_path / "runs" / "killed", tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    command = launch_command(trainer_args(config_file, snapshots["pairs"], run_dir, home), 2)
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=PROJECT_ROOT)
    output = []
    assert launcher.stdout is not None
    for line in launcher.stdout:  # until rank 0 reports step 5 (a state saved at step 4)
        output.append(line)
        if line.startswith(PROTOCOL) and events_of(line)[0].get("step", 0) >= 5:
            break
    workers = psutil.Process(launcher.pid).children(recursive=True)
    rank_1 = next(w for w in workers if w.environ().get("RANK") == "1")
    rank_1.send_signal(signal.SIGKILL)
    killed_at = time.perf_counter()
    rest, stderr = launcher.communicate(timeout=90)
    ended_in = time.perf_counter() - killed_at
    assert launcher.returncode != 0
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    errors = [e["message"] for e in events_of("".join(output) + rest) if e["event"] == "error"]
    # Rank 1 died without a word; rank 0 says why it stops, whichever noticed first: its
    # collective (gloo sees the closed connection) or torchrun (which ends it).
    ours = [line for line in stderr.splitlines() if "torch/distributed/elastic" not in line]
    assert len(errors) == 1 and errors[0].startswith("rank 0 of 2: "), (errors, "\n".join(ours)[-4000:])
    assert "another process stopped" in errors[0] or "another training process exited" in errors[0]
    print(f"every process ended {ended_in:.1f} s after rank 1 was killed: {errors[0]}")
    assert ended_in < 60, ended_in
    saved = torch.load(run_dir / "state.pt", weights_only=False)["step"]
    assert saved >= 4

    resumed = torchrun(2, "-m", "tasks.train.trainer", *trainer_args(config_file, snapshots["pairs"], run_dir, home,
                                                                      "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = events_of(resumed.stdout)
    starts = [e for e in done if e["event"] == "start"]
    assert [e["step"] for e in starts] == [saved]  # one voice: rank 0's
    result = [e for e in done if e["event"] == "done"]
    assert len(result) == 1 and result[0]["finished"]
    manifest = json.loads((Path(result[0]["path"]) / "manifest.json").read_text())
    assert manifest["training"]["resumed_at_step"] == saved and manifest["training"]["processes"] == 2
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))


def test_thumbs_train_nproc_2_on_cpu_resumes_and_records_checkpoint_and_lineage(prefect_harness, home,
                                                                                tiny_llama_dir, capsys):
    from flows.cli import main as thumbs
    from tasks.train.snapshots import create_snapshot
    from tasks.train.tasks import train_config
    from tasks.warehouse.connection import connect
    from test_trainer import ingest_hh_slice

    ingest_hh_slice(home, rows=24)
    overrides = [f"model={tiny_llama_dir}", "max_length=96", "batch_size=3", "steps=4", "save_every=2",
                 "eval_batches=1", "device=cpu"]
    # An interrupted two-process run of this config and (content-addressed) snapshot: its
    # processes stopped after step 2, as if the machine had gone away.
    with connect(home) as con:
        snapshot = create_snapshot(con, "feedback", home=home)
    config_file = home / "interrupted.json"
    config_file.write_text(train_config("kto", None, overrides).model_dump_json())
    run_dir = home / "runs" / "interrupted"
    first = torchrun(2, "-m", "tasks.train.trainer", *trainer_args(config_file, snapshot, run_dir, home,
                                                                    "--session-steps", "2"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert torch.load(run_dir / "state.pt", weights_only=False)["step"] == 2

    capsys.readouterr()
    assert thumbs(["--home", str(home), "train", "--algo", "kto", "--resume", "--nproc", "2", *overrides]) == 0
    out = capsys.readouterr().out
    checkpoint_id = out.split("trained kto: ")[1].split()[0]
    assert f"point estimates without intervals; `thumbs evaluate {checkpoint_id}` measures" in out
    manifest = json.loads((home / "checkpoints" / checkpoint_id / "manifest.json").read_text())
    assert manifest["training"]["run_dir"] == str(run_dir) and manifest["training"]["resumed_at_step"] == 2
    assert (manifest["training"]["processes"], manifest["training"]["parallel"]) == (2, "ddp")
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4] and not (run_dir / "state.pt").exists()

    assert thumbs(["--home", str(home), "lineage", checkpoint_id]) == 0
    lineage = capsys.readouterr().out
    assert f"checkpoint {checkpoint_id}" in lineage and f"snapshot {snapshot.snapshot_id}" in lineage
    assert "1 source file load(s)" in lineage


def test_the_kubernetes_gpu_pool_example_renders_the_deployments_gpu_request():
    """The commented train-gpu-k8s deployment, uncommented, with the pool's job template
    as Prefect fills it: the pod requests the deployment's `gpus`."""
    import yaml
    from prefect.utilities.templating import apply_values

    text = (PROJECT_ROOT / "prefect.yaml").read_text()
    block = text[text.index("  # - name: train-gpu-k8s"):].split("\n\n")[0]
    [deployment] = yaml.safe_load("\n".join(line.replace("  # ", "  ", 1) for line in block.splitlines()))
    deployments = {d["name"]: d for d in yaml.safe_load(text)["deployments"]}
    assert deployments["train-gpu"]["parameters"]["nproc"] == deployment["parameters"]["nproc"] == "gpu"
    assert deployment["entrypoint"] == deployments["train-gpu"]["entrypoint"]

    template = json.loads((PROJECT_ROOT / "examples" / "kubernetes-gpu-pool.json").read_text())
    variables = template["variables"]["properties"]
    values = {name: spec.get("default") for name, spec in variables.items()}
    values.update(deployment["work_pool"]["job_variables"], command="prefect flow-run execute", name="run-1",
                  labels={})
    job = apply_values(template["job_configuration"], values)["job_manifest"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 4}
    assert container["image"] == "registry.example.com/thumbs:latest"
    assert {"name": "THUMBS_HOME", "value": "/data/thumbs"} in container["env"]


def test_an_fsdp_run_stopped_with_a_state_resumes_to_the_uninterrupted_weights(snapshots, tiny_llama_dir,  # noqa: F811
                                                                              tmp_path):
    # fsdp's resumable state holds each decoder layer gathered whole from its shards, and
    # AdamW's moments by parameter name; resuming reshards both. Four KTO steps in one go,
    # and two plus two with a state in between, must end at the same weights.
    from safetensors.torch import load_file

    config_file = tiny_config_file(tmp_path, tiny_llama_dir, "kto", "steps=4", "batch_size=4", "save_every=1",
                                   "eval_batches=0", "parallel=fsdp")

    def launch(run_dir: Path, *extra: str) -> dict:
        done = torchrun(2, "-m", "tasks.train.trainer",
                        *trainer_args(config_file, snapshots["feedback"], run_dir, tmp_path / "home", *extra))
        assert done.returncode == 0, done.stderr[-3000:]
        return [e for e in events_of(done.stdout) if e["event"] == "done"][0]

    whole = launch(tmp_path / "whole")
    stopped = launch(tmp_path / "split", "--session-steps", "2")
    assert stopped["finished"] is False and stopped["step"] == 2
    assert torch.load(tmp_path / "split" / "state.pt", weights_only=False)["step"] == 2
    resumed = launch(tmp_path / "split", "--resume")
    assert resumed["finished"]
    expected = load_file(Path(whole["path"]) / "model.safetensors")
    got = load_file(Path(resumed["path"]) / "model.safetensors")
    assert expected.keys() == got.keys()
    start = load_file(tiny_llama_dir / "model.safetensors")
    assert any(not torch.equal(start[k], expected[k]) for k in expected)  # the steps changed the weights
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, atol=TOLERANCE, rtol=0, msg=name)


def test_a_process_already_ending_ignores_the_launchers_sigterm():
    """torchrun's SIGTERM says "another process exited" as an error; once this process is
    reporting its own error (distributed.ending), a second one must not replace it."""
    from tasks.common.settings import ThumbsError
    from tasks.train import distributed

    previous = signal.signal(signal.SIGTERM, distributed._ended_by_launcher)  # as Ranks.join installs it
    try:
        with pytest.raises(ThumbsError, match="another training process exited"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode; this never completes
        distributed.ending()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: the test process carries on
        time.sleep(0.05)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ending_leaves_a_process_without_the_launchers_handler_alone():
    from tasks.train import distributed

    previous = signal.getsignal(signal.SIGTERM)
    distributed.ending()  # a single process never installed the handler: nothing to change
    assert signal.getsignal(signal.SIGTERM) == previous
