import numpy as np
import pytest

from interp.analysis.phase import PhaseThresholds, classify_phase, total_norm, two_stages

STEPS = np.arange(6)
FLAT_NORM = np.full(6, 10.0)


def phase(train_hist, test_hist, corrupt=0.35, norm=FLAT_NORM, **thresholds):
    return classify_phase(STEPS, np.asarray(train_hist), np.asarray(test_hist), norm, corrupt,
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
    verdict = phase(train, test)
    assert verdict["phase"] == expected
    assert verdict["corrupt"] == 0.35 and "xi" not in verdict  # one name (issue 26)


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
    st = two_stages(STEPS * 10, train, test, corrupt=0.35)
    assert st == {"generalized_step": 20, "unlearned_step": 50}
    assert two_stages(STEPS, train, test * 0, corrupt=0.35) == {"generalized_step": None,
                                                          "unlearned_step": None}
    assert two_stages(STEPS, np.ones(6), np.ones(6), 0.35)["unlearned_step"] is None


def test_the_paper_symbol_as_keyword_still_works_with_a_deprecation_warning():
    """``xi=``, the argument's name before issue 26, gives the same answer and a
    DeprecationWarning naming ``corrupt``; both names at once is a TypeError."""
    train = np.array([0.1, 1.0, 1.0, 0.99, 0.8, 0.66])
    test = np.array([0.0, 0.3, 0.95, 1.0, 1.0, 1.0])
    with pytest.warns(DeprecationWarning, match=r"two_stages\(\): xi= is deprecated; use corrupt="):
        assert two_stages(STEPS, train, test, xi=0.35) == two_stages(STEPS, train, test, 0.35)
    with pytest.warns(DeprecationWarning, match="use corrupt="):
        old = classify_phase(STEPS, train, test, FLAT_NORM, xi=0.35)
    assert old == classify_phase(STEPS, train, test, FLAT_NORM, corrupt=0.35)
    with pytest.raises(TypeError, match="both corrupt= and xi="):
        two_stages(STEPS, train, test, corrupt=0.35, xi=0.35)


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
    verdict = classify_phase(LONG, train, test, np.ones(len(LONG)), corrupt=0.0)
    assert verdict["phase"] == expected and verdict["vocabulary"] == "classic"
    classic = verdict["classic"]
    assert classic["memorization_step"] == t_train
    assert classic["generalization_step"] == t_test
    assert classic["grokking_delay"] == (t_test - t_train if t_test and t_train else None)


def test_classic_forgetting_and_the_corrupted_vocabulary_unchanged():
    train = np.where(LONG < 600, step_curve(LONG, 100), 0.2)
    test = np.where(LONG < 600, step_curve(LONG, 300), 0.05)
    verdict = classify_phase(LONG, train, test, np.ones(len(LONG)), corrupt=0.0)
    assert verdict["phase"] == "forgetting"
    corrupted = classify_phase(LONG, step_curve(LONG, 100), step_curve(LONG, 500),
                               np.ones(len(LONG)), corrupt=0.2)
    assert corrupted["phase"] == "coexistence" and "classic" not in corrupted


def decades(steps, *knots):
    """10 ** (a piecewise-linear curve through the (step, log10 loss) ``knots``)."""
    at, value = zip(*knots)
    return 10.0 ** np.interp(steps, at, value)


STEPS_100 = np.arange(0, 101)
# memorization: train loss 1 -> 10 ** -3.3 at 0.275 decades a step, flat from step 12,
# falling again in cleanup; test loss 1 -> 10 (its peak, first reached at step 12), flat
# until step 50, then falling 0.2 decades a step to 1e-4 at step 75
TRAIN = decades(STEPS_100, (0, 0), (12, -3.3), (60, -3.3), (80, -5))
TEST = decades(STEPS_100, (0, 0), (12, 1), (50, 1), (75, -4))


def test_progress_boundaries_read_from_the_loss_curves_by_hand():
    from interp.analysis.phase import progress_boundaries

    # memorization ends at the test loss's peak (step 12; the train loss was half a
    # decade down at step 2, 10 ** -0.55); cleanup: a fall of 5 decades from the peak,
    # 10% of it (10 ** 0.5) first reached at step 53 (10 ** 0.4; 10 ** 0.6 at 52), 90%
    # (10 ** -3.5) at step 73 (10 ** -3.6)
    assert progress_boundaries(STEPS_100, TRAIN, TEST) == {
        "memorization_end": 12, "circuit_formation_end": 53, "cleanup_end": 73}
    # 30% of the fall: 10 ** -0.5 at step 58 (10 ** -0.6), 70%: 10 ** -2.5 at 68
    assert progress_boundaries(STEPS_100, TRAIN, TEST, PhaseThresholds(loss_fraction=0.3)) \
        == {"memorization_end": 12, "circuit_formation_end": 58, "cleanup_end": 68}
    # a train loss that falls later than the test loss peaks: 0.055 decades a step, half
    # a decade down at step 10 (10 ** -0.55); the test loss falls 3 decades from step 40
    # at 0.12 a step: 0.3 of them at step 43 (10 ** 0.64), 2.7 at step 63 (10 ** -1.76)
    slow = decades(STEPS_100, (0, 0), (20, -1.1))
    early = decades(STEPS_100, (0, 0), (2, 1), (40, 1), (65, -2))
    assert progress_boundaries(STEPS_100, slow, early) == {
        "memorization_end": 10, "circuit_formation_end": 43, "cleanup_end": 63}


def test_progress_boundaries_where_a_phase_does_not_happen():
    from interp.analysis.phase import progress_boundaries

    memorized = decades(STEPS_100, (0, 0), (12, 1))  # the test loss never falls
    assert progress_boundaries(STEPS_100, TRAIN, memorized) == {
        "memorization_end": 12, "circuit_formation_end": None, "cleanup_end": None}
    # a fall of 0.4 decades is no cleanup, unless min_drop says it is: then 0.04 decades
    # of it (10 ** 0.96) come at step 51 (10 ** 0.9), 0.36 (10 ** 0.64) at 54 (10 ** 0.6)
    shallow = decades(STEPS_100, (0, 0), (12, 1), (50, 1), (54, 0.6))
    assert progress_boundaries(STEPS_100, TRAIN, shallow)["circuit_formation_end"] is None
    ends = progress_boundaries(STEPS_100, TRAIN, shallow, PhaseThresholds(min_drop=0.3))
    assert ends == {"memorization_end": 12, "circuit_formation_end": 51, "cleanup_end": 54}
    confused = decades(STEPS_100, (0, 0), (50, -0.3))  # 0.3 decades: no memorization
    never = progress_boundaries(STEPS_100, confused, TEST)
    assert never == dict.fromkeys(never, None)  # and so no later phase either
    with pytest.raises(ValueError, match="equal length"):
        progress_boundaries(STEPS_100, TRAIN[:5], TEST)


def test_progress_boundaries_on_a_small_run_that_memorizes(tmp_path):
    """A clean cross-entropy run at p 23 memorizes in about 80 steps: its test loss
    peaks once the training pairs are learned and the test pairs are not, and that is
    where memorization ends; the test loss has not fallen yet, so no later phase."""
    import interp

    cfg = interp.RunConfig().replace(
        data={"p": 23, "corrupt": 0.0, "train_frac": 0.5}, model={"width": 32},
        train={"steps": 120, "save_every": 4, "weight_decay": 1.0, "lr": 0.01,
               "loss": "ce"})
    interp.train_to_file(cfg, tmp_path / "run.h5")
    with interp.Run(tmp_path / "run.h5") as run:
        m, verdict = run.metrics(), interp.run_phase(run)
    ends = verdict["boundaries"]
    at = list(m["step"]).index(ends["memorization_end"])
    assert at == int(np.argmax(m["test_loss"])) and 40 <= ends["memorization_end"] <= 100
    assert m["accuracy/train"][at] == 1.0 and m["accuracy/test"][at] < 0.1
    assert m["loss"][at] < m["loss"][0] / 10  # the train loss a decade down by then
    assert ends["circuit_formation_end"] is None and ends["cleanup_end"] is None
    text = printed({"step": 120, "p": 23, "width": 32, "accuracy": {}, "phase": verdict})
    for shown in ("memorization_step", "grokking_delay", "memorization_end"):
        assert shown in text  # the classic evidence and the phase ends from the losses
    for hidden in ("unlearned_step", "generalized_step", "norm_ratio"):
        assert hidden not in text  # a clean run has no corruption stages


def printed(summary):
    from rich.console import Console

    from interp.cli.tables import analysis_tables

    console = Console(record=True, width=200)
    for table in analysis_tables(summary):
        console.print(table)
    return console.export_text()


def test_a_clean_sweep_over_train_fraction_and_weight_decay_draws_its_phase_diagram(tmp_path):
    import interp
    from interp.analysis.phase import CLASSIC_PHASES, PHASES
    from interp.plots.phase_diagram import PHASE_COLORS, delay_grid, phase_grid
    from interp.sweeps.seeds import seed_rows

    base = interp.RunConfig().replace(data={"p": 7, "corrupt": 0.0}, model={"width": 8},
                                      train={"steps": 30, "save_every": 10, "lr": 0.05})
    spec = interp.SweepSpec(base=base, corrupt=(0.0,), train_frac=(0.4, 0.7),
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
    synthetic = [{"corrupt": 0.0, "train_frac": a, "seed": 0, "status": "complete", "phase": ph}
                 for a, ph in ((0.3, "grokking"), (0.6, "comprehension"))]
    assert phase_grid(synthetic)[2].ravel().tolist() == [PHASES.index("grokking"),
                                                         PHASES.index("comprehension")]
    paths = interp.write_phase_diagram(tmp_path / "sweep")
    assert all(path.stat().st_size > 1000 for path in paths)
    assert [p.name for p in paths][-1] == "grokking_delay.png"  # the clean sweep's map
    values, train_frac, grid = delay_grid(rows)  # one seed: each cell's own delay, or none
    assert values.tolist() == [0.0, 1.0] and train_frac.tolist() == [0.4, 0.7]
    for r in rows:
        got = grid[train_frac.tolist().index(r["train_frac"]), values.tolist().index(r["value"])]
        assert (np.isnan(got) if r["grokking_delay"] is None else got == r["grokking_delay"])
    seeds = {(s["value"], s["train_frac"]): s for s in seed_rows(rows)}
    for r in rows:
        assert seeds[r["value"], r["train_frac"]]["grokking_delay_mean"] == r["grokking_delay"]
