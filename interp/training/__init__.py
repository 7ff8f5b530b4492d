"""Training: the one trainer (a model, or a stack of models, of any family; it reports
records to callbacks and never touches files), its optimizer, which runs stack, and the
runner that joins a trainer and trajectory writers."""
