"""Notebook views: Run.metrics_frame() and Run.to_xarray() hold exactly what the run file
holds, with named dimensions; the analysis tables as DataFrames; a missing optional
dependency is one clear ImportError."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from interp.config import RunConfig
from interp.models import TransformerConfig
from interp.reports.analyze import analyze
from interp.reports.compare import compare
from interp.reports.frames import compare_frame, neuron_frame, progress_frame, prune_frame
from interp.store.frames import array_dims
from interp.store.run import Run
from interp.training.runner import train_to_file

pd = pytest.importorskip("pandas")
xr = pytest.importorskip("xarray")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    cfg = RunConfig().replace(data={"p": 11, "corrupt": 0.3}, model={"width": 12},
                              train={"steps": 30, "save_every": 10})
    return train_to_file(cfg, tmp_path_factory.mktemp("frames") / "run.h5")


def test_metrics_frame_is_the_stored_metrics_by_step(run_path):
    with Run(run_path) as run:
        frame, metrics = run.metrics_frame(), run.metrics()
        only = run.metrics_frame(["loss"])
    assert frame.index.name == "step" and list(frame.index) == list(range(31))
    assert set(frame.columns) == set(metrics) - {"step"}
    for name in frame.columns:
        np.testing.assert_array_equal(frame[name].to_numpy(), metrics[name])
    assert list(only.columns) == ["loss"]


def test_to_xarray_names_dimensions_and_matches_read(run_path):
    with Run(run_path) as run:
        ds = run.to_xarray()
        part = run.to_xarray(["W"], steps=slice(1, None, 2))
        U, W = run.read("U"), run.read("W", [1, 3])
        steps = run.steps
    assert ds["U"].dims == ("step", "neuron", "residue")
    assert ds["W"].dims == ("step", "residue", "neuron")
    assert dict(ds.sizes) == {"step": 4, "neuron": 12, "residue": 11}
    np.testing.assert_array_equal(ds["step"], steps)
    np.testing.assert_array_equal(ds["neuron"], np.arange(12))
    np.testing.assert_array_equal(ds["U"].values, U)
    np.testing.assert_array_equal(ds["U"].sel(step=20, neuron=3).values, U[2, 3])
    assert list(part.data_vars) == ["W"] and list(part["step"].values) == [10, 30]
    np.testing.assert_array_equal(part["W"].values, W)
    assert RunConfig.from_json(ds.attrs["config"]).data.p == 11


def test_dimension_names_of_a_transformer(tmp_path):
    """Axes that change with p are residues (or tokens, with extra tokens); the family's
    neuron axis is the neuron; others are named after their array."""
    cfg = RunConfig(model=TransformerConfig(d_model=8, n_heads=2, d_mlp=16, n_ctx=3,
                                            extra_tokens=1)).replace(
        data={"p": 11}, train={"steps": 2, "loss": "ce", "save_every": 1})
    path = train_to_file(cfg, tmp_path / "t.h5")
    with Run(path) as run:
        dims = {name: array_dims(run, name, shape) for name, shape in run.shapes().items()}
        ds = run.to_xarray(["W_in", "W_E"])
    assert dims["W_in"] == ("W_in_0", "neuron") and dims["W_out"] == ("neuron", "W_out_1")
    assert dims["W_E"] == ("token", "W_E_1") and dims["W_U"] == ("W_U_0", "residue")
    assert ds.sizes["token"] == 12 and ds.sizes["neuron"] == 16


def test_summary_tables(run_path):
    s = analyze(run_path, fit=True)
    neurons = neuron_frame(s)
    assert neurons.index.name == "neuron" and len(neurons) == 12
    np.testing.assert_allclose(neurons["ipr"], s["ipr"]["neurons"])
    assert sorted(neurons.index[neurons["class"] == "generalizing"]) == \
        s["classes"]["generalizing"]
    assert list(neurons["lock_step"]) == s["fit"]["lock_step"]
    np.testing.assert_allclose(neurons["ablated_test"], s["ablate"]["test"])
    curves = prune_frame(s)
    assert len(curves) == 3 * 13 and list(curves.columns[:2]) == ["order", "n_pruned"]
    desc = curves[curves["order"] == "descending"]
    np.testing.assert_allclose(desc["train_corrupted"], s["prune"]["descending"]["train_corrupted"])
    runs = compare_frame(compare([run_path, run_path], prune=False))
    assert list(runs.index) == ["run", "run #2"] and runs["phase"].nunique() == 1
    with pytest.raises(ValueError, match="must hold pruning curves"):
        prune_frame(analyze(run_path, prune=False, ablate=False))


def test_progress_frame_is_the_progress_section_by_step(run_path):
    s = analyze(run_path, progress=True, prune=False, ablate=False)
    frame = progress_frame(s)
    section = s["progress"]
    assert frame.index.name == "step" and list(frame.index) == [0, 10, 20, 30]
    assert list(section["steps"]) == [0, 10, 20, 30]
    assert {"train_loss", "test_loss", "wl_gini", "sum_sq_weights"} <= set(frame.columns)
    for name in ("restricted_loss", "excluded_loss"):  # None without key frequencies
        assert (name in frame.columns) == (section[name] is not None)
    for name in frame.columns:
        assert frame[name].dtype == np.float64
        np.testing.assert_array_equal(frame[name].to_numpy(), section[name])
    assert "embedding_norms" not in frame.columns  # a spectrum per step, not a column
    assert "key_frequencies" not in frame.columns  # not one value per step
    with pytest.raises(ValueError, match="must hold the progress measures"):
        progress_frame(analyze(run_path, prune=False, ablate=False))


def test_a_missing_optional_dependency_says_how_to_install_it(run_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "xarray", None)
    with Run(run_path) as run:
        with pytest.raises(ImportError, match=r"Run\.metrics_frame\(\) needs pandas, which "
                           r"is not installed; install it with pip install "
                           r"'interp\[notebook\]' \(or pip install pandas\)\.$"):
            run.metrics_frame()
        with pytest.raises(ImportError, match=r"Run\.to_xarray\(\) needs xarray"):
            run.to_xarray()
        with pytest.raises(ImportError, match=r"progress_frame\(\) needs pandas"):
            progress_frame({"progress": {"steps": [0]}})
