"""Run every benchmark in this folder, one after another, and print what each measured.

    python benchmarks/run.py            # or: make bench

Each benchmark compares our implementation with a plain reference in the same process
and reports ratios (see the docstring of each ``bench_*.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        failed += subprocess.call([sys.executable, str(script)]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
