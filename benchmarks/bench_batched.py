"""Many models at once: a stack (one Trainer given several configs) vs the same models
one at a time.

A stack (``Trainer(cfgs)``: the family's stacked kernel, one optimizer with a group per
model; what a sweep uses on CUDA; on the CPU a sweep trains every cell alone) against
training the models one after another with ``Trainer``. Both sides do real training steps with every
per-step metric, in this one process. The figure is throughput in model-steps per
second, stacked over one-at-a-time (median of per-repetition ratios, repetitions
interleaved).

    python -m benchmarks.bench_batched [--models 8] [--widths 500,128,32] [--steps 10]
"""

from __future__ import annotations

import argparse

from benchmarks.timing import Figure, interleaved, median_ratio
from interp.config import RunConfig
from interp.training.trainer import Trainer


def configs(m: int, width: int, steps: int) -> list[RunConfig]:
    base = RunConfig().replace(model={"width": width}, train={"steps": steps})
    return [base.replace(data={"split_seed": i, "corrupt_seed": i,
                               "corrupt": 0.1 + 0.05 * (i % 5)},
                         model={"init_seed": i}, train={"weight_decay": float(i % 3)})
            for i in range(m)]


def figures(models: int = 8, widths: tuple[int, ...] = (500, 128, 32), steps: int = 10,
            reps: int = 3) -> list[Figure]:
    out = []
    for width in widths:
        cfgs = configs(models, width, steps)
        t = interleaved({"loop": lambda cfgs=cfgs: [Trainer(c).run() for c in cfgs],
                         "batched": lambda cfgs=cfgs: Trainer(cfgs).run()},
                        reps)
        ratio = median_ratio(t["loop"], t["batched"])
        rate = models * (steps + 1) / min(t["batched"])
        out.append(Figure(f"{models} models stacked, N {width}: throughput", ratio,
                          1.5, True, "x",
                          f"one at a time; batched {rate:.0f} model-steps/s"))
    return out


def main(argv: list[str] | None = None) -> list[Figure]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--widths", default="500,128,32")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    out = figures(args.models, tuple(int(w) for w in args.widths.split(",")), args.steps,
                  args.reps)
    for f in out:
        print(f"  {f.name}: {f.value:.2f}x ({f.compared_with})")
    return out


if __name__ == "__main__":
    main()
