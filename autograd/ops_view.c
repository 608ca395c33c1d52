/* autograd/ops_view.c: views (no data moves) and joins, each forward beside its backward.
 *
 * A view's backward applies the same layout change to the parent's gradient (contiguous, the
 * parent's shape) and adds g into that: transpose's backward adds into a transposed view of
 * the parent's gradient, narrow's into a narrowed one (the rest stays zero: a scatter), and
 * expand's sums g over the broadcast dims. */
#include "autograd/autograd.h"

#include <string.h>

/* A step tensor with layout `v` (sharing its data) and no autograd state, recorded as `op`. */
static Tensor *new_view(Tensor *a, const Tensor *v, const char *op, ag_backward_fn backward) {
    tensor_check_live(op, a);
    Tensor *t = arena_header();
    t->ndim = v->ndim;
    memcpy(t->shape, v->shape, sizeof t->shape);
    memcpy(t->strides, v->strides, sizeof t->strides);
    t->offset = v->offset;
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) t->numel *= t->shape[d];
    t->data = a->data;
    t->tape_index = -1;
    if (backward)
        ag_record(t, op, backward, (Tensor *[]){a}, 1);
    else
        t->op = op;
    return t;
}

/* g (contiguous, the view's shape) laid out as the parent's shape: for views that keep the
 * element order (reshape, squeeze, unsqueeze). */
static void same_order_backward(Tensor *c) {
    Tensor *a = c->parents[0];
    Tensor g = *c->grad;
    tensor_layout_contiguous(&g, a->ndim, a->shape);
    g.offset = c->grad->offset;
    ag_accumulate(a, &g);
}

/* ---- reshape / view -------------------------------------------------------------------------- */

Tensor *ag_view(Tensor *a, int ndim, const int64_t *shape) {
    Tensor v;
    if (!tensor_layout_reshape(a, ndim, shape, &v)) {
        char s1[128], s2[128];
        nb_fail("view", "shape %s cannot be viewed as %s without a copy (use ag_reshape)",
                nb_shape_str(s1, a->ndim, a->shape), nb_shape_str(s2, ndim, shape));
    }
    return new_view(a, &v, "view", same_order_backward);
}

Tensor *ag_reshape(Tensor *a, int ndim, const int64_t *shape) {
    Tensor v;
    if (tensor_layout_reshape(a, ndim, shape, &v))
        return new_view(a, &v, "reshape", same_order_backward);
    return ag_view(ag_contiguous(a), ndim, shape);
}

Tensor *ag_squeeze(Tensor *a, int dim) {
    Tensor v;
    tensor_layout_squeeze(a, dim, &v);
    return new_view(a, &v, "squeeze", same_order_backward);
}

Tensor *ag_unsqueeze(Tensor *a, int dim) {
    Tensor v;
    tensor_layout_unsqueeze(a, dim, &v);
    return new_view(a, &v, "unsqueeze", same_order_backward);
}

/* ---- transpose / permute: the gradient goes back through the same swap ---------------------- */

static void transpose_backward(Tensor *c) {
    Tensor *a = c->parents[0];
    if (!a->requires_grad) return;
    bool fresh;
    Tensor pgv;
    tensor_layout_transpose(ag_grad_begin(a, &fresh), (int)c->iarg[0], (int)c->iarg[1], &pgv);
    k_unary(K_COPY, c->grad, &pgv, 0, 0, !fresh);
}

Tensor *ag_transpose(Tensor *a, int d0, int d1) {
    Tensor v;
    tensor_layout_transpose(a, d0, d1, &v);
    Tensor *t = new_view(a, &v, "transpose", transpose_backward);
    t->iarg[0] = d0;
    t->iarg[1] = d1;
    return t;
}

static void permute_backward(Tensor *c) {
    Tensor *a = c->parents[0];
    if (!a->requires_grad) return;
    int dims[NB_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) dims[i] = (int)c->iarg[i];
    bool fresh;
    Tensor pgv;
    tensor_layout_permute(ag_grad_begin(a, &fresh), dims, &pgv);
    k_unary(K_COPY, c->grad, &pgv, 0, 0, !fresh);
}

Tensor *ag_permute(Tensor *a, const int *dims) {
    Tensor v;
    tensor_layout_permute(a, dims, &v);
    Tensor *t = new_view(a, &v, "permute", permute_backward);
    for (int i = 0; i < a->ndim; i++) t->iarg[i] = tensor_dim("permute", a, dims[i]);
    return t;
}

/* ---- narrow: the gradient lands in the narrowed window of zeros ------------------------------ */

static void narrow_backward(Tensor *c) {
    Tensor *a = c->parents[0];
    if (!a->requires_grad) return;
    Tensor pgv;
    tensor_layout_narrow(ag_grad(a), (int)c->iarg[0], c->iarg[1], c->iarg[2], &pgv);
    k_unary(K_COPY, c->grad, &pgv, 0, 0, true);
}

Tensor *ag_narrow(Tensor *a, int dim, int64_t start, int64_t length) {
    Tensor v;
    tensor_layout_narrow(a, dim, start, length, &v);
    Tensor *t = new_view(a, &v, "narrow", narrow_backward);
    t->iarg[0] = tensor_dim("narrow", a, dim);
    t->iarg[1] = start < 0 ? start + a->shape[t->iarg[0]] : start;
    t->iarg[2] = length;
    return t;
}

/* ---- expand: stride-0 broadcast; the gradient sums over the broadcast dims ------------------- */

static void expand_backward(Tensor *c) {
    ag_accumulate(c->parents[0], c->grad);
}

Tensor *ag_expand(Tensor *a, int ndim, const int64_t *shape) {
    Tensor v;
    tensor_layout_expand(a, ndim, shape, &v);
    return new_view(a, &v, "expand", expand_backward);
}

/* ---- contiguous, detach --------------------------------------------------------------------- */

static void copy_backward(Tensor *c) {
    ag_accumulate(c->parents[0], c->grad);
}

Tensor *ag_contiguous(Tensor *a) {
    if (tensor_is_contiguous(a)) return a;
    Tensor *c = tensor_step(a->ndim, a->shape);
    k_unary(K_COPY, a, c, 0, 0, false);
    ag_record(c, "contiguous", copy_backward, (Tensor *[]){a}, 1);
    return c;
}

Tensor *ag_detach(Tensor *a) {
    return new_view(a, a, "detach", NULL);
}

/* ---- concat / split / chunk ------------------------------------------------------------------ */

static void concat_backward(Tensor *c) {
    int d = (int)c->iarg[0];
    int64_t start = 0;
    for (int i = 0; i < c->nparents; i++) {
        Tensor *p = c->parents[i];
        Tensor g;
        tensor_layout_narrow(c->grad, d, start, p->shape[d], &g);
        ag_accumulate(p, &g);
        start += p->shape[d];
    }
}

Tensor *ag_concat(Tensor *const *ts, int n, int dim) {
    char s1[128], s2[128];
    if (n < 1) nb_fail("concat", "needs at least one tensor");
    int d = tensor_dim("concat", ts[0], dim);
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, ts[0]->shape, sizeof(int64_t) * (size_t)ts[0]->ndim);
    shape[d] = 0;
    for (int i = 0; i < n; i++) {
        bool ok = ts[i]->ndim == ts[0]->ndim;
        for (int k = 0; ok && k < ts[0]->ndim; k++)
            ok = k == d || ts[i]->shape[k] == ts[0]->shape[k];
        if (!ok)
            nb_fail("concat", "tensor %d has shape %s, which doesn't match %s outside dim %d", i,
                    nb_shape_str(s1, ts[i]->ndim, ts[i]->shape),
                    nb_shape_str(s2, ts[0]->ndim, ts[0]->shape), d);
        shape[d] += ts[i]->shape[d];
    }
    Tensor *c = tensor_step(ts[0]->ndim, shape);
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        Tensor win;
        tensor_layout_narrow(c, d, start, ts[i]->shape[d], &win);
        k_unary(K_COPY, ts[i], &win, 0, 0, false);
        start += ts[i]->shape[d];
    }
    ag_record(c, "concat", concat_backward, ts, n);
    c->iarg[0] = d;
    return c;
}

void ag_split(Tensor *a, const int64_t *sizes, int n, int dim, Tensor **out) {
    int d = tensor_dim("split", a, dim);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
    if (total != a->shape[d]) {
        char s[128];
        nb_fail("split", "sizes add up to %lld but dim %d of shape %s has %lld", (long long)total,
                d, nb_shape_str(s, a->ndim, a->shape), (long long)a->shape[d]);
    }
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        out[i] = ag_narrow(a, d, start, sizes[i]);
        start += sizes[i];
    }
}

int ag_chunk(Tensor *a, int n, int dim, Tensor **out) {
    if (n < 1) nb_fail("chunk", "number of chunks must be positive, got %d", n);
    int d = tensor_dim("chunk", a, dim);
    int64_t len = a->shape[d], size = (len + n - 1) / n;
    int made = 0;
    for (int64_t start = 0; start < len; start += size)
        out[made++] = ag_narrow(a, d, start, start + size <= len ? size : len - start);
    for (int i = made; i < n; i++) out[i] = NULL;
    return made;
}
