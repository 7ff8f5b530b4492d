"""Side-by-side comparison of runs, e.g. the same setting under different regularizers.

:func:`compare` returns plain data: per run the config fields that differ between the
runs, final accuracies, phase, IPR statistics, neuron class counts, weight norms, and
(for BatchNorm runs) the rank correlation of |gamma| with IPR, the paper's evidence that
BatchNorm de-amplifies memorizing neurons; plus the curves the comparison figures need.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp.analysis.neurons import check_finite_weights, ipr_convention
from interp.analysis.phase import total_norm
from interp.jsonable import to_jsonable
from interp.reports.analyze import analyze_run
from interp.store.run import Run

CURVES = ("accuracy/train", "accuracy/test", "accuracy/train_corrupted", "loss", "test_loss")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Dotted names of the config fields whose values are not the same in every run."""
    flats = [_flat(c) for c in configs]
    keys = sorted(set().union(*flats))
    return [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]


def gamma_ipr_correlation(gamma: np.ndarray, ipr: np.ndarray) -> dict[str, float]:
    """Spearman rank correlation of |gamma| with IPR over neurons, shape=(N,) each."""
    from scipy.stats import spearmanr  # scipy.stats takes a while to import: only here

    rho, pvalue = spearmanr(np.abs(gamma), ipr)
    return {"spearman": float(rho), "p_value": float(pvalue)}


def run_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Short names that tell the runs apart: each file's stem, lengthened by as many of
    its parent folders as it takes to differ from every other run's (``a/cells/x`` and
    ``b/cells/x``: ``a/cells/x``, ``b/cells/x``); a file given twice gets ``#2``.

    >>> run_labels(["sweeps/wd/cells/r.h5", "sweeps/do/cells/r.h5", "other.h5"])
    ['wd/cells/r', 'do/cells/r', 'other']
    """
    parts = [Path(p).with_suffix("").parts for p in paths]

    def label(i: int, depth: int) -> str:
        return "/".join(parts[i][-depth:])
    labels = []
    for i in range(len(parts)):
        others = [j for j in range(len(parts)) if j != i and parts[j] != parts[i]]
        depth = 1
        while depth < len(parts[i]) and any(label(j, depth) == label(i, depth)
                                            for j in others):
            depth += 1
        labels.append(label(i, depth))
    seen: dict[str, int] = {}
    for i, name in enumerate(labels):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            labels[i] = f"{name} #{seen[name]}"
    return labels


def _one(path: Path, step: int | None, prune: bool, seed: int) -> dict[str, Any]:
    with Run(path) as run:
        analysis = analyze_run(run, step, ipr=True, prune=prune, ablate=False, phase=True,
                               seed=seed)
        s, m = analysis.summary, analysis.arrays["metrics"]
        weights = run.weights(s["step"])
        ipr_steps, ipr_traj = analysis.arrays["ipr_steps"], analysis.arrays["ipr_trajectory"]
        cfg = run.config.to_dict()  # with the model named even where its file leaves it out
        cfg["model"] = {"model": run.config.model.model} | cfg["model"]
        convention = ipr_convention(run.config.model)
    upto = m["step"] <= s["step"]
    neurons = np.asarray(s["ipr"]["neurons"])
    norms = {k.removeprefix("norm/"): float(v[upto][-1]) for k, v in m.items()
             if k.startswith("norm/")}
    norms["total"] = float(total_norm(m)[upto][-1])
    bn = (gamma_ipr_correlation(weights["gamma"], neurons) | {"gamma": np.abs(weights["gamma"])}
          if "gamma" in weights else None)
    return {
        "path": str(path), "config": cfg, "step": s["step"],
        "accuracy": s["accuracy"], "phase": s["phase"],
        "ipr": {"mean": s["ipr"]["mean"], "median": float(np.median(neurons)),
                "neurons": neurons},
        "classes": {"threshold": s["classes"]["threshold"],
                    "n_generalizing": len(s["classes"]["generalizing"]),
                    "n_memorizing": len(s["classes"]["memorizing"]),
                    "reason": s["classes"]["reason"]},
        "norms": norms, "batchnorm": bn, "prune": s["prune"],
        "loss": cfg["train"]["loss"],
        "curves": {"step": m["step"][upto]} | {k: m[k][upto] for k in CURVES},
        "ipr_over_training": {"step": ipr_steps, "mean": ipr_traj.mean(axis=1)},
        "ipr_convention": convention,
    }


def compare(paths: Sequence[str | os.PathLike], step: int | None = None, *,
            prune: bool = True, seed: int = 0, labels: Sequence[str] | None = None,
            progress: Callable[[int, str], None] | None = None,
            llc: Any = None) -> dict[str, Any]:
    """Compare runs at one stored step (None: each run's last checkpoint).

    ``labels`` name the runs (one per path; default :func:`run_labels`, the shortest
    trailing part of each path that tells it from the others). ``progress(i, label)`` is
    called before run ``i`` is analyzed.

    Returns a JSON-ready dict: ``differences`` (dotted config fields that differ),
    ``ipr_convention`` and ``runs``, one record per path with ``label``, ``differences``
    (that run's values of the differing fields), ``accuracy``, ``phase`` (with its
    evidence), ``ipr`` (``mean``, ``median``, ``neurons``), ``classes`` (Otsu threshold,
    counts), ``norms`` (final, per parameter and ``total``), ``batchnorm`` (``spearman``
    and ``p_value`` of |gamma| against IPR, ``gamma``; None without BatchNorm),
    ``prune`` (curves, or None), ``curves`` (per-step accuracies), ``loss`` (the loss
    the run was trained with, ``mse`` or ``ce``) and
    ``ipr_over_training`` (mean neuron IPR per stored checkpoint); with ``llc`` (an
    :class:`interp.LLCSettings`) also ``llc``, the LLC at every checkpoint with the same
    settings for every run (:func:`interp.reports.llc.llc_of_runs`).
    """
    if len(paths) < 1:
        raise ValueError("compare needs at least one run file, got none.")
    names = check_labels(labels, len(paths)) if labels is not None else run_labels(paths)
    for path in paths:  # every input checked before any is analyzed
        with Run(path) as run:
            at = int(run.steps[run.index_of(step)])
            check_finite_weights(run.weights(at), f"at step {at} of {str(run.path)!r}")
    runs = []
    for i, (path, name) in enumerate(zip(paths, names)):
        if progress is not None:
            progress(i, name)
        runs.append({"label": name} | _one(Path(path), step, prune, seed))
    if llc is not None:
        from interp.reports.llc import llc_of_runs

        for r, result in zip(runs, llc_of_runs(paths, llc)):
            r["llc"] = result
    diff = config_differences([r["config"] for r in runs])
    for r in runs:
        flat = _flat(r.pop("config"))
        r["differences"] = {k: flat.get(k) for k in diff}
    conventions = {r.pop("ipr_convention") for r in runs}
    return to_jsonable({"differences": diff, "ipr_convention": " | ".join(sorted(conventions)),
                        "runs": runs})


def check_labels(labels: Sequence[str], n: int) -> list[str]:
    """``labels`` checked to name ``n`` runs, each once and not blank."""
    labels = [str(name) for name in labels]
    if len(labels) != n:
        raise ValueError(f"labels must name every run (one per run file, {n}), got "
                         f"{len(labels)}.")
    for name in labels:
        if not name.strip() or labels.count(name) > 1:
            raise ValueError(f"labels must be distinct and not blank, got {name!r}"
                             + (" twice." if name.strip() else "."))
    return labels
