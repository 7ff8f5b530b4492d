"""analyze() and write_figures() on a tiny trained run; the run file is never modified."""

from __future__ import annotations

import hashlib
import inspect
import itertools
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
from interp.reports.analyze import accuracies_at, analyze, analyze_run, foreign_options
from interp.store.convert import write_trajectory
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
    assert set(summary) == {"step", "model", "p", "width", "accuracy", "ipr", "classes", "prune",
                            "ablate", "generalizing_since", "fit", "phase", "task", "progress",
                            "layers"} | ({"assumed"} & set(summary))
    assert summary["progress"] is None and summary["layers"] is None  # MLP: one layer
    assert summary["task"]["fourier"] and summary["task"]["notes"] == []
    assert summary["fit"] is None and summary["phase"]["phase"] in PHASES
    assert (summary["step"], summary["model"], summary["p"], summary["width"]) == (
        20, "mlp", P, WIDTH)
    assert set(summary["accuracy"]) == set(ACCURACY_NAMES)
    ipr = summary["ipr"]
    assert ipr["convention"] == IPR_CONVENTION and ipr["r"] == 2
    assert len(ipr["neurons"]) == WIDTH
    np.testing.assert_allclose(ipr["mean"], np.mean(ipr["neurons"]), rtol=1e-12)
    classes = summary["classes"]  # 20 steps: the network has not generalized
    assert summary["accuracy"]["test"] < 0.5
    assert classes["method"] == "none" and classes["threshold"] is None
    assert classes["generalizing"] == classes["memorizing"] == []
    assert classes["reason"].startswith("the network does not generalize (test accuracy")
    assert set(summary["prune"]) == {"ascending", "descending", "random"}
    for curve in summary["prune"].values():
        assert set(curve) == CURVE_KEYS
        assert {len(v) for v in curve.values()} == {WIDTH + 1}
    assert set(summary["ablate"]) == CURVE_KEYS - {"n_pruned"} | {"neuron"}
    assert {len(v) for v in summary["ablate"].values()} == {WIDTH}
    assert summary["generalizing_since"] is None  # no classes, no time of joining one
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


def test_sections_can_be_switched_off(run_path):
    summary = analyze(run_path, ipr=False, prune=False, ablate=False)
    assert summary["ipr"] is summary["classes"] is summary["prune"] is None
    assert summary["ablate"] is summary["generalizing_since"] is None


def planted(p: int, n_random: int = 8, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Gromov's solution at frequencies 2 and 5 (one neuron per phase pair on a 4 x 4
    lattice: the logits are exactly the two cosines, right on every pair) plus
    ``n_random`` Gaussian neurons whose readout is 1e-3 of theirs; every weight times
    ``scale``."""
    phases = 2 * np.pi * np.arange(4) / 4
    rows = [(f, a, b) for f in (2, 5) for a, b in itertools.product(phases, phases)]
    sigma, phi_u, phi_v = (np.array(c) for c in zip(*rows))
    angle = 2 * np.pi * np.outer(sigma, np.arange(p)) / p
    rng = np.random.default_rng(0)
    U = np.vstack([np.cos(angle + phi_u[:, None]), rng.normal(size=(n_random, p))])
    V = np.vstack([np.cos(angle + phi_v[:, None]), rng.normal(size=(n_random, p))])
    W = np.hstack([0.05 * np.cos(angle + phi_u[:, None] + phi_v[:, None]).T,
                   5e-5 * rng.normal(size=(p, n_random))])
    return {k: (scale * v).astype(np.float32) for k, v in (("U", U), ("V", V), ("W", W))}


def planted_run(tmp_path, name: str, **kwargs) -> os.PathLike:
    w = planted(P, **kwargs)
    cfg = RunConfig().replace(data={"p": P, "corrupt": 0.0}, model={"width": len(w["U"])})
    return write_trajectory(cfg, tmp_path / f"{name}.h5", [(0, w), (10, w)])


def test_a_generalizing_bimodal_network_is_split_and_a_fixed_threshold_overrides(tmp_path):
    path = planted_run(tmp_path, "planted")
    summary = analyze(path, prune=False, ablate=False)
    assert summary["accuracy"]["test"] == 1.0
    classes = summary["classes"]
    assert classes["method"] == "otsu" and classes["reason"] is None
    assert classes["generalizing"] == list(range(32))
    assert classes["memorizing"] == list(range(32, 40))
    assert summary["generalizing_since"] == [0] * 32 + [-1] * 8
    fixed = analyze(path, prune=False, ablate=False, threshold=0.25)
    assert fixed["classes"]["method"] == "fixed" and fixed["classes"]["threshold"] == 0.25


@pytest.mark.parametrize("name,kwargs,reason", [
    ("collapsed", {"scale": 1e-3}, "the network has collapsed: its logits vary by"),
    ("unimodal", {"n_random": 0}, "the IPR histogram is not bimodal"),
])
def test_networks_that_earn_no_split_get_a_reason(tmp_path, name, kwargs, reason):
    """Every weight times 1e-3 (logits times 1e-9: still right on every pair, but they
    vary by about 1e-11) collapses the network; without random neurons every neuron is
    alike (one IPR value). The memorize-only network is the 20-step run above."""
    summary = analyze(planted_run(tmp_path, name, **kwargs), prune=False, ablate=False)
    classes = summary["classes"]
    assert classes["threshold"] is None and classes["method"] == "none"
    assert classes["generalizing"] == classes["memorizing"] == []
    assert classes["reason"].startswith(reason) and classes["reason"].endswith(".")
    assert summary["generalizing_since"] is None


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


def test_progress_gives_each_measure_at_initialization_and_prints_it(run_path):
    from rich.console import Console

    from interp.analysis.progress_run import NANDA
    from interp.cli.tables import analysis_tables

    s = analyze(run_path, ipr=False, prune=False, ablate=False, progress=True)
    pr = s["progress"]
    assert pr["initial"]["step"] == 0 and pr["steps"][0] == 0
    assert pr["boundaries"] == s["phase"]["boundaries"]  # one rule, on the run's losses
    # 20 steps: no neuron is periodic yet, so no key frequency and no restricted or
    # excluded loss (before, they silently were the full network's losses)
    assert list(pr["key_frequencies"]) == [] and "no key frequencies" in pr["fourier"][
        "key_note"]
    for k in NANDA:
        if k == "wl_gini":
            assert pr["initial"][k] == pr[k][0] and len(pr[k]) == 5
        else:
            assert pr[k] is None and pr["initial"][k] is None, k
    console = Console(record=True, width=120)
    for table in analysis_tables(s):
        console.print(table)
    text = console.export_text()
    row = next(line for line in text.splitlines() if " wl_gini " in line)
    assert f"{pr['wl_gini'][0]:.4g}" in row and f"{pr['wl_gini'][-1]:.4g}" in row
    assert " excluded_loss " not in text and "no key frequencies" in " ".join(text.split())
    assert "step 0" in text and "step 20" in text and "key_frequencies" in text


def test_analyze_spells_every_option_in_its_signature():
    """interp.analyze names its options (no ``**options`` hiding them); they are those of
    analyze_run, with its defaults, and every foreign option foreign_options() derives
    from the store and the built-in families' layouts (one source of truth: a new
    layout option fails here until the signature spells it)."""
    params = inspect.signature(analyze).parameters
    analysis = {name: prm.default
                for name, prm in inspect.signature(analyze_run).parameters.items()
                if prm.kind is inspect.Parameter.KEYWORD_ONLY}
    assert [n for n, prm in params.items() if prm.kind is inspect.Parameter.VAR_KEYWORD] == [
        "layout_options"]  # an outside family's layout options only
    named = [n for n, prm in params.items() if prm.kind is not inspect.Parameter.VAR_KEYWORD]
    assert set(named) == {"run_path", "step", *analysis, *foreign_options()}
    assert {n: params[n].default for n in analysis} == analysis
    for name in foreign_options():
        assert params[name].default in (None, False), name
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        analyze("never-read.h5", bogus=1)
