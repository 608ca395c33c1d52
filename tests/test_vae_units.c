/* tests/test_vae_units.c: the vae command's own functions, linked in directly (the Makefile adds
 * the examples/vae objects but main): the rng state's text form, the divergence rule, the class
 * count of a conditional run, and flag parsing. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "examples/vae/cli.h"
#include "tests/check_main.h"
#include "tests/testutil.h"

/* After an odd number of normal draws the generator holds Box-Muller's second value: the text
 * form carries it, so a restored generator continues with exactly the same numbers. */
START_TEST(test_rng_text_round_trip) {
    for (int draws = 0; draws < 4; draws++) {
        nb_rng a, b;
        nb_rng_seed(&a, 77);
        for (int i = 0; i < draws; i++) nb_rng_normal(&a);
        char text[160];
        cli_rng_format(&a, text, sizeof text);
        ck_assert_msg(cli_rng_parse(text, &b), "cannot parse its own '%s'", text);
        ck_assert_int_eq(b.has_cached, draws % 2);
        for (int i = 0; i < 9; i++) {
            double x = nb_rng_normal(&a), y = nb_rng_normal(&b);
            ck_assert_msg(memcmp(&x, &y, sizeof x) == 0, "draw %d after %d: %.17g != %.17g", i,
                          draws, x, y);
        }
        ck_assert(nb_rng_next(&a) == nb_rng_next(&b));
        char again[160];
        cli_rng_format(&b, again, sizeof again);
        cli_rng_format(&a, text, sizeof text);
        ck_assert_str_eq(text, again);
    }
    nb_rng r;
    const char *bad[] = {
        "",
        "0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000 0",
        "0123456789abcdef 0123456789abcdef 0123456789abcdef 0123456789abcdef 0000000000000000 2",
        "0123456789ABCDEF 0123456789abcdef 0123456789abcdef 0123456789abcdef 0000000000000000 0",
        "0123456789abcdef 0123456789abcdef 0123456789abcdef 0123456789abcdef 0000000000000000 0 ",
        "0123456789abcdef 0123456789abcdef 0123456789abcdef 0123456789abcdef 000000000000000 0",
        "0123456789abcdef  123456789abcdef 0123456789abcdef 0123456789abcdef 0000000000000000 0",
        /* found by fuzz/fuzz_config.c: a 17th (upper-case) digit was read as part of the word */
        "0123456789abcdef fedcba9876543210 0000000000000000 8000000000000000 3ff0000000000000F 0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!cli_rng_parse(bad[i], &r), "accepted '%s'", bad[i]);
}
END_TEST

/* The divergence rule of cli.h: |loss| beyond 1e4 nats per input value, or not finite. */
START_TEST(test_divergence_rule) {
    ck_assert(!cli_loss_diverged(150.0, 784));
    ck_assert(!cli_loss_diverged(-3000.0, 784)); /* a learned-variance Gaussian may go negative */
    ck_assert(!cli_loss_diverged(7.84e6, 784));  /* the bound itself is not beyond it */
    ck_assert(cli_loss_diverged(7.85e6, 784));
    ck_assert(cli_loss_diverged(-7.85e6, 784));
    ck_assert(cli_loss_diverged(1e35, 784));
    ck_assert(cli_loss_diverged(INFINITY, 784) && cli_loss_diverged(NAN, 784));
    ck_assert(cli_loss_diverged(2e4, 1) && !cli_loss_diverged(2e4, 4));
}
END_TEST

static idx_dataset labelled(uint8_t *labels, int64_t n) {
    idx_dataset d = {.n = n, .rows = 1, .cols = 1, .labels = labels, .num_classes = 256};
    return d;
}

START_TEST(test_class_count) {
    uint8_t tr[6] = {0, 2, 1, 2, 0, 1}, te[2] = {1, 2}, gap[6] = {0, 2, 1, 9, 0, 1},
            high[2] = {1, 3};
    idx_dataset train = labelled(tr, 6), test = labelled(te, 2);
    int64_t k = -1;
    ck_assert_int_eq(cli_count_classes("t", "d", &train, &test, 0, &k), 0);
    ck_assert_int_eq(k, 3);
    ck_assert_int_eq(cli_count_classes("t", "d", &train, &test, 5, &k), 0);
    ck_assert_int_eq(k, 5); /* --classes may name classes the data lacks */
    ck_assert_int_eq(cli_count_classes("t", "d", &train, &test, 2, &k), CLI_FAIL);
    idx_dataset holes = labelled(gap, 6), above = labelled(high, 2);
    ck_assert_int_eq(cli_count_classes("t", "d", &holes, &test, 0, &k), CLI_FAIL);
    ck_assert_int_eq(cli_count_classes("t", "d", &holes, &test, 10, &k), 0);
    ck_assert_int_eq(cli_count_classes("t", "d", &train, &above, 0, &k), CLI_FAIL);
    idx_dataset none = labelled(tr, 0);
    ck_assert_int_eq(cli_count_classes("t", "d", &none, &none, 0, &k), CLI_FAIL);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("vae_units");
    TCase *tc = tcase_create("units");
    tcase_add_test(tc, test_rng_text_round_trip);
    tcase_add_test(tc, test_divergence_rule);
    tcase_add_test(tc, test_class_count);
    suite_add_tcase(s, tc);
    return s;
}

NB_CHECK_MAIN(suite)
