"""A sweep's cells over seeds (interp.sweeps.seeds): the mean and 95% interval of each
column and the phase agreement, checked by hand; cells whose seeds disagree are hatched
in the phase diagram."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from interp.analysis.spread import agreement
from interp.config import RunConfig
from interp.data import ACCURACY_NAMES, make_dataset
from interp.plots.phase_diagram import mixed_grid, phase_figures
from interp.store.run import Run
from interp.sweeps.run import run_sweep
from interp.sweeps.seeds import MEASURED, seed_rows
from interp.sweeps.spec import SweepSpec, cells, parse_seeds


def test_interval_and_count_of_a_step_only_some_seeds_reach():
    rows = [{"regularizer": "weight_decay", "value": 1.0, "corrupt": 0.0, "train_frac": 0.5,
             "seed": s,
             "split_seed": s, "status": "complete", "phase": "grokking"}
            | dict.fromkeys(MEASURED, 0.5) | {"generalization_step": g}
            for s, g in enumerate((100, None, 300))]
    (cell,) = seed_rows(rows)
    # 100 and 300: mean 200, s = 141.42, t_{0.975, 1} = 12.7062 -> 200 -+ 12.7062 * 100
    assert cell["generalization_step_n"] == 2 and cell["memorization_step_n"] == 3
    np.testing.assert_allclose([cell[f"generalization_step_{k}"] for k in ("mean", "lo", "hi")],
                               [200.0, 200 - 1270.6204736174704, 200 + 1270.6204736174704],
                               rtol=1e-12)
    assert cell["seeds"] == cell["split_seeds"] == "0 1 2"


def three_seed_sweep(out):
    base = RunConfig().replace(data={"p": 7, "split_seed": 10}, model={"width": 8},
                               train={"steps": 20, "save_every": 5})
    spec = SweepSpec(base=base, corrupt=(0.0, 0.3), train_frac=(0.6,), values=(1.0,),
                     seeds=parse_seeds("3"))
    run_sweep(spec, out, workers=0)
    return spec


def test_three_seeds_on_a_tiny_grid(tmp_path):
    """K = 3 seeds at 2 cells, each seed its own split: the run files and summary record
    the split seeds, seeds.csv holds each cell's seeds, the means and intervals of its
    summary rows' columns (steps included) and its phase agreement; the cells whose seeds
    disagree, and only those, are hatched."""
    out = tmp_path / "sweep"
    spec = three_seed_sweep(out)
    from interp.sweeps.summary import read_summary

    rows = read_summary(out)
    check_own_splits(out, rows)
    cells = seed_rows(rows)
    with open(out / "seeds.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert len(cells) == len(written) == 2
    for cell, line in zip(cells, written):
        members = [r for r in rows if r["corrupt"] == cell["corrupt"] and r["train_frac"] == 0.6]
        assert cell["n_seeds"] == 3 and cell["seeds"] == "0 1 2" == line["seeds"]
        assert cell["split_seeds"] == "10 11 12" == line["split_seeds"]
        for column in MEASURED:
            check_column(cell, line, column, [r[column] for r in members])
        phases = [r["phase"] for r in members]
        assert cell["agreement"] == line["agreement"] == agreement(phases)[1]
    assert {f"acc_{n}_lo" for n in ACCURACY_NAMES} <= set(written[0])
    assert {"generalization_step_lo", "grokking_delay_n"} <= set(written[0])
    fig = phase_figures(spec, rows)["phase_diagram"]
    hatched = [p for p in fig.axes[0].patches if p.get_hatch() == "xx"]
    assert len(hatched) == sum(c["agreement"] != "stable" for c in cells)


def check_own_splits(out, rows):
    """Each seed of a cell trained on its own split (base split seed 10 plus the seed),
    as its run file's config and its summary row say."""
    for corrupt in (0.0, 0.3):
        train_sets = []
        for seed in (0, 1, 2):
            with Run(out / "cells" / f"wd1_xi{corrupt:g}_a0.6_s{seed}.h5") as run:
                data = run.config.data
            (row,) = [r for r in rows if r["corrupt"] == corrupt and r["seed"] == seed]
            assert data.split_seed == row["split_seed"] == 10 + seed
            assert data.corrupt_seed == row["corrupt_seed"] == seed
            train_sets.append(frozenset(make_dataset(data).train_idx.tolist()))
        assert len(set(train_sets)) == 3


def check_column(cell, line, column, values):
    """A seeds.csv column against the mean and interval of the seeds that have it."""
    mean, lo, hi = cell[f"{column}_mean"], cell[f"{column}_lo"], cell[f"{column}_hi"]
    present = np.array([v for v in values if v is not None], dtype=float)
    if column.endswith("_step") or column == "grokking_delay":
        assert cell[f"{column}_n"] == len(present) == int(line[f"{column}_n"])
    if present.size == 0:  # no corrupted subset at corrupt 0, no grokking steps at corrupt 0.3
        assert mean is lo is hi is None and line[f"{column}_mean"] == ""
        return
    np.testing.assert_allclose(mean, present.mean(), rtol=1e-12)
    if present.size > 1 and present.std() > 0:
        assert lo < mean < hi
    np.testing.assert_allclose(float(line[f"{column}_mean"]), mean, rtol=1e-5)


def test_a_cell_whose_seeds_disagree_is_drawn_as_mixed():
    cells = ((0.1, ("coexistence",) * 3), (0.3, ("coexistence", "memorization",
                                                  "coexistence")))
    rows = [{"corrupt": x, "train_frac": 0.5, "seed": s, "status": "complete", "value": 1.0,
             "phase": p, "acc_test": 0.5, "acc_train": 1.0}
            for x, phases in cells for s, p in enumerate(phases)]
    corrupt, train_frac, mixed = mixed_grid(rows)
    assert mixed.tolist() == [[False, True]]
    spec = SweepSpec(corrupt=(0.1, 0.3), train_frac=(0.5,), values=(1.0,), seeds=(0, 1, 2))
    fig = phase_figures(spec, rows)["phase_diagram"]
    hatched = [p for p in fig.axes[0].patches if p.get_hatch() == "xx"]
    assert len(hatched) == 1 and hatched[0].get_x() < 0.3 < hatched[0].get_x() + \
        hatched[0].get_width()
    assert "seeds disagree" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_a_seed_cell_written_with_the_base_split_is_refused_not_mixed_in(tmp_path):
    """A multi-seed folder from before seeds had their own splits holds a seed-1 cell
    trained on the base split: the sweep refuses it, naming the file, and leaves it as it
    was."""
    from interp.training.runner import train_to_file

    base = RunConfig().replace(data={"p": 7}, model={"width": 8},
                               train={"steps": 4, "save_every": 2})
    spec = SweepSpec(base=base, corrupt=(0.3,), train_frac=(0.6,), values=(1.0,), seeds=(0, 1))
    (old_id, _), (new_id, cfg) = cells(spec)
    (tmp_path / "cells").mkdir()
    path = tmp_path / "cells" / f"{new_id}.h5"
    train_to_file(cfg.replace(data={"split_seed": 0, "corrupt_seed": 0}), path,
                  metrics_every=2)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=f"cell file '{path}' must hold this sweep's config "
                       "for its cell but holds another run"):
        run_sweep(spec, tmp_path, workers=0)
    assert path.read_bytes() == before
    assert not (tmp_path / "cells" / f"{old_id}.h5").exists()


@pytest.mark.slow
def test_seeds_with_their_own_splits_that_disagree_are_drawn_as_mixed(tmp_path):
    """The example of docs/sweeps.md: at weight decay 5 one seed's split ends in
    confusion, the other two in memorization; seeds.csv says mixed and the cell, alone,
    is hatched (numbers measured on this CPU; another CPU's float rounding may move a
    run across a phase threshold)."""
    from interp.sweeps.summary import read_summary

    base = RunConfig().replace(data={"p": 11}, model={"width": 16},
                               train={"steps": 300, "save_every": 100})
    spec = SweepSpec(base=base, corrupt=(0.3,), train_frac=(0.6,), values=(0.0, 5.0),
                     seeds=parse_seeds("3"))
    run_sweep(spec, tmp_path, workers=0)
    rows = read_summary(tmp_path)
    assert [r["phase"] for r in rows if r["value"] == 5.0] == [
        "confusion", "memorization", "memorization"]
    cells = seed_rows(rows)
    assert [c["agreement"] for c in cells] == ["stable", "mixed: 2 of 3 memorization"]
    fig = phase_figures(spec, rows)["phase_diagram"]
    assert [any(p.get_hatch() == "xx" for p in ax.patches) for ax in fig.axes[:2]] == [
        False, True]
