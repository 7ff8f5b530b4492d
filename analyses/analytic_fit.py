"""Claim 8 (analytic solution): the periodic neurons of a trained network follow Gromov's
analytic solution: U, V and W of a neuron share one frequency and the DFT phases obey
phase(W) = phase(U) + phase(V); the network of fitted cosines alone classifies the test set.

Fits the weight-decay-15 (full inversion) run of claim 3 with ``interp.fit_summary``
(``--quick``: weight decay 8 at p 41) and, as a reference, the exact analytic network of
``interp.analytic_network`` at the same p and width. Writes analytic_fit.png,
result.json and result.md into ``--out``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import torch
from common import figure, finish, out_dir, parse_args, regime, save, train

import interp


def network_accuracy(weights: dict, cfg: interp.RunConfig, ds: interp.Dataset) -> dict:
    """The six accuracies of an MLP with ``cfg``'s architecture holding ``weights``."""
    model = interp.make_model(cfg.data.p, cfg.model)
    model.load_arrays(weights)
    model.eval()
    pairs = torch.as_tensor(ds.pairs[ds.eval_idx])
    with torch.no_grad():
        pred = model(pairs[:, 0], pairs[:, 1]).argmax(-1).numpy()
    return {k: float(v) for k, v in interp.accuracies(pred, ds).items()}


CLAIM = "analytic_fit"
STATEMENT = ("Generalizing neurons of a trained network follow the analytic periodic solution: "
             "U, V, W share one frequency, phase(W) = phase(U) + phase(V), and the fitted "
             "cosines alone reproduce the network's test accuracy.")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(__doc__, argv)
    out = out_dir(args, CLAIM)
    cfg = regime("full_inversion", args)
    path = train(cfg, args)
    with interp.Run(path) as run:
        w, ds = run.weights(), run.dataset()
    fit = interp.fit_summary(w, cfg, ds)
    s = fit["summary"]
    p, n = cfg.data.p, cfg.model.width
    analytic = interp.analytic_network(p, n, seed=0)
    nums = {"n_neurons": s["n_neurons"], "n_consistent": s["n_consistent"],
            "fraction_consistent": s["fraction_consistent"],
            "median_abs_residual_rad": s["median_abs_residual"],
            "frequencies_used": len(s["frequencies_used"]), "coverage": s["coverage"],
            "idealized_network": fit["idealized"], "consistent_only": fit["consistent_only"],
            "analytic_network": {
                "test": network_accuracy(analytic, cfg, ds)["test"],
                "median_abs_residual_rad": interp.fit_summary(
                    analytic, cfg, ds)["summary"]["median_abs_residual"]}}
    with interp.Run(path) as run:
        nums["trained_test"] = interp.accuracies_at(run)["test"]
    held = (s["fraction_consistent"] >= 0.5 and s["median_abs_residual"] is not None
            and s["median_abs_residual"] <= 0.1 and fit["idealized"]["test"] >= 0.99)
    criterion = ("at least half of the neurons consistent with the solution (shared frequency, "
                 "each cosine fit explaining >= 0.5 of its vector's variance, |residual| <= "
                 "pi/6), median |phase(W) - phase(U) - phase(V)| over them <= 0.1 rad, and the "
                 "network of their fitted cosines has test accuracy >= 0.99")
    recs = fit["neurons"]
    res = np.array([r["residual"] for r in recs if r["consistent"]])
    fig, axes = figure(3, width=3.6)
    axes[0].hist(res, bins=np.linspace(-np.pi / 6, np.pi / 6, 31), color="C0")
    axes[0].set(xlabel="phase(W) - phase(U) - phase(V) (rad)", ylabel="neurons",
                title="phase relation")
    axes[1].bar(np.arange(1, len(s["frequency_counts"]) + 1), s["frequency_counts"], color="C1")
    axes[1].set(xlabel="frequency", ylabel="consistent neurons", title="frequencies")
    best = max((r for r in recs if r["consistent"]), key=lambda r: min(r["explained_variance"]))
    k, f = best["neuron"], best["frequency"]
    x = np.arange(p)
    for vec, (a, ph), color, name in zip((w["U"][k], w["V"][k], w["W"][:, k]),
                                         zip(best["amplitudes"], best["phases"]),
                                         ("C0", "C2", "C3"), "UVW"):
        axes[2].plot(x, vec, ".", color=color, ms=3, label=name)
        axes[2].plot(x, a * np.cos(2 * np.pi * f * x / p + ph), color=color, lw=0.8)
    axes[2].set(xlabel="residue", title=f"neuron {k}: frequency {f}")
    axes[2].legend(fontsize=7)
    figs = [save(fig, out / "analytic_fit.png")]
    headline = (f"{s['n_consistent']} of {n} neurons consistent, median |residual| "
                f"{s['median_abs_residual']:.3f} rad, {len(s['frequencies_used'])} frequencies; "
                f"idealized network test {fit['idealized']['test']:.4f} (trained "
                f"{nums['trained_test']:.4f}, exact analytic network "
                f"{nums['analytic_network']['test']:.4f})")
    return finish(args, out, CLAIM, STATEMENT, criterion, held, nums, {"run": cfg}, figs,
                  headline)


if __name__ == "__main__":
    main()
    sys.exit(0)
