"""Adaptive sweeps: the refinement rule on grids worked out by hand, and an adaptive sweep
against the full grid it stands for."""

import dataclasses

import numpy as np
import pytest

from interp.analysis.phase import PHASES
from interp.config import RunConfig
from interp.store.run import Run
from interp.sweeps.adaptive import adaptive_rows, lattice, refine
from interp.sweeps.run import run_sweep
from interp.sweeps.spec import SweepSpec, load_spec
from interp.sweeps.summary import read_summary, summary


def tiny_spec(**kw):
    """3 x 3 cells that reach two phases: comprehension at corrupt 0 and train_frac 0.8 (weight
    decay 5), memorization at the other corners."""
    base = RunConfig().replace(data={"p": 11}, model={"width": 32},
                               train={"steps": 300, "save_every": 100, "lr": 0.02})
    return SweepSpec(**{"base": base, "corrupt": (0.0, 0.15, 0.3), "train_frac": (0.4, 0.6, 0.8),
                        "values": (5.0,)} | kw)


def run_rule(truth, stride):
    """Refine until done, revealing the true phase of each point it asks for; returns
    the rounds (the points trained in each) and the final known and inferred grids."""
    known = np.full(truth.shape, -1)
    rounds = []
    while True:
        train, inferred = refine(known, stride)
        if not train.any():
            return rounds, known, inferred
        rounds.append(sorted(zip(*map(list, np.nonzero(train)))))
        known[train] = truth[train]


def test_lattice_keeps_every_stride_th_point_and_the_last():
    np.testing.assert_array_equal(lattice(17, 4), [0, 4, 8, 12, 16])
    np.testing.assert_array_equal(lattice(10, 4), [0, 4, 8, 9])
    np.testing.assert_array_equal(lattice(3, 8), [0, 2])


def test_a_vertical_boundary_is_refined_and_the_rest_inferred():
    # phase 0 in columns 0-1, phase 1 in columns 2-4 (5 x 5, coarse stride 4)
    truth = np.array([[0, 0, 1, 1, 1]] * 5)
    rounds, known, inferred = run_rule(truth, 4)
    # the 4 corners; then of stride 2 the column between disagreeing corners (column
    # 2: its top and bottom edges and the centre), rows 0 and 4 of column 0 agreeing
    # (0) as do those of column 4 (1); then at stride 1 column 1, between column 0 (0)
    # and column 2 (1); column 3 lies between agreeing columns 2 and 4 and is inferred
    assert rounds == [[(0, 0), (0, 4), (4, 0), (4, 4)],
                      [(0, 2), (2, 2), (4, 2)],
                      [(i, 1) for i in range(5)]]
    trained = known >= 0
    assert trained.sum() == 12
    np.testing.assert_array_equal(known[trained], truth[trained])
    np.testing.assert_array_equal(inferred >= 0, ~trained)
    np.testing.assert_array_equal(np.where(trained, known, inferred), truth)


def test_an_island_inside_an_agreeing_coarse_box_is_not_seen():
    truth = np.zeros((5, 5), dtype=np.int64)
    truth[2, 2] = 3  # one point of another phase, between coarse points that agree
    rounds, known, inferred = run_rule(truth, 4)
    assert rounds == [[(0, 0), (0, 4), (4, 0), (4, 4)]]
    assert inferred[2, 2] == 0  # the documented limit: features finer than the stride


def test_points_already_known_are_used_and_never_trained_again():
    known = np.full((3, 3), -1)
    known[[0, 0, 2, 2], [0, 2, 0, 2]] = [1, 1, 1, 2]
    known[1, 1] = 2  # trained before (by a full sweep into the same folder)
    train, inferred = refine(known, 2)
    # (1, 2) and (2, 1) lie on edges whose ends disagree; (1, 1) is known
    np.testing.assert_array_equal(train, [[0, 0, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(inferred, [[-1, 1, -1], [1, -1, -1], [-1, -1, -1]])


def test_stride_one_trains_every_point_and_an_unknown_coarse_point_comes_first():
    train, inferred = refine(np.full((2, 3), -1), 1)
    assert train.all() and (inferred == -1).all()
    known = np.zeros((5, 5), dtype=np.int64)
    known[4, 4] = -1  # a coarse point not yet complete (a killed sweep): it comes first
    train, inferred = refine(known, 4)
    np.testing.assert_array_equal(np.argwhere(train), [[4, 4]])


@pytest.mark.parametrize("known, stride, match", [
    (np.zeros(3, dtype=np.int64), 2, "known must be a 2D integer array"),
    (np.zeros((3, 3)), 2, "known must be a 2D integer array"),
    (np.zeros((3, 3), dtype=np.int64), 0, "stride must be an integer >= 1"),
    (np.zeros((3, 3), dtype=np.int64), True, "stride must be an integer >= 1"),
])
def test_bad_input_is_refused(known, stride, match):
    with pytest.raises(ValueError, match=match):
        refine(known, stride)


@pytest.mark.parametrize("adaptive", [3, -2, True, 2.0])
def test_spec_adaptive_must_be_a_power_of_two(adaptive):
    with pytest.raises(ValueError, match="adaptive must be 0"):
        tiny_spec(adaptive=adaptive)


def row(cid, value, corrupt, train_frac, seed, status, phase=None):
    return {"cell_id": cid, "regularizer": "weight_decay", "value": value, "corrupt": corrupt,
            "train_frac": train_frac, "seed": seed, "status": status, "phase": phase,
            "acc_test": None if status != "complete" else 0.5, "steps": 10, "lr": 0.01,
            "error": None}


def test_rows_refine_each_value_alone_and_a_point_needs_every_seed():
    c, m = "complete", "missing"
    mem, conf = "memorization", "confusion"
    rows = [  # value 1: 1 x 3 plane, ends agree; value 2: ends disagree (seed 1 missing)
        row("a", 1, 0.1, 0.5, 0, c, mem), row("b", 1, 0.2, 0.5, 0, m),
        row("c", 1, 0.3, 0.5, 0, c, mem),
        row("d", 2, 0.1, 0.5, 0, c, mem), row("e", 2, 0.1, 0.5, 1, c, conf),
        row("f", 2, 0.2, 0.5, 0, m), row("g", 2, 0.3, 0.5, 0, c, conf)]
    out, todo = adaptive_rows(rows, 2)
    assert todo == ["f"]  # d/e: a tie goes to the phase first in PHASES, memorization
    assert PHASES.index(mem) < PHASES.index(conf)
    assert out[1]["status"] == "inferred" and out[1]["phase"] == mem
    assert out[1]["acc_test"] is None and rows[1]["status"] == "missing"  # input kept
    assert [r["status"] for r in out[3:]] == [c, c, m, c]
    rows[4] = row("e", 2, 0.1, 0.5, 1, m)
    out, todo = adaptive_rows(rows, 2)
    assert todo == ["e"]  # a coarse point is known only once every seed is complete


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory):
    """The 3 x 3 grid trained in full (in this process) and adaptively (coarse stride 2),
    the adaptive one killed after its third cell and run again by two worker processes."""
    spec = tiny_spec()
    root = tmp_path_factory.mktemp("adaptive")
    full = run_sweep(spec, root / "full", workers=0)
    adaptive = dataclasses.replace(spec, adaptive=2)

    def kill_after_three(event):
        if event.done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(adaptive, root / "adaptive", workers=0, progress=kill_after_three)
    report = run_sweep(adaptive, root / "adaptive", workers=2)  # resumed by 2 processes
    return root, full, report


def test_adaptive_sweep_equals_the_full_grid_where_it_trained(two_sweeps):
    root, full, report = two_sweeps
    truth = {r["cell_id"]: r for r in full.rows}
    assert len({r["phase"] for r in full.rows}) >= 2  # a boundary to refine
    trained = [r for r in report.rows if r["status"] == "complete"]
    inferred = [r for r in report.rows if r["status"] == "inferred"]
    assert len(trained) + len(inferred) == 9 and inferred and not report.failed
    assert len(trained) > 4  # the 2 x 2 coarse grid, then the points it refined
    assert report.n_inferred == len(inferred) and report.n_skipped == 3
    assert report.n_trained + report.n_resumed + report.n_skipped == len(trained)
    for r in trained:  # the same cells, bit for bit, killed and resumed or not
        assert r["phase"] == truth[r["cell_id"]]["phase"]
        with Run(root / "adaptive" / "cells" / f"{r['cell_id']}.h5") as a, \
                Run(root / "full" / "cells" / f"{r['cell_id']}.h5") as f:
            for name, w in f.weights().items():
                np.testing.assert_array_equal(a.weights()[name], w)
    for r in inferred:
        assert r["acc_test"] is None and r["phase"] in PHASES
        assert not (root / "adaptive" / "cells" / f"{r['cell_id']}.h5").exists()
    assert read_summary(root / "adaptive") == list(report.rows)


def test_a_finished_adaptive_sweep_rebuilds_and_reruns_to_the_same_rows(two_sweeps):
    root, _, report = two_sweeps
    assert summary(root / "adaptive") == list(report.rows)
    again = run_sweep(load_spec(root / "adaptive"), root / "adaptive", workers=0)
    assert again.n_trained == 0 and again.rows == report.rows
