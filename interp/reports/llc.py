"""The local learning coefficient (LLC) of a run's checkpoints, estimated with devinterp.

The LLC measures a network's effective complexity at a point of its loss landscape
(Lau et al. 2023): ``n_beta * (E[L(w)] - L(w*))``, the mean loss of SGLD draws localized
at the checkpoint ``w*`` above the checkpoint's own loss. devinterp (the optional extra
``interp[llc]``) runs the sampler and the estimator; this module only hands it what it
needs, read from the run: the checkpoint as a model, the run's own training set (its pairs
with the labels it was trained on, corrupted labels included) as rows ``(m, n, label)`` of
an ``input_ids`` column, and the loss the run was trained with
(:func:`interp.losses.mean_loss` of each example alone, the network in eval mode).

Restricted to a population of neurons (the generalizing or the memorizing ones, split by
IPR as :func:`interp.classify` does, one threshold for every checkpoint), SGLD samples only
the entries of the arrays that belong to those neurons (devinterp's ``param_masks``); every
other weight stays at the checkpoint.

devinterp 2 ships no calibration routine; :func:`calibrate` follows its calibration
notebook: a grid of step sizes and localizations at one checkpoint, each setting's loss
trace kept, and a stated rule picks the setting (:data:`CALIBRATION_RULE`).
"""

from __future__ import annotations

import contextlib
import gc
import io
import random
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.analysis.classify import classify
from interp.analysis.neurons import check_finite_weights, trajectory_ipr
from interp.analysis.phase import run_phase
from interp.jsonable import to_jsonable
from interp.losses import mean_loss
from interp.store.run import Run
from interp.validate import check_int, check_nonnegative, check_positive

#: Step sizes and localizations the calibration tries by default.
LR_GRID = (1e-5, 1e-4, 1e-3, 1e-2)
LOCALIZATION_GRID = (1.0, 10.0, 100.0)
CALIBRATION_RULE = (
    "a setting passes when every chain stays finite, its LLC is positive and its loss trace "
    "has flattened (the mean loss of the last quarter of the draws differs from the third "
    "quarter's by at most a tenth of the second half's rise above the checkpoint's loss); "
    "of those passing, the largest step size, then the smallest localization; when none "
    "passes, the smallest step size with the largest localization (passed: false)")


@dataclass(frozen=True)
class LLCSettings:
    """devinterp's sampler settings (``devinterp.slt.llc.llc``).

    ``lr`` and ``localization``: SGLD step size and pull towards the checkpoint (both
    None: :func:`calibrate` chooses them). ``n_beta``: inverse temperature (None:
    devinterp's ``default_nbeta(batch_size)``, ``b / log b``). ``init_loss_batches``:
    batches of the checkpoint's loss (devinterp's ``num_init_loss_batches``). ``seed``:
    devinterp's ``init_seed`` (chain c draws from ``seed + c``).
    """

    lr: float | None = None
    localization: float | None = None
    n_beta: float | None = None
    num_chains: int = 2
    num_draws: int = 100
    num_burnin_steps: int = 0
    batch_size: int = 64
    init_loss_batches: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.lr is None) != (self.localization is None):
            raise ValueError(f"lr and localization must be given together or both left to "
                             f"the calibration, got lr={self.lr!r} and "
                             f"localization={self.localization!r}.")
        for name in ("lr", "n_beta"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        if self.localization is not None:
            check_nonnegative("localization", self.localization)
        for name, least in (("num_chains", 1), ("num_draws", 4), ("num_burnin_steps", 0),
                            ("batch_size", 2), ("init_loss_batches", 1), ("seed", 0)):
            check_int(name, getattr(self, name), least)

    def beta(self) -> float:
        """``n_beta``, or devinterp's default for the batch size."""
        if self.n_beta is not None:
            return float(self.n_beta)
        from devinterp.utils import default_nbeta

        return float(default_nbeta(self.batch_size))


def _devinterp() -> Any:
    """devinterp's ``llc`` function, or an ImportError that says how to install it."""
    try:
        from devinterp.slt.llc import llc
    except ImportError as exc:
        raise ImportError(f"the LLC needs devinterp 2 (the optional extra interp[llc]: pip "
                          f"install 'interp[llc]'), which failed to import: {exc}.") from None
    return llc


def training_rows(ds: Any) -> np.ndarray:
    """The run's training set as rows ``(m, n, label)``, shape=(n_train, 3) int64, with
    the labels it was trained on (corrupted ones included)."""
    pairs = ds.pairs[ds.train_idx]
    return np.column_stack([pairs, ds.train_labels]).astype(np.int64)


def example_loss(model: torch.nn.Module, rows: torch.Tensor, loss: str) -> torch.Tensor:
    """The training loss ``loss`` of each row ``(m, n, label)`` alone, shape=(B,): the
    trainer's :func:`interp.losses.mean_loss`, each example its own batch of one, the
    network in eval mode (no dropout; BatchNorm's running statistics)."""
    model.eval()
    logits = model(rows[:, 0], rows[:, 1]).float()
    labels = rows[:, 2]
    onehot = torch.nn.functional.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    return mean_loss(logits[:, None], labels[:, None], onehot[:, None], loss)


def _token_loss(loss: str) -> Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]:
    """devinterp's per-token loss ``(model, input_ids) -> (batch, seq - 1)``: each row's
    loss, repeated over the row's two "next tokens" so that their mean is the loss."""
    def token_loss(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        return example_loss(model, input_ids, loss)[:, None].expand(-1, 2)
    return token_loss


@contextlib.contextmanager
def _own_random_state() -> Iterator[None]:
    """devinterp seeds the global generators of torch, numpy and random; give them back."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """devinterp runs a full garbage collection around every chain, which walks every
    object of the process (datasets and transformers bring many); objects older than the
    call are set aside meanwhile (``gc.freeze``) and given back after."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def estimate(model: torch.nn.Module, rows: np.ndarray, loss: str, settings: LLCSettings,
             lr: float, localization: float,
             masks: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """One LLC estimate by devinterp at the weights of ``model`` (left unchanged).

    Returns ``llc`` (the mean over chains), ``llc_std``, ``per_chain`` (C,), ``init_loss``
    (the loss at the checkpoint), ``trace`` (shape=(C, S), each SGLD step's mean loss)
    and ``healthy`` (no chain failed). devinterp's samples go to a temporary folder,
    removed on return; its progress bars are silenced (the caller reports progress).
    """
    from datasets import Dataset

    llc = _devinterp()
    data = Dataset.from_dict({"input_ids": rows}).with_format("torch")
    with (tempfile.TemporaryDirectory(prefix="interp-llc-") as tmp, _own_random_state(),
          _frozen_heap(),
          warnings.catch_warnings(record=True) as caught,
          contextlib.redirect_stderr(io.StringIO())):  # devinterp's per-chain bars
        warnings.simplefilter("always")
        result = llc(model, data, {}, lr=lr, n_beta=settings.beta(), param_masks=masks,
                     loss_fn=_token_loss(loss), num_chains=settings.num_chains,
                     num_draws=settings.num_draws, batch_size=settings.batch_size,
                     num_burnin_steps=settings.num_burnin_steps, init_seed=settings.seed,
                     num_init_loss_batches=settings.init_loss_batches,
                     localization=localization, device=_device_of(model),
                     output_path=str(Path(tmp) / "samples.zarr"))
        out = {"llc": float(result["llc_mean"]), "llc_std": float(result["llc_std"]),
               "per_chain": np.asarray(result["llc_per_chain"].values, dtype=np.float64),
               "init_loss": float(result["init_loss"]),
               "trace": np.asarray(result["loss_trace"].values, dtype=np.float64)}
    failed = [str(w.message) for w in caught if "Chain failed" in str(w.message)]
    out["healthy"] = not failed and bool(np.isfinite(out["trace"]).all())
    return out


def _device_of(model: torch.nn.Module) -> str:
    return str(next(model.parameters()).device)


def calibration_passes(est: dict[str, Any]) -> bool:
    """Whether one setting's estimate (:func:`estimate`'s ``healthy``, ``llc``, ``trace``,
    ``init_loss``) passes :data:`CALIBRATION_RULE`."""
    if not est["healthy"] or not est["llc"] > 0:
        return False
    rise = est["trace"].mean(0) - est["init_loss"]
    q = len(rise) // 4
    late, later = rise[2 * q:3 * q].mean(), rise[3 * q:].mean()
    return bool(abs(later - late) <= 0.1 * rise[2 * q:].mean())


def calibrate(model: torch.nn.Module, rows: np.ndarray, loss: str, settings: LLCSettings,
              lrs: Sequence[float] = LR_GRID,
              localizations: Sequence[float] = LOCALIZATION_GRID) -> dict[str, Any]:
    """Try each (lr, localization) at the weights of ``model``; choose one by
    :data:`CALIBRATION_RULE`. Returns ``grid`` (per setting: ``lr``, ``localization``,
    ``llc``, ``init_loss``, ``trace`` (the mean over chains), ``passed``), ``lr``,
    ``localization`` (the chosen ones), ``passed`` and ``rule``."""
    grid = []
    for lr in lrs:
        for gamma in localizations:
            est = estimate(model, rows, loss, settings, float(lr), float(gamma))
            grid.append({"lr": float(lr), "localization": float(gamma), "llc": est["llc"],
                         "init_loss": est["init_loss"], "trace": est["trace"].mean(0),
                         "passed": calibration_passes(est)})
    good = [g for g in grid if g["passed"]]
    if good:
        best = max(good, key=lambda g: (g["lr"], -g["localization"]))
    else:
        best = min(grid, key=lambda g: (g["lr"], -g["localization"]))
    return {"grid": grid, "lr": best["lr"], "localization": best["localization"],
            "passed": bool(good), "rule": CALIBRATION_RULE}


def population_masks(model: torch.nn.Module, neuron_axes: dict[str, int],
                     neurons: np.ndarray) -> dict[str, torch.Tensor]:
    """devinterp's ``param_masks`` that sample only ``neurons``: for each parameter with a
    neuron axis (``neuron_axes``, by array name), ones at those neurons' entries, zeros
    elsewhere; parameters without one are left out (frozen)."""
    masks = {}
    for name, tensor in model.named_parameters():  # a Network's arrays are its parameters
        if name not in neuron_axes:
            continue
        axis = neuron_axes[name]
        keep = torch.zeros(tensor.shape[axis], dtype=tensor.dtype, device=tensor.device)
        keep[torch.as_tensor(neurons, dtype=torch.long)] = 1
        shape = [1] * tensor.ndim
        shape[axis] = -1
        masks[name] = keep.view(shape).expand_as(tensor).clone()
    return masks


def _populations(run: Run, steps: list[int], threshold: float | None
                 ) -> tuple[float | None, list[dict[str, np.ndarray]] | None, str | None]:
    """The IPR threshold (given, or Otsu's at the last of ``steps``) and, per step, the
    generalizing (IPR >= threshold) and memorizing neurons; (None, None, why) when the
    neurons do not split (:func:`interp.analysis.classify.classify`'s reason)."""
    stored, ipr = trajectory_ipr(run)
    at = [ipr[int(np.flatnonzero(stored == s)[0])] for s in steps]
    classes = classify(at[-1], threshold)
    cut = classes.threshold
    if cut is None:
        return None, None, classes.reason
    return cut, [{"generalizing": np.flatnonzero(v >= cut), "memorizing": np.flatnonzero(v < cut)}
                 for v in at], None


def _checkpoint(run: Run, step: int, rows: np.ndarray, settings: LLCSettings, lr: float,
                localization: float, groups: dict[str, np.ndarray] | None
                ) -> dict[str, dict[str, Any] | None]:
    """The LLC at one checkpoint: of every weight, and of each population's (None when it
    is empty)."""
    check_finite_weights(run.weights(step), f"at step {step} of {str(run.path)!r}")
    model, loss = run.model(step), run.config.train.loss
    out: dict[str, dict[str, Any] | None] = {
        "all": estimate(model, rows, loss, settings, lr, localization)}
    axes = run.family.neuron_axes(run.config.model)
    for name, neurons in (groups or {}).items():
        out[name] = (estimate(model, rows, loss, settings, lr, localization,
                              population_masks(model, axes, neurons)) if len(neurons) else None)
    for name, est in out.items():
        if est is not None and not est["healthy"]:
            raise ValueError(f"the SGLD chains of the {name} LLC at step {step} diverged with "
                             f"lr {lr:g} and localization {localization:g}; give a smaller lr "
                             f"or a larger localization.")
    return out


def llc(run: Any, steps: Sequence[int] | None = None, *, settings: LLCSettings | None = None,
        populations: bool = True, threshold: float | None = None,
        progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The LLC at a run's checkpoints, estimated by devinterp (see the module's text).

    Parameters
    ----------
    run : an open :class:`interp.Run`, or a path to a run file.
    steps : stored steps (None: every checkpoint).
    settings : :class:`LLCSettings` (None: the defaults, calibrated at the last step).
    populations : also the LLC of the generalizing and of the memorizing neurons alone.
    threshold : IPR cut between them (None: Otsu's at the last step), used at every step.
    progress : called as ``progress(done, total)`` after each checkpoint.

    Returns a JSON-ready dict: ``steps``; ``llc`` and ``llc_std`` (``all``, and with
    ``populations`` ``generalizing``, ``memorizing``: one value per step, None for an
    empty population); ``init_loss`` (the checkpoint's loss on its training set);
    ``neurons`` (the populations' sizes per step) and ``threshold``, or ``no_split``: why
    the neurons have no populations (one sentence); ``settings`` (the
    ones used, the calibrated lr and localization included); ``calibration`` (None
    when lr and localization were given; else :func:`calibrate`'s result and its
    ``step``); ``loss``, ``n_train``; ``stages`` (the run's phase stages, or None).
    Deterministic given ``settings.seed``.
    """
    if not isinstance(run, Run):
        with Run(run) as opened:
            return llc(opened, steps, settings=settings, populations=populations,
                       threshold=threshold, progress=progress)
    settings = settings or LLCSettings()
    if steps is not None and len(steps) == 0:
        raise ValueError("steps must name at least one stored step (or be None for every "
                         "checkpoint), got none.")
    chosen = [int(s) for s in run.steps] if steps is None else sorted(
        {int(run.steps[run.index_of(s)]) for s in steps})
    rows = training_rows(run.dataset())
    lr, gamma, cal = settings.lr, settings.localization, None
    if lr is None:
        cal = calibrate(run.model(chosen[-1]), rows, run.config.train.loss, settings)
        lr, gamma, cal["step"] = cal["lr"], cal["localization"], chosen[-1]
    cut, groups, no_split = (_populations(run, chosen, threshold) if populations
                             else (None, None, None))
    per_step = []
    for i, step in enumerate(chosen):
        per_step.append(_checkpoint(run, step, rows, settings, lr, gamma,
                                    groups[i] if groups else None))
        if progress is not None:
            progress(i + 1, len(chosen))
    names = list(per_step[0])
    return to_jsonable({
        "steps": chosen,
        "llc": {k: [e[k] and e[k]["llc"] for e in per_step] for k in names},
        "llc_std": {k: [e[k] and e[k]["llc_std"] for e in per_step] for k in names},
        "init_loss": [e["all"]["init_loss"] for e in per_step],
        "neurons": {k: [len(g[k]) for g in groups] for k in groups[0]} if groups else None,
        "threshold": cut, "no_split": no_split,
        "settings": asdict(settings) | {"lr": lr, "localization": gamma,
                                        "n_beta": settings.beta()},
        "calibration": cal, "loss": run.config.train.loss, "n_train": len(rows),
        "stages": run_phase(run)["stages"] if len(run.steps) > 1 else None,
    })


def llc_of_runs(paths: Sequence[Any], settings: LLCSettings | None = None) -> list[dict]:
    """The LLC (every weight) at each run's checkpoints with one set of sampler settings,
    so that the curves compare: a step size and localization left to the calibration are
    calibrated on the first run's last checkpoint and used for every run."""
    settings = settings or LLCSettings()
    results = []
    for path in paths:
        results.append(llc(path, settings=settings, populations=False))
        chosen = results[-1]["settings"]
        settings = replace(settings, lr=chosen["lr"], localization=chosen["localization"])
    return results
