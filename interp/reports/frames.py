"""Analysis results as pandas DataFrames, for notebooks: the per-neuron table of an
:func:`interp.analyze` summary, its pruning curves in long form, its progress measures
per checkpoint, and the per-run table of an :func:`interp.compare` result. pandas is the
optional extra ``interp[notebook]``, imported when a table is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from interp.store.frames import require

if TYPE_CHECKING:
    import pandas as pd


def neuron_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row per neuron (index ``neuron``) of an :func:`interp.analyze` summary, with
    the columns its sections allow: ``ipr``, ``class`` (``generalizing``,
    ``memorizing``, or ``no split`` for every neuron) and ``generalizing_since`` (the
    IPR section); ``frequency``, ``consistent``, ``residual`` (radians),
    ``explained_min`` (the least explained variance of U, V, W) and ``lock_step`` (the
    fit); ``ablated_<accuracy>``,
    ``ablated_loss``, ``ablated_test_loss`` (ablation). JSON nulls are NaN."""
    pd = require("pandas", "neuron_frame()")
    n = int(summary["width"])
    columns: dict[str, Any] = {}
    if summary.get("ipr"):
        columns["ipr"] = summary["ipr"]["neurons"]
        classes = summary["classes"]
        generalizing = set(classes["generalizing"])
        columns["class"] = ["no split" if classes["threshold"] is None
                            else "generalizing" if i in generalizing else "memorizing"
                            for i in range(n)]
        if summary.get("generalizing_since") is not None:
            columns["generalizing_since"] = summary["generalizing_since"]
    if summary.get("fit"):
        records = summary["fit"]["neurons"]
        columns["frequency"] = [r["frequency"] for r in records]
        columns["consistent"] = [bool(r["consistent"]) for r in records]
        columns["residual"] = [r["residual"] for r in records]
        columns["explained_min"] = [min(r["explained_variance"]) for r in records]
        if summary["fit"].get("lock_step") is not None:
            columns["lock_step"] = summary["fit"]["lock_step"]
    if summary.get("ablate"):
        columns |= {f"ablated_{k}": v for k, v in summary["ablate"].items() if k != "neuron"}
    frame = pd.DataFrame(columns, index=pd.RangeIndex(n, name="neuron"))
    return frame.astype({k: "float64" for k in frame.columns
                         if k.startswith("ablated_") or k in ("ipr", "residual")})


def prune_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The pruning curves of an :func:`interp.analyze` summary in long form: one row per
    order and count, columns ``order``, ``n_pruned``, the six accuracies, ``loss`` and
    ``test_loss``; JSON nulls are NaN."""
    pd = require("pandas", "prune_frame()")
    if not summary.get("prune"):
        raise ValueError("summary must hold pruning curves (analyze with prune=True), but "
                         "its prune section is empty.")
    parts = [pd.DataFrame(curve).assign(order=order)
             for order, curve in summary["prune"].items()]
    frame = pd.concat(parts, ignore_index=True)
    frame["n_pruned"] = frame["n_pruned"].astype("int64")
    return frame[["order", *(c for c in frame.columns if c != "order")]]


def progress_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The progress measures of an :func:`interp.analyze` summary (``progress=True``):
    one row per stored checkpoint (index ``step``), one float column per measure the run
    defines (``train_loss``, ``test_loss``, ``restricted_loss``, ``excluded_loss``,
    ``wl_gini``, ``sum_sq_weights``, ...; a measure that is None for the run is left out,
    and so is ``embedding_norms``, a spectrum per step). JSON nulls are NaN."""
    pd = require("pandas", "progress_frame()")
    section = summary.get("progress")
    if not section:
        raise ValueError("summary must hold the progress measures (analyze with "
                         "progress=True), but its progress section is empty.")
    steps = section["steps"]
    columns = {name: values for name, values in section.items()
               if name != "steps" and isinstance(values, list) and len(values) == len(steps)
               and any(v is not None for v in values)
               and all(v is None or isinstance(v, (int, float)) for v in values)}
    return pd.DataFrame(columns, index=pd.Index(steps, name="step"), dtype="float64")


def compare_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per run of an :func:`interp.compare` result (index ``label``): the config
    fields that differ, ``phase``, the accuracies, ``mean_ipr``, ``n_generalizing``,
    ``n_memorizing``, ``total_norm`` and (BatchNorm runs) ``gamma_ipr_spearman``."""
    pd = require("pandas", "compare_frame()")
    rows = []
    for r in result["runs"]:
        row = dict(r["differences"]) | {"phase": r["phase"]["phase"]}
        row |= {f"acc_{k}": v for k, v in r["accuracy"].items()}
        row |= {"mean_ipr": r["ipr"]["mean"], "n_generalizing": r["classes"]["n_generalizing"],
                "n_memorizing": r["classes"]["n_memorizing"],
                "total_norm": r["norms"]["total"],
                "gamma_ipr_spearman": r["batchnorm"]["spearman"] if r["batchnorm"] else None}
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index([r["label"] for r in result["runs"]],
                                             name="label"))
