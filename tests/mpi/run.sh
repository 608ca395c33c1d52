#!/bin/sh
# tests/mpi/run.sh: the multi-rank tests of dist/ (make MPI=1 test-mpi). BUILD names the MPI
# build directory (build/mpi). Exits non-zero when any check fails.
#   1. tests/mpi/test_dist on 1, 2 and 3 ranks (equivalence with one process, same-N bits,
#      absent gradients, broadcast, sums, sharding);
#   2. a rank that fails stops the whole job with its message (no hang: a 60 s timeout);
#   3. examples/mpi/ddp: two runs on 2 ranks give the same parameter bits; with micro-batches,
#      1, 2 and 3 ranks give the same bits;
#   4. vae train on data/digits, 2 epochs: 2 ranks reach the one-process test loss within 0.3
#      nats (in fact to ~1e-5; the MLP on all 9,000 digits, the conv VAE on 1,000); two 2-rank
#      runs write the same checkpoint bytes, a 2-rank --resume continues to the same losses, and
#      a rank-0 failure (--out is a file) stops the job.
set -u
BUILD=${BUILD:-build/mpi}
MPIRUN="mpirun --oversubscribe"
[ "$(id -u)" = 0 ] && MPIRUN="$MPIRUN --allow-run-as-root"
export OMP_NUM_THREADS=1
fail=0
bad() { echo "test-mpi: FAILED: $*"; fail=1; }

for n in 1 2 3; do
    $MPIRUN -np $n "$BUILD/tests/mpi/test_dist" || bad "test_dist on $n ranks"
done

out=$(timeout 60 $MPIRUN -np 2 "$BUILD/tests/mpi/test_dist" --fail 1 2>&1)
rc=$?
[ $rc != 0 ] && [ $rc != 124 ] || bad "a failing rank: exit $rc (124: the job hung)"
echo "$out" | grep -q "rank 1 fails on purpose" || bad "a failing rank: its message is missing"
[ $fail = 0 ] && echo "test-mpi: a failing rank stopped the job (exit $rc) with its message"

params() { $MPIRUN -np "$1" "$BUILD/ddp" --steps 200 $2 | sed -n 's/^params //p'; }
a=$(params 2 "") b=$(params 2 "")
[ -n "$a" ] && [ "$a" = "$b" ] || bad "ddp: two runs on 2 ranks differ ($a, $b)"
[ $fail = 0 ] && echo "test-mpi: ddp on 2 ranks, twice: the same parameters ($a)"
m1=$(params 1 "--micro 8") m2=$(params 2 "--micro 8") m3=$(params 3 "--micro 8")
[ -n "$m1" ] && [ "$m1" = "$m2" ] && [ "$m1" = "$m3" ] ||
    bad "ddp --micro 8: 1, 2, 3 ranks differ ($m1, $m2, $m3)"
[ $fail = 0 ] && echo "test-mpi: ddp --micro 8 on 1, 2 and 3 ranks: the same parameters ($m1)"

# vae train: each global batch is split 50/50
T=$(mktemp -d)
VAE="$BUILD/vae train --limit 1000 --batch 100 --threads 1"
test_loss() { sed -n "${2}s/.*\"test_loss\": \([0-9.e+-]*\).*/\1/p" "$1/metrics.jsonl"; }
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d < 0.3) }'; }
for run in "mlp --threads 1" "conv --limit 1000 --batch 100 --threads 1"; do
    arch=${run%% *}
    $BUILD/vae train --epochs 2 --arch $run --out "$T/$arch.1" >/dev/null || bad "vae $arch on 1 rank"
    $MPIRUN -np 2 $BUILD/vae train --epochs 2 --arch $run --out "$T/$arch.2" >/dev/null ||
        bad "vae $arch on 2 ranks"
    a=$(test_loss "$T/$arch.1" 2) b=$(test_loss "$T/$arch.2" 2)
    close "$a" "$b" || bad "vae $arch: test loss on 2 ranks $b, on 1 rank $a"
    [ $fail = 0 ] && echo "test-mpi: vae train --arch $run, 2 epochs: test loss $a on 1 rank, $b on 2 ranks"
done
$MPIRUN -np 2 $VAE --epochs 2 --out "$T/twice.1" >/dev/null
$MPIRUN -np 2 $VAE --epochs 2 --out "$T/twice.2" >/dev/null
cmp -s "$T/twice.1/model.safetensors" "$T/twice.2/model.safetensors" || bad "vae: two runs on 2 ranks differ"
$MPIRUN -np 2 $VAE --epochs 1 --out "$T/resumed" >/dev/null &&
    $MPIRUN -np 2 $VAE --epochs 2 --resume "$T/resumed/model.safetensors" --out "$T/resumed" >/dev/null ||
    bad "vae: a 2-rank --resume failed"
a=$(test_loss "$T/twice.1" 2) b=$(test_loss "$T/resumed" 2)
[ -n "$a" ] && [ "$a" = "$b" ] || bad "vae: resumed on 2 ranks, test loss $b, straight through $a"
[ $fail = 0 ] && echo "test-mpi: vae on 2 ranks: the same checkpoint twice; --resume gives the same losses"
touch "$T/file"
out=$(timeout 60 $MPIRUN -np 2 $VAE --epochs 1 --out "$T/file" 2>&1)
rc=$?
[ $rc != 0 ] && [ $rc != 124 ] && echo "$out" | grep -q "not a directory" ||
    bad "vae: rank 0 could not write --out: exit $rc (124: hung)"
rm -rf "$T"

if [ $fail = 0 ]; then echo "test-mpi: all passed"; else exit 1; fi
