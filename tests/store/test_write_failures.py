"""A write failure never crashes (issue 23, point 2): a file-size limit (RLIMIT_FSIZE, what
a full disk does to a file) during `interp train`, `--resume` and `sweep --workers 0` ends
in one sentence and exit code 2, not a SIGSEGV or a traceback; the file keeps every
committed checkpoint, and `--resume` (or the same sweep again) recovers it although its
tail was cut, to the bits of the uninterrupted run."""

import re
import resource
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from interp.cli.app import app
from interp.store.run import Run
from interp.store.trajectory import TrajectoryFile
from tests.store.test_file_safety import assert_same_run

RUN = ["--p", "11", "--width", "12", "--steps", "200", "--save-every", "5", "--quiet"]
SWEEP = ["sweep", "--p", "11", "--width", "12", "--steps", "100", "--save-every", "5",
         "--xi", "0", "--values", "0", "--alpha", "0.5", "--seeds", "1", "--workers", "0",
         "--quiet"]
KEPT = re.compile(r"error: disk full: run file '(?P<path>[^']+)' keeps its (?P<n>\d+) "
                  r"committed checkpoints \(the last at step (?P<step>\d+)\); free some "
                  r"space and resume it (?P<how>.+)\.\n")


def limited(args, cwd, limit):
    """``interp ARGS`` in a child process whose files may grow to ``limit`` bytes."""
    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([sys.executable, "-m", "interp.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600, preexec_fn=cap)


def reference(args, cwd):
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output


def assert_kept(res, path, ref, how):
    """The child said one sentence, exited 2, and ``path`` holds what it says: the
    reference's first checkpoints, bit for bit. Returns how many."""
    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    found = KEPT.fullmatch(res.stderr)
    assert found, res.stderr[-3000:]
    assert found["how"] == how and found["path"].endswith(path.name)
    n = int(found["n"])
    with Run(TrajectoryFile(path, recover=True)) as got, Run(ref) as want:
        assert len(got.steps) == n and got.steps[-1] == int(found["step"])
        for k in want.names:
            np.testing.assert_array_equal(got.read(k), want.read(k, steps=slice(0, n)))
    return n


def test_a_full_disk_during_train_and_resume_keeps_every_committed_checkpoint(tmp_path):
    ref, path = tmp_path / "ref.h5", tmp_path / "run.h5"
    reference(["train", *RUN, "--out", str(ref)], tmp_path)
    size = ref.stat().st_size
    res = limited(["train", *RUN, "--out", path.name], tmp_path, int(size * 0.7))
    n = assert_kept(res, path, ref, f"with `interp train --resume {path.name}`")
    assert 0 < n < 41
    res = limited(["train", "--resume", path.name, "--quiet"], tmp_path, int(size * 0.85))
    assert assert_kept(res, path, ref, f"with `interp train --resume {path.name}`") > n
    res = CliRunner().invoke(app, ["train", "--resume", str(path), "--quiet"])
    assert res.exit_code == 0, res.output
    assert_same_run(path, ref)


def test_a_full_disk_during_a_sweep_stops_it_and_the_same_sweep_resumes(tmp_path):
    reference([*SWEEP, "--out", str(tmp_path / "ref")], tmp_path)
    (ref,) = (tmp_path / "ref" / "cells").glob("*.h5")
    res = limited([*SWEEP, "--out", "sweep"], tmp_path, int(ref.stat().st_size * 0.8))
    cell = tmp_path / "sweep" / "cells" / ref.name
    assert assert_kept(res, cell, ref, "by running the same sweep again") > 0
    assert not list((tmp_path / "sweep" / "cells").glob("*.error"))
    res = CliRunner().invoke(app, [*SWEEP, "--out", str(tmp_path / "sweep")])
    assert res.exit_code == 0, res.output
    assert "1 resumed" in res.output
    assert_same_run(cell, ref)
