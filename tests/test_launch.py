"""launch/: the Slurm, ssh and local scripts render the right commands under a faked Slurm job (--dry-run) and
outside any job (placeholders), check their inputs, and (with a fake srun on PATH) really write the DeepSpeed
hostfile and call srun. Two jobs on one node get different ports; Ray's head never takes a loopback address from
/etc/hosts; multinode_ssh.sh, interrupted in any way, leaves no process on any "host" (an ssh stand-in on this
machine); two Ray jobs on one node stop only their own Ray (slow)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
CONFIG = "configs/demo.yaml"


def no_slurm_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}


def slurm_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = no_slurm_env()
    env.update(SLURM_JOB_NODELIST="gpu[01-02]", SLURM_NNODES="2", SLURM_JOB_ID="4242", SLURM_GPUS_ON_NODE="4",
               SLURM_CPUS_PER_TASK="16", SLURM_SUBMIT_DIR=str(ROOT), E2H_LAUNCH_DIR=str(tmp_path / "launch"))
    env.update(extra)
    return env


def job_port(job: int, offset: int) -> int:
    """launch/common.sh's e2h_job_port: a block of 10 ports per job id."""
    return 20000 + job % 1200 * 10 + offset


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
        assert option(argv, "--cpus-per-task") == "16"  # Slurm >= 22.05: srun no longer inherits it
        assert option(argv, "--rdzv_endpoint") == f"gpu01:{job_port(4242, 0)}"  # master = first node
        assert option(argv, "--rdzv_id") == "e2h-4242"
    assert train[train.index("-m"):] == ["-m", "e2h", command, "--config", CONFIG, "prm.lr=1e-3", "run.out_dir=runs/x"]
    assert doctor[doctor.index("-m"):doctor.index("-m") + 6] == ["-m", "e2h", "doctor", "--config", CONFIG, "prm.lr=1e-3"]
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
    assert inner[inner.index("--module"):] == ["--module", "e2h", "train-prm", "--config", CONFIG, "prm.epochs=1"]


def test_ray_job_starts_head_then_workers_waits_with_doctor_and_submits_each_command(tmp_path):
    out = run_script("slurm_ray_job.sbatch", ["--dry-run", "--command", "sample", "--command", "score", CONFIG,
                                              "sample.n=4"], slurm_env(tmp_path)).stdout
    head, workers, doctor, sample, score = commands(out)
    gcs = str(job_port(4242, 1))
    assert head[:5] == ["setsid", "ray", "start", "--head", "--block"] and option(head, "--port") == gcs
    assert option(head, "--dashboard-port") == str(job_port(4242, 2))
    assert option(head, "--ray-client-server-port") == str(job_port(4242, 3))
    assert option(head, "--num-gpus") == "4" and option(head, "--dashboard-host") == "127.0.0.1"
    assert option(head, "--temp-dir") == "/tmp/e2h-ray-4242"  # this job's own Ray session, logs and sockets
    assert not option(head, "--node-ip-address").startswith("127.")
    assert workers[0] == "srun" and option(workers, "--nodelist") == "gpu02" and option(workers, "--nodes") == "1"
    assert option(workers, "--cpus-per-task") == "16"
    assert workers[workers.index("ray"):][:3] == ["ray", "start", f"--address={option(head, '--node-ip-address')}:{gcs}"]
    assert "--block" in workers and option(workers, "--temp-dir") == "/tmp/e2h-ray-4242"
    assert option(workers, "--dashboard-agent-listen-port") == option(head, "--dashboard-agent-listen-port") \
        == str(job_port(4242, 4))
    assert option(doctor, "--ray-address") == f"{option(head, '--node-ip-address')}:{gcs}"
    assert option(doctor, "--expect-nodes") == "2" and option(doctor, "--expect-gpus") == "8"
    for argv, cmd in ((sample, "sample"), (score, "score")):
        assert argv[:3] == ["ray", "job", "submit"] and option(argv, "--address") == f"http://127.0.0.1:{job_port(4242, 2)}"
        entry = argv[argv.index("--") + 1:]
        assert entry[:2] == ["bash", "-c"]
        assert shlex.split(entry[2])[-6:] == ["-m", "e2h", cmd, "--config", CONFIG, "sample.n=4"]
    assert "head's process group" in out and "no 'ray stop'" in out  # the exit trap ends only this job's Ray
    assert "+ ray stop" not in out


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
            assert remote[remote.index("exec"):][:3] == ["exec", "bash", str(LAUNCH / "remote_group.sh")]
            assert option(remote, "--node_rank") == str(rank) and option(remote, "--master_addr") == "boxA"
            assert option(remote, "--nnodes") == "2" and option(remote, "--nproc_per_node") == "2"
            assert remote[remote.index("-m"):][:3] == ["-m", "e2h", which]
    assert shlex.split(cmds[2][4])[-3:] == ["--config", CONFIG, "prm.epochs=1"]


def test_run_local_uses_loopback_and_a_free_port():
    out = run_script("run_local.sh", ["--nproc", "2", "--dry-run", "train-prm", CONFIG, "prm.epochs=1"],
                     dict(os.environ)).stdout
    (argv,) = commands(out)
    assert argv[0] == "torchrun" and option(argv, "--nproc_per_node") == "2" and option(argv, "--nnodes") == "1"
    assert option(argv, "--master_addr") == "127.0.0.1" and 1024 <= int(option(argv, "--master_port")) <= 65535
    assert argv[argv.index("-m"):] == ["-m", "e2h", "train-prm", "--config", CONFIG, "prm.epochs=1"]


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
    ("slurm_train_prm.sbatch", [CONFIG], {"SLURM_JOB_NODELIST": ""}, "SLURM_JOB_NODELIST is not set"),
    ("slurm_ray_job.sbatch", [CONFIG], {"SLURM_JOB_NODELIST": ""}, "SLURM_JOB_NODELIST is not set"),
    ("slurm_ray_job.sbatch", ["--dry-run", "--launcher", "deepspeed", CONFIG], {},
     "slurm_ray_job.sbatch does not support --launcher deepspeed"),
    ("run_local.sh", ["--dry-run", "--launcher", "deepspeed", "train-prm", CONFIG], {},
     "run_local.sh does not support --launcher deepspeed"),
    ("slurm_ray_job.sbatch", ["--dry-run", "--port", "65534", CONFIG], {}, "--port must leave room for P+3"),
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


# --- jobs that share a node, dry runs outside a job, launchers, srun's CPUs ----------------------------------------


@pytest.mark.parametrize("script", ["slurm_train_prm.sbatch", "slurm_ray_job.sbatch"])
def test_two_jobs_on_one_node_get_different_ports(tmp_path, script):
    def ports(job: str) -> set[int]:
        out = run_script(script, ["--dry-run", "--no-doctor", CONFIG], slurm_env(tmp_path, SLURM_JOB_ID=job)).stdout
        found = set()
        for argv in commands(out):
            for name in ("--rdzv_endpoint", "--port", "--dashboard-port", "--ray-client-server-port",
                         "--dashboard-agent-listen-port", "--address"):
                for arg in argv:
                    if arg.startswith(name + "="):
                        found.add(int(arg.rsplit(":", 1)[-1].split("=")[-1]))
        return found

    a, b = ports("4242"), ports("4243")
    assert a and b and not a & b, (a, b)
    assert not (a | b) & {29500, 6379, 8265, 10001, 52365}, "a fixed default port: two jobs on a node collide"
    assert all(20000 <= p < 32768 for p in a | b)  # above Ray's worker ports, below Linux's ephemeral ports
    if script == "slurm_ray_job.sbatch":
        assert len(a) == 4  # GCS, dashboard, client server, dashboard agent: all different


def test_port_flag_overrides_the_job_block(tmp_path):
    out = run_script("slurm_ray_job.sbatch", ["--dry-run", "--no-doctor", "--port", "31000", CONFIG],
                     slurm_env(tmp_path)).stdout
    head = commands(out)[0]
    assert [option(head, o) for o in ("--port", "--dashboard-port", "--ray-client-server-port",
                                      "--dashboard-agent-listen-port")] == ["31000", "31001", "31002", "31003"]


@pytest.mark.parametrize("script, launcher", [
    ("slurm_train_prm.sbatch", "torchrun"), ("slurm_train_prm.sbatch", "deepspeed"), ("slurm_sft.sbatch", "torchrun"),
    ("slurm_ppo.sbatch", "deepspeed"), ("slurm_ray_job.sbatch", "torchrun"),  # Ray: the default, no launcher
])
def test_dry_run_outside_a_job_prints_the_commands_with_placeholders(tmp_path, script, launcher):
    """The login node: no SLURM_* variables, no GPUs. Exit 0 and every command, with <PLACEHOLDERS>."""
    env = no_slurm_env()
    env["PATH"] = "/usr/bin:/bin"  # no nvidia-smi, no scontrol
    env["E2H_LAUNCH_DIR"] = str(tmp_path / "launch")
    proc = run_script(script, ["--dry-run", "--launcher", launcher, CONFIG], env)
    cmds = commands(proc.stdout)
    assert cmds, proc.stdout
    text = proc.stdout
    assert "<PLACEHOLDERS>" in text
    for placeholder in ("<NNODES>", "<CPUS_PER_TASK>", "<GPUS_PER_NODE>"):
        assert placeholder in text, placeholder
    srun = next(argv for argv in cmds if argv[0] == "srun")
    assert option(srun, "--cpus-per-task") == "<CPUS_PER_TASK>"
    if script == "slurm_ray_job.sbatch":
        assert option(cmds[0], "--node-ip-address") == "<HEAD_IP>" and option(cmds[0], "--port") == "<RAY_GCS_PORT>"
        assert option(srun, "--nodes") == "<NNODES-1>" and option(srun, "--nodelist") == "<WORKER_NODELIST>"
    else:
        assert option(srun, "--nodelist") == "<NODELIST>"
        assert "<MASTER_ADDR>:<RDZV_PORT>" in text
    assert not (tmp_path / "launch").exists(), "a dry run wrote files"


def test_dry_run_outside_a_job_uses_nodes_and_gpus_when_given(tmp_path):
    env = no_slurm_env()
    out = run_script("slurm_train_prm.sbatch", ["--dry-run", "--no-doctor", "--nodes", "4", "--gpus-per-node", "8",
                                                "--port", "30100", CONFIG], env).stdout
    (train,) = commands(out)
    assert option(train, "--nnodes") == "4" and option(train, "--nproc_per_node") == "8"
    assert option(train, "--rdzv_endpoint") == "<MASTER_ADDR>:30100"


def test_srun_without_cpus_per_task_says_so(tmp_path):
    env = slurm_env(tmp_path)
    del env["SLURM_CPUS_PER_TASK"]
    proc = run_script("slurm_train_prm.sbatch", ["--dry-run", "--no-doctor", CONFIG], env)
    (train,) = commands(proc.stdout)
    assert not any(a.startswith("--cpus-per-task") for a in train)
    assert "SLURM_CPUS_PER_TASK is not set" in proc.stderr


def test_multinode_ssh_supports_the_deepspeed_launcher(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("boxA slots=4\nboxB slots=4\n")
    env = no_slurm_env()
    env["E2H_LAUNCH_DIR"] = str(tmp_path / "launch")
    out = run_script("multinode_ssh.sh", ["--hostfile", str(hostfile), "--dry-run", "--launcher", "deepspeed",
                                          "train-prm", CONFIG], env).stdout
    cmds = commands(out)
    assert len(cmds) == 4  # doctor (torchrun) on both hosts, then DeepSpeed's launcher on both
    for rank, argv in enumerate(cmds[2:]):
        remote = shlex.split(argv[4])
        ds = remote[remote.index("deepspeed"):]
        assert option(ds, "--hostfile") == str(tmp_path / "launch" / "hostfile") and "--no_ssh" in ds
        assert option(ds, "--node_rank") == str(rank) and option(ds, "--master_addr") == "boxA"
        assert ds[ds.index("--module"):] == ["--module", "e2h", "train-prm", "--config", CONFIG]
    assert "boxA slots=4" in out and not (tmp_path / "launch").exists()


# --- the Ray head's address ------------------------------------------------------------------------------------

FAKE_IP = """#!/bin/sh
# ip stand-in: lo, eth0 (default route), ib0 (the route to the other nodes)
case "$*" in
  "-o -4 addr show") printf '1: lo    inet 127.0.0.1/8 scope host lo\\n2: eth0    inet 10.1.0.5/16 scope global eth0\\n3: ib0    inet 10.2.0.5/16 scope global ib0\\n' ;;
  "-o route get 10.2.0.6") [ -z "$FAKE_NO_ROUTE" ] && echo "10.2.0.6 dev ib0 src 10.2.0.5 uid 0" ;;
  "-o route get 1.1.1.1") [ -z "$FAKE_NO_ROUTE" ] && echo "1.1.1.1 via 10.1.0.1 dev eth0 src 10.1.0.5 uid 0" ;;
  *) exit 1 ;;
esac
"""
FAKE_GETENT = """#!/bin/sh
# getent stand-in: /etc/hosts maps this node's name to loopback, as on many clusters
case "$1 $2" in
  "hosts gpu01") echo "127.0.1.1       gpu01" ;;
  "ahostsv4 gpu02") echo "10.2.0.6        STREAM gpu02" ;;
  *) exit 2 ;;
esac
"""
FAKE_HOSTNAME = """#!/bin/sh
if [ "$1" = -I ]; then echo "127.0.1.1 10.1.0.5 "; else echo gpu01; fi
"""


@pytest.fixture
def fake_network(tmp_path) -> dict[str, str]:
    bin_dir = tmp_path / "netbin"
    bin_dir.mkdir()
    for name, text in (("ip", FAKE_IP), ("getent", FAKE_GETENT), ("hostname", FAKE_HOSTNAME)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = slurm_env(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}")
    for name in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "FAKE_NO_ROUTE"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize("peer, extra, want", [
    ("gpu02", {}, "10.2.0.5"),                                # the route to another node of the job
    ("", {}, "10.1.0.5"),                                     # no other node: the default route
    ("gpu02", {"FAKE_NO_ROUTE": "1"}, "10.1.0.5"),            # no routes: hostname -I, loopback skipped
    ("gpu02", {"NCCL_SOCKET_IFNAME": "eth"}, "10.1.0.5"),     # the interface NCCL is told to use (a prefix)
    ("gpu02", {"NCCL_SOCKET_IFNAME": "=ib0"}, "10.2.0.5"),
    ("", {"NCCL_SOCKET_IFNAME": "bond9,ib0"}, "10.2.0.5"),    # the first of the list that exists
    ("", {"GLOO_SOCKET_IFNAME": "ib0"}, "10.2.0.5"),
    ("gpu02", {"NCCL_SOCKET_IFNAME": "^docker"}, "10.2.0.5"),  # an exclusion list: the route decides
    ("", {"NCCL_SOCKET_IFNAME": "lo"}, "127.0.0.1"),           # loopback only when asked for by name
])
def test_node_ip_never_takes_loopback_from_etc_hosts(fake_network, peer, extra, want):
    env = {**fake_network, **extra}
    proc = subprocess.run(["bash", "-c", 'source launch/common.sh; e2h_node_ip "$1"', "_", peer], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == want, proc.stderr


def test_ray_head_and_workers_use_the_named_interface(fake_network):
    env = {**fake_network, "NCCL_SOCKET_IFNAME": "ib0"}
    out = run_script("slurm_ray_job.sbatch", ["--dry-run", "--no-doctor", CONFIG], env).stdout
    head, workers, _sample = commands(out)
    assert option(head, "--node-ip-address") == "10.2.0.5"
    inner = workers[workers.index("-c") + 1]  # each worker's address on ib0, found on that node
    assert inner.startswith(f"source {LAUNCH / 'common.sh'} && exec ray start --address=10.2.0.5:{job_port(4242, 1)}")
    assert inner.endswith('--node-ip-address="$(e2h_node_ip 10.2.0.5)"')
    env.pop("NCCL_SOCKET_IFNAME")
    head, workers, _sample = commands(run_script("slurm_ray_job.sbatch", ["--dry-run", "--no-doctor", CONFIG], env).stdout)
    assert option(head, "--node-ip-address") == "10.2.0.5"  # not gpu01's 127.0.1.1 from getent
    assert workers[workers.index("ray"):][:2] == ["ray", "start"]  # Ray finds the route to the head itself


# --- multinode_ssh.sh: nothing keeps running on the hosts once it is interrupted ----------------------------------

SSH_STAND_IN = '''#!{python}
"""ssh stand-in (E2H_SSH): runs the command on this machine as sshd would: `bash -c COMMAND` in a session of its
own (out of reach of this terminal's signals), no terminal, its standard input fed from ours. When this process
ends, its standard input reaches end-of-file, as a remote command's does when its ssh connection goes away."""
import os, subprocess, sys, threading
args = sys.argv[1:]
while args and args[0].startswith("-"):
    args = args[2:] if args[0] in ("-o", "-p", "-l", "-i", "-F", "-J") else args[1:]
with open(os.environ["E2H_TEST_PIDS"], "a") as f:
    f.write(f"{{os.getpid()}} ssh {{args[0]}}\\n")
proc = subprocess.Popen(["bash", "-c", " ".join(args[1:])], stdin=subprocess.PIPE, start_new_session=True)
def relay():
    while chunk := os.read(0, 4096):
        proc.stdin.write(chunk)
        proc.stdin.flush()
    proc.stdin.close()
threading.Thread(target=relay, daemon=True).start()
sys.exit(proc.wait())
'''
FAKE_TORCHRUN = """#!/usr/bin/env bash
# torchrun stand-in: one worker, records itself, the worker and its parent (remote_group.sh); rank FAIL_RANK fails
sleep 300 &
printf '%s torchrun\\n%s worker\\n%s group\\n' $$ $! $PPID >> "$E2H_TEST_PIDS"
case " $* " in *" --node_rank=${FAIL_RANK:-x} "*) sleep 1; exit 3 ;; esac
wait
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.parametrize("how", ["ctrl-c", "kill", "kill -9", "a host fails"])
def test_multinode_ssh_interrupted_leaves_no_process_on_any_host(tmp_path, how):
    import signal
    import sys
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fake-ssh").write_text(SSH_STAND_IN.format(python=sys.executable))
    (bin_dir / "torchrun").write_text(FAKE_TORCHRUN)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    hostfile = tmp_path / "hosts"
    hostfile.write_text("127.0.0.1 slots=1\nlocalhost slots=1\n")  # two "nodes", both this machine
    pids_file = tmp_path / "pids"
    env = no_slurm_env()
    env.update(E2H_SSH=str(bin_dir / "fake-ssh"), PATH=f"{bin_dir}:{env['PATH']}", E2H_TEST_PIDS=str(pids_file),
               E2H_STOP_GRACE="5")
    if how == "a host fails":
        env["FAIL_RANK"] = "1"
    log = (tmp_path / "out").open("w")
    # as from a terminal: SIGINT at its default. A suite run in the background (nohup, `&`) inherits it ignored,
    # and bash cannot trap a signal ignored on entry, so the Ctrl-C case would wait forever
    proc = subprocess.Popen(["bash", str(LAUNCH / "multinode_ssh.sh"), "--hostfile", str(hostfile), "--no-doctor",
                             "train-prm", CONFIG], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def recorded() -> list[int]:
        return [int(line.split()[0]) for line in pids_file.read_text().splitlines()] if pids_file.exists() else []

    try:
        deadline = time.monotonic() + 30
        while len(recorded()) < 8 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)  # 2 x (ssh, remote_group.sh, torchrun, worker)
        assert len(recorded()) == 8, (tmp_path / "out").read_text()
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the script and its ssh processes
        elif how == "kill":
            proc.send_signal(signal.SIGTERM)  # the script alone
        elif how == "kill -9":
            proc.kill()  # the script alone, no trap can run: the ssh processes see their input close
        rc = proc.wait(timeout=30)
        assert rc == {"ctrl-c": 130, "kill": 143, "kill -9": -9, "a host fails": 1}[how], (tmp_path / "out").read_text()
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in recorded()) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in recorded() if alive(pid)]
        assert not left, f"still running: {left}\n" + (tmp_path / "out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in recorded():  # only what this test started
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()


# --- two Ray jobs on one node: each stops only its own Ray -------------------------------------------------------

FAKE_E2H_PYTHON = """#!/usr/bin/env bash
# E2H_PYTHON stand-in: `-m e2h sample` (a Ray job's entrypoint) reports the cluster it runs in, then waits for
# the file RELEASE (if set); anything else is the real python
if [[ ${3:-} == sample ]]; then
  python -c "import ray; ray.init(); print('job', '$JOB_TAG', 'in cluster', ray.get_runtime_context().gcs_address)"
  for ((i = 0; i < 600; i++)); do [[ -z ${RELEASE:-} || -e $RELEASE ]] && break; sleep 0.5; done
  echo "job $JOB_TAG done"
  exit 0
fi
exec python "$@"
"""


def free_job_id(start: int) -> int:
    """A job id whose Ray ports (block offsets 1-4) are free on 127.0.0.1 now."""
    import socket

    for job in range(start, start + 1200):
        try:
            for offset in range(1, 5):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", job_port(job, offset)))
            return job
        except OSError:
            continue
    raise RuntimeError("no free port block")


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace") and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.distributed
def test_two_ray_jobs_on_one_node_each_stop_only_their_own_ray(tmp_path):
    """Job A's Ray runs a job while job B starts its own Ray on the same node, runs and exits: A's Ray and job
    are untouched (B's exit stops B's process group only, never `ray stop`), then A ends and nothing is left."""
    import shutil
    import signal
    import tempfile
    import time

    pytest.importorskip("ray")
    if shutil.which("ray") is None:
        pytest.skip("no `ray` command on PATH")
    fake = tmp_path / "python"
    fake.write_text(FAKE_E2H_PYTHON)
    fake.chmod(0o755)
    temp = Path(tempfile.mkdtemp(prefix="e2h-", dir="/tmp"))  # short: Ray's socket paths live under it
    release = tmp_path / "release"
    job_a = free_job_id(1000 + os.getpid() % 500)
    job_b = free_job_id(job_a + 1)

    def start(job: int, tag: str, hold: bool) -> subprocess.Popen:
        env = slurm_env(tmp_path, SLURM_JOB_ID=str(job), SLURM_JOB_NODELIST="localhost", SLURM_NNODES="1",
                        SLURM_GPUS_ON_NODE="0", SLURM_CPUS_PER_TASK="1", E2H_PYTHON=str(fake), JOB_TAG=tag,
                        E2H_RAY_TEMP_DIR=str(temp / tag), NCCL_SOCKET_IFNAME="lo", E2H_RAY_STOP_GRACE="5")
        env.pop("RAY_ADDRESS", None)
        if hold:
            env["RELEASE"] = str(release)
        return subprocess.Popen(["bash", str(LAUNCH / "slurm_ray_job.sbatch"), "--no-doctor", CONFIG], cwd=ROOT,
                                env=env, stdout=(tmp_path / f"{tag}.log").open("w"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    def log(tag: str) -> str:
        return (tmp_path / f"{tag}.log").read_text()

    a = start(job_a, "A", hold=True)
    b = None
    try:
        deadline = time.monotonic() + 240
        while "job A in cluster" not in log("A") and a.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "job A in cluster" in log("A"), log("A")[-3000:]
        b = start(job_b, "B", hold=False)
        assert b.wait(timeout=240) == 0, log("B")[-3000:]
        assert f"job B in cluster 127.0.0.1:{job_port(job_b, 1)}" in log("B")
        assert processes_mentioning(str(temp / "A")), "job B's exit stopped job A's Ray"
        assert not processes_mentioning(str(temp / "B")), "job B left Ray processes behind"
        release.touch()
        assert a.wait(timeout=240) == 0, log("A")[-3000:]
        assert f"job A in cluster 127.0.0.1:{job_port(job_a, 1)}" in log("A") and "job A done" in log("A")
        deadline = time.monotonic() + 30
        while processes_mentioning(str(temp)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not processes_mentioning(str(temp)), "job A left Ray processes behind"
    finally:
        release.touch()
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
        for pid in processes_mentioning(str(temp)):  # only this test's Ray (its own temp dir)
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
