"""Reproduce every claim of arXiv 2310.13061 that interp covers, with one command.

    python analyses/run_all.py [--quick] [--out DIR] [--only NAME ...] [--threads N]

Runs each script of ``analyses/`` (one per claim, see docs/reproductions.md) into
``DIR/<claim>/``, sharing one cache of trained runs in ``DIR/runs/`` (a run two claims
use is trained once; re-running reuses complete runs). Writes ``DIR/summary.md`` and
``DIR/summary.json`` (which claims held, at what numbers) after every claim, so an
interrupted run still leaves a summary. Default DIR: checkpoints/reproductions, or
checkpoints/reproductions-quick with ``--quick``. Exit status 0 when every script ran
(whether or not its claim held), 1 when one raised.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Claim scripts in run order (runs shared by neighbours are trained once).
CLAIMS = ("coexistence", "pruning", "regularization", "two_stages", "analytic_fit",
          "forgetting", "batchnorm", "phase_diagram", "transformer", "classic_grokking")


def load(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"reproduction_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_summary(out: Path, rows: list[dict], quick: bool, wall: float) -> None:
    (out / "summary.json").write_text(json.dumps(
        {"quick": quick, "wall_s": round(wall, 1), "claims": rows}, indent=1) + "\n")
    lines = [f"# Reproductions{' (quick mode)' if quick else ''}", "",
             f"Total wall time {wall / 60:.1f} min. Command: `python analyses/run_all.py"
             f"{' --quick' if quick else ''}`. Each claim's folder holds result.md, "
             f"result.json and its figures.", "",
             "| claim | held | wall (s) | numbers |", "| --- | --- | --- | --- |"]
    for r in rows:
        held = "error" if r["error"] else ("yes" if r["held"] else "no")
        text = r["error"].strip().splitlines()[-1] if r["error"] else r["headline"]
        lines.append(f"| [{r['claim']}]({r['claim']}/result.md) | {held} | {r['wall_s']} | "
                     f"{text} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small, fast settings (seconds each)")
    ap.add_argument("--out", type=Path, default=None, help="output folder")
    ap.add_argument("--only", nargs="+", choices=CLAIMS, metavar="NAME",
                    help=f"run only these claims: {', '.join(CLAIMS)}")
    ap.add_argument("--p", type=int, default=None, help="override p (smoke tests)")
    ap.add_argument("--steps", type=int, default=None,
                    help="override every run's number of steps (smoke tests)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))  # the scripts import common from here
    from common import DEFAULT_OUT  # imports torch: after --help has been answered

    out = args.out or DEFAULT_OUT.with_name(DEFAULT_OUT.name + ("-quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    names = [c for c in CLAIMS if not args.only or c in args.only]
    common_args = ["--runs", str(out / "runs"), "--threads", str(args.threads)]
    common_args += ["--quick"] if args.quick else []
    common_args += ["--p", str(args.p)] if args.p is not None else []
    common_args += ["--steps", str(args.steps)] if args.steps is not None else []
    rows, t_start = [], time.perf_counter()
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ({time.perf_counter() - t_start:.0f} s elapsed)",
              flush=True)
        t0 = time.perf_counter()
        row = {"claim": name, "held": None, "headline": "", "criterion": "", "error": None}
        try:
            result = load(name).main(["--out", str(out / name), *common_args])
            row |= {k: result[k] for k in ("held", "headline", "criterion", "statement")}
        except Exception:  # one failing claim must not stop the others
            row["error"] = traceback.format_exc()
            print(row["error"], file=sys.stderr, flush=True)
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        write_summary(out, rows, args.quick, time.perf_counter() - t_start)
    held = sum(bool(r["held"]) for r in rows)
    errors = sum(r["error"] is not None for r in rows)
    print(f"{held} of {len(rows)} claims held, {errors} errors, "
          f"{time.perf_counter() - t_start:.0f} s; summary in {out / 'summary.md'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
