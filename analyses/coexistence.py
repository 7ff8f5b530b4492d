"""Claim 1 (coexistence): without regularization a network memorizes every corrupted label
and still generalizes (~100% test accuracy).

Trains the paper's MLP (p 97, N 500, alpha 0.5, xi 0.35, no weight decay, 1000 steps;
``--quick``: p 41, N 192, alpha 0.7, xi 0.2, 600 steps) and checks the final accuracies.
Writes accuracy.png, ipr_histogram.png, result.json and result.md into ``--out``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from common import (
    figure,
    final_ipr,
    finish,
    out_dir,
    parse_args,
    plot_accuracies,
    plot_ipr_hist,
    regime,
    run_numbers,
    save,
    train,
)

import interp

CLAIM = "coexistence"
STATEMENT = ("Without regularization a network can memorize all corrupted labels and still "
             "reach ~100% test accuracy (Coexistence).")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(__doc__, argv)
    out = out_dir(args, CLAIM)
    cfg = regime("coexistence", args)
    path = train(cfg, args)
    nums = run_numbers(path)
    acc = nums["accuracy"]
    bar = 0.9
    held = acc["train_corrupted"] >= bar and acc["test"] >= bar
    criterion = (f"final accuracy on the corrupted training examples against their corrupted "
                 f"labels >= {bar} and test accuracy >= {bar} (the paper's coexistence rule)")
    with interp.Run(path) as run:
        metrics, ipr = run.metrics(), final_ipr(run)
    fig, (ax,) = figure()
    plot_accuracies(ax, metrics, ("train", "train_clean", "train_corrupted", "test"),
                    "no regularization: memorizes and generalizes")
    figs = [save(fig, out / "accuracy.png")]
    fig, (ax,) = figure()
    plot_ipr_hist(ax, {"final": ipr}, cfg.data.p, "neuron IPR: bimodal")
    if nums["ipr"]["otsu_threshold"] is not None:  # None: no split
        ax.axvline(nums["ipr"]["otsu_threshold"], color="k", ls=":", lw=1)
    figs.append(save(fig, out / "ipr_histogram.png"))
    headline = (f"memorization {acc['train_corrupted']:.3f}, test {acc['test']:.3f}, train "
                f"{acc['train']:.3f}, phase {nums['phase']}")
    return finish(args, out, CLAIM, STATEMENT, criterion, held, nums, {"run": cfg}, figs,
                  headline)


if __name__ == "__main__":
    main()
    sys.exit(0)
