/* tests/test_mnist_mlp.c: runs the MLP example ($NABLA_BUILD/mnist_mlp, default build/) from the
 * repository root and checks that it reaches 95% test accuracy on the shipped digits with a fixed
 * seed, that a seed fixes the whole run, and that bad arguments exit 2 and missing data exits 1,
 * each with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/check_main.h"
#include "tests/testutil.h"

/* Runs "$NABLA_BUILD/mnist_mlp <args>" (tests/testutil.h). */
static int run(const char *args, char *out, size_t len) {
    return nbt_run("mnist_mlp", out, len, "%s", args);
}

static char out[1 << 16];

START_TEST(test_reaches_95_percent) {
    int st = run("--seed 1", out, sizeof out);
    ck_assert_msg(st == 0, "mnist_mlp exited %d:\n%s", st, out);

    /* one line per epoch, numbered from 1, the train loss falling from the first to the last */
    int epochs = 0;
    double first_loss = 0, last_loss = 0, last_acc = -1, final_acc = -1;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        int e;
        double loss, acc;
        if (sscanf(line, "epoch %d train loss %lf test accuracy %lf", &e, &loss, &acc) == 3) {
            ck_assert_int_eq(e, ++epochs);
            ck_assert_msg(loss > 0 && loss < 3, "epoch %d: train loss %g", e, loss);
            if (e == 1) first_loss = loss;
            last_loss = loss;
            last_acc = acc;
        } else {
            ck_assert_msg(sscanf(line, "test accuracy: %lf", &final_acc) == 1,
                          "unexpected line: %s", line);
        }
    }
    ck_assert_int_ge(epochs, 1);
    ck_assert_msg(last_loss < first_loss / 4, "train loss %g -> %g", first_loss, last_loss);
    ck_assert_msg(final_acc >= 0.95, "test accuracy %.3f < 0.95", final_acc);
    ck_assert_double_eq_tol(final_acc, last_acc, 0.0005 + 1e-9); /* the same number, rounded */
}
END_TEST

START_TEST(test_seed_fixes_the_run) {
    static char again[4096], other[4096];
    char one[4096];
    ck_assert_int_eq(run("--epochs 1 --seed 7", one, sizeof one), 0);
    ck_assert_int_eq(run("--epochs 1 --seed 7", again, sizeof again), 0);
    ck_assert_int_eq(run("--epochs 1 --seed 8", other, sizeof other), 0);
    ck_assert_str_eq(one, again);
    ck_assert_str_ne(one, other);
}
END_TEST

START_TEST(test_bad_arguments_exit_2) {
    static const char *const bad[] = {
        "--bogus",     "--epochs",    "--epochs 0",    "--epochs 1001",
        "--epochs 3x", "--epochs ''", "--seed -1",     "--seed 1e3",
        "--data",      "extra",       "--seed 1 --lr", "--epochs 99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = run(bad[i], out, sizeof out);
        ck_assert_msg(st == 2, "mnist_mlp %s exited %d, expected 2:\n%s", bad[i], st, out);
        ck_assert_msg(strstr(out, "mnist_mlp: ") && strstr(out, "usage: mnist_mlp"),
                      "mnist_mlp %s: no message and usage:\n%s", bad[i], out);
    }
    ck_assert_int_eq(run("--help", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: mnist_mlp"));
}
END_TEST

START_TEST(test_missing_data_exits_1) {
    int st = run("--data /nonexistent/nabla-digits", out, sizeof out);
    ck_assert_msg(st == 1, "exited %d, expected 1:\n%s", st, out);
    /* the IDX reader's message names the directory and the file it looked for */
    ck_assert_msg(strstr(out, "/nonexistent/nabla-digits") && strstr(out, "train-images-idx3"),
                  "message does not name the missing file:\n%s", out);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("mnist_mlp");
    TCase *tc = tcase_create("example");
    tcase_set_timeout(tc, 600); /* training takes seconds, much longer under the sanitizers */
    tcase_add_test(tc, test_reaches_95_percent);
    tcase_add_test(tc, test_seed_fixes_the_run);
    tcase_add_test(tc, test_bad_arguments_exit_2);
    tcase_add_test(tc, test_missing_data_exits_1);
    suite_add_tcase(s, tc);
    return s;
}

NB_CHECK_MAIN(suite)
