#!/usr/bin/env bash
# bench/ops.sh: each op's forward + backward against PyTorch's (make bench-ops; make bench runs it
# at the end).
#
#   ROUNDS=3 THREADS="1 2" REPS=50 FIELD=ms bash bench/ops.sh
#
# Runs bench/bench_ops.c and bench/torch_ops.py in turn, ROUNDS times (default 3) for each thread
# count in THREADS (default 1; nabla's nb_set_num_threads and PyTorch's torch.set_num_threads).
# Each run reports per op its fastest batch of REPS steps (FIELD=cpu_ms: that batch's process CPU
# time instead). Each ratio is PyTorch / nabla within one round; the table prints the medians
# over rounds of the times and of the ratios: above 1 means nabla is faster.
# OPS_HEADER=0 leaves out the machine header (bench/run.sh has printed it already).
set -u
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
REPS=${REPS:-50}
FIELD=${FIELD:-ms}
PY=/usr/bin/python3
HERE=$(dirname "$0")

if [ ! -x "$BUILD/bench/bench_ops" ]; then
    echo "bench: no $BUILD/bench/bench_ops (make $BUILD/bench/bench_ops); per-op table skipped"
    exit 0
fi
if ! $PY -c 'import torch' 2>/dev/null; then
    echo "bench: PyTorch (Debian python3-torch) is missing; per-op table skipped"
    exit 0
fi
if [ "${OPS_HEADER:-1}" != 0 ]; then
    . "$HERE/peers.sh"
    peers_header "$BUILD/bench/bench_ops"
    echo
fi

runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for r in $(seq "$ROUNDS"); do
    for t in $THREADS; do
        "$BUILD/bench/bench_ops" "$t" "$REPS" | sed "s/^/nabla $t $r /" >>"$runs"
        OMP_NUM_THREADS=$t $PY "$HERE/torch_ops.py" --threads "$t" --reps "$REPS" 2>/dev/null |
            sed "s/^/torch $t $r /" >>"$runs"
    done
    echo "ops round $r of $ROUNDS done" >&2
done

for t in $THREADS; do
    echo "per op, forward + backward of sum (fwd: forward only), $t thread(s), ms per step ($FIELD of the fastest batch of $REPS; medians of $ROUNDS rounds)"
    awk -v field="$FIELD" -v threads="$t" '
        function get(key,   m) { # a JSON string or number field of this line
            if (match($0, "\"" key "\": \"[^\"]*\"")) return substr($0, RSTART + length(key) + 5, RLENGTH - length(key) - 6)
            if (match($0, "\"" key "\": [0-9.eE+-]+")) return substr($0, RSTART + length(key) + 4, RLENGTH - length(key) - 4)
            return "" }
        function med(list,   a, m, i, j, x) { # median of a space-separated list (the lower middle)
            m = split(list, a, " "); if (!m) return ""
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
            return a[int((m + 1) / 2)] }
        $2 != threads { next }
        { op = get("op"); ms = get(field); if (op == "" || ms == "") next
          if (!(op in shape)) { shape[op] = get("shape"); order[++n] = op }
          v[$1, op, $3] = ms; rounds[$3] = 1 }
        END {
            printf "%-22s %-22s %9s %9s %8s\n", "op", "shape", "nabla", "PyTorch", "PT/nabla"
            for (i = 1; i <= n; i++) {
                op = order[i]; ln = lt = lr = ""
                for (r in rounds) {
                    a = v["nabla", op, r]; b = v["torch", op, r]
                    if (a != "") ln = ln " " a
                    if (b != "") lt = lt " " b
                    if (a + 0 > 0 && b + 0 > 0) lr = lr " " (b / a)
                }
                mr = med(lr)
                printf "%-22s %-22s %9s %9s %8s\n", op, shape[op], med(ln), (lt == "" ? "n/a" : med(lt)), (mr == "" ? "n/a" : sprintf("%.2fx", mr))
            }
        }' "$runs"
done
echo "(PT/nabla: PyTorch's time over nabla's, the median of the ratios within a round; above 1 means nabla is faster)"
