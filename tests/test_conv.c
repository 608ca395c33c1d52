/* tests/test_conv.c: conv2d, conv_transpose2d, conv1d, max/avg pooling and nearest upsampling:
 * values and gradients against PyTorch (tests/conv_ref.h, from tools/ref_conv.py), gradient
 * checks of every case (every option, strided inputs), argument errors, the same bits on 1 and
 * 2 threads, and no allocation on a repeated step. Runs in float and (make DOUBLE=1) double. */
#include "tests/check_main.h"
#include "tests/conv_ref.h"
#include "tensor/gemm.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdlib.h>

/* ---- building a case's inputs -------------------------------------------------------------- */

/* A layout view of base that shows the case's x (view 1: transposed dims 1, 2; view 2: narrowed
 * dim 2 from 1). */
static void x_view(const conv_ref_case *c, Tensor *base, Tensor *out) {
    if (c->view == 1)
        tensor_layout_transpose(base, 1, 2, out);
    else if (c->view == 2)
        tensor_layout_narrow(base, 2, 1, c->x[2], out);
    else
        *out = *base;
}

/* A kept tensor of `shape` holding conv_ref_value(i, seed) at row-major index i. */
static Tensor *ref_tensor(int ndim, const int64_t *shape, int seed) {
    Tensor *t = tensor_empty(ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (real)conv_ref_value(i, seed);
    return t;
}

/* in[0] the kept tensor under x's view, in[1] w, in[2] b (each only if the case has it); all
 * require grad. Returns the number of inputs. */
static int make_inputs(const conv_ref_case *c, Tensor **in) {
    int64_t base[4];
    for (int d = 0; d < c->xnd; d++) base[d] = c->x[d];
    if (c->view == 1) base[1] = c->x[2], base[2] = c->x[1];
    if (c->view == 2) base[2] = c->x[2] + 3;
    in[0] = tensor_zeros(c->xnd, base);
    Tensor v, *logical = ref_tensor(c->xnd, c->x, CONV_REF_SEED_X);
    x_view(c, in[0], &v);
    tensor_copy_into(&v, logical);
    tensor_free(logical);
    int n = 1;
    if (c->wnd) in[n++] = ref_tensor(c->wnd, c->w, CONV_REF_SEED_W);
    if (c->bias) {
        int64_t o = c->op == CONV_REF_CONVT ? c->w[1] * c->groups : c->w[0];
        in[n++] = ref_tensor(1, (int64_t[]){o}, CONV_REF_SEED_B);
    }
    for (int i = 0; i < n; i++) tensor_requires_grad(in[i], true);
    return n;
}

static nb_conv2d_opts case_opts(const conv_ref_case *c) {
    nb_conv2d_opts o = {.groups = c->groups};
    for (int d = 0; d < 2; d++) {
        o.stride[d] = c->stride[d];
        o.padding[d] = c->padding[d];
        o.dilation[d] = c->dilation[d];
        o.output_padding[d] = c->output_padding[d];
    }
    return o;
}

/* The case's op on the inputs of make_inputs (an ag_fn: ctx is the case). */
static Tensor *apply(Tensor *const *in, void *ctx) {
    const conv_ref_case *c = ctx;
    Tensor *x = in[0];
    if (c->view == 1) x = ag_transpose(x, 1, 2);
    if (c->view == 2) x = ag_narrow(x, 2, 1, c->x[2]);
    Tensor *w = c->wnd ? in[1] : NULL, *b = c->bias ? in[c->wnd ? 2 : 1] : NULL;
    nb_conv2d_opts o = case_opts(c);
    switch (c->op) {
    case CONV_REF_CONV2D:
        return ag_conv2d(x, w, b, o);
    case CONV_REF_CONVT:
        return ag_conv_transpose2d(x, w, b, o);
    case CONV_REF_CONV1D:
        return ag_conv1d(x, w, b, o);
    case CONV_REF_MAXPOOL:
        return ag_max_pool2d(x, c->kernel, c->stride[0], c->padding[0]);
    case CONV_REF_AVGPOOL:
        return ag_avg_pool2d(x, c->kernel, c->stride[0], c->padding[0]);
    case CONV_REF_UPSAMPLE:
        return ag_upsample_nearest2d(x, c->scale);
    }
    return NULL;
}

/* float sums of a few dozen products of values in [-1, 1) */
static const double TOL = sizeof(real) == sizeof(float) ? 2e-5 : 1e-12;

/* ---- against PyTorch ------------------------------------------------------------------------ */

START_TEST(matches_pytorch) {
    const conv_ref_case *c = &conv_ref_cases[_i];
    Tensor *in[3];
    int n = make_inputs(c, in);
    Tensor *y = apply(in, (void *)c);
    ck_assert_int_eq(y->ndim, c->ynd);
    for (int d = 0; d < c->ynd; d++) ck_assert_int_eq(y->shape[d], c->y[d]);
    nbt_assert_ref(c->name, "y", y, c->y_vals, TOL);
    Tensor *g = ref_tensor(y->ndim, y->shape, CONV_REF_SEED_G);
    ag_backward_with(y, g);
    Tensor dx;
    x_view(c, in[0]->grad, &dx);
    nbt_assert_ref(c->name, "dx", &dx, c->dx, TOL);
    if (c->wnd) nbt_assert_ref(c->name, "dw", in[1]->grad, c->dw, TOL);
    if (c->bias) nbt_assert_ref(c->name, "db", in[n - 1]->grad, c->db, TOL);
    ag_reset();
    tensor_free(g);
    for (int i = 0; i < n; i++) tensor_free(in[i]);
}
END_TEST

/* ---- finite differences ----------------------------------------------------------------------
 * Every case of the table, its inputs spaced 2/211 apart so no max-pooling window has two
 * values within the step of one another. */

START_TEST(gradcheck_every_case) {
    const conv_ref_case *c = &conv_ref_cases[_i];
    Tensor *in[3];
    int n = make_inputs(c, in);
    nbt_gradcheck(c->name, apply, in, n, (void *)c);
    for (int i = 0; i < n; i++) tensor_free(in[i]);
}
END_TEST

/* gradients reach x, w and b through every path when only some of them require grad */
START_TEST(gradients_only_where_asked) {
    const conv_ref_case *c = &conv_ref_cases[1]; /* conv2d with bias */
    Tensor *in[3];
    int n = make_inputs(c, in);
    tensor_requires_grad(in[0], false);
    tensor_requires_grad(in[2], false);
    Tensor *y = apply(in, (void *)c);
    ag_backward(ag_sum(y));
    ck_assert_ptr_null(in[0]->grad);
    ck_assert_ptr_nonnull(in[1]->grad);
    ck_assert_ptr_null(in[2]->grad);
    ag_reset();
    for (int i = 0; i < n; i++) tensor_free(in[i]);
}
END_TEST

/* a weight read through a transposed view gives the same values and gradients as a contiguous
 * one (the op copies it; the gradient still reaches the viewed tensor) */
static Tensor *f_conv_wT(Tensor *const *in, void *c) {
    (void)c;
    nb_conv2d_opts o = nb_conv2d_defaults();
    o.padding[0] = o.padding[1] = 1;
    return ag_conv2d(in[0], ag_transpose(in[1], 2, 3), NULL, o);
}

START_TEST(weight_through_a_view) {
    Tensor *x = nbt_param(NB_SHAPE(2, 3, 5, 6), -1, 1, 31);
    Tensor *wT = nbt_param(NB_SHAPE(4, 3, 2, 3), -1, 1, 32); /* [O, C, kw, kh] */
    Tensor *w = tensor_zeros(NB_SHAPE(4, 3, 3, 2));
    Tensor v;
    tensor_layout_transpose(wT, 2, 3, &v);
    tensor_copy_into(w, &v);
    tensor_requires_grad(w, true);
    nb_conv2d_opts o = nb_conv2d_defaults();
    o.padding[0] = o.padding[1] = 1;
    Tensor *y1 = ag_conv2d(x, w, NULL, o), *y2 = f_conv_wT((Tensor *[]){x, wT}, NULL);
    real *a = malloc((size_t)y1->numel * sizeof(real)),
         *b = malloc((size_t)y1->numel * sizeof(real));
    tensor_to_array(y1, a);
    tensor_to_array(y2, b);
    ck_assert(memcmp(a, b, (size_t)y1->numel * sizeof(real)) == 0);
    ag_backward(ag_sum(ag_mul(y1, y1)));
    ag_backward(ag_sum(ag_mul(y2, y2)));
    Tensor gv;
    tensor_layout_transpose(wT->grad, 2, 3, &gv);
    real *g1 = malloc((size_t)w->numel * sizeof(real)),
         *g2 = malloc((size_t)w->numel * sizeof(real));
    tensor_to_array(w->grad, g1);
    tensor_to_array(&gv, g2);
    ck_assert(memcmp(g1, g2, (size_t)w->numel * sizeof(real)) == 0);
    ag_reset();
    nbt_gradcheck("conv2d with a transposed weight", f_conv_wT, (Tensor *[]){x, wT}, 2, NULL);
    free(a), free(b), free(g1), free(g2);
    tensor_free(x), tensor_free(wT), tensor_free(w);
}
END_TEST

/* ---- errors --------------------------------------------------------------------------------- */

START_TEST(bad_arguments_fail_with_the_shapes) {
    Tensor *x = tensor_zeros(NB_SHAPE(2, 4, 7, 7)), *w = tensor_zeros(NB_SHAPE(6, 4, 3, 3));
    Tensor *w2 = tensor_zeros(NB_SHAPE(6, 2, 3, 3)), *b = tensor_zeros(NB_SHAPE(5));
    Tensor *x3 = tensor_zeros(NB_SHAPE(2, 4, 7)), *big = tensor_zeros(NB_SHAPE(6, 4, 9, 9));
    nb_conv2d_opts o = nb_conv2d_defaults();
    NBT_EXPECT_FAIL(ag_conv2d(x3, w, NULL, o), "conv2d", "[2, 4, 7]");
    NBT_EXPECT_FAIL(ag_conv2d(x, w2, NULL, o), "conv2d", "[6, 2, 3, 3]", "[2, 4, 7, 7]");
    NBT_EXPECT_FAIL(ag_conv2d(x, w, b, o), "conv2d", "bias [5]", "6 output channels");
    NBT_EXPECT_FAIL(ag_conv2d(x, big, NULL, o), "conv2d", "output size", "[2, 4, 7, 7]");
    o.groups = 3;
    NBT_EXPECT_FAIL(ag_conv2d(x, w, NULL, o), "conv2d", "groups 3 does not divide");
    o = nb_conv2d_defaults();
    o.groups = 0;
    NBT_EXPECT_FAIL(ag_conv2d(x, w, NULL, o), "conv2d", "groups must be positive");
    o = nb_conv2d_defaults();
    o.stride[1] = 0;
    NBT_EXPECT_FAIL(ag_conv2d(x, w, NULL, o), "conv2d", "stride (1, 0)");
    o = nb_conv2d_defaults();
    o.dilation[0] = -1;
    NBT_EXPECT_FAIL(ag_conv2d(x, w, NULL, o), "conv2d", "dilation (-1, 1)");
    o = nb_conv2d_defaults();
    o.padding[0] = -2;
    NBT_EXPECT_FAIL(ag_conv2d(x, w, NULL, o), "conv2d", "padding (-2, 0)");
    o = nb_conv2d_defaults();
    o.output_padding[0] = 1;
    NBT_EXPECT_FAIL(ag_conv2d(x, w, NULL, o), "conv2d", "output_padding", "conv_transpose2d");
    o = nb_conv2d_defaults(); /* a small output, but a padded plane beyond 32-bit offsets */
    o.padding[0] = o.padding[1] = 30000, o.stride[0] = o.stride[1] = 30000;
    NBT_EXPECT_FAIL(ag_conv2d(x, w, NULL, o), "conv2d", "padded input plane (60007 x 60007)");
    /* the transpose: weight [C, O/groups, kh, kw] */
    Tensor *wt = tensor_zeros(NB_SHAPE(4, 3, 3, 3));
    o = nb_conv2d_defaults();
    NBT_EXPECT_FAIL(ag_conv_transpose2d(x, w2, NULL, o), "conv_transpose2d", "[6, 2, 3, 3]");
    NBT_EXPECT_FAIL(ag_conv_transpose2d(x, wt, b, o), "conv_transpose2d", "bias [5]");
    o.stride[0] = 2, o.output_padding[0] = 2;
    NBT_EXPECT_FAIL(ag_conv_transpose2d(x, wt, NULL, o), "conv_transpose2d",
                    "output_padding 2 must be smaller than stride 2 or dilation 1");
    o = nb_conv2d_defaults();
    o.padding[1] = 5;
    NBT_EXPECT_FAIL(ag_conv_transpose2d(x, wt, NULL, o), "conv_transpose2d", "output size",
                    "[2, 4, 7, 7]");
    o = nb_conv2d_defaults();
    o.groups = 3;
    NBT_EXPECT_FAIL(ag_conv_transpose2d(x, wt, NULL, o), "conv_transpose2d", "groups 3");
    /* conv1d */
    o = nb_conv2d_defaults();
    NBT_EXPECT_FAIL(ag_conv1d(x, w, NULL, o), "conv1d", "[2, 4, 7, 7]");
    Tensor *w1 = tensor_zeros(NB_SHAPE(6, 3, 3)); /* 3 channels against x3's 4 */
    NBT_EXPECT_FAIL(ag_conv1d(x3, w1, NULL, o), "conv1d", "[6, 3, 1, 3]", "[2, 4, 1, 7]");
    tensor_free(w1);
    /* pooling and upsampling */
    NBT_EXPECT_FAIL(ag_max_pool2d(x, 3, 2, 2), "max_pool2d", "padding 2", "kernel 3");
    NBT_EXPECT_FAIL(ag_avg_pool2d(x, 0, 1, 0), "avg_pool2d", "kernel 0");
    NBT_EXPECT_FAIL(ag_avg_pool2d(x, 2, 0, 0), "avg_pool2d", "stride 0");
    NBT_EXPECT_FAIL(ag_max_pool2d(x3, 2, 2, 0), "max_pool2d", "[2, 4, 7]");
    NBT_EXPECT_FAIL(ag_max_pool2d(x, 9, 1, 0), "max_pool2d", "does not fit", "[2, 4, 7, 7]");
    NBT_EXPECT_FAIL(ag_upsample_nearest2d(x, 0), "upsample_nearest2d", "scale");
    NBT_EXPECT_FAIL(ag_upsample_nearest2d(x3, 2), "upsample_nearest2d", "[2, 4, 7]");
    ag_reset();
    Tensor *all[] = {x, w, w2, b, x3, big, wt};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(all[i]);
}
END_TEST

/* upsample_nearest2d's row loops (s = 2 has its own) against the definition, for scales 1, 2, 3,
 * odd sizes, a row wider than the backward's 256-column chunk and a transposed (strided) x; the
 * gradient once fresh and once added to an earlier one (x also feeds a sum). */
START_TEST(upsample_matches_a_reference_loop) {
    const int64_t shapes[][4] = {{2, 3, 5, 7}, {1, 2, 3, 301}, {3, 1, 1, 1}};
    for (int k = 0; k < 3; k++)
        for (int s = 1; s <= 3; s++)
            for (int view = 0; view < 2; view++) {
                const int64_t *sh = shapes[k];
                int64_t N = sh[0], C = sh[1], H = sh[2], W = sh[3], Hs = H * s, Ws = W * s;
                Tensor *p = view ? nbt_param(NB_SHAPE(N, C, W, H), -1, 1, 40)
                                 : nbt_param(NB_SHAPE(N, C, H, W), -1, 1, 40);
                Tensor *x = view ? ag_transpose(p, 2, 3) : p;
                Tensor *w = nbt_tensor(NB_SHAPE(N, C, Hs, Ws), -1, 1, 41, false);
                Tensor *y = ag_upsample_nearest2d(x, s);
                Tensor *loss = ag_add(ag_sum(ag_mul(y, w)), ag_sum(p));
                ag_backward(loss);
                for (int64_t q = 0; q < N * C; q++)
                    for (int64_t i = 0; i < H; i++)
                        for (int64_t j = 0; j < W; j++) {
                            int64_t n = q / C, c = q % C;
                            real xv = tensor_get(x, (int64_t[]){n, c, i, j});
                            double want = 1;
                            for (int64_t a = 0; a < s; a++)
                                for (int64_t b = 0; b < s; b++) {
                                    int64_t at = ((q * Hs) + i * s + a) * Ws + j * s + b;
                                    ck_assert(y->data[at] == xv);
                                    want += w->data[at];
                                }
                            real got = view ? tensor_get(p->grad, (int64_t[]){n, c, j, i})
                                            : tensor_get(p->grad, (int64_t[]){n, c, i, j});
                            ck_assert_msg(fabs(got - want) <= TOL * 10, "scale %d: dx %g, want %g",
                                          s, (double)got, want);
                        }
                ag_reset();
                tensor_free(p), tensor_free(w);
            }
}
END_TEST

/* ---- threads and memory -------------------------------------------------------------------- */

/* A small encoder/decoder step (every op, sizes large enough for the threads to share the work):
 * returns the loss after backward. */
static Tensor *net_step(Tensor *const *p) {
    nb_conv2d_opts o = nb_conv2d_defaults();
    o.stride[0] = o.stride[1] = 2;
    o.padding[0] = o.padding[1] = 1;
    Tensor *h = ag_relu(ag_conv2d(p[0], p[1], p[2], o)); /* [16, 16, 7, 7] */
    Tensor *m = ag_max_pool2d(h, 3, 1, 1);               /* [16, 16, 7, 7] */
    o.output_padding[0] = o.output_padding[1] = 1;
    o.groups = 2;
    Tensor *d = ag_conv_transpose2d(m, p[3], p[4], o);               /* [16, 8, 14, 14] */
    Tensor *a = ag_avg_pool2d(ag_upsample_nearest2d(d, 2), 3, 2, 1); /* [16, 8, 14, 14] */
    Tensor *loss = ag_sum(ag_mul(a, a));
    ag_backward(loss);
    return loss;
}

static void net_params(Tensor **p) {
    p[0] = nbt_param(NB_SHAPE(16, 8, 14, 14), -1, 1, 21);
    p[1] = nbt_param(NB_SHAPE(16, 8, 3, 3), -0.3, 0.3, 22);
    p[2] = nbt_param(NB_SHAPE(16), -0.1, 0.1, 23);
    p[3] = nbt_param(NB_SHAPE(16, 4, 3, 3), -0.3, 0.3, 24);
    p[4] = nbt_param(NB_SHAPE(8), -0.1, 0.1, 25);
}

START_TEST(same_bits_on_one_and_two_threads) {
    Tensor *p[5];
    net_params(p);
    int saved = nb_get_num_threads();
    real loss[2], *grads[2][5];
    for (int run = 0; run < 2; run++) {
        nb_set_num_threads(run + 1);
        for (int i = 0; i < 5; i++) tensor_clear_grad(p[i]);
        loss[run] = tensor_item(net_step(p));
        for (int i = 0; i < 5; i++) {
            grads[run][i] = malloc((size_t)p[i]->numel * sizeof(real));
            tensor_to_array(p[i]->grad, grads[run][i]);
        }
        ag_reset();
    }
    nb_set_num_threads(saved);
    ck_assert(memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0);
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(memcmp(grads[0][i], grads[1][i], (size_t)p[i]->numel * sizeof(real)) == 0,
                      "gradient of input %d differs between 1 and 2 threads", i);
        free(grads[0][i]);
        free(grads[1][i]);
        tensor_free(p[i]);
    }
}
END_TEST

/* The fused conv + ReLU ops give the bits of ag_relu over the unfused op, forward and every
 * gradient, for conv2d and conv_transpose2d, with and without a bias (half the outputs are 0). */
START_TEST(fused_relu_equals_relu_of_the_conv) {
    for (int transposed = 0; transposed < 2; transposed++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            Tensor *x = nbt_param(NB_SHAPE(3, 4, 6, 5), -1, 1, 50);
            Tensor *w = nbt_param(NB_SHAPE(4, 4, 3, 3), -1, 1, 51);
            Tensor *b = with_bias ? nbt_param(NB_SHAPE(4), -1, 1, 52) : NULL;
            nb_conv2d_opts o = nb_conv2d_defaults();
            o.stride[0] = o.stride[1] = 2, o.padding[0] = o.padding[1] = 1;
            if (transposed) o.output_padding[0] = 1;
            Tensor *in[3] = {x, w, b}, *got[2][4] = {{NULL}};
            for (int fused = 0; fused < 2; fused++) {
                for (int k = 0; k < 3; k++)
                    if (in[k]) tensor_clear_grad(in[k]);
                Tensor *y;
                if (transposed)
                    y = fused ? ag_conv_transpose2d_relu(x, w, b, o)
                              : ag_relu(ag_conv_transpose2d(x, w, b, o));
                else
                    y = fused ? ag_conv2d_relu(x, w, b, o) : ag_relu(ag_conv2d(x, w, b, o));
                ck_assert_str_eq(
                    y->op, fused ? (transposed ? "conv_transpose2d_relu" : "conv2d_relu") : "relu");
                /* an uneven upstream gradient: sum of y times a ramp */
                Tensor *ramp = tensor_empty(y->ndim, y->shape);
                for (int64_t q = 0; q < ramp->numel; q++) ramp->data[q] = (real)(q % 7) - 3;
                ag_backward(ag_sum(ag_mul(y, ramp)));
                got[fused][0] = tensor_copy(y);
                for (int k = 0; k < 3; k++)
                    got[fused][k + 1] = in[k] ? tensor_copy(in[k]->grad) : NULL;
                tensor_free(ramp);
                ag_reset();
            }
            for (int k = 0; k < 4; k++) {
                if (!got[0][k]) continue;
                ck_assert_int_eq(got[0][k]->numel, got[1][k]->numel);
                for (int64_t q = 0; q < got[0][k]->numel; q++)
                    ck_assert_msg(got[0][k]->data[q] == got[1][k]->data[q],
                                  "transposed %d bias %d: %s differs at %lld", transposed,
                                  with_bias, k ? "a gradient" : "the output", (long long)q);
                tensor_free(got[0][k]), tensor_free(got[1][k]);
            }
            tensor_free(x), tensor_free(w), tensor_free(b);
        }
}
END_TEST

/* (The adaptive thread count is off: on a busy machine a thread that first joins a conv loop in
 * a later step grows its gemm buffers then, once; see test_vae's allocation test.) */
START_TEST(second_step_allocates_nothing) {
    nb_set_adaptive_threads(0);
    Tensor *p[5];
    net_params(p);
    nb_mem_stats_t before = {0};
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 5; i++) tensor_clear_grad(p[i]);
        net_step(p);
        ag_reset();
        if (step == 1) before = nb_mem_stats();
    }
    nb_mem_stats_t after = nb_mem_stats();
    ck_assert_int_eq(after.allocs, before.allocs);
    ck_assert_int_eq(after.live_bytes, before.live_bytes);
    for (int i = 0; i < 5; i++) tensor_free(p[i]);
    nb_set_adaptive_threads(1);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("conv");
    TCase *t = tcase_create("ops");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, matches_pytorch, 0, CONV_REF_NCASES);
    tcase_add_loop_test(t, gradcheck_every_case, 0, CONV_REF_NCASES);
    tcase_add_test(t, gradients_only_where_asked);
    tcase_add_test(t, fused_relu_equals_relu_of_the_conv);
    tcase_add_test(t, weight_through_a_view);
    tcase_add_test(t, bad_arguments_fail_with_the_shapes);
    tcase_add_test(t, upsample_matches_a_reference_loop);
    tcase_add_test(t, same_bits_on_one_and_two_threads);
    tcase_add_test(t, second_step_allocates_nothing);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
