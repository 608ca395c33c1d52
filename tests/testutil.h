/* tests/testutil.h: helpers shared by the Check programs.
 *
 *   NBT_EXPECT_FAIL(ag_matmul(a, b), "inner dims differ");
 *
 * runs the statement with an error handler that jumps back instead of aborting, and checks
 * that it failed with a message containing the given text. */
#ifndef NB_TESTUTIL_H
#define NB_TESTUTIL_H

#include <check.h>
#include <setjmp.h>
#include <string.h>

#include "autograd/gradcheck.h"

extern jmp_buf nbt_jump;
void nbt_jump_handler(const char *message);

#define NBT_EXPECT_FAIL(stmt, text)                                                                \
    do {                                                                                           \
        nb_error_handler nbt_old_ = nb_set_error_handler(nbt_jump_handler);                        \
        if (setjmp(nbt_jump) == 0) {                                                               \
            stmt;                                                                                  \
            nb_set_error_handler(nbt_old_);                                                        \
            ck_abort_msg("expected an error containing \"%s\"", text);                            \
        }                                                                                          \
        nb_set_error_handler(nbt_old_);                                                            \
        ck_assert_msg(strstr(nb_last_error(), text) != NULL, "error \"%s\" lacks \"%s\"",         \
                      nb_last_error(), text);                                                      \
    } while (0)

/* Fails the test with gradcheck's message unless f's gradients check out. */
void nbt_gradcheck(const char *what, ag_fn f, Tensor *const *in, int n, void *ctx);

/* A kept tensor of the given shape with values uniform in [lo, hi), requiring grad. */
Tensor *nbt_param(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed);

/* Asserts |a - b| <= tol elementwise over two tensors of the same shape. */
void nbt_assert_close(const Tensor *a, const real *expect, double tol);

#endif
