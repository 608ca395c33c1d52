#!/bin/sh
# bench/mpi.sh [ROUNDS]: vae train on data/digits, one process with 2 threads against
# mpirun -np 2 with one thread per rank, in alternating rounds (wall time here is noisy: compare
# within a round), then one gradient sync of the VAE's 2.6 MB alone (tests/mpi/bench_dist).
# Needs make MPI=1. Prints each run's seconds per epoch (epoch 2, after the warm-up epoch).
set -u
BUILD=${BUILD:-build/mpi}
ROUNDS=${1:-3}
MPIRUN="mpirun --oversubscribe"
[ "$(id -u)" = 0 ] && MPIRUN="$MPIRUN --allow-run-as-root"
T=$(mktemp -d)
epoch2() { sed -n '2s/.*"epoch_seconds": \([0-9.]*\).*/\1/p' "$1/metrics.jsonl"; }
exch() { sed -n 's/.*gradient exchange \([0-9.]*\) ms per step, \([0-9.]*\)%.*/\1 ms (\2%)/p' "$1" | tail -n 1; }
for r in $(seq "$ROUNDS"); do
    OMP_NUM_THREADS=2 "$BUILD/vae" train --epochs 2 --threads 2 --out "$T/one" >/dev/null
    OMP_NUM_THREADS=1 $MPIRUN -np 2 "$BUILD/vae" train --epochs 2 --threads 1 --out "$T/two" >"$T/two.log"
    echo "round $r: 1 process x 2 threads $(epoch2 "$T/one") s/epoch;" \
        "2 ranks x 1 thread $(epoch2 "$T/two") s/epoch, exchange $(exch "$T/two.log")"
done
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$BUILD/tests/mpi/bench_dist" 100
rm -rf "$T"
