/* bench/bench_ew.c: the element-wise kernels on one [128, 784] tensor (a batch of MNIST images).
 *
 *   make build/bench/bench_ew          (with the library's own flags)
 *   build/bench/bench_ew [reps]
 *
 * Times k_unary / k_binary (and k_ternary where the kernel tables have it) on one thread and
 * prints, per op, the best of 7 samples of `reps` calls (default 200), in microseconds per call:
 * on a shared, noisy machine the best is the least disturbed. Compare two builds by running both
 * in the same session; the ops of the older kernel set come first, so an older tensor/kernels.h
 * (without K_TERNARY_OPS) builds the first part alone. */
#include <stdio.h>
#include <stdlib.h>

#include "bench/timing.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"

typedef struct {
    const char *name;
    int kind; /* 1 unary, 2 binary, 3 ternary */
    int op;
    real p0, p1;
} ew_case;

static const ew_case cases[] = {
    {"copy", 1, K_COPY, 0, 0},
    {"exp", 1, K_EXP, 0, 0},
    {"relu", 1, K_RELU, 0, 0},
    {"sigmoid", 1, K_SIGMOID, 0, 0},
    {"tanh", 1, K_TANH, 0, 0},
    {"softplus", 1, K_SOFTPLUS, 0, 0},
    {"affine", 1, K_AFFINE, 2, 0.5},
    {"pow 2", 1, K_POW, 2, 0},
    {"add", 2, K_ADD, 0, 0},
    {"mul", 2, K_MUL, 0, 0},
    {"sigmoid_bwd", 2, K_SIGMOID_BWD, 0, 0},
#ifdef K_TERNARY_OPS
    {"gelu", 1, K_GELU, 0, 0},
    {"silu", 1, K_SILU, 0, 0},
    {"elu", 1, K_ELU, 1, 0},
    {"sin", 1, K_SIN, 0, 0},
    {"gelu_bwd", 2, K_GELU_BWD, 0, 0},
    {"silu_bwd", 2, K_SILU_BWD, 0, 0},
    {"maximum", 2, K_MAXIMUM, 0, 0},
    {"gt", 2, K_GT, 0, 0},
    {"where", 3, K_WHERE, 0, 0},
    {"maximum_bwd", 3, K_MAXIMUM_BWD, 0, 0},
#endif
};

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 200;
    if (reps < 1) reps = 1;
    nb_set_num_threads(1);
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    Tensor *a = tensor_randn(NB_SHAPE(128, 784), &rng), *b = tensor_randn(NB_SHAPE(128, 784), &rng);
    Tensor *c = tensor_rand(NB_SHAPE(128, 784), &rng), *out = tensor_empty(NB_SHAPE(128, 784));
    printf("%-12s %10s   [128, 784], 1 thread, best of 7 x %d calls\n", "op", "us/call", reps);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const ew_case *e = &cases[k];
        double best = 1e30;
        for (int s = 0; s < 7; s++) {
            double t0 = bench_now();
            for (int i = 0; i < reps; i++) {
                if (e->kind == 1) k_unary((k_unary_op)e->op, a, out, e->p0, e->p1, false);
                if (e->kind == 2) k_binary((k_binary_op)e->op, a, b, out, e->p0, e->p1, false);
#ifdef K_TERNARY_OPS
                if (e->kind == 3) k_ternary((k_ternary_op)e->op, c, a, b, out, false);
#endif
            }
            double t = (bench_now() - t0) / reps;
            if (t < best) best = t;
        }
        printf("%-12s %10.1f\n", e->name, best * 1e6);
    }
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
    tensor_free(out);
    return 0;
}
