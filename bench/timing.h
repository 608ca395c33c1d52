/* bench/timing.h: the clocks and the batch timer the benchmarks share (header-only: each bench is
 * one program of one file; bench/torch_bench.py is PyTorch's side of the same timer).
 *
 *   bench_times t = bench_batches(step, ctx, 3, reps);   // 3 untimed steps, then reps in 5 batches
 *   printf("%.4f ms\n", t.ms);
 */
#ifndef NB_BENCH_TIMING_H
#define NB_BENCH_TIMING_H

#include <stdlib.h>
#include <time.h>

static inline double bench_now(void) { /* wall seconds, monotonic */
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline double bench_cpu_now(void) { /* CPU seconds of the whole process, every thread */
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double ms;        /* the fastest batch's wall milliseconds per step (least disturbed) */
    double median_ms; /* the median batch's */
    double cpu_ms;    /* the fastest batch's process CPU milliseconds per step, all threads */
} bench_times;

/* Runs step(ctx) `warmup` times untimed, then reps (at least 5) times in 5 batches of reps / 5. */
static inline bench_times bench_batches(void (*step)(void *ctx), void *ctx, int warmup, int reps) {
    enum { BATCHES = 5 };
    double t[BATCHES], cpu[BATCHES];
    int n = reps < BATCHES ? 1 : reps / BATCHES;
    for (int k = 0; k < warmup; k++) step(ctx);
    for (int batch = 0; batch < BATCHES; batch++) {
        double t0 = bench_now(), c0 = bench_cpu_now();
        for (int k = 0; k < n; k++) step(ctx);
        cpu[batch] = (bench_cpu_now() - c0) / n;
        t[batch] = (bench_now() - t0) / n;
    }
    qsort(t, BATCHES, sizeof t[0], bench_cmp_double);
    qsort(cpu, BATCHES, sizeof cpu[0], bench_cmp_double);
    return (bench_times){1e3 * t[0], 1e3 * t[BATCHES / 2], 1e3 * cpu[0]};
}

#endif
