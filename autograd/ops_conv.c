/* autograd/ops_conv.c: convolution, pooling and upsampling over NCHW tensors.
 *
 * Every convolution here is one of three products over a conv "geometry": an image side
 * X [N, C, H, W], a column side Y [N, O, Ho, Wo] and a weight W [O, C/G, kh, kw] (G groups):
 *
 *   forward      Y[n]  (+)= W @ im2col(X[n])                   (per sample and group)
 *   input grad   X[n]  (+)= col2im(W^T @ Y[n])
 *   weight grad  W     (+)= sum over n of Y[n] @ im2col(X[n])^T
 *
 * im2col lays one sample's receptive fields out as a (C/G * kh * kw) x (Ho * Wo) matrix, so each
 * product is one nb_gemm; col2im is its adjoint, a scatter-add back onto the image.
 * conv2d uses the three as written (x is the image side, its output the column side).
 * conv_transpose2d is conv2d's input gradient as an op: its input is the column side, its output
 * the image side, so its forward is the "input grad" product, its input gradient is the
 * "forward" product and its weight gradient is the same "weight grad" product with the roles of
 * the two sides' data swapped. Nothing is written twice.
 *
 * Threads take whole (sample, group) tasks, each with its own column buffer from the arena, and
 * call the gemm on one thread; every output element is computed by one task, so the bits do not
 * depend on the thread count. The weight gradient is a sum over samples: samples are dealt into
 * a fixed number of slots (CONV_SLOTS, whatever the thread count), each slot sums its samples in
 * order into its own partial gradient, and the partials are added in slot order.
 *
 * Pooling and upsampling run a plain loop per (sample, channel) plane, planes shared out over
 * the threads; their backward passes write each input plane from one thread. */
#include "autograd/autograd.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define CONV_FOR(T) NB_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(T) if ((T) > 1))
#else
#define CONV_FOR(T)
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

/* Threads for `tasks` independent tasks of `flops` work in all. */
static int team(int64_t tasks, double flops) {
    int t = nb_get_num_threads();
    if (flops < CONV_MIN_PARALLEL_FLOPS) t = 1;
    if (t > tasks) t = (int)tasks;
    return t < 1 ? 1 : t;
}

/* 1x1 kernel, stride 1, no padding: the column matrix is the image itself. */
static bool is_pointwise(const geom *g) {
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* ---- im2col and col2im ------------------------------------------------------------------------
 * col [K, P] holds, in row (c, i, j) and column (oh, ow), the image element at
 * (c, oh*sh - ph + i*dh, ow*sw - pw + j*dw), or 0 where that falls in the padding.
 * gather: col = im2col(x). scatter: x += col2im(col), the adjoint (padding positions dropped). */

/* The output columns ow whose input column ow*sw + off lies in [0, W): [*lo, *hi). */
static void valid_span(int64_t Wo, int64_t sw, int64_t off, int64_t W, int64_t *lo, int64_t *hi) {
    int64_t a = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int64_t b = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;
    *lo = a < Wo ? a : Wo;
    *hi = b < Wo ? b : Wo;
    if (*hi < *lo) *hi = *lo;
}

/* x: one sample's channels of one group, [Cg, H, W] contiguous. */
static void im2col_walk(const geom *g, real *x, real *col, bool scatter) {
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++, col += g->P) {
                int64_t off = j * g->dw - g->pw, lo, hi;
                valid_span(g->Wo, g->sw, off, g->W, &lo, &hi);
                for (int64_t oh = 0; oh < g->Ho; oh++) {
                    real *row = col + oh * g->Wo;
                    int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    bool inside = ih >= 0 && ih < g->H;
                    if (scatter) {
                        if (!inside) continue;
                        real *dst = x + (c * g->H + ih) * g->W + off;
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow * g->sw] += row[ow];
                        continue;
                    }
                    if (!inside) {
                        memset(row, 0, (size_t)g->Wo * sizeof(real));
                        continue;
                    }
                    const real *src = x + (c * g->H + ih) * g->W + off;
                    for (int64_t ow = 0; ow < lo; ow++) row[ow] = 0;
                    if (g->sw == 1)
                        memcpy(row + lo, src + lo, (size_t)(hi - lo) * sizeof(real));
                    else
                        for (int64_t ow = lo; ow < hi; ow++) row[ow] = src[ow * g->sw];
                    for (int64_t ow = hi; ow < g->Wo; ow++) row[ow] = 0;
                }
            }
}

/* ---- the three products -----------------------------------------------------------------------
 * x [N, C, H, W], y [N, O, Ho, Wo], w [O, Cg, kh, kw], all contiguous. */

/* y = (bias, or y if acc, or 0) + W @ im2col(x) for every sample and group. */
static void conv_forward(const geom *g, const real *x, const real *w, const real *bias, real *y,
                         bool acc) {
    int64_t tasks = g->N * g->G;
    int T = team(tasks, 2.0 * (double)(g->N * g->O * g->K * g->P));
    bool direct = is_pointwise(g);
    ag_mark_t m = ag_mark();
    real *cols = direct ? NULL : arena_alloc((size_t)(T * g->K * g->P) * sizeof(real));
    CONV_FOR(T)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t n = t / g->G, gi = t % g->G;
        real *xs = (real *)x + (n * g->C + gi * g->Cg) * g->H * g->W;
        real *ys = y + (n * g->O + gi * g->Og) * g->P;
        const real *col = xs;
        if (!direct) {
            real *buf = cols + (int64_t)thread_id() * g->K * g->P;
            im2col_walk(g, xs, buf, false);
            col = buf;
        }
        if (bias)
            for (int64_t o = 0; o < g->Og; o++)
                for (int64_t p = 0; p < g->P; p++) ys[o * g->P + p] = bias[gi * g->Og + o];
        nb_gemm(g->Og, g->P, g->K, w + gi * g->Og * g->K, g->K, 1, col, g->P, 1,
                bias || acc ? 1 : 0, ys, g->P);
    }
    ag_release(m);
}

/* x = (bias, or x if acc, or 0) + col2im(W^T @ y) for every sample and group. */
static void conv_backward_data(const geom *g, const real *y, const real *w, const real *bias,
                               real *x, bool acc) {
    int64_t tasks = g->N * g->G, HW = g->H * g->W;
    int T = team(tasks, 2.0 * (double)(g->N * g->O * g->K * g->P));
    bool direct = is_pointwise(g);
    ag_mark_t m = ag_mark();
    real *cols = direct ? NULL : arena_alloc((size_t)(T * g->K * g->P) * sizeof(real));
    CONV_FOR(T)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t n = t / g->G, gi = t % g->G;
        real *xs = x + (n * g->C + gi * g->Cg) * HW;
        const real *ys = y + (n * g->O + gi * g->Og) * g->P;
        if (bias)
            for (int64_t c = 0; c < g->Cg; c++)
                for (int64_t p = 0; p < HW; p++) xs[c * HW + p] = bias[gi * g->Cg + c];
        else if (!acc && !direct)
            memset(xs, 0, (size_t)(g->Cg * HW) * sizeof(real));
        /* dcol[K, P] = W_g^T [K, Og] @ y_g [Og, P] */
        const real *wg = w + gi * g->Og * g->K;
        if (direct) {
            nb_gemm(g->K, g->P, g->Og, wg, 1, g->K, ys, g->P, 1, bias || acc ? 1 : 0, xs, g->P);
            continue;
        }
        real *buf = cols + (int64_t)thread_id() * g->K * g->P;
        nb_gemm(g->K, g->P, g->Og, wg, 1, g->K, ys, g->P, 1, 0, buf, g->P);
        im2col_walk(g, xs, buf, true);
    }
    ag_release(m);
}

/* dw (+)= sum over n of y[n] @ im2col(x[n])^T, per group; in slot order (see the top). */
static void conv_backward_weight(const geom *g, const real *x, const real *y, real *dw, bool acc) {
    int64_t S = g->N < CONV_SLOTS ? g->N : CONV_SLOTS, wn = g->O * g->K;
    if (S == 0) {
        if (!acc) memset(dw, 0, (size_t)wn * sizeof(real));
        return;
    }
    int T = team(S, 2.0 * (double)(g->N * g->O * g->K * g->P));
    bool direct = is_pointwise(g);
    ag_mark_t m = ag_mark();
    real *cols = direct ? NULL : arena_alloc((size_t)(T * g->K * g->P) * sizeof(real));
    real *part = arena_alloc((size_t)(S * wn) * sizeof(real));
    CONV_FOR(T)
    for (int64_t s = 0; s < S; s++) {
        real *buf = direct ? NULL : cols + (int64_t)thread_id() * g->K * g->P;
        for (int64_t n = s * g->N / S; n < (s + 1) * g->N / S; n++)
            for (int64_t gi = 0; gi < g->G; gi++) {
                const real *xs = x + (n * g->C + gi * g->Cg) * g->H * g->W;
                const real *col = xs;
                if (!direct) {
                    im2col_walk(g, (real *)xs, buf, false);
                    col = buf;
                }
                /* part_g [Og, K] (+)= y_g [Og, P] @ col^T [P, K] */
                nb_gemm(g->Og, g->K, g->P, y + (n * g->O + gi * g->Og) * g->P, g->P, 1, col, 1,
                        g->P, n == s * g->N / S ? 0 : 1, part + s * wn + gi * g->Og * g->K, g->K);
            }
    }
    NB_PARALLEL_FOR(wn)
    for (int64_t i = 0; i < wn; i++) {
        real v = acc ? dw[i] : 0;
        for (int64_t s = 0; s < S; s++) v += part[s * wn + i];
        dw[i] = v;
    }
    ag_release(m);
}

/* db[c] (+)= sum of y[n, c, :] over n (planes of P elements), in double, in a fixed order. */
static void bias_backward(const real *y, int64_t N, int64_t C, int64_t P, real *db, bool acc) {
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
    real *x, *w;     /* contiguous data of the op's input and weight */
} conv_saved;

/* ---- conv2d and conv_transpose2d ---------------------------------------------------------------
 * conv2d (x the image side, y the column side):
 *   y = W @ im2col(x) + b        dx += col2im(W^T @ dy)    dW += dy @ im2col(x)^T
 * conv_transpose2d, conv2d's input gradient as an op (x [N, C, H, W] the column side,
 * w [C, O/groups, kh, kw], y [N, O, H', W'] the image side):
 *   y = col2im(W^T @ x) + b      dx += W @ im2col(dy)      dW += x @ im2col(dy)^T
 * and for both db += dy summed over N, H', W'. */

static void conv_backward(Tensor *y) {
    Tensor *x = y->parents[0], *w = y->parents[1], *b = y->nparents > 2 ? y->parents[2] : NULL;
    const conv_saved *s = y->saved;
    const geom *g = &s->g;
    const real *dy = y->grad->data + y->grad->offset;
    bool fresh;
    if (x->requires_grad) {
        Tensor *gx = ag_grad_begin(x, &fresh);
        if (s->transposed)
            conv_forward(g, dy, s->w, NULL, gx->data + gx->offset, !fresh);
        else
            conv_backward_data(g, dy, s->w, NULL, gx->data + gx->offset, !fresh);
    }
    if (w->requires_grad) {
        Tensor *gw = ag_grad_begin(w, &fresh);
        conv_backward_weight(g, s->transposed ? dy : s->x, s->transposed ? s->x : dy,
                             gw->data + gw->offset, !fresh);
    }
    if (b && b->requires_grad) {
        Tensor *gb = ag_grad_begin(b, &fresh);
        if (s->transposed)
            bias_backward(dy, g->N, g->C, g->H * g->W, gb->data + gb->offset, !fresh);
        else
            bias_backward(dy, g->N, g->O, g->P, gb->data + gb->offset, !fresh);
    }
}

static Tensor *conv_op(const char *op, Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o,
                       bool transposed) {
    conv_saved *s = arena_alloc(sizeof *s);
    s->g = make_geom(op, x, w, b, o, transposed);
    s->transposed = transposed;
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
        conv_forward(g, s->x, s->w, bias, y->data, false);
    }
    y->saved = s;
    if (b)
        ag_record(y, op, conv_backward, (Tensor *[]){x, w, b}, 3);
    else
        ag_record(y, op, conv_backward, (Tensor *[]){x, w}, 2);
    return y;
}

Tensor *ag_conv2d(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o) {
    return conv_op("conv2d", x, w, b, o, false);
}

Tensor *ag_conv_transpose2d(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o) {
    return conv_op("conv_transpose2d", x, w, b, o, true);
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
    Tensor *y = ag_conv2d(ag_unsqueeze(x, 2), ag_unsqueeze(w, 2), b, o2);
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

static void upsample_nearest2d_backward(Tensor *y) {
    Tensor *x = y->parents[0];
    int64_t s = y->iarg[0], NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    bool fresh;
    Tensor *gx = ag_grad_begin(x, &fresh);
    const real *g = y->grad->data + y->grad->offset;
    real *dx = gx->data + gx->offset;
    NB_PARALLEL_FOR(NC * H * W * s * s)
    for (int64_t q = 0; q < NC; q++)
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) {
                const real *blk = g + (q * H * s + i * s) * W * s + j * s;
                real sum = 0;
                for (int64_t a = 0; a < s; a++)
                    for (int64_t b = 0; b < s; b++) sum += blk[a * W * s + b];
                real *d = dx + (q * H + i) * W + j;
                *d = fresh ? sum : *d + sum;
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
        for (int64_t h = 0; h < H * s; h++)
            for (int64_t w = 0; w < W * s; w++)
                yp[h * W * s + w] = xp[(h / s) * st[2] + (w / s) * st[3]];
    }
    y->iarg[0] = s;
    ag_record(y, "upsample_nearest2d", upsample_nearest2d_backward, (Tensor *[]){x}, 1);
    return y;
}
