"""analyze() and write_figures() on a tiny trained run; the run file is never modified."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from interp.analysis.neurons import neuron_ipr
from interp.analysis.phase import PHASES
from interp.analysis.spectra import IPR_CONVENTION
from interp.config import RunConfig
from interp.data import ACCURACY_NAMES
from interp.jsonable import to_jsonable
from interp.plots.figures import write_figures
from interp.reports.analyze import accuracies_at, analyze, analyze_run
from interp.store.run import Run
from interp.training.runner import train_to_file

P, WIDTH = 11, 12
CURVE_KEYS = {"n_pruned", *ACCURACY_NAMES, "loss", "test_loss"}


def tiny_config(corrupt: float = 0.2) -> RunConfig:
    return RunConfig().replace(data={"p": P, "corrupt": corrupt}, model={"width": WIDTH},
                               train={"steps": 20, "save_every": 5})


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return train_to_file(tiny_config(), tmp_path_factory.mktemp("run") / "run.h5")


def fingerprint(path) -> tuple[int, str]:
    return os.stat(path).st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def test_analyze_has_every_key_and_length(run_path):
    before = fingerprint(run_path)
    summary = analyze(run_path)
    assert fingerprint(run_path) == before
    assert set(summary) == {"step", "p", "width", "accuracy", "ipr", "classes", "prune",
                            "ablate", "generalizing_since", "fit", "phase", "task", "progress",
                            "layers"} | ({"assumed"} & set(summary))
    assert summary["progress"] is None and summary["layers"] is None  # MLP: one layer
    assert summary["task"]["fourier"] and summary["task"]["notes"] == []
    assert summary["fit"] is None and summary["phase"]["phase"] in PHASES
    assert (summary["step"], summary["p"], summary["width"]) == (20, P, WIDTH)
    assert set(summary["accuracy"]) == set(ACCURACY_NAMES)
    ipr = summary["ipr"]
    assert ipr["convention"] == IPR_CONVENTION and ipr["r"] == 2
    assert len(ipr["neurons"]) == WIDTH
    np.testing.assert_allclose(ipr["mean"], np.mean(ipr["neurons"]), rtol=1e-12)
    classes = summary["classes"]
    assert classes["method"] == "otsu"
    assert sorted(classes["generalizing"] + classes["memorizing"]) == list(range(WIDTH))
    assert set(summary["prune"]) == {"ascending", "descending", "random"}
    for curve in summary["prune"].values():
        assert set(curve) == CURVE_KEYS
        assert {len(v) for v in curve.values()} == {WIDTH + 1}
    assert set(summary["ablate"]) == CURVE_KEYS - {"n_pruned"} | {"neuron"}
    assert {len(v) for v in summary["ablate"].values()} == {WIDTH}
    assert len(summary["generalizing_since"]) == WIDTH
    json.dumps(summary, allow_nan=False)  # plain, NaN-free JSON


def test_analyze_matches_the_stored_weights_and_metrics(run_path):
    summary = analyze(run_path, step=10, ablate=False)
    with Run(run_path) as run:
        w = run.weights(10)
        metrics = run.metrics()
        at = int(np.flatnonzero(metrics["step"] == 10)[0])
        for name in ACCURACY_NAMES:
            stored = metrics[f"accuracy/{name}"][at]
            np.testing.assert_allclose(summary["accuracy"][name], stored, rtol=0, atol=1e-6)
            np.testing.assert_allclose(accuracies_at(run, 10)[name], stored, atol=1e-6)
    np.testing.assert_allclose(summary["ipr"]["neurons"],
                               neuron_ipr(w, run.config.model, run.config.data.p), rtol=1e-12)
    for curve in summary["prune"].values():  # nothing pruned = the network itself
        for name in ACCURACY_NAMES:
            np.testing.assert_allclose(curve[name][0], summary["accuracy"][name], atol=0)
    since = np.array(summary["generalizing_since"])
    assert np.all(np.isin(since, [-1, 0, 5, 10]))  # only stored steps up to the one analyzed
    assert np.all((since >= 0) == np.isin(np.arange(WIDTH), summary["classes"]["generalizing"]))


def test_sections_can_be_switched_off_and_threshold_fixed(run_path):
    summary = analyze(run_path, ipr=False, prune=False, ablate=False)
    assert summary["ipr"] is summary["classes"] is summary["prune"] is None
    assert summary["ablate"] is summary["generalizing_since"] is None
    fixed = analyze(run_path, prune=False, ablate=False, threshold=0.25)
    assert fixed["classes"]["method"] == "fixed" and fixed["classes"]["threshold"] == 0.25


def test_nan_accuracies_serialise_as_null(tmp_path):
    path = train_to_file(tiny_config(corrupt=0.0).replace(train={"steps": 2}), tmp_path / "c.h5")
    summary = analyze(path, ablate=False)
    assert summary["accuracy"]["train_corrupted"] is None
    assert all(v is None for v in summary["prune"]["random"]["train_corrupted"])
    json.dumps(summary, allow_nan=False)
    assert to_jsonable({"a": np.array([1.0, np.nan]), "b": np.float32(np.inf)}) == \
        {"a": [1.0, None], "b": None}


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_figures_saves_pngs_atomically(run_path, tmp_path):
    before = fingerprint(run_path)
    with Run(run_path) as run:
        analysis = analyze_run(run, ablate=False)
    assert analysis.summary == analyze(run_path, ablate=False)
    paths = write_figures(analysis.summary, analysis.arrays, tmp_path / "figs")
    assert fingerprint(run_path) == before
    assert sorted(p.name for p in paths) == ["accuracy.png", "ipr_histogram.png",
                                             "ipr_trajectory.png", "loss.png", "prune.png",
                                             "spectra.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path / "figs")) == sorted(p.name for p in paths)  # no temps
    for path in paths:  # the permissions of the user's umask, as any new file
        assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    with Run(run_path) as run:
        few = analyze_run(run, ipr=False, prune=False, ablate=False)
    only = write_figures(few.summary, few.arrays, tmp_path / "few")
    assert [p.name for p in only] == ["accuracy.png", "loss.png"]
