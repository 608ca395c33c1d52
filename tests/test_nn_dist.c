/* tests/test_nn_dist.c: the Normal (reparameterized sampling, log-density, entropy), the closed
 * form KLs against Monte Carlo estimates, the logvar guard, the Bernoulli log-density, and
 * gradient checks of each with broadcast arguments. */
#include <math.h>
#include <setjmp.h>
#include <string.h>

#include "autograd/gradcheck.h"
#include "nn/dist.h"
#include "nn/init.h"
#include "tests/check_main.h"
#include "tests/testutil.h"

/* ---- helpers --------------------------------------------------------------------------------- */

#define LOG_2PI 1.8378770664093453

/* Element i of t read in row-major order (any layout). */
static double at(const Tensor *t, int64_t i) {
    int64_t idx[NB_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = i % t->shape[d];
        i /= t->shape[d];
    }
    return (double)tensor_get(t, idx);
}

/* ---- the Normal ------------------------------------------------------------------------------ */

/* z = mu + exp(0.5 logvar) eps with a fixed eps, and from sigma alike. */
START_TEST(test_rsample_value) {
    Tensor *mu = tensor_from_array(NB_SHAPE(2, 2), (real[]){0, 1, -1, 2});
    Tensor *lv = tensor_from_array(NB_SHAPE(2), (real[]){0, -2}); /* broadcast over rows */
    Tensor *eps = tensor_from_array(NB_SHAPE(2, 2), (real[]){1, -1, 0.5, 2});
    nn_normal q = nn_normal_from_logvar(mu, lv);
    Tensor *z = nn_normal_rsample_eps(&q, eps);
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq_tol(at(z, i), mu->data[i] + exp(0.5 * lv->data[i % 2]) * eps->data[i],
                                1e-6);

    Tensor *sigma = tensor_from_array(NB_SHAPE(2), (real[]){2, 0.5});
    nn_normal s = nn_normal_from_sigma(mu, sigma);
    z = nn_normal_rsample_eps(&s, eps);
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq_tol(at(z, i), mu->data[i] + sigma->data[i % 2] * eps->data[i], 1e-6);
    ck_assert_double_eq_tol(at(s.logvar, 0), 2 * log(2.0), 1e-6);

    /* eps [3, 2, 2]: three samples per element at once */
    Tensor *eps3 = tensor_randn(NB_SHAPE(3, 2, 2), NULL);
    z = nn_normal_rsample_eps(&q, eps3);
    ck_assert_int_eq(z->ndim, 3);
    ck_assert_double_eq_tol(at(z, 11), 2 + exp(-1.0) * eps3->data[11], 1e-6);
    ag_reset();
    tensor_free(mu);
    tensor_free(lv);
    tensor_free(eps);
    tensor_free(sigma);
    tensor_free(eps3);
}
END_TEST

/* Gradient of rsample with a FIXED eps, to mu and logvar (or sigma). */
static Tensor *rsample_logvar_fn(Tensor *const *in, void *ctx) {
    (void)ctx;
    nn_normal q = nn_normal_from_logvar(in[0], in[1]);
    return nn_normal_rsample_eps(&q, in[2]);
}
static Tensor *rsample_sigma_fn(Tensor *const *in, void *ctx) {
    (void)ctx;
    nn_normal q = nn_normal_from_sigma(in[0], in[1]);
    return nn_normal_rsample_eps(&q, in[2]);
}

START_TEST(test_rsample_gradcheck) {
    Tensor *mu = nbt_tensor(NB_SHAPE(3, 4), -2, 2, 1, true);
    Tensor *lv = nbt_tensor(NB_SHAPE(3, 4), -2, 2, 2, true);
    Tensor *lv_dim = nbt_tensor(NB_SHAPE(4), -2, 2, 3, true);
    Tensor *sigma = nbt_tensor(NB_SHAPE(3, 4), 0.3, 2, 4, true);
    Tensor *eps = tensor_randn(NB_SHAPE(3, 4), NULL);
    Tensor *eps_s = tensor_randn(NB_SHAPE(5, 3, 4), NULL); /* 5 samples, broadcast params */
    nbt_gradcheck("rsample logvar", rsample_logvar_fn, (Tensor *[]){mu, lv, eps}, 3, NULL);
    nbt_gradcheck("rsample logvar [Z]", rsample_logvar_fn, (Tensor *[]){mu, lv_dim, eps}, 3, NULL);
    nbt_gradcheck("rsample 5 samples", rsample_logvar_fn, (Tensor *[]){mu, lv, eps_s}, 3, NULL);
    nbt_gradcheck("rsample sigma", rsample_sigma_fn, (Tensor *[]){mu, sigma, eps}, 3, NULL);
    tensor_free(mu);
    tensor_free(lv);
    tensor_free(lv_dim);
    tensor_free(sigma);
    tensor_free(eps);
    tensor_free(eps_s);
}
END_TEST

/* rsample draws from the generator: reproducible per seed, right moments, and its gradient is
 * dz/dmu = 1, dz/dlogvar = 0.5 sigma eps. */
START_TEST(test_rsample_rng) {
    Tensor *mu = tensor_full(NB_SHAPE(20000), 2);
    Tensor *lv = tensor_full(NB_SHAPE(20000), (real)log(0.25)); /* sigma 0.5 */
    tensor_requires_grad(mu, true);
    tensor_requires_grad(lv, true);
    nb_rng r;
    nb_rng_seed(&r, 7);
    nn_normal q = nn_normal_from_logvar(mu, lv);
    Tensor *z = nn_normal_rsample(&q, &r);
    nb_rng_seed(&r, 7);
    Tensor *z2 = nn_normal_rsample(&q, &r);
    ck_assert_mem_eq(z->data, z2->data, 20000 * sizeof(real));
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < z->numel; i++) s += z->data[i];
    double mean = s / 20000;
    for (int64_t i = 0; i < z->numel; i++) s2 += (z->data[i] - mean) * (z->data[i] - mean);
    ck_assert_double_eq_tol(mean, 2, 0.02);
    ck_assert_double_eq_tol(sqrt(s2 / 19999), 0.5, 0.01);

    ag_backward(ag_sum(z));
    for (int64_t i = 0; i < 20000; i += 997) {
        double eps = (z->data[i] - 2) / 0.5;
        ck_assert_double_eq_tol(mu->grad->data[i], 1, 1e-6);
        ck_assert_double_eq_tol(lv->grad->data[i], 0.5 * 0.5 * eps, 1e-4);
    }
    ag_reset();
    tensor_free(mu);
    tensor_free(lv);
}
END_TEST

START_TEST(test_log_prob_entropy_value) {
    Tensor *mu = tensor_from_array(NB_SHAPE(3), (real[]){0, 1, -2});
    Tensor *lv = tensor_from_array(NB_SHAPE(3), (real[]){0, 0.5, -1});
    Tensor *x = tensor_from_array(NB_SHAPE(2, 3), (real[]){0, 2, -2, 1, -1, 0.5});
    nn_normal q = nn_normal_from_logvar(mu, lv);
    Tensor *lp = nn_normal_log_prob(&q, x);
    ck_assert_int_eq(lp->ndim, 2);
    for (int i = 0; i < 6; i++) {
        double d = x->data[i] - mu->data[i % 3], v = lv->data[i % 3];
        ck_assert_double_eq_tol(at(lp, i), -0.5 * (LOG_2PI + v + d * d / exp(v)), 1e-5);
    }
    Tensor *h = nn_normal_entropy(&q);
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq_tol(at(h, i), 0.5 * (1 + LOG_2PI + lv->data[i]), 1e-6);
    /* entropy takes the broadcast shape of mu and logvar */
    Tensor *mu2 = tensor_zeros(NB_SHAPE(4, 3));
    nn_normal q2 = nn_normal_from_logvar(mu2, lv);
    Tensor *h2 = nn_normal_entropy(&q2);
    ck_assert_int_eq(h2->ndim, 2);
    ck_assert_int_eq(h2->shape[0], 4);
    ck_assert_double_eq_tol(at(h2, 11), 0.5 * (1 + LOG_2PI - 1), 1e-6);
    ag_reset();
    tensor_free(mu);
    tensor_free(lv);
    tensor_free(x);
    tensor_free(mu2);
}
END_TEST

static Tensor *log_prob_fn(Tensor *const *in, void *ctx) {
    nn_normal q = ctx ? nn_normal_from_sigma(in[1], in[2]) : nn_normal_from_logvar(in[1], in[2]);
    return nn_normal_log_prob(&q, in[0]);
}
static Tensor *entropy_fn(Tensor *const *in, void *ctx) {
    nn_normal q = ctx ? nn_normal_from_sigma(in[0], in[1]) : nn_normal_from_logvar(in[0], in[1]);
    return nn_normal_entropy(&q);
}

START_TEST(test_log_prob_entropy_gradcheck) {
    Tensor *x =
        nbt_tensor(NB_SHAPE(3, 2, 4), -2, 2, 10, true); /* samples broadcast against params */
    Tensor *mu = nbt_tensor(NB_SHAPE(2, 4), -1, 1, 11, true);
    Tensor *lv = nbt_tensor(NB_SHAPE(4), -1.5, 1.5, 12, true);
    Tensor *sigma = nbt_tensor(NB_SHAPE(2, 4), 0.5, 2, 13, true);
    int by_sigma = 1;
    nbt_gradcheck("log_prob", log_prob_fn, (Tensor *[]){x, mu, lv}, 3, NULL);
    nbt_gradcheck("log_prob sigma", log_prob_fn, (Tensor *[]){x, mu, sigma}, 3, &by_sigma);
    nbt_gradcheck("entropy", entropy_fn, (Tensor *[]){mu, lv}, 2, NULL);
    nbt_gradcheck("entropy sigma", entropy_fn, (Tensor *[]){mu, sigma}, 2, &by_sigma);
    tensor_free(x);
    tensor_free(mu);
    tensor_free(lv);
    tensor_free(sigma);
}
END_TEST

/* ---- KL -------------------------------------------------------------------------------------- */

START_TEST(test_kl_std_value) {
    Tensor *mu = tensor_from_array(NB_SHAPE(2, 2), (real[]){0, 1, -0.5, 2});
    Tensor *lv = tensor_from_array(NB_SHAPE(2, 2), (real[]){0, 0, 1, -1});
    Tensor *kl = nn_kl_normal_std(mu, lv);
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        double m = mu->data[i], v = lv->data[i], want = -0.5 * (1 + v - m * m - exp(v));
        ck_assert_double_eq_tol(at(kl, i), want, 1e-5);
        sum += want;
    }
    ck_assert_double_eq_tol(at(kl, 0), 0, 1e-7); /* N(0, 1) against itself */
    ck_assert_double_eq_tol(tensor_item(nn_kl_normal_std_sum(mu, lv)), sum, 1e-5);
    ag_reset();
    tensor_free(mu);
    tensor_free(lv);
}
END_TEST

/* KL to N(0, 1) is KL to a Normal whose mu2 = 0 and logvar2 = 0 (broadcast [Z] prior). */
START_TEST(test_kl_normal_normal_matches_std) {
    Tensor *mu = nbt_tensor(NB_SHAPE(5, 3), -2, 2, 20, false);
    Tensor *lv = nbt_tensor(NB_SHAPE(5, 3), -3, 3, 21, false);
    Tensor *zero = tensor_zeros(NB_SHAPE(3));
    Tensor *a = nn_kl_normal_std(mu, lv), *b = nn_kl_normal_normal(mu, lv, zero, zero);
    ck_assert_int_eq(b->ndim, 2);
    for (int i = 0; i < 15; i++)
        ck_assert_double_eq_tol(at(a, i), at(b, i), 1e-5 * (1 + fabs(at(a, i))));
    ck_assert_double_eq_tol(tensor_item(nn_kl_normal_std_sum(mu, lv)),
                            tensor_item(nn_kl_normal_normal_sum(mu, lv, zero, zero)), 1e-4);
    /* KL of a distribution to itself is 0 */
    Tensor *self = nn_kl_normal_normal(mu, lv, mu, lv);
    for (int i = 0; i < 15; i++) ck_assert_double_eq_tol(at(self, i), 0, 1e-6);
    ag_reset();
    tensor_free(mu);
    tensor_free(lv);
    tensor_free(zero);
}
END_TEST

/* The closed forms against Monte Carlo: mean over 200,000 samples z ~ q of log q(z) - log p(z),
 * which must lie within 4 standard errors. Also checks the entropy as -E[log q]. */
static void kl_monte_carlo(double m1, double lv1, double m2, double lv2, uint64_t seed) {
    const int64_t n = 200000;
    bool prev = ag_set_grad_enabled(false);
    Tensor *mu1 = tensor_full(NB_SHAPE(1), (real)m1), *v1 = tensor_full(NB_SHAPE(1), (real)lv1);
    Tensor *mu2 = tensor_full(NB_SHAPE(1), (real)m2), *v2 = tensor_full(NB_SHAPE(1), (real)lv2);
    nb_rng r;
    nb_rng_seed(&r, seed);
    Tensor *eps = tensor_randn(NB_SHAPE(n), &r);
    nn_normal q = nn_normal_from_logvar(mu1, v1), p = nn_normal_from_logvar(mu2, v2);
    Tensor *z = nn_normal_rsample_eps(&q, eps);
    Tensor *lq = nn_normal_log_prob(&q, z), *lp = nn_normal_log_prob(&p, z);
    double s = 0, s2 = 0, sq = 0, sq2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)lq->data[i] - (double)lp->data[i];
        s += d;
        s2 += d * d;
        sq += lq->data[i];
        sq2 += (double)lq->data[i] * lq->data[i];
    }
    double mc = s / n, se = sqrt((s2 / n - mc * mc) / n);
    double closed = tensor_item(nn_kl_normal_normal(mu1, v1, mu2, v2));
    ck_assert_msg(fabs(mc - closed) < 4 * se,
                  "KL(N(%g, e^%g) || N(%g, e^%g)): closed form %g, "
                  "Monte Carlo %g +- %g",
                  m1, lv1, m2, lv2, closed, mc, se);
    if (m2 == 0 && lv2 == 0) {
        double std_closed = tensor_item(nn_kl_normal_std(mu1, v1));
        ck_assert_msg(fabs(mc - std_closed) < 4 * se, "KL std: closed %g, MC %g +- %g", std_closed,
                      mc, se);
    }
    double h = -sq / n, hse = sqrt((sq2 / n - h * h) / n);
    double h_closed = tensor_item(nn_normal_entropy(&q));
    ck_assert_msg(fabs(h - h_closed) < 4 * hse, "entropy: closed %g, MC %g +- %g", h_closed, h,
                  hse);
    ag_reset();
    ag_set_grad_enabled(prev);
    tensor_free(mu1);
    tensor_free(v1);
    tensor_free(mu2);
    tensor_free(v2);
    tensor_free(eps);
}

START_TEST(test_kl_monte_carlo) {
    kl_monte_carlo(0.5, -1.0, 0, 0, 30);
    kl_monte_carlo(-1.2, 0.7, 0, 0, 31);
    kl_monte_carlo(-1.2, 0.7, 0.3, 0.4, 32);
    kl_monte_carlo(2.0, -2.0, -0.5, 1.0, 33);
}
END_TEST

static Tensor *kl_std_fn(Tensor *const *in, void *ctx) {
    return ctx ? nn_kl_normal_std_sum(in[0], in[1]) : nn_kl_normal_std(in[0], in[1]);
}
static Tensor *kl_nn_fn(Tensor *const *in, void *ctx) {
    return ctx ? nn_kl_normal_normal_sum(in[0], in[1], in[2], in[3])
               : nn_kl_normal_normal(in[0], in[1], in[2], in[3]);
}

START_TEST(test_kl_gradcheck) {
    Tensor *mu = nbt_tensor(NB_SHAPE(4, 3), -2, 2, 40, true);
    Tensor *lv = nbt_tensor(NB_SHAPE(4, 3), -2, 2, 41, true);
    Tensor *lv_dim = nbt_tensor(NB_SHAPE(3), -2, 2, 42, true);
    Tensor *mu2 =
        nbt_tensor(NB_SHAPE(3), -1, 1, 43, true); /* a learned prior, broadcast over rows */
    Tensor *lv2 = nbt_tensor(NB_SHAPE(3), -1, 1, 44, true);
    Tensor *mu2_full = nbt_tensor(NB_SHAPE(4, 3), -1, 1, 45, true); /* a conditional prior */
    int sum = 1;
    nbt_gradcheck("kl std", kl_std_fn, (Tensor *[]){mu, lv}, 2, NULL);
    nbt_gradcheck("kl std sum", kl_std_fn, (Tensor *[]){mu, lv}, 2, &sum);
    nbt_gradcheck("kl std [Z] logvar", kl_std_fn, (Tensor *[]){mu, lv_dim}, 2, NULL);
    nbt_gradcheck("kl normal", kl_nn_fn, (Tensor *[]){mu, lv, mu2, lv2}, 4, NULL);
    nbt_gradcheck("kl normal sum", kl_nn_fn, (Tensor *[]){mu, lv, mu2_full, lv2}, 4, &sum);
    tensor_free(mu);
    tensor_free(lv);
    tensor_free(lv_dim);
    tensor_free(mu2);
    tensor_free(lv2);
    tensor_free(mu2_full);
}
END_TEST

/* ---- the logvar guard ------------------------------------------------------------------------ */

/* Outside [-30, 20] logvar is held at the bound: finite values, zero gradient there; inside,
 * the gradient is the exact one. */
START_TEST(test_logvar_guard) {
    Tensor *mu = tensor_from_array(NB_SHAPE(4), (real[]){0.5, 0.5, 0.5, 0.5});
    Tensor *lv = tensor_from_array(NB_SHAPE(4), (real[]){1000, 20, -1000, 5});
    tensor_requires_grad(lv, true);
    Tensor *kl = nn_kl_normal_std(mu, lv);
    for (int i = 0; i < 4; i++) ck_assert(isfinite(at(kl, i)));
    ck_assert_double_eq_tol(at(kl, 0), at(kl, 1), 1e-6 * at(kl, 1)); /* held at 20 */
    ck_assert_double_eq_tol(at(kl, 2), 0.5 * (0.25 + exp(-30.0) + 30 - 1), 1e-4);
    ag_backward(nn_kl_normal_std_sum(mu, lv));
    ck_assert(lv->grad->data[0] == 0 && lv->grad->data[2] == 0);
    ck_assert_double_eq_tol(lv->grad->data[3], 0.5 * (exp(5.0) - 1), 1e-3);
    ck_assert(isfinite(lv->grad->data[1]));
    ag_reset();

    /* log_prob far from the mean with the smallest variance: finite */
    Tensor *x = tensor_full(NB_SHAPE(4), 3);
    nn_normal q = nn_normal_from_logvar(mu, lv);
    Tensor *lp = nn_normal_log_prob(&q, x);
    for (int i = 0; i < 4; i++) ck_assert(isfinite(at(lp, i)));
    ck_assert_double_eq_tol(at(lp, 2), -0.5 * (LOG_2PI - 30 + 6.25 * exp(30.0)),
                            1e-5 * 6.25 * exp(30.0));
    Tensor *z = nn_normal_rsample_eps(&q, x);
    for (int i = 0; i < 4; i++) ck_assert(isfinite(at(z, i)));
    ag_backward(ag_sum(lp));
    for (int i = 0; i < 4; i++) ck_assert(isfinite(lv->grad->data[i]));
    ag_reset();
    tensor_free(mu);
    tensor_free(lv);
    tensor_free(x);
}
END_TEST

/* ---- Bernoulli ------------------------------------------------------------------------------- */

START_TEST(test_bernoulli) {
    Tensor *l = tensor_from_array(NB_SHAPE(4), (real[]){0, 2, -3, 100});
    Tensor *x = tensor_from_array(NB_SHAPE(4), (real[]){1, 0, 0.3, 1});
    Tensor *lp = nn_bernoulli_log_prob_logits(l, x);
    for (int i = 0; i < 4; i++) {
        double s = 1 / (1 + exp(-(double)l->data[i]));
        double want = i == 3 ? 0 : x->data[i] * log(s) + (1 - x->data[i]) * log(1 - s);
        ck_assert_double_eq_tol(at(lp, i), want, 1e-5);
    }
    ag_reset();
    tensor_free(l);
    tensor_free(x);
}
END_TEST

static Tensor *bernoulli_fn(Tensor *const *in, void *ctx) {
    (void)ctx;
    return nn_bernoulli_log_prob_logits(in[0], in[1]);
}

START_TEST(test_bernoulli_gradcheck) {
    Tensor *l = nbt_tensor(NB_SHAPE(3, 5), -4, 4, 50, true);
    Tensor *x = nbt_tensor(NB_SHAPE(3, 5), 0, 1, 51, true);
    nbt_gradcheck("bernoulli", bernoulli_fn, (Tensor *[]){l, x}, 2, NULL);
    tensor_free(l);
    tensor_free(x);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */

START_TEST(test_dist_errors) {
    Tensor *a = tensor_zeros(NB_SHAPE(2, 3)), *b = tensor_zeros(NB_SHAPE(4)),
           *c = tensor_zeros(NB_SHAPE(3, 2));
    NBT_EXPECT_FAIL(nn_normal_from_logvar(a, b), "nn_normal_from_logvar", "[2, 3]", "[4]");
    NBT_EXPECT_FAIL(nn_normal_from_sigma(a, c), "nn_normal_from_sigma", "[2, 3]", "[3, 2]");
    nn_normal q = nn_normal_from_logvar(a, a);
    NBT_EXPECT_FAIL(nn_normal_rsample_eps(&q, b), "nn_normal_rsample", "[4]", "[2, 3]");
    q = nn_normal_from_logvar(a, a);
    NBT_EXPECT_FAIL(nn_normal_log_prob(&q, c), "nn_normal_log_prob", "[3, 2]", "[2, 3]");
    NBT_EXPECT_FAIL(nn_kl_normal_std(a, c), "nn_kl_normal_std", "[2, 3]", "[3, 2]");
    NBT_EXPECT_FAIL(nn_kl_normal_normal(a, a, c, c), "nn_kl_normal_normal", "[2, 3]", "[3, 2]");
    NBT_EXPECT_FAIL(nn_bernoulli_log_prob_logits(a, c), "nn_bernoulli_log_prob_logits", "[2, 3]",
                    "[3, 2]");
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("nn_dist");
    TCase *normal = tcase_create("normal");
    tcase_add_test(normal, test_rsample_value);
    tcase_add_test(normal, test_rsample_gradcheck);
    tcase_add_test(normal, test_rsample_rng);
    tcase_add_test(normal, test_log_prob_entropy_value);
    tcase_add_test(normal, test_log_prob_entropy_gradcheck);
    suite_add_tcase(s, normal);
    TCase *kl = tcase_create("kl");
    tcase_add_test(kl, test_kl_std_value);
    tcase_add_test(kl, test_kl_normal_normal_matches_std);
    tcase_add_test(kl, test_kl_monte_carlo);
    tcase_add_test(kl, test_kl_gradcheck);
    tcase_add_test(kl, test_logvar_guard);
    suite_add_tcase(s, kl);
    TCase *other = tcase_create("other");
    tcase_add_test(other, test_bernoulli);
    tcase_add_test(other, test_bernoulli_gradcheck);
    tcase_add_test(other, test_dist_errors);
    suite_add_tcase(s, other);
    return s;
}

NB_CHECK_MAIN(suite)
