/* tests/test_tensor.c: creation, views that share memory, strided kernels, broadcasting,
 * the generator, printing, and layout errors. */
#include "tests/check_main.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>

#include "tensor/fastmath.h"
#include "tensor/gemm.h"

START_TEST(creation) {
    Tensor *z = tensor_zeros(NB_SHAPE(2, 3)), *o = tensor_ones(NB_SHAPE(4)),
           *f = tensor_full(NB_SHAPE(2), 7);
    ck_assert_int_eq(z->numel, 6);
    ck_assert(z->data[5] == 0 && o->data[3] == 1 && f->data[1] == 7);
    Tensor *a = tensor_arange(0, 1, 0.25);
    ck_assert_int_eq(a->numel, 4);
    ck_assert(a->data[3] == (real)0.75);
    Tensor *s = tensor_scalar(3);
    ck_assert_int_eq(s->ndim, 0);
    ck_assert(tensor_item(s) == 3);
    Tensor *six = tensor_zeros(NB_SHAPE(2, 1, 3, 1, 2, 2)); /* 6-D */
    ck_assert_int_eq(six->ndim, 6);
    ck_assert_int_eq(six->strides[0], 12);
    Tensor *c = tensor_copy(a);
    ck_assert(c->data != a->data && c->data[2] == a->data[2]);
    tensor_free(z), tensor_free(o), tensor_free(f), tensor_free(a), tensor_free(s),
        tensor_free(six), tensor_free(c);
    tensor_free(NULL); /* a no-op */
}
END_TEST

START_TEST(views_share_memory) {
    Tensor *x = tensor_from_array(NB_SHAPE(2, 3), (real[]){0, 1, 2, 3, 4, 5});
    Tensor *t = ag_transpose(x, 0, 1);
    ck_assert(t->data == x->data && !tensor_is_contiguous(t));
    ck_assert(tensor_get(t, (int64_t[]){2, 1}) == 5);
    x->data[5] = 50; /* seen through the view */
    ck_assert(tensor_get(t, (int64_t[]){2, 1}) == 50);
    Tensor *r = ag_reshape(x, NB_SHAPE(3, 2));
    ck_assert(r->data == x->data); /* a view: contiguous source */
    Tensor *rt = ag_reshape(t, NB_SHAPE(6));
    ck_assert(rt->data != x->data); /* a copy: the layout forces it */
    real expect[6] = {0, 3, 1, 4, 2, 50};
    nbt_assert_close(rt, expect, 0);
    Tensor *n = ag_narrow(x, 1, 1, 2);
    ck_assert(n->data == x->data && n->offset == 1 && tensor_get(n, (int64_t[]){1, 0}) == 4);
    Tensor *e = ag_expand(ag_narrow(x, 0, 0, 1), NB_SHAPE(4, 3));
    ck_assert(e->strides[0] == 0 && tensor_get(e, (int64_t[]){3, 2}) == 2);
    Tensor *p = ag_permute(ag_reshape(x, NB_SHAPE(1, 2, 3)), (int[]){2, 0, 1});
    ck_assert(p->shape[0] == 3 && p->shape[1] == 1 && p->shape[2] == 2);
    Tensor *u = ag_unsqueeze(x, -1), *q = ag_squeeze(u, 2);
    ck_assert(u->ndim == 3 && u->shape[2] == 1 && q->ndim == 2 && q->data == x->data);
    ck_assert(ag_contiguous(x) == x);
    Tensor *ct = ag_contiguous(t);
    ck_assert(ct != t && tensor_is_contiguous(ct) && tensor_get(ct, (int64_t[]){2, 1}) == 50);
    /* reshape of a non-contiguous view that stays viewable: split a dim of a transposed tensor */
    Tensor *big = tensor_zeros(NB_SHAPE(4, 6));
    Tensor *bt = ag_transpose(big, 0, 1); /* [6, 4], strides (1, 6) */
    Tensor *split = ag_reshape(bt, NB_SHAPE(2, 3, 4));
    ck_assert(split->data == big->data && split->strides[0] == 3 && split->strides[1] == 1);
    tensor_free(x);
    tensor_free(big);
    ag_reset();
}
END_TEST

START_TEST(kernels_broadcast_and_strides) {
    Tensor *a = tensor_from_array(NB_SHAPE(3, 1), (real[]){1, 2, 3});
    Tensor *b = tensor_from_array(NB_SHAPE(4), (real[]){10, 20, 30, 40});
    Tensor *c = ag_add(a, b);
    ck_assert(c->shape[0] == 3 && c->shape[1] == 4);
    real expect[12] = {11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43};
    nbt_assert_close(c, expect, 0);
    Tensor *s0 = ag_sum_dims(c, (int[]){0}, 1, false);
    real e0[4] = {36, 66, 96, 126};
    nbt_assert_close(s0, e0, 1e-5);
    Tensor *s1 = ag_sum_dims(c, (int[]){1}, 1, true);
    ck_assert(s1->ndim == 2 && s1->shape[1] == 1);
    real e1[3] = {104, 108, 112};
    nbt_assert_close(s1, e1, 1e-5);
    Tensor *m = ag_max(ag_transpose(c, 0, 1), 1, false); /* max over the strided dim */
    real em[4] = {13, 23, 33, 43};
    nbt_assert_close(m, em, 0);
    /* logsumexp is stable where the naive form overflows */
    Tensor *big = tensor_from_array(NB_SHAPE(1, 2), (real[]){1000, 1000});
    real el[1] = {(real)(1000 + log(2.0))};
    nbt_assert_close(ag_logsumexp(big, 1, false), el, 1e-3);
    /* softmax rows sum to 1 */
    Tensor *sm = ag_sum_dims(ag_softmax(c, 1), (int[]){1}, 1, false);
    real ones[3] = {1, 1, 1};
    nbt_assert_close(sm, ones, 1e-5);
    /* 6-D: permute then reduce two dims */
    Tensor *six = tensor_arange(0, 64, 1);
    Tensor *v = ag_permute(ag_reshape(six, NB_SHAPE(2, 2, 2, 2, 2, 2)), (int[]){5, 4, 3, 2, 1, 0});
    Tensor *r = ag_sum_dims(v, (int[]){0, 5}, 2, false);
    ck_assert_int_eq(r->ndim, 4);
    ck_assert_double_eq_tol(tensor_item(ag_sum(r)), 63 * 64 / 2, 1e-3);
    ck_assert_double_eq_tol(tensor_get(r, (int64_t[]){0, 0, 0, 0}), 0 + 1 + 32 + 33, 1e-5);
    tensor_free(a), tensor_free(b), tensor_free(big), tensor_free(six);
    ag_reset();
}
END_TEST

START_TEST(generator_is_seeded_and_pinned) {
    nb_rng r;
    nb_rng_seed(&r, 42);
    /* pinned: these must never change, on any platform */
    ck_assert(nb_rng_next(&r) == 0x15780b2e0c2ec716ull);
    ck_assert(nb_rng_next(&r) == 0x6104d9866d113a7eull);
    ck_assert(nb_rng_next(&r) == 0xae17533239e499a1ull);
    /* xoshiro256** reference vector from state {1, 2, 3, 4} */
    nb_rng ref = {{1, 2, 3, 4}, 0, 0};
    ck_assert(nb_rng_next(&ref) == 11520 && nb_rng_next(&ref) == 0 &&
              nb_rng_next(&ref) == 1509978240ull && nb_rng_next(&ref) == 1215971899390074240ull);
    nb_rng_seed(&r, 42);
    ck_assert_double_eq_tol(nb_rng_normal(&r), -0.72621913824478568, 1e-15);
    /* moments of 200k normals and uniforms */
    double s = 0, s2 = 0, u = 0;
    for (int i = 0; i < 200000; i++) {
        double z = nb_rng_normal(&r);
        s += z, s2 += z * z, u += nb_rng_uniform(&r);
    }
    ck_assert_double_eq_tol(s / 200000, 0, 0.01);
    ck_assert_double_eq_tol(s2 / 200000, 1, 0.01);
    ck_assert_double_eq_tol(u / 200000, 0.5, 0.005);
    nb_manual_seed(7);
    Tensor *a = tensor_randn(NB_SHAPE(5), NULL);
    nb_manual_seed(7);
    Tensor *b = tensor_randn(NB_SHAPE(5), NULL);
    nbt_assert_close(a, b->data, 0);
    for (int i = 0; i < 1000; i++) ck_assert(nb_rng_below(&r, 7) < 7);
    tensor_free(a), tensor_free(b);
}
END_TEST

static char *print_to_string(const Tensor *t, const char *label) {
    static char buf[1 << 16];
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    tensor_fprint(f, t, label);
    fclose(f);
    return buf;
}

START_TEST(printing_is_numpy_like_and_truncated) {
    Tensor *m = tensor_from_array(NB_SHAPE(2, 3), (real[]){1, 2, 3, 4, 5, 6});
    ck_assert_str_eq(print_to_string(m, "m"),
                     "m = tensor([[1, 2, 3],\n            [4, 5, 6]], shape=[2, 3])\n");
    Tensor *h = tensor_from_array(NB_SHAPE(2), (real[]){0.5, -1.25});
    ck_assert_str_eq(print_to_string(h, NULL), "tensor([ 0.5000, -1.2500], shape=[2])\n");
    Tensor *big = tensor_arange(0, 5000, 1);
    char *s = print_to_string(big, NULL);
    ck_assert_msg(strstr(s, "[   0,    1,    2, ..., 4997, 4998, 4999]") != NULL, "%s", s);
    ck_assert(strlen(s) < 200);
    tensor_free(m), tensor_free(h), tensor_free(big);
}
END_TEST

START_TEST(element_access_and_copies) {
    Tensor *x = tensor_zeros(NB_SHAPE(2, 3));
    tensor_set(x, (int64_t[]){1, 2}, 7);
    ck_assert(x->data[5] == 7 && tensor_get(x, (int64_t[]){1, 2}) == 7);
    NBT_EXPECT_FAIL(tensor_set(x, (int64_t[]){2, 0}, 1), "index 2 out of range for dim 0");
    /* copy into a strided destination, with a broadcast source */
    Tensor *row = tensor_from_array(NB_SHAPE(2), (real[]){1, 2});
    Tensor xt;
    tensor_layout_transpose(x, 0, 1, &xt); /* [3, 2] view of x */
    tensor_copy_into(&xt, row);            /* every row of the view becomes [1, 2] */
    real want[6] = {1, 1, 1, 2, 2, 2};
    nbt_assert_close(x, want, 0);
    /* step-tensor constants */
    nb_rng r;
    nb_rng_seed(&r, 3);
    Tensor *u = ag_rand(NB_SHAPE(1000), &r);
    double mean = 0;
    for (int i = 0; i < 1000; i++) {
        ck_assert(u->data[i] >= 0 && u->data[i] < 1);
        mean += u->data[i] / 1000;
    }
    ck_assert_double_eq_tol(mean, 0.5, 0.05);
    ck_assert(!u->kept && ag_full(NB_SHAPE(2), 4)->data[1] == 4);
    tensor_free(x);
    tensor_free(row);
    ag_reset();
}
END_TEST

/* One sum of many elements (above NB_PAR_MIN = 32768, where loops go parallel) gives the same
 * bits with 1 and 2 threads: to a scalar, along one long row, and through ag_sum. */
START_TEST(one_long_sum_gives_the_same_bits_on_1_and_2_threads) {
    Tensor *a = tensor_randn(NB_SHAPE(100003), NULL), *r = tensor_randn(NB_SHAPE(2, 65537), NULL);
    real got[2][4];
    for (int t = 0; t < 2; t++) {
        nb_set_num_threads(t + 1);
        Tensor *s = tensor_zeros(NB_SHAPE(1)), *rows = tensor_zeros(NB_SHAPE(2, 1));
        k_sum_to(a, s, false);
        k_sum_to(r, rows, false);
        got[t][0] = s->data[0];
        got[t][1] = rows->data[0];
        got[t][2] = rows->data[1];
        got[t][3] = tensor_item(ag_sum(a));
        ag_reset();
        tensor_free(s);
        tensor_free(rows);
    }
    nb_set_num_threads(0);
    for (int k = 0; k < 4; k++)
        ck_assert_msg(memcmp(&got[0][k], &got[1][k], sizeof(real)) == 0,
                      "sum %d: %.17g with 1 thread, %.17g with 2", k, (double)got[0][k],
                      (double)got[1][k]);
    tensor_free(a);
    tensor_free(r);
}
END_TEST

/* Large kernels split across threads give the same bits with 1 and 2 threads (a sum over rows,
 * whose rows fold into the same outputs, stays on one thread). */
START_TEST(kernels_give_the_same_bits_on_any_thread_count) {
    Tensor *a = tensor_randn(NB_SHAPE(300, 700), NULL), *b = tensor_randn(NB_SHAPE(700), NULL);
    Tensor *out[2][3];
    for (int t = 0; t < 2; t++) {
        nb_set_num_threads(t + 1);
        out[t][0] = tensor_zeros(NB_SHAPE(700));    /* sum over rows: one thread */
        out[t][1] = tensor_zeros(NB_SHAPE(300, 1)); /* sum over columns: split by rows */
        out[t][2] = tensor_zeros(NB_SHAPE(300, 700));
        k_sum_to(a, out[t][0], false);
        k_sum_to(a, out[t][1], false);
        k_binary(K_SOFTPLUS_BWD, a, b, out[t][2], 0, 0, false);
    }
    nb_set_num_threads(0);
    for (int k = 0; k < 3; k++) {
        ck_assert(
            memcmp(out[0][k]->data, out[1][k]->data, (size_t)out[0][k]->numel * sizeof(real)) == 0);
        tensor_free(out[0][k]), tensor_free(out[1][k]);
    }
    /* and the sum over rows is right */
    double want = 0;
    for (int i = 0; i < 300; i++) want += a->data[i * 700 + 5];
    Tensor *s = tensor_zeros(NB_SHAPE(700));
    k_sum_to(a, s, false);
    ck_assert_double_eq_tol(s->data[5], want, 1e-3);
    tensor_free(s), tensor_free(a), tensor_free(b);
}
END_TEST

START_TEST(layout_errors) {
    Tensor *x = tensor_zeros(NB_SHAPE(2, 3));
    NBT_EXPECT_FAIL(ag_reshape(x, NB_SHAPE(4, 2)),
                    "shape [4, 2] has 8 elements but the tensor of shape [2, 3] has 6");
    NBT_EXPECT_FAIL(ag_narrow(x, 1, 2, 2), "range [2, 4) is outside dim 1");
    NBT_EXPECT_FAIL(ag_expand(x, NB_SHAPE(4, 3)), "cannot expand shape [2, 3] to [4, 3]");
    NBT_EXPECT_FAIL(ag_squeeze(x, 0), "has size 2, not 1");
    NBT_EXPECT_FAIL(ag_concat((Tensor *[]){x, ag_zeros(NB_SHAPE(3, 3))}, 2, 1), "doesn't match");
    NBT_EXPECT_FAIL(tensor_item(x), "has 6 elements, not 1");
    tensor_free(x);
    ag_reset();
}
END_TEST

/* got and want agree element for element (NaN with NaN, else within 1e-6 relative). */
static void expect_same_values(const Tensor *got, const Tensor *want, const char *what, int op,
                               int acc) {
    for (int64_t i = 0; i < got->numel; i++) {
        real g = got->data[i], w = want->data[i];
        ck_assert_msg((g != g && w != w) || g == w ||
                          fabs((double)(g - w)) <= 1e-6 * fabs((double)w),
                      "%s op %d (acc %d) element %lld: %g with one value per row, %g in full", what,
                      op, acc, (long long)i, (double)g, (double)w);
    }
}

/* Every unary kernel with its input one value per row, and every binary kernel with b one value
 * per row (a [R, 1], the stride-0 loops that sum's backward, a bias add and softmax's
 * exp(a - max) take), gives what it gives with that input written out in full ([R, N]), storing
 * and accumulating. */
START_TEST(kernels_with_a_value_per_row) {
#define OP_NAME(name, formula) name,
    const k_unary_op uops[] = {K_UNARY_OPS(OP_NAME)};
    const k_binary_op bops[] = {K_BINARY_OPS(OP_NAME)};
#undef OP_NAME
    Tensor *a = tensor_randn(NB_SHAPE(5, 37), NULL), *b = tensor_randn(NB_SHAPE(5, 1), NULL);
    b->data[2] = a->data[2 * 37 + 3]; /* a tie, for the comparisons and maximum */
    Tensor *full = tensor_empty(NB_SHAPE(5, 37));
    tensor_copy_into(full, b);
    Tensor *got = tensor_empty(NB_SHAPE(5, 37)), *want = tensor_empty(NB_SHAPE(5, 37));
    for (int acc = 0; acc < 2; acc++) {
        for (size_t k = 0; k < sizeof uops / sizeof uops[0]; k++) {
            tensor_fill(got, (real)0.25), tensor_fill(want, (real)0.25);
            k_unary(uops[k], b, got, 2, 3, acc);
            k_unary(uops[k], full, want, 2, 3, acc);
            expect_same_values(got, want, "unary", (int)uops[k], acc);
        }
        for (size_t k = 0; k < sizeof bops / sizeof bops[0]; k++) {
            tensor_fill(got, (real)0.25), tensor_fill(want, (real)0.25);
            k_binary(bops[k], a, b, got, 2, 3, acc);
            k_binary(bops[k], a, full, want, 2, 3, acc);
            expect_same_values(got, want, "binary", (int)bops[k], acc);
        }
    }
    tensor_free(a), tensor_free(b), tensor_free(full), tensor_free(got), tensor_free(want);
}
END_TEST

/* Distance in units in the last place of `want` (float spacing), for the fast exp/log. */
static double ulps(real got, double want) {
    float w = (float)want;
    double ulp = fabs((double)nextafterf(w, INFINITY) - (double)w);
    return fabs((double)got - want) / (ulp > 0 ? ulp : 1e-45);
}

START_TEST(fast_exp_and_log_are_within_2_ulp) {
    double worst_exp = 0, worst_log = 0;
    for (double x = -103.9; x < 88.7; x += 0.00731) {
        double want = exp((double)(real)x);
        if (want > 3.4e38 || want < 1.2e-38) continue; /* normal results only */
        worst_exp = fmax(worst_exp, ulps(nb_exp((real)x), want));
    }
    for (uint32_t u = 0x00000001u; u < 0x7f800000u; u += 4099u) { /* every binade, denormals too */
        float x;
        memcpy(&x, &u, sizeof x);
        worst_log = fmax(worst_log, ulps(nb_log(x), log((double)x)));
    }
    ck_assert_msg(worst_exp <= 2, "nb_exp is %.2f ulp off", worst_exp);
    ck_assert_msg(worst_log <= 2, "nb_log is %.2f ulp off", worst_log);
    ck_assert(nb_exp(-INFINITY) == 0 && isinf(nb_exp(1000)) && isnan(nb_exp(NAN)));
    ck_assert(nb_log(0) == -INFINITY && isnan(nb_log(-1)) && isinf(nb_log(INFINITY)) &&
              isnan(nb_log(NAN)));
    ck_assert_double_eq_tol(nb_log1p((real)1e-10), 1e-10, 1e-16); /* accurate for tiny arguments */
    /* the BCE's log(1 + u) on [0, 1]: every float from 2^-30 up, then 0 and 1 themselves */
    double worst_unit = 0;
    for (float u = 0x1p-30f; u <= 1; u = nextafterf(u, 2) + u * 1e-4f)
        worst_unit = fmax(worst_unit, ulps(nb_log1p_unit(u), log1p((double)u)));
    worst_unit = fmax(worst_unit, ulps(nb_log1p_unit(1), log(2.0)));
    ck_assert_msg(worst_unit <= 2, "nb_log1p_unit is %.2f ulp off", worst_unit);
    ck_assert(nb_log1p_unit(0) == 0);
}
END_TEST

/* nb_exp's n = round(x / ln 2) changes at x = (k + 1/2) ln 2: there, and one float either side,
 * through k_unary's loop (the one nb_round_small lets the compiler vectorize), for every k with a
 * normal result. The float build's nb_round_small must round as rintf does, ties to even. */
START_TEST(fast_exp_at_rounding_ties) {
    enum { N = 3 * 277 };
    Tensor *x = tensor_empty(NB_SHAPE(N)), *y = tensor_empty(NB_SHAPE(N));
    int m = 0;
    for (int k = -149; k <= 127; k++) {
        float c = (float)((k + 0.5) * 0.69314718055994530942);
        x->data[m++] = (real)nextafterf(c, -INFINITY);
        x->data[m++] = (real)c;
        x->data[m++] = (real)nextafterf(c, INFINITY);
    }
    ck_assert_int_eq(m, N);
    k_unary(K_EXP, x, y, 0, 0, false);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = exp((double)x->data[i]);
        if (want > 3.4e38 || want < 1.2e-38) continue; /* normal results only */
        worst = fmax(worst, ulps(y->data[i], want));
    }
    ck_assert_msg(worst <= 2, "nb_exp is %.2f ulp off near a rounding tie", worst);
#ifndef NB_DOUBLE
    const float v[] = {-150.5f, -149.5f, -2.5f, -0.5f,  0.49999997f,
                       0.5f,    1.5f,    2.5f,  127.5f, 3.25f};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_msg(nb_round_small(v[i]) == rintf(v[i]), "nb_round_small(%g) = %g, rintf %g",
                      (double)v[i], (double)nb_round_small(v[i]), (double)rintf(v[i]));
#endif
    tensor_free(x);
    tensor_free(y);
}
END_TEST

/* K_COPY through a transpose runs in tiles (kernels.c's copy_tiled): reading transposed (a
 * transpose made contiguous) and writing transposed (its gradient), stored and added, on shapes
 * that are not multiples of the tile, with an outer dim, against the element-by-element copy. */
START_TEST(transposed_copies_match_element_by_element) {
    const int64_t shapes[][3] = {{1, 37, 53}, {3, 33, 17}, {2, 16, 70}, {1, 128, 784}};
    for (int k = 0; k < 4; k++) {
        int64_t P = shapes[k][0], R = shapes[k][1], C = shapes[k][2];
        Tensor *a = nbt_tensor(NB_SHAPE(P, R, C), -1, 1, 7, false);
        Tensor *o = tensor_empty(NB_SHAPE(P, C, R)), at, ot;
        tensor_layout_transpose(a, 1, 2, &at); /* [P, C, R], strided */
        for (int acc = 0; acc < 2; acc++) {
            tensor_fill(o, (real)0.5);
            k_unary(K_COPY, &at, o, 0, 0, acc); /* read transposed */
            for (int64_t p = 0; p < P; p++)
                for (int64_t i = 0; i < R; i++)
                    for (int64_t j = 0; j < C; j++)
                        ck_assert(o->data[(p * C + j) * R + i] ==
                                  a->data[(p * R + i) * C + j] + (real)(acc ? 0.5 : 0));
        }
        Tensor *b = tensor_empty(NB_SHAPE(P, R, C));
        tensor_layout_transpose(b, 1, 2, &ot);
        for (int acc = 0; acc < 2; acc++) {
            tensor_fill(b, (real)0.25);
            k_unary(K_COPY, o, &ot, 0, 0, acc); /* write transposed: o back into b's layout */
            for (int64_t i = 0; i < P * R * C; i++) {
                real t = a->data[i] + (real)0.5; /* what o holds */
                ck_assert(b->data[i] == (acc ? (real)0.25 + t : t));
            }
        }
        tensor_free(a), tensor_free(o), tensor_free(b);
    }
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("tensor");
    TCase *t = tcase_create("tensor");
    tcase_add_test(t, creation);
    tcase_add_test(t, views_share_memory);
    tcase_add_test(t, kernels_broadcast_and_strides);
    tcase_add_test(t, transposed_copies_match_element_by_element);
    tcase_add_test(t, generator_is_seeded_and_pinned);
    tcase_add_test(t, printing_is_numpy_like_and_truncated);
    tcase_add_test(t, layout_errors);
    tcase_add_test(t, element_access_and_copies);
    tcase_add_test(t, kernels_give_the_same_bits_on_any_thread_count);
    tcase_add_test(t, one_long_sum_gives_the_same_bits_on_1_and_2_threads);
    tcase_add_test(t, fast_exp_and_log_are_within_2_ulp);
    tcase_add_test(t, fast_exp_at_rounding_ties);
    tcase_add_test(t, kernels_with_a_value_per_row);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
