/* tests/test_ops_index.c: stack, embedding and one_hot: gradient checks (odd sizes, every dim,
 * transposed inputs, repeated ids), values and gradients against PyTorch 1.13
 * (tests/index_ref.h, from tools/ref_norm.py), and the errors. Runs in float and double. */
#include "tests/check_main.h"
#include "tests/testutil.h"

#include <math.h>

#include "tests/index_ref.h"

/* ---- stack --------------------------------------------------------------------------------- */

static Tensor *f_stack0(Tensor *const *in, void *c) {
    (void)c;
    return ag_stack(in, 3, 0);
}
static Tensor *f_stack1(Tensor *const *in, void *c) {
    (void)c;
    return ag_stack(in, 3, 1);
}
static Tensor *f_stack_end(Tensor *const *in, void *c) {
    (void)c;
    return ag_stack(in, 3, -1);
}
/* in[1] is stored [5, 3] and read transposed, so one operand is non-contiguous. */
static Tensor *f_stackT(Tensor *const *in, void *c) {
    (void)c;
    return ag_stack((Tensor *[]){in[0], ag_transpose(in[1], 0, 1), in[2]}, 3, -2);
}

START_TEST(gradcheck_stack) {
    static const ag_fn fs[] = {f_stack0, f_stack1, f_stack_end, f_stackT};
    static const char *names[] = {"stack dim 0", "stack dim 1", "stack dim -1 (last)",
                                  "stack with a transposed input, dim -2"};
    Tensor *in[3];
    for (int i = 0; i < 3; i++) {
        bool t = _i == 3 && i == 1;
        in[i] = nbt_param(NB_SHAPE(t ? 5 : 3, t ? 3 : 5), -1, 1, 10 + (uint64_t)i);
    }
    nbt_gradcheck(names[_i], fs[_i], in, 3, NULL);
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
    ag_reset();
}
END_TEST

START_TEST(stack_values_and_errors) {
    Tensor *a = tensor_from_array(NB_SHAPE(2, 3), (real[]){1, 2, 3, 4, 5, 6});
    Tensor *b = tensor_from_array(NB_SHAPE(2, 3), (real[]){7, 8, 9, 10, 11, 12});
    Tensor *y = ag_stack((Tensor *[]){a, b}, 2, 0); /* [2, 2, 3]: a then b */
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(y->shape[0], 2);
    nbt_assert_close(y, (real[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 0);
    y = ag_stack((Tensor *[]){a, b}, 2, 2); /* [2, 3, 2]: pairs */
    ck_assert_int_eq(y->shape[2], 2);
    nbt_assert_close(y, (real[]){1, 7, 2, 8, 3, 9, 4, 10, 5, 11, 6, 12}, 0);
    y = ag_stack((Tensor *[]){a, b}, 2, -2); /* [2, 2, 3]: dim 1 */
    ck_assert_int_eq(y->shape[1], 2);
    nbt_assert_close(y, (real[]){1, 2, 3, 7, 8, 9, 4, 5, 6, 10, 11, 12}, 0);
    Tensor *s = tensor_scalar(5);
    y = ag_stack((Tensor *[]){s, s, s}, 3, 0); /* scalars stack into a vector */
    ck_assert_int_eq(y->ndim, 1);
    nbt_assert_close(y, (real[]){5, 5, 5}, 0);
    Tensor *c = tensor_zeros(NB_SHAPE(3, 2));
    NBT_EXPECT_FAIL(ag_stack((Tensor *[]){a, c}, 2, 0), "stack",
                    "tensor 1 has shape [3, 2], but tensor 0 has [2, 3]");
    NBT_EXPECT_FAIL(ag_stack((Tensor *[]){a, b}, 2, 3), "stack", "dim 3 is out of range", "[2, 3]");
    NBT_EXPECT_FAIL(ag_stack((Tensor *[]){a, b}, 2, -4), "dim -4 is out of range");
    NBT_EXPECT_FAIL(ag_stack((Tensor *[]){a}, 0, 0), "stack", "at least one");
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
    tensor_free(s);
    ag_reset();
}
END_TEST

/* ---- embedding ------------------------------------------------------------------------------ */

static const int64_t ids_rep[2][3] = {{4, 0, 4}, {6, 4, 1}}; /* 4 three times; 2, 3, 5 never */

static Tensor *f_embedding(Tensor *const *in, void *c) {
    (void)c;
    return ag_embedding(in[0], NB_SHAPE(2, 3), &ids_rep[0][0]);
}
/* weight stored [E, V] and read transposed: rows of the lookup are strided */
static Tensor *f_embeddingT(Tensor *const *in, void *c) {
    (void)c;
    return ag_mul(ag_embedding(ag_transpose(in[0], 0, 1), NB_SHAPE(6), &ids_rep[0][0]), in[1]);
}
/* one id (ndim 0) gives one row, [E] */
static Tensor *f_embedding_scalar(Tensor *const *in, void *c) {
    (void)c;
    return ag_embedding(in[0], 0, NULL, (int64_t[]){5});
}

START_TEST(gradcheck_embedding) {
    Tensor *w = nbt_param(NB_SHAPE(7, 5), -1, 1, 20);
    nbt_gradcheck("embedding, repeated ids", f_embedding, &w, 1, NULL);
    nbt_gradcheck("embedding of one id", f_embedding_scalar, &w, 1, NULL);
    Tensor *in[2] = {nbt_param(NB_SHAPE(5, 7), -1, 1, 21), nbt_param(NB_SHAPE(6, 5), -1, 1, 22)};
    nbt_gradcheck("embedding through a transposed weight", f_embeddingT, in, 2, NULL);
    tensor_free(w);
    tensor_free(in[0]);
    tensor_free(in[1]);
    ag_reset();
}
END_TEST

START_TEST(embedding_matches_pytorch) {
    int64_t V = INDEX_REF_EMB_V, E = INDEX_REF_EMB_E;
    Tensor *w = tensor_empty(NB_SHAPE(V, E));
    for (int64_t i = 0; i < V * E; i++) w->data[i] = (real)index_ref_emb_w[i];
    tensor_requires_grad(w, true);
    Tensor *y = ag_embedding(w, NB_SHAPE(2, 4), &index_ref_emb_ids[0][0]);
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(y->shape[0], 2);
    ck_assert_int_eq(y->shape[1], 4);
    ck_assert_int_eq(y->shape[2], E);
    for (int64_t i = 0; i < y->numel; i++) ck_assert(y->data[i] == (real)index_ref_emb_y[i]);
    Tensor *gy = tensor_empty(y->ndim, y->shape);
    for (int64_t i = 0; i < gy->numel; i++) gy->data[i] = (real)index_ref_emb_gy[i];
    ag_backward_with(y, gy);
#ifdef NB_DOUBLE
    double tol = 1e-12;
#else
    double tol = 1e-5;
#endif
    for (int64_t i = 0; i < V * E; i++)
        ck_assert_msg(fabs((double)w->grad->data[i] - index_ref_emb_dw[i]) <= tol,
                      "dweight[%lld] = %g, PyTorch %g", (long long)i, (double)w->grad->data[i],
                      index_ref_emb_dw[i]);
    tensor_free(w);
    tensor_free(gy);
    ag_reset();
}
END_TEST

START_TEST(embedding_errors) {
    Tensor *w = tensor_zeros(NB_SHAPE(10, 4));
    Tensor *v = tensor_zeros(NB_SHAPE(10));
    NBT_EXPECT_FAIL(ag_embedding(w, NB_SHAPE(2, 3), (int64_t[]){0, 1, 9, 2, 10, 11}), "embedding",
                    "id 10 at position 4 (index [1, 1] of ids [2, 3]) is out of range for weight "
                    "[10, 4]");
    NBT_EXPECT_FAIL(ag_embedding(w, NB_SHAPE(3), (int64_t[]){0, -1, 3}), "id -1 at position 1");
    NBT_EXPECT_FAIL(ag_embedding(v, NB_SHAPE(1), (int64_t[]){0}), "weight [10] should be [V, E]");
    NBT_EXPECT_FAIL(ag_embedding(w, -1, NULL, NULL), "ids have -1 dims");
    tensor_free(w);
    tensor_free(v);
    ag_reset();
}
END_TEST

/* ---- one_hot -------------------------------------------------------------------------------- */

START_TEST(one_hot_values_and_errors) {
    Tensor *t = tensor_one_hot((int64_t[]){2, 0, 2, 3}, 4, 4);
    ck_assert(t->kept);
    ck_assert_int_eq(t->shape[0], 4);
    ck_assert_int_eq(t->shape[1], 4);
    nbt_assert_close(t, (real[]){0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, 0);
    tensor_free(t);
    t = tensor_one_hot(NULL, 0, 3); /* no ids: [0, 3] */
    ck_assert_int_eq(t->numel, 0);
    ck_assert_int_eq(t->shape[1], 3);
    tensor_free(t);
    NBT_EXPECT_FAIL(tensor_one_hot((int64_t[]){1, 5, 0}, 3, 5), "one_hot",
                    "id 5 at position 1 (index [1] of ids [3]) is out of range for 5 classes");
    NBT_EXPECT_FAIL(tensor_one_hot((int64_t[]){-2}, 1, 5), "id -2 at position 0");
    NBT_EXPECT_FAIL(tensor_one_hot((int64_t[]){0}, 1, 0), "num_classes must be positive, got 0");
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("ops_index");
    TCase *t = tcase_create("ops_index");
    tcase_add_loop_test(t, gradcheck_stack, 0, 4);
    tcase_add_test(t, stack_values_and_errors);
    tcase_add_test(t, gradcheck_embedding);
    tcase_add_test(t, embedding_matches_pytorch);
    tcase_add_test(t, embedding_errors);
    tcase_add_test(t, one_hot_values_and_errors);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
