"""interp: train on corrupted modular arithmetic, record dense trajectories, analyze neurons.

The public API is the list below; everything else is private.
"""

__version__ = "0.1.0"

from interp.analysis import accuracies_at, analyze
from interp.batched import BatchTrainer
from interp.classify import classify, generalizing_since, otsu_threshold
from interp.compare import compare
from interp.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from interp.data import ACCURACY_NAMES, Dataset, accuracies, make_dataset
from interp.fit import fit_neurons, fit_summary, frequency_lock_steps, idealized_weights
from interp.foreign import import_checkpoint, load_checkpoints, to_state_dicts
from interp.model import MLP, make_model
from interp.phase import classify_phase, run_phase, total_norm
from interp.phase_diagram import write_phase_diagram
from interp.prune import (
    ablate,
    ablate_from_terms,
    hidden_activations,
    prune_curve,
    prune_curves,
    prune_curves_from_terms,
)
from interp.solution import analytic_network
from interp.spectra import IPR_CONVENTION, fourier_spectra, ipr, neuron_ipr, trajectory_ipr
from interp.sweep import SweepSpec, run_sweep, summary
from interp.train import Trainer, checkpoint_steps
from interp.trajectory import Run, TrajectoryWriter, resume_file, train_to_file, write_trajectory
from interp.transformer import Transformer
from interp.transformer_analysis import (
    GRID_IPR_CONVENTION,
    embedding_spectrum,
    grid_ipr,
    key_frequencies,
    logit_terms,
    neuron_grids,
    transformer_neuron_ipr,
    transformer_trajectory_ipr,
)

__all__ = [
    "ablate",
    "ablate_from_terms",
    "accuracies",
    "accuracies_at",
    "ACCURACY_NAMES",
    "analytic_network",
    "analyze",
    "BatchTrainer",
    "checkpoint_steps",
    "classify",
    "classify_phase",
    "compare",
    "DataConfig",
    "Dataset",
    "embedding_spectrum",
    "fit_neurons",
    "fit_summary",
    "fourier_spectra",
    "frequency_lock_steps",
    "generalizing_since",
    "grid_ipr",
    "GRID_IPR_CONVENTION",
    "hidden_activations",
    "idealized_weights",
    "import_checkpoint",
    "ipr",
    "IPR_CONVENTION",
    "key_frequencies",
    "load_checkpoints",
    "logit_terms",
    "make_dataset",
    "make_model",
    "MLP",
    "ModelConfig",
    "neuron_grids",
    "neuron_ipr",
    "otsu_threshold",
    "prune_curve",
    "prune_curves",
    "prune_curves_from_terms",
    "resume_file",
    "Run",
    "run_phase",
    "total_norm",
    "run_sweep",
    "RunConfig",
    "summary",
    "SweepSpec",
    "to_state_dicts",
    "train_to_file",
    "TrainConfig",
    "Trainer",
    "trajectory_ipr",
    "TrajectoryWriter",
    "Transformer",
    "transformer_neuron_ipr",
    "transformer_trajectory_ipr",
    "write_phase_diagram",
    "write_trajectory",
]
