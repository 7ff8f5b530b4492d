"""interp: train on corrupted modular arithmetic, record dense trajectories, analyze neurons.

The public API is the list below (``interp.__all__``); everything else is private. Names
load on first use, so ``import interp`` is quick and imports neither torch nor
matplotlib until a name that needs them is touched.

The package reads top-down in the order data flows: :mod:`interp.models` (network
families and their registry), :mod:`interp.store` (runs, run files, foreign checkpoints),
:mod:`interp.training`, :mod:`interp.analysis` (pure array functions),
:mod:`interp.reports` (analyses of runs), :mod:`interp.sweeps`, :mod:`interp.plots`,
:mod:`interp.cli` (``docs/architecture.md``).
"""

from __future__ import annotations

import importlib
from typing import Any

from interp.version import __version__  # noqa: F401  (interp.__version__)

#: Public name -> the module that defines it.
_SOURCES = {
    "interp.analysis.classify": ("classify", "generalizing_since", "otsu_threshold"),
    "interp.analysis.embedding": ("embedding_spectrum", "key_frequencies"),
    "interp.analysis.fit": ("fit_neurons", "fit_summary", "frequency_lock_steps",
                            "idealized_weights"),
    "interp.analysis.neurons": ("neuron_ipr", "neuron_power", "neuron_terms",
                                "trajectory_ipr"),
    "interp.analysis.phase": ("classic_phase", "classify_phase", "run_phase", "total_norm"),
    "interp.analysis.progress": ("gini",),
    "interp.analysis.progress_run": ("run_progress",),
    "interp.analysis.prune": ("ablate", "prune_curve", "prune_curves"),
    "interp.analysis.solution": ("analytic_network",),
    "interp.analysis.spectra": ("GRID_IPR_CONVENTION", "IPR_CONVENTION", "fourier_spectra",
                                "grid_ipr", "ipr"),
    "interp.config": ("DataConfig", "RunConfig", "TrainConfig"),
    "interp.data": ("ACCURACY_NAMES", "Dataset", "accuracies", "make_dataset"),
    "interp.evaluation": ("evaluate",),
    "interp.models": ("DeepMLPConfig", "FAMILIES", "Family", "Layout", "MLP", "MLPConfig",
                      "ModelConfig", "NeuronTerms", "Transformer", "TransformerConfig",
                      "family", "family_of", "make_model", "register_family"),
    "interp.plots.phase_diagram": ("write_phase_diagram",),
    "interp.reports.analyze": ("accuracies_at", "analyze"),
    "interp.reports.compare": ("compare",),
    "interp.reports.groups": ("compare_groups",),
    "interp.reports.llc": ("LLCSettings", "llc"),
    "interp.reports.frames": ("compare_frame", "neuron_frame", "progress_frame",
                              "prune_frame"),
    "interp.store.convert": ("import_checkpoint", "to_state_dicts", "write_trajectory"),
    "interp.store.foreign": ("load_checkpoints", "read_foreign"),
    "interp.store.run": ("AssumedWarning", "Run"),
    "interp.store.writer": ("TrajectoryWriter",),
    "interp.sweeps.run": ("run_sweep",),
    "interp.sweeps.spec": ("SweepSpec",),
    "interp.sweeps.summary": ("summary",),
    "interp.training.runner": ("resume_file", "train_to_file"),
    "interp.training.trainer": ("Trainer", "checkpoint_steps"),
}
#: Names computed on every access (a family registered later appears in FAMILIES).
_COMPUTED = {"FAMILIES"}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted(_MODULE_OF, key=str.lower)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    if name not in _COMPUTED:
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
