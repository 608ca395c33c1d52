/* tests/testutil.h: helpers shared by the Check programs.
 *
 *   NBT_EXPECT_FAIL(ag_matmul(a, b), "inner dims differ", "[2, 3]");
 *
 * runs the statement with an error handler that jumps back instead of aborting, and checks
 * that it failed with a message containing every given text. Step tensors made by the failed
 * statement stay on the tape until the test's next ag_reset(). */
#ifndef NB_TESTUTIL_H
#define NB_TESTUTIL_H

#include <check.h>
#include <setjmp.h>
#include <string.h>

#include "autograd/gradcheck.h"
#include "io/idx.h"
#include "nn/layers.h"
#include "nn/optim.h"

extern jmp_buf nbt_jump;
void nbt_jump_handler(const char *message);

#define NBT_EXPECT_FAIL(stmt, ...)                                                                 \
    do {                                                                                           \
        nb_error_handler nbt_old_ = nb_set_error_handler(nbt_jump_handler);                        \
        if (setjmp(nbt_jump) == 0) {                                                               \
            stmt;                                                                                  \
            nb_set_error_handler(nbt_old_);                                                        \
            ck_abort_msg("expected an error from: %s", #stmt);                                     \
        }                                                                                          \
        nb_set_error_handler(nbt_old_);                                                            \
        nbt_check_error_texts((const char *[]){__VA_ARGS__, NULL});                                \
    } while (0)

/* Asserts that the last nb_fail message contains every text of the NULL-terminated list. */
void nbt_check_error_texts(const char *const *texts);

/* Fails the test with gradcheck's message unless f's gradients check out. */
void nbt_gradcheck(const char *what, ag_fn f, Tensor *const *in, int n, void *ctx);

/* A kept tensor of the given shape with values uniform in [lo, hi) from a generator seeded
 * with `seed`; nbt_param also makes it require grad. */
Tensor *nbt_tensor(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed, bool grad);
Tensor *nbt_param(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed);

/* Runs "$NABLA_BUILD/<prog> <args from fmt>" (NABLA_BUILD defaults to build) with stderr
 * joined to stdout; puts the output, cut to len - 1 bytes, in out (which may be NULL) and
 * returns the exit status, or -1 when the program did not run or exit normally. */
int nbt_run(const char *prog, char *out, size_t len, const char *fmt, ...);

/* Makes a fresh directory $TMPDIR/nabla_<name>_XXXXXX (TMPDIR defaults to /tmp) into dir (len
 * bytes); exits the test program if it cannot. nbt_rmdir removes it and everything in it. */
void nbt_mkdtemp(char *dir, size_t len, const char *name);
void nbt_rmdir(const char *dir);

/* Writes an uncompressed IDX file of u8 data with the given dims (big-endian, as the format). */
void nbt_write_idx(const char *path, const uint8_t *data, int ndims, const uint32_t *dims);

/* Asserts |a - b| <= tol elementwise over two tensors of the same shape. */
void nbt_assert_close(const Tensor *a, const real *expect, double tol);

/* Asserts t (any layout, read in its logical row-major order) matches PyTorch's values `ref`:
 * NaN for NaN, the same infinity, else |t - ref| <= tol (1 + |ref|); a failure names what, part
 * ("dx"), the element and both values. */
void nbt_assert_ref(const char *what, const char *part, const Tensor *t, const double *ref,
                    double tol);

/* ---- digits: training loops and a classifier on the shipped data ---------------------------- */

/* One pass over d in batches of NBT_BATCH in a shuffled order from rng, calling step(ctx, x [B,
 * D], labels [B]) per full batch and resetting the tape after each. */
#define NBT_BATCH 100
typedef void (*nbt_step_fn)(void *ctx, Tensor *x, const int64_t *labels);
void nbt_epoch(const idx_dataset *d, nb_rng *rng, nbt_step_fn step, void *ctx);

/* A small MLP classifier (D -> 128 -> classes), the reader of generated digits in the tests. */
typedef struct {
    nn_linear l1, l2;
    nn_params ps;
    nn_optim *opt;
} nbt_classifier;
/* Trains one on d with Adam (lr 1e-3) for `epochs` epochs. Free with nbt_classifier_free. */
void nbt_classifier_train(nbt_classifier *c, const idx_dataset *d, int classes, int epochs,
                          nb_rng *rng);
/* Logits [B, classes] of x [B, D] (records on the tape when grad mode is on). */
Tensor *nbt_classifier_logits(nbt_classifier *c, Tensor *x);
/* The most likely class of each of the n images x [n, D] into out [n] (grad mode off). */
void nbt_classifier_predict(nbt_classifier *c, const real *x, int64_t n, int64_t D, int64_t *out);
void nbt_classifier_free(nbt_classifier *c);

#endif
