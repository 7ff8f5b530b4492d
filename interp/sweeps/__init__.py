"""Phase-diagram sweeps: grids of runs, local workers or a Dask cluster, summaries."""
