"""Every operation trains and is analyzed end to end at tiny p; where the Fourier
analysis or the analytic solution does not apply, the output says so instead of numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import interp
from interp.analysis.task import task_support
from interp.cli import app
from interp.data import ACCURACY_NAMES
from interp.reports.analyze import analyze_run

NEW_OPS = ("m2_mn_n2", "m2_mn_n2_m", "m3_mn", "m3_mn2_n", "div_odd_sub")


def test_task_support_by_operation_and_family():
    add = task_support("add", analytic_family=True)
    assert add["fourier"] and add["analytic_solution"] and add["notes"] == []
    no_solution = task_support("sub", analytic_family=False)
    assert no_solution["fourier"] and not no_solution["analytic_solution"]
    assert "this network family" in no_solution["notes"][0]
    cube = task_support("m3_mn", analytic_family=True)
    assert cube["formula"] == "m^3 + m n" and not cube["fourier"]
    assert len(cube["notes"]) == 2 and "m^3 + m n" in cube["notes"][0]
    with pytest.raises(ValueError, match="op must be one of"):
        task_support("pow", True)


@pytest.mark.parametrize("op", NEW_OPS)
def test_each_new_operation_trains_and_is_analyzed(op, tmp_path):
    cfg = interp.RunConfig().replace(data={"p": 7, "op": op, "corrupt": 0.2},
                                     model={"width": 10},
                                     train={"steps": 6, "save_every": 3})
    path = tmp_path / f"{op}.h5"
    interp.train_to_file(cfg, path)
    with interp.Run(path) as run:
        analysis = analyze_run(run, progress=True, n_random=2)
        metrics = run.metrics()
    s = analysis.summary
    json.dumps(s, allow_nan=False)
    assert list(s["accuracy"]) == list(ACCURACY_NAMES)
    assert all(0 <= v <= 1 for v in s["accuracy"].values())
    np.testing.assert_allclose(s["accuracy"]["test"], metrics["accuracy/test"][-1])
    assert s["task"]["op"] == op and not s["task"]["fourier"]
    assert not s["task"]["analytic_solution"] and len(s["task"]["notes"]) == 2
    progress = s["progress"]
    assert not progress["fourier"]["applies"] and op in progress["fourier"]["note"]
    assert progress["restricted_loss"] is None and progress["excluded_loss"] is None
    assert progress["key_frequencies"] is None
    assert len(progress["train_loss"]) == 3 and progress["embedding_gini"] is None
    assert progress["wl_gini"] is progress["view_gini"] is progress["embedding_norms"] is None
    assert s["phase"]["phase"] in interp.analysis.phase.PHASES
    assert len(s["prune"]["ascending"]["test"]) == 11


def test_cli_trains_and_analyzes_a_new_operation(tmp_path):
    runner = CliRunner()
    path = tmp_path / "run.h5"
    res = runner.invoke(app, ["train", "--p", "5", "--op", "div_odd_sub", "--width", "6",
                              "--steps", "4", "--save-every", "2", "--corrupt", "0",
                              "--quiet", "--out", str(path)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["analyze", str(path), "--progress", "--phase",
                              "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert s["phase"]["vocabulary"] == "classic"
    assert s["progress"]["fourier"]["applies"] is False
    assert "progress measures" in res.output and "div_odd_sub" in res.output  # the note
    assert (tmp_path / "a" / "progress_losses.png").stat().st_size > 1000
    res = runner.invoke(app, ["train", "--p", "9", "--op", "div_odd_sub", "--quiet",
                              "--out", str(tmp_path / "bad.h5")])
    assert res.exit_code == 2 and "p must be a prime for op 'div_odd_sub'" in res.output
