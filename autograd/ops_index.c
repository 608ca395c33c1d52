/* autograd/ops_index.c: joins and lookups: stack, embedding, one_hot. */
#include "autograd/autograd.h"

#include <string.h>

/* ---- stack: n tensors of one shape -> [..., n at dim, ...] ------------------------------------
 *   y[..., i, ...] = ts[i]          dts[i] += g[..., i, ...]
 * Each tensor is copied into its slice of y (a window of y with dim d dropped), and its gradient
 * is read from the same slice of g: no intermediate views with gradients of their own. */

/* t's slice i of dim d, with d dropped: the shape of one stacked tensor. */
static void stack_slice(const Tensor *t, int d, int64_t i, Tensor *out) {
    Tensor win;
    tensor_layout_narrow(t, d, i, 1, &win);
    tensor_layout_squeeze(&win, d, out);
}

static void stack_backward(Tensor *y) {
    int d = (int)y->iarg[0];
    for (int i = 0; i < y->nparents; i++) {
        Tensor g;
        stack_slice(y->grad, d, i, &g);
        ag_accumulate(y->parents[i], &g);
    }
}

Tensor *ag_stack(Tensor *const *ts, int n, int dim) {
    char s1[128], s2[128];
    if (n < 1) nb_fail("stack", "needs at least one tensor, got %d", n);
    int ndim = ts[0]->ndim;
    if (ndim + 1 > NB_MAX_DIMS)
        nb_fail("stack", "tensors of shape %s have %d dims already (at most %d)",
                nb_shape_str(s1, ndim, ts[0]->shape), ndim, NB_MAX_DIMS - 1);
    int d = dim < 0 ? dim + ndim + 1 : dim;
    if (d < 0 || d > ndim)
        nb_fail("stack", "dim %d is out of range for stacking tensors of shape %s", dim,
                nb_shape_str(s1, ndim, ts[0]->shape));
    for (int i = 1; i < n; i++)
        if (!tensor_same_shape(ts[i], ts[0]))
            nb_fail("stack", "tensor %d has shape %s, but tensor 0 has %s", i,
                    nb_shape_str(s1, ts[i]->ndim, ts[i]->shape),
                    nb_shape_str(s2, ndim, ts[0]->shape));
    int64_t shape[NB_MAX_DIMS];
    for (int k = 0, j = 0; k <= ndim; k++) shape[k] = k == d ? n : ts[0]->shape[j++];
    Tensor *y = tensor_step(ndim + 1, shape);
    for (int i = 0; i < n; i++) {
        Tensor slice;
        stack_slice(y, d, i, &slice);
        k_unary(K_COPY, ts[i], &slice, 0, 0, false);
    }
    ag_record(y, "stack", stack_backward, ts, n);
    y->iarg[0] = d;
    return y;
}

/* ---- embedding: weight [V, E], ids [shape] -> out [shape, E] ----------------------------------
 *   out[p, :] = weight[ids[p], :]        dweight[ids[p], :] += g[p, :]
 * The backward adds the rows in the order of p, on one thread, so a repeated id sums its
 * gradients the same way every run. */

/* Fails on the first id outside [0, V), naming it, its position and both shapes. */
static void check_ids(const char *op, const int64_t *ids, int64_t count, int64_t V, int ndim,
                      const int64_t *shape, const char *bound) {
    for (int64_t p = 0; p < count; p++) {
        if (ids[p] >= 0 && ids[p] < V) continue;
        int64_t index[NB_MAX_DIMS], rest = p;
        for (int d = ndim - 1; d >= 0; d--) {
            index[d] = shape[d] ? rest % shape[d] : 0;
            rest = shape[d] ? rest / shape[d] : 0;
        }
        char s1[128], s2[128];
        nb_fail(op, "id %lld at position %lld (index %s of ids %s) is out of range for %s",
                (long long)ids[p], (long long)p, nb_shape_str(s1, ndim, index),
                nb_shape_str(s2, ndim, shape), bound);
    }
}

static void embedding_backward(Tensor *out) {
    Tensor *w = out->parents[0];
    if (!w->requires_grad) return;
    const int64_t *ids = out->saved;
    int64_t E = w->shape[1], count = out->iarg[0];
    bool fresh;
    Tensor *dw = ag_grad_begin(w, &fresh);
    if (fresh) tensor_fill(dw, 0); /* rows no id names get no gradient */
    const real *g = out->grad->data + out->grad->offset;
    for (int64_t p = 0; p < count; p++) {
        real *row = dw->data + ids[p] * E;
        for (int64_t e = 0; e < E; e++) row[e] += g[p * E + e];
    }
}

Tensor *ag_embedding(Tensor *weight, int ndim, const int64_t *shape, const int64_t *ids) {
    char s1[128], s2[128];
    if (weight->ndim != 2)
        nb_fail("embedding", "weight %s should be [V, E]",
                nb_shape_str(s1, weight->ndim, weight->shape));
    if (ndim < 0 || ndim + 1 > NB_MAX_DIMS)
        nb_fail("embedding", "ids have %d dims (0 to %d allowed)", ndim, NB_MAX_DIMS - 1);
    int64_t count = 1, out_shape[NB_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            nb_fail("embedding", "ids shape %s has a negative size", nb_shape_str(s1, ndim, shape));
        count *= shape[d];
        out_shape[d] = shape[d];
    }
    int64_t V = weight->shape[0], E = weight->shape[1];
    snprintf(s2, sizeof s2, "weight %s", nb_shape_str(s1, 2, weight->shape));
    check_ids("embedding", ids, count, V, ndim, shape, s2);
    out_shape[ndim] = E;
    Tensor *out = tensor_step(ndim + 1, out_shape);
    int64_t *saved = arena_alloc((size_t)(count ? count : 1) * sizeof *saved);
    if (count) memcpy(saved, ids, (size_t)count * sizeof *saved);
    const real *w = weight->data + weight->offset;
    int64_t rs = weight->strides[0], cs = weight->strides[1];
    for (int64_t p = 0; p < count; p++) {
        const real *row = w + ids[p] * rs;
        real *o = out->data + p * E;
        if (cs == 1)
            memcpy(o, row, (size_t)E * sizeof(real));
        else
            for (int64_t e = 0; e < E; e++) o[e] = row[e * cs];
    }
    ag_record(out, "embedding", embedding_backward, (Tensor *[]){weight}, 1);
    out->iarg[0] = count;
    out->saved = saved;
    return out;
}

/* ---- one_hot: ids [n] -> a kept [n, K] of 0/1 rows ------------------------------------------- */
Tensor *tensor_one_hot(const int64_t *ids, int64_t n, int64_t num_classes) {
    char bound[64];
    if (n < 0) nb_fail("one_hot", "negative number of ids %lld", (long long)n);
    if (num_classes < 1)
        nb_fail("one_hot", "num_classes must be positive, got %lld", (long long)num_classes);
    snprintf(bound, sizeof bound, "%lld classes", (long long)num_classes);
    check_ids("one_hot", ids, n, num_classes, 1, (int64_t[]){n}, bound);
    Tensor *t = tensor_zeros(NB_SHAPE(n, num_classes));
    for (int64_t i = 0; i < n; i++) t->data[i * num_classes + ids[i]] = 1;
    return t;
}
