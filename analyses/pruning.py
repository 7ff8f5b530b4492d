"""Claim 2 (pruning): memorizing neurons have low IPR; pruning them (ascending IPR order)
erases the memorized labels and keeps or raises test accuracy, while pruning the
high-IPR neurons first (descending) destroys generalization and memorization survives.

Uses the coexistence run of claim 1 (trained once, cached), ranks its neurons by IPR and
prunes cumulatively in ascending, descending and random order (mean of 5 seeded orders),
without retraining. Writes prune.png, result.json and result.md into ``--out``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from common import figure, final_ipr, finish, out_dir, parse_args, regime, save, train

import interp

CLAIM = "pruning"
STATEMENT = ("Memorizing neurons have low IPR and can be pruned: pruning them drops accuracy "
             "on the corrupted examples and keeps or raises test accuracy; pruning high-IPR "
             "neurons first destroys generalization while memorization survives.")
ORDERS = ("ascending", "descending", "random")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(__doc__, argv)
    out = out_dir(args, CLAIM)
    cfg = regime("coexistence", args)
    path = train(cfg, args)
    with interp.Run(path) as run:
        weights, ds = run.weights(), run.dataset()
        ipr = final_ipr(run)
    terms = interp.neuron_terms(weights, cfg.model, ds.pairs[ds.eval_idx])
    curves = interp.prune_curves(terms, ds, ipr, cfg.train.loss, n_random=5, seed=0)
    classes = interp.classify(ipr)
    n_mem, n_gen = len(classes.memorizing), len(classes.generalizing)

    def at(order: str, k: int) -> dict:
        c = curves[order]
        return {n: float(c[n][k]) for n in ("test", "train_corrupted", "train_clean", "train")}

    before = at("ascending", 0)
    asc, desc, rnd = at("ascending", n_mem), at("descending", n_gen), at("random", n_mem)
    held = (asc["train_corrupted"] <= 0.1 and asc["test"] >= before["test"] - 0.01
            and desc["test"] <= 0.5 and desc["train_corrupted"] >= 0.5)
    criterion = ("with the Otsu split of the IPR (n_mem low, n_gen high): after pruning the "
                 "n_mem lowest-IPR neurons memorization <= 0.1 and test >= its unpruned value "
                 "- 0.01; after pruning the n_gen highest-IPR neurons test <= 0.5 while "
                 "memorization >= 0.5")
    fig, axes = figure(3, width=3.6)
    for ax, order in zip(axes, ORDERS):
        c = curves[order]
        for name, color in (("test", "C0"), ("train_corrupted", "C3"), ("train_clean", "C2")):
            ax.plot(c["n_pruned"], c[name], color=color, lw=1.2,
                    label={"train_corrupted": "memorization"}.get(name, name))
        ax.axvline(n_mem if order != "descending" else n_gen, color="k", ls=":", lw=1)
        ax.set(title=f"{order} IPR" if order != "random" else "random (mean of 5)",
               xlabel="neurons pruned", ylabel="accuracy", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=7)
    figs = [save(fig, out / "prune.png")]
    nums = {"n_neurons": len(ipr), "otsu_threshold": classes.threshold,
            "n_memorizing": n_mem, "n_generalizing": n_gen, "unpruned": before,
            "ascending_after_n_memorizing": asc, "descending_after_n_generalizing": desc,
            "random_after_n_memorizing": rnd,
            "ascending_max_test": float(np.max(curves["ascending"]["test"][: n_mem + 1]))}
    headline = (f"pruning the {n_mem} low-IPR neurons: memorization {before['train_corrupted']:.3f}"
                f" -> {asc['train_corrupted']:.3f}, test {before['test']:.3f} -> "
                f"{asc['test']:.3f}; pruning the {n_gen} high-IPR neurons: test "
                f"{desc['test']:.3f}, memorization {desc['train_corrupted']:.3f}; random "
                f"{n_mem}: test {rnd['test']:.3f}, memorization {rnd['train_corrupted']:.3f}")
    return finish(args, out, CLAIM, STATEMENT, criterion, held, nums, {"run": cfg}, figs,
                  headline)


if __name__ == "__main__":
    main()
    sys.exit(0)
