"""Many models at once: BatchTrainer vs training the same models one at a time.

Both sides do real training steps with every per-step metric, in this one process.
The figure is throughput in model-steps per second, batched over one-at-a-time.

    python benchmarks/bench_batched.py [--models 8] [--widths 500,128,32] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

from interp.batched import BatchTrainer
from interp.config import RunConfig
from interp.train import Trainer


def configs(m: int, width: int, steps: int) -> list[RunConfig]:
    base = RunConfig().replace(model={"width": width}, train={"steps": steps})
    return [base.replace(data={"split_seed": i, "corrupt_seed": i,
                               "corrupt": 0.1 + 0.05 * (i % 5)},
                         model={"init_seed": i}, train={"weight_decay": float(i % 3)})
            for i in range(m)]


def throughput(fn, n_model_steps: int, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_model_steps / statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--widths", default="500,128,32")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    rows = []
    for width in (int(w) for w in args.widths.split(",")):
        cfgs = configs(args.models, width, args.steps)
        total = args.models * (args.steps + 1)
        loop = throughput(lambda cfgs=cfgs: [Trainer(c).run() for c in cfgs], total, args.reps)
        batch = throughput(lambda cfgs=cfgs: BatchTrainer(cfgs).run(), total, args.reps)
        rows.append({"width": width, "loop": loop, "batched": batch, "ratio": batch / loop})
        print(f"width {width:4d}, {args.models} models: one at a time {loop:8.1f} model-steps/s,"
              f" batched {batch:8.1f} model-steps/s, ratio {batch / loop:.2f}x")
    return rows


if __name__ == "__main__":
    main()
