import json
import math
from pathlib import Path

import numpy as np
import pytest

from interp.analysis.fit import (
    FitTolerances,
    cosine_fit,
    fit_neurons,
    fit_summary,
    frequency_lock_steps,
    idealized_weights,
    lock_index,
    wrap_phase,
)
from interp.analysis.solution import analytic_network
from interp.config import RunConfig
from interp.data import make_dataset
from interp.store.convert import write_trajectory
from interp.store.run import Run

NOISE_STD = 0.05  # per entry, for unit-amplitude cosines: phase error std ~ 0.05/sqrt(p/2)


def cosines(p: int, freq: np.ndarray, amp: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Rows amp cos(2 pi freq x / p + phase). shape=(*freq.shape, p)."""
    x = np.arange(p)
    return amp[..., None] * np.cos(2 * np.pi * freq[..., None] * x / p + phase[..., None])


def neuron(p: int, f: int, phi_u: float, phi_v: float, phi_w: float) -> tuple[np.ndarray, ...]:
    """One neuron (N = 1) with exact cosines of the given phases."""
    row = [cosines(p, np.array([f]), np.ones(1), np.array([phi])) for phi in (phi_u, phi_v, phi_w)]
    return row[0], row[1], row[2].T


def test_wrap_phase_half_open_interval() -> None:
    x = np.array([0.0, np.pi, -np.pi, 3 * np.pi, np.pi + 0.1, -np.pi - 0.1, 2 * np.pi, -7.0])
    expected = np.array([0.0, np.pi, np.pi, np.pi, -np.pi + 0.1, np.pi - 0.1, 0.0,
                         -7.0 + 2 * np.pi])
    np.testing.assert_allclose(wrap_phase(x), expected, atol=1e-12)
    many = wrap_phase(np.linspace(-20, 20, 10001))
    assert many.min() > -np.pi and many.max() <= np.pi


def test_cosine_fit_exact_and_matches_least_squares() -> None:
    rng = np.random.default_rng(0)
    p = 31
    freq = rng.integers(1, 16, size=(4, 5))
    amp = rng.uniform(0.5, 2.0, size=(4, 5))
    phase = rng.uniform(-np.pi, np.pi, size=(4, 5))
    fit = cosine_fit(cosines(p, freq, amp, phase) + 0.7)  # a constant offset is not variance
    np.testing.assert_array_equal(fit["frequency"], freq)
    np.testing.assert_allclose(fit["amplitude"], amp, rtol=1e-10)
    np.testing.assert_allclose(wrap_phase(fit["phase"] - phase), 0.0, atol=1e-10)
    np.testing.assert_allclose(fit["explained"], 1.0, rtol=1e-10)

    # Slow reference: least squares on [1, cos, sin] at a given frequency.
    x = rng.normal(size=(6, p))
    f = np.array([1, 2, 5, 7, 11, 15])
    fast = cosine_fit(x, f)
    for i in range(len(x)):
        t = 2 * np.pi * f[i] * np.arange(p) / p
        basis = np.stack([np.ones(p), np.cos(t), np.sin(t)], axis=1)
        coef, *_ = np.linalg.lstsq(basis, x[i], rcond=None)
        resid = x[i] - basis @ coef
        centred = x[i] - x[i].mean()
        np.testing.assert_allclose(fast["amplitude"][i], np.hypot(coef[1], coef[2]), rtol=1e-10)
        np.testing.assert_allclose(fast["phase"][i], np.arctan2(-coef[2], coef[1]), atol=1e-10)
        np.testing.assert_allclose(fast["explained"][i], 1 - resid @ resid / (centred @ centred),
                                   rtol=1e-10)


def test_fit_recovers_planted_neurons_under_noise() -> None:
    p, n = 97, 300
    rng = np.random.default_rng(1)
    freq = rng.integers(1, 49, size=n)
    phi_u, phi_v = rng.uniform(-np.pi, np.pi, size=(2, n))
    amp = rng.uniform(0.5, 1.5, size=(3, n))
    U = cosines(p, freq, amp[0], phi_u) + rng.normal(0, NOISE_STD, size=(n, p))
    V = cosines(p, freq, amp[1], phi_v) + rng.normal(0, NOISE_STD, size=(n, p))
    W = cosines(p, freq, amp[2], phi_u + phi_v).T + rng.normal(0, NOISE_STD, size=(p, n))
    fit = fit_neurons(U, V, W)
    np.testing.assert_array_equal(fit["frequency"], freq)
    np.testing.assert_array_equal(fit["frequencies"], np.stack([freq] * 3, axis=-1))
    planted = np.stack([phi_u, phi_v, phi_u + phi_v], axis=-1)
    np.testing.assert_allclose(wrap_phase(fit["phase"] - planted), 0.0, atol=0.05)
    np.testing.assert_allclose(fit["amplitude"], amp.T, atol=0.03)
    np.testing.assert_allclose(fit["residual"], 0.0, atol=0.05)
    assert fit["consistent"].all()


def test_fit_broadcasts_over_leading_axes() -> None:
    nets = [analytic_network(13, 8, seed=s) for s in range(3)]
    stacked = {k: np.stack([net[k] for net in nets]) for k in "UVW"}
    fit = fit_neurons(stacked["U"], stacked["V"], stacked["W"])
    assert fit["frequency"].shape == (3, 8) and fit["phase"].shape == (3, 8, 3)
    for s, net in enumerate(nets):
        one = fit_neurons(net["U"], net["V"], net["W"])
        for key, value in one.items():
            np.testing.assert_allclose(fit[key][s], value, atol=1e-12)


def test_random_gaussian_neurons_are_inconsistent() -> None:
    rng = np.random.default_rng(2)
    p, n = 97, 500
    U, V = rng.normal(size=(2, n, p))
    fit = fit_neurons(U, V, rng.normal(size=(p, n)))
    assert not fit["consistent"].any()
    assert fit["explained"].max() < FitTolerances().min_explained


def test_residual_wraps_at_pi() -> None:
    p = 17
    # phases that sum past pi: W's own phase is wrapped, the residual must still be 0
    fit = fit_neurons(*neuron(p, 3, 3.0, 3.0, 6.0))
    np.testing.assert_allclose(fit["residual"], 0.0, atol=1e-10)
    assert fit["consistent"].all()
    for offset, expected in ((np.pi - 0.01, np.pi - 0.01), (np.pi + 0.01, -np.pi + 0.01)):
        fit = fit_neurons(*neuron(p, 3, 2.0, -1.5, 0.5 + offset))
        np.testing.assert_allclose(fit["residual"], expected, atol=1e-10)
        assert not fit["consistent"].any()
    # exactly pi apart: the residual is +-pi (either end up to rounding), never inside
    fit = fit_neurons(*neuron(p, 3, 2.0, -1.5, 0.5 + np.pi))
    np.testing.assert_allclose(np.abs(fit["residual"]), np.pi, atol=1e-10)


def test_phase_relation_tolerance_and_sign() -> None:
    p = 17
    inside = fit_neurons(*neuron(p, 2, 0.3, 1.1, 1.4 + 0.9 * math.pi / 6))
    outside = fit_neurons(*neuron(p, 2, 0.3, 1.1, 1.4 + 1.1 * math.pi / 6))
    assert inside["consistent"].all() and not outside["consistent"].any()
    # subtraction: phase(W) = phase(U) - phase(V)
    sub = neuron(p, 2, 0.3, 1.1, 0.3 - 1.1)
    assert fit_neurons(*sub, op="sub")["consistent"].all()
    assert not fit_neurons(*sub, op="add")["consistent"].any()
    with pytest.raises(ValueError, match="op must be one of"):
        fit_neurons(*sub, op="mul")


def test_idealized_network_of_analytic_solution_is_perfect() -> None:
    cfg = RunConfig().replace(data={"p": 97, "corrupt": 0.0}, model={"width": 500})
    net = analytic_network(97, 500, seed=0)
    summary = fit_summary(net, cfg, make_dataset(cfg.data))
    json.dumps(summary, allow_nan=False)
    s = summary["summary"]
    assert s["n_consistent"] == 500 and s["coverage"] == 1.0 and s["missing_frequencies"] == []
    assert sorted(set(s["frequency_counts"])) == [10, 11]
    for key in ("idealized", "consistent_only"):
        acc = summary[key]
        np.testing.assert_allclose([acc[k] for k in ("train", "test", "all_true")], 1.0,
                                   atol=0)
        assert acc["train_corrupted"] is None  # no corruption: empty subset
    record = summary["neurons"][7]
    assert record["frequency"] == 8 and record["consistent"] is True
    np.testing.assert_allclose(record["amplitudes"], (2 / 500) ** (1 / 3), rtol=1e-5)


def test_idealized_weights_drop_inconsistent_neurons() -> None:
    p = 13
    net = analytic_network(p, 6, seed=0)
    fit = fit_neurons(net["U"], net["V"], net["W"])
    fit["consistent"][[1, 4]] = False
    ideal = idealized_weights(fit, p)
    np.testing.assert_allclose(ideal["U"][[1, 4]], 0.0, atol=0)
    np.testing.assert_allclose(ideal["W"][:, [1, 4]], 0.0, atol=0)
    keep = [0, 2, 3, 5]
    for k in "UV":
        np.testing.assert_allclose(ideal[k][keep], net[k][keep], atol=1e-6)
    np.testing.assert_allclose(ideal["W"][:, keep], net["W"][:, keep], atol=1e-6)


def slow_lock_index(frequency: np.ndarray, consistent: np.ndarray) -> np.ndarray:
    t_max, n = frequency.shape
    out = np.full(n, -1)
    for k in range(n):
        for t in range(t_max):
            tail_f, tail_ok = frequency[t:, k], consistent[t:, k]
            if tail_ok.all() and (tail_f == tail_f[0]).all():
                out[k] = t
                break
    return out


def test_lock_index_matches_reference() -> None:
    frequency = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [2, 2, 3, 4], [2, 2, 3, 5]])
    consistent = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [1, 1, 1, 1], [1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(lock_index(frequency, consistent), [2, 0, 2, 3])
    rng = np.random.default_rng(3)
    frequency = rng.integers(1, 3, size=(12, 200))
    consistent = rng.random((12, 200)) < 0.8
    np.testing.assert_array_equal(lock_index(frequency, consistent),
                                  slow_lock_index(frequency, consistent))


def test_frequency_lock_steps_streams_a_run(tmp_path: Path) -> None:
    p, n = 13, 6
    cfg = RunConfig().replace(data={"p": p, "corrupt": 0.0}, model={"width": n},
                              train={"steps": 40})
    net = analytic_network(p, n, seed=0)
    moved = dict(net)
    moved["U"], moved["V"], moved["W"] = net["U"].copy(), net["V"].copy(), net["W"].copy()
    other = analytic_network(p, n, seed=1)  # its neuron 1 has frequency 2
    for k in "UV":
        moved[k][0] = other[k][1]  # neuron 0 switches to frequency 2 at step 20
    moved["W"][:, 0] = other["W"][:, 1]
    zeros = {k: np.zeros_like(v) for k, v in net.items()}
    path = write_trajectory(cfg, tmp_path / "lock.h5",
                            [(0, zeros), (10, net), (20, moved), (30, moved), (40, moved)])
    with Run(path) as run:
        lock, freq = frequency_lock_steps(run, chunk=2)
        lock_early, freq_early = frequency_lock_steps(run, chunk=2, until=15)
    np.testing.assert_array_equal(lock, [20, 10, 10, 10, 10, 10])
    np.testing.assert_array_equal(freq, [2, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(lock_early, [10, 10, 10, 10, 10, 10])
    np.testing.assert_array_equal(freq_early, [1, 2, 3, 4, 5, 6])


def test_write_fit_figures(tmp_path: Path) -> None:
    from interp.plots.fit import write_fit_figures

    cfg = RunConfig().replace(data={"p": 13, "corrupt": 0.0}, model={"width": 8})
    net = analytic_network(13, 8, seed=0)
    net["U"][3] = np.random.default_rng(0).normal(size=13)  # one inconsistent neuron
    summary = fit_summary(net, cfg, make_dataset(cfg.data))
    paths = write_fit_figures(summary, net, tmp_path / "figs", n_examples=2)
    assert [p.name for p in paths] == ["fit_frequencies.png", "fit_residuals.png",
                                       "fit_neurons.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(p.name for p in paths)


def test_tolerances_are_validated() -> None:
    with pytest.raises(ValueError, match="min_explained"):
        FitTolerances(min_explained=1.5)
    with pytest.raises(ValueError, match="max_residual"):
        FitTolerances(max_residual=-0.1)
