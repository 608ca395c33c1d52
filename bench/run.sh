#!/usr/bin/env bash
# bench/run.sh: nabla against its peers, measured side by side in one run (make bench).
#
#   VAE training epoch on Fashion-MNIST (784-400-20, batch 128): nabla with 2 and 1 threads
#   against PyTorch's best configuration on this machine (OPENBLAS_NUM_THREADS=2,
#   torch.set_num_threads(1)); peak resident memory of both; then every VAE matmul shape
#   against OpenBLAS sgemm (bench/bench_gemm.c).
#
# Each training figure is the median epoch time over EPOCHS epochs (training loop only, as both
# programs measure it). Ratios are peer / nabla: above 1 means nabla is faster or smaller.
# Absolute times drift on a shared machine; the ratios, taken in the same run, are the result.
set -u
BUILD=${BUILD:-build}
DATA=${BENCH_DATA:-/usr/share/datasets/fashion-mnist}
EPOCHS=${EPOCHS:-3}
PY=/usr/bin/python3

median_field() { # median of a JSON field over lines on stdin
    sed -n "s/.*\"$1\": \([0-9.eE+-]*\).*/\1/p" | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'
}
max_field() {
    sed -n "s/.*\"$1\": \([0-9.eE+-]*\).*/\1/p" | sort -g | tail -n 1
}
row() { printf '%-44s %12s %12s %10s\n' "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", b / a; else print "n/a" }'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo

if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -f "$DATA/train-images-idx3-ubyte" ]; then
    echo "bench: no Fashion-MNIST in $DATA (make data-fashion); skipping the VAE epoch"
else
    n2=$("$BUILD/bench/bench_vae" "$DATA" "$EPOCHS" 2)
    n1=$("$BUILD/bench/bench_vae" "$DATA" "$EPOCHS" 1)
    if $PY -c 'import torch' 2>/dev/null; then
        pt=$(OPENBLAS_NUM_THREADS=2 $PY bench/torch_vae.py --data "$DATA" --epochs "$EPOCHS" --seed 1 --threads 1 --json 2>/dev/null)
    else
        pt=""
        echo "bench: PyTorch (Debian python3-torch) is missing; the PyTorch column is empty"
    fi
    t2=$(echo "$n2" | median_field epoch_seconds)
    t1=$(echo "$n1" | median_field epoch_seconds)
    tp=$(echo "$pt" | median_field epoch_seconds)
    row "case" "nabla" "peer" "peer/nabla"
    row "VAE epoch 60k, s (nabla 2 thr vs PyTorch best)" "$t2" "${tp:-n/a}" "$(ratio "$t2" "$tp")"
    row "VAE epoch 60k, s (nabla 1 thr vs PyTorch best)" "$t1" "${tp:-n/a}" "$(ratio "$t1" "$tp")"
    row "VAE epoch 60k, s (nabla 2 thr vs nabla 1 thr)" "$t2" "$t1" "$(ratio "$t2" "$t1")"
    m2=$(echo "$n2" | max_field peak_rss_mb)
    mp=$(echo "$pt" | max_field peak_rss_mb)
    row "peak RSS while training, MB (vs PyTorch)" "$m2" "${mp:-n/a}" "$(ratio "$m2" "$mp")"
    echo
fi

if [ -x "$BUILD/bench/bench_gemm" ]; then
    "$BUILD/bench/bench_gemm"
else
    echo "bench: no OpenBLAS (Debian libopenblas-dev): gemm comparison skipped"
fi
