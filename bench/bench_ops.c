/* bench/bench_ops.c: nabla's side of the per-op benchmark (bench/torch_ops.py is PyTorch's;
 * bench/ops.sh runs both in turn and prints the table).
 *
 *   build/bench/bench_ops [threads] [reps] [op]      (threads 1, reps 50; op: one row by name)
 *   build/bench/bench_ops --kernel                   the gemm kernel nb_gemm runs (for the header)
 *
 * Each op runs through the public autograd API as a training step would: the op, then
 * ag_backward of the sum of its output (PyTorch's y.sum().backward()), with the inputs'
 * gradients cleared each step (tensor_clear_grad, PyTorch's zero_grad(set_to_none=True)) and the
 * step released (ag_reset). The comparison, argmax and one_hot have no gradient: forward only.
 * Element-wise ops and reductions run on [128, 784] (a batch of MNIST images), reductions over
 * dim 1. Each op: 3 untimed steps, then `reps` timed ones in 5 batches (bench/timing.h); one JSON
 * line per op with the fastest and the median batch's milliseconds per step and the fastest
 * batch's process CPU time per step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "bench/timing.h"
#include "tensor/gemm.h"

/* The inputs, made once; the ones a gradient reaches require grad. */
static struct {
    Tensor *x, *y;         /* [128, 784] N(0, 1), require grad */
    Tensor *pos;           /* [128, 784] in [0.5, 1.5), requires grad (log's input) */
    Tensor *mask;          /* [128, 784] 0/1, where's condition */
    Tensor *table;         /* [1000, 64] embedding weights, requires grad */
    int64_t ids[128 * 32]; /* [128, 32] embedding ids in [0, 1000); one_hot's ids */
    Tensor *W;             /* [784, 400] matmul's right operand, requires grad */
    Tensor *xl, *wl, *bl;  /* layer_norm: [128, 6272], [6272], [6272]; all require grad */
    Tensor *xb, *wb, *bb;  /* batch_norm, upsample: [128, 32, 14, 14], [32], [32]; grad */
    Tensor *rm, *rv;       /* batch_norm's running mean and variance [32] */
    Tensor *xp;            /* pools: [128, 32, 28, 28], requires grad */
    int64_t argmax[128];   /* argmax's output */
} in;

static Tensor *op_add(void) {
    return ag_add(in.x, in.y);
}
static Tensor *op_mul(void) {
    return ag_mul(in.x, in.y);
}
static Tensor *op_exp(void) {
    return ag_exp(in.x);
}
static Tensor *op_log(void) {
    return ag_log(in.pos);
}
static Tensor *op_relu(void) {
    return ag_relu(in.x);
}
static Tensor *op_sigmoid(void) {
    return ag_sigmoid(in.x);
}
static Tensor *op_tanh(void) {
    return ag_tanh(in.x);
}
static Tensor *op_gelu(void) {
    return ag_gelu(in.x);
}
static Tensor *op_silu(void) {
    return ag_silu(in.x);
}
static Tensor *op_elu(void) {
    return ag_elu(in.x, 1);
}
static Tensor *op_sin(void) {
    return ag_sin(in.x);
}
static Tensor *op_cos(void) {
    return ag_cos(in.x);
}
static Tensor *op_maximum(void) {
    return ag_maximum(in.x, in.y);
}
static Tensor *op_where(void) {
    return ag_where(in.mask, in.x, in.y);
}
static Tensor *op_gt(void) {
    return ag_gt(in.x, in.y);
}
static Tensor *op_dropout(void) {
    return ag_dropout(in.x, 0.5, true, NULL);
}
static Tensor *op_pow(void) {
    return ag_pow(in.x, 3);
}
static Tensor *op_sum(void) {
    return ag_sum_dims(in.x, (int[]){1}, 1, false);
}
static Tensor *op_mean(void) {
    return ag_mean_dims(in.x, (int[]){1}, 1, false);
}
static Tensor *op_var(void) {
    return ag_var(in.x, (int[]){1}, 1, 1, false);
}
static Tensor *op_std(void) {
    return ag_std(in.x, (int[]){1}, 1, 1, false);
}
static Tensor *op_cumsum(void) {
    return ag_cumsum(in.x, 1);
}
static Tensor *op_softmax(void) {
    return ag_softmax(in.x, 1);
}
static Tensor *op_log_softmax(void) {
    return ag_log_softmax(in.x, 1);
}
static Tensor *op_logsumexp(void) {
    return ag_logsumexp(in.x, 1, false);
}
static Tensor *op_max(void) {
    return ag_max(in.x, 1, false);
}
static Tensor *op_argmax(void) {
    tensor_argmax(in.x, 1, in.argmax);
    return NULL;
}
static Tensor *op_stack(void) {
    return ag_stack((Tensor *[]){in.x, in.y}, 2, 0);
}
static Tensor *op_transpose(void) {
    return ag_contiguous(ag_transpose(in.x, 0, 1));
}
static Tensor *op_embedding(void) {
    return ag_embedding(in.table, NB_SHAPE(128, 32), in.ids);
}
static Tensor *op_one_hot(void) {
    tensor_free(tensor_one_hot(in.ids, 128 * 32, 1000));
    return NULL;
}
static Tensor *op_matmul(void) {
    return ag_matmul(in.x, in.W);
}
static Tensor *op_layer_norm(void) {
    return ag_layer_norm(in.xl, 1, in.wl, in.bl, 1e-5);
}
static Tensor *op_batch_norm(void) {
    return ag_batch_norm(in.xb, in.rm, in.rv, in.wb, in.bb, true, 0.1, 1e-5);
}
static Tensor *op_max_pool(void) {
    return ag_max_pool2d(in.xp, 2, 2, 0);
}
static Tensor *op_avg_pool(void) {
    return ag_avg_pool2d(in.xp, 2, 2, 0);
}
static Tensor *op_upsample(void) {
    return ag_upsample_nearest2d(in.xb, 2);
}

/* The rows of the table; bench/torch_ops.py has the same names, shapes and order. */
typedef struct {
    const char *name, *shape;
    Tensor *(*run)(void); /* the op's output, or NULL for the forward-only ops without one */
    bool backward;
} op_case;

static const op_case cases[] = {
    {"add", "[128, 784]", op_add, true},
    {"mul", "[128, 784]", op_mul, true},
    {"exp", "[128, 784]", op_exp, true},
    {"log", "[128, 784]", op_log, true},
    {"relu", "[128, 784]", op_relu, true},
    {"sigmoid", "[128, 784]", op_sigmoid, true},
    {"tanh", "[128, 784]", op_tanh, true},
    {"gelu", "[128, 784]", op_gelu, true},
    {"silu", "[128, 784]", op_silu, true},
    {"elu", "[128, 784]", op_elu, true},
    {"sin", "[128, 784]", op_sin, true},
    {"cos", "[128, 784]", op_cos, true},
    {"maximum", "[128, 784]", op_maximum, true},
    {"where", "[128, 784]", op_where, true},
    {"gt (fwd)", "[128, 784]", op_gt, false},
    {"dropout 0.5", "[128, 784]", op_dropout, true},
    {"pow 3", "[128, 784]", op_pow, true},
    {"sum dim 1", "[128, 784]", op_sum, true},
    {"mean dim 1", "[128, 784]", op_mean, true},
    {"var dim 1", "[128, 784]", op_var, true},
    {"std dim 1", "[128, 784]", op_std, true},
    {"cumsum dim 1", "[128, 784]", op_cumsum, true},
    {"softmax dim 1", "[128, 784]", op_softmax, true},
    {"log_softmax dim 1", "[128, 784]", op_log_softmax, true},
    {"logsumexp dim 1", "[128, 784]", op_logsumexp, true},
    {"max dim 1", "[128, 784]", op_max, true},
    {"argmax dim 1 (fwd)", "[128, 784]", op_argmax, false},
    {"stack 2 dim 0", "2 x [128, 784]", op_stack, true},
    {"transpose+contiguous", "[128, 784]", op_transpose, true},
    {"embedding", "[1000, 64][128, 32]", op_embedding, true},
    {"one_hot (fwd)", "[4096] -> 1000", op_one_hot, false},
    {"matmul", "[128, 784][784, 400]", op_matmul, true},
    {"layer_norm", "[128, 6272]", op_layer_norm, true},
    {"batch_norm2d train", "[128, 32, 14, 14]", op_batch_norm, true},
    {"max_pool2d k2 s2", "[128, 32, 28, 28]", op_max_pool, true},
    {"avg_pool2d k2 s2", "[128, 32, 28, 28]", op_avg_pool, true},
    {"upsample_nearest2d x2", "[128, 32, 14, 14]", op_upsample, true},
};

static Tensor *grad_input(Tensor *t) {
    tensor_requires_grad(t, true);
    return t;
}

static void make_inputs(void) {
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    in.x = grad_input(tensor_randn(NB_SHAPE(128, 784), &rng));
    in.y = grad_input(tensor_randn(NB_SHAPE(128, 784), &rng));
    in.pos = tensor_rand(NB_SHAPE(128, 784), &rng);
    in.mask = tensor_rand(NB_SHAPE(128, 784), &rng);
    for (int64_t i = 0; i < 128 * 784; i++) {
        in.pos->data[i] += (real)0.5;
        in.mask->data[i] = in.mask->data[i] < (real)0.5;
    }
    grad_input(in.pos);
    in.table = grad_input(tensor_randn(NB_SHAPE(1000, 64), &rng));
    for (int i = 0; i < 128 * 32; i++) in.ids[i] = (int64_t)nb_rng_below(&rng, 1000);
    in.W = grad_input(tensor_randn(NB_SHAPE(784, 400), &rng));
    in.xl = grad_input(tensor_randn(NB_SHAPE(128, 6272), &rng));
    in.wl = grad_input(tensor_randn(NB_SHAPE(6272), &rng));
    in.bl = grad_input(tensor_randn(NB_SHAPE(6272), &rng));
    in.xb = grad_input(tensor_randn(NB_SHAPE(128, 32, 14, 14), &rng));
    in.wb = grad_input(tensor_randn(NB_SHAPE(32), &rng));
    in.bb = grad_input(tensor_randn(NB_SHAPE(32), &rng));
    in.rm = tensor_zeros(NB_SHAPE(32));
    in.rv = tensor_ones(NB_SHAPE(32));
    in.xp = grad_input(tensor_randn(NB_SHAPE(128, 32, 28, 28), &rng));
}

static void free_inputs(void) {
    Tensor *all[] = {in.x,  in.y,  in.pos, in.mask, in.table, in.W,  in.xl, in.wl,
                     in.bl, in.xb, in.wb,  in.bb,   in.rm,    in.rv, in.xp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(all[i]);
}

static void step(void *ctx) {
    const op_case *c = ctx;
    Tensor *grads[] = {in.x,  in.y,  in.pos, in.table, in.W,  in.xl,
                       in.wl, in.bl, in.xb,  in.wb,    in.bb, in.xp};
    for (size_t i = 0; i < sizeof grads / sizeof grads[0]; i++) tensor_clear_grad(grads[i]);
    Tensor *out = c->run();
    if (c->backward) ag_backward(ag_sum(out));
    ag_reset();
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--kernel") == 0) {
        printf("%s\n", nb_gemm_kernel_name());
        return 0;
    }
    int threads = argc > 1 ? atoi(argv[1]) : 1, reps = argc > 2 ? atoi(argv[2]) : 50;
    const char *only = argc > 3 ? argv[3] : NULL;
    nb_set_num_threads(threads);
    make_inputs();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const op_case *c = &cases[k];
        if (only && strcmp(only, c->name) != 0) continue;
        bench_times t = bench_batches(step, (void *)c, 3, reps);
        printf("{\"op\": \"%s\", \"shape\": \"%s\", \"threads\": %d, \"ms\": %.4f, "
               "\"median_ms\": %.4f, \"cpu_ms\": %.4f}\n",
               c->name, c->shape, nb_get_num_threads(), t.ms, t.median_ms, t.cpu_ms);
        fflush(stdout);
    }
    free_inputs();
    arena_free_all();
    return 0;
}
