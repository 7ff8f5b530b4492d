"""Shared helpers of the reproduction scripts in ``analyses/`` (one implementation each).

Every script reproduces one claim of arXiv 2310.13061 (see docs/reproductions.md) with
the public API of ``interp`` only. This module holds what they share: the command line,
the named training regimes (paper settings and a quick, small-network version), a cache
of trained runs (so that scripts that use the same run train it once), plotting and the
result files (``result.json`` + ``result.md``) each script writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import interp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "checkpoints" / "reproductions"
DPI = 80

#: The paper's main setting (interp's defaults): p 97, N 500, alpha 0.5, xi 0.35.
PAPER_BASE = interp.RunConfig()
#: Quick mode: a smaller network that shows the same phases in seconds on one core. At
#: p 41 the test set of alpha 0.5 is too small a share to generalize from with 35%
#: corruption, so quick mode trains on 70% of the pairs with 20% corrupted.
QUICK_BASE = PAPER_BASE.replace(data={"p": 41, "train_frac": 0.7, "corrupt": 0.2},
                                model={"width": 192})

#: Named runs shared between scripts: (paper overrides, quick overrides) of the base.
REGIMES: dict[str, tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]] = {
    "coexistence": ({"train": {"steps": 1000}}, {"train": {"steps": 600}}),
    "partial_inversion": ({"train": {"weight_decay": 5.0, "steps": 500}},
                          {"train": {"weight_decay": 6.0, "steps": 500}}),
    "full_inversion": ({"train": {"weight_decay": 15.0, "steps": 500}},
                       {"train": {"weight_decay": 8.0, "steps": 500}}),
    "forgetting": ({"train": {"weight_decay": 20.0, "steps": 3000}},
                   {"train": {"weight_decay": 15.0, "steps": 1500}}),
    "dropout": ({"model": {"dropout": 0.6}, "train": {"steps": 2000}},
                {"model": {"dropout": 0.6}, "train": {"steps": 800}}),
    "batchnorm": ({"data": {"train_frac": 0.65, "corrupt": 0.2}, "model": {"batchnorm": True},
                   "train": {"batch_size": 64, "lr": 0.005, "steps": 8000}},
                  {"model": {"batchnorm": True},
                   "train": {"batch_size": 64, "lr": 0.005, "steps": 1500}}),
}


# ----------------------------------------------------------------------------- command line
def parse_args(doc: str | None, argv: Sequence[str] | None) -> argparse.Namespace:
    """The options every script takes; the output folder defaults to its claim's name."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default checkpoints/reproductions[-quick]/<claim>)")
    ap.add_argument("--runs", type=Path, default=None,
                    help="cache of trained runs shared by the scripts (default: runs/ beside "
                         "the output folder)")
    ap.add_argument("--quick", action="store_true",
                    help="small p, width and steps: seconds on a CPU, looser criteria")
    ap.add_argument("--p", type=int, default=None, help="override the modulus p (smoke tests)")
    ap.add_argument("--steps", type=int, default=None,
                    help="override every run's number of steps (smoke tests)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--retrain", action="store_true", help="ignore cached runs")
    return ap.parse_args(argv)


def out_dir(args: argparse.Namespace, claim: str) -> Path:
    root = DEFAULT_OUT.with_name(DEFAULT_OUT.name + ("-quick" if args.quick else ""))
    out = args.out if args.out is not None else root / claim
    out.mkdir(parents=True, exist_ok=True)
    return out


def regime(name: str, args: argparse.Namespace) -> interp.RunConfig:
    """The config of a named regime at paper or quick scale, with ~100 checkpoints."""
    full, quick = REGIMES[name]
    cfg = (QUICK_BASE if args.quick else PAPER_BASE).replace(**(quick if args.quick else full))
    return scaled(cfg, args)


def scaled(cfg: interp.RunConfig, args: argparse.Namespace) -> interp.RunConfig:
    """Apply ``--p`` and ``--steps`` and keep about 100 checkpoints per run."""
    data = {"p": args.p} if args.p is not None else {}
    steps = args.steps if getattr(args, "steps", None) is not None else cfg.train.steps
    return cfg.replace(data=data, train={"steps": steps, "save_every": max(1, steps // 100)})


# ----------------------------------------------------------------------------- cached runs
def train(cfg: interp.RunConfig, args: argparse.Namespace, log: Callable[[str], None] = print
          ) -> Path:
    """Train ``cfg`` into the run cache, or reuse a complete run with the same config."""
    torch.set_num_threads(args.threads)
    runs = args.runs if args.runs is not None else out_dir(args, "runs")
    digest = hashlib.sha1(cfg.to_json().encode()).hexdigest()[:10]
    path = Path(runs) / f"{cfg.model.model}_p{cfg.data.p}_{digest}.h5"
    if path.exists() and not args.retrain:
        try:
            with interp.Run(path) as run:
                if run.complete and run.config == cfg:
                    log(f"  reusing {path}")
                    return path
        except (OSError, ValueError):
            pass
    t0 = time.perf_counter()
    log(f"  training {describe(cfg)} -> {path}")
    interp.train_to_file(cfg, path, overwrite=True)
    log(f"  trained in {time.perf_counter() - t0:.1f} s")
    return path


def describe(cfg: interp.RunConfig) -> str:
    """One line with the settings that matter, e.g. for tables."""
    d, m, t = cfg.data, cfg.model, cfg.train
    parts = [f"p {d.p}", f"alpha {d.train_frac:g}", f"xi {d.corrupt:g}"]
    parts += [f"{m.model} {m.tag()}"]
    parts += [f"{t.loss}", f"lr {t.lr:g}", f"wd {t.weight_decay:g}", f"{t.steps} steps"]
    parts += [f"dropout {m.dropout:g}"] if m.dropout else []
    parts += [f"BatchNorm, batch {t.batch_size}"] if getattr(m, "batchnorm", False) else []
    return ", ".join(parts)


def seeds(cfg: interp.RunConfig) -> dict[str, int]:
    return {"split_seed": cfg.data.split_seed, "corrupt_seed": cfg.data.corrupt_seed,
            "init_seed": cfg.model.init_seed, "train_seed": cfg.train.seed}


# ----------------------------------------------------------------------------- run numbers
def final_ipr(run: interp.Run) -> np.ndarray:
    """Per-neuron IPR (the family's convention, r 2) at the last checkpoint. shape=(N,)."""
    return interp.neuron_ipr(run.weights(), run.config.model, run.config.data.p)


def run_numbers(path: Path) -> dict[str, Any]:
    """Final accuracies, phase (with the two stages) and IPR statistics of an MLP run."""
    with interp.Run(path) as run:
        acc = interp.accuracies_at(run)
        phase = interp.run_phase(run)
        ipr = final_ipr(run) if run.family.view_ndim == 1 else None  # the paper's IPR
    out = {"accuracy": acc, "phase": phase["phase"], "peak_test": phase["peak_test"],
           "peak_test_step": phase["peak_test_step"], "norm_ratio": phase["norm_ratio"],
           **phase["stages"]}
    if ipr is not None:
        classes = interp.classify(ipr)
        out["ipr"] = {"mean": float(ipr.mean()), "median": float(np.median(ipr)),
                      "otsu_threshold": classes.threshold,
                      "n_generalizing": len(classes.generalizing),
                      "n_memorizing": len(classes.memorizing)}
    return out


def bimodality_coefficient(x: np.ndarray) -> float:
    """Sarle's (skew^2 + 1) / (kurtosis + 3 (n-1)^2 / ((n-2)(n-3))); > 5/9 hints at two modes."""
    n, z = len(x), (x - x.mean()) / x.std()
    skew, kurt = (z**3).mean(), (z**4).mean() - 3
    return float((skew**2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def eta(values: np.ndarray) -> float:
    """Otsu's separability: between-class variance at Otsu's cut over the total variance."""
    cut = interp.otsu_threshold(values)
    hi, lo = values[values >= cut], values[values < cut]
    if len(lo) == 0 or len(hi) == 0:
        return 0.0
    between = len(hi) * len(lo) * (hi.mean() - lo.mean()) ** 2 / len(values) ** 2
    return float(between / values.var())


# ----------------------------------------------------------------------------- figures
def figure(ncols: int = 1, width: float = 4.6, height: float = 3.4) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(1, ncols)))


def save(fig: Figure, path: Path) -> str:
    fig.savefig(path, dpi=DPI)
    return path.name


ACC_STYLE = {"train": ("train (as labelled)", "k"), "train_corrupted": ("memorization", "C3"),
             "train_clean": ("train, clean", "C2"), "test": ("test", "C0")}


def plot_accuracies(ax: Any, metrics: Mapping[str, np.ndarray],
                    names: Sequence[str] = ("train", "train_corrupted", "test"),
                    title: str | None = None) -> Any:
    """Accuracy histories (eval mode) against the step; log x axis."""
    steps = np.maximum(metrics["step"], 1)
    for name in names:
        label, color = ACC_STYLE.get(name, (name, None))
        ax.plot(steps, metrics[f"accuracy/{name}"], label=label, color=color, lw=1.2)
    ax.set(xscale="log", xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02), title=title)
    ax.legend(fontsize=7)
    return ax


def plot_ipr_hist(ax: Any, iprs: Mapping[str, np.ndarray], p: int,
                  title: str | None = None) -> Any:
    """Histograms of neuron IPR (log bins over the convention's range [1/(p//2+1), 1])."""
    bins = np.geomspace(1 / (p // 2 + 1) * 0.9, 1.0, 30)
    for label, values in iprs.items():
        ax.hist(np.clip(values, bins[0], 1), bins=bins, histtype="step", lw=1.5, label=label)
    ax.set(xscale="log", xlabel="neuron IPR (one-sided rFFT, r = 2)", ylabel="neurons",
           title=title)
    ax.legend(fontsize=7)
    return ax


# ----------------------------------------------------------------------------- results
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, Mapping):
        return "; ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


def _flat(numbers: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in numbers.items():
        if isinstance(v, Mapping) and not k.startswith("_"):
            out |= _flat(v, f"{prefix}{k}.")
        elif not k.startswith("_"):
            out[prefix + k] = v
    return out


def finish(args: argparse.Namespace, out: Path, claim: str, statement: str, criterion: str,
           held: bool, numbers: Mapping[str, Any], runs: Mapping[str, interp.RunConfig],
           figures: Sequence[str], headline: str) -> dict[str, Any]:
    """Write ``result.json`` and ``result.md`` into ``out`` and return the result.

    ``headline`` is the one-line summary of the numbers that decide the claim.
    """
    result = {
        "claim": claim, "statement": statement, "criterion": criterion, "held": bool(held),
        "quick": bool(args.quick), "headline": headline,
        "numbers": _jsonable(numbers),
        "runs": {k: {"settings": describe(c), "seeds": seeds(c), "config": c.to_dict()}
                 for k, c in runs.items()},
        "ipr_convention": interp.IPR_CONVENTION, "figures": list(figures),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# {claim}{' (quick mode)' if args.quick else ''}", "", f"**Claim.** {statement}",
             "", f"**Criterion.** {criterion}", "",
             f"**Held: {'yes' if held else 'no'}.** {headline}", "",
             "| run | settings | seeds |", "| --- | --- | --- |"]
    lines += [f"| {k} | {describe(c)} | {_fmt(seeds(c))} |" for k, c in runs.items()]
    lines += ["", "| quantity | value |", "| --- | --- |"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in _flat(result["numbers"]).items()]
    lines += ["", "Figures: " + ", ".join(f"[{f}]({f})" for f in figures), "",
              f"IPR convention: {interp.IPR_CONVENTION}", ""]
    (out / "result.md").write_text("\n".join(lines))
    print(f"[{claim}] held: {held}. {headline}")
    return result


def _jsonable(value: Any) -> Any:
    """Numpy scalars and arrays to Python, NaN to None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value
