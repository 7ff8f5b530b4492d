"""Time the analysis kernels against the obvious slow ways of computing the same thing.

(a) Pruning curves at p=97, N=500: ``interp.prune_curves`` (ascending, descending
    and ``--draws`` random orders; six accuracies and two losses at every count) against
    one forward pass of ``interp.model.MLP`` per count with the pruned neurons zeroed.
    Only ``--naive-passes`` naive passes per repetition are timed; their median time is
    extrapolated linearly to all (2 + draws) * (N + 1) passes, and the output says so.
(b) IPR of every neuron at every stored checkpoint: ``interp.trajectory_ipr``
    (vectorised over neurons, streamed in blocks of 32 checkpoints) against a Python loop
    over checkpoints and neurons (one rfft per vector). The loop is timed on
    ``--loop-checkpoints`` checkpoints and extrapolated linearly.

Weights are random (the cost does not depend on their values). Fast and slow timings
are interleaved, so that both see the same load on a shared machine. Run:

    python -m benchmarks.bench_analysis
    OMP_NUM_THREADS=1 python -m benchmarks.bench_analysis  # 1 core

(c) Working memory of ``trajectory_ipr`` (the rise of a fresh process's peak resident
    memory, minus its (T, N) result) at 16x ``--checkpoints`` over that at 4x: it streams
    blocks, so the ratio stays near 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.timing import Figure
from interp.analysis.neurons import neuron_ipr, neuron_terms, trajectory_ipr
from interp.analysis.prune import ablate, prune_curves, random_orders
from interp.config import DataConfig
from interp.data import accuracies, make_dataset
from interp.models import MLPConfig
from interp.models.mlp import MLP


def median_time(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_weights(p: int, width: int, seed: int, leading: tuple[int, ...] = ()) -> dict:
    rng = np.random.default_rng(seed)
    std = 0.5 / (2 * width) ** (1 / 3)
    shapes = {"U": (width, p), "V": (width, p), "W": (p, width)}
    return {k: (rng.normal(size=(*leading, *s)) * std).astype(np.float32)
            for k, s in shapes.items()}


def naive_pass_fn(weights: dict, ds, p: int, width: int) -> Callable[[list[int]], dict]:
    """One eval-mode float32 forward pass of the MLP with ``removed`` neurons zeroed."""
    model = MLP(p, MLPConfig(width=width)).eval()
    pairs = torch.as_tensor(ds.pairs[ds.eval_idx])
    target = torch.as_tensor(np.concatenate([ds.train_labels, ds.true_labels[ds.test_idx]]))
    onehot, n = F.one_hot(target, p).float(), len(ds.train_idx)

    def run(removed: list[int]) -> dict:
        model.load_arrays(weights)
        with torch.no_grad():
            model.U[removed] = 0.0
            model.V[removed] = 0.0
            model.W[:, removed] = 0.0
            logits = model(pairs[:, 0], pairs[:, 1])
            losses = (F.mse_loss(logits[:n], onehot[:n]), F.mse_loss(logits[n:], onehot[n:]))
        return accuracies(logits.argmax(-1).numpy(), ds) | {"loss": losses}

    return run


def bench_prune(args: argparse.Namespace) -> list[Figure]:
    p, width = args.p, args.width
    ds = make_dataset(DataConfig(p=p))
    weights = random_weights(p, width, seed=0)
    model = MLPConfig(width=width)
    ipr = neuron_ipr(weights, model, p)

    def terms():  # timed with the curves, as the hidden layer is part of the work
        return neuron_terms(weights, model, ds.pairs[ds.eval_idx])
    naive = naive_pass_fn(weights, ds, p, width)
    order = random_orders(width, 1, seed=1)[0]
    counts = np.linspace(0, width, args.naive_passes).astype(int)
    fast, passes, abl = [], [], []
    for _ in range(args.reps):  # interleaved, so that both see the same machine load
        fast.append(median_time(lambda: prune_curves(terms(), ds, ipr,
                                                     n_random=args.draws), 1))
        passes += [median_time(lambda c=c: naive(list(order[:c])), 1) for c in counts]
        abl.append(median_time(lambda: ablate(terms(), ds), 1))
    fast_s, per_pass, abl_s = map(statistics.median, (fast, passes, abl))
    n_passes = (2 + args.draws) * (width + 1)
    naive_total = per_pass * n_passes
    print(f"(a) pruning curves, p={p}, N={width}: 3 orders (random = mean of {args.draws} "
          f"draws), 6 accuracies + train/test loss at each of {width + 1} counts")
    print(f"    fast prune_curves (float64, rank-1 updates): {fast_s:8.2f} s (median of "
          f"{args.reps})")
    print(f"    naive: {n_passes} forward passes (float32 MLP); timed {len(passes)} passes "
          f"and extrapolated linearly: {per_pass * 1e3:.1f} ms/pass (median) -> "
          f"{naive_total:.1f} s")
    print(f"    ratio naive / fast: {naive_total / fast_s:.1f}x")
    print(f"    ablate (each neuron alone): {abl_s:.2f} s vs {width} naive passes "
          f"{per_pass * width:.1f} s (extrapolated): {per_pass * width / abl_s:.1f}x")
    return [Figure(f"pruning curves, N {width}, 3 orders, 6 accuracies", naive_total / fast_s,
                   20, True, "x", f"{n_passes} forward passes ({per_pass * 1e3:.1f} ms each)")]


class InMemoryRun:
    """The part of interp.store.Run that trajectory_ipr uses, over in-memory arrays."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays, self.steps = arrays, np.arange(len(arrays["U"])) * 20
        self.names = list(arrays)
        width, p = arrays["U"].shape[-2:]
        self.config = SimpleNamespace(model=MLPConfig(width=width),
                                      data=SimpleNamespace(p=p, op="add"))

    def iter_chunks(self, names, chunk=32, stride=1):
        for start in range(0, len(self.steps), chunk):
            block = slice(start, start + chunk)
            yield self.steps[block], {k: self.arrays[k][block] for k in names}


def loop_ipr(U: np.ndarray, V: np.ndarray, W: np.ndarray) -> np.ndarray:
    """IPR with a Python loop over checkpoints and neurons, one rfft per vector."""
    def one(x: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(x)) ** 2
        return float((power**2).sum() / power.sum() ** 2)

    out = np.empty(U.shape[:2])
    for t in range(U.shape[0]):
        for k in range(U.shape[1]):
            out[t, k] = (one(U[t, k]) + one(V[t, k]) + one(W[t, :, k])) / 3
    return out


def bench_ipr(args: argparse.Namespace) -> list[Figure]:
    T, p, width = args.checkpoints, args.p, args.width
    arrays = random_weights(p, width, seed=2, leading=(T,))
    run = InMemoryRun(arrays)
    k = min(args.loop_checkpoints, T)
    sub = {name: a[:k] for name, a in arrays.items()}
    np.testing.assert_allclose(loop_ipr(sub["U"], sub["V"], sub["W"]),
                               trajectory_ipr(run)[1][:k], rtol=1e-6)
    fast, slow = [], []
    for _ in range(args.reps):  # interleaved
        fast.append(median_time(lambda: trajectory_ipr(run), 1))
        slow.append(median_time(lambda: loop_ipr(sub["U"], sub["V"], sub["W"]), 1) * T / k)
    fast_s, slow_s = statistics.median(fast), statistics.median(slow)
    print(f"(b) IPR of every neuron at every checkpoint: T={T} checkpoints, N={width}, p={p}")
    print(f"    fast trajectory_ipr (in-memory arrays, blocks of 32): {fast_s:8.3f} s (median "
          f"of {args.reps})")
    print(f"    per-neuron Python loop, timed on {k} checkpoints and extrapolated linearly: "
          f"{slow_s:8.1f} s")
    print(f"    ratio loop / fast: {slow_s / fast_s:.0f}x")
    # 4T against 16T: long enough that the process's start-up allocations do not dominate
    small, large = ipr_memory(p, width, 4 * T), ipr_memory(p, width, 16 * T)
    print(f"    working memory: {small / 2**20:.1f} MiB at {4 * T} checkpoints, "
          f"{large / 2**20:.1f} MiB at {16 * T}")
    growth = max(large, 2**20) / max(small, 2**20)  # below 1 MiB counts as 1 MiB
    return [Figure(f"IPR of every neuron at {T} checkpoints", slow_s / fast_s, 50, True, "x",
                   "per-neuron Python loop (one rfft per vector)"),
            Figure(f"IPR working memory, {16 * T} checkpoints", growth, 1.25, False, "x",
                   f"{4 * T} checkpoints ({small / 2**20:.0f} MiB: rise of peak resident "
                   "memory minus the result)")]


_MEMORY_CHILD = """
import resource, sys
import numpy as np
from benchmarks.bench_analysis import InMemoryRun
from interp.analysis.neurons import trajectory_ipr
p, width, T = map(int, sys.argv[1:])
rng = np.random.default_rng(3)
shapes = {"U": (T, width, p), "V": (T, width, p), "W": (T, p, width)}
run = InMemoryRun({k: rng.standard_normal(s, dtype=np.float32) for k, s in shapes.items()})
trajectory_ipr(InMemoryRun({k: v[:1] for k, v in run.arrays.items()}))  # warm up
before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
result = trajectory_ipr(run)[1]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(after - before - result.nbytes)
"""


def ipr_memory(p: int, width: int, T: int) -> float:
    """Bytes by which trajectory_ipr over T in-memory checkpoints raises a fresh process's
    resident memory at its peak (torch's allocations included), minus its result; the
    median of three child processes (Linux: reads /proc/self/statm)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = [subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(p), str(width), str(T)],
                           capture_output=True, text=True, check=True, env=env)
            for _ in range(3)]
    return statistics.median(float(r.stdout.split()[-1]) for r in runs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--p", type=int, default=97)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--draws", type=int, default=5, help="random pruning orders")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (median reported)")
    parser.add_argument("--naive-passes", type=int, default=6, help="per repetition")
    parser.add_argument("--checkpoints", type=int, default=101)
    parser.add_argument("--loop-checkpoints", type=int, default=2)


def figures(**overrides: object) -> list[Figure]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    for k, v in overrides.items():
        setattr(args, k, v)
    return bench_prune(args) + bench_ipr(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    bench_prune(args)
    bench_ipr(args)


if __name__ == "__main__":
    main()
