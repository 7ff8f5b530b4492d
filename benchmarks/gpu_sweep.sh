#!/usr/bin/env bash
# The phase-diagram job on a CUDA GPU (run from the repository root on a machine with one):
#   1. benchmarks/bench_sweep.py on CUDA: interp sweep --device cuda against a plain loop
#      on the same GPU over the same 8 paper-size cells;
#   2. the wall time of a 17 x 17 x 1 slice of the paper's weight-decay diagram (wd 5,
#      2000 steps, checkpoints every 1000) with `interp sweep --device cuda`, and what it
#      implies for the whole diagram (17 x 17 x 4 = 1156 cells: goal under 15 minutes).
# Results go to $OUT (default: a new temporary folder). PY picks the Python (default
# .venv/bin/python). STEPS (default 2000) shortens the slice for a trial run.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-$(mktemp -d)}
STEPS=${STEPS:-2000}
mkdir -p "$OUT"
"$PY" - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "no CUDA device here"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PYEOF
"$PY" -m benchmarks.bench_sweep --device cuda --reps 2 2>&1 | tee "$OUT/bench_sweep_cuda.txt"
start=$(date +%s.%N)
"$PY" -m interp.cli sweep --device cuda --xi 0.1:0.9:17 --alpha 0.1:0.9:17 --values 5 \
    --steps "$STEPS" --save-every 1000 --out "$OUT/wd5" 2>&1 | tail -n 3
end=$(date +%s.%N)
"$PY" - "$start" "$end" "$OUT/wd5" "$STEPS" <<'PYEOF' | tee "$OUT/slice.txt"
import collections, json, sys
start, end, folder, steps = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rows = json.load(open(f"{folder}/summary.json"))["rows"]
wall = end - start
phases = collections.Counter(r["phase"] for r in rows)
print(f"17 x 17 x 1 slice, {steps} steps, {len(rows)} cells: {wall:.0f} s "
      f"({len(rows) * steps / wall:.0f} cell-steps/s); the paper's 1156 cells at this rate: "
      f"{1156 * wall / len(rows) / 60:.1f} min; phases {dict(phases)}")
PYEOF
