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

/* ---- convolutions, pooling --------------------------------------------------------------- */

/* max |w| over t, to tell PyTorch's init bound 1/sqrt(fan_in) from another fan's. */
static double max_abs(const Tensor *t) {
    double m = 0;
    for (int64_t i = 0; i < t->numel; i++) m = fmax(m, fabs((double)t->data[i]));
    return m;
}

/* In a Sequential, a Conv2d or ConvTranspose2d followed by a ReLU runs as the fused op (one
 * node, the same values); another activation after it, or a ReLU first, is left alone. */
START_TEST(test_sequential_fuses_conv_and_relu) {
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    nb_conv2d_opts o = nb_conv2d_defaults();
    o.padding[0] = o.padding[1] = 1;
    nn_module *conv = nn_conv2d(3, 4, 3, 3, o, true, &rng);
    nn_module *convt = nn_conv_transpose2d(4, 2, 3, 3, o, true, &rng);
    nn_module *net = nn_sequential(conv, nn_relu_module(), convt, nn_relu_module(), NULL);
    Tensor *x = nbt_tensor(NB_SHAPE(2, 3, 5, 4), -1, 1, 6, false);
    Tensor *y = nn_forward(net, x);
    ck_assert_str_eq(y->op, "conv_transpose2d_relu");
    Tensor *w1 = find(conv, "weight"), *b1 = find(conv, "bias");
    Tensor *w2 = find(convt, "weight"), *b2 = find(convt, "bias");
    assert_same(y, ag_relu(ag_conv_transpose2d(ag_relu(ag_conv2d(x, w1, b1, o)), w2, b2, o)),
                "Sequential(Conv2d, ReLU, ConvTranspose2d, ReLU)");
    nn_module *first = nn_sequential(nn_conv2d(3, 4, 3, 3, o, true, &rng), nn_relu_module(), NULL);
    ck_assert_str_eq(nn_forward(first, x)->op, "conv2d_relu");
    nn_module *other = nn_sequential(nn_relu_module(), nn_conv2d(3, 4, 3, 3, o, true, &rng),
                                     nn_sigmoid_module(), NULL);
    ck_assert_str_eq(nn_forward(other, x)->op, "sigmoid");
    ag_reset();
    nn_module_free(net);
    nn_module_free(first);
    nn_module_free(other);
    tensor_free(x);
}
END_TEST

START_TEST(test_conv_modules_equal_ops) {
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_conv2d_opts o = nb_conv2d_defaults();
    o.stride[0] = o.stride[1] = 2;
    o.padding[0] = o.padding[1] = 1;
    o.groups = 2;
    nn_module *c2 = nn_conv2d(4, 6, 3, 2, o, true, &rng);
    char names[256];
    names_of(c2, "enc.0", names, sizeof names);
    ck_assert_str_eq(names, "enc.0.weight enc.0.bias");
    Tensor *w = find(c2, "weight"), *b = find(c2, "bias");
    ck_assert_int_eq(w->ndim, 4);
    ck_assert(w->shape[0] == 6 && w->shape[1] == 2 && w->shape[2] == 3 && w->shape[3] == 2);
    double bound = 1 / sqrt(2.0 * 3 * 2); /* fan_in = in/groups * kh * kw */
    ck_assert(max_abs(w) <= bound && max_abs(w) > 0.8 * bound && max_abs(b) <= bound);
    Tensor *x = nbt_tensor(NB_SHAPE(2, 4, 7, 6), -1, 1, 4, false);
    assert_same(nn_forward(c2, x), ag_conv2d(x, w, b, o), "Conv2d");

    /* ConvTranspose2d: weight [in, out/groups, kh, kw], fan_in = out/groups * kh * kw */
    nb_conv2d_opts t = nb_conv2d_defaults();
    t.stride[0] = t.stride[1] = 2;
    t.output_padding[0] = t.output_padding[1] = 1;
    nn_module *ct = nn_conv_transpose2d(8, 2, 3, 3, t, true, &rng);
    Tensor *wt = find(ct, "weight"), *bt = find(ct, "bias");
    ck_assert(wt->shape[0] == 8 && wt->shape[1] == 2 && wt->shape[2] == 3);
    bound = 1 / sqrt(2.0 * 9);
    ck_assert_msg(max_abs(wt) <= bound && max_abs(wt) > 0.8 * bound, "max %g, bound %g",
                  max_abs(wt), bound);
    ck_assert(max_abs(bt) <= bound);
    Tensor *xt = nbt_tensor(NB_SHAPE(1, 8, 3, 4), -1, 1, 5, false);
    assert_same(nn_forward(ct, xt), ag_conv_transpose2d(xt, wt, bt, t), "ConvTranspose2d");
    ck_assert_str_eq(ct->ops->type, "ConvTranspose2d");

    /* Conv1d without bias: weight [out, in, k] */
    nn_module *c1 = nn_conv1d(3, 5, 4, nb_conv2d_defaults(), false, &rng);
    names_of(c1, NULL, names, sizeof names);
    ck_assert_str_eq(names, "weight");
    Tensor *w1 = find(c1, "weight");
    ck_assert(w1->ndim == 3 && w1->shape[0] == 5 && w1->shape[1] == 3 && w1->shape[2] == 4);
    Tensor *x1 = nbt_tensor(NB_SHAPE(2, 3, 9), -1, 1, 6, false);
    assert_same(nn_forward(c1, x1), ag_conv1d(x1, w1, NULL, nb_conv2d_defaults()), "Conv1d");

    NBT_EXPECT_FAIL(nn_conv2d(3, 6, 3, 3, o, true, NULL), "Conv2d", "groups (2)");
    ag_reset();
    nn_module_free(c2);
    nn_module_free(ct);
    nn_module_free(c1);
    tensor_free(x);
    tensor_free(xt);
    tensor_free(x1);
}
END_TEST

START_TEST(test_pool_modules_equal_ops) {
    Tensor *x = nbt_tensor(NB_SHAPE(2, 3, 8, 6), -1, 1, 8, false);
    nn_module *mp = nn_max_pool2d_module(2, 0, 0), *mp3 = nn_max_pool2d_module(3, 2, 1);
    nn_module *ap = nn_avg_pool2d_module(2, 1, 1), *up = nn_upsample_nearest2d_module(2);
    assert_same(nn_forward(mp, x), ag_max_pool2d(x, 2, 2, 0), "MaxPool2d stride = kernel");
    assert_same(nn_forward(mp3, x), ag_max_pool2d(x, 3, 2, 1), "MaxPool2d");
    assert_same(nn_forward(ap, x), ag_avg_pool2d(x, 2, 1, 1), "AvgPool2d");
    assert_same(nn_forward(up, x), ag_upsample_nearest2d(x, 2), "Upsample");
    ck_assert_str_eq(up->ops->type, "Upsample");
    NBT_EXPECT_FAIL(nn_max_pool2d_module(0, 1, 0), "MaxPool2d", "kernel (scale) > 0");
    ag_reset();
    nn_module_free(mp);
    nn_module_free(mp3);
    nn_module_free(ap);
    nn_module_free(up);
    tensor_free(x);
}
END_TEST

/* ---- normalization ------------------------------------------------------------------------- */

START_TEST(test_batch_norm_train_and_eval) {
    nn_module *bn = nn_batch_norm2d(3, 1e-5f, 0.1f);
    char names[512];
    names_of(bn, "bn", names, sizeof names);
    ck_assert_str_eq(names, "bn.weight bn.bias bn.running_mean(b) bn.running_var(b) "
                            "bn.num_batches_tracked(b)");
    Tensor *w = find(bn, "weight"), *b = find(bn, "bias");
    Tensor *rm = find(bn, "running_mean"), *rv = find(bn, "running_var");
    Tensor *nbt = find(bn, "num_batches_tracked");
    ck_assert(w->data[0] == 1 && b->data[0] == 0 && rm->data[0] == 0 && rv->data[0] == 1);
    ck_assert_int_eq(nbt->ndim, 0);
    for (int i = 0; i < 3; i++) { /* make the affine part visible */
        w->data[i] = (real)(1 + 0.5 * i);
        b->data[i] = (real)(0.1 * i);
    }

    /* training: the op with batch statistics; the running ones move as the op moves them */
    Tensor *x = nbt_tensor(NB_SHAPE(4, 3, 2, 5), -2, 3, 9, false);
    Tensor *rm_want = tensor_zeros(NB_SHAPE(3)), *rv_want = tensor_ones(NB_SHAPE(3));
    for (int step = 1; step <= 2; step++) {
        Tensor *y = nn_forward(bn, x);
        Tensor *want = ag_batch_norm(x, rm_want, rv_want, w, b, true, 0.1f, 1e-5f);
        assert_same(y, want, "BatchNorm2d training");
        assert_same(rm, rm_want, "running_mean");
        assert_same(rv, rv_want, "running_var");
        ck_assert(tensor_item(nbt) == step);
    }
    ck_assert(rm->data[0] != 0 && rv->data[0] != 1);

    /* evaluation: the running statistics, which stay put; num_batches_tracked too */
    nn_module_train(bn, false);
    Tensor *y = nn_forward(bn, x);
    assert_same(y, ag_batch_norm(x, rm_want, rv_want, w, b, false, 0.1f, 1e-5f), "eval");
    assert_same(rm, rm_want, "running_mean in eval");
    ck_assert(tensor_item(nbt) == 2);
    Tensor *ytrain = ag_batch_norm(x, NULL, NULL, w, b, true, 0.1f, 1e-5f);
    ck_assert(y->data[0] != ytrain->data[0]);

    NBT_EXPECT_FAIL(nn_forward(bn, ag_reshape(x, NB_SHAPE(4, 30))), "BatchNorm2d", "[4, 30]");
    NBT_EXPECT_FAIL(nn_forward(bn, ag_reshape(x, NB_SHAPE(4, 6, 1, 5))), "C = 3");
    ag_reset();
    nn_module_free(bn);
    tensor_free(x);
    tensor_free(rm_want);
    tensor_free(rv_want);
}
END_TEST

START_TEST(test_batch_norm1d_and_cumulative_average) {
    nn_module *bn = nn_batch_norm1d(2, 1e-5f, -1); /* momentum=None: the mean of the batches */
    Tensor *a = tensor_from_array(NB_SHAPE(2, 2), (real[]){1, 10, 3, 20});
    Tensor *c = tensor_from_array(NB_SHAPE(2, 2, 1), (real[]){5, 30, 7, 40}); /* [N, C, L] */
    Tensor *ya = nn_forward(bn, a);
    ck_assert_int_eq(ya->ndim, 2);
    Tensor *yc = nn_forward(bn, c);
    ck_assert_int_eq(yc->ndim, 3);
    Tensor *rm = find(bn, "running_mean"), *rv = find(bn, "running_var");
    ck_assert_double_eq_tol(rm->data[0], (2 + 6) / 2.0, 1e-5);   /* batch means 2, 6 */
    ck_assert_double_eq_tol(rm->data[1], (15 + 35) / 2.0, 1e-5); /* 15, 35 */
    ck_assert_double_eq_tol(rv->data[0], (2 + 2) / 2.0, 1e-5);   /* unbiased variances 2, 2 */
    ck_assert_double_eq_tol(rv->data[1], (50 + 50) / 2.0, 1e-4);
    ck_assert(tensor_item(find(bn, "num_batches_tracked")) == 2);
    NBT_EXPECT_FAIL(nn_forward(bn, ag_reshape(c, NB_SHAPE(2, 2, 1, 1))), "BatchNorm1d",
                    "[N, C] or [N, C, L]");
    ag_reset();
    nn_module_free(bn);
    tensor_free(a);
    tensor_free(c);
}
END_TEST

START_TEST(test_layer_norm_equals_op) {
    nn_module *ln = nn_layer_norm(2, (int64_t[]){3, 4}, 1e-5f);
    char names[128];
    names_of(ln, "ln", names, sizeof names);
    ck_assert_str_eq(names, "ln.weight ln.bias");
    Tensor *w = find(ln, "weight"), *b = find(ln, "bias");
    ck_assert(w->ndim == 2 && w->shape[1] == 4 && w->data[5] == 1 && b->data[5] == 0);
    w->data[1] = 2;
    Tensor *x = nbt_tensor(NB_SHAPE(2, 3, 4), -1, 1, 12, false);
    assert_same(nn_forward(ln, x), ag_layer_norm(x, 2, w, b, 1e-5f), "LayerNorm");
    NBT_EXPECT_FAIL(nn_layer_norm(1, (int64_t[]){0}, 1e-5f), "LayerNorm", "positive sizes");
    ag_reset();
    nn_module_free(ln);
    tensor_free(x);
}
END_TEST

/* ---- dropout, embedding, the activations of the element-wise family ------------------------ */

START_TEST(test_dropout_train_and_eval) {
    nb_rng r1, r2;
    nb_rng_seed(&r1, 31);
    nb_rng_seed(&r2, 31);
    nn_module *d = nn_dropout(0.4f, &r1);
    Tensor *x = nbt_tensor(NB_SHAPE(8, 16), 0.5, 1, 13, false);
    Tensor *y = nn_forward(d, x);
    assert_same(y, ag_dropout(x, 0.4f, true, &r2), "Dropout training");
    int zeros = 0;
    for (int64_t i = 0; i < y->numel; i++) zeros += y->data[i] == 0;
    ck_assert_msg(zeros > 20 && zeros < 80, "%d of 128 dropped", zeros);
    nn_module_train(d, false);
    ck_assert_ptr_eq(nn_forward(d, x), x); /* evaluation: the identity */
    NBT_EXPECT_FAIL(nn_dropout(1.5f, NULL), "Dropout", "1.5");
    ag_reset();
    nn_module_free(d);
    tensor_free(x);
}
END_TEST

START_TEST(test_embedding) {
    nb_rng rng;
    nb_rng_seed(&rng, 17);
    nn_module *e = nn_embedding(100, 50, &rng);
    Tensor *w = find(e, "weight");
    ck_assert(w->shape[0] == 100 && w->shape[1] == 50);
    double sum = 0, sq = 0; /* N(0, 1) */
    for (int64_t i = 0; i < w->numel; i++) sum += w->data[i], sq += w->data[i] * w->data[i];
    double mean = sum / (double)w->numel, sd = sqrt(sq / (double)w->numel - mean * mean);
    ck_assert_msg(fabs(mean) < 0.05 && fabs(sd - 1) < 0.05, "mean %g, sd %g", mean, sd);

    Tensor *ids = tensor_from_array(NB_SHAPE(2, 3), (real[]){3, 0, 99, 3, 7, 1});
    Tensor *y = nn_forward(e, ids);
    ck_assert(y->ndim == 3 && y->shape[2] == 50);
    assert_same(y, ag_embedding(w, NB_SHAPE(2, 3), (int64_t[]){3, 0, 99, 3, 7, 1}), "Embedding");
    /* ids read through strides: a transposed view gives the transposed lookup */
    Tensor *yt = nn_forward(e, ag_transpose(ids, 0, 1));
    assert_same(yt, ag_embedding(w, NB_SHAPE(3, 2), (int64_t[]){3, 3, 0, 7, 99, 1}), "strided");
    ag_backward(ag_sum(y));
    ck_assert(w->grad->data[3 * 50] == 2 && w->grad->data[2 * 50] == 0); /* id 3 twice */

    Tensor *bad = tensor_from_array(NB_SHAPE(2), (real[]){1, 2.5});
    NBT_EXPECT_FAIL(nn_forward(e, bad), "Embedding", "id 2.5 (element 1)");
    bad->data[1] = 100;
    NBT_EXPECT_FAIL(nn_forward(e, bad), "id 100", "[0, 100)");
    bad->data[1] = -1;
    NBT_EXPECT_FAIL(nn_forward(e, bad), "id -1");
    ag_reset();
    nn_module_free(e);
    tensor_free(ids);
    tensor_free(bad);
}
END_TEST

START_TEST(test_more_activations_equal_ops) {
    Tensor *x = nbt_tensor(NB_SHAPE(3, 4), -3, 3, 14, false);
    nn_module *g = nn_gelu_module(), *s = nn_silu_module(), *e = nn_elu_module(0.7f);
    assert_same(nn_forward(g, x), ag_gelu(x), "GELU");
    assert_same(nn_forward(s, x), ag_silu(x), "SiLU");
    assert_same(nn_forward(e, x), ag_elu(x, 0.7f), "ELU");
    ck_assert_str_eq(g->ops->type, "GELU");
    ck_assert_str_eq(s->ops->type, "SiLU");
    ck_assert_str_eq(e->ops->type, "ELU");
    ag_reset();
    nn_module_free(g);
    nn_module_free(s);
    nn_module_free(e);
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

/* A buffer may come as I64 (PyTorch saves num_batches_tracked so); a parameter may not. */
START_TEST(test_checkpoint_i64_buffer) {
    char path[128];
    snprintf(path, sizeof path, "%s/bn.safetensors", dir);
    float w[2] = {2, 3}, b[2] = {-1, 1}, rm[2] = {0.5f, 0.25f}, rv[2] = {4, 9};
    int64_t count = 7, wi[2] = {2, 3};
    int64_t shape[1] = {2};
    st_tensor ts[] = {{"weight", ST_F32, 1, shape, w, sizeof w},
                      {"bias", ST_F32, 1, shape, b, sizeof b},
                      {"running_mean", ST_F32, 1, shape, rm, sizeof rm},
                      {"running_var", ST_F32, 1, shape, rv, sizeof rv},
                      {"num_batches_tracked", ST_I64, 0, NULL, &count, sizeof count}};
    ck_assert_int_eq(st_save(path, ts, 5, NULL, 0, NULL), ST_OK);
    nn_module *bn = nn_batch_norm1d(2, 1e-5f, 0.1f);
    load(bn, path);
    ck_assert(tensor_item(find(bn, "num_batches_tracked")) == 7);
    ck_assert(find(bn, "running_var")->data[1] == 9 && find(bn, "weight")->data[0] == 2);

    ts[0] = (st_tensor){"weight", ST_I64, 1, shape, wi, sizeof wi};
    ck_assert_int_eq(st_save(path, ts, 5, NULL, 0, NULL), ST_OK);
    nn_params ps = {0};
    nn_module_params(bn, NULL, &ps);
    nn_ckpt_error err;
    ck_assert_int_eq(nn_checkpoint_load(path, &ps, NULL, NULL, &err), NN_CKPT_DTYPE);
    ck_assert_msg(strstr(err.message, "'weight' has dtype I64, expected F32 or F64"), "%s",
                  err.message);
    nn_params_free(&ps);
    nn_module_free(bn);
}
END_TEST

/* The network tools/torch_load_module.py rebuilds as "cnn": every parameterized module type
 * whose op is merged, named children, buffers. x [N, 1, 6, 6] -> [N, 3]. */
static nn_module *cnn(uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nb_conv2d_opts pad = nb_conv2d_defaults(), up = nb_conv2d_defaults();
    pad.padding[0] = pad.padding[1] = 1;
    up.stride[0] = up.stride[1] = 2;
    up.padding[0] = up.padding[1] = 1;
    up.output_padding[0] = up.output_padding[1] = 1;
    nn_module *features = nn_sequential(
        nn_conv2d(1, 4, 3, 3, pad, true, &rng), nn_batch_norm2d(4, 1e-5f, 0.1f), nn_relu_module(),
        nn_max_pool2d_module(2, 0, 0), nn_conv_transpose2d(4, 2, 3, 3, up, true, &rng),
        nn_flatten(1, -1), nn_layer_norm(1, (int64_t[]){72}, 1e-5f),
        nn_unflatten(1, 2, (int64_t[]){2, 36}),
        nn_conv1d(2, 3, 5, nb_conv2d_defaults(), true, &rng), nn_flatten(1, -1), NULL);
    nn_module *net = nn_sequential(NULL);
    nn_sequential_add(net, "features", features);
    nn_sequential_add(net, "head", nn_linear_module(96, 3, true, &rng));
    return net;
}

/* A few Adam steps in training mode on an MSE to fixed targets: the parameters and batch norm's
 * running statistics all move away from their initial values. */
static void train_steps(nn_module *net, Tensor *x, int64_t out, int steps) {
    nn_params ps = {0};
    nn_module_params(net, NULL, &ps);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(0.01));
    Tensor *t = nbt_tensor(NB_SHAPE(x->shape[0], out), -1, 1, 77, false); /* targets */
    for (int s = 0; s < steps; s++) {
        nn_optim_zero_grad(opt);
        Tensor *d = ag_sub(nn_forward(net, x), t);
        ag_backward(ag_mean(ag_mul(d, d)));
        nn_optim_step(opt);
        ag_reset();
    }
    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(t);
}

/* Saves net and (x, net's output in evaluation mode) under dir, then asks PyTorch to load the
 * checkpoint into its twin of `arch` and compare outputs; skipped, saying so, without torch.
 * Then loads the state_dict torch writes back (in torch's dtypes: num_batches_tracked is I64)
 * into `back`, a module of the same architecture, which must then equal net. */
static void torch_check(const char *arch, nn_module *net, Tensor *x, nn_module *back) {
    if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0 ||
        access("tools/torch_load_module.py", R_OK) != 0) {
        fprintf(stderr,
                "test_module: SKIPPED the PyTorch load_state_dict check of '%s' "
                "(no torch for /usr/bin/python3, or not run from the repository root)\n",
                arch);
        return;
    }
    char model_path[128], io_path[128], back_path[128], cmd[640];
    snprintf(model_path, sizeof model_path, "%s/%s.safetensors", dir, arch);
    snprintf(io_path, sizeof io_path, "%s/%s_io.safetensors", dir, arch);
    snprintf(back_path, sizeof back_path, "%s/%s_torch.safetensors", dir, arch);
    save(net, model_path);
    nn_module_train(net, false);
    Tensor *y = tensor_copy(nn_forward(net, x));
    ag_reset();
    nn_params io = {0};
    nn_params_add_buffer(&io, NULL, "x", x);
    nn_params_add_buffer(&io, NULL, "y", y);
    nn_ckpt_error err;
    ck_assert_msg(nn_checkpoint_save(io_path, &io, NULL, NULL, 0, &err) == NN_CKPT_OK, "%s",
                  err.message);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/torch_load_module.py %s %s %s %s 1>&2", arch,
             model_path, io_path, back_path);
    ck_assert_msg(system(cmd) == 0, "PyTorch could not load or match the '%s' checkpoint", arch);
    load(back, back_path);
    assert_params_equal(net, back);
    nn_params_free(&io);
    tensor_free(y);
}

START_TEST(test_checkpoint_with_buffers_round_trip) {
    char path[128];
    snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
    Tensor *x = nbt_tensor(NB_SHAPE(5, 1, 6, 6), -1, 1, 21, false);
    nn_module *a = cnn(1), *b = cnn(2);
    train_steps(a, x, 3, 3);
    Tensor *rm = find(a, "features.1.running_mean");
    ck_assert(rm->data[0] != 0 && tensor_item(find(a, "features.1.num_batches_tracked")) == 3);
    save(a, path);
    load(b, path);
    assert_params_equal(a, b); /* parameters and buffers, bit for bit (F32) */
    nn_module_train(a, false);
    nn_module_train(b, false);
    Tensor *ya = nn_forward(a, x), *yb = nn_forward(b, x);
    real want[15];
    tensor_to_array(ya, want);
    nbt_assert_close(yb, want, 1e-5);
    ag_reset();
    nn_module *c = cnn(3);
    torch_check("cnn", a, x, c);
    nn_module_free(c);
    nn_module_free(a);
    nn_module_free(b);
    tensor_free(x);
}
END_TEST

/* The network tools/torch_load_module.py rebuilds as "emb": ids [N, 3] -> [N, 4]. */
static nn_module *emb(uint64_t seed) { /* dropout draws from the global generator: rng dies */
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    return nn_sequential(nn_embedding(10, 6, &rng), nn_dropout(0.3f, NULL), nn_gelu_module(),
                         nn_flatten(1, -1), nn_linear_module(18, 8, true, &rng), nn_silu_module(),
                         nn_layer_norm(1, (int64_t[]){8}, 1e-5f), nn_elu_module(0.5f),
                         nn_linear_module(8, 4, false, &rng), nn_leaky_relu_module(0.2f),
                         nn_tanh_module(), nn_sigmoid_module(), NULL);
}

/* Every module type, trained a step with Adam and freed: no block is left (after a first pass
 * that grows the tape, which the process keeps). */
static void every_module_type(void) {
    Tensor *x = nbt_tensor(NB_SHAPE(2, 1, 6, 6), -1, 1, 23, false);
    Tensor *ids = tensor_from_array(NB_SHAPE(2, 3), (real[]){0, 1, 2, 9, 8, 7});
    nn_module *a = cnn(1), *b = emb(2);
    nn_module *c = nn_sequential(nn_avg_pool2d_module(2, 0, 0), nn_upsample_nearest2d_module(2),
                                 nn_flatten(1, -1), nn_batch_norm1d(36, 1e-5f, 0.1f), NULL);
    train_steps(a, x, 3, 1);
    train_steps(b, ids, 4, 1);
    train_steps(c, x, 36, 1);
    nn_module_free(a);
    nn_module_free(b);
    nn_module_free(c);
    tensor_free(x);
    tensor_free(ids);
    arena_free_all();
}

START_TEST(test_free_every_module_type) {
    every_module_type();
    int64_t live = nb_mem_stats().live;
    every_module_type();
    ck_assert_int_eq(nb_mem_stats().live, live);
}
END_TEST

START_TEST(test_checkpoint_loads_in_pytorch_emb) {
    Tensor *ids = tensor_from_array(NB_SHAPE(4, 3), (real[]){0, 1, 2, 9, 8, 7, 3, 3, 3, 5, 0, 4});
    nn_module *net = emb(4), *back = emb(5);
    train_steps(net, ids, 4, 2);
    torch_check("emb", net, ids, back);
    nn_module_free(net);
    nn_module_free(back);
    tensor_free(ids);
}
END_TEST

START_TEST(test_checkpoint_loads_in_pytorch_mlp) {
    Tensor *x = nbt_tensor(NB_SHAPE(3, 4), -1, 1, 22, false);
    nn_module *net = mlp(3), *back = mlp(4);
    torch_check("mlp", net, x, back);
    nn_module_free(net);
    nn_module_free(back);
    tensor_free(x);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("module");
    TCase *t = tcase_create("module");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_sequential_forward_and_names);
    tcase_add_test(t, test_named_children_and_nesting);
    tcase_add_test(t, test_activations_equal_ops);
    tcase_add_test(t, test_sequential_fuses_conv_and_relu);
    tcase_add_test(t, test_flatten_unflatten);
    tcase_add_test(t, test_conv_modules_equal_ops);
    tcase_add_test(t, test_pool_modules_equal_ops);
    tcase_add_test(t, test_batch_norm_train_and_eval);
    tcase_add_test(t, test_batch_norm1d_and_cumulative_average);
    tcase_add_test(t, test_layer_norm_equals_op);
    tcase_add_test(t, test_dropout_train_and_eval);
    tcase_add_test(t, test_embedding);
    tcase_add_test(t, test_more_activations_equal_ops);
    tcase_add_test(t, test_user_module_trains_in_sequential);
    tcase_add_test(t, test_free_releases_everything);
    tcase_add_test(t, test_checkpoint_round_trip);
    tcase_add_test(t, test_checkpoint_i64_buffer);
    tcase_add_test(t, test_free_every_module_type);
    suite_add_tcase(s, t);
    TCase *torch = tcase_create("pytorch"); /* starts /usr/bin/python3 with torch: slow */
    tcase_add_checked_fixture(torch, setup, teardown);
    tcase_set_timeout(torch, 300);
    tcase_add_test(torch, test_checkpoint_with_buffers_round_trip);
    tcase_add_test(torch, test_checkpoint_loads_in_pytorch_mlp);
    tcase_add_test(torch, test_checkpoint_loads_in_pytorch_emb);
    suite_add_tcase(s, torch);
    return s;
}

NB_CHECK_MAIN(suite)
