/* tests/test_optim_open.c: optimizers are open: two defined here, outside nn/optim.c (signSGD
 * with momentum, "signum", and Adagrad with an initial accumulator), run through the same
 * nn_optim_step, nn_optim_zero_grad, state enumeration and checkpoints as the built-in ones.
 * Also: optimizers and clipping leave buffer entries of an nn_params alone. */
#include "tests/check_main.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "autograd/autograd.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "tests/testutil.h"

/* ---- signum: m = beta m + (1 - beta) g; p -= lr sign(m) -------------------------------------- */

typedef struct {
    double beta;
} signum_opts;

static int signum_state_names(const void *hyper, const char **names) {
    (void)hyper;
    names[0] = "momentum_buffer";
    return 1;
}

static void signum_update(const void *hyper, double lr, int64_t step, real *p, const real *grad,
                          real *const *state, int64_t n) {
    (void)step;
    const signum_opts *o = hyper;
    real *m = state[0];
    for (int64_t j = 0; j < n; j++) {
        m[j] = (real)o->beta * m[j] + (real)(1 - o->beta) * grad[j];
        p[j] -= (real)lr * (real)((m[j] > 0) - (m[j] < 0));
    }
}

static const nn_optim_ops signum_ops = {"signum", NN_OPTIM_CUSTOM, signum_state_names, NULL,
                                        signum_update};

static nn_optim *signum_new(const nn_params *ps, double lr, double beta) {
    signum_opts o = {beta};
    return nn_optim_new(ps, &signum_ops, &o, sizeof o, lr);
}

/* ---- Adagrad with initial_accumulator_value: shows init_state ------------------------------ */

typedef struct {
    double init, eps;
} adagrad_opts;

static int adagrad_state_names(const void *hyper, const char **names) {
    (void)hyper;
    names[0] = "sum";
    return 1;
}

static void adagrad_init(const void *hyper, const Tensor *p, Tensor *const *state) {
    (void)p;
    tensor_fill(state[0], (real)((const adagrad_opts *)hyper)->init);
}

static void adagrad_update(const void *hyper, double lr, int64_t step, real *p, const real *grad,
                           real *const *state, int64_t n) {
    (void)step;
    const adagrad_opts *o = hyper;
    for (int64_t j = 0; j < n; j++) {
        state[0][j] += grad[j] * grad[j];
        p[j] -= (real)lr * grad[j] / ((real)sqrt(state[0][j]) + (real)o->eps);
    }
}

static const nn_optim_ops adagrad_ops = {"adagrad", NN_OPTIM_CUSTOM, adagrad_state_names,
                                         adagrad_init, adagrad_update};

/* ---- tests ----------------------------------------------------------------------------------- */

static void set_grad(Tensor *p, const real *g) {
    Tensor *grad = ag_grad(p);
    memcpy(grad->data, g, (size_t)p->numel * sizeof *g);
}

START_TEST(test_user_optimizer_steps) {
    Tensor *w = tensor_from_array(NB_SHAPE(3), (real[]){1, 2, 3});
    Tensor *b = tensor_from_array(NB_SHAPE(1), (real[]){0});
    nn_params ps = {0};
    nn_params_add(&ps, "fc", "weight", w);
    nn_params_add(&ps, "fc", "bias", b);
    nn_optim *opt = signum_new(&ps, 0.5, 0.5);
    ck_assert_int_eq(nn_optim_get_kind(opt), NN_OPTIM_CUSTOM);
    ck_assert_str_eq(nn_optim_name(opt), "signum");
    ck_assert_double_eq(((const signum_opts *)nn_optim_hyper(opt))->beta, 0.5);

    /* step 1: m = g / 2, p -= 0.5 sign(g) */
    set_grad(w, (real[]){4, -2, 0});
    set_grad(b, (real[]){-1});
    nn_optim_step(opt);
    real want1[] = {0.5, 2.5, 3};
    for (int i = 0; i < 3; i++) ck_assert(w->data[i] == want1[i]);
    ck_assert(b->data[0] == 0.5);
    /* step 2 on w only (b's gradient cleared): m = (2, -1, 0) / 2 + (-8, 1, 2) / 2 = (-3, 0, 1) */
    nn_optim_zero_grad(opt);
    ck_assert_ptr_null(w->grad);
    set_grad(w, (real[]){-8, 1, 2});
    nn_optim_step(opt);
    real want2[] = {1, 2.5, 2.5};
    for (int i = 0; i < 3; i++) ck_assert(w->data[i] == want2[i]);
    ck_assert(b->data[0] == 0.5);

    /* the state enumeration: one buffer per parameter, then the step counters */
    ck_assert_int_eq(nn_optim_state_count(opt), 4);
    const char *names[] = {"momentum_buffer.fc.weight", "momentum_buffer.fc.bias", "step.fc.weight",
                           "step.fc.bias"};
    int64_t steps[] = {0, 0, 2, 1};
    for (int i = 0; i < 4; i++) {
        nn_optim_state st = nn_optim_state_at(opt, i);
        ck_assert_str_eq(st.name, names[i]);
        if (i >= 2) ck_assert_int_eq(*st.count, steps[i]);
    }
    nn_optim_state m = nn_optim_state_at(opt, 0);
    ck_assert(m.t->data[0] == -3 && m.t->data[1] == 0 && m.t->data[2] == 1);
    ck_assert_int_eq(nn_optim_steps(opt), 2);
    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(w);
    tensor_free(b);
}
END_TEST

START_TEST(test_init_state) {
    Tensor *w = tensor_from_array(NB_SHAPE(2), (real[]){1, 1});
    nn_params ps = {0};
    nn_params_add(&ps, NULL, "w", w);
    adagrad_opts o = {0.25, 0};
    nn_optim *opt = nn_optim_new(&ps, &adagrad_ops, &o, sizeof o, 1.0);
    ck_assert(nn_optim_state_at(opt, 0).t->data[1] == (real)0.25);
    set_grad(w, (real[]){0, 1}); /* sum (0.25, 1.25): p -= g / sqrt(sum) */
    nn_optim_step(opt);
    ck_assert(w->data[0] == 1);
    ck_assert_double_eq_tol(w->data[1], 1 - 1 / sqrt(1.25), 1e-6);
    NBT_EXPECT_FAIL(nn_optim_new(&ps, &adagrad_ops, &o, sizeof o, -1), "adagrad",
                    "learning rate -1");
    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(w);
}
END_TEST

START_TEST(test_user_optimizer_checkpoint) {
    char dir[64], path[128];
    snprintf(dir, sizeof dir, "/tmp/nabla_optim_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/o.safetensors", dir);
    Tensor *w = tensor_from_array(NB_SHAPE(2), (real[]){1, -1});
    nn_params ps = {0};
    nn_params_add(&ps, NULL, "w", w);
    nn_optim *a = signum_new(&ps, 0.1, 0.9), *b = signum_new(&ps, 0.1, 0.9);
    for (int t = 0; t < 3; t++) {
        set_grad(w, (real[]){(real)(t + 1), (real)(-2 * t)});
        nn_optim_step(a);
    }
    nn_ckpt_error err;
    ck_assert_msg(nn_checkpoint_save(path, &ps, a, NULL, 0, &err) == NN_CKPT_OK, "%s", err.message);
    ck_assert_msg(nn_checkpoint_load(path, &ps, b, NULL, &err) == NN_CKPT_OK, "%s", err.message);
    for (int i = 0; i < nn_optim_state_count(a); i++) {
        nn_optim_state sa = nn_optim_state_at(a, i), sb = nn_optim_state_at(b, i);
        if (sa.t)
            for (int j = 0; j < 2; j++) /* stored as F32 */
                ck_assert((float)sa.t->data[j] == (float)sb.t->data[j]);
        else
            ck_assert_int_eq(*sa.count, *sb.count);
    }
    nn_optim *adam = nn_optim_adam(&ps, nn_adam_defaults(0.1));
    ck_assert_int_eq(nn_checkpoint_load(path, &ps, adam, NULL, &err), NN_CKPT_OPTIM);
    ck_assert_msg(strstr(err.message, "'signum', the optimizer is 'adam'"), "%s", err.message);
    unlink(path);
    rmdir(dir);
    nn_optim_free(a);
    nn_optim_free(b);
    nn_optim_free(adam);
    nn_params_free(&ps);
    tensor_free(w);
}
END_TEST

/* Buffers (running statistics) are listed with the parameters but never trained or clipped. */
START_TEST(test_buffers_are_skipped) {
    Tensor *w = tensor_from_array(NB_SHAPE(2), (real[]){1, 2});
    Tensor *stat = tensor_from_array(NB_SHAPE(2), (real[]){5, 6});
    nn_params ps = {0};
    nn_params_add_buffer(&ps, "bn", "running_mean", stat);
    nn_params_add(&ps, "bn", "weight", w);
    ck_assert(!stat->requires_grad && w->requires_grad);
    nn_optim *opts[] = {nn_optim_adam(&ps, nn_adam_defaults(0.1)),
                        nn_optim_sgd(&ps, nn_sgd_defaults(0.1)), signum_new(&ps, 0.1, 0.5)};
    const int nstate[] = {3, 1, 2}; /* w's entries only: Adam 2 buffers + step, SGD step, ... */
    for (int k = 0; k < 3; k++) {
        set_grad(w, (real[]){3, 0});
        set_grad(stat, (real[]){4, 4}); /* as if something had written one */
        nn_optim_state first = nn_optim_state_at(opts[k], 0);
        ck_assert_msg(strstr(first.name, "bn.weight"), "%s", first.name);
        ck_assert_int_eq(nn_optim_state_count(opts[k]), nstate[k]);
        double norm = nn_clip_grad_norm(&ps, 1.0, NULL);
        ck_assert_double_eq_tol(norm, 3, 1e-12); /* the buffer's grad is not counted */
        ck_assert(stat->grad->data[0] == 4);     /* nor scaled */
        nn_optim_step(opts[k]);
        ck_assert(stat->data[0] == 5 && stat->data[1] == 6);
        ck_assert(w->data[0] != 1);
        nn_optim_zero_grad(opts[k]);
        ck_assert_ptr_nonnull(stat->grad); /* zero_grad leaves buffers alone too */
        nn_optim_free(opts[k]);
    }
    ck_assert_int_eq(nn_params_count(&ps), 4);
    nn_params_free(&ps);
    tensor_free(w);
    tensor_free(stat);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("optim_open");
    TCase *t = tcase_create("optim_open");
    tcase_add_test(t, test_user_optimizer_steps);
    tcase_add_test(t, test_init_state);
    tcase_add_test(t, test_user_optimizer_checkpoint);
    tcase_add_test(t, test_buffers_are_skipped);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
