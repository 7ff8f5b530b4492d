"""The HTML reports in a real browser: Debian's chromium (make setup installs it) driven
by playwright, offline, every request other than the page's own file aborted and
recorded. Each page opens with no console error or warning, draws every figure, answers
clicks (a neuron row shows that neuron; a sweep square shows its cells' curves) and
shows the numbers of the JSON it was made from."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from interp.analysis.neurons import trajectory_ipr
from interp.cli import app
from interp.config import RunConfig
from interp.plots.html import write_report
from interp.plots.html.page import number
from interp.store.run import Run
from interp.sweeps.run import run_sweep
from interp.sweeps.spec import SweepSpec
from interp.training.runner import train_to_file

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
TINY = RunConfig().replace(data={"p": 11, "corrupt": 0.3}, model={"width": 12},
                           train={"steps": 30, "save_every": 5})
runner = CliRunner()

#: Every view of the page (bokeh's roots and their descendants).
VIEWS = """function views() {
    const out = [];
    const walk = (v) => { out.push(v); for (const c of (v.child_views || [])) { walk(c); } };
    for (const r of Bokeh.index.roots) { walk(r); }
    return out;
}"""
#: For each figure shown: its name and how many of its exported pixels are not white.
DRAWN = "() => {" + VIEWS + """
    const shown = views().filter(
        v => v.model.type === "Figure" && v.el.getBoundingClientRect().width > 0);
    return shown.map(v => {
        const c = v.export("png", false).canvas;
        const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let ink = 0;
        for (let i = 0; i < px.length; i += 4) {
            if (px[i + 3] > 0 && (px[i] < 240 || px[i + 1] < 240 || px[i + 2] < 240)) { ink++; }
        }
        return [v.model.name, ink];
    });
}"""
#: The page position of a data point (x, y) of the figure named ``name``.
WHERE = "([name, x, y]) => {" + VIEWS + """
    const v = views().find(v => v.model.name === name);
    const r = v.canvas_view.el.getBoundingClientRect();
    return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)];
}"""


def model(page, name, attribute="data"):
    return page.evaluate(f"Bokeh.documents[0].get_model_by_name({name!r}).{attribute}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A fresh headless chromium with networking cut: requests other than file:// are
    aborted and recorded in ``context.refused``."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: run make setup"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")), executable_path=str(CHROMIUM),
            headless=True, args=FLAGS, offline=True, viewport={"width": 1100, "height": 900})
        context.refused = []

        def route(r):
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                context.refused.append(r.request.url)
                r.abort()
        context.route("**/*", route)
        yield context
        context.close()


def open_page(browser, path):
    """The page of ``path``, loaded, and the console errors and warnings it logs."""
    page = browser.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0 "
                           "&& Bokeh.index.roots.length > 0")
    page.wait_for_timeout(300)  # the first paint
    return page, problems


def check_drawn(page, names):
    """Every figure shown (``names`` among them) has ink: axes, ticks and data drawn.
    Painting is asynchronous: asked again for up to 20 s on a loaded machine."""
    for _ in range(80):
        drawn = dict(page.evaluate(DRAWN))
        if set(names) <= set(drawn) and all(ink > 300 for ink in drawn.values()):
            return drawn
        page.wait_for_timeout(250)
    assert set(names) <= set(drawn), (names, drawn)
    assert all(ink > 300 for ink in drawn.values()), drawn


def wait_for(page, condition):
    """Wait (up to 20 s) until the JavaScript ``condition`` holds, e.g. after a click."""
    page.wait_for_function(condition, timeout=20_000)


def test_run_report_neuron_click_and_numbers(browser, tmp_path):
    run = train_to_file(TINY, tmp_path / "run.h5")
    res = runner.invoke(app, ["analyze", str(run), "--html", "--no-plots", "--quiet"])
    assert res.exit_code == 0, res.output
    folder = tmp_path / "run-analysis"
    summary = json.loads((folder / "summary.json").read_text())
    page, problems = open_page(browser, folder / "report.html")
    check_drawn(page, ["curves-accuracy-linear", "curves-loss-linear", "spectrum", "U row",
                       "V row", "W row", "IPR over training", "prune"])
    page.locator(".bk-tab", has_text="log step").first.click()
    check_drawn(page, ["curves-accuracy-log", "curves-loss-log"])
    # the page's numbers are summary.json's
    for key, value in summary["accuracy"].items():
        assert page.locator(f'td.value[data-key="{key}"]').inner_text() == number(value)
    table = model(page, "neurons-source")
    assert table["ipr"] == summary["ipr"]["neurons"]
    # this tiny run does not generalize: no neuron is labelled, and the page says why
    assert summary["classes"]["threshold"] is None and summary["classes"]["reason"]
    assert table["class"] == ["no split"] * 12
    page.get_by_text(summary["classes"]["reason"].split(" (")[0], exact=False).first.wait_for()
    # clicking neuron 3's row shows neuron 3: its rows of U, V, W, its spectrum, its IPR
    page.locator(".slick-row").filter(has_text="no split").first.wait_for()
    row = page.locator(".slick-row").filter(has=page.locator(".slick-cell.l0",
                                                             has_text="3")).first
    row.locator(".slick-cell.l1").click()
    wait_for(page, "Bokeh.documents[0].get_model_by_name('neuron-title').text"
                   ".includes('neuron 3</b>')")
    assert "neuron 3</b>" in model(page, "neuron-title", "text")
    with Run(run) as r:
        w = r.weights()
    np.testing.assert_array_equal(model(page, "U row-source")["y"], w["U"][3])
    np.testing.assert_array_equal(model(page, "W row-source")["y"], w["W"][:, 3])
    spectrum = np.asarray(model(page, "spectrum-source")["y"])
    assert spectrum.shape == (6,) and abs(spectrum.sum() - 1) < 1e-9  # shares of power
    ipr_line = model(page, "IPR over training-source")["y"]
    with Run(run) as r:
        steps, traj = trajectory_ipr(r)  # float32 fast path: 1e-8 from the summary's IPR
    np.testing.assert_array_equal(ipr_line, traj[:, 3])
    assert ipr_line[-1] == pytest.approx(summary["ipr"]["neurons"][3], rel=1e-6)
    # with no split, the class filter offers nothing to filter by
    assert page.locator("select").locator("option").all_inner_texts() == ["all"]
    assert problems == [] and browser.refused == []


def test_comparison_report(browser, tmp_path):
    a = train_to_file(TINY, tmp_path / "a.h5")
    b = train_to_file(TINY.replace(train={"weight_decay": 1.0}), tmp_path / "b.h5")
    res = runner.invoke(app, ["compare", str(a), str(b), "--out", str(tmp_path / "cmp"),
                              "--html", "--no-plots", "--quiet"])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    page, problems = open_page(browser, tmp_path / "cmp" / "report.html")
    check_drawn(page, ["curves-test-linear", "curves-train loss-linear", "ipr-histograms",
                       "ipr-mean-mean IPR-linear", "prune"])
    runs = model(page, "runs-source")
    assert runs["label"] == ["a", "b"]
    assert runs["acc_test"] == [r["accuracy"]["test"] for r in result["runs"]]
    assert runs["mean_ipr"] == [r["ipr"]["mean"] for r in result["runs"]]
    assert problems == [] and browser.refused == []


def test_sweep_report_cell_click(browser, tmp_path):
    base = RunConfig().replace(data={"p": 7}, model={"width": 8},
                               train={"steps": 20, "save_every": 5})
    out = tmp_path / "sweep"
    run_sweep(SweepSpec(base=base, corrupt=(0.0, 0.3), train_frac=(0.5, 0.8),
                        regularizer="weight_decay", values=(1.0,)), out, workers=0)
    rows = {r["cell_id"]: r for r in json.loads((out / "summary.json").read_text())["rows"]}
    page, problems = open_page(browser, write_report(out, tmp_path / "sweep.html"))
    check_drawn(page, ["phase-1"])
    squares = model(page, "squares-1")
    for i, (x, a) in enumerate(zip(squares["corrupt"], squares["train_frac"])):
        row = next(r for r in rows.values()
                   if f"{r['corrupt']:g}" == x and f"{r['train_frac']:g}" == a)
        assert squares["acc_test"][i] == row["acc_test"] and squares["phase"][i] == row["phase"]
    cell = next(r for r in rows.values() if r["corrupt"] == 0.3 and r["train_frac"] == 0.8)
    page.mouse.click(*page.evaluate(WHERE, ["phase-1", "0.3", "0.8"]))
    wait_for(page, "Bokeh.documents[0].get_model_by_name('cell-curves').data.x.length > 0")
    info = model(page, "cell-info", "text")
    assert f'data-cell="{cell["cell_id"]}"' in info and number(cell["acc_test"]) in info
    curves = model(page, "cell-curves")
    with Run(out / "cells" / f"{cell['cell_id']}.h5") as run:
        m = run.metrics()
    np.testing.assert_array_equal(curves["x"], m["step"])
    np.testing.assert_array_equal(curves["test"], m["accuracy/test"])
    check_drawn(page, ["phase-1", "cell-curves-figure"])
    assert problems == [] and browser.refused == []


class Stop(Exception):
    pass


class StopAt:
    """Stops training after the checkpoint at ``step`` (as a kill would, before the end)."""

    def __init__(self, step):
        self.step = step

    def on_checkpoint(self, checkpoint):
        if checkpoint.step == self.step:
            raise Stop


def test_killed_run_report_says_so(browser, tmp_path):
    path = tmp_path / "killed.h5"
    with pytest.raises(Stop):
        train_to_file(TINY, path, callbacks=[StopAt(15)])
    with Run(path) as run:
        assert not run.complete
    page, problems = open_page(browser, write_report(path, tmp_path / "killed.html"))
    check_drawn(page, ["curves-accuracy-linear", "spectrum", "prune"])
    text = model(page, "killed-note", "text")
    assert "did not finish" in text and "up to step 15 of 30" in text
    assert page.get_by_text("did not finish").is_visible()
    assert problems == [] and browser.refused == []


def test_foreign_run_report_shows_the_assumed_box(browser, tmp_path):
    from safetensors.numpy import save_file

    run = train_to_file(TINY, tmp_path / "run.h5")
    with Run(run) as r:
        w = r.weights()
    path = tmp_path / "mlp.safetensors"
    save_file({k: np.ascontiguousarray(w[k]) for k in "UVW"}, str(path))
    told = []
    page, problems = open_page(browser, write_report(path, tmp_path / "f.html",
                                                     warn=told.append))
    check_drawn(page, ["spectrum", "prune"])
    box = page.locator("div.assumed")
    assert box.is_visible() and "data.op" in box.inner_text()
    missing = page.locator("p.missing")
    assert missing.count() >= 1  # e.g. the progress measures, said not computed
    assert problems == [] and browser.refused == [] and told


def test_screenshots_are_small():
    """The screenshots the docs show exist and stay small (docs/report.md)."""
    root = Path(__file__).resolve().parents[2] / "docs" / "figures"
    shots = [root / f"report-{kind}.png" for kind in ("run", "sweep", "compare")]
    assert all(p.is_file() and p.stat().st_size < 400_000 for p in shots), shots
