#!/usr/bin/env bash
# Issue #13's improvements study (docs/RESULTS.md (e)): the paper's defaults, each optional
# improvement alone and all of them together, on Cityscapes labels <-> photo at 64 px, over three
# seeds, every variant compared with the defaults by benchmarks/seeded_study.py. Usage, from the
# repository root with the venv active:
#   benchmarks/improvements_study.sh [OUT]       (default OUT: experiments/improvements_cityscapes64)
# Resumable: call it again, in this session or a later one, and it skips every finished seed/variant
# run, continues an interrupted training from its last checkpoint, and rewrites OUT/study.md,
# OUT/study.json and OUT/loss_curves.png from all finished runs (with "Runs finished: k of 18").
# On one CPU thread a run takes about 5 minutes (1,000 iterations at 64 px, ngf 16: 500 took
# 1.6 minutes in docs/RESULTS.md (b), and the options cost extra) plus its evaluation, so the
# 18 runs need about 1.5-2 hours; the first evaluation also trains and caches the FCN-score
# segmenter (about 3 minutes). benchmarks/gpu.sh study runs the same study on a GPU.
#
# Keep one machine per OUT: the segmenter behind the FCN score is trained on the evaluating device,
# and a GPU's TF32 convolutions differ from the CPU's, so runs from different machines are not
# replicates of one another.
#
# Environment: SHARED (default ../shared/data), SEEDS (0,1,2), ITERS (1000), PARALLEL (1: runs at
# once), EVAL_FLAGS (extra `cyclegan evaluate` flags, e.g. --no-fid). Changing ITERS, the flags or
# EVAL_FLAGS changes the commands, and runs made with other commands are trained again.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
SHARED=${SHARED:-../shared/data}
OUT=${1:-experiments/improvements_cityscapes64}
# The setting of docs/RESULTS.md (b): ResNet-6, ngf/ndf 16, 72 -> 64 px crops, no identity loss.
FLAGS=(--netG resnet_6blocks --ngf 16 --ndf 16 --norm instance --load-size 72 --crop-size 64
       --lambda-identity 0 --num-workers 1 --no-tensorboard)
exec python "$(dirname "$0")/seeded_study.py" improvements --data "$SHARED/cityscapes" --out "$OUT" \
    --iters "${ITERS:-1000}" --seeds "${SEEDS:-0,1,2}" --parallel "${PARALLEL:-1}" --baseline "paper defaults" \
    ${EVAL_FLAGS:+"--eval-flags=$EVAL_FLAGS"} -- "${FLAGS[@]}"
