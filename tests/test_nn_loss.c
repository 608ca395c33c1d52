/* tests/test_nn_loss.c: losses against hand-computed values, their gradients against finite
 * differences, the BCE clamps, and the shape errors. */
#include <math.h>
#include <setjmp.h>
#include <string.h>

#include "autograd/gradcheck.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "tests/check_main.h"
#include "tests/testutil.h"

/* ---- helpers --------------------------------------------------------------------------------- */

#define PI 3.14159265358979323846

/* The scalar a loss returned, as a double. */
static double item(Tensor *t) {
    return (double)tensor_item(t);
}

/* Relative tolerance for values computed in `real`. */
#ifdef NB_DOUBLE
#define TOL 1e-12
#else
#define TOL 1e-6
#endif

/* ---- BCE on probabilities -------------------------------------------------------------------- */

START_TEST(test_bce_value) {
    Tensor *p = tensor_from_array(NB_SHAPE(2, 2), (real[]){0.2, 0.9, 0.5, 0.7});
    Tensor *y = tensor_from_array(NB_SHAPE(2, 2), (real[]){0, 1, 1, 0.25});
    double want[4] = {-log(0.8), -log(0.9), -log(0.5), -(0.25 * log(0.7) + 0.75 * log(0.3))};
    double sum = want[0] + want[1] + want[2] + want[3];
    ck_assert_double_eq_tol(item(nn_bce(p, y, NN_SUM)), sum, 10 * TOL * sum);
    ck_assert_double_eq_tol(item(nn_bce(p, y, NN_MEAN)), sum / 4, 10 * TOL * sum);
    Tensor *each = nn_bce(p, y, NN_NONE);
    ck_assert_int_eq(each->ndim, 2);
    for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(each->data[i], want[i], 10 * TOL);
    ag_reset();
    tensor_free(p);
    tensor_free(y);
}
END_TEST

/* p = 0 or 1: each log is clamped at -100, as PyTorch, and the gradients stay finite. */
START_TEST(test_bce_clamp) {
    Tensor *p = tensor_from_array(NB_SHAPE(4), (real[]){0, 1, 0, 1});
    Tensor *y = tensor_from_array(NB_SHAPE(4), (real[]){1, 0, 0, 1});
    tensor_requires_grad(p, true);
    tensor_requires_grad(y, true);
    Tensor *each = nn_bce(p, y, NN_NONE);
    ck_assert_double_eq_tol(each->data[0], 100, 1e-4);
    ck_assert_double_eq_tol(each->data[1], 100, 1e-4);
    ck_assert(each->data[2] == 0 && each->data[3] == 0);
    Tensor *l = nn_bce(p, y, NN_SUM);
    ck_assert_double_eq_tol(item(l), 200, 1e-3);
    ag_backward(l);
    /* dp = (p - y) / max(p (1 - p), 1e-12): -1e12, +1e12, 0, 0 (PyTorch's values) */
    ck_assert_double_eq_tol(p->grad->data[0], -1e12, 1e6);
    ck_assert_double_eq_tol(p->grad->data[1], 1e12, 1e6);
    ck_assert(p->grad->data[2] == 0 && p->grad->data[3] == 0);
    /* dy = log(1 - p) - log p with the clamped logs: 0 - (-100), -100 - 0, ... */
    ck_assert_double_eq_tol(y->grad->data[0], 100, 1e-4);
    ck_assert_double_eq_tol(y->grad->data[1], -100, 1e-4);
    for (int i = 0; i < 4; i++) ck_assert(isfinite(p->grad->data[i]) && isfinite(y->grad->data[i]));
    ag_reset();
    tensor_free(p);
    tensor_free(y);
}
END_TEST

static Tensor *bce_fn(Tensor *const *in, void *ctx) {
    return nn_bce(in[0], in[1], *(const nn_reduction *)ctx);
}

/* Probabilities from a transposed view and a target broadcast (expanded) from one row. */
static Tensor *bce_views_fn(Tensor *const *in, void *ctx) {
    (void)ctx;
    Tensor *p = ag_transpose(in[0], 0, 1);        /* [3, 4] -> [4, 3] */
    Tensor *y = ag_expand(in[1], NB_SHAPE(4, 3)); /* [1, 3] -> [4, 3] */
    return nn_bce(p, y, NN_MEAN);
}

START_TEST(test_bce_gradcheck) {
    Tensor *p = nbt_tensor(NB_SHAPE(4, 3), 0.1, 0.9, 1, true);
    Tensor *y = nbt_tensor(NB_SHAPE(4, 3), 0, 1, 2, true);
    nn_reduction reds[] = {NN_SUM, NN_MEAN, NN_NONE};
    for (int k = 0; k < 3; k++) nbt_gradcheck("bce", bce_fn, (Tensor *[]){p, y}, 2, &reds[k]);
    Tensor *pt = nbt_tensor(NB_SHAPE(3, 4), 0.1, 0.9, 3, true);
    Tensor *yrow = nbt_tensor(NB_SHAPE(1, 3), 0, 1, 4, true);
    nbt_gradcheck("bce on views", bce_views_fn, (Tensor *[]){pt, yrow}, 2, NULL);
    tensor_free(p);
    tensor_free(y);
    tensor_free(pt);
    tensor_free(yrow);
}
END_TEST

/* ---- BCE on logits --------------------------------------------------------------------------- */

START_TEST(test_bce_logits_stable) {
    /* +-1000: exp(1000) overflows even a double, so only the stable form survives */
    Tensor *x =
        tensor_from_array(NB_SHAPE(9), (real[]){100, -100, 100, -100, 0, 1000, -1000, 1000, -1000});
    Tensor *y = tensor_from_array(NB_SHAPE(9), (real[]){1, 0, 0, 1, 1, 1, 0, 0, 1});
    tensor_requires_grad(x, true);
    Tensor *each = nn_bce_with_logits(x, y, NN_NONE);
    /* up to log1p(exp(-100)) = 3.7e-44 */
    double want[9] = {0, 0, 100, 100, log(2.0), 0, 0, 1000, 1000};
    for (int i = 0; i < 9; i++) {
        ck_assert_msg(isfinite(each->data[i]), "loss %d is %g", i, (double)each->data[i]);
        ck_assert_double_eq_tol(each->data[i], want[i], 1e-5);
    }
    Tensor *sum = nn_bce_with_logits(x, y, NN_SUM);
    ck_assert_double_eq_tol(tensor_item(sum), 2200 + log(2.0), 1e-3);
    ag_backward(sum);
    double dwant[9] = {0, 0, 1, -1, -0.5, 0, 0, 1, -1}; /* sigmoid(x) - y */
    for (int i = 0; i < 9; i++) {
        ck_assert(isfinite(x->grad->data[i]));
        ck_assert_double_eq_tol(x->grad->data[i], dwant[i], 1e-6);
    }
    ag_reset();
    tensor_free(x);
    tensor_free(y);
}
END_TEST

/* On moderate logits, bce_with_logits(x) equals bce(sigmoid(x)). */
START_TEST(test_bce_logits_matches_bce) {
    Tensor *x = nbt_tensor(NB_SHAPE(3, 5), -4, 4, 5, false);
    Tensor *y = nbt_tensor(NB_SHAPE(3, 5), 0, 1, 6, false);
    double a = item(nn_bce_with_logits(x, y, NN_SUM)), b = item(nn_bce(nn_sigmoid(x), y, NN_SUM));
    ck_assert_double_eq_tol(a, b, 1e3 * TOL * fabs(b));
    ag_reset();
    tensor_free(x);
    tensor_free(y);
}
END_TEST

static Tensor *bce_logits_fn(Tensor *const *in, void *ctx) {
    return nn_bce_with_logits(in[0], in[1], *(const nn_reduction *)ctx);
}

START_TEST(test_bce_logits_gradcheck) {
    Tensor *x = nbt_tensor(NB_SHAPE(2, 3, 2), -5, 5, 7, true);
    Tensor *y = nbt_tensor(NB_SHAPE(2, 3, 2), 0, 1, 8, true);
    nn_reduction reds[] = {NN_SUM, NN_MEAN, NN_NONE};
    for (int k = 0; k < 3; k++)
        nbt_gradcheck("bce_with_logits", bce_logits_fn, (Tensor *[]){x, y}, 2, &reds[k]);
    tensor_free(x);
    tensor_free(y);
}
END_TEST

/* The reduced forms are fused (the sum is taken in blocks of 4096 without storing the losses):
 * on several blocks they agree with the sum of the unreduced losses; a gradient that already
 * holds something is added to, not overwritten; an empty input sums to 0 and averages to NaN. */
static Tensor *bce_logits_twice_fn(Tensor *const *in, void *ctx) {
    (void)ctx;
    return ag_add(nn_bce_with_logits(in[0], in[1], NN_SUM),
                  nn_bce_with_logits(in[0], in[1], NN_MEAN));
}

START_TEST(test_bce_logits_reduced) {
    Tensor *x = nbt_tensor(NB_SHAPE(3 * 4096 + 5), -6, 6, 9, true);
    Tensor *y = nbt_tensor(NB_SHAPE(3 * 4096 + 5), 0, 1, 10, false);
    Tensor *each = nn_bce_with_logits(x, y, NN_NONE);
    double want = 0;
    for (int64_t i = 0; i < each->numel; i++) want += each->data[i];
    ck_assert_double_eq_tol(item(nn_bce_with_logits(x, y, NN_SUM)), want, 10 * TOL * want);
    ck_assert_double_eq_tol(item(nn_bce_with_logits(x, y, NN_MEAN)), want / (double)x->numel,
                            10 * TOL * want / (double)x->numel);
    ag_reset();
    tensor_free(x);
    tensor_free(y);

    Tensor *a = nbt_tensor(NB_SHAPE(2, 3), -5, 5, 11, true);
    Tensor *b = nbt_tensor(NB_SHAPE(2, 3), 0, 1, 12, true);
    nbt_gradcheck("bce_with_logits sum + mean", bce_logits_twice_fn, (Tensor *[]){a, b}, 2, NULL);
    tensor_free(a);
    tensor_free(b);

    Tensor *e = tensor_zeros(NB_SHAPE(0, 4)), *ey = tensor_zeros(NB_SHAPE(0, 4));
    ck_assert_double_eq(item(nn_bce_with_logits(e, ey, NN_SUM)), 0);
    ck_assert(isnan(item(nn_bce_with_logits(e, ey, NN_MEAN))));
    ag_reset();
    tensor_free(e);
    tensor_free(ey);
}
END_TEST

/* ---- MSE ------------------------------------------------------------------------------------- */

static Tensor *mse_fn(Tensor *const *in, void *ctx) {
    return nn_mse(in[0], in[1], *(const nn_reduction *)ctx);
}

START_TEST(test_mse) {
    Tensor *a = tensor_from_array(NB_SHAPE(3), (real[]){1, 2, 3});
    Tensor *b = tensor_from_array(NB_SHAPE(3), (real[]){0, 4, 3.5});
    ck_assert_double_eq_tol(item(nn_mse(a, b, NN_SUM)), 1 + 4 + 0.25, 1e-5);
    ck_assert_double_eq_tol(item(nn_mse(a, b, NN_MEAN)), 5.25 / 3, 1e-5);
    ag_reset();
    Tensor *p = nbt_tensor(NB_SHAPE(4, 2), -2, 2, 9, true),
           *q = nbt_tensor(NB_SHAPE(4, 2), -2, 2, 10, true);
    nn_reduction reds[] = {NN_SUM, NN_MEAN, NN_NONE};
    for (int k = 0; k < 3; k++) nbt_gradcheck("mse", mse_fn, (Tensor *[]){p, q}, 2, &reds[k]);
    tensor_free(a);
    tensor_free(b);
    tensor_free(p);
    tensor_free(q);
}
END_TEST

/* ---- cross-entropy --------------------------------------------------------------------------- */

START_TEST(test_cross_entropy_value) {
    /* rows [1, 2, 3] (label 2) and [1, 1, 1] (label 0), by hand */
    Tensor *logits = tensor_from_array(NB_SHAPE(2, 3), (real[]){1, 2, 3, 1, 1, 1});
    const int64_t labels[] = {2, 0};
    double r0 = -3 + log(exp(1.0) + exp(2.0) + exp(3.0)), r1 = log(3.0);
    ck_assert_double_eq_tol(item(nn_cross_entropy(logits, labels, NN_SUM)), r0 + r1, 1e-5);
    ck_assert_double_eq_tol(item(nn_cross_entropy(logits, labels, NN_MEAN)), (r0 + r1) / 2, 1e-5);
    Tensor *rows = nn_cross_entropy(logits, labels, NN_NONE);
    ck_assert_int_eq(rows->ndim, 1);
    ck_assert_int_eq(rows->shape[0], 2);
    ck_assert_double_eq_tol(rows->data[0], r0, 1e-5);
    ck_assert_double_eq_tol(rows->data[1], r1, 1e-5);

    /* Large logits stay finite (log_softmax is stable). */
    Tensor *big = tensor_from_array(NB_SHAPE(1, 2), (real[]){1000, 0});
    ck_assert_double_eq_tol(item(nn_cross_entropy(big, (int64_t[]){1}, NN_SUM)), 1000, 1e-3);

    /* The gradient of the mean is (softmax - onehot) / N. */
    tensor_requires_grad(logits, true);
    ag_backward(nn_cross_entropy(logits, labels, NN_MEAN));
    double z = exp(1.0) + exp(2.0) + exp(3.0);
    ck_assert_double_eq_tol(logits->grad->data[2], (exp(3.0) / z - 1) / 2, 1e-6);
    ck_assert_double_eq_tol(logits->grad->data[0], (exp(1.0) / z) / 2, 1e-6);
    ck_assert_double_eq_tol(logits->grad->data[3], (1.0 / 3 - 1) / 2, 1e-6);
    ag_reset();
    tensor_free(logits);
    tensor_free(big);
}
END_TEST

static Tensor *ce_fn(Tensor *const *in, void *ctx) {
    static const int64_t labels[] = {0, 3, 1, 3, 2};
    return nn_cross_entropy(in[0], labels, *(const nn_reduction *)ctx);
}

START_TEST(test_cross_entropy_gradcheck) {
    Tensor *logits = nbt_tensor(NB_SHAPE(5, 4), -3, 3, 11, true);
    nn_reduction reds[] = {NN_SUM, NN_MEAN, NN_NONE};
    for (int k = 0; k < 3; k++)
        nbt_gradcheck("cross_entropy", ce_fn, (Tensor *[]){logits}, 1, &reds[k]);
    tensor_free(logits);
}
END_TEST

/* ---- Gaussian NLL ---------------------------------------------------------------------------- */

START_TEST(test_gaussian_nll_value) {
    Tensor *x = tensor_from_array(NB_SHAPE(2, 2), (real[]){0.5, -1, 2, 0});
    Tensor *mu = tensor_from_array(NB_SHAPE(2, 2), (real[]){0, 0, 1, 1});
    Tensor *lv = tensor_from_array(NB_SHAPE(2), (real[]){0, 1}); /* broadcast over rows */
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        double d = x->data[i] - mu->data[i], v = lv->data[i % 2];
        sum += 0.5 * (log(2 * PI) + v + d * d / exp(v));
    }
    ck_assert_double_eq_tol(item(nn_gaussian_nll(x, mu, lv, NN_SUM)), sum, 1e-5);
    ck_assert_double_eq_tol(item(nn_gaussian_nll(x, mu, lv, NN_MEAN)), sum / 4, 1e-5);
    /* x = mu, logvar = 0: exactly the constant 0.5 log(2 pi) per element */
    Tensor *zero = tensor_scalar(0);
    ck_assert_double_eq_tol(item(nn_gaussian_nll(mu, mu, zero, NN_MEAN)), 0.5 * log(2 * PI), 1e-6);
    ag_reset();
    tensor_free(zero);
    tensor_free(x);
    tensor_free(mu);
    tensor_free(lv);
}
END_TEST

static Tensor *gnll_fn(Tensor *const *in, void *ctx) {
    return nn_gaussian_nll(in[0], in[1], in[2], *(const nn_reduction *)ctx);
}

START_TEST(test_gaussian_nll_gradcheck) {
    Tensor *x = nbt_tensor(NB_SHAPE(3, 4), -2, 2, 12, true);
    Tensor *mu = nbt_tensor(NB_SHAPE(3, 4), -2, 2, 13, true);
    Tensor *lv = nbt_tensor(NB_SHAPE(3, 4), -1, 1, 14, true);
    Tensor *lv_dim = nbt_tensor(NB_SHAPE(4), -1, 1, 15, true); /* broadcast over rows */
    nn_reduction reds[] = {NN_SUM, NN_MEAN, NN_NONE};
    for (int k = 0; k < 3; k++)
        nbt_gradcheck("gaussian_nll", gnll_fn, (Tensor *[]){x, mu, lv}, 3, &reds[k]);
    nbt_gradcheck("gaussian_nll broadcast", gnll_fn, (Tensor *[]){x, mu, lv_dim}, 3, &reds[0]);
    tensor_free(x);
    tensor_free(mu);
    tensor_free(lv);
    tensor_free(lv_dim);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */

START_TEST(test_loss_errors) {
    Tensor *a = tensor_zeros(NB_SHAPE(2, 3)), *b = tensor_zeros(NB_SHAPE(3, 2));
    NBT_EXPECT_FAIL(nn_bce(a, b, NN_SUM), "nn_bce", "[2, 3]", "[3, 2]");
    NBT_EXPECT_FAIL(nn_bce_with_logits(a, b, NN_SUM), "nn_bce_with_logits", "[2, 3]", "[3, 2]");
    NBT_EXPECT_FAIL(nn_mse(a, b, NN_MEAN), "nn_mse", "[2, 3]", "[3, 2]");
    NBT_EXPECT_FAIL(nn_gaussian_nll(a, b, a, NN_SUM), "nn_gaussian_nll", "[2, 3]", "[3, 2]");
    Tensor *lv = tensor_zeros(NB_SHAPE(4, 2, 3)); /* would grow x */
    NBT_EXPECT_FAIL(nn_gaussian_nll(a, a, lv, NN_SUM), "nn_gaussian_nll", "[4, 2, 3]", "[2, 3]");
    NBT_EXPECT_FAIL(nn_cross_entropy(a, (int64_t[]){0, 3}, NN_MEAN), "nn_cross_entropy", "label 3",
                    "index 1");
    NBT_EXPECT_FAIL(nn_cross_entropy(a, (int64_t[]){-1, 0}, NN_MEAN), "nn_cross_entropy",
                    "label -1");
    Tensor *v = tensor_zeros(NB_SHAPE(3));
    NBT_EXPECT_FAIL(nn_cross_entropy(v, (int64_t[]){0, 0, 0}, NN_MEAN), "nn_cross_entropy", "[3]");
    NBT_EXPECT_FAIL(nn_reduce(a, (nn_reduction)7), "nn_reduce", "7");
    Tensor *p = tensor_from_array(NB_SHAPE(3), (real[]){0.5, 1.5, 0}),
           *y = tensor_zeros(NB_SHAPE(3));
    NBT_EXPECT_FAIL(nn_bce(p, y, NN_SUM), "nn_bce", "1.5", "index 1", "outside [0, 1]");
    p->data[1] = (real)NAN;
    NBT_EXPECT_FAIL(nn_bce(p, y, NN_SUM), "nn_bce", "nan", "index 1");
    tensor_free(p);
    tensor_free(y);
    tensor_free(a);
    tensor_free(b);
    tensor_free(lv);
    tensor_free(v);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("nn_loss");
    TCase *bce = tcase_create("bce");
    tcase_add_test(bce, test_bce_value);
    tcase_add_test(bce, test_bce_clamp);
    tcase_add_test(bce, test_bce_gradcheck);
    tcase_add_test(bce, test_bce_logits_stable);
    tcase_add_test(bce, test_bce_logits_matches_bce);
    tcase_add_test(bce, test_bce_logits_gradcheck);
    tcase_add_test(bce, test_bce_logits_reduced);
    suite_add_tcase(s, bce);
    TCase *other = tcase_create("other");
    tcase_add_test(other, test_mse);
    tcase_add_test(other, test_cross_entropy_value);
    tcase_add_test(other, test_cross_entropy_gradcheck);
    tcase_add_test(other, test_gaussian_nll_value);
    tcase_add_test(other, test_gaussian_nll_gradcheck);
    tcase_add_test(other, test_loss_errors);
    suite_add_tcase(s, other);
    return s;
}

NB_CHECK_MAIN(suite)
