"""What ``benchmarks/gpu_sweep.sh`` prints: the GPU diagram's cells per second and its
phases against the CPU's on the slice.

    python -m benchmarks.gpu_report --diagram OUT/wd --slice OUT/slice-cpu --seconds 812

``--diagram``: the sweep folder of the whole diagram on the GPU; ``--seconds``: its wall
time; ``--slice``: a sweep folder of some of the same cells (same base run) trained on
the CPU. Each slice cell is matched to the diagram's cell of equal corrupt, train_frac,
regularizer value and seed; the phases are those of the sweeps' summaries.
"""

from __future__ import annotations

import argparse
import collections
import sys

from interp.sweeps.summary import read_summary


def _key(row: dict) -> tuple:
    return (round(row["corrupt"], 6), round(row["train_frac"], 6), round(row["value"], 6),
            row["seed"])


def report(diagram: str, slice_dir: str, seconds: float) -> dict:
    """Cells per second of the diagram, its phase counts and the slice's agreement."""
    rows = read_summary(diagram)
    done = [r for r in rows if r["status"] == "complete"]
    cpu = read_summary(slice_dir)
    gpu = {_key(r): r["phase"] for r in done}
    pairs = [(r["phase"], gpu.get(_key(r))) for r in cpu]
    return {"cells": len(rows), "complete": len(done), "seconds": seconds,
            "cells_per_second": len(done) / seconds if seconds > 0 else float("nan"),
            "steps": rows[0]["steps"] if rows else 0,
            "phases": dict(collections.Counter(r["phase"] for r in done)),
            "slice_cells": len(pairs), "slice_agree": sum(a == b for a, b in pairs),
            "slice": [f"corrupt {r['corrupt']:g} train_frac {r['train_frac']:g} value "
                      f"{r['value']:g}: cpu "
                      f"{a}, gpu {b}" for r, (a, b) in zip(cpu, pairs)]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--diagram", required=True)
    ap.add_argument("--slice", required=True)
    ap.add_argument("--seconds", type=float, required=True)
    args = ap.parse_args(argv)
    r = report(args.diagram, args.slice, args.seconds)
    print(f"diagram: {r['complete']} of {r['cells']} cells complete, {r['steps']} steps each, "
          f"in {r['seconds']:.0f} s: {r['cells_per_second']:.2f} cells per second "
          f"(the paper's 1156 cells at this rate: {1156 / r['cells_per_second'] / 60:.1f} "
          f"min); phases {r['phases']}")
    print(f"slice: the GPU's phase equals the CPU's in {r['slice_agree']} of "
          f"{r['slice_cells']} cells")
    for line in r["slice"]:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
