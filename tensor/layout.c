/* tensor/layout.c: view algebra. Each function computes a new shape/strides/offset over the
 * same data; nothing is copied. The differentiable view ops in autograd/ops_view.c wrap these. */
#include "tensor/tensor.h"

#include <string.h>

static void copy_layout(const Tensor *t, Tensor *out) {
    if (out != t) *out = *t;
}

int tensor_dim(const char *op, const Tensor *t, int dim) {
    tensor_check_live(op, t);
    int d = dim < 0 ? dim + t->ndim : dim;
    if (d < 0 || d >= t->ndim) {
        char s[128];
        nb_fail(op, "dim %d is out of range for shape %s", dim, nb_shape_str(s, t->ndim, t->shape));
    }
    return d;
}

/* Reshape as a view if the strides allow it (each group of old dims that merges into new dims
 * must be contiguous within itself); returns false when a copy is needed. A -1 in shape is
 * inferred. */
bool tensor_layout_reshape(const Tensor *t, int ndim, const int64_t *shape_in, Tensor *out) {
    char s1[128], s2[128];
    tensor_check_live("reshape", t);
    if (ndim < 0 || ndim > NB_MAX_DIMS)
        nb_fail("reshape", "ndim %d is outside 0..%d", ndim, NB_MAX_DIMS);
    int64_t shape[NB_MAX_DIMS];
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        shape[i] = shape_in[i];
        if (shape[i] == -1) {
            if (infer >= 0) nb_fail("reshape", "only one dimension can be -1");
            infer = i;
        } else if (shape[i] < 0) {
            nb_fail("reshape", "negative size in %s", nb_shape_str(s1, ndim, shape_in));
        } else {
            if (shape[i] > 0 && known > INT64_MAX / shape[i])
                nb_fail("reshape", "shape %s overflows", nb_shape_str(s1, ndim, shape_in));
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || t->numel % known)
            nb_fail("reshape", "cannot infer -1 in %s for %lld elements",
                    nb_shape_str(s1, ndim, shape_in), (long long)t->numel);
        shape[infer] = t->numel / known;
        known *= shape[infer];
    }
    if (known != t->numel)
        nb_fail("reshape", "shape %s has %lld elements but the tensor of shape %s has %lld",
                nb_shape_str(s1, ndim, shape), (long long)known,
                nb_shape_str(s2, t->ndim, t->shape), (long long)t->numel);

    Tensor v = *t;
    v.ndim = ndim;
    memcpy(v.shape, shape, sizeof(int64_t) * (size_t)ndim);
    if (t->numel == 0 || tensor_is_contiguous(t)) {
        int64_t st = 1;
        for (int i = ndim - 1; i >= 0; i--) {
            v.strides[i] = st;
            st *= shape[i];
        }
        *out = v;
        return true;
    }
    /* Walk old dims (skipping size-1) and new dims together, matching equal-size chunks. */
    int i = 0, j = 0;
    while (i < t->ndim || j < ndim) {
        while (i < t->ndim && t->shape[i] == 1) i++;
        while (j < ndim && shape[j] == 1) v.strides[j++] = 1;
        if (i >= t->ndim && j >= ndim) break;
        if (i >= t->ndim || j >= ndim) return false;
        int i0 = i, j0 = j;
        int64_t a = t->shape[i++], b = shape[j++];
        while (a != b) {
            if (a < b)
                a *= t->shape[i++];
            else
                b *= shape[j++];
        }
        /* old dims i0..i-1 must be contiguous among themselves (size-1 dims don't matter) */
        int last = i - 1;
        for (int k = i - 2; k >= i0; k--) {
            if (t->shape[k] == 1) continue;
            if (t->strides[k] != t->strides[last] * t->shape[last]) return false;
            last = k;
        }
        int64_t st = 1; /* stride of the innermost old dim of the chunk */
        for (int k = i - 1; k >= i0; k--)
            if (t->shape[k] != 1) {
                st = t->strides[k];
                break;
            }
        for (int k = j - 1; k >= j0; k--) {
            v.strides[k] = st;
            st *= shape[k];
        }
    }
    *out = v;
    return true;
}

void tensor_layout_permute(const Tensor *t, const int *dims, Tensor *out) {
    Tensor v = *t;
    bool seen[NB_MAX_DIMS] = {false};
    for (int i = 0; i < t->ndim; i++) {
        int d = tensor_dim("permute", t, dims[i]);
        if (seen[d]) nb_fail("permute", "dim %d appears twice", d);
        seen[d] = true;
        v.shape[i] = t->shape[d];
        v.strides[i] = t->strides[d];
    }
    copy_layout(&v, out);
}

void tensor_layout_transpose(const Tensor *t, int d0, int d1, Tensor *out) {
    int a = tensor_dim("transpose", t, d0), b = tensor_dim("transpose", t, d1);
    Tensor v = *t;
    v.shape[a] = t->shape[b];
    v.strides[a] = t->strides[b];
    v.shape[b] = t->shape[a];
    v.strides[b] = t->strides[a];
    copy_layout(&v, out);
}

void tensor_layout_narrow(const Tensor *t, int dim, int64_t start, int64_t length, Tensor *out) {
    int d = tensor_dim("narrow", t, dim);
    if (start < 0) start += t->shape[d];
    if (start < 0 || length < 0 || start > t->shape[d] || length > t->shape[d] - start) {
        char s[128];
        nb_fail("narrow", "range [%lld, %lld) is outside dim %d of shape %s", (long long)start,
                (long long)(length > INT64_MAX - start ? INT64_MAX : start + length), d,
                nb_shape_str(s, t->ndim, t->shape));
    }
    Tensor v = *t;
    v.offset += start * t->strides[d];
    v.shape[d] = length;
    v.numel = t->shape[d] ? t->numel / t->shape[d] * length : 0;
    if (t->shape[d] == 0) v.numel = 0;
    copy_layout(&v, out);
}

void tensor_layout_expand(const Tensor *t, int ndim, const int64_t *shape, Tensor *out) {
    char s1[128], s2[128];
    tensor_check_live("expand", t);
    if (ndim < t->ndim || ndim > NB_MAX_DIMS)
        nb_fail("expand", "cannot expand shape %s to %s", nb_shape_str(s1, t->ndim, t->shape),
                nb_shape_str(s2, ndim, shape));
    Tensor v = *t;
    v.ndim = ndim;
    v.numel = 1;
    int lead = ndim - t->ndim;
    for (int i = ndim - 1; i >= 0; i--) {
        int64_t want = shape[i];
        int src = i - lead;
        int64_t have = src >= 0 ? t->shape[src] : 1;
        if (want == -1) want = have;
        if (want < 0)
            nb_fail("expand", "negative size %lld in %s", (long long)want,
                    nb_shape_str(s2, ndim, shape));
        if (have == want) {
            v.shape[i] = want;
            v.strides[i] = src >= 0 ? t->strides[src] : 0;
        } else if (have == 1) {
            v.shape[i] = want;
            v.strides[i] = 0;
        } else {
            nb_fail("expand", "cannot expand shape %s to %s (dim %d: %lld vs %lld)",
                    nb_shape_str(s1, t->ndim, t->shape), nb_shape_str(s2, ndim, shape), i,
                    (long long)have, (long long)want);
        }
        if (v.shape[i] > 0 && v.numel > INT64_MAX / v.shape[i])
            nb_fail("expand", "shape %s overflows", nb_shape_str(s2, ndim, shape));
        v.numel *= v.shape[i];
    }
    copy_layout(&v, out);
}

void tensor_layout_squeeze(const Tensor *t, int dim, Tensor *out) {
    int d = tensor_dim("squeeze", t, dim);
    if (t->shape[d] != 1) {
        char s[128];
        nb_fail("squeeze", "dim %d of shape %s has size %lld, not 1", d,
                nb_shape_str(s, t->ndim, t->shape), (long long)t->shape[d]);
    }
    Tensor v = *t;
    for (int i = d; i < t->ndim - 1; i++) {
        v.shape[i] = t->shape[i + 1];
        v.strides[i] = t->strides[i + 1];
    }
    v.ndim--;
    copy_layout(&v, out);
}

void tensor_layout_unsqueeze(const Tensor *t, int dim, Tensor *out) {
    tensor_check_live("unsqueeze", t);
    int d = dim < 0 ? dim + t->ndim + 1 : dim;
    if (d < 0 || d > t->ndim || t->ndim == NB_MAX_DIMS) {
        char s[128];
        nb_fail("unsqueeze", "dim %d is out of range for shape %s", dim,
                nb_shape_str(s, t->ndim, t->shape));
    }
    Tensor v = *t;
    for (int i = t->ndim; i > d; i--) {
        v.shape[i] = t->shape[i - 1];
        v.strides[i] = t->strides[i - 1];
    }
    v.shape[d] = 1;
    v.strides[d] = d < t->ndim ? t->strides[d] * t->shape[d] : 1;
    v.ndim++;
    copy_layout(&v, out);
}

int tensor_broadcast_shape(const char *op, const Tensor *a, const Tensor *b, int64_t *out) {
    tensor_check_live(op, a);
    tensor_check_live(op, b);
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char s1[128], s2[128];
            nb_fail(op, "shapes %s and %s cannot be broadcast (dim %d: %lld vs %lld)",
                    nb_shape_str(s1, a->ndim, a->shape), nb_shape_str(s2, b->ndim, b->shape), i,
                    (long long)sa, (long long)sb);
        }
        out[i] = sa == 1 ? sb : sa;
    }
    return n;
}
