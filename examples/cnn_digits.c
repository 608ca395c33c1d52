/* examples/cnn_digits.c: a small convolutional network classifies the digits shipped in
 * data/digits (9,000 train, 1,000 test), built from nn/module.h's layers:
 *
 *   x [B, 1, 28, 28] -> conv 3x3, 16 channels, pad 1 -> relu -> max pool 2  [B, 16, 14, 14]
 *                    -> conv 3x3, 32 channels, pad 1 -> relu -> max pool 2  [B, 32, 7, 7]
 *                    -> flatten -> linear 1568 -> 10                         [B, 10] logits
 *
 * trained with Adam (batch 32, lr 3e-3 decayed to 0 along a cosine) on cross-entropy, each
 * training image shifted at random by up to 2 pixels (a cheap guard against overfitting 9,000
 * examples).
 *
 *   ./build/cnn_digits [--epochs N (default 5)] [--data DIR]
 *
 * Prints the train loss and test accuracy per epoch; exits 1 unless the final test accuracy is
 * at least 98% (or when the data cannot be read), 2 on a bad argument. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/idx.h"
#include "nn/data.h"
#include "nn/loss.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "tensor/gemm.h"

enum { D = 784, K = 10, BATCH = 32, C1 = 16, C2 = 32 };
#define LR 3e-3

/* Copies examples index[0..count) into x [count, 1, 28, 28], standardized as pytorch/examples
 * does for MNIST, and their labels into labels [count]. */
static void load_batch(const idx_dataset *d, const int64_t *index, int64_t count, Tensor *x,
                       int64_t *labels) {
    idx_batch(d, index, count, x->data, labels);
    for (int64_t i = 0; i < count * D; i++) x->data[i] = (x->data[i] - (real)0.1307) / (real)0.3081;
}

/* Data augmentation: shifts each of the count images in x by up to 2 pixels each way (zeros, in
 * standardized units, fill the uncovered border), so the network sees a new variant each epoch. */
static void shift_images(Tensor *x, int64_t count, nb_rng *rng) {
    real img[D];
    const real zero = (real)(-0.1307 / 0.3081);
    for (int64_t n = 0; n < count; n++) {
        real *p = x->data + n * D;
        int dy = (int)nb_rng_below(rng, 5) - 2, dx = (int)nb_rng_below(rng, 5) - 2;
        memcpy(img, p, sizeof img);
        for (int i = 0; i < 28; i++)
            for (int j = 0; j < 28; j++) {
                int si = i - dy, sj = j - dx;
                p[i * 28 + j] = si >= 0 && si < 28 && sj >= 0 && sj < 28 ? img[si * 28 + sj] : zero;
            }
    }
}

/* The share of the test set whose largest logit is at its label (no graph recorded). */
static double accuracy(nn_module *net, const idx_dataset *test, Tensor *x) {
    bool prev = ag_set_grad_enabled(false);
    nn_module_train(net, false);
    int64_t labels[BATCH], pred[BATCH], correct = 0;
    nn_batches it; /* in order */
    nn_batches_init(&it, test->n, BATCH, false, false, 0);
    while (nn_batches_next(&it)) {
        load_batch(test, it.index, it.count, x, labels);
        tensor_argmax(nn_forward(net, ag_narrow(x, 0, 0, it.count)), 1, pred);
        for (int64_t i = 0; i < it.count; i++) correct += pred[i] == labels[i];
        ag_reset();
    }
    nn_batches_free(&it);
    nn_module_train(net, true);
    ag_set_grad_enabled(prev);
    return (double)correct / (double)test->n;
}

int main(int argc, char **argv) {
    const char *dir = "data/digits";
    long epochs = 5;
    for (int i = 1; i < argc; i += 2) {
        char *end = NULL;
        if (i + 1 < argc && !strcmp(argv[i], "--data"))
            dir = argv[i + 1];
        else if (i + 1 < argc && !strcmp(argv[i], "--epochs"))
            epochs = strtol(argv[i + 1], &end, 10);
        if ((end && (*end || epochs < 1 || epochs > 1000)) || i + 1 >= argc ||
            (strcmp(argv[i], "--data") && strcmp(argv[i], "--epochs"))) {
            fprintf(stderr, "usage: cnn_digits [--epochs N (1..1000)] [--data DIR]\n");
            return 2;
        }
    }
    idx_dataset train = {0}, test = {0};
    char err[512];
    if (idx_load_split(dir, 1, K, &train, err, sizeof err) != IDX_OK ||
        idx_load_split(dir, 0, K, &test, err, sizeof err) != IDX_OK ||
        train.rows * train.cols != D || test.rows * test.cols != D) {
        fprintf(stderr, "cnn_digits: %s\n", train.n && test.n ? "images must be 28x28" : err);
        idx_free(&train), idx_free(&test);
        return 1;
    }

    nb_set_num_threads(1); /* batches of 32 small images: a second thread would mostly wait */
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_conv2d_opts pad1 = nb_conv2d_defaults();
    pad1.padding[0] = pad1.padding[1] = 1;
    nn_module *net = nn_sequential(
        nn_conv2d(1, C1, 3, 3, pad1, true, &rng), nn_relu_module(), nn_max_pool2d_module(2, 0, 0),
        nn_conv2d(C1, C2, 3, 3, pad1, true, &rng), nn_relu_module(), nn_max_pool2d_module(2, 0, 0),
        nn_flatten(1, -1), nn_linear_module(C2 * 7 * 7, K, true, &rng), NULL);
    nn_params ps = {0};
    nn_module_params(net, "net", &ps);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(LR));
    printf("cnn_digits: %lld parameters, %lld train / %lld test digits\n",
           (long long)nn_params_count(&ps), (long long)train.n, (long long)test.n);

    Tensor *x = tensor_empty(NB_SHAPE(BATCH, 1, 28, 28)); /* kept: each batch is copied in */
    nn_batches it;                                        /* shuffled with rng each epoch */
    nn_batches_init(&it, train.n, BATCH, true, false, 0);
    int64_t labels[BATCH];
    double acc = 0;
    int64_t step = 0, steps = epochs * ((train.n + BATCH - 1) / BATCH);
    for (long epoch = 1; epoch <= epochs; epoch++) {
        nn_batches_epoch(&it, &rng);
        double loss_sum = 0;
        while (nn_batches_next(&it)) {
            int64_t count = it.count;
            load_batch(&train, it.index, count, x, labels);
            shift_images(x, count, &rng);
            nn_optim_set_lr(opt, nn_lr_cosine(LR, step++, steps, 0));
            nn_optim_zero_grad(opt);
            Tensor *loss =
                nn_cross_entropy(nn_forward(net, ag_narrow(x, 0, 0, count)), labels, NN_MEAN);
            ag_backward(loss);
            nn_optim_step(opt);
            loss_sum += (double)tensor_item(loss) * (double)count;
            ag_reset();
        }
        acc = accuracy(net, &test, x);
        printf("epoch %ld  train loss %.4f  test accuracy %.4f\n", epoch,
               loss_sum / (double)train.n, acc);
    }
    bool ok = acc >= 0.98;
    printf("test accuracy %.3f: %s\n", acc, ok ? "at least 98%" : "BELOW 98%");

    nn_batches_free(&it);
    tensor_free(x);
    nn_optim_free(opt);
    nn_params_free(&ps);
    nn_module_free(net);
    idx_free(&train), idx_free(&test);
    arena_free_all();
    return ok ? 0 : 1;
}
