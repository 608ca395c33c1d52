/* autograd/ops_norm.c: layer norm and batch norm, each one fused op, forward beside backward.
 *
 * Both normalize groups of values, xhat = (x - mean) * rstd with rstd = 1 / sqrt(var + eps) and
 * the variance biased, then y = xhat * w + b. Layer norm's groups are the rows of x seen as
 * [M, K] (K the product of the last normalized_ndim dims; w and b vary along a row); batch norm's
 * are the channels of x seen as [N, C, S] (S the product of the spatial dims; w and b are one
 * number per group).
 *
 * Backward, with g the upstream gradient, gw = g * w and means taken over one group:
 *   dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))   (mean and rstd depend on x)
 *   dw = sum of g * xhat,  db = sum of g,  over every position that shares the weight.
 * Batch norm in evaluation normalizes with fixed running statistics, so there dx = gw * rstd.
 *
 * The statistics are two passes in double (the mean, then the squared deviations from it). Every
 * sum runs in an order fixed by the shapes alone (threads split groups or columns, never one
 * sum), so results are the same bits on any thread count. Batch norm sums down the columns of x
 * seen as [N, C * S] (contiguous rows, vectorized), then adds each channel's S column sums. */
#include "autograd/autograd.h"

#include <math.h>

#include "tensor/parallel.h"

/* Splits a loop over groups across threads when the whole op touches `work` elements. */
#ifdef _OPENMP
#define NORM_PARALLEL_FOR(work)                                                                    \
    NB_PRAGMA(omp parallel for schedule(static) if ((work) >= NB_PAR_MIN)                          \
                  num_threads(nb_threads_now()))
#else
#define NORM_PARALLEL_FOR(work)
#endif

/* What backward needs; arena memory. */
typedef struct {
    const real *x;       /* x's values in row-major order (x itself or a contiguous copy) */
    double *mean, *rstd; /* [groups] the statistics each group was normalized with */
    const real *w;       /* w's values, contiguous, or NULL */
    bool training;       /* batch norm: the statistics came from this batch */
} norm_saved;

/* t's values in row-major order: its own data when contiguous, else a step copy. */
static const real *values(const Tensor *t) {
    if (tensor_is_contiguous(t)) return t->data + t->offset;
    Tensor *c = tensor_step(t->ndim, t->shape);
    k_unary(K_COPY, t, c, 0, 0, false);
    return c->data;
}

/* Row sums in double with eight running sums (element k goes to sum k % 8), folded pairwise: a
 * fixed order that the compiler vectorizes (one accumulator array per loop; with two it won't). */
static double fold8(const double *a) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* sum of (x - m)^2 over x[0..n) */
NB_VECTOR_CLONES static double row_sq_dev(const real *x, double m, int64_t n) {
    double a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) a[j] += ((double)x[k + j] - m) * ((double)x[k + j] - m);
    for (int j = 0; k < n; k++, j++) a[j] += ((double)x[k] - m) * ((double)x[k] - m);
    return fold8(a);
}

/* sum of g w over [0..n) */
NB_VECTOR_CLONES static double row_dot(const real *g, const real *w, int64_t n) {
    double a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) a[j] += (double)g[k + j] * (double)w[k + j];
    for (int j = 0; k < n; k++, j++) a[j] += (double)g[k] * (double)w[k];
    return fold8(a);
}

/* sum of g w (x - m) over [0..n) */
NB_VECTOR_CLONES static double row_dot_dev(const real *g, const real *w, const real *x, double m,
                                           int64_t n) {
    double a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++)
            a[j] += (double)g[k + j] * (double)w[k + j] * ((double)x[k + j] - m);
    for (int j = 0; k < n; k++, j++) a[j] += (double)g[k] * (double)w[k] * ((double)x[k] - m);
    return fold8(a);
}

/* Column sums in double over the N rows of [N, L] blocks, each column added in row order:
 *   s[j] = sum over n of (a[n, j] - ma[j]) * (b[n, j] - mb[j])
 * where b NULL stands for 1 (and then ma is unused) and ma NULL for 0. Threads split the columns,
 * so the sums don't depend on their number. */
static void column_sums(const real *a, const double *ma, const real *b, const double *mb, int64_t N,
                        int64_t L, double *s) {
    enum { BLOCK = 256 };
    int64_t nblocks = (L + BLOCK - 1) / BLOCK;
    NORM_PARALLEL_FOR(N * L)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t j0 = blk * BLOCK, nj = L - j0 < BLOCK ? L - j0 : BLOCK;
        double *sj = s + j0;
        for (int64_t j = 0; j < nj; j++) sj[j] = 0;
        for (int64_t n = 0; n < N; n++) {
            const real *an = a + n * L + j0, *bn = b ? b + n * L + j0 : NULL;
            if (!b)
                for (int64_t j = 0; j < nj; j++) sj[j] += an[j];
            else if (!ma)
                for (int64_t j = 0; j < nj; j++) sj[j] += an[j] * ((double)bn[j] - mb[j0 + j]);
            else
                for (int64_t j = 0; j < nj; j++)
                    sj[j] += ((double)an[j] - ma[j0 + j]) * ((double)bn[j] - mb[j0 + j]);
        }
    }
}

/* Per channel, the sum of its S column sums (in order) divided by count: [C] from [C * S]. */
static void channel_means(const double *cols, int64_t C, int64_t S, double count, double *out) {
    for (int64_t c = 0; c < C; c++) {
        double t = 0;
        for (int64_t k = 0; k < S; k++) t += cols[c * S + k];
        out[c] = t / count;
    }
}

/* Each channel's value repeated over its S columns: [C * S] from [C]. */
static double *per_column(const double *v, int64_t C, int64_t S) {
    double *out = arena_alloc((size_t)(C * S > 0 ? C * S : 1) * sizeof(double));
    for (int64_t c = 0; c < C; c++)
        for (int64_t k = 0; k < S; k++) out[c * S + k] = v[c];
    return out;
}

/* Fails unless p (a weight or bias, or NULL) has the given shape. */
static void check_param(const char *op, const char *what, const Tensor *p, int ndim,
                        const int64_t *shape, const Tensor *x) {
    if (!p) return;
    bool ok = p->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = p->shape[d] == shape[d];
    if (!ok) {
        char s1[128], s2[128], s3[128];
        nb_fail(op, "%s of shape %s should have shape %s for input %s", what,
                nb_shape_str(s1, p->ndim, p->shape), nb_shape_str(s2, ndim, shape),
                nb_shape_str(s3, x->ndim, x->shape));
    }
}

/* Records y's parents x, then w and b when given; iarg[0] and iarg[1] say which were. */
static void record(Tensor *y, const char *op, ag_backward_fn backward, Tensor *x, Tensor *w,
                   Tensor *b) {
    Tensor *parents[3] = {x};
    int n = 1;
    if (w) parents[n++] = w;
    if (b) parents[n++] = b;
    ag_record(y, op, backward, parents, n);
    y->iarg[0] = w != NULL;
    y->iarg[1] = b != NULL;
}

/* ---- layer norm: x [..., K] normalized over its last dims, w, b [K] or NULL --------------------
 *   y[i, k] = (x[i, k] - mean_i) * rstd_i * w[k] + b[k]
 *   dx[i, k] = rstd_i * (gw[i, k] - mean_k(gw[i]) - xhat[i, k] * mean_k(gw[i] * xhat[i]))
 *   dw[k] += sum_i g[i, k] xhat[i, k],  db[k] += sum_i g[i, k] */

/* sw[k] += g[i, k0 + k] xhat[i, k0 + k] and sb[k] += g[i, k0 + k] over the M rows, k < n, in
 * row order. The loops of the layer norm's threads are functions of their own so that they are
 * compiled for AVX-512 and AVX2 too (NB_VECTOR_CLONES; an OpenMP region can't be). */
NB_VECTOR_CLONES static void layer_norm_param_block(const norm_saved *s, const real *g, int64_t M,
                                                    int64_t K, int64_t k0, int64_t n, double *sw,
                                                    double *sb) {
    for (int64_t i = 0; i < M; i++) {
        const real *gi = g + i * K + k0, *xi = s->x + i * K + k0;
        double m = s->mean[i], r = s->rstd[i];
        for (int64_t k = 0; k < n; k++) {
            sw[k] += gi[k] * (((double)xi[k] - m) * r);
            sb[k] += gi[k];
        }
    }
}

/* dx[0..K) (+)= one row's input gradient (the formula above), g, w1 (ones without a weight) and
 * x the row's upstream gradient, weight and input. */
NB_VECTOR_CLONES static void layer_norm_row_backward(const real *gi, const real *w1, const real *xi,
                                                     double mean, double r, int64_t K, real *di,
                                                     bool fresh) {
    double sg = row_dot(gi, w1, K), sgx = row_dot_dev(gi, w1, xi, mean, K);
    /* dx = r gw - r mean(gw) - (x - m) r^2 mean(gw (x - m)) */
    real rr = (real)r, m = (real)mean, c0 = (real)(r * sg / (double)K),
         c1 = (real)(r * r * r * sgx / (double)K);
    for (int64_t k = 0; k < K; k++) {
        real d = rr * gi[k] * w1[k] - c0 - (xi[k] - m) * c1;
        di[k] = fresh ? d : di[k] + d;
    }
}

/* One row of the forward: y[0..K) from x[0..K), its mean and 1 / std into *mean, *rstd. */
NB_VECTOR_CLONES static void layer_norm_row(const real *xi, const real *w, const real *b, int64_t K,
                                            real eps, real *yi, double *mean, double *rstd) {
    *mean = k_dsum(xi, K) / (double)K; /* two passes: the mean, then the deviations */
    *rstd = 1 / sqrt(row_sq_dev(xi, *mean, K) / (double)K + (double)eps);
    real m = (real)*mean, r = (real)*rstd;
    for (int64_t k = 0; k < K; k++) {
        real h = (xi[k] - m) * r;
        yi[k] = (w ? h * w[k] : h) + (b ? b[k] : 0);
    }
}

/* Column sums over the M rows of g * xhat (into dw) and of g (into db), either may be NULL;
 * each thread owns a block of columns and adds its rows in order. */
static void layer_norm_param_grads(const norm_saved *s, const real *g, int64_t M, int64_t K,
                                   Tensor *dw, bool acc_w, Tensor *db, bool acc_b) {
    enum { BLOCK = 64 };
    int64_t nblocks = (K + BLOCK - 1) / BLOCK;
    NORM_PARALLEL_FOR(M * K)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t k0 = blk * BLOCK, n = K - k0 < BLOCK ? K - k0 : BLOCK;
        double sw[BLOCK] = {0}, sb[BLOCK] = {0};
        layer_norm_param_block(s, g, M, K, k0, n, sw, sb);
        for (int64_t k = 0; k < n; k++) {
            if (dw) dw->data[k0 + k] = (real)sw[k] + (acc_w ? dw->data[k0 + k] : 0);
            if (db) db->data[k0 + k] = (real)sb[k] + (acc_b ? db->data[k0 + k] : 0);
        }
    }
}

static void layer_norm_backward(Tensor *y) {
    Tensor *x = y->parents[0];
    Tensor *w = y->iarg[0] ? y->parents[1] : NULL,
           *b = y->iarg[1] ? y->parents[y->nparents - 1] : NULL;
    const norm_saved *s = y->saved;
    int64_t K = y->iarg[2], M = y->iarg[3];
    const real *g = y->grad->data + y->grad->offset;
    bool fresh_x = false, fresh_w = false, fresh_b = false;
    if (x->requires_grad) {
        Tensor *dx = ag_grad_begin(x, &fresh_x);
        const real *w1 = s->w;
        if (!w1) { /* no weight: ones, so the loops below have no branch */
            real *ones = arena_alloc((size_t)(K ? K : 1) * sizeof(real));
            for (int64_t k = 0; k < K; k++) ones[k] = 1;
            w1 = ones;
        }
        NORM_PARALLEL_FOR(M * K)
        for (int64_t i = 0; i < M; i++)
            layer_norm_row_backward(g + i * K, w1, s->x + i * K, s->mean[i], s->rstd[i], K,
                                    dx->data + i * K, fresh_x);
    }
    Tensor *dw = w && w->requires_grad ? ag_grad_begin(w, &fresh_w) : NULL;
    Tensor *db = b && b->requires_grad ? ag_grad_begin(b, &fresh_b) : NULL;
    if (dw || db) layer_norm_param_grads(s, g, M, K, dw, !fresh_w, db, !fresh_b);
}

Tensor *ag_layer_norm(Tensor *x, int normalized_ndim, Tensor *w, Tensor *b, real eps) {
    if (normalized_ndim < 1 || normalized_ndim > x->ndim) {
        char s1[128];
        nb_fail("layer_norm", "normalized_ndim %d is out of range for input %s (1 to %d)",
                normalized_ndim, nb_shape_str(s1, x->ndim, x->shape), x->ndim);
    }
    int lead = x->ndim - normalized_ndim;
    check_param("layer_norm", "weight", w, normalized_ndim, x->shape + lead, x);
    check_param("layer_norm", "bias", b, normalized_ndim, x->shape + lead, x);
    int64_t M = 1, K = 1; /* x seen as [M, K] */
    for (int d = 0; d < lead; d++) M *= x->shape[d];
    for (int d = lead; d < x->ndim; d++) K *= x->shape[d];

    norm_saved *s = arena_alloc(sizeof *s);
    s->x = values(x);
    s->w = w ? values(w) : NULL;
    s->mean = arena_alloc((size_t)(M ? M : 1) * sizeof(double));
    s->rstd = arena_alloc((size_t)(M ? M : 1) * sizeof(double));
    const real *bv = b ? values(b) : NULL;
    Tensor *y = tensor_step(x->ndim, x->shape);
    NORM_PARALLEL_FOR(M * K)
    for (int64_t i = 0; i < M; i++)
        layer_norm_row(s->x + i * K, s->w, bv, K, eps, y->data + i * K, &s->mean[i], &s->rstd[i]);
    record(y, "layer_norm", layer_norm_backward, x, w, b);
    y->iarg[2] = K;
    y->iarg[3] = M;
    y->sarg[0] = eps;
    y->saved = s;
    return y;
}

/* ---- batch norm: x [N, C, S...] normalized per channel c, w, b [C] or NULL ---------------------
 *   y[n, c, s] = (x[n, c, s] - mean_c) * rstd_c * w[c] + b[c]
 *   training:  dx = w[c] rstd_c (g - mean(g) - xhat mean(g xhat)), the means over (n, s)
 *   eval:      dx = w[c] rstd_c g
 *   dw[c] += sum over (n, s) of g xhat,  db[c] += sum of g */

static void batch_norm_backward(Tensor *y) {
    Tensor *x = y->parents[0];
    Tensor *w = y->iarg[0] ? y->parents[1] : NULL,
           *b = y->iarg[1] ? y->parents[y->nparents - 1] : NULL;
    const norm_saved *s = y->saved;
    int64_t N = y->iarg[2], C = y->iarg[3], S = y->iarg[4], L = C * S;
    const real *g = y->grad->data + y->grad->offset;
    bool fresh_x = false, fresh_w = false, fresh_b = false;
    Tensor *dx = x->requires_grad ? ag_grad_begin(x, &fresh_x) : NULL;
    Tensor *dw = w && w->requires_grad ? ag_grad_begin(w, &fresh_w) : NULL;
    Tensor *db = b && b->requires_grad ? ag_grad_begin(b, &fresh_b) : NULL;
    /* per channel: sg = sum of g, sgx = sum of g xhat */
    double *cols = arena_alloc((size_t)(L ? L : 1) * sizeof(double));
    double *sg = arena_alloc((size_t)(C ? C : 1) * sizeof(double));
    double *sgx = arena_alloc((size_t)(C ? C : 1) * sizeof(double));
    column_sums(g, NULL, NULL, NULL, N, L, cols);
    channel_means(cols, C, S, 1, sg);
    column_sums(g, NULL, s->x, per_column(s->mean, C, S), N, L, cols);
    channel_means(cols, C, S, 1, sgx);
    /* dx = a (g - mg - (x - m) k) per channel */
    real *m = arena_alloc((size_t)(C ? C : 1) * sizeof(real) * 4), *a = m + C, *mg = a + C,
         *k = mg + C;
    double count = (double)(N * S);
    for (int64_t c = 0; c < C; c++) {
        double r = s->rstd[c];
        sgx[c] *= r;
        if (dw) dw->data[c] = (real)sgx[c] + (fresh_w ? 0 : dw->data[c]);
        if (db) db->data[c] = (real)sg[c] + (fresh_b ? 0 : db->data[c]);
        m[c] = (real)s->mean[c];
        a[c] = (real)((s->w ? s->w[c] : 1) * r);
        mg[c] = s->training ? (real)(sg[c] / count) : 0;
        k[c] = s->training ? (real)(r * sgx[c] / count) : 0;
    }
    if (!dx) return;
    NORM_PARALLEL_FOR(N * L)
    for (int64_t n = 0; n < N; n++) {
        const real *gn = g + n * L, *xn = s->x + n * L;
        real *dn = dx->data + n * L;
        if (S == 1) /* [N, C]: the loop runs along the channels */
            for (int64_t c = 0; c < C; c++) {
                real d = a[c] * (gn[c] - mg[c] - (xn[c] - m[c]) * k[c]);
                dn[c] = fresh_x ? d : dn[c] + d;
            }
        else
            for (int64_t c = 0; c < C; c++)
                for (int64_t j = c * S; j < (c + 1) * S; j++) {
                    real d = a[c] * (gn[j] - mg[c] - (xn[j] - m[c]) * k[c]);
                    dn[j] = fresh_x ? d : dn[j] + d;
                }
    }
}

/* Fails unless t (running mean or variance, or NULL) is a [C] tensor. */
static void check_running(const char *what, const Tensor *t, int64_t C, const Tensor *x) {
    if (t && (t->ndim != 1 || t->shape[0] != C)) {
        char s1[128], s2[128];
        nb_fail("batch_norm", "%s of shape %s should have shape [%lld] for input %s", what,
                nb_shape_str(s1, t->ndim, t->shape), (long long)C,
                nb_shape_str(s2, x->ndim, x->shape));
    }
}

Tensor *ag_batch_norm(Tensor *x, Tensor *running_mean, Tensor *running_var, Tensor *w, Tensor *b,
                      bool training, real momentum, real eps) {
    char s1[128];
    if (x->ndim < 2 || x->ndim > 4)
        nb_fail("batch_norm", "input %s should be [N, C], [N, C, L] or [N, C, H, W]",
                nb_shape_str(s1, x->ndim, x->shape));
    int64_t N = x->shape[0], C = x->shape[1], S = 1;
    for (int d = 2; d < x->ndim; d++) S *= x->shape[d];
    check_param("batch_norm", "weight", w, 1, &C, x);
    check_param("batch_norm", "bias", b, 1, &C, x);
    check_running("running_mean", running_mean, C, x);
    check_running("running_var", running_var, C, x);
    if ((running_mean == NULL) != (running_var == NULL))
        nb_fail("batch_norm", "running_mean and running_var must both be given or both be NULL");
    if (training && N * S == 1)
        nb_fail("batch_norm", "Expected more than 1 value per channel when training, got input %s",
                nb_shape_str(s1, x->ndim, x->shape));
    if (!training && !running_mean)
        nb_fail("batch_norm", "running_mean and running_var must be given in evaluation mode");

    norm_saved *s = arena_alloc(sizeof *s);
    s->x = values(x);
    s->w = w ? values(w) : NULL;
    s->training = training;
    s->mean = arena_alloc((size_t)(C ? C : 1) * sizeof(double));
    s->rstd = arena_alloc((size_t)(C ? C : 1) * sizeof(double));
    const real *bv = b ? values(b) : NULL;
    real *rm = running_mean ? running_mean->data + running_mean->offset : NULL;
    real *rv = running_var ? running_var->data + running_var->offset : NULL;
    int64_t rms = running_mean ? running_mean->strides[0] : 0;
    int64_t rvs = running_var ? running_var->strides[0] : 0;
    Tensor *y = tensor_step(x->ndim, x->shape);
    int64_t L = C * S;
    double count = (double)(N * S), *var = arena_alloc((size_t)(C ? C : 1) * sizeof(double));
    if (training) { /* the mean, then the squared deviations from it */
        double *cols = arena_alloc((size_t)(L ? L : 1) * sizeof(double));
        column_sums(s->x, NULL, NULL, NULL, N, L, cols);
        channel_means(cols, C, S, count, s->mean);
        double *mcol = per_column(s->mean, C, S);
        column_sums(s->x, mcol, s->x, mcol, N, L, cols);
        channel_means(cols, C, S, count, var);
    }
    real *m = arena_alloc((size_t)(C ? C : 1) * sizeof(real) * 3), *sc = m + C, *sh = sc + C;
    for (int64_t c = 0; c < C; c++) {
        if (training && rm) { /* PyTorch keeps the unbiased variance */
            double mo = (double)momentum;
            rm[c * rms] = (real)((1 - mo) * (double)rm[c * rms] + mo * s->mean[c]);
            rv[c * rvs] =
                (real)((1 - mo) * (double)rv[c * rvs] + mo * var[c] * count / (count - 1));
        } else if (!training) {
            s->mean[c] = (double)rm[c * rms];
            var[c] = (double)rv[c * rvs];
        }
        s->rstd[c] = 1 / sqrt(var[c] + (double)eps);
        m[c] = (real)s->mean[c];
        sc[c] = (real)(s->rstd[c] * (s->w ? s->w[c] : 1));
        sh[c] = bv ? bv[c] : 0;
    }
    NORM_PARALLEL_FOR(N * L)
    for (int64_t n = 0; n < N; n++) {
        const real *xn = s->x + n * L;
        real *yn = y->data + n * L;
        if (S == 1) /* [N, C]: the loop runs along the channels */
            for (int64_t c = 0; c < C; c++) yn[c] = (xn[c] - m[c]) * sc[c] + sh[c];
        else
            for (int64_t c = 0; c < C; c++)
                for (int64_t j = c * S; j < (c + 1) * S; j++)
                    yn[j] = (xn[j] - m[c]) * sc[c] + sh[c];
    }
    record(y, "batch_norm", batch_norm_backward, x, w, b);
    y->iarg[2] = N;
    y->iarg[3] = C;
    y->iarg[4] = S;
    y->saved = s;
    return y;
}
