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
from interp.model import MLP
from interp.phase import classify_phase, run_phase
from interp.phase_diagram import write_phase_diagram
from interp.prune import ablate, hidden_activations, prune_curve, prune_curves
from interp.solution import analytic_network
from interp.spectra import IPR_CONVENTION, fourier_spectra, ipr, neuron_ipr, trajectory_ipr
from interp.sweep import SweepSpec, run_sweep, summary
from interp.train import Trainer, checkpoint_steps
from interp.trajectory import Run, TrajectoryWriter, resume_file, train_to_file, write_trajectory

__all__ = [
    "ablate",
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
    "fit_neurons",
    "fit_summary",
    "fourier_spectra",
    "frequency_lock_steps",
    "generalizing_since",
    "hidden_activations",
    "idealized_weights",
    "ipr",
    "IPR_CONVENTION",
    "make_dataset",
    "MLP",
    "ModelConfig",
    "neuron_ipr",
    "otsu_threshold",
    "prune_curve",
    "prune_curves",
    "resume_file",
    "Run",
    "run_phase",
    "run_sweep",
    "RunConfig",
    "summary",
    "SweepSpec",
    "train_to_file",
    "TrainConfig",
    "Trainer",
    "trajectory_ipr",
    "TrajectoryWriter",
    "write_phase_diagram",
    "write_trajectory",
]
