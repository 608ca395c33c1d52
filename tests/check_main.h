/* tests/check_main.h: every tests/test_*.c file is its own Check program.
 *
 *   static Suite *suite(void) { ... }
 *   NB_CHECK_MAIN(suite)
 *
 * The program exits non-zero when any check fails, so `make test` fails too. */
#ifndef NB_CHECK_MAIN_H
#define NB_CHECK_MAIN_H
#include <check.h>
#include <stdlib.h>

#define NB_CHECK_MAIN(suite_fn)                                                                    \
    int main(void) {                                                                               \
        SRunner *runner = srunner_create(suite_fn());                                              \
        srunner_run_all(runner, CK_NORMAL);                                                        \
        int failed = srunner_ntests_failed(runner);                                                \
        srunner_free(runner);                                                                      \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                                          \
    }
#endif
