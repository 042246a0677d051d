"""Hard timeouts that work anywhere (main thread, worker threads, Ray actors, asyncio servers).

Each worker is a separate Python process (``python -m e2h.grading.timeout``) that imports SymPy once
and answers JSON requests on its stdin/stdout. The parent waits with ``select`` (no signals, so any
thread may call it); when a request runs past its deadline the worker is killed and a fresh one is
started on the next request. Workers exit when the parent's pipe closes.

    pool = WorkerPool(size=2)
    pool.run_many([("compare", ["1/2", "0.5"]), ("compare", ["x", "<a slow pair>"])], timeout_s=1.0)
    -> [Result(ok=True, value=[True, "rational"]), Result(ok=False, timed_out=True)]

A worker answers the ops of :data:`OPS`; another worker program (``WorkerPool(command=[...])``) may call
:func:`serve` with more (tests/grading_worker_with_sleep.py adds ``sleep`` to exercise the timeout path).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from e2h.grading.compare import worker_compare
from e2h.grading.extract import MAX_ANSWER_CHARS, answer_candidate
from e2h.grading.parse import MAX_DEPTH, bracket_depth

STARTUP_TIMEOUT_S = 120.0  # importing SymPy on a busy 2-core machine can take a while
WORKER_MEMORY_BYTES = 4 * 1024**3


@dataclass
class Result:
    ok: bool
    value: Any = None
    timed_out: bool = False
    error: str | None = None


WORKER_COMMAND = (sys.executable, "-m", "e2h.grading.timeout")


class Worker:
    """One killable worker process, started with ``command`` (default: this module's :func:`serve`)."""

    def __init__(self, command: Sequence[str] = WORKER_COMMAND):
        self.command = list(command)
        self.proc: subprocess.Popen | None = None
        self._buffer = b""

    def _start(self) -> None:
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, close_fds=True,
        )
        self._buffer = b""
        ready = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        if ready is None or json.loads(ready).get("ready") is not True:
            self.kill()
            raise RuntimeError("grading worker failed to start")

    def _read_line(self, deadline: float) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:  # the worker died (crash, out of memory)
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def call(self, op: str, args: list, timeout_s: float) -> Result:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"op": op, "args": args}).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            return Result(ok=False, error="worker died")
        line = self._read_line(time.monotonic() + timeout_s)
        if line is None:
            timed_out = self.proc.poll() is None
            self.kill()
            return Result(ok=False, timed_out=timed_out, error=None if timed_out else "worker died")
        reply = json.loads(line)
        if "error" in reply:
            return Result(ok=False, error=reply["error"])
        return Result(ok=True, value=reply["value"])

    def kill(self) -> None:
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except (OSError, AttributeError):
                    pass
        self.proc = None
        self._buffer = b""


class WorkerPool:
    """``size`` killable workers; ``run_many`` spreads requests over them from a few threads."""

    def __init__(self, size: int = 2, command: Sequence[str] = WORKER_COMMAND):
        self.size = max(1, size)
        self.command = list(command)
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        for _ in range(self.size):
            self._idle.put(Worker(self.command))
        self._all: list[Worker] = []
        self._lock = threading.Lock()

    def grow(self, size: int) -> None:
        with self._lock:
            while self.size < size:
                self._idle.put(Worker(self.command))
                self.size += 1

    def run(self, op: str, args: list, timeout_s: float) -> Result:
        worker = self._idle.get()
        with self._lock:
            if worker not in self._all:
                self._all.append(worker)
        try:
            return worker.call(op, args, timeout_s)
        except RuntimeError as err:
            return Result(ok=False, error=str(err))
        finally:
            self._idle.put(worker)

    def run_many(self, requests: list[tuple[str, list]], timeout_s: float, threads: int | None = None) -> list[Result]:
        results: list[Result | None] = [None] * len(requests)
        if not requests:
            return []
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(requests)):
            todo.put(i)

        def drain():
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                op, args = requests[i]
                results[i] = self.run(op, args, timeout_s)

        n = max(1, min(threads or self.size, self.size, len(requests)))
        if n == 1:
            drain()
        else:
            pool = [threading.Thread(target=drain, daemon=True) for _ in range(n)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
        return results  # type: ignore[return-value]

    def close(self) -> None:
        with self._lock:
            for worker in self._all:
                worker.kill()
            self._all.clear()


_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def shared_pool(size: int = 2) -> WorkerPool:
    """The process-wide pool (created on first use, grown on demand, closed at exit)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = WorkerPool(size)
            atexit.register(_POOL.close)
        else:
            _POOL.grow(size)
        return _POOL


# ---------------------------------------------------------------- worker side

def _compare(args: list) -> list:
    return list(worker_compare(str(args[0]), str(args[1]), *args[2:4]))


def _extract(args: list) -> list:
    """A long text's answer, and whether a text without one is nested too deep."""
    answer = answer_candidate(str(args[0]))
    too_deep = answer is None and bracket_depth(str(args[0])) > MAX_DEPTH
    return [answer[: MAX_ANSWER_CHARS + 1] if answer is not None else None, too_deep]


# op name -> function of the request's args; its return value (JSON) is the reply
OPS: dict[str, Callable[[list], Any]] = {"compare": _compare, "extract": _extract}


def serve(extra_ops: Mapping[str, Callable[[list], Any]] | None = None) -> None:
    """The worker's loop: JSON requests on stdin, one reply per line on stdout, until stdin closes."""
    ops = {**OPS, **(extra_ops or {})}
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    import sympy  # noqa: F401  (heavy: warm the import before saying ready)

    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            op, args = request["op"], request["args"]
            if op not in ops:
                raise ValueError(f"unknown op {op!r}")
            reply = {"value": ops[op](args)}
        except Exception as err:  # noqa: BLE001 - report any failure as this pair's error
            reply = {"error": f"{type(err).__name__}: {err}"[:500]}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    serve()
