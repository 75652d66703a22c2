#!/usr/bin/env bash
# The GPU figures of docs/PERFORMANCE.md, on one CUDA GPU. Run from the repository root with the
# package importable (installed, or PYTHONPATH=src):
#
#   benchmarks/gpu.sh speed  OUT   # conv throughput, training iteration (256 and 128 px), translation
#   benchmarks/gpu.sh parity OUT   # bf16 vs fp32 training over 4 seeds on the synthetic set (64 px)
#   benchmarks/gpu.sh paths  OUT   # CUDA code paths end to end: fp16 train, resume, translate, export
#   benchmarks/gpu.sh compile OUT  # the training iteration with torch.compile
#
# Each part writes its tables (*.txt, *.json, *.md) into OUT.
set -euo pipefail
part=${1:?usage: benchmarks/gpu.sh speed|parity|paths|compile OUT}
OUT=$(realpath -m "${2:?usage: benchmarks/gpu.sh PART OUT}")
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
BENCH=$(dirname "$(realpath "$0")")
python - <<'PY'
import torch
assert torch.cuda.is_available(), "benchmarks/gpu.sh needs a CUDA GPU"
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())
PY

case "$part" in
speed)
    python "$BENCH/conv_throughput.py" --device cuda --size 256 --dtypes fp32,bf16,fp16 --repeats 20 --warmup 3 \
        --json "$OUT/conv256.json" | tee "$OUT/conv256.txt"
    python "$BENCH/train_step.py" --device cuda --size 256 --variants fp32,fp32+nobatch,bf16,bf16+cl,fp16,fp16+cl \
        --repeats 40 --warmup 5 --json "$OUT/train256.json" | tee "$OUT/train256.txt"
    python "$BENCH/train_step.py" --device cuda --size 128 --netG resnet_6blocks \
        --variants fp32,bf16,bf16+cl,fp16+cl --repeats 40 --warmup 5 --json "$OUT/train128.json" | tee "$OUT/train128.txt"
    python "$BENCH/translate.py" --device cuda --sizes 256,512,1024x768 --variants fp32,bf16,bf16+cl,fp16+cl \
        --repeats 40 --warmup 5 --json "$OUT/translate.json" | tee "$OUT/translate.txt"
    ;;
compile)
    python "$BENCH/train_step.py" --device cuda --size 256 --variants bf16+cl,bf16+cl+compile --repeats 40 --warmup 5 \
        --no-memory --json "$OUT/train256_compile.json" | tee "$OUT/train256_compile.txt"
    ;;
parity)
    data="$OUT/synth64"
    [ -d "$data" ] || python -m cyclegan data synth "$data" --size 64 --train 600 --test 100 --seed 0
    python "$BENCH/precision_parity.py" --data "$data" --out "$OUT/precision_synth64" --iters "${ITERS:-2000}" \
        --seeds "${SEEDS:-0,1,2,3}" --parallel "${PARALLEL:-4}" --eval-flags=--no-fid \
        -- --netG resnet_6blocks --ngf 16 --ndf 16 --norm instance --load-size 72 --crop-size 64 \
           --num-workers 2 --no-tensorboard --lambda-identity 0 | tee "$OUT/parity.txt"
    ;;
paths)
    data="$OUT/synth32"
    [ -d "$data" ] || python -m cyclegan data synth "$data" --size 32 --train 40 --test 8 --seed 0
    small=(--netG resnet_6blocks --ngf 8 --ndf 8 --load-size 32 --crop-size 32 --no-tensorboard --no-progress)
    python -m cyclegan train --data "$data" --runs-dir "$OUT/runs" --name fp16 --precision fp16 --channels-last \
        --max-iters 30 --epochs 1 --epochs-decay 1 --num-workers 2 "${small[@]}"
    python -m cyclegan train --resume "$OUT/runs/fp16" --max-iters 60 --no-progress
    python -m cyclegan translate "$OUT/runs/fp16" "$data/testA" --out "$OUT/translated" --precision bf16 --no-progress
    echo "translated: $(ls "$OUT/translated" | wc -l) of $(ls "$data/testA" | wc -l) images"
    python -m cyclegan translate "$OUT/runs/fp16" "$data/testA" --out "$OUT/translated_tiled" --tile 16 --overlap 4 \
        --no-progress
    python -m cyclegan export "$OUT/runs/fp16" --onnx "$OUT/g.onnx" || echo "export failed (exit $?)"
    ;;
*)
    echo "unknown part $part: use speed, parity, paths or compile" >&2
    exit 2
    ;;
esac
