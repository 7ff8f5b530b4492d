#!/usr/bin/env bash
# The paper's whole weight-decay phase diagram on one CUDA GPU (run from the repository
# root on a machine with one):
#   1. `interp sweep --device cuda` over 17 x 17 x 4 = 1156 cells (corrupt, train_frac in
#      0.1:0.9:17, wd 0/5/15/20), STEPS (default 2000) steps each, timed;
#   2. the 3 x 3 wd-5 slice (corrupt 0.2/0.5/0.8 x train_frac 0.3/0.5/0.7, cells of the
#      same grid) trained again on the CPU, with the same base run;
#   3. benchmarks/gpu_report.py: cells per second of step 1, and in how many slice cells
#      the GPU's phase equals the CPU's. Goal: the diagram in under 15 minutes.
# Then, unless QUICK: benchmarks/bench_sweep.py on CUDA (interp sweep against a plain
# loop on the same GPU over 8 paper-size cells).
# Results go to $OUT (default: a new temporary folder). PY picks the Python (default
# .venv/bin/python); STEPS shortens the cells for a trial run; DEVICE (default cuda) and
# QUICK=1 (p 11, width 16, 20 steps, a 3 x 3 x 1 diagram) run every step on the CPU in a
# minute or two, which tests/test_benchmarks.py does.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-$(mktemp -d)}
DEVICE=${DEVICE:-cuda}
if [[ -n "${QUICK:-}" ]]; then
    STEPS=${STEPS:-20}
    GRID=(--p 11 --width 16 --corrupt 0.2,0.5,0.8 --train-frac 0.3,0.5,0.7 --values 5)
    SLICE=(--p 11 --width 16)
else
    STEPS=${STEPS:-2000}
    GRID=(--corrupt 0.1:0.9:17 --train-frac 0.1:0.9:17 --values 0,5,15,20)
    SLICE=()
fi
mkdir -p "$OUT"
if [[ "$DEVICE" == cuda* ]]; then
    "$PY" -c 'import torch, sys
if not torch.cuda.is_available():
    sys.exit("gpu_sweep.sh: no CUDA device here (DEVICE=cpu QUICK=1 checks the script on the CPU)")
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)'
fi
start=$(date +%s.%N)
"$PY" -m interp.cli sweep --device "$DEVICE" "${GRID[@]}" --steps "$STEPS" \
    --save-every 1000 --quiet --out "$OUT/wd"
end=$(date +%s.%N)
"$PY" -m interp.cli sweep --device cpu "${SLICE[@]}" --corrupt 0.2,0.5,0.8 \
    --train-frac 0.3,0.5,0.7 --values 5 --steps "$STEPS" --save-every 1000 --quiet --out "$OUT/slice-cpu"
"$PY" -m benchmarks.gpu_report --diagram "$OUT/wd" --slice "$OUT/slice-cpu" \
    --seconds "$(awk "BEGIN { print $end - $start }")" | tee "$OUT/report.txt"
if [[ -z "${QUICK:-}" ]]; then
    "$PY" -m benchmarks.bench_sweep --device "$DEVICE" --reps 2 2>&1 | tee "$OUT/bench_sweep.txt"
fi
echo "results in $OUT"
