"""Pure array functions: spectra and IPR, neuron classes, pruning and ablation, phases,
the analytic solution and its fit. They never import h5py, typer or matplotlib, nor
anything from interp.store."""
