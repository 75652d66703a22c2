#!/usr/bin/env bash
# Parity with the reference code on Cityscapes at 128 px (issue: "Parity first"): the project's
# defaults on the setting the reference was run on, one seed per call, evaluated against the
# ground truth. Usage, from the repository root with the venv active:
#   benchmarks/studies/reference_parity.sh SEED [OUT]        (one run: 3,600 iterations at 3.3 s each on one thread
#                                                     of the AVX2-only development machine, 3.3 hours;
#                                                     76 minutes on the native-bf16 one)
#   benchmarks/studies/reference_parity.sh summary [OUT]     (mean and spread of every finished seed, beside
#                                                     the reference code's numbers: seed_summary.py)
# A run that was stopped resumes where its last checkpoint left it when called again. Seeds may run
# at once (benchmarks/gpu.sh parity128 runs three on a GPU).
set -euo pipefail
cyclegan() { python -m cyclegan "$@"; }  # the package need not be installed, only importable
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
SHARED=${SHARED:-../shared/data}
OUT=${2:-experiments/reference_parity}
if [ "$1" = summary ]; then
    exec python "$(dirname "$0")/seed_summary.py" "$OUT"/seed*/evaluation.json
fi
SEED=$1
RUN="$OUT/seed$SEED"
mkdir -p "$OUT"
if [ -f "$RUN/checkpoints/latest.json" ]; then
    cyclegan train --resume "$RUN" --no-progress
else
    cyclegan train --data "$SHARED/cityscapes" --runs-dir "$OUT" --name "seed$SEED" --seed "$SEED" \
        --load-size 143 --crop-size 128 --netG resnet_6blocks --ngf 32 --epochs 10 --epochs-decay 10 \
        --num-workers 0 --no-progress --no-tensorboard
fi
cyclegan evaluate "$RUN" --data "$SHARED/cityscapes" --size 128 --out "$RUN/evaluation.json" --no-fid --device cpu
