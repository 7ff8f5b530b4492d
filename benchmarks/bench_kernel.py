"""The MLP's quadratic kernel: one training step's forward and backward (MSE loss) at the
paper's size, in blocks of each size against the same kernel with the whole batch as one
block and against autograd's plain path, on one thread (a sweep's worker) and on all.

Figures (each the median of per-repetition ratios, the sides interleaved):

* blocked kernel vs one block: ``interp.models.mlp.fused.BLOCK_ROWS`` (the default)
  against the whole batch as one block, fp32, one thread, alpha 0.7 (6586 pairs);
* blocked kernel vs autograd: the same against ``gather_pre(U, V, m, n) ** 2 @ W.T``
  differentiated by autograd (the path of an unfused network);
* C++ vs Python blocks, fp32 and bf16: the blocks in C++ (``quadratic.cpp``, the
  default where it builds) against the same blocks in Python (its reference, the same
  bits), blocks of ``BLOCK_ROWS``, one thread, 6586 pairs.
* fused MSE step vs separate, fp32 and bf16: the training step as the trainer runs it
  (``fused.quadratic_mse``: logits, loss and gradients in one C++ pass over the blocks)
  against the C++ forward, torch's MSE and the C++ backward run apart (the same bits).

It also prints the time per step of every block size (128 to 1024, and one block) for
alpha 0.3 and 0.7, fp32 and bf16, one thread and all threads.

    python -m benchmarks.bench_kernel [--reps 3]
"""

from __future__ import annotations

import argparse
import os

import torch

from benchmarks.timing import Figure, interleaved, median_ratio, show
from interp.models.mlp import fused

SIZES = (128, 256, 512, 1024, None)  # None: the whole batch as one block
TYPES = {"fp32": None, "bf16": torch.bfloat16}  # the products' type, by name


NATIVE = fused._native


def step_fn(size: tuple[int, int, int], dtype: torch.dtype | None, rows: int | None,
            plain: bool = False, cpp: bool = True, fused_mse: bool = False):
    """One forward and backward of the kernel, ``size`` = (p, width, pairs), on random
    pairs in blocks of ``rows``, in C++ (where it builds) or in Python; ``fused_mse``: the
    trainer's fused step (:func:`interp.models.mlp.fused.quadratic_mse`)."""
    p, width, n = size
    gen = torch.Generator().manual_seed(0)
    U, V = (torch.randn(width, p, generator=gen).requires_grad_() for _ in range(2))
    W = torch.randn(p, width, generator=gen).requires_grad_()
    m, k, y = (torch.randint(0, p, (n,), generator=gen) for _ in range(3))
    target = torch.nn.functional.one_hot(y, p).float()

    def step() -> None:
        fused.BLOCK_ROWS = rows or n
        fused._native = NATIVE if cpp else (lambda table, bags, W: False)
        if fused_mse:
            loss = fused.quadratic_mse(U, V, W, m, k, y, target, dtype)[1]
            torch.autograd.grad(loss, (U, V, W))
            return
        if plain:
            out = fused.gather_pre(U, V, m, k) ** 2 @ W.mT
        else:
            out = fused.quadratic_logits(U, V, W, m, k, dtype)
        torch.autograd.grad(((out.float() - target) ** 2).mean(), (U, V, W))
    return step


def block_table(p: int, width: int, threads: int, reps: int) -> dict[tuple, float]:
    """Milliseconds per step by (pairs, dtype, block rows), on ``threads`` threads."""
    torch.set_num_threads(threads)
    out = {}
    for n in (int(0.3 * p * p), int(0.7 * p * p)):
        for dtype in (None, torch.bfloat16):
            t = interleaved({rows: step_fn((p, width, n), dtype, rows) for rows in SIZES},
                            reps, inner=3)
            for rows, times in t.items():
                out[n, dtype, rows] = 1000 * min(times)
            print(f"  {threads} thread(s), {n} pairs, {'bf16' if dtype else 'fp32'}: "
                  + ", ".join(f"{rows or 'one block'} {1000 * min(v):.1f} ms"
                              for rows, v in t.items()), flush=True)
    return out


def figures(reps: int = 3, p: int = 97, width: int = 500) -> list[Figure]:
    default, threads = fused.BLOCK_ROWS, torch.get_num_threads()
    size = (p, width, int(0.7 * p * p))
    n = size[2]
    try:
        torch.set_num_threads(1)
        sides = {"one": step_fn(size, None, None),
                 "plain": step_fn(size, None, None, plain=True)}
        for kind, dtype in TYPES.items():
            sides |= {kind: step_fn(size, dtype, default),
                      f"{kind} python": step_fn(size, dtype, default, cpp=False),
                      f"{kind} fused": step_fn(size, dtype, default, fused_mse=True)}
        t = interleaved(sides, reps, inner=3)
        for count in (1, os.cpu_count() or 1):
            block_table(p, width, count, reps)
    finally:
        fused.BLOCK_ROWS, fused._native = default, NATIVE
        torch.set_num_threads(threads)
    ms = {k: f"{1000 * min(v):.1f} ms" for k, v in t.items()}
    cpp = "C++" if fused.native_problem() is None else "(no C++ here: Python)"
    out = [Figure(f"kernel step, fused MSE step vs separate ({kind}, 1 thread)",
                  median_ratio(t[kind], t[f"{kind} fused"]), 1.0, True, "x",
                  f"fused {ms[kind + ' fused']}, forward, loss and backward apart {ms[kind]}")
           for kind in TYPES]
    out += [Figure(f"kernel step, C++ vs Python blocks ({kind}, 1 thread)",
                   median_ratio(t[f"{kind} python"], t[kind]), 1.0, True, "x",
                   f"{cpp} {ms[kind]}, Python {ms[kind + ' python']}; {n} pairs")
            for kind in TYPES]
    return out + [Figure("kernel step, blocks vs one block (fp32, 1 thread)",
                         median_ratio(t["one"], t["fp32"]), 1.0, True, "x",
                         f"blocks of {default} {ms['fp32']}, one block {ms['one']}; {n} pairs"),
                  Figure("kernel step, blocks vs autograd (fp32, 1 thread)",
                         median_ratio(t["plain"], t["fp32"]), 1.0, True, "x",
                         f"autograd through gather_pre {ms['plain']}")]


def main(argv: list[str] | None = None) -> list[Figure]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    return show(lambda: figures(args.reps))


if __name__ == "__main__":
    main()
