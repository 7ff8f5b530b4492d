"""A sweep's cells over seeds (interp.sweeps.seeds): the mean and 95% interval of each
column and the phase agreement, checked by hand; cells whose seeds disagree are hatched
in the phase diagram."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from interp.config import RunConfig
from interp.data import ACCURACY_NAMES
from interp.plots.phase_diagram import mixed_grid, phase_figures
from interp.sweeps.run import run_sweep
from interp.sweeps.seeds import MEASURED, agreement, interval, seed_rows
from interp.sweeps.spec import SweepSpec


def test_interval_by_hand():
    # 1, 2, 3: mean 2, s = 1, t_{0.975, 2} = 4.302653 -> 2 -+ 4.302653 / sqrt(3)
    mean, lo, hi = interval([1.0, 2.0, 3.0])
    half = 4.302652729749464 / np.sqrt(3)
    np.testing.assert_allclose([mean, lo, hi], [2.0, 2.0 - half, 2.0 + half], rtol=1e-12)
    assert interval([0.5]) == (0.5, None, None)
    with pytest.raises(ValueError, match="at least one"):
        interval([])


def test_agreement_by_hand():
    assert agreement(["coexistence"] * 3) == ("coexistence", "stable")
    assert agreement(["coexistence", "memorization", "coexistence"]) == (
        "coexistence", "mixed: 2 of 3 coexistence")


def test_three_seeds_on_a_tiny_grid(tmp_path):
    """K = 3 seeds at 2 cells: seeds.csv holds each cell's seeds, the means and
    intervals of its summary rows' columns and its phase agreement."""
    base = RunConfig().replace(data={"p": 7}, model={"width": 8},
                               train={"steps": 20, "save_every": 5})
    spec = SweepSpec(base=base, xi=(0.0, 0.3), alpha=(0.6,), values=(1.0,), seeds=(0, 1, 2))
    out = tmp_path / "sweep"
    run_sweep(spec, out, workers=0)
    from interp.sweeps.summary import read_summary

    rows = read_summary(out)
    cells = seed_rows(rows)
    with open(out / "seeds.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert len(cells) == len(written) == 2
    for cell, line in zip(cells, written):
        members = [r for r in rows if r["xi"] == cell["xi"] and r["alpha"] == 0.6]
        assert cell["n_seeds"] == 3 and cell["seeds"] == "0 1 2" == line["seeds"]
        for column in MEASURED:
            mean, lo, hi = cell[f"{column}_mean"], cell[f"{column}_lo"], cell[f"{column}_hi"]
            if all(r[column] is None for r in members):  # no corrupted subset at xi 0,
                # no classic-grokking delay at xi > 0 (nor where no seed generalized)
                assert cell["xi"] == 0.0 or column == "grokking_delay"
                assert mean is lo is hi is None and line[f"{column}_mean"] == ""
                continue
            values = np.array([r[column] for r in members if r[column] is not None],
                              dtype=float)
            np.testing.assert_allclose(mean, values.mean(), rtol=1e-12)
            if values.std() > 0:
                assert lo < mean < hi
            np.testing.assert_allclose(float(line[f"{column}_mean"]), mean, rtol=1e-5)
        phases = [r["phase"] for r in members]
        assert cell["agreement"] == line["agreement"] == agreement(phases)[1]
    assert {f"acc_{n}_lo" for n in ACCURACY_NAMES} <= set(written[0])


def test_a_cell_whose_seeds_disagree_is_drawn_as_mixed():
    cells = ((0.1, ("coexistence",) * 3), (0.3, ("coexistence", "memorization",
                                                  "coexistence")))
    rows = [{"xi": x, "alpha": 0.5, "seed": s, "status": "complete", "value": 1.0,
             "phase": p, "acc_test": 0.5, "acc_train": 1.0}
            for x, phases in cells for s, p in enumerate(phases)]
    xi, alpha, mixed = mixed_grid(rows)
    assert mixed.tolist() == [[False, True]]
    spec = SweepSpec(xi=(0.1, 0.3), alpha=(0.5,), values=(1.0,), seeds=(0, 1, 2))
    fig = phase_figures(spec, rows)["phase_diagram"]
    hatched = [p for p in fig.axes[0].patches if p.get_hatch() == "xx"]
    assert len(hatched) == 1 and hatched[0].get_x() < 0.3 < hatched[0].get_x() + \
        hatched[0].get_width()
    assert "seeds disagree" in [t.get_text() for t in fig.legends[0].get_texts()]
