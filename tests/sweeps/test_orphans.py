"""A sweep killed with SIGKILL takes its worker processes with it, and re-running it
finishes every cell.

The sweep runs as ``interp sweep`` in a subprocess, in its own session, so that whatever
the test fails on, the ``finally`` can kill the whole group it started. Its descendants
(multiprocessing's fork server and resource tracker, and the workers, children of the
fork server) are found in /proc.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(),
                                reason="finds the sweep's workers in /proc")

SWEEP = ["sweep", "--p", "7", "--width", "8", "--steps", "400", "--save-every", "20",
         "--xi", "0.1,0.3", "--alpha", "0.5,0.7", "--values", "0", "--workers", "2"]
MAIN = "import sys; from interp.cli import main; sys.argv[0] = 'interp'; main()"


def stat_of(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process, or None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return fields[0], int(fields[1]), int(fields[19])


def children(parent: int) -> dict[int, int]:
    """pid -> start time of every living process whose parent is ``parent``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = stat_of(int(entry.name))
            if st is not None and st[1] == parent and st[0] != "Z":
                found[int(entry.name)] = st[2]
    return found


def descendants(ancestor: int) -> dict[int, int]:
    """pid -> start time of every living process below ``ancestor``."""
    found, todo = {}, [ancestor]
    while todo:
        below = children(todo.pop())
        found |= below
        todo += list(below)
    return found


def running(procs: dict[int, int]) -> list[int]:
    """Those of ``procs`` still running (the same process: same start time; a zombie
    waiting for its new parent to reap it has stopped)."""
    return [pid for pid, start in procs.items()
            if (st := stat_of(pid)) is not None and st[2] == start and st[0] != "Z"]


def test_a_killed_sweep_leaves_no_worker_running_and_resumes(tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-c", MAIN, *SWEEP, "--out", str(out)]
    sweep = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        workers: dict[int, int] = {}
        deadline = time.monotonic() + 90
        # two workers, the fork server and the resource tracker
        while not (len(workers) >= 4 and any((out / "cells").glob("*.h5"))):
            assert sweep.poll() is None, "the sweep ended before its workers trained"
            assert time.monotonic() < deadline, "the sweep's workers never started training"
            workers |= descendants(sweep.pid)
            time.sleep(0.05)
        workers |= descendants(sweep.pid)
        os.kill(sweep.pid, signal.SIGKILL)  # the parent only
        assert sweep.wait(timeout=10) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while running(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running(workers) == [], "workers outlived their killed sweep"
    finally:
        try:
            os.killpg(sweep.pid, signal.SIGKILL)  # the group this test started
        except ProcessLookupError:
            pass
        sweep.wait()

    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "4 cells:" in again.stdout and "0 failed" in again.stdout
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert sorted(r["status"] for r in rows) == ["complete"] * 4
    assert sorted(p.name for p in (out / "cells").iterdir()) == sorted(
        f"{r['cell_id']}.h5" for r in rows)  # no temporary or error file left


WATCHED = """
import sys, time
from interp.sweeps import workers
sys.platform = "elsewhere"  # no prctl: the watchdog thread alone
workers.die_with_parent(int(sys.argv[1]), poll=0.1)
print("ready", flush=True)
time.sleep(60)
"""
PARENT = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())],
                         stdout=subprocess.PIPE, text=True)
print(child.pid, flush=True)
assert child.stdout.readline() == "ready\\n"
"""  # then exits, leaving its child behind


def test_the_watchdog_alone_ends_a_worker_whose_parent_died():
    """Where the kernel cannot be asked (no PR_SET_PDEATHSIG), the worker's own thread
    notices that its parent is gone."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, WATCHED], start_new_session=True,
                              stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        start = stat_of(child)[2]
        assert parent.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while running({child: start}) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running({child: start}) == [], "the worker outlived its parent"
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        parent.wait()
        parent.stdout.close()
