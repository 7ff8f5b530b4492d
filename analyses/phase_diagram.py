"""Claim 7 (phase diagram, a slice): at train_frac 0.5 (the paper's alpha), sweeping the
corrupted fraction corrupt (the paper's xi) and the weight decay with ``interp.run_sweep``
gives Coexistence or Memorization without weight decay and Partial or Full Inversion with it.

The sweep starts from ``analyses/sweep_example.toml`` (the paper's full weight-decay
sweep) cut down to corrupt in {0.1, 0.35, 0.6} x weight decay in {0, 15} at train_frac
0.5 and 500 steps (``--quick``: p 41, N 192, train_frac 0.7, corrupt in {0.1, 0.2, 0.4},
weight decay
{0, 8}, 400 steps), then draws it with ``interp.write_phase_diagram``. Writes
sweep/ (cells, summary), phase_diagram.png and the accuracy maps, result.json, result.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import QUICK_BASE, finish, out_dir, parse_args, scaled

import interp

CLAIM = "phase_diagram"
STATEMENT = ("Phase diagram (slice at fixed train_frac): without weight decay the network "
             "memorizes the corrupted labels (Coexistence at low corrupt, Memorization at "
             "high corrupt); "
             "weight decay moves it to Partial or Full Inversion.")
TOML = Path(__file__).with_name("sweep_example.toml")
FULL = {"corrupt": [0.1, 0.35, 0.6], "train_frac": [0.5], "values": [0, 15], "steps": 500}
QUICK = {"corrupt": [0.1, 0.2, 0.4], "train_frac": [0.7], "values": [0, 8], "steps": 400}
MEMORIZING = ("coexistence", "memorization")
INVERSION = ("partial_inversion", "full_inversion")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(__doc__, argv)
    out = out_dir(args, CLAIM)
    grid = QUICK if args.quick else FULL
    d = interp.SweepSpec.from_toml(TOML).to_dict()
    base = interp.RunConfig.from_dict(d["base"])
    if args.quick:
        base = base.replace(data={"p": QUICK_BASE.data.p}, model={"width": QUICK_BASE.model.width})
    base = scaled(base.replace(train={"steps": grid["steps"]}), args)
    base = base.replace(train={"save_every": max(1, grid["steps"] // 10)})
    d |= {"base": base.to_dict(), "corrupt": grid["corrupt"], "train_frac": grid["train_frac"],
          "values": grid["values"]}
    spec = interp.SweepSpec.from_dict(d)
    sweep_dir = out / "sweep"

    def progress(ev: Any) -> None:  # an interp.sweep.CellEvent
        print(f"  [{ev.done}/{ev.total}] {ev.cell_id}: {ev.action}, phase {ev.row['phase']}")

    interp.run_sweep(spec, sweep_dir, workers=0, progress=progress)
    figs = [p.name for p in interp.write_phase_diagram(sweep_dir, out)]
    rows = interp.summary(sweep_dir)
    cells = {r["cell_id"]: {"wd": r["value"], "corrupt": r["corrupt"],
                            "train_frac": r["train_frac"],
                            "phase": r["phase"], "train": r["acc_train"], "test": r["acc_test"],
                            "memorization": r["acc_train_corrupted"], "mean_ipr": r["mean_ipr"]}
             for r in rows}
    top = max(grid["values"])
    no_wd = [c for c in cells.values() if c["wd"] == 0]
    # at corrupt <= 0.1 an inverted run has train >= 0.9, which the paper's rules call coexistence
    strong = [c for c in cells.values() if c["wd"] == top and 0.1 < c["corrupt"] <= 0.35]
    held = (len(cells) == spec.n_cells and all(c["phase"] in MEMORIZING for c in no_wd)
            and all(c["phase"] in INVERSION for c in strong))
    criterion = (f"every cell complete; every weight-decay-0 cell is Coexistence or "
                 f"Memorization; every weight-decay-{top:g} cell with 0.1 < corrupt <= 0.35 is "
                 f"Partial or Full Inversion (at corrupt <= 0.1 the rules cannot tell "
                 f"inversion from coexistence)")
    headline = "; ".join(f"wd {c['wd']:g} corrupt {c['corrupt']:g}: {c['phase']}"
                         for c in cells.values())
    return finish(args, out, CLAIM, STATEMENT, criterion, held, {"cells": cells},
                  {"base (cells vary corrupt, train_frac, wd)": base}, figs, headline)


if __name__ == "__main__":
    main()
    sys.exit(0)
