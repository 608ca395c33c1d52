#!/usr/bin/env bash
# bench/scaling.sh: how the VAE epoch time grows with batch size and hidden width, nabla
# (2 threads) against PyTorch's best configuration, side by side (make bench-scaling).
# Each figure is the median epoch time over EPOCHS epochs (training loop only).
set -u
BUILD=${BUILD:-build}
DATA=${BENCH_DATA:-/usr/share/datasets/fashion-mnist}
EPOCHS=${EPOCHS:-2}
median() { sed -n "s/.*\"epoch_seconds\": \([0-9.eE+-]*\).*/\1/p" | sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "nan")}'; }
run() { # batch hidden
    local n p
    n=$("$BUILD/bench/bench_vae" "$DATA" "$EPOCHS" 2 "$1" "$2" | median)
    p=$(OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/torch_vae.py --data "$DATA" --epochs "$EPOCHS" \
        --threads 1 --batch-size "$1" --hidden "$2" --json 2>/dev/null | median)
    awk -v b="$1" -v h="$2" -v n="$n" -v p="$p" \
        'BEGIN { printf "%6d %7d %10.3f %10.3f %8.2fx\n", b, h, n, p, (n > 0 ? p / n : 0) }'
}
printf '%6s %7s %10s %10s %9s\n' batch hidden "nabla s" "torch s" "torch/nabla"
for b in 32 64 128 256 512; do run "$b" 400; done
for h in 200 800 1600; do run 128 "$h"; done
