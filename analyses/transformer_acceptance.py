"""Numbers for docs/foreign-and-transformer.md from trained runs (Transformer or MLP).

Usage: python analyses/transformer_acceptance.py RUN.h5 [RUN.h5 ...]

For each run: final accuracies and phase; for a Transformer the key frequencies of the
token embedding (90% of its squared norm); the neuron IPR split (Otsu threshold, class
sizes, the separability eta = between-class / total variance of log10 IPR and of IPR,
a bimodality coefficient) and the pruning check (accuracies after pruning the low-IPR
class, ascending order).
"""

from __future__ import annotations

import sys

import numpy as np
from common import bimodality_coefficient, eta

import interp


def report(path: str) -> None:
    s = interp.analyze(path, ablate=False)
    acc, ph = s["accuracy"], s["phase"]
    print(f"== {path} (step {s['step']}, p {s['p']}, {s['width']} neurons)")
    print("accuracy " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items() if v is not None))
    print(f"phase {ph['phase']} (final train {ph['final_train']:.4f}, test "
          f"{ph['final_test']:.4f}, peak test {ph['peak_test']:.4f} at {ph['peak_test_step']})")
    if s.get("embedding"):
        key = s["embedding"]["key"]
        print(f"embedding: {key['n_key']} key frequencies carry {key['key_share']:.3f} "
              f"(>= {key['fraction']}): {key['frequencies']} shares "
              f"{[round(v, 3) for v in key['shares']]}")
    ipr = np.asarray(s["ipr"]["neurons"])
    c = s["classes"]
    if c["threshold"] is None:
        print(f"IPR: mean {np.mean(s['ipr']['neurons']):.4f}; no split: {c['reason']}")
        return
    n_mem = len(c["memorizing"])
    print(f"IPR: mean {ipr.mean():.4f}, median {np.median(ipr):.4f}, Otsu {c['threshold']:.4f}"
          f" -> {len(c['generalizing'])} generalizing / {n_mem} memorizing; class means "
          f"{ipr[c['generalizing']].mean():.4f} / "
          f"{ipr[c['memorizing']].mean() if n_mem else float('nan'):.4f}")
    with interp.Run(path) as run:
        steps, traj = interp.trajectory_ipr(run)
    print(f"IPR at initialisation (step {steps[0]}): mean {traj[0].mean():.4f}, median "
          f"{np.median(traj[0]):.4f}, max {traj[0].max():.4f}; final min {ipr.min():.4f}")
    logs = np.log10(np.maximum(ipr, 1e-12))
    print(f"separability eta: IPR {eta(ipr):.3f}, log10 IPR {eta(logs):.3f}; bimodality "
          f"coefficient: IPR {bimodality_coefficient(ipr):.3f}, log10 IPR "
          f"{bimodality_coefficient(logs):.3f} (5/9 = 0.556)")
    hist, edges = np.histogram(logs, bins=12)
    print("log10 IPR histogram: " + " ".join(f"{e:.2f}:{h}" for e, h in zip(edges, hist)))
    asc = s["prune"]["ascending"]
    for k in sorted({n_mem, s["width"] // 2}):
        vals = {n: asc[n][k] for n in ("test", "train", "train_corrupted", "train_clean")}
        print(f"after pruning the {k} lowest-IPR neurons: " + ", ".join(
            f"{n} {'-' if v is None else f'{v:.4f}'}" for n, v in vals.items()))


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        report(arg)
