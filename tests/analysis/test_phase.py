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


# ----------------------------------------------------------------------------- clean runs
def step_curve(steps, at, lo=0.0, hi=1.0):
    """An accuracy that jumps from ``lo`` to ``hi`` at step ``at`` (never when None)."""
    return np.where(steps >= at, hi, lo) if at is not None else np.full(len(steps), lo)


LONG = np.arange(0, 1000, 5)


@pytest.mark.parametrize("t_train, t_test, expected", [
    (100, 500, "grokking"),        # test 5x later than train
    (100, 200, "grokking"),        # delay_ratio 2 is inclusive
    (100, 195, "comprehension"),
    (30, 60, "comprehension"),     # twice as late, but a delay of 30 < min_delay 100 steps
    (50, 145, "comprehension"),    # 145 >= 2 x 50, but a delay of 95 < 100
    (50, 150, "grokking"),         # min_delay 100 is inclusive
    (100, 100, "comprehension"),
    (100, None, "memorization"),
    (None, None, "confusion"),
])
def test_classic_phase_on_curves_with_known_steps(t_train, t_test, expected):
    train, test = step_curve(LONG, t_train), step_curve(LONG, t_test)
    verdict = classify_phase(LONG, train, test, np.ones(len(LONG)), xi=0.0)
    assert verdict["phase"] == expected and verdict["vocabulary"] == "classic"
    classic = verdict["classic"]
    assert classic["memorization_step"] == t_train
    assert classic["generalization_step"] == t_test
    assert classic["grokking_delay"] == (t_test - t_train if t_test and t_train else None)


def test_classic_forgetting_and_the_corrupted_vocabulary_unchanged():
    train = np.where(LONG < 600, step_curve(LONG, 100), 0.2)
    test = np.where(LONG < 600, step_curve(LONG, 300), 0.05)
    verdict = classify_phase(LONG, train, test, np.ones(len(LONG)), xi=0.0)
    assert verdict["phase"] == "forgetting"
    corrupted = classify_phase(LONG, step_curve(LONG, 100), step_curve(LONG, 500),
                               np.ones(len(LONG)), xi=0.2)
    assert corrupted["phase"] == "coexistence" and "classic" not in corrupted


def test_progress_boundaries_on_a_ramp():
    from interp.analysis.phase import progress_boundaries

    steps = np.arange(0, 101)
    train = step_curve(steps, 10)
    test = np.clip((steps - 40) / 40, 0, 1)  # 0.2 at step 48, 0.9 at step 76
    assert progress_boundaries(steps, train, test) == {
        "memorization_end": 10, "circuit_formation_end": 48, "cleanup_end": 76}
    never = progress_boundaries(steps, np.zeros(101), test)
    assert never == dict.fromkeys(never, None)  # no memorization: no later phase either
    custom = progress_boundaries(steps, train, test, PhaseThresholds(cleanup=0.5, test=0.95))
    assert custom == {"memorization_end": 10, "circuit_formation_end": 60, "cleanup_end": 78}


def test_a_clean_sweep_over_train_fraction_and_weight_decay_draws_its_phase_diagram(tmp_path):
    import interp
    from interp.analysis.phase import CLASSIC_PHASES, PHASES
    from interp.plots.phase_diagram import PHASE_COLORS, phase_grid

    base = interp.RunConfig().replace(data={"p": 7, "corrupt": 0.0}, model={"width": 8},
                                      train={"steps": 30, "save_every": 10, "lr": 0.05})
    spec = interp.SweepSpec(base=base, xi=(0.0,), alpha=(0.4, 0.7),
                            regularizer="weight_decay", values=(0.0, 1.0))
    interp.run_sweep(spec, tmp_path / "sweep", workers=0)
    rows = interp.summary(tmp_path / "sweep")
    assert len(rows) == 4 and all(r["phase"] in CLASSIC_PHASES for r in rows)
    for r in rows:  # the classic steps and delay, as the run's own phase gives them
        with interp.Run(tmp_path / "sweep" / "cells" / f"{r['cell_id']}.h5") as run:
            classic = interp.run_phase(run)["classic"]
        assert [r[k] for k in ("memorization_step", "generalization_step",
                               "grokking_delay")] == [classic["memorization_step"],
                                                      classic["generalization_step"],
                                                      classic["grokking_delay"]]
    assert len(PHASE_COLORS) == len(PHASES)  # every phase has its colour
    synthetic = [{"xi": 0.0, "alpha": a, "seed": 0, "status": "complete", "phase": ph}
                 for a, ph in ((0.3, "grokking"), (0.6, "comprehension"))]
    assert phase_grid(synthetic)[2].ravel().tolist() == [PHASES.index("grokking"),
                                                         PHASES.index("comprehension")]
    paths = interp.write_phase_diagram(tmp_path / "sweep")
    assert all(path.stat().st_size > 1000 for path in paths)
