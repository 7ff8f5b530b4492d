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
        ("phase", _phase_table), ("ipr", _ipr_table), ("embedding", _embedding_table),
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
    ph = s["phase"]
    t = Table(title=f"phase: {ph['phase'].replace('_', ' ')}", show_header=False)
    st = ph["stages"]
    for k in ("final_train", "final_test", "peak_test", "peak_test_step", "norm_ratio"):
        t.add_row(k, number_text(ph[k], ".4g"))
    t.add_row("generalized_step", str(st["generalized_step"]))
    t.add_row("unlearned_step", str(st["unlearned_step"]))
    if ph.get("classic"):  # xi = 0
        for k in ("memorization_step", "generalization_step", "grokking_delay"):
            t.add_row(k, str(ph["classic"][k]))
    return t


def _ipr_table(s: dict[str, Any]) -> Table:
    c = s["classes"]
    t = Table(title="IPR and neuron classes", show_header=False)
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
    if pr["fourier"]["note"]:
        t.add_row("note", "", pr["fourier"]["note"])
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
