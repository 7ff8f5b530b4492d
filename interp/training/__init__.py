"""Training: the trainer (reports to callbacks, never touches files), the batched trainer
for stacks of MLPs, and the runner that joins a trainer and a trajectory writer."""
