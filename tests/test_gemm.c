/* tests/test_gemm.c: nb_gemm against a naive double-accumulated product; layouts, strides, beta,
 * empty sizes, bitwise determinism across thread counts, and no allocation on repeated calls.
 * The product tests run once per kernel (generic, avx2, avx512): each kernel this build has and
 * this CPU runs is checked; the others skip. Also: the choice of kernel and the busy-machine
 * thread policy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tensor/base.h"
#include "tensor/gemm.h"
#include "tensor/rng.h"
#include "tests/check_main.h"
#include "tests/testutil.h"

#ifdef NB_DOUBLE
#define EPS 1.1102230246251565e-16
#else
#define EPS 5.9604644775390625e-08
#endif

/* A strided operand: an m x n matrix, element (i,j) at p[i*rs + j*cs], inside a buffer of len. */
typedef struct {
    real *buf;
    int64_t len, rs, cs;
} mat;

static nb_rng rng;

/* The kernels, in the order of Check's loop index _i. */
static const char *const isas[] = {"generic", "avx2", "avx512"};
#define N_ISAS 3

/* Makes nb_gemm use kernel i; 0 if this build or CPU lacks it (the test then checks nothing). */
static int use_kernel(int i) {
    if (!nb_gemm_set_kernel(isas[i])) {
        fprintf(stderr, "gemm: no %s kernel here, skipped\n", isas[i]);
        return 0;
    }
    return 1;
}

static real *filled(int64_t len) {
    real *p = malloc((size_t)(len > 0 ? len : 1) * sizeof(real));
    for (int64_t i = 0; i < len; i++) p[i] = (real)(2 * nb_rng_uniform(&rng) - 1);
    return p;
}

/* An m x n operand stored as layout 'N' (row-major), 'T' (column-major, i.e. a transposed
 * matrix read through strides) or 'G' (general strides with gaps: rows 3n+1 apart, columns 2). */
static mat make(int64_t m, int64_t n, char layout) {
    mat a;
    if (layout == 'N')
        a.rs = n, a.cs = 1, a.len = m * n;
    else if (layout == 'T')
        a.rs = 1, a.cs = m, a.len = m * n;
    else
        a.rs = 2 * n + 3, a.cs = 2, a.len = m * (2 * n + 3);
    a.buf = filled(a.len);
    return a;
}

/* The reference: ref = beta*C0 + A @ B in double, and bound = sum |a||b| for the error bound. */
static void reference(int64_t M, int64_t N, int64_t K, mat A, mat B, real beta, const real *C0,
                      int64_t ldc, double *ref, double *bound) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, b = 0;
            for (int64_t k = 0; k < K; k++) {
                double x = (double)A.buf[i * A.rs + k * A.cs] * (double)B.buf[k * B.rs + j * B.cs];
                s += x;
                b += fabs(x);
            }
            if (beta != 0)
                s += (double)beta * (double)C0[i * ldc + j], b += fabs((double)C0[i * ldc + j]);
            ref[i * N + j] = s;
            bound[i * N + j] = b;
        }
}

/* Runs one product with C (row stride ldc = N + 5) prefilled with NaN (beta 0) or random values
 * (beta 1), checks every element against the reference, and checks that the 5 padding columns of
 * each row are untouched. Returns the number of bad elements. */
static int check_product(int64_t M, int64_t N, int64_t K, char la, char lb, real beta) {
    mat A = make(M, K, la), B = make(K, N, lb);
    int64_t ldc = N + 5;
    real *C = filled(M * ldc);
    if (beta == 0)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = NAN;
    real *C0 = malloc((size_t)(M * ldc > 0 ? M * ldc : 1) * sizeof(real));
    memcpy(C0, C, (size_t)(M * ldc) * sizeof(real));
    double *ref = malloc((size_t)(M * N + 1) * sizeof(double)),
           *bound = malloc((size_t)(M * N + 1) * sizeof(double));
    reference(M, N, K, A, B, beta, C0, ldc, ref, bound);
    nb_gemm(M, N, K, A.buf, A.rs, A.cs, B.buf, B.rs, B.cs, beta, C, ldc);
    int bad = 0;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double c = (double)C[i * ldc + j];
            double tol = 2.0 * (double)(K + 2) * EPS * bound[i * N + j] + 1e-30;
            if (!(fabs(c - ref[i * N + j]) <= tol)) bad++;
        }
        for (int64_t j = N; j < ldc; j++)
            if (memcmp(&C[i * ldc + j], &C0[i * ldc + j], sizeof(real)) != 0) bad++;
    }
    if (bad)
        fprintf(stderr, "gemm %lldx%lldx%lld %c%c beta %g: %d bad elements\n", (long long)M,
                (long long)N, (long long)K, la, lb, (double)beta, bad);
    free(A.buf), free(B.buf), free(C), free(C0), free(ref), free(bound);
    return bad;
}

static const char layouts[][2] = {{'N', 'N'}, {'N', 'T'}, {'T', 'N'}, {'T', 'T'}};

START_TEST(test_small_sizes_all_layouts) {
    if (!use_kernel(_i)) return;
    nb_rng_seed(&rng, 1);
    static const int64_t sizes[] = {1, 2, 3, 5, 6, 7, 13, 16, 17, 31, 33};
    int bad = 0;
    for (int l = 0; l < 4; l++)
        for (int a = 0; a < 11; a++)
            for (int b = 0; b < 11; b += 2)
                for (int c = 0; c < 11; c += 3) {
                    int64_t M = sizes[a], N = sizes[(a + b) % 11], K = sizes[(a + c) % 11];
                    bad += check_product(M, N, K, layouts[l][0], layouts[l][1],
                                         (a + b + c) % 2 ? 1 : 0);
                }
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(test_random_sizes_all_layouts) {
    if (!use_kernel(_i)) return;
    nb_rng_seed(&rng, 2);
    int bad = 0;
    for (int t = 0; t < 40; t++) {
        int64_t M = 1 + (int64_t)nb_rng_below(&rng, 150), N = 1 + (int64_t)nb_rng_below(&rng, 150);
        int64_t K = 1 + (int64_t)nb_rng_below(&rng, 300);
        bad += check_product(M, N, K, layouts[t % 4][0], layouts[t % 4][1], (real)(t / 4 % 2));
    }
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* Larger than every block: several K blocks (kc <= 512) and several M blocks of packed A. */
START_TEST(test_larger_than_blocks) {
    if (!use_kernel(_i)) return;
    nb_rng_seed(&rng, 3);
    int bad = 0;
    bad += check_product(607, 37, 1109, 'N', 'N', 1);
    bad += check_product(607, 53, 1109, 'T', 'T', 0);
    bad += check_product(41, 523, 1031, 'N', 'T', 0);
    bad += check_product(521, 19, 1031, 'T', 'N', 1);
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(test_general_and_zero_strides) {
    if (!use_kernel(_i)) return;
    nb_rng_seed(&rng, 4);
    int bad = 0;
    bad += check_product(29, 41, 23, 'G', 'G', 0);
    bad += check_product(29, 41, 23, 'G', 'N', 1);
    bad += check_product(29, 41, 23, 'N', 'G', 1);
    bad += check_product(7, 100, 61, 'T', 'G', 0);
    ck_assert_int_eq(bad, 0);

    /* stride 0: every row of A is the same vector, every column of B the same vector */
    int64_t M = 19, N = 23, K = 37;
    real *a = filled(K), *b = filled(K), *C = filled(M * N);
    nb_gemm(M, N, K, a, 0, 1, b, 1, 0, 0, C, N);
    double s = 0;
    for (int64_t k = 0; k < K; k++) s += (double)a[k] * (double)b[k];
    for (int64_t i = 0; i < M * N; i++)
        ck_assert(fabs((double)C[i] - s) <= 4.0 * K * EPS * (1 + fabs(s)));
    free(a), free(b), free(C);
}
END_TEST

START_TEST(test_beta) {
    if (!use_kernel(_i)) return;
    nb_rng_seed(&rng, 5);
    /* beta 0: the NaN in C never leaks (check_product fills C with NaN) */
    ck_assert_int_eq(check_product(50, 70, 90, 'N', 'T', 0), 0);
    /* beta 1 twice: C accumulates */
    int64_t M = 30, N = 40, K = 20;
    mat A = make(M, K, 'N'), B = make(K, N, 'N');
    real *C1 = calloc((size_t)(M * N), sizeof(real)), *C2 = calloc((size_t)(M * N), sizeof(real));
    nb_gemm(M, N, K, A.buf, A.rs, A.cs, B.buf, B.rs, B.cs, 0, C1, N);
    nb_gemm(M, N, K, A.buf, A.rs, A.cs, B.buf, B.rs, B.cs, 1, C2, N);
    nb_gemm(M, N, K, A.buf, A.rs, A.cs, B.buf, B.rs, B.cs, 1, C2, N);
    for (int64_t i = 0; i < M * N; i++) ck_assert(C2[i] == C1[i] + C1[i]);
    free(A.buf), free(B.buf), free(C1), free(C2);
}
END_TEST

START_TEST(test_empty_sizes) {
    real a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4};
    real C[6] = {NAN, NAN, NAN, NAN, NAN, NAN}, D[6] = {7, 7, 7, 7, 7, 7};
    nb_gemm(0, 3, 2, a, 2, 1, b, 3, 1, 0, C, 3); /* M = 0: nothing written */
    nb_gemm(2, 0, 2, a, 2, 1, b, 3, 1, 0, C, 3); /* N = 0: nothing written */
    for (int i = 0; i < 6; i++) ck_assert(isnan(C[i]));
    nb_gemm(2, 3, 0, a, 0, 1, b, 3, 1, 0, C, 3); /* K = 0, beta 0: C = 0 */
    for (int i = 0; i < 6; i++) ck_assert(C[i] == 0);
    nb_gemm(2, 3, 0, a, 0, 1, b, 3, 1, 1, D, 3); /* K = 0, beta 1: C unchanged */
    for (int i = 0; i < 6; i++) ck_assert(D[i] == 7);
    /* 1 x 1 x 1 */
    nb_gemm(1, 1, 1, a + 1, 1, 1, b + 2, 1, 1, 0, C, 1);
    ck_assert(C[0] == 6);
}
END_TEST

START_TEST(test_negative_size_fails) {
    real x = 0;
    NBT_EXPECT_FAIL(nb_gemm(-1, 1, 1, &x, 1, 1, &x, 1, 1, 0, &x, 1), "nb_gemm", "negative size");
}
END_TEST

/* The VAE's shapes (784-400-20, batch 128): M, N, K and the layout of A and B. */
static const struct {
    int64_t M, N, K;
    char la, lb;
} vae[] = {
    {128, 400, 784, 'N', 'T'}, {128, 40, 400, 'N', 'T'},  {128, 400, 20, 'N', 'T'},
    {128, 784, 400, 'N', 'T'}, {400, 784, 128, 'T', 'N'}, {40, 400, 128, 'T', 'N'},
    {400, 20, 128, 'T', 'N'},  {784, 400, 128, 'T', 'N'}, {128, 400, 40, 'N', 'N'},
    {128, 20, 400, 'N', 'N'},  {128, 400, 784, 'N', 'N'},
};

START_TEST(test_vae_shapes) {
    if (!use_kernel(_i)) return;
    nb_rng_seed(&rng, 6);
    int bad = 0;
    for (size_t s = 0; s < sizeof vae / sizeof vae[0]; s++)
        bad += check_product(vae[s].M, vae[s].N, vae[s].K, vae[s].la, vae[s].lb, (real)(s % 2));
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(test_same_bits_for_any_thread_count) {
    if (!use_kernel(_i)) return;
    nb_rng_seed(&rng, 7);
    int saved = nb_get_num_threads();
    nb_set_adaptive_threads(0); /* the team asked for, even on a busy machine */
    /* beyond the VAE: several K blocks, narrow results (threads share row panels), packed A,
     * column panels taken as the threads go (A read in place and small enough, B transposed) */
    static const struct {
        int64_t M, N, K;
        char la, lb;
    } more[] = {{97, 301, 1100, 'N', 'N'},
                {97, 301, 1100, 'T', 'G'},
                {700, 40, 1100, 'G', 'N'},
                {700, 23, 1100, 'T', 'T'},
                {97, 301, 1100, 'N', 'T'}};
    size_t n_vae = sizeof vae / sizeof vae[0], n_more = sizeof more / sizeof more[0];
    for (size_t s = 0; s < n_vae + n_more; s++) {
        int64_t M, N, K;
        char la, lb;
        if (s < n_vae)
            M = vae[s].M, N = vae[s].N, K = vae[s].K, la = vae[s].la, lb = vae[s].lb;
        else
            M = more[s - n_vae].M, N = more[s - n_vae].N, K = more[s - n_vae].K,
            la = more[s - n_vae].la, lb = more[s - n_vae].lb;
        mat A = make(M, K, la), B = make(K, N, lb);
        /* 1, 2, 3 and 5 threads: shares of tiles that start and end inside a panel */
        static const int team[4] = {1, 2, 3, 5};
        real *C[4];
        for (int t = 0; t < 4; t++) {
            C[t] = malloc((size_t)(M * N) * sizeof(real));
            nb_set_num_threads(team[t]);
            nb_gemm(M, N, K, A.buf, A.rs, A.cs, B.buf, B.rs, B.cs, 0, C[t], N);
        }
        /* a race between threads shows only sometimes: repeat the threaded runs */
        for (int rep = 0; rep < (s < n_vae ? 1 : 8); rep++) {
            for (int t = 1; t < 4; t++) {
                nb_set_num_threads(team[t]);
                nb_gemm(M, N, K, A.buf, A.rs, A.cs, B.buf, B.rs, B.cs, 0, C[t], N);
                ck_assert_int_eq(memcmp(C[0], C[t], (size_t)(M * N) * sizeof(real)), 0);
            }
        }
        for (int t = 0; t < 4; t++) free(C[t]);
        free(A.buf), free(B.buf);
    }
    nb_set_num_threads(saved);
    nb_set_adaptive_threads(1);
}
END_TEST

START_TEST(test_thread_count) {
    int saved = nb_get_num_threads();
    ck_assert_int_ge(saved, 1);
    nb_set_num_threads(0);
    ck_assert_int_ge(nb_get_num_threads(), 1);
#ifdef _OPENMP
    nb_set_num_threads(3);
    ck_assert_int_eq(nb_get_num_threads(), 3);
#else
    nb_set_num_threads(3);
    ck_assert_int_eq(nb_get_num_threads(), 1);
#endif
    nb_set_num_threads(saved);
}
END_TEST

START_TEST(test_no_allocation_on_repeat) {
    if (!use_kernel(_i)) return;
    nb_rng_seed(&rng, 8);
    for (size_t s = 0; s < sizeof vae / sizeof vae[0]; s++) {
        mat A = make(vae[s].M, vae[s].K, vae[s].la), B = make(vae[s].K, vae[s].N, vae[s].lb);
        real *C = malloc((size_t)(vae[s].M * vae[s].N) * sizeof(real));
        nb_gemm(vae[s].M, vae[s].N, vae[s].K, A.buf, A.rs, A.cs, B.buf, B.rs, B.cs, 0, C, vae[s].N);
        int64_t allocs = nb_mem_stats().allocs;
        nb_gemm(vae[s].M, vae[s].N, vae[s].K, A.buf, A.rs, A.cs, B.buf, B.rs, B.cs, 1, C, vae[s].N);
        ck_assert_int_eq(nb_mem_stats().allocs, allocs);
        free(A.buf), free(B.buf), free(C);
    }
    /* release returns the buffers; the next call allocates again */
    nb_gemm_release();
    ck_assert_int_eq(nb_mem_stats().live, 0);
}
END_TEST

START_TEST(test_kernel_choice) {
    ck_assert_int_eq(nb_gemm_set_kernel("generic"), 1); /* every build and CPU has it */
    ck_assert_str_eq(nb_gemm_kernel_name(), "generic 4x8 " NB_REAL_NAME);
    ck_assert_int_eq(nb_gemm_set_kernel("sse9"), 0);
    ck_assert_str_eq(nb_gemm_kernel_name(), "generic 4x8 " NB_REAL_NAME); /* unchanged */
    ck_assert_int_eq(nb_gemm_set_kernel(NULL), 1);
    const char *name = nb_gemm_kernel_name();
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    /* the automatic choice is the widest kernel the CPU runs */
    const char *want = __builtin_cpu_supports("avx512f") ? "avx512 "
                       : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                           ? "avx2 "
                           : "generic ";
    if (!getenv("NABLA_KERNEL")) ck_assert_msg(strncmp(name, want, strlen(want)) == 0, "%s", name);
    ck_assert_int_eq(nb_gemm_set_kernel("avx2"),
                     __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
    ck_assert_int_eq(nb_gemm_set_kernel("avx512"), __builtin_cpu_supports("avx512f") != 0);
    nb_gemm_set_kernel(NULL);
#endif
    ck_assert_ptr_nonnull(strstr(name, NB_REAL_NAME));
}
END_TEST

/* The busy-machine policy: products that threads did not make 1.3x faster turn threads off for a
 * while (nb_threads_now 1); then they are tried again. */
#ifdef _OPENMP
/* Waits `s` seconds (busy: the test measures what the policy does over time). */
static void wait_seconds(double s) {
    double t0 = omp_get_wtime();
    while (omp_get_wtime() - t0 < s) {
    }
}
#endif

/* One window where threads paid halves the time on one thread rather than forgetting it: after
 * failed windows have grown it to 0.2 s, a lucky window and a failed one give 0.2 s again (not
 * the first failure's 0.05 s, which let a busy machine run threaded a fifth of the time). */
START_TEST(test_a_lucky_window_does_not_reset_the_backoff) {
#ifdef _OPENMP
    int saved = nb_get_num_threads();
    nb_set_num_threads(2);
    nb_set_adaptive_threads(1);
    nb_threads_report(0.011, 0.011); /* fail: 0.05 s alone */
    wait_seconds(0.06);
    nb_threads_report(0.011, 0.011); /* fail: 0.1 s */
    wait_seconds(0.11);
    nb_threads_report(0.011, 0.011); /* fail: 0.2 s */
    wait_seconds(0.21);
    ck_assert_int_eq(nb_threads_now(), 2);
    nb_threads_report(0.022, 0.011); /* threads paid (2x): the backoff halves to 0.1 s */
    ck_assert_int_eq(nb_threads_now(), 2);
    nb_threads_report(0.011, 0.011); /* fail: 0.2 s alone again */
    wait_seconds(0.08);
    ck_assert_int_eq(nb_threads_now(), 1); /* forgotten, it would be back after 0.05 s */
    wait_seconds(0.15);
    ck_assert_int_eq(nb_threads_now(), 2);
    nb_set_adaptive_threads(1);
    nb_set_num_threads(saved);
#endif
}
END_TEST

/* A product called from a thread of an active team (as conv tasks call it) runs on that thread
 * and reports nothing: its one-thread time once read as "threads do not pay" and turned a quiet
 * machine's threads off after a window of such calls. */
START_TEST(test_products_inside_a_team_do_not_turn_threads_off) {
#ifdef _OPENMP
    int saved = nb_get_num_threads();
    nb_set_num_threads(2);
    nb_set_adaptive_threads(1);
    int64_t n = 128; /* 4 MFLOP: threaded when called alone */
    real *A = calloc((size_t)(n * n), sizeof(real)), *B = calloc((size_t)(n * n), sizeof(real));
    real *C = calloc((size_t)(2 * n * n), sizeof(real));
#pragma omp parallel num_threads(2)
    {
        int t = omp_get_thread_num();
        for (int i = 0; i < 100; i++) nb_gemm(n, n, n, A, n, 1, B, n, 1, 0, C + t * n * n, n);
    }
    ck_assert_int_eq(nb_threads_now(), 2);
    free(A), free(B), free(C);
    nb_set_adaptive_threads(1);
    nb_set_num_threads(saved);
#endif
}
END_TEST

START_TEST(test_threads_off_while_they_do_not_pay) {
#ifdef _OPENMP
    int saved = nb_get_num_threads();
    nb_set_num_threads(2);
    nb_set_adaptive_threads(1);
    ck_assert_int_eq(nb_threads_now(), 2);
    for (int i = 0; i < 64; i++) nb_threads_report(1.8e-4, 1e-4); /* 1.8x faster: stay */
    ck_assert_int_eq(nb_threads_now(), 2);
    nb_threads_report(0.011, 0.011); /* no faster, over 10 ms: a verdict at once */
    ck_assert_int_eq(nb_threads_now(), 1);
    ck_assert_int_eq(nb_get_num_threads(), 2); /* the setting itself is kept */
    double t0 = omp_get_wtime();
    while (omp_get_wtime() - t0 < 0.2) {
    }
    ck_assert_int_eq(nb_threads_now(), 2); /* tried again after a while */
    nb_threads_report(0.011, 0.011);
    ck_assert_int_eq(nb_threads_now(), 1);
    nb_set_adaptive_threads(0); /* off: the set count, always */
    ck_assert_int_eq(nb_threads_now(), 2);
    nb_threads_report(0.011, 0.011);
    ck_assert_int_eq(nb_threads_now(), 2);
    nb_set_adaptive_threads(1);
    nb_set_num_threads(saved);
#else
    ck_assert_int_eq(nb_threads_now(), 1);
#endif
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_small_sizes_all_layouts, 0, N_ISAS);
    tcase_add_loop_test(tc, test_random_sizes_all_layouts, 0, N_ISAS);
    tcase_add_loop_test(tc, test_larger_than_blocks, 0, N_ISAS);
    tcase_add_loop_test(tc, test_general_and_zero_strides, 0, N_ISAS);
    tcase_add_loop_test(tc, test_beta, 0, N_ISAS);
    tcase_add_test(tc, test_empty_sizes);
    tcase_add_test(tc, test_negative_size_fails);
    tcase_add_loop_test(tc, test_vae_shapes, 0, N_ISAS);
    tcase_add_loop_test(tc, test_same_bits_for_any_thread_count, 0, N_ISAS);
    tcase_add_test(tc, test_thread_count);
    tcase_add_test(tc, test_kernel_choice);
    tcase_add_test(tc, test_threads_off_while_they_do_not_pay);
    tcase_add_test(tc, test_products_inside_a_team_do_not_turn_threads_off);
    tcase_add_test(tc, test_a_lucky_window_does_not_reset_the_backoff);
    tcase_add_loop_test(tc, test_no_allocation_on_repeat, 0, N_ISAS);
    suite_add_tcase(s, tc);
    return s;
}

NB_CHECK_MAIN(suite)
