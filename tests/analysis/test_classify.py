"""Neuron classes: Otsu's threshold, fixed override, ranking, time of generalization."""

from __future__ import annotations

import numpy as np
import pytest

from interp.analysis.classify import (
    classify,
    generalizing_since,
    otsu_threshold,
    rank_neurons,
)
from interp.analysis.neurons import neuron_ipr
from interp.models import MLPConfig


def planted_network(p: int, n_periodic: int, n_random: int, seed: int, noise: float = 0.0):
    """Single-cosine neurons (random frequency and phases) plus Gaussian neurons, shuffled."""
    rng = np.random.default_rng(seed)
    n = n_periodic + n_random
    i = np.arange(p)
    U, V, W = rng.normal(size=(n, p)), rng.normal(size=(n, p)), rng.normal(size=(p, n))
    periodic = rng.permutation(n)[:n_periodic]
    for k in periodic:
        f = rng.integers(1, p // 2 + 1)
        phu, phv = rng.uniform(-np.pi, np.pi, 2)
        U[k] = np.cos(2 * np.pi * f * i / p + phu) + noise * rng.normal(size=p)
        V[k] = np.cos(2 * np.pi * f * i / p + phv) + noise * rng.normal(size=p)
        W[:, k] = np.cos(2 * np.pi * f * i / p + phu + phv) + noise * rng.normal(size=p)
    return U, V, W, np.sort(periodic)


@pytest.mark.parametrize("p,noise,seed", [(97, 0.0, 0), (97, 0.2, 1), (23, 0.0, 2), (23, 0.1, 3)])
def test_otsu_recovers_the_planted_split_exactly(p, noise, seed):
    U, V, W, periodic = planted_network(p, 40, 60, seed, noise)
    classes = classify(neuron_ipr({"U": U, "V": V, "W": W}, MLPConfig(width=len(U)), U.shape[1]))
    assert classes.method == "otsu"
    np.testing.assert_array_equal(classes.generalizing, periodic)
    np.testing.assert_array_equal(classes.memorizing,
                                  np.setdiff1d(np.arange(100), periodic))


def test_otsu_threshold_of_two_clusters_is_the_midpoint_of_the_gap():
    values = np.array([0.10, 0.12, 0.11, 0.90, 0.95, 0.93])
    np.testing.assert_allclose(otsu_threshold(values), (0.12 + 0.90) / 2, rtol=1e-12)


def test_otsu_maximises_between_class_variance_over_all_cuts():
    values = np.random.default_rng(0).uniform(size=50)
    cut = otsu_threshold(values)

    def between(t):
        lo, hi = values[values < t], values[values >= t]
        return len(lo) * len(hi) * (lo.mean() - hi.mean()) ** 2

    v = np.sort(values)
    best = max(between((a + b) / 2) for a, b in zip(v[:-1], v[1:], strict=True))
    np.testing.assert_allclose(between(cut), best, rtol=1e-12)


def test_otsu_never_cuts_between_equal_values_and_handles_one_value():
    values = np.array([0.2, 0.2, 0.2, 0.2, 0.8, 0.8])
    np.testing.assert_allclose(otsu_threshold(values), 0.5, rtol=1e-12)
    np.testing.assert_allclose(otsu_threshold(np.full(5, 0.3)), 0.3, rtol=0)
    np.testing.assert_array_equal(classify(np.full(5, 0.3)).generalizing, np.arange(5))


def test_fixed_threshold_overrides_otsu():
    ipr = np.array([0.1, 0.5, 0.3, 0.7])
    classes = classify(ipr, threshold=0.3)
    assert classes.method == "fixed" and classes.threshold == 0.3
    np.testing.assert_array_equal(classes.generalizing, [1, 2, 3])
    np.testing.assert_array_equal(classes.memorizing, [0])
    for bad in (float("nan"), 2.0, -1.0, 0.0, True, "0.5"):  # an IPR lies in (0, 1]
        with pytest.raises(ValueError, match=r"^threshold must be a number in \(0, 1\]"):
            classify(ipr, threshold=bad)
    assert classify(ipr, threshold=1.0).generalizing.size == 0  # no IPR reaches 1 here


def test_ranking_is_a_stable_argsort():
    ipr = np.array([0.5, 0.1, 0.5, 0.9])
    np.testing.assert_array_equal(rank_neurons(ipr), [1, 0, 2, 3])
    np.testing.assert_array_equal(rank_neurons(ipr, descending=True), [3, 0, 2, 1])


def test_generalizing_since_known_answer():
    steps = np.array([0, 10, 20, 30])
    traj = np.array([  # neurons: always, from 20, flickers then stays, never, lost at end
        [0.9, 0.1, 0.9, 0.1, 0.9],
        [0.9, 0.1, 0.1, 0.1, 0.9],
        [0.9, 0.9, 0.9, 0.1, 0.9],
        [0.9, 0.9, 0.9, 0.1, 0.1],
    ])
    np.testing.assert_array_equal(generalizing_since(traj, steps, 0.5), [0, 20, 20, -1, -1])
    # the threshold is inclusive
    np.testing.assert_array_equal(generalizing_since(traj, steps, 0.9), [0, 20, 20, -1, -1])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="ipr must be finite"):
        classify(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="ipr must have 1 axis"):
        classify(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"steps must have shape \(2,\)"):
        generalizing_since(np.zeros((2, 3)), np.arange(3), 0.5)
