"""Figures: plot_* functions take arrays and an Axes; write_* functions save PNGs of
computed results (they never recompute an analysis)."""
