"""/dev/shm debris (e2h.shm): a SIGKILLed process tree leaves its shared memory and semaphores behind; the
cleanup removes exactly those, and never a file that is in use, older than the session, or another user's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from multiprocessing import shared_memory

import pytest

from conftest import kill_process_group
from e2h.shm import (SHM, ShmTracker, remove_debris_since, remove_unused, shm_files, shm_held_by_group,
                     shm_now)

pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm")

# What vLLM's engine (shared_memory message queues) and a spawn-context multiprocessing queue create.
CHILD = """
import multiprocessing, sys, time
from multiprocessing import shared_memory
block = shared_memory.SharedMemory(create=True, size=1 << 16)
lock = multiprocessing.get_context("spawn").Lock()
print(block.name, "sem." + lock._semlock.name.lstrip("/"), flush=True)
time.sleep(300)
"""


def start_child():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    names = proc.stdout.readline().split()
    assert len(names) == 2, names
    return proc, names


def test_a_killed_process_group_leaves_shm_that_the_cleanup_removes():
    proc, names = start_child()
    try:
        held = shm_held_by_group(proc.pid)
        assert sorted(f.name for f in held) == sorted(names)  # the semaphore found by inode, not by name
        os.killpg(proc.pid, 9)
        proc.wait()
        assert all((SHM / n).exists() for n in names)  # the leak: nobody left to unlink them
        assert sorted(remove_unused(held)) == sorted(names)
        assert not any((SHM / n).exists() for n in names)
    finally:
        kill_process_group(proc)
        for n in names:
            (SHM / n).unlink(missing_ok=True)


def test_kill_process_group_removes_what_the_group_held():
    proc, names = start_child()
    assert sorted(kill_process_group(proc)) == sorted(names)
    assert not any((SHM / n).exists() for n in names)


def test_the_session_sweep_spares_files_in_use_older_or_not_ours():
    started = shm_now()
    in_use = shared_memory.SharedMemory(create=True, size=4096)  # mapped by this process
    leaked = shared_memory.SharedMemory(create=True, size=4096)
    leaked.close()  # unmapped, not unlinked: debris of this session
    older = shared_memory.SharedMemory(create=True, size=4096)
    older.close()
    os.utime(SHM / older.name, (started - 3600, started - 3600))  # from before the session
    others = SHM / f"psm_e2h_test_{os.getpid()}"
    others.write_bytes(b"x")
    chowned = os.getuid() == 0
    if chowned:
        os.chown(others, 65534, 65534)  # another user's, as root can make one
    try:
        removed = remove_debris_since(started)
        assert leaked.name in removed and not (SHM / leaked.name).exists()
        assert (SHM / in_use.name).exists() and (SHM / older.name).exists()
        assert others.exists() == chowned  # kept when another user's; ours and unused otherwise
        assert {f.name for f in shm_files()} >= {in_use.name, older.name}
    finally:
        in_use.close()
        for block in (in_use, leaked, older):
            try:
                shared_memory.SharedMemory(name=block.name).unlink()
            except FileNotFoundError:
                pass
        others.unlink(missing_ok=True)


def test_the_tracker_records_only_what_its_process_tree_maps():
    """The session's tracker, rooted at a child here: the child's files are recorded (and removed once it is
    killed); a file of another process tree (this test process, for the tracker) is not, though it is ours."""
    proc, names = start_child()
    tracker = ShmTracker(root=proc.pid, interval_s=0.05).start()
    outsider = shared_memory.SharedMemory(create=True, size=4096)
    try:
        time.sleep(0.3)
        os.killpg(proc.pid, 9)
        proc.wait()
        recorded = tracker.stop()
        assert sorted(f.name for f in recorded) == sorted(names)
        outsider.close()  # now unused too: still not the tree's, so it stays
        assert sorted(remove_unused(recorded)) == sorted(names)
        assert (SHM / outsider.name).exists()
    finally:
        kill_process_group(proc)
        outsider.unlink()
        for n in names:
            (SHM / n).unlink(missing_ok=True)
