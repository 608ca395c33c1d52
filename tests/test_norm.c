/* tests/test_norm.c: layer norm, batch norm and the statistics ops (var, std, cumsum, argmax):
 * gradient checks (odd sizes, w and b present or NULL, permuted inputs, train and eval), values
 * and gradients against PyTorch 1.13 (tests/norm_ref.h, from tools/ref_norm.py), the running
 * statistics after two training steps, and the errors. Runs in float and double. */
#include "tests/check_main.h"
#include "tests/testutil.h"

#include <math.h>
#include <string.h>

#include "tensor/gemm.h"

#include "tests/norm_ref.h"

/* ---- gradient checks --------------------------------------------------------------------------
 * in[0] is x, then w and b when the case has them. */

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4]; /* x as stored */
    int perm[4];      /* x is read through ag_permute(x, perm) when perm_on */
    bool perm_on;
    bool batch;     /* batch norm, else layer norm */
    int normalized; /* layer norm: normalized_ndim */
    bool w, b;      /* with a weight, a bias */
    bool training;  /* batch norm */
    bool running;   /* batch norm in training: pass running statistics */
} norm_case;

typedef struct {
    const norm_case *c;
    Tensor *rm, *rv;
} norm_ctx;

static Tensor *f_norm(Tensor *const *in, void *ctx) {
    const norm_ctx *k = ctx;
    const norm_case *c = k->c;
    Tensor *x = c->perm_on ? ag_permute(in[0], c->perm) : in[0];
    Tensor *w = c->w ? in[1] : NULL, *b = c->b ? in[1 + c->w] : NULL;
    if (c->batch) return ag_batch_norm(x, k->rm, k->rv, w, b, c->training, 0.1, 1e-5);
    return ag_layer_norm(x, c->normalized, w, b, 1e-5);
}

/* clang-format off */
static const norm_case norm_cases[] = {
    /* name                                   ndim shape         perm     perm_on batch normalized w  b  training running */
    {"layer [3, 5] w b",                        2, {3, 5},       {0},          0, 0, 1, 1, 1, 0, 0},
    {"layer [3, 5] no w b",                     2, {3, 5},       {0},          0, 0, 1, 0, 0, 0, 0},
    {"layer [2, 3, 5] over 2 dims, w only",     3, {2, 3, 5},    {0},          0, 0, 2, 1, 0, 0, 0},
    {"layer [2, 3, 5] over all 3, b only",      3, {2, 3, 5},    {0},          0, 0, 3, 0, 1, 0, 0},
    {"layer permuted [5, 3] -> [3, 5]",         2, {5, 3},       {1, 0},       1, 0, 1, 1, 1, 0, 0},
    {"layer permuted [3, 2, 5] -> [2, 5, 3]",   3, {3, 2, 5},    {1, 2, 0},    1, 0, 2, 1, 1, 0, 0},
    {"batch [5, 3] train w b",                  2, {5, 3},       {0},          0, 1, 0, 1, 1, 1, 1},
    {"batch [5, 3] train no w b",               2, {5, 3},       {0},          0, 1, 0, 0, 0, 1, 0},
    {"batch [5, 3] eval w b",                   2, {5, 3},       {0},          0, 1, 0, 1, 1, 0, 1},
    {"batch [3, 2, 7] train",                   3, {3, 2, 7},    {0},          0, 1, 0, 1, 1, 1, 1},
    {"batch [3, 2, 3, 5] train w b",            4, {3, 2, 3, 5}, {0},          0, 1, 0, 1, 1, 1, 1},
    {"batch [3, 2, 3, 5] train w only",         4, {3, 2, 3, 5}, {0},          0, 1, 0, 1, 0, 1, 0},
    {"batch [3, 2, 3, 5] eval b only",          4, {3, 2, 3, 5}, {0},          0, 1, 0, 0, 1, 0, 1},
    {"batch NHWC [3, 3, 5, 2] as NCHW, train",  4, {3, 3, 5, 2}, {0, 3, 1, 2}, 1, 1, 0, 1, 1, 1, 1},
    {"batch NHWC [3, 3, 5, 2] as NCHW, eval",   4, {3, 3, 5, 2}, {0, 3, 1, 2}, 1, 1, 0, 1, 1, 0, 1},
    {"batch [1, 2, 1, 3] train (one sample)",   4, {1, 2, 1, 3}, {0},          0, 1, 0, 1, 1, 1, 1},
};
/* clang-format on */

START_TEST(gradcheck_norms) {
    const norm_case *c = &norm_cases[_i];
    Tensor *in[3];
    int n = 0;
    in[n++] = nbt_param(c->ndim, c->shape, -2, 2, 100 + (uint64_t)_i);
    int ci = c->perm_on ? c->perm[1] : 1; /* x's channel dim as stored (batch norm) */
    int64_t C = c->shape[ci];
    int lead = c->ndim - c->normalized;
    int64_t pshape[4];
    for (int d = 0; d < c->ndim; d++)
        pshape[d] = c->shape[c->perm_on ? c->perm[d] : d]; /* x's logical shape */
    int pndim = c->batch ? 1 : c->normalized;
    const int64_t *ps = c->batch ? &C : pshape + lead;
    if (c->w) in[n++] = nbt_param(pndim, ps, 0.5, 1.5, 200 + (uint64_t)_i);
    if (c->b) in[n++] = nbt_param(pndim, ps, -1, 1, 300 + (uint64_t)_i);
    norm_ctx k = {c, NULL, NULL};
    if (c->running) {
        k.rm = nbt_tensor(NB_SHAPE(C), -0.5, 0.5, 400, false);
        k.rv = nbt_tensor(NB_SHAPE(C), 0.5, 2, 401, false);
    }
    nbt_gradcheck(c->name, f_norm, in, n, &k);
    for (int i = 0; i < n; i++) tensor_free(in[i]);
    tensor_free(k.rm);
    tensor_free(k.rv);
    ag_reset();
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */

START_TEST(norm_errors) {
    Tensor *x = tensor_zeros(NB_SHAPE(2, 3, 4));
    Tensor *w3 = tensor_ones(NB_SHAPE(3)), *w4 = tensor_ones(NB_SHAPE(4));
    Tensor *x1 = tensor_zeros(NB_SHAPE(1, 3)), *x11 = tensor_zeros(NB_SHAPE(1, 3, 1, 1));
    NBT_EXPECT_FAIL(ag_layer_norm(x, 1, w3, NULL, 1e-5), "layer_norm",
                    "weight of shape [3] should have shape [4] for input [2, 3, 4]");
    NBT_EXPECT_FAIL(ag_layer_norm(x, 2, w4, NULL, 1e-5), "layer_norm",
                    "weight of shape [4] should have shape [3, 4]");
    NBT_EXPECT_FAIL(ag_layer_norm(x, 1, NULL, w3, 1e-5), "bias of shape [3]");
    NBT_EXPECT_FAIL(ag_layer_norm(x, 4, NULL, NULL, 1e-5), "normalized_ndim 4 is out of range",
                    "[2, 3, 4]");
    NBT_EXPECT_FAIL(ag_layer_norm(x, 0, NULL, NULL, 1e-5), "normalized_ndim 0");
    NBT_EXPECT_FAIL(ag_batch_norm(x, NULL, NULL, w4, NULL, true, 0.1, 1e-5), "batch_norm",
                    "weight of shape [4] should have shape [3] for input [2, 3, 4]");
    NBT_EXPECT_FAIL(ag_batch_norm(x, NULL, NULL, NULL, w4, true, 0.1, 1e-5), "bias of shape [4]");
    NBT_EXPECT_FAIL(ag_batch_norm(x, w4, w4, NULL, NULL, true, 0.1, 1e-5),
                    "running_mean of shape [4] should have shape [3]");
    NBT_EXPECT_FAIL(ag_batch_norm(x, w3, w4, NULL, NULL, true, 0.1, 1e-5),
                    "running_var of shape [4] should have shape [3]");
    NBT_EXPECT_FAIL(ag_batch_norm(x, w3, NULL, NULL, NULL, true, 0.1, 1e-5), "both");
    NBT_EXPECT_FAIL(ag_batch_norm(x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5), "evaluation mode");
    NBT_EXPECT_FAIL(ag_batch_norm(w3, NULL, NULL, NULL, NULL, true, 0.1, 1e-5), "input [3]",
                    "[N, C, H, W]");
    NBT_EXPECT_FAIL(ag_batch_norm(x1, NULL, NULL, NULL, NULL, true, 0.1, 1e-5),
                    "Expected more than 1 value per channel when training", "[1, 3]");
    NBT_EXPECT_FAIL(ag_batch_norm(x11, w3, w3, NULL, NULL, true, 0.1, 1e-5),
                    "Expected more than 1 value per channel", "[1, 3, 1, 1]");
    /* one value per channel is fine in evaluation */
    Tensor *y = ag_batch_norm(x1, w3, w3, NULL, NULL, false, 0.1, 1e-5);
    ck_assert_int_eq(y->numel, 3);
    tensor_free(x);
    tensor_free(w3);
    tensor_free(w4);
    tensor_free(x1);
    tensor_free(x11);
    ag_reset();
}
END_TEST

/* ---- against PyTorch (tests/norm_ref.h) ----------------------------------------------------- */

#ifdef NB_DOUBLE
#define REF_TOL 1e-9
#else
#define REF_TOL 2e-4
#endif

/* A kept tensor holding v (row-major over shape). With perm, the values are stored permuted by
 * perm's inverse, so ag_permute(t, perm) is the tensor of `shape`, read through strides. */
static Tensor *ref_tensor(int ndim, const int64_t *shape, const double *v, const int *perm) {
    Tensor *t = tensor_empty(ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (real)v[i];
    if (!perm) return t;
    int inv[NB_MAX_DIMS];
    for (int d = 0; d < ndim; d++) inv[perm[d]] = d;
    Tensor view = *t;
    tensor_layout_permute(t, inv, &view);
    Tensor *stored = tensor_copy(&view);
    tensor_free(t);
    return stored;
}

/* t read through perm (as ref_tensor stored it), or t itself. */
static Tensor *logical(Tensor *t, const int *perm) {
    return perm ? ag_permute(t, perm) : t;
}

/* Asserts |t - ref| <= REF_TOL (1 + |ref|) element-wise, t read through perm when given. */
static void check_ref(const char *what, const char *part, const Tensor *t, const double *ref,
                      const int *perm) {
    Tensor view = *t;
    if (perm) tensor_layout_permute(t, perm, &view);
    nbt_assert_ref(what, part, &view, ref, REF_TOL);
}

/* Layer norm's output and gradients, with x contiguous and (when 2-D or more) transposed. */
START_TEST(layer_norm_matches_pytorch) {
    const norm_ref_layer *c = &norm_ref_layers[_i];
    int rev[4];
    for (int d = 0; d < c->ndim; d++) rev[d] = c->ndim - 1 - d;
    for (int pass = 0; pass < 2; pass++) {
        const int *perm = pass ? rev : NULL;
        int lead = c->ndim - c->normalized_ndim;
        Tensor *x = ref_tensor(c->ndim, c->shape, c->x, perm);
        Tensor *w = c->w ? ref_tensor(c->normalized_ndim, c->shape + lead, c->w, NULL) : NULL;
        Tensor *b = c->b ? ref_tensor(c->normalized_ndim, c->shape + lead, c->b, NULL) : NULL;
        Tensor *gy = ref_tensor(c->ndim, c->shape, c->gy, NULL);
        tensor_requires_grad(x, true);
        if (w) tensor_requires_grad(w, true);
        if (b) tensor_requires_grad(b, true);
        Tensor *y = ag_layer_norm(logical(x, perm), c->normalized_ndim, w, b, (real)c->eps);
        check_ref(c->name, "y", y, c->y, NULL);
        ag_backward_with(y, gy);
        check_ref(c->name, "dx", x->grad, c->dx, perm);
        if (w) check_ref(c->name, "dw", w->grad, c->dw, NULL);
        if (b) check_ref(c->name, "db", b->grad, c->db, NULL);
        tensor_free(x);
        tensor_free(w);
        tensor_free(b);
        tensor_free(gy);
        ag_reset();
    }
}
END_TEST

/* Batch norm over one or two steps: running statistics after each, then the last step's output
 * and gradients; 4-D inputs also run stored NHWC and read as NCHW. */
START_TEST(batch_norm_matches_pytorch) {
    const norm_ref_batch *c = &norm_ref_batches[_i];
    static const int nchw[4] = {0, 3, 1, 2};
    for (int pass = 0; pass < (c->ndim == 4 ? 2 : 1); pass++) {
        const int *perm = pass ? nchw : NULL;
        int64_t C = c->shape[1];
        Tensor *w = c->has_w ? ref_tensor(NB_SHAPE(C), c->w, NULL) : NULL;
        Tensor *b = c->has_b ? ref_tensor(NB_SHAPE(C), c->b, NULL) : NULL;
        Tensor *rm = c->has_running ? ref_tensor(NB_SHAPE(C), c->rm0, NULL) : NULL;
        Tensor *rv = c->has_running ? ref_tensor(NB_SHAPE(C), c->rv0, NULL) : NULL;
        Tensor *gy = ref_tensor(c->ndim, c->shape, c->gy, NULL);
        if (w) tensor_requires_grad(w, true);
        if (b) tensor_requires_grad(b, true);
        for (int t = 0; t < c->steps; t++) {
            Tensor *x = ref_tensor(c->ndim, c->shape, c->x[t], perm);
            tensor_requires_grad(x, true);
            if (w) tensor_zero_grad(w);
            if (b) tensor_zero_grad(b);
            Tensor *y = ag_batch_norm(logical(x, perm), rm, rv, w, b, c->training,
                                      (real)c->momentum, (real)c->eps);
            if (c->training && rm) {
                check_ref(c->name, "running_mean", rm, c->rm[t], NULL);
                check_ref(c->name, "running_var", rv, c->rv[t], NULL);
            }
            if (t == c->steps - 1) {
                check_ref(c->name, "y", y, c->y, NULL);
                ag_backward_with(y, gy);
                check_ref(c->name, "dx", x->grad, c->dx, perm);
                if (w) check_ref(c->name, "dw", w->grad, c->dw, NULL);
                if (b) check_ref(c->name, "db", b->grad, c->db, NULL);
            }
            tensor_free(x);
            ag_reset();
        }
        if (!c->training && rm) { /* evaluation leaves the running statistics alone */
            check_ref(c->name, "running_mean (eval)", rm, c->rm0, NULL);
            check_ref(c->name, "running_var (eval)", rv, c->rv0, NULL);
        }
        tensor_free(w);
        tensor_free(b);
        tensor_free(rm);
        tensor_free(rv);
        tensor_free(gy);
    }
}
END_TEST

/* ---- var, std, cumsum, argmax ---------------------------------------------------------------- */

static Tensor *f_var02(Tensor *const *in, void *c) {
    (void)c;
    return ag_var(in[0], (int[]){0, 2}, 2, 1, false);
}
static Tensor *f_var_all_keep(Tensor *const *in, void *c) {
    (void)c;
    return ag_var(in[0], NULL, 0, 0, true);
}
static Tensor *f_varT(Tensor *const *in, void *c) {
    (void)c;
    return ag_var(ag_transpose(in[0], 0, 1), (int[]){-1}, 1, 2, false);
}
static Tensor *f_std1_keep(Tensor *const *in, void *c) {
    (void)c;
    return ag_std(in[0], (int[]){1}, 1, 2, true);
}
static Tensor *f_std_all(Tensor *const *in, void *c) {
    (void)c;
    return ag_std(in[0], NULL, 0, 1, false);
}
static Tensor *f_stdT(Tensor *const *in, void *c) {
    (void)c;
    return ag_std(ag_permute(in[0], (int[]){2, 0, 1}), (int[]){0, 2}, 2, 0, false);
}
static Tensor *f_cumsum1(Tensor *const *in, void *c) {
    (void)c;
    return ag_cumsum(in[0], 1);
}
static Tensor *f_cumsum_last(Tensor *const *in, void *c) {
    (void)c;
    return ag_cumsum(in[0], -1);
}
static Tensor *f_cumsumT(Tensor *const *in, void *c) {
    (void)c;
    return ag_cumsum(ag_transpose(in[0], 0, 1), 0);
}

static const struct {
    const char *name;
    ag_fn f;
    int ndim;
    int64_t shape[3];
} stat_cases[] = {
    {"var dims (0, 2)", f_var02, 3, {3, 4, 5}},
    {"var all, correction 0, keepdim", f_var_all_keep, 3, {3, 2, 5}},
    {"var of a transposed [5, 3], correction 2", f_varT, 2, {5, 3}},
    {"std dim 1, keepdim, correction 2", f_std1_keep, 3, {3, 4, 5}},
    {"std all", f_std_all, 2, {3, 5}},
    {"std of a permuted [3, 4, 5] over 2 dims", f_stdT, 3, {3, 4, 5}},
    {"cumsum dim 1", f_cumsum1, 3, {3, 4, 5}},
    {"cumsum dim -1", f_cumsum_last, 2, {3, 7}},
    {"cumsum of a transposed [4, 3]", f_cumsumT, 2, {4, 3}},
};

START_TEST(gradcheck_statistics) {
    Tensor *x = nbt_param(stat_cases[_i].ndim, stat_cases[_i].shape, -2, 2, 500 + (uint64_t)_i);
    nbt_gradcheck(stat_cases[_i].name, stat_cases[_i].f, &x, 1, NULL);
    tensor_free(x);
    ag_reset();
}
END_TEST

/* var, std and cumsum against PyTorch, with x contiguous and reversed (read through strides). */
START_TEST(statistics_match_pytorch) {
    const norm_ref_stat *c = &norm_ref_stats[_i];
    int rev[4];
    for (int d = 0; d < c->ndim; d++) rev[d] = c->ndim - 1 - d;
    for (int pass = 0; pass < 2; pass++) {
        const int *perm = pass ? rev : NULL;
        Tensor *x = ref_tensor(c->ndim, c->shape, c->x, perm);
        tensor_requires_grad(x, true);
        Tensor *xl = logical(x, perm), *y;
        if (c->kind == NORM_REF_CUMSUM)
            y = ag_cumsum(xl, c->dims[0]);
        else if (c->kind == NORM_REF_VAR)
            y = ag_var(xl, c->ndims ? c->dims : NULL, c->ndims, c->correction, c->keepdim);
        else
            y = ag_std(xl, c->ndims ? c->dims : NULL, c->ndims, c->correction, c->keepdim);
        ck_assert_int_eq(y->ndim, c->out_ndim);
        for (int d = 0; d < y->ndim; d++) ck_assert_int_eq(y->shape[d], c->out_shape[d]);
        check_ref(c->name, "y", y, c->y, NULL);
        Tensor *gy = ref_tensor(y->ndim, y->shape, c->gy, NULL);
        ag_backward_with(y, gy);
        check_ref(c->name, "dx", x->grad, c->dx, perm);
        tensor_free(x);
        tensor_free(gy);
        ag_reset();
    }
}
END_TEST

/* PyTorch's edge cases: a zero denominator gives NaN or inf; std's gradient at a constant is 0;
 * a scalar's running sum is itself. */
START_TEST(statistics_edge_cases) {
    Tensor *one = tensor_from_array(NB_SHAPE(1), (real[]){1});
    Tensor *two = tensor_from_array(NB_SHAPE(2), (real[]){1, 2});
    ck_assert(isnan(tensor_item(ag_var(one, NULL, 0, 1, false))));
    ck_assert(isinf(tensor_item(ag_var(two, NULL, 0, 3, false))));
    ck_assert_double_eq_tol(tensor_item(ag_var(two, (int[]){0}, 1, 0, false)), 0.25, 1e-6);
    Tensor *flat = tensor_full(NB_SHAPE(3), 2);
    tensor_requires_grad(flat, true);
    Tensor *s = ag_std(flat, NULL, 0, 1, false);
    ck_assert_double_eq(tensor_item(s), 0);
    ag_backward(s);
    for (int i = 0; i < 3; i++) ck_assert_double_eq(flat->grad->data[i], 0);
    Tensor *sc = tensor_scalar(4);
    ck_assert_int_eq(ag_cumsum(sc, 0)->ndim, 0);
    ck_assert_double_eq(tensor_item(ag_cumsum(sc, -1)), 4);
    Tensor *c = ag_cumsum(two, 0);
    ck_assert_double_eq(c->data[0], 1);
    ck_assert_double_eq(c->data[1], 3);
    NBT_EXPECT_FAIL(ag_cumsum(sc, 1), "cumsum", "dim 1 is out of range for a scalar");
    NBT_EXPECT_FAIL(ag_cumsum(two, 1), "cumsum", "dim 1 is out of range for shape [2]");
    NBT_EXPECT_FAIL(ag_var(two, (int[]){0, 0}, 2, 1, false), "var", "listed twice");
    NBT_EXPECT_FAIL(ag_std(two, (int[]){2}, 1, 1, false), "var", "dim 2 is out of range");
    tensor_free(one);
    tensor_free(two);
    tensor_free(flat);
    tensor_free(sc);
    ag_reset();
}
END_TEST

/* The first extreme on ties and a NaN counting as both max and min, as PyTorch; also through a
 * transposed view and on a scalar. */
START_TEST(argmax_ties_and_nan_match_pytorch) {
    Tensor *x = tensor_empty(NB_SHAPE(4, 5));
    for (int i = 0; i < 20; i++) x->data[i] = (real)norm_ref_arg_x[i / 5][i % 5];
    int64_t out[5];
    tensor_argmax(x, 0, out);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(out[i], norm_ref_argmax0[i]);
    tensor_argmax(x, -1, out);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(out[i], norm_ref_argmax1[i]);
    tensor_argmin(x, 0, out);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(out[i], norm_ref_argmin0[i]);
    tensor_argmin(x, 1, out);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(out[i], norm_ref_argmin1[i]);
    Tensor xt = *x; /* [5, 4]: its dim 1 is x's dim 0 */
    tensor_layout_transpose(x, 0, 1, &xt);
    tensor_argmax(&xt, 1, out);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(out[i], norm_ref_argmax0[i]);
    tensor_argmin(&xt, 0, out);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(out[i], norm_ref_argmin1[i]);
    Tensor *sc = tensor_scalar(3);
    tensor_argmax(sc, 0, out);
    ck_assert_int_eq(out[0], 0);
    Tensor *empty = tensor_zeros(NB_SHAPE(2, 0));
    NBT_EXPECT_FAIL(tensor_argmax(empty, 1, out), "argmax", "dim 1 of shape [2, 0] is empty");
    NBT_EXPECT_FAIL(tensor_argmin(x, 2, out), "argmin", "dim 2 is out of range for shape [4, 5]");
    tensor_free(x);
    tensor_free(sc);
    tensor_free(empty);
}
END_TEST

/* ---- the same bits on any thread count --------------------------------------------------------
 * Shapes big enough that the loops over groups (and cumsum's lines) split across threads. */

/* Runs op `which` on fixed inputs with `threads` threads; returns y, then x's, w's and b's
 * gradients, in one buffer of *n values (caller frees). */
static real *run_threaded(int which, int threads, int64_t *n) {
    nb_set_num_threads(threads);
    int64_t C = 8;
    Tensor *x = which == 0   ? nbt_param(NB_SHAPE(300, 131), -2, 2, 7)
                : which == 1 ? nbt_param(NB_SHAPE(64, C, 9, 9), -2, 2, 7)
                             : nbt_param(NB_SHAPE(40000, 3), -2, 2, 7);
    int64_t P = which == 0 ? 131 : C;
    Tensor *w = nbt_param(NB_SHAPE(P), 0.5, 1.5, 8), *b = nbt_param(NB_SHAPE(P), -1, 1, 9);
    Tensor *y = which == 0   ? ag_layer_norm(x, 1, w, b, 1e-5)
                : which == 1 ? ag_batch_norm(x, NULL, NULL, w, b, true, 0.1, 1e-5)
                             : ag_cumsum(x, 1);
    Tensor *gy = nbt_tensor(y->ndim, y->shape, -1, 1, 10, false);
    ag_backward_with(y, gy);
    *n = y->numel + x->numel + (which < 2 ? 2 * P : 0);
    real *out = nb_malloc((size_t)*n * sizeof(real)), *o = out;
    tensor_to_array(y, o);
    tensor_to_array(x->grad, o += y->numel);
    if (which < 2) {
        tensor_to_array(w->grad, o += x->numel);
        tensor_to_array(b->grad, o + P);
    }
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
    tensor_free(gy);
    ag_reset();
    return out;
}

START_TEST(same_bits_on_any_thread_count) {
    static const char *names[] = {"layer_norm", "batch_norm", "cumsum"};
    int saved = nb_get_num_threads();
    int64_t n1, n;
    real *one = run_threaded(_i, 1, &n1);
    for (int threads = 2; threads <= 3; threads++) {
        real *many = run_threaded(_i, threads, &n);
        ck_assert_int_eq(n, n1);
        ck_assert_msg(memcmp(one, many, (size_t)n * sizeof(real)) == 0,
                      "%s: %d threads differ from 1", names[_i], threads);
        nb_free(many);
    }
    nb_free(one);
    nb_set_num_threads(saved);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("norm");
    TCase *t = tcase_create("norm");
    tcase_add_loop_test(t, gradcheck_norms, 0, (int)(sizeof norm_cases / sizeof norm_cases[0]));
    tcase_add_test(t, norm_errors);
    tcase_add_loop_test(t, layer_norm_matches_pytorch, 0, NORM_REF_COUNT(norm_ref_layers));
    tcase_add_loop_test(t, batch_norm_matches_pytorch, 0, NORM_REF_COUNT(norm_ref_batches));
    suite_add_tcase(s, t);
    TCase *st = tcase_create("statistics");
    tcase_add_loop_test(st, gradcheck_statistics, 0,
                        (int)(sizeof stat_cases / sizeof stat_cases[0]));
    tcase_add_loop_test(st, statistics_match_pytorch, 0, NORM_REF_COUNT(norm_ref_stats));
    tcase_add_test(st, statistics_edge_cases);
    tcase_add_test(st, argmax_ties_and_nan_match_pytorch);
    tcase_add_loop_test(st, same_bits_on_any_thread_count, 0, 3);
    suite_add_tcase(s, st);
    return s;
}

NB_CHECK_MAIN(suite)
