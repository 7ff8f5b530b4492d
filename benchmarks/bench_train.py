"""Training speed at the paper's setting (p 97, N 500, alpha 0.5, full batch, MSE, AdamW).

Figures (each the median of per-repetition ratios, repetitions interleaved):

* step vs reference: a bare training step (forward, backward, update) of
  ``interp.train.Trainer`` against a plain reference (one-hot input through dense
  ``nn.Linear`` layers, ``nn.MSELoss``, AdamW), as such code is commonly written;
* share of the matmul rate: the useful FLOPs of a step (6 n_train N p, its three matrix
  products) per second of our step, over the rate this machine reaches on exactly those
  three products (measured here, fastest operand layouts);
* bf16 step vs the float32 reference, and the machine's bf16 over float32 matmul rate;
* metrics overhead: the six accuracies, train and test loss and the norms at every step;
* checkpoint overhead: ``train_to_file`` saving every step / every 10 steps against
  training without a file.

    python -m benchmarks.bench_train [--p 97] [--width 500] [--reps 5] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from torch import nn

from benchmarks.timing import Figure, interleaved, median_ratio
from interp.config import RunConfig
from interp.training.runner import train_to_file
from interp.training.trainer import Trainer


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
    train = trainer.data.train
    m, n, target = train.m[0], train.n[0], train.onehot[0]

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
        loss.sum().backward()  # one model: its loss
        trainer.optimizer.step()
        trainer.step += 1
    return step


def products_fn(n_train: int, width: int, p: int, dtype: torch.dtype):
    """The three matrix products of a step (forward, weight gradient, input gradient) on
    random operands, each in its fastest layout that we found for this machine."""
    h = torch.randn(n_train, width).to(dtype)
    W = torch.randn(p, width).to(dtype)
    g = torch.randn(n_train, p).to(dtype)

    def run() -> None:
        h @ W.t()
        h.t() @ g
        g @ W
    return run


def checkpoint_figures(cfg: RunConfig, steps: int, reps: int) -> list[Figure]:
    """Training time with a trajectory file saving every step / every 10 steps, against
    the same training without a file (file creation included)."""
    cfg = cfg.replace(train={"steps": steps, "save_every": steps})
    folder = Path(tempfile.mkdtemp())

    def with_file(every: int):
        return lambda: train_to_file(cfg.replace(train={"save_every": every}),
                                     folder / "bench.h5", overwrite=True)
    t = interleaved({"none": lambda: Trainer(cfg).run(), "every": with_file(1),
                     "every10": with_file(10)}, reps)
    base = f"training without a file ({steps} steps)"
    return [Figure("checkpoint every step: added time", 100 * (median_ratio(t["every"],
                                                                          t["none"]) - 1),
                   15, False, "%", base),
            Figure("checkpoint every 10 steps: added time", 100 * (median_ratio(
                t["every10"], t["none"]) - 1), 3, False, "%", base)]


def figures(p: int = 97, width: int = 500, reps: int = 5, steps: int = 10,
            file_steps: int = 100) -> list[Figure]:
    cfg = RunConfig().replace(data={"p": p}, model={"width": width})
    trainer = Trainer(cfg)
    bf16 = Trainer(cfg.replace(train={"precision": "bf16"}))
    n_train = trainer.data.train.y.shape[-1]
    t = interleaved({"ref": reference_step_fn(trainer), "ours": interp_step_fn(trainer, True),
                     "bare": interp_step_fn(trainer, False),
                     "bf16": interp_step_fn(bf16, False),
                     "mm": products_fn(n_train, width, p, torch.float32),
                     "mm_bf16": products_fn(n_train, width, p, torch.bfloat16)},
                    reps, inner=steps)
    useful = 6 * n_train * width * p
    rate = useful / statistics.median(t["mm"]) / 1e9
    rate_bf16 = useful / statistics.median(t["mm_bf16"]) / 1e9
    ms = {k: 1e3 * statistics.median(v) for k, v in t.items()}
    print(f"  training step p {p}, N {width}, n_train {n_train}, {torch.get_num_threads()} "
          f"threads: reference {ms['ref']:.1f} ms, ours {ms['bare']:.1f} ms bare / "
          f"{ms['ours']:.1f} ms with metrics, bf16 {ms['bf16']:.1f} ms; the three products "
          f"alone {ms['mm']:.1f} ms fp32 ({rate:.0f} GFLOP/s), {ms['mm_bf16']:.1f} ms bf16 "
          f"({rate_bf16:.0f} GFLOP/s)", flush=True)
    share = median_ratio(t["mm"], t["bare"])  # = (useful / bare) / (useful / mm)
    return [
        Figure("training step vs reference (fp32)", median_ratio(t["ref"], t["bare"]), 2,
               True, "x", f"one-hot nn.Linear reference, {ms['ref']:.1f} ms/step"),
        Figure("training step: share of the fp32 matmul rate", 100 * share, 75, True, "%",
               f"{rate:.0f} GFLOP/s on the step's 3 products ({useful / 1e9:.2f} GFLOP)"),
        Figure("bf16 training step vs fp32 reference", median_ratio(t["ref"], t["bf16"]), 5,
               True, "x", f"bf16/fp32 matmul rate on these shapes: {rate_bf16 / rate:.2f}"),
        Figure("metrics at every step: added time", 100 * (median_ratio(t["ours"],
                                                                        t["bare"]) - 1),
               40, False, "%", f"bare step, {ms['bare']:.1f} ms"),
        *checkpoint_figures(cfg, file_steps, max(3, reps // 2)),
    ]


def main(argv: list[str] | None = None) -> list[Figure]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=int, default=97)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed repetition")
    ap.add_argument("--file-steps", type=int, default=100, help="steps of the file runs")
    args = ap.parse_args(argv)
    out = figures(args.p, args.width, args.reps, args.steps, args.file_steps)
    for f in out:
        print(f"  {f.name}: {f.value:.2f}{f.unit} (target {'>=' if f.at_least else '<='} "
              f"{f.target}{f.unit})")
    return out


if __name__ == "__main__":
    main()
