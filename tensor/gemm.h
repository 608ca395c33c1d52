/* tensor/gemm.h: the matrix multiply kernel under every matmul in nabla.
 *
 *   // y[B,out] = x[B,in] @ W[out,in]^T: W is read as an (in x out) matrix through its strides
 *   nb_gemm(B, out, in, x, in, 1, W, 1, in, 0, y, out);
 *   // dW[out,in] += dy[B,out]^T @ x[B,in]: dy^T is read through strides (rsa 1, csa out)
 *   nb_gemm(out, in, B, dy, 1, out, x, in, 1, 1, dW, in);
 *
 * Operands are described by strides, so a transposed operand is never copied by the caller:
 * element (i,k) of A is A[i*rsa + k*csa], element (k,j) of B is B[k*rsb + j*csb]. All four
 * layouts with a unit stride are fast; any other strides (including 0, a broadcast) are correct.
 *
 * The result does not depend on the number of threads: each element of C is reduced over K in
 * one fixed order, so 1 and 2 threads give bitwise identical results. Packing buffers belong to
 * the calling thread; they are allocated with nb_malloc on first use, grown only when a larger
 * problem needs more, and kept, so repeated calls of one size allocate nothing. Design notes and
 * measurements: docs/GEMM.md. */
#ifndef NB_GEMM_H
#define NB_GEMM_H

#include <stdint.h>

#include "tensor/base.h"

/* C = beta*C + A @ B, with A M x K, B K x N and C M x N (row-major, row stride ldc).
 * beta is 0 or 1 (other values scale C first). With beta 0, C is only written: its old contents
 * (even NaN) never leak into the result. M, N or K may be 0 (with K 0, C becomes beta*C).
 * Negative sizes are a programmer error (nb_fail). C must not overlap A or B. */
void nb_gemm(int64_t M, int64_t N, int64_t K, const real *A, int64_t rsa, int64_t csa,
             const real *B, int64_t rsb, int64_t csb, real beta, real *C, int64_t ldc);

/* Sets the number of threads nabla's kernels use; n <= 0 means one per core (the default).
 * Without OpenMP this is recorded but everything runs on the calling thread. */
void nb_set_num_threads(int n);

/* The number of threads nabla's kernels use: at least 1; 1 in a build without OpenMP. */
int nb_get_num_threads(void);

/* Whether nabla may run fewer threads than set while the machine is busy (on by default): when
 * the threaded products measure less than 1.3x faster than one thread (other processes hold the
 * cores), parallel regions run on the calling thread for a while, then threads are tried again.
 * Results are the same bits either way. Tests of thread counts turn it off. */
void nb_set_adaptive_threads(int on);

/* The number of threads the next parallel region uses: nb_get_num_threads(), or 1 while the
 * adaptive policy above has found the threads not paying off. For nabla's kernels. */
int nb_threads_now(void);

/* For nabla's kernels: after a threaded region, `serial` is its estimated one-thread time and
 * `wall` its wall time, in seconds; feeds the adaptive policy. */
void nb_threads_report(double serial, double wall);

/* Frees the calling thread's packing buffers (the next nb_gemm allocates them again). For
 * programs and tests that want nb_mem_stats().live to return to zero. */
void nb_gemm_release(void);

/* The kernel nb_gemm runs: instruction set, register tile and type, e.g. "avx2 6x16 float". On
 * x86-64 it is the widest of generic, avx2 and avx512 that the CPU runs, unless NABLA_KERNEL
 * names another one the CPU runs. */
const char *nb_gemm_kernel_name(void);

/* Makes nb_gemm run the kernel for `isa` ("generic", "avx2" or "avx512"); NULL goes back to the
 * automatic choice. Returns 0 (and changes nothing) if there is no such kernel in this build or
 * the CPU cannot run it. Results may differ in the last bits between kernels. */
int nb_gemm_set_kernel(const char *isa);

#endif
