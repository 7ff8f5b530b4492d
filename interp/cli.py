"""The ``interp`` command line: a thin layer over the importable API."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from interp.analysis import analyze as analyze_run
from interp.compare import compare as compare_runs
from interp.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from interp.fit_plots import write_fit_figures
from interp.foreign import import_checkpoint, imported, is_foreign
from interp.layouts import parse_map
from interp.phase_diagram import write_phase_diagram
from interp.plots import write_compare_figures, write_figures
from interp.solution import analytic_network
from interp.sweep import SweepSpec, parse_grid, run_sweep
from interp.trajectory import Run, resume_file, train_to_file, write_trajectory

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Train MLPs on corrupted modular arithmetic, record dense HDF5 "
                       "trajectories, and analyze which neurons memorize and which generalize.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

#: Errors that are the user's input, reported as one sentence and exit code 2.
USER_ERRORS = (ValueError, KeyError, FileExistsError, FileNotFoundError, PermissionError,
               IsADirectoryError, NotADirectoryError, ImportError)


def friendly(fn: F) -> F:
    """Turn input errors into one sentence on stderr and a non-zero exit, no traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                msg = f"cannot use path {exc.filename!r}: {exc.strerror}."
            else:
                msg = exc.args[0] if exc.args else str(exc)
            err.print(f"error: {msg}", markup=False, highlight=False)
            raise typer.Exit(2) from None
    return wrapper  # type: ignore[return-value]


def default_run_name(cfg: RunConfig) -> str:
    d, m, t = cfg.data, cfg.model, cfg.train
    net = f"N{m.width}" if m.kind == "mlp" else f"T{m.d_model}h{m.n_heads}"
    parts = [d.op, f"p{d.p}", net, f"a{d.train_frac:g}", f"xi{d.corrupt:g}",
             f"wd{t.weight_decay:g}"]
    if m.dropout:
        parts.append(f"do{m.dropout:g}")
    if m.batchnorm:
        parts.append("bn")
    if t.batch_size:
        parts.append(f"bs{t.batch_size}")
    parts.append(f"s{t.seed}")
    return "_".join(parts) + ".h5"


def model_config(kind: str, *, width: int, act: str | None, dropout: float, batchnorm: bool,
                 init_seed: int, d_model: int, n_heads: int, d_mlp: int) -> ModelConfig:
    """The ModelConfig of ``interp train``'s options (Transformer options only for it)."""
    if kind == "transformer":
        return ModelConfig.transformer(act=act or "relu", dropout=dropout, batchnorm=batchnorm,
                                       init_seed=init_seed, d_model=d_model, n_heads=n_heads,
                                       d_mlp=d_mlp)
    if kind != "mlp":
        raise ValueError(f"--model must be mlp or transformer, got {kind!r}.")
    return ModelConfig(width=width, act=act or "x^2", dropout=dropout, batchnorm=batchnorm,
                       init_seed=init_seed)


class ProgressBar:
    """Trainer callback: a rich progress bar with live loss and accuracies."""

    def __init__(self, total: int, every: int) -> None:
        self.total, self.every = total, max(1, every)
        self.progress = Progress(TextColumn("[bold]train"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                 console=err, transient=False)
        self.task = self.progress.add_task("train", total=total, info="")

    def on_start(self, trainer: Any) -> None:
        self.progress.start()
        self.progress.update(self.task, completed=trainer.step)

    def on_step(self, trainer: Any, step: int, values: Any) -> None:
        if step % self.every and step != self.total:
            return
        v = dict(zip(trainer.metric_names, values.tolist()))
        info = (f"loss {v['loss']:.3g}  train {v['accuracy/train']:.3f}  "
                f"test {v['accuracy/test']:.3f}")
        self.progress.update(self.task, completed=step, info=info)

    def on_end(self, trainer: Any) -> None:
        self.progress.stop()


def summary_table(run: Run) -> Table:
    m = run.metrics()
    table = Table(title=f"{run.path}  (step {int(m['step'][-1]) if len(m['step']) else '-'})")
    table.add_column("metric")
    table.add_column("final", justify="right")
    for k in sorted(m):
        if k != "step" and len(m[k]):
            table.add_row(k, f"{float(m[k][-1]):.4f}")
    return table


@app.command()
@friendly
def train(
    p: int = typer.Option(97, help="Modulus (prime where the operation needs it)."),
    op: str = typer.Option("add", help="Operation: add, sub, mul, div, sq_sum (m^2+n^2)."),
    train_frac: float = typer.Option(0.5, help="Train fraction alpha of all pairs."),
    corrupt: float = typer.Option(0.35, help="Corrupted fraction xi of the training labels."),
    corrupt_mode: str = typer.Option("different",
                                     help="'different': every corrupted label is wrong; "
                                          "'uniform': drawn over all p labels."),
    model: str = typer.Option("mlp", help="mlp (the paper's MLP) or transformer (its "
                                          "one-layer Transformer)."),
    width: int = typer.Option(500, help="MLP hidden width N."),
    d_model: int = typer.Option(128, help="Transformer embedding dimension."),
    n_heads: int = typer.Option(4, help="Transformer attention heads."),
    d_mlp: int = typer.Option(0, help="Transformer MLP width (0: 4 x d_model)."),
    act: str | None = typer.Option(None, help="Activation: x^K, relu, gelu (default x^2 for "
                                              "the MLP, relu for the Transformer)."),
    wd: float = typer.Option(0.0, help="Weight decay (on all parameters)."),
    dropout: float = typer.Option(0.0, help="Dropout on the pre-activation."),
    batchnorm: bool = typer.Option(False, help="BatchNorm after the activation."),
    batch_size: int | None = typer.Option(None, help="Minibatch size (default: full batch)."),
    lr: float = typer.Option(1e-2, help="Learning rate."),
    optimizer: str = typer.Option("adamw", help="adamw, adam or sgd."),
    loss: str = typer.Option("mse", help="mse (against one-hot targets) or ce."),
    steps: int = typer.Option(2000, help="Optimizer steps."),
    seed: int = typer.Option(0, help="Seed for the split, corruption, init and batches."),
    save_every: int = typer.Option(10, help="Keep a checkpoint every k steps."),
    save_log: int = typer.Option(0, help="Instead keep this many log-spaced checkpoints."),
    precision: str = typer.Option("fp32", help="fp32, or bf16 (bfloat16 matmuls, float32 "
                                               "weights and optimizer state)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    out_path: Path | None = typer.Option(None, "--out",
                                            help="Run file (default checkpoints/<name>.h5)."),
    resume: Path | None = typer.Option(None, help="Continue this interrupted run file "
                                                     "(its stored config is used)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Train one run and record its dense trajectory.

    The defaults are the paper's main setting (p 97, width 500, alpha 0.5, xi 0.35,
    AdamW lr 1e-2, MSE, full batch, 2000 steps). --model transformer trains its
    one-layer Transformer (d_model 128, 4 heads, ReLU MLP of width 512, no LayerNorm,
    no biases).

    Examples:

      interp train --steps 1000                      # coexistence (wd 0)

      interp train --model transformer --loss ce --wd 0.5 --steps 1000 --corrupt 0

      interp train --wd 15 --steps 500 --out checkpoints/wd15.h5

      interp train --resume checkpoints/wd15.h5      # after an interruption
    """
    start = time.perf_counter()
    if resume is not None:
        with Run(resume) as run:
            cfg = run.config
        bar = [] if quiet else [ProgressBar(cfg.train.steps, max(1, cfg.train.steps // 100))]
        path = resume_file(resume, device=device, callbacks=bar)
    else:
        cfg = RunConfig(
            DataConfig(p=p, op=op, train_frac=train_frac, corrupt=corrupt,
                       corrupt_mode=corrupt_mode, split_seed=seed, corrupt_seed=seed),
            model_config(model, width=width, act=act, dropout=dropout, batchnorm=batchnorm,
                         init_seed=seed, d_model=d_model, n_heads=n_heads, d_mlp=d_mlp),
            TrainConfig(steps=steps, lr=lr, optimizer=optimizer, weight_decay=wd, loss=loss,
                        batch_size=batch_size, seed=seed, save_every=save_every,
                        save_log=save_log, precision=precision),
        )
        path = out_path or Path("checkpoints") / default_run_name(cfg)
        if path.is_dir():
            raise IsADirectoryError(f"--out must be a file path, got the folder {str(path)!r}.")
        bar = [] if quiet else [ProgressBar(steps, max(1, steps // 100))]
        if precision == "bf16" and device == "cpu" and not cpu_has_bf16():
            err.print("note: this CPU has no bfloat16 matrix instructions (avx512_bf16 or "
                      "amx_bf16), so bf16 runs slower than fp32 here; see "
                      "docs/performance.md.")
        train_to_file(cfg, path, device=device, overwrite=overwrite, callbacks=bar)
    with Run(path) as run:
        out.print(summary_table(run))
    out.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) "
              f"in {time.perf_counter() - start:.1f} s")


def cpu_has_bf16() -> bool:
    """Whether the CPU advertises bfloat16 matrix instructions (Linux; True elsewhere,
    where we cannot tell)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


@app.command()
@friendly
def inspect(
    run_path: Path = typer.Argument(..., metavar="RUN", help="Trajectory file (.h5)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead."),
) -> None:
    """Show a run file's config, stored steps and checkpoints, final metrics and size.

    Example:

      interp inspect checkpoints/run.h5 --json
    """
    with Run(run_path) as run:
        m = run.metrics()
        info = {
            "path": str(run_path),
            "format": f"{run.attrs['format']} v{run.attrs['format_version']}",
            "interp_version": run.attrs["interp_version"],
            "created": run.attrs["created"],
            "size_bytes": run_path.stat().st_size,
            "complete": run.complete,
            "config": run.config.to_dict(),
            "checkpoints": {"count": len(run.steps),
                            "first": int(run.steps[0]) if len(run.steps) else None,
                            "last": int(run.steps[-1]) if len(run.steps) else None},
            "metric_steps": len(m["step"]),
            "arrays": {k: list(run.file["checkpoints"][k].shape[1:]) for k in run.names},
            "final_metrics": {k: float(v[-1]) for k, v in m.items()
                              if k != "step" and len(v)},
        }
        if as_json:
            sys.stdout.write(json.dumps(info, indent=2) + "\n")
            return
        cfg = Table(title="config", show_header=False)
        for section, fields in info["config"].items():
            for k, v in fields.items():
                cfg.add_row(f"{section}.{k}", str(v))
        out.print(cfg)
        ck = info["checkpoints"]
        out.print(f"{info['format']}, written by interp {info['interp_version']} "
                  f"at {info['created']}; {info['size_bytes'] / 2**20:.1f} MiB")
        out.print(f"checkpoints: {ck['count']} (steps {ck['first']}..{ck['last']}); "
                  f"metrics for {info['metric_steps']} steps; "
                  f"{'complete' if run.complete else 'INCOMPLETE (resume with --resume)'}")
        out.print(summary_table(run))


def write_json_atomic(data: Any, path: Path) -> None:
    """Write JSON to ``path`` via a temporary file in the same folder and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)


def save_json(data: Any, default: Path, extra: Path | None) -> tuple[list[Path], bool]:
    """Write ``data`` to ``default`` and to ``extra`` (``-``: stdout, later, by the caller).

    Returns the paths written and whether the caller must print the JSON to stdout.
    """
    write_json_atomic(data, default)
    to_stdout = extra is not None and str(extra) == "-"
    if extra is not None and not to_stdout:
        write_json_atomic(data, extra)
        return [default, extra], False
    return [default], to_stdout


def _analysis_tables(s: dict[str, Any]) -> list[Table]:
    """Readable tables of an analyze() summary."""
    tables = []
    acc = Table(title=f"accuracy at step {s['step']} (p {s['p']}, width {s['width']})")
    acc.add_column("subset")
    acc.add_column("accuracy", justify="right")
    for k, v in s["accuracy"].items():
        acc.add_row(k, "-" if v is None else f"{v:.4f}")
    tables.append(acc)
    if s.get("phase"):
        ph = s["phase"]
        t = Table(title=f"phase: {ph['phase'].replace('_', ' ')}", show_header=False)
        st = ph["stages"]
        for k in ("final_train", "final_test", "peak_test", "peak_test_step", "norm_ratio"):
            t.add_row(k, f"{ph[k]:.4g}" if ph[k] is not None else "-")
        t.add_row("generalized_step", str(st["generalized_step"]))
        t.add_row("unlearned_step", str(st["unlearned_step"]))
        tables.append(t)
    if s.get("ipr"):
        c = s["classes"]
        t = Table(title="IPR and neuron classes", show_header=False)
        t.add_row("mean IPR", f"{s['ipr']['mean']:.4f}")
        t.add_row("threshold", f"{c['threshold']:.4f} ({c['method']})")
        t.add_row("generalizing", str(len(c["generalizing"])))
        t.add_row("memorizing", str(len(c["memorizing"])))
        t.add_row("convention", s["ipr"]["convention"].split(";")[0])
        tables.append(t)
    if s.get("embedding"):
        key = s["embedding"]["key"]
        t = Table(title="token embedding spectrum (share of its squared norm)",
                  show_header=False)
        t.add_row(f"key frequencies ({key['fraction']:.0%})",
                  ", ".join(str(f) for f in key["frequencies"]))
        t.add_row("their shares", ", ".join(f"{v:.3f}" for v in key["shares"]))
        t.add_row("count / total share", f"{key['n_key']} / {key['key_share']:.3f}")
        tables.append(t)
    if s.get("prune"):
        n = s["width"]
        t = Table(title="pruning (accuracy after removing n neurons, no retraining)")
        for col in ("order", "n_pruned", "test", "train_corrupted", "train_clean"):
            t.add_column(col, justify="right")
        marks = sorted({0, n // 4, n // 2, 3 * n // 4, n}
                       | ({len(s["classes"]["memorizing"])} if s.get("classes") else set()))
        for order, curve in s["prune"].items():
            for k in marks:
                row = [curve[name][k] for name in ("test", "train_corrupted", "train_clean")]
                t.add_row(order, str(k), *("-" if v is None else f"{v:.3f}" for v in row))
        tables.append(t)
    if s.get("fit"):
        f = s["fit"]["summary"]
        t = Table(title="fit of the analytic periodic solution", show_header=False)
        t.add_row("consistent neurons", f"{f['n_consistent']} / {f['n_neurons']}")
        t.add_row("frequency coverage", f"{f['coverage']:.3f}")
        mar = f["median_abs_residual"]
        t.add_row("median |phase residual|", "-" if mar is None else f"{mar:.4f} rad")
        t.add_row("idealized network test acc", f"{s['fit']['idealized']['test']:.4f}")
        tables.append(t)
    return tables


#: Options shared by ``interp import`` and ``interp analyze FOREIGN``.
LAYOUT_HELP = ("How to read a foreign checkpoint: auto, mlp (our names U, V, W), generic-mlp "
               "(two-layer MLP; weights by --map or from shapes given --p) or transformer "
               "(one layer, TransformerLens or our names).")
MAP_HELP = "name=key: which foreign key holds our array (repeatable), e.g. W=fc2.weight."


def foreign_options(layout: str | None, p: int | None, op: str, mapping: list[str] | None,
                    act: str | None, train_frac: float, corrupt: float, split_seed: int,
                    unsafe_pickle: bool, loss: str = "mse") -> dict[str, Any]:
    """Keyword arguments of :func:`interp.foreign.import_checkpoint` from CLI options."""
    return {"layout": layout or "auto", "p": p, "op": op, "mapping": parse_map(mapping),
            "act": act, "loss": loss, "train_frac": train_frac, "corrupt": corrupt,
            "seed": split_seed, "allow_pickle": unsafe_pickle}


@app.command("import")
@friendly
def import_(
    foreign: Path = typer.Argument(..., metavar="FOREIGN", help="Checkpoint or trajectory: "
                                   ".pt/.pth/.bin/.ckpt (PyTorch), .safetensors or .npz."),
    out_path: Path = typer.Option(..., "--out", help="Trajectory file to write (.h5)."),
    layout: str = typer.Option("auto", help=LAYOUT_HELP),
    p: int | None = typer.Option(None, help="Modulus (inferred where the layout allows)."),
    op: str = typer.Option("add", help="Operation the network computes."),
    mapping: list[str] | None = typer.Option(None, "--map", help=MAP_HELP),
    act: str | None = typer.Option(None, help="Activation (default x^2 MLP, relu Transformer)."),
    loss: str = typer.Option("mse", help="Loss recorded in the metrics: mse or ce."),
    train_frac: float = typer.Option(0.5, help="Train fraction of our split for the metrics."),
    corrupt: float = typer.Option(0.0, help="Corrupted fraction of our split's labels."),
    split_seed: int = typer.Option(0, help="Seed of our split and corruption."),
    unsafe_pickle: bool = typer.Option(False, "--unsafe-pickle", help="Let torch.load unpickle "
                                       "arbitrary objects: ONLY for files you trust (it can "
                                       "run code)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
) -> None:
    """Convert a checkpoint written by other code into a trajectory file.

    The foreign file is only read. Its arrays are matched to our names by the layout;
    the metrics are measured on our split of the data (its own split is unknown), so
    accuracy/all_true is the split-free number.

    Examples:

      interp import model.pt --p 97 --out run.h5

      interp import tl_grokking.pt --layout transformer --out tl.h5

      interp import mlp.safetensors --layout generic-mlp --p 97 --map UV=fc1.weight
      --map W=fc2.weight --out mlp.h5
    """
    opts = foreign_options(layout, p, op, mapping, act, train_frac, corrupt, split_seed,
                           unsafe_pickle, loss)
    path = import_checkpoint(foreign, out_path, overwrite=overwrite, **opts)
    with Run(path) as run:
        out.print(summary_table(run))
        out.print(f"wrote {path}: {len(run.steps)} checkpoint(s), model "
                  f"{run.config.model.kind}, p {run.config.data.p}")


@app.command()
@friendly
def analyze(
    run_path: Path = typer.Argument(..., metavar="RUN", help="Trajectory file (.h5), or a "
                                    "foreign checkpoint (see interp import)."),
    step: int | None = typer.Option(None, help="Stored checkpoint step (default: last)."),
    ipr: bool = typer.Option(False, "--ipr", help="IPR, neuron classes, generalizing_since."),
    prune: bool = typer.Option(False, "--prune", help="Pruning curves (3 orders)."),
    ablate: bool = typer.Option(False, "--ablate", help="Single-neuron ablation."),
    fit: bool = typer.Option(False, "--fit", help="Fit of the analytic periodic solution."),
    phase: bool = typer.Option(False, "--phase", help="Phase of the run and its two stages."),
    out_dir: Path | None = typer.Option(None, "--out",
                                        help="Output folder (default RUN-analysis/ beside it)."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the JSON summary "
                                                               "here ('-' for stdout)."),
    plots: Path | None = typer.Option(None, help="Figure folder (default: the output folder)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Write no figures."),
    threshold: float | None = typer.Option(None, help="Fixed IPR threshold (default: Otsu)."),
    seed: int = typer.Option(0, help="Seed of the random pruning orders."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    layout: str | None = typer.Option(None, help="Foreign checkpoints: " + LAYOUT_HELP),
    p: int | None = typer.Option(None, help="Foreign checkpoints: modulus."),
    op: str = typer.Option("add", help="Foreign checkpoints: operation."),
    mapping: list[str] | None = typer.Option(None, "--map", help="Foreign checkpoints: "
                                             + MAP_HELP),
    act: str | None = typer.Option(None, help="Foreign checkpoints: activation."),
    train_frac: float = typer.Option(0.5, help="Foreign checkpoints: train fraction."),
    corrupt: float = typer.Option(0.0, help="Foreign checkpoints: corrupted fraction."),
    split_seed: int = typer.Option(0, help="Foreign checkpoints: split seed."),
    unsafe_pickle: bool = typer.Option(False, "--unsafe-pickle", help="Foreign checkpoints: "
                                       "unpickle arbitrary objects (trusted files only)."),
) -> None:
    """Analyze a run: accuracies, IPR, neuron classes, pruning, ablation, fit, phase.

    With no analysis flag every analysis that applies runs (the fit needs an MLP with
    op add or sub). The run file is opened read-only. Writes summary.json and PNG
    figures to the output folder, each file atomically. A Transformer run adds the
    spectrum of its token embedding. A foreign checkpoint (a .pt/.pth/.bin/.ckpt,
    .safetensors or .npz file, or any file with --layout) is converted to a temporary
    trajectory first, as by interp import; the foreign file is only read.

    Examples:

      interp analyze checkpoints/demo.h5

      interp analyze run.h5 --ipr --prune --json -

      interp analyze run.h5 --step 200 --fit --out results/step200

      interp analyze tl_grokking.pt --layout transformer --p 113
    """
    folder = out_dir or run_path.with_name(run_path.stem + "-analysis")
    flags = {"ipr": ipr, "prune": prune, "ablate": ablate, "fit": fit, "phase": phase}
    args = (step, flags, folder, json_path, plots, no_plots, threshold, seed, device)
    if layout is None and not is_foreign(run_path):
        _analyze_file(run_path, *args)
        return
    opts = foreign_options(layout, p, op, mapping, act, train_frac, corrupt, split_seed,
                           unsafe_pickle)
    with imported(run_path, **opts) as tmp:
        _analyze_file(tmp, *args)


def _analyze_file(run_path: Path, step: int | None, flags: dict[str, bool], folder: Path,
                  json_path: Path | None, plots: Path | None, no_plots: bool,
                  threshold: float | None, seed: int, device: str) -> None:
    with Run(run_path) as run:
        mlp, op = run.config.model.kind == "mlp", run.config.data.op
    if not any(flags.values()):
        flags = {"ipr": True, "prune": True, "ablate": True, "phase": True,
                 "fit": mlp and op in ("add", "sub")}
    summary = analyze_run(run_path, step, threshold=threshold, seed=seed, device=device,
                          **flags)
    written, to_stdout = save_json(summary, folder / "summary.json", json_path)
    if not no_plots:
        fig_dir = plots or folder
        with Run(run_path) as run:
            written += write_figures(summary, run, fig_dir)
            if summary.get("fit"):
                written += write_fit_figures(summary["fit"], run.weights(summary["step"]),
                                             fig_dir)
    if to_stdout:  # stdout carries the JSON alone
        sys.stdout.write(json.dumps(summary, allow_nan=False) + "\n")
        return
    for table in _analysis_tables(summary):
        out.print(table)
    out.print("wrote " + ", ".join(str(p) for p in written))


@app.command()
@friendly
def compare(
    runs: list[Path] = typer.Argument(..., metavar="RUN...", help="Trajectory files."),
    step: int | None = typer.Option(None, help="Stored step to compare (default: last)."),
    out_dir: Path = typer.Option(Path("compare"), "--out", help="Output folder."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the JSON "
                                                               "result here ('-': stdout)."),
    prune: bool = typer.Option(True, help="Include pruning curves (slower)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Write no figures."),
) -> None:
    """Compare runs side by side: config differences, accuracies, phase, IPR, norms.

    Figures: IPR histograms, mean IPR over training, accuracy and pruning curves, and
    |gamma| against IPR for BatchNorm runs (with the Spearman rank correlation).

    Example:

      interp compare checkpoints/wd0.h5 checkpoints/wd5.h5 checkpoints/wd15.h5 --out cmp
    """
    result = compare_runs(runs, step, prune=prune)
    written, to_stdout = save_json(result, out_dir / "compare.json", json_path)
    if not no_plots:
        written += write_compare_figures(result, out_dir)
    if to_stdout:
        sys.stdout.write(json.dumps(result, allow_nan=False) + "\n")
        return
    table = Table(title="comparison")
    table.add_column("")
    for r in result["runs"]:
        table.add_column(r["label"], justify="right")

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
    rows = {k: [r["differences"][k] for r in result["runs"]] for k in result["differences"]}
    rows["phase"] = [r["phase"]["phase"].replace("_", " ") for r in result["runs"]]
    for k in ("train", "test", "train_clean", "train_corrupted"):
        rows[f"accuracy {k}"] = [r["accuracy"][k] for r in result["runs"]]
    rows["mean IPR"] = [r["ipr"]["mean"] for r in result["runs"]]
    rows["generalizing / memorizing"] = [
        f"{r['classes']['n_generalizing']} / {r['classes']['n_memorizing']}"
        for r in result["runs"]]
    rows["total norm"] = [r["norms"]["total"] for r in result["runs"]]
    if any(r["batchnorm"] for r in result["runs"]):
        rows["|gamma| vs IPR (Spearman)"] = [r["batchnorm"] and r["batchnorm"]["spearman"]
                                             for r in result["runs"]]
    for name, values in rows.items():
        table.add_row(name, *(fmt(v) for v in values))
    out.print(table)
    out.print("wrote " + ", ".join(str(p) for p in written))


@app.command()
@friendly
def solution(
    p: int = typer.Option(97, help="Modulus."),
    width: int = typer.Option(500, help="Number of neurons N."),
    op: str = typer.Option("add", help="add or sub (the operations with a phase relation)."),
    seed: int = typer.Option(0, help="Seed of the random phases."),
    out_path: Path = typer.Option(..., "--out", help="Trajectory file to write."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
) -> None:
    """Write Gromov's analytic periodic network as a one-checkpoint trajectory file.

    Every analysis then runs on it. Example:

      interp solution --p 97 --width 500 --out checkpoints/analytic.h5
    """
    cfg = RunConfig(DataConfig(p=p, op=op, corrupt=0.0), ModelConfig(width=width),
                    TrainConfig(steps=0))
    weights = analytic_network(p, width, seed=seed, op=op)
    write_trajectory(cfg, out_path, [(0, weights)], overwrite=overwrite,
                     source=f"analytic solution (interp.solution, seed {seed})")
    with Run(out_path) as run:
        out.print(summary_table(run))
    out.print(f"wrote {out_path}")


@app.command()
@friendly
def sweep(
    out_dir: Path = typer.Option(..., "--out", help="Sweep folder (cells, summary, spec)."),
    config: Path | None = typer.Option(None, help="Sweep TOML file (see docs/sweeps.md); "
                                                  "replaces the grid options below."),
    xi: str = typer.Option("0.1:0.9:17", help="Corruption grid: a,b,c or START:STOP:NUM."),
    alpha: str = typer.Option("0.1:0.9:17", help="Train-fraction grid."),
    regularizer: str = typer.Option("weight_decay",
                                    help="weight_decay, dropout or batch_size (BatchNorm)."),
    values: str | None = typer.Option(None, help="Regularizer values (default: the paper's)."),
    seeds: str = typer.Option("0", help="Seeds (init and batches), e.g. 0,1,2."),
    p: int = typer.Option(97, help="Base run: modulus."),
    width: int = typer.Option(500, help="Base run: hidden width."),
    steps: int = typer.Option(2000, help="Base run: optimizer steps."),
    lr: float = typer.Option(1e-2, help="Base run: learning rate."),
    save_every: int = typer.Option(100, help="Base run: checkpoint every k steps."),
    workers: int | None = typer.Option(None, help="Local worker processes "
                                              "(default: one per core; 0: in this process)."),
    batch: int = typer.Option(8, help="Train up to this many compatible cells at once as one "
                                      "batched stack (1: every cell alone)."),
    scheduler: str | None = typer.Option(None, help="Dask scheduler address, e.g. "
                                                    "tcp://host:8786 (needs interp[distributed])."),
) -> None:
    """Train a grid of runs (xi x alpha x regularizer values x seeds), resumably.

    Re-running the same command skips finished cells and resumes or redoes unfinished
    ones. A summary table (summary.csv, summary.json) is kept up to date.

    Examples:

      interp sweep --config analyses/sweep_example.toml --out sweeps/wd

      interp sweep --p 23 --width 64 --steps 300 --xi 0.1,0.3 --alpha 0.5,0.7
      --regularizer weight_decay --values 0,5 --out sweeps/tiny
    """
    if config is not None:
        spec = SweepSpec.from_toml(config)
    else:
        base = RunConfig().replace(data={"p": p}, model={"width": width},
                                   train={"steps": steps, "lr": lr, "save_every": save_every})
        spec = SweepSpec(base=base, xi=parse_grid(xi), alpha=parse_grid(alpha),
                         regularizer=regularizer,
                         values=None if values is None else parse_grid(values),
                         seeds=tuple(int(s) for s in parse_grid(seeds)))
    with Progress(TextColumn("[bold]sweep"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} {task.fields[info]}"),
                  TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("sweep", total=spec.n_cells, info="")

        def progress(event: Any) -> None:
            bar.update(task, completed=event.done, info=f"{event.cell_id}: {event.action}")

        report = run_sweep(spec, out_dir, workers=workers, scheduler=scheduler,
                           progress=progress, batch=batch)
    out.print(f"{report.n_cells} cells: {report.n_trained} trained, {report.n_resumed} "
              f"resumed, {report.n_skipped} already complete, {len(report.failed)} failed; "
              f"summary in {out_dir / 'summary.csv'}")
    if report.failed:
        err.print("failed cells: " + ", ".join(report.failed) + f" (see {out_dir}/cells/*.error)",
                  markup=False)
        raise typer.Exit(1)


@app.command("phase-diagram")
@friendly
def phase_diagram(
    sweep_dir: Path = typer.Argument(..., metavar="SWEEP_DIR", help="Folder of interp sweep."),
    out_dir: Path | None = typer.Option(None, "--out",
                                        help="Figure folder (default SWEEP_DIR/figures)."),
) -> None:
    """Draw the paper-style phase diagram and accuracy heatmaps of a sweep.

    Example:

      interp phase-diagram sweeps/wd --out figures/wd
    """
    for path in write_phase_diagram(sweep_dir, out_dir):
        out.print(f"wrote {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
