"""Run every benchmark and print one table: each figure, its target, the measured value
(median of per-repetition ratios, repetitions interleaved) and what it is compared with.

    python -m benchmarks.run                 # or: make bench  (the slice job first, then the rest)
    python -m benchmarks.run --json out.json --markdown table.md
    python -m benchmarks.run --quick         # small sizes: checks that everything runs

The figures come from ``bench_slice`` (first, as it is the figure users feel: the 3 x 3
wd-5 slice of the phase diagram by ``interp sweep`` against the paper's script,
``benchmarks/paper_script.py``), ``bench_sweep`` (the phase-diagram job: ``interp
sweep`` against a plain loop over the same 8 cells, its share of the matmul rate and its
placement of threads), ``bench_kernel`` (the MLP's blocked kernel: its C++ blocks
against the Python ones, against one block and against autograd), ``bench_train``
(training step, matmul share, bf16, metrics and checkpoint overheads), ``bench_batched``
(many models in one stacked kernel), ``bench_analysis`` (pruning curves, trajectory IPR
and its memory) and ``bench_startup`` (``interp --help`` against ``import torch``).
``docs/performance.md`` holds the latest table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import torch

from benchmarks import (
    bench_analysis,
    bench_batched,
    bench_kernel,
    bench_slice,
    bench_startup,
    bench_sweep,
    bench_train,
)
from benchmarks.timing import Figure


def collect(quick: bool) -> list[Figure]:
    if quick:
        return (bench_slice.figures(p=23, width=32, steps=20, reps=1)
                + bench_sweep.figures(p=23, width=32, steps=10, reps=1, placement=False)
                + bench_kernel.figures(reps=1, p=23, width=32)
                + bench_train.figures(p=23, width=32, reps=2, steps=2, file_steps=4)
                + bench_batched.figures(models=2, widths=(16,), steps=2, reps=1)
                + bench_analysis.figures(p=11, width=16, draws=1, reps=1, naive_passes=2,
                                         checkpoints=4, loop_checkpoints=1)
                + bench_startup.figures(reps=2))
    return (bench_slice.figures() + bench_sweep.figures() + bench_kernel.figures()
            + bench_train.figures()
            + bench_batched.figures() + bench_analysis.figures() + bench_startup.figures())


def markdown(figures: list[Figure]) -> str:
    lines = ["| figure | target | measured | met | compared with |",
             "| --- | --- | --- | --- | --- |"]
    for f in figures:
        sign = ">=" if f.at_least else "<="
        lines.append(f"| {f.name} | {sign} {f.target:g}{f.unit} | {f.value:.2f}{f.unit} | "
                     f"{'yes' if f.met else 'no'} | {f.compared_with} |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
            f"{torch.get_num_threads()} threads")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check it runs")
    ap.add_argument("--json", help="also write the figures as JSON to this file")
    ap.add_argument("--markdown", help="also write the table as markdown to this file")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    figures = collect(args.quick)
    table = markdown(figures)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(f"Machine: {machine()}\n\n{table}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine(), "figures": [f.row() for f in figures]}, fh,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
