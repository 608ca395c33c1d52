/* tests/test_stale.c: a step tensor used after the ag_reset or ag_release that released it fails
 * at once, naming the op, "step tensor used after ag_reset" and the line that made it; tensors
 * that are still live never do, and the check keeps steps free of allocation. */
#include "tests/check_main.h"
#include "tests/testutil.h"

#include "nn/layers.h"

#include <stdio.h>

#define STALE "step tensor used after ag_reset"

/* "test_stale.c:<line>)": how the message names the line that made a tensor. */
static const char *made_at(int line) {
    static char buf[64];
    snprintf(buf, sizeof buf, "test_stale.c:%d", line);
    return buf;
}

START_TEST(use_after_reset_fails_in_every_kind_of_op) {
    Tensor *x = nbt_param(NB_SHAPE(3, 4), -1, 1, 1);
    int line = __LINE__ + 1;
    Tensor *y = ag_mul(x, x);
    ag_backward(ag_sum(y));
    ag_reset();
    Tensor *z = ag_add(x, x); /* the new step's tensors are fine */
    ck_assert_double_eq_tol(tensor_get(z, (int64_t[]){0, 0}), 2 * tensor_get(x, (int64_t[]){0, 0}),
                            1e-6);
    NBT_EXPECT_FAIL(ag_add(y, z), "nabla: add: " STALE " (made at ", made_at(line));
    NBT_EXPECT_FAIL(ag_add(z, y), "add: " STALE);
    NBT_EXPECT_FAIL(ag_exp(y), "exp: " STALE, made_at(line));
    NBT_EXPECT_FAIL(ag_matmul(y, ag_transpose(z, 0, 1)), "matmul: " STALE);
    NBT_EXPECT_FAIL(ag_linear(y, x, NULL), "linear: " STALE);
    NBT_EXPECT_FAIL(ag_sum(y), "sum: " STALE);
    NBT_EXPECT_FAIL(ag_sum_dims(y, (int[]){1}, 1, false), "sum: " STALE);
    NBT_EXPECT_FAIL(ag_softmax(y, 1), STALE);
    NBT_EXPECT_FAIL(ag_transpose(y, 0, 1), "transpose: " STALE);
    NBT_EXPECT_FAIL(ag_reshape(y, NB_SHAPE(12)), "reshape: " STALE);
    NBT_EXPECT_FAIL(ag_unsqueeze(y, 0), "unsqueeze: " STALE);
    NBT_EXPECT_FAIL(ag_expand(y, NB_SHAPE(2, 3, 4)), "expand: " STALE);
    NBT_EXPECT_FAIL(ag_detach(y), "detach: " STALE);
    NBT_EXPECT_FAIL(ag_concat((Tensor *[]){z, y}, 2, 0), "concat: " STALE);
    NBT_EXPECT_FAIL(ag_backward(ag_sum(y)), STALE);
    NBT_EXPECT_FAIL(ag_backward(y), "backward: " STALE, made_at(line));
    /* reading it */
    NBT_EXPECT_FAIL(tensor_item(y), "tensor_item: " STALE);
    NBT_EXPECT_FAIL(tensor_get(y, (int64_t[]){0, 0}), "tensor_get: " STALE);
    NBT_EXPECT_FAIL(tensor_set(y, (int64_t[]){0, 0}, 1), "tensor_set: " STALE);
    NBT_EXPECT_FAIL(tensor_print(y, "y"), "tensor_print: " STALE);
    NBT_EXPECT_FAIL(tensor_copy_into(z, y), "tensor_copy_into: " STALE);
    NBT_EXPECT_FAIL(tensor_free(tensor_copy(y)), "tensor_copy: " STALE);
    ag_reset();
    tensor_free(x);
}
END_TEST

/* With grad mode off (nothing is recorded) and for ops that never record (comparisons use the
 * same broadcast helper), the check still runs. */
START_TEST(use_after_reset_fails_without_grad) {
    Tensor *x = nbt_tensor(NB_SHAPE(5), -1, 1, 2, false);
    bool prev = ag_set_grad_enabled(false);
    Tensor *y = ag_exp(x);
    ag_reset();
    NBT_EXPECT_FAIL(ag_exp(y), "exp: " STALE);
    NBT_EXPECT_FAIL(ag_mul(x, y), "mul: " STALE);
    NBT_EXPECT_FAIL(ag_max(y, 0, false), "max: " STALE);
    ag_set_grad_enabled(prev);
    ag_reset();
    tensor_free(x);
}
END_TEST

START_TEST(use_after_release_fails) {
    Tensor *x = nbt_param(NB_SHAPE(2, 3), -1, 1, 3);
    Tensor *before = ag_exp(x); /* made before the mark: stays live */
    ag_mark_t m = ag_mark();
    int line = __LINE__ + 1;
    Tensor *y = ag_mul(before, x);
    Tensor *v = ag_transpose(y, 0, 1);
    ag_release(m);
    Tensor *after = ag_add(before, x); /* made after the release */
    NBT_EXPECT_FAIL(ag_add(y, x), "add: " STALE " (made at ", made_at(line),
                    "released by ag_release");
    NBT_EXPECT_FAIL(ag_neg(v), "neg: " STALE);
    NBT_EXPECT_FAIL(tensor_item(ag_sum(y)), STALE);
    /* what is live still works, and backward runs through it */
    ag_backward(ag_sum(ag_mul(before, after)));
    ck_assert_ptr_nonnull(x->grad);
    ag_reset();
    tensor_free(x);
}
END_TEST

/* A tensor kept from one step is caught in the next even when that step makes many tensors and
 * the arena had to grow and merge its blocks at the reset in between (the old blocks stay
 * allocated until one reset later, so reading the stale data before the check is no use after
 * free either: this test runs under ASan too). */
START_TEST(previous_step_tensor_is_caught_after_a_busy_step) {
    ag_reset();
    arena_free_all(); /* start cold: the first step grows everything */
    Tensor *x = nbt_param(NB_SHAPE(64, 64), -1, 1, 4);
    Tensor *kept_from_last = NULL;
    for (int step = 0; step < 4; step++) {
        Tensor *big = ag_zeros(NB_SHAPE(1024, 1024)); /* several MiB: more than one block */
        Tensor *h = ag_add(x, ag_narrow(ag_reshape(big, NB_SHAPE(-1, 64)), 0, 0, 64));
        for (int i = 0; i < 600; i++) h = ag_tanh(ag_mul_scalar(h, (real)0.5));
        if (kept_from_last) { /* tanh reads its input's data before its check */
            NBT_EXPECT_FAIL(ag_tanh(kept_from_last), "tanh: " STALE);
            NBT_EXPECT_FAIL(ag_add(kept_from_last, x), "add: " STALE);
        }
        kept_from_last = h;
        ag_backward(ag_sum(h));
        ag_reset();
    }
    NBT_EXPECT_FAIL(tensor_item(ag_sum(kept_from_last)), STALE);
    ag_reset();
    tensor_free(x);
}
END_TEST

/* Tensors made by library code outside any user call site name their op. */
START_TEST(unknown_site_names_the_op) {
    Tensor *x = nbt_tensor(NB_SHAPE(4), -1, 1, 5, false);
    Tensor *y = nn_relu(x); /* nn_ calls are not wrapped: the op inside is all that is known */
    Tensor *z = tensor_step(NB_SHAPE(4));
    ag_reset();
    NBT_EXPECT_FAIL(ag_add(y, x), "add: " STALE " (made by relu)");
    NBT_EXPECT_FAIL(ag_add(z, x), "add: " STALE " (made by tensor_step)");
    ag_reset();
    tensor_free(x);
}
END_TEST

/* The check costs no memory: steps that use marks and releases, and plain steps, allocate
 * nothing once the first has run, and a long release loop inside one step stays flat. */
START_TEST(checks_keep_steps_allocation_free) {
    Tensor *x = nbt_param(NB_SHAPE(8, 8), -1, 1, 6);
    nb_mem_stats_t warm = {0};
    for (int step = 0; step < 50; step++) {
        Tensor *h = ag_tanh(ag_matmul(x, x));
        for (int k = 0; k < (step < 3 ? 10 : 2000); k++) { /* a long loop of releases */
            ag_mark_t m = ag_mark();
            Tensor *t = ag_exp(ag_mul(h, x));
            (void)t;
            ag_release(m);
        }
        ag_backward(ag_sum(ag_add(h, ag_full(NB_SHAPE(1), 1))));
        ag_reset();
        if (step == 3) warm = nb_mem_stats();
    }
    nb_mem_stats_t end = nb_mem_stats();
    ck_assert_int_eq(end.allocs, warm.allocs);
    ck_assert_int_eq(end.live_bytes, warm.live_bytes);
    tensor_free(x);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("stale");
    TCase *t = tcase_create("stale");
    tcase_add_test(t, use_after_reset_fails_in_every_kind_of_op);
    tcase_add_test(t, use_after_reset_fails_without_grad);
    tcase_add_test(t, use_after_release_fails);
    tcase_add_test(t, previous_step_tensor_is_caught_after_a_busy_step);
    tcase_add_test(t, unknown_site_names_the_op);
    tcase_add_test(t, checks_keep_steps_allocation_free);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
