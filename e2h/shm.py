"""Shared-memory debris in /dev/shm, and removing it without touching anyone else's.

A process tree killed with SIGKILL (a test that kills a run mid-way to check resume, a job hit by Slurm's kill)
cannot unlink what it created in /dev/shm, and its multiprocessing resource tracker dies with it:

    psm_*                          multiprocessing.shared_memory blocks: vLLM's engine<->worker message queues
                                   (shm_broadcast; 160 + 240 MiB per engine on CPU)
    sem.mp-*                       multiprocessing semaphores of spawn-context queues and locks (vLLM, doctor,
                                   torch DataLoader workers)
    deepspeed_allreduce_buffer_*   DeepSpeed's CPU all-reduce buffers

Only files that are ours (same uid), match these names, and that no live process maps or holds open are removed,
so another user's files, and files still in use by a concurrent job of ours, stay. Which files a process tree
made is known only while it lives (its processes map them), so it is recorded then::

    held = shm_held_by_group(proc.pid)        # before killing the group: what its processes map
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    remove_unused(held)                       # now that nothing maps them

    tracker = ShmTracker().start()            # a test session: what this process and its descendants map
    ...
    remove_unused(tracker.stop())             # at its end: what they left, never another job's files

    python -m e2h.shm --newer STAMP           # scripts/clean_debris.sh: ours, created since STAMP, unused
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

SHM = Path("/dev/shm")
DEBRIS_PATTERNS = ("psm_*", "sem.mp-*", "deepspeed_allreduce_buffer_*")


@dataclass(frozen=True)
class ShmFile:
    name: str
    inode: int
    uid: int
    mtime: float
    size: int


def shm_files(patterns: tuple[str, ...] = DEBRIS_PATTERNS, root: Path = SHM) -> list[ShmFile]:
    """The files in /dev/shm whose names match ``patterns``."""
    found = []
    try:
        names = os.listdir(root)
    except OSError:
        return []
    for name in names:
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        try:
            st = os.stat(root / name, follow_symlinks=False)
        except OSError:  # gone meanwhile
            continue
        found.append(ShmFile(name, st.st_ino, st.st_uid, st.st_mtime, st.st_size))
    return found


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _parent_and_group(pid: int) -> tuple[int, int] | None:
    try:
        # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[1]), int(fields[2])
    except (OSError, IndexError, ValueError):  # exited meanwhile
        return None


def inodes_in_use(pids: list[int] | None = None, root: Path = SHM) -> set[int]:
    """Inodes on /dev/shm that these processes (default: all we can see) map or hold open. By inode, not name:
    glibc's sem_open maps a temporary name that it then renames, so /proc/PID/maps shows 'sem.XXXXXX (deleted)'
    for a live 'sem.mp-*'."""
    dev = os.stat(root).st_dev
    device = f"{os.major(dev):02x}:{os.minor(dev):02x}"
    used: set[int] = set()
    for pid in _pids() if pids is None else pids:
        try:
            with open(f"/proc/{pid}/maps") as maps:
                for line in maps:
                    fields = line.split(maxsplit=5)
                    if len(fields) == 6 and fields[3] == device:
                        used.add(int(fields[4]))
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    st = os.stat(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if st.st_dev == dev:
                    used.add(st.st_ino)
        except OSError:  # exited meanwhile, or not ours to read
            continue
    return used


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (Ray's raylet and its workers, vLLM's engine core and workers)."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        found = _parent_and_group(pid)
        if found is not None:
            children.setdefault(found[0], []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


class ShmTracker:
    """Polls /dev/shm from a thread and records each debris-named file that this process or one of its
    descendants maps or holds open: the files this process tree made (a file is mapped from the moment it is
    created: sem_open maps before it names the file, SharedMemory holds its fd). ``stop()`` returns them for
    :func:`remove_unused`; another job's files are never recorded."""

    def __init__(self, root: int | None = None, interval_s: float = 1.0,
                 patterns: tuple[str, ...] = DEBRIS_PATTERNS) -> None:
        import threading

        self.root = os.getpid() if root is None else root
        self.interval_s = interval_s
        self.patterns = patterns
        self.ours: dict[tuple[str, int], ShmFile] = {}  # by (name, inode): a name can be reused
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2h-shm-tracker", daemon=True)

    def start(self) -> "ShmTracker":
        self._thread.start()
        return self

    def scan(self) -> None:
        """Record the debris-named files that the tree maps now (only scans the tree when an unrecorded one is
        there)."""
        unrecorded = [f for f in shm_files(self.patterns) if (f.name, f.inode) not in self.ours]
        if not unrecorded:
            return
        used = inodes_in_use(descendants(self.root))
        for f in unrecorded:
            if f.inode in used:
                self.ours[(f.name, f.inode)] = f

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                self.scan()
            except OSError:  # /proc or /dev/shm changed under us; the next tick sees the rest
                continue

    def stop(self) -> list[ShmFile]:
        self._stopped.set()
        self._thread.join()
        self.scan()
        return list(self.ours.values())


def shm_held_by_group(pgid: int, patterns: tuple[str, ...] = DEBRIS_PATTERNS) -> list[ShmFile]:
    """The debris-named files that the processes of process group ``pgid`` map or hold open now (call it before
    killing the group: afterwards nothing records whose they were)."""
    members = [pid for pid in _pids() if (_parent_and_group(pid) or (0, 0))[1] == pgid]
    if not members or not SHM.is_dir():
        return []
    used = inodes_in_use(members)
    return [f for f in shm_files(patterns) if f.inode in used]


def remove_unused(files: list[ShmFile], root: Path = SHM) -> list[str]:
    """Unlink those of ``files`` that are ours, still the same file (inode), and used by no live process.
    Returns the names removed."""
    uid = os.getuid()
    candidates = [f for f in files if f.uid == uid]
    if not candidates:
        return []
    used = inodes_in_use()
    removed = []
    for f in candidates:
        path = root / f.name
        try:
            if f.inode in used or os.stat(path, follow_symlinks=False).st_ino != f.inode:
                continue
            path.unlink()
        except OSError:  # gone meanwhile, or another owner's after all
            continue
        removed.append(f.name)
    return removed


def shm_now(root: Path = SHM) -> float:
    """Now, as /dev/shm stamps a file: tmpfs uses the kernel's coarse clock, a few ms behind time.time(), so a
    file created right after time.time() can carry an earlier mtime. Take a session's start from this."""
    with tempfile.NamedTemporaryFile(dir=root, prefix="e2h-clock-") as probe:
        return os.fstat(probe.fileno()).st_mtime


def remove_debris_since(stamp: float, patterns: tuple[str, ...] = DEBRIS_PATTERNS) -> list[str]:
    """Ours, created (last written) at or after ``stamp`` (from :func:`shm_now`), unused: what a session left."""
    return remove_unused([f for f in shm_files(patterns) if f.mtime >= stamp])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2h.shm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--newer", required=True,
                        help="a file whose modification time starts the session: only files created since go")
    args = parser.parse_args(argv)
    try:
        stamp = os.stat(args.newer).st_mtime
    except OSError:
        print(f"e2h.shm: no stamp file {args.newer}; nothing removed")
        return 0
    removed = remove_debris_since(stamp)
    if removed:
        print(f"e2h.shm: removed {len(removed)} file(s) from /dev/shm: {' '.join(sorted(removed))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
