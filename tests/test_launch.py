"""launch/: the Slurm, ssh and local scripts render the right commands under a faked Slurm job (--dry-run), check
their inputs, and (with a fake srun on PATH) really write the DeepSpeed hostfile and call srun."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
CONFIG = "configs/demo.yaml"


def slurm_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(SLURM_JOB_NODELIST="gpu[01-02]", SLURM_NNODES="2", SLURM_JOB_ID="4242", SLURM_GPUS_ON_NODE="4",
               SLURM_SUBMIT_DIR=str(ROOT), E2H_LAUNCH_DIR=str(tmp_path / "launch"))
    env.update(extra)
    return env


def run_script(script: str, args: list[str], env: dict[str, str], check: bool = True):
    proc = subprocess.run(["bash", str(LAUNCH / script), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def commands(stdout: str) -> list[list[str]]:
    """The '+ cmd' lines the scripts print, split back into argv."""
    return [shlex.split(line[2:].removesuffix(" &")) for line in stdout.splitlines() if line.startswith("+ ")]


def option(argv: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
    assert len(values) == 1, f"{name} not exactly once in {argv}"
    return values[0]


@pytest.mark.parametrize("nodelist, hosts", [
    ("gpu[01-02]", ["gpu01", "gpu02"]),
    ("node[01-03,07]", ["node01", "node02", "node03", "node07"]),
    ("a1,b[8-10],c", ["a1", "b8", "b9", "b10"] + ["c"]),
    ("r[1-2]n[09-10]", ["r1n09", "r1n10", "r2n09", "r2n10"]),
    ("single", ["single"]),
    ("x[098-101]-ib", ["x098-ib", "x099-ib", "x100-ib", "x101-ib"]),
])
def test_fallback_nodelist_parser_expands_slurm_ranges(nodelist, hosts):
    out = subprocess.run(["bash", "-c", 'source launch/common.sh; e2h_expand_nodelist "$1"', "_", nodelist],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == hosts


@pytest.mark.parametrize("script, command", [
    ("slurm_train_prm.sbatch", "train-prm"),
    ("slurm_sft.sbatch", "sft"),
    ("slurm_ppo.sbatch", "ppo"),
])
def test_deepspeed_jobs_render_doctor_then_torchrun_on_every_node(tmp_path, script, command):
    out = run_script(script, ["--dry-run", CONFIG, "prm.lr=1e-3", "run.out_dir=runs/x"], slurm_env(tmp_path)).stdout
    doctor, train = commands(out)
    for argv in (doctor, train):
        assert argv[0] == "srun" and option(argv, "--nodes") == "2" and option(argv, "--ntasks-per-node") == "1"
        assert option(argv, "--nodelist").split(",") == ["gpu01", "gpu02"]
        assert "torchrun" in argv
        assert option(argv, "--nnodes") == "2" and option(argv, "--nproc_per_node") == "4"
        assert option(argv, "--rdzv_endpoint") == "gpu01:29500"  # master = first node
        assert option(argv, "--rdzv_id") == "e2h-4242"
    assert train[train.index("-m"):] == ["-m", "e2h.cli", command, "--config", CONFIG, "prm.lr=1e-3", "run.out_dir=runs/x"]
    assert doctor[doctor.index("-m"):doctor.index("-m") + 6] == ["-m", "e2h.cli", "doctor", "--config", CONFIG, "prm.lr=1e-3"]
    assert not (tmp_path / "launch").exists(), "a dry run wrote files"


def test_scontrol_is_preferred_when_present_and_nodes_flag_takes_the_first_hosts(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "scontrol").write_text('#!/bin/sh\n[ "$1 $2 $3" = "show hostnames n[1-3]" ] && printf "hostA\\nhostB\\nhostC\\n"\n')
    (fake_bin / "scontrol").chmod(0o755)
    env = slurm_env(tmp_path, SLURM_JOB_NODELIST="n[1-3]", SLURM_NNODES="3", PATH=f"{fake_bin}:{os.environ['PATH']}")
    out = run_script("slurm_train_prm.sbatch", ["--dry-run", "--no-doctor", "--nodes", "2", "--gpus-per-node", "2",
                                                "--port", "31000", CONFIG], env).stdout
    (train,) = commands(out)
    assert option(train, "--nodelist").split(",") == ["hostA", "hostB"]
    assert option(train, "--rdzv_endpoint") == "hostA:31000"
    assert option(train, "--nnodes") == "2" and option(train, "--nproc_per_node") == "2"


def test_deepspeed_launcher_writes_hostfile_and_srun_gets_per_node_rank(tmp_path):
    """Not a dry run: a fake srun records its argv, the real script writes the hostfile."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    record = tmp_path / "srun_args"
    (fake_bin / "srun").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    (fake_bin / "srun").chmod(0o755)
    env = slurm_env(tmp_path, PATH=f"{fake_bin}:{os.environ['PATH']}")
    run_script("slurm_train_prm.sbatch", ["--launcher", "deepspeed", "--no-doctor", CONFIG, "prm.epochs=1"], env)
    hostfile = tmp_path / "launch" / "hostfile"
    assert hostfile.read_text() == "gpu01 slots=4\ngpu02 slots=4\n"
    argv = record.read_text().splitlines()
    assert argv[argv.index("bash"):][:2] == ["bash", "-c"]
    inner = shlex.split(argv[argv.index("-c") + 1])
    assert inner[:2] == ["exec", "deepspeed"]
    assert option(inner, "--hostfile") == str(hostfile)
    assert option(inner, "--node_rank") == "$SLURM_NODEID"  # expanded by each node's bash, not here
    assert option(inner, "--master_addr") == "gpu01"
    assert "--no_ssh" in inner and "--no_local_rank" in inner
    assert inner[inner.index("--module"):] == ["--module", "e2h.cli", "train-prm", "--config", CONFIG, "prm.epochs=1"]


def test_ray_job_starts_head_then_workers_waits_with_doctor_and_submits_each_command(tmp_path):
    out = run_script("slurm_ray_job.sbatch", ["--dry-run", "--command", "sample", "--command", "score", CONFIG,
                                              "sample.n=4"], slurm_env(tmp_path)).stdout
    head, workers, doctor, sample, score = commands(out)
    assert head[:3] == ["ray", "start", "--head"] and option(head, "--port") == "6379"
    assert option(head, "--node-ip-address") in {"gpu01"} | {a for a in head if a[:1].isdigit()}
    assert option(head, "--num-gpus") == "4" and option(head, "--dashboard-host") == "127.0.0.1"
    assert workers[0] == "srun" and option(workers, "--nodelist") == "gpu02" and option(workers, "--nodes") == "1"
    assert workers[workers.index("ray"):][:3] == ["ray", "start", "--address=" + option(head, "--node-ip-address") + ":6379"]
    assert "--block" in workers
    assert option(doctor, "--expect-nodes") == "2" and option(doctor, "--expect-gpus") == "8"
    for argv, cmd in ((sample, "sample"), (score, "score")):
        assert argv[:3] == ["ray", "job", "submit"]
        entry = argv[argv.index("--") + 1:]
        assert entry[:2] == ["bash", "-c"]
        assert shlex.split(entry[2])[-6:] == ["-m", "e2h.cli", cmd, "--config", CONFIG, "sample.n=4"]
    assert "ray stop" in out  # the exit trap


def test_multinode_ssh_starts_one_torchrun_per_host_with_its_rank(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# two boxes\nboxA slots=2\n\nboxB slots=2  # second\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    out = run_script("multinode_ssh.sh", ["--hostfile", str(hostfile), "--dry-run", "train-prm", CONFIG,
                                          "prm.epochs=1"], env).stdout
    cmds = commands(out)
    assert len(cmds) == 4  # doctor on both hosts, then training on both
    for (doc_a, doc_b), which in ((cmds[:2], "doctor"), (cmds[2:], "train-prm")):
        for rank, (argv, host) in enumerate(((doc_a, "boxA"), (doc_b, "boxB"))):
            assert argv[:4] == ["ssh", "-o", "BatchMode=yes", host]
            remote = shlex.split(argv[4])
            assert option(remote, "--node_rank") == str(rank) and option(remote, "--master_addr") == "boxA"
            assert option(remote, "--nnodes") == "2" and option(remote, "--nproc_per_node") == "2"
            assert remote[remote.index("-m"):][:3] == ["-m", "e2h.cli", which]
    assert shlex.split(cmds[2][4])[-3:] == ["--config", CONFIG, "prm.epochs=1"]


def test_run_local_uses_loopback_and_a_free_port():
    out = run_script("run_local.sh", ["--nproc", "2", "--dry-run", "train-prm", CONFIG, "prm.epochs=1"],
                     dict(os.environ)).stdout
    (argv,) = commands(out)
    assert argv[0] == "torchrun" and option(argv, "--nproc_per_node") == "2" and option(argv, "--nnodes") == "1"
    assert option(argv, "--master_addr") == "127.0.0.1" and 1024 <= int(option(argv, "--master_port")) <= 65535
    assert argv[argv.index("-m"):] == ["-m", "e2h.cli", "train-prm", "--config", CONFIG, "prm.epochs=1"]


@pytest.mark.parametrize("script, args, env_extra, message", [
    ("slurm_train_prm.sbatch", ["--dry-run", "configs/nope.yaml"], {}, "config file not found: configs/nope.yaml"),
    ("slurm_train_prm.sbatch", ["--dry-run"], {}, "no config file given"),
    ("slurm_sft.sbatch", ["--dry-run", CONFIG, "sft.lr"], {}, "'sft.lr' is not a config override"),
    ("slurm_sft.sbatch", ["--dry-run", "--nodes", "3", CONFIG], {}, "asked for 3 nodes but the job has 2"),
    ("slurm_sft.sbatch", ["--dry-run", "--nodes", "0", CONFIG], {}, "--nodes must be a positive integer"),
    ("slurm_ppo.sbatch", ["--dry-run", "--launcher", "mpi", CONFIG], {}, "--launcher must be torchrun or deepspeed"),
    ("slurm_ppo.sbatch", ["--dry-run", "--port", "80", CONFIG], {}, "--port must be a number in 1024-65535"),
    ("slurm_ppo.sbatch", ["--dry-run", CONFIG], {"SLURM_GPUS_ON_NODE": "", "PATH": "/usr/bin:/bin"},
     "pass --gpus-per-node"),
    ("slurm_ray_job.sbatch", ["--dry-run", "--command", "train", CONFIG], {}, "--command must be sample or score"),
    ("slurm_train_prm.sbatch", ["--dry-run", CONFIG], {"SLURM_JOB_NODELIST": ""}, "SLURM_JOB_NODELIST is not set"),
    ("slurm_train_prm.sbatch", ["--dry-run", CONFIG], {"SLURM_JOB_NODELIST": "gpu[01-02"}, "unbalanced brackets"),
    ("multinode_ssh.sh", ["--dry-run", "doctor", CONFIG], {}, "--hostfile is required"),
    ("run_local.sh", ["--dry-run"], {}, "no e2h command given"),
])
def test_bad_input_fails_with_a_clear_message_and_runs_nothing(tmp_path, script, args, env_extra, message):
    env = slurm_env(tmp_path, **env_extra)
    env = {k: v for k, v in env.items() if v != ""}
    proc = run_script(script, args, env, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert "+ " not in proc.stdout


@pytest.mark.parametrize("script", ["slurm_train_prm.sbatch", "slurm_ray_job.sbatch", "multinode_ssh.sh", "run_local.sh"])
def test_help_explains_usage(script):
    proc = subprocess.run(["bash", str(LAUNCH / script), "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "--dry-run" in proc.stdout and "CONFIG" in proc.stdout
    assert "#SBATCH" not in proc.stdout
