/* nn/loss.c: losses. BCE on probabilities and BCE on logits are fused element-wise ops, each
 * forward beside its backward (a composite BCE would give 0 * inf = NaN gradients where its
 * -100 clamp is active, and both run in one pass instead of eight); the others are composites.
 * Notation in the fused ops: l = loss(p, y) per element; g = dL/dl (l->grad). */
#include "nn/loss.h"

#include "tensor/fastmath.h"
#include "tensor/kernels.h"
#include "tensor/parallel.h"

#include <math.h>

#include "nn/dist.h"

#define RF NB_REAL_FN

#define PARENTS(...)                                                                               \
    (Tensor *[]) {                                                                                 \
        __VA_ARGS__                                                                                \
    }

static const double LOG_2PI = 1.8378770664093453; /* log(2 pi) */

/* Fails naming `op` and both shapes unless pred and target have the same shape. */
static void check_same_shape(const char *op, const Tensor *pred, const Tensor *target) {
    if (tensor_same_shape(pred, target)) return;
    char s1[128], s2[128];
    nb_fail(op, "prediction of shape %s does not match target of shape %s",
            nb_shape_str(s1, pred->ndim, pred->shape),
            nb_shape_str(s2, target->ndim, target->shape));
}

Tensor *nn_reduce(Tensor *loss, nn_reduction red) {
    switch (red) {
    case NN_SUM:
        return ag_sum(loss);
    case NN_MEAN:
        return ag_mean(loss);
    case NN_NONE:
        return loss;
    }
    nb_fail("nn_reduce", "unknown reduction %d", (int)red);
}

/* The address of element 0 of a contiguous tensor, and of its gradient (NULL when the tensor
 * doesn't require grad). */
static real *at0(const Tensor *t) {
    return t->data + t->offset;
}
static real *grad0(Tensor *t) {
    if (!t->requires_grad) return NULL;
    Tensor *g = ag_grad(t);
    return g->data + g->offset;
}

static real clamped_log(real x) {
    return RF(fmax)(nb_log(x), (real)-100);
}
static real clamped_log1m(real x) {
    return RF(fmax)(nb_log1p(-x), (real)-100);
}

/* ---- BCE on probabilities -------------------------------------------------------------------- */
/* l = -(y max(log p, -100) + (1 - y) max(log(1 - p), -100))
 * dp += g (p - y) / max(p (1 - p), 1e-12);  dy += g (max(log(1 - p), -100) - max(log p, -100)) */
static void bce_backward(Tensor *l) {
    Tensor *p = l->parents[0], *y = l->parents[1];
    const real *g = at0(l->grad), *pv = at0(p), *yv = at0(y);
    real *dp = grad0(p), *dy = grad0(y);
    const real eps = (real)1e-12;
    for (int64_t i = 0; dp && i < l->numel; i++)
        dp[i] += g[i] * (pv[i] - yv[i]) / RF(fmax)(pv[i] * (1 - pv[i]), eps);
    for (int64_t i = 0; dy && i < l->numel; i++)
        dy[i] += g[i] * (clamped_log1m(pv[i]) - clamped_log(pv[i]));
}

Tensor *nn_bce(Tensor *p, Tensor *y, nn_reduction red) {
    check_same_shape("nn_bce", p, y);
    p = ag_contiguous(p);
    y = ag_contiguous(y);
    Tensor *l = tensor_step(p->ndim, p->shape);
    const real *pv = at0(p), *yv = at0(y);
    for (int64_t i = 0; i < l->numel; i++)
        if (!(pv[i] >= 0 && pv[i] <= 1))
            nb_fail("nn_bce", "probability %g at flat index %lld is outside [0, 1]", (double)pv[i],
                    (long long)i);
    for (int64_t i = 0; i < l->numel; i++)
        l->data[i] = -(yv[i] * clamped_log(pv[i]) + (1 - yv[i]) * clamped_log1m(pv[i]));
    ag_record(l, "bce", bce_backward, PARENTS(p, y), 2);
    return nn_reduce(l, red);
}

/* ---- BCE on logits --------------------------------------------------------------------------- */
/* l = max(x, 0) - x y + log1p(e), e = exp(-|x|)
 * dx (+)= g s (sigmoid(x) - y), sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) otherwise, with e
 * saved by the forward pass;  dy (+)= -g s x
 * g is the upstream gradient: one value per element (NN_NONE), or the single value of the reduced
 * loss (NN_SUM, NN_MEAN: iarg[0], g's step, is 0), and s its scale (1, or 1/n for the mean). The
 * reduced forms never store l: the forward sums it in the same pass. The first gradient written
 * into x or y is stored, not added (no zero-fill first). */
#define BCE_BLOCK 4096 /* elements per partial sum: fixed, so the sum never depends on threads */

static void bce_logits_backward(Tensor *l) {
    Tensor *x = l->parents[0], *y = l->parents[1];
    const real *g = at0(l->grad), *xv = at0(x), *yv = at0(y), *e = l->saved;
    const real s = l->sarg[0];
    const int64_t gstep = l->iarg[0], n = x->numel;
    bool fresh;
    if (x->requires_grad) {
        real *dx = at0(ag_grad_begin(x, &fresh));
        NB_PARALLEL_FOR(n)
        for (int64_t i = 0; i < n; i++) {
            real d = g[i * gstep] * s * ((xv[i] >= 0 ? 1 : e[i]) / (1 + e[i]) - yv[i]);
            dx[i] = fresh ? d : dx[i] + d;
        }
    }
    if (y->requires_grad) {
        real *dy = at0(ag_grad_begin(y, &fresh));
        NB_PARALLEL_FOR(n)
        for (int64_t i = 0; i < n; i++) {
            real d = -g[i * gstep] * s * xv[i];
            dy[i] = fresh ? d : dy[i] + d;
        }
    }
}

/* l[i] = max(x, 0) - x y + log1p(e), e = exp(-|x|) saved for the backward's sigmoid. */
NB_VECTOR_CLONES static void bce_logits_fill(const real *xv, const real *yv, real *e, real *lv,
                                             int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        e[i] = nb_exp(-RF(fabs)(xv[i]));
        lv[i] = (xv[i] > 0 ? xv[i] : 0) - xv[i] * yv[i] + nb_log1p_unit(e[i]);
    }
}

Tensor *nn_bce_with_logits(Tensor *x, Tensor *y, nn_reduction red) {
    check_same_shape("nn_bce_with_logits", x, y);
    if (red != NN_SUM && red != NN_MEAN && red != NN_NONE)
        nb_fail("nn_bce_with_logits", "unknown reduction %d", (int)red);
    x = ag_contiguous(x);
    y = ag_contiguous(y);
    const real *xv = at0(x), *yv = at0(y);
    int64_t n = x->numel;
    real *e = arena_alloc((size_t)n * sizeof(real));
    if (red == NN_NONE) {
        Tensor *l = tensor_step(x->ndim, x->shape);
        NB_PARALLEL_FOR(n)
        for (int64_t i = 0; i < n; i += BCE_BLOCK)
            bce_logits_fill(xv + i, yv + i, e + i, l->data + i,
                            n - i < BCE_BLOCK ? n - i : BCE_BLOCK);
        ag_record(l, "bce_with_logits", bce_logits_backward, PARENTS(x, y), 2);
        l->saved = e;
        l->sarg[0] = 1;
        l->iarg[0] = 1;
        return l;
    }
    /* one partial sum per block, each block's losses in a buffer on the stack, then the partials
     * added in block order */
    int64_t blocks = (n + BCE_BLOCK - 1) / BCE_BLOCK;
    double *part = arena_alloc((size_t)(blocks > 0 ? blocks : 1) * sizeof *part);
    NB_PARALLEL_FOR(n)
    for (int64_t b = 0; b < blocks; b++) {
        real lv[BCE_BLOCK];
        int64_t i = b * BCE_BLOCK, len = n - i < BCE_BLOCK ? n - i : BCE_BLOCK;
        bce_logits_fill(xv + i, yv + i, e + i, lv, len);
        part[b] = k_dsum(lv, len);
    }
    double total = 0;
    for (int64_t b = 0; b < blocks; b++) total += part[b];
    real s = red == NN_MEAN ? (real)1 / (real)n : 1; /* mean of nothing: 0 * (1/0) -> NaN */
    Tensor *L = tensor_step(0, NULL);
    L->data[L->offset] = (real)total * s;
    ag_record(L, "bce_with_logits", bce_logits_backward, PARENTS(x, y), 2);
    L->saved = e;
    L->sarg[0] = s;
    L->iarg[0] = 0;
    return L;
}

/* ---- composites ------------------------------------------------------------------------------ */

Tensor *nn_mse(Tensor *a, Tensor *b, nn_reduction red) {
    check_same_shape("nn_mse", a, b);
    Tensor *d = ag_sub(a, b);
    return nn_reduce(ag_mul(d, d), red);
}

Tensor *nn_cross_entropy(Tensor *logits, const int64_t *labels, nn_reduction red) {
    char s[128];
    if (logits->ndim != 2)
        nb_fail("nn_cross_entropy", "logits must be [N, C], got shape %s",
                nb_shape_str(s, logits->ndim, logits->shape));
    int64_t n = logits->shape[0], c = logits->shape[1];
    if (n > 0 && !labels) nb_fail("nn_cross_entropy", "labels is NULL");
    /* -log_softmax picked at each row's label: a one-hot mask, multiplied and summed per row. */
    Tensor *onehot = ag_zeros(NB_SHAPE(n, c));
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= c)
            nb_fail("nn_cross_entropy", "label %lld at index %lld is outside 0..%lld (logits %s)",
                    (long long)labels[i], (long long)i, (long long)(c - 1),
                    nb_shape_str(s, logits->ndim, logits->shape));
        onehot->data[i * c + labels[i]] = 1;
    }
    Tensor *picked = ag_sum_dims(ag_mul(ag_log_softmax(logits, 1), onehot), (int[]){1}, 1, false);
    return nn_reduce(ag_neg(picked), red); /* NN_MEAN: over the N rows */
}

Tensor *nn_gaussian_nll(Tensor *x, Tensor *mu, Tensor *logvar, nn_reduction red) {
    check_same_shape("nn_gaussian_nll", mu, x);
    int64_t shape[NB_MAX_DIMS];
    int nd = tensor_broadcast_shape("nn_gaussian_nll", x, logvar, shape);
    bool grows = nd != x->ndim;
    for (int d = 0; d < nd && !grows; d++) grows = shape[d] != x->shape[d];
    if (grows) {
        char s1[128], s2[128];
        nb_fail("nn_gaussian_nll", "logvar of shape %s does not broadcast to x's shape %s",
                nb_shape_str(s1, logvar->ndim, logvar->shape), nb_shape_str(s2, x->ndim, x->shape));
    }
    Tensor *d = ag_sub(x, mu);
    Tensor *lv = ag_clamp(logvar, NN_LOGVAR_MIN, NN_LOGVAR_MAX); /* the guard of nn/dist.h */
    Tensor *l = ag_add(ag_mul(ag_mul(d, d), ag_exp(ag_neg(lv))), lv);
    return nn_reduce(ag_add_scalar(ag_mul_scalar(l, (real)0.5), (real)(0.5 * LOG_2PI)), red);
}
