/* tests/test_data.c: nn/data.h's batch iterator and nb_rng_permutation: every example once per
 * epoch, batch sizes and drop_last, the same order for the same seed (or generator) and another
 * order for another seed or epoch, gathering rows of kept tensors, and no allocation per epoch. */
#include "tests/check_main.h"
#include "tests/testutil.h"

#include "nn/data.h"

/* Walks one epoch; checks each batch's size and that every index is seen at most once; returns
 * how many examples it saw and writes the order into order_out[0..n) (may be NULL). */
static int64_t walk(nn_batches *it, int64_t *order_out) {
    int64_t n = it->n, seen_total = 0, batches = 0;
    char *seen = calloc((size_t)(n > 0 ? n : 1), 1);
    while (nn_batches_next(it)) {
        batches++;
        ck_assert_int_ge(it->count, 1);
        ck_assert_int_le(it->count, it->batch);
        if (it->drop_last) ck_assert_int_eq(it->count, it->batch);
        for (int64_t i = 0; i < it->count; i++) {
            int64_t k = it->index[i];
            ck_assert(k >= 0 && k < n);
            ck_assert_msg(!seen[k], "example %lld twice in one epoch", (long long)k);
            seen[k] = 1;
            if (order_out) order_out[seen_total] = k;
            seen_total++;
        }
    }
    ck_assert_int_eq(batches, nn_batches_per_epoch(it));
    free(seen);
    return seen_total;
}

START_TEST(every_example_once_per_epoch) {
    for (int shuffle = 0; shuffle < 2; shuffle++)
        for (int64_t n = 0; n <= 23; n++)
            for (int64_t batch = 1; batch <= 9; batch++) {
                nn_batches it;
                nn_batches_init(&it, n, batch, shuffle, false, 3);
                for (int epoch = 0; epoch < 3; epoch++) ck_assert_int_eq(walk(&it, NULL), n);
                nn_batches_free(&it);
            }
}
END_TEST

START_TEST(in_order_without_shuffle) {
    nn_batches it;
    nn_batches_init(&it, 10, 4, false, false, 0);
    int64_t order[10];
    ck_assert_int_eq(walk(&it, order), 10);
    for (int64_t i = 0; i < 10; i++) ck_assert_int_eq(order[i], i);
    int64_t sizes[3], k = 0;
    while (nn_batches_next(&it)) sizes[k++] = it.count;
    ck_assert_int_eq(k, 3);
    ck_assert_int_eq(sizes[0], 4);
    ck_assert_int_eq(sizes[2], 2); /* the last batch is partial */
    nn_batches_free(&it);
}
END_TEST

START_TEST(drop_last_skips_the_partial_batch) {
    nn_batches it;
    nn_batches_init(&it, 10, 4, true, true, 5);
    ck_assert_int_eq(nn_batches_per_epoch(&it), 2);
    for (int epoch = 0; epoch < 4; epoch++) ck_assert_int_eq(walk(&it, NULL), 8);
    nn_batches_free(&it);
    nn_batches_init(&it, 12, 4, false, true, 5); /* divides evenly: nothing dropped */
    ck_assert_int_eq(walk(&it, NULL), 12);
    nn_batches_free(&it);
    nn_batches_init(&it, 3, 4, false, true, 5); /* fewer examples than a batch: no batch */
    ck_assert_int_eq(walk(&it, NULL), 0);
    nn_batches_free(&it);
}
END_TEST

START_TEST(same_seed_same_order_different_seed_different_order) {
    enum { N = 200 };
    static int64_t a[3][N], b[3][N], c[N];
    nn_batches ia, ib, ic;
    nn_batches_init(&ia, N, 16, true, false, 42);
    nn_batches_init(&ib, N, 16, true, false, 42);
    nn_batches_init(&ic, N, 16, true, false, 43);
    for (int e = 0; e < 3; e++) {
        walk(&ia, a[e]);
        walk(&ib, b[e]);
    }
    walk(&ic, c);
    for (int e = 0; e < 3; e++) ck_assert_mem_eq(a[e], b[e], sizeof a[e]);
    ck_assert(memcmp(a[0], a[1], sizeof a[0]) != 0); /* each epoch a new order */
    ck_assert(memcmp(a[1], a[2], sizeof a[0]) != 0);
    ck_assert(memcmp(a[0], c, sizeof c) != 0); /* another seed, another order */
    int fixed = 0;
    for (int i = 0; i < N; i++) fixed += a[0][i] == i;
    ck_assert_int_lt(fixed, 10); /* about 1 expected */
    nn_batches_free(&ia);
    nn_batches_free(&ib);
    nn_batches_free(&ic);
}
END_TEST

/* An epoch started with the caller's generator takes the order nb_rng_permutation draws from it,
 * and leaves the generator where that call would. */
START_TEST(caller_generator_gives_nb_rng_permutation) {
    enum { N = 57 };
    int64_t want[N], got[N];
    nb_rng r1, r2;
    nb_rng_seed(&r1, 9);
    nb_rng_seed(&r2, 9);
    nn_batches it;
    nn_batches_init(&it, N, 10, true, false, 1);
    for (int e = 0; e < 2; e++) {
        for (int64_t i = 0; i < N; i++) want[i] = -1; /* old contents don't matter */
        nb_rng_permutation(&r1, want, N);
        nn_batches_epoch(&it, &r2);
        ck_assert_int_eq(walk(&it, got), N);
        ck_assert_mem_eq(want, got, sizeof want);
    }
    ck_assert_int_eq(nb_rng_next(&r1), nb_rng_next(&r2));
    nb_rng_permutation(&r1, want, 0);
    nb_rng_permutation(&r1, want, 1);
    ck_assert_int_eq(want[0], 0);
    nn_batches_free(&it);
}
END_TEST

/* A batch of rows of a kept tensor (also through a non-contiguous one); the partial last batch
 * is a view of the first rows; no allocation once the first epoch has run. */
START_TEST(gather_rows_of_kept_tensors) {
    Tensor *X = tensor_arange(0, 30, 1); /* 10 examples of [3] */
    Tensor *X2 = tensor_from_array(NB_SHAPE(10, 3), X->data);
    Tensor *T = tensor_from_array(NB_SHAPE(3, 10), X->data); /* T^T: a strided source */
    Tensor Tt; /* a strided view of a kept tensor, outside the tape */
    tensor_layout_transpose(T, 0, 1, &Tt);
    Tensor *xb = tensor_empty(NB_SHAPE(4, 3)), *tb = tensor_empty(NB_SHAPE(4, 3));
    nn_batches it;
    nn_batches_init(&it, 10, 4, true, false, 7);
    int64_t allocs = 0;
    for (int epoch = 0; epoch < 3; epoch++) {
        if (epoch == 1) allocs = nb_mem_stats().allocs;
        int64_t total = 0;
        while (nn_batches_next(&it)) {
            Tensor *x = nn_batches_gather(&it, X2, xb);
            Tensor *t = nn_batches_gather(&it, &Tt, tb);
            ck_assert_int_eq(x->shape[0], it.count);
            ck_assert(it.count < 4 ? !x->kept : x == xb);
            for (int64_t i = 0; i < it.count; i++)
                for (int64_t j = 0; j < 3; j++) {
                    int64_t k = it.index[i];
                    ck_assert_double_eq(tensor_get(x, (int64_t[]){i, j}), (double)(3 * k + j));
                    ck_assert_double_eq(tensor_get(t, (int64_t[]){i, j}), (double)(10 * j + k));
                }
            total += it.count;
            ag_reset();
        }
        ck_assert_int_eq(total, 10);
    }
    ck_assert_int_eq(nb_mem_stats().allocs, allocs);
    NBT_EXPECT_FAIL(nn_batches_gather(&it, X, xb), "nn_batches_gather", "[30]");
    Tensor *wrong = tensor_empty(NB_SHAPE(4, 2));
    NBT_EXPECT_FAIL(nn_batches_gather(&it, X2, wrong), "nn_batches_gather", "[4, 2]");
    NBT_EXPECT_FAIL(nn_batches_init(&it, 5, 0, false, false, 0), "nn_batches_init", "batch 0");
    ag_reset();
    nn_batches_free(&it);
    nn_batches_free(&it); /* freeing twice is harmless */
    tensor_free(wrong);
    tensor_free(xb);
    tensor_free(tb);
    tensor_free(T);
    tensor_free(X2);
    tensor_free(X);
}
END_TEST

/* The example at the top of nn/data.h, as written there; train_step checks each batch: row i of
 * X holds 10 * i + j and labels[i] = i, so a batch's rows and labels must agree. */
static int64_t steps, examples;
static void train_step(Tensor *x, const int64_t *y) {
    for (int64_t i = 0; i < x->shape[0]; i++)
        for (int64_t j = 0; j < 4; j++)
            ck_assert_double_eq(tensor_get(x, (int64_t[]){i, j}), (double)(10 * y[i] + j));
    steps++;
    examples += x->shape[0];
    ag_reset();
}

START_TEST(header_example) {
    enum { N = 70 };
    Tensor *X = tensor_empty(NB_SHAPE(N, 4));
    int64_t labels[N];
    for (int64_t i = 0; i < N; i++) {
        labels[i] = i;
        for (int64_t j = 0; j < 4; j++) X->data[i * 4 + j] = (real)(10 * i + j);
    }
    nn_batches it;
    nn_batches_init(&it, X->shape[0], 32, true, false, 1); // shuffled; keeps a partial last batch
    Tensor *xb = tensor_empty(NB_SHAPE(32, 4));            // kept: each batch is copied in
    int64_t y[32];
    for (int epoch = 0; epoch < 3; epoch++)
        while (nn_batches_next(&it)) {                 // each epoch in a fresh order
            Tensor *x = nn_batches_gather(&it, X, xb); // rows it.index[0..it.count) of X
            for (int64_t i = 0; i < it.count; i++) y[i] = labels[it.index[i]];
            train_step(x, y); // ..., ag_reset()
        }
    tensor_free(xb);
    nn_batches_free(&it);
    ck_assert_int_eq(steps, 9);
    ck_assert_int_eq(examples, 3 * N);
    tensor_free(X);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("data");
    TCase *t = tcase_create("batches");
    tcase_add_test(t, every_example_once_per_epoch);
    tcase_add_test(t, in_order_without_shuffle);
    tcase_add_test(t, drop_last_skips_the_partial_batch);
    tcase_add_test(t, same_seed_same_order_different_seed_different_order);
    tcase_add_test(t, caller_generator_gives_nb_rng_permutation);
    tcase_add_test(t, gather_rows_of_kept_tensors);
    tcase_add_test(t, header_example);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
