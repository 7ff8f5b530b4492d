"""Claim 4 (BatchNorm): with BatchNorm the IPR distribution stays bimodal, but the learned
scale |gamma| is small on low-IPR (memorizing) neurons and large on high-IPR ones.

Trains the MLP with BatchNorm after the activation on minibatches of 64 (alpha 0.65, xi
0.2, lr 0.005, 8000 steps: a setting where it reaches full inversion; ``--quick``: p 41,
1500 steps) and compares each neuron's |gamma| with its IPR (Spearman rank correlation,
class means at Otsu's threshold). Writes gamma_vs_ipr.png, result.json and result.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from common import (
    bimodality_coefficient,
    eta,
    figure,
    final_ipr,
    finish,
    out_dir,
    parse_args,
    plot_ipr_hist,
    regime,
    run_numbers,
    save,
    train,
)
from scipy.stats import spearmanr

import interp

CLAIM = "batchnorm"
STATEMENT = ("BatchNorm leaves the IPR distribution bimodal, but its learned scale |gamma| is "
             "small on low-IPR neurons and large on high-IPR ones.")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(__doc__, argv)
    out = out_dir(args, CLAIM)
    cfg = regime("batchnorm", args)
    path = train(cfg, args)
    nums = run_numbers(path)
    with interp.Run(path) as run:
        ipr, gamma = final_ipr(run), np.abs(run.weights()["gamma"])
    classes = interp.classify(ipr)
    rho = float(spearmanr(gamma, ipr).statistic)
    g_hi, g_lo = (float(gamma[idx].mean()) if len(idx) else float("nan")
                  for idx in (classes.generalizing, classes.memorizing))
    logs = np.log10(ipr)
    nums |= {"spearman_abs_gamma_ipr": rho, "mean_abs_gamma_generalizing": g_hi,
             "mean_abs_gamma_memorizing": g_lo,
             "bimodality_coefficient_log10_ipr": bimodality_coefficient(logs),
             "otsu_separability_eta_log10_ipr": eta(logs)}
    held = rho >= 0.5 and g_hi > g_lo and min(len(classes.generalizing),
                                                  len(classes.memorizing)) >= 0.05 * len(ipr)
    criterion = ("Spearman correlation of |gamma| with neuron IPR >= 0.5, mean |gamma| of the "
                 "high-IPR class (Otsu) larger than that of the low-IPR class, and both "
                 "IPR classes hold at least 5% of the neurons (the distribution stays split)")
    fig, axes = figure(2, width=4.2)
    axes[0].scatter(ipr, gamma, s=6, alpha=0.6)
    if classes.threshold is not None:
        axes[0].axvline(classes.threshold, color="k", ls=":", lw=1)
    axes[0].set(xscale="log", xlabel="neuron IPR", ylabel="|gamma|",
                title=f"BatchNorm scale vs IPR (Spearman {rho:.2f})")
    plot_ipr_hist(axes[1], {"BatchNorm": ipr}, cfg.data.p, "IPR distribution")
    figs = [save(fig, out / "gamma_vs_ipr.png")]
    acc = nums["accuracy"]
    headline = (f"Spearman(|gamma|, IPR) {rho:.3f}; mean |gamma| {g_hi:.3f} (high IPR, "
                f"{len(classes.generalizing)} neurons) vs {g_lo:.3f} (low IPR, "
                f"{len(classes.memorizing)}); phase {nums['phase']}, train {acc['train']:.3f}, "
                f"test {acc['test']:.3f}")
    return finish(args, out, CLAIM, STATEMENT, criterion, held, nums, {"run": cfg}, figs,
                  headline)


if __name__ == "__main__":
    main()
    sys.exit(0)
