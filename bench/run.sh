#!/usr/bin/env bash
# bench/run.sh: nabla against its peers, measured side by side in one run (make bench).
#
#   VAE training epoch on Fashion-MNIST (784-400-20, batch 128): nabla with 2 and 1 threads
#   against PyTorch's best configuration on this machine (OPENBLAS_NUM_THREADS=2,
#   torch.set_num_threads(1)); peak resident memory of both; then every VAE matmul shape
#   against OpenBLAS sgemm (bench/bench_gemm.c); the conv VAE's layers against PyTorch
#   (bench/bench_conv.c, bench/torch_conv.py); each op's forward + backward against PyTorch's
#   (bench/ops.sh, which skips itself without PyTorch).
#
# The three trainings (nabla on 2 threads, nabla on 1, PyTorch) run in turn, ROUNDS times: A B C
# A B C ... Each run trains EPOCHS epochs and reports its last (the first pays for warming up);
# each ratio is taken within a round, and the table prints the median over rounds of the times
# and of the ratios. Taking turns keeps the ratios fair when the shared machine's speed drifts
# over minutes (it does here: the same epoch has measured 2.0 s and 2.6 s an hour apart).
# Ratios are peer / nabla: above 1 means nabla is faster or smaller.
#
# Fair peers: the header (bench/peers.sh) prints the core OpenBLAS chose; on its Prescott
# fallback, OPENBLAS_CORETYPE is set for both peers to the nearest core it knows.
#
# A busy machine: after the rounds, BUSY_ROUNDS more rounds of nabla on 1 and 2 threads run next
# to one other CPU-bound process (a shell loop, killed at the end), the case of a laptop or a
# shared server; the row shows 2 threads against 1 (below 1.00: two threads are slower).
set -u
BUILD=${BUILD:-build}
DATA=${BENCH_DATA:-/usr/share/datasets/fashion-mnist}
EPOCHS=${EPOCHS:-2}
ROUNDS=${ROUNDS:-5}
PY=/usr/bin/python3

last_field() { # the field's value on the last line that has it
    sed -n "s/.*\"$1\": \([0-9.eE+-]*\).*/\1/p" | tail -n 1
}
max_field() {
    sed -n "s/.*\"$1\": \([0-9.eE+-]*\).*/\1/p" | sort -g | tail -n 1
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}'; }
row() { printf '%-44s %12s %12s %10s\n' "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", b / a; else print "n/a" }'; }

. "$(dirname "$0")/peers.sh"
peers_header "$BUILD/bench/bench_vae"
echo

if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -f "$DATA/train-images-idx3-ubyte" ]; then
    echo "bench: no Fashion-MNIST in $DATA (make data-fashion); skipping the VAE epoch"
else
    have_torch=0
    if $PY -c 'import torch' 2>/dev/null; then
        have_torch=1
    else
        echo "bench: PyTorch (Debian python3-torch) is missing; the PyTorch column is empty"
    fi
    t2s="" t1s="" tps="" r2s="" r1s="" rts="" m2=0 mp=0
    for r in $(seq "$ROUNDS"); do
        n2=$("$BUILD/bench/bench_vae" "$DATA" "$EPOCHS" 2)
        n1=$("$BUILD/bench/bench_vae" "$DATA" "$EPOCHS" 1)
        pt=""
        [ $have_torch = 1 ] && pt=$(OPENBLAS_NUM_THREADS=2 $PY bench/torch_vae.py --data "$DATA" \
            --epochs "$EPOCHS" --seed 1 --threads 1 --json 2>/dev/null)
        t2=$(echo "$n2" | last_field epoch_seconds)
        t1=$(echo "$n1" | last_field epoch_seconds)
        tp=$(echo "$pt" | last_field epoch_seconds)
        echo "round $r of $ROUNDS: nabla 2 threads ${t2} s, 1 thread ${t1} s, PyTorch ${tp:-n/a} s" >&2
        t2s="$t2s $t2" t1s="$t1s $t1" tps="$tps $tp"
        r2s="$r2s $(ratio "$t2" "$tp")" r1s="$r1s $(ratio "$t1" "$tp")" rts="$rts $(ratio "$t2" "$t1")"
        m2=$(printf '%s\n%s\n' "$m2" "$(echo "$n2" | max_field peak_rss_mb)" | sort -g | tail -n 1)
        [ -n "$pt" ] && mp=$(printf '%s\n%s\n' "$mp" "$(echo "$pt" | max_field peak_rss_mb)" | sort -g | tail -n 1)
    done
    med() { echo "$1" | tr ' ' '\n' | grep -v '^$' | grep -v 'n/a' | median; }
    medx() { v=$(med "$1"); [ "$v" = n/a ] && echo n/a || echo "${v}x"; }
    tp=$(med "$tps")
    row "case (medians of $ROUNDS rounds)" "nabla" "peer" "peer/nabla"
    row "VAE epoch 60k, s (nabla 2 thr vs PyTorch best)" "$(med "$t2s")" "${tp:-n/a}" "$(medx "$r2s")"
    vae_t2=$(med "$t2s") # against the FLOP floor once bench_gemm has measured the peak (below)
    row "VAE epoch 60k, s (nabla 1 thr vs PyTorch best)" "$(med "$t1s")" "${tp:-n/a}" "$(medx "$r1s")"
    row "VAE epoch 60k, s (nabla 2 thr vs nabla 1 thr)" "$(med "$t2s")" "$(med "$t1s")" "$(medx "$rts")"
    [ "$mp" = 0 ] && mp=""
    rm=$(ratio "$m2" "$mp")
    row "peak RSS while training, MB (vs PyTorch)" "$m2" "${mp:-n/a}" "$rm$([ "$rm" = n/a ] || echo x)"
    echo "per round, PyTorch/nabla-2: $r2s; PyTorch/nabla-1: $r1s; nabla-1/nabla-2: $rts"

    # One core busy: 2 and 1 threads in turn next to a CPU-bound loop; each run is bounded.
    BUSY_ROUNDS=${BUSY_ROUNDS:-2}
    sh -c 'while :; do :; done' &
    busy=$!
    trap 'kill $busy 2>/dev/null' EXIT
    b2s="" b1s="" rbs=""
    for r in $(seq "$BUSY_ROUNDS"); do
        t2=$(timeout 600 "$BUILD/bench/bench_vae" "$DATA" "$EPOCHS" 2 | last_field epoch_seconds)
        t1=$(timeout 600 "$BUILD/bench/bench_vae" "$DATA" "$EPOCHS" 1 | last_field epoch_seconds)
        echo "busy round $r of $BUSY_ROUNDS: nabla 2 threads ${t2:-timeout} s, 1 thread ${t1:-timeout} s" >&2
        b2s="$b2s $t2" b1s="$b1s $t1" rbs="$rbs $(ratio "$t2" "$t1")"
    done
    kill $busy 2>/dev/null
    trap - EXIT
    row "one core busy: 2 thr vs 1 thr (${BUSY_ROUNDS} rounds)" "$(med "$b2s")" "$(med "$b1s")" "$(medx "$rbs")"
    echo "per busy round, nabla-1/nabla-2: $rbs"
    echo
fi

# The conv VAE's layers (batch 128, forward + backward each): nabla on 1 and 2 threads against
# PyTorch (oneDNN) with torch.set_num_threads 1 and 2, in turn, CONV_ROUNDS times. Each run
# reports per layer its fastest batch of steps (bench/bench_conv.c, bench/torch_conv.py); the
# table shows medians over rounds, and PyTorch's best setting per layer against each nabla column.
if [ -x "$BUILD/bench/bench_conv" ]; then
    CONV_ROUNDS=${CONV_ROUNDS:-3}
    runs=$(mktemp)
    have_torch=0
    $PY -c 'import torch' 2>/dev/null && have_torch=1
    for r in $(seq "$CONV_ROUNDS"); do
        for t in 1 2; do
            "$BUILD/bench/bench_conv" "$t" 20 | sed "s/^/nabla$t /" >>"$runs"
            [ $have_torch = 1 ] && OMP_NUM_THREADS=$t $PY bench/torch_conv.py --threads "$t" --reps 20 \
                2>/dev/null | sed "s/^/torch$t /" >>"$runs"
        done
        echo "conv round $r of $CONV_ROUNDS done" >&2
    done
    conv_table() { # $1: the JSON field (ms: wall time of the fastest batch; cpu_ms: its CPU time)
    awk -v field="$1" '
        { cfg = $1; match($0, /"layer": "[^"]*"/); layer = substr($0, RSTART + 10, RLENGTH - 11)
          if (!match($0, "\"" field "\": [0-9.]+")) next
          ms = substr($0, RSTART + length(field) + 4, RLENGTH - length(field) - 4)
          if (!(layer in seen)) { seen[layer] = 1; order[++n] = layer }
          k = cfg SUBSEP layer; cnt[k]++; v[k, cnt[k]] = ms }
        function med(k,   m, i, j, t, a) {
            m = cnt[k]; if (!m) return ""
            for (i = 1; i <= m; i++) a[i] = v[k, i]
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return a[int((m + 1) / 2)] }
        function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2fx", b / a) : "n/a" }
        END {
            printf "%-24s %9s %9s %9s %9s %13s %12s\n", "layer", "nabla 1t", "nabla 2t", "torch 1t", "torch 2t", "torch1/nabla1", "best/nabla2"
            for (i = 1; i <= n; i++) {
                L = order[i]; n1 = med("nabla1" SUBSEP L); n2 = med("nabla2" SUBSEP L)
                p1 = med("torch1" SUBSEP L); p2 = med("torch2" SUBSEP L)
                best = p1; if (p2 != "" && (best == "" || p2 + 0 < best + 0)) best = p2
                printf "%-24s %9s %9s %9s %9s %13s %12s\n", L, n1, n2, (p1 == "" ? "n/a" : p1), (p2 == "" ? "n/a" : p2), ratio(n1, p1), ratio(n2, best)
            }
        }' "$runs"
    }
    echo "conv VAE layers, batch 128, forward+backward, ms per step (fastest batch; medians of $CONV_ROUNDS rounds)"
    conv_table ms
    echo "the same batches' process CPU time, ms per step (all threads; less disturbed by other load)"
    conv_table cpu_ms
    echo "(nabla on 1 thread against PyTorch on 1; on 2 against PyTorch's faster setting per layer (best); above 1 means nabla is faster)"
    rm -f "$runs"
    echo
fi

# The conv VAE's training epoch on the shipped digits (9,000 images, batch 128, defaults): nabla
# (build/vae train --arch conv) on 2 and 1 threads against PyTorch (bench/torch_conv_vae.py, the
# same model) on 1 thread, in turn, CONV_VAE_ROUNDS times, and PyTorch on 2 threads once (it is
# the slower setting here: oneDNN's transposed convolutions). Times are the training loop's
# (samples per second on both sides: neither counts the test pass). Peak RSS of each, from
# /usr/bin/time when it is installed.
CONV_VAE_ROUNDS=${CONV_VAE_ROUNDS:-3}
if [ "$CONV_VAE_ROUNDS" -gt 0 ] && [ -x "$BUILD/vae" ] && [ -f data/digits/train-images-idx3-ubyte.gz ]; then
    have_torch=0
    $PY -c 'import torch' 2>/dev/null && have_torch=1
    timed() { # runs "$@" and prints its output, then "peak_rss_mb: X" if /usr/bin/time is there
        if [ -x /usr/bin/time ]; then
            /usr/bin/time -f 'peak_rss_kb: %M' -o "$tmp/rss" "$@"
            awk '/peak_rss_kb/ { printf "peak_rss_mb: %.0f\n", $2 / 1024 }' "$tmp/rss"
        else
            "$@"
        fi
    }
    sps_nabla() { sed -n 's/.*"samples_per_second": \([0-9.]*\).*/\1/p' "$1/metrics.jsonl" | tail -n 1; }
    sps_torch() { echo "$1" | last_field samples_per_second; }
    secs() { awk -v s="$1" 'BEGIN { if (s + 0 > 0) printf "%.2f", 9000 / s; else print "n/a" }'; }
    tmp=$(mktemp -d)
    c2s="" c1s="" cps="" q2s="" q1s="" q21s="" rss2=0 rssp=0
    for r in $(seq "$CONV_VAE_ROUNDS"); do
        for t in 2 1; do
            rm -rf "$tmp/out$t"
            out=$(timed "$BUILD/vae" train --arch conv --epochs 1 --seed 1 --threads "$t" --out "$tmp/out$t" 2>&1)
            v=$(secs "$(sps_nabla "$tmp/out$t")")
            if [ "$t" = 2 ]; then
                c2=$v
                rss2=$(printf '%s\n%s\n' "$rss2" "$(echo "$out" | sed -n 's/^peak_rss_mb: //p')" | sort -g | tail -n 1)
            else
                c1=$v
            fi
        done
        cp=""
        if [ $have_torch = 1 ]; then
            pt=$(timed $PY bench/torch_conv_vae.py --epochs 1 --seed 1 --threads 1 --json 2>/dev/null)
            cp=$(secs "$(sps_torch "$pt")")
            rssp=$(printf '%s\n%s\n' "$rssp" "$(echo "$pt" | sed -n 's/^peak_rss_mb: //p')" | sort -g | tail -n 1)
        fi
        echo "conv VAE round $r of $CONV_VAE_ROUNDS: nabla 2 threads ${c2} s, 1 thread ${c1} s, PyTorch 1 thread ${cp:-n/a} s" >&2
        c2s="$c2s $c2" c1s="$c1s $c1" cps="$cps $cp"
        q2s="$q2s $(ratio "$c2" "$cp")" q1s="$q1s $(ratio "$c1" "$cp")" q21s="$q21s $(ratio "$c2" "$c1")"
    done
    cp2=""
    [ $have_torch = 1 ] && cp2=$(secs "$(sps_torch "$($PY bench/torch_conv_vae.py --epochs 1 --seed 1 --threads 2 --json 2>/dev/null)")")
    med() { echo "$1" | tr ' ' '\n' | grep -v '^$' | grep -v 'n/a' | median; }
    medx() { v=$(med "$1"); [ "$v" = n/a ] && echo n/a || echo "${v}x"; }
    echo "conv VAE epoch on the shipped digits, training loop s (medians of $CONV_VAE_ROUNDS rounds; PyTorch 2 threads once: ${cp2:-n/a} s)"
    row "case" "nabla" "peer" "peer/nabla"
    row "conv VAE epoch, s (nabla 2 thr vs PyTorch 1 thr)" "$(med "$c2s")" "$(med "$cps")" "$(medx "$q2s")"
    row "conv VAE epoch, s (nabla 1 thr vs PyTorch 1 thr)" "$(med "$c1s")" "$(med "$cps")" "$(medx "$q1s")"
    row "conv VAE epoch, s (nabla 2 thr vs nabla 1 thr)" "$(med "$c2s")" "$(med "$c1s")" "$(medx "$q21s")"
    [ "$rssp" = 0 ] && rssp=""
    [ "$rss2" = 0 ] && rss2=""
    rr=$(ratio "${rss2:-0}" "${rssp:-0}")
    row "conv VAE peak RSS, MB (nabla 2 thr vs PyTorch)" "${rss2:-n/a}" "${rssp:-n/a}" "$rr$([ "$rr" = n/a ] || echo x)"
    echo "per round, PyTorch-1/nabla-2: $q2s; PyTorch-1/nabla-1: $q1s; nabla-1/nabla-2: $q21s"
    rm -rf "$tmp"
    echo
fi

if [ -x "$BUILD/bench/bench_gemm" ]; then
    gemm_out=$("$BUILD/bench/bench_gemm")
    echo "$gemm_out"
    # The FLOP floor of the VAE epoch: its matmuls, 3.28 MFLOP per example (forward 1.30: 784x400,
    # 400x40, 20x400, 400x784, times 2; backward twice that less the first layer's input
    # gradient), 196.8 GFLOP for 60,000 examples, at the FMA peak just measured on 2 cores.
    peak=$(echo "$gemm_out" | sed -n 's/.*FMA peak now: \([0-9.]*\) GFLOP.*/\1/p')
    if [ -n "${vae_t2:-}" ] && [ "$vae_t2" != n/a ] && [ -n "$peak" ]; then
        floor=$(awk -v p="$peak" 'BEGIN { printf "%.3f", 196.8 / (2 * p) }')
        echo
        row "VAE epoch 60k, s (nabla 2 thr vs FLOP floor)" "$vae_t2" "$floor" "$(ratio "$floor" "$vae_t2")x"
        echo "(the floor: 196.8 GFLOP of matmul per epoch at 2 x $peak GFLOP/s; nabla/floor, lower is better)"
    fi
else
    echo "bench: no OpenBLAS (Debian libopenblas-dev): gemm comparison skipped"
fi

# Each op's forward + backward against PyTorch's on 1 thread (bench/ops.sh; OPS_ROUNDS rounds).
[ "${OPS_ROUNDS:-3}" -gt 0 ] && BUILD=$BUILD ROUNDS=${OPS_ROUNDS:-3} OPS_HEADER=0 bash "$(dirname "$0")/ops.sh"
