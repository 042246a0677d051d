"""Load test of the reranking service: dynamic batching vs batch size 1, same model, same requests, same run.

    bash scripts/loopback.sh python bench/bench_serve.py                       # tiny PRM built on the fly
    bash scripts/loopback.sh python bench/bench_serve.py --prm runs/demo/prm --requests 500 --concurrency 64

For each mode it starts the real server (``python -m e2h.serve`` in a subprocess on 127.0.0.1), waits for
/readyz, sends ``--requests`` POST /v1/score requests (N solutions each) through an httpx client bounded by an
asyncio semaphore, and reports p50/p99 latency, throughput and errors; then the speedup of dynamic batching over
batch size 1 (``serve.max_batch_size=1 serve.max_wait_ms=0``). Output (2-core CPU, tiny PRM) looks like::

    mode      requests  errors  p50_ms  p99_ms  req/s  solutions/s  mean_batch
    batch1         500       0   ...
    dynamic        500       0   ...
    speedup of dynamic batching over batch size 1: 3.1x (throughput)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e2h.loopback import free_port  # noqa: E402  (after the path: the script runs from a clone)


def build_tiny_prm(directory: Path, seed: int = 0) -> Path:
    """A random tiny PRM (hidden 64, 2 layers) with a non-zero head, so scores differ between steps."""
    import torch

    from e2h.config import BackboneSection
    from e2h.world.tiny_models import llama_config, train_tokenizer
    from prm.model import RewardModel

    texts = [f"# Question\n\nWhat is {a} + {b}?\n\n# Solution\n\nWe add {a} and {b}.\n\n# Answer\n\n{a + b}"
             for a in range(30) for b in range(30)]
    tokenizer = train_tokenizer(texts, vocab_size=400)
    torch.manual_seed(seed)
    model = RewardModel.from_config(llama_config(tokenizer, BackboneSection(max_position_embeddings=512)))
    torch.nn.init.normal_(model.net.score.weight, std=0.5)
    model.save_pretrained(directory, tokenizer)
    return directory


def build_smollm2_prm(directory: Path, seed: int = 0) -> Path:
    """A PRM of realistic cost: SmolLM2-135M (`e2h models fetch smollm2-135m`, converted once into the cache) with
    a random reward head; the service's cost is the backbone's, which is what batching has to pay off on."""
    import torch

    from e2h.models import ensure_model
    from prm.model import RewardModel

    backbone = ensure_model("smollm2-135m")
    torch.manual_seed(seed)
    model = RewardModel.from_backbone(str(backbone))
    torch.nn.init.normal_(model.net.score.weight, std=0.05)
    from transformers import AutoTokenizer

    model.save_pretrained(directory, AutoTokenizer.from_pretrained(backbone))
    return directory


def parameter_count(prm: Path) -> int:
    """Parameters of a saved PRM, read from its safetensors headers (nothing loaded)."""
    from safetensors import safe_open

    total = 0
    for shard in prm.glob("*.safetensors"):
        with safe_open(str(shard), "pt") as handle:
            for key in handle.keys():
                shape = handle.get_slice(key).get_shape()
                total += math.prod(shape)
    return total


def make_requests(n: int, solutions: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randrange(100), rng.randrange(100)
        sols = []
        for _ in range(solutions):
            wrong = rng.random() < 0.3
            answer = a + b + (rng.randrange(1, 5) if wrong else 0)
            steps = [f"We add {a} and {b}.", f"First {a} + {b - b % 10} = {a + b - b % 10}.", f"Then {answer}."]
            sols.append("\n\n".join(steps[: rng.randrange(1, 4)]) + f"\n\n# Answer\n\n{answer}")
        out.append({"problem": f"What is {a} + {b}?", "solutions": sols})
    return out


class Server:
    """``python -m e2h.serve`` in a subprocess, on loopback, with config overrides."""

    def __init__(self, prm: Path, overrides: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "e2h.serve", "--log-level", "warning",
                f"serve.prm_path={prm}", f"serve.port={self.port}", "serve.host=127.0.0.1",
                "serve.max_solutions=256", *overrides]
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("server not ready")

    def mean_batch(self) -> float:
        import httpx

        text = httpx.get(self.url + "/metrics", timeout=5).text
        total = float(re.search(r"^e2h_serve_batch_size_sum (\S+)$", text, re.M).group(1))
        count = float(re.search(r"^e2h_serve_batch_size_count (\S+)$", text, re.M).group(1))
        return total / count if count else 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def load(url: str, requests: list[dict], concurrency: int) -> dict:
    import httpx

    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []

    async def one(client, body):
        async with limit:
            started = time.perf_counter()
            try:
                r = await client.post("/v1/score", json=body)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                if len(r.json()["solutions"]) != len(body["solutions"]):
                    errors.append("wrong number of solutions")
                    return
            except httpx.HTTPError as err:
                errors.append(repr(err))
                return
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        await client.post("/v1/score", json=requests[0])  # connection + first-call costs out of the timing
        started = time.perf_counter()
        await asyncio.gather(*(one(client, body) for body in requests))
        wall = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    solutions = sum(len(b["solutions"]) for b in requests)
    return {"requests": len(requests), "errors": len(errors), "first_errors": errors[:3],
            "p50_ms": 1000 * q[49], "p99_ms": 1000 * q[98], "wall_s": wall,
            "req_per_s": len(requests) / wall, "solutions_per_s": solutions / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prm", default="tiny", help="PRM folder, or 'tiny' (a random hidden-64 PRM built on the "
                        "fly) or 'smollm2' (SmolLM2-135M with a random head: a realistic cost)")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (asyncio semaphore)")
    parser.add_argument("--solutions", type=int, default=4, help="solutions per request")
    parser.add_argument("--max-wait-ms", type=float, default=0.0, help="serve.max_wait_ms of the dynamic mode")
    parser.add_argument("--max-batch-tokens", type=int, default=8192)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        builders = {"tiny": build_tiny_prm, "smollm2": build_smollm2_prm}
        prm = builders[args.prm](Path(tmp) / args.prm) if args.prm in builders else Path(args.prm)
        params = parameter_count(prm)
        requests = make_requests(args.requests, args.solutions)
        modes = {
            "batch1": ["serve.max_batch_size=1", "serve.max_wait_ms=0"],
            "dynamic": [f"serve.max_wait_ms={args.max_wait_ms}", f"serve.max_batch_tokens={args.max_batch_tokens}",
                        "serve.max_batch_size=256"],
        }
        results = {}
        for mode, overrides in modes.items():
            server = Server(prm, overrides)
            try:
                server.wait_ready()
                results[mode] = asyncio.run(load(server.url, requests, args.concurrency))
                results[mode]["mean_batch"] = server.mean_batch()
            finally:
                server.stop()

    print(f"PRM {args.prm}: {params / 1e6:.2f}M parameters; {args.requests} requests x {args.solutions} solutions, "
          f"{args.concurrency} in flight")
    print(f"{'mode':8s} {'requests':>8s} {'errors':>6s} {'p50_ms':>8s} {'p99_ms':>8s} {'req/s':>7s} "
          f"{'solutions/s':>11s} {'mean_batch':>10s}")
    for mode, r in results.items():
        print(f"{mode:8s} {r['requests']:8d} {r['errors']:6d} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
              f"{r['req_per_s']:7.1f} {r['solutions_per_s']:11.1f} {r['mean_batch']:10.1f}")
        for err in r["first_errors"]:
            print(f"  error: {err}")
    speedup = results["dynamic"]["req_per_s"] / results["batch1"]["req_per_s"]
    print(f"speedup of dynamic batching over batch size 1: {speedup:.2f}x (throughput, same requests, same run)")
    if args.json:
        Path(args.json).write_text(json.dumps({"prm": args.prm, "parameters": params, "results": results,
                                               "speedup": speedup}, indent=2))
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
