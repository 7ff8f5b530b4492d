"""SIGINT (Ctrl-C) and SIGTERM stop ``interp train``, ``interp analyze`` and a 2-worker
``interp sweep`` within seconds, with exit code 130 or 143, the `--resume` hint, no
process left running and the finished work kept; resuming finishes bit for bit as an
uninterrupted run.

Each command runs in a subprocess in its own session (the ``finally`` kills the group
whatever fails). A ``sitecustomize`` on the child's ``PYTHONPATH`` (which the sweep's
fork server and workers inherit) stalls it at a known point, after a checkpoint is kept
or while figures are drawn, and touches a marker file: the signal arrives while the
command is surely working, on a loaded machine or a fast one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.store.run import Run
from interp.sweeps.spec import SweepSpec, cells
from interp.training.trainer import Trainer
from tests.sweeps.test_orphans import descendants, running

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(),
                                reason="finds the command's processes in /proc")

MAIN = "import sys; from interp.cli import main; sys.argv[0] = 'interp'; main()"
STALL = textwrap.dedent("""
    import os, time
    from pathlib import Path
    marker, where = os.environ["STALL_MARKER"], os.environ["STALL_AT"]

    def stall():
        Path(marker).touch()
        time.sleep(300)

    if where == "figures":
        import interp.plots.figures as figures
        draw = figures.write_figures
        def write_figures(*args, **kwargs):
            stall()
            return draw(*args, **kwargs)
        figures.write_figures = write_figures
    else:  # NAME:STEP, after the writer of file NAME keeps checkpoint STEP
        from interp.store.writer import TrajectoryWriter
        name, step = where.split(":")
        commit = TrajectoryWriter.on_checkpoint
        def on_checkpoint(self, checkpoint):
            commit(self, checkpoint)
            if checkpoint.step == int(step) and self.path.name == name:
                stall()
        TrajectoryWriter.on_checkpoint = on_checkpoint
""")
#: Train and sweep: SIGINT in the default run, SIGTERM (the same path, another exit code)
#: in the slow one; analyze the other way round.
SIGNALS = [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)]
TERM_FIRST = [pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow), (signal.SIGTERM, 143)]
TRAIN = ["--p", "7", "--width", "8", "--steps", "60", "--save-every", "10"]
#: The commands run on one thread, as :func:`assert_same_weights` trains: a run's bits are
#: fixed for a given thread count (at p 7 a product's differ between one and two).
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def ignore_sigint() -> None:
    """Start the command with SIGINT ignored, as a shell script starts a background job
    (``interp sweep ... &``): Python then leaves Ctrl-C alone, so a ``kill -INT`` went
    unheard until the command set its own handler."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def interrupt(args: list[str], tmp: Path, stall_at: str, sig: int,
              ready: Path | None = None) -> tuple[subprocess.CompletedProcess, list[int]]:
    """Run ``interp ARGS`` (SIGINT ignored at its start, :func:`ignore_sigint`) stalled at
    ``stall_at``; once it stalls (and ``ready`` exists,
    when given) send it ``sig``. Returns its result, waited for at most 10 s after the
    signal, and its descendants still running 10 s after it ended."""
    hook = tmp / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(STALL)
    marker = tmp / "stalled"
    marker.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), os.getcwd()]),
               STALL_MARKER=str(marker), STALL_AT=stall_at, **ONE_THREAD)
    proc = subprocess.Popen([sys.executable, "-c", MAIN, *map(str, args)], env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=ignore_sigint)
    try:
        deadline, below = time.monotonic() + 240, {}
        while not (marker.exists() and (ready is None or ready())):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never reached its stall"
            below |= descendants(proc.pid)
            time.sleep(0.05)
        below |= descendants(proc.pid)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=10)
        deadline = time.monotonic() + 10
        while running(below) and time.monotonic() < deadline:
            time.sleep(0.1)
        return (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr),
                running(below))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started
        except ProcessLookupError:
            pass
        proc.wait()


def assert_same_weights(path: Path, cfg) -> None:
    """The final weights of the run file ``path`` are those of ``cfg`` trained alone, on
    one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        want = Trainer(cfg).run().model.arrays()
    finally:
        torch.set_num_threads(before)
    with Run(path) as run:
        assert run.complete
        got = run.weights(cfg.train.steps)
    for k, v in want.items():
        assert np.array_equal(got[k], v.numpy()), k


@pytest.mark.parametrize("sig, code", SIGNALS, ids=["INT", "TERM"])
def test_an_interrupted_train_keeps_its_checkpoints_and_resumes_bit_identical(
        tmp_path, sig, code):
    path = tmp_path / "run.h5"
    res, left = interrupt(["train", *TRAIN, "--out", path], tmp_path, "run.h5:30", sig)
    assert res.returncode == code, res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: interrupted; continue it with `interp train --resume {path}`.")
    assert left == []
    with Run(path) as run:
        assert not run.complete and run.steps[-1] == 30
        cfg = run.config
    resumed = subprocess.run([sys.executable, "-c", MAIN, "train", "--resume", str(path),
                              "--quiet"], capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, **ONE_THREAD))
    assert resumed.returncode == 0, resumed.stderr
    with Run(path) as run:
        assert list(run.steps) == [0, 10, 20, 30, 40, 50, 60]
    assert_same_weights(path, cfg)


@pytest.mark.parametrize("sig, code", TERM_FIRST, ids=["INT", "TERM"])
def test_an_interrupted_analysis_leaves_no_output_and_no_temporary(tmp_path, sig, code):
    run = tmp_path / "run.h5"
    ok = subprocess.run([sys.executable, "-c", MAIN, "train", *TRAIN, "--out", str(run),
                         "--quiet"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    before = run.read_bytes()
    out = tmp_path / "analysis"
    res, left = interrupt(["analyze", run, "--out", out], tmp_path, "figures", sig)
    assert res.returncode == code, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "error: interrupted."
    assert left == []
    assert not out.exists() and run.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hook", "run.h5", "stalled"]


@pytest.mark.parametrize("sig, code", SIGNALS, ids=["INT", "TERM"])
def test_an_interrupted_two_worker_sweep_keeps_finished_cells_and_resumes(tmp_path, sig, code):
    """SIGINT or SIGTERM while one worker is stalled in a cell after its checkpoint 40 and the other
    has finished one cell or more: both workers end, the finished cells are kept, the stalled
    cell's file keeps its checkpoints; the same command again resumes it (and the other
    worker's cell, if it was interrupted after a checkpoint) and trains the rest, each cell
    bit for bit as trained alone."""
    out = tmp_path / "sweep"
    args = ["sweep", "--p", "7", "--width", "8", "--steps", "80", "--save-every", "20",
            "--xi", "0.1,0.3", "--alpha", "0.5,0.7", "--values", "0", "--workers", "2",
            "--out", out]

    def one_finished() -> bool:
        try:
            rows = json.loads((out / "summary.json").read_text())["rows"]
        except (OSError, ValueError):
            return False
        return any(r["status"] == "complete" for r in rows)

    first = "wd0_xi0.1_a0.5_s0"
    res, left = interrupt(args, tmp_path, f"{first}.h5:40", sig, one_finished)
    assert res.returncode == code, res.stderr
    assert "run the same command again" in res.stderr.strip().splitlines()[-1]
    assert left == [], "worker processes outlived the interrupted sweep"
    with Run(out / "cells" / f"{first}.h5") as run:
        assert not run.complete and run.steps[-1] == 40
    again = subprocess.run([sys.executable, "-c", MAIN, *map(str, args)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    counts = re.fullmatch(r"4 cells: (\d) trained, (\d) resumed, (\d) already complete, "
                          r"0 failed; summary in .*\n", again.stdout)
    assert counts, again.stdout
    trained, resumed, skipped = map(int, counts.groups())
    # the stalled cell resumes; the other worker's next cell, when the signal came in it
    # after its first checkpoint, too
    assert resumed >= 1 and skipped >= 1 and trained + resumed + skipped == 4
    spec = SweepSpec.from_json((out / "sweep.json").read_text())
    for cid, cfg in cells(spec):
        assert_same_weights(out / "cells" / f"{cid}.h5", cfg)


def test_a_signal_a_finalizer_swallows_is_raised_again_without_a_word(capsys):
    """A signal that arrives inside a finalizer (an import lock's weakref callback, as one
    Ctrl-C of a resume did) cannot be raised there: Python printed "Exception ignored in"
    and a traceback, and the command ran on. It is delivered again once the finalizer has
    returned, and nothing is printed."""
    from interp.cli.interrupts import Interrupted, interrupts

    class SignalledInItsFinalizer:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted) as caught:
        with interrupts():
            finalized = SignalledInItsFinalizer()
            del finalized
            for _ in range(100):
                time.sleep(0.01)
    assert caught.value.signum == signal.SIGINT
    assert capsys.readouterr().err == ""
