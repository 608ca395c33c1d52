/* examples/mnist_mlp.c: a digit classifier on the digits shipped in data/digits (9000 train,
 * 1000 test): an MLP 784 -> 256 (ReLU) -> 10 trained with Adam on cross-entropy.
 *
 *   make && ./build/mnist_mlp [--data DIR] [--epochs N] [--seed S]
 *
 * Prints the mean train loss and the test accuracy after each epoch, then a last line
 * "test accuracy: 0.9xx" (0.961 with the defaults, 10 epochs in about 5 s on one core; seeds 1-12
 * give 0.956 to 0.972 from epoch 8 on). Pixels are standardized as pytorch/examples does for MNIST;
 * the last, shorter batch of an epoch is a narrowed view of the batch tensor.
 * Exits 2 on a bad argument, 1 when the data cannot be loaded (with the IDX reader's message).
 *
 * Dimensions: B batch, D = 784 pixels, H = 256 hidden units, K = 10 classes. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/idx.h"
#include "nn/data.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/gemm.h"

enum { D = 784, H = 256, K = 10, BATCH = 64 };

typedef struct {
    nn_linear fc1; /* [D] -> [H] */
    nn_linear fc2; /* [H] -> [K] */
} mlp;

/* x [B, D] -> logits [B, K] (a step tensor). */
static Tensor *mlp_forward(const mlp *m, Tensor *x) {
    return nn_linear_forward(&m->fc2, nn_relu(nn_linear_forward(&m->fc1, x)));
}

/* Copies the batch's examples into x [BATCH, D] and their labels into labels [BATCH], the
 * pixels (in [0, 1]) standardized by the MNIST mean and standard deviation, 0.1307 and 0.3081;
 * returns x, or a view of its first rows for a shorter batch. */
static Tensor *load_batch(const idx_dataset *d, const nn_batches *it, Tensor *x, int64_t *labels) {
    idx_batch(d, it->index, it->count, x->data, labels);
    for (int64_t i = 0; i < it->count * D; i++)
        x->data[i] = (x->data[i] - (real)0.1307) / (real)0.3081;
    return it->count == BATCH ? x : ag_narrow(x, 0, 0, it->count);
}

/* The share of test examples whose largest logit is at their label; runs without a graph. */
static double accuracy(const mlp *m, const idx_dataset *test, Tensor *x /* [BATCH, D] */) {
    bool prev = ag_set_grad_enabled(false);
    nn_batches it; /* in order */
    nn_batches_init(&it, test->n, BATCH, false, false, 0);
    int64_t labels[BATCH];
    int64_t correct = 0;
    while (nn_batches_next(&it)) {
        Tensor *logits = mlp_forward(m, load_batch(test, &it, x, labels)); /* [count, K] */
        for (int64_t i = 0; i < it.count; i++) {
            real row[K];
            for (int k = 0; k < K; k++) row[k] = tensor_get(logits, (int64_t[]){i, k});
            int best = 0;
            for (int k = 1; k < K; k++)
                if (row[k] > row[best]) best = k;
            correct += best == labels[i];
        }
        ag_reset();
    }
    nn_batches_free(&it);
    ag_set_grad_enabled(prev);
    return (double)correct / (double)test->n;
}

/* Parses a whole decimal number in [lo, hi] into *out; returns false otherwise. */
static bool parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* Prints how to call the program to f; returns 2, the exit status for a bad argument. */
static int usage(FILE *f) {
    fprintf(f, "usage: mnist_mlp [--data DIR] [--epochs N (1..1000, default 10)] [--seed S "
               "(default 1)]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *dir = "data/digits";
    long long epochs = 10, seed = 1;
    for (int i = 1; i < argc; i += 2) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        bool ok = value != NULL;
        if (strcmp(flag, "--data") == 0)
            dir = value;
        else if (strcmp(flag, "--epochs") == 0)
            ok = ok && parse_int(value, 1, 1000, &epochs);
        else if (strcmp(flag, "--seed") == 0)
            ok = ok && parse_int(value, 0, INT64_MAX, &seed);
        else {
            fprintf(stderr, "mnist_mlp: unknown option '%s'\n", flag);
            return usage(stderr);
        }
        if (!ok) {
            if (value)
                fprintf(stderr, "mnist_mlp: bad value for %s: '%s'\n", flag, value);
            else
                fprintf(stderr, "mnist_mlp: %s needs a value\n", flag);
            return usage(stderr);
        }
    }

    idx_dataset train, test;
    char err[512];
    if (idx_load_split(dir, 1, K, &train, err, sizeof err) != IDX_OK ||
        idx_load_split(dir, 0, K, &test, err, sizeof err) != IDX_OK) {
        fprintf(stderr, "mnist_mlp: %s\n", err);
        idx_free(&train);
        return 1;
    }
    if (train.rows * train.cols != D || test.rows * test.cols != D) {
        fprintf(stderr, "mnist_mlp: %s: images must have 784 pixels (28x28)\n", dir);
        idx_free(&train);
        idx_free(&test);
        return 1;
    }

    nb_rng rng;
    nb_rng_seed(&rng, (uint64_t)seed);
    mlp m;
    nn_linear_init(&m.fc1, D, H, true, &rng);
    nn_linear_init(&m.fc2, H, K, true, &rng);
    nn_params ps = {0};
    nn_linear_params(&m.fc1, "fc1", &ps);
    nn_linear_params(&m.fc2, "fc2", &ps);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(1e-3));

    Tensor *x = tensor_empty(NB_SHAPE(BATCH, D)); /* kept: each batch is copied in */
    nn_batches it;                                /* shuffled with rng each epoch */
    nn_batches_init(&it, train.n, BATCH, true, false, 0);
    int64_t labels[BATCH];

    double acc = 0;
    for (long long epoch = 1; epoch <= epochs; epoch++) {
        nn_batches_epoch(&it, &rng);
        double loss_sum = 0;
        while (nn_batches_next(&it)) {
            Tensor *xb = load_batch(&train, &it, x, labels);
            nn_optim_zero_grad(opt);
            Tensor *logits = mlp_forward(&m, xb); /* [count, K] */
            Tensor *loss = nn_cross_entropy(logits, labels, NN_MEAN);
            ag_backward(loss);
            nn_optim_step(opt);
            loss_sum += (double)tensor_item(loss) * (double)it.count;
            ag_reset();
        }
        acc = accuracy(&m, &test, x);
        printf("epoch %lld  train loss %.4f  test accuracy %.4f\n", epoch,
               loss_sum / (double)train.n, acc);
    }
    printf("test accuracy: %.3f\n", acc);

    nn_batches_free(&it);
    tensor_free(x);
    nn_optim_free(opt);
    nn_params_free(&ps);
    nn_linear_free(&m.fc1);
    nn_linear_free(&m.fc2);
    idx_free(&train);
    idx_free(&test);
    arena_free_all();  /* the memory behind step tensors */
    nb_gemm_release(); /* the matmul's packing buffers */
    return 0;
}
