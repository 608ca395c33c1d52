/* bench/bench_conv.c: nabla's side of the convolution benchmark (bench/torch_conv.py is PyTorch's).
 *
 *   build/bench/bench_conv [threads] [reps] [layer]
 *
 * The conv VAE's five layers at batch 128 (docs: /work/shared/REFERENCE.md's convolutional VAE):
 * forward plus backward of each, with the input's gradient for every layer but the first (whose
 * input is the data), gradients cleared each time (PyTorch's zero_grad(set_to_none=True)).
 * Each layer runs 3 untimed steps, then `reps` timed ones in 5 batches; it prints one JSON line
 * per layer with the fastest batch's and the median batch's milliseconds per step (the machine
 * is shared: the fastest batch is the one least disturbed by other processes), and the fastest
 * batch's process CPU time per step (all threads; on a busy machine, closer to an idle one). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "autograd/autograd.h"
#include "tensor/gemm.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_now(void) { /* CPU seconds of the whole process, every thread */
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *name;
    bool transposed;
    int64_t C, O, H; /* in channels, out channels, input height = width */
    int stride, padding, output_padding;
    bool x_grad;
} layer;

static const layer layers[] = {
    {"conv 1->32 s2 28x28", false, 1, 32, 28, 2, 1, 0, false},
    {"conv 32->64 s2 14x14", false, 32, 64, 14, 2, 1, 0, true},
    {"convT 64->64 s2 7x7", true, 64, 64, 7, 2, 1, 1, true},
    {"convT 64->32 s2 14x14", true, 64, 32, 14, 2, 1, 1, true},
    {"conv 32->1 s1 28x28", false, 32, 1, 28, 1, 1, 0, true},
};

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 0, reps = argc > 2 ? atoi(argv[2]) : 20;
    int only = argc > 3 ? atoi(argv[3]) : -1; /* one layer (0-4), for profiling */
    if (reps < 5) reps = 5;
    nb_set_num_threads(threads);
    const int64_t B = 128;
    for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        const layer *L = &layers[l];
        if (only >= 0 && (size_t)only != l) continue;
        nb_conv2d_opts o = nb_conv2d_defaults();
        o.stride[0] = o.stride[1] = L->stride;
        o.padding[0] = o.padding[1] = L->padding;
        o.output_padding[0] = o.output_padding[1] = L->output_padding;
        Tensor *x = tensor_randn(NB_SHAPE(B, L->C, L->H, L->H), NULL);
        Tensor *w = L->transposed ? tensor_randn(NB_SHAPE(L->C, L->O, 3, 3), NULL)
                                  : tensor_randn(NB_SHAPE(L->O, L->C, 3, 3), NULL);
        Tensor *b = tensor_randn(NB_SHAPE(L->O), NULL);
        tensor_requires_grad(x, L->x_grad);
        tensor_requires_grad(w, true);
        tensor_requires_grad(b, true);
        Tensor *g = NULL;
        double t[5], cpu[5];
        for (int it = -3, batch = 0; batch < 5;) {
            double t0 = now(), c0 = cpu_now();
            int n = it < 0 ? 1 : reps / 5;
            for (int k = 0; k < n; k++) {
                tensor_clear_grad(x);
                tensor_clear_grad(w);
                tensor_clear_grad(b);
                Tensor *y = L->transposed ? ag_conv_transpose2d(x, w, b, o) : ag_conv2d(x, w, b, o);
                if (!g) g = tensor_randn(y->ndim, y->shape, NULL);
                ag_backward_with(y, g);
                ag_reset();
            }
            if (it < 0)
                it++;
            else {
                cpu[batch] = (cpu_now() - c0) / n;
                t[batch++] = (now() - t0) / n;
            }
        }
        qsort(t, 5, sizeof t[0], cmp);
        qsort(cpu, 5, sizeof cpu[0], cmp);
        printf("{\"layer\": \"%s\", \"threads\": %d, \"ms\": %.4f, \"median_ms\": %.4f, "
               "\"cpu_ms\": %.4f}\n",
               L->name, nb_get_num_threads(), 1e3 * t[0], 1e3 * t[2], 1e3 * cpu[0]);
        fflush(stdout);
        tensor_free(x), tensor_free(w), tensor_free(b), tensor_free(g);
    }
    return 0;
}
