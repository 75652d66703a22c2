#!/usr/bin/env bash
# Issue #13's improvements study (docs/RESULTS.md (e)): the paper's defaults, each optional
# improvement alone and all of them together, over three seeds, every variant compared with the
# defaults by `cyclegan study` (src/cyclegan/studies/seeded.py), on one of two datasets:
#   cityscapes (default): labels <-> photo at 64 px, scored against the ground truth (photo -> labels
#                         accuracies and IoU, labels -> photo FCN score; primary: the two class IoUs)
#   photo2anime:          ../shared/data/photo2anime_animegan at 64 px, scored by FID / KID (primary:
#                         the two KIDs; needs the metrics extra)
# Usage, from the repository root with the venv active:
#   benchmarks/studies/improvements_study.sh [OUT]                         (Cityscapes)
#   DATASET=photo2anime benchmarks/studies/improvements_study.sh [OUT]
# Default OUT: experiments/improvements_cityscapes64 or experiments/improvements_photo2anime64.
# Resumable: call it again, in this session or a later one, and it skips every finished seed/variant
# run, continues an interrupted training from its last checkpoint, and rewrites OUT/study.md,
# OUT/study.json and OUT/loss_curves.png from all finished runs (with "Runs finished: k of 18").
# Every run holds out 10% of the training images (--val-fraction 0.1, chosen by the seed) and scores
# itself on them at each epoch end, so it keeps a `best` checkpoint, which the study evaluates beside
# the final one; the test images are only used for those two evaluations. Times per run are in
# docs/RESULTS.md (e). benchmarks/gpu.sh study runs the Cityscapes study on a GPU.
#
# Keep one machine per OUT: the segmenter behind the FCN score is trained on the evaluating device,
# and a GPU's TF32 convolutions differ from the CPU's, so runs from different machines are not
# replicates of one another.
#
# Environment: DATASET (cityscapes), SHARED (default ../shared/data), SEEDS (0,1,2), ITERS (1000),
# PARALLEL (1: runs at once), EVAL_FLAGS (extra `cyclegan evaluate` flags, e.g. --no-fid). Changing
# ITERS, the flags or EVAL_FLAGS changes the commands, and runs made with other commands are trained
# again.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
SHARED=${SHARED:-../shared/data}
# The settings of docs/RESULTS.md (b) and (c): ResNet-6, ngf/ndf 16, 72 -> 64 px crops.
FLAGS=(--netG resnet_6blocks --ngf 16 --ndf 16 --norm instance --load-size 72 --crop-size 64
       --val-fraction 0.1 --num-workers 1 --no-tensorboard)
case "${DATASET:-cityscapes}" in
cityscapes)
    DATA="$SHARED/cityscapes"
    OUT=${1:-experiments/improvements_cityscapes64}
    FLAGS+=(--lambda-identity 0)  # as (b): labels <-> photo is not a colour-preserving task
    ;;
photo2anime)
    DATA="$SHARED/photo2anime_animegan"
    OUT=${1:-experiments/improvements_photo2anime64}
    # identity loss at its default (0.5), as (c) and the paper's painting <-> photo
    ;;
*)
    echo "DATASET must be cityscapes or photo2anime, got '$DATASET'" >&2
    exit 2
    ;;
esac
exec python -m cyclegan study improvements --data "$DATA" --out "$OUT" \
    --iters "${ITERS:-1000}" --seeds "${SEEDS:-0,1,2}" --parallel "${PARALLEL:-1}" --baseline "paper defaults" \
    ${EVAL_FLAGS:+"--eval-flags=$EVAL_FLAGS"} -- "${FLAGS[@]}"
