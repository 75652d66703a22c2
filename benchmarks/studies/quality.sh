#!/usr/bin/env bash
# The runs behind docs/RESULTS.md. Each suite trains its variants with the same data, seed and
# iteration budget, evaluates them with `cyclegan evaluate`, and writes results.md / results.csv /
# commands.sh into experiments/<suite>/. Run from the repository root with the venv active.
# Budgets are sized for a 2-core CPU; raise --iters for closer-to-paper numbers.
set -euo pipefail
# One thread per process: on a shared 2-core machine OpenMP threads that spin against other
# processes cost far more than they give (measured: 0.9 s vs 3.1 s per iteration under load).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-experiments}
SHARED=${SHARED:-../shared/data}
# --no-dropout: pix2pix's tables were measured without dropout, before it became pix2pix's default.
SMALL=(--netG resnet_6blocks --ngf 16 --ndf 16 --norm instance --no-dropout --load-size 72 --crop-size 64 --num-workers 1
       --no-tensorboard)

# (a) the paper's ablation + pix2pix, on the synthetic labels <-> scenes set at 64 px
[ -d "$OUT/synth64" ] || cyclegan data synth "$OUT/synth64" --size 64 --train 600 --test 100 --seed 0
cyclegan experiment ablation --data "$OUT/synth64" --out "$OUT/ablation_synth64" --iters "${ITERS_A:-500}" \
    -- "${SMALL[@]}" --lambda-identity 0

# (b) Cityscapes (real photos, A = photo, B = colour labels) at 64 px: CycleGAN vs pix2pix
cyclegan experiment pix2pix --data "$SHARED/cityscapes" --out "$OUT/cityscapes64" --iters "${ITERS_B:-500}" \
    -- "${SMALL[@]}" --lambda-identity 0

# (d) lambda and d_ratio sweeps on the synthetic set (segmentation scores only, to save time)
cyclegan experiment lambda --only "lambda=1,lambda=10,lambda=20" --data "$OUT/synth64" --out "$OUT/lambda_synth64" \
    --iters "${ITERS_D:-300}" --eval-flags=--no-fid -- "${SMALL[@]}" --lambda-identity 0
cyclegan experiment d_ratio --data "$OUT/synth64" --out "$OUT/d_ratio_synth64" --iters "${ITERS_D:-300}" \
    --eval-flags=--no-fid -- "${SMALL[@]}" --lambda-identity 0

# (c) photo <-> anime (unpaired style translation): FID / KID at 64 px
cyclegan experiment pix2pix --only CycleGAN --data "$SHARED/photo2anime_animegan" --out "$OUT/photo2anime64" \
    --iters "${ITERS_C:-600}" -- "${SMALL[@]}"
