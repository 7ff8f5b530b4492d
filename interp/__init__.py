"""interp: train on corrupted modular arithmetic, record dense trajectories, analyze neurons."""

__version__ = "0.1.0"
