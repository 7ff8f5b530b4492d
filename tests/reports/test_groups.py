"""Groups of runs compared as one (interp.reports.groups): means and 95% intervals worked
out by hand, bands at the steps the runs share, and the figures drawing each group's
mean with its band."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb

from interp.plots.compare import compare_figures
from interp.reports.groups import compare_groups, group_record, parse_groups
from interp.training.runner import train_to_file

T_975_2 = 4.302652729749464  # t_{0.975, 2}: three runs


def record(label, phase, test, curve_steps, curve, ipr_mean):
    return {"label": label, "phase": {"phase": phase},
            "accuracy": {"train": 1.0, "test": test, "train_corrupted": None},
            "ipr": {"mean": ipr_mean}, "norms": {"total": 2.0},
            "curves": {"step": curve_steps, "accuracy/test": curve},
            "ipr_over_training": {"step": [0, 10], "mean": [0.2, ipr_mean]}}


def test_a_group_by_hand():
    runs = [record("a", "coexistence", 0.2, [0, 10, 20], [0.0, 0.1, 0.2], 0.3),
            record("b", "coexistence", 0.4, [0, 5, 10, 15, 20], [0.0, 0.9, 0.2, 0.9, 0.4],
                   0.3),
            record("c", "memorization", 0.6, [0, 10, 20], [0.0, 0.3, 0.6], 0.6)]
    g = group_record("wd", runs)
    assert (g["label"], g["runs"], g["n_runs"]) == ("wd", ["a", "b", "c"], 3)
    assert g["phase"] == {"phase": "coexistence", "agreement": "mixed: 2 of 3 coexistence"}
    # final test accuracies 0.2, 0.4, 0.6: mean 0.4, s = 0.2
    half = T_975_2 * 0.2 / np.sqrt(3)
    test = g["accuracy"]["test"]
    np.testing.assert_allclose([test["mean"], test["lo"], test["hi"]],
                               [0.4, 0.4 - half, 0.4 + half], rtol=1e-12)
    assert test["n"] == 3 and g["accuracy"]["train"]["lo"] == g["accuracy"]["train"]["hi"]
    assert g["accuracy"]["train_corrupted"] == {"mean": None, "lo": None, "hi": None, "n": 0}
    # the curve at the steps all three recorded, 0, 10 and 20 (b's 5 and 15 dropped):
    # step 10: 0.1, 0.2, 0.3 (mean 0.2, s = 0.1); step 0: all 0 (no spread)
    band = g["curves"]["accuracy/test"]
    assert g["curves"]["step"].tolist() == [0, 10, 20]
    np.testing.assert_allclose(band["mean"], [0.0, 0.2, 0.4], rtol=1e-12)
    np.testing.assert_allclose(band["hi"] - band["mean"],
                               [0.0, T_975_2 * 0.1 / np.sqrt(3), T_975_2 * 0.2 / np.sqrt(3)],
                               rtol=1e-12, atol=1e-15)
    # ipr 0.3, 0.3, 0.6 at step 10: mean 0.4, s = sqrt(0.03)
    np.testing.assert_allclose(g["ipr_over_training"]["mean"]["mean"], [0.2, 0.4])
    np.testing.assert_allclose(g["ipr_mean"]["hi"] - 0.4, T_975_2 * np.sqrt(0.03 / 3))


def test_runs_that_share_no_step_are_refused():
    runs = [record("a", "confusion", 0.1, [0, 10], [0.0, 0.1], 0.3),
            record("b", "confusion", 0.1, [5, 15], [0.0, 0.1], 0.3)]
    with pytest.raises(ValueError, match="group 'g' must hold runs that share recorded "
                       "steps, but its runs share none."):
        group_record("g", runs)


@pytest.fixture(scope="module")
def grouped_runs(tmp_path_factory):
    """Two groups of three seeds: weight decay 0 and 5, p 11, 30 steps."""
    from interp.config import RunConfig

    folder = tmp_path_factory.mktemp("groups")
    cfg = RunConfig().replace(data={"p": 11, "corrupt": 0.3}, model={"width": 12},
                              train={"steps": 30, "save_every": 5})
    for s in range(3):
        for wd in (0, 5):
            train_to_file(cfg.replace(model={"init_seed": s},
                                      train={"seed": s, "weight_decay": float(wd)}),
                          folder / f"wd{wd}-s{s}.h5")
    return folder


def test_groups_of_runs_give_means_and_bands_in_the_figures(grouped_runs):
    groups = parse_groups([f"wd0={grouped_runs}/wd0-s*.h5", f"wd5={grouped_runs}/wd5-s*.h5"])
    assert [p.name for p in groups["wd5"]] == ["wd5-s0.h5", "wd5-s1.h5", "wd5-s2.h5"]
    result = compare_groups(groups, prune=False)
    json.dumps(result, allow_nan=False)
    assert [r["label"] for r in result["runs"]] == [f"wd{w}-s{s}" for w in (0, 5)
                                                    for s in range(3)]
    for g, runs in zip(result["groups"], (result["runs"][:3], result["runs"][3:])):
        finals = np.array([r["accuracy"]["test"] for r in runs])
        half = T_975_2 * finals.std(ddof=1) / np.sqrt(3)
        np.testing.assert_allclose([g["accuracy"]["test"][k] for k in ("mean", "lo", "hi")],
                                   [finals.mean(), finals.mean() - half,
                                    finals.mean() + half], rtol=1e-12)
        curves = np.array([r["curves"]["accuracy/test"] for r in runs])
        np.testing.assert_allclose(g["curves"]["accuracy/test"]["mean"], curves.mean(axis=0),
                                   rtol=1e-12)
    figures = compare_figures(result)
    test_panel = figures["accuracy"].axes[1]
    bands = [c for c in test_panel.collections if isinstance(c, PolyCollection)]
    lines = test_panel.get_lines()
    assert len(bands) == len(lines) == 2  # one mean and one band per group
    for g, band, line in zip(result["groups"], bands, lines):
        steps = np.asarray(g["curves"]["step"])[1:]  # step 0 has no place on a log axis
        np.testing.assert_allclose(line.get_xdata(), steps)
        np.testing.assert_allclose(line.get_ydata(), g["curves"]["accuracy/test"]["mean"][1:])
        ys = band.get_paths()[0].vertices[:, 1]
        lo, hi = (np.asarray(g["curves"]["accuracy/test"][k][1:]) for k in ("lo", "hi"))
        np.testing.assert_allclose([ys.min(), ys.max()], [lo.min(), hi.max()], rtol=1e-12)
        assert band.get_facecolor()[0][:3] == pytest.approx(to_rgb(line.get_color()))
    legend = [t.get_text() for t in figures["accuracy"].legends[0].get_texts()]
    assert legend == ["wd0 (3 runs)", "wd5 (3 runs)", "band: 95% interval of the mean"]
    assert len(figures["ipr_mean"].axes[0].collections) == 2 + 1  # + the band's legend entry


def test_bad_groups_are_refused(tmp_path):
    for text, message in (("wd", "--group must be NAME=RUNS"), ("=a.h5", "NAME=RUNS"),
                          (f"wd={tmp_path}/none*.h5", "matches none")):
        with pytest.raises(ValueError, match=message):
            parse_groups([text])
    with pytest.raises(ValueError, match="names must be distinct, got 'a' twice"):
        parse_groups(["a=x.h5", "a=y.h5"])
    with pytest.raises(ValueError, match="group 'a' must be a list of at least one run"):
        compare_groups({"a": []})
