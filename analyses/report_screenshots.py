"""Make docs/report.md's screenshots, docs/figures/report-sweep.png and report-compare.png,
and with a run's report (``make demo``'s) the README's report-run.png.

A 12-cell sweep (p 23, 64 neurons, 400 steps; xi 0.1/0.3/0.5 x alpha 0.5/0.8 x weight
decay 0/5) and the comparison of its wd 0 and wd 5 cells at xi 0.3, alpha 0.8, their
HTML reports opened in headless chromium (playwright, offline, as
tests/plots/test_html_browser.py does), the sweep's square (0.3, 0.8) at wd 5 clicked
and hovered. Shot 1100 px wide, scaled to 862 and stored with 64 colours, the style
table's colours exact (interp.plots.style), so each PNG stays near 40 KB. A minute or
two on one core::

    .venv/bin/python analyses/report_screenshots.py docs/figures
    .venv/bin/python analyses/report_screenshots.py docs/figures \
        checkpoints/demo-analysis/report.html     # also report-run.png (after make demo)

The run's report is shot whole, 1042 px wide, as it opens.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from interp.plots.style import NEUTRAL, OKABE_ITO
from interp.store.atomic import write_atomic

INTERP = str(Path(sys.executable).parent / "interp")
SWEEP = ["--p", "23", "--width", "64", "--steps", "400", "--xi", "0.1,0.3,0.5", "--alpha",
         "0.5,0.8", "--regularizer", "weight_decay", "--values", "0,5", "--quiet"]
#: The position of a data point (x, y) of the bokeh figure named ``name`` on the page.
WHERE = """([name, x, y]) => {
    const out = [];
    const walk = (v) => { out.push(v); for (const c of (v.child_views || [])) { walk(c); } };
    for (const r of Bokeh.index.roots) { walk(r); }
    const v = out.find(v => v.model.name === name);
    const r = v.canvas_view.el.getBoundingClientRect();
    return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)];
}"""


def pages(tmp: Path) -> tuple[Path, Path]:
    """The sweep's and the comparison's HTML reports, made by the interp commands."""
    subprocess.run([INTERP, "sweep", *SWEEP, "--out", str(tmp / "shot-sweep")], check=True)
    cells = [str(tmp / "shot-sweep" / "cells" / f"wd{wd}_xi0.3_a0.8_s0.h5") for wd in (0, 5)]
    subprocess.run([INTERP, "compare", *cells, "--label", "wd 0", "--label", "wd 5", "--out",
                    str(tmp / "shot-compare"), "--quiet"], check=True)
    for name in ("shot-sweep", "shot-compare"):
        subprocess.run([INTERP, "report", str(tmp / name), "--quiet"], check=True)
    return tmp / "shot-sweep.html", tmp / "shot-compare.html"


def shoot(sweep: Path, compare: Path, out: Path) -> None:
    """Screenshot both pages (the sweep's after a click and a hover on one square)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        for page_file, height, name in ((sweep, 861, "report-sweep.png"),
                                        (compare, 957, "report-compare.png")):
            page = browser.new_page(viewport={"width": 1100, "height": 1000}, offline=True)
            page.goto(page_file.resolve().as_uri())
            page.wait_for_function("window.Bokeh && Bokeh.index.roots.length > 0")
            if page_file == sweep:
                page.mouse.click(*page.evaluate(WHERE, ["phase-5", "0.3", "0.8"]))
                page.wait_for_function("Bokeh.documents[0].get_model_by_name("
                                       "'cell-curves').data.x.length > 0")
                page.mouse.move(*page.evaluate(WHERE, ["phase-5", "0.3", "0.8"]))
            time.sleep(1)  # bokeh's last paint
            page.screenshot(path=str(out / name), clip={"x": 0, "y": 0, "width": 1100,
                                                        "height": height})
        browser.close()


def shoot_run(report: Path, out: Path) -> None:
    """The whole run report, 1042 px wide, as it opens."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1042, "height": 1000}, offline=True)
        page.goto(report.resolve().as_uri())
        page.wait_for_function("window.Bokeh && Bokeh.index.roots.length > 0")
        time.sleep(1)  # bokeh's last paint
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def small(path: Path, width: int = 862, colours: int = 64) -> Image.Image:
    """A screenshot scaled to ``width`` with ``colours`` colours: the style table's exact,
    the rest the image's commonest (median cut), each pixel its nearest."""
    img = Image.open(path).convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    style = [*OKABE_ITO.values(), NEUTRAL, "#FFFFFF"]
    fixed = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in style])
    rest = img.quantize(colors=colours - len(fixed), method=Image.Quantize.MEDIANCUT)
    palette = np.concatenate([fixed, np.reshape(rest.getpalette()[:3 * (colours - len(fixed))],
                                                (-1, 3))])
    rgb = np.asarray(img).astype(np.int64)
    seen, pixel = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    nearest = ((seen[:, None, :] - palette[None]) ** 2).sum(-1).argmin(1)
    out = Image.fromarray(nearest[pixel.ravel()].reshape(rgb.shape[:2]).astype(np.uint8), "P")
    out.putpalette(palette.astype(np.uint8).ravel().tolist())
    return out


def main(out: Path, run_report: Path | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if run_report is not None:
            shoot_run(run_report, Path(tmp) / "run.png")
            write_atomic(out / "report-run.png", lambda fh: Image.open(Path(tmp) / "run.png")
                         .save(fh, format="PNG", optimize=True))
            print(f"wrote {out / 'report-run.png'}")
        sweep, compare = pages(Path(tmp))
        shoot(sweep, compare, Path(tmp))
        for name in ("report-sweep.png", "report-compare.png"):
            write_atomic(out / name, lambda fh, shot=small(Path(tmp) / name):
                         shot.save(fh, format="PNG", optimize=True))
        print(f"wrote {out / 'report-sweep.png'} and {out / 'report-compare.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/figures"),
         Path(sys.argv[2]) if len(sys.argv) > 2 else None)
