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
 * region waits for a team-packed A. Design notes and measurements: docs/GEMM.md. */
#include "tensor/gemm.h"

#include <stdatomic.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#if defined(__GNUC__)
#define NB_UNROLL _Pragma("GCC unroll 16")
#else
#define NB_UNROLL
#endif

/* ---- the register tile: vector type, width and tile shape per instruction set ---------------- */
/* The microkernel holds an MR x NR tile of C in registers, NR = two vectors. AVX-512 has 32
 * registers: 14 x 2 accumulators + 2 B vectors + 1 broadcast. AVX2 has 16: 6 x 2 + 2 + 1. */

#if defined(__AVX512F__)
#define GEMM_SIMD 1
#define MR        14
#ifdef NB_DOUBLE
#define GEMM_NAME "avx512 14x16 double"
#define VW        8
typedef __m512d vec;
static inline vec vzero(void) {
    return _mm512_setzero_pd();
}
static inline vec vload(const real *p) {
    return _mm512_loadu_pd(p);
}
static inline void vstore(real *p, vec v) {
    _mm512_storeu_pd(p, v);
}
static inline vec vset1(real x) {
    return _mm512_set1_pd(x);
}
static inline vec vfma(vec a, vec b, vec c) {
    return _mm512_fmadd_pd(a, b, c);
}
static inline vec vadd(vec a, vec b) {
    return _mm512_add_pd(a, b);
}
#else
#define GEMM_NAME "avx512 14x32 float"
#define VW        16
typedef __m512 vec;
static inline vec vzero(void) {
    return _mm512_setzero_ps();
}
static inline vec vload(const real *p) {
    return _mm512_loadu_ps(p);
}
static inline void vstore(real *p, vec v) {
    _mm512_storeu_ps(p, v);
}
static inline vec vset1(real x) {
    return _mm512_set1_ps(x);
}
static inline vec vfma(vec a, vec b, vec c) {
    return _mm512_fmadd_ps(a, b, c);
}
static inline vec vadd(vec a, vec b) {
    return _mm512_add_ps(a, b);
}
#endif

#elif defined(__AVX2__) && defined(__FMA__)
#define GEMM_SIMD 1
#define MR        6
#ifdef NB_DOUBLE
#define GEMM_NAME "avx2 6x8 double"
#define VW        4
typedef __m256d vec;
static inline vec vzero(void) {
    return _mm256_setzero_pd();
}
static inline vec vload(const real *p) {
    return _mm256_loadu_pd(p);
}
static inline void vstore(real *p, vec v) {
    _mm256_storeu_pd(p, v);
}
static inline vec vset1(real x) {
    return _mm256_set1_pd(x);
}
static inline vec vfma(vec a, vec b, vec c) {
    return _mm256_fmadd_pd(a, b, c);
}
static inline vec vadd(vec a, vec b) {
    return _mm256_add_pd(a, b);
}
#else
#define GEMM_NAME "avx2 6x16 float"
#define VW        8
typedef __m256 vec;
static inline vec vzero(void) {
    return _mm256_setzero_ps();
}
static inline vec vload(const real *p) {
    return _mm256_loadu_ps(p);
}
static inline void vstore(real *p, vec v) {
    _mm256_storeu_ps(p, v);
}
static inline vec vset1(real x) {
    return _mm256_set1_ps(x);
}
static inline vec vfma(vec a, vec b, vec c) {
    return _mm256_fmadd_ps(a, b, c);
}
static inline vec vadd(vec a, vec b) {
    return _mm256_add_ps(a, b);
}
#endif

#else
#define GEMM_SIMD 0
#define MR        4
#define NR        8
#define GEMM_NAME "portable 4x8 " NB_REAL_NAME
#endif

#if GEMM_SIMD
#define NR (2 * VW)
#endif

/* Block sizes. kc: a B panel (kc x NR) stays in L1 while A panels stream from L2. mc: the packed
 * A block (mc x kc) fits in L2. Each dimension is split into equal blocks no larger than these,
 * so no block is a thin remainder. */
#define KC_MAX        512
#define A_BLOCK_BYTES (512 * 1024)

/* Below this many flops (about 10 us on one core) a product runs on one thread: waking a second
 * thread costs a few us, and on a busy machine can cost a scheduler time slice. The VAE's
 * smallest products (2 MFLOP) still go parallel: an A/B of whole training runs measured 5%
 * faster epochs with this at 1 MFLOP than at 3 (docs/PERFORMANCE.md). */
#define GEMM_MIN_PARALLEL_FLOPS 1e6

/* Most threads that share out column panels as they go (below); more use the static split. */
#define MAX_SHARED_THREADS 64

/* ---- microkernel --------------------------------------------------------------------------- */

/* acc[i][j] = sum over k < kc of a[i*ai + k*ak] * b[k*bk + j], one multiply-add per k in
 * increasing k, whatever the strides; then c[i*ldc + j] = acc (accumulate 0) or += acc, for
 * i < MR and j < nv*VW (nv 2: the full tile; nv 1: the left half, for a narrow last panel).
 * A is read in place when one of its strides is 1 (ai 1 for a packed panel or a transposed A,
 * ak 1 for a row-major A); B rows must hold NR contiguous values (a packed panel, bk NR, or a
 * row-major B, bk its row stride). */
#if GEMM_SIMD
#define NR_HALF VW
static inline void kernel(int64_t kc, const real *restrict a, int64_t ai, int64_t ak,
                          const real *restrict b, int64_t bk, real *restrict c, int64_t ldc,
                          int accumulate, int nv) {
    vec acc0[MR], acc1[MR];
    NB_UNROLL
    for (int i = 0; i < MR; i++) acc0[i] = acc1[i] = vzero();
    if (nv == 2) {
        for (int64_t k = 0; k < kc; k++) {
            vec b0 = vload(b), b1 = vload(b + VW);
            NB_UNROLL
            for (int i = 0; i < MR; i++) {
                vec x = vset1(a[i * ai]);
                acc0[i] = vfma(x, b0, acc0[i]);
                acc1[i] = vfma(x, b1, acc1[i]);
            }
            a += ak;
            b += bk;
        }
    } else {
        for (int64_t k = 0; k < kc; k++) {
            vec b0 = vload(b);
            NB_UNROLL
            for (int i = 0; i < MR; i++) acc0[i] = vfma(vset1(a[i * ai]), b0, acc0[i]);
            a += ak;
            b += bk;
        }
    }
    NB_UNROLL
    for (int i = 0; i < MR; i++) {
        real *ci = c + i * ldc;
        vstore(ci, accumulate ? vadd(vload(ci), acc0[i]) : acc0[i]);
        if (nv == 2) vstore(ci + VW, accumulate ? vadd(vload(ci + VW), acc1[i]) : acc1[i]);
    }
}
#else
#define NR_HALF NR
static inline void kernel(int64_t kc, const real *restrict a, int64_t ai, int64_t ak,
                          const real *restrict b, int64_t bk, real *restrict c, int64_t ldc,
                          int accumulate, int nv) {
    (void)nv;
    real acc[MR][NR] = {{0}};
    for (int64_t k = 0; k < kc; k++) {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] += a[i * ai] * b[j];
        a += ak;
        b += bk;
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}
#endif

/* The kernel specialized for the two A layouts it reads in place and the two tile widths (the
 * half-width ones write a whole tile into a buffer: they only serve edge tiles). */
static void kernel_a_cols(int64_t kc, const real *a, int64_t ak, const real *b, int64_t bk, real *c,
                          int64_t ldc, int accumulate) {
    kernel(kc, a, 1, ak, b, bk, c, ldc, accumulate, 2);
}

static void kernel_a_rows(int64_t kc, const real *a, int64_t ai, const real *b, int64_t bk, real *c,
                          int64_t ldc, int accumulate) {
    kernel(kc, a, ai, 1, b, bk, c, ldc, accumulate, 2);
}

static void kernel_a_cols_half(int64_t kc, const real *a, int64_t ak, const real *b, int64_t bk,
                               real *c, int64_t ldc) {
    kernel(kc, a, 1, ak, b, bk, c, ldc, 0, 1);
}

static void kernel_a_rows_half(int64_t kc, const real *a, int64_t ai, const real *b, int64_t bk,
                               real *c, int64_t ldc) {
    kernel(kc, a, ai, 1, b, bk, c, ldc, 0, 1);
}

/* ---- packing ------------------------------------------------------------------------------- */

/* dst[s] = src[s] for s < w; w is a constant after inlining, so the copy becomes a few moves. */
static inline void copy_run(real *restrict dst, const real *restrict src, int64_t w) {
    memcpy(dst, src, (size_t)w * sizeof(real));
}

#if defined(__AVX2__) && !defined(NB_DOUBLE)
/* Stores lanes 0..g-1 of v to dst. */
static inline void store_lanes(float *dst, __m256 v, int64_t g) {
    if (g == 8) {
        _mm256_storeu_ps(dst, v);
    } else if (g == 6) {
        _mm_storeu_ps(dst, _mm256_castps256_ps128(v));
        _mm_storel_pi((__m64 *)(dst + 4), _mm256_extractf128_ps(v, 1));
    } else {
        _Alignas(32) float t[8];
        _mm256_store_ps(t, v);
        for (int64_t s = 0; s < g; s++) dst[s] = t[s];
    }
}

/* dst[k*w + s] = src[s*ss + k] for k < 8 and s < g (g <= 8): a transpose in registers of the
 * first n rows of an 8 x 8 block; rows n..7 read as zeros. */
static void transpose8(const float *src, int64_t ss, int64_t n, float *dst, int64_t w, int64_t g) {
    __m256 r[8];
    for (int64_t s = 0; s < 8; s++)
        r[s] = s < n ? _mm256_loadu_ps(src + s * ss) : _mm256_setzero_ps();
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    store_lanes(dst, _mm256_permute2f128_ps(u0, u4, 0x20), g);
    store_lanes(dst + w, _mm256_permute2f128_ps(u1, u5, 0x20), g);
    store_lanes(dst + 2 * w, _mm256_permute2f128_ps(u2, u6, 0x20), g);
    store_lanes(dst + 3 * w, _mm256_permute2f128_ps(u3, u7, 0x20), g);
    store_lanes(dst + 4 * w, _mm256_permute2f128_ps(u0, u4, 0x31), g);
    store_lanes(dst + 5 * w, _mm256_permute2f128_ps(u1, u5, 0x31), g);
    store_lanes(dst + 6 * w, _mm256_permute2f128_ps(u2, u6, 0x31), g);
    store_lanes(dst + 7 * w, _mm256_permute2f128_ps(u3, u7, 0x31), g);
}
#define HAVE_TRANSPOSE8 1
#endif

/* Packs n <= w streams of kc values into one panel: dst[k*w + s] = src[s*ss + k*ks] for s < n,
 * and 0 for n <= s < w, so the microkernel always runs on a full tile. An A panel has the rows
 * as streams (w = MR), a B panel the columns (w = NR). w is MR or NR, so after inlining the
 * copies below have constant lengths. */
static inline void pack_panel(int64_t kc, int64_t n, int64_t w, const real *restrict src,
                              int64_t ss, int64_t ks, real *restrict dst) {
    /* Both copies ask for their source ahead of use: in training the operands being packed (a
     * weight matrix, a gradient) come from L3 or memory, in 16 or 392 short strided runs that
     * the hardware prefetchers follow poorly. Measured inside training: 2-3% faster products on
     * one thread, 7-12% on two. */
    if (ss == 1 && n == w) { /* each k is a contiguous run of w values */
        for (int64_t k = 0; k < kc; k++) {
            if (k + 8 < kc) __builtin_prefetch(src + (k + 8) * ks); /* inside the operand */
            copy_run(dst + k * w, src + k * ks, w);
        }
        return;
    }
    int64_t k0 = 0;
#ifdef HAVE_TRANSPOSE8
    if (ks == 1) { /* each stream is contiguous in k: transpose 8 x 8 blocks */
        for (; k0 + 8 <= kc; k0 += 8) {
            if (k0 % 16 == 0 && k0 + 64 < kc) /* a line of each stream, 4 lines ahead */
                for (int64_t s = 0; s < n; s++) __builtin_prefetch(src + s * ss + k0 + 64);
            for (int64_t s0 = 0; s0 < w; s0 += 8)
                transpose8(src + s0 * ss + k0, ss, n - s0, dst + k0 * w + s0, w,
                           w - s0 < 8 ? w - s0 : 8);
        }
    }
#endif
    for (int64_t k = k0; k < kc; k++) {
        for (int64_t s = 0; s < n; s++) dst[k * w + s] = src[s * ss + k * ks];
        for (int64_t s = n; s < w; s++) dst[k * w + s] = 0;
    }
}

static void pack_a(int64_t kc, int64_t n, const real *src, int64_t ss, int64_t ks, real *dst) {
    pack_panel(kc, n, MR, src, ss, ks, dst);
}

static void pack_b(int64_t kc, int64_t n, const real *src, int64_t ss, int64_t ks, real *dst) {
    pack_panel(kc, n, NR, src, ss, ks, dst);
}

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

const char *nb_gemm_kernel_name(void) {
    return GEMM_NAME;
}

/* ---- the blocked product ------------------------------------------------------------------- */

typedef struct {
    int64_t M, N, K;
    const real *A; /* (M, K), element (i,k) at A[i*rsa + k*csa] */
    int64_t rsa, csa;
    const real *B; /* (K, N), element (k,j) at B[k*rsb + j*csb] */
    int64_t rsb, csb;
    real *C; /* (M, N), element (i,j) at C[i*rsc + j*csc] */
    int64_t rsc, csc;
    int accumulate;  /* 1: add into C; 0: overwrite C on the first K block */
    int64_t mc, kc;  /* block sizes */
    int a_packed;    /* 0: A has a unit stride and is read in place; 1: packed by blocks */
    int split_rows;  /* 1: threads share out row panels; 0: column panels */
    real *pa;        /* per thread: the packed A panels it uses, up to (mc, kc); shared: all of A */
    real *pt;        /* per thread, pt_step apart: a B panel (kc, NR), then an A edge panel */
    int64_t pt_step; /* (kc, MR); (K, MR) for shared column panels, none if A is packed */
    struct shared_run *runs; /* shared column panels: each thread's run of them; NULL: static */
    int nruns;               /* the number of runs (threads planned; a smaller team steals all) */
} gemm_plan;

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}
static int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

/* The block size for a dimension of n: blocks at most max (at least unit), as equal as possible,
 * each a multiple of unit. */
static int64_t block_size(int64_t n, int64_t max, int64_t unit) {
    if (max < unit) max = unit;
    int64_t blocks = ceil_div(n, max);
    return ceil_div(ceil_div(n, blocks), unit) * unit;
}

/* Computes the MR x NR tile of C at (i0, j0) over k in [pc, pc+kc), of which mr x nr is inside
 * C. b is the B panel (bk its row stride); a the packed A panel, or NULL to read A in place
 * (apad then holds the packed last panel, cut by the edge of A). */
static void tile(const gemm_plan *g, int64_t pc, int64_t kc, const real *a, const real *b,
                 int64_t bk, int64_t i0, int64_t j0, real *apad, int accumulate) {
    int64_t mr = min64(MR, g->M - i0), nr = min64(NR, g->N - j0);
    if (!a && mr < MR) a = apad;
    real *c = g->C + i0 * g->rsc + j0 * g->csc, *out = c;
    int64_t ldo = g->rsc;
    _Alignas(64) real t[MR * NR];
    int direct = mr == MR && nr == NR && g->csc == 1;
    if (!direct) out = t, ldo = NR;
    int acc = direct && accumulate, half = !direct && nr <= NR_HALF && NR_HALF < NR;
    /* Ask for the C tile now (for writing), so it has arrived by the time the kernel stores it:
     * in training, C is a gradient or activation last touched a whole step ago, and a tile with
     * K = 128 computes in about as long as a miss takes. Measured inside training: 3% faster
     * products on one thread, about 10% on two. */
    if (direct)
        for (int i = 0; i < MR; i++) {
            __builtin_prefetch(c + i * g->rsc, 1);
            __builtin_prefetch(c + i * g->rsc + NR - 1, 1);
        }
    if (half && a)
        kernel_a_cols_half(kc, a, MR, b, bk, out, ldo);
    else if (half && g->csa == 1)
        kernel_a_rows_half(kc, g->A + i0 * g->rsa + pc, g->rsa, b, bk, out, ldo);
    else if (half)
        kernel_a_cols_half(kc, g->A + i0 + pc * g->csa, g->csa, b, bk, out, ldo);
    else if (a)
        kernel_a_cols(kc, a, MR, b, bk, out, ldo, acc);
    else if (g->csa == 1)
        kernel_a_rows(kc, g->A + i0 * g->rsa + pc, g->rsa, b, bk, out, ldo, acc);
    else
        kernel_a_cols(kc, g->A + i0 + pc * g->csa, g->csa, b, bk, out, ldo, acc);
    if (direct) return;
    for (int64_t i = 0; i < mr; i++)
        for (int64_t j = 0; j < nr; j++) {
            real *cij = c + i * g->rsc + j * g->csc;
            *cij = accumulate ? *cij + t[i * NR + j] : t[i * NR + j];
        }
}

/* Row panels i0.. (ntiles of them) of column panel jr over the K block at pc. The B panel is
 * packed into `panel`, where it stays in L1 while the thread walks down A, unless B is row-major
 * and the panel serves few tiles. a: the first row panel's packed A, the next ones a_step
 * apart; NULL to read A in place (apad: its packed edge panel). */
static void column_panel(const gemm_plan *g, int64_t pc, int64_t kc, int64_t jr, int64_t i0,
                         int64_t ntiles, const real *a, int64_t a_step, real *panel, real *apad) {
    int64_t j0 = jr * NR, nr = min64(NR, g->N - j0);
    const real *b = g->B + pc * g->rsb + j0 * g->csb;
    int64_t bk = g->rsb;
    if (g->csb != 1 || nr < NR || ntiles >= 8) {
        pack_b(kc, nr, b, g->csb, g->rsb, panel);
        b = panel, bk = NR;
    }
    for (int64_t t = 0; t < ntiles; t++)
        tile(g, pc, kc, a ? a + t * a_step : NULL, b, bk, i0 + t * MR, j0, apad,
             g->accumulate || pc > 0);
}

/* Runs the loop nest at the top of this file; called by every thread of the team.
 *
 * The tiles of each block (row panels x column panels) are numbered, column panel by column
 * panel (or, when threads split rows, row panel by row panel), and each thread takes an equal
 * run of those numbers: the same run in every K block, so the K blocks of a tile stay in order
 * on one thread, and the threads' shares differ by at most one tile. Each thread packs what it
 * needs itself into its own buffers (its B panels, and the A panels of the rows it touches), so
 * there is no barrier inside the parallel region: on a busy machine each one can cost a
 * scheduler time slice. */
static void gemm_blocked(const gemm_plan *g, int thread, int threads) {
    real *panel = g->pt + thread * g->pt_step, *apad = panel + g->kc * NR;
    real *pa = g->pa + (int64_t)thread * g->mc * g->kc; /* this thread's A panels */
    int64_t n_jr = ceil_div(g->N, NR);
    for (int64_t pc = 0; pc < g->K; pc += g->kc) {
        int64_t kc = min64(g->kc, g->K - pc);
        for (int64_t ic = 0; ic < g->M; ic += g->mc) {
            int64_t n_ir = ceil_div(min64(g->mc, g->M - ic), MR), tiles = n_ir * n_jr;
            int64_t lo = tiles * thread / threads, hi = tiles * (thread + 1) / threads;
            if (lo == hi) continue;
            /* this thread's tiles: numbers lo..hi-1; ir_lo..ir_hi the row panels it touches,
             * jr_lo..jr_hi the column panels */
            int64_t ir_lo, ir_hi, jr_lo, jr_hi;
            if (g->split_rows) {
                ir_lo = lo / n_jr, ir_hi = (hi - 1) / n_jr;
                jr_lo = ir_lo == ir_hi ? lo % n_jr : 0;
                jr_hi = ir_lo == ir_hi ? (hi - 1) % n_jr : n_jr - 1;
            } else {
                jr_lo = lo / n_ir, jr_hi = (hi - 1) / n_ir;
                ir_lo = jr_lo == jr_hi ? lo % n_ir : 0;
                ir_hi = jr_lo == jr_hi ? (hi - 1) % n_ir : n_ir - 1;
            }
            int64_t i_last = ic + (n_ir - 1) * MR;
            if (g->a_packed) {
                for (int64_t ir = ir_lo; ir <= ir_hi; ir++) {
                    int64_t i0 = ic + ir * MR;
                    pack_a(kc, min64(MR, g->M - i0), g->A + i0 * g->rsa + pc * g->csa, g->rsa,
                           g->csa, pa + (ir - ir_lo) * MR * kc);
                }
            } else if (ir_hi == n_ir - 1 && g->M - i_last < MR) {
                /* the edge panel of an A read in place */
                pack_a(kc, g->M - i_last, g->A + i_last * g->rsa + pc * g->csa, g->rsa, g->csa,
                       apad);
            }
            for (int64_t jr = jr_lo; jr <= jr_hi; jr++) {
                /* the row panels of this column panel that are this thread's */
                int64_t ir0, ir1;
                if (g->split_rows) {
                    ir0 = ir_lo + (jr < lo % n_jr), ir1 = ir_hi + 1 - (jr > (hi - 1) % n_jr);
                } else {
                    ir0 = jr == jr_lo ? lo % n_ir : 0;
                    ir1 = jr == jr_hi ? (hi - 1) % n_ir + 1 : n_ir;
                }
                if (ir0 >= ir1) continue;
                column_panel(g, pc, kc, jr, ic + ir0 * MR, ir1 - ir0,
                             g->a_packed ? pa + (ir0 - ir_lo) * MR * kc : NULL, MR * kc, panel,
                             apad);
            }
        }
    }
}

#ifdef _OPENMP
/* ---- column panels shared out while the product runs ----------------------------------------
 * The static split above gives each thread an equal share, but on a shared machine one core is
 * often slower for a while, and the other then waits for it at the end of every product: inside
 * training that wait was 10-15% of a two-thread product. When A is read in place and fits in L2,
 * the unit of work can be a whole column panel (every row panel, every K block), which no other
 * panel depends on. Each thread starts on its own equal run of panels, taking from the front;
 * once its run is empty it takes from the back of another thread's run. A panel's work does not
 * depend on which thread does it, so the results stay the same bits. */

struct shared_run {
    _Alignas(64) _Atomic uint64_t span; /* the run's first panel << 32 | its end */
};

/* The next panel for `thread`: the front of its own run, else the back of another's. */
static int take_panel(struct shared_run *runs, int nruns, int thread, int64_t *jr) {
    for (int k = 0; k < nruns; k++) {
        struct shared_run *r = &runs[(thread + k) % nruns];
        uint64_t cur = atomic_load_explicit(&r->span, memory_order_relaxed);
        for (;;) {
            uint64_t lo = cur >> 32, hi = cur & 0xffffffffu;
            if (lo >= hi) break;
            uint64_t next = k == 0 ? (lo + 1) << 32 | hi : lo << 32 | (hi - 1);
            if (atomic_compare_exchange_weak_explicit(&r->span, &cur, next, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *jr = (int64_t)(k == 0 ? lo : hi - 1);
                return 1;
            }
        }
    }
    return 0;
}

static void gemm_shared_columns(const gemm_plan *g, int thread, int team) {
    real *panel = g->pt + thread * g->pt_step, *apad = g->a_packed ? NULL : panel + g->kc * NR;
    int64_t n_ir = ceil_div(g->M, MR), i_last = (n_ir - 1) * MR;
    if (g->a_packed) { /* the team packs A's row panels (every K block) together, then waits */
        for (int64_t ir = n_ir * thread / team; ir < n_ir * (thread + 1) / team; ir++)
            pack_a(g->K, min64(MR, g->M - ir * MR), g->A + ir * MR * g->rsa, g->rsa, g->csa,
                   g->pa + ir * MR * g->K);
#pragma omp barrier
    } else if (g->M - i_last < MR) { /* the edge panel of A, every K block at once */
        pack_a(g->K, g->M - i_last, g->A + i_last * g->rsa, g->rsa, g->csa, apad);
    }
    int64_t jr;
    while (take_panel(g->runs, g->nruns, thread, &jr))
        for (int64_t pc = 0; pc < g->K; pc += g->kc)
            column_panel(g, pc, min64(g->kc, g->K - pc), jr, 0, n_ir, apad ? NULL : g->pa + pc * MR,
                         MR * g->K, panel, apad ? apad + pc * MR : NULL);
}
#endif

/* The number of elements in the tiles that cover an m x n result (a narrow last column panel
 * uses a half-width tile). */
static int64_t padded_area(int64_t m, int64_t n) {
    int64_t rest = n % NR, padded_n = n - rest + (rest == 0 ? 0 : rest <= NR_HALF ? NR_HALF : NR);
    return ceil_div(m, MR) * MR * padded_n;
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

    gemm_plan g = {.M = M,
                   .N = N,
                   .K = K,
                   .A = A,
                   .rsa = rsa,
                   .csa = csa,
                   .B = B,
                   .rsb = rsb,
                   .csb = csb,
                   .C = C,
                   .rsc = ldc,
                   .csc = 1,
                   .accumulate = beta != 0};
    /* A result much narrower than a tile (N of 3 against NR of 16) wastes most of every tile;
     * computing C^T = B^T A^T instead swaps the roles of M and N. Each element's sum is the same.
     */
    if (10 * padded_area(N, M) < 9 * padded_area(M, N)) {
        gemm_plan s = {.M = N,
                       .N = M,
                       .K = K,
                       .A = B,
                       .rsa = csb,
                       .csa = rsb,
                       .B = A,
                       .rsb = csa,
                       .csb = rsa,
                       .C = C,
                       .rsc = 1,
                       .csc = ldc,
                       .accumulate = g.accumulate};
        g = s;
    }
    int threads = 1;
#ifdef _OPENMP
    threads = nb_get_num_threads();
    double flops = 2.0 * (double)M * (double)N * (double)K;
    if (flops < GEMM_MIN_PARALLEL_FLOPS) threads = 1;
    if (threads > ceil_div(g.M, MR) * ceil_div(g.N, NR))
        threads = (int)(ceil_div(g.M, MR) * ceil_div(g.N, NR));
#endif
    g.kc = block_size(g.K, KC_MAX, 1);
    g.mc = block_size(g.M, A_BLOCK_BYTES / (int64_t)sizeof(real) / g.kc / MR * MR, MR);
    /* A is read in place when it is row-major, or transposed and used for few column panels;
     * otherwise packing it once pays for itself. Threads split the rows when each can pack its
     * own A panels or the result is narrow, else the columns. */
    int64_t n_ir = ceil_div(g.M, MR), n_jr = ceil_div(g.N, NR);
    g.a_packed = !(g.csa == 1 || (g.rsa == 1 && n_jr <= 3));
    g.split_rows = threads > 1 && (n_jr < 4 * threads || (g.a_packed && n_ir >= 8 * threads));
    /* Column panels are shared out as the threads go when A fits in L2 with room to spare: read
     * in place it streams through L2; packed, all of it is read for every panel (a 400 KB one
     * measured no faster than the static split). */
    int shared = 0;
#ifdef _OPENMP
    struct shared_run runs[MAX_SHARED_THREADS];
    int64_t a_bytes = n_ir * MR * g.K * (int64_t)sizeof(real);
    shared = threads > 1 && threads <= MAX_SHARED_THREADS && n_jr >= 4 * threads &&
             n_jr <= (int64_t)UINT32_MAX &&
             a_bytes <= (g.a_packed ? A_BLOCK_BYTES / 2 : A_BLOCK_BYTES);
#endif
    if (g.a_packed)
        g.pa = grow(&pack_a_buf, &pack_a_len,
                    (size_t)(shared ? n_ir * MR * g.K : threads * g.mc * g.kc));
    g.pt_step = g.kc * NR + (!shared ? g.kc * MR : g.a_packed ? 0 : g.K * MR);
    g.pt = grow(&pack_t_buf, &pack_t_len, (size_t)(threads * g.pt_step));
#ifdef _OPENMP
    if (shared) {
        for (int t = 0; t < threads; t++)
            atomic_init(&runs[t].span, (uint64_t)(n_jr * t / threads) << 32 |
                                           (uint64_t)(n_jr * (t + 1) / threads));
        g.runs = runs;
        g.nruns = threads;
    }
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        if (g.runs)
            gemm_shared_columns(&g, omp_get_thread_num(), omp_get_num_threads());
        else
            gemm_blocked(&g, omp_get_thread_num(), omp_get_num_threads());
    }
#else
    gemm_blocked(&g, 0, 1);
#endif
}
