"""The mean and 95% interval of repeated runs, and their phase agreement
(interp.analysis.spread), checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from interp.analysis.spread import agreement, interval, mean_interval

T_975_2 = 4.302652729749464  # t_{0.975, 2}, 3 values


def test_interval_by_hand():
    # 1, 2, 3: mean 2, s = 1 -> 2 -+ 4.302653 / sqrt(3)
    mean, lo, hi = interval([1.0, 2.0, 3.0])
    half = T_975_2 / np.sqrt(3)
    np.testing.assert_allclose([mean, lo, hi], [2.0, 2.0 - half, 2.0 + half], rtol=1e-12)
    assert interval([0.5]) == (0.5, None, None)
    with pytest.raises(ValueError, match="at least one"):
        interval([])


def test_mean_interval_acts_on_the_last_axis():
    # rows: 1, 2, 3 (s = 1); 4, 4, 4 (s = 0); 0, 0, 3 (mean 1, s = sqrt(3))
    x = np.array([[[1.0, 2.0, 3.0], [4.0, 4.0, 4.0], [0.0, 0.0, 3.0]]])
    mean, half = mean_interval(x)
    assert mean.shape == half.shape == (1, 3)
    np.testing.assert_allclose(mean, [[2.0, 4.0, 1.0]], rtol=1e-12)
    np.testing.assert_allclose(half, [[T_975_2 / np.sqrt(3), 0.0, T_975_2]], rtol=1e-12)
    assert np.isnan(mean_interval(np.ones((4, 1)))[1]).all()


def test_agreement_by_hand():
    assert agreement(["coexistence"] * 3) == ("coexistence", "stable")
    assert agreement(["coexistence", "memorization", "coexistence"]) == (
        "coexistence", "mixed: 2 of 3 coexistence")
    # a tie goes to the first in PHASES
    assert agreement(["memorization", "coexistence"]) == ("coexistence",
                                                          "mixed: 1 of 2 coexistence")
    with pytest.raises(ValueError, match="at least one phase"):
        agreement([])
