import json

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from interp.analysis.phase import PHASES
from interp.analysis.spectra import IPR_CONVENTION
from interp.config import RunConfig
from interp.plots.phase_diagram import (
    PHASE_COLORS,
    accuracy_grid,
    delay_grid,
    inferred_grid,
    majority_phase,
    phase_figures,
    phase_grid,
    plot_accuracy_heatmap,
    plot_delay_map,
    plot_phase_diagram,
    write_phase_diagram,
)
from interp.sweeps.spec import SweepSpec
from interp.sweeps.summary import COLUMNS, write_summary

C, P, F, M, G, X = range(6)  # indices into PHASES


def row(corrupt, train_frac, seed, phase, value=5.0, acc_test=0.5, status="complete"):
    r = dict.fromkeys(COLUMNS)
    r.update(cell_id=f"wd{value:g}_xi{corrupt:g}_a{train_frac:g}_s{seed}",
             regularizer="weight_decay",
             value=value, corrupt=corrupt, train_frac=train_frac, seed=seed, status=status,
             phase=phase if status == "complete" else None,
             acc_test=acc_test if status == "complete" else None,
             acc_train=1 - acc_test if status == "complete" else None)
    return r


def hand_made_rows():
    """corrupt (0.1, 0.3, 0.5) x train_frac (0.4, 0.6), three seeds, weight decay 5; then wd 0."""
    rows = [
        row(0.1, 0.4, 0, "coexistence"), row(0.1, 0.4, 1, "coexistence"),
        row(0.1, 0.4, 2, "memorization"),                       # 2 to 1: coexistence
        row(0.3, 0.4, 0, "full_inversion"), row(0.3, 0.4, 1, "partial_inversion"),
        row(0.3, 0.4, 2, None, status="failed"),                # a tie: PHASES order wins
        row(0.5, 0.4, 0, "confusion", acc_test=0.1), row(0.5, 0.4, 1, "confusion", acc_test=0.3),
        row(0.5, 0.4, 2, "forgetting", acc_test=0.2),
        row(0.1, 0.6, 0, "memorization", acc_test=0.2), row(0.1, 0.6, 1, "memorization"),
        row(0.1, 0.6, 2, "memorization"),
        row(0.3, 0.6, 0, None, status="missing"), row(0.3, 0.6, 1, None, status="incomplete"),
        row(0.3, 0.6, 2, None, status="missing"),               # nothing complete: -1
        row(0.5, 0.6, 0, "forgetting"), row(0.5, 0.6, 1, "full_inversion"),
        row(0.5, 0.6, 2, "forgetting"),
    ]
    return rows + [row(r["corrupt"], r["train_frac"], r["seed"], "coexistence", value=0.0)
                   for r in rows]


def test_majority_phase_and_its_tie_rule():
    assert majority_phase(["forgetting", "confusion", "confusion"]) == "confusion"
    assert majority_phase(["confusion", "memorization"]) == "memorization"
    assert majority_phase([]) is None


def test_phase_grid_of_a_hand_made_summary():
    rows = [r for r in hand_made_rows() if r["value"] == 5.0]
    corrupt, train_frac, grid = phase_grid(rows)
    np.testing.assert_array_equal(corrupt, [0.1, 0.3, 0.5])
    np.testing.assert_array_equal(train_frac, [0.4, 0.6])
    np.testing.assert_array_equal(grid, [[C, P, X], [M, -1, G]])
    assert grid.dtype == np.int64 and PHASES[P] == "partial_inversion"


def test_accuracy_grid_means_complete_seeds():
    rows = [r for r in hand_made_rows() if r["value"] == 5.0]
    _, _, grid = accuracy_grid(rows, "acc_test")
    np.testing.assert_allclose(grid, [[0.5, 0.5, 0.2], [0.4, np.nan, 0.5]], atol=1e-12)
    _, _, train = accuracy_grid(rows, "acc_train")
    np.testing.assert_allclose(train[0, 2], 0.8, atol=1e-12)


def test_plots_return_their_axes_and_paint_phase_colours():
    corrupt, train_frac, grid = phase_grid([r for r in hand_made_rows() if r["value"] == 5.0])
    fig = Figure(figsize=(4, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    assert plot_phase_diagram(grid, corrupt, train_frac, ax, "wd 5", legend=True) is ax
    # the phases the grid shows (no full inversion here), and its empty cell
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "coexistence", "partial inversion", "memorization", "forgetting", "confusion",
        "no complete cell"]
    np.testing.assert_allclose(ax.get_xticks(), [0.1, 0.3, 0.5])   # ticks at the grid
    np.testing.assert_allclose(ax.get_yticks(), [0.4, 0.6])
    np.testing.assert_allclose(ax.get_xlim(), (0.0, 0.6))          # limited to its cells
    np.testing.assert_allclose(ax.get_ylim(), (0.3, 0.7))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("corrupted fraction (ξ)",
                                                  "training fraction (α)")
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    for i, a in enumerate(train_frac):
        for j, x in enumerate(corrupt):
            px, py = ax.transData.transform((x, a))
            got = pixels[int(round(pixels.shape[0] - py)), int(round(px))] / 255
            want = to_rgba(PHASE_COLORS[grid[i, j]]) if grid[i, j] >= 0 else (1, 1, 1, 1)
            np.testing.assert_allclose(got, want, atol=0.02)
    ax2 = Figure().subplots()
    accuracy = accuracy_grid(hand_made_rows()[:18])[2]
    assert plot_accuracy_heatmap(accuracy, corrupt, train_frac, ax2) is ax2
    with pytest.raises(ValueError,
                       match=r"grid must have shape \(len\(train_frac\), len\(corrupt\)\)"):
        plot_phase_diagram(grid.T, corrupt, train_frac, ax)


def test_accuracy_heatmaps_print_each_cells_value():
    rows = [r for r in hand_made_rows() if r["value"] == 5.0]
    corrupt, train_frac, grid = accuracy_grid(rows, "acc_test")  # [[.5, .5, .2], [.4, nan, .5]]
    ax = Figure().subplots()
    plot_accuracy_heatmap(grid, corrupt, train_frac, ax)
    cells = sorted((t.get_position(), t.get_text(), t.get_color()) for t in ax.texts)
    assert cells == [((0.1, 0.4), "0.50", "w"), ((0.1, 0.6), "0.40", "w"),
                     ((0.3, 0.4), "0.50", "w"), ((0.5, 0.4), "0.20", "w"),
                     ((0.5, 0.6), "0.50", "w")]  # none in the empty cell
    ax = Figure().subplots()
    plot_accuracy_heatmap(np.array([[0.98]]), np.array([0.1]), np.array([0.5]), ax)
    assert [(t.get_text(), t.get_color()) for t in ax.texts] == [("0.98", "k")]  # light


def test_write_phase_diagram_from_a_sweep_folder(tmp_path):
    base = RunConfig().replace(data={"p": 7}, model={"width": 8}, train={"steps": 20})
    spec = SweepSpec(base=base, corrupt=(0.1, 0.3, 0.5), train_frac=(0.4, 0.6), values=(0.0, 5.0),
                     seeds=(0, 1, 2))
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(spec.to_json())
    write_summary(sweep, hand_made_rows(), IPR_CONVENTION)
    assert len(json.loads((sweep / "summary.json").read_text())["rows"]) == 36
    paths = write_phase_diagram(sweep, tmp_path / "figs")
    assert [p.name for p in paths] == ["phase_diagram.png", "accuracy_test.png",
                                       "accuracy_train.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(p.name for p in paths)
    assert write_phase_diagram(sweep)[0] == sweep / "figures" / "phase_diagram.png"
    before = paths[0].read_bytes()
    with pytest.raises(FileExistsError, match="phase_diagram.png' already exists"):
        write_phase_diagram(sweep, tmp_path / "figs")
    assert paths[0].read_bytes() == before
    assert write_phase_diagram(sweep, tmp_path / "figs", overwrite=True) == paths
    with pytest.raises(FileNotFoundError, match="must hold sweep.json"):
        write_phase_diagram(tmp_path / "figs")


def test_the_delay_map_averages_seeds_and_leaves_cells_without_a_delay_blank():
    def row(value, train_frac, seed, delay, corrupt=0.0):
        return {"value": value, "train_frac": train_frac, "corrupt": corrupt, "seed": seed,
                "status": "complete", "grokking_delay": delay}

    rows = [row(0.0, 0.3, 0, 400), row(0.0, 0.3, 1, 600), row(3.0, 0.3, 0, None),
            row(0.0, 0.6, 0, 100), row(3.0, 0.6, 0, 50), row(3.0, 0.6, 1, None),
            row(3.0, 0.6, 2, 900, corrupt=0.2)]  # a corrupted cell is not classic grokking
    values, train_frac, grid = delay_grid(rows)
    assert values.tolist() == [0.0, 3.0] and train_frac.tolist() == [0.3, 0.6]
    np.testing.assert_array_equal(grid, [[500.0, np.nan], [100.0, 50.0]])
    ax = Figure().subplots()
    assert plot_delay_map(grid, values, train_frac, ax, "weight decay") is ax
    assert sorted(t.get_text() for t in ax.texts) == ["100", "50", "500", "none"]
    with pytest.raises(ValueError, match="complete clean cell"):
        delay_grid(rows[-1:])


def adaptive_rows_by_hand():
    """A 2 x 2 plane of an adaptive sweep: three cells trained, (corrupt 0.3, train_frac 0.6)
    inferred as confusion from its agreeing neighbours."""
    rows = [row(0.1, 0.4, 0, "coexistence"), row(0.3, 0.4, 0, "confusion"),
            row(0.1, 0.6, 0, "confusion"), row(0.3, 0.6, 0, None, status="inferred")]
    rows[3]["phase"] = "confusion"
    return rows


def test_inferred_cells_are_drawn_in_their_phase_pale_with_a_legend_entry():
    rows = adaptive_rows_by_hand()
    corrupt, train_frac, grid = inferred_grid(rows)
    np.testing.assert_array_equal(grid, [[-1, -1], [-1, X]])
    assert (phase_grid(rows)[2] == [[C, X], [X, -1]]).all()  # not complete: no phase here
    base = RunConfig().replace(data={"p": 7}, model={"width": 8}, train={"steps": 20})
    spec = SweepSpec(base=base, corrupt=(0.1, 0.3), train_frac=(0.4, 0.6), values=(5.0,),
                     adaptive=2)
    fig = phase_figures(spec, rows)["phase_diagram"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["coexistence", "confusion", "inferred (not trained)"]
    ax = fig.axes[0]
    marks = [p for p in ax.patches if p.get_label() == "_inferred"]
    assert [(m.get_x(), m.get_y()) for m in marks] == [pytest.approx((0.2, 0.5))]
    assert ax.collections[0].get_array().reshape(2, 2)[1, 1] == X  # its phase's colour
    no_legend = phase_figures(spec, rows[:3])["phase_diagram"]
    assert "inferred (not trained)" not in [t.get_text() for t in no_legend.legends[0].texts]
