import numpy as np
import pytest

from interp.analysis.phase import PhaseThresholds, classify_phase, total_norm, two_stages

STEPS = np.arange(6)
FLAT_NORM = np.full(6, 10.0)


def phase(train_hist, test_hist, xi=0.35, norm=FLAT_NORM, **thresholds):
    return classify_phase(STEPS, np.asarray(train_hist), np.asarray(test_hist), norm, xi,
                          PhaseThresholds(**thresholds))


@pytest.mark.parametrize("final_train, final_test, expected", [
    (1.0, 1.0, "coexistence"),
    (0.9, 0.9, "coexistence"),                  # both thresholds are inclusive
    (0.8999, 0.95, "partial_inversion"),
    (0.70, 0.95, "partial_inversion"),          # 1.05 - 0.35 = 0.70 is inclusive
    (0.6999, 0.95, "full_inversion"),
    (0.65, 1.0, "full_inversion"),
    (0.99, 0.5, "memorization"),
    (0.90, 0.8999, "memorization"),
])
def test_final_accuracy_rules(final_train, final_test, expected):
    train = [0.0, 0.5, 1.0, 1.0, 1.0, final_train]
    test = [0.0, 0.1, 0.5, 0.9, 0.95, final_test]
    assert phase(train, test)["phase"] == expected


def test_forgetting_needs_an_earlier_generalized_peak():
    norm = np.array([10, 12, 11, 8, 3, 0.5])
    got = phase([0.1, 0.6, 0.7, 0.5, 0.2, 0.02], [0.0, 0.3, 0.97, 0.8, 0.2, 0.01], norm=norm)
    assert got["phase"] == "forgetting"
    assert got["peak_test"] == 0.97 and got["peak_test_step"] == 2
    np.testing.assert_allclose(got["norm_ratio"], 0.5 / 11)
    never = phase([0.1, 0.2, 0.3, 0.2, 0.1, 0.1], [0.0, 0.1, 0.2, 0.3, 0.2, 0.1])
    assert never["phase"] == "confusion" and never["peak_test"] == 0.3


def test_thresholds_are_configurable():
    train, test = [0, 0, 0, 0, 0, 0.85], [0, 0, 0, 0, 0, 0.85]
    assert phase(train, test)["phase"] == "confusion"
    assert phase(train, test, test=0.8, train=0.8)["phase"] == "coexistence"


def test_two_stages_grokking_then_unlearning():
    train = np.array([0.1, 1.0, 1.0, 0.99, 0.8, 0.66])
    test = np.array([0.0, 0.3, 0.95, 1.0, 1.0, 1.0])
    st = two_stages(STEPS * 10, train, test, xi=0.35)
    assert st == {"generalized_step": 20, "unlearned_step": 50}
    assert two_stages(STEPS, train, test * 0, xi=0.35) == {"generalized_step": None,
                                                          "unlearned_step": None}
    assert two_stages(STEPS, np.ones(6), np.ones(6), 0.35)["unlearned_step"] is None


def test_total_norm_and_bad_lengths():
    m = {"norm/U": np.array([3.0]), "norm/W": np.array([4.0]), "loss": np.array([9.0])}
    np.testing.assert_allclose(total_norm(m), [5.0])
    with pytest.raises(ValueError, match="equal length"):
        classify_phase(STEPS, np.ones(5), np.ones(6), FLAT_NORM, 0.1)
