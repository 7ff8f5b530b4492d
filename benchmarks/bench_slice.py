"""The slice job: ``interp sweep`` with its defaults against the paper's script.

The 3 x 3 wd-5 slice of the paper's phase diagram (corrupt 0.2/0.5/0.8 x train_frac
0.3/0.5/0.7,
p 97, N 500, 500 steps), run as a user runs it, each side a fresh process, the sides
interleaved repetition by repetition:

* **paper's script**: :mod:`benchmarks.paper_script`, the cells one after another with
  torch's default threads;
* **interp sweep**: ``interp sweep --corrupt 0.2,0.5,0.8 --train-frac 0.3,0.5,0.7
  --values 5 --steps 500`` with every other option at its default (start-up, files, summary
  included);
* **bf16** (only on a CPU with bfloat16 instructions): the same command with
  ``--precision bf16``;
* **against** (with ``--against DIR``): the fp32 command run by another checkout of interp
  (``DIR``, with its own ``.venv``), for a before-and-after figure in one run.

Figures: each interp side's speed over the paper's script (median of per-repetition
ratios of wall times). The final phase of every cell (from its final train and test
accuracy) is printed for both: the two draw their own data and weights, so phases agree
in most cells, not necessarily all; bf16's phases are compared with fp32's (the same data
and weights).

    python -m benchmarks.bench_slice [--reps 3] [--against ../interp-before]
    python -m benchmarks.bench_slice --quick      # tiny cells: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_sweep import final_phase
from benchmarks.timing import Figure, interleaved, median_ratio, show
from interp.cli.common import cpu_has_bf16
from interp.validate import PAPER_SYMBOLS

CORRUPT, TRAIN_FRAC, WD = "0.2,0.5,0.8", "0.3,0.5,0.7", "5"


def cell_phases(rows: list[dict]) -> dict[tuple[float, float], str]:
    """Each cell's final phase by (corrupt, train_frac), from its final train and test
    accuracy."""
    return {(r["corrupt"], r["train_frac"]): final_phase(r["acc_train"], r["acc_test"],
                                                         r["corrupt"]) for r in rows}


def paper_row(row: dict) -> dict:
    """A row of the paper's script with interp's names (its ``xi``: ``corrupt``, ...)."""
    names = {symbol: name for name, symbol in PAPER_SYMBOLS.items()}
    return {names.get(k, k): v for k, v in row.items()}


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def sides(p: int, width: int, steps: int, folder: Path, bf16: bool,
          against: Path | None = None) -> dict:
    """The commands to time, each a function that runs it and keeps its phases."""
    phases: dict[str, dict[tuple, str]] = {}
    runs = iter(range(10**6))
    size = ["--p", str(p), "--width", str(width), "--steps", str(steps)]

    def paper() -> None:
        out = _run([sys.executable, "-m", "benchmarks.paper_script", "--xi", CORRUPT,
                    "--alpha", TRAIN_FRAC, "--wd", WD, *size])
        rows = [paper_row(json.loads(line)) for line in out.splitlines()]
        phases["paper"] = cell_phases(rows)

    def sweep(name: str, extra: tuple[str, ...] = (), checkout: Path | None = None):
        python = str(checkout / ".venv" / "bin" / "python") if checkout else sys.executable

        def run() -> None:
            out = folder / f"s{next(runs)}"
            _run([python, "-m", "interp.cli", "sweep", "--corrupt", CORRUPT,
                  "--train-frac", TRAIN_FRAC, "--values", WD, *size, "--out", str(out),
                  "--quiet", *extra], checkout)
            rows = json.loads((out / "summary.json").read_text())["rows"]
            phases[name] = cell_phases([paper_row(r) for r in rows])  # older names too
            shutil.rmtree(out)
        return run
    out = {"paper": paper, "sweep": sweep("sweep")}
    if bf16:
        out["bf16"] = sweep("bf16", ("--precision", "bf16"))
    if against:
        out["against"] = sweep("against", checkout=against.resolve())
    return out, phases


def figures(p: int = 97, width: int = 500, steps: int = 500, reps: int = 3,
            against: Path | None = None) -> list[Figure]:
    """The figures above."""
    folder = Path(tempfile.mkdtemp(prefix="bench-slice-"))
    try:
        fns, phases = sides(p, width, steps, folder, cpu_has_bf16(), against)
        t = interleaved(fns, reps, warmup=0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    paper = phases["paper"]
    agree = {k: sum(v[c] == paper[c] for c in paper) for k, v in phases.items()}
    print(f"  slice {CORRUPT} x {TRAIN_FRAC}, wd {WD} (p {p}, N {width}, {steps} steps): "
          + ", ".join(f"{k} {statistics.median(v):.1f} s" for k, v in t.items())
          + "; phases " + json.dumps({f"{k[0]}/{k[1]}": [phases[s][k] for s in phases]
                                      for k in paper}) + f" ({', '.join(phases)})",
          flush=True)
    out = []
    for name, target, what in (("sweep", 3, "fp32"), ("bf16", 5, "bf16")):
        if name not in t:
            continue
        same = sum(phases[name][c] == phases["sweep"][c] for c in paper)
        extra = f"; phases equal fp32's in {same}/{len(paper)}" if name == "bf16" else ""
        out.append(Figure(f"slice job: interp sweep ({what}) vs the paper's script",
                          median_ratio(t["paper"], t[name]), target, True, "x",
                          f"the paper's script {statistics.median(t['paper']):.1f} s (sweep "
                          f"{statistics.median(t[name]):.1f} s); phases agree in "
                          f"{agree[name]}/{len(paper)}{extra}"))
    if against:
        same = sum(phases["against"][c] == phases["sweep"][c] for c in paper)
        out.append(Figure(f"slice job: interp sweep (fp32) vs the same at {against}",
                          median_ratio(t["against"], t["sweep"]), 1, True, "x",
                          f"{statistics.median(t['against']):.1f} s there; phases equal in "
                          f"{same}/{len(paper)}"))
    return out


def main(argv: list[str] | None = None) -> list[Figure]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny cells: checks that it runs")
    ap.add_argument("--against", type=Path, help="another checkout (with its .venv) whose "
                    "interp sweep runs as one more side")
    args = ap.parse_args(argv)
    size = dict(p=23, width=32, steps=20, reps=1) if args.quick else dict(reps=args.reps)
    size["against"] = args.against
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    return show(lambda: figures(**size))


if __name__ == "__main__":
    main()
