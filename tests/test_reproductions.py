"""The reproduction scripts of analyses/ (docs/reproductions.md) run end to end.

The default suite runs the runner's --help and two scripts at p 11 for 40 steps (seconds);
``-m slow`` runs the whole quick reproduction (about 1.5 minutes on one core) and checks
every claim's outputs. The scripts run in subprocesses with one torch thread, as a user
would run them, so their thread setting does not leak into other tests.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ANALYSES = ROOT / "analyses"
CLAIMS = ("coexistence", "pruning", "regularization", "two_stages", "analytic_fit",
          "forgetting", "batchnorm", "phase_diagram", "transformer", "classic_grokking")
#: Quick-mode claims whose verdict is robust at the small size (the others are reported).
#: classic_grokking's quick run groks but does not hold the progress-measure claim (its
#: neurons still spread over most frequencies at 2000 and 4000 steps; docs/reproductions.md).
ROBUST = ("coexistence", "pruning", "two_stages", "analytic_fit", "forgetting", "transformer")


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    res = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def check_numbers(value: object, where: str) -> None:
    """Every accuracy in a result is in [0, 1] (or null), every number finite."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_numbers(v, f"{where}.{k}")
            if isinstance(v, float) and ("accuracy" in where or k in ("train", "test")):
                assert 0 <= v <= 1, f"{where}.{k} = {v}"
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_numbers(v, f"{where}[{i}]")
    elif isinstance(value, float):
        assert math.isfinite(value), f"{where} = {value}"


def check_result(folder: Path, claim: str) -> dict:
    result = json.loads((folder / "result.json").read_text())
    assert result["claim"] == claim
    assert isinstance(result["held"], bool) and result["criterion"] and result["statement"]
    assert (folder / "result.md").read_text().startswith(f"# {claim}")
    assert result["figures"], "a script must draw at least one figure"
    for name in result["figures"]:
        assert (folder / name).stat().st_size > 1000, name
    for run_info in result["runs"].values():
        assert set(run_info["seeds"]) == {"split_seed", "corrupt_seed", "init_seed",
                                          "train_seed"}
    check_numbers(result["numbers"], claim)
    return result


def test_runner_help_lists_every_claim():
    out = run(str(ANALYSES / "run_all.py"), "--help").stdout
    for claim in CLAIMS:
        assert claim in out
        assert (ANALYSES / f"{claim}.py").exists()


def test_two_scripts_share_one_run_at_p11(tmp_path):
    """The runner drives two scripts at p 11 for 40 steps; the second reuses the run."""
    res = run(str(ANALYSES / "run_all.py"), "--quick", "--p", "11", "--steps", "40",
              "--only", "coexistence", "pruning", "--out", str(tmp_path))
    assert "reusing" in res.stdout
    for claim in ("coexistence", "pruning"):
        result = check_result(tmp_path / claim, claim)
        assert result["quick"] and result["runs"]["run"]["config"]["data"]["p"] == 11
        assert result["runs"]["run"]["config"]["train"]["steps"] == 40
    assert len(list((tmp_path / "runs").glob("*.h5"))) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["claim"] for r in summary["claims"]] == ["coexistence", "pruning"]


def test_classic_grokking_script_at_p11(tmp_path):
    """The beyond-the-paper script runs end to end at p 11 (its verdict at this size is
    not judged) and reports the classic phase and the progress measures."""
    run(str(ANALYSES / "run_all.py"), "--quick", "--p", "11", "--steps", "60",
        "--only", "classic_grokking", "--out", str(tmp_path))
    result = check_result(tmp_path / "classic_grokking", "classic_grokking")
    nums = result["numbers"]
    assert nums["phase"] in ("comprehension", "grokking", "memorization", "forgetting",
                             "confusion")
    assert set(nums["boundaries"]) == {"memorization_end", "circuit_formation_end",
                                       "cleanup_end"}
    config = result["runs"]["run"]["config"]
    assert config["data"]["corrupt"] == 0.0 and config["train"]["loss"] == "ce"


@pytest.mark.slow
def test_quick_reproduction_end_to_end(tmp_path):
    res = run(str(ANALYSES / "run_all.py"), "--quick", "--out", str(tmp_path), timeout=1200)
    assert "reusing" in res.stdout  # runs shared between claims are trained once
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["quick"] and [r["claim"] for r in summary["claims"]] == list(CLAIMS)
    assert all(r["error"] is None for r in summary["claims"])
    assert (tmp_path / "summary.md").exists()
    results = {c: check_result(tmp_path / c, c) for c in CLAIMS}
    for claim in ROBUST:
        assert results[claim]["held"], (claim, results[claim]["headline"])
    coex = results["coexistence"]["numbers"]["accuracy"]
    assert coex["train_corrupted"] >= 0.9 and coex["test"] >= 0.9
    pruned = results["pruning"]["numbers"]["ascending_after_n_memorizing"]
    assert pruned["train_corrupted"] <= 0.1
    cells = results["phase_diagram"]["numbers"]["cells"]
    assert len(cells) == 6 and all(c["phase"] is not None for c in cells.values())
    assert (tmp_path / "phase_diagram" / "sweep" / "summary.json").exists()
