"""Runs and files: ``Run`` (a trajectory file or a run in memory, read lazily), the
trajectory writer, foreign checkpoints, writing runs that were not trained, and the
atomic writes every output goes through. The only code that touches h5py, safetensors or
torch.load."""
