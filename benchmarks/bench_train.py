"""Training-step speed at the paper's setting: ours vs a plain reference implementation.

The reference is how such code is commonly written: the input as concatenated one-hot
vectors (2p wide) through dense ``nn.Linear`` layers without bias, ``nn.MSELoss``, AdamW.
Ours is ``interp.train.Trainer`` doing a real step: forward, backward, update, and the
per-step metrics (six accuracies in eval mode, test loss, norms). Both run in this one
process on the same threads, their repetitions interleaved so that both see the same
load; the figure is the median of the per-repetition ratios.

    python benchmarks/bench_train.py [--p 97] [--width 500] [--reps 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from interp.config import RunConfig
from interp.train import Trainer


class OneHotMLP(nn.Module):
    def __init__(self, p: int, width: int) -> None:
        super().__init__()
        self.p = p
        self.first = nn.Linear(2 * p, width, bias=False)
        self.out = nn.Linear(width, p, bias=False)

    def forward(self, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x = torch.cat([nn.functional.one_hot(m, self.p), nn.functional.one_hot(n, self.p)], 1)
        return self.out(self.first(x.float()) ** 2)


def reference_step_fn(trainer: Trainer):
    p, width = trainer.cfg.data.p, trainer.cfg.model.width
    model = OneHotMLP(p, width)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.98), eps=1e-8)
    loss_fn = nn.MSELoss()
    m, n, target = trainer.m_train, trainer.n_train, trainer.onehot_train

    def step() -> None:
        opt.zero_grad()
        loss = loss_fn(model(m, n), target)
        loss.backward()
        opt.step()
    return step


def interp_step_fn(trainer: Trainer, metrics: bool):
    """A real step of our Trainer; without metrics, forward, backward and update only."""
    def step() -> None:
        if metrics:
            _, loss = trainer._measure(trainer.step)
        else:
            _, loss = trainer._forward_train(trainer.step)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        trainer.step += 1
    return step


def interleaved_ms(fns: dict[str, object], steps: int, reps: int) -> dict[str, list[float]]:
    """Per-step times in ms of each function, repetitions interleaved so that every
    function sees the same machine load; returns all repetitions per name."""
    for fn in fns.values():
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t0) / steps * 1e3)
    return times


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=int, default=97)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    cfg = RunConfig().replace(data={"p": args.p}, model={"width": args.width})
    trainer = Trainer(cfg)
    t = interleaved_ms({"ref": reference_step_fn(trainer), "ours": interp_step_fn(trainer, True),
                        "bare": interp_step_fn(trainer, False)}, args.steps, args.reps)
    ref, ours, bare = (statistics.median(t[k]) for k in ("ref", "ours", "bare"))
    # ratios per repetition (same load), then the median
    speedup = statistics.median(r / o for r, o in zip(t["ref"], t["ours"]))
    speedup_bare = statistics.median(r / b for r, b in zip(t["ref"], t["bare"]))
    overhead = statistics.median(o / b - 1 for o, b in zip(t["ours"], t["bare"]))
    n_train = len(trainer.y_train)
    useful = 6 * n_train * args.width * args.p  # the three matrix products of a step
    print(f"training step, p {args.p}, width {args.width}, n_train {n_train}, "
          f"{torch.get_num_threads()} threads")
    print(f"  reference (one-hot nn.Linear): {ref:7.2f} ms/step")
    print(f"  interp (step + all metrics):  {ours:7.2f} ms/step   "
          f"({useful / ours / 1e6:.0f} useful GFLOP/s)")
    print(f"  interp (no metrics):          {bare:7.2f} ms/step")
    print(f"  speed-up vs reference (median of per-repetition ratios): {speedup:.2f}x with "
          f"metrics, {speedup_bare:.2f}x without")
    print(f"  metrics overhead: {100 * overhead:.0f}% of a bare step")
    return {"reference_ms": ref, "ours_ms": ours, "bare_ms": bare, "ratio": speedup,
            "ratio_bare": speedup_bare, "metrics_overhead": overhead}


if __name__ == "__main__":
    main()
