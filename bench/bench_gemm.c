/* bench/bench_gemm.c: nb_gemm against OpenBLAS sgemm on the VAE's matmul shapes.
 *
 *   make build/bench/bench_gemm        (with the library's own flags; make bench runs it)
 *   build/bench/bench_gemm [reps]
 *   build/bench/bench_gemm --kernel     prints the kernel nb_gemm runs (NABLA_KERNEL chooses)
 *
 * For each shape, layout and thread count (1 and 2) it times both libraries in the same run,
 * alternating one sample of each, and prints the median GFLOP/s of each and their ratio, and the
 * same for the best samples (on a shared, noisy machine the best is the least disturbed). Each
 * sample is a batch of calls lasting a few milliseconds. Before timing, the two results are
 * compared, so a fast wrong kernel cannot win. With two threads, each sample starts after a
 * 150 ms pause: idle OpenBLAS workers keep spinning for about 0.1 s after a call (and OpenMP's
 * for a shorter while), and without the pause one library's spinning threads would steal the
 * cores from the other's. Both libraries get the same pause, then one untimed call that wakes
 * their threads, so each sample times the steady state a training loop runs in.
 * The layouts are those of a Linear layer with weights W[out,in]: forward y = x W^T (NT), weight
 * gradient dW += dy^T x (TN, beta 1) and input gradient dx = dy W (NN). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/timing.h"
#include "tensor/base.h"
#include "tensor/gemm.h"

/* Declared by OpenBLAS's cblas.h in most versions; repeated here for those that do not. */
void openblas_set_num_threads(int num_threads);

typedef struct {
    int64_t M, N, K;
    const char *layout; /* "NT", "TN" or "NN": whether A and B are read transposed */
    const char *what;
} shape;

static const shape shapes[] = {
    {128, 400, 784, "NT", "enc fc1 forward"}, {128, 40, 400, "NT", "enc mu|logvar forward"},
    {128, 400, 20, "NT", "dec fc3 forward"},  {128, 784, 400, "NT", "dec fc4 forward"},
    {400, 784, 128, "TN", "enc fc1 dW"},      {40, 400, 128, "TN", "enc mu|logvar dW"},
    {400, 20, 128, "TN", "dec fc3 dW"},       {784, 400, 128, "TN", "dec fc4 dW"},
    {128, 400, 40, "NN", "enc mu|logvar dx"}, {128, 20, 400, "NN", "dec fc3 dx"},
    {128, 400, 784, "NN", "dec fc4 dx"},
};

typedef struct {
    const shape *s;
    real *A, *B, *C;
    int64_t rsa, csa, rsb, csb;
    real beta;
} problem;

static void run_nabla(const problem *p) {
    nb_gemm(p->s->M, p->s->N, p->s->K, p->A, p->rsa, p->csa, p->B, p->rsb, p->csb, p->beta, p->C,
            p->s->N);
}

static void run_blas(const problem *p) {
    const shape *s = p->s;
    enum CBLAS_TRANSPOSE ta = s->layout[0] == 'T' ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = s->layout[1] == 'T' ? CblasTrans : CblasNoTrans;
    int lda = (int)(ta == CblasTrans ? s->M : s->K), ldb = (int)(tb == CblasTrans ? s->K : s->N);
#ifdef NB_DOUBLE
    cblas_dgemm(CblasRowMajor, ta, tb, (int)s->M, (int)s->N, (int)s->K, 1.0, p->A, lda, p->B, ldb,
                p->beta, p->C, (int)s->N);
#else
    cblas_sgemm(CblasRowMajor, ta, tb, (int)s->M, (int)s->N, (int)s->K, 1.0f, p->A, lda, p->B, ldb,
                p->beta, p->C, (int)s->N);
#endif
}

/* Seconds per call of f, timed over a batch of n calls, after a pause of `rest` seconds and one
 * untimed call: the pause lets the other library's idle threads go to sleep, and the untimed
 * call wakes this library's own, so the batch measures the steady state a training loop sees
 * (where the threads never sleep) rather than one wake-up. */
static double sample(void (*f)(const problem *), const problem *p, int n, double rest) {
    if (rest > 0) {
        struct timespec ts = {0, (long)(rest * 1e9)};
        nanosleep(&ts, NULL);
        f(p);
    }
    double t = bench_now();
    for (int i = 0; i < n; i++) f(p);
    return (bench_now() - t) / n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v and returns its median. */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Largest |nabla - blas| relative to the largest |blas| for one call of each with beta 0. */
static double compare(problem *p) {
    int64_t n = p->s->M * p->s->N;
    real *ref = malloc((size_t)n * sizeof(real));
    real beta = p->beta;
    p->beta = 0;
    run_blas(p);
    for (int64_t i = 0; i < n; i++) ref[i] = p->C[i];
    run_nabla(p);
    p->beta = beta;
    double err = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)p->C[i] - (double)ref[i]));
        scale = fmax(scale, fabs((double)ref[i]));
    }
    free(ref);
    return err / (scale > 0 ? scale : 1);
}

/* The machine's own ceiling for the float products above, measured in the same run: one core
 * doing nothing but independent multiply-adds in registers (ten chains, more than the FMA
 * latency times the FMA units, so the units never wait), as wide as the vectors of the kernel
 * nb_gemm runs: 512-bit for the avx512 kernel (Intel's two 512-bit FMA units would otherwise
 * be measured at half speed), 256-bit for avx2. No product that also loads its operands can
 * beat it; the best of 5 runs of 0.1 s each. The loops are compiled for their instruction set
 * (target attributes) whatever the build's ARCH; only the one for the running kernel runs. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
/* Defines NAME(void): the peak for vector type VEC of W floats; PS(op) names the intrinsic. The
 * empty asm hides the starting values, or the compiler sees that chains starting alike stay
 * alike and computes each only once (which once made this loop report 165 GFLOP/s); the final
 * sum uses every chain, so none is optimized away. */
#define FMA_PEAK(NAME, TARGET, VEC, W, PS)                                                         \
    __attribute__((target(TARGET))) static double NAME(void) {                                     \
        double best = 0;                                                                           \
        const long iters = 20000000;                                                               \
        for (int run = 0; run < 5; run++) {                                                        \
            VEC m = PS(set1)(0.999999f), c = PS(set1)(1e-7f);                                      \
            VEC a0 = m, a1 = c, a2 = m, a3 = c, a4 = m, a5 = c, a6 = m, a7 = c, a8 = m, a9 = c;    \
            __asm__ volatile(""                                                                    \
                             : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5),         \
                               "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(m), "+v"(c));          \
            double t = bench_now();                                                                \
            for (long i = 0; i < iters; i++) {                                                     \
                a0 = PS(fmadd)(a0, m, c), a1 = PS(fmadd)(a1, m, c);                                \
                a2 = PS(fmadd)(a2, m, c), a3 = PS(fmadd)(a3, m, c);                                \
                a4 = PS(fmadd)(a4, m, c), a5 = PS(fmadd)(a5, m, c);                                \
                a6 = PS(fmadd)(a6, m, c), a7 = PS(fmadd)(a7, m, c);                                \
                a8 = PS(fmadd)(a8, m, c), a9 = PS(fmadd)(a9, m, c);                                \
            }                                                                                      \
            t = bench_now() - t;                                                                   \
            VEC sum = PS(add)(PS(add)(PS(add)(a0, a1), PS(add)(a2, a3)),                           \
                              PS(add)(PS(add)(a4, a5), PS(add)(a6, a7)));                          \
            sum = PS(add)(sum, PS(add)(a8, a9));                                                   \
            float out[W];                                                                          \
            PS(storeu)(out, sum);                                                                  \
            if (out[0] == 12345.0f) printf(" ");                                                   \
            double g = 10.0 * W * 2 * (double)iters / t / 1e9;                                     \
            if (g > best) best = g;                                                                \
        }                                                                                          \
        return best;                                                                               \
    }
#define PS256(op) _mm256_##op##_ps
#define PS512(op) _mm512_##op##_ps
FMA_PEAK(fma_peak_256, "avx2,fma", __m256, 8, PS256)
FMA_PEAK(fma_peak_512, "avx512f", __m512, 16, PS512)

/* The peak at the width of `kernel` (nb_gemm_kernel_name()); 0 for the generic kernel. */
static double fma_peak_gflops(const char *kernel, int *bits) {
    *bits = strncmp(kernel, "avx512", 6) == 0 ? 512 : strncmp(kernel, "avx2", 4) == 0 ? 256 : 0;
    return *bits == 512 ? fma_peak_512() : *bits == 256 ? fma_peak_256() : 0;
}
#else
static double fma_peak_gflops(const char *kernel, int *bits) {
    (void)kernel;
    *bits = 0;
    return 0;
}
#endif

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--kernel") == 0) { /* for bench/run.sh's header */
        printf("%s\n", nb_gemm_kernel_name());
        return 0;
    }
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    if (reps < 1 || reps > 1000) {
        fprintf(stderr, "bench_gemm: reps must be 1..1000, got '%s'\n", argv[1]);
        return 2;
    }
    printf("kernel: %s; median of %d interleaved samples\n", nb_gemm_kernel_name(), reps);
    int bits;
    double peak = fma_peak_gflops(nb_gemm_kernel_name(), &bits);
    if (peak > 0)
        printf("this machine's FMA peak now: %.1f GFLOP/s per core (register-only loop, %d-bit "
               "float FMAs, the kernel's width)\n",
               peak, bits);
    printf("%-22s %-12s %-6s %3s | %8s %8s %6s | %8s %8s %6s\n", "", "", "", "", "median", "", "",
           "best", "", "");
    printf("%-22s %-12s %-6s %3s | %8s %8s %6s | %8s %8s %6s\n", "shape", "M,N,K", "layout", "thr",
           "nabla", "openblas", "ratio", "nabla", "openblas", "ratio");
    double *tn = malloc((size_t)reps * sizeof(double)), *tb = malloc((size_t)reps * sizeof(double));
    double worst = 1e30;
    int bad = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        problem p = {s, NULL, NULL, NULL, 0, 0, 0, 0, s->layout[0] == 'T' ? 1 : 0};
        p.A = malloc((size_t)(s->M * s->K) * sizeof(real));
        p.B = malloc((size_t)(s->K * s->N) * sizeof(real));
        p.C = malloc((size_t)(s->M * s->N) * sizeof(real));
        for (int64_t i = 0; i < s->M * s->K; i++) p.A[i] = (real)(rand() / (double)RAND_MAX - 0.5);
        for (int64_t i = 0; i < s->K * s->N; i++) p.B[i] = (real)(rand() / (double)RAND_MAX - 0.5);
        for (int64_t i = 0; i < s->M * s->N; i++) p.C[i] = 0;
        /* A transposed is stored (K, M); B transposed is stored (N, K) like a weight W[out,in]. */
        if (s->layout[0] == 'T')
            p.rsa = 1, p.csa = s->M;
        else
            p.rsa = s->K, p.csa = 1;
        if (s->layout[1] == 'T')
            p.rsb = 1, p.csb = s->K;
        else
            p.rsb = s->N, p.csb = 1;
        double flops = 2.0 * (double)(s->M * s->N * s->K);
        for (int threads = 1; threads <= 2; threads++) {
            nb_set_num_threads(threads);
            openblas_set_num_threads(threads);
            double err = compare(&p);
            if (err > 1e-4) {
                printf("%s: nabla and OpenBLAS differ (relative %g)\n", s->what, err);
                bad = 1;
            }
            int n = (int)(4e-3 * 50e9 / flops) + 1; /* about 4 ms at 50 GFLOP/s */
            double rest = threads > 1 ? 0.15 : 0;
            for (int w = 0; w < 2; w++) sample(run_nabla, &p, n, 0), sample(run_blas, &p, n, 0);
            for (int r = 0; r < reps; r++) {
                tn[r] = sample(run_nabla, &p, n, rest);
                tb[r] = sample(run_blas, &p, n, rest);
            }
            double gn = flops / median(tn, reps) / 1e9, gb = flops / median(tb, reps) / 1e9;
            double bn = flops / tn[0] / 1e9, bb = flops / tb[0] / 1e9; /* sorted by median() */
            char dims[32];
            snprintf(dims, sizeof dims, "%lld,%lld,%lld", (long long)s->M, (long long)s->N,
                     (long long)s->K);
            printf("%-22s %-12s %-6s %3d | %8.1f %8.1f %6.2f | %8.1f %8.1f %6.2f\n", s->what, dims,
                   s->layout, threads, gn, gb, gn / gb, bn, bb, bn / bb);
            if (gn / gb < worst) worst = gn / gb;
        }
        free(p.A);
        free(p.B);
        free(p.C);
    }
    printf("worst median ratio: %.2f\n", worst);
    free(tn);
    free(tb);
    nb_gemm_release();
    return bad;
}
