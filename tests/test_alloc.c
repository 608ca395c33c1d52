/* tests/test_alloc.c: nb_malloc's promises: 64-byte alignment, exact counters, and in the
 * sanitizer build (make SAN=1) exact bounds: a read one byte past the size asked for, or one byte
 * before the block, is reported by AddressSanitizer even though the block is rounded up to 64. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tensor/base.h"
#include "tests/check_main.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif

START_TEST(test_alignment_and_counters) {
    nb_mem_stats_t before = nb_mem_stats();
    void *p[130];
    for (size_t n = 0; n < 130; n++) {
        p[n] = nb_malloc(n);
        ck_assert_msg((uintptr_t)p[n] % 64 == 0, "nb_malloc(%zu) is not 64-byte aligned", n);
    }
    nb_mem_stats_t mid = nb_mem_stats();
    ck_assert_int_eq(mid.live - before.live, 130);
    ck_assert_int_eq(mid.live_bytes - before.live_bytes, 129 * 130 / 2);
    for (size_t n = 0; n < 130; n++) nb_free(p[n]);
    ck_assert_int_eq(nb_mem_stats().live, before.live);
    ck_assert_int_eq(nb_mem_stats().live_bytes, before.live_bytes);
}
END_TEST

#ifdef ASAN_BUILD
/* Runs one read at p[at] of an nb_malloc(size) block in a child; true when the child was stopped
 * (ASan reports and exits non-zero). */
static bool read_is_caught(size_t size, long at) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(3);
        volatile unsigned char *p = nb_malloc(size);
        unsigned char v = p[at];
        (void)v;
        _exit(0);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
#endif

START_TEST(test_exact_bounds_under_asan) {
#ifdef ASAN_BUILD
    const size_t sizes[] = {1, 10, 63, 64, 100, 4000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        ck_assert_msg(!read_is_caught(n, (long)n - 1), "reading the last byte of %zu failed", n);
        ck_assert_msg(read_is_caught(n, (long)n), "a read one past nb_malloc(%zu) went unseen", n);
        ck_assert_msg(read_is_caught(n, -1), "a read one before nb_malloc(%zu) went unseen", n);
    }
#else
    fprintf(stderr, "test_alloc: not an AddressSanitizer build, skipping the exact-bounds check "
                    "(make SAN=1 runs it)\n");
#endif
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_alignment_and_counters);
    tcase_add_test(tc, test_exact_bounds_under_asan);
    suite_add_tcase(s, tc);
    return s;
}

NB_CHECK_MAIN(suite)
