/* autograd/ops_reduce.c: reductions (sum, mean, max, logsumexp), the softmax family, and the
 * statistics and scans (var, std, cumsum, argmax). */
#include "autograd/autograd.h"

#include <math.h>

#include "tensor/fastmath.h"
#include "tensor/parallel.h"

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

/* ---- c = sum of a over dims:  da += g broadcast back over the summed dims -------------------- */
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

/* ---- softmax and log_softmax ------------------------------------------------------------------
 * log_softmax(a) = a - logsumexp(a) and softmax = exp(log_softmax): composites of primitives,
 * except over the last dim of a contiguous a, where one op does each row in three passes while it
 * is in cache: m = the row max (0 if not finite), e = exp(a - m), s = sum e (in double, k_dsum);
 * log_softmax = a - (log s + m), as the composite, and softmax = e / s, as PyTorch. Backward:
 *   log_softmax: da += g - exp(y) sum(g)        softmax: da += y g - y sum(y g) */

/* One row of n: y[0..n) from a[0..n). */
NB_VECTOR_CLONES static void softmax_row(const real *a, real *y, int64_t n, bool log) {
    real mk[16], m = a[0]; /* 16 running maxima, so the loop vectorizes; a NaN makes the sum NaN */
    for (int k = 0; k < 16; k++) mk[k] = a[0];
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) mk[k] = a[j + k] > mk[k] ? a[j + k] : mk[k];
    for (; j < n; j++) m = a[j] > m ? a[j] : m;
    for (int k = 0; k < 16; k++) m = mk[k] > m ? mk[k] : m;
    if (!isfinite(m)) m = 0; /* an all -inf row must not give inf - inf */
    for (int64_t j = 0; j < n; j++) y[j] = nb_exp(a[j] - m);
    double sum = k_dsum(y, n);
    if (log) {
        real c = nb_log((real)sum) + m;
        for (int64_t j = 0; j < n; j++) y[j] = a[j] - c;
    } else {
        real inv = (real)(1 / sum);
        for (int64_t j = 0; j < n; j++) y[j] *= inv;
    }
}

/* One row of the gradient: da (+)= t + p sum(t) with, for log_softmax, t = g and p = -exp(y);
 * for softmax, t = y g (put in da when fresh, else in tmp) and p = -y. */
NB_VECTOR_CLONES static void softmax_row_backward(const real *y, const real *g, real *da, real *tmp,
                                                  int64_t n, bool log, bool fresh) {
    const real *t = g;
    if (!log) {
        real *w = fresh ? da : tmp;
        for (int64_t j = 0; j < n; j++) w[j] = g[j] * y[j];
        t = w;
    }
    real s = -(real)k_dsum(t, n);
    if (log && fresh)
        for (int64_t j = 0; j < n; j++) da[j] = t[j] + nb_exp(y[j]) * s;
    else if (log)
        for (int64_t j = 0; j < n; j++) da[j] += t[j] + nb_exp(y[j]) * s;
    else if (fresh)
        for (int64_t j = 0; j < n; j++) da[j] = t[j] + y[j] * s;
    else
        for (int64_t j = 0; j < n; j++) da[j] += t[j] + y[j] * s;
}

static void softmax_backward(Tensor *y) {
    Tensor *a = y->parents[0];
    if (!a->requires_grad) return;
    bool fresh, log = y->iarg[0];
    Tensor *ga = ag_grad_begin(a, &fresh);
    real *da = ga->data + ga->offset;
    int64_t n = a->shape[a->ndim - 1], rows = a->numel / n;
    real *tmp = fresh || log ? NULL : tensor_step(a->ndim, a->shape)->data;
    const real *yd = y->data + y->offset, *g = y->grad->data + y->grad->offset;
    NB_PARALLEL_FOR(a->numel)
    for (int64_t r = 0; r < rows; r++)
        softmax_row_backward(yd + r * n, g + r * n, da + r * n, tmp ? tmp + r * n : NULL, n, log,
                             fresh);
}

static Tensor *softmax_op(const char *name, Tensor *a, int dim, bool log) {
    int d = tensor_dim(name, a, dim);
    if (d != a->ndim - 1 || !tensor_is_contiguous(a) || a->numel == 0) {
        Tensor *ls = ag_sub(a, ag_logsumexp(a, d, true));
        return log ? ls : ag_exp(ls);
    }
    Tensor *y = tensor_step(a->ndim, a->shape);
    int64_t n = a->shape[d], rows = a->numel / n;
    const real *x = a->data + a->offset;
    NB_PARALLEL_FOR(a->numel)
    for (int64_t r = 0; r < rows; r++) softmax_row(x + r * n, y->data + r * n, n, log);
    y->iarg[0] = log;
    ag_record(y, name, softmax_backward, (Tensor *[]){a}, 1);
    return y;
}

Tensor *ag_log_softmax(Tensor *a, int dim) {
    return softmax_op("log_softmax", a, dim, true);
}
Tensor *ag_softmax(Tensor *a, int dim) {
    return softmax_op("softmax", a, dim, false);
}

/* ---- statistics: var and std over dims ---------------------------------------------------------
 * var = sum((a - mean)^2) / max(0, count - correction): a composite of primitives in two passes
 * (the mean first, then the squared deviations), so its gradient 2 (a - mean) g / (count -
 * correction) comes from theirs. A zero denominator gives inf or NaN, as PyTorch. */
Tensor *ag_var(Tensor *a, const int *dims, int n, int correction, bool keepdim) {
    int all[NB_MAX_DIMS];
    if (!dims || n == 0) { /* every dim */
        for (int d = 0; d < a->ndim; d++) all[d] = d;
        dims = all;
        n = a->ndim;
    }
    unsigned mask = dims_mask("var", a, dims, n);
    double count = 1;
    for (int d = 0; d < a->ndim; d++)
        if (mask >> d & 1u) count *= (double)a->shape[d];
    double denom = count - (double)correction;
    Tensor *dev = ag_sub(a, ag_mean_dims(a, dims, n, true));
    Tensor *ss = sum_mask(ag_mul(dev, dev), mask, keepdim);
    return ag_mul_scalar(ss, denom > 0 ? (real)(1 / denom) : (real)INFINITY);
}

/* s = sqrt(v):  dv += g / (2 s), and 0 where s == 0 (PyTorch's std gradient at a constant). */
static void std_backward(Tensor *s) {
    Tensor *v = s->parents[0];
    if (!v->requires_grad) return;
    bool fresh;
    Tensor *dv = ag_grad_begin(v, &fresh);
    const real *g = s->grad->data + s->grad->offset;
    for (int64_t i = 0; i < s->numel; i++) {
        real d = s->data[i] == 0 ? 0 : g[i] * (real)0.5 / s->data[i];
        dv->data[i] = fresh ? d : dv->data[i] + d;
    }
}

Tensor *ag_std(Tensor *a, const int *dims, int n, int correction, bool keepdim) {
    Tensor *v = ag_var(a, dims, n, correction, keepdim); /* contiguous */
    Tensor *s = tensor_step(v->ndim, v->shape);
    k_unary(K_SQRT, v, s, 0, 0, false);
    ag_record(s, "std", std_backward, (Tensor *[]){v}, 1);
    return s;
}

/* ---- lines along one dim: cumsum and argmax walk them ---------------------------------------- */

/* The number of lines along dim d: the product of the other dims. */
static int64_t line_count(const Tensor *t, int d) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        if (i != d) n *= t->shape[i];
    return n;
}

/* Offsets (from t->offset) of the first element of each line along dim d, in row-major order of
 * the other dims. */
static void line_starts(const Tensor *t, int d, int64_t *out) {
    int64_t pos[NB_MAX_DIMS] = {0}, off = 0, n = line_count(t, d);
    for (int64_t l = 0; l < n; l++) {
        out[l] = off;
        for (int i = t->ndim - 1; i >= 0; i--) {
            if (i == d) continue;
            off += t->strides[i];
            if (++pos[i] < t->shape[i]) break;
            off -= pos[i] * t->strides[i];
            pos[i] = 0;
        }
    }
}

/* Resolves dim for ops that also take a scalar (ndim 0), where 0 and -1 name its one element:
 * returns -1 for a scalar. */
static int line_dim(const char *op, const Tensor *a, int dim) {
    if (a->ndim > 0) return tensor_dim(op, a, dim);
    if (dim != 0 && dim != -1) nb_fail(op, "dim %d is out of range for a scalar", dim);
    return -1;
}

/* ---- c = running sum of a along dim:  da[i] += sum of g[j] for j >= i along the dim ----------
 * Each line is summed in double, in order (as PyTorch on the CPU). */
static void cumsum_backward(Tensor *c) {
    Tensor *a = c->parents[0];
    if (!a->requires_grad) return;
    int d = (int)c->iarg[0];
    const int64_t *starts = c->saved; /* of c, whose layout the gradients share */
    int64_t len = a->shape[d], st = c->strides[d], nl = line_count(a, d);
    bool fresh;
    Tensor *da = ag_grad_begin(a, &fresh);
    const real *g = c->grad->data + c->grad->offset;
    NB_PARALLEL_FOR(nl)
    for (int64_t l = 0; l < nl; l++) {
        const real *gl = g + starts[l];
        real *dl = da->data + starts[l];
        double s = 0;
        for (int64_t k = len - 1; k >= 0; k--) {
            s += gl[k * st];
            dl[k * st] = fresh ? (real)s : dl[k * st] + (real)s;
        }
    }
}

Tensor *ag_cumsum(Tensor *a, int dim) {
    int d = line_dim("cumsum", a, dim);
    if (d < 0) return ag_add_scalar(a, 0); /* a scalar's running sum is itself */
    int64_t len = a->shape[d], nl = line_count(a, d);
    Tensor *c = tensor_step(a->ndim, a->shape);
    int64_t *sa = arena_alloc((size_t)(nl ? nl : 1) * sizeof(int64_t));
    int64_t *sc = arena_alloc((size_t)(nl ? nl : 1) * sizeof(int64_t));
    line_starts(a, d, sa);
    line_starts(c, d, sc);
    int64_t as = a->strides[d], cs = c->strides[d];
    const real *ad = a->data + a->offset;
    NB_PARALLEL_FOR(nl)
    for (int64_t l = 0; l < nl; l++) {
        double s = 0;
        for (int64_t k = 0; k < len; k++) {
            s += ad[sa[l] + k * as];
            c->data[sc[l] + k * cs] = (real)s;
        }
    }
    ag_record(c, "cumsum", cumsum_backward, (Tensor *[]){a}, 1);
    c->iarg[0] = d;
    c->saved = sc;
    return c;
}

/* ---- argmax / argmin: the first extreme along dim; a NaN counts as both (as PyTorch) --------- */
static void arg_extreme(const char *op, const Tensor *a, int dim, bool max, int64_t *out) {
    int d = line_dim(op, a, dim);
    if (d < 0) {
        out[0] = 0;
        return;
    }
    if (a->shape[d] == 0) {
        char s[128];
        nb_fail(op, "dim %d of shape %s is empty", d, nb_shape_str(s, a->ndim, a->shape));
    }
    int64_t len = a->shape[d], st = a->strides[d], nl = line_count(a, d);
    int64_t *starts = nb_malloc((size_t)(nl ? nl : 1) * sizeof(int64_t));
    line_starts(a, d, starts);
    for (int64_t l = 0; l < nl; l++) {
        const real *p = a->data + a->offset + starts[l];
        real best = p[0];
        int64_t arg = 0;
        for (int64_t k = 1; k < len && !isnan(best); k++) {
            real v = p[k * st];
            if (isnan(v) || (max ? v > best : v < best)) {
                best = v;
                arg = k;
            }
        }
        out[l] = arg;
    }
    nb_free(starts);
}

void tensor_argmax(const Tensor *a, int dim, int64_t *out) {
    arg_extreme("argmax", a, dim, true, out);
}

void tensor_argmin(const Tensor *a, int dim, int64_t *out) {
    arg_extreme("argmin", a, dim, false, out);
}
