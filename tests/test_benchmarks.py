"""The benchmark suite runs end to end (tiny sizes). Speed itself is never asserted in
tests: the figures live in benchmarks/ and docs/performance.md."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import run


def test_quick_benchmark_table_has_every_figure(tmp_path):
    out = tmp_path / "figures.json"
    assert run.main(["--quick", "--json", str(out), "--markdown", str(tmp_path / "t.md")]) == 0
    figures = json.loads(out.read_text())["figures"]
    names = [f["name"] for f in figures]
    # the figure users feel first: the slice job against the paper's script
    assert names[0] == "slice job: interp sweep (fp32) vs the paper's script"
    for expected in ("sweep throughput vs plain loop (fp32)",
                     "sweep: share of the fp32 matmul rate", "kernel step, blocks vs one block",
                     "kernel step, blocks vs autograd", "kernel step, C++ vs Python blocks",
                     "kernel step, fused MSE step vs separate",
                     "training step vs reference (fp32)", "share of the fp32 matmul rate",
                     "bf16 training step", "metrics at every step", "checkpoint every step",
                     "checkpoint every 10 steps", "models stacked", "pruning curves",
                     "IPR of every neuron", "IPR working memory"):
        assert any(expected in n for n in names), expected
    assert all(math.isfinite(f["value"]) and f["value"] > -100 for f in figures)
    assert (tmp_path / "t.md").read_text().count("\n| ") == len(figures) + 2  # + header, rule


def test_gpu_sweep_script_parses_and_runs_on_the_cpu_in_quick_mode(tmp_path):
    """benchmarks/gpu_sweep.sh with QUICK=1 DEVICE=cpu: the diagram (3 x 3 x 1 tiny
    cells), the CPU slice and the report; the same cells on the same device land in the
    same phases, so the report must find all 9 and agree in all 9."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_sweep.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    env = {**os.environ, "QUICK": "1", "DEVICE": "cpu", "PY": sys.executable,
           "OUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          cwd=script.parents[1])
    assert done.returncode == 0, done.stderr
    assert "9 of 9 cells complete, 20 steps each" in done.stdout
    assert "cells per second" in done.stdout
    assert "the GPU's phase equals the CPU's in 9 of 9 cells" in done.stdout
    assert (tmp_path / "out" / "report.txt").read_text().count("cpu ") == 9


def test_the_slice_job_against_another_checkout_runs_its_sweep_there(tmp_path):
    """``bench_slice --against DIR`` runs DIR's own interp with DIR's .venv as one more
    side. DIR here: this checkout's package and this interpreter, linked; the same cells
    land in the same phases."""
    from benchmarks import bench_slice

    other = tmp_path / "other"
    (other / ".venv" / "bin").mkdir(parents=True)
    python = other / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (other / "interp").symlink_to(Path(__file__).resolve().parents[1] / "interp")
    figures = bench_slice.figures(p=23, width=32, steps=20, reps=1, against=other)
    against = [f for f in figures if f.name.endswith(f"vs the same at {other}")]
    assert len(against) == 1 and "phases equal in 9/9" in against[0].compared_with
    assert math.isfinite(against[0].value) and against[0].value > 0
