"""Readable tables of the JSON results of ``interp analyze`` and ``interp compare``.

Imported by those commands when they run (rich's tables are not needed for ``--help``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table

from interp.cli.common import number_text


def analysis_tables(s: dict[str, Any]) -> list[Table]:
    """Readable tables of an analyze() summary: accuracy, then one table for each
    analysis the summary holds."""
    tables = [_accuracy_table(s)]
    sections: list[tuple[str, Callable[[dict[str, Any]], Table]]] = [
        ("phase", _phase_table), ("ipr", _ipr_table), ("layers", _layers_table),
        ("embedding", _embedding_table),
        ("prune", _prune_table), ("fit", _fit_table), ("progress", _progress_table)]
    for key, make in sections:
        if s.get(key):
            tables.append(make(s))
    return tables


def _accuracy_table(s: dict[str, Any]) -> Table:
    acc = Table(title=f"accuracy at step {s['step']} (p {s['p']}, width {s['width']})")
    acc.add_column("subset")
    acc.add_column("accuracy", justify="right")
    for k, v in s["accuracy"].items():
        acc.add_row(k, number_text(v))
    return acc


def _phase_table(s: dict[str, Any]) -> Table:
    """The phase's evidence in its own vocabulary (a clean run: classic grokking's steps,
    no corruption stages; the weight-norm ratio only where it tells forgetting apart),
    and Nanda et al.'s phase ends read from the loss curves."""
    ph = s["phase"]
    t = Table(title=f"phase: {ph['phase'].replace('_', ' ')}", show_header=False)
    classic = ph.get("classic")  # xi = 0
    keys = ["final_train", "final_test", "peak_test", "peak_test_step"]
    if not classic or ph["phase"] == "forgetting":
        keys.append("norm_ratio")
    for k in keys:
        t.add_row(k, number_text(ph[k], ".4g"))
    evidence = classic or ph["stages"]
    for k, v in list(evidence.items()) + list((ph.get("boundaries") or {}).items()):
        t.add_row(k, str(v))
    return t


def _ipr_table(s: dict[str, Any]) -> Table:
    c = s["classes"]
    layers = (s.get("layers") or {}).get("layers")
    which = f" (hidden layer {len(layers)} of {len(layers)}: the one read by the logits)" \
        if layers else ""
    t = Table(title=f"IPR and neuron classes{which}", show_header=False)
    t.add_row("mean IPR", f"{s['ipr']['mean']:.4f}")
    if c["threshold"] is None:
        t.add_row("classes", f"no split: {c['reason']}")
    else:
        t.add_row("threshold", f"{c['threshold']:.4f} ({c['method']})")
        t.add_row("generalizing", str(len(c["generalizing"])))
        t.add_row("memorizing", str(len(c["memorizing"])))
    t.add_row("convention", s["ipr"]["convention"].split(";")[0])
    t.add_row("basis", s["ipr"]["basis"].split(" (")[0])
    return t


def _layers_table(s: dict[str, Any]) -> Table:
    """Each hidden layer's neurons by the group of their strongest frequency, and the
    first layer's note (sum and difference not told apart there)."""
    layers = s["layers"]["layers"]
    t = Table(title="hidden layers: neurons by strongest frequency")
    groups = ("m", "n", "sum", "difference", "sum_or_difference", "other", "dead")
    for col in ("layer", "width", "mean IPR") + groups:
        t.add_column(col, justify="right")
    for layer in layers:
        rep = layer["representation"]
        t.add_row(str(layer["layer"]), str(layer["width"]), f"{layer['mean_ipr']:.3f}",
                  *(str(rep[g]) if g in rep else "-" for g in groups))
    t.caption = "; ".join(f"layer {layer['layer']}: {layer['note']}" for layer in layers
                          if layer.get("note")) or None
    return t


def _embedding_table(s: dict[str, Any]) -> Table:
    key = s["embedding"]["key"]
    t = Table(title="token embedding spectrum (share of its squared norm)",
              show_header=False)
    t.add_row(f"key frequencies ({key['fraction']:.0%})",
              ", ".join(str(f) for f in key["frequencies"]))
    t.add_row("their shares", ", ".join(f"{v:.3f}" for v in key["shares"]))
    t.add_row("count / total share", f"{key['n_key']} / {key['key_share']:.3f}")
    return t


def _progress_table(s: dict[str, Any]) -> Table:
    """Each progress measure at initialization (the first stored checkpoint) and at the
    analyzed step; Nanda et al.'s first, then interp's variants."""
    pr = s["progress"]
    first = pr["initial"]
    t = Table(title="progress measures (Nanda et al.; then interp's variants)")
    for col in ("measure", f"step {first['step']}", f"step {s['step']}"):
        t.add_column(col, justify="right")
    for k in ("train_loss", "test_loss", "restricted_loss", "restricted_loss_train",
              "excluded_loss", "wl_gini", "logit_restricted_loss", "logit_excluded_loss",
              "embedding_gini", "view_gini", "embedding_key_share"):
        if pr.get(k) is not None:
            t.add_row(k, *(number_text(v, ".4g") for v in (first[k], pr[k][-1])))
    key = pr["key_frequencies"]
    t.add_row("key_frequencies", "", "-" if key is None else ", ".join(map(str, key))
              or "none")
    for note in (pr["fourier"]["note"], pr["fourier"].get("key_note")):
        if note:
            t.add_row("note", "", note)
    return t


def _prune_table(s: dict[str, Any]) -> Table:
    n = s["width"]
    t = Table(title="pruning (accuracy after removing n neurons, no retraining)")
    for col in ("order", "n_pruned", "test", "train_corrupted", "train_clean"):
        t.add_column(col, justify="right")
    marks = sorted({0, n // 4, n // 2, 3 * n // 4, n}
                   | ({len(s["classes"]["memorizing"])}
                      if s.get("classes") and s["classes"]["threshold"] is not None
                      else set()))
    for order, curve in s["prune"].items():
        for k in marks:
            row = [curve[name][k] for name in ("test", "train_corrupted", "train_clean")]
            t.add_row(order, str(k), *(number_text(v, ".3f") for v in row))
    return t


def _fit_table(s: dict[str, Any]) -> Table:
    f = s["fit"]["summary"]
    t = Table(title="fit of the analytic periodic solution", show_header=False)
    t.add_row("consistent neurons", f"{f['n_consistent']} / {f['n_neurons']}")
    t.add_row("frequency coverage", f"{f['coverage']:.3f}")
    mar = f["median_abs_residual"]
    t.add_row("median |phase residual|", "-" if mar is None else f"{mar:.4f} rad")
    t.add_row("idealized network test acc", f"{s['fit']['idealized']['test']:.4f}")
    return t


def compare_table(result: dict[str, Any]) -> Table:
    """One column per run of a compare() result: config differences, phase, accuracies,
    IPR, neuron classes, norm and (BatchNorm runs) |gamma| against IPR."""
    table = Table(title="comparison")
    table.add_column("")
    for r in result["runs"]:
        table.add_column(r["label"], justify="right")

    def fmt(v: Any) -> str:
        return number_text(v, ".3f") if v is None or isinstance(v, float) else str(v)
    rows = {k: [r["differences"][k] for r in result["runs"]] for k in result["differences"]}
    rows["phase"] = [r["phase"] and r["phase"]["phase"].replace("_", " ") for r in result["runs"]]
    for k in ("train", "test", "train_clean", "train_corrupted"):
        rows[f"accuracy {k}"] = [r["accuracy"][k] for r in result["runs"]]
    rows["mean IPR"] = [r["ipr"]["mean"] for r in result["runs"]]
    rows["generalizing / memorizing"] = [
        "no split" if r["classes"]["threshold"] is None
        else f"{r['classes']['n_generalizing']} / {r['classes']['n_memorizing']}"
        for r in result["runs"]]
    rows["total norm"] = [r["norms"]["total"] for r in result["runs"]]
    if any(r["batchnorm"] for r in result["runs"]):
        rows["|gamma| vs IPR (Spearman)"] = [r["batchnorm"] and r["batchnorm"]["spearman"]
                                             for r in result["runs"]]
    for name, values in rows.items():
        table.add_row(name, *(fmt(v) for v in values))
    return table


def group_table(result: dict[str, Any]) -> Table:
    """One column per group of a compare_groups() result: its runs, phase agreement and
    the mean [95% interval] of its accuracies, mean IPR and total norm."""
    table = Table(title="groups: mean [95% interval]")
    table.add_column("")
    for g in result["groups"]:
        table.add_column(g["label"], justify="right")

    def spread(s: dict[str, Any]) -> str:
        if s["mean"] is None:
            return "-"
        bounds = "" if s["lo"] is None else f" [{s['lo']:.3f}, {s['hi']:.3f}]"
        return f"{s['mean']:.3f}{bounds}"
    groups = result["groups"]
    table.add_row("runs", *(str(g["n_runs"]) for g in groups))
    table.add_row("phase", *(f"{g['phase']['phase'].replace('_', ' ')} "
                             f"({g['phase']['agreement']})" for g in groups))
    for k in ("train", "test", "train_clean", "train_corrupted"):
        table.add_row(f"accuracy {k}", *(spread(g["accuracy"][k]) for g in groups))
    table.add_row("mean IPR", *(spread(g["ipr_mean"]) for g in groups))
    table.add_row("total norm", *(spread(g["norm_total"]) for g in groups))
    return table
