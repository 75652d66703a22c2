#!/usr/bin/env bash
# The GPU figures of docs/PERFORMANCE.md, on one CUDA GPU. Run from the repository root with the
# package importable (installed, or PYTHONPATH=src):
#
#   benchmarks/gpu.sh speed  OUT   # conv throughput, training iteration (256 and 128 px), translation
#   benchmarks/gpu.sh parity OUT   # bf16 vs fp32 training over 4 seeds on the synthetic set (64 px)
#   benchmarks/gpu.sh paths  OUT   # CUDA code paths end to end: fp16 train, resume, translate, export
#   benchmarks/gpu.sh compile OUT  # the training iteration with torch.compile
#   benchmarks/gpu.sh fast  OUT    # CUDA graphs (target 3x the reference iteration at 256 px) with
#                                  # loss curves against the uncaptured step, batched translation of
#                                  # a folder (target 5x the reference's images/s), --precision auto
#   benchmarks/gpu.sh study OUT    # issue #13's improvements study: 6 variants x 3 seeds, Cityscapes 64 px
#   benchmarks/gpu.sh parity128 OUT  # reference parity, 3 seeds at once (Cityscapes 128 px, 3,600 iterations)
#   benchmarks/gpu.sh cut OUT      # issue #23: s/iteration and peak GPU memory of CycleGAN, CUT, FastCUT
#                                  # at 256 px ResNet-9, batch 1 (the paper's table: 0.40 / 0.24 / 0.15 s)
#
# Each part writes its tables (*.txt, *.json, *.md) into OUT. The study and parity128 read
# Cityscapes from $SHARED/cityscapes (default ../shared/data, as benchmarks/studies/reference_parity.sh), which
# does not travel to a lent machine by itself: copy ../shared/data/cityscapes (17 MB) into an ignored
# folder of the checkout, carry it, and set SHARED to its parent. Those two parts also leave their
# runs (checkpoints included) under OUT, more files than a lent machine sends back: give them a
# scratch folder and copy back OUT/*.txt and OUT/*.tar.gz (the tables, logs, scores and loss logs
# of every run, without weights), e.g. `benchmarks/gpu.sh study /tmp/s && cp /tmp/s/*.txt /tmp/s/*.tar.gz "$OUT"`.
# Carry the FCN-score segmenter's cache too (~/.cache/cyclegan/segmenters, 0.6 MB) and point
# CYCLEGAN_CACHE at it: the scores then come from the very segmenter the CPU runs were scored with.
#
# How the 2026-11-30 session ran it on the lent H200 (one call; the machine's `python` is not the one
# with torch, /opt/torch/.venv/bin's is), after `mkdir -p .gpucarry/data .gpucarry/cache &&
# cp -r ../shared/data/cityscapes .gpucarry/data/ && cp -r ~/.cache/cyclegan/segmenters .gpucarry/cache/`
# with /.gpucarry/ in .git/info/exclude, and `.gpucarry` carried:
#   export PATH=/opt/torch/.venv/bin:$PATH PYTHONPATH=$PWD/src CYCLEGAN_CACHE=$PWD/.gpucarry/cache \
#          SHARED=$PWD/.gpucarry/data
#   timeout 360 benchmarks/gpu.sh parity128 /tmp/p; timeout 300 benchmarks/gpu.sh fast /tmp/f
#   cd /tmp && tar czf $OUT/results.tar.gz --exclude=checkpoints --exclude=gallery --exclude='*.safetensors' \
#          --exclude=synth64 --exclude='*.png' p f
set -euo pipefail
part=${1:?usage: benchmarks/gpu.sh speed|parity|paths|compile|fast|study|parity128|cut OUT}
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
    python "$BENCH/speed/conv_throughput.py" --device cuda --size 256 --dtypes fp32,bf16,fp16 --repeats 20 --warmup 3 \
        --json "$OUT/conv256.json" | tee "$OUT/conv256.txt"
    python "$BENCH/speed/train_step.py" --device cuda --size 256 --variants fp32,fp32+nobatch,bf16,bf16+cl,fp16,fp16+cl \
        --repeats 40 --warmup 5 --json "$OUT/train256.json" | tee "$OUT/train256.txt"
    python "$BENCH/speed/train_step.py" --device cuda --size 128 --netG resnet_6blocks \
        --variants fp32,bf16,bf16+cl,fp16+cl --repeats 40 --warmup 5 --json "$OUT/train128.json" | tee "$OUT/train128.txt"
    python "$BENCH/speed/translate.py" --device cuda --sizes 256,512,1024x768 --variants fp32,bf16,bf16+cl,fp16+cl \
        --repeats 40 --warmup 5 --json "$OUT/translate.json" | tee "$OUT/translate.txt"
    ;;
compile)
    python "$BENCH/speed/train_step.py" --device cuda --size 256 --variants bf16+cl,bf16+cl+compile --repeats 40 --warmup 5 \
        --no-memory --json "$OUT/train256_compile.json" | tee "$OUT/train256_compile.txt"
    ;;
fast)
    # 0. First, in seconds: does the whole-iteration CUDA graph train as the ordinary step does (fp32,
    #    then bf16)? If its last line says "captured: no", part 2's graph variants measured the
    #    ordinary step and part 3 compares two uncaptured runs.
    python "$BENCH/speed/captured_check.py" --device cuda --size 64 --iterations 20 | tee "$OUT/captured_check.txt"
    python "$BENCH/speed/captured_check.py" --device cuda --size 64 --iterations 20 --precision bf16 \
        | tee "$OUT/captured_check_bf16.txt"
    # 0b. The probe of a --cuda-graphs run times captured replays (training/arithmetic_probe.py): its
    #     table and choice beside the ordinary step's, 256 px ResNet-9 (about 20 s each).
    python -m cyclegan tune --job train --size 256 --budget 15 --device cuda | tee "$OUT/tune256.txt"
    python -m cyclegan tune --job train --size 256 --budget 15 --device cuda --cuda-graphs | tee "$OUT/tune256_graphs.txt"
    # Ordered so that a run cut short still returns the two targets first (issue #12).
    # 1. A folder of 64 images at 256 px: the reference's loop against translate_files per batch size.
    #    With 2 file threads (the earlier default) and 8 (the default on a GPU host with 8+ cores since
    #    the H200 showed the files, not the network, to be most of the work).
    python "$BENCH/speed/translate_folder.py" --device cuda --size 256 --count 64 --batches auto,1,16 --io-threads 2,8 \
        --repeats 5 --warmup 1 --precision fp32 --json "$OUT/folder256.json" | tee "$OUT/folder256.txt"
    # 2. The training iteration, 256 px ResNet-9, batch 1: uncaptured against the whole iteration in
    #    one CUDA graph (training/captured_step.py; issue #22's target: 3x the reference), in fp32 and
    #    bf16 (whose cheaper kernels the host no longer hides once captured) and channels-last, with
    #    the kernel time of one iteration of each (the profile's "Self CUDA time total") and the
    #    peak GPU memory (the capture keeps its own pool).
    python "$BENCH/speed/train_step.py" --device cuda --size 256 \
        --variants fp32,fp32+graphs,bf16,bf16+graphs,bf16+cl+graphs,fp32+cl+graphs --profile \
        --repeats 40 --warmup 10 --probe-iterations 6 --json "$OUT/train256_graphs.json" | tee "$OUT/train256_graphs.txt"
    # 3. Loss curves with and without CUDA graphs: the same 300 iterations, same seed; the captured
    #    run must end where the uncaptured one does (both fp32; the captured step's Adam is the
    #    fused kernel, so the curves part by rounding only), and its s/it says what a whole run gains.
    data="$OUT/synth64"
    [ -d "$data" ] || python -m cyclegan data synth "$data" --size 64 --train 200 --test 20 --seed 0
    for graphs in --no-cuda-graphs --cuda-graphs; do
        python -m cyclegan train --data "$data" --runs-dir "$OUT/runs" --name "curve$graphs" --max-iters 300 \
            --epochs 1 --epochs-decay 1 --netG resnet_6blocks --ngf 32 --load-size 72 --crop-size 64 \
            --num-workers 2 --no-progress --no-tensorboard --log-every 10 --precision fp32 --no-channels-last $graphs
    done
    python - "$OUT/runs/curve--no-cuda-graphs/log.jsonl" "$OUT/runs/curve--cuda-graphs/log.jsonl" <<'PY' | tee "$OUT/curves.txt"
import json, sys
plain, graphs = ([json.loads(line) for line in open(path)] for path in sys.argv[1:])
for key in ("loss_G_AB", "loss_G_BA", "loss_cycle_A", "loss_cycle_B", "loss_D_A", "loss_D_B"):
    a, b = [r[key] for r in plain if key in r], [r[key] for r in graphs if key in r]
    worst = max(abs(x - y) / max(abs(x), 1e-8) for x, y in zip(a, b))
    print(f"{key}: {len(a)} logged points, largest relative difference {worst:.2e}, last {a[-1]:.4f} vs {b[-1]:.4f}")
for name, records in (("uncaptured", plain), ("captured", graphs)):
    seconds = sorted(r["seconds_per_iteration"] for r in records[len(records) // 2:] if "seconds_per_iteration" in r)
    print(f"{name}: median s/it over the second half {seconds[len(seconds) // 2]:.4f}")
PY
    # 4. Large images with --precision auto (the automatic batch is capped by pixels: 2 at 1024 px),
    #    then torch.compile without graphs for comparison. The H200 ran parts 1-4 in about 320 s before
    #    part 2 gained its bf16 and channels-last variants and memory probes (one process each, a few
    #    seconds of CUDA start-up apiece): expect about 7 minutes; run `fast` alone in a call.
    python "$BENCH/speed/translate_folder.py" --device cuda --size 1024 --count 16 --batches auto,1,2,4 --repeats 3 \
        --warmup 1 --precision auto --json "$OUT/folder1024_auto.json" | tee "$OUT/folder1024_auto.txt"
    python "$BENCH/speed/train_step.py" --device cuda --size 256 --variants fp32,fp32+compile \
        --repeats 40 --warmup 10 --no-memory --json "$OUT/train256_compile.json" | tee "$OUT/train256_compile.txt"
    ;;
parity)
    data="$OUT/synth64"
    [ -d "$data" ] || python -m cyclegan data synth "$data" --size 64 --train 600 --test 100 --seed 0
    python "$BENCH/studies/precision_parity.py" --data "$data" --out "$OUT/precision_synth64" --iters "${ITERS:-2000}" \
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
study)
    # The CPU's study script (benchmarks/studies/improvements_study.sh: same setting, same commands) with six
    # runs at once. Sizing, estimated from docs/PERFORMANCE.md's H100 figures (not yet measured for
    # this study): the bf16/fp32 parity trained 8 runs of 2,000 iterations of this very model (64 px,
    # ResNet-6, ngf 16) four at a time in 3.5 minutes, i.e. about 0.045 s per iteration per run with
    # four sharing the GPU (at batch 1 the host, not the GPU, sets the pace, hence several runs at
    # once). Assume 0.06 s with six at once on 16 host cores, and 1.3x for the options (blur layers,
    # spectral norm's power iteration and DiffAugment add small kernels): 1,000 iterations take about
    # 80 s, plus about 30 s per run to start the processes and evaluate (8 + 8 test images); 18 runs,
    # six at a time, are three rounds of about 110 s = 5.5 minutes, plus the warm-up (one 1-iteration
    # run evaluated first, which trains the FCN-score segmenter once, about a minute): about 6.5
    # minutes, inside the ~8 planned with room for the guesses to be 20% off. FID and KID are skipped
    # there (the Inception weights, ~85 MB, are more than a call can carry), so the study's primary
    # scores are the two class IoUs; and the runs' validation (each holds out 10% of its training
    # images) tracks the cycle error only and keeps no best checkpoint by KID, so the GPU study
    # compares final checkpoints. ITERS=... PARALLEL=... override the sizing.
    PARALLEL=${PARALLEL:-6} ITERS=${ITERS:-1000} "$BENCH/studies/improvements_study.sh" "$OUT/improvements" \
        | tee "$OUT/study.txt"
    tar -czf "$OUT/improvements.tar.gz" -C "$OUT" --exclude=checkpoints --exclude=gallery \
        --exclude='*.safetensors' improvements
    ;;
parity128)
    # benchmarks/studies/reference_parity.sh for seeds 0, 1 and 2 at once, training on the GPU (the script
    # evaluates on the CPU, as the seed-0 run of docs/RESULTS.md was). Sizing: the 128 px ResNet-6
    # iteration took 0.039 s alone on the H100 at ngf 64 (docs/PERFORMANCE.md), host-bound, so ngf 32
    # costs about the same; three at once, about 0.05 s: 3,600 iterations in about 3 minutes, plus
    # start-up and 20 epoch-end checkpoints. Meanwhile a 1-iteration CPU run is evaluated in the
    # background, which trains and caches the FCN-score segmenter (600 steps at 128 px: 202 s on one
    # thread of the development machine; 8 threads here), so that the three evaluations find it
    # cached and take seconds: about 4-5 minutes in all, inside the 10-minute limit. Measured on the
    # H200 (2026-11-30, the segmenter's cache carried along with CYCLEGAN_CACHE): 177 s of training
    # per seed, three at once, 206 s for the whole part.
    SHARED=${SHARED:-../shared/data}
    export SHARED
    warm="$OUT/reference_parity_warm_up"
    (OMP_NUM_THREADS=8 python -m cyclegan train --data "$SHARED/cityscapes" --runs-dir "$warm" --name run --seed 0 \
         --device cpu --max-iters 1 --epochs 1 --epochs-decay 1 --load-size 143 --crop-size 128 \
         --netG resnet_6blocks --ngf 32 --num-workers 0 --no-progress --no-tensorboard \
     && OMP_NUM_THREADS=8 python -m cyclegan evaluate "$warm/run" --data "$SHARED/cityscapes" --size 128 --no-fid \
         --device cpu) > "$OUT/parity128_warm_up.txt" 2>&1 &
    warm_pid=$!
    pids=()
    for seed in 0 1 2; do
        "$BENCH/studies/reference_parity.sh" "$seed" "$OUT/reference_parity" > "$OUT/parity128_seed$seed.txt" 2>&1 &
        pids+=($!)
    done
    failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    wait "$warm_pid" || echo "segmenter warm-up failed: see $OUT/parity128_warm_up.txt"
    "$BENCH/studies/reference_parity.sh" summary "$OUT/reference_parity" | tee "$OUT/parity128.txt"
    tar -czf "$OUT/reference_parity.tar.gz" -C "$OUT" --exclude=checkpoints --exclude=gallery \
        --exclude='*.safetensors' reference_parity
    [ "$failed" = 0 ] || { echo "a seed failed: see $OUT/parity128_seed*.txt" >&2; exit 1; }
    ;;
cut)
    # Each model in its own process beside the reference iteration, fp32 then bf16; the CPU's
    # figures (docs/RESULTS.md (f)) found CUT slower than CycleGAN at 64 and 256 px. Sizing: the
    # H100's 256 px CycleGAN iteration is about 30 ms, so 3 models x 2 variants x 50 iterations plus
    # the memory probes take well under two minutes.
    for model in cyclegan cut fastcut; do
        python "$BENCH/speed/train_step.py" --device cuda --size 256 --netG resnet_9blocks --model "$model" \
            --variants fp32,bf16 --repeats 40 --warmup 10 --memory --no-floor \
            --json "$OUT/train256_$model.json" | tee "$OUT/train256_$model.txt"
    done
    ;;
*)
    echo "unknown part $part: use speed, parity, paths, compile, fast, study, parity128 or cut" >&2
    exit 2
    ;;
esac
