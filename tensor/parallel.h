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

/* NB_VECTOR_CLONES before a plain function (no OpenMP region inside: outlined regions are not
 * cloned) whose loop vectorizes compiles it three times, for AVX-512, AVX2+FMA and the
 * baseline, and the loader picks one for the CPU (GCC's target_clones, an ifunc; GNU/Linux on
 * x86-64 only, elsewhere nothing). The library is built for the baseline by default, where these
 * loops run 4 lanes wide; nn_bce_with_logits' fill took 22% of a VAE step that way. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NB_VECTOR_CLONES                                                                           \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NB_VECTOR_CLONES
#endif

#endif
