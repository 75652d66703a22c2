#!/usr/bin/env bash
# Issue #23's comparison: CycleGAN against CUT and FastCUT (Park et al. 2020), over three seeds, every
# variant compared with CycleGAN by `cyclegan study`. A CUT run learns one direction, so
# the suite (`cyclegan experiment cut`) trains CUT and FastCUT both ways ("CUT" is A -> B, "CUT BtoA"
# the other), against CycleGAN's two directions from one run.
#   cityscapes (default): labels <-> photo at 64 px, scored against the ground truth (labels -> photo
#                         FCN score, photo -> labels accuracies and IoU). A holds the photos and B the
#                         label maps, so "CUT BtoA" is the paper's labels -> photo task, "CUT" photo -> labels
#   photo2anime:          ../shared/data/photo2anime_animegan at 64 px, scored by FID / KID (needs the
#                         metrics extra)
# Usage, from the repository root with the venv active:
#   benchmarks/studies/cut_study.sh [OUT]                                  (Cityscapes, equal iterations)
#   MINUTES=20 benchmarks/studies/cut_study.sh [OUT]                       (equal wall-clock time per run)
#   DATASET=photo2anime benchmarks/studies/cut_study.sh [OUT]
#   SIZE=128 benchmarks/studies/cut_study.sh [OUT]                         (another crop size; resize to 9/8 of it)
# Default OUT: experiments/cut_<dataset><SIZE>_<iters or minutes>. Checked to start and finish with
# ITERS=2 SEEDS=0,1 ONLY="CycleGAN,CUT BtoA" EVAL_FLAGS="--no-fid --segmenter-steps 5 --segmenter-size 32".
# Resumable as improvements_study.sh: call it again and it skips finished runs, continues interrupted
# ones and rewrites OUT/study.md and study.json.
# Equal time is only fair on one machine with nothing else running: keep PARALLEL at 1 for it.
#
# Environment: DATASET (cityscapes), SIZE (64), SHARED (default ../shared/data), SEEDS (0,1,2), ITERS (1000) or
# MINUTES (instead of ITERS), PARALLEL (1), EVAL_FLAGS (extra `cyclegan evaluate` flags), ONLY (comma-
# separated variants, e.g. "CycleGAN,CUT"; the baseline CycleGAN is always among them).
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
SHARED=${SHARED:-../shared/data}
# The settings of docs/RESULTS.md (b), (c) and (e): ResNet-6, ngf/ndf 16, 72 -> 64 px crops (SIZE). Each
# model keeps its own paper's networks and losses otherwise (CUT: anti-aliased, xavier, PatchNCE).
SIZE=${SIZE:-64}
FLAGS=(--netG resnet_6blocks --ngf 16 --ndf 16 --load-size $((SIZE * 9 / 8)) --crop-size "$SIZE"
       --val-fraction 0.1 --num-workers 1 --no-tensorboard)
if [[ -n "${MINUTES:-}" ]]; then
    BUDGET=(--minutes "$MINUTES"); SUFFIX="${MINUTES}min"
else
    BUDGET=(--iters "${ITERS:-1000}"); SUFFIX="${ITERS:-1000}it"
fi
case "${DATASET:-cityscapes}" in
cityscapes)
    DATA="$SHARED/cityscapes"
    OUT=${1:-experiments/cut_cityscapes${SIZE}_$SUFFIX}
    # As (b) and the paper's Cityscapes runs: labels <-> photo is not a colour-preserving task
    # (CycleGAN's identity term; CUT's default of 0 is the same value, so the flag fits all three).
    FLAGS+=(--lambda-identity 0)
    ;;
photo2anime)
    DATA="$SHARED/photo2anime_animegan"
    OUT=${1:-experiments/cut_photo2anime${SIZE}_$SUFFIX}
    ;;
*)
    echo "DATASET must be cityscapes or photo2anime, got '$DATASET'" >&2
    exit 2
    ;;
esac
exec cyclegan study cut --data "$DATA" --out "$OUT" "${BUDGET[@]}" \
    --seeds "${SEEDS:-0,1,2}" --parallel "${PARALLEL:-1}" --baseline CycleGAN ${ONLY:+--only "$ONLY"} \
    ${EVAL_FLAGS:+"--eval-flags=$EVAL_FLAGS"} -- "${FLAGS[@]}"
