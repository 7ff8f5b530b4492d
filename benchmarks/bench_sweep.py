"""The phase-diagram job: ``interp sweep`` against a plain loop over the same cells.

Cells of the paper's size (p 97, N 500, full batch, MSE, AdamW, lr 1e-2): corrupt 0.2/0.4
x train_frac 0.3/0.7 x wd 0/5 (train_frac spread: training sets of 2823 and 6586 pairs), ``--steps``
updates each, float32. Three sides, their repetitions interleaved, each in a fresh
temporary folder:

* **plain loop**: the cells one after another in this process with torch's default
  threads, written as such a script commonly is: one-hot input through ``nn.Linear``
  layers without bias, ``nn.MSELoss``, torch's ``AdamW``, the final train and test
  accuracy only. It starts from interp's initial weights, so the phases can be compared.
* **interp sweep**: :func:`interp.run_sweep` with its defaults (one worker process per
  core with one torch thread each, metrics every 10 steps, checkpoints at 0, steps/2 and
  the end), spawn, imports, files and summary included: what ``interp sweep`` runs.
* **one worker, all threads**: the same sweep with ``workers=1, threads=cores``, to
  show what the placement of threads is worth.

Figures: cell-steps per second of the sweep over the plain loop's (median of
per-repetition ratios); the job's share of the machine's float32 matmul rate (the
useful FLOPs of the job, 6 n_train N p per cell-step, per second of the sweep, over
the rate of a step's three products in one process with all threads, timed here);
one worker per core over one worker with all threads. Each cell's final phase (from its
final train and test accuracy) must agree between the loop and the sweep; the output
says so.

    python -m benchmarks.bench_sweep [--steps 200] [--reps 3] [--device cpu]
    python -m benchmarks.bench_sweep --quick      # tiny cells: checks that it runs
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.bench_train import OneHotMLP
from benchmarks.timing import Figure, interleaved, median_ratio, show
from interp.analysis.phase import classify_phase
from interp.config import DataConfig, RunConfig
from interp.data import make_dataset
from interp.models.mlp import MLP
from interp.sweeps.run import run_sweep
from interp.sweeps.spec import SweepSpec, cells
from interp.sweeps.summary import read_summary
from interp.sweeps.workers import available_cores


def sweep_spec(p: int, width: int, steps: int) -> SweepSpec:
    base = RunConfig().replace(data={"p": p}, model={"width": width},
                               train={"steps": steps, "save_every": max(1, steps // 2)})
    return SweepSpec(base=base, corrupt=(0.2, 0.4), train_frac=(0.3, 0.7), values=(0.0, 5.0))


def plain_cell(cfg: RunConfig, device: str) -> tuple[float, float]:
    """Train one cell the plain way; its final (train, test) accuracy."""
    ds, p = make_dataset(cfg.data), cfg.data.p
    model = OneHotMLP(p, cfg.model.width).to(device)
    init = MLP(p, cfg.model).arrays()
    with torch.no_grad():
        model.first.weight.copy_(torch.cat([init["U"], init["V"]], 1))
        model.out.weight.copy_(init["W"])
    t = cfg.train
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, betas=t.betas, eps=t.eps,
                            weight_decay=t.weight_decay)
    loss_fn = nn.MSELoss()

    def tensors(idx: np.ndarray, labels: np.ndarray):
        pairs = torch.as_tensor(ds.pairs[idx], device=device)
        return pairs[:, 0], pairs[:, 1], torch.as_tensor(labels, device=device)
    m, n, y = tensors(ds.train_idx, ds.train_labels)
    mt, nt, yt = tensors(ds.test_idx, ds.true_labels[ds.test_idx])
    target = nn.functional.one_hot(y, p).float()
    for _ in range(t.steps):
        opt.zero_grad()
        loss = loss_fn(model(m, n), target)
        loss.backward()
        opt.step()
    with torch.no_grad():
        train = (model(m, n).argmax(-1) == y).float().mean().item()
        test = (model(mt, nt).argmax(-1) == yt).float().mean().item()
    return train, test


def final_phase(train: float, test: float, corrupt: float) -> str:
    one = np.ones(1)
    return classify_phase(one, one * train, one * test, one, corrupt)["phase"]


def products_rate(n_train: int, width: int, p: int, device: str, reps: int = 5) -> float:
    """GFLOP/s of a step's three products (forward, weight and input gradients) in this
    process, with all its threads."""
    h = torch.randn(n_train, width, device=device)
    W = torch.randn(p, width, device=device)
    g = torch.randn(n_train, p, device=device)

    def run() -> None:
        h @ W.t()
        h.t() @ g
        g @ W
        if device != "cpu":
            torch.cuda.synchronize()
    t = interleaved({"mm": run}, reps, inner=5)["mm"]
    return 6 * n_train * width * p / statistics.median(t) / 1e9


def figures(p: int = 97, width: int = 500, steps: int = 200, reps: int = 3,
            device: str = "cpu", placement: bool = True) -> list[Figure]:
    """The figures above; ``placement=False`` leaves out the one-worker side."""
    spec = sweep_spec(p, width, steps)
    cfgs = cells(spec)
    cores = available_cores()
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    runs = iter(range(10**6))
    plain: dict[str, str] = {}

    def loop() -> None:
        for cid, cfg in cfgs:
            plain[cid] = final_phase(*plain_cell(cfg, device), cfg.data.corrupt)

    def sweep(**kw: object):
        return lambda: run_sweep(spec, folder / f"s{next(runs)}", device=device, **kw)
    sides = {"loop": loop, "sweep": sweep()}
    if placement and device == "cpu" and cores > 1:
        sides["one"] = sweep(workers=1, threads=cores)
    t = interleaved(sides, reps, warmup=0)
    cell_steps = len(cfgs) * steps
    rate = {k: cell_steps / statistics.median(v) for k, v in t.items()}
    useful = sum(6 * len(make_dataset(c.data).train_idx) * width * p * steps for _, c in cfgs)
    machine = products_rate(len(make_dataset(DataConfig(p=p)).train_idx), width, p, device)
    share = useful / statistics.median(t["sweep"]) / 1e9 / machine
    # phases: the last sweep's summary against the plain loop's last repetition
    last = max(folder.iterdir(), key=lambda d: int(d.name[1:]))
    rows = {r["cell_id"]: r for r in read_summary(last)}
    shutil.rmtree(folder, ignore_errors=True)
    ours = {cid: final_phase(r["acc_train"], r["acc_test"], r["corrupt"])
            for cid, r in rows.items()}
    agree = sum(ours[cid] == plain[cid] for cid in ours)
    threads = torch.get_num_threads()
    print(f"  sweep of {len(cfgs)} cells (p {p}, N {width}, {steps} steps, {device}): plain "
          f"loop ({threads} threads) {rate['loop']:.1f} cell-steps/s, interp sweep "
          f"{rate['sweep']:.1f}" + (f", one worker x {cores} threads {rate['one']:.1f}"
                                    if "one" in rate else "")
          + f"; matmul rate {machine:.0f} GFLOP/s; phases agree in {agree} of {len(ours)} "
          f"cells" + ("" if agree == len(ours) else f": {plain} vs {ours}"), flush=True)
    out = [
        Figure("sweep throughput vs plain loop (fp32)", median_ratio(t["loop"], t["sweep"]),
               3, True, "x", f"plain loop over the same {len(cfgs)} cells, "
               f"{rate['loop']:.1f} cell-steps/s (sweep {rate['sweep']:.1f}); phases agree "
               f"in {agree}/{len(ours)}"),
        Figure("sweep: share of the fp32 matmul rate", 100 * share, 75, True, "%",
               f"{machine:.0f} GFLOP/s on a step's 3 products, one process, {threads} "
               "threads"),
    ]
    if "one" in t:
        out.append(Figure(f"sweep: {cores} workers x 1 thread vs 1 x {cores}",
                          median_ratio(t["one"], t["sweep"]), 1, True, "x",
                          f"one worker with {cores} threads, {rate['one']:.1f} cell-steps/s"))
    return out


def main(argv: list[str] | None = None) -> list[Figure]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=int, default=97)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--steps", type=int, default=200, help="updates per cell")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="tiny cells: checks that it runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.p, args.width, args.steps, args.reps = 23, 32, 20, 1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} "
          f"CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    return show(lambda: figures(args.p, args.width, args.steps, args.reps, args.device))


if __name__ == "__main__":
    main()
