/* tensor/parallel.h: splitting element-wise loops across nabla's threads.
 *
 *   NB_PARALLEL_FOR(n)
 *   for (int64_t i = 0; i < n; i++) y[i] = f(x[i]);
 *
 * With OpenMP, a loop of at least NB_PAR_MIN iterations runs on nb_threads_now() threads (the
 * set count, or 1 while the machine is too busy for threads to pay off) in contiguous static
 * chunks; a shorter one, or a build without OpenMP, runs on the calling
 * thread. Use it only where every iteration writes its own outputs (no reductions), so results
 * are the same bits whatever the thread count. */
#ifndef NB_PARALLEL_H
#define NB_PARALLEL_H

#include "tensor/gemm.h"

#define NB_PAR_MIN 32768

#define NB_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define NB_PARALLEL_FOR(n)                                                                         \
    NB_PRAGMA(omp parallel for schedule(static) if ((n) >= NB_PAR_MIN) num_threads(nb_threads_now()))
#else
#define NB_PARALLEL_FOR(n)
#endif

#endif
