"""interp: train on corrupted modular arithmetic, record dense trajectories, analyze neurons.

The public API is the list below; everything else is private.
"""

__version__ = "0.1.0"

from interp.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from interp.data import ACCURACY_NAMES, Dataset, accuracies, make_dataset
from interp.model import MLP
from interp.train import Trainer, checkpoint_steps
from interp.trajectory import Run, TrajectoryWriter, resume_file, train_to_file

__all__ = [
    "ACCURACY_NAMES",
    "DataConfig",
    "Dataset",
    "MLP",
    "ModelConfig",
    "Run",
    "RunConfig",
    "TrainConfig",
    "Trainer",
    "TrajectoryWriter",
    "accuracies",
    "checkpoint_steps",
    "make_dataset",
    "resume_file",
    "train_to_file",
]
