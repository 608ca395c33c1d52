/* tests/test_module.c: modules (nn/module.h): each module's forward equals the op it wraps,
 * parameter names are PyTorch's state_dict keys, train/eval mode reaches every child, a user's
 * own module trains inside a Sequential, nn_module_free frees everything, and a checkpoint of a
 * module round-trips (and loads in PyTorch when /usr/bin/python3 has torch). */
#include "tests/check_main.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autograd/autograd.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "tests/testutil.h"

/* ---- helpers ------------------------------------------------------------------------------- */

/* Asserts a and b have one shape and equal values: exactly (the module calls the same op), or
 * exactly after rounding to float (a checkpoint stores F32, so the double build rounds). */
static void assert_equal(const Tensor *a, const Tensor *b, const char *what, bool as_f32) {
    ck_assert_msg(tensor_same_shape(a, b), "%s: shapes differ", what);
    int64_t n = a->numel;
    real *va = nb_malloc((size_t)n * sizeof *va), *vb = nb_malloc((size_t)n * sizeof *vb);
    tensor_to_array(a, va);
    tensor_to_array(b, vb);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(as_f32 ? (float)va[i] == (float)vb[i] : va[i] == vb[i],
                      "%s: element %lld: %g != %g", what, (long long)i, (double)va[i],
                      (double)vb[i]);
    nb_free(va);
    nb_free(vb);
}

static void assert_same(const Tensor *a, const Tensor *b, const char *what) {
    assert_equal(a, b, what, false);
}

/* The names of m's parameters and buffers under prefix, joined with ' ' ("0.weight 0.bias"). */
static void names_of(nn_module *m, const char *prefix, char *out, size_t len) {
    nn_params ps = {0};
    nn_module_params(m, prefix, &ps);
    out[0] = 0;
    for (int i = 0; i < ps.n; i++) {
        if (i) strncat(out, " ", len - strlen(out) - 1);
        strncat(out, ps.items[i].name, len - strlen(out) - 1);
        if (ps.items[i].buffer) strncat(out, "(b)", len - strlen(out) - 1);
    }
    nn_params_free(&ps);
}

static Tensor *find(nn_module *m, const char *name) {
    nn_params ps = {0};
    nn_module_params(m, NULL, &ps);
    Tensor *t = nn_params_find(&ps, name);
    nn_params_free(&ps);
    ck_assert_msg(t != NULL, "no parameter '%s'", name);
    return t;
}

/* ---- Sequential, Linear, activations ------------------------------------------------------- */

START_TEST(test_sequential_forward_and_names) {
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nn_module *net = nn_sequential(nn_linear_module(5, 4, true, &rng), nn_relu_module(),
                                   nn_linear_module(4, 3, false, &rng), nn_sigmoid_module(), NULL);
    ck_assert_int_eq(nn_sequential_len(net), 4);
    ck_assert_str_eq(net->ops->type, "Sequential");
    ck_assert_str_eq(nn_sequential_at(net, 1)->ops->type, "ReLU");
    char names[512];
    names_of(net, "net", names, sizeof names);
    ck_assert_str_eq(names, "net.0.weight net.0.bias net.2.weight");
    names_of(net, NULL, names, sizeof names);
    ck_assert_str_eq(names, "0.weight 0.bias 2.weight");

    Tensor *x = nbt_tensor(NB_SHAPE(2, 5), -1, 1, 7, false);
    Tensor *y = nn_forward(net, x);
    nn_linear l1 = {find(net, "0.weight"), find(net, "0.bias"), 5, 4};
    nn_linear l2 = {find(net, "2.weight"), NULL, 4, 3};
    Tensor *want = ag_sigmoid(nn_linear_forward(&l2, ag_relu(nn_linear_forward(&l1, x))));
    assert_same(y, want, "sequential");
    ck_assert_int_eq(y->shape[1], 3);

    /* the PyTorch default init: U(-1/sqrt(in), 1/sqrt(in)) */
    Tensor *w = find(net, "0.weight");
    double bound = 1 / sqrt(5.0);
    for (int64_t i = 0; i < w->numel; i++) ck_assert(fabs((double)w->data[i]) <= bound);
    ag_reset();
    tensor_free(x);
    nn_module_free(net);
}
END_TEST

START_TEST(test_named_children_and_nesting) {
    nn_module *enc = nn_sequential(NULL);
    nn_sequential_add(enc, "fc1", nn_linear_module(3, 2, true, NULL));
    nn_sequential_add(enc, "act", nn_tanh_module());
    nn_module *net = nn_sequential(enc, NULL);
    nn_sequential_add(net, "head", nn_linear_module(2, 1, true, NULL));
    nn_sequential_append(net, nn_leaky_relu_module(0.1f)); /* named "2": its position */
    char names[512];
    names_of(net, "model", names, sizeof names);
    ck_assert_str_eq(names,
                     "model.0.fc1.weight model.0.fc1.bias model.head.weight model.head.bias");
    ck_assert_str_eq(nn_sequential_at(net, 2)->ops->type, "LeakyReLU");

    nn_module *relu = nn_relu_module();
    NBT_EXPECT_FAIL(nn_sequential_add(net, "head", relu), "'head' is taken");
    NBT_EXPECT_FAIL(nn_sequential_add(net, "a.b", NULL), "is NULL");
    NBT_EXPECT_FAIL(nn_sequential_add(net, "a.b", relu), "no '.'");
    NBT_EXPECT_FAIL(nn_sequential_append(relu, net), "ReLU, not a Sequential");
    NBT_EXPECT_FAIL(nn_sequential_at(net, 3), "index 3 out of range [0, 3)");
    nn_module_free(relu);
    nn_module_free(net);
    nn_module_free(NULL);
}
END_TEST

START_TEST(test_activations_equal_ops) {
    Tensor *x = nbt_tensor(NB_SHAPE(3, 4), -3, 3, 11, false);
    struct {
        nn_module *m;
        Tensor *want;
        const char *type;
    } cases[] = {
        {nn_relu_module(), ag_relu(x), "ReLU"},
        {nn_sigmoid_module(), ag_sigmoid(x), "Sigmoid"},
        {nn_tanh_module(), ag_tanh(x), "Tanh"},
        {nn_leaky_relu_module(0.2f), nn_leaky_relu(x, 0.2f), "LeakyReLU"},
        {nn_activation_module("Softplus", nn_softplus), nn_softplus(x), "Softplus"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_str_eq(cases[i].m->ops->type, cases[i].type);
        assert_same(nn_forward(cases[i].m, x), cases[i].want, cases[i].type);
        char names[64];
        names_of(cases[i].m, "a", names, sizeof names);
        ck_assert_str_eq(names, "");
        nn_module_free(cases[i].m);
    }
    ag_reset();
    tensor_free(x);
}
END_TEST

START_TEST(test_flatten_unflatten) {
    Tensor *x = nbt_tensor(NB_SHAPE(2, 3, 4, 5), -1, 1, 3, true);
    nn_module *f = nn_flatten(1, -1), *g = nn_flatten(1, 2), *h = nn_flatten(0, 0);
    Tensor *y = nn_forward(f, x);
    ck_assert_int_eq(y->ndim, 2);
    ck_assert_int_eq(y->shape[1], 60);
    assert_same(y, ag_reshape(x, NB_SHAPE(2, 60)), "flatten");
    Tensor *z = nn_forward(g, x);
    ck_assert_int_eq(z->ndim, 3);
    ck_assert_int_eq(z->shape[1], 12);
    ck_assert_int_eq(nn_forward(h, x)->ndim, 4);

    nn_module *u = nn_unflatten(1, 3, (int64_t[]){3, -1, 5});
    Tensor *back = nn_forward(u, y);
    ck_assert_int_eq(back->ndim, 4);
    ck_assert_int_eq(back->shape[2], 4);
    assert_same(back, x, "unflatten");
    /* gradients flow through both */
    ag_backward(ag_sum(ag_mul_scalar(back, 2)));
    for (int64_t i = 0; i < x->numel; i++) ck_assert(x->grad->data[i] == 2);

    nn_module *bad = nn_unflatten(1, 2, (int64_t[]){7, 8});
    NBT_EXPECT_FAIL(nn_forward(bad, y), "nn_unflatten", "[2, 60]", "[7, 8]");
    NBT_EXPECT_FAIL(nn_unflatten(0, 2, (int64_t[]){-1, -1}), "one may be -1");
    nn_module *rev = nn_flatten(2, 1);
    NBT_EXPECT_FAIL(nn_forward(rev, x), "start_dim 2 comes after end_dim 1");
    ag_reset();
    nn_module_free(f);
    nn_module_free(g);
    nn_module_free(h);
    nn_module_free(u);
    nn_module_free(bad);
    nn_module_free(rev);
    tensor_free(x);
}
END_TEST

/* ---- train/eval and a user's own module ---------------------------------------------------- */

/* A user module: y = x * scale + shift, scale and shift [D] ("scale", "shift"); it counts how
 * often its train hook runs, to show containers pass the mode on. */
typedef struct {
    nn_module base;
    Tensor *scale, *shift; /* [D] */
    int train_calls;
} affine;

static Tensor *affine_forward(nn_module *m, Tensor *x) {
    affine *a = (affine *)m;
    return ag_add(ag_mul(x, a->scale), a->shift);
}

static void affine_collect(nn_module *m, const char *prefix, nn_params *ps) {
    affine *a = (affine *)m;
    nn_params_add(ps, prefix, "scale", a->scale);
    nn_params_add(ps, prefix, "shift", a->shift);
}

static void affine_train(nn_module *m, bool on) {
    (void)on;
    ((affine *)m)->train_calls++;
}

static void affine_free(nn_module *m) {
    affine *a = (affine *)m;
    tensor_free(a->scale);
    tensor_free(a->shift);
    nb_free(a);
}

static const nn_module_ops affine_ops = {"Affine", affine_forward, affine_collect, affine_train,
                                         affine_free};

static nn_module *affine_new(int64_t D) {
    affine *a = nn_module_alloc(sizeof *a, &affine_ops);
    a->scale = tensor_ones(NB_SHAPE(D));
    a->shift = tensor_zeros(NB_SHAPE(D));
    return &a->base;
}

START_TEST(test_user_module_trains_in_sequential) {
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    nn_module *user = affine_new(3);
    nn_module *net = nn_sequential(nn_linear_module(4, 3, true, &rng), user, NULL);
    nn_sequential_add(net, "out", nn_linear_module(3, 1, true, &rng));
    char names[512];
    names_of(net, NULL, names, sizeof names);
    ck_assert_str_eq(names, "0.weight 0.bias 1.scale 1.shift out.weight out.bias");

    nn_params ps = {0};
    nn_module_params(net, NULL, &ps);
    nn_optim *opt = nn_optim_sgd(&ps, nn_sgd_defaults(0.1));
    Tensor *x = nbt_tensor(NB_SHAPE(8, 4), -1, 1, 9, false);
    Tensor *t = nbt_tensor(NB_SHAPE(8, 1), -1, 1, 10, false);
    double first = 0, last = 0;
    for (int step = 0; step < 30; step++) {
        nn_optim_zero_grad(opt);
        Tensor *d = ag_sub(nn_forward(net, x), t);
        Tensor *loss = ag_mean(ag_mul(d, d));
        ag_backward(loss);
        ck_assert_ptr_nonnull(((affine *)user)->scale->grad); /* the user's parameters learn */
        if (step == 0) first = tensor_item(loss);
        last = tensor_item(loss);
        nn_optim_step(opt);
        ag_reset();
    }
    ck_assert_msg(last < 0.5 * first, "loss %g -> %g", first, last);
    ck_assert(((affine *)user)->scale->data[0] != 1);

    nn_module_train(net, false);
    ck_assert(!net->training && !user->training && !nn_sequential_at(net, 2)->training);
    ck_assert_int_eq(((affine *)user)->train_calls, 1);
    nn_module_train(net, true);
    ck_assert(net->training && user->training);
    ck_assert_int_eq(((affine *)user)->train_calls, 2);

    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(x);
    tensor_free(t);
    nn_module_free(net);
}
END_TEST

/* Builds a nested network, runs a forward and backward through it and frees it all. */
static void build_run_free(bool check_grown) {
    int64_t live = nb_mem_stats().live;
    nn_module *net = nn_sequential(nn_linear_module(6, 5, true, NULL), nn_tanh_module(), NULL);
    nn_module *inner = nn_sequential(affine_new(5), nn_flatten(1, -1), NULL);
    nn_sequential_add(inner, "un", nn_unflatten(1, 2, (int64_t[]){5, 1}));
    nn_sequential_add(net, "inner", inner);
    nn_params ps = {0};
    nn_module_params(net, "m", &ps);
    Tensor *x = tensor_randn(NB_SHAPE(3, 6), NULL);
    ag_backward(ag_sum(nn_forward(net, x)));
    ck_assert_ptr_nonnull(find(net, "0.weight")->grad);
    if (check_grown) ck_assert_int_gt(nb_mem_stats().live, live);
    ag_reset();
    nn_params_free(&ps);
    tensor_free(x);
    nn_module_free(net);
    arena_free_all();
}

/* After a first run has grown the tape (kept for the process), a second run leaves no block. */
START_TEST(test_free_releases_everything) {
    build_run_free(false);
    int64_t live = nb_mem_stats().live;
    build_run_free(true);
    ck_assert_int_eq(nb_mem_stats().live, live);
}
END_TEST

/* ---- checkpoints --------------------------------------------------------------------------- */

static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/nabla_module_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Every parameter and buffer of a equals b's bit for bit (same names in the same order). */
static void assert_params_equal(nn_module *a, nn_module *b) {
    nn_params pa = {0}, pb = {0};
    nn_module_params(a, NULL, &pa);
    nn_module_params(b, NULL, &pb);
    ck_assert_int_eq(pa.n, pb.n);
    for (int i = 0; i < pa.n; i++) {
        ck_assert_str_eq(pa.items[i].name, pb.items[i].name);
        ck_assert(pa.items[i].buffer == pb.items[i].buffer);
        assert_equal(pa.items[i].t, pb.items[i].t, pa.items[i].name, true);
    }
    nn_params_free(&pa);
    nn_params_free(&pb);
}

static void save(nn_module *m, const char *path) {
    nn_params ps = {0};
    nn_module_params(m, NULL, &ps);
    nn_ckpt_error err;
    ck_assert_msg(nn_checkpoint_save(path, &ps, NULL, NULL, 0, &err) == NN_CKPT_OK, "%s",
                  err.message);
    nn_params_free(&ps);
}

static void load(nn_module *m, const char *path) {
    nn_params ps = {0};
    nn_module_params(m, NULL, &ps);
    nn_ckpt_error err;
    ck_assert_msg(nn_checkpoint_load(path, &ps, NULL, NULL, &err) == NN_CKPT_OK, "%s", err.message);
    nn_params_free(&ps);
}

static nn_module *mlp(uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nn_module *net = nn_sequential(nn_linear_module(4, 6, true, &rng), nn_relu_module(), NULL);
    nn_sequential_add(net, "head", nn_linear_module(6, 2, true, &rng));
    return net;
}

START_TEST(test_checkpoint_round_trip) {
    char path[128];
    snprintf(path, sizeof path, "%s/mlp.safetensors", dir);
    nn_module *a = mlp(1), *b = mlp(2);
    save(a, path);
    load(b, path);
    assert_params_equal(a, b);
    nn_module_free(a);
    nn_module_free(b);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("module");
    TCase *t = tcase_create("module");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_sequential_forward_and_names);
    tcase_add_test(t, test_named_children_and_nesting);
    tcase_add_test(t, test_activations_equal_ops);
    tcase_add_test(t, test_flatten_unflatten);
    tcase_add_test(t, test_user_module_trains_in_sequential);
    tcase_add_test(t, test_free_releases_everything);
    tcase_add_test(t, test_checkpoint_round_trip);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
