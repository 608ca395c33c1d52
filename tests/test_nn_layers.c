/* tests/test_nn_layers.c: initializers, the Linear layer and the activations. */
#include <math.h>
#include <setjmp.h>
#include <string.h>

#include "autograd/gradcheck.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "tests/check_main.h"
#include "tests/testutil.h"

/* ---- helpers --------------------------------------------------------------------------------- */

/* Moves every element at least `gap` away from 0 (keeps inputs off the relu kink). */
static void away_from_zero(Tensor *t, real gap) {
    for (int64_t i = 0; i < t->numel; i++)
        if (fabs((double)t->data[i]) < gap) t->data[i] = t->data[i] < 0 ? -gap : gap;
}

/* Sample mean and standard deviation of a contiguous tensor. */
static void moments(const Tensor *t, double *mean, double *std) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < t->numel; i++) s += t->data[i];
    *mean = s / (double)t->numel;
    for (int64_t i = 0; i < t->numel; i++) s2 += (t->data[i] - *mean) * (t->data[i] - *mean);
    *std = sqrt(s2 / (double)(t->numel - 1));
}

static double max_abs(const Tensor *t) {
    double m = 0;
    for (int64_t i = 0; i < t->numel; i++) m = fmax(m, fabs((double)t->data[i]));
    return m;
}

/* ---- initializers ---------------------------------------------------------------------------- */

START_TEST(test_fans_and_gains) {
    Tensor *w = tensor_empty(NB_SHAPE(20, 30));
    Tensor *conv = tensor_empty(NB_SHAPE(8, 4, 3, 3));
    int64_t fi, fo;
    nn_init_fans("test", w, &fi, &fo);
    ck_assert_int_eq(fi, 30);
    ck_assert_int_eq(fo, 20);
    nn_init_fans("test", conv, &fi, &fo);
    ck_assert_int_eq(fi, 36);
    ck_assert_int_eq(fo, 72);
    ck_assert_double_eq_tol(nn_init_gain(NN_GAIN_LINEAR, 0), 1, 1e-12);
    ck_assert_double_eq_tol(nn_init_gain(NN_GAIN_SIGMOID, 0), 1, 1e-12);
    ck_assert_double_eq_tol(nn_init_gain(NN_GAIN_TANH, 0), 5.0 / 3.0, 1e-12);
    ck_assert_double_eq_tol(nn_init_gain(NN_GAIN_RELU, 0), sqrt(2.0), 1e-12);
    ck_assert_double_eq_tol(nn_init_gain(NN_GAIN_LEAKY_RELU, sqrt(5.0)), sqrt(1.0 / 3.0), 1e-12);
    ck_assert_double_eq_tol(nn_init_gain(NN_GAIN_LEAKY_RELU, 0.01), sqrt(2.0 / 1.0001), 1e-12);
    tensor_free(w);
    tensor_free(conv);
}
END_TEST

START_TEST(test_uniform_normal_constant) {
    nb_rng r;
    nb_rng_seed(&r, 1);
    Tensor *t = tensor_empty(NB_SHAPE(100, 100));
    nn_init_uniform_(t, -0.5, 2.0, &r);
    double mean, std;
    moments(t, &mean, &std);
    real lo = 1e9, hi = -1e9;
    for (int64_t i = 0; i < t->numel; i++) {
        lo = t->data[i] < lo ? t->data[i] : lo;
        hi = t->data[i] > hi ? t->data[i] : hi;
    }
    ck_assert(lo >= -0.5 && hi < 2.0 && lo < -0.49 && hi > 1.99);
    ck_assert_double_eq_tol(mean, 0.75, 0.03);
    ck_assert_double_eq_tol(std, 2.5 / sqrt(12.0), 0.02);

    nn_init_normal_(t, 3.0, 0.5, &r);
    moments(t, &mean, &std);
    ck_assert_double_eq_tol(mean, 3.0, 0.02);
    ck_assert_double_eq_tol(std, 0.5, 0.01);

    nn_init_constant_(t, 7);
    ck_assert(t->data[0] == 7 && t->data[t->numel - 1] == 7);

    /* The same seed gives the same values; NULL draws from the global generator. */
    Tensor *a = tensor_empty(NB_SHAPE(5)), *b = tensor_empty(NB_SHAPE(5));
    nb_manual_seed(9);
    nn_init_normal_(a, 0, 1, NULL);
    nb_manual_seed(9);
    nn_init_normal_(b, 0, 1, NULL);
    ck_assert_mem_eq(a->data, b->data, 5 * sizeof(real));
    tensor_free(a);
    tensor_free(b);
    tensor_free(t);
}
END_TEST

START_TEST(test_xavier_kaiming) {
    nb_rng r;
    nb_rng_seed(&r, 2);
    Tensor *w = tensor_empty(NB_SHAPE(200, 300)); /* fan_in 300, fan_out 200 */
    double mean, std;

    nn_init_xavier_uniform_(w, 2.0, &r);
    double b = 2.0 * sqrt(6.0 / 500.0);
    ck_assert(max_abs(w) <= b && max_abs(w) > 0.99 * b);
    moments(w, &mean, &std);
    ck_assert_double_eq_tol(std, b / sqrt(3.0), 0.01 * b);

    nn_init_xavier_normal_(w, 1.0, &r);
    moments(w, &mean, &std);
    ck_assert_double_eq_tol(std, sqrt(2.0 / 500.0), 0.01 * sqrt(2.0 / 500.0));
    ck_assert_double_eq_tol(mean, 0, 0.01 * std);

    nn_init_kaiming_uniform_(w, 0, NN_FAN_IN, NN_GAIN_RELU, &r);
    b = sqrt(2.0) * sqrt(3.0 / 300.0);
    ck_assert(max_abs(w) <= b && max_abs(w) > 0.99 * b);

    nn_init_kaiming_uniform_(w, 0.2, NN_FAN_OUT, NN_GAIN_LEAKY_RELU, &r);
    b = sqrt(2.0 / 1.04) * sqrt(3.0 / 200.0);
    ck_assert(max_abs(w) <= b && max_abs(w) > 0.99 * b);

    nn_init_kaiming_normal_(w, 0, NN_FAN_OUT, NN_GAIN_RELU, &r);
    moments(w, &mean, &std);
    ck_assert_double_eq_tol(std, sqrt(2.0 / 200.0), 0.01 * sqrt(2.0 / 200.0));

    nn_init_kaiming_normal_(w, 0, NN_FAN_IN, NN_GAIN_LINEAR, &r);
    moments(w, &mean, &std);
    ck_assert_double_eq_tol(std, sqrt(1.0 / 300.0), 0.01 * sqrt(1.0 / 300.0));
    tensor_free(w);
}
END_TEST

/* Initializers write through strides: a transposed view of a tensor gets every element. */
START_TEST(test_init_strided_view) {
    Tensor *t = tensor_zeros(NB_SHAPE(3, 4));
    Tensor v = *t;
    tensor_layout_transpose(t, 0, 1, &v);
    nn_init_constant_(&v, 2);
    for (int64_t i = 0; i < 12; i++) ck_assert(t->data[i] == 2);
    nb_rng r;
    nb_rng_seed(&r, 3);
    nn_init_uniform_(&v, 5, 6, &r);
    for (int64_t i = 0; i < 12; i++) ck_assert(t->data[i] >= 5 && t->data[i] < 6);
    tensor_free(t);
}
END_TEST

START_TEST(test_init_errors) {
    Tensor *v = tensor_empty(NB_SHAPE(5));
    NBT_EXPECT_FAIL(nn_init_xavier_uniform_(v, 1, NULL), "nn_init_xavier_uniform_", "[5]");
    NBT_EXPECT_FAIL(nn_init_kaiming_normal_(v, 0, NN_FAN_IN, NN_GAIN_RELU, NULL),
                    "nn_init_kaiming_normal_", "2 or more dims");
    NBT_EXPECT_FAIL(nn_init_uniform_(v, 1, 0, NULL), "nn_init_uniform_", "above");
    NBT_EXPECT_FAIL(nn_init_normal_(v, 0, -1, NULL), "nn_init_normal_", "negative");
    tensor_free(v);
}
END_TEST

/* ---- Linear ---------------------------------------------------------------------------------- */

START_TEST(test_linear_init_bounds) {
    nb_rng r;
    nb_rng_seed(&r, 4);
    nn_linear l;
    nn_linear_init(&l, 50, 400, true, &r);
    ck_assert_int_eq(l.in, 50);
    ck_assert_int_eq(l.out, 400);
    ck_assert_int_eq(l.weight->ndim, 2);
    ck_assert_int_eq(l.weight->shape[0], 400);
    ck_assert_int_eq(l.weight->shape[1], 50);
    ck_assert_int_eq(l.bias->shape[0], 400);
    double b = 1.0 / sqrt(50.0), mean, std;
    ck_assert(max_abs(l.weight) <= b && max_abs(l.weight) > 0.99 * b);
    ck_assert(max_abs(l.bias) <= b && max_abs(l.bias) > 0.9 * b);
    moments(l.weight, &mean, &std);
    ck_assert_double_eq_tol(std, b / sqrt(3.0), 0.02 * b);
    ck_assert_double_eq_tol(mean, 0, 0.02 * b);
    nn_linear_free(&l);
    ck_assert_ptr_null(l.weight);

    nn_linear_init(&l, 3, 2, false, &r);
    ck_assert_ptr_null(l.bias);
    nn_linear_free(&l);
    nn_linear_free(NULL);
}
END_TEST

/* y = x W^T + b by hand: W = [[1, 2, 3], [4, 5, 6]], b = [0.5, -1]. */
START_TEST(test_linear_forward_value) {
    nn_linear l;
    nn_linear_init(&l, 3, 2, true, NULL);
    const real w[] = {1, 2, 3, 4, 5, 6}, bias[] = {0.5, -1};
    memcpy(l.weight->data, w, sizeof w);
    memcpy(l.bias->data, bias, sizeof bias);
    Tensor *x = tensor_from_array(NB_SHAPE(2, 3), (real[]){1, 0, -1, 2, 1, 0});
    Tensor *y = nn_linear_forward(&l, x);
    ck_assert_int_eq(y->ndim, 2);
    ck_assert_int_eq(y->shape[0], 2);
    ck_assert_int_eq(y->shape[1], 2);
    const real expect[] = {-1.5, -3, 4.5, 12};
    real got[4];
    tensor_to_array(y, got);
    for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(got[i], expect[i], 1e-5);

    /* 1-D input [3] -> [2]; 3-D input [2, 1, 3] -> [2, 1, 2] with the same rows. */
    Tensor *x1 = tensor_from_array(NB_SHAPE(3), (real[]){2, 1, 0});
    Tensor *y1 = nn_linear_forward(&l, x1);
    ck_assert_int_eq(y1->ndim, 1);
    ck_assert_double_eq_tol(tensor_get(y1, (int64_t[]){1}), 12, 1e-5);
    Tensor *x3 = tensor_from_array(NB_SHAPE(2, 1, 3), (real[]){1, 0, -1, 2, 1, 0});
    Tensor *y3 = nn_linear_forward(&l, x3);
    ck_assert_int_eq(y3->ndim, 3);
    ck_assert_int_eq(y3->shape[2], 2);
    tensor_to_array(y3, got);
    for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(got[i], expect[i], 1e-5);

    /* One fused op reads the weight through its strides: no transpose copy, no separate add. */
    tensor_requires_grad(l.weight, true);
    ag_reset();
    nn_linear_forward(&l, x);
    ck_assert_int_eq(ag_tape_length(), 1);
    ck_assert_str_eq(ag_tape_at(0)->op, "linear");
    ag_reset();
    tensor_free(x);
    tensor_free(x1);
    tensor_free(x3);
    nn_linear_free(&l);
}
END_TEST

static Tensor *linear_fn(Tensor *const *in, void *ctx) {
    nn_linear l = {in[1], in[2], in[1]->shape[1], in[1]->shape[0]};
    (void)ctx;
    return nn_linear_forward(&l, in[0]);
}

START_TEST(test_linear_gradcheck) {
    Tensor *x2 = nbt_tensor(NB_SHAPE(4, 3), -1, 1, 10, true);
    Tensor *x3 = nbt_tensor(NB_SHAPE(2, 3, 3), -1, 1, 11, true); /* leading dims flattened */
    Tensor *W = nbt_tensor(NB_SHAPE(5, 3), -1, 1, 12, true);
    Tensor *b = nbt_tensor(NB_SHAPE(5), -1, 1, 13, true); /* broadcast over rows */
    nbt_gradcheck("linear 2-D", linear_fn, (Tensor *[]){x2, W, b}, 3, NULL);
    nbt_gradcheck("linear 3-D", linear_fn, (Tensor *[]){x3, W, b}, 3, NULL);
    /* A non-contiguous input (a transposed view would be copied into rows). */
    Tensor *xt = nbt_tensor(NB_SHAPE(3, 4), -1, 1, 14, false);
    Tensor *xt_rows = tensor_copy(xt);
    nn_linear l = {W, b, 3, 5};
    Tensor v = *xt;
    tensor_layout_transpose(xt, 0, 1, &v); /* [4, 3] view */
    Tensor *y = nn_linear_forward(&l, &v);
    ck_assert_int_eq(y->shape[0], 4);
    ck_assert_int_eq(y->shape[1], 5);
    /* row 1 of the view is column 1 of xt */
    double want = b->data[2];
    for (int k = 0; k < 3; k++) want += W->data[2 * 3 + k] * xt_rows->data[k * 4 + 1];
    ck_assert_double_eq_tol(tensor_get(y, (int64_t[]){1, 2}), want, 1e-5);
    ag_reset();
    tensor_free(xt);
    tensor_free(xt_rows);
    tensor_free(x2);
    tensor_free(x3);
    tensor_free(W);
    tensor_free(b);
}
END_TEST

START_TEST(test_linear_params) {
    nn_linear l;
    nn_linear_init(&l, 4, 2, true, NULL);
    nn_params ps = {0};
    nn_linear_params(&l, "encoder.fc1", &ps);
    ck_assert_int_eq(ps.n, 2);
    ck_assert_ptr_eq(nn_params_find(&ps, "encoder.fc1.weight"), l.weight);
    ck_assert_ptr_eq(nn_params_find(&ps, "encoder.fc1.bias"), l.bias);
    ck_assert(l.weight->requires_grad && l.bias->requires_grad);
    ck_assert_int_eq(nn_params_count(&ps), 10);
    /* zero_grad zeroes every listed gradient; names are unique */
    Tensor *one = tensor_ones(NB_SHAPE(1, 4));
    ag_backward(ag_sum(nn_linear_forward(&l, one)));
    tensor_free(one);
    ck_assert(l.bias->grad->data[0] == 1);
    nn_params_zero_grad(&ps);
    ck_assert(l.bias->grad->data[0] == 0 && l.weight->grad->data[3] == 0);
    NBT_EXPECT_FAIL(nn_params_add(&ps, "encoder.fc1", "bias", l.bias), "already listed");
    ag_reset();
    nn_params_free(&ps);
    nn_linear_free(&l);

    nn_linear_init(&l, 4, 2, false, NULL);
    nn_linear_params(&l, "fc", &ps);
    ck_assert_int_eq(ps.n, 1);
    nn_params_free(&ps);
    nn_linear_free(&l);
}
END_TEST

/* Once the arena has grown, a training step through Linear allocates nothing on the heap, and
 * nn_linear_free returns everything nn_linear_init took. */
static void linear_step(nn_linear *l, Tensor *x) {
    ag_backward(ag_sum(nn_relu(nn_linear_forward(l, x))));
    ag_reset();
}

START_TEST(test_linear_memory) {
    Tensor *x = nbt_tensor(NB_SHAPE(8, 6), -1, 1, 20, false);
    nn_linear warm;
    nn_linear_init(&warm, 6, 3, true, NULL);
    tensor_requires_grad(warm.weight, true);
    linear_step(&warm, x);
    linear_step(&warm, x);
    nn_linear_free(&warm);

    nb_mem_stats_t before = nb_mem_stats();
    nn_linear l;
    nn_linear_init(&l, 6, 3, true, NULL);
    nn_params ps = {0};
    nn_linear_params(&l, "fc", &ps);
    linear_step(&l, x); /* makes the kept .grad tensors */
    int64_t allocs = nb_mem_stats().allocs;
    linear_step(&l, x);
    linear_step(&l, x);
    ck_assert_int_eq(nb_mem_stats().allocs, allocs);
    nn_params_free(&ps);
    nn_linear_free(&l);
    ck_assert_int_eq(nb_mem_stats().live, before.live);
    ck_assert_int_eq(nb_mem_stats().live_bytes, before.live_bytes);
    tensor_free(x);
}
END_TEST

START_TEST(test_linear_shape_error) {
    nn_linear l;
    nn_linear_init(&l, 3, 2, true, NULL);
    Tensor *x = tensor_zeros(NB_SHAPE(4, 5));
    NBT_EXPECT_FAIL(nn_linear_forward(&l, x), "nn_linear", "[4, 5]", "[2, 3]");
    Tensor *s = tensor_scalar(1);
    NBT_EXPECT_FAIL(nn_linear_forward(&l, s), "nn_linear", "[]");
    NBT_EXPECT_FAIL(nn_linear_init(&l, 0, 2, true, NULL), "nn_linear_init", "positive");
    tensor_free(x);
    tensor_free(s);
    nn_linear_free(&l);
}
END_TEST

/* ---- activations ----------------------------------------------------------------------------- */

START_TEST(test_activation_values) {
    Tensor *x = tensor_from_array(NB_SHAPE(5), (real[]){-100, -2, 0.5, 3, 100});
    real v[5];
    tensor_to_array(nn_relu(x), v);
    ck_assert(v[0] == 0 && v[1] == 0 && v[2] == (real)0.5 && v[4] == 100);
    tensor_to_array(nn_leaky_relu(x, (real)0.1), v);
    ck_assert_double_eq_tol(v[1], -0.2, 1e-6);
    ck_assert_double_eq_tol(v[0], -10, 1e-5);
    ck_assert_double_eq_tol(v[3], 3, 1e-6);
    tensor_to_array(nn_sigmoid(x), v);
    ck_assert_double_eq_tol(v[1], 1 / (1 + exp(2.0)), 1e-6);
    ck_assert(v[0] >= 0 && v[0] < 1e-30 && v[4] == 1);
    tensor_to_array(nn_tanh(x), v);
    ck_assert_double_eq_tol(v[2], tanh(0.5), 1e-6);
    tensor_to_array(nn_softplus(x), v);
    ck_assert(isfinite(v[0]) && v[0] >= 0 && v[0] < 1e-30);
    ck_assert_double_eq_tol(v[1], log1p(exp(-2.0)), 1e-6);
    ck_assert_double_eq_tol(v[4], 100, 1e-4);
    ag_reset();
    tensor_free(x);
}
END_TEST

static Tensor *act_fn(Tensor *const *in, void *ctx) {
    switch (*(const int *)ctx) {
    case 0:
        return nn_relu(in[0]);
    case 1:
        return nn_leaky_relu(in[0], (real)0.2);
    case 2:
        return nn_sigmoid(in[0]);
    case 3:
        return nn_tanh(in[0]);
    default:
        return nn_softplus(in[0]);
    }
}

START_TEST(test_activation_gradcheck) {
    static const char *names[] = {"relu", "leaky_relu", "sigmoid", "tanh", "softplus"};
    Tensor *x = nbt_tensor(NB_SHAPE(3, 4), -3, 3, 30, true);
    away_from_zero(x, (real)0.05);
    for (int k = 0; k < 5; k++) nbt_gradcheck(names[k], act_fn, (Tensor *[]){x}, 1, &k);
    tensor_free(x);
}
END_TEST

/* An MLP (Linear -> relu -> Linear -> sigmoid), gradient checked end to end. */
static Tensor *mlp_fn(Tensor *const *in, void *ctx) {
    (void)ctx;
    nn_linear a = {in[1], in[2], 4, 5}, b = {in[3], NULL, 5, 2};
    return nn_sigmoid(nn_linear_forward(&b, nn_relu(nn_linear_forward(&a, in[0]))));
}

START_TEST(test_mlp_gradcheck) {
    Tensor *x = nbt_tensor(NB_SHAPE(6, 4), -1, 1, 40, false);
    Tensor *W1 = nbt_tensor(NB_SHAPE(5, 4), -1, 1, 41, true);
    Tensor *b1 = nbt_tensor(NB_SHAPE(5), 0.2, 0.5, 42, true);
    Tensor *W2 = nbt_tensor(NB_SHAPE(2, 5), -1, 1, 43, true);
    /* keep the hidden pre-activations off relu's kink */
    ag_set_grad_enabled(false);
    nn_linear a = {W1, b1, 4, 5};
    for (int tries = 0, near = 1; near && tries < 50; tries++) {
        Tensor *h = nn_linear_forward(&a, x); /* [6, 5] */
        near = 0;
        for (int64_t i = 0; i < h->numel; i++)
            if (fabs((double)h->data[i]) < 0.02) b1->data[i % 5] += (real)0.03, near = 1;
        ag_reset();
    }
    ag_set_grad_enabled(true);
    nbt_gradcheck("mlp", mlp_fn, (Tensor *[]){x, W1, b1, W2}, 4, NULL);
    tensor_free(x);
    tensor_free(W1);
    tensor_free(b1);
    tensor_free(W2);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("nn_layers");
    TCase *init = tcase_create("init");
    tcase_add_test(init, test_fans_and_gains);
    tcase_add_test(init, test_uniform_normal_constant);
    tcase_add_test(init, test_xavier_kaiming);
    tcase_add_test(init, test_init_strided_view);
    tcase_add_test(init, test_init_errors);
    suite_add_tcase(s, init);
    TCase *lin = tcase_create("linear");
    tcase_add_test(lin, test_linear_init_bounds);
    tcase_add_test(lin, test_linear_forward_value);
    tcase_add_test(lin, test_linear_gradcheck);
    tcase_add_test(lin, test_linear_params);
    tcase_add_test(lin, test_linear_memory);
    tcase_add_test(lin, test_linear_shape_error);
    suite_add_tcase(s, lin);
    TCase *act = tcase_create("activations");
    tcase_add_test(act, test_activation_values);
    tcase_add_test(act, test_activation_gradcheck);
    tcase_add_test(act, test_mlp_gradcheck);
    suite_add_tcase(s, act);
    return s;
}

NB_CHECK_MAIN(suite)
