/* autograd/ops_conv.c: convolution, pooling and upsampling over NCHW tensors.
 *
 * Every convolution here is one of three products over a conv "geometry": an image side
 * X [N, C, H, W], a column side Y [N, O, Ho, Wo] and a weight W [O, C/G, kh, kw] (G groups):
 *
 *   forward      Y[n]  (+)= W @ im2col(X[n])                   (per sample and group)
 *   input grad   X[n]  (+)= col2im(W^T @ Y[n])
 *   weight grad  W     (+)= sum over n of Y[n] @ im2col(X[n])^T
 *
 * im2col lays one sample's receptive fields out as a (C/G * kh * kw) x (Ho * Wo) matrix; col2im is
 * its adjoint, a scatter-add back onto the image. A chunk of samples' matrices sit side by side,
 * so each product is one nb_gemm over the chunk (chunk_samples).
 * conv2d uses the three as written (x is the image side, its output the column side).
 * conv_transpose2d is conv2d's input gradient as an op: its input is the column side, its output
 * the image side, so its forward is the "input grad" product, its input gradient is the
 * "forward" product and its weight gradient is the same "weight grad" product with the roles of
 * the two sides' data swapped. Nothing is written twice: the forward and weight-gradient
 * products share one function (both read im2col of the image side, which the transpose's
 * backward then builds once for both), and one backward function serves both ops.
 *
 * Threads take whole tasks (chunks of samples and a group) as they come free (task_next), each with
 * its own column buffer from the arena, and call the gemm on one thread; every output element is
 * computed by one task, so the bits do not depend on the thread count. The weight gradient is a sum
 * over samples: samples are dealt into a fixed number of slots (CONV_SLOTS, whatever the thread
 * count), each slot sums its samples in order into its own partial gradient, and the partials are
 * added in slot order. Two shortcuts skip the column matrix: a 1x1 stride-1 unpadded kernel reads
 * the image itself, and a stride-1 layer with few output channels works on zero-padded planes (see
 * "narrow").
 *
 * Pooling and upsampling run a plain loop per (sample, channel) plane, planes shared out over
 * the threads; their backward passes write each input plane from one thread. */
#include "autograd/autograd.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"

#include <math.h>
#include <string.h>

#include <stdatomic.h>

#ifdef _OPENMP
#include <omp.h>
#define CONV_PARALLEL(T) NB_PRAGMA(omp parallel num_threads(T) if ((T) > 1))
#else
#define CONV_PARALLEL(T)
#endif

/* Slots for the weight gradient's sum over samples: a constant, so the partition (and so the
 * order of every addition) is the same for any thread count. */
#define CONV_SLOTS 8

/* Below this much work a conv runs on the calling thread (as the gemm does). */
#define CONV_MIN_PARALLEL_FLOPS 1e6

typedef struct {
    int64_t N, C, H, W;             /* image side */
    int64_t O, Ho, Wo;              /* column side */
    int64_t kh, kw, sh, sw, ph, pw; /* kernel, stride, padding */
    int64_t dh, dw;                 /* dilation */
    int64_t G, Cg, Og;              /* groups; channels per group on each side */
    int64_t K, P;                   /* rows of a column matrix (Cg kh kw), its columns (Ho Wo) */
} geom;

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static double wtime(void) {
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return 0;
#endif
}

/* Task loops: `for (int64_t t = task_first(&L); t < L.tasks; t = task_next(&L))` inside
 * CONV_PARALLEL(L.team), L from task_loop. The first tasks go one to each thread of the team,
 * the rest to whichever thread comes free (on a busy machine a descheduled thread holds up
 * nothing). Every thread runs at least one task of each loop, so each one's gemm buffers have
 * grown for its shapes after the first step and later steps allocate nothing; which thread runs a
 * task never changes its result. As the gemm does, the calling thread times its own tasks: scaled
 * to all of them, that is the loop's one-thread time, which task_report gives the adaptive thread
 * count (nb_threads_report, tensor/gemm.h) with the loop's wall time. */
typedef struct {
    int64_t tasks;
    int team;
    _Atomic int64_t next;
    double t0, own; /* the loop's start; the calling thread's time on its tasks */
    int64_t own_tasks;
} task_loop;

/* Threads for `tasks` independent tasks of `flops` work in all: the set count (or 1 while the
 * machine is too busy for threads to pay, nb_threads_now), at most one per task. */
static void task_loop_init(task_loop *L, int64_t tasks, double flops) {
    int t = nb_threads_now();
    if (flops < CONV_MIN_PARALLEL_FLOPS) t = 1;
    if (t > tasks) t = (int)tasks;
    L->tasks = tasks, L->team = t < 1 ? 1 : t;
    atomic_init(&L->next, 0);
    L->t0 = wtime(), L->own = 0, L->own_tasks = 0;
}

static int64_t task_first(task_loop *L) {
    int64_t t = thread_id();
    if (t == 0 && t >= L->tasks) L->own = wtime() - L->t0;
    return t;
}

static int64_t task_next(task_loop *L) {
    int id = thread_id();
#ifdef _OPENMP
    int64_t t =
        omp_get_num_threads() + atomic_fetch_add_explicit(&L->next, 1, memory_order_relaxed);
#else
    int64_t t = 1 + atomic_fetch_add_explicit(&L->next, 1, memory_order_relaxed);
#endif
    if (id == 0) {
        L->own_tasks++;
        if (t >= L->tasks) L->own = wtime() - L->t0;
    }
    return t;
}

static void task_report(const task_loop *L) {
    if (L->team > 1 && L->own_tasks > 0)
        nb_threads_report(L->own * (double)L->tasks / (double)L->own_tasks, wtime() - L->t0);
}

/* 1x1 kernel, stride 1, no padding: the column matrix is the image itself. */
static bool is_pointwise(const geom *g) {
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* ---- stride 1 with few output channels: shifted planes instead of a column matrix -----------
 * With Og of 1 (the conv VAE's last layer) a gemm is a matrix-vector product and the column
 * matrix (K x P, 900 KB there) costs more to write and read than the arithmetic. With stride 1
 * and up to NARROW_OG channels, each sample's planes are copied once into zero-padded planes of
 * width Wp = W + 2 pw, and the outputs are kept Wp wide too (the Wp - Wo extra columns are
 * scratch, zero where they are read). Then row r = (c, i, j) of the column matrix is the padded
 * plane c read from shift s(i, j) = i dh Wp + j dw, so each product is a run of long contiguous
 * loops (taps and dots below):
 *   y[o] += sum over (c, i, j) of w[o, c, i, j] * (xpad[c] >> s(i, j))
 *   dw[o, c, i, j] += y[o] . (xpad[c] >> s(i, j))
 *   dxpad[c] += sum over (o, i, j) of w[o, c, i, j] * (dy[o] << s(i, j))
 * The last one reads each dy plane from GUARD = the largest shift to the left of its start, in
 * a guarded copy with zeros before and after it, so every output of dxpad gathers its taps. */
#define NARROW_OG 4

static bool is_narrow(const geom *g) {
    return g->Og <= NARROW_OG && g->sh == 1 && g->sw == 1 && !is_pointwise(g);
}

/* Sizes for the narrow path: a padded plane (with room for the last shift), a wide output. */
static int64_t padded_plane(const geom *g) {
    return (g->H + 2 * g->ph) * (g->W + 2 * g->pw) + (g->kw - 1) * g->dw;
}
static int64_t wide_plane(const geom *g) {
    return g->Ho * (g->W + 2 * g->pw);
}
static int64_t guard(const geom *g) { /* the largest shift */
    return (g->kh - 1) * g->dh * (g->W + 2 * g->pw) + (g->kw - 1) * g->dw;
}
static int64_t guarded_plane(const geom *g) { /* a dy plane read with every shift */
    return guard(g) + padded_plane(g);
}

/* The kh kw shifts s(i, j), then GUARD - s(i, j), in arena memory. */
static int64_t *tap_shifts(const geom *g) {
    int64_t T = g->kh * g->kw, *sh = arena_alloc((size_t)(2 * T) * sizeof(int64_t));
    for (int64_t t = 0; t < T; t++) {
        sh[t] = t / g->kw * g->dh * (g->W + 2 * g->pw) + t % g->kw * g->dw;
        sh[T + t] = guard(g) - sh[t];
    }
    return sh;
}

/* x [Cg, H, W] -> xp [Cg, padded_plane]: zero borders (only they are zeroed). */
static void pad_planes(const geom *g, const real *x, real *xp) {
    int64_t Wp = g->W + 2 * g->pw, PL = padded_plane(g), top = g->ph * Wp + g->pw;
    for (int64_t c = 0; c < g->Cg; c++) {
        real *d = xp + c * PL;
        memset(d, 0, (size_t)top * sizeof(real));
        for (int64_t h = 0; h < g->H; h++) {
            real *row = d + top + h * Wp; /* the row's first image element */
            memcpy(row, x + (c * g->H + h) * g->W, (size_t)g->W * sizeof(real));
            memset(row + g->W, 0, (size_t)(2 * g->pw) * sizeof(real)); /* right, next left */
        }
        int64_t done = top + g->H * Wp; /* the bottom rows and the room for the last shift */
        memset(d + done, 0, (size_t)(PL - done) * sizeof(real));
    }
}

/* y [Og, Ho, Wo] -> yw [Og, Ho, Wp] (the extra columns zero), plane o at yw + o * stride. */
static void to_wide(const geom *g, const real *y, real *yw, int64_t stride) {
    int64_t Wp = g->W + 2 * g->pw;
    for (int64_t o = 0; o < g->Og; o++)
        for (int64_t q = 0; q < g->Ho; q++)
            for (int64_t w = 0; w < Wp; w++)
                yw[o * stride + q * Wp + w] = w < g->Wo ? y[(o * g->Ho + q) * g->Wo + w] : 0;
}
/* yw [Og, Ho, Wp] -> y [Og, Ho, Wo] */
static void from_wide(const geom *g, const real *yw, real *y) {
    int64_t Wp = g->W + 2 * g->pw;
    for (int64_t q = 0; q < g->Og * g->Ho; q++)
        for (int64_t w = 0; w < g->Wo; w++) y[q * g->Wo + w] = yw[q * Wp + w];
}

/* x [Cg, H, W] += the interior of xp [Cg, padded_plane] (its padding dropped). */
static void unpad_add(const geom *g, const real *xp, real *x) {
    int64_t Wp = g->W + 2 * g->pw, PL = padded_plane(g);
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t h = 0; h < g->H; h++) {
            const real *s = xp + c * PL + (g->ph + h) * Wp + g->pw;
            real *d = x + (c * g->H + h) * g->W;
            for (int64_t v = 0; v < g->W; v++) d[v] += s[v];
        }
}

/* ---- im2col and col2im ------------------------------------------------------------------------
 * col [K, P] holds, in row (c, i, j) and column (oh, ow), the image element at
 * (c, oh*sh - ph + i*dh, ow*sw - pw + j*dw), or 0 where that falls in the padding. Both work on
 * the zero-padded planes above (pad_planes), where that element sits at an offset that depends
 * only on the tap t = (i, j) and the column: idx[t P + oh Wo + ow] = (oh sh + i dh) Wp + ow sw +
 * j dw (the output size keeps every such element inside the padded plane). A row is then a
 * gather through its tap's indices with no bounds to test, and col2im the matching scatter-add
 * (a row's indices are distinct) onto zeroed padded planes, whose interior unpad_add adds to x. */

/* The taps' indices, kh kw P of them, in arena memory. */
static int32_t *col_index(const geom *g) {
    int64_t Wp = g->W + 2 * g->pw, T = g->kh * g->kw;
    int32_t *idx = arena_alloc((size_t)(T * g->P) * sizeof(int32_t));
    for (int64_t t = 0; t < T; t++)
        for (int64_t oh = 0; oh < g->Ho; oh++)
            for (int64_t ow = 0; ow < g->Wo; ow++)
                idx[t * g->P + oh * g->Wo + ow] = (int32_t)((oh * g->sh + t / g->kw * g->dh) * Wp +
                                                            ow * g->sw + t % g->kw * g->dw);
    return idx;
}

/* col (rows ld apart) = im2col of padded planes xp [Cg, padded_plane]. */
static void im2col(const geom *g, const real *xp, const int32_t *idx, real *col, int64_t ld) {
    int64_t T = g->kh * g->kw, PL = padded_plane(g);
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t t = 0; t < T; t++) {
            const real *src = xp + c * PL;
            const int32_t *ix = idx + t * g->P;
            real *row = col + (c * T + t) * ld;
            for (int64_t p = 0; p < g->P; p++) row[p] = src[ix[p]];
        }
}

/* xp [Cg, padded_plane] += col2im(col) (rows ld apart). */
static void col2im(const geom *g, const real *col, int64_t ld, const int32_t *idx, real *xp) {
    int64_t T = g->kh * g->kw, PL = padded_plane(g);
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t t = 0; t < T; t++) {
            real *dst = xp + c * PL;
            const int32_t *ix = idx + t * g->P;
            const real *row = col + (c * T + t) * ld;
            for (int64_t p = 0; p < g->P; p++) dst[ix[p]] += row[p];
        }
}

/* out[q] += sum over planes c < nc and taps t < T of coef[c cs + t] * src[c ps + shift[t] + q],
 * for q < n: every output of a block of TAPS_BLOCK stays in registers while all the taps pass
 * over it (one load of src per tap and lane, no load or store of out in between), the taps in
 * the order (c, t) for every output. */
#define TAPS_BLOCK 32
NB_VECTOR_CLONES static void taps(real *restrict out, int64_t n, const real *restrict src,
                                  int64_t nc, int64_t ps, const int64_t *shift, int64_t T,
                                  const real *coef, int64_t cs) {
    int64_t q0 = 0;
    for (; q0 + TAPS_BLOCK <= n; q0 += TAPS_BLOCK) {
        real a[TAPS_BLOCK];
        for (int k = 0; k < TAPS_BLOCK; k++) a[k] = out[q0 + k];
        for (int64_t c = 0; c < nc; c++)
            for (int64_t t = 0; t < T; t++) {
                const real w = coef[c * cs + t], *x = src + c * ps + shift[t] + q0;
                for (int k = 0; k < TAPS_BLOCK; k++) a[k] += w * x[k];
            }
        for (int k = 0; k < TAPS_BLOCK; k++) out[q0 + k] = a[k];
    }
    for (; q0 < n; q0++) {
        real a = out[q0];
        for (int64_t c = 0; c < nc; c++)
            for (int64_t t = 0; t < T; t++) a += coef[c * cs + t] * src[c * ps + shift[t] + q0];
        out[q0] = a;
    }
}

/* out[t] = a . (b + shift[t]) for t < T: each dot keeps DOT_LANES running sums (element i to
 * sum i % DOT_LANES), then halves them pairwise (sum k += sum k + w for w = 16, 8, ..., 1), a
 * fixed order whatever the vector width. DOT_TAPS dots at a time share each load of a. */
#define DOT_LANES 32
#define DOT_TAPS  4
NB_VECTOR_CLONES static void dots(real *out, const real *restrict a, const real *restrict b,
                                  const int64_t *shift, int64_t T, int64_t n) {
    for (int64_t t0 = 0; t0 < T; t0 += DOT_TAPS) {
        int nt = T - t0 < DOT_TAPS ? (int)(T - t0) : DOT_TAPS;
        real s[DOT_TAPS][DOT_LANES] = {{0}};
        const real *x[DOT_TAPS];
        for (int u = 0; u < DOT_TAPS; u++) x[u] = b + shift[t0 + (u < nt ? u : 0)];
        int64_t i = 0;
        for (; i + DOT_LANES <= n; i += DOT_LANES)
            for (int u = 0; u < DOT_TAPS; u++) /* unused taps repeat the first: no branch */
                for (int k = 0; k < DOT_LANES; k++) s[u][k] += a[i + k] * x[u][i + k];
        for (int u = 0; u < nt; u++) {
            for (int64_t j = i, k = 0; j < n; j++, k++) s[u][k] += a[j] * x[u][j];
            for (int w = DOT_LANES / 2; w >= 1; w /= 2)
                for (int k = 0; k < w; k++) s[u][k] += s[u][k + w];
            out[t0 + u] = s[u][0];
        }
    }
}

/* ---- the three products -----------------------------------------------------------------------
 * x [N, C, H, W], y [N, O, Ho, Wo], w [O, Cg, kh, kw], all contiguous. Each task (a chunk of
 * samples and a group) works in its thread's scratch: the chunk's column matrix, its y and one
 * sample's padded planes, or padded and wide planes (narrow, one sample a chunk). */

/* Samples per chunk: the column matrices of a chunk's samples side by side make one wide gemm
 * (a 7x7 output alone is 49 columns, too few to keep the microkernel busy; the weight gradient
 * then sums a chunk's columns in one product instead of 49 at a time). A batch splits into
 * CONV_CHUNKS chunks (a multiple of the usual thread counts, so threads get equal shares), each
 * of at most CHUNK_COLS columns (the column matrix stays near L2's size). The count depends only
 * on the batch and the geometry, so the chunks, and the bits, are the same for any thread count. */
#define CONV_CHUNKS 16
#define CHUNK_COLS  1024

static int64_t chunk_samples(const geom *g) {
    if (is_pointwise(g) || is_narrow(g)) return 1;
    int64_t cs = (g->N + CONV_CHUNKS - 1) / CONV_CHUNKS, most = CHUNK_COLS / g->P;
    if (cs > most) cs = most;
    return cs < 1 ? 1 : cs;
}

static int64_t scratch_each(const geom *g) {
    if (is_narrow(g)) /* padded planes, guarded (or wide) output planes, kh kw dots */
        return g->Cg * padded_plane(g) + g->Og * guarded_plane(g) + g->kh * g->kw;
    /* a chunk's column matrix [K, CS P] and its y [Og, CS P], one sample's padded planes
     * (1x1: only y, the image is its own column matrix) */
    if (is_pointwise(g)) return g->Og * g->P;
    return (g->K + g->Og) * chunk_samples(g) * g->P + g->Cg * padded_plane(g);
}

/* A chunk's y side by side: yc [Og, ns P] from y [N, O, P], samples n0 .. n0 + ns, group gi. */
static void gather_y(const geom *g, const real *y, int64_t n0, int64_t ns, int64_t gi, real *yc) {
    for (int64_t s = 0; s < ns; s++)
        for (int64_t o = 0; o < g->Og; o++)
            memcpy(yc + o * ns * g->P + s * g->P, y + ((n0 + s) * g->O + gi * g->Og + o) * g->P,
                   (size_t)g->P * sizeof(real));
}

/* Scratch for each thread of the set count (at most one per task), whatever the team is now:
 * a team that shrinks and grows with the machine's load must not change the arena's use. */
static real *scratch(const geom *g, int64_t tasks) {
    int64_t each = scratch_each(g), T = nb_get_num_threads();
    if (T > tasks) T = tasks;
    return each ? arena_alloc((size_t)(T * each) * sizeof(real)) : NULL;
}

static real *my_scratch(const geom *g, real *buf) {
    return buf + (int64_t)thread_id() * scratch_each(g);
}

/* Fills n planes of `size` elements with bias[0..n) (bias may be NULL: zeros). */
static void fill_planes(real *p, int64_t n, int64_t size, const real *bias) {
    for (int64_t c = 0; c < n; c++)
        for (int64_t q = 0; q < size; q++) p[c * size + q] = bias ? bias[c] : 0;
}

/* x = (bias, or x if acc, or 0) + col2im(W^T @ y) for every sample and group. Tasks are a
 * chunk of samples and a group. */
static void conv_backward_data(const geom *g, const real *y, const real *w, const real *bias,
                               real *x, bool acc) {
    int64_t CS = chunk_samples(g), tasks = (g->N + CS - 1) / CS * g->G, HW = g->H * g->W;
    task_loop L;
    task_loop_init(&L, tasks, 2.0 * (double)(g->N * g->O * g->K * g->P));
    bool direct = is_pointwise(g);
    ag_mark_t m = ag_mark();
    real *buf = scratch(g, L.tasks); /* for the set count: the same size every step */
    int64_t *sh = is_narrow(g) ? tap_shifts(g) : NULL;
    int32_t *idx = direct || is_narrow(g) ? NULL : col_index(g);
    CONV_PARALLEL(L.team)
    for (int64_t t = task_first(&L); t < tasks; t = task_next(&L)) {
        int64_t n = t / g->G * CS, gi = t % g->G, ns = g->N - n < CS ? g->N - n : CS;
        const real *ys = y + (n * g->O + gi * g->Og) * g->P, *wg = w + gi * g->Og * g->K;
        for (int64_t s = 0; s < ns; s++)
            if (bias || (!acc && !direct))
                fill_planes(x + ((n + s) * g->C + gi * g->Cg) * HW, g->Cg, HW,
                            bias ? bias + gi * g->Cg : NULL);
        real *xs = x + (n * g->C + gi * g->Cg) * HW; /* the first sample's (the only one: 1x1
                                                         and narrow chunks hold one) */
        /* dcol[K, ns P] = W_g^T [K, Og] @ y_g [Og, ns P] */
        if (direct) {
            nb_gemm(g->K, g->P, g->Og, wg, 1, g->K, ys, g->P, 1, bias || acc ? 1 : 0, xs, g->P);
        } else if (is_narrow(g)) {
            real *xp = my_scratch(g, buf), *yg = xp + g->Cg * padded_plane(g);
            int64_t PL = padded_plane(g), GP = guarded_plane(g), taps_n = g->kh * g->kw;
            for (int64_t q = 0; q < g->Og * GP; q++) yg[q] = 0;
            to_wide(g, ys, yg + guard(g), GP);
            for (int64_t q = 0; q < g->Cg * PL; q++) xp[q] = 0;
            for (int64_t c = 0; c < g->Cg; c++)
                taps(xp + c * PL, PL, yg, g->Og, GP, sh + taps_n, taps_n, wg + c * taps_n, g->K);
            unpad_add(g, xp, xs);
        } else {
            int64_t ld = ns * g->P, PL = padded_plane(g);
            real *col = my_scratch(g, buf), *yc = col + g->K * CS * g->P,
                 *xp = yc + g->Og * CS * g->P;
            gather_y(g, y, n, ns, gi, yc);
            nb_gemm(g->K, ld, g->Og, wg, 1, g->K, yc, ld, 1, 0, col, ld);
            for (int64_t s = 0; s < ns; s++) {
                memset(xp, 0, (size_t)(g->Cg * PL) * sizeof(real));
                col2im(g, col + s * g->P, ld, idx, xp);
                unpad_add(g, xp, x + ((n + s) * g->C + gi * g->Cg) * HW);
            }
        }
    }
    task_report(&L);
    ag_release(m);
}

/* The two products that read im2col(x), with one im2col per sample and group for both:
 *   out = (bias, or out if out_acc, or 0) + W @ im2col(x)       (when out is not NULL)
 *   dw (+)= sum over n of y[n] @ im2col(x[n])^T                (when dw is not NULL)
 * conv_transpose2d's backward needs both from the same image (its output's gradient). Tasks are
 * runs of samples: a chunk each, or with dw the CONV_SLOTS slots (see the top), each worked
 * through in chunks; a chunk's products are one gemm over its samples' columns side by side. */
static void gather_products(const geom *g, const real *x, const real *w, const real *bias,
                            real *out, bool out_acc, const real *y, real *dw, bool dw_acc) {
    int64_t CS = chunk_samples(g), wn = g->O * g->K;
    int64_t S = dw ? (g->N < CONV_SLOTS ? g->N : CONV_SLOTS) : (g->N + CS - 1) / CS;
    if (dw && S == 0 && !dw_acc) memset(dw, 0, (size_t)wn * sizeof(real));
    if (S == 0) return;
    task_loop L;
    task_loop_init(&L, S,
                   ((out ? 2.0 : 0.0) + (dw ? 2.0 : 0.0)) * (double)(g->N * g->O * g->K * g->P));
    ag_mark_t m = ag_mark();
    real *buf = scratch(g, L.tasks); /* for the set count: the same size every step */
    real *part = dw ? arena_alloc((size_t)(S * wn) * sizeof(real)) : NULL;
    int64_t *sh = is_narrow(g) ? tap_shifts(g) : NULL, taps_n = g->kh * g->kw;
    int32_t *idx = is_pointwise(g) || is_narrow(g) ? NULL : col_index(g);
    CONV_PARALLEL(L.team)
    for (int64_t s = task_first(&L); s < S; s = task_next(&L)) {
        int64_t lo = dw ? s * g->N / S : s * CS, hi = dw ? (s + 1) * g->N / S : lo + CS;
        if (hi > g->N) hi = g->N;
        for (int64_t n = lo; n < hi; n += CS)
            for (int64_t gi = 0; gi < g->G; gi++) {
                int64_t ns = hi - n < CS ? hi - n : CS, ld = ns * g->P;
                const real *xs = x + (n * g->C + gi * g->Cg) * g->H * g->W;
                real *os = out ? out + (n * g->O + gi * g->Og) * g->P : NULL;
                const real *wg = out ? w + gi * g->Og * g->K : NULL;
                real *pg = dw ? part + s * wn + gi * g->Og * g->K : NULL; /* [Og, K] */
                const bool first = n == lo;
                if (is_narrow(g)) { /* one sample */
                    const real *ys = dw ? y + (n * g->O + gi * g->Og) * g->P : NULL;
                    real *xp = my_scratch(g, buf), *yw = xp + g->Cg * padded_plane(g);
                    int64_t Q = wide_plane(g);
                    if (os && (bias || !out_acc))
                        fill_planes(os, g->Og, g->P, bias ? bias + gi * g->Og : NULL);
                    pad_planes(g, xs, xp);
                    if (os) {
                        to_wide(g, os, yw, Q);
                        for (int64_t o = 0; o < g->Og; o++)
                            taps(yw + o * Q, Q, xp, g->Cg, padded_plane(g), sh, taps_n,
                                 wg + o * g->K, taps_n);
                        from_wide(g, yw, os);
                    }
                    if (pg) {
                        to_wide(g, ys, yw, Q);
                        real *v = yw + g->Og * guarded_plane(g); /* kh kw dots */
                        for (int64_t o = 0; o < g->Og; o++)
                            for (int64_t c = 0; c < g->Cg; c++) {
                                dots(v, yw + o * Q, xp + c * padded_plane(g), sh, taps_n, Q);
                                real *d = pg + o * g->K + c * taps_n;
                                for (int64_t t = 0; t < taps_n; t++)
                                    d[t] = first ? v[t] : d[t] + v[t];
                            }
                    }
                    continue;
                }
                /* col [K, ns P]: the chunk's column matrices side by side (1x1: the image) */
                const real *col = xs;
                real *yc = my_scratch(g, buf);
                if (!is_pointwise(g)) {
                    real *c = yc, *xp = c + (g->K + g->Og) * CS * g->P;
                    for (int64_t q = 0; q < ns; q++) {
                        pad_planes(g, xs + q * g->C * g->H * g->W, xp);
                        im2col(g, xp, idx, c + q * g->P, ld);
                    }
                    col = c;
                    yc += g->K * CS * g->P;
                }
                if (os) { /* yc [Og, ns P] = W_g @ col, then into each sample's planes */
                    nb_gemm(g->Og, ld, g->K, wg, g->K, 1, col, ld, 1, 0, yc, ld);
                    for (int64_t q = 0; q < ns; q++)
                        for (int64_t o = 0; o < g->Og; o++) {
                            real *d = os + (q * g->O + o) * g->P;
                            const real *v = yc + o * ld + q * g->P;
                            real b0 = bias ? bias[gi * g->Og + o] : 0;
                            for (int64_t p = 0; p < g->P; p++)
                                d[p] = (bias ? b0 : out_acc ? d[p] : 0) + v[p];
                        }
                }
                /* part_g [Og, K] (+)= y_g [Og, ns P] @ col^T [ns P, K] */
                if (pg) {
                    gather_y(g, y, n, ns, gi, yc);
                    nb_gemm(g->Og, g->K, ld, yc, ld, 1, col, 1, ld, first ? 0 : 1, pg, g->K);
                }
            }
    }
    task_report(&L);
    if (dw) {
        NB_PARALLEL_FOR(wn)
        for (int64_t i = 0; i < wn; i++) {
            real v = dw_acc ? dw[i] : 0;
            for (int64_t q = 0; q < S; q++) v += part[q * wn + i];
            dw[i] = v;
        }
    }
    ag_release(m);
}

/* db[c] (+)= sum of y[n, c, :] over n (planes of P elements), in double, in a fixed order;
 * channels shared out over the threads. */
static void bias_backward(const real *y, int64_t N, int64_t C, int64_t P, real *db, bool acc) {
    NB_PARALLEL_FOR(N * C * P)
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++) s += k_dsum(y + (n * C + c) * P, P);
        db[c] = (real)(acc ? db[c] + s : s);
    }
}

/* ---- options and shapes -----------------------------------------------------------------------
 */

nb_conv2d_opts nb_conv2d_defaults(void) {
    nb_conv2d_opts o = {.stride = {1, 1}, .dilation = {1, 1}, .groups = 1};
    return o;
}

/* Checks x, w, b and the options for conv2d (transposed false) or conv_transpose2d, and returns
 * the geometry: for conv2d x is the image side, for the transpose the column side. */
static geom make_geom(const char *op, const Tensor *x, const Tensor *w, const Tensor *b,
                      nb_conv2d_opts o, bool transposed) {
    char s1[128], s2[128];
    if (x->ndim != 4 || w->ndim != 4)
        nb_fail(op, "want x [N, C, H, W] and a 4-D weight, got x %s and weight %s",
                nb_shape_str(s1, x->ndim, x->shape), nb_shape_str(s2, w->ndim, w->shape));
    for (int d = 0; d < 2; d++)
        if (o.stride[d] <= 0 || o.dilation[d] <= 0 || o.padding[d] < 0 || o.output_padding[d] < 0)
            nb_fail(op,
                    "stride (%d, %d) and dilation (%d, %d) must be positive, padding (%d, %d) and "
                    "output_padding (%d, %d) non-negative",
                    o.stride[0], o.stride[1], o.dilation[0], o.dilation[1], o.padding[0],
                    o.padding[1], o.output_padding[0], o.output_padding[1]);
    if (o.groups <= 0) nb_fail(op, "groups must be positive, got %d", o.groups);
    int64_t G = o.groups, C = x->shape[1];
    if (C % G != 0)
        nb_fail(op, "groups %d does not divide the %lld input channels of x %s", o.groups,
                (long long)C, nb_shape_str(s1, x->ndim, x->shape));
    if (w->shape[2] <= 0 || w->shape[3] <= 0)
        nb_fail(op, "empty kernel in weight %s", nb_shape_str(s1, w->ndim, w->shape));
    geom g = {.N = x->shape[0],
              .kh = w->shape[2],
              .kw = w->shape[3],
              .sh = o.stride[0],
              .sw = o.stride[1],
              .ph = o.padding[0],
              .pw = o.padding[1],
              .dh = o.dilation[0],
              .dw = o.dilation[1],
              .G = G};
    int64_t out_c;
    if (!transposed) {
        if (o.output_padding[0] || o.output_padding[1])
            nb_fail(op, "output_padding (%d, %d) applies only to conv_transpose2d",
                    o.output_padding[0], o.output_padding[1]);
        if (w->shape[0] % G != 0 || w->shape[1] * G != C)
            nb_fail(op,
                    "weight %s does not fit x %s with groups %d (want [O, C/groups, kh, kw] with "
                    "O divisible by groups)",
                    nb_shape_str(s1, w->ndim, w->shape), nb_shape_str(s2, x->ndim, x->shape),
                    o.groups);
        g.C = C, g.H = x->shape[2], g.W = x->shape[3];
        g.O = out_c = w->shape[0];
        g.Ho = (g.H + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
        g.Wo = (g.W + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
        if (g.H + 2 * g.ph - g.dh * (g.kh - 1) - 1 < 0 ||
            g.W + 2 * g.pw - g.dw * (g.kw - 1) - 1 < 0)
            g.Ho = g.Wo = 0;
        if (g.Ho <= 0 || g.Wo <= 0)
            nb_fail(op,
                    "output size %lldx%lld is empty: input %s, kernel %lldx%lld, padding (%d, %d), "
                    "dilation (%d, %d)",
                    (long long)g.Ho, (long long)g.Wo, nb_shape_str(s1, x->ndim, x->shape),
                    (long long)g.kh, (long long)g.kw, o.padding[0], o.padding[1], o.dilation[0],
                    o.dilation[1]);
    } else {
        for (int d = 0; d < 2; d++)
            if (o.output_padding[d] >= o.stride[d] && o.output_padding[d] >= o.dilation[d])
                nb_fail(op, "output_padding %d must be smaller than stride %d or dilation %d",
                        o.output_padding[d], o.stride[d], o.dilation[d]);
        if (w->shape[0] != C)
            nb_fail(op,
                    "weight %s does not fit x %s (want [C, O/groups, kh, kw] with C the input "
                    "channels)",
                    nb_shape_str(s1, w->ndim, w->shape), nb_shape_str(s2, x->ndim, x->shape));
        g.O = C, g.Ho = x->shape[2], g.Wo = x->shape[3];
        g.C = out_c = w->shape[1] * G;
        g.H = (g.Ho - 1) * g.sh - 2 * g.ph + g.dh * (g.kh - 1) + o.output_padding[0] + 1;
        g.W = (g.Wo - 1) * g.sw - 2 * g.pw + g.dw * (g.kw - 1) + o.output_padding[1] + 1;
        if (g.H <= 0 || g.W <= 0)
            nb_fail(op,
                    "output size %lldx%lld is empty: input %s, kernel %lldx%lld, stride (%d, %d), "
                    "padding (%d, %d)",
                    (long long)g.H, (long long)g.W, nb_shape_str(s1, x->ndim, x->shape),
                    (long long)g.kh, (long long)g.kw, o.stride[0], o.stride[1], o.padding[0],
                    o.padding[1]);
        /* the column side's size must come back from the image side (it does unless the input
         * is empty) */
    }
    if (b && (b->ndim != 1 || b->shape[0] != out_c))
        nb_fail(op, "bias %s does not match the %lld output channels",
                nb_shape_str(s1, b->ndim, b->shape), (long long)out_c);
    g.Cg = g.C / G, g.Og = g.O / G;
    g.K = g.Cg * g.kh * g.kw, g.P = g.Ho * g.Wo;
    /* im2col indexes a zero-padded plane with 32-bit offsets */
    if (padded_plane(&g) > INT32_MAX)
        nb_fail(op, "the padded input plane (%lld x %lld) is too large: 2^31 elements at most",
                (long long)(g.H + 2 * g.ph), (long long)(g.W + 2 * g.pw));
    return g;
}

/* t's data as a contiguous block: t's own, or a step copy. */
static real *contiguous_data(Tensor *t) {
    if (tensor_is_contiguous(t)) return t->data + t->offset;
    Tensor *c = tensor_step(t->ndim, t->shape);
    k_unary(K_COPY, t, c, 0, 0, false);
    return c->data;
}

typedef struct {
    geom g;
    bool transposed; /* conv_transpose2d: x is the column side, y the image side */
    bool relu;       /* the output is ReLU'd in place (ag_conv2d_relu, ag_conv_transpose2d_relu) */
    real *x, *w;     /* contiguous data of the op's input and weight */
} conv_saved;

/* ---- conv2d and conv_transpose2d ---------------------------------------------------------------
 * conv2d (x the image side, y the column side):
 *   y = W @ im2col(x) + b        dx += col2im(W^T @ dy)    dW += dy @ im2col(x)^T
 * conv_transpose2d, conv2d's input gradient as an op (x [N, C, H, W] the column side,
 * w [C, O/groups, kh, kw], y [N, O, H', W'] the image side):
 *   y = col2im(W^T @ x) + b      dx += W @ im2col(dy)      dW += x @ im2col(dy)^T
 * and for both db += dy summed over N, H', W'. With a fused ReLU (y = relu(conv)), dy is first
 * masked where y is 0, into scratch, as relu's backward would write the convolution's gradient. */

static void conv_backward(Tensor *y) {
    Tensor *x = y->parents[0], *w = y->parents[1], *b = y->nparents > 2 ? y->parents[2] : NULL;
    const conv_saved *s = y->saved;
    const geom *g = &s->g;
    const real *dy = y->grad->data + y->grad->offset;
    bool fresh_x = false, fresh_w = false, fresh_b = false;
    real *dx = NULL, *dw = NULL, *db = NULL;
    if (x->requires_grad) {
        Tensor *gx = ag_grad_begin(x, &fresh_x);
        dx = gx->data + gx->offset;
    }
    if (w->requires_grad) {
        Tensor *gw = ag_grad_begin(w, &fresh_w);
        dw = gw->data + gw->offset;
    }
    if (b && b->requires_grad) {
        Tensor *gb = ag_grad_begin(b, &fresh_b);
        db = gb->data + gb->offset;
    }
    ag_mark_t m = ag_mark(); /* the masked dy of a fused ReLU (the gradients above stay) */
    if (s->relu) {
        const real *yv = y->data + y->offset;
        real *masked = arena_alloc((size_t)y->numel * sizeof(real));
        NB_PARALLEL_FOR(y->numel)
        for (int64_t i = 0; i < y->numel; i++) masked[i] = yv[i] > 0 ? dy[i] : 0;
        dy = masked;
    }
    if (s->transposed) { /* both products read im2col(dy): one pass */
        if (dx || dw) gather_products(g, dy, s->w, NULL, dx, !fresh_x, s->x, dw, !fresh_w);
    } else {
        if (dx) conv_backward_data(g, dy, s->w, NULL, dx, !fresh_x);
        if (dw) gather_products(g, s->x, NULL, NULL, NULL, false, dy, dw, !fresh_w);
    }
    if (db) {
        if (s->transposed)
            bias_backward(dy, g->N, g->C, g->H * g->W, db, !fresh_b);
        else
            bias_backward(dy, g->N, g->O, g->P, db, !fresh_b);
    }
    ag_release(m);
}

static Tensor *conv_op(const char *op, Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o,
                       bool transposed, bool relu) {
    conv_saved *s = arena_alloc(sizeof *s);
    s->g = make_geom(op, x, w, b, o, transposed);
    s->transposed = transposed;
    s->relu = relu;
    s->x = contiguous_data(x);
    s->w = contiguous_data(w);
    const geom *g = &s->g;
    real *bias = b ? contiguous_data(b) : NULL;
    Tensor *y;
    if (transposed) {
        y = tensor_step(NB_SHAPE(g->N, g->C, g->H, g->W));
        conv_backward_data(g, s->x, s->w, bias, y->data, false);
    } else {
        y = tensor_step(NB_SHAPE(g->N, g->O, g->Ho, g->Wo));
        gather_products(g, s->x, s->w, bias, y->data, false, NULL, NULL, false);
    }
    if (relu) k_unary(K_RELU, y, y, 0, 0, false); /* in place: ag_relu's formula */
    y->saved = s;
    if (b)
        ag_record(y, op, conv_backward, (Tensor *[]){x, w, b}, 3);
    else
        ag_record(y, op, conv_backward, (Tensor *[]){x, w}, 2);
    return y;
}

Tensor *ag_conv2d(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o) {
    return conv_op("conv2d", x, w, b, o, false, false);
}

Tensor *ag_conv2d_relu(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o) {
    return conv_op("conv2d_relu", x, w, b, o, false, true);
}

Tensor *ag_conv_transpose2d(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o) {
    return conv_op("conv_transpose2d", x, w, b, o, true, false);
}

Tensor *ag_conv_transpose2d_relu(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o) {
    return conv_op("conv_transpose2d_relu", x, w, b, o, true, true);
}

/* ---- conv1d: conv2d on [N, C, 1, L] ---------------------------------------------------------- */

Tensor *ag_conv1d(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o) {
    char s1[128], s2[128];
    if (x->ndim != 3 || w->ndim != 3)
        nb_fail("conv1d", "want x [N, C, L] and weight [O, C/groups, k], got x %s and weight %s",
                nb_shape_str(s1, x->ndim, x->shape), nb_shape_str(s2, w->ndim, w->shape));
    nb_conv2d_opts o2 = {.stride = {1, o.stride[0]},
                         .padding = {0, o.padding[0]},
                         .dilation = {1, o.dilation[0]},
                         .output_padding = {0, o.output_padding[0]},
                         .groups = o.groups};
    Tensor *y = conv_op("conv1d", ag_unsqueeze(x, 2), ag_unsqueeze(w, 2), b, o2, false, false);
    return ag_squeeze(y, 2);
}

/* ---- pooling
 * ------------------------------------------------------------------------------------------
 * x [N, C, H, W] (any strides) -> y [N, C, Ho, Wo], Ho = (H + 2 pad - k) / stride + 1. */

typedef struct {
    int64_t k, s, p, Ho, Wo;
    int32_t *arg; /* max pooling: the flat index h*W + w of each output's maximum */
} pool_saved;

static pool_saved *pool_check(const char *op, const Tensor *x, int kernel, int stride,
                              int padding) {
    char s1[128];
    if (x->ndim != 4)
        nb_fail(op, "want x [N, C, H, W], got %s", nb_shape_str(s1, x->ndim, x->shape));
    if (kernel <= 0 || stride <= 0 || padding < 0)
        nb_fail(op, "kernel %d and stride %d must be positive, padding %d non-negative", kernel,
                stride, padding);
    if (padding > kernel / 2)
        nb_fail(op, "padding %d must be at most half the kernel %d", padding, kernel);
    if (x->shape[2] > INT32_MAX / (x->shape[3] > 0 ? x->shape[3] : 1))
        nb_fail(op, "plane of x %s is too large", nb_shape_str(s1, x->ndim, x->shape));
    pool_saved *ps = arena_alloc(sizeof *ps);
    ps->k = kernel, ps->s = stride, ps->p = padding;
    ps->Ho = (x->shape[2] + 2 * padding - kernel) / stride + 1;
    ps->Wo = (x->shape[3] + 2 * padding - kernel) / stride + 1;
    if (x->shape[2] + 2 * padding < kernel || x->shape[3] + 2 * padding < kernel)
        nb_fail(op, "kernel %d with padding %d does not fit x %s", kernel, padding,
                nb_shape_str(s1, x->ndim, x->shape));
    ps->arg = NULL;
    return ps;
}

/* The window of output (oh, ow) clipped to the image: rows [*h0, *h1), columns [*w0, *w1). */
static void window(const pool_saved *ps, int64_t H, int64_t W, int64_t oh, int64_t ow, int64_t *h0,
                   int64_t *h1, int64_t *w0, int64_t *w1) {
    int64_t hs = oh * ps->s - ps->p, ws = ow * ps->s - ps->p;
    *h0 = hs < 0 ? 0 : hs;
    *w0 = ws < 0 ? 0 : ws;
    *h1 = hs + ps->k < H ? hs + ps->k : H;
    *w1 = ws + ps->k < W ? ws + ps->k : W;
}

static void max_pool2d_backward(Tensor *y) {
    Tensor *x = y->parents[0];
    const pool_saved *ps = y->saved;
    bool fresh;
    Tensor *gx = ag_grad_begin(x, &fresh);
    int64_t NC = x->shape[0] * x->shape[1], HW = x->shape[2] * x->shape[3], P = ps->Ho * ps->Wo;
    const real *g = y->grad->data + y->grad->offset;
    real *dx = gx->data + gx->offset;
    NB_PARALLEL_FOR(NC * (HW + P))
    for (int64_t q = 0; q < NC; q++) {
        if (fresh) memset(dx + q * HW, 0, (size_t)HW * sizeof(real));
        for (int64_t p = 0; p < P; p++) dx[q * HW + ps->arg[q * P + p]] += g[q * P + p];
    }
}

Tensor *ag_max_pool2d(Tensor *x, int kernel, int stride, int padding) {
    pool_saved *ps = pool_check("max_pool2d", x, kernel, stride, padding);
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], P = ps->Ho * ps->Wo;
    Tensor *y = tensor_step(NB_SHAPE(N, C, ps->Ho, ps->Wo));
    ps->arg = arena_alloc((size_t)(N * C * P) * sizeof(int32_t));
    const int64_t *st = x->strides;
    NB_PARALLEL_FOR(N * C * P * kernel * kernel)
    for (int64_t q = 0; q < N * C; q++) {
        const real *xp = x->data + x->offset + (q / C) * st[0] + (q % C) * st[1];
        for (int64_t oh = 0; oh < ps->Ho; oh++)
            for (int64_t ow = 0; ow < ps->Wo; ow++) {
                int64_t h0, h1, w0, w1;
                window(ps, H, W, oh, ow, &h0, &h1, &w0, &w1);
                real best = -INFINITY;
                int64_t arg = h0 * W + w0;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) {
                        real v = xp[h * st[2] + w * st[3]];
                        if (v > best || isnan(v)) best = v, arg = h * W + w;
                    }
                y->data[q * P + oh * ps->Wo + ow] = best;
                ps->arg[q * P + oh * ps->Wo + ow] = (int32_t)arg;
            }
    }
    y->saved = ps;
    ag_record(y, "max_pool2d", max_pool2d_backward, (Tensor *[]){x}, 1);
    return y;
}

/* avg: every window divides by k*k, padding included (count_include_pad). */
static void avg_pool2d_backward(Tensor *y) {
    Tensor *x = y->parents[0];
    const pool_saved *ps = y->saved;
    bool fresh;
    Tensor *gx = ag_grad_begin(x, &fresh);
    int64_t NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3], P = ps->Ho * ps->Wo;
    const real *g = y->grad->data + y->grad->offset;
    real *dx = gx->data + gx->offset, inv = (real)1 / (real)(ps->k * ps->k);
    NB_PARALLEL_FOR(NC * P * ps->k * ps->k)
    for (int64_t q = 0; q < NC; q++) {
        real *d = dx + q * H * W;
        if (fresh) memset(d, 0, (size_t)(H * W) * sizeof(real));
        for (int64_t oh = 0; oh < ps->Ho; oh++)
            for (int64_t ow = 0; ow < ps->Wo; ow++) {
                int64_t h0, h1, w0, w1;
                window(ps, H, W, oh, ow, &h0, &h1, &w0, &w1);
                real v = g[q * P + oh * ps->Wo + ow] * inv;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) d[h * W + w] += v;
            }
    }
}

Tensor *ag_avg_pool2d(Tensor *x, int kernel, int stride, int padding) {
    pool_saved *ps = pool_check("avg_pool2d", x, kernel, stride, padding);
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], P = ps->Ho * ps->Wo;
    Tensor *y = tensor_step(NB_SHAPE(N, C, ps->Ho, ps->Wo));
    const int64_t *st = x->strides;
    real inv = (real)1 / (real)(kernel * kernel);
    NB_PARALLEL_FOR(N * C * P * kernel * kernel)
    for (int64_t q = 0; q < N * C; q++) {
        const real *xp = x->data + x->offset + (q / C) * st[0] + (q % C) * st[1];
        for (int64_t oh = 0; oh < ps->Ho; oh++)
            for (int64_t ow = 0; ow < ps->Wo; ow++) {
                int64_t h0, h1, w0, w1;
                window(ps, H, W, oh, ow, &h0, &h1, &w0, &w1);
                real sum = 0;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) sum += xp[h * st[2] + w * st[3]];
                y->data[q * P + oh * ps->Wo + ow] = sum * inv;
            }
    }
    y->saved = ps;
    ag_record(y, "avg_pool2d", avg_pool2d_backward, (Tensor *[]){x}, 1);
    return y;
}

/* ---- nearest upsampling
 * ------------------------------------------------------------------------------
 * y[n, c, h, w] = x[n, c, h / s, w / s]       dx[n, c, i, j] += the s x s block of dy above it */

/* o[0..W s) = each of x[0..W) (stride sx) repeated s times: an output row of the upsampling. */
static void upsample_row(real *o, const real *x, int64_t sx, int64_t W, int64_t s) {
    if (s == 2 && sx == 1) { /* the common case, as a loop that vectorizes */
        for (int64_t j = 0; j < W; j++) o[2 * j] = o[2 * j + 1] = x[j];
        return;
    }
    for (int64_t j = 0; j < W; j++)
        for (int64_t b = 0; b < s; b++) o[j * s + b] = x[j * sx];
}

/* acc[0..n) += the sums of s neighbours of r[0..n s): one row of an s x s block sum, each sum in
 * the order b = 0..s-1 (the s rows of a block added in turn keep the block's row-major order). */
static void upsample_row_sum(real *acc, const real *r, int64_t n, int64_t s) {
    if (s == 2) {
        for (int64_t j = 0; j < n; j++) acc[j] = (acc[j] + r[2 * j]) + r[2 * j + 1];
        return;
    }
    for (int64_t j = 0; j < n; j++)
        for (int64_t b = 0; b < s; b++) acc[j] += r[j * s + b];
}

static void upsample_nearest2d_backward(Tensor *y) {
    Tensor *x = y->parents[0];
    int64_t s = y->iarg[0], NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    bool fresh;
    Tensor *gx = ag_grad_begin(x, &fresh);
    const real *g = y->grad->data + y->grad->offset;
    real *dx = gx->data + gx->offset;
    enum { CHUNK = 256 }; /* input columns summed at a time, in acc */
    NB_PARALLEL_FOR(NC * H * W * s * s)
    for (int64_t q = 0; q < NC; q++)
        for (int64_t i = 0; i < H; i++) {
            const real *blk = g + (q * H * s + i * s) * W * s; /* the s rows of dy above row i */
            real *d = dx + (q * H + i) * W;
            for (int64_t j0 = 0; j0 < W; j0 += CHUNK) {
                int64_t n = W - j0 < CHUNK ? W - j0 : CHUNK;
                real acc[CHUNK] = {0};
                for (int64_t a = 0; a < s; a++)
                    upsample_row_sum(acc, blk + a * W * s + j0 * s, n, s);
                for (int64_t j = 0; j < n; j++) d[j0 + j] = fresh ? acc[j] : d[j0 + j] + acc[j];
            }
        }
}

Tensor *ag_upsample_nearest2d(Tensor *x, int scale) {
    char s1[128];
    if (x->ndim != 4)
        nb_fail("upsample_nearest2d", "want x [N, C, H, W], got %s",
                nb_shape_str(s1, x->ndim, x->shape));
    if (scale <= 0) nb_fail("upsample_nearest2d", "scale must be positive, got %d", scale);
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], s = scale;
    Tensor *y = tensor_step(NB_SHAPE(N, C, H * s, W * s));
    const int64_t *st = x->strides;
    NB_PARALLEL_FOR(y->numel)
    for (int64_t q = 0; q < N * C; q++) {
        const real *xp = x->data + x->offset + (q / C) * st[0] + (q % C) * st[1];
        real *yp = y->data + q * H * s * W * s;
        for (int64_t h = 0; h < H; h++) { /* one output row, then s - 1 copies of it */
            real *o = yp + h * s * W * s;
            upsample_row(o, xp + h * st[2], st[3], W, s);
            for (int64_t a = 1; a < s; a++)
                memcpy(o + a * W * s, o, sizeof(real) * (size_t)(W * s));
        }
    }
    y->iarg[0] = s;
    ag_record(y, "upsample_nearest2d", upsample_nearest2d_backward, (Tensor *[]){x}, 1);
    return y;
}
