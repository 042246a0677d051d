"""e2h doctor: passes on this machine (CPU, gloo, 2 local processes; under torchrun through launch/run_local.sh),
fails clearly and quickly when a process of the job is missing, checks paths, disk and a Ray cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2h.config import load_config
from e2h.commands.doctor import check_disk, check_paths, check_ray, launched_rank, ray_host_port
from e2h.loopback import free_port

ROOT = Path(__file__).resolve().parents[1]


def doctor(args: list[str], env_extra: dict[str, str] | None = None, timeout: float = 120):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "e2h.commands.doctor", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def wait_for_port(port: int, timeout: float) -> None:
    """Until something accepts TCP connections on 127.0.0.1:port (a `ray start --block` head coming up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port} after {timeout:g} s"
            time.sleep(0.2)


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "n1",
      "MASTER_PORT": "29500", "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RUN_ID": "j"},
     dict(rank=3, world_size=4, local_rank=1, local_world_size=2, host="n1", port=29500, store_is_server=False)),
    ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1234"},
     dict(rank=0, world_size=2, local_rank=0, store_is_server=True)),  # set by hand: rank 0 serves the store
    ({"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
      "MASTER_ADDR": "gpu01", "MASTER_PORT": "29500"},
     dict(rank=5, world_size=8, local_rank=1, local_world_size=4, host="gpu01", store_is_server=False)),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, None),  # the batch step itself is not a multi-process job
])
def test_launched_rank_reads_torchrun_and_srun_environments(env, expected):
    got = launched_rank(env)
    if expected is None:
        assert got is None
    else:
        assert {k: getattr(got, k) for k in expected} == expected


def test_launched_rank_without_master_address_is_an_error():
    with pytest.raises(ValueError, match="MASTER_ADDR and MASTER_PORT"):
        launched_rank({"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2"})


def test_paths_check_names_each_missing_input(tmp_path):
    present = tmp_path / "train.jsonl"
    present.write_text("{}\n")
    config = load_config("configs/demo.yaml", ["data.source=math", f"data.math_train={present}",
                                               f"data.math500={tmp_path}/nope.jsonl", "data.prm800k=[]",
                                               "data.processbench=[]", f"policy.path={tmp_path}/no-model"])
    check = check_paths(config)
    assert check.status == "FAIL"
    assert f"data.math500={tmp_path}/nope.jsonl" in check.detail and "policy.path=" in check.detail
    assert "math_train" not in check.detail
    # the world source reads no data files: the same missing MATH paths do not matter
    assert check_paths(load_config("configs/demo.yaml", [f"data.math500={tmp_path}/nope.jsonl"])).status == "PASS"


def test_paths_check_takes_data_hub_ids_for_datasets_not_missing_files(tmp_path):
    """MATH500 and ProcessBench default to hub ids (owner/name:split): a note, not a missing file; a local data
    path that is not there is still missing."""
    present = tmp_path / "train.jsonl"
    present.write_text("{}\n")
    config = load_config("configs/demo.yaml", ["data.source=math", f"data.math_train={present}", "data.prm800k=[]"])
    assert config.data.math500 == "HuggingFaceH4/MATH-500:test"
    check = check_paths(config)
    assert check.status == "WARN", check.detail
    for hub in ("data.math500=HuggingFaceH4/MATH-500:test", "data.processbench[0]=Qwen/ProcessBench:gsm8k",
                "data.processbench[1]=Qwen/ProcessBench:math"):
        assert f"{hub} is a hub dataset" in check.detail
    check = check_paths(load_config("configs/demo.yaml", ["data.source=math", f"data.math_train={present}"]))
    assert check.status == "FAIL" and "data.prm800k[0]=prm800k/prm800k/data/phase1_train.jsonl" in check.detail


def test_disk_check_fails_below_the_threshold(tmp_path):
    assert check_disk(tmp_path / "runs" / "x", 0.001).status == "PASS"
    failed = check_disk(tmp_path / "runs" / "x", 1e9)
    assert failed.status == "FAIL" and "GiB free (need 1e+09)" in failed.detail


@pytest.mark.distributed
def test_doctor_passes_here_with_two_local_gloo_processes():
    proc = doctor(["--config", "configs/demo.yaml", "--nproc", "2", "--timeout", "30"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS all-reduce 2 process(es), gloo: sum correct" in proc.stdout
    assert "doctor: all checks passed" in proc.stdout
    assert "FAIL" not in proc.stdout


@pytest.mark.distributed
def test_doctor_fails_clearly_and_quickly_when_a_process_is_missing():
    start = time.monotonic()
    proc = doctor(["--timeout", "3"], {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0",
                                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 of 2 process(es) joined within 3 s; missing rank(s) [1]" in proc.stdout
    assert time.monotonic() - start < 40  # no hang: python start-up + torch import + the 3 s wait


@pytest.mark.distributed
def test_doctor_fails_on_a_bad_config_path_even_when_collectives_pass(tmp_path):
    proc = doctor(["--config", "configs/demo.yaml", "--nproc", "1", "--timeout", "30",
                   f"prm.deepspeed_config={tmp_path}/missing.json"])
    assert proc.returncode == 1
    assert f"FAIL paths      missing: prm.deepspeed_config={tmp_path}/missing.json" in proc.stdout
    assert "PASS all-reduce 1 process(es)" in proc.stdout


@pytest.mark.distributed
def test_doctor_under_torchrun_through_run_local_joins_the_jobs_group():
    env = dict(os.environ)
    proc = subprocess.run(["bash", "launch/run_local.sh", "--nproc", "2", "doctor", "configs/demo.yaml", "--",
                           "--timeout", "30"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS all-reduce [" in proc.stdout and "rank 0] 2 process(es), gloo: sum correct" in proc.stdout
    assert proc.stdout.count("PASS versions") == 1  # local checks once per node, not once per process


@pytest.mark.distributed
def test_doctor_checks_a_ray_cluster_for_nodes_and_gpus(tmp_path):
    port = free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    # --block: the head lives as long as this process, which the test ends by its pid (never `ray stop`,
    # which would stop every Ray on the machine)
    head = subprocess.Popen(["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=1", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, 60)  # doctor fails at once on a port nothing listens on (yet)
        ok = doctor(["--ray-address", f"127.0.0.1:{port}", "--expect-nodes", "1", "--timeout", "60"], env)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert f"PASS ray        127.0.0.1:{port}: 1 node(s), 0 GPU(s), 1 CPU(s); a task ran on" in ok.stdout
        short = doctor(["--ray-address", f"127.0.0.1:{port}", "--expect-nodes", "2", "--expect-gpus", "8",
                        "--timeout", "2"], env)
        assert short.returncode == 1
        assert "expected 2 node(s) and 8 GPU(s), found 1 node(s), 0 GPU(s)" in short.stdout
    finally:
        head.terminate()  # `ray start --block` stops the processes it started (2 s; SIGTERM to all of them: 30 s)
        try:
            head.wait(timeout=30)
        finally:
            try:  # anything left of its own session (start_new_session): by process group, never by name
                os.killpg(head.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize("address, expected", [
    ("10.0.0.1:6379", ("10.0.0.1", 6379)), ("ray://head:10001", ("head", 10001)), ("[::1]:6379", ("::1", 6379)),
    ("auto", None), ("local", None), ("head", None),
])
def test_ray_host_port_reads_every_address_form(address, expected):
    assert ray_host_port(address) == expected


@pytest.mark.distributed
@pytest.mark.parametrize("address, needle", [
    ("127.0.0.1:{closed}", "connection refused: nothing listens on port {closed} of 127.0.0.1"),
    ("bogus.invalid:1", "cannot resolve host 'bogus.invalid'"),
])
def test_an_unreachable_ray_address_fails_within_two_seconds(address, needle):
    """A TCP connect before ray.init, whose retries took 84 s to give up on `--ray-address bogus:1`."""
    closed = free_port()  # nothing listens there
    start = time.monotonic()
    check = check_ray(address.format(closed=closed), expect_nodes=1, expect_gpus=0, timeout=60)
    assert time.monotonic() - start < 2
    assert check.status == "FAIL" and needle.format(closed=closed) in check.detail, check


@pytest.mark.distributed
def test_doctor_with_a_closed_ray_port_fails_at_once():
    port = free_port()
    start = time.monotonic()
    proc = doctor(["--ray-address", f"127.0.0.1:{port}", "--timeout", "60"], timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"FAIL ray        127.0.0.1:{port}: connection refused" in proc.stdout
    assert time.monotonic() - start < 30  # python start-up and torch import; the Ray check itself < 2 s
