"""Analyses of run files: one run (analyze) or several side by side (compare), as JSON-ready
summaries plus the arrays their figures draw."""
