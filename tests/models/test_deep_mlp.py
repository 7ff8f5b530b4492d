"""The deep MLP family, added as one module behind the family interface: its forward
against the formula, and every generic path (training, the run file, analysis, pruning,
sweeps) on it without a line of family-specific code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.analysis.neurons import neuron_ipr, neuron_terms, trajectory_ipr
from interp.analysis.prune import prune_curve
from interp.analysis.spectra import GRID_IPR_CONVENTION
from interp.config import DataConfig, RunConfig, TrainConfig
from interp.data import accuracies
from interp.models import FAMILIES, DeepMLPConfig, family_of
from interp.models.mlp.deep import DeepMLP
from interp.reports.analyze import analyze
from interp.store.run import Run
from interp.sweeps.run import run_sweep
from interp.sweeps.spec import SweepSpec
from interp.training.runner import resume_file, train_to_file

P = 7


def tiny(**model) -> RunConfig:
    return RunConfig(DataConfig(p=P, corrupt=0.2),
                     DeepMLPConfig(**({"depth": 3, "width": 12} | model)),
                     TrainConfig(steps=30, save_every=10))


def reference_logits(w: dict, m: int, n: int) -> np.ndarray:
    """W act(H2 act(H1 act(U e_m + V e_n))) with act = x^2, in plain numpy."""
    w = {k: np.asarray(v, np.float64) for k, v in w.items()}
    h = (w["U"][:, m] + w["V"][:, n]) ** 2
    h = (w["H1"] @ h) ** 2
    h = (w["H2"] @ h) ** 2
    return w["W"] @ h


def test_config_is_registered_and_validated():
    assert family_of(DeepMLPConfig()) is FAMILIES["deep_mlp"]
    cfg = tiny()
    assert RunConfig.from_json(cfg.to_json()) == cfg
    assert cfg.to_dict()["model"]["model"] == "deep_mlp"
    old = cfg.to_dict()  # as files of earlier versions store it: the model named as kind
    old["model"] = {"kind": old["model"].pop("model")} | old["model"]
    assert RunConfig.from_dict(old) == cfg
    both = cfg.to_dict()
    both["model"]["kind"] = "mlp"
    with pytest.raises(ValueError, match="^a model config must name its model once, as model, "
                                         "got model='deep_mlp' and kind='mlp'.$"):
        RunConfig.from_dict(both)
    with pytest.raises(ValueError, match="^depth must be an integer >= 2"):
        DeepMLPConfig(depth=1)  # depth 1 is the paper's MLP family


def test_forward_and_terms_match_the_formula():
    model = DeepMLP(P, tiny().model).double()
    w = {k: v.numpy() for k, v in model.arrays().items()}
    assert list(w) == ["U", "V", "H1", "H2", "W"]
    pairs = np.array([[0, 0], [3, 5], [6, 1]])
    with torch.no_grad():
        logits = model(torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])).numpy()
    terms = neuron_terms(w, tiny().model, pairs)
    for (m, n), got, split in zip(pairs, logits, terms.logits()):
        np.testing.assert_allclose(got, reference_logits(w, m, n), rtol=1e-10)
        np.testing.assert_allclose(split, reference_logits(w, m, n), rtol=1e-10)


def test_trains_resumes_and_analyzes_through_the_generic_paths(tmp_path):
    cfg = tiny()
    path = train_to_file(cfg, tmp_path / "deep.h5")
    with Run(path) as run:
        assert run.attrs["model"] == "deep_mlp" and run.attrs["format_version"] == 3
        assert set(run.names) == {"U", "V", "H1", "H2", "W"}
        assert run.read("W", neurons=[0, 3]).shape == (4, P, 2)  # neuron axis 1 of W
        m = run.metrics()
        assert "norm/H2" in m and m["loss"][-1] < m["loss"][0]
        steps, traj = trajectory_ipr(run)
        np.testing.assert_allclose(traj[-1], neuron_ipr(run.weights(), cfg.model, P),
                                   rtol=1e-12)
        ds = run.dataset()
    s = analyze(path)
    assert s["width"] == 12 and s["ipr"]["convention"] == GRID_IPR_CONVENTION
    assert s["prune"]["ascending"]["test"][0] == s["accuracy"]["test"]
    assert len(s["ipr"]["top_frequency"]) == 12 and s["fit"] is None and s["phase"]
    # pruning k neurons is zeroing their rows of H2 and columns of W, forward again
    with Run(path) as run:
        w = run.weights()
    order = np.argsort(s["ipr"]["neurons"])[:5]
    curve = prune_curve(neuron_terms(w, cfg.model, ds.pairs[ds.eval_idx]), ds, order)
    zeroed = {k: np.array(v, np.float64) for k, v in w.items()}
    zeroed["H2"][order] = 0
    zeroed["W"][:, order] = 0
    brute = accuracies(neuron_terms(zeroed, cfg.model, ds.pairs[ds.eval_idx]).logits()
                       .argmax(-1), ds)
    for name, value in brute.items():
        np.testing.assert_equal(curve[name][-1], value, err_msg=name)


def test_a_killed_run_resumes_to_the_same_bits(tmp_path):
    cfg = tiny(dropout=0.1)
    ref = train_to_file(cfg, tmp_path / "ref.h5")
    cut = tmp_path / "part.h5"
    with pytest.raises(Interrupted):
        train_to_file(cfg, cut, callbacks=[StopAt(20)])
    with Run(cut) as run:
        assert not run.complete and run.steps[-1] == 20
    resume_file(cut)
    with Run(ref) as a, Run(cut) as b:
        for k in a.names:
            np.testing.assert_array_equal(a.read(k), b.read(k), err_msg=k)


class Interrupted(Exception):
    pass


class StopAt:
    """A callback that interrupts training after the checkpoint of ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_checkpoint(self, checkpoint):
        step = checkpoint.step
        if step == self.step:
            raise Interrupted


def test_a_deep_mlp_sweep_ends_complete(tmp_path):
    spec = SweepSpec(base=tiny().replace(train={"steps": 6, "save_every": 3}), corrupt=(0.0,),
                     train_frac=(0.5, 0.7), regularizer="weight_decay", values=(0.0,))
    report = run_sweep(spec, tmp_path, workers=0)
    assert [r["status"] for r in report.rows] == ["complete", "complete"]
    assert all(r["phase"] and r["mean_ipr"] is not None for r in report.rows)
