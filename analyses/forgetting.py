"""Claim 6 (forgetting): too much weight decay with the quadratic activation and AdamW makes
the network generalize first and then collapse: weight norms decay towards zero and train
and test accuracy fall (the Forgetting phase).

Trains with weight decay 20 for 3000 steps (``--quick``: weight decay 15, 1500 steps at
p 41) and classifies the phase from the trajectory (``interp.run_phase``). Writes
forgetting.png, result.json and result.md into ``--out``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from common import (
    figure,
    finish,
    out_dir,
    parse_args,
    plot_accuracies,
    regime,
    run_numbers,
    save,
    train,
)

import interp

CLAIM = "forgetting"
STATEMENT = ("Too much weight decay with a quadratic activation and Adam leads to Forgetting: "
             "the network generalizes, then its weight norms decay and accuracy collapses.")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(__doc__, argv)
    out = out_dir(args, CLAIM)
    cfg = regime("forgetting", args)
    path = train(cfg, args)
    nums = run_numbers(path)
    with interp.Run(path) as run:
        m = run.metrics()
    norm = interp.total_norm(m)
    nums |= {"norm_at_start": float(norm[0]), "norm_at_peak_test": float(
        norm[int(np.searchsorted(m["step"], nums["peak_test_step"]))]),
        "final_norm": float(norm[-1])}
    held = nums["phase"] == "forgetting" and nums["norm_ratio"] < 1
    criterion = ("the paper's phase rules give Forgetting (final test < 0.9 and final train "
                 "< 0.9 after test had reached >= 0.9) and the total weight norm at the end is "
                 "below its value at the test-accuracy peak")
    fig, axes = figure(2, width=4.4)
    plot_accuracies(axes[0], m, ("train", "test"), f"weight decay {cfg.train.weight_decay:g}")
    axes[1].plot(np.maximum(m["step"], 1), norm, color="C5")
    axes[1].set(xscale="log", yscale="log", xlabel="step", ylabel="total weight norm",
                title="norms decay")
    figs = [save(fig, out / "forgetting.png")]
    acc = nums["accuracy"]
    headline = (f"phase {nums['phase']}: test peaked at {nums['peak_test']:.3f} (step "
                f"{nums['peak_test_step']}), final test {acc['test']:.3f}, train "
                f"{acc['train']:.3f}; weight norm {nums['norm_at_peak_test']:.3g} at the peak -> "
                f"{nums['final_norm']:.3g} at the end")
    return finish(args, out, CLAIM, STATEMENT, criterion, held, nums, {"run": cfg}, figs,
                  headline)


if __name__ == "__main__":
    main()
    sys.exit(0)
