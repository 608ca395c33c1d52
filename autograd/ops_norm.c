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
 * The statistics are two passes in double (the mean, then the squared deviations). Each group is
 * summed in a fixed order by one thread, so results are the same bits on any thread count. */
#include "autograd/autograd.h"

#include <math.h>
#include <string.h>

#include "tensor/parallel.h"

/* Splits a loop over groups across threads when the whole op touches `work` elements. */
#ifdef _OPENMP
#define NORM_PARALLEL_FOR(work)                                                                    \
    NB_PRAGMA(omp parallel for schedule(static) if ((work) >= NB_PAR_MIN)                          \
                  num_threads(nb_get_num_threads()))
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

/* Mean and biased variance of the rows * len values x[r * stride + k] (r < rows, k < len), in
 * double: the sum, then the squared deviations from the mean, each in a fixed order. */
static void moments(const real *x, int64_t rows, int64_t stride, int64_t len, double *mean,
                    double *var) {
    double s = 0;
    for (int64_t r = 0; r < rows; r++) s += k_dsum(x + r * stride, len);
    double n = (double)(rows * len), m = s / n, q[4] = {0};
    for (int64_t r = 0; r < rows; r++) {
        const real *p = x + r * stride;
        int64_t k = 0;
        for (; k + 4 <= len; k += 4)
            for (int j = 0; j < 4; j++) q[j] += ((double)p[k + j] - m) * ((double)p[k + j] - m);
        for (; k < len; k++) q[0] += ((double)p[k] - m) * ((double)p[k] - m);
    }
    *mean = m;
    *var = ((q[0] + q[1]) + (q[2] + q[3])) / n;
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
        for (int64_t i = 0; i < M; i++) {
            const real *gi = g + i * K + k0, *xi = s->x + i * K + k0;
            double m = s->mean[i], r = s->rstd[i];
            for (int64_t k = 0; k < n; k++) {
                sw[k] += gi[k] * (((double)xi[k] - m) * r);
                sb[k] += gi[k];
            }
        }
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
        NORM_PARALLEL_FOR(M * K)
        for (int64_t i = 0; i < M; i++) {
            const real *gi = g + i * K, *xi = s->x + i * K;
            real *di = dx->data + i * K;
            double m = s->mean[i], r = s->rstd[i], sg = 0, sgx = 0;
            for (int64_t k = 0; k < K; k++) {
                double gw = (double)gi[k] * (s->w ? s->w[k] : 1);
                sg += gw;
                sgx += gw * (((double)xi[k] - m) * r);
            }
            sg /= (double)K;
            sgx /= (double)K;
            for (int64_t k = 0; k < K; k++) {
                double gw = (double)gi[k] * (s->w ? s->w[k] : 1);
                real d = (real)(r * (gw - sg - ((double)xi[k] - m) * r * sgx));
                di[k] = fresh_x ? d : di[k] + d;
            }
        }
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
    for (int64_t i = 0; i < M; i++) {
        const real *xi = s->x + i * K;
        real *yi = y->data + i * K;
        double var;
        moments(xi, 1, 0, K, &s->mean[i], &var);
        s->rstd[i] = 1 / sqrt(var + (double)eps);
        real m = (real)s->mean[i], r = (real)s->rstd[i];
        for (int64_t k = 0; k < K; k++) {
            real h = (xi[k] - m) * r;
            yi[k] = (s->w ? h * s->w[k] : h) + (bv ? bv[k] : 0);
        }
    }
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
    int64_t N = y->iarg[2], C = y->iarg[3], S = y->iarg[4];
    const real *g = y->grad->data + y->grad->offset;
    bool fresh_x = false, fresh_w = false, fresh_b = false;
    Tensor *dx = x->requires_grad ? ag_grad_begin(x, &fresh_x) : NULL;
    Tensor *dw = w && w->requires_grad ? ag_grad_begin(w, &fresh_w) : NULL;
    Tensor *db = b && b->requires_grad ? ag_grad_begin(b, &fresh_b) : NULL;
    double count = (double)(N * S);
    NORM_PARALLEL_FOR(N * C * S)
    for (int64_t c = 0; c < C; c++) {
        double m = s->mean[c], r = s->rstd[c], sg = 0, sgx = 0;
        for (int64_t n = 0; n < N; n++) {
            const real *gp = g + (n * C + c) * S, *xp = s->x + (n * C + c) * S;
            for (int64_t k = 0; k < S; k++) {
                sg += gp[k];
                sgx += gp[k] * (((double)xp[k] - m) * r);
            }
        }
        if (dw) dw->data[c] = (real)sgx + (fresh_w ? 0 : dw->data[c]);
        if (db) db->data[c] = (real)sg + (fresh_b ? 0 : db->data[c]);
        if (!dx) continue;
        double wr = (s->w ? s->w[c] : 1) * r;
        double mg = s->training ? sg / count : 0, mgx = s->training ? sgx / count : 0;
        for (int64_t n = 0; n < N; n++) {
            const real *gp = g + (n * C + c) * S, *xp = s->x + (n * C + c) * S;
            real *dp = dx->data + (n * C + c) * S;
            for (int64_t k = 0; k < S; k++) {
                real d = (real)(wr * (gp[k] - mg - ((double)xp[k] - m) * r * mgx));
                dp[k] = fresh_x ? d : dp[k] + d;
            }
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
    NORM_PARALLEL_FOR(N * C * S)
    for (int64_t c = 0; c < C; c++) {
        double mean, var;
        if (training) {
            moments(s->x + c * S, N, C * S, S, &mean, &var);
            if (rm) { /* PyTorch keeps the unbiased variance */
                double n = (double)(N * S), mo = (double)momentum;
                rm[c * rms] = (real)((1 - mo) * (double)rm[c * rms] + mo * mean);
                rv[c * rvs] = (real)((1 - mo) * (double)rv[c * rvs] + mo * var * n / (n - 1));
            }
        } else {
            mean = (double)rm[c * rms];
            var = (double)rv[c * rvs];
        }
        s->mean[c] = mean;
        s->rstd[c] = 1 / sqrt(var + (double)eps);
        real m = (real)mean, sc = (real)(s->rstd[c] * (s->w ? s->w[c] : 1)), sh = bv ? bv[c] : 0;
        for (int64_t n = 0; n < N; n++) {
            const real *xp = s->x + (n * C + c) * S;
            real *yp = y->data + (n * C + c) * S;
            for (int64_t k = 0; k < S; k++) yp[k] = (xp[k] - m) * sc + sh;
        }
    }
    record(y, "batch_norm", batch_norm_backward, x, w, b);
    y->iarg[2] = N;
    y->iarg[3] = C;
    y->iarg[4] = S;
    y->saved = s;
    return y;
}
