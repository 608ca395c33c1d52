/* tensor/tensor.c: creating, accessing, copying and printing tensors. */
#include "tensor/tensor.h"

#include <math.h>
#include <string.h>

/* ---- creation -------------------------------------------------------------------------------- */

/* Fills shape, contiguous strides and numel; fails on a bad ndim, negative size or overflow. */
void tensor_layout_contiguous(Tensor *t, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > NB_MAX_DIMS)
        nb_fail("tensor", "ndim %d is outside 0..%d", ndim, NB_MAX_DIMS);
    t->ndim = ndim;
    int64_t n = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] < 0) {
            char s[128];
            nb_fail("tensor", "negative size in shape %s", nb_shape_str(s, ndim, shape));
        }
        t->shape[i] = shape[i];
        t->strides[i] = n;
        if (shape[i] > 0 && n > INT64_MAX / shape[i] / (int64_t)sizeof(real))
            nb_fail("tensor", "shape is too large");
        n *= shape[i];
    }
    t->numel = n;
    t->offset = 0;
}

static Tensor *alloc_tensor(int ndim, const int64_t *shape, bool kept) {
    Tensor *t = kept ? nb_calloc(sizeof *t) : arena_header();
    tensor_layout_contiguous(t, ndim, shape);
    size_t bytes = (size_t)t->numel * sizeof(real);
    t->data = kept ? nb_malloc(bytes) : arena_alloc(bytes);
    t->kept = kept;
    t->owns_data = kept;
    t->tape_index = -1;
    return t;
}

Tensor *tensor_empty(int ndim, const int64_t *shape) {
    return alloc_tensor(ndim, shape, true);
}
Tensor *tensor_step(int ndim, const int64_t *shape) {
    return alloc_tensor(ndim, shape, false);
}

Tensor *tensor_full(int ndim, const int64_t *shape, real value) {
    Tensor *t = tensor_empty(ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = value;
    return t;
}

Tensor *tensor_zeros(int ndim, const int64_t *shape) {
    return tensor_full(ndim, shape, 0);
}
Tensor *tensor_ones(int ndim, const int64_t *shape) {
    return tensor_full(ndim, shape, 1);
}
Tensor *tensor_scalar(real value) {
    return tensor_full(0, NULL, value);
}

Tensor *tensor_arange(real start, real stop, real step) {
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        nb_fail("tensor_arange", "step must be non-zero and bounds finite");
    double count = ceil(((double)stop - start) / step);
    if (count > 1e15) nb_fail("tensor_arange", "%g elements is too many", count);
    int64_t n = count > 0 ? (int64_t)count : 0;
    Tensor *t = tensor_empty(1, &n);
    for (int64_t i = 0; i < n; i++) t->data[i] = (real)(start + (double)i * step);
    return t;
}

Tensor *tensor_from_array(int ndim, const int64_t *shape, const real *values) {
    Tensor *t = tensor_empty(ndim, shape);
    if (t->numel) memcpy(t->data, values, (size_t)t->numel * sizeof(real));
    return t;
}

Tensor *tensor_copy(const Tensor *src) {
    tensor_check_live("tensor_copy", src);
    Tensor *t = tensor_empty(src->ndim, src->shape);
    tensor_to_array(src, t->data);
    return t;
}

Tensor *tensor_rand(int ndim, const int64_t *shape, nb_rng *rng) {
    if (!rng) rng = nb_rng_global();
    Tensor *t = tensor_empty(ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (real)nb_rng_uniform(rng);
    return t;
}

Tensor *tensor_randn(int ndim, const int64_t *shape, nb_rng *rng) {
    if (!rng) rng = nb_rng_global();
    Tensor *t = tensor_empty(ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (real)nb_rng_normal(rng);
    return t;
}

void tensor_free(Tensor *t) {
    if (!t) return;
    if (!t->kept)
        nb_fail("tensor_free", "a step tensor (made by an op) is freed by ag_reset(), not by hand");
    tensor_free(t->grad);
    tensor_free(t->grad_spare);
    if (t->owns_data) nb_free(t->data);
    nb_free(t);
}

/* ---- element access -------------------------------------------------------------------------- */

/* The address of element `index`, checked against t's shape; errors name `op`. */
static real *element(const char *op, const Tensor *t, const int64_t *index) {
    tensor_check_live(op, t);
    int64_t off = t->offset;
    for (int i = 0; i < t->ndim; i++) {
        if (index[i] < 0 || index[i] >= t->shape[i]) {
            char s[128];
            nb_fail(op, "index %lld out of range for dim %d of shape %s", (long long)index[i], i,
                    nb_shape_str(s, t->ndim, t->shape));
        }
        off += index[i] * t->strides[i];
    }
    return t->data + off;
}

real *tensor_ptr(const Tensor *t, const int64_t *index) {
    return element("tensor_ptr", t, index);
}
real tensor_get(const Tensor *t, const int64_t *index) {
    return *element("tensor_get", t, index);
}
void tensor_set(Tensor *t, const int64_t *index, real v) {
    *element("tensor_set", t, index) = v;
}

real tensor_item(const Tensor *t) {
    tensor_check_live("tensor_item", t);
    if (t->numel != 1) {
        char s[128];
        nb_fail("tensor_item", "tensor of shape %s has %lld elements, not 1",
                nb_shape_str(s, t->ndim, t->shape), (long long)t->numel);
    }
    return t->data[t->offset];
}

bool tensor_is_contiguous(const Tensor *t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != expect) return false;
        expect *= t->shape[i];
    }
    return true;
}

bool tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

/* Visits every element of t in row-major order, calling fn(ptr, k, ctx) with its flat index k. */
static void for_each(const Tensor *t, void (*fn)(real *, int64_t, void *), void *ctx) {
    int64_t idx[NB_MAX_DIMS] = {0};
    int64_t off = t->offset;
    for (int64_t k = 0; k < t->numel; k++) {
        fn(t->data + off, k, ctx);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) {
                off += t->strides[d];
                break;
            }
            off -= (t->shape[d] - 1) * t->strides[d];
            idx[d] = 0;
        }
    }
}

static void fill_one(real *p, int64_t k, void *ctx) {
    (void)k;
    *p = *(real *)ctx;
}
void tensor_fill(Tensor *t, real value) {
    tensor_check_live("tensor_fill", t);
    if (!tensor_is_contiguous(t)) {
        for_each(t, fill_one, &value);
        return;
    }
    real *p = t->data + t->offset;
    if (value == 0 && !signbit(value))
        memset(p, 0, (size_t)t->numel * sizeof(real));
    else
        for (int64_t i = 0; i < t->numel; i++) p[i] = value;
}

static void read_one(real *p, int64_t k, void *ctx) {
    ((real *)ctx)[k] = *p;
}
void tensor_to_array(const Tensor *t, real *out) {
    tensor_check_live("tensor_to_array", t);
    if (tensor_is_contiguous(t)) {
        if (t->numel) memcpy(out, t->data + t->offset, (size_t)t->numel * sizeof(real));
    } else {
        for_each(t, read_one, out);
    }
}

static void write_one(real *p, int64_t k, void *ctx) {
    *p = ((real *)ctx)[k];
}
void tensor_copy_into(Tensor *dst, const Tensor *src) {
    tensor_check_live("tensor_copy_into", dst);
    tensor_check_live("tensor_copy_into", src);
    Tensor view = *src;
    if (!tensor_same_shape(dst, src)) tensor_layout_expand(src, dst->ndim, dst->shape, &view);
    if (tensor_is_contiguous(dst)) {
        tensor_to_array(&view, dst->data + dst->offset);
        return;
    }
    real *tmp = nb_malloc((size_t)dst->numel * sizeof(real));
    tensor_to_array(&view, tmp);
    for_each(dst, write_one, tmp);
    nb_free(tmp);
}

/* ---- printing -------------------------------------------------------------------------------- */

#define PRINT_MAX  1000
#define PRINT_EDGE 3

static void print_rec(FILE *f, const Tensor *t, int d, int64_t off, bool summarize, int indent,
                      int width, int prec) {
    if (d == t->ndim) {
        fprintf(f, "%*.*f", width, prec, (double)t->data[off]);
        return;
    }
    fputc('[', f);
    int64_t n = t->shape[d];
    for (int64_t i = 0; i < n; i++) {
        if (summarize && n > 2 * PRINT_EDGE && i == PRINT_EDGE) {
            fprintf(f, d == t->ndim - 1 ? "..., " : "...,\n%*s",
                    d == t->ndim - 1 ? 0 : indent + d + 1, "");
            i = n - PRINT_EDGE;
        }
        print_rec(f, t, d + 1, off + i * t->strides[d], summarize, indent, width, prec);
        if (i + 1 < n) {
            if (d == t->ndim - 1)
                fputs(", ", f);
            else {
                fputc(',', f);
                for (int k = d; k < t->ndim - 1; k++) fputc('\n', f);
                fprintf(f, "%*s", indent + d + 1, "");
            }
        }
    }
    fputc(']', f);
}

void tensor_fprint(FILE *f, const Tensor *t, const char *label) {
    tensor_check_live("tensor_print", t);
    /* Choose one width and precision for all values, as NumPy does. */
    Tensor flat = *t;
    bool all_int = true, negative = false;
    double maxabs = 0;
    real *vals = nb_malloc((size_t)(t->numel ? t->numel : 1) * sizeof(real));
    tensor_to_array(&flat, vals);
    for (int64_t i = 0; i < t->numel; i++) {
        double v = vals[i];
        if (isfinite(v)) {
            if (fabs(v) > maxabs) maxabs = fabs(v);
            if (v != floor(v)) all_int = false;
            if (v < 0) negative = true;
        }
    }
    nb_free(vals);
    int prec = all_int ? 0 : 4;
    int width =
        (int)(maxabs >= 1 ? floor(log10(maxabs)) + 1 : 1) + (prec ? prec + 1 : 0) + negative;
    if (label) fprintf(f, "%s = ", label);
    fputs("tensor(", f);
    int indent = (label ? (int)strlen(label) + 3 : 0) + 7;
    print_rec(f, t, 0, t->offset, t->numel > PRINT_MAX, indent, width, prec);
    char s[128];
    fprintf(f, ", shape=%s%s)\n", nb_shape_str(s, t->ndim, t->shape),
            t->requires_grad ? ", requires_grad" : "");
}

void tensor_print(const Tensor *t, const char *label) {
    tensor_fprint(stdout, t, label);
}
