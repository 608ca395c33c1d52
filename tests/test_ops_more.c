/* tests/test_ops_more.c: the second set of element-wise ops (gelu, silu, elu, sin, cos, maximum,
 * minimum, where, the comparisons, dropout) and pow at 0: gradient checks with broadcast and
 * transposed inputs, forward and backward values against PyTorch 1.13 (tests/ops_ref.h, written
 * by tools/ref_ops.py), dropout's statistics and determinism, and the errors. Runs in float and
 * (make DOUBLE=1) double. */
#include "tests/check_main.h"
#include "tests/ops_ref.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdlib.h>

#include "tensor/fastmath.h"
#include "tensor/kernels.h"

/* ---- gradient checks: one table row per op case ---------------------------------------------- */

typedef struct {
    const char *name;
    ag_fn f;
    int n; /* inputs */
    int ndim[3];
    int64_t shape[3][4];
    double lo, hi; /* input values drawn from [lo, hi) */
    bool no_grad0; /* in[0] is a condition: no gradient */
    bool apart;    /* in[0] and in[1] on interleaved grids, so they never tie */
} op_case;

#define IN0 in[0]
#define IN1 in[1]
#define IN2 in[2]
#define T0  ag_transpose(in[0], 0, 1)

/* Each f takes the inputs; "T" variants read in[0] transposed (non-contiguous). */
static Tensor *f_gelu(Tensor *const *in, void *c) {
    (void)c;
    return ag_gelu(IN0);
}
static Tensor *f_geluT(Tensor *const *in, void *c) {
    (void)c;
    return ag_gelu(T0);
}
static Tensor *f_silu(Tensor *const *in, void *c) {
    (void)c;
    return ag_silu(IN0);
}
static Tensor *f_siluT(Tensor *const *in, void *c) {
    (void)c;
    return ag_silu(T0);
}
static Tensor *f_elu(Tensor *const *in, void *c) {
    (void)c;
    return ag_elu(IN0, 1);
}
static Tensor *f_elu_half(Tensor *const *in, void *c) {
    (void)c;
    return ag_elu(IN0, 0.5);
}
static Tensor *f_eluT(Tensor *const *in, void *c) {
    (void)c;
    return ag_elu(T0, 2);
}
static Tensor *f_sin(Tensor *const *in, void *c) {
    (void)c;
    return ag_sin(IN0);
}
static Tensor *f_sinT(Tensor *const *in, void *c) {
    (void)c;
    return ag_sin(T0);
}
static Tensor *f_cos(Tensor *const *in, void *c) {
    (void)c;
    return ag_cos(IN0);
}
static Tensor *f_cosT(Tensor *const *in, void *c) {
    (void)c;
    return ag_cos(T0);
}
static Tensor *f_maximum(Tensor *const *in, void *c) {
    (void)c;
    return ag_maximum(IN0, IN1);
}
static Tensor *f_maximumT(Tensor *const *in, void *c) {
    (void)c;
    return ag_maximum(T0, IN1);
}
static Tensor *f_minimum(Tensor *const *in, void *c) {
    (void)c;
    return ag_minimum(IN0, IN1);
}
static Tensor *f_minimumT(Tensor *const *in, void *c) {
    (void)c;
    return ag_minimum(IN1, T0);
}
static Tensor *f_where(Tensor *const *in, void *c) {
    (void)c;
    return ag_where(IN0, IN1, IN2);
}
static Tensor *f_whereT(Tensor *const *in, void *c) {
    (void)c;
    return ag_where(IN0, ag_transpose(IN1, 0, 1), IN2);
}
/* a gradient that reaches a through two paths, one of them masked by a comparison */
static Tensor *f_masked_by_gt(Tensor *const *in, void *c) {
    (void)c;
    return ag_add(ag_mul(IN0, ag_gt(IN0, IN1)), ag_mul(IN1, ag_le(IN1, IN0)));
}
static Tensor *f_pow0(Tensor *const *in, void *c) {
    (void)c;
    return ag_pow(IN0, 0);
}
static Tensor *f_pow1(Tensor *const *in, void *c) {
    (void)c;
    return ag_pow(IN0, 1);
}
static Tensor *f_powT(Tensor *const *in, void *c) {
    (void)c;
    return ag_pow(T0, 2.5);
}
/* The mask comes from a generator seeded with the same value on every call, so each of
 * gradcheck's evaluations sees the same mask. */
static Tensor *f_dropout(Tensor *const *in, void *c) {
    (void)c;
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    return ag_dropout(IN0, 0.4, true, &rng);
}
static Tensor *f_dropoutT(Tensor *const *in, void *c) {
    (void)c;
    nb_rng rng;
    nb_rng_seed(&rng, 12);
    return ag_dropout(T0, 0.25, true, &rng);
}

// clang-format off
static const op_case cases[] = {
    {"gelu", f_gelu, 1, {2}, {{3, 5}}, -3, 3, false, false},
    {"gelu transposed", f_geluT, 1, {2}, {{5, 3}}, -3, 3, false, false},
    {"silu", f_silu, 1, {3}, {{2, 3, 4}}, -4, 4, false, false},
    {"silu transposed", f_siluT, 1, {2}, {{5, 3}}, -4, 4, false, false},
    {"elu", f_elu, 1, {2}, {{3, 5}}, -3, 3, false, false},
    {"elu alpha 0.5", f_elu_half, 1, {2}, {{3, 5}}, -3, 3, false, false},
    {"elu alpha 2 transposed", f_eluT, 1, {2}, {{5, 3}}, -3, 3, false, false},
    {"sin", f_sin, 1, {2}, {{3, 5}}, -4, 4, false, false},
    {"sin transposed", f_sinT, 1, {2}, {{5, 3}}, -4, 4, false, false},
    {"cos", f_cos, 1, {2}, {{3, 5}}, -4, 4, false, false},
    {"cos transposed", f_cosT, 1, {2}, {{5, 3}}, -4, 4, false, false},
    {"maximum", f_maximum, 2, {2, 2}, {{3, 4}, {3, 4}}, -1, 1, false, true},
    {"maximum broadcast both", f_maximum, 2, {3, 2}, {{2, 1, 4}, {3, 1}}, -1, 1, false, true},
    {"maximum transposed", f_maximumT, 2, {2, 1}, {{4, 3}, {4}}, -1, 1, false, true},
    {"minimum", f_minimum, 2, {2, 2}, {{3, 4}, {3, 4}}, -1, 1, false, true},
    {"minimum broadcast both", f_minimum, 2, {2, 3}, {{3, 1}, {2, 1, 4}}, -1, 1, false, true},
    {"minimum transposed", f_minimumT, 2, {2, 2}, {{4, 3}, {1, 4}}, -1, 1, false, true},
    {"where", f_where, 3, {2, 2, 2}, {{3, 4}, {3, 4}, {3, 4}}, -1, 1, true, false},
    {"where broadcast three ways", f_where, 3, {2, 3, 1}, {{3, 1}, {2, 1, 4}, {4}}, -1, 1, true, false},
    {"where transposed", f_whereT, 3, {1, 2, 2}, {{4}, {4, 3}, {3, 1}}, -1, 1, true, false},
    {"masked by a comparison", f_masked_by_gt, 2, {2, 1}, {{3, 4}, {4}}, -1, 1, false, true},
    {"pow 0", f_pow0, 1, {2}, {{3, 4}}, -2, 2, false, false},
    {"pow 1", f_pow1, 1, {2}, {{3, 4}}, -2, 2, false, false},
    {"pow 2.5 transposed", f_powT, 1, {2}, {{4, 3}}, 0.5, 2, false, false},
    {"dropout", f_dropout, 1, {2}, {{6, 7}}, -1, 1, false, false},
    {"dropout transposed", f_dropoutT, 1, {2}, {{7, 6}}, -1, 1, false, false},
};
// clang-format on

START_TEST(gradcheck_every_op) {
    const op_case *c = &cases[_i];
    Tensor *in[3] = {NULL, NULL, NULL};
    for (int k = 0; k < c->n; k++)
        in[k] = nbt_tensor(c->ndim[k], c->shape[k], c->lo, c->hi, 300 + (uint64_t)k,
                           !(k == 0 && c->no_grad0));
    if (c->no_grad0) /* a condition with zeros, ones and other nonzero values */
        for (int64_t i = 0; i < in[0]->numel; i++) in[0]->data[i] = (real)((i % 3) - (i % 2));
    if (c->apart) /* in[0] on tenths + 0.05, in[1] on tenths: |a - b| >= 0.05, far above eps */
        for (int k = 0; k < 2; k++)
            for (int64_t i = 0; i < in[k]->numel; i++)
                in[k]->data[i] = (real)(floor(in[k]->data[i] * 10) / 10 + (k == 0 ? 0.05 : 0));
    ag_gradcheck_result r;
    bool ok = ag_gradcheck(c->f, in, c->n, NULL, NULL, &r);
    for (int k = 0; k < c->n; k++) tensor_free(in[k]);
    ag_reset();
    ck_assert_msg(ok, "%s: %s", c->name, r.message);
}
END_TEST

/* ---- PyTorch's values (tests/ops_ref.h) ------------------------------------------------------ */

#ifdef NB_DOUBLE
#define REF_TOL 1e-12
#else
#define REF_TOL 1e-5
#endif

static Tensor *ref_apply(const ops_ref_case *c, Tensor *const *in) {
    Tensor *x = c->transpose0 ? ag_transpose(in[0], 0, 1) : in[0];
    switch (c->op) {
    case OPS_REF_GELU:
        return ag_gelu(x);
    case OPS_REF_SILU:
        return ag_silu(x);
    case OPS_REF_ELU:
        return ag_elu(x, (real)c->p);
    case OPS_REF_SIN:
        return ag_sin(x);
    case OPS_REF_COS:
        return ag_cos(x);
    case OPS_REF_MAXIMUM:
        return ag_maximum(x, in[1]);
    case OPS_REF_MINIMUM:
        return ag_minimum(x, in[1]);
    case OPS_REF_WHERE:
        return ag_where(x, in[1], in[2]);
    case OPS_REF_GT:
        return ag_gt(x, in[1]);
    case OPS_REF_GE:
        return ag_ge(x, in[1]);
    case OPS_REF_LT:
        return ag_lt(x, in[1]);
    case OPS_REF_LE:
        return ag_le(x, in[1]);
    case OPS_REF_EQ:
        return ag_eq(x, in[1]);
    case OPS_REF_NE:
        return ag_ne(x, in[1]);
    case OPS_REF_POW:
        return ag_pow(x, (real)c->p);
    }
    ck_abort_msg("unknown op in %s", c->name);
    return NULL;
}

/* A kept tensor holding n doubles as real. */
static Tensor *from_doubles(int ndim, const int64_t *shape, const double *v) {
    Tensor *t = tensor_empty(ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (real)v[i];
    return t;
}

START_TEST(matches_pytorch) {
    const ops_ref_case *c = &ops_ref_cases[_i];
    Tensor *in[3] = {NULL, NULL, NULL};
    for (int k = 0; k < c->nin; k++) {
        in[k] = from_doubles(c->ndim[k], c->shape[k], c->in[k]);
        if (c->grad[k]) tensor_requires_grad(in[k], true);
    }
    Tensor *y = ref_apply(c, in);
    nbt_assert_ref(c->name, "out", y, c->out, REF_TOL);
    if (c->w) {
        Tensor *w = from_doubles(y->ndim, y->shape, c->w);
        ag_backward_with(y, w);
        tensor_free(w);
    } else {
        ck_assert_msg(!y->requires_grad, "%s: a comparison requires grad", c->name);
    }
    for (int k = 0; k < c->nin; k++) {
        if (c->grad[k]) {
            ck_assert_msg(in[k]->grad != NULL, "%s: input %d got no gradient", c->name, k);
            const char *part = k == 0 ? "grad0" : k == 1 ? "grad1" : "grad2";
            nbt_assert_ref(c->name, part, in[k]->grad, c->grad[k], REF_TOL);
        } else {
            ck_assert_msg(in[k]->grad == NULL, "%s: input %d got a gradient", c->name, k);
        }
        tensor_free(in[k]);
    }
    ag_reset();
}
END_TEST

/* ---- pow at 0 ------------------------------------------------------------------------------- */

/* x^0 is 1 everywhere, so its gradient is 0, also at x == 0 where p x^(p-1) is 0 * inf = NaN:
 * a NaN there would reach every leaf upstream (here x, through h = 2x). */
START_TEST(pow_zero_gives_no_nan_upstream) {
    Tensor *x = tensor_from_array(NB_SHAPE(4), (real[]){0, 1, -2, 0.5});
    tensor_requires_grad(x, true);
    Tensor *h = ag_mul_scalar(x, 2);
    ag_backward(ag_add(ag_sum(ag_pow(h, 0)), ag_sum(h))); /* d/dx = 0 + 2 */
    for (int i = 0; i < 4; i++)
        ck_assert_msg(x->grad->data[i] == 2, "x.grad[%d] = %g", i, (double)x->grad->data[i]);
    tensor_free(x);
    ag_reset();
}
END_TEST

/* A cube is x * x * x, as PyTorch computes it (not pow, which rounds once and differs in the last
 * bit for some x), and its gradient 3 x^2 (dy = 1). */
START_TEST(pow_3_is_the_product) {
    enum { N = 1000 };
    Tensor *x = tensor_empty(NB_SHAPE(N));
    for (int i = 0; i < N; i++) x->data[i] = (real)(1 + 0.001 * i);
    tensor_requires_grad(x, true);
    Tensor *y = ag_pow(x, 3);
    ag_backward(ag_sum(y));
    int differs = 0; /* how many x have pow(x, 3) != x * x * x: the test means something */
    for (int i = 0; i < N; i++) {
        real v = x->data[i], cube = v * v * v;
        differs += NB_REAL_FN(pow)(v, 3) != cube;
        ck_assert_msg(y->data[i] == cube, "pow(%.9g, 3) = %.9g, x * x * x = %.9g", (double)v,
                      (double)y->data[i], (double)cube);
        ck_assert_msg(x->grad->data[i] == 3 * v * v, "d/dx at %.9g: %.9g", (double)v,
                      (double)x->grad->data[i]);
    }
    ck_assert_int_gt(differs, 0);
    tensor_free(x);
    ag_reset();
}
END_TEST

/* ---- the vectorizable helpers behind gelu and elu (tensor/fastmath.h) ----------------------- */

#ifdef NB_DOUBLE
#define HELPER_TOL 1e-13 /* erfc at -12 moves 2 z^2 ulp per ulp of its argument */
#else
#define HELPER_TOL 1e-6
#endif

START_TEST(normal_cdf_is_accurate_in_both_tails) {
    double worst = 0, at = 0;
    for (int i = -120000; i <= 120000; i++) { /* x in [-12, 12] by 1e-4 */
        real x = (real)(i * 1e-4);
        double want = 0.5 * erfc(-(double)x / sqrt(2.0));
        double err = fabs((double)nb_normal_cdf(x) - want) / want;
        if (err > worst) worst = err, at = x;
    }
    ck_assert_msg(worst < HELPER_TOL, "largest relative error %.3g at x = %.6g", worst, at);
    ck_assert(nb_normal_cdf(-INFINITY) == 0 && nb_normal_cdf(INFINITY) == 1);
    ck_assert(nb_normal_cdf(-40) == 0 && nb_normal_cdf(40) == 1);
    ck_assert(isnan(nb_normal_cdf(NAN)));
}
END_TEST

#ifndef NB_DOUBLE
/* nb_square_error is fmaf(u, u, -u * u) to the bit, over the tail's u in [1, 15]; and gelu through
 * k_unary (the loop it lets vectorize) is x * nb_normal_cdf(x) in both tails. */
START_TEST(normal_cdf_square_error_is_exact) {
    for (float u = 1; u <= 15; u = nextafterf(u, 16) + u * 1e-5f) {
        float u2 = u * u;
        ck_assert_msg(nb_square_error(u, u2) == fmaf(u, u, -u2), "u = %.9g: %g, fmaf %g", (double)u,
                      (double)nb_square_error(u, u2), (double)fmaf(u, u, -u2));
    }
    Tensor *x = tensor_empty(NB_SHAPE(2401)), *y = tensor_empty(NB_SHAPE(2401));
    for (int i = 0; i < 2401; i++) x->data[i] = (real)((i - 1200) * 0.01);
    k_unary(K_GELU, x, y, 0, 0, false);
    for (int i = 0; i < 2401; i++) {
        double want = (double)x->data[i] * 0.5 * erfc(-(double)x->data[i] / sqrt(2.0));
        ck_assert_msg(fabs((double)y->data[i] - want) <= 1e-6 * fabs(want) + 1e-37,
                      "gelu(%g) = %.9g, want %.9g", (double)x->data[i], (double)y->data[i], want);
    }
    tensor_free(x), tensor_free(y);
}
END_TEST
#endif

START_TEST(expm1_keeps_small_arguments_digits) {
    double worst = 0, at = 0;
    for (int i = -200000; i <= 200000; i++) { /* x in [-20, 20] by 1e-4, and tiny x */
        real x = (real)(i * 1e-4);
        if (i == 0) x = (real)1e-7;
        double want = expm1((double)x);
        double err = fabs((double)nb_expm1(x) - want) / fabs(want);
        if (err > worst) worst = err, at = x;
    }
    ck_assert_msg(worst < HELPER_TOL / 4, "largest relative error %.3g at x = %.6g", worst, at);
    ck_assert(nb_expm1(-INFINITY) == -1 && nb_expm1(INFINITY) == INFINITY);
    ck_assert(nb_expm1(0) == 0 && isnan(nb_expm1(NAN)));
}
END_TEST

START_TEST(tanh_is_accurate_near_0_and_saturates) {
    double worst = 0, at = 0;
    for (int i = -200000; i <= 200000; i++) { /* x in [-20, 20] by 1e-4, and tiny x */
        real x = (real)(i * 1e-4);
        if (i == 0) x = (real)-1e-7;
        double want = tanh((double)x);
        double err = fabs((double)nb_tanh(x) - want) / fabs(want);
        if (err > worst) worst = err, at = x;
    }
    ck_assert_msg(worst < HELPER_TOL, "largest relative error %.3g at x = %.6g", worst, at);
    ck_assert(nb_tanh(-INFINITY) == -1 && nb_tanh(INFINITY) == 1 && nb_tanh(30) == 1);
    ck_assert(nb_tanh(0) == 0 && !signbit(nb_tanh(0)) && signbit(nb_tanh(-(real)0)));
    ck_assert(isnan(nb_tanh(NAN)));
}
END_TEST

/* Distance from want in units in the last place of the float nearest want. */
static double float_ulps(real got, double want) {
    float w = (float)want;
    double ulp = fabs((double)nextafterf(w, INFINITY) - (double)w);
    return fabs((double)got - want) / (ulp > 0 ? ulp : 1e-45);
}

/* The worst ulp error of K_SIN and K_COS (the loops the kernels run) over xs[0..n). */
static void trig_worst(const real *xs, int n, double *worst_sin, double *worst_cos) {
    Tensor *x = tensor_from_array(NB_SHAPE(n), xs), *y = tensor_empty(NB_SHAPE(n));
    k_unary(K_SIN, x, y, 0, 0, false);
    for (int i = 0; i < n; i++)
        *worst_sin = fmax(*worst_sin, float_ulps(y->data[i], sin((double)xs[i])));
    k_unary(K_COS, x, y, 0, 0, false);
    for (int i = 0; i < n; i++)
        *worst_cos = fmax(*worst_cos, float_ulps(y->data[i], cos((double)xs[i])));
    tensor_free(x), tensor_free(y);
}

/* Dense on [-8, 8], then geometric out to NB_TRIG_FAST_MAX's 2^22 and beyond (libm's rows), and
 * the floats nearest k pi/2 with their neighbours, where the reduction cancels most. */
START_TEST(sin_and_cos_are_within_2_ulp) {
    enum { N = 400000 };
    real *xs = malloc(sizeof(real) * N);
    double ws = 0, wc = 0;
    for (int i = 0; i < N; i++) xs[i] = (real)((i - N / 2) * 4e-5);
    trig_worst(xs, N, &ws, &wc);
    for (int i = 0; i < N; i++) {
        double m = exp(log(8.0) + (log(4194304.0) - log(8.0)) * i / (N - 1)); /* 8 .. 2^22 */
        xs[i] = (real)(i % 2 ? -m : m);
    }
    trig_worst(xs, N, &ws, &wc);
    int n = 0;
    for (double k = 1; k * 1.5707963267948966 < 4194304.0 && n + 3 <= N; k = k * 1.01 + 1) {
        float c = (float)(floor(k) * 1.5707963267948966);
        xs[n++] = (real)nextafterf(c, 0), xs[n++] = (real)c, xs[n++] = (real)nextafterf(c, 1e30f);
    }
    trig_worst(xs, n, &ws, &wc);
    ck_assert_msg(ws <= 2 && wc <= 2, "sin is %.2f ulp off, cos %.2f", ws, wc);
    /* a row with one large argument goes to libm, the backward rows too */
    const real big[] = {(real)0.5, (real)5e6, (real)-3e9, (real)1e30, (real)3.4e38, (real)-7};
    Tensor *x = tensor_from_array(NB_SHAPE(6), big), *y = tensor_empty(NB_SHAPE(6));
    Tensor *g = tensor_full(NB_SHAPE(6), 2);
    ws = wc = 0;
    trig_worst(big, 6, &ws, &wc);
    ck_assert_msg(ws <= 1 && wc <= 1, "large arguments: sin %.2f ulp off, cos %.2f", ws, wc);
    k_binary(K_SIN_BWD, g, x, y, 0, 0, false);
    for (int i = 0; i < 6; i++) ck_assert(float_ulps(y->data[i], 2 * cos((double)big[i])) <= 1);
    k_binary(K_COS_BWD, g, x, y, 0, 0, false);
    for (int i = 0; i < 6; i++) ck_assert(float_ulps(y->data[i], -2 * sin((double)big[i])) <= 1);
    ck_assert(isnan(nb_sin(INFINITY)) && isnan(nb_cos(-INFINITY)) && isnan(nb_sin(NAN)));
    ck_assert(isnan(nb_cos(NAN)) && nb_cos(0) == 1);
    ck_assert(nb_sin(0) == 0 && !signbit(nb_sin(0)) && signbit(nb_sin(-(real)0)));
    const real special[] = {INFINITY, -INFINITY, NAN, -(real)0};
    Tensor *sx = tensor_from_array(NB_SHAPE(4), special), *sy = tensor_empty(NB_SHAPE(4));
    k_unary(K_SIN, sx, sy, 0, 0, false);
    ck_assert(isnan(sy->data[0]) && isnan(sy->data[1]) && isnan(sy->data[2]));
    ck_assert(sy->data[3] == 0 && signbit(sy->data[3]));
    tensor_free(x), tensor_free(y), tensor_free(g), tensor_free(sx), tensor_free(sy);
    free(xs);
}
END_TEST

/* ---- comparisons ---------------------------------------------------------------------------- */

START_TEST(comparisons_are_constants) {
    Tensor *a = tensor_from_array(NB_SHAPE(2, 3), (real[]){1, 2, 3, 4, 5, 6});
    Tensor *b = tensor_from_array(NB_SHAPE(3), (real[]){2, 2, 7});
    tensor_requires_grad(a, true);
    tensor_requires_grad(b, true);
    Tensor *(*const ops[6])(Tensor *, Tensor *) = {ag_gt, ag_ge, ag_lt, ag_le, ag_eq, ag_ne};
    const real expect[6][6] = {{0, 0, 0, 1, 1, 0}, {0, 1, 0, 1, 1, 0}, {1, 0, 1, 0, 0, 1},
                               {1, 1, 1, 0, 0, 1}, {0, 1, 0, 0, 0, 0}, {1, 0, 1, 1, 1, 1}};
    int64_t before = ag_tape_length();
    for (int k = 0; k < 6; k++) {
        Tensor *m = ops[k](a, b);
        ck_assert_int_eq(m->ndim, 2);
        ck_assert(!m->requires_grad);
        ck_assert(m->op == NULL && m->nparents == 0); /* a constant, as a leaf */
        nbt_assert_close(m, expect[k], 0);
        NBT_EXPECT_FAIL(ag_backward(ag_sum(m)), "does not require grad");
    }
    ck_assert_int_eq(ag_tape_length(), before); /* none recorded, even with grad inputs */
    /* used as a mask, a comparison passes no gradient itself: d sum(a * (a > b)) / da = mask */
    ag_backward(ag_sum(ag_mul(a, ag_gt(a, b))));
    nbt_assert_close(a->grad, expect[0], 0);
    ck_assert(b->grad == NULL);
    tensor_free(a);
    tensor_free(b);
    ag_reset();
}
END_TEST

/* ---- where ---------------------------------------------------------------------------------- */

START_TEST(where_gives_no_gradient_to_cond) {
    Tensor *cond = tensor_from_array(NB_SHAPE(2, 1), (real[]){0, -3});
    Tensor *a = tensor_from_array(NB_SHAPE(3), (real[]){1, 2, 3});
    Tensor *b = tensor_scalar(10);
    tensor_requires_grad(cond, true);
    int64_t before = ag_tape_length();
    Tensor *c = ag_where(cond, a, b); /* only cond requires grad: nothing to record */
    ck_assert(!c->requires_grad);
    ck_assert_int_eq(ag_tape_length(), before);
    nbt_assert_close(c, (real[]){10, 10, 10, 1, 2, 3}, 0);
    tensor_requires_grad(a, true);
    tensor_requires_grad(b, true);
    ag_backward(ag_sum(ag_where(cond, a, b)));
    ck_assert(cond->grad == NULL);
    nbt_assert_close(a->grad, (real[]){1, 1, 1}, 0);
    nbt_assert_close(b->grad, (real[]){3}, 0);
    tensor_free(cond);
    tensor_free(a);
    tensor_free(b);
    ag_reset();
}
END_TEST

/* ---- dropout -------------------------------------------------------------------------------- */

START_TEST(dropout_drops_a_fraction_p_and_scales_the_rest) {
    const real ps[3] = {0.1, 0.3, 0.75};
    for (int k = 0; k < 3; k++) {
        real p = ps[k], scale = 1 / (1 - p);
        nb_rng rng;
        nb_rng_seed(&rng, 5 + (uint64_t)k);
        Tensor *x = tensor_ones(NB_SHAPE(200, 150));
        Tensor *y = ag_dropout(x, p, true, &rng);
        int64_t zeros = 0;
        for (int64_t i = 0; i < y->numel; i++) {
            real v = y->data[i];
            ck_assert_msg(v == 0 || v == scale, "p %g: element %lld is %g", (double)p, (long long)i,
                          (double)v);
            zeros += v == 0;
        }
        /* 30,000 draws: the fraction's standard deviation is at most 0.003 */
        double frac = (double)zeros / (double)y->numel;
        ck_assert_msg(fabs(frac - p) < 0.015, "p %g: dropped %g", (double)p, frac);
        tensor_free(x);
        ag_reset();
    }
}
END_TEST

START_TEST(dropout_gradient_is_the_mask_times_the_scale) {
    nb_rng rng;
    nb_rng_seed(&rng, 21);
    Tensor *x = nbt_param(NB_SHAPE(7, 9), 0.5, 2, 4); /* nonzero, so y / x recovers the mask */
    Tensor *g = nbt_tensor(NB_SHAPE(9, 7), -1, 1, 6, false);
    Tensor *y = ag_dropout(ag_transpose(x, 0, 1), 0.5, true, &rng); /* non-contiguous input */
    ag_backward_with(y, g);
    for (int64_t i = 0; i < 9; i++)
        for (int64_t j = 0; j < 7; j++) {
            real xv = x->data[j * 9 + i], yv = y->data[i * 7 + j];
            real m = yv / xv; /* 0 or 2 */
            ck_assert(m == 0 || fabs((double)m - 2) < 1e-6);
            ck_assert(fabs((double)(x->grad->data[j * 9 + i] - g->data[i * 7 + j] * m)) < 1e-6);
        }
    tensor_free(x);
    tensor_free(g);
    ag_reset();
}
END_TEST

START_TEST(dropout_same_seed_same_mask) {
    Tensor *x = nbt_tensor(NB_SHAPE(50, 40), -1, 1, 8, false);
    real *first = nb_malloc(2000 * sizeof(real));
    nb_rng r1, r2, r3;
    nb_rng_seed(&r1, 99);
    nb_rng_seed(&r2, 99);
    nb_rng_seed(&r3, 100);
    Tensor *y1 = ag_dropout(x, 0.5, true, &r1), *y2 = ag_dropout(x, 0.5, true, &r2);
    Tensor *y3 = ag_dropout(x, 0.5, true, &r3);
    ck_assert(memcmp(y1->data, y2->data, 2000 * sizeof(real)) == 0);
    ck_assert(memcmp(y1->data, y3->data, 2000 * sizeof(real)) != 0);
    /* rng NULL: the global generator, which nb_manual_seed resets */
    nb_manual_seed(3);
    memcpy(first, ag_dropout(x, 0.2, true, NULL)->data, 2000 * sizeof(real));
    nb_manual_seed(3);
    ck_assert(memcmp(first, ag_dropout(x, 0.2, true, NULL)->data, 2000 * sizeof(real)) == 0);
    /* one uniform draw per element, element i dropped when draw i < p */
    nb_rng_seed(&r1, 99);
    for (int64_t i = 0; i < 2000; i++) {
        bool dropped = nb_rng_uniform(&r1) < (double)(real)0.5;
        ck_assert(dropped ? y2->data[i] == 0 : y2->data[i] == x->data[i] * 2);
    }
    nb_free(first);
    tensor_free(x);
    ag_reset();
}
END_TEST

START_TEST(dropout_eval_p0_and_p1) {
    Tensor *x = nbt_param(NB_SHAPE(3, 4), -1, 1, 9);
    nb_rng rng, fresh;
    nb_rng_seed(&rng, 1);
    nb_rng_seed(&fresh, 1);
    int64_t before = ag_tape_length();
    ck_assert(ag_dropout(x, 0.5, false, &rng) == x); /* evaluation: x itself */
    ck_assert(ag_dropout(x, 0, true, &rng) == x);    /* nothing to drop */
    ck_assert_int_eq(ag_tape_length(), before);
    Tensor *y = ag_dropout(x, 1, true, &rng); /* everything dropped */
    real zeros[12] = {0};
    nbt_assert_close(y, zeros, 0);
    ck_assert(memcmp(rng.s, fresh.s, sizeof rng.s) == 0); /* none of these drew from rng */
    ag_backward(ag_sum(y));
    nbt_assert_close(x->grad, zeros, 0);
    tensor_free(x);
    ag_reset();
}
END_TEST

/* ---- errors --------------------------------------------------------------------------------- */

START_TEST(errors_name_the_op_and_shapes) {
    Tensor *a = tensor_zeros(NB_SHAPE(2, 3));
    Tensor *b = tensor_zeros(NB_SHAPE(4));
    Tensor *c = tensor_zeros(NB_SHAPE(2, 1));
    NBT_EXPECT_FAIL(ag_maximum(a, b), "maximum", "[2, 3]", "[4]");
    NBT_EXPECT_FAIL(ag_minimum(b, a), "minimum", "[4]", "[2, 3]");
    NBT_EXPECT_FAIL(ag_gt(a, b), "gt", "[2, 3]", "[4]");
    NBT_EXPECT_FAIL(ag_ne(a, b), "ne", "[2, 3]", "[4]");
    NBT_EXPECT_FAIL(ag_where(c, a, b), "where", "[2, 3]", "[4]");
    NBT_EXPECT_FAIL(ag_where(b, a, c), "where", "[4]", "[2, 3]");
    NBT_EXPECT_FAIL(ag_dropout(a, 1.5, true, NULL), "dropout", "1.5", "[0, 1]");
    NBT_EXPECT_FAIL(ag_dropout(a, -0.1, false, NULL), "dropout", "-0.1");
    NBT_EXPECT_FAIL(ag_dropout(a, NAN, true, NULL), "dropout", "nan");
    NBT_EXPECT_FAIL(ag_maximum(a, b), "test_ops_more.c"); /* the caller's line */
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
    ag_reset();
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("ops_more");
    TCase *g = tcase_create("gradcheck");
    tcase_set_timeout(g, 120);
    tcase_add_loop_test(g, gradcheck_every_op, 0, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, g);
    TCase *r = tcase_create("pytorch");
    tcase_set_timeout(r, 120);
    tcase_add_loop_test(r, matches_pytorch, 0, OPS_REF_NCASES);
    tcase_add_test(r, pow_zero_gives_no_nan_upstream);
    tcase_add_test(r, pow_3_is_the_product);
    tcase_add_test(r, normal_cdf_is_accurate_in_both_tails);
#ifndef NB_DOUBLE
    tcase_add_test(r, normal_cdf_square_error_is_exact);
#endif
    tcase_add_test(r, expm1_keeps_small_arguments_digits);
    tcase_add_test(r, sin_and_cos_are_within_2_ulp);
    tcase_add_test(r, tanh_is_accurate_near_0_and_saturates);
    suite_add_tcase(s, r);
    TCase *t = tcase_create("semantics");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, comparisons_are_constants);
    tcase_add_test(t, where_gives_no_gradient_to_cond);
    tcase_add_test(t, dropout_drops_a_fraction_p_and_scales_the_rest);
    tcase_add_test(t, dropout_gradient_is_the_mask_times_the_scale);
    tcase_add_test(t, dropout_same_seed_same_mask);
    tcase_add_test(t, dropout_eval_p0_and_p1);
    tcase_add_test(t, errors_name_the_op_and_shapes);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
