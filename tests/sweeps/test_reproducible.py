"""A sweep cell's final weights are bit-identical however the sweep trained it: alone, in
groups of 2 and 8, in this process or by 1 or 2 worker processes, and killed mid-way and
resumed (on the CPU, one torch thread per cell, the sweep's default).

The reference is each cell trained by itself with :class:`interp.Trainer`. The grid
mixes two training-set sizes, so a group puts an train_frac 0.4 cell beside an train_frac 0.7 one.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from interp.config import RunConfig
from interp.store.run import Run
from interp.sweeps.run import run_sweep
from interp.sweeps.spec import SweepSpec, cells
from interp.training.trainer import Trainer

STEPS = 60


def spec() -> SweepSpec:
    base = RunConfig().replace(data={"p": 13}, model={"width": 24},
                               train={"steps": STEPS, "save_every": 20})
    return SweepSpec(base=base, corrupt=(0.0, 0.3), train_frac=(0.4, 0.7), values=(0.0, 2.0),
                     metrics_every=7)


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, np.ndarray]]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {cid: {k: v.numpy() for k, v in Trainer(cfg).run().model.arrays().items()}
                for cid, cfg in cells(spec())}
    finally:
        torch.set_num_threads(before)


def assert_bit_identical(out, reference) -> None:
    for cid, want in reference.items():
        with Run(out / "cells" / f"{cid}.h5") as run:
            assert run.complete, cid
            got = run.weights(STEPS)
        for k, v in want.items():
            assert np.array_equal(got[k], v), (cid, k, float(np.abs(got[k] - v).max()))


@pytest.mark.parametrize("workers, batch", [(0, 1), (0, 2), (0, 8), (1, 8), (2, 2)])
def test_every_grouping_and_worker_count_gives_the_same_weights(reference, tmp_path,
                                                                workers, batch):
    report = run_sweep(spec(), tmp_path, workers=workers, batch=batch)
    assert report.n_trained == 8 and not report.failed
    assert_bit_identical(tmp_path, reference)


KILLED = textwrap.dedent("""
    import os, signal, sys
    from interp.store.writer import TrajectoryWriter
    from interp.sweeps.run import run_sweep
    from interp.sweeps.spec import SweepSpec
    commit = TrajectoryWriter.on_checkpoint
    def on_checkpoint(self, checkpoint):  # dies once checkpoint 40 of one cell is kept
        step = checkpoint.step
        commit(self, checkpoint)
        if step == 40 and self.path.name == sys.argv[3]:
            os.kill(os.getpid(), signal.SIGKILL)
    TrajectoryWriter.on_checkpoint = on_checkpoint
    run_sweep(SweepSpec.from_json(sys.argv[1]), sys.argv[2], workers=0, batch=2)
""")


def test_a_killed_and_resumed_sweep_gives_the_same_weights(reference, tmp_path):
    """Killed (SIGKILL, the whole sweep) once the third cell has kept checkpoint 40 (in a
    group of two whose other cell has not started); the re-run resumes it from 40 and
    trains the cells never started."""
    ids = [cid for cid, _ in cells(spec())]
    child = subprocess.run([sys.executable, "-c", KILLED, spec().to_json(), str(tmp_path),
                            f"{ids[2]}.h5"], timeout=300)
    assert child.returncode == -signal.SIGKILL
    with Run(tmp_path / "cells" / f"{ids[2]}.h5") as run:
        assert not run.complete and run.steps[-1] == 40
    assert not (tmp_path / "cells" / f"{ids[3]}.h5").exists()
    report = run_sweep(spec(), tmp_path, workers=0, batch=2)
    assert (report.n_skipped, report.n_resumed, report.n_trained) == (2, 1, 5)
    assert_bit_identical(tmp_path, reference)
    with Run(tmp_path / "cells" / f"{ids[2]}.h5") as run:  # the cadence, across the kill
        np.testing.assert_array_equal(run.metrics()["step"],
                                      [0, 7, 14, 20, 21, 28, 35, 40, 42, 49, 56, 60])


def test_the_stacked_cuda_path_on_the_cpu_agrees_to_float_tolerance(reference, tmp_path):
    """The path a sweep takes on CUDA (cells of equal training-set size train as one stack),
    run on the CPU: the same cells to float tolerance (on this CPU with one thread, bit
    for bit too). And the checks above compare bits: one float32 ulp of a learning rate
    shows."""
    from interp.sweeps.workers import groups, run_group

    tasks = [(cid, cfg, tmp_path / "cells" / f"{cid}.h5") for cid, cfg in cells(spec())]
    stacks = groups(tasks, 64, stacked=True)
    assert [[cfg.data.train_frac for _, cfg, _ in g] for g in stacks] == [[0.4] * 4, [0.7] * 4]
    (tmp_path / "cells").mkdir()
    for group in stacks:
        items = [(cid, cfg.to_json(), str(path)) for cid, cfg, path in group]
        outcomes = run_group(items, "weight_decay", 1, "cpu", 7, True)
        assert [action for _, action, _, _ in outcomes] == ["trained"] * 4
    for cid, want in reference.items():
        with Run(tmp_path / "cells" / f"{cid}.h5") as run:
            got = run.weights(STEPS)
        for k, v in want.items():
            np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5)
    cid, cfg = cells(spec())[0]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        lr = float(np.nextafter(np.float32(cfg.train.lr), np.float32(1)))  # one float32 ulp
        nudged = Trainer(cfg.replace(train={"lr": lr})).run().model.arrays()
    finally:
        torch.set_num_threads(before)
    assert any(not np.array_equal(nudged[k].numpy(), v) for k, v in reference[cid].items())
