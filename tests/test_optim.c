/* tests/test_optim.c: the optimizers step for step against PyTorch (tests/optim_ref.h, made by
 * tools/ref_optim.py), their state and memory behaviour, gradient clipping and the learning-rate
 * schedules against torch.optim.lr_scheduler. Runs in float and (make DOUBLE=1) double. */
#include "tests/check_main.h"

#include <math.h>
#include <string.h>

#include "autograd/autograd.h"
#include "nn/optim.h"
#include "tests/optim_ref.h"
#include "tests/testutil.h"

#ifdef NB_DOUBLE
#define REL_TOL 1e-12
#else
#define REL_TOL 1e-6
#endif

/* |got - want| <= tol * max(1, |want|) */
static void assert_near(double got, double want, double tol, const char *what, int step, int i) {
    double scale = fabs(want) > 1 ? fabs(want) : 1;
    ck_assert_msg(fabs(got - want) <= tol * scale, "%s: step %d element %d: got %.17g, want %.17g",
                  what, step, i, got, want);
}

/* ---- against PyTorch ----------------------------------------------------------------------- */

static nn_optim *optim_for(const optim_ref_case *c, const nn_params *ps) {
    switch (c->kind) {
    case OPTIM_REF_SGD:
        return nn_optim_sgd(ps, (nn_sgd_opts){.lr = c->lr,
                                              .momentum = c->momentum,
                                              .dampening = c->dampening,
                                              .weight_decay = c->weight_decay,
                                              .nesterov = c->nesterov});
    case OPTIM_REF_ADAM:
    case OPTIM_REF_ADAMW: {
        nn_adam_opts o = {.lr = c->lr,
                          .beta1 = c->beta1,
                          .beta2 = c->beta2,
                          .eps = c->eps,
                          .weight_decay = c->weight_decay,
                          .amsgrad = c->amsgrad};
        return c->kind == OPTIM_REF_ADAM ? nn_optim_adam(ps, o) : nn_optim_adamw(ps, o);
    }
    case OPTIM_REF_RMSPROP:
        return nn_optim_rmsprop(ps, (nn_rmsprop_opts){.lr = c->lr,
                                                      .alpha = c->alpha,
                                                      .eps = c->eps,
                                                      .weight_decay = c->weight_decay,
                                                      .momentum = c->momentum,
                                                      .centered = c->centered});
    }
    return NULL;
}

/* One torch.optim case: feed gradient row t at step t and compare all parameters after it. */
START_TEST(test_against_pytorch) {
    const optim_ref_case *c = &optim_ref_cases[_i];
    real init[OPTIM_REF_N];
    for (int i = 0; i < OPTIM_REF_N; i++) init[i] = (real)optim_ref_init[i];
    Tensor *p = tensor_from_array(NB_SHAPE(OPTIM_REF_N), init);
    nn_params ps = {0};
    nn_params_add(&ps, NULL, "p", p);
    nn_optim *opt = optim_for(c, &ps);
    ck_assert_ptr_nonnull(opt);
    Tensor *g = ag_grad(p);
    for (int t = 0; t < OPTIM_REF_STEPS; t++) {
        for (int i = 0; i < OPTIM_REF_N; i++) g->data[i] = (real)optim_ref_grads[t][i];
        nn_optim_step(opt);
        for (int i = 0; i < OPTIM_REF_N; i++)
            assert_near(p->data[i], c->after[t][i], REL_TOL, c->name, t, i);
    }
    ck_assert_int_eq(nn_optim_steps(opt), OPTIM_REF_STEPS);
    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(p);
}
END_TEST

/* ---- behaviour ------------------------------------------------------------------------------ */

/* Two parameters, one of which never gets a grad: it is left alone and its step stays 0. */
START_TEST(test_null_grad_skipped) {
    Tensor *a = tensor_full(NB_SHAPE(3), 1), *b = tensor_full(NB_SHAPE(2), 2);
    nn_params ps = {0};
    nn_params_add(&ps, NULL, "a", a);
    nn_params_add(&ps, NULL, "b", b);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(0.1));
    tensor_fill(ag_grad(a), 1);
    nn_optim_step(opt);
    nn_optim_step(opt);
    ck_assert(b->grad == NULL);
    ck_assert(b->data[0] == 2 && b->data[1] == 2);
    ck_assert(a->data[0] < 1);
    for (int i = 0; i < nn_optim_state_count(opt); i++) {
        nn_optim_state s = nn_optim_state_at(opt, i);
        if (strcmp(s.name, "step.a") == 0) ck_assert_int_eq(*s.count, 2);
        if (strcmp(s.name, "step.b") == 0) ck_assert_int_eq(*s.count, 0);
    }
    /* zero_grad sets grads to none, as PyTorch's default; a keeps its buffer for reuse, and a
     * step with no grads changes nothing */
    nn_optim_zero_grad(opt);
    ck_assert(a->grad == NULL && b->grad == NULL && a->grad_spare != NULL);
    real before = a->data[0];
    nn_optim_step(opt);
    ck_assert(a->data[0] == before);
    Tensor *spare = a->grad_spare;
    ag_backward(ag_sum(ag_mul_scalar(a, 3))); /* the next backward writes into the same buffer */
    ck_assert(a->grad == spare && a->grad->data[0] == 3);
    ag_reset();
    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* A step with a malformed gradient fails naming the parameter, before any parameter moves. */
START_TEST(test_bad_grad_moves_nothing) {
    Tensor *a = tensor_full(NB_SHAPE(3), 1), *b = tensor_full(NB_SHAPE(2), 2);
    nn_params ps = {0};
    nn_params_add(&ps, NULL, "a", a);
    nn_params_add(&ps, NULL, "b", b);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(0.1));
    tensor_fill(ag_grad(a), 1);
    b->grad = tensor_zeros(NB_SHAPE(5)); /* what a careless hand could put there */
    NBT_EXPECT_FAIL(nn_optim_step(opt), "nn_optim_step: the grad of 'b'");
    for (int i = 0; i < 3; i++) ck_assert(a->data[i] == 1);
    ck_assert(b->data[0] == 2 && b->data[1] == 2);
    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* The state is named as PyTorch's state_dict names it, one entry per buffer and parameter. */
START_TEST(test_state_names) {
    Tensor *w = tensor_zeros(NB_SHAPE(2, 3)), *bias = tensor_zeros(NB_SHAPE(3));
    nn_params ps = {0};
    nn_params_add(&ps, "fc1", "weight", w);
    nn_params_add(&ps, "fc1", "bias", bias);
    nn_adam_opts o = nn_adam_defaults(1e-3);
    o.amsgrad = true;
    nn_optim *opt = nn_optim_adam(&ps, o);
    const char *want[] = {"exp_avg.fc1.weight",        "exp_avg.fc1.bias",
                          "exp_avg_sq.fc1.weight",     "exp_avg_sq.fc1.bias",
                          "max_exp_avg_sq.fc1.weight", "max_exp_avg_sq.fc1.bias",
                          "step.fc1.weight",           "step.fc1.bias"};
    ck_assert_int_eq(nn_optim_state_count(opt), 8);
    for (int i = 0; i < 8; i++) {
        nn_optim_state s = nn_optim_state_at(opt, i);
        ck_assert_str_eq(s.name, want[i]);
        ck_assert((s.t == NULL) == (i >= 6));
        ck_assert((s.count != NULL) == (i >= 6));
        if (s.t) ck_assert(tensor_same_shape(s.t, i % 2 ? bias : w));
    }
    NBT_EXPECT_FAIL(nn_optim_state_at(opt, 8), "out of range");
    ck_assert_str_eq(nn_optim_kind_name(nn_optim_get_kind(opt)), "adam");
    nn_optim_free(opt);

    /* RMSprop keeps exactly the buffers its options need */
    nn_rmsprop_opts r = nn_rmsprop_defaults(0.01);
    r.centered = true;
    opt = nn_optim_rmsprop(&ps, r);
    ck_assert_int_eq(nn_optim_state_count(opt), 6);
    ck_assert_str_eq(nn_optim_state_at(opt, 2).name, "grad_avg.fc1.weight");
    nn_optim_free(opt);
    opt = nn_optim_sgd(&ps, nn_sgd_defaults(0.1));
    ck_assert_int_eq(nn_optim_state_count(opt), 2); /* no momentum: only the step counters */
    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(w);
    tensor_free(bias);
}
END_TEST

/* After the first step, steps allocate nothing, for every optimizer and option. */
START_TEST(test_step_allocates_nothing) {
    Tensor *w = tensor_randn(NB_SHAPE(8, 4), NULL), *b = tensor_randn(NB_SHAPE(4), NULL);
    nn_params ps = {0};
    nn_params_add(&ps, NULL, "w", w);
    nn_params_add(&ps, NULL, "b", b);
    tensor_fill(ag_grad(w), 0.5);
    tensor_fill(ag_grad(b), -0.25);
    nn_adam_opts ams = nn_adam_defaults(1e-3);
    ams.amsgrad = true;
    nn_rmsprop_opts rms = {
        .lr = 0.01, .alpha = 0.9, .eps = 1e-6, .momentum = 0.5, .centered = true};
    nn_optim *opts[] = {
        nn_optim_sgd(&ps, (nn_sgd_opts){.lr = 0.1, .momentum = 0.9, .nesterov = true}),
        nn_optim_adam(&ps, ams), nn_optim_adamw(&ps, nn_adamw_defaults(1e-3)),
        nn_optim_rmsprop(&ps, rms)};
    for (int k = 0; k < 4; k++) {
        nn_optim_step(opts[k]);
        int64_t allocs = nb_mem_stats().allocs;
        for (int s = 0; s < 10; s++) {
            nn_optim_step(opts[k]);
            nn_clip_grad_norm(&ps, 1.0, NULL);
        }
        ck_assert_int_eq(nb_mem_stats().allocs, allocs);
        nn_optim_free(opts[k]);
    }
    nn_params_free(&ps);
    tensor_free(w);
    tensor_free(b);
}
END_TEST

/* Adam on autograd's gradients drives a quadratic to its minimum; set_lr takes effect. */
START_TEST(test_adam_minimises) {
    Tensor *x = tensor_from_array(NB_SHAPE(3), (real[]){3, -2, 0.5});
    Tensor *target = tensor_from_array(NB_SHAPE(3), (real[]){1, 1, 1});
    nn_params ps = {0};
    nn_params_add(&ps, NULL, "x", x);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(0.1));
    for (int step = 0; step < 300; step++) {
        nn_optim_zero_grad(opt);
        Tensor *d = ag_sub(x, target);
        ag_backward(ag_sum(ag_mul(d, d)));
        nn_optim_set_lr(opt, nn_lr_cosine(0.1, step, 300, 0.001));
        nn_optim_step(opt);
        ag_reset();
    }
    for (int i = 0; i < 3; i++)
        ck_assert_msg(fabs(x->data[i] - 1) < 1e-3, "x[%d] = %g", i, x->data[i]);
    ck_assert_double_eq_tol(nn_optim_get_lr(opt), nn_lr_cosine(0.1, 299, 300, 0.001), 1e-15);
    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(x);
    tensor_free(target);
}
END_TEST

START_TEST(test_bad_hyperparameters) {
    nn_params ps = {0};
    Tensor *p = tensor_zeros(NB_SHAPE(2));
    nn_params_add(&ps, NULL, "p", p);
    nn_adam_opts a = nn_adam_defaults(1e-3);
    a.beta2 = 1.0;
    NBT_EXPECT_FAIL(nn_optim_adam(&ps, a), "beta2");
    NBT_EXPECT_FAIL(nn_optim_sgd(&ps, (nn_sgd_opts){.lr = 0.1, .nesterov = true}), "nesterov");
    NBT_EXPECT_FAIL(nn_optim_sgd(&ps, nn_sgd_defaults(-1)), "learning rate");
    nn_rmsprop_opts r = nn_rmsprop_defaults(0.01);
    r.eps = -1;
    NBT_EXPECT_FAIL(nn_optim_rmsprop(&ps, r), "eps");
    nn_optim *opt = nn_optim_sgd(&ps, nn_sgd_defaults(0.1));
    NBT_EXPECT_FAIL(nn_optim_set_lr(opt, NAN), "learning rate");
    ck_assert_double_eq(nn_optim_get_lr(opt), 0.1);
    nn_optim_free(opt);
    nn_optim_free(NULL);
    nn_params_free(&ps);
    tensor_free(p);
}
END_TEST

/* ---- gradient clipping ----------------------------------------------------------------------- */

/* torch.nn.utils.clip_grad_norm_([p1, p2], 2.0) with p1.grad = [3, -4] and
 * p2.grad = [[1, 2], [-2, 0.5]] (float64) returns 5.852349955359813 and leaves these grads. */
START_TEST(test_clip_grad_norm) {
    Tensor *a = tensor_zeros(NB_SHAPE(2)), *b = tensor_zeros(NB_SHAPE(2, 2));
    Tensor *c = tensor_zeros(NB_SHAPE(4)); /* no grad: skipped */
    nn_params ps = {0};
    nn_params_add(&ps, NULL, "a", a);
    nn_params_add(&ps, NULL, "b", b);
    nn_params_add(&ps, NULL, "c", c);
    const real ga[] = {3, -4}, gb[] = {1, 2, -2, 0.5};
    memcpy(ag_grad(a)->data, ga, sizeof ga);
    memcpy(ag_grad(b)->data, gb, sizeof gb);
    bool finite = false;
    double norm = nn_clip_grad_norm(&ps, 2.0, &finite);
    ck_assert(finite);
    ck_assert_double_eq_tol(norm, 5.852349955359813, 1e-12);
    const double want[] = {1.0252290140776612, -1.366972018770215,  0.34174300469255375,
                           0.6834860093851075, -0.6834860093851075, 0.17087150234627688};
    for (int i = 0; i < 2; i++) assert_near(a->grad->data[i], want[i], REL_TOL, "clip a", 0, i);
    for (int i = 0; i < 4; i++) assert_near(b->grad->data[i], want[2 + i], REL_TOL, "clip b", 0, i);
    ck_assert(c->grad == NULL);

    /* under the limit: nothing changes, the norm is still returned */
    memcpy(a->grad->data, ga, sizeof ga);
    tensor_fill(b->grad, 0);
    ck_assert_double_eq_tol(nn_clip_grad_norm(&ps, 10.0, NULL), 5.0, 1e-12);
    ck_assert(a->grad->data[0] == 3 && a->grad->data[1] == -4);

    /* a non-finite norm is reported and nothing is scaled */
    a->grad->data[0] = (real)INFINITY;
    norm = nn_clip_grad_norm(&ps, 1.0, &finite);
    ck_assert(!finite && isinf(norm));
    ck_assert(a->grad->data[1] == -4);
    a->grad->data[0] = (real)NAN;
    norm = nn_clip_grad_norm(&ps, 1.0, &finite);
    ck_assert(!finite && isnan(norm));
    ck_assert(a->grad->data[1] == -4);
    NBT_EXPECT_FAIL(nn_clip_grad_norm(&ps, -1.0, NULL), "max_norm");
    nn_params_free(&ps);
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
}
END_TEST

/* ---- schedules: torch.optim.lr_scheduler's learning rates at epochs 0, 1, ... with lr 0.1 --- */

static void assert_schedule(const char *name, const double *want, int n, double (*f)(int64_t)) {
    for (int e = 0; e < n; e++) assert_near(f(e), want[e], 1e-12, name, e, 0);
}

static double step_lr(int64_t e) {
    return nn_lr_step(0.1, e, 3, 0.5);
}
static double cos_lr(int64_t e) {
    return nn_lr_cosine(0.1, e, 8, 0.001);
}
static double lin_lr(int64_t e) {
    return nn_lr_linear(0.1, e, 0.25, 1.0, 4);
}
static double chain_lr(int64_t e) {
    return nn_lr_warmup(nn_lr_step(0.1, e, 2, 0.5), e, 3, 0.1);
}
static double warm_const(int64_t e) {
    return nn_lr_warmup(0.1, e, 4, 0.25);
}

START_TEST(test_schedules) {
    /* StepLR(step_size=3, gamma=0.5) */
    const double step[] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125};
    assert_schedule("StepLR", step, 10, step_lr);
    /* CosineAnnealingLR(T_max=8, eta_min=0.001) */
    const double cosine[] = {0.1,    0.0962320368593087,  0.0855017856687341, 0.06944282990207196,
                             0.0505, 0.03155717009792806, 0.0154982143312659, 0.004767963140691306,
                             0.001};
    assert_schedule("CosineAnnealingLR", cosine, 9, cos_lr);
    /* LinearLR(start_factor=0.25, end_factor=1.0, total_iters=4): warm-up then constant */
    const double linear[] = {0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1, 0.1};
    assert_schedule("LinearLR", linear, 7, lin_lr);
    assert_schedule("warmup", linear, 7, warm_const);
    /* ChainedScheduler([LinearLR(start_factor=0.1, total_iters=3), StepLR(2, 0.5)]) */
    const double chained[] = {0.01, 0.04, 0.035, 0.05, 0.025, 0.025, 0.0125, 0.0125};
    assert_schedule("ChainedScheduler", chained, 8, chain_lr);
    NBT_EXPECT_FAIL(nn_lr_step(0.1, 1, 0, 0.5), "step_size");
    NBT_EXPECT_FAIL(nn_lr_cosine(0.1, -1, 10, 0), "t_max");
    NBT_EXPECT_FAIL(nn_lr_warmup(0.1, 1, 0, 0.5), "total");
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("optim");
    TCase *t = tcase_create("pytorch");
    tcase_add_loop_test(t, test_against_pytorch, 0, OPTIM_REF_NCASES);
    suite_add_tcase(s, t);
    t = tcase_create("behaviour");
    tcase_add_test(t, test_null_grad_skipped);
    tcase_add_test(t, test_bad_grad_moves_nothing);
    tcase_add_test(t, test_state_names);
    tcase_add_test(t, test_step_allocates_nothing);
    tcase_add_test(t, test_adam_minimises);
    tcase_add_test(t, test_bad_hyperparameters);
    suite_add_tcase(s, t);
    t = tcase_create("clip_and_schedules");
    tcase_add_test(t, test_clip_grad_norm);
    tcase_add_test(t, test_schedules);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
