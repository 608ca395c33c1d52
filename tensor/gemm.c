/* tensor/gemm.c: C = beta*C + A @ B with cache blocking, packing and a register-tiled microkernel.
 *
 * The loop nest follows Goto and van de Geijn (and BLIS), trimmed for the matrices a small
 * network multiplies, where one operand usually fits in L2:
 *
 *   for pc over K in blocks of kc            each C element is reduced block by block, in order
 *     for ic over M in blocks of mc          the A block (mc x kc) stays in L2
 *       A: read in place if row-major (or transposed, for few panels), else packed in MR-row panels
 *       for each NR-column panel of B        packed into the thread's own buffer (stays in L1)
 *         for each MR-row panel of A         the microkernel: an MR x NR tile of C in registers
 *
 * A narrow last column panel runs a half-width kernel, and a result much narrower than NR is
 * computed transposed (C^T = B^T A^T) so the tiles are not mostly padding.
 *
 * Threads share out C's tiles, never K: equal runs of tiles fixed in advance, or, when A fits in
 * L2, whole column panels taken as the threads come free. The block sizes depend only on M, N
 * and K, so every element of C sees the same sequence of operations whatever the thread count:
 * results are bitwise identical for 1 or many threads. The only barrier inside the parallel
 * region waits for a team-packed A. Design notes and measurements: docs/GEMM.md.
 *
 * The loop nest itself is in tensor/gemm_body.inc, compiled once per instruction set (portable C,
 * AVX2 + FMA, AVX-512), each with its own register tile; this file holds what they share (threads,
 * packing buffers) and picks the widest kernel the CPU runs, once, with cpuid. */
#include "tensor/gemm.h"
#include "tensor/gemm_isa.inc"

#include <stdatomic.h>
#include <string.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif
/* ---- threads and buffers ------------------------------------------------------------------- */

static int num_threads; /* as set; <= 0 means one per core */

void nb_set_num_threads(int n) {
    num_threads = n;
}

int nb_get_num_threads(void) {
#ifdef _OPENMP
    if (num_threads > 0) return num_threads;
    /* asked once: every kernel call asks for the count, and libgomp answers with a system call */
    static _Atomic int procs;
    int n = atomic_load_explicit(&procs, memory_order_relaxed);
    if (n == 0) {
        n = omp_get_num_procs() > 0 ? omp_get_num_procs() : 1;
        atomic_store_explicit(&procs, n, memory_order_relaxed);
    }
    return n;
#else
    return 1;
#endif
}

/* The calling thread's packing buffers, grown when a larger problem needs more, never shrunk:
 * for each thread of the team, its packed A panels, one B panel and one A edge panel. No
 * thread writes where another reads. */
static _Thread_local real *pack_a_buf, *pack_t_buf;
static _Thread_local size_t pack_a_len, pack_t_len; /* in elements */

static real *grow(real **buf, size_t *len, size_t need) {
    if (need > *len) {
        nb_free(*buf);
        *buf = nb_malloc(need * sizeof(real));
        *len = need;
    }
    return *buf;
}

void nb_gemm_release(void) {
    nb_free(pack_a_buf);
    nb_free(pack_t_buf);
    pack_a_buf = pack_t_buf = NULL;
    pack_a_len = pack_t_len = 0;
}

/* ---- fewer threads while the machine is busy ------------------------------------------------
 * When other processes hold the cores, a team thread is often off its core for a whole scheduler
 * time slice (milliseconds), and the parallel region waits for it at its end; meanwhile OpenMP's
 * idle threads spin, taking a core from the thread with the work. With one other busy process
 * on two cores, two threads measured 2.8x slower than one. So each threaded product measures
 * what its threads bought: the calling thread times its own share of the work, which estimates
 * the one-thread time (its time x all units / its units), and compares that with the product's
 * wall time. When, over a window of products, the threads made them less than ADAPT_MIN_SPEEDUP
 * times faster, every parallel region (products and loops) runs on the calling thread for a
 * while, then threads are tried again; each failed trial doubles that while, up to
 * ADAPT_SOLO_MAX, and a window where threads paid halves it (rather than forgetting it: on a
 * busy machine threads sometimes pay for one window by luck, and restarting the doubling from
 * ADAPT_SOLO_MIN then kept 2 threads 1.2x slower than 1). Results are the same bits for any
 * thread count, so only speed changes.
 * libgomp's spinning cannot be shortened from here: it reads OMP_WAIT_POLICY and
 * GOMP_SPINCOUNT in its own constructor, before any of nabla's code can run (docs/PERFORMANCE.md).
 */
#define ADAPT_WINDOW         32   /* threaded products per verdict */
#define ADAPT_WINDOW_SECONDS 0.01 /* or fewer products, when they took this long */
#define ADAPT_MIN_SPEEDUP    1.3  /* below this (one thread's time / wall time), threads are off */
#define ADAPT_SOLO_MIN       0.05 /* seconds on one thread after the first failed window */
#define ADAPT_SOLO_MAX       2.0

static _Atomic int adapt_on = 1;
#ifdef _OPENMP
static _Atomic double solo_until; /* omp_get_wtime() before which regions run on one thread */
static struct {
    double serial, wall, solo_len; /* this window's sums; the current time on one thread */
    int n;
} adapt;
#endif

void nb_set_adaptive_threads(int on) {
    atomic_store(&adapt_on, on != 0);
#ifdef _OPENMP
#pragma omp critical(nb_adapt)
    {
        adapt.serial = adapt.wall = adapt.solo_len = 0, adapt.n = 0;
        atomic_store(&solo_until, 0.0);
    }
#endif
}

int nb_threads_now(void) {
    int n = nb_get_num_threads();
#ifdef _OPENMP
    if (n > 1 && atomic_load_explicit(&adapt_on, memory_order_relaxed)) {
        double until = atomic_load_explicit(&solo_until, memory_order_relaxed);
        if (until > 0 && omp_get_wtime() < until) return 1;
    }
#endif
    return n;
}

void nb_threads_report(double serial, double wall) {
#ifdef _OPENMP
    if (!atomic_load_explicit(&adapt_on, memory_order_relaxed) || !(serial > 0 && wall > 0)) return;
#pragma omp critical(nb_adapt)
    {
        adapt.serial += serial, adapt.wall += wall;
        if (++adapt.n == ADAPT_WINDOW || adapt.wall > ADAPT_WINDOW_SECONDS) {
            if (adapt.serial < ADAPT_MIN_SPEEDUP * adapt.wall) {
                adapt.solo_len = adapt.solo_len > 0 ? 2 * adapt.solo_len : ADAPT_SOLO_MIN;
                if (adapt.solo_len > ADAPT_SOLO_MAX) adapt.solo_len = ADAPT_SOLO_MAX;
                atomic_store(&solo_until, omp_get_wtime() + adapt.solo_len);
            } else {
                adapt.solo_len = adapt.solo_len >= 2 * ADAPT_SOLO_MIN ? adapt.solo_len / 2 : 0;
            }
            adapt.serial = adapt.wall = 0, adapt.n = 0;
        }
    }
#else
    (void)serial, (void)wall;
#endif
}

real *nb_gemm_pack_a(size_t n) {
    return grow(&pack_a_buf, &pack_a_len, n);
}

real *nb_gemm_pack_t(size_t n) {
    return grow(&pack_t_buf, &pack_t_len, n);
}

/* ---- the kernel for this CPU ----------------------------------------------------------------
 * On x86-64 the Makefile builds the AVX2 and AVX-512 kernels next to the portable one
 * (NB_X86_KERNELS); the widest one the CPU and OS support runs (GCC's and clang's cpuid checks,
 * which also ask the OS whether it saves the wide registers). NABLA_KERNEL=generic, avx2 or
 * avx512 in the environment asks for one (for tests and comparisons; one the CPU lacks is
 * ignored), and nb_gemm_set_kernel chooses from code. */

typedef struct {
    const char *isa; /* the name NABLA_KERNEL and nb_gemm_set_kernel use */
    const nb_gemm_kernel *kernel;
} kernel_choice;

static const kernel_choice kernels[] = {
    {"generic", &nb_gemm_generic},
#ifdef NB_X86_KERNELS
    {"avx2", &nb_gemm_avx2},
    {"avx512", &nb_gemm_avx512},
#endif
};
#define N_KERNELS (int)(sizeof kernels / sizeof kernels[0])

static int cpu_runs(int k) {
#ifdef NB_X86_KERNELS
    if (k == 1) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (k == 2) return __builtin_cpu_supports("avx512f");
#endif
    return k == 0;
}

/* The index of the kernel named `isa` if the CPU runs it, else -1. */
static int find_kernel(const char *isa) {
    for (int k = 0; k < N_KERNELS; k++)
        if (strcmp(kernels[k].isa, isa) == 0) return cpu_runs(k) ? k : -1;
    return -1;
}

/* NABLA_KERNEL's kernel if the CPU runs it, else the widest one it runs. */
static int automatic_kernel(void) {
    const char *env = getenv("NABLA_KERNEL");
    int k = env ? find_kernel(env) : -1;
    if (k >= 0) return k;
    for (k = N_KERNELS - 1; k > 0 && !cpu_runs(k); k--) {
    }
    return k;
}

static _Atomic int chosen = -1; /* index into kernels; -1 until the first product */

static const nb_gemm_kernel *current_kernel(void) {
    int k = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (k < 0) {
        k = automatic_kernel();
        atomic_store_explicit(&chosen, k, memory_order_relaxed);
    }
    return kernels[k].kernel;
}

int nb_gemm_set_kernel(const char *isa) {
    int k = isa ? find_kernel(isa) : automatic_kernel();
    if (k < 0) return 0;
    atomic_store(&chosen, k);
    return 1;
}

const char *nb_gemm_kernel_name(void) {
    return current_kernel()->name;
}

void nb_gemm(int64_t M, int64_t N, int64_t K, const real *A, int64_t rsa, int64_t csa,
             const real *B, int64_t rsb, int64_t csb, real beta, real *C, int64_t ldc) {
    if (M < 0 || N < 0 || K < 0)
        nb_fail("nb_gemm", "negative size M=%lld N=%lld K=%lld", (long long)M, (long long)N,
                (long long)K);
    if (M == 0 || N == 0) return;
    if (K == 0 && beta == 1) return;
    if (K == 0 || (beta != 0 && beta != 1)) { /* beta 0 with K > 0 never reads C */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        if (K == 0) return;
        beta = 1;
    }
    current_kernel()->run(M, N, K, A, rsa, csa, B, rsb, csb, beta != 0, C, ldc);
}
