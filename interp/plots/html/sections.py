"""The optional sections of a run's report: the analytic fit, the progress measures and the
per-layer summaries of a deep network; each says why it is missing when the analysis did
not compute it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from interp.plots.html.figures import step_tabs, table
from interp.plots.html.page import heading, note
from interp.plots.progress import BOUNDARIES, LOSSES


def _scalars(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if isinstance(v, (int, float, str, type(None)))}


def fit_section(summary: Mapping[str, Any]) -> list:
    """The fit of the analytic periodic solution: its network-level summary and the
    accuracies of the idealized network (per-neuron residuals are in the neuron table)."""
    fit = summary.get("fit")
    if not fit:
        task = summary.get("task") or {}
        why = (task["notes"][-1] if not task.get("analytic_solution", True) and task.get(
            "notes") else "the analysis did not compute it (interp analyze --fit)")
        return [heading("Analytic fit"), note(f"No fit: {why}.", "missing")]
    rows = ({f"fit: {k}": v for k, v in _scalars(fit["summary"]).items()}
            | {f"idealized network: {k}": v for k, v in fit["idealized"].items()}
            | {f"consistent neurons only: {k}": v for k, v in fit["consistent_only"].items()})
    grid, _ = table({"what": list(rows), "value": [None if v is None else float(v)
                                                   for v in rows.values()]},
                    {"what": "quantity", "value": "value"}, "fit", height=300)
    return [heading("Analytic fit"), grid]


def progress_section(summary: Mapping[str, Any]) -> list:
    """The progress measures over training, with the ends of memorization, circuit
    formation and cleanup marked."""
    measures = summary.get("progress")
    if not measures:
        return [heading("Progress measures"), note(
            "No progress measures: the analysis did not compute them (interp analyze "
            "--progress).", "missing")]
    steps = measures["steps"]
    losses = {label: (steps, measures[k]) for k, (label, _, _) in LOSSES.items()
              if measures.get(k) is not None}
    sparsity = {k.replace("_", " "): (steps, measures[k])
                for k in ("embedding_gini", "neuron_gini", "key_share")
                if measures.get(k) is not None}
    found = measures.get("boundaries") or {}
    marks = {k: (label, found.get(k)) for k, (label, _, _) in BOUNDARIES.items()}
    parts = [heading("Progress measures"),
             step_tabs([(losses, "loss")] + ([(sparsity, "share")] if sparsity else []),
                       "progress", marks)]
    fourier = measures.get("fourier") or {}
    if fourier.get("note"):
        parts.append(note(fourier["note"], "missing"))
    return parts


def layers_section(summary: Mapping[str, Any]) -> list:
    """Each hidden layer's width, mean IPR and dead neurons (networks of several hidden
    layers); nothing for a network of one."""
    layers = (summary.get("layers") or {}).get("layers")
    if not layers:
        return []
    columns = {"layer": [s["layer"] for s in layers], "width": [s["width"] for s in layers],
               "mean_ipr": [float(s["mean_ipr"]) for s in layers],
               "dead": [s["representation"].get("dead", 0) for s in layers]}
    grid, _ = table(columns, {"layer": "layer", "width": "neurons",
                              "mean_ipr": "mean IPR", "dead": "dead neurons"}, "layers",
                    height=40 + 28 * len(layers))
    return [heading("Layers"), grid]
