"""A family added from outside interp (tests/models/toy_family.py, registered through
the ``interp.families`` entry point of a package installed in a temporary folder) is a
first-class family: ``interp train --model toy`` trains it, ``interp sweep`` sweeps it,
``interp import`` reads a foreign file of it and ``interp analyze`` analyzes it, with
nothing in interp/ naming it. Every command runs in a fresh process, as a user's would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
P, WIDTH = 11, 8


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding the toy family's module and its distribution's metadata, with the
    entry point ``[interp.families] toy = toy_family:ToyFamily``."""
    site = tmp_path_factory.mktemp("site")
    shutil.copy(Path(__file__).with_name("toy_family.py"), site / "toy_family.py")
    info = site / "interp_toy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: interp-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[interp.families]\ntoy = toy_family:ToyFamily\n")
    return site


def interp(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    res = subprocess.run([sys.executable, "-m", "interp.cli", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return res


def test_a_reader_without_the_family_refuses_its_runs(site, tmp_path):
    interp(site, "train", "--model", "toy", "--p", str(P), "--steps", "2", "--out", "t.h5",
           "--quiet", cwd=tmp_path)
    res = subprocess.run([sys.executable, "-m", "interp.cli", "inspect", "t.h5"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert res.returncode == 2 and "has format version 5; this interp reads versions up to 4" \
        in res.stderr, res.stderr


def test_interp_names_no_toy():
    names = ("toy_family", "ToyFamily", "ToyConfig", '"toy"')
    assert not [p for p in (ROOT / "interp").rglob("*.py") if any(n in p.read_text()
                                                                  for n in names)]


def test_train_sweep_import_and_analyze_a_family_from_outside(site, tmp_path):
    help_text = interp(site, "train", "--help", cwd=tmp_path).stdout
    assert "transformer, toy" in help_text  # --model's families
    assert "--embed-scale" in help_text and "initial embedding. [default: 0.5 (toy)]" in \
        " ".join(help_text.replace("│", " ").split())

    # train, then analyze: the neurons' accuracies from the family's terms match the file's
    interp(site, "train", "--model", "toy", "--width", str(WIDTH), "--p", str(P),
           "--steps", "60", "--lr", "0.05", "--corrupt", "0", "--out", "toy.h5", "--quiet",
           cwd=tmp_path)
    summary = json.loads(interp(site, "analyze", "toy.h5", "--json", "-", "--no-plots",
                                "--quiet", cwd=tmp_path).stdout)
    assert summary["width"] == WIDTH and len(summary["ipr"]["neurons"]) == WIDTH
    assert summary["fit"] is None  # the analytic solution is the paper MLP's
    info = json.loads(interp(site, "inspect", "toy.h5", "--json", "-", cwd=tmp_path).stdout)
    assert info["config"]["model"]["model"] == "toy"
    assert info["format"] == "interp-trajectory v5"  # the family's own version, read as is
    for name, value in summary["accuracy"].items():
        assert value == pytest.approx(info["final_metrics"][f"accuracy/{name}"], abs=1e-6)
    assert summary["accuracy"]["train"] > 0.5  # it learned
    no_pruning = {k: v[0] for k, v in summary["prune"]["ascending"].items() if k != "n_pruned"}
    assert no_pruning["test"] == pytest.approx(summary["accuracy"]["test"])

    # a sweep of it, in worker processes
    res = interp(site, "sweep", "--model", "toy", "--width", str(WIDTH), "--p", str(P),
                 "--steps", "20", "--save-every", "10", "--xi", "0,0.3", "--alpha", "0.5",
                 "--values", "0,1", "--workers", "2", "--out", "sweep", "--json", "-",
                 "--quiet", cwd=tmp_path)
    report = json.loads(res.stdout)
    assert report["n_trained"] == 4 and not report["failed"]

    # a foreign file of it: an nn.Embedding and an nn.Linear, as their libraries write them
    torch.manual_seed(3)
    embed, out = torch.nn.Embedding(P, WIDTH), torch.nn.Linear(WIDTH, P, bias=False)
    torch.save({"embed.weight": embed.weight.detach(), "out.weight": out.weight.detach()},
               tmp_path / "foreign.pt")
    interp(site, "import", "foreign.pt", "--act", "relu", "--loss", "mse", "--out",
           "imported.h5", "--quiet", cwd=tmp_path)
    info = json.loads(interp(site, "inspect", "imported.h5", "--json", "-", cwd=tmp_path).stdout)
    assert info["config"]["model"] == {"model": "toy", "act": "relu", "dropout": 0.0,
                                       "init_seed": 0, "width": WIDTH, "embed_scale": 0.5}
    E, W = embed.weight.detach().numpy(), out.weight.detach().numpy()
    m, n = np.meshgrid(np.arange(P), np.arange(P), indexing="ij")
    own = (np.maximum(E[m.ravel()] + E[n.ravel()], 0) @ W.T).argmax(-1)
    assert info["final_metrics"]["accuracy/all_true"] == pytest.approx(
        float(np.mean(own == (m.ravel() + n.ravel()) % P)))
    summary = json.loads(interp(site, "analyze", "imported.h5", "--json", "-", "--no-plots",
                                "--quiet", cwd=tmp_path).stdout)
    assert summary["accuracy"]["all_true"] == pytest.approx(
        info["final_metrics"]["accuracy/all_true"])
