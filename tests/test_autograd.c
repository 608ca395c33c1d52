/* tests/test_autograd.c: a gradient check for every differentiable op (with broadcast and
 * non-contiguous inputs), and the graph's semantics: accumulation, reuse, no_grad, detach,
 * deep chains, errors. Runs in float and (make DOUBLE=1) double. */
#include "tests/check_main.h"
#include "tests/testutil.h"

#include <math.h>

/* ---- one table row per op case --------------------------------------------------------------- */

typedef struct {
    const char *name;
    ag_fn f;
    int n; /* inputs */
    int ndim[3];
    int64_t shape[3][4];
    double lo, hi; /* input values drawn from [lo, hi) */
} op_case;

#define IN0 in[0]
#define IN1 in[1]
#define IN2 in[2]
/* Each f takes the inputs; "T" variants read a transposed (non-contiguous) view. */
static Tensor *f_add(Tensor *const *in, void *c) {
    (void)c;
    return ag_add(IN0, IN1);
}
static Tensor *f_sub(Tensor *const *in, void *c) {
    (void)c;
    return ag_sub(IN0, IN1);
}
static Tensor *f_mul(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(IN0, IN1);
}
static Tensor *f_div(Tensor *const *in, void *c) {
    (void)c;
    return ag_div(IN0, IN1);
}
static Tensor *f_addT(Tensor *const *in, void *c) {
    (void)c;
    return ag_add(ag_transpose(IN0, 0, 1), IN1);
}
static Tensor *f_mulT(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_transpose(IN0, 0, 1), IN1);
}
static Tensor *f_divT(Tensor *const *in, void *c) {
    (void)c;
    return ag_div(IN1, ag_transpose(IN0, 0, 1));
}
static Tensor *f_neg(Tensor *const *in, void *c) {
    (void)c;
    return ag_neg(IN0);
}
static Tensor *f_add_scalar(Tensor *const *in, void *c) {
    (void)c;
    return ag_add_scalar(IN0, 2.5);
}
static Tensor *f_mul_scalar(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul_scalar(IN0, -1.5);
}
static Tensor *f_exp(Tensor *const *in, void *c) {
    (void)c;
    return ag_exp(IN0);
}
static Tensor *f_expT(Tensor *const *in, void *c) {
    (void)c;
    return ag_exp(ag_transpose(IN0, 0, 1));
}
static Tensor *f_log(Tensor *const *in, void *c) {
    (void)c;
    return ag_log(IN0);
}
static Tensor *f_pow3(Tensor *const *in, void *c) {
    (void)c;
    return ag_pow(IN0, 3);
}
static Tensor *f_pow_half(Tensor *const *in, void *c) {
    (void)c;
    return ag_pow(IN0, 0.5);
}
static Tensor *f_sqrt(Tensor *const *in, void *c) {
    (void)c;
    return ag_sqrt(IN0);
}
static Tensor *f_abs(Tensor *const *in, void *c) {
    (void)c;
    return ag_abs(IN0);
}
static Tensor *f_clamp(Tensor *const *in, void *c) {
    (void)c;
    return ag_clamp(IN0, -0.5, 0.5);
}
static Tensor *f_relu(Tensor *const *in, void *c) {
    (void)c;
    return ag_relu(IN0);
}
static Tensor *f_reluT(Tensor *const *in, void *c) {
    (void)c;
    return ag_relu(ag_transpose(IN0, 0, 1));
}
static Tensor *f_sigmoid(Tensor *const *in, void *c) {
    (void)c;
    return ag_sigmoid(IN0);
}
static Tensor *f_tanh(Tensor *const *in, void *c) {
    (void)c;
    return ag_tanh(IN0);
}
static Tensor *f_softplus(Tensor *const *in, void *c) {
    (void)c;
    return ag_softplus(IN0);
}
static Tensor *f_sum(Tensor *const *in, void *c) {
    (void)c;
    return ag_sum(IN0);
}
static Tensor *f_sumT(Tensor *const *in, void *c) {
    (void)c;
    return ag_sum(ag_transpose(IN0, 0, 2));
}
static Tensor *f_mean(Tensor *const *in, void *c) {
    (void)c;
    return ag_mean(IN0);
}
static Tensor *f_sum_dim1(Tensor *const *in, void *c) {
    (void)c;
    return ag_sum_dims(IN0, (int[]){1}, 1, false);
}
static Tensor *f_sum_dims_keep(Tensor *const *in, void *c) {
    (void)c;
    return ag_sum_dims(IN0, (int[]){0, -1}, 2, true);
}
static Tensor *f_mean_dim0(Tensor *const *in, void *c) {
    (void)c;
    return ag_mean_dims(IN0, (int[]){0}, 1, false);
}
static Tensor *f_max1(Tensor *const *in, void *c) {
    (void)c;
    return ag_max(IN0, 1, false);
}
static Tensor *f_max0k(Tensor *const *in, void *c) {
    (void)c;
    return ag_max(IN0, 0, true);
}
static Tensor *f_lse(Tensor *const *in, void *c) {
    (void)c;
    return ag_logsumexp(IN0, -1, false);
}
static Tensor *f_lse0(Tensor *const *in, void *c) {
    (void)c;
    return ag_logsumexp(IN0, 0, true);
}
static Tensor *f_softmax(Tensor *const *in, void *c) {
    (void)c;
    return ag_softmax(IN0, -1);
}
static Tensor *f_log_softmax(Tensor *const *in, void *c) {
    (void)c;
    return ag_log_softmax(IN0, 1);
}
static Tensor *f_log_softmax_last(Tensor *const *in, void *c) {
    (void)c;
    return ag_log_softmax(IN0, -1);
}
static Tensor *f_matmul(Tensor *const *in, void *c) {
    (void)c;
    return ag_matmul(IN0, IN1);
}
static Tensor *f_matmul_bt(Tensor *const *in, void *c) {
    (void)c;
    return ag_matmul(IN0, ag_transpose(IN1, 0, 1));
}
static Tensor *f_matmul_at(Tensor *const *in, void *c) {
    (void)c;
    return ag_matmul(ag_transpose(IN0, 0, 1), IN1);
}
static Tensor *f_matmul_batched(Tensor *const *in, void *c) {
    (void)c;
    return ag_matmul(IN0, IN1);
}
static Tensor *f_linear(Tensor *const *in, void *c) {
    (void)c;
    return ag_linear(IN0, IN1, IN2);
}
static Tensor *f_linear_nobias(Tensor *const *in, void *c) {
    (void)c;
    return ag_linear(IN0, IN1, NULL);
}
static Tensor *f_linearT(Tensor *const *in, void *c) {
    (void)c;
    return ag_linear(ag_transpose(IN0, 0, 1), IN1, IN2);
}
static Tensor *f_expand_lead(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_expand(IN0, NB_SHAPE(1, 3)), IN1);
}
static Tensor *f_reshape(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_reshape(IN0, NB_SHAPE(3, -1)), IN1);
}
static Tensor *f_reshapeT(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_reshape(ag_transpose(IN0, 0, 1), NB_SHAPE(2, 6)), IN1);
}
static Tensor *f_permute(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_permute(IN0, (int[]){2, 0, 1}), IN1);
}
static Tensor *f_narrow(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_narrow(IN0, 1, 1, 2), IN1);
}
static Tensor *f_expand(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_expand(IN0, NB_SHAPE(2, 3, 4)), IN1);
}
static Tensor *f_squeeze(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_unsqueeze(ag_squeeze(IN0, 1), 0), IN1);
}
static Tensor *f_contiguous(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_contiguous(ag_transpose(IN0, 0, 1)), IN1);
}
static Tensor *f_concat(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_concat((Tensor *[]){IN0, IN1}, 2, 1), IN2);
}
static Tensor *f_split(Tensor *const *in, void *c) {
    (void)c;
    Tensor *p[3];
    ag_split(IN0, (int64_t[]){1, 3, 2}, 3, 1, p);
    return ag_add(ag_mul(p[0], p[2]), ag_sum_dims(p[1], (int[]){1}, 1, true));
}
static Tensor *f_chunk(Tensor *const *in, void *c) {
    (void)c;
    Tensor *p[2];
    ag_chunk(IN0, 2, 0, p);
    return ag_div(p[0], ag_add_scalar(ag_exp(p[1]), 1));
}

static const op_case cases[] = {
    {"add", f_add, 2, {2, 2}, {{3, 4}, {3, 4}}, -1, 1},
    {"add broadcast row", f_add, 2, {2, 1}, {{3, 4}, {4}}, -1, 1},
    {"add broadcast both", f_add, 2, {3, 2}, {{2, 1, 4}, {3, 1}}, -1, 1},
    {"add broadcast to one row", f_add, 2, {2, 1}, {{1, 4}, {4}}, -1, 1},
    {"expand adds a leading 1", f_expand_lead, 2, {1, 2}, {{3}, {1, 3}}, -1, 1},
    {"add transposed", f_addT, 2, {2, 2}, {{4, 3}, {3, 4}}, -1, 1},
    {"sub broadcast col", f_sub, 2, {2, 2}, {{3, 4}, {3, 1}}, -1, 1},
    {"mul", f_mul, 2, {2, 2}, {{3, 4}, {3, 4}}, -1, 1},
    {"mul broadcast scalar", f_mul, 2, {2, 0}, {{3, 4}, {0}}, -1, 1},
    {"mul transposed", f_mulT, 2, {2, 2}, {{4, 3}, {3, 4}}, -1, 1},
    {"div", f_div, 2, {2, 2}, {{3, 4}, {3, 4}}, 0.5, 2},
    {"div broadcast", f_div, 2, {2, 1}, {{3, 4}, {4}}, 0.5, 2},
    {"div transposed", f_divT, 2, {2, 2}, {{4, 3}, {3, 4}}, 0.5, 2},
    {"neg", f_neg, 1, {2}, {{3, 4}}, -1, 1},
    {"add_scalar", f_add_scalar, 1, {2}, {{3, 4}}, -1, 1},
    {"mul_scalar", f_mul_scalar, 1, {2}, {{3, 4}}, -1, 1},
    {"exp", f_exp, 1, {2}, {{3, 4}}, -2, 2},
    {"exp transposed", f_expT, 1, {2}, {{4, 3}}, -2, 2},
    {"log", f_log, 1, {2}, {{3, 4}}, 0.5, 3},
    {"pow 3", f_pow3, 1, {2}, {{3, 4}}, -1.5, 1.5},
    {"pow 0.5", f_pow_half, 1, {2}, {{3, 4}}, 0.5, 3},
    {"sqrt", f_sqrt, 1, {2}, {{3, 4}}, 0.5, 3},
    {"abs", f_abs, 1, {2}, {{3, 4}}, 0.1, 1}, /* kept off the kink: one sign per half below */
    {"clamp", f_clamp, 1, {2}, {{3, 4}}, -0.45, 0.45},
    {"relu", f_relu, 1, {2}, {{3, 4}}, 0.05, 1},
    {"relu transposed", f_reluT, 1, {2}, {{4, 3}}, 0.05, 1},
    {"sigmoid", f_sigmoid, 1, {2}, {{3, 4}}, -3, 3},
    {"tanh", f_tanh, 1, {2}, {{3, 4}}, -2, 2},
    {"softplus", f_softplus, 1, {2}, {{3, 4}}, -3, 3},
    {"sum", f_sum, 1, {3}, {{2, 3, 4}}, -1, 1},
    {"sum transposed", f_sumT, 1, {3}, {{2, 3, 4}}, -1, 1},
    {"mean", f_mean, 1, {3}, {{2, 3, 4}}, -1, 1},
    {"sum dim 1", f_sum_dim1, 1, {3}, {{2, 3, 4}}, -1, 1},
    {"sum dims keepdim", f_sum_dims_keep, 1, {3}, {{2, 3, 4}}, -1, 1},
    {"mean dim 0", f_mean_dim0, 1, {2}, {{3, 4}}, -1, 1},
    {"max dim 1", f_max1, 1, {2}, {{3, 5}}, -1, 1},
    {"max dim 0 keepdim", f_max0k, 1, {3}, {{4, 2, 3}}, -1, 1},
    {"logsumexp", f_lse, 1, {2}, {{3, 5}}, -2, 2},
    {"logsumexp dim 0", f_lse0, 1, {3}, {{4, 2, 3}}, -2, 2},
    {"softmax", f_softmax, 1, {2}, {{3, 5}}, -2, 2},
    {"log_softmax", f_log_softmax, 1, {3}, {{2, 4, 3}}, -2, 2},
    {"log_softmax last dim", f_log_softmax_last, 1, {2}, {{3, 5}}, -2, 2},
    {"matmul", f_matmul, 2, {2, 2}, {{3, 5}, {5, 4}}, -1, 1},
    {"matmul B transposed", f_matmul_bt, 2, {2, 2}, {{3, 5}, {4, 5}}, -1, 1},
    {"matmul A transposed", f_matmul_at, 2, {2, 2}, {{5, 3}, {5, 4}}, -1, 1},
    {"matmul batched", f_matmul_batched, 2, {3, 3}, {{2, 3, 4}, {2, 4, 2}}, -1, 1},
    {"matmul batch broadcast", f_matmul_batched, 2, {4, 2}, {{2, 1, 3, 4}, {4, 2}}, -1, 1},
    {"matmul batch broadcast both", f_matmul_batched, 2, {3, 4}, {{3, 2, 4}, {2, 1, 4, 3}}, -1, 1},
    {"linear", f_linear, 3, {2, 2, 1}, {{4, 5}, {3, 5}, {3}}, -1, 1},
    {"linear without bias", f_linear_nobias, 2, {2, 2}, {{4, 5}, {3, 5}}, -1, 1},
    {"linear transposed input", f_linearT, 3, {2, 2, 1}, {{5, 4}, {3, 5}, {3}}, -1, 1},
    {"reshape", f_reshape, 2, {2, 2}, {{2, 6}, {3, 4}}, -1, 1},
    {"reshape of transposed (copy)", f_reshapeT, 2, {2, 2}, {{3, 4}, {2, 6}}, -1, 1},
    {"permute", f_permute, 2, {3, 3}, {{2, 3, 4}, {4, 2, 3}}, -1, 1},
    {"narrow", f_narrow, 2, {2, 2}, {{3, 4}, {3, 2}}, -1, 1},
    {"expand", f_expand, 2, {2, 3}, {{3, 1}, {2, 3, 4}}, -1, 1},
    {"squeeze unsqueeze", f_squeeze, 2, {2, 2}, {{3, 1}, {1, 3}}, -1, 1},
    {"contiguous", f_contiguous, 2, {2, 2}, {{4, 3}, {3, 4}}, -1, 1},
    {"concat", f_concat, 3, {2, 2, 2}, {{3, 2}, {3, 3}, {3, 5}}, -1, 1},
    {"split", f_split, 1, {2}, {{3, 6}}, -1, 1},
    {"chunk", f_chunk, 1, {2}, {{4, 3}}, -1, 1},
};

START_TEST(gradcheck_every_op) {
    const op_case *c = &cases[_i];
    Tensor *in[3] = {NULL, NULL, NULL};
    for (int k = 0; k < c->n; k++)
        in[k] = nbt_param(c->ndim[k], c->shape[k], c->lo, c->hi, 100 + (uint64_t)k);
    if (c->f == f_abs) /* both signs, away from 0 */
        for (int64_t i = 0; i < in[0]->numel; i += 2) in[0]->data[i] = -in[0]->data[i];
    ag_gradcheck_result r;
    bool ok = ag_gradcheck(c->f, in, c->n, NULL, NULL, &r);
    for (int k = 0; k < c->n; k++) tensor_free(in[k]);
    ag_reset();
    ck_assert_msg(ok, "%s: %s", c->name, r.message);
}
END_TEST

/* A gradient check must be able to fail: a deliberately wrong backward is caught. */
static void wrong_backward(Tensor *c) {
    ag_accumulate_unary(c->parents[0], K_AFFINE, c->grad, 3, 0);
}
static Tensor *f_wrong(Tensor *const *in, void *ctx) {
    (void)ctx;
    Tensor *c = tensor_step(in[0]->ndim, in[0]->shape);
    k_unary(K_AFFINE, in[0], c, 2, 0, false); /* c = 2a but claims dc/da = 3 */
    ag_record(c, "wrong", wrong_backward, (Tensor *[]){in[0]}, 1);
    return c;
}
/* ... and one that is right on a fresh gradient but overwrites instead of adding to an existing
 * one is caught too. */
static void overwriting_backward(Tensor *c) {
    bool fresh;
    Tensor *g = ag_grad_begin(c->parents[0], &fresh);
    k_unary(K_AFFINE, c->grad, g, 2, 0, false); /* should add when !fresh */
}
static Tensor *f_overwriting(Tensor *const *in, void *ctx) {
    (void)ctx;
    Tensor *c = tensor_step(in[0]->ndim, in[0]->shape);
    k_unary(K_AFFINE, in[0], c, 2, 0, false);
    ag_record(c, "overwriting", overwriting_backward, (Tensor *[]){in[0]}, 1);
    return c;
}
START_TEST(gradcheck_catches_a_backward_that_does_not_add) {
    Tensor *x = nbt_param(NB_SHAPE(2, 2), -1, 1, 7);
    ag_gradcheck_result r;
    ck_assert(!ag_gradcheck(f_overwriting, &x, 1, NULL, NULL, &r));
    ck_assert_msg(strstr(r.message, "did not add"), "%s", r.message);
    tensor_free(x);
    ag_reset();
}
END_TEST

START_TEST(gradcheck_catches_a_wrong_backward) {
    Tensor *x = nbt_param(NB_SHAPE(2, 2), -1, 1, 7);
    ag_gradcheck_result r;
    ck_assert(!ag_gradcheck(f_wrong, &x, 1, NULL, NULL, &r));
    ck_assert_int_eq(r.input, 0);
    ck_assert_msg(fabs(r.analytic - 1.5 * r.numeric) < 1e-3 * fabs(r.numeric) + 1e-6, "%s",
                  r.message);
    tensor_free(x);
    ag_reset();
}
END_TEST

/* ---- graph semantics ------------------------------------------------------------------------- */

START_TEST(gradients_accumulate_until_zeroed) {
    Tensor *x = nbt_param(NB_SHAPE(3), 1, 2, 1);
    for (int rep = 1; rep <= 3; rep++) {
        ag_backward(ag_sum(ag_mul_scalar(x, 2)));
        for (int i = 0; i < 3; i++) ck_assert_double_eq_tol(x->grad->data[i], 2.0 * rep, 1e-6);
        ag_reset();
    }
    tensor_zero_grad(x);
    for (int i = 0; i < 3; i++) ck_assert(x->grad->data[i] == 0);
    tensor_free(x);
}
END_TEST

START_TEST(reused_node_gets_the_sum_of_its_gradients) {
    Tensor *x = nbt_param(NB_SHAPE(2), 1, 2, 2);
    Tensor *y = ag_mul_scalar(x, 3);             /* y used three times */
    Tensor *f = ag_sum(ag_add(ag_mul(y, y), y)); /* f = sum(y^2 + y), df/dx = 3 (2y + 1) */
    ag_backward(f);
    for (int i = 0; i < 2; i++) {
        double yv = 3.0 * x->data[i];
        ck_assert_double_eq_tol(x->grad->data[i], 3 * (2 * yv + 1), 1e-4);
    }
    tensor_free(x);
    ag_reset();
}
END_TEST

START_TEST(no_grad_and_detach_record_nothing) {
    Tensor *x = nbt_param(NB_SHAPE(2), 1, 2, 3);
    int64_t before = ag_tape_length();
    bool prev = ag_set_grad_enabled(false);
    Tensor *y = ag_exp(x);
    ck_assert(!ag_is_grad_enabled());
    ag_set_grad_enabled(prev);
    ck_assert(ag_is_grad_enabled());
    ck_assert(!y->requires_grad);
    ck_assert_int_eq(ag_tape_length(), before);
    Tensor *d = ag_detach(ag_exp(x));
    ck_assert(!d->requires_grad);
    ck_assert(d->data == ag_tape_at(ag_tape_length() - 1)->data); /* shares memory */
    /* gradient stops at the detached branch */
    Tensor *f = ag_sum(ag_add(ag_mul(d, x), x)); /* df/dx = d + 1, with d constant */
    ag_backward(f);
    for (int i = 0; i < 2; i++)
        ck_assert_double_eq_tol(x->grad->data[i], exp(x->data[i]) + 1, 1e-4);
    NBT_EXPECT_FAIL(ag_backward(y), "does not require grad");
    tensor_free(x);
    ag_reset();
}
END_TEST

START_TEST(backward_from_any_tensor_with_upstream_gradient) {
    Tensor *x = nbt_param(NB_SHAPE(2, 2), -1, 1, 4);
    Tensor *y = ag_mul_scalar(x, 5);
    Tensor *g = ag_full(NB_SHAPE(2, 2), 0.5);
    ag_backward_with(y, g);
    for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(x->grad->data[i], 2.5, 1e-6);
    NBT_EXPECT_FAIL(ag_backward(y), "not a scalar");
    tensor_free(x);
    ag_reset();
}
END_TEST

START_TEST(expand_sums_and_narrow_scatters) {
    Tensor *b = nbt_param(NB_SHAPE(3), -1, 1, 5);
    ag_backward(ag_sum(ag_expand(b, NB_SHAPE(4, 3))));
    for (int i = 0; i < 3; i++) ck_assert_double_eq_tol(b->grad->data[i], 4, 1e-6);
    ag_reset();
    Tensor *x = nbt_param(NB_SHAPE(5), -1, 1, 6);
    ag_backward(ag_sum(ag_narrow(x, 0, 1, 2)));
    real expect[5] = {0, 1, 1, 0, 0};
    nbt_assert_close(x->grad, expect, 0);
    tensor_free(b);
    tensor_free(x);
    ag_reset();
}
END_TEST

START_TEST(chain_of_100000_ops) {
    Tensor *x = nbt_param(NB_SHAPE(1), 0.5, 0.6, 8);
    Tensor *y = x;
    for (int i = 0; i < 100000; i++) y = ag_mul_scalar(y, 1); /* 100,000 recorded ops */
    ck_assert_int_ge(ag_tape_length(), 100000);
    ag_backward(ag_sum(y));
    ck_assert_double_eq_tol(x->grad->data[0], 1, 1e-6);
    tensor_free(x);
    ag_reset();
}
END_TEST

START_TEST(error_messages_name_op_shapes_and_call_site) {
    Tensor *a = nbt_param(NB_SHAPE(2, 3), -1, 1, 9), *b = nbt_param(NB_SHAPE(4, 5), -1, 1, 10);
    NBT_EXPECT_FAIL(ag_matmul(a, b), "matmul: inner dims differ: [2, 3] @ [4, 5]");
    /* the message names the caller's line, then the place in the library that found it */
    char where[64];
    snprintf(where, sizeof where, "(at tests/test_autograd.c:%d;", __LINE__ + 1);
    NBT_EXPECT_FAIL(ag_add(ag_exp(a), ag_matmul(a, b)), where, "found in autograd/ops_matmul.c");
    snprintf(where, sizeof where, "(at tests/test_autograd.c:%d;", __LINE__ + 1);
    NBT_EXPECT_FAIL(ag_reshape(a, NB_SHAPE(5, -1)), where, "cannot infer -1");
    /* a failure outside the wrapped ops does not borrow an earlier, finished call's line */
    Tensor *ok = ag_add(a, a);
    NBT_EXPECT_FAIL(tensor_item(ok), "tensor_item");
    ck_assert_msg(strstr(nb_last_error(), "test_autograd.c") == NULL, "%s", nb_last_error());
    NBT_EXPECT_FAIL(ag_add(a, b), "shapes [2, 3] and [4, 5] cannot be broadcast");
    NBT_EXPECT_FAIL(ag_backward(ag_exp(a)), "test_autograd.c:");
    NBT_EXPECT_FAIL(ag_view(ag_transpose(a, 0, 1), NB_SHAPE(6)), "without a copy");
    NBT_EXPECT_FAIL(ag_sum_dims(a, (int[]){2}, 1, false), "dim 2 is out of range for shape [2, 3]");
    NBT_EXPECT_FAIL(tensor_free(ag_exp(a)), "freed by ag_reset");
    tensor_free(a);
    tensor_free(b);
    ag_reset();
}
END_TEST

START_TEST(matmul_values_and_transposed_views) {
    Tensor *a = tensor_from_array(NB_SHAPE(2, 3), (real[]){1, 2, 3, 4, 5, 6});
    Tensor *b = tensor_from_array(NB_SHAPE(2, 3), (real[]){1, 0, -1, 2, 1, 0});
    Tensor *c = ag_matmul(a, ag_transpose(b, 0, 1)); /* a @ b^T, b read through strides */
    real expect[4] = {-2, 4, -2, 13};
    nbt_assert_close(c, expect, 1e-6);
    tensor_free(a);
    tensor_free(b);
    ag_reset();
}
END_TEST

START_TEST(linear_equals_its_composite) {
    Tensor *x = nbt_param(NB_SHAPE(6, 5), -1, 1, 21), *W = nbt_param(NB_SHAPE(4, 5), -1, 1, 22);
    Tensor *b = nbt_param(NB_SHAPE(4), -1, 1, 23);
    Tensor *fused = ag_linear(x, W, b);
    Tensor *comp = ag_add(ag_matmul(x, ag_transpose(W, 0, 1)), b);
    real want[24];
    tensor_to_array(comp, want);
    nbt_assert_close(fused, want, 1e-5);
    NBT_EXPECT_FAIL(ag_linear(x, b, NULL), "linear: input [6, 5] does not fit weight [4]");
    tensor_free(x), tensor_free(W), tensor_free(b);
    ag_reset();
}
END_TEST

/* softmax and log_softmax over the last dim of a contiguous input run one fused op (its own
 * forward and backward): against the composites a - logsumexp(a) and its exp, on rows longer and
 * shorter than its 16-way max, with -inf entries, an all -inf row (NaN, as PyTorch), large
 * logits, and a gradient added to an earlier one (a also feeds a sum). */
START_TEST(softmax_equals_its_composite) {
    const int64_t shapes[][3] = {{5, 37, 0}, {2, 3, 17}, {4, 1, 0}, {3, 16, 0}};
    for (int k = 0; k < 4; k++)
        for (int log = 0; log < 2; log++) {
            int nd = shapes[k][2] ? 3 : 2;
            int64_t n = shapes[k][nd - 1];
            Tensor *a[2], *y[2];
            for (int v = 0; v < 2; v++) {
                a[v] = nbt_param(nd, shapes[k], -3, 3, 31);
                if (k == 0) {
                    a[v]->data[3] = -INFINITY;                                     /* row 0 */
                    for (int64_t j = 0; j < n; j++) a[v]->data[n + j] = -INFINITY; /* row 1 */
                    for (int64_t j = 0; j < n; j++) a[v]->data[2 * n + j] *= 1e4f; /* row 2 */
                    a[v]->data[3 * n - 1] = 5e4f; /* row 2's max, in the tail */
                    a[v]->data[3 * n] = INFINITY; /* row 3: NaN there, as the composite */
                }
                Tensor *ls = ag_sub(a[v], ag_logsumexp(a[v], -1, true));
                y[v] = v == 0 ? (log ? ag_log_softmax(a[v], -1) : ag_softmax(a[v], -1))
                              : (log ? ls : ag_exp(ls));
                Tensor *w = nbt_tensor(nd, shapes[k], -1, 1, 32, false);
                ag_backward(ag_add(ag_sum(ag_mul(y[v], w)), ag_sum(a[v])));
                tensor_free(w);
            }
            ck_assert_str_eq(y[0]->op, log ? "log_softmax" : "softmax");
            for (int64_t i = 0; i < y[0]->numel; i++) {
                real f = y[0]->data[i], c = y[1]->data[i], gf = a[0]->grad->data[i],
                     gc = a[1]->grad->data[i];
                ck_assert_msg(isnan(f) == isnan(c), "shape %d, %d: y %g, want %g", k, (int)i,
                              (double)f, (double)c);
                if (!isnan(f) && !isinf(c))
                    ck_assert_msg(fabs(f - c) <= 1e-5 * (1 + fabs(c)), "y %g, want %g", (double)f,
                                  (double)c);
                ck_assert(isinf(f) == isinf(c));
                ck_assert_msg(isnan(gf) == isnan(gc) && (isnan(gf) || fabs(gf - gc) <= 1e-5),
                              "shape %d, %d: dx %g, want %g", k, (int)i, (double)gf, (double)gc);
            }
            ag_reset();
            tensor_free(a[0]), tensor_free(a[1]);
        }
}
END_TEST

/* Found in review: an empty batch must still leave a (zero) gradient, not a stale buffer. */
START_TEST(empty_batched_matmul_gives_zero_gradient) {
    Tensor *W = nbt_param(NB_SHAPE(3, 2), -1, 1, 31);
    ag_grad(W);
    tensor_clear_grad(W);
    tensor_fill(W->grad_spare, NAN); /* what a stale buffer could hold */
    Tensor *a = ag_zeros(NB_SHAPE(0, 4, 3));
    Tensor *y = ag_matmul(a, W); /* [0, 4, 2] */
    ag_backward(ag_sum(y));
    for (int i = 0; i < 6; i++) ck_assert(W->grad->data[i] == 0);
    tensor_free(W);
    ag_reset();
}
END_TEST

START_TEST(marks_and_graph_drawing_are_safe) {
    /* a mark taken before a reset is refused instead of reusing freed memory */
    ag_mark_t m = ag_mark();
    ag_reset();
    NBT_EXPECT_FAIL(ag_release(m), "ag_release", "before the last ag_reset");
    /* drawing a node with many parents (a concat of 200) */
    Tensor *x = nbt_param(NB_SHAPE(1), -1, 1, 32);
    Tensor *parts[200];
    for (int i = 0; i < 200; i++) parts[i] = ag_mul_scalar(x, (real)i);
    Tensor *c = ag_concat(parts, 200, 0);
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ag_write_dot(f, c);
    rewind(f);
    /* 202 nodes (x, 200 products, the concat), each drawn once; 400 edges */
    char line[512];
    int nodes = 0, edges = 0, leaf = 0, concat = 0, lines = 0;
    bool closed = false;
    while (fgets(line, sizeof line, f)) {
        if (lines++ == 0) ck_assert_str_eq(line, "digraph nabla {\n");
        nodes += strstr(line, "[label=") != NULL;
        edges += strstr(line, " -> ") != NULL;
        leaf += strstr(line, "leaf\\n[1] grad") != NULL;
        concat += strstr(line, "concat") != NULL && strstr(line, "[label=") != NULL;
        closed = !strcmp(line, "}\n");
    }
    fclose(f);
    ck_assert_int_eq(nodes, 202);
    ck_assert_int_eq(edges, 400);
    ck_assert_int_eq(leaf, 1);
    ck_assert_int_eq(concat, 1);
    ck_assert_msg(closed, "the graph does not end with '}'");
    /* shapes that overflow are refused */
    NBT_EXPECT_FAIL(ag_reshape(x, NB_SHAPE(3, 6148914691236517206LL)), "reshape", "overflows");
    NBT_EXPECT_FAIL(ag_narrow(x, 0, 1, INT64_MAX), "narrow", "outside dim 0");
    NBT_EXPECT_FAIL(ag_expand(x, NB_SHAPE(-5)), "expand", "negative size");
    tensor_free(x);
    ag_reset();
}
END_TEST

START_TEST(step_memory_is_flat) {
    /* The framework's allocation counters are the same after 10,000 forward/backward loops as
     * after 100: the arena and the tape keep their memory, and nothing else allocates. */
    Tensor *W = nbt_param(NB_SHAPE(8, 6), -1, 1, 11), *x = nbt_param(NB_SHAPE(5, 8), -1, 1, 12);
    Tensor *b = nbt_param(NB_SHAPE(6), -1, 1, 13);
    nb_mem_stats_t at100 = {0};
    for (int step = 1; step <= 10000; step++) {
        Tensor *h = ag_tanh(ag_add(ag_matmul(x, W), b));
        Tensor *loss = ag_mean(ag_pow(ag_sub(ag_softmax(h, 1), ag_sigmoid(h)), 2));
        ag_backward(loss);
        ag_reset();
        if (step == 100) at100 = nb_mem_stats();
    }
    nb_mem_stats_t at10k = nb_mem_stats();
    ck_assert_int_eq(at10k.allocs, at100.allocs);
    ck_assert_int_eq(at10k.live_bytes, at100.live_bytes);
    ck_assert_int_eq(at10k.live, at100.live);
    tensor_free(W);
    tensor_free(x);
    tensor_free(b);
}
END_TEST

START_TEST(graph_draws_as_dot) {
    Tensor *x = nbt_param(NB_SHAPE(2), -1, 1, 14);
    x->name = "x";
    Tensor *y = ag_sum(ag_exp(x));
    char buf[4096] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    ag_write_dot(f, y);
    fclose(f);
    ck_assert(strstr(buf, "digraph") && strstr(buf, "x: leaf") && strstr(buf, "exp") &&
              strstr(buf, "sum"));
    tensor_free(x);
    ag_reset();
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("autograd");
    TCase *t = tcase_create("ops");
    tcase_add_loop_test(t, gradcheck_every_op, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(t, gradcheck_catches_a_wrong_backward);
    tcase_add_test(t, gradcheck_catches_a_backward_that_does_not_add);
    tcase_add_test(t, matmul_values_and_transposed_views);
    tcase_add_test(t, linear_equals_its_composite);
    tcase_add_test(t, softmax_equals_its_composite);
    suite_add_tcase(s, t);
    TCase *g = tcase_create("graph");
    tcase_set_timeout(g, 120);
    tcase_add_test(g, gradients_accumulate_until_zeroed);
    tcase_add_test(g, reused_node_gets_the_sum_of_its_gradients);
    tcase_add_test(g, no_grad_and_detach_record_nothing);
    tcase_add_test(g, backward_from_any_tensor_with_upstream_gradient);
    tcase_add_test(g, expand_sums_and_narrow_scatters);
    tcase_add_test(g, chain_of_100000_ops);
    tcase_add_test(g, error_messages_name_op_shapes_and_call_site);
    tcase_add_test(g, step_memory_is_flat);
    tcase_add_test(g, empty_batched_matmul_gives_zero_gradient);
    tcase_add_test(g, marks_and_graph_drawing_are_safe);
    tcase_add_test(g, graph_draws_as_dot);
    suite_add_tcase(s, g);
    return s;
}

NB_CHECK_MAIN(suite)
