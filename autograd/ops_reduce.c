/* autograd/ops_reduce.c: reductions (sum, mean, max, logsumexp) and the softmax family. */
#include "autograd/autograd.h"

#include <math.h>

/* The shape of a reduced over the dims in `mask` (bit d set = dim d reduced), keeping them as
 * size 1. */
static void keepdim_shape(const Tensor *a, unsigned mask, int64_t *shape) {
    for (int d = 0; d < a->ndim; d++) shape[d] = (mask >> d & 1u) ? 1 : a->shape[d];
}

/* Drops the reduced dims of a contiguous keepdim-shaped result, in place (layout only). */
static void drop_dims(Tensor *t, unsigned mask) {
    int64_t shape[NB_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++)
        if (!(mask >> d & 1u)) shape[n++] = t->shape[d];
    tensor_layout_contiguous(t, n, shape);
}

/* A contiguous tensor g viewed in keepdim layout, so it broadcasts against the input again. */
static Tensor keepdim_view(const Tensor *g, const Tensor *a, unsigned mask) {
    int64_t shape[NB_MAX_DIMS];
    keepdim_shape(a, mask, shape);
    Tensor v = *g;
    tensor_layout_contiguous(&v, a->ndim, shape);
    v.offset = g->offset;
    return v;
}

static unsigned dims_mask(const char *op, const Tensor *a, const int *dims, int n) {
    unsigned mask = 0;
    for (int i = 0; i < n; i++) {
        int d = tensor_dim(op, a, dims[i]);
        if (mask >> d & 1u) nb_fail(op, "dim %d is listed twice", d);
        mask |= 1u << d;
    }
    return mask;
}

/* ---- c = sum of a over dims:  da += g broadcast back over the summed dims ---------------------
 */
static void sum_backward(Tensor *c) {
    Tensor *a = c->parents[0];
    Tensor g = keepdim_view(c->grad, a, (unsigned)c->iarg[0]);
    ag_accumulate(a, &g);
}

static Tensor *sum_mask(Tensor *a, unsigned mask, bool keepdim) {
    int64_t shape[NB_MAX_DIMS];
    keepdim_shape(a, mask, shape);
    Tensor *c = tensor_step(a->ndim, shape);
    k_sum_to(a, c, false);
    if (!keepdim) drop_dims(c, mask);
    ag_record(c, "sum", sum_backward, (Tensor *[]){a}, 1);
    c->iarg[0] = mask;
    return c;
}

Tensor *ag_sum(Tensor *a) {
    return sum_mask(a, (1u << a->ndim) - 1, false);
}

Tensor *ag_sum_dims(Tensor *a, const int *dims, int n, bool keepdim) {
    return sum_mask(a, dims_mask("sum", a, dims, n), keepdim);
}

/* mean = sum * (1 / count): a composite, so it needs no backward of its own. */
Tensor *ag_mean(Tensor *a) {
    return ag_mul_scalar(ag_sum(a), (real)(1.0 / (double)(a->numel ? a->numel : 1)));
}

Tensor *ag_mean_dims(Tensor *a, const int *dims, int n, bool keepdim) {
    unsigned mask = dims_mask("mean", a, dims, n);
    double count = 1;
    for (int d = 0; d < a->ndim; d++)
        if (mask >> d & 1u) count *= (double)a->shape[d];
    return ag_mul_scalar(sum_mask(a, mask, keepdim), (real)(1.0 / (count ? count : 1)));
}

/* ---- c = max of a over dim:  da[argmax] += g ------------------------------------------------- */
static void max_backward(Tensor *c) {
    Tensor *a = c->parents[0];
    if (!a->requires_grad) return;
    int d = (int)c->iarg[0];
    const int64_t *arg = c->saved;
    Tensor *pg = ag_grad(a); /* contiguous, a's shape */
    const real *g = c->grad->data + c->grad->offset;
    int64_t pos[NB_MAX_DIMS] = {0};
    int64_t nout = a->shape[d] ? a->numel / a->shape[d] : 0;
    for (int64_t k = 0; k < nout; k++) {
        int64_t off = arg[k] * pg->strides[d];
        for (int i = 0; i < a->ndim; i++) off += pos[i] * pg->strides[i];
        pg->data[off] += g[k];
        for (int i = a->ndim - 1; i >= 0; i--) {
            if (i == d) continue;
            if (++pos[i] < a->shape[i]) break;
            pos[i] = 0;
        }
    }
}

Tensor *ag_max(Tensor *a, int dim, bool keepdim) {
    int d = tensor_dim("max", a, dim);
    int64_t shape[NB_MAX_DIMS];
    keepdim_shape(a, 1u << d, shape);
    Tensor *c = tensor_step(a->ndim, shape);
    int64_t *arg = arena_alloc((size_t)c->numel * sizeof(int64_t));
    k_max_dim(a, d, c, arg);
    if (!keepdim) drop_dims(c, 1u << d);
    ag_record(c, "max", max_backward, (Tensor *[]){a}, 1);
    c->iarg[0] = d;
    c->saved = arg;
    return c;
}

/* ---- c = log sum exp(a) over dim:  da += g exp(a - c) --------------------------------------- */
static void logsumexp_backward(Tensor *c) {
    Tensor *a = c->parents[0];
    if (!a->requires_grad) return;
    unsigned mask = 1u << c->iarg[0];
    Tensor ck = keepdim_view(c, a, mask), gk = keepdim_view(c->grad, a, mask);
    Tensor *p = tensor_step(a->ndim, a->shape); /* softmax(a) = exp(a - c) */
    k_binary(K_EXP_SUB, a, &ck, p, 0, 0, false);
    ag_accumulate_binary(a, K_MUL, p, &gk, 0, 0);
}

Tensor *ag_logsumexp(Tensor *a, int dim, bool keepdim) {
    int d = tensor_dim("logsumexp", a, dim);
    int64_t shape[NB_MAX_DIMS];
    keepdim_shape(a, 1u << d, shape);
    Tensor *c = tensor_step(a->ndim, shape);
    ag_mark_t m = ag_mark(); /* the temporaries below go before this op returns */
    Tensor *mx = tensor_step(a->ndim, shape);
    k_max_dim(a, d, mx, NULL);
    for (int64_t i = 0; i < mx->numel; i++) /* an all -inf row must not give inf - inf */
        if (!isfinite(mx->data[i])) mx->data[i] = 0;
    Tensor *e = tensor_step(a->ndim, a->shape);
    k_binary(K_EXP_SUB, a, mx, e, 0, 0, false);
    k_sum_to(e, c, false);
    k_unary(K_LOG, c, c, 0, 0, false);
    k_binary(K_ADD, c, mx, c, 0, 0, false);
    ag_release(m);
    if (!keepdim) drop_dims(c, 1u << d);
    ag_record(c, "logsumexp", logsumexp_backward, (Tensor *[]){a}, 1);
    c->iarg[0] = d;
    return c;
}

/* log_softmax(a) = a - logsumexp(a) and softmax = exp(log_softmax): composites of primitives. */
Tensor *ag_log_softmax(Tensor *a, int dim) {
    return ag_sub(a, ag_logsumexp(a, dim, true));
}
Tensor *ag_softmax(Tensor *a, int dim) {
    return ag_exp(ag_log_softmax(a, dim));
}
