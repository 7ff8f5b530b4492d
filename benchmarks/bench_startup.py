"""Start-up of the command line: ``interp --help`` against ``python -c "import torch"``.

``interp --help`` should load only typer and rich, never torch, numpy, h5py or
matplotlib (the commands import those when they run), so it should take no longer than
importing torch alone. Each side is a fresh process of this Python (wall time, the
interpreter's own start included); the two take turns within each repetition, after one
warm-up run each, and the figure is the median of the per-repetition ratios
(``--help`` over ``import torch``).

    python -m benchmarks.bench_startup [--reps 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from benchmarks.timing import Figure, interleaved, median_ratio

HELP = [sys.executable, "-c",
        "from interp.cli import main; import sys; sys.argv = ['interp', '--help']; main()"]
TORCH = [sys.executable, "-c", "import torch"]


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def figures(reps: int = 7) -> list[Figure]:
    t = interleaved({"help": lambda: run(HELP), "torch": lambda: run(TORCH)}, reps)
    ratio = median_ratio(t["help"], t["torch"])
    help_ms, torch_ms = (1e3 * statistics.median(t[k]) for k in ("help", "torch"))
    return [Figure("interp --help start-up", ratio, 1.3, False, "x",
                   f"python -c 'import torch' ({torch_ms:.0f} ms; --help {help_ms:.0f} ms)")]


def main(argv: list[str] | None = None) -> list[Figure]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args(argv)
    out = figures(args.reps)
    for f in out:
        print(f"  {f.name}: {f.value:.2f}x ({f.compared_with})")
    return out


if __name__ == "__main__":
    main()
