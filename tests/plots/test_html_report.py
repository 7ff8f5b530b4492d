"""The HTML reports without a browser: which page an input gets, one file with everything
inlined, the same bytes for the same input, inputs never modified, outputs written whole
or not at all, clear errors (the browser tests are in test_html_browser.py)."""

import json
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from interp.cli import app
from interp.plots.html import default_output, report_kind, write_report
from interp.plots.html.page import bokeh, number
from interp.store.run import Run
from interp.training.runner import train_to_file

runner = CliRunner()


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    from interp.config import RunConfig

    cfg = RunConfig().replace(data={"p": 11, "corrupt": 0.3}, model={"width": 12},
                              train={"steps": 30, "save_every": 5})
    return train_to_file(cfg, tmp_path_factory.mktemp("run") / "run.h5")


def mtimes(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_kinds_and_default_outputs(run_file, tmp_path):
    assert report_kind(run_file) == "run"
    assert default_output(run_file) == run_file.with_name("run.html")
    for kind, marker in (("compare", "compare.json"), ("sweep", "sweep.json"),
                         ("analysis", "summary.json")):
        folder = tmp_path / kind
        folder.mkdir()
        (folder / marker).write_text("{}")
        assert report_kind(folder) == kind
        assert default_output(folder) == tmp_path / f"{kind}.html"
    with pytest.raises(ValueError, match="holds none of compare.json"):
        report_kind(tmp_path)
    with pytest.raises(ValueError, match="but it does not exist"):
        report_kind(tmp_path / "absent.h5")


def test_one_self_contained_file_same_bytes_input_untouched(run_file, tmp_path):
    before = mtimes(run_file.parent)
    first = write_report(run_file, tmp_path / "a.html")
    second = write_report(run_file, tmp_path / "b.html")
    assert mtimes(run_file.parent) == before  # the run is only read
    text = first.read_text()
    assert first.read_bytes() == second.read_bytes()  # bokeh's random ids made stable
    assert "<script src=" not in text and "<link " not in text  # nothing to fetch
    assert "Bokeh" in text and "neurons-source" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html"]


def test_a_failed_report_leaves_the_output_as_it_was(run_file, tmp_path, monkeypatch):
    import interp.plots.html.page as page

    out = tmp_path / "report.html"
    out.write_text("earlier")

    def broken(title, layout):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(page, "page_html", broken)
    with pytest.raises(RuntimeError):
        write_report(run_file, out)
    assert out.read_text() == "earlier" and [p.name for p in tmp_path.iterdir()] == [
        "report.html"]  # no temporary file left


def test_an_analysis_folder_without_its_run_says_what_is_missing(run_file, tmp_path):
    res = runner.invoke(app, ["analyze", str(run_file), "--out", str(tmp_path / "x"),
                              "--no-plots", "--quiet"])
    assert res.exit_code == 0, res.output
    text = write_report(tmp_path / "x", tmp_path / "x.html").read_text()
    assert "The run file was not found" in text and "neurons-source" not in text
    summary = json.loads((tmp_path / "x" / "summary.json").read_text())
    assert number(summary["accuracy"]["test"]) in text  # the numbers are still shown
    # the wrong run is refused, in one sentence
    from interp.config import RunConfig

    other = train_to_file(RunConfig().replace(data={"p": 7}, model={"width": 8},
                                              train={"steps": 10, "save_every": 5}),
                          tmp_path / "other.h5")
    with pytest.raises(ValueError, match="must be the run the analysis was computed from"):
        write_report(tmp_path / "x", tmp_path / "y.html", run=other)


def test_a_foreign_file_shows_what_was_assumed(run_file, tmp_path):
    with Run(run_file) as run:
        w = run.weights()
    path = tmp_path / "mlp.safetensors"
    save_file({k: np.ascontiguousarray(w[k]) for k in "UVW"}, str(path))
    told = []
    text = write_report(path, tmp_path / "mlp.html", warn=told.append).read_text()
    with Run(path, warn=told.append) as run:
        assumed = run.assumed
    assert "interp assumed" in told[0]
    assert assumed and all(key in text for key in assumed)
    assert 'class=\\"assumed\\"' in text  # the box, inside the page's JSON


def test_an_analysis_with_its_report_is_replaced_with_overwrite(run_file, tmp_path):
    args = ["analyze", str(run_file), "--out", str(tmp_path / "a"), "--ipr", "--html",
            "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    first = (tmp_path / "a" / "report.html").read_bytes()
    res = runner.invoke(app, [*args, "--overwrite"])  # an earlier report is an output too
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a" / "report.html").read_bytes() == first


def test_missing_bokeh_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "bokeh", None)
    with pytest.raises(ImportError, match=r"^HTML reports need bokeh.*interp\[report\]'\.$"):
        bokeh()


def test_cli_report_refuses_to_overwrite_and_bad_inputs(run_file, tmp_path):
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(run_file), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.output.replace("\n", "")
    first = out.read_bytes()
    res = runner.invoke(app, ["report", str(run_file), "--out", str(out), "--quiet"])
    assert res.exit_code == 2 and "already exists; pass --overwrite" in res.output
    assert out.read_bytes() == first
    res = runner.invoke(app, ["report", str(tmp_path / "none.h5")])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert "Traceback" not in res.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "compare.json").write_text("[1, 2")
    res = runner.invoke(app, ["report", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "is not valid JSON" in res.output


def test_a_sweep_report_shows_inferred_squares_pale_and_says_so(tmp_path):
    from interp.analysis.spectra import IPR_CONVENTION
    from interp.config import RunConfig
    from interp.sweeps.spec import SweepSpec, cells
    from interp.sweeps.summary import cell_row, write_summary

    base = RunConfig().replace(data={"p": 7}, model={"width": 8}, train={"steps": 20})
    spec = SweepSpec(base=base, corrupt=(0.1, 0.3), train_frac=(0.5,), values=(5.0,), adaptive=2)
    (tmp_path / "sweep.json").write_text(spec.to_json())
    rows = [cell_row(cid, cfg, "weight_decay", tmp_path / "none.h5") for cid, cfg in cells(spec)]
    rows[1].update(status="inferred", phase="memorization")  # no cell file: never trained
    write_summary(tmp_path, rows, IPR_CONVENTION)
    text = write_report(tmp_path, tmp_path / "r.html").read_text()
    assert "memorization (inferred, not trained)" in text and "no complete cell" in text
    assert "pale: inferred from agreeing neighbours" in text
