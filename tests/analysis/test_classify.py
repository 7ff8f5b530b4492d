"""Neuron classes: Otsu's threshold, fixed override, ranking, time of generalization."""

from __future__ import annotations

import numpy as np
import pytest

from interp.analysis.classify import (
    classify,
    generalizing_since,
    network_reason,
    no_split_reason,
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
    one = classify(np.full(5, 0.3))
    assert one.threshold is None and one.method == "none" and len(one.generalizing) == 0
    assert "0 neuron(s) on one side" in one.reason


def test_a_unimodal_histogram_gets_no_split_and_a_reason():
    """The IPRs of random neurons (one mode): Otsu still finds a cut, but the gap there is
    far below twice the groups' spread, so there is no split."""
    rng = np.random.default_rng(0)
    U, V, W = rng.normal(size=(64, 23)), rng.normal(size=(64, 23)), rng.normal(size=(23, 64))
    ipr = neuron_ipr({"U": U, "V": V, "W": W}, MLPConfig(width=64), 23)
    classes = classify(ipr)
    assert classes.threshold is None and classes.method == "none"
    assert len(classes.generalizing) == len(classes.memorizing) == 0
    assert classes.reason.startswith("the IPR histogram is not bimodal: the medians")
    assert classes.reason.count(".") <= 4 and classes.reason.endswith(".")
    # a fixed threshold is the caller's choice: it still splits
    assert len(classify(ipr, threshold=float(np.median(ipr))).generalizing) == 32


def test_the_separation_criterion_by_hand():
    """Sides {0, 0.1} and {0.5, 0.6}: medians 0.05 and 0.55, 0.5 apart; interquartile
    ranges 0.05 (numpy's linear quartiles of two values): 0.5 >= 4 x 0.05, a split. Sides
    {0, 0.2} and {0.3, 0.5}: medians 0.4 - 0.1 = 0.3 apart < 4 x 0.1, no split. Two tight
    clusters with a few neurons between them still split (the median ignores them)."""
    assert no_split_reason(np.array([0.0, 0.1, 0.5, 0.6]), 0.3) is None
    why = no_split_reason(np.array([0.0, 0.2, 0.3, 0.5]), 0.25)
    assert "lie 0.3 apart, less than 4 times their interquartile range 0.1." in why
    between = np.r_[np.full(20, 0.05), [0.3, 0.45, 0.6], np.full(10, 0.9)]
    assert no_split_reason(between, otsu_threshold(between)) is None
    assert "interquartile range 1e-06" in no_split_reason(np.array([1.0, 1.0, 1.0 + 1e-12,
                                                                    1.0 + 1e-12]), 1.0 + 5e-13)


def test_network_reasons():
    p = 7
    good = np.eye(p)[np.arange(20) % p] * 5.0
    assert network_reason(good, test_accuracy=0.9) is None
    collapsed = network_reason(good * 1e-7, test_accuracy=0.9)
    # one-hot rows of 5e-7: RMS about the row mean = sqrt(6) / 7 * 5e-7 = 1.75e-7
    assert collapsed.startswith("the network has collapsed: its logits vary by 1.7e-07")
    memorized = network_reason(good, test_accuracy=0.026)
    assert memorized.startswith("the network does not generalize (test accuracy 0.026 < 0.5)")
    assert network_reason(good, float("nan")) is None  # no test pairs: not checked
    assert "op mul has no Fourier basis" in network_reason(good, 0.9, fourier=False, op="mul")
    classes = classify(np.array([0.1, 0.1, 0.9, 0.9]), reason=memorized)
    assert classes.threshold is None and classes.reason == memorized


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
