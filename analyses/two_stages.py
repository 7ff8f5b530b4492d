"""Claim 5 (two stages): with regularization, training first groks (train and test accuracy
both high, corrupted labels memorized), then unlearns the memorized labels: train accuracy
drops from ~100% to ~100(1 - xi)% while test accuracy stays ~100%.

Uses the weight-decay-15 run of claim 3 (500 steps; ``--quick``: weight decay 8 at p 41)
and reads the stages from its per-step metrics (``interp.run_phase``). Writes
two_stages.png, result.json and result.md into ``--out``.
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

CLAIM = "two_stages"
STATEMENT = ("With regularization training has two stages: grokking to high train and test "
             "accuracy, then unlearning of the memorized labels (train accuracy drops from "
             "~100% to ~100(1 - xi)%).")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(__doc__, argv)
    out = out_dir(args, CLAIM)
    cfg = regime("full_inversion", args)
    path = train(cfg, args)
    nums = run_numbers(path)
    with interp.Run(path) as run:
        m = run.metrics()
        steps, ipr = interp.trajectory_ipr(run)
    xi = cfg.data.corrupt
    g, u = nums["generalized_step"], nums["unlearned_step"]
    memo = m["accuracy/train_corrupted"]
    if g is not None:
        k = int(np.searchsorted(m["step"], g))
        nums["memorization_at_generalized_step"] = float(memo[k])
        nums["peak_train_before_unlearning"] = float(
            m["accuracy/train"][: int(np.searchsorted(m["step"], u or m["step"][-1])) + 1].max())
    acc = nums["accuracy"]
    held = (g is not None and u is not None and u > g
            and nums["memorization_at_generalized_step"] >= 0.5
            and abs(acc["train"] - (1 - xi)) <= 0.03 and acc["test"] >= 0.99)
    criterion = ("a first stage (train and test >= 0.9, step g) with at least half of the "
                 "corrupted labels still memorized, then a later step u > g where train "
                 "accuracy falls to within 0.02 of 1 - xi with test >= 0.9; at the end train "
                 "within 0.03 of 1 - xi and test >= 0.99")
    fig, axes = figure(2, width=4.4)
    plot_accuracies(axes[0], m, ("train", "train_corrupted", "test"), "two stages")
    for step, label in ((g, "generalized"), (u, "unlearned")):
        if step is not None:
            axes[0].axvline(max(step, 1), color="gray", ls=":", lw=1)
            axes[0].text(max(step, 1), 0.5, label, rotation=90, fontsize=7)
    axes[1].plot(np.maximum(steps, 1), ipr.mean(axis=1), color="C4")
    axes[1].set(xscale="log", xlabel="step", ylabel="mean neuron IPR", title="IPR rises")
    figs = [save(fig, out / "two_stages.png")]
    nums["mean_ipr_start_end"] = [float(ipr[0].mean()), float(ipr[-1].mean())]
    headline = (f"generalized (train, test >= 0.9) at step {g} with memorization "
                f"{nums.get('memorization_at_generalized_step', float('nan')):.3f}, unlearned "
                f"at step {u}; final train {acc['train']:.3f} (1 - xi = {1 - xi:.2f}), test "
                f"{acc['test']:.3f}, memorization {acc['train_corrupted']:.3f}")
    return finish(args, out, CLAIM, STATEMENT, criterion, held, nums, {"run": cfg}, figs,
                  headline)


if __name__ == "__main__":
    main()
    sys.exit(0)
