#!/bin/sh
# tests/mpi/run.sh: the multi-rank tests of dist/ (make MPI=1 test-mpi). BUILD names the MPI
# build directory (build/mpi). Exits non-zero when any check fails.
#   1. tests/mpi/test_dist on 1, 2 and 3 ranks (equivalence with one process, same-N bits,
#      absent gradients, broadcast, sums, sharding);
#   2. a rank that fails stops the whole job with its message (no hang: a 60 s timeout);
#   3. examples/mpi/ddp: two runs on 2 ranks give the same parameter bits; with micro-batches,
#      1, 2 and 3 ranks give the same bits.
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

if [ $fail = 0 ]; then echo "test-mpi: all passed"; else exit 1; fi
