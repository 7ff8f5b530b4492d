"""The LLC of a run's checkpoints (interp.reports.llc): devinterp's own estimator called
directly gives the same numbers; restricted LLCs move only their neurons' weights; the
same seed gives the same bits; the run file and the global random state are untouched."""

from __future__ import annotations

import hashlib
import json
import random
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from devinterp.slt.llc import llc as devinterp_llc
from devinterp.utils import default_nbeta
from typer.testing import CliRunner

from interp.analysis.phase import run_phase as interp_phase
from interp.cli import app
from interp.config import RunConfig
from interp.reports import llc as llc_mod
from interp.reports.llc import (
    LLCSettings,
    calibrate,
    calibration_passes,
    estimate,
    llc,
    population_masks,
    training_rows,
)
from interp.store.run import Run
from interp.training.runner import train_to_file

P, WIDTH = 11, 8
FIXED = LLCSettings(lr=1e-3, localization=100.0, num_chains=1, num_draws=8, batch_size=16,
                    init_loss_batches=4, seed=3)


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    cfg = RunConfig().replace(data={"p": P, "corrupt": 0.2}, model={"width": WIDTH},
                              train={"steps": 20, "save_every": 10, "loss": "ce"})
    return train_to_file(cfg, tmp_path_factory.mktemp("run") / "run.h5")


def direct(model, rows, settings, tmp_path, masks=None):
    """devinterp's llc called by hand: rows (m, n, label), cross-entropy written here."""
    def loss_fn(net, ids):
        net.eval()
        per = F.cross_entropy(net(ids[:, 0], ids[:, 1]).float(), ids[:, 2], reduction="none")
        return torch.stack([per, per], dim=1)

    data = Dataset.from_dict({"input_ids": rows}).with_format("torch")
    out = devinterp_llc(model, data, {}, lr=settings.lr, n_beta=default_nbeta(16),
                        loss_fn=loss_fn, param_masks=masks, num_chains=settings.num_chains,
                        num_draws=settings.num_draws, batch_size=settings.batch_size,
                        init_seed=settings.seed, localization=settings.localization,
                        num_init_loss_batches=settings.init_loss_batches,
                        device="cpu", output_path=str(tmp_path / "direct.zarr"))
    return float(out["llc_mean"]), float(out["llc_std"])


def test_llc_equals_devinterp_called_directly(run_path, tmp_path):
    settings = LLCSettings(**{**FIXED.__dict__, "num_chains": 2})
    result = llc(run_path, [10, 20], settings=settings, populations=False)
    assert result["steps"] == [10, 20] and result["calibration"] is None
    assert result["loss"] == "ce" and result["settings"]["n_beta"] == default_nbeta(16)
    with Run(run_path) as run:
        rows = training_rows(run.dataset())
        assert rows.shape == (len(run.dataset().train_idx), 3)
        for i, step in enumerate([10, 20]):
            mean, std = direct(run.model(step), rows, settings, tmp_path / str(step))
            assert std > 0
            np.testing.assert_allclose(result["llc"]["all"][i], mean, rtol=1e-5)
            np.testing.assert_allclose(result["llc_std"]["all"][i], std, rtol=1e-4)


def test_same_seed_same_bits_and_nothing_else_changes(run_path):
    before = hashlib.sha256(run_path.read_bytes()).hexdigest()
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    first = llc(run_path, [20], settings=FIXED, populations=False)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]
    assert llc(run_path, [20], settings=FIXED, populations=False) == first
    other = llc(run_path, [20], settings=LLCSettings(**{**FIXED.__dict__, "seed": 4}),
                populations=False)
    assert other["llc"]["all"] != first["llc"]["all"]
    assert hashlib.sha256(run_path.read_bytes()).hexdigest() == before


def test_population_masks_by_hand():
    model = torch.nn.Module()
    model.U = torch.nn.Parameter(torch.zeros(4, 3))
    model.W = torch.nn.Parameter(torch.zeros(3, 4))
    model.E = torch.nn.Parameter(torch.zeros(3, 3))  # no neuron axis: frozen
    masks = population_masks(model, {"U": 0, "W": 1}, np.array([1, 3]))
    assert set(masks) == {"U", "W"}
    np.testing.assert_array_equal(masks["U"].numpy(), [[0] * 3, [1] * 3, [0] * 3, [1] * 3])
    np.testing.assert_array_equal(masks["W"].numpy(), [[0, 1, 0, 1]] * 3)


def test_restricted_llc_moves_only_its_neurons(run_path, monkeypatch):
    """Record the weights every loss call of a restricted estimate sees: they leave the
    checkpoint only at the chosen neurons' entries (rows of U and V, columns of W)."""
    seen = []
    original = llc_mod.example_loss

    def spy(model, rows, loss):
        seen.append({k: v.detach().clone() for k, v in model.named_parameters()})
        return original(model, rows, loss)

    monkeypatch.setattr(llc_mod, "example_loss", spy)
    chosen = np.array([1, 4])
    with Run(run_path) as run:
        model, rows = run.model(20), training_rows(run.dataset())
        start = {k: v.detach().clone() for k, v in model.named_parameters()}
        axes = run.family.neuron_axes(run.config.model)
        llc_mod.estimate(model, rows, "ce", FIXED, FIXED.lr, FIXED.localization,
                         population_masks(model, axes, chosen))
    assert all(torch.equal(v, start[k]) for k, v in model.named_parameters())
    moved = {k: torch.zeros_like(v, dtype=torch.bool) for k, v in start.items()}
    for weights in seen:
        for k, v in weights.items():
            moved[k] |= v != start[k]
    inside = {"U": moved["U"][chosen], "V": moved["V"][chosen], "W": moved["W"][:, chosen]}
    assert all(bool(m.all()) for m in inside.values())  # SGLD noise reaches every entry
    others = np.setdiff1d(np.arange(WIDTH), chosen)
    assert not moved["U"][others].any() and not moved["V"][others].any()
    assert not moved["W"][:, others].any()


def test_populations_follow_the_ipr_threshold(run_path, monkeypatch):
    """Neuron j has IPR (j + 0.5) / WIDTH at every step: the threshold (WIDTH - 2) / WIDTH
    makes the last two neurons generalizing; a threshold of 1, above every IPR, leaves no
    generalizing neuron (LLC None)."""
    monkeypatch.setattr(llc_mod, "trajectory_ipr", lambda run: (
        np.array(run.steps),
        np.tile((np.arange(WIDTH, dtype=float) + 0.5) / WIDTH, (len(run.steps), 1))))
    result = llc(run_path, [20], settings=FIXED, threshold=(WIDTH - 2) / WIDTH)
    assert result["neurons"] == {"generalizing": [2], "memorizing": [WIDTH - 2]}
    assert result["threshold"] == (WIDTH - 2) / WIDTH
    assert all(v is not None for v in result["llc"]["generalizing"])
    result = llc(run_path, [20], settings=FIXED, threshold=1.0)
    assert result["neurons"] == {"generalizing": [0], "memorizing": [WIDTH]}
    assert result["llc"]["generalizing"] == [None] and result["llc"]["memorizing"][0] is not None


def test_bad_settings_and_a_missing_devinterp(run_path, monkeypatch):
    with pytest.raises(ValueError, match="lr and localization must be given together"):
        LLCSettings(lr=1e-3)
    with pytest.raises(ValueError, match="num_draws"):
        LLCSettings(num_draws=2)
    with pytest.raises(ValueError, match="step must be one of the stored"):
        llc(run_path, [7], settings=FIXED)
    with pytest.raises(ValueError, match="steps must name at least one stored step"):
        llc(run_path, [], settings=FIXED)
    monkeypatch.setitem(sys.modules, "devinterp.slt.llc", None)
    with pytest.raises(ImportError, match=r"interp\[llc\]"):
        llc(run_path, [20], settings=FIXED, populations=False)


def hand_estimate(rise, healthy=True):
    """An estimate whose chains' loss rises above the checkpoint's 1.0 as ``rise``."""
    trace = 1.0 + np.asarray([rise, rise], dtype=float)
    return {"healthy": healthy, "llc": float(np.mean(rise)), "init_loss": 1.0, "trace": trace}


def test_calibration_rule_by_hand():
    flat = np.r_[np.linspace(0, 0.2, 4), np.full(12, 0.2)]
    assert calibration_passes(hand_estimate(flat))
    assert not calibration_passes(hand_estimate(np.linspace(0, 1.0, 16)))  # still rising
    assert not calibration_passes(hand_estimate(-flat))  # negative LLC: below the checkpoint
    assert not calibration_passes(hand_estimate(flat, healthy=False))


def test_calibration_applies_its_rule(run_path):
    """Each setting's verdict is the rule's; the chosen one is the largest passing step
    (then the smallest localization), or the smallest step when none passes."""
    settings = LLCSettings(num_chains=1, num_draws=12, batch_size=16, init_loss_batches=4)
    with Run(run_path) as run:
        model, rows = run.model(20), training_rows(run.dataset())
        cal = calibrate(model, rows, "ce", settings, lrs=(1e-2, 10.0),
                        localizations=(100.0,))
        assert [g["lr"] for g in cal["grid"]] == [1e-2, 10.0]
        for g in cal["grid"]:
            est = estimate(model, rows, "ce", settings, g["lr"], g["localization"])
            assert g["passed"] == calibration_passes(est)
    passing = [g for g in cal["grid"] if g["passed"]]
    assert cal["passed"] == bool(passing) and not cal["grid"][-1]["passed"]  # lr 10 diverges
    best = (max(passing, key=lambda g: (g["lr"], -g["localization"])) if passing
            else cal["grid"][0])
    assert (cal["lr"], cal["localization"]) == (best["lr"], best["localization"])


def test_cli_analyze_llc(run_path, tmp_path):
    out = tmp_path / "an"
    res = CliRunner().invoke(app, ["analyze", str(run_path), "--llc", "--llc-steps", "20",
                                   "--llc-draws", "8", "--llc-chains", "1", "--llc-batch-size",
                                   "16", "--llc-lr", "1e-3", "--llc-localization", "100",
                                   "--llc-seed", "3", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    cli_settings = LLCSettings(**{**FIXED.__dict__, "init_loss_batches": 32})
    assert summary["llc"] == llc(run_path, [20], settings=cli_settings)
    assert summary["ipr"] is None  # --llc alone runs no other analysis
    assert (out / "llc.png").stat().st_size > 0 and not (out / "llc-calibration.png").exists()
    for bad in (["--llc-lr", "1e-3"], ["--llc-steps", "10,x"], ["--llc-draws", "1"]):
        res = CliRunner().invoke(app, ["analyze", str(run_path), "--llc", *bad, "--out",
                                       str(tmp_path / "bad")])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert "--llc-" in res.output and not (tmp_path / "bad").exists()


def test_compare_draws_the_llc_curves_with_one_setting(run_path, tmp_path, monkeypatch):
    """interp.compare(llc=...) gives every run its LLC curve at every checkpoint; a
    calibration runs once, on the first run, and its choice serves every run (devinterp
    stood in for by a number of each checkpoint: the estimate itself is tested above)."""
    from interp.plots.compare import write_compare_figures
    from interp.reports.compare import compare

    calls = []

    def fake_calibrate(model, rows, loss, settings):
        calls.append(settings)
        return {"grid": [], "lr": 2e-3, "localization": 50.0, "passed": True, "rule": ""}

    def fake_estimate(model, rows, loss, settings, lr, localization, masks=None):
        value = float(model.U.detach().abs().sum())  # a number of the checkpoint
        return {"llc": value, "llc_std": 0.0, "init_loss": 1.0, "healthy": True,
                "per_chain": np.array([value]), "trace": np.ones((1, 8))}

    monkeypatch.setattr(llc_mod, "calibrate", fake_calibrate)
    monkeypatch.setattr(llc_mod, "estimate", fake_estimate)
    unset = LLCSettings(**{**FIXED.__dict__, "lr": None, "localization": None})
    result = compare([run_path, run_path], prune=False, labels=["a", "b"], llc=unset)
    assert len(calls) == 1
    curves = [r["llc"] for r in result["runs"]]
    assert [c["settings"]["lr"] for c in curves] == [2e-3, 2e-3]
    assert curves[0]["calibration"] is not None and curves[1]["calibration"] is None
    assert curves[0]["llc"] == curves[1]["llc"] and curves[0]["steps"] == [0, 10, 20]
    with Run(run_path) as run:
        expected = [float(np.abs(run.weights(s)["U"]).sum()) for s in (0, 10, 20)]
    np.testing.assert_allclose(curves[0]["llc"]["all"], expected, rtol=1e-6)
    paths = write_compare_figures(result, tmp_path)
    assert tmp_path / "llc.png" in paths


#: The classic-grokking run of analyses/classic_grokking.py --quick (p 41, alpha 0.4, xi 0,
#: N 192, cross-entropy, AdamW lr 3e-3, weight decay 3, 2000 steps), 30 log-spaced
#: checkpoints; docs/analysis.md draws its LLC.
GROKKING = RunConfig().replace(
    data={"p": 41, "train_frac": 0.4, "corrupt": 0.0}, model={"width": 192},
    train={"loss": "ce", "lr": 3e-3, "weight_decay": 3.0, "steps": 2000, "save_log": 30})
GROKKING_STEPS = [0, 23, 51, 86, 145, 246, 415, 701, 1184, 2000]
GROKKING_LLC = LLCSettings(lr=1e-3, localization=100.0, num_draws=60, num_chains=2,
                           batch_size=64)


@pytest.mark.slow
def test_llc_rises_through_memorization_and_falls_after_generalization(tmp_path):
    path = train_to_file(GROKKING, tmp_path / "grok.h5")
    result = llc(path, GROKKING_STEPS, settings=GROKKING_LLC, populations=False)
    with Run(path) as run:
        classic = interp_phase(run)["classic"]
    memorized, generalized = classic["memorization_step"], classic["generalization_step"]
    assert memorized < generalized  # grokking: the run generalizes long after it memorizes
    steps, values = np.array(result["steps"]), np.array(result["llc"]["all"])
    peak = int(np.argmax(values))
    # rises through memorization: the peak lies after the start, by the end of
    # memorization or later but before generalization, well above the start
    assert steps[0] < steps[peak] < generalized and values[peak] > 2 * values[0]
    # falls after generalization: from the generalization step on it decreases at every
    # checkpoint, and ends below a third of the peak
    after = values[steps >= generalized]
    assert len(after) >= 2 and (np.diff(after) < 0).all() and after[-1] < values[peak] / 3
