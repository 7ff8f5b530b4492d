"""Files: the trajectory file (reader, writer), foreign checkpoints and their layouts, and
the atomic writes every output goes through. The only code that touches h5py,
safetensors or torch.load."""
