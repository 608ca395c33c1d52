/* bench/bench_conv.c: nabla's side of the convolution benchmark (bench/torch_conv.py is PyTorch's).
 *
 *   build/bench/bench_conv [threads] [reps] [layer]
 *
 * The conv VAE's five layers at batch 128 (docs: /work/shared/REFERENCE.md's convolutional VAE):
 * forward plus backward of each, with the input's gradient for every layer but the first (whose
 * input is the data), gradients cleared each time (PyTorch's zero_grad(set_to_none=True)).
 * Each layer runs 3 untimed steps, then `reps` timed ones in 5 batches (bench/timing.h); it prints
 * one JSON line per layer with the fastest batch's and the median batch's milliseconds per step
 * (the machine is shared: the fastest batch is the one least disturbed by other processes), and the
 * fastest batch's process CPU time per step (all threads; on a busy machine, closer to an idle
 * one). */
#include <stdio.h>
#include <stdlib.h>

#include "autograd/autograd.h"
#include "bench/timing.h"
#include "tensor/gemm.h"

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

/* One layer's tensors; step() is one forward + backward of it. */
typedef struct {
    const layer *L;
    nb_conv2d_opts o;
    Tensor *x, *w, *b, *g; /* g: d(loss)/d(y), made at the first step */
} conv_job;

static void step(void *ctx) {
    conv_job *j = ctx;
    tensor_clear_grad(j->x);
    tensor_clear_grad(j->w);
    tensor_clear_grad(j->b);
    Tensor *y = j->L->transposed ? ag_conv_transpose2d(j->x, j->w, j->b, j->o)
                                 : ag_conv2d(j->x, j->w, j->b, j->o);
    if (!j->g) j->g = tensor_randn(y->ndim, y->shape, NULL);
    ag_backward_with(y, j->g);
    ag_reset();
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 0, reps = argc > 2 ? atoi(argv[2]) : 20;
    int only = argc > 3 ? atoi(argv[3]) : -1; /* one layer (0-4), for profiling */
    nb_set_num_threads(threads);
    const int64_t B = 128;
    for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        const layer *L = &layers[l];
        if (only >= 0 && (size_t)only != l) continue;
        conv_job j = {L, nb_conv2d_defaults(), NULL, NULL, NULL, NULL};
        j.o.stride[0] = j.o.stride[1] = L->stride;
        j.o.padding[0] = j.o.padding[1] = L->padding;
        j.o.output_padding[0] = j.o.output_padding[1] = L->output_padding;
        j.x = tensor_randn(NB_SHAPE(B, L->C, L->H, L->H), NULL);
        j.w = L->transposed ? tensor_randn(NB_SHAPE(L->C, L->O, 3, 3), NULL)
                            : tensor_randn(NB_SHAPE(L->O, L->C, 3, 3), NULL);
        j.b = tensor_randn(NB_SHAPE(L->O), NULL);
        tensor_requires_grad(j.x, L->x_grad);
        tensor_requires_grad(j.w, true);
        tensor_requires_grad(j.b, true);
        bench_times t = bench_batches(step, &j, 3, reps);
        printf("{\"layer\": \"%s\", \"threads\": %d, \"ms\": %.4f, \"median_ms\": %.4f, "
               "\"cpu_ms\": %.4f}\n",
               L->name, nb_get_num_threads(), t.ms, t.median_ms, t.cpu_ms);
        fflush(stdout);
        tensor_free(j.x), tensor_free(j.w), tensor_free(j.b), tensor_free(j.g);
    }
    return 0;
}
