"""Beyond the paper: classic grokking (xi = 0) and Nanda et al.'s progress measures.

Nanda et al. (2023) find three phases in grokking: memorization, circuit formation and
cleanup; the restricted loss (on the test pairs, the neuron activations kept only along
the key frequencies' cos/sin(w_k (a + b)) directions) falls before the test loss does,
and the excluded loss (on the training pairs, those directions removed) rises as the
network comes to rely on them. This script trains a clean run at a setting that
groks on a CPU in minutes (p 97, alpha 0.3, xi 0, the paper's MLP N 500, cross-entropy,
AdamW lr 1e-3, weight decay 1, 3000 full-batch steps, 100 log-spaced checkpoints;
``--quick``: p 41, alpha 0.4, N 192, lr 3e-3, weight decay 3, 2000 steps), classifies it
with the classic vocabulary (``interp.classify_phase`` at xi = 0) and measures the
progress measures at every checkpoint (``interp.analyze(..., progress=True)``). Writes
classic_grokking.png, result.json and result.md into ``--out``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from common import PAPER_BASE, QUICK_BASE, figure, finish, out_dir, parse_args, save, train

import interp

CLAIM = "classic_grokking"
STATEMENT = ("Without corruption the network memorizes first and generalizes much later "
             "(grokking); over training the restricted loss falls before the test loss does "
             "and the excluded loss rises (Nanda et al. 2023: memorization, circuit "
             "formation, cleanup).")
FULL = {"data": {"train_frac": 0.3, "corrupt": 0.0},
        "train": {"loss": "ce", "lr": 1e-3, "weight_decay": 1.0, "steps": 3000}}
QUICK = {"data": {"train_frac": 0.4, "corrupt": 0.0},
         "train": {"loss": "ce", "lr": 3e-3, "weight_decay": 3.0, "steps": 2000}}
#: a loss "has fallen" once it is below this fraction of its value at step 0
FALLEN = 0.1


def config(args) -> interp.RunConfig:
    cfg = (QUICK_BASE if args.quick else PAPER_BASE).replace(**(QUICK if args.quick else FULL))
    steps = args.steps if args.steps is not None else cfg.train.steps
    data = {"p": args.p} if args.p is not None else {}
    return cfg.replace(data=data, train={"steps": steps, "save_log": min(100, steps + 1)})


def fallen_step(steps: np.ndarray, loss: np.ndarray, after: int) -> int | None:
    """The first step from ``after`` on at which ``loss`` is below FALLEN x its start."""
    hit = np.flatnonzero((steps >= after) & (loss <= FALLEN * loss[0]))
    return int(steps[hit[0]]) if len(hit) else None


def draw(prog: dict, metrics: dict, delay: int | None, out) -> str:
    """Accuracies (left) and the four losses (right), log step axes, phase ends marked."""
    fig, axes = figure(2, width=5.4, height=3.8)
    steps = np.maximum(metrics["step"], 1)
    for name, color in (("train", "k"), ("test", "C0")):
        axes[0].plot(steps, metrics[f"accuracy/{name}"], color=color, label=f"{name} accuracy")
    axes[0].set(ylabel="accuracy", ylim=(-0.02, 1.02),
                title="no grokking" if delay is None else f"grokking delay {delay} steps")
    x = np.maximum(np.asarray(prog["steps"]), 1)
    for key, label, style in (("train_loss", "train", "k-"), ("test_loss", "test", "C0-"),
                              ("restricted_loss", "restricted", "C1--"),
                              ("excluded_loss", "excluded", "C3-.")):
        if prog[key] is not None:
            axes[1].plot(x, np.asarray(prog[key], dtype=float), style, label=label, lw=1.2)
    axes[1].set(yscale="log", ylabel="loss (test, restricted: test pairs)",
                title="progress measures")
    for ax in axes:
        ax.set(xscale="log", xlabel="step")
        for (key, step), color in zip(prog["boundaries"].items(), ("C3", "C4", "C2")):
            if step:
                ax.axvline(step, color=color, ls=":", lw=1,
                           label=f"{key.replace('_', ' ')} ({step})")
        ax.legend(fontsize=6)
    return save(fig, out / "classic_grokking.png")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(__doc__, argv)
    out = out_dir(args, CLAIM)
    cfg = config(args)
    path = train(cfg, args)
    s = interp.analyze(path, ipr=False, prune=False, ablate=False, progress=True)
    with interp.Run(path) as run:
        metrics = run.metrics()
    prog = s["progress"]
    phase, classic = s["phase"], s["phase"].get("classic", {})
    t_m, t_g = classic.get("memorization_step"), classic.get("generalization_step")
    steps = np.asarray(prog["steps"])
    nums = {"phase": phase["phase"], "memorization_step": t_m, "generalization_step": t_g,
            "grokking_delay": classic.get("grokking_delay"),
            "boundaries": prog["boundaries"], "accuracy": s["accuracy"],
            "n_key_frequencies": len(prog["key_frequencies"])
            if prog["key_frequencies"] is not None else None,
            "key_threshold": prog["key_threshold"], "key_note": prog["fourier"]["key_note"]}
    held = False
    if prog["restricted_loss"] is not None and t_m is not None:
        restricted, excluded, test_loss = (np.asarray(prog[k], dtype=float) for k in (
            "restricted_loss", "excluded_loss", "test_loss"))
        after = steps >= t_m
        low = int(np.argmin(np.where(after, excluded, np.inf)))
        nums |= {"restricted_fallen_step": fallen_step(steps, restricted, t_m),
                 "test_fallen_step": fallen_step(steps, test_loss, t_m),
                 "excluded_min": float(excluded[low]), "excluded_min_step": int(steps[low]),
                 "excluded_final": float(excluded[-1]),
                 "restricted_final": float(restricted[-1]),
                 "train_loss_final": float(prog["train_loss"][-1]),
                 "test_loss_final": float(prog["test_loss"][-1])}
        r, t = nums["restricted_fallen_step"], nums["test_fallen_step"]
        held = (phase["phase"] == "grokking" and r is not None
                and (t is None or r < t) and nums["excluded_final"] > 1.1 * nums["excluded_min"])
    criterion = ("phase 'grokking' (train >= 0.9 at t_m, test >= 0.9 at t_g >= 2 t_m); after "
                 f"t_m the restricted loss falls below {FALLEN:g} x its initial value at an "
                 "earlier checkpoint than the test loss does; the final excluded loss is more "
                 "than 1.1 x its minimum after t_m")
    figs = [draw(prog, metrics, classic.get("grokking_delay"), out)]
    headline = (f"{phase['phase']}: memorized at step {t_m}, generalized at step {t_g} "
                f"(delay {classic.get('grokking_delay')}); restricted loss fell at step "
                f"{nums.get('restricted_fallen_step')}, test loss at step "
                f"{nums.get('test_fallen_step')}; excluded loss "
                f"{nums.get('excluded_min', float('nan')):.3g} -> "
                f"{nums.get('excluded_final', float('nan')):.3g} "
                f"({nums['n_key_frequencies']} key frequencies)"
                + (f"; {nums['key_note']}" if nums["key_note"] else ""))
    return finish(args, out, CLAIM, STATEMENT, criterion, held, nums, {"run": cfg}, figs,
                  headline)


if __name__ == "__main__":
    main()
    sys.exit(0)
